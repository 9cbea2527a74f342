# %% [markdown]
# # 05 · Training: teaching the network to predict the noise
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/diffusion-course/diffusion-by-code/blob/main/notebooks/05_training.ipynb)
#
# Training a diffusion model is Algorithm 1 of Ho et al. (2020), repeated a few thousand times:
#
# $$x_0 \sim \text{data}, \quad t \sim \mathrm{Uniform}\{0, \dots, T-1\}, \quad \varepsilon \sim \mathcal{N}(0, I), \quad
# \text{gradient step on } \big\| \varepsilon - \varepsilon_\theta\big(\sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\, \varepsilon,\ t\big) \big\|^2$$
#
# This notebook first walks one batch through that line, one symbol at a time, then trains a real model with
# `dl.train`, and looks at what came out: the loss curve, the loss at each timestep, and samples drawn every few
# hundred steps. It ends by loading the course's **shipped weights**, which the later notebooks use, so that
# nothing after this depends on your run.
#
# **How long:** everything but the training run takes about a minute. The training run is 3,000 steps of 128 images
# in full mode (quick mode: 30 steps of 32), a 162,305-parameter U-Net with 16 base channels, its forward pass in
# bfloat16. It took **10 to 15 minutes** on the course's development machine (AMD EPYC, 2 cores, one torch thread;
# 29 minutes when other work shared the cores), a few seconds in quick mode. Section 2 measures your machine and prints its own estimate before starting.

# %%
# Colab set-up: in Google Colab, install diffusion_lib from GitHub; elsewhere this cell does nothing.
import subprocess
import sys

if "google.colab" in sys.modules:
    url = "git+https://github.com/diffusion-course/diffusion-by-code.git@main"
    # --no-deps: keep Colab's own torch, torchvision and ipywidgets (it also has matplotlib and tqdm).
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", url],
                             capture_output=True, text=True)
    if install.returncode != 0:
        print(f"Could not install diffusion_lib from {url} (pip exited with {install.returncode}):")
        said = (install.stderr or install.stdout).strip().splitlines()
        print("\n".join([line.strip() for line in said if "fatal:" in line or "ERROR:" in line] or said[-6:]))
        print("What to do: the cells below need diffusion_lib. If the course is not on GitHub at that address "
              "(yet), set url above to where it is (git+https://github.com/OWNER/NAME.git@main) and run this "
              "cell again, or upload the course's folder to Colab and run: !pip install --no-deps ./FOLDER")

# %%
import time

import torch

import diffusion_lib as dl

device = dl.default_device()
B = dl.budget()
print(f"diffusion_lib {dl.__version__}, device {device}, {B.mode} mode: {B.train_steps} training steps of "
      f"{B.batch_size} images")

# %% [markdown]
# The data: MNIST's 60,000 training digits as tensors in $[-1, 1]$ (`dl.load_mnist` rescales the pixels
# $0 \dots 255$ to $x/127.5 - 1$), and the 10,000 test digits to evaluate on. The noise schedule is the linear one
# of notebook 01, $T = 1000$.

# %%
# NBVAL_CHECK_OUTPUT
images, labels = dl.load_mnist()
test_images, _ = dl.load_mnist(train=False)
schedule = dl.make_schedule("linear", T=1000)
print(f"train {tuple(images.shape)}, test {tuple(test_images.shape)}, "
      f"pixels in [{images.min():.0f}, {images.max():.0f}], T = {schedule.T}")

# %% [markdown]
# ## 1. The objective, one symbol at a time
#
# Take a batch of eight training images $x_0$, and draw one timestep per image, uniformly from $\{0, \dots, T-1\}$:

# %%
# NBVAL_CHECK_OUTPUT
x0 = images[:8]                                            # (8, 1, 28, 28)
g = torch.Generator().manual_seed(0)
t = torch.randint(0, schedule.T, (8,), generator=g)        # (8,)  t ~ Uniform{0, ..., T-1}
print("t =", t.tolist())

# %% [markdown]
# Draw the noise $\varepsilon \sim \mathcal{N}(0, I)$, one value per pixel, and mix it in with `dl.q_sample`
# (notebook 02): $x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\, \varepsilon$.

# %%
# NBVAL_CHECK_OUTPUT
eps = torch.randn(x0.shape, generator=g)                  # (8, 1, 28, 28)  eps ~ N(0, I)
x_t = dl.q_sample(x0, t, schedule, eps)                   # (8, 1, 28, 28)
print(f"eps: mean {eps.mean():+.3f}, std {eps.std():.3f}")
print("sqrt(alpha_bar_t) =", [round(v, 3) for v in schedule.sqrt_alpha_bar[t].tolist()])

# %% [markdown]
# Ask an (untrained) network for its guess $\varepsilon_\theta(x_t, t)$: the U-Net of notebook 04, 16 base channels,
# random weights.

# %%
torch.manual_seed(0)
untrained = dl.UNet(base=16).to(device)
with torch.no_grad():
    eps_pred = untrained(x_t.to(device), t.to(device)).cpu()   # (8, 1, 28, 28)
