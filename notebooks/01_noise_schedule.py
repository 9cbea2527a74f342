# %% [markdown]
# # 01 · Noise schedules: linear vs cosine
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/diffusion-course/diffusion-by-code/blob/main/notebooks/01_noise_schedule.ipynb)
#
# A diffusion model destroys an image in `T = 1000` small steps, each adding a little Gaussian noise,
# then learns to undo them. How much noise each step adds is the **noise schedule**. This notebook
# computes the two classic schedules, plots every quantity derived from them, and shows why the
# images never blow up: the process is *variance-preserving*.
#
# Every number here comes from `diffusion_lib.schedules` (one function per equation); nothing is trained.

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
# - what a noise schedule is: the variances $\beta_t$ and everything derived from them ($\alpha_t$, $\bar\alpha_t$, the
#   signal-to-noise ratio), each computed by one library function;
# - how the linear and the cosine schedule differ, and where in the run each one destroys the image;
# - why the forward process is *variance-preserving*;
# - how the papers count the steps ($t = 1 \dots T$) and how the code does ($0 \dots T-1$): the map in section 1
#   holds for every later notebook.
#
# **What you need first:** Python, a little PyTorch (tensors and their shapes) and the Gaussian distribution (mean,
# variance). This is the first notebook: nothing else is assumed.
#
# **Run time:** about 12 seconds on a 2-core CPU (10 in quick mode); nothing is trained.

# %%
import torch

import diffusion_lib as dl

device = dl.default_device()   # nothing here needs it: schedules are a few thousand numbers
B = dl.budget()                # nothing here depends on it either
print(f"diffusion_lib {dl.__version__}, device {device}, {B.mode} mode")

# %% [markdown]
# ## 1. The variances $\beta_t$
#
# Step $t$ adds Gaussian noise of variance $\beta_t$ and shrinks the image so the total variance stays put:
#
# $$q(x_t \mid x_{t-1}) = \mathcal{N}\big(\sqrt{1-\beta_t}\, x_{t-1},\ \beta_t I\big)$$
#
# - **linear** (Ho et al. 2020): $\beta_t$ rises linearly from $10^{-4}$ to $0.02$ over $T = 1000$ steps;
# - **cosine** (Nichol & Dhariwal 2021): chosen through $\bar\alpha$ instead,
#   $\bar\alpha_t = f(t)/f(0)$ with $f(t) = \cos^2\!\big(\tfrac{t/T + s}{1+s}\cdot\tfrac{\pi}{2}\big)$, $s = 0.008$,
#   and $\beta_t = 1 - \bar\alpha_t/\bar\alpha_{t-1}$, clipped at $0.999$.
#
# **Two ways to count the steps.** The papers number the noising steps $t = 1 \dots T$: $x_0$ is the clean image,
# step $t$ turns $x_{t-1}$ into $x_t$, and $x_T$ is (almost) pure noise. Python arrays start at 0, so the code stores
# the quantity of step $t$ at index `t - 1`:
#
# ```
# paper:   x_0 --beta_1--> x_1 --beta_2--> x_2 --beta_3--> ...  --beta_T--> x_T        (T = 1000)
# code:    x0  --beta[0]-> t=0 --beta[1]-> t=1 --beta[2]-> ...  --beta[999]-> t=999
# ```
#
# | | the clean image | after one step | after two steps | ... | after the last step |
# | --- | --- | --- | --- | --- | --- |
# | the papers, and every equation in this course | $x_0$, $\bar\alpha_0 = 1$ | $t = 1$ | $t = 2$ | ... | $t = T = 1000$ |
# | the code: printouts, plot axes, sliders | `x0` (no index, nothing stored) | `t = 0` | `t = 1` | ... | `t = 999` |
# | linear $\bar\alpha_t$, stored as | 1 | `alpha_bar[0]` = 0.9999 | `alpha_bar[1]` = 0.9998 | ... | `alpha_bar[999]` = 0.00004 |
#
# So `alpha_bar[t]` in code is $\bar\alpha_{t+1}$ in an equation. From here on, equations use the papers' $t$,
# and a timestep written in code font, like `t = 999`, is the code's index (the paper's $t = 1000$). The one step of
# difference matters only at the ends: the clean image has no index in code, and `t = 0` is already one noising step
# away from it.

