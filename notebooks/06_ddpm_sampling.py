# %% [markdown]
# # 06 · DDPM sampling: from noise to a digit, one step at a time
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/diffusion-course/diffusion-by-code/blob/main/notebooks/06_ddpm_sampling.ipynb)
#
# Notebook 05 trained a network $\varepsilon_\theta(x_t, t)$ to guess the noise in $x_t$. Here it draws digits:
# start from pure noise $x_T \sim \mathcal{N}(0, I)$ and apply the reverse step 1000 times, exactly as in
# Ho et al. (2020), Algorithm 2. We use the network the course ships (`dl.pretrained.load_pretrained("unet")`:
# the base-16 U-Net with channel multipliers (1, 2, 8), 684,161 parameters, trained by the project for 35,000 steps;
# its model card is `diffusion_lib/weights/unet.md`), not the smaller one you may have trained in notebook 05, so
# nothing has to be trained first.

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
# - the reverse step of DDPM, a mean plus fresh noise, and how it relates to the posterior $q(x_{t-1} \mid x_t, x_0)$;
# - to run the full 1000-step chain and watch it: the state $x_t$ and the network's guess $\hat x_0$ at every step;
# - when along the chain the digit is decided, measured with a classifier;
# - the two classic choices of the noise $\sigma_t$, why the last step adds none, and what the chain costs.
#
# **What you need first:** notebooks 01-05 (the schedule, $q(x_t \mid x_0)$, and the network trained to predict
# $\varepsilon$).
#
# **Run time:** about a minute on a 2-core CPU to itself (the run committed here took 297 s: other jobs shared the
# CPU; 23 seconds in quick mode). Most of it is the full chain: 1000
# network calls on `B.ddpm_images` images (section 2); section 4 runs two more chains on a quarter of them. A GPU
# (Colab: Runtime > Change runtime type) makes it much faster.

# %%
import inspect
import time

import torch

import diffusion_lib as dl

notebook_start = time.perf_counter()
device = dl.default_device()
B = dl.budget()
model = dl.pretrained.load_pretrained("unet", device=device)     # the shipped unconditional U-Net, EMA weights
schedule = dl.pretrained.pretrained_schedule("unet")             # the schedule it was trained with
classifier = dl.metrics.load_classifier(device=device)          # the course's MNIST classifier (notebook 07 explains it)
T = schedule.T
print(f"device {device}, {B.mode} mode: {B.ddpm_images} images through the full chain")
print(f"network: {type(model).__name__} {model.arch['kwargs']}, {dl.count_parameters(model):,} parameters; "
      f"schedule: {schedule.name}, T = {T}")

# %% [markdown]
# ## 1. The reverse step
#
# Given $x_t$ and the network's noise estimate $\varepsilon_\theta(x_t, t)$, one step of ancestral sampling draws
# (Ho et al. 2020, Eq. 11 and Algorithm 2)
#
# $$x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\varepsilon_\theta(x_t, t)\Big) + \sigma_t z,
# \qquad z \sim \mathcal{N}(0, I),$$
#
# a mean (remove the predicted noise, undo one step's shrinking by $\sqrt{\alpha_t}$) plus fresh noise of standard
# deviation $\sigma_t$. `dl.samplers.ddpm_step` computes this step, written in another form that the next section
# explains. (The exercise at the end asks you to write it; the library's version is printed after the exercise's
# check.)
#
# The sampler walks every step from $t = T$ down to $t = 1$ and yields each state, so a slider can scrub the chain
# afterwards. In code these are the indices `999` down to `0`; the last step, at index `0` (the papers' $t = 1$),
# returns the clean image $x_0$ with **no** noise added (section 5). The printout's `t_prev = -1` is the code's way
# of saying "the clean image":

# %%
# NBVAL_CHECK_OUTPUT
print(inspect.getsource(dl.samplers.ddpm_sample_progressive))
pairs = dl.timestep_pairs(dl.samplers.ddpm_timesteps(T))
print(f"{len(pairs)} steps (t, t_prev): {pairs[:3]} ... {pairs[-3:]}  (t_prev = -1: the clean image)")