dl.plotting.show_rows({"$x_0$": x0, r"$\varepsilon$": eps, "$x_t$": x_t, r"$\varepsilon_\theta(x_t, t)$": eps_pred},
                      col_labels=[f"t = {int(s)}" for s in t]);

# %% [markdown]
# The loss is the mean squared difference between the true and the predicted noise, over the pixels of each image
# (one number per image), then over the batch. Written out here, then computed by the library's `dl.diffusion_loss`
# (which does exactly the steps above, `q_sample` included):

# %%
# NBVAL_CHECK_OUTPUT
per_image = ((eps - eps_pred) ** 2).mean(dim=(1, 2, 3))            # (8,)
with torch.no_grad():
    library = dl.diffusion_loss(untrained, x0.to(device), schedule, t.to(device), eps.to(device), reduction="none")
print("by hand:           ", [round(v, 3) for v in per_image.tolist()])
print("dl.diffusion_loss: ", [round(v, 3) for v in library.cpu().tolist()])
print(f"batch loss {per_image.mean():.3f}")

# %% [markdown]
# Training takes the gradient of that batch loss with respect to the network's weights and lets the optimizer
# (AdamW) take a small step downhill; `dl.Trainer.train_step` does the drawing, the loss, the backward pass, the
# step, and an update of an exponential moving average (EMA) of the weights, which is what samplers use.
#
# **Question.** The untrained network scores a little above 1 on every image, whatever its $t$. What would a network
# that always answers $\varepsilon_\theta = 0$ score (what is the mean of $\varepsilon^2$)? What does a score above
# that say about the untrained network's answers?

# %% [markdown]
# ## 2. A real training run
#
# `dl.train(config, images)` repeats `train_step` for `config.steps` steps, on batches that walk through a fresh
# shuffle of the data each epoch. The recipe: the 16-channel U-Net, AdamW at learning rate $10^{-3}$, gradient
# clipping at 1, EMA decay 0.999, and the forward pass autocast to bfloat16 (`precision="bf16"`): on the course's
# CPU, which has bfloat16 instructions, a training step is about 1.3x faster than in float32; recent GPUs gain more.
# The number of steps and the batch size come from `dl.budget()`.

# %%
# NBVAL_CHECK_OUTPUT
config = dl.TrainConfig(backbone="unet", backbone_kwargs={"base": 16}, steps=B.train_steps, batch_size=B.batch_size,
                        lr=1e-3, precision="bf16", seed=0)
print(f"{config.backbone} {config.backbone_kwargs}: lr {config.lr}, EMA {config.ema_decay}, {config.precision}")

# %% [markdown]
# How long will it take here? One forward + backward pass of a batch, timed (notebook 04, section 4), times the
# number of steps, is a close lower bound: the optimizer's update and the EMA add a little.

# %%
# NBVAL_IGNORE_OUTPUT
seconds_per_image = dl.inspection.time_per_image(dl.UNet(base=16), batch_size=config.batch_size,
                                                 precision=config.precision, device=device)
print("on:", dl.inspection.machine_description(device))
print(f"about {seconds_per_image * config.batch_size * config.steps / 60:.1f} minutes for {config.steps} steps "
      f"of {config.batch_size} images")

# %% [markdown]
# While it trains, a callback, `dl.inspection.SampleRecorder`, draws eight samples with DDIM (notebook 07) from the
# EMA weights after the first step and every tenth of the run, always from the same starting noise $x_T$, so
# that we can watch the same eight images take shape.