# %%
# NBVAL_CHECK_OUTPUT
linear = dl.make_schedule("linear", T=1000)
cosine = dl.make_schedule("cosine", T=1000)
schedules = [linear, cosine]
for s in schedules:
    print(f"{s.name:>6}: T = {s.T}, beta[0] = {s.beta[0]:.3g}, beta[{s.T - 1}] = {s.beta[-1]:.3g}, "
          f"beta has shape {tuple(s.beta.shape)} and dtype {s.beta.dtype}")

# %% [markdown]
# ## 2. Everything derived from $\beta_t$
#
# With $\alpha_t = 1 - \beta_t$, the noisy image after step $t$ can be drawn straight from the clean one:
#
# $$\bar\alpha_t = \prod_{s = 1}^{t} \alpha_s, \qquad x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\, \varepsilon,
# \qquad \varepsilon \sim \mathcal{N}(0, I)$$
#
# $\sqrt{\bar\alpha_t}$ is how much of the image is left, $\sqrt{1-\bar\alpha_t}$ how much noise is in.
# Their ratio, the **signal-to-noise ratio** $\mathrm{SNR}_t = \bar\alpha_t / (1-\bar\alpha_t)$, is best read on a log scale.
# `make_schedule` has already computed all of them (`Schedule.alpha_bar`, `.sqrt_alpha_bar`, ...). The dotted
# lines mark the timesteps of the table below (code indices, as on every axis).

# %%
marks = [0, 100, 250, 500, 750, 999]
dl.plotting.plot_schedules(schedules, t=marks);

# %%
# NBVAL_CHECK_OUTPUT
print(dl.plotting.schedule_table(schedules, marks))

# %% [markdown]
# Drag the slider to read off every quantity at one timestep (the legend shows the values). On GitHub the
# slider is inert: the plot and the table above show the same numbers.

# %%
# NBVAL_IGNORE_OUTPUT
dl.widgets.slider_view(dl.plotting.schedules_slider(schedules), values=range(linear.T), description="t", value=250)

# %% [markdown]
# **Question.** $\beta_t$ of the cosine schedule is *smaller* than the linear one for most of the run, yet its
# $\bar\alpha_t$ ends lower. Where does the cosine schedule destroy the image: look at the last few $\beta_t$.
# Which schedule keeps more of the image in the first half of the run, and why might that help a model
# that has to learn every step?
#
# <details><summary>Answer</summary>
#
# In its last hundred or so steps. The $\beta_t$ panel shows the cosine curve below the linear one until about
# `t = 900`, then shooting up to the clip, 0.999 at `t = 999` (first printout). The table shows what that does to
# $\bar\alpha_t$: the cosine one is still 0.1432 at `t = 750` (linear: 0.0033) and ends at 2.4e-09 (linear: 4.0e-05).
#
# In the first half the cosine schedule keeps far more of the image: $\bar\alpha_t$ = 0.4923 against 0.0778 at
# `t = 500` (table). With the linear schedule, the last few hundred timesteps all look like nearly pure noise, and
# a model trained on uniformly drawn $t$ spends that share of its training on inputs that differ very little from
# each other. The cosine schedule spreads the noise levels more evenly over the run, so more of the training
# steps fall where there is still something to learn about the image.
#
# </details>

# %% [markdown]
# ## 3. Log-SNR: where the noise takes over
#
# $$\log \mathrm{SNR}_t = \log \frac{\bar\alpha_t}{1 - \bar\alpha_t}$$
#
# Above zero the image dominates, below zero the noise does. The linear schedule crosses zero much earlier. Below
# $-5$ (an SNR under 0.007), almost nothing of the image is left:

# %%
# NBVAL_CHECK_OUTPUT
crossings = [int((s.log_snr < 0).nonzero()[0]) for s in schedules]   # first t with SNR_t < 1
for s, t_cross in zip(schedules, crossings):
    t_lost = int((s.log_snr < -5).nonzero()[0])                        # first t with log-SNR below -5
    print(f"{s.name:>6}: log-SNR from {s.log_snr[0]:+.2f} to {s.log_snr[-1]:+.2f}; "
          f"noise dominates from t = {t_cross} on ({100 * t_cross / s.T:.0f}% of the run), "
          f"log-SNR below -5 from t = {t_lost} on (the last {100 * (s.T - t_lost) / s.T:.0f}%)")

