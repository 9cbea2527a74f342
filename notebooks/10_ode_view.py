# %% [markdown]
# # 10 · The ODE view: scores, the probability-flow ODE, and faster solvers
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/diffusion-course/diffusion-by-code/blob/main/notebooks/10_ode_view.ipynb)
#
# Notebooks 05-07 trained a network to guess the noise in $x_t$ and sampled it two ways: DDPM, one noisy step at a
# time, and DDIM, a few deterministic jumps. This notebook shows what the network has learned in another light, the
# one the current literature is written in: the noise prediction is (up to a factor) the **score**, the gradient of
# the log-density of noisy data, and deterministic DDIM is **Euler's method** on an ordinary differential equation
# (ODE) that this score defines. Once sampling is solving an ODE, the textbook question follows: does a better ODE
# solver give better samples for the same number of network evaluations?

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
# - why a noise predictor is a score estimate, $\nabla_x \log q_t(x_t) = -\varepsilon^* / \sqrt{1-\bar\alpha_t}$ with
#   $\varepsilon^*$ the best possible noise prediction;
# - on a 2-D toy where the noisy density is known exactly: the true score field next to one a small network learns
#   in seconds, and DDPM and DDIM paths from the same starting points;
# - the probability-flow ODE, that a DDIM step *is* one Euler step of it (checked to rounding error), and why DDPM is
#   not "the ODE plus noise" (its mean moves along $\varepsilon_\theta$ about twice as far);
# - Heun's method (Karras et al. 2022), a second-order solver, measured against DDIM for the same number of network
#   evaluations, on DDIM's grid and on the grid Karras et al. designed for it: on the toy, where the exact answer is
#   known, and on the shipped MNIST U-Net, with the course's metric.
#
# **What you need first:** Notebook 02 ($q(x_t \mid x_0)$ in closed form), 05 (the noise-prediction loss) and 07
# (the DDIM update). No training of an MNIST network: the U-Net is the shipped one of notebooks 06-07.
#
# **Run time:** About 76 seconds in full mode and 19 seconds in quick mode on a quiet 2-core CPU (measured with
# notebook 11 building on the other core). The run committed here took 394 s, because other jobs shared the CPU (load
# average 14.9; the last cell before the exercise prints the time and the load). Most of it is section 6: 8 sampler
# settings, 167 network evaluations per image in all, on `B.sweep_samples` images of the U-Net. The toy network of
# section 3 trains for `B.toy_train_steps` steps. With a GPU (Colab: Runtime > Change runtime type) it takes seconds.

# %%
import inspect
import json
import os
import time

import torch

import diffusion_lib as dl

notebook_start = time.perf_counter()
device = dl.default_device()
B = dl.budget()
model = dl.load_pretrained("unet", device=device)          # the shipped unconditional U-Net (notebooks 06-07)
schedule = dl.pretrained_schedule("unet")                  # its linear schedule, T = 1000
classifier = dl.metrics.load_classifier(device=device)    # the course's MNIST classifier (notebook 07)
T = schedule.T
print(f"device {device}, {B.mode} mode; U-Net with {dl.count_parameters(model):,} parameters; "
      f"{schedule.name} schedule, T = {T}")

# %% [markdown]
# ## 1. The score, and why a noise predictor estimates it
#
# The **score** of a density $p$ is the gradient of its logarithm, $\nabla_x \log p(x)$: at every point, the
# direction in which the density grows fastest, scaled by how fast. For one clean image the noised density is the
# Gaussian of notebook 02, $q(x_t \mid x_0) = \mathcal{N}(\sqrt{\bar\alpha_t}\, x_0, (1-\bar\alpha_t) I)$, and its score
# is the noise itself, rescaled: with $x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$,
#
# $$\nabla_{x_t} \log q(x_t \mid x_0) = -\frac{x_t - \sqrt{\bar\alpha_t}\, x_0}{1-\bar\alpha_t} = -\frac{\varepsilon}{\sqrt{1-\bar\alpha_t}}.$$
#
# The density of *all* noisy data, $q_t(x_t) = \int q(x_t \mid x_0)\, q(x_0)\, dx_0$, has as its score the average of
# these over the clean images that could have produced $x_t$ (Vincent 2011; Song & Ermon 2019). Three noises appear
# from here on, and this notebook keeps them apart: $\varepsilon$ is the noise actually drawn for one $x_t$;
# $\varepsilon^*(x_t, t) = \mathbb{E}[\varepsilon \mid x_t]$ is its average over everything that could have produced
# $x_t$, the best guess any network can make; $\varepsilon_\theta(x_t, t)$ is the network's guess. Trained with the
# loss of notebook 05, $\varepsilon_\theta \approx \varepsilon^*$ (the mean minimises a squared error). So
#
# $$\nabla_{x_t} \log q_t(x_t) = -\frac{\varepsilon^*(x_t, t)}{\sqrt{1-\bar\alpha_t}} \approx
# -\frac{\varepsilon_\theta(x_t, t)}{\sqrt{1-\bar\alpha_t}}.$$
#
# The noise predictor *is* a score estimate; `dl.toy.score_from_eps` is this line:

# %%
# NBVAL_CHECK_OUTPUT
print(inspect.getsource(dl.toy.score_from_eps))

# %% [markdown]
# For MNIST we cannot check it: nobody knows $q_t$ for digits. The next section builds data for which we can.

# %% [markdown]
# ## 2. A 2-D toy where everything is known
#
# The data are points in the plane drawn from a **mixture of Gaussians**, $q(x_0) = \sum_k \pi_k\, \mathcal{N}(\mu_k,
# \Sigma_k)$: six equal components, their means on a circle of radius 0.7, standard deviation 0.1, so nearly every
# point lies in $[-1, 1]^2$ like the pixels of the digits. Noising a Gaussian gives a Gaussian, so $q_t$ is again a
# mixture with the same weights, for every $t$:
#
# $$q_t(x) = \sum_k \pi_k\, \mathcal{N}\big(x;\ \sqrt{\bar\alpha_t}\,\mu_k,\ \bar\alpha_t \Sigma_k + (1-\bar\alpha_t) I\big),$$
#
# and its score is known in closed form (a weighted sum of the components' scores). `dl.toy` holds one function per
# formula: `noised_mixture`, `q_t_log_density`, `q_t_score`, `exact_eps`. A point is a tensor of shape `(B, 2, 1, 1)`,
# two "channels" of a 1 x 1 "image", so that `dl.q_sample`, the samplers and the trainer of the course take it as
# they are. First the check that the closed form is what the forward process does: the mean and covariance of
# `dl.q_sample` applied to data points, against those of the mixture $q_t$ above.