# %%
# NBVAL_IGNORE_OUTPUT
recorder = dl.inspection.SampleRecorder(x_T=dl.sample_noise(8, generator=torch.Generator().manual_seed(1)),
                                        schedule=schedule, every=max(1, config.steps // 10), num_steps=B.ddim_steps)
start = time.perf_counter()
result = dl.train(config, images, device=device, callback=recorder)
minutes = (time.perf_counter() - start) / 60
print(f"{result.step} steps in {minutes:.1f} minutes on {dl.inspection.machine_description(device)}")

# %% [markdown]
# ## 3. The loss curve
#
# `result.history` holds the loss of every step's batch (light) and the plot adds its running mean (dark). The log
# scale shows both phases: a fast fall from above 1 while the network learns to pass the noise through, then a slow
# descent while it learns what digits look like.

# %%
# NBVAL_IGNORE_OUTPUT
dl.plotting.plot_loss_curve(result.history);

# %% [markdown]
# **Question.** Late in training the per-step loss still jumps up and down by a factor of two from one step to
# the next, although the network barely changes. Each batch has 128 images; what else is drawn afresh for every
# batch? The next section answers it.

# %% [markdown]
# ## 4. The loss is not the same at every timestep
#
# Fix $t$ and average the loss over images (and their noise):
#
# $$L(t) = \mathbb{E}_{x_0, \varepsilon}\, \big\| \varepsilon - \varepsilon_\theta(x_t, t) \big\|^2$$
#
# The training loss is $L(t)$ averaged over uniformly drawn $t$. `dl.inspection.loss_by_timestep` computes
# $L(t)$ at a list of timesteps on test images, with the same images and the same noise at every $t$. The
# trained model's EMA weights against the untrained network of section 1:

# %%
# NBVAL_IGNORE_OUTPUT
ts = [0, 10, 25, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 999]
x_eval = test_images[:B.sweep_samples]
curves = {"untrained": dl.inspection.loss_by_timestep(untrained, x_eval, schedule, ts),
          f"trained, {result.step} steps (EMA)": dl.inspection.loss_by_timestep(result.ema, x_eval, schedule, ts)}
for name, c in curves.items():
    print(f"{name:<26}", "  ".join(f"t={s}: {v:.3f}" for s, v in zip(ts, c.tolist()) if s in (0, 50, 500, 999)))

# %%
# NBVAL_IGNORE_OUTPUT
dl.plotting.plot_loss_by_timestep(ts, curves);

# %% [markdown]
# Near $t = T-1$, $x_t$ is almost pure noise, $x_t \approx \varepsilon$, so the noise is easy to name: the loss is
# tiny. Near $t = 0$, $x_t$ is the clean digit plus a whisper of noise, and the network has to tell the whisper
# apart from the digit, pixel by pixel: the loss stays high. A batch drawn with many small $t$ scores badly, one
# with many large $t$ scores well, and that is most of the jitter in the loss curve.
#
# **Question.** The loss at small $t$ is the highest, but errors there barely matter for the final image: a
# sampler's last steps only polish. Which timesteps do you think decide what digit comes out? How would you
# reweight the loss over $t$ to spend the network's effort there?

# %% [markdown]
# ## 5. Samples during training
#
# Drag the slider over the training steps the callback recorded: the same eight starting noises, sampled with the
# EMA weights of that moment. The table below shows every recorded step at once, for GitHub and print.

# %%
# NBVAL_IGNORE_OUTPUT
dl.widgets.slider_view(lambda step: dl.plotting.show_rows({f"step {step}": recorder.images[step]}),
                       values=recorder.steps, description="training step")

# %%
# NBVAL_IGNORE_OUTPUT
dl.plotting.show_rows({f"step {s}": recorder.images[s] for s in recorder.steps});

# %% [markdown]
# **Question.** At which step do the samples stop being noise and become strokes, and at which do they become
# digits you can name? Compare with the loss curve: could you have told those moments from the loss alone?

# %% [markdown]
# ## 6. The shipped weights
#
# A few thousand steps give strokes and rough digits; good digits take longer than a notebook should. The course
# ships a U-Net trained by the project (its model card, `diffusion_lib/weights/unet.md`, gives the command, the
# time and the machine), and the later notebooks load it, not your run, so they work whatever happened here.
# `dl.pretrained.load_pretrained` reads it with `torch.load(weights_only=True)` and returns the network with its
# EMA weights, ready to sample.

# %%
# NBVAL_CHECK_OUTPUT
shipped = dl.pretrained.load_pretrained("unet", device=device)
shipped_schedule = dl.pretrained.pretrained_schedule("unet")
print(f"{type(shipped).__name__} {shipped.arch['kwargs']}: {dl.count_parameters(shipped):,} parameters, "
      f"{shipped_schedule.name} schedule, T = {shipped_schedule.T}")

# %% [markdown]
# Its loss at each timestep, next to your run's, and a grid of its samples (DDIM, as in section 5):

# %%
# NBVAL_IGNORE_OUTPUT
curves["shipped (EMA)"] = dl.inspection.loss_by_timestep(shipped, x_eval, shipped_schedule, ts)
dl.plotting.plot_loss_by_timestep(ts, curves);

# %%
# NBVAL_IGNORE_OUTPUT
x_T = dl.sample_noise(B.n_samples, generator=torch.Generator().manual_seed(0)).to(device)
samples = dl.final(dl.ddim_sample_progressive(shipped, x_T, shipped_schedule, num_steps=B.ddim_steps, progress=True))
dl.plotting.show_grid(samples, title=f"shipped U-Net: {B.n_samples} samples, DDIM {B.ddim_steps} steps");

# %% [markdown]
# **Question.** Where, in $t$, does the shipped model beat your run the most? Does that match where its samples
# look better?

# %% [markdown]
# ## Exercise: the loss from the equation
#
# Write `my_loss(model, x0, t, eps, schedule)`, the training loss of one batch, from the equation and without
# `dl.q_sample` or `dl.diffusion_loss`: build $x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\, \varepsilon$
# with $\bar\alpha_t$ = `schedule.alpha_bar[t]` (shape `(B,)`: reshape it to `(B, 1, 1, 1)` to scale each image),
# call `model(x_t, t)`, and return the mean of $(\varepsilon - \varepsilon_\theta)^2$ over images and pixels. The
# check compares it with `dl.diffusion_loss` on a stand-in model, for the linear and the cosine schedule.

# %%
# EXERCISE
def my_loss(model, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, schedule) -> torch.Tensor:
    """Mean of (eps - model(x_t, t))^2 with x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps."""
    raise NotImplementedError

# %%
dl.exercises.check("05", my_loss);
