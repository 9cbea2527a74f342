# %% [markdown]
# # 05 · Training: teaching the network to predict the noise
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/diffusion-course/diffusion-by-code/blob/main/notebooks/05_training.ipynb)
#
# Training a diffusion model is Algorithm 1 of Ho et al. (2020), repeated a few thousand times:
#
# $$x_0 \sim \text{data}, \quad t \sim \mathrm{Uniform}\{1, \dots, T\}, \quad \varepsilon \sim \mathcal{N}(0, I), \quad
# \text{gradient step on } \big\| \varepsilon - \varepsilon_\theta\big(\sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\, \varepsilon,\ t\big) \big\|^2$$
#
# (In code, $t$ is drawn as the index `torch.randint(0, T)`, `0 ... 999`: notebook 01's map.)
#
# This notebook first walks one batch through that line, one symbol at a time, then trains a real model with
# `dl.train`, and looks at what came out: the loss curve, the loss at each timestep, and samples drawn every few
# hundred steps. It ends by loading the course's **shipped weights**, which the later notebooks use, so that
# nothing after this depends on your run.
#
# **Two networks in this notebook.** *Your run* trains the base-16 U-Net with channel multipliers (1, 2, 2),
# 162,305 parameters, for 3,000 steps of 128 images (in quick mode 30 steps of 32). The *shipped* U-Net of section 6
# is another network of the same design: base 16 with multipliers (1, 2, 8), 684,161 parameters, trained by the
# project for 35,000 steps of 128 images. (Notebook 04's table lists both, and the base-32 one it takes apart.)

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
        if "could not read Username" in install.stderr:
            print("In plain words: GitHub asked for a user name, which is how it answers when the repository does "
                  "not exist at that address or is private.")
        print("What to do: the cells below need diffusion_lib. Either set url above to the course's repository "
              "(git+https://github.com/OWNER/NAME.git@main) and run this cell again; or install your own copy: zip "
              "the course's folder (the one with pyproject.toml) on your computer, upload the zip with the folder "
              "icon in Colab's left bar, then run in a new cell: !unzip -q NAME.zip -d /content/course && "
              "pip install --no-deps /content/course/FOLDER")

# %% [markdown]
# **What you will learn**
#
# - the training objective of DDPM, one symbol at a time, computed by hand and by the library on one batch;
# - to run a real training (`dl.train`) and read its loss curve;
# - why the loss differs by orders of magnitude between timesteps, and what that does to the curve;
# - how samples take shape as training goes, what the shipped weights add, and which recipe choices matter most
#   for 10 minutes of training (a measured study).
#
# **What you need first:** notebooks 01-04 (the schedule, `q_sample`, the time embedding and the U-Net).
#
# **Run time:** in quick mode about 25 seconds (a few seconds of training). In full mode 11 to 16 minutes on a
# 2-core CPU, 10 to 15 of them the training run (if other programs keep the CPU busy, set `OMP_NUM_THREADS=1`
# before starting Jupyter: see the README). Section 2 measures your machine and prints its own estimate before
# starting. The two experiments at the end add two short runs each (about a minute per run in full mode) if you
# do them.

# %%
import time

import torch

import diffusion_lib as dl

device = dl.default_device()
torch.backends.cudnn.allow_tf32 = False   # on a GPU: float32 convolutions exact, so the checked losses below match
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
# Take a batch of eight training images $x_0$, and draw one timestep per image, uniformly (the code's indices
# `0 ... 999`):