# %%
# NBVAL_IGNORE_OUTPUT
mixture = dl.toy.ring_mixture(num_components=6, radius=0.7, std=0.1)
data = dl.toy.mixture_sample(mixture, 20_000, torch.Generator().manual_seed(0))            # (20000, 2, 1, 1)
eps_data = torch.randn(data.shape, generator=torch.Generator().manual_seed(1))
print(f"data: {tuple(data.shape)}, share inside [-1, 1]^2: {float((data.abs() <= 1).all(1).float().mean()):.3f}")
for t in (0, 100, 300, 999):
    x_t = dl.q_sample(data, torch.full((data.shape[0],), t), schedule, eps_data)            # (20000, 2, 1, 1)
    mean, cov = dl.toy.mixture_mean_covariance(dl.toy.noised_mixture(mixture, float(schedule.alpha_bar[t])))
    xy = dl.toy.as_xy(x_t)
    print(f"t = {t:>3}: variance of q_sample {torch.cov(xy.T).diagonal().numpy().round(3)}, of q_t "
          f"{cov.diagonal().numpy().round(3)};  mean {xy.mean(0).numpy().round(3)} vs {mean.numpy().round(3)}")

# %% [markdown]
# The shaded background below is $q_t$ from the formula; the red dots are data points pushed through `dl.q_sample`.
# The slider moves $t$; under it, the same picture at six noise levels.

# %%
# NBVAL_IGNORE_OUTPUT
shown = data[:400]
dl.widgets.slider_view(dl.plotting.toy_noising_slider(mixture, schedule, lambda t: dl.q_sample(
                           shown, torch.full((400,), t), schedule, eps_data[:400])),
                       values=range(T), description="t", value=150)

# %%
strip_t = [0, 50, 100, 200, 400, 999]
dl.plotting.plot_toy_noising(mixture, schedule, strip_t,
                             {t: dl.q_sample(shown, torch.full((400,), t), schedule, eps_data[:400]) for t in strip_t});

# %% [markdown]
# **Question.** The strip shows a ring of six blobs at `t = 0`, an even ring with a hollow centre at `t = 100`, and
# one round bump at `t = 200`. When exactly does the centre fill? Compare the ring's radius, $\sqrt{\bar\alpha_t}
# \times 0.7$ (the forward process shrinks the means), with the spread of each blob, its standard deviation
# $\sqrt{0.1^2\,\bar\alpha_t + 1 - \bar\alpha_t}$ (the data's shrunk, plus the noise's).
#
# <details><summary>Answer</summary>
#
# Near the centre every blob contributes a Gaussian bump of variance $v = \text{spread}^2$ centred at distance $r$ (the
# radius). Expand the sum to second order in the distance $\rho$ from the centre: each term falls like $1 -
# \rho^2/(2v)$ and, averaged over the six directions, rises by $r^2 \rho^2 / (4 v^2)$ towards the blobs. So the centre is
# a dip while $r^2 / (4v^2) > 1/(2v)$, that is while **$r > \sqrt{2}\,\text{spread}$**, and a peak after. The cell
# below finds the first timestep where the radius falls below $\sqrt 2$ spreads, `t = 141` ($\bar\alpha = 0.81$),
# and checks it on the density itself: along a ray from the centre through a mean, the densest point sits 0.56 from
# the centre at `t = 100` (the ring), 0.32 at `t = 130`, and at the centre from `t = 141` on. That is why the `t = 200`
# panel already shows one bump. (Neighbouring blobs, 0.7 $\sqrt{\bar\alpha_t}$ apart, blur into an even ring
# earlier: two Gaussians show two bumps only while their distance exceeds about two standard deviations, which
# holds until `t = 99`.) All the structure of the data is decided in the first seventh of the schedule; in the
# rest, $q_t$ is one round bump that widens into the $\mathcal{N}(0, I)$ every chain starts from.
#
# </details>

# %%
# NBVAL_CHECK_OUTPUT
abar = schedule.alpha_bar.double()                                                       # (T,)
radius, spread = abar.sqrt() * 0.7, (abar * 0.1 ** 2 + 1 - abar).sqrt()                  # (T,) each
for name, factor in (("sqrt(2)", 2 ** 0.5), ("2", 2.0)):
    t_cross = int((radius < factor * spread).nonzero()[0])
    print(f"radius < {name:>7} x spread from t = {t_cross} on (alpha_bar {float(abar[t_cross]):.3f}: radius "
          f"{float(radius[t_cross]):.3f}, spread {float(spread[t_cross]):.3f})")
distance = torch.linspace(0, 1.2, 601, dtype=mixture.means.dtype)                        # (601,)
ray = dl.toy.as_points(distance[:, None] * mixture.means[:1] / mixture.means[0].norm())  # (601, 2, 1, 1) through a mean
for t in (50, 100, 130, 140, 141, 200):
    densest = float(distance[dl.toy.q_t_log_density(mixture, ray, float(abar[t])).argmax()])
    print(f"t = {t:>3}: the densest point on the ray through a mean lies {densest:.2f} from the centre")

# %% [markdown]
# ## 3. A network learns the score in seconds
#
# A small MLP for points, `dl.PointMLP` (the point's two coordinates and the sinusoidal embedding of $t$ of
# notebook 03, three hidden layers of 128 units), trained with the course's own trainer and loss (notebook 05) on the
# 20,000 data points. Nothing in the training knows the points are not images.

# %%
# NBVAL_IGNORE_OUTPUT
toy_config = dl.TrainConfig(backbone="point_mlp", steps=B.toy_train_steps, batch_size=256, lr=1e-2, warmup_steps=50,
                            lr_decay="cosine", ema_decay=0.995, seed=0)
toy_run, toy_seconds = dl.sweeps.timed(dl.train, toy_config, data, progress=False)   # seconds: no bar
toy_net = toy_run.ema                                                    # the EMA weights, as for the U-Net
print(f"PointMLP, {dl.count_parameters(toy_net):,} parameters: {toy_run.step} steps in {toy_seconds:.1f} s; "
      f"mean loss of the last 100 steps {sum(toy_run.history['loss'][-100:]) / 100:.3f}")

