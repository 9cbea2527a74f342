# %% [markdown]
# # 02 · Forward noising: from a digit to pure noise
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/diffusion-course/diffusion-by-code/blob/main/notebooks/02_forward_noising.ipynb)
#
# The forward process $q$ takes a clean image $x_0$ and buries it in Gaussian noise, one small step at a
# time, until nothing is left but $\mathcal{N}(0, I)$. A diffusion model is trained to run this film
# backwards, so it is worth watching it forwards first. Everything here is `diffusion_lib.forward`
# (`q_sample`, `q_step`) applied to MNIST digits with the two schedules of notebook 01.

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
# - to draw $x_t$ from a clean digit $x_0$ in one step, $q(x_t \mid x_0)$, with `dl.q_sample`, for a batch whose
#   images each have their own $t$;
# - how the pixels of MNIST turn into a standard Gaussian, and how to predict their spread at any $t$;
# - that $t$ small steps $q(x_t \mid x_{t-1})$ give the same distribution as the one-step formula (measured);
# - what is left of a digit after the last step, and why that matters for sampling.
#
# **What you need first:** notebook 01 (the schedules, $\bar\alpha_t$, and the map from the papers' $t$ to the
# code's index).
#
# **Run time:** about 17 seconds on a 2-core CPU (16 in quick mode); nothing is trained.

# %%
import torch

import diffusion_lib as dl

device = dl.default_device()   # the tensors here are small: everything stays on the CPU
B = dl.budget()                # nothing here depends on it
images, labels = dl.load_mnist(train=False)   # (10000, 1, 28, 28) in [-1, 1]: ToTensor, then Normalize(0.5, 0.5)
linear, cosine = dl.make_schedule("linear"), dl.make_schedule("cosine")
schedules = [linear, cosine]
T = linear.T
print(f"device {device}, {B.mode} mode; MNIST test images {tuple(images.shape)}, pixels in "
      f"[{images.min():.0f}, {images.max():.0f}]; T = {T}")

# %% [markdown]
# ## 1. One digit, noised in closed form
#
# Because every step adds independent Gaussian noise, $x_t$ can be drawn from $x_0$ in one go
# (Ho et al. 2020, Eq. 4):
#
# $$q(x_t \mid x_0) = \mathcal{N}\big(\sqrt{\bar\alpha_t}\, x_0,\ (1-\bar\alpha_t) I\big)
# \quad\Longleftrightarrow\quad x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\, \varepsilon,\ \ \varepsilon \sim \mathcal{N}(0, I)$$
#
# `dl.q_sample(x0, t, schedule, noise)` is this line. Below, one digit at several $t$, with the **same**
# $\varepsilon$ at every $t$: the noise pattern does not change, only its weight against the digit's.

# %%
# NBVAL_CHECK_OUTPUT
g = torch.Generator().manual_seed(0)
digit = images[:1]                                       # (1, 1, 28, 28): a 7
eps = torch.randn(digit.shape, generator=g)              # (1, 1, 28, 28)
ts = [0, 50, 100, 250, 500, 750, 999]
t = torch.tensor(ts)                                     # (7,) one timestep per column
noised = {s.name: dl.q_sample(digit.expand(len(ts), -1, -1, -1), t, s, noise=eps.expand(len(ts), -1, -1, -1))
          for s in schedules}                            # name -> (7, 1, 28, 28)
print({name: tuple(x.shape) for name, x in noised.items()})

# %%
dl.plotting.show_rows(noised, col_labels=[f"t = {t}" for t in ts], title="x_t = q_sample(x_0, t), same noise in every column");

# %% [markdown]
# **Question.** At which $t$ can you no longer tell that the digit is a 7, for each schedule? Compare with the
# $t$ where $\log\mathrm{SNR}_t$ crosses zero in notebook 01 (`t = 259` for linear, `t = 496` for cosine).
#
# <details><summary>Answer</summary>
#
# With the linear schedule the 7 is faint but readable at `t = 250` and gone at `t = 500`; with the cosine
# schedule it is clear at `t = 250`, faint at `t = 500` and gone at `t = 750`. So the digit disappears a little after
# the log-SNR crosses zero, at 259 and 496: at SNR = 1 the noise has as much variance as the image, yet the eye,
# which sees the whole stroke at once, still picks out the 7 for a while.
#
# </details>