# %%
# NBVAL_CHECK_OUTPUT
x0 = images[:8]                                            # (8, 1, 28, 28)
g = torch.Generator().manual_seed(0)
t = torch.randint(0, schedule.T, (8,), generator=g)        # (8,)  code indices 0 .. T-1: the papers' t = 1 .. T
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
# The loss the library computes, and every loss plotted in this course, is the **mean over the 784 pixels** of
# $(\varepsilon - \varepsilon_\theta)^2$, that is $\|\varepsilon - \varepsilon_\theta\|^2 / 784$ (Ho et al. write the
# sum, which is 784 times larger and has the same gradient direction).
#
# **Question.** The untrained network scores a little above 1 on every image, whatever its $t$. What would a network
# that always answers $\varepsilon_\theta = 0$ score (what is the mean of $\varepsilon^2$)? What does a score above
# that say about the untrained network's answers?
#
# <details><summary>Answer</summary>
#
# The mean of $\varepsilon^2$ over the pixels, which is 1 on average ($\varepsilon \sim \mathcal{N}(0, I)$; this batch's
# noise has a standard deviation of 0.987, printed above). A random network's output $f$ is unrelated to
# $\varepsilon$, so its loss is about $\mathbb{E}[\varepsilon^2] + \mathbb{E}[f^2] = 1 + \mathbb{E}[f^2]$: a score of 1.27
# means its answers have a mean square of about 0.27. It is not merely ignorant, it adds noise of its own; answering
# 0 would score better.
#
# </details>

# %% [markdown]
# ## 2. A real training run
#
# `dl.train(config, images)` repeats `train_step` for `config.steps` steps, on batches that walk through a fresh
# shuffle of the data each epoch. The recipe: the 16-channel U-Net, AdamW at learning rate $10^{-3}$, gradient
# clipping at 1, EMA decay 0.999, and the precision that `dl.fast_precision(device)` chooses for this machine: the
# forward pass autocast to bfloat16 (`"bf16"`) where the hardware computes in bfloat16, as CPUs with AVX512-BF16 or
# AMX instructions (the course's) and GPUs of compute capability 8 or more do, and float32 (`"fp32"`) elsewhere, for
# instance on a T4, Colab's free GPU, where bfloat16 is emulated and slower (benchmarks/README.md measures it,
# float32 against bfloat16). The line below ends with the one chosen. The number of steps and the batch size come
# from `dl.budget()`.

# %%
config = dl.TrainConfig(backbone="unet", backbone_kwargs={"base": 16}, steps=B.train_steps, batch_size=B.batch_size,
                        lr=1e-3, precision=dl.fast_precision(device), seed=0)
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
#
# <details><summary>Answer</summary>
#
# Besides the images and the noise, the 128 timesteps. The next section shows that the loss at a small $t$ is
# hundreds of times the loss at a large one, so a batch's loss is set mostly by its few smallest timesteps: a
# batch that happens to draw a few more of them scores much worse.
#
# </details>

# %% [markdown]
# ## 4. The loss is not the same at every timestep
#
# Fix $t$ and average the loss over images (and their noise):
#
# $$L(t) = \mathbb{E}_{x_0, \varepsilon}\, \big\| \varepsilon - \varepsilon_\theta(x_t, t) \big\|^2 / 784$$
#
# (per pixel, as the training loss). The training loss is $L(t)$ averaged over uniformly drawn $t$.
# `dl.inspection.loss_by_timestep` computes $L(t)$ at a list of timesteps on test images, with the same images and the same noise at every $t$. The
# trained model's EMA weights against the untrained network of section 1:

# %%
# NBVAL_IGNORE_OUTPUT
ts = [0, 10, 25, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 999]
x_eval = test_images[:B.sweep_samples]
curves = {"untrained": dl.inspection.loss_by_timestep(untrained, x_eval, schedule, ts),
          f"your run, 162k, {result.step} steps (EMA)": dl.inspection.loss_by_timestep(result.ema, x_eval, schedule, ts)}
for name, c in curves.items():
    print(f"{name:<26}", "  ".join(f"t={s}: {v:.3f}" for s, v in zip(ts, c.tolist()) if s in (0, 50, 500, 999)))

# %%
# NBVAL_IGNORE_OUTPUT
dl.plotting.plot_loss_by_timestep(ts, curves);