# %%
dl.plotting.plot_schedules(schedules, ["log_snr"], t=crossings);

# %% [markdown]
# **Question.** The linear log-SNR falls steeply over the first hundred steps, then more gently, and steepens again
# after about `t = 750` (the table: it falls by 2.6 between `t = 250` and `500`, by 4.4 between `750` and `999`). The
# cosine one falls almost in a straight line over the middle of the run and plunges in the last few steps. If the
# training timestep $t$ is drawn uniformly, which schedule spends more training steps on nearly pure noise?
#
# <details><summary>Answer</summary>
#
# The linear one. The printout above shows its log-SNR below $-5$ for the last 30% of the run, against the last 5%
# for the cosine schedule: with uniformly drawn $t$, almost a third of the linear schedule's training examples are
# nearly pure noise, where predicting $\varepsilon$ is easy ($x_t \approx \varepsilon$) and teaches the model little
# about digits.
#
# </details>

# %% [markdown]
# ## 4. Why the variance stays at one
#
# If $x_0$ has unit variance and $\varepsilon$ is independent of it,
#
# $$\mathrm{Var}(x_t) = \big(\sqrt{\bar\alpha_t}\big)^2 \mathrm{Var}(x_0) + \big(\sqrt{1-\bar\alpha_t}\big)^2 \cdot 1
# = \bar\alpha_t + 1 - \bar\alpha_t = 1$$
#
# at every $t$: the process is **variance-preserving**. That the two squared coefficients sum to one is an
# identity (the library computes the second as the square root of one minus the first), so there is nothing to
# check there; the picture shows how the variance is split between image and noise at each step:

# %%
dl.plotting.plot_variance_split(schedules);

# %% [markdown]
# What can fail is the claim about the *samples*: push unit-variance data through `q_sample`, the function that
# draws $x_t$ (notebook 02 looks at it closely), and measure the standard deviation of $x_t$. It stays at one while
# the image fades out. (Had `q_sample` used $\bar\alpha_t$ in place of $\sqrt{\bar\alpha_t}$, its standard deviation would
# dip to about 0.7 in the middle of the run.)

# %%
# NBVAL_CHECK_OUTPUT
g = torch.Generator().manual_seed(0)
x0 = torch.randn(256, 1, 28, 28, generator=g)          # unit-variance "images"
eps = torch.randn(x0.shape, generator=g)
for s in schedules:
    stds = [dl.q_sample(x0, torch.full((x0.shape[0],), t), s, noise=eps).std().item() for t in marks]
    print(f"{s.name:>6}: std of x_t at t = {marks}: {[round(v, 2) for v in stds]}")

# %% [markdown]
# **Question.** A *variance-exploding* process keeps the image and only adds noise: $x_t = x_0 + \sigma_t \varepsilon$.
# What is $\mathrm{Var}(x_t)$ there, and what would a network's input look like at $\sigma_t = 80$?
# (MNIST pixels are scaled to $[-1, 1]$, so their variance is below one: what happens to $\mathrm{Var}(x_t)$ for them here?)
#
# <details><summary>Answer</summary>
#
# $\mathrm{Var}(x_t) = \mathrm{Var}(x_0) + \sigma_t^2$: it grows without bound. At $\sigma_t = 80$ the input has a
# standard deviation of about 80, and the digit, with pixels between $-1$ and $1$, is a faint ripple on it; over the
# run the network's inputs change scale by a factor of 80, which is why variance-exploding models rescale $x_t$
# before the network sees it. In the variance-preserving process, $\mathrm{Var}(x_t) = \bar\alpha_t\,
# \mathrm{Var}(x_0) + 1 - \bar\alpha_t$ moves from MNIST's variance (about 0.35, a standard deviation near 0.6) at
# small $t$ up to 1 at $t = T$: it never explodes, and it is exactly 1 only for data of unit variance. Notebook 02
# (section 3) measures it on real digits.
#
# </details>