# %% [markdown]
# **Question.** The sampler also yields `x0_pred`, the clean image the network currently believes in:
# $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon_\theta) / \sqrt{\bar\alpha_t}$ (notebook 02's closed form, solved for
# $x_0$). Why can the mean of the step be written as a weighted sum of $x_t$ and $\hat x_0$?
# (Hint: if $x_0$ were known, the forward process would give the distribution of the step before $x_t$ exactly,
# the posterior $q(x_{t-1} \mid x_t, x_0)$ of Ho et al., Eq. 7, with mean
# $\tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\, x_0 + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\, x_t$
# and variance $\tilde\beta_t$; the library has it as `dl.forward.q_posterior_mean_variance`.)
#
# <details><summary>Answer</summary>
#
# Because DDPM's step *is* that posterior with the guess put in for the unknown $x_0$: substitute
# $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon_\theta)/\sqrt{\bar\alpha_t}$ for $x_0$ in $\tilde\mu_t$, collect the
# terms in $x_t$ and in $\varepsilon_\theta$ (using $\bar\alpha_t = \alpha_t \bar\alpha_{t-1}$ and
# $\beta_t = 1 - \alpha_t$), and you get exactly $\frac{1}{\sqrt{\alpha_t}}\big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,
# \varepsilon_\theta\big)$. So each step guesses the clean image, then takes one posterior step towards it: mostly
# $x_t$ early in the chain, more and more $\hat x_0$ near the end.
#
# </details>

# %% [markdown]
# ## 2. A full chain: 1000 network calls
#
# One starting noise per image, one seeded generator for the 999 fresh noises $z$, and `dl.record` keeps every
# step's $x_t$ and $\hat x_0$ (on the CPU) for the pictures below.

# %%
# NBVAL_IGNORE_OUTPUT
x_T = dl.sample_noise(B.ddpm_images, generator=torch.Generator().manual_seed(0), device=device)  # (N, 1, 28, 28)
z_stream = torch.Generator().manual_seed(1)        # the z of every step
chain, seconds = dl.sweeps.timed(dl.record, dl.ddpm_sample_progressive(model, x_T, schedule, generator=z_stream,
                                                                        progress=True))
ddpm_seconds_per_image = seconds / B.ddpm_images
print(f"{T} steps for {B.ddpm_images} images in {seconds:.1f} s: {ddpm_seconds_per_image:.2f} s per image, "
      f"{1000 * seconds / T:.0f} ms per network call on a batch of {B.ddpm_images}")
print("measured on:", dl.inspection.machine_description(device))

# %%
# NBVAL_CHECK_OUTPUT
print(f"recorded {len(chain.timesteps)} steps, t = {chain.timesteps[:3]} ... {chain.timesteps[-3:]}; "
      f"one image is {tuple(chain.sample.shape[1:])}")

# %%
dl.plotting.show_grid(chain.sample, nrow=8, title=f"DDPM, {T} steps: {B.ddpm_images} samples");

# %% [markdown]
# ## 3. Watching the chain: $x_t$ and the predicted $\hat x_0$
#
# Drag the slider through the chain: it counts the steps taken, from 0 (pure noise, `t = 999`) to 999 (the last step,
# `t = 0`). Left, the state $x_t$; right, the network's guess $\hat x_0$ of where it is going. On GitHub the slider is inert: the strip below
# it shows the same thing at eight timesteps.

# %%
# NBVAL_IGNORE_OUTPUT
dl.widgets.slider_view(dl.plotting.chain_slider(chain), values=range(len(chain.timesteps)), description="step",
                       value=600)

# %%
strip_ts = [999, 900, 800, 700, 600, 400, 200, 0]
strip_k = [chain.timesteps.index(t) for t in strip_ts]
dl.plotting.show_rows({f"{name} {i + 1}": chain_field[strip_k, i]
                       for i in range(2) for name, chain_field in (("x_t", chain.x_t), ("x0_pred", chain.x0_pred))},
                      col_labels=[f"t = {t}" for t in strip_ts],
                      title="two images of the chain: the state and the predicted clean image");

# %% [markdown]
# When is the digit decided? The classifier of the course's metric reads $\hat x_0$ at every step; below is the share
# of images whose $\hat x_0$ is already classified as the digit the chain ends with, and how much one step changes the
# state (mean absolute change of a pixel).

# %%
agreement_ts, agreement = dl.sweeps.agreement_with_final(chain, classifier, every=5)        # every 5th step
step_size = (chain.x_t[1:] - chain.x_t[:-1]).abs().mean(dim=(1, 2, 3, 4))                  # (999,) |x_{t-1} - x_t|
dl.plotting.plot_over_t(agreement_ts, {"x0_pred classified as the final digit": agreement},
                        "when the digit is decided", "share of images");
dl.plotting.plot_over_t(chain.timesteps[:-1], {"mean |x_(t-1) - x_t| per pixel": step_size},
                        "how much one step changes the state", "mean absolute change (log scale)", logy=True);