# %% [markdown]
# Near $t = T$, $x_t$ is almost pure noise, $x_t \approx \varepsilon$, so the noise is easy to name: the loss is
# tiny. At the first steps, $x_t$ is the clean digit plus a whisper of noise, and the network has to tell the whisper
# apart from the digit, pixel by pixel: the loss stays high. A batch drawn with many small $t$ scores badly, one
# with many large $t$ scores well, and that is most of the jitter in the loss curve.
#
# **Question.** The loss at small $t$ is the highest, but errors there barely matter for the final image: a
# sampler's last steps only polish. Which timesteps do you think decide what digit comes out? How would you
# reweight the loss over $t$ to spend the network's effort there?
#
# <details><summary>Answer</summary>
#
# The middle of the run, around where the log-SNR crosses zero (`t = 259` for this linear schedule, notebook 01).
# Notebook 06 measures it along the sampling chain: the digit the chain will end with is settled between about
# `t = 600` and `t = 250`. To spend effort there, give the small-$t$ terms less weight, for example by weighting each
# $L(t)$ with $\min(\mathrm{SNR}_t, \gamma) / \mathrm{SNR}_t$, which caps the weight of the high-SNR (small-$t$)
# steps ("min-SNR weighting", Hang et al. 2023, with $\gamma = 5$), or draw $t$ more often from the middle than from
# the ends.
#
# </details>

# %% [markdown]
# ## 5. Samples during training
#
# Drag the slider over the training steps the callback recorded: the same eight starting noises, sampled with the
# EMA weights of that moment. The grid below shows every recorded step at once, for GitHub and print.

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
#
# <details><summary>Answer</summary>
#
# Strokes appear within the first few hundred steps, about when the loss curve's fast fall ends; digits you can
# name come later, after a thousand steps or so, and some samples keep changing their digit (or stay half-formed)
# until the end of the run. Over that time the loss curve hardly moves: its slow descent after step 500 does not
# show the moment a sample becomes a digit. The loss says how well the noise is predicted on average over $t$,
# dominated by the small timesteps (section 4), not how good the samples are.
#
# </details>

# %% [markdown]
# ## 6. The shipped weights
#
# A few thousand steps give strokes and rough digits; good digits take longer than a notebook should. The course
# ships a U-Net trained by the project (its model card, `diffusion_lib/weights/unet.md`, gives the command, the
# time and the machine), and the later notebooks load it, not your run, so they work whatever happened here. It is
# not your network trained longer: it is wider at its 7x7 level (channel multipliers (1, 2, 8) instead of (1, 2, 2)),
# with four times the parameters, and it trained for about twelve times as many steps.
# `dl.pretrained.load_pretrained` reads it with `torch.load(weights_only=True)` and returns the network with its
# EMA weights, ready to sample.

# %%
# NBVAL_CHECK_OUTPUT
shipped = dl.pretrained.load_pretrained("unet", device=device)
shipped_schedule = dl.pretrained.pretrained_schedule("unet")
shipped_config = dl.load_checkpoint(dl.pretrained.pretrained_path("unet"))["config"]
print(f"{type(shipped).__name__} {shipped.arch['kwargs']}: {dl.count_parameters(shipped):,} parameters, "
      f"{shipped_schedule.name} schedule, T = {shipped_schedule.T}; trained {shipped_config['steps']:,} steps of "
      f"{shipped_config['batch_size']} images")

# %% [markdown]
# Its loss at each timestep, next to your run's, and a grid of its samples (DDIM, as in section 5):

# %%
# NBVAL_IGNORE_OUTPUT
curves[f"shipped, 684k, {shipped_config['steps']:,} steps (EMA)"] = dl.inspection.loss_by_timestep(
    shipped, x_eval, shipped_schedule, ts)
dl.plotting.plot_loss_by_timestep(ts, curves);

# %%
# NBVAL_IGNORE_OUTPUT
x_T = dl.sample_noise(B.n_samples, generator=torch.Generator().manual_seed(0)).to(device)
samples = dl.final(dl.ddim_sample_progressive(shipped, x_T, shipped_schedule, num_steps=B.ddim_steps, progress=True))
dl.plotting.show_grid(samples, title=f"shipped U-Net: {B.n_samples} samples, DDIM {B.ddim_steps} steps");