# %% [markdown]
# ## 2. A batch at one timestep
#
# `q_sample` takes one timestep per image, `t` of shape `(B,)`, so a batch can mix timesteps (training does
# exactly that). Here all eight digits share `t = 250`:

# %%
# NBVAL_CHECK_OUTPUT
t_show = 250
batch = images[:8]                                       # (8, 1, 28, 28)
eps8 = torch.randn(batch.shape, generator=g)             # (8, 1, 28, 28)
t8 = torch.full((batch.shape[0],), t_show)               # (8,) long
rows = {"x_0": batch, **{f"{s.name} x_{t_show}": dl.q_sample(batch, t8, s, noise=eps8) for s in schedules}}
print(f"t has shape {tuple(t8.shape)} and dtype {t8.dtype}; x_t has shape {tuple(rows['linear x_250'].shape)}")

# %%
dl.plotting.show_rows(rows, title=f"eight digits at t = {t_show}");

# %% [markdown]
# Now with a slider over $t$: eight digits and the histogram of the pixels of 256 digits, for both schedules.
# On GitHub the slider is inert; the strips above and the histograms below show the same thing.

# %%
# NBVAL_IGNORE_OUTPUT
many = images[:256]                                      # (256, 1, 28, 28)
eps_many = torch.randn(many.shape, generator=g)
dl.widgets.slider_view(dl.plotting.forward_state_slider(many, schedules, eps_many), values=range(T), description="t",
                       value=t_show)

# %% [markdown]
# ## 3. The pixels become a standard Gaussian
#
# MNIST pixels pile up at $-1$ (background) and $+1$ (ink). As $t$ grows, the $\sqrt{\bar\alpha_t}\, x_0$ part
# shrinks to zero and the $\sqrt{1-\bar\alpha_t}\,\varepsilon$ part grows to $\varepsilon$, so the histogram of $x_t$
# turns into the $\mathcal{N}(0, 1)$ density: exactly where the reverse process will start.

# %%
# NBVAL_CHECK_OUTPUT
hist_ts = [0, 100, 250, 500, 999]
for s in schedules:
    stats = []
    for t in hist_ts:
        x_t = dl.q_sample(many, torch.full((many.shape[0],), t), s, noise=eps_many)   # (256, 1, 28, 28)
        stats.append(f"t={t}: {x_t.mean():+.2f} / {x_t.std():.2f}")
    print(f"{s.name:>6} mean / std of x_t   " + "   ".join(stats))
print(f"the clean digits x_0 themselves: mean {many.mean():+.2f}, std {many.std():.2f}")

# %%
dl.plotting.plot_pixel_histograms(
    [dl.q_sample(many, torch.full((many.shape[0],), t), s, noise=eps_many) for s in schedules for t in hist_ts],
    [f"{s.name}, t = {t}" for s in schedules for t in hist_ts], title="pixels of x_t, one row per schedule");

# %% [markdown]
# **Question.** The clean digits have the mean and standard deviation of the last printed line, not $0$ and $1$.
# Using $\mathrm{Var}(x_t) = \bar\alpha_t \mathrm{Var}(x_0) + 1 - \bar\alpha_t$, predict the standard deviation of
# $x_t$ at `t = 250` for the linear schedule (`alpha_bar[250]` = 0.5214 in notebook 01's table) and check it against
# the printout. What should its mean be?
#
# <details><summary>Answer</summary>
#
# $\sqrt{0.5214 \cdot 0.59^2 + 1 - 0.5214} = \sqrt{0.181 + 0.479} = 0.81$, the printout's 0.81. The mean is
# scaled by $\sqrt{\bar\alpha_t}$ alone (the noise has mean 0): $0.722 \cdot (-0.76) = -0.55$, as printed.
#
# </details>