# %% [markdown]
# How good is it? In the toy the best possible noise prediction is known, $\varepsilon^*(x_t, t) = \mathbb{E}[\varepsilon
# \mid x_t] = -\sqrt{1-\bar\alpha_t}\,\nabla \log q_t(x_t)$ (`dl.toy.exact_eps`), so the loss at each $t$ splits into a
# **floor** no network can go below (the part of $\varepsilon$ that $x_t$ does not reveal) and the network's own
# **excess** error, $\mathbb{E}|\varepsilon - \varepsilon_\theta|^2 = \mathbb{E}|\varepsilon - \varepsilon^*|^2 +
# \mathbb{E}|\varepsilon_\theta - \varepsilon^*|^2$ (per coordinate). `dl.inspection.toy_eps_errors` measures the three,
# with `exact` $= \mathbb{E}|\varepsilon^*|^2$, the size of what there is to learn. Their ratio `excess / exact` is a
# ratio of mean *squares*; its square root is the error in the units of $\varepsilon^*$ itself, the **RMS relative
# error** $\sqrt{\mathbb{E}|\varepsilon_\theta - \varepsilon^*|^2 / \mathbb{E}|\varepsilon^*|^2}$ (`rms_relative`:
# 0.1 means the network is off by a tenth of the exact $\varepsilon^*$, on average over the points):

# %%
# NBVAL_IGNORE_OUTPUT
exact = dl.toy.ExactEps(mixture, schedule)               # eps*(x_t, t) as a model: the samplers can call it too
eps_rows = dl.inspection.toy_eps_errors(toy_net, mixture, data[:B.toy_points], schedule, [0, 10, 50, 100, 200, 400, 999])
for r in eps_rows:
    r["rms_relative"] = (r["excess"] / r["exact"]) ** 0.5      # RMS of eps_theta - eps* over the RMS of eps*
print(dl.sweeps.format_rows(eps_rows, ["t", "alpha_bar", "loss", "floor", "excess", "exact", "rms_relative"]))

# %% [markdown]
# Now the fields themselves, as arrows on a grid over the shaded $q_t$: the exact score (left), the network's estimate
# $-\varepsilon_\theta(x, t)/\sqrt{1-\bar\alpha_t}$ (middle, `dl.toy.learned_score`) and their difference (right). All
# three panels of one $t$ share a scale (printed in the corner): the score grows like $1/\sqrt{1-\bar\alpha_t}$ as $t$
# falls. The fields are computed once for every $t$, so the slider only looks them up; under it, a strip at five
# noise levels.

# %%
# NBVAL_IGNORE_OUTPUT
grid = dl.toy.grid_points(1.4, 15)                                                    # (225, 2, 1, 1)
score_fields = {"exact": {t: dl.toy.exact_score(mixture, grid, t, schedule) for t in range(T)},
                "learned": {t: dl.toy.learned_score(toy_net, grid, t, schedule) for t in range(T)}}
score_fields["learned - exact"] = {t: score_fields["learned"][t] - score_fields["exact"][t] for t in range(T)}
dl.widgets.slider_view(dl.plotting.field_slider(grid, score_fields, mixture, schedule),
                       values=range(T), description="t", value=30)

# %%
dl.plotting.plot_score_fields(grid, score_fields, [10, 30, 60, 100, 300], mixture, schedule);

# %% [markdown]
# **Question.** From `t = 200` on, the network's $\varepsilon_\theta$ is within a few percent of the exact
# $\varepsilon^*$ (`rms_relative` 0.025 at `t = 200`), at `t = 100` within a tenth (0.090). Towards the clean end it
# gets worse: off by a third at `t = 10` (0.34), and at `t = 0` its error is larger than the very thing it has to learn
# (1.8). The difference panels show it around the components and in the corners, where no data ever is. Why is the
# score hardest to learn where it is largest, and should it worry us for sampling?
#
# <details><summary>Answer</summary>
#
# At small $t$ the noise is tiny, and $x_t$ tells almost nothing about the direction it points in: the drawn
# $\varepsilon$ is nearly pure unpredictable noise (the floor is close to 1 per coordinate) and its predictable part
# $\varepsilon^*$ is small (the column `exact`). The training signal for $\varepsilon^*$ is a whisper under the noise, so
# the network learns it roughly; dividing by $\sqrt{1-\bar\alpha_t}$ (0.01 at the first step) then turns a small error of
# $\varepsilon_\theta$ into a large error of the score. In the corners the network extrapolates: at small $t$ no training
# point is ever noised that far. For sampling it matters much less than the arrows suggest. A sampler's step moves a
# point along $\varepsilon_\theta$ with a coefficient of the order of $\sqrt{1-\bar\alpha_t}$ or smaller (section 4's
# equation), so near the clean end the large score errors move the samples very little, and no chain is out in the
# corners at small $t$. What decides where the samples land is the range where the ring fills in, around `t = 100` to `150` (section 2), and
# there the network is off by about a tenth.
#
# </details>

# %% [markdown]
# ## 4. The probability-flow ODE, and DDIM as Euler's method
#
# Song et al. (2021, "Score-based generative modeling through SDEs") showed that the noisy densities $q_t$ of the
# forward process are also carried by a *deterministic* flow, the **probability-flow ODE**, whose velocity is built from
# the score. It is easiest to see in the rescaled state and noise level
#
# $$\bar x = \frac{x}{\sqrt{\bar\alpha}}, \qquad \sigma = \sqrt{\frac{1-\bar\alpha}{\bar\alpha}}, \qquad\text{so that}\qquad
# \bar x_t = x_0 + \sigma_t\, \varepsilon$$
#
# (divide $x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$ by $\sqrt{\bar\alpha_t}$): noising only
# adds more of the same noise. **One path.** Fix a clean $x_0$ and a drawn $\varepsilon$; as $\sigma$ grows, $\bar x$
# moves on a straight line with velocity $d\bar x / d\sigma = \varepsilon$. **All paths.** Many paths pass through the same
# point $\bar x$ at level $\sigma$, each with its own $\varepsilon$. A single velocity field that moves the whole cloud of
# points the way the paths move it, density for density, is the *average* velocity of the paths through each point
# (the mass that crosses any small surface is the density there times the paths' average velocity), that is
# $\mathbb{E}[\varepsilon \mid \bar x] = \varepsilon^*$. So the ODE replaces the drawn $\varepsilon$ by its average given
# where the point is (Song, Meng & Ermon 2021, Sec. 4.3; Karras et al. 2022, Sec. 3):
#
# $$\frac{d\bar x}{d\sigma} = \varepsilon^*(x_t, t) = -\sqrt{1-\bar\alpha_t}\,\nabla \log q_t(x_t).$$
#
# The same step, from one path with a known velocity to the field that carries the whole distribution by averaging
# the velocities of the paths through each point, is the heart of notebook 11 (flow matching): there the paths are
# straight lines in another parametrisation, and the network learns the average velocity directly.
#
# Sampling is solving the ODE from $\sigma_T \approx 157$ down to $\sigma = 0$, with the network's $\varepsilon_\theta$
# in place of $\varepsilon^*$. The simplest solver, **Euler's method**,
# holds the slope fixed over a step from $t$ to $t' < t$:
# $\bar x_{t'} = \bar x_t + (\sigma_{t'} - \sigma_t)\,\varepsilon_\theta(x_t, t)$. Multiply by $\sqrt{\bar\alpha_{t'}}$ and
# use $\sqrt{\bar\alpha_{t'}}\,\sigma_{t'} = \sqrt{1-\bar\alpha_{t'}}$:
#
# $$x_{t'} = \sqrt{\bar\alpha_{t'}}\;\frac{x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon_\theta}{\sqrt{\bar\alpha_t}} +
# \sqrt{1-\bar\alpha_{t'}}\;\varepsilon_\theta,$$
#
# which is the DDIM update of notebook 07 with $\eta = 0$, letter for letter. Numerically, on the U-Net, for every step of
# a 5-step grid: the Euler step written here from $\bar x$ and $\sigma$, against `dl.samplers.ddim_step`.

