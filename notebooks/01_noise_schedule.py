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
        print("What to do: the cells below need diffusion_lib. If the course is not on GitHub at that address "
              "(yet), set url above to where it is (git+https://github.com/OWNER/NAME.git@main) and run this "
              "cell again, or upload the course's folder to Colab and run: !pip install --no-deps ./FOLDER")

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
#   $\bar\alpha(t) = f(t)/f(0)$ with $f(t) = \cos^2\!\big(\tfrac{t/T + s}{1+s}\cdot\tfrac{\pi}{2}\big)$, $s = 0.008$,
#   and $\beta_t = 1 - \bar\alpha(t+1)/\bar\alpha(t)$, clipped at $0.999$.
#
# In code, timesteps are $t = 0 \dots T-1$; $t = 0$ is the first noising step (the paper's $t = 1$).

# %%
# NBVAL_CHECK_OUTPUT
linear = dl.make_schedule("linear", T=1000)
cosine = dl.make_schedule("cosine", T=1000)
schedules = [linear, cosine]
for s in schedules:
    print(f"{s.name:>6}: T = {s.T}, beta_0 = {s.beta[0]:.3g}, beta_{s.T - 1} = {s.beta[-1]:.3g}, "
          f"beta has shape {tuple(s.beta.shape)} and dtype {s.beta.dtype}")

# %% [markdown]
# ## 2. Everything derived from $\beta_t$
#
# With $\alpha_t = 1 - \beta_t$, the noisy image at step $t$ can be drawn straight from the clean one:
#
# $$\bar\alpha_t = \prod_{s \le t} \alpha_s, \qquad x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\, \varepsilon,
# \qquad \varepsilon \sim \mathcal{N}(0, I)$$
#
# $\sqrt{\bar\alpha_t}$ is how much of the image is left, $\sqrt{1-\bar\alpha_t}$ how much noise is in.
# Their ratio, the **signal-to-noise ratio** $\mathrm{SNR}_t = \bar\alpha_t / (1-\bar\alpha_t)$, is best read on a log scale.
# `make_schedule` has already computed all of them (`Schedule.alpha_bar`, `.sqrt_alpha_bar`, ...). The dotted
# lines mark the timesteps of the table below.

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

# %% [markdown]
# ## 3. Log-SNR: where the noise takes over
#
# $$\log \mathrm{SNR}_t = \log \frac{\bar\alpha_t}{1 - \bar\alpha_t}$$
#
# Above zero the image dominates, below zero the noise does. The linear schedule crosses zero much earlier:

# %%
# NBVAL_CHECK_OUTPUT
crossings = [int((s.log_snr < 0).nonzero()[0]) for s in schedules]   # first t with SNR_t < 1
for s, t_cross in zip(schedules, crossings):
    print(f"{s.name:>6}: log-SNR from {s.log_snr[0]:+.2f} to {s.log_snr[-1]:+.2f}; "
          f"noise dominates from t = {t_cross} on ({100 * t_cross / s.T:.0f}% of the run)")

# %%
dl.plotting.plot_schedules(schedules, ["log_snr"], t=crossings);

# %% [markdown]
# **Question.** The linear log-SNR falls steeply at first and then slowly; the cosine one falls almost in a
# straight line over the middle of the run. If the training timestep $t$ is drawn uniformly, which schedule
# spends more training steps on nearly pure noise?

# %% [markdown]
# ## 4. Why the variance stays at one
#
# If $x_0$ has unit variance and $\varepsilon$ is independent of it,
#
# $$\mathrm{Var}(x_t) = \big(\sqrt{\bar\alpha_t}\big)^2 \mathrm{Var}(x_0) + \big(\sqrt{1-\bar\alpha_t}\big)^2 \cdot 1
# = \bar\alpha_t + 1 - \bar\alpha_t = 1$$
#
# at every $t$: the process is **variance-preserving**. The two squared coefficients always sum to one:

# %%
# NBVAL_CHECK_OUTPUT
for s in schedules:
    total = s.sqrt_alpha_bar ** 2 + s.sqrt_one_minus_alpha_bar ** 2      # (T,)
    print(f"{s.name:>6}: sqrt(alpha_bar)^2 + sqrt(1 - alpha_bar)^2 = 1 at every t: "
          f"{torch.allclose(total, torch.ones_like(total), atol=1e-6)}")

# %%
dl.plotting.plot_variance_split(schedules);

# %% [markdown]
# The same thing measured: push unit-variance data through `q_sample` (notebook 02 looks at it closely) and the
# standard deviation of $x_t$ stays at one while the image fades out.

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

# %% [markdown]
# ## Exercise: $\bar\alpha_t$ from $\beta_t$
#
# Write the function that turns a schedule's variances $\beta_t$ (a tensor of shape `(T,)`) into
# $\bar\alpha_t = \prod_{s \le t} (1 - \beta_s)$, also of shape `(T,)`. Replace the `raise` line, run the cell
# and the check below it. (Hint: `torch.cumprod`.) A worked solution is in `solutions/01_noise_schedule.py`.

# %%
# EXERCISE
def alpha_bar_from_beta(beta: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t = prod_{s <= t} (1 - beta_s), shape (T,)."""
    raise NotImplementedError

# %%
dl.exercises.check("01", alpha_bar_from_beta);