# %% [markdown]
# ## 4. Closed form vs one step at a time
#
# The process is *defined* step by step, $x_t = \sqrt{\alpha_t}\, x_{t-1} + \sqrt{\beta_t}\, \varepsilon_t$
# (`dl.q_step`), with fresh noise at every step. The closed form claims that $t$ such steps from the clean
# image $x_0$ give the same distribution as one draw from $q(x_t \mid x_0)$. In code, `q_step` at index `t` takes the
# state after `t` steps to the state after `t + 1`, so the steps at indices `0, 1, ..., t` compare with
# `q_sample(x0, t)`. Run all 1000 steps on 128 digits and compare, at a few timesteps, the images and two measured
# numbers: the signal coefficient
# $\langle x_t, x_0\rangle / \langle x_0, x_0\rangle$ (should be $\sqrt{\bar\alpha_t}$) and the standard deviation of
# the noise $x_t - \sqrt{\bar\alpha_t}\, x_0$ (should be $\sqrt{1-\bar\alpha_t}$).

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)                                     # q_step draws its noise with torch.randn_like
compare_ts = [50, 250, 500, 999]
x0s = images[:128]                                       # (128, 1, 28, 28)
x = x0s
iterated = {}
for t in range(T):
    x = dl.q_step(x, torch.full((x0s.shape[0],), t), linear)     # one more step: index t starts from x0 when t = 0
    if t in compare_ts:
        iterated[t] = x
closed = {t: dl.q_sample(x0s, torch.full((x0s.shape[0],), t), linear) for t in compare_ts}

print(f"{'t':>4} | {'signal coefficient':^30} | {'noise std':^30}")
print(f"{'':>4} | {'theory':>8} {'closed':>10} {'1-step':>10} | {'theory':>8} {'closed':>10} {'1-step':>10}")
for t in compare_ts:
    a, n = linear.sqrt_alpha_bar[t], linear.sqrt_one_minus_alpha_bar[t]
    coef = [(x_t * x0s).sum() / (x0s * x0s).sum() for x_t in (closed[t], iterated[t])]
    noise_std = [(x_t - a * x0s).std() for x_t in (closed[t], iterated[t])]
    print(f"{t:>4} | {a:>8.3f} {coef[0]:>10.3f} {coef[1]:>10.3f} | {n:>8.3f} {noise_std[0]:>10.3f} {noise_std[1]:>10.3f}")

# %%
dl.plotting.show_rows({"closed form": torch.cat([closed[t][:1] for t in compare_ts]),
                       "t+1 q_steps": torch.cat([iterated[t][:1] for t in compare_ts])},
                      col_labels=[f"t = {t}" for t in compare_ts], title="the same digit, two ways (different noise)");

# %% [markdown]
# **Question.** The two rows do not show the same pixels, yet the numbers agree. Why can they not be
# pixel-identical, and what *does* the closed form promise? Training draws a random $t$ for every image:
# how many calls to the network-free `q_step` would a batch of 128 cost without the closed form?
#
# <details><summary>Answer</summary>
#
# The two rows use different random numbers: the step-by-step row adds a fresh $\varepsilon_s$ at each of its
# steps, the closed form draws one $\varepsilon$. A sum of independent Gaussians is again Gaussian, so the closed
# form promises the same *distribution* (mean $\sqrt{\bar\alpha_t}\, x_0$, covariance $(1 - \bar\alpha_t) I$), not
# the same draw; the table measures exactly those two numbers. Without it, an image at step $t$ costs $t$ calls,
# about 500 on average for uniformly drawn $t$, so about 64,000 image-steps for a batch of 128 (or, batched
# over the images, as many calls as the largest $t$ in the batch, close to 1000), against one call of `q_sample`.
#
# </details>

# %% [markdown]
# ## 5. What is left at the last step
#
# Sampling will start from pure noise $x_T \sim \mathcal{N}(0, I)$, as if nothing of the image were left.
# But $\sqrt{\bar\alpha_T}$ (the code's `sqrt_alpha_bar[999]`) is not zero:

# %%
# NBVAL_CHECK_OUTPUT
for s in schedules:
    print(f"{s.name:>6}: sqrt(alpha_bar_{T - 1}) = {s.sqrt_alpha_bar[-1]:.2e}, "
          f"SNR_{T - 1} = {s.snr[-1]:.2e}  (the digit's weight against noise of std {s.sqrt_one_minus_alpha_bar[-1]:.4f})")

# %% [markdown]
# Tiny, but it is there. Average 50,000 independent draws of $x_T$ from the same digit and divide by
# $\sqrt{\bar\alpha_T}$: the digit's part stays $x_0$, the noise averages down to a standard deviation of
# $1/(\sqrt{50000}\,\sqrt{\bar\alpha_T})$. (In chunks of 10,000, to keep the memory small.)