# %%
# NBVAL_IGNORE_OUTPUT
x = dl.sample_noise(4, generator=torch.Generator().manual_seed(0), device=device)      # (4, 1, 28, 28)
for t, t_prev in dl.timestep_pairs(dl.ddim_timesteps(5, T)):
    with torch.no_grad():
        eps = model(x, torch.full((4,), t, device=device))                                          # eps_theta(x_t, t)
    abar, abar_prev = dl.samplers.alpha_bar_at(schedule, t), dl.samplers.alpha_bar_at(schedule, t_prev)
    sigma, sigma_prev = ((1 - abar) / abar) ** 0.5, ((1 - abar_prev) / abar_prev) ** 0.5
    xbar_prev = x / abar ** 0.5 + (sigma_prev - sigma) * eps                                       # one Euler step
    ddim, _ = dl.samplers.ddim_step(x, eps, t, t_prev, schedule)                                    # eta = 0
    print(f"t = {t:>3} -> {t_prev:>3}: sigma {sigma:8.3f} -> {sigma_prev:6.3f};  "
          f"max |DDIM - Euler| = {float((ddim - abar_prev ** 0.5 * xbar_prev).abs().max()):.1e}")
    x = ddim

# %% [markdown]
# The differences are float32 rounding. (`tests/test_samplers.py::test_ddim_is_an_euler_step_of_the_probability_flow_ode`
# proves the same for steps of every size.)
#
# **DDPM in this light** solves a *stochastic* equation with the same densities $q_t$, the reverse SDE, and it is not
# "the ODE plus noise": the score enters the reverse SDE's drift with **twice** the weight it has in the ODE (Song et
# al. 2021: drift $f - g^2 \nabla \log q_t$ in Eq. 6, $f - \tfrac12 g^2 \nabla \log q_t$ in Eq. 13), and the fresh noise
# spreads the points back out. One step from $t$ to $t-1$ shows it. DDPM's mean (Ho et al. Eq. 11) is
# $(x_t - \beta_t \varepsilon_\theta / \sqrt{1-\bar\alpha_t})/\sqrt{\alpha_t}$; divided by $\sqrt{\bar\alpha_{t-1}}$ and with
# $\beta_t / \bar\alpha_t = \sigma_t^2 - \sigma_{t-1}^2$ it reads $\bar x_{t-1} = \bar x_t - \frac{\sigma_t^2 -
# \sigma_{t-1}^2}{\sigma_t}\,\varepsilon_\theta$, against DDIM's $\bar x_{t-1} = \bar x_t - (\sigma_t -
# \sigma_{t-1})\,\varepsilon_\theta$. Both scale $x_t$ by the same $1/\sqrt{\alpha_t}$; beyond that rescaling, DDPM moves
# along $\varepsilon_\theta$ by
#
# $$\frac{\sigma_t^2 - \sigma_{t-1}^2}{\sigma_t\,(\sigma_t - \sigma_{t-1})} = 1 + \frac{\sigma_{t-1}}{\sigma_t}$$
#
# times as far as DDIM: just under 2 for the small steps of the full chain. The library's two steps, applied to
# $x_t = 0$ and $\varepsilon_\theta = 1$ (which leaves only the coefficient of $\varepsilon_\theta$), against the formula:

# %%
# NBVAL_CHECK_OUTPUT
zero, one = torch.zeros((1, 1, 1, 1)), torch.ones((1, 1, 1, 1))   # x_t = 0, eps_theta = 1: the eps coefficient
sigmas = dl.samplers.schedule_sigmas(schedule)                                       # (T,) sigma_t, float64
for t in (900, 500, 100):
    ddpm_mean, _ = dl.samplers.ddpm_step(zero, one, t, t - 1, schedule)               # no noise: the mean
    ddim_prev, _ = dl.samplers.ddim_step(zero, one, t, t - 1, schedule)
    print(f"t = {t}: eps coefficient DDPM {float(ddpm_mean):.4e}, DDIM {float(ddim_prev):.4e}, ratio "
          f"{float(ddpm_mean / ddim_prev):.4f};  1 + sigma[t-1] / sigma[t] = {float(1 + sigmas[t - 1] / sigmas[t]):.4f}")

# %% [markdown]
# So DDPM's mean overshoots the ODE's step by about as much again, and its fresh noise (variance $\tilde\beta_t$) puts
# the spread back: together they keep the points distributed as $q_t$ (exactly in the limit of small steps), as the ODE
# does, but each path is random.
# (`tests/test_samplers.py::test_ddpm_moves_along_eps_twice_as_far_as_ddim` checks the ratio against the formula.)
# On the toy we can watch both from the same starting points. Each chain
# runs all 1000 steps: DDIM twice, with the toy network and with the exact $\varepsilon^*$ (`exact`, above), and DDPM
# twice with the network, with two seeds for its fresh noise. The pictures keep every tenth state and show 8 of the
# points.