# %%
# NBVAL_IGNORE_OUTPUT
undecided = [t for t, share in zip(agreement_ts, agreement.tolist()) if share < 1.0]     # t falls along the chain
print(f"below t = {min(undecided) if undecided else T}, every image's x0_pred shows the digit it ends as")
print("share of images already showing their final digit:",
      ", ".join(f"t = {agreement_ts[k]}: {agreement[k]:.2f}" for k in range(0, len(agreement_ts), len(agreement_ts) // 8)))

# %% [markdown]
# **Question.** The steps near `t = 999` change the state the most, yet $\hat x_0$ there is a grey blur.
# Explain both with $\sqrt{\bar\alpha_t}$: how much of $x_t$ is signal at `t = 900` (notebook 01)?
#
# <details><summary>Answer</summary>
#
# At `t = 900`, $\sqrt{\bar\alpha_t}$ is about 0.016 (notebook 01's slider; its table gives 0.057 at `t = 750` and
# 0.0064 at `t = 999`): $x_t$ is almost all noise. The steps there change the state the most because $\beta_t$ is
# largest there (0.02 at the end of the linear schedule): each step adds fresh noise of standard deviation about
# $\sqrt{\beta_t} = 0.14$ (the printout of section 4) and rescales by $1/\sqrt{\alpha_t}$, so most of the change is new
# noise, not progress. And with 1.6% of signal, many different digits could have produced this $x_t$: the guess
# that minimises the network's squared error is their average, a grey blur, which sharpens as the signal grows.
#
# </details>

# %% [markdown]
# ## 4. Two choices of $\sigma_t$
#
# Ho et al. tried two variances for the fresh noise and found similar samples:
# $\sigma_t^2 = \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t$, the variance of the true posterior
# $q(x_{t-1} \mid x_t, x_0)$ (the library's default, `variance="beta_tilde"`), and $\sigma_t^2 = \beta_t$
# (`variance="beta"`). They are the two extremes (Ho et al. 2020, Sec. 3.2): $\tilde\beta_t$ is the best choice if
# every image were one and the same fixed $x_0$, $\beta_t$ if the images were pure noise, $x_0 \sim \mathcal{N}(0, I)$.
# For data of unit variance per pixel they bound how much randomness, the *entropy*, the reverse step can need:
# $\tilde\beta_t$ from below, $\beta_t$ from above (hence the legend's title). They differ only for the last few
# dozen steps:

# %%
dl.plotting.plot_ddpm_sigmas(schedule);

# %%
# NBVAL_CHECK_OUTPUT
for t in (999, 500, 100, 10, 1, 0):
    print(f"t = {t:>3}: sqrt(beta_t) = {schedule.beta[t].sqrt():.5f}, sqrt(beta_tilde_t) = {schedule.beta_tilde[t].sqrt():.5f}")

# %% [markdown]
# Same starting noise, same stream of $z$, only $\sigma_t$ changed. Each run is another full chain, so this comparison
# uses a quarter of the images above:

# %%
# NBVAL_IGNORE_OUTPUT
n_var = B.ddpm_images // 4
variance_samples, variance_seconds = {}, {}
for variance in ("beta_tilde", "beta"):
    variance_samples[variance], variance_seconds[variance] = dl.sweeps.timed(
        dl.sweeps.ddpm_images, model, x_T[:n_var], schedule, variance=variance, seed=2, progress=True)
difference = variance_samples["beta_tilde"] - variance_samples["beta"]                    # (n_var, 1, 28, 28)
print(f"{n_var} images: mean |difference| per pixel {difference.abs().mean():.4f}, largest {difference.abs().max():.3f} "
      f"(pixels span 2, one grey level is {2 / 255:.4f})")
for variance, x in variance_samples.items():
    print(f"{variance:>10}: {(x < -1).float().mean():.1%} of the pixels below -1, {(x > 1).float().mean():.1%} above 1; "
          f"range [{x.min():.2f}, {x.max():.2f}] (clamped to [-1, 1] for display and for the classifier)")

# %%
dl.plotting.show_rows({**variance_samples, "|difference| x 10": (10 * difference.abs()).clamp(0, 2) - 1},
                      title="the same noise through both variances");

# %% [markdown]
# **Question.** With $\sigma_t^2 = \beta_t$ every step adds a little more noise than the posterior allows. Why does so
# little of it show in the final image? (Look at the ratio plot above: where do the two differ, and how large is
# $\sqrt{\beta_t}$ there compared with one grey level, $2/255$?)
#
# <details><summary>Answer</summary>
#
# The two choices differ only in the last few dozen steps: the ratio plot stays near 1 above `t = 100`, and at
# `t = 500` the two printed values agree to three digits. Where they do differ, both are tiny: $\sqrt{\beta_t}$ is
# 0.017 at `t = 10` and 0.011 at `t = 1`, one to two grey levels of 0.0078, and the later steps remove part of what
# was added. The measurement above agrees: the two samples differ by 0.0028 per pixel on average, a third of a grey
# level. What extra noise survives lands mostly in the background, pushing more pixels below $-1$ (the printout:
# 59.5% against 46.8%), where the display clamps them to black.
#
# </details>

# %% [markdown]
# ## 5. The last step adds no noise
#
# At the last step, $t = 1$, $\bar\alpha_{t-1} = \bar\alpha_0 = 1$ (the clean image), so $\tilde\beta_1 = 0$: the posterior
# has no variance left and the step returns its mean. And since $\alpha_1 = \bar\alpha_1$ and $\beta_1 = 1 - \bar\alpha_1$,
# that mean is exactly the predicted clean image $\hat x_0$. `ddpm_sample_progressive` passes no noise at this step
# whichever variance is chosen (with $\sigma_1 = \sqrt{\beta_1} = 0.01$ it would sprinkle invisible noise over the
# finished digit). In code this step has the index `0`, hence the names below:

# %%
# NBVAL_CHECK_OUTPUT
print(f"beta_tilde_0 = {schedule.beta_tilde[0].item()}, beta_0 = {schedule.beta[0].item():.4g}")
print("the last step returns x0_pred:", torch.allclose(chain.sample, chain.x0_pred[-1], atol=1e-4))

# %%
# NBVAL_IGNORE_OUTPUT
print(f"the last step changes a pixel by {(chain.sample - chain.x_t[-1]).abs().mean():.4f} on average; "
      f"the first step by {(chain.x_t[1] - chain.x_t[0]).abs().mean():.4f}")

# %% [markdown]
# **Note.** The library does not clip $\hat x_0$ to $[-1, 1]$ during sampling (Ho et al.'s code does); samples can
# overshoot a little (the numbers in section 4), and only the display and the classifier clamp them.
#
# ## 6. What it costs
#
# Every image above cost 1000 network calls. On this machine:

# %%
# NBVAL_IGNORE_OUTPUT
print(f"DDPM, {T} steps: {ddpm_seconds_per_image:.2f} s per image in a batch of {B.ddpm_images} (section 2), "
      f"{variance_seconds['beta'] / n_var:.2f} s per image in a batch of {n_var} (section 4)")
print(f"at that rate, 64 images take {64 * ddpm_seconds_per_image / 60:.1f} min; notebook 07 does it in 50 steps instead of 1000")
print(f"this whole notebook ran in {time.perf_counter() - notebook_start:.0f} s ({B.mode} mode) on "
      f"{dl.inspection.machine_description(device)}")

# %% [markdown]
# ## Exercise: write the reverse step yourself
#
# Given the state `x_t` (B, 1, 28, 28), the predicted noise `eps` (same shape), a timestep `t` (a plain `int`, the
# code's index `0 ... 999`), the schedule's `beta` (shape `(T,)`) and fresh noise `noise` (same shape as `x_t`), return
# $x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\varepsilon\big) + \sqrt{\tilde\beta_t}\, z$
# with $\tilde\beta_t = \beta_t (1-\bar\alpha_{t-1}) / (1-\bar\alpha_t)$, and **no** noise at the last step.
# Everything comes from `beta`: at index `t`, $\alpha_t$ is `1 - beta[t]` and $\bar\alpha_t$ is
# `torch.cumprod(1 - beta, 0)[t]`; $\bar\alpha_{t-1}$ is the entry before it, except at index `t = 0` (the papers'
# $t = 1$, the last step), where it is $\bar\alpha_0 = 1$, the clean image. A worked solution is in
# `solutions/06_ddpm_sampling.py`.

# %%
# EXERCISE
def reverse_step(x_t: torch.Tensor, eps: torch.Tensor, t: int, beta: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_{t-1} from x_t: the mean plus sqrt(beta_tilde_t) * noise, and no noise at t = 0."""
    raise NotImplementedError

# %%
dl.exercises.check("06", reverse_step);

# %% [markdown]
# The library's step, for comparison with yours. It is written the way the first question of this notebook reads
# it, as the posterior's mean at the predicted clean image plus noise; the algebra of that question's answer makes
# it Ho et al.'s Eq. 11, the formula of your exercise:

# %%
# NBVAL_CHECK_OUTPUT
print(inspect.getsource(dl.samplers.ddpm_step))

# %% [markdown]
# ## Summary
#
# - One DDPM step guesses the clean image $\hat x_0$ from the predicted noise, takes the posterior's mean towards it
#   and adds fresh noise of standard deviation $\sigma_t$; the last step adds none and returns $\hat x_0$.
# - Along the chain, $\hat x_0$ goes from a grey blur to a digit; the digit is settled in the middle of the run, while
#   the first steps, which change the state the most, mostly add noise.
# - $\sigma_t^2 = \tilde\beta_t$ or $\beta_t$ makes almost no difference: they differ only in the last steps, by a
#   grey level or two.
# - Every image costs 1000 network calls.
#
# **Next:** notebook 07 samples the same network in 10 to 50 steps with DDIM, turns the fresh noise into a knob
# ($\eta$), scores the samples with a metric, and runs the sampler backwards to turn a digit into its noise.