# %% [markdown]
# **Question.** Where, in $t$, does the shipped model beat your run the most? Does that match where its samples
# look better? The two differ in two things at once, the width of the network and the length of the training:
# can you tell which one made the difference, and what runs would tell you?
#
# <details><summary>Answer</summary>
#
# In the middle of the run the two curves nearly touch; the shipped network is ahead at the two ends, at the first
# timesteps and, by the largest factor, at `t = 800` and above, where both losses are already tiny. Its samples are
# far better than that near-tie in the middle suggests: small differences in the middle of the run, where the
# digit is decided, and at large $t$, where an error in $\varepsilon$ is amplified most on its way into $\hat x_0$
# (notebook 09, section 5), matter more for the samples than the average loss says.
#
# This comparison cannot say whether the width or the training did it: it changes both. Separating them takes a
# run that changes only one, the narrow network trained as long as the wide one, or the wide one as short as yours.
# The model card (`diffusion_lib/weights/unet.md`, "What was tried") has such runs: at 12,000 to 14,000 steps, the
# narrow network reaches a confident share (notebook 07's metric) of 0.72 and the wide one 0.79, and training the
# wide one on to 35,000 steps brings it to 0.82: both differences count.
#
# </details>

# %% [markdown]
# ## 7. Which recipe choices mattered: a measured study
#
# Every line of your run's recipe is a choice: what the network predicts (this notebook: $\varepsilon$; x0, v and
# flow matching, notebook 11, are the others), how the loss weighs each $t$, the schedule, the width and the EMA
# decay. Which ones matter? The project's `benchmarks/recipes.py` trained one row per change, each from scratch for
# the same 10 minutes on one thread of a 2-core CPU, with a base recipe close to yours (base 16, (1, 2, 2), batch 64,
# AdamW lr $3 \cdot 10^{-3}$, bf16, EMA 0.999, $\varepsilon$, linear schedule). It scored each with notebook 07's
# metric on 500 samples: DDIM 50 steps, or flow Euler 50 for flow matching, the same 50 network evaluations. One
# run on a 2-core AMD EPYC (benchmarks/README.md has the command, the throughput and the final loss of every row):
#
# | recipe, 10 minutes of training (change from the base) | steps | confident share | Fréchet distance |
# | --- | --- | --- | --- |
# | $\varepsilon$ (the base) | 4,568 | 0.630 | 141.2 |
# | x0-prediction | 4,186 | 0.680 | 94.6 |
# | v-prediction | 4,336 | 0.696 | 93.1 |
# | flow matching | 3,971 | 0.702 | 81.2 |
# | $\varepsilon$ + min-SNR-5 weighting | 4,503 | 0.704 | 111.5 |
# | v + min-SNR-5 | 4,088 | 0.674 | 103.2 |
# | $\varepsilon$, cosine schedule (DDIM from the clipped $\hat x_0$) | 4,366 | 0.630 | 152.5 |
# | v, cosine schedule | 4,570 | 0.728 | 72.7 |
# | $\varepsilon$, width (1, 2, 8) | 2,989 | 0.600 | 175.6 |
# | flow, width (1, 2, 8) | 2,986 | 0.738 | 74.1 |
# | $\varepsilon$, EMA 0.9995 | 4,632 | 0.636 | 136.5 |
# | flow, EMA 0.998 | 4,343 | 0.734 | 75.1 |
# | **flow, class-conditional, sampled at w = 1 (no guidance)** | 4,749 | **0.920** | **17.0** |
# | real MNIST test digits | | 0.972 | 13.0 |
#
# Flow matching with min-SNR-5 is not in that table: its run weighted the velocity's loss with the DDPM path's
# signal-to-noise ratio instead of the straight path's own (a bug, fixed since). Rerun side by side with the flow
# row on a 2-core Intel Xeon with AMX (a faster machine for this network, so more steps in the same 10 minutes;
# `benchmarks/README.md` has the command):
#
# | recipe, 10 minutes, Intel Xeon | steps | confident share | Fréchet distance |
# | --- | --- | --- | --- |
# | flow matching | 5,205 | 0.746 | 67.8 |
# | flow + min-SNR-5 | 5,212 | 0.692 | 94.4 |
#
# **Question.** Rank the choices by what they bought. Then two checks on the table itself: a confident share
# measured on 500 samples has a sampling error of $\sqrt{p(1-p)/500}$; which differences are too small to count?
# And why did the $\varepsilon$ row with the cosine schedule need its $\hat x_0$ clipped to be scored at all
# (notebook 01: the cosine schedule's $\bar\alpha_{999}$ is $2.4 \cdot 10^{-9}$)?
#
# <details><summary>Answer</summary>
#
# Conditioning comes first by far: the class-conditional flow network, sampled with its label and no guidance,
# reads as digits after 10 minutes (0.920, Fréchet distance 17.0) where no unconditional row passes 0.74. Knowing
# which digit to draw takes away the hardest part of the task. Next is the objective: $\varepsilon$ is the worst of
# the four at this budget, and x0, v and flow matching are level in confident share, with flow's Fréchet distance the
# lowest. Of the other choices only min-SNR weighting moved the confident share by more than the table can resolve
# (the next paragraph): it helps $\varepsilon$ (0.704 against 0.630) and hurts flow (0.692 against 0.746 in the
# side-by-side rerun, a difference just beyond two sampling errors).
#
# At $p = 0.7$ the sampling error is $\sqrt{0.21/500} \approx 0.02$, so a difference under about 0.04 (two errors)
# is not a finding without more samples or a second training seed. That makes ties of x0 against v against flow,
# and of every remaining change against its base row: the cosine schedule for v (+0.032), min-SNR for v (-0.022),
# EMA 0.998 for flow (+0.032) and 0.9995 for $\varepsilon$ (+0.006), the wider network for flow (+0.036) and for
# $\varepsilon$ (-0.030). Their Fréchet distances lean the same way as their confident shares, but one run each cannot
# tell a small effect from luck. The wider network had little chance to show more at 10 minutes: each of its steps
# costs half as much again, so it saw two thirds as many images (2,989 steps against 4,568).
#
# DDIM's first step computes $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon_\theta)/\sqrt{\bar\alpha_t}$
# at the first timestep, `t = 999`, where $\sqrt{\bar\alpha_t} = 4.9 \cdot 10^{-5}$: an error of 0.01 in $\varepsilon_\theta$ becomes an
# error of 200 in $\hat x_0$, and the chain starts from it. Plain DDIM drew pure noise from that network (confident
# share 0.000). Clipping $\hat x_0$ to $[-1, 1]$ at every step (`dl.samplers.clipped_x0_eps_model`, Ho et al.'s
# "clip_denoised") repairs it. A v-prediction network does not have the problem: its $\hat x_0 =
# \sqrt{\bar\alpha_t}\, x_t - \sqrt{1-\bar\alpha_t}\, v_\theta$ scales an error in $v_\theta$ by at most 1 at every
# $t$, one reason v and the cosine schedule go together.
#
# </details>

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