# %%
# NBVAL_CHECK_OUTPUT
n_chunks, chunk = 5, 10_000
n_draws = n_chunks * chunk
t_last = torch.full((chunk,), T - 1)
leftover = []
for s in schedules:
    total = torch.zeros_like(digit)                                                    # (1, 1, 28, 28)
    for _ in range(n_chunks):
        noise = torch.randn((chunk, 1, 28, 28), generator=g)
        total += dl.q_sample(digit.expand(chunk, -1, -1, -1), t_last, s, noise=noise).sum(0, keepdim=True)
    leftover.append(total / n_draws / s.sqrt_alpha_bar[-1])                            # (1, 1, 28, 28)
    print(f"{s.name:>6}: remaining noise std after averaging = {1 / (n_draws ** 0.5 * s.sqrt_alpha_bar[-1]):.2f}")

# %%
dl.plotting.show_rows({"": torch.cat([digit, *leftover])}, col_labels=["x_0", "linear", "cosine"],
                      title=f"mean of {n_draws:,} draws of x_{T - 1}, divided by sqrt(alpha_bar_{T - 1})");

# %% [markdown]
# For the linear schedule the noise left after averaging has a standard deviation of 0.70, and the 7 shows through
# it. For the cosine schedule $\sqrt{\bar\alpha_T}$ is 130 times smaller, the noise left has a standard deviation of
# 91 against the digit's pixels between $-1$ and $1$, and the panel is saturated noise: the trace is there too, but
# seeing it would take nearly a billion draws.
#
# **Question.** The linear schedule leaves the digit at signal-to-noise ratio $4 \times 10^{-5}$, the cosine one at
# $2 \times 10^{-9}$. A model trained with the linear schedule never sees truly pure noise, but is sampled from it:
# what could go wrong? (Lin et al. 2024, "Common diffusion noise schedules and sample steps are flawed", found that
# such models cannot make very dark or very bright images.)
#
# <details><summary>Answer</summary>
#
# What survives is the whole image times 0.0064, and its easiest part to pick out is the coarsest, such as its
# average brightness: averaged over the 784 pixels, the noise shrinks 28-fold and the image's mean does not. A
# network trained on such $x_T$ learns to read the overall brightness off its input and keep it. At sampling time $x_T$ is pure noise,
# whose pixel mean is close to 0 whatever image one wants, so the network is handed "medium brightness" every
# time, and very dark or very bright images are out of reach. The training inputs at $t = T$ and the sampler's
# starting point differ, and the network was never trained on the latter. Notebook 01's experiment makes
# $\bar\alpha_T = 0$, which removes the mismatch.
#
# </details>

# %% [markdown]
# ## Exercise: write `q_sample` yourself
#
# Given clean images `x0` of shape `(B, 1, 28, 28)`, timesteps `t` of shape `(B,)` (long), the schedule's
# `alpha_bar` of shape `(T,)` and the noise `noise` (same shape as `x0`), return
# $x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\, \varepsilon$. Mind the shapes: `alpha_bar[t]` has shape
# `(B,)` and must be reshaped to `(B, 1, 1, 1)` to multiply a batch of images. A worked solution is in
# `solutions/02_forward_noising.py`.

# %%
# EXERCISE
def noisy_image(x0: torch.Tensor, t: torch.Tensor, alpha_bar: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise, shape (B, 1, 28, 28)."""
    raise NotImplementedError

# %%
dl.exercises.check("02", noisy_image);

# %% [markdown]
# ## Summary
#
# - $q(x_t \mid x_0) = \mathcal{N}(\sqrt{\bar\alpha_t}\, x_0, (1 - \bar\alpha_t) I)$: any noise level can be drawn in
#   one step, for a batch with one $t$ per image (`dl.q_sample`), which is what makes training cheap.
# - The pixels move from MNIST's two peaks at $-1$ and $+1$ to a standard Gaussian; their mean and spread at every
#   $t$ follow from $\bar\alpha_t$ and the data's own mean and variance.
# - $t$ small steps $q(x_t \mid x_{t-1})$ and the one-step formula agree in distribution, not pixel by pixel.
# - The linear schedule leaves a trace of the digit at $t = T$ ($\sqrt{\bar\alpha_T} = 0.0064$); sampling starts
#   from pure noise all the same.
#
# **Next:** notebook 03 looks at the network's second input, the timestep: why the network must be told $t$, and
# how (the sinusoidal time embedding).