# %%
# NBVAL_IGNORE_OUTPUT
starts = torch.randn((B.toy_points // 4, 2, 1, 1), generator=torch.Generator().manual_seed(4))   # x_T, one per point
chains = {"DDIM, exact eps": dl.record(dl.ddim_sample_progressive(exact, starts, schedule, num_steps=T), every=10),
          "DDIM, the network": dl.record(dl.ddim_sample_progressive(toy_net, starts, schedule, num_steps=T), every=10),
          **{f"DDPM, seed {s}": dl.record(dl.ddpm_sample_progressive(toy_net, starts, schedule,
                                                                     generator=torch.Generator().manual_seed(s)), every=10)
             for s in (1, 2)}}
ends = {name: chain.sample for name, chain in chains.items()} | {"the data itself": data[:B.toy_points // 4]}
for name, x in ends.items():
    distance = (dl.toy.as_xy(x)[:, None] - mixture.means).norm(dim=-1).min(1).values      # to the nearest mean
    print(f"{name:>17}: {float((distance < 0.3).float().mean()):.3f} of {x.shape[0]} points lie within 0.3 "
          "(3 standard deviations) of a component's mean")
component = {name: (dl.toy.as_xy(x)[:, None] - mixture.means).norm(dim=-1).argmin(1) for name, x in ends.items()}
for a, b in [("DDIM, the network", "DDIM, exact eps"), ("DDPM, seed 1", "DDPM, seed 2")]:
    print(f"{a} and {b} end in the same component for {float((component[a] == component[b]).float().mean()):.2f} "
          "of the starting points")

# %%
# NBVAL_IGNORE_OUTPUT
dl.widgets.slider_view(dl.plotting.toy_trajectory_slider(chains, mixture, schedule, trail=10, show=8),
                       values=range(len(chains["DDIM, the network"].timesteps) + 1), description="step", value=80)

# %%
last = len(chains["DDIM, the network"].timesteps)                  # the step index of the end, the clean points
dl.plotting.plot_toy_trajectories(chains, [0, 50, 80, 90, 95, last], mixture, schedule, trail=10, show=8);

# %% [markdown]
# **Question.** The DDIM paths are smooth curves and the DDPM paths jitter; the two DDPM runs, from the same starting
# points, mostly end in different components (printed above), while DDIM with the network and DDIM with the exact
# $\varepsilon^*$ mostly agree. Which of these chains is a *function* of its starting point, and what does that make
# possible (think of notebook 07)? Why do the DDIM paths barely move until late, then swing into a component?
#
# <details><summary>Answer</summary>
#
# Only DDIM: the ODE's solution is fixed by its starting point, so $x_T \mapsto x_0$ is a map, and a smooth one (nearby
# starts end nearby, except across the boundaries between components). That is what made DDIM inversion and
# interpolation in notebook 07 possible: the map can be run backwards, and a path between two noises decodes to a path
# between two samples. The network's map is close to the exact one, so both DDIMs mostly pick the same component. A
# DDPM chain's end depends on the fresh noise of its 1000 steps as much as on its start: two seeds agree about as often
# as two random picks among six components would. The late swing is section 2's picture seen from the other side: for
# most of the chain $q_t$ is one round bump whose score points to the centre, and only in the last tenth of the steps
# does it break into six components, when each point has to choose one.
#
# </details>

# %% [markdown]
# ## 5. A better solver? Heun's method, measured where the answer is known
#
# Euler's error per step shrinks like the step squared, so its total error falls like $1/N$ for $N$ steps (first
# order). **Heun's method** (Karras et al. 2022, Algorithm 1) takes the Euler step as a trial, evaluates the network
# again at its end, and redoes the step with the average slope:
#
# $$\bar x' = \bar x_t + (\sigma_{t'} - \sigma_t)\,\varepsilon_\theta(x_t, t), \qquad
# \bar x_{t'} = \bar x_t + (\sigma_{t'} - \sigma_t)\,\frac{\varepsilon_\theta(x_t, t) + \varepsilon_\theta(x', t')}{2},$$
#
# where $\bar x'$ is the trial (Euler's) end of the step and $x' = \sqrt{\bar\alpha_{t'}}\,\bar x'$ the same point in the
# scaling the network takes (it is the DDIM step's result).
#
# Its error falls like $1/N^2$ (second order), but each step costs two network evaluations (the last, into the clean
# image, is an Euler step: $2N - 1$ in all, `dl.samplers.heun_nfe`). The fair comparison is at the same number of
# **network evaluations (NFE)**. `dl.samplers.heun_step` is the library's code:

# %%
# NBVAL_CHECK_OUTPUT
print(inspect.getsource(dl.samplers.heun_step))

# %% [markdown]
# In the toy we can measure each solver's error, because we can replace the network by the exact
# $\varepsilon^*$ (`dl.toy.ExactEps`): then the ODE is exactly the one of $q_t$, and what is left is the solver's error
# alone. The reference end of each starting point is Heun's with 500 steps (999 evaluations), far finer than anything
# compared; `dl.sweeps.solver_errors` reports the mean distance of each solver's end from it.

# %%
# NBVAL_IGNORE_OUTPUT
ode_starts = torch.randn((B.toy_points // 2, 2, 1, 1), generator=torch.Generator().manual_seed(5))
reference_ends = dl.sweeps.ode_images(exact, ode_starts, schedule, "Heun", 500)
solver_rows = dl.sweeps.solver_errors(exact, ode_starts, schedule, [5, 10, 20, 50, 100, 200], reference_ends)
print(dl.sweeps.format_rows(solver_rows, ["sampler", "steps", "nfe", "mean_error", "max_error"]))

# %%
dl.plotting.plot_solver_errors(solver_rows, title="the toy with the exact eps: distance to the ODE's exact end");

# %% [markdown]
# The grid matters. Both solvers step over the same timesteps, evenly spaced in $t$ (notebook 07); in $\sigma$, which
# the ODE runs in, they are anything but even (`dl.samplers.schedule_sigmas` is $\sigma_t$ for every `t`):

# %%
# NBVAL_CHECK_OUTPUT
for n in (3, 5, 10):
    grid_t = dl.ddim_timesteps(n, T)
    print(f"{n:>2} steps: sigma " + " -> ".join(f"{float(sigmas[t]):.3g}" for t in grid_t) + " -> 0;  ratio per step "
          + ", ".join(f"{float(sigmas[a] / sigmas[b]):.0f}" for a, b in zip(grid_t, grid_t[1:])))

# %% [markdown]
# **Question.** Heun is second order, yet up to about 50 evaluations it lands *further* from the exact end than DDIM
# (at 5, eight times further); it overtakes DDIM only beyond that, and there its curve is twice as steep (slope $-2$), as
# promised. Why does the promise only hold for many steps? Use the printed grids and the slope written with the
# clean point the network (or $\varepsilon^*$) predicts, $\hat x_0 = \bar x - \sigma\,\varepsilon_\theta$, that is
# $\varepsilon_\theta = (\bar x - \hat x_0)/\sigma$.
#
# <details><summary>Answer</summary>
#
# An order is a statement about small steps: the terms it neglects are small only once the slope changes little over a
# step. On these grids most steps divide $\sigma$ by 2 to 9, and the step into the last timestep divides it by 38 to
# 344. Take one step from $\sigma$ to $\sigma'$ and write $\hat x_0$ and $\hat x_0'$ for the predictions at its two ends.
# Euler (DDIM) moves straight towards $\hat x_0$: $\bar x' = \hat x_0 + \sigma' \varepsilon_\theta$, which is exact as long
# as the prediction does not change. At that point the slope is $\varepsilon_\theta' = \varepsilon_\theta - (\hat x_0' -
# \hat x_0)/\sigma'$, and Heun's average moves the point further, by $(\sigma/\sigma' - 1)/2$ times the change of the
# prediction $\hat x_0' - \hat x_0$. That is half the change on a step that halves $\sigma$, sensible; but 18 times the
# change on the 10-step grid's step from 0.38 to 0.01, a wild overshoot. Second order pays once every step's ratio is
# near 1, here beyond about 50 evaluations. Can a grid with milder ratios rescue Heun at small budgets? The next cells
# try the grid Karras et al. designed for it.
#
# </details>

# %% [markdown]
# ### Heun on a fair grid
#
# Karras et al. (2022, Eq. 5) pair Heun with noise levels evenly spaced in $\sigma^{1/\rho}$, with $\rho = 7$:
#
# $$\sigma_i = \Big(\sigma_{\max}^{1/\rho} + \frac{i}{N-1}\big(\sigma_{\min}^{1/\rho} - \sigma_{\max}^{1/\rho}\big)\Big)^{\rho},
# \qquad i = 0, \dots, N-1,$$
#
# then a last step to $\sigma = 0$. The steps shrink towards the clean end, where the slope changes fastest. The course's
# samplers step between the schedule's integer timesteps, so `dl.samplers.karras_timesteps(N, schedule)` takes
# $\sigma_{\max} = \sigma$ at `t = 999` and $\sigma_{\min} = \sigma$ at `t = 0` (about 157 and 0.01) and rounds each level to
# the timestep whose $\sigma_t$ is nearest in $\log\sigma$; both ends are exact, and where two levels would round to the
# same timestep (only from 79 steps on, near `t = 0`) the duplicate is dropped. `grid="karras"` makes DDIM and Heun walk it
# (`tests/test_samplers.py` checks the rounding against the closed form). The two grids, side by side:

# %%
# NBVAL_CHECK_OUTPUT
for n in (3, 5, 10):
    for grid in ("uniform", "karras"):
        grid_t = dl.samplers.grid_timesteps(grid, n, schedule)
        print(f"{n:>2} steps, {grid:>7}: t = {grid_t}")
        print(f"{'':>19}sigma " + " -> ".join(f"{float(sigmas[t]):.3g}" for t in grid_t) + " -> 0;  ratio per step "
              + ", ".join(f"{float(sigmas[a] / sigmas[b]):.1f}" for a, b in zip(grid_t, grid_t[1:])))

# %% [markdown]
# The same measurement as above, on both grids: the exact $\varepsilon^*$ of the toy, the distance to the ODE's exact end.

# %%
# NBVAL_IGNORE_OUTPUT
grid_rows = dl.sweeps.solver_errors(exact, ode_starts, schedule, [5, 10, 20, 50, 100, 200], reference_ends,
                                    grids=("uniform", "karras"))
print(dl.sweeps.format_rows([r for r in grid_rows if r["nfe"] <= 50],
                            ["sampler", "grid", "steps", "nfe", "mean_error", "max_error"]))

# %%
dl.plotting.plot_solver_errors([r for r in grid_rows if r["grid"] == "karras"],
                               title="the same, on the Karras grid (rho = 7)");

# %% [markdown]
# **Question.** On the Karras grid, which solver is closer to the exact end at 5, 10 and 20 evaluations, and from
# how many does Heun win? Look at the Karras grid's ratios: which step still divides $\sigma$ by a large factor at
# 3 and 5 steps?
#
# <details><summary>Answer</summary>
#
# DDIM, at all three: on the Karras grid it lands 0.283, 0.123 and 0.054 from the exact end, Heun 4.66, 1.02 and 0.128
# (with 5, 9 and 19 evaluations). The grid helps DDIM at every budget (0.283 against 0.408 on DDIM's grid at 5) but
# not Heun, which is worse than on DDIM's grid at 5 and 9 and level at 19; it overtakes DDIM on this grid between 20
# and 50 evaluations (at 49: 0.011 against DDIM's 0.020 at 50), earlier than on DDIM's grid, where it takes about 100. With few steps
# the Karras grid does not remove the large ratios, it moves them: with 3 steps it divides $\sigma$ by 27 and then by
# 591, with 5 its last two steps by 12 and 49, right across the levels where the toy's components separate ($\sigma
# \approx 0.5$ at `t = 141`, section 2), where the predicted $\hat x_0$ changes most. Its ratios are all moderate
# only from about 10 steps on (at most 7.3), which is where Heun catches up. So on the toy even a fair grid does not
# make second order pay at 20 evaluations or fewer. The U-Net, in section 6, answers differently.
#
# </details>

# ## 6. On the shipped U-Net: quality against network evaluations
#
# Now the real network, where no exact answer exists but the course's metric does (notebook 07): the **confident
# share** (samples the MNIST classifier reads as a digit with $p > 0.9$) and the **Fréchet distance** of the
# classifier's features to the MNIST test set (lower is better; real digits at this number of images give the dashed
# line). DDIM and Heun at (at most) 5, 10, 20 and 50 network evaluations, all from the same `B.sweep_samples`
# starting noises, each timed (`dl.sweeps.nfe_sweep`).

# %%
# NBVAL_IGNORE_OUTPUT
reference = dl.metrics.reference_scores(classifier, n=B.sweep_samples, with_features=True)   # one pass over the test set
nfe_x_T = dl.sample_noise(B.sweep_samples, generator=torch.Generator().manual_seed(6), device=device)
nfe_rows, nfe_images = dl.sweeps.nfe_sweep(model, nfe_x_T, schedule, [5, 10, 20, 50], classifier,
                                           reference["test_features"])
print(dl.sweeps.format_rows(nfe_rows, ["sampler", "steps", "nfe", "n", "seconds_per_image", "confident_share",
                                       "frechet_distance"]))
print(f"real digits: confident share {reference['test_confident_share']:.3f} (test set); Frechet distance of "
      f"{B.sweep_samples} training digits {reference['train_vs_test_frechet_distance']:.1f}")
print("measured on:", dl.inspection.machine_description(device))

# %% [markdown]
# Beside them, the model card's scores (`diffusion_lib/weights/unet.json`, 500 images, measured by
# `benchmarks/evaluate.py` at the same budgets; DDIM also with $\eta = 1$). The deterministic samplers are drawn, without
# their Fréchet distances, which compare with 500 real digits, not with this notebook's dashed line:

# %%
# NBVAL_IGNORE_OUTPUT
card = json.loads((dl.pretrained.WEIGHTS_DIR / "unet.json").read_text())
print("model card:", dl.sweeps.format_rows(card["scores"], ["sampler", "steps", "nfe", "eta", "n", "confident_share",
                                                            "frechet_distance"]), sep="\n")
card_groups = {f"model card: {dl.sweeps.SAMPLER_LABELS[name]}, 500 images":
               [{**r, "seconds_per_image": None, "frechet_distance": None}
                for r in card["scores"] if r["sampler"] == name and r["eta"] in (None, 0.0)]
               for name in ("ddim", "heun")}                               # deterministic: eta 0, and Heun
dl.plotting.plot_quality_vs_nfe({f"{s}, {B.sweep_samples} images": [r for r in nfe_rows if r["sampler"] == s]
                                 for s in dl.sweeps.NFE_SAMPLERS} | card_groups, reference=reference);

# %%
dl.plotting.show_rows({f"{s}, NFE {nfe}": images[:8] for (s, nfe), images in nfe_images.items()},
                      title="the same 8 starting noises, each sampler at each budget");

# %% [markdown]
# Which digit each sample became, as the classifier reads it: the share of the `B.sweep_samples` starting noises whose
# digit differs from the one Heun with 49 evaluations (the closest to the ODE's exact solution here) makes of them.

# %%
# NBVAL_IGNORE_OUTPUT
digits = {key: dl.metrics.classify(images, classifier).argmax(1) for key, images in nfe_images.items()}   # (n,) each
for key in [("DDIM", 5), ("Heun", 5), ("DDIM", 10), ("Heun", 9), ("DDIM", 20), ("Heun", 19), ("DDIM", 50)]:
    print(f"{key[0]:>4}, NFE {key[1]:>2}: another digit than Heun 49's for "
          f"{float((digits[key] != digits[('Heun', 49)]).float().mean()):.2f} of the samples")

# %% [markdown]
# **Question.** At 10 evaluations, which sampler would you use on this CPU, and by how much is it better? Does the
# toy's lesson carry over to the U-Net? And at 50 evaluations, why do DDIM and Heun give nearly the same scores?
#
# <details><summary>Answer</summary>
#
# DDIM, by a wide margin. In the run committed with this notebook (200 images), DDIM with 10 evaluations had a
# confident share of 0.785 and a Fréchet distance of 94, Heun with 9 (5 steps) 0.495 and 480 (the model card's 500
# images: 0.764 and 53.4 against 0.452 and 491). Heun's steps overshoot as in section 5, and the overshoot does not
# just blur the digits: the grid above shows other digits than the finer solvers draw from the same noise, and the
# classifier agrees. 0.40 of Heun-9's samples are another digit than Heun-49 makes of the same starting noise,
# against 0.12 of DDIM-10's: the overshooting step throws the path across the boundary between two digits, and the
# solver lands in another mode of the distribution. At 5 evaluations Heun's 3 steps give noise. On DDIM's grid the
# toy's lesson carries over, because the cause is the grid, not the data: the same factors of $\sigma$ per step. At
# 20 evaluations Heun is ahead on the confident share (0.855 against 0.825) but behind on the Fréchet distance (87
# against 72); both now agree with Heun-49 on nearly every digit (0.03 and 0.04 differ). At 50 both solvers are close
# to the ODE's exact solution, so they agree with each other (0.85 and 0.865, 67 and 67; 0.01 of the digits differ);
# what is left between their samples and real digits is the network's error, which no solver removes. (The model
# card's stochastic DDIM, $\eta = 1$, has a higher confident share, 0.876 at 50, than any deterministic sampler here:
# the fresh noise of each step corrects some of the network's errors along the way.) Each evaluation costs about the
# same, so the time column grows with the NFE whatever the solver.
#
# </details>

# %% [markdown]
# ### Heun on a fair grid, on the U-Net
#
# The same question as on the toy, with the course's metric: DDIM and Heun at (at most) 5, 10 and 20 evaluations, each
# on DDIM's grid and on the Karras grid, 500 images from the model card's starting noises (seed 0), measured by
# `benchmarks/solver_grids.py` (its command is printed; the DDIM rows on DDIM's grid repeat the card's):

# %%
# NBVAL_IGNORE_OUTPUT
fair = json.loads((dl.pretrained.WEIGHTS_DIR / "unet_solver_grids.json").read_text())
print(fair["command"], f"({fair['machine_load']})")
print(dl.sweeps.format_rows(fair["scores"], ["budget", "sampler", "grid", "steps", "nfe", "n", "confident_share",
                                             "frechet_distance"]))

# %% [markdown]
# **Question.** What should you conclude about Heun, about the grid, and about which sampler to use for a budget of
# 5, 10 or 20 evaluations on this network?
#
# <details><summary>Answer</summary>
#
# Three things. **The grid belongs to the solver.** The Karras grid helps Heun wherever Heun draws digits (9
# evaluations: confident share 0.640 against 0.452, Fréchet distance 163 against 491; 19: 29.2 against 49.1) and hurts
# DDIM at every budget (5: 0.478 against 0.666; 10: 91.4 against 53.4; 20: 46.1 against 36.8). It takes steps from
# the middle of the range of $\sigma$ (with 10 steps: two levels between 1 and 5 instead of three) and gives them to
# both ends. Heun needs the small steps at the clean end, where its correction overshoots on a step that divides
# $\sigma$ by a large factor (section 5); DDIM on this network does better with them in the middle.
# **Second order does pay, on its grid and from about 20 evaluations:** Heun on the Karras grid with 19 evaluations
# is the best deterministic sampler of the table (0.842 and 29.2, against DDIM's best at 20, 0.800 and 36.8). **Below
# that, DDIM on its own grid:** with 3 steps Heun draws noise on either grid, and at 10 evaluations DDIM (0.764 and
# 53.4) is well ahead of Heun's best (0.640 and 163). So the answer to "which solver?" depends on the budget and on
# the grid, and a comparison on one grid only can mislead. The toy answered differently (there the Karras grid
# helped DDIM, and Heun won only beyond 20 evaluations): which grid suits which solver depends on the data, on the
# noise levels where the prediction $\hat x_0$ changes fastest. Measure quality per network evaluation, with each
# solver on a grid that suits it.
#
# </details>

# %%
# NBVAL_IGNORE_OUTPUT
print(f"this whole notebook ran in {time.perf_counter() - notebook_start:.0f} s ({B.mode} mode) on "
      f"{dl.inspection.machine_description(device)}; load average {os.getloadavg()[0]:.1f} (other jobs share the CPU)")

# %% [markdown]
# ## Exercise: the probability-flow ODE, solved exactly
#
# For most data the ODE has no solution in closed form, which is why the toy's reference above is a 999-evaluation
# Heun run. For Gaussian data it has one, and finding it takes only this notebook's two ideas. Let the data be
# $x_0 \sim \mathcal{N}(m, s^2 I)$ in 2-D (one component of the toy).
#
# 1. With $\bar x = x_0 + \sigma\varepsilon$ (section 4), what is $\varepsilon^*(\bar x) = \mathbb{E}[\varepsilon \mid \bar x]$?
#    ($\bar x$ and $\varepsilon$ are jointly Gaussian, so the average is a linear regression:
#    $\mathbb{E}[\varepsilon \mid \bar x] = \frac{\mathrm{Cov}(\varepsilon, \bar x)}{\mathrm{Var}(\bar x)}\,(\bar x - m)$ per coordinate.)
# 2. Solve $d\bar x / d\sigma = \varepsilon^*(\bar x)$: it separates into a function of $\bar x - m$ times one of $\sigma$.
# 3. Write `gaussian_ode_solution(xbar, sigma, sigma_to, mean, variance)`: points `xbar` of shape `(B, 2, 1, 1)` at
#    noise level `sigma`, moved along the ODE to the level `sigma_to` (floats; the ODE runs both ways); `mean` of shape
#    `(2,)`, `variance` the float $s^2$.
#
# The check compares your function with the exact solution for five steps, and names the mistake if it recognises it.
# Then the experiment: measure DDIM's and Heun's error against your exact ends, on both grids. A worked solution is in
# `solutions/10_ode_view.py`.

# %%
# EXERCISE
def gaussian_ode_solution(xbar: torch.Tensor, sigma: float, sigma_to: float, mean: torch.Tensor,
                          variance: float) -> torch.Tensor:
    """xbar (B, 2, 1, 1) at noise level sigma, moved along the probability-flow ODE of data N(mean, variance I)
    to the level sigma_to; returns (B, 2, 1, 1)."""
    raise NotImplementedError

# %%
dl.exercises.check("10", gaussian_ode_solution);

# %% [markdown]
# **Experiment.** The exact noise prediction of this Gaussian is `dl.toy.ExactEps` of a one-component mixture (below).
# From the 500 starting points `gauss_x_T`, compute the exact clean ends with your solution (from $\sigma_T$, the last
# entry of `dl.samplers.schedule_sigmas(schedule)`, down to 0, starting at $\bar x_T = x_T / \sqrt{\bar\alpha_T}$), then
# `dl.sweeps.solver_errors` at 5, 10, 20 and 50 evaluations with `grids=("uniform", "karras")`. Is Gaussian data, whose
# $\varepsilon^*$ is a straight line in $\bar x$, kinder to Heun than the toy's six components?

# %%
# EXPERIMENT: DDIM and Heun against the exact solution, on both grids
gauss_mean, gauss_variance = torch.tensor([0.4, -0.3], dtype=torch.float64), 0.05
gauss = dl.toy.GaussianMixture(torch.ones(1, dtype=torch.float64), gauss_mean[None],
                               gauss_variance * torch.eye(2, dtype=torch.float64)[None])   # N(mean, variance I)
gauss_eps = dl.toy.ExactEps(gauss, schedule)                                                # its eps*(x_t, t)
gauss_x_T = torch.randn((500, 2, 1, 1), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
gauss_rows = None   # replace None: the rows of dl.sweeps.solver_errors(gauss_eps, gauss_x_T, ...) against your ends

# %%
dl.exercises.check("10-gaussian", gauss_rows);

# %% [markdown]
# <details><summary>What to look for</summary>
#
# With the right exact ends DDIM's error falls like $1/\text{NFE}$ on both grids (it about halves when the evaluations
# double): that is how you know your solution and your reference are right. Gaussian data is no kinder to Heun. In
# the worked solution's run (`solutions/10_ode_view.py`) Heun lands 10 to 21 times further than DDIM at 5 evaluations
# and 3 to 4.5 times at 9 or 10; it draws level at about 20 on DDIM's grid and pulls ahead only at 50 (0.37 of DDIM's
# error on DDIM's grid, 0.56 on the Karras grid). $\varepsilon^*$ is a straight line in $\bar x$, but its slope
# $\sigma/(s^2 + \sigma^2)$ changes fastest around $\sigma \approx s \approx 0.22$, and a step that divides $\sigma$ by a
# large factor across that range overshoots exactly as in section 5's answer: a large step is enough, no complicated
# distribution is needed. The Karras grid shortens DDIM's error by a fifth to two fifths here, but not Heun's at small
# budgets, as on the toy.
#
# </details>

# %% [markdown]
# ## Summary
#
# * A noise predictor is a score estimate: $\nabla \log q_t(x_t) \approx -\varepsilon_\theta(x_t, t)/\sqrt{1-\bar\alpha_t}$.
#   On a 2-D mixture, where $q_t$ and its score are known, a 42k-parameter MLP learns it in seconds: to a few percent
#   (RMS) from `t = 200` on and to about a tenth at `t = 100`, where the data's structure is decided, and only roughly
#   where the noise is tiny, which matters least for sampling.
# * In $\bar x = x/\sqrt{\bar\alpha} = x_0 + \sigma\varepsilon$, one noising path moves with velocity $d\bar x/d\sigma =
#   \varepsilon$; the probability-flow ODE replaces $\varepsilon$ by its average given the point, $d\bar x/d\sigma =
#   \varepsilon^*$, and a DDIM step ($\eta = 0$) is exactly one Euler step of it, with $\varepsilon_\theta$ for
#   $\varepsilon^*$. DDPM solves the reverse SDE, whose drift weighs the score twice: its mean moves along
#   $\varepsilon_\theta$ $1 + \sigma_{t-1}/\sigma_t \approx 1.99$ times as far as DDIM's step, and its fresh noise puts
#   the spread back.
# * A second-order solver (Heun) pays only when every step changes $\sigma$ by a modest factor. On DDIM's grid, evenly
#   spaced in $t$, the last step divides $\sigma$ by 38 to 344: Heun lands further from the toy's exact end than DDIM
#   up to 50 evaluations, and on the U-Net it is far behind at 5 and 9, mixed at 19 (a higher confident share, a worse
#   Fréchet distance) and ahead only at 49. On a grid made for it (Karras et al.'s, evenly spaced in $\sigma^{1/7}$),
#   Heun is the best deterministic sampler of the U-Net at 19 evaluations (0.842 / 29.2, against DDIM's 0.800 / 36.8
#   at 20), while at 5 and 10 DDIM on its own grid stays well ahead; on the toy the same grid helps DDIM instead, and
#   Heun wins there only beyond 20. The grid is part of the solver: measure quality per network evaluation, each
#   solver on a grid that suits it, rather than trust the order of the method.
#
# **Next:** notebook 11, **flow matching**: instead of learning the noise on the DDPM path and converting it into an ODE, learn the
# velocity of a straight path $x_s = (1-s)\,x_0 + s\,\varepsilon$ directly, and sample it with the same Euler and Heun
# steps. Same library, same U-Net, same metric, and the question whether straighter paths need fewer evaluations.