# %% [markdown]
# ## Experiment: the cosine schedule, measured
#
# Notebook 01 showed that at the same $t$ the cosine schedule keeps more of the image than the linear one. Train the
# same network twice, with the same short budget, once with `schedule="linear"` and once with `schedule="cosine"`
# (a field of `dl.TrainConfig`), and measure each run's $L(t)$ with `dl.inspection.loss_by_timestep`, on test images,
# *with the schedule it was trained with* (`dl.make_schedule(name)`). Before you run it, predict: at which $t$ will
# the cosine run's loss be higher than the linear run's, and why? Keep the batch at 32 and the steps below to stay
# within about a minute per run in full mode (seconds in quick mode). The check looks at the shape of your curves
# and at the direction of the difference. A worked version is in `solutions/05_training.py`.

# %%
# EXPERIMENT: one short run per schedule, then L(t) of each
exp_ts = [10, 100, 250, 500, 750, 900]
exp_steps = max(30, B.train_steps // 10)      # 300 steps in full mode, 30 in quick mode; batches of 32
exp_losses = {"linear": None, "cosine": None}  # replace each None: L(t) at exp_ts of the run with that schedule

# %%
dl.exercises.check("05-schedules", {"timesteps": exp_ts, **exp_losses});

# %% [markdown]
# <details><summary>What to look for</summary>
#
# The cosine run's loss is higher at every $t$ from 100 on. Not because it learned less: at the same $t$ its $x_t$
# holds more of the image and less noise (notebook 01), and the less noise there is, the harder it is to name. Plot
# both curves against each schedule's log-SNR (`dl.make_schedule(name).log_snr[exp_ts]`) instead of $t$, and they
# come close together: the loss depends mostly on the noise level, not on the index $t$. So the loss of two runs
# with different schedules says nothing about which one gives the better samples; that takes sampling them and a
# metric (notebook 07).
#
# </details>

# %% [markdown]
# ## Experiment: min-SNR weighting
#
# Section 4 asked how to reweight the loss over $t$. `dl.TrainConfig(loss_weighting="min_snr")` multiplies each
# image's loss by $\min(\mathrm{SNR}_t, \gamma) / \mathrm{SNR}_t$ with $\gamma = 5$ (Hang et al. 2023,
# "Efficient diffusion training via min-SNR weighting strategy"): 1 wherever $\mathrm{SNR}_t \le 5$, which for the
# linear schedule is from `t = 130` on, and less before, down to 0.0005 at the first step. Train two short runs that
# differ only in `loss_weighting` (`"none"`, the default, and `"min_snr"`), with the same budget as the experiment
# above (`exp_steps` steps of 32 images), and measure each one's $L(t)$ with the linear schedule. Predict first: where will the min-SNR run's loss be
# higher, and where will the two be about equal? The check looks at the direction at the first steps. A worked
# version is in `solutions/05_training.py`.

# %%
# EXPERIMENT: the same short run with and without min-SNR weighting, then L(t) of each
snr_ts = [0, 10, 50, 100, 250, 500, 750, 900]
snr_losses = {"none": None, "min_snr": None}   # replace each None: L(t) at snr_ts of the run with that weighting

# %%
dl.exercises.check("05-min-snr", {"timesteps": snr_ts, **snr_losses});

# %% [markdown]
# <details><summary>What to look for</summary>
#
# The min-SNR run's loss is higher at the first steps, where its weights are small (1.1 to 2.3 times the unweighted
# run's at `t <= 100` in our short runs of 30 and 300 steps), and level with it, or a little lower, from `t = 250` on:
# the network spends its effort where the weights are 1. A lower loss where the loss is highest is not the goal. Whether the shift pays off
# shows in the samples, not in $L(t)$: Hang et al. found that it mostly makes training converge in fewer steps. To
# see it here, sample both runs (section 5's `SampleRecorder`, or DDIM from the same $x_T$) and score them with
# notebook 07's metric, with runs long enough to draw digits.
#
# </details>

# %% [markdown]
# ## Summary
#
# - Training repeats one line: draw $x_0$, $t$ and $\varepsilon$, make $x_t$, and step down the gradient of the
#   per-pixel mean of $(\varepsilon - \varepsilon_\theta(x_t, t))^2$.
# - The loss falls fast while the network learns to pass the noise through, then slowly; its jitter comes from the
#   timesteps drawn for each batch.
# - $L(t)$ is highest at the first steps and tiny near $t = T$: the training loss is dominated by the small $t$,
#   while the digit is decided in the middle of the run.
# - The loss curve alone does not show when samples become digits; samples (and, in notebook 07, a metric) do.
# - The later notebooks use the shipped network: a wider U-Net trained about twelve times as long as your run.
# - Per CPU-minute, conditioning on the label bought the most, then the objective (x0, v or flow matching over
#   $\varepsilon$); weighting, schedule, width and EMA moved the scores less, some of them within the noise.
#
# **Next:** notebook 06 draws digits with the shipped network: DDPM's ancestral sampler, 1000 steps from pure noise,
# and what happens at every step of the chain.