# %% [markdown]
# ## Exercise: $\bar\alpha_t$ from $\beta_t$
#
# Write the function that turns a schedule's variances $\beta_t$ (a tensor of shape `(T,)`, `beta[0]` is $\beta_1$)
# into $\bar\alpha_t = \prod_{s = 1}^{t} (1 - \beta_s)$, also of shape `(T,)`. Replace the `raise` line, run the cell
# and the check below it. (Hint: `torch.cumprod`.) A worked solution is in `solutions/01_noise_schedule.py`.

# %%
# EXERCISE
def alpha_bar_from_beta(beta: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t = prod_{s <= t} (1 - beta_s), shape (T,)."""
    raise NotImplementedError

# %%
dl.exercises.check("01", alpha_bar_from_beta);

# %% [markdown]
# ## Experiment: zero terminal SNR
#
# The table shows that the linear schedule's $\bar\alpha_T$ is 4.0e-05, not 0: a trace of the digit survives all
# 1000 steps (notebook 02, section 5, makes it visible). Yet sampling starts from pure noise. Lin et al. (2024,
# "Common diffusion noise schedules and sample steps are flawed") remove the trace: shift $\sqrt{\bar\alpha_t}$ so
# that it ends at 0, and rescale it so that it still starts where it did,
#
# $$\sqrt{\bar\alpha_t}\;\leftarrow\;\big(\sqrt{\bar\alpha_t} - \sqrt{\bar\alpha_T}\big)\,
# \frac{\sqrt{\bar\alpha_1}}{\sqrt{\bar\alpha_1} - \sqrt{\bar\alpha_T}} .$$
#
# Before you compute it, predict: where in the run does this change the log-SNR noticeably, at the start, in the
# middle or only near the end? Then compute the new $\bar\alpha_t$ from `linear.sqrt_alpha_bar` (index 0 is $t = 1$,
# index -1 is $t = T$), compare its log-SNR with the old one (e.g. plot both, or print them at the table's
# timesteps), and run the check: it looks at what the fix is for ($\bar\alpha_T = 0$, $\bar\alpha_1$ unchanged,
# nothing above the old values) and prints where the log-SNR moved. A worked version is in
# `solutions/01_noise_schedule.py`.

# %%
# EXPERIMENT: Lin et al.'s fix of the linear schedule
fixed_alpha_bar = None    # replace None: the new alpha_bar, a tensor of shape (1000,), computed from linear.sqrt_alpha_bar

# %%
dl.exercises.check("01-zero-snr", fixed_alpha_bar);

# %% [markdown]
# <details><summary>What to look for</summary>
#
# The fix lowers every $\sqrt{\bar\alpha_t}$ by $\sqrt{\bar\alpha_T} = 0.0064$ (and stretches the result by 0.6% to
# keep the first value): nothing next to $\sqrt{\bar\alpha_t} \approx 1$ early in the run, everything near the end,
# where $\sqrt{\bar\alpha_t}$ itself is that small. So the log-SNR barely moves for the first two thirds of the run
# and then drops ever faster, to minus infinity at $t = T$. One consequence: the last step now has $\beta_T = 1$, and the sampler's first step, which
# divides by $\sqrt{\bar\alpha_T}$ to predict $x_0$ from $\varepsilon$, breaks. This is why Lin et al. also train the
# network to predict another target ($v$) instead of the noise.
#
# </details>

# %% [markdown]
# ## Summary
#
# - A schedule is the list of variances $\beta_1 \dots \beta_T$; everything else follows from it:
#   $\alpha_t = 1 - \beta_t$, $\bar\alpha_t = \prod_{s \le t} \alpha_s$, the signal $\sqrt{\bar\alpha_t}$, the noise
#   $\sqrt{1-\bar\alpha_t}$ and $\mathrm{SNR}_t = \bar\alpha_t / (1 - \bar\alpha_t)$.
# - The linear schedule turns the image into noise early (log-SNR below 0 from `t = 259`); the cosine schedule keeps
#   it until the middle of the run (`t = 496`) and destroys the rest in its last steps.
# - The process is variance-preserving: the signal's share of the variance and the noise's always sum to one.
# - Equations count $t = 1 \dots T$ from the clean image $x_0$; the code's index is one less.
#
# **Next:** notebook 02 applies these schedules to MNIST digits: $q(x_t \mid x_0)$ in one draw and step by step, the
# pixels turning into a standard Gaussian, and what is left of a digit at the last step.
