# %% [markdown]
# # 11 · Flow matching: a straight path, its velocity, and the same network trained to follow it
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/diffusion-course/diffusion-by-code/blob/main/notebooks/11_flow_matching.ipynb)
#
# Notebook 10 read the noise predictor as a score and DDIM as Euler's method on the probability-flow ODE. **Flow
# matching** (Lipman et al. 2023; Liu et al. 2022, "rectified flow"; Albergo & Vanden-Eijnden 2023) starts from the
# ODE instead: choose a path from data to noise, here the straight line $x_s = (1-s)\,x_0 + s\,\varepsilon$, and train
# the network to predict its velocity. Stable Diffusion 3 and Flux are trained this way. This notebook builds it with
# the same library, the same U-Net and the same metric as notebooks 05-10, and measures on this CPU what changes.

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
# - the flow-matching objective: the straight path $x_s = (1-s)\,x_0 + s\,\varepsilon$, its velocity
#   $u = \varepsilon - x_0$, and why it is the DDPM family of Gaussian paths again, under a change of time and scale
#   (with the conversion to v-prediction, checked);
# - the velocity, the noise and the score as one quantity, and why one flow Euler step is exactly one DDIM step;
# - on notebook 10's 2-D toy: the exact velocity field next to a learned one, the flow's paths beside DDIM's, how
#   straight they are, and how accurate Euler and Heun steps are on each ODE (and why: the grid);
# - on MNIST: the course's U-Net trained to predict the velocity (shipped, with its model card), its quality against
#   the number of network evaluations beside the noise-prediction U-Net (with the grid controlled), classifier-free
#   guidance on the velocity, and stochastic sampling with the flow's reverse SDE.
#
# **What you need first:** Notebook 02 (the forward process), 05 (the training loss), 07 (DDIM), 08 (guidance) and
# 10 (the ODE view, the toy and Heun's method).
#
# **Run time:** About 76 seconds in full mode and 21 seconds in quick mode (`DIFFUSION_LIB_QUICK=1`) on a quiet
# 2-core CPU (measured with notebook 10 building on the other core); the outputs below were made while a dozen other jobs shared it, so the last cell before
# the exercise prints a longer time, with the load. The toy network of section 3 trains for `B.toy_train_steps` steps
# (its cell prints how long); the MNIST U-Nets are the shipped ones (`unet_flow`, `unet_flow_cond`), trained by the
# command in their model cards. Section 6 samples `B.sweep_samples` images at 6 settings, section 8 at one more; the
# MNIST control of section 6 is read from a file written by a benchmark run.
# With a GPU it takes seconds.

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
schedule = dl.pretrained_schedule("unet")                  # linear, T = 1000: the code timesteps of every model here
T = schedule.T
classifier = dl.metrics.load_classifier(device=device)    # the course's MNIST classifier (notebook 07)
print(f"device {device}, {B.mode} mode; T = {T}")

# %% [markdown]
# ## 1. The straight path and its velocity
#
# Flow matching mixes a clean image $x_0$ and a noise $\varepsilon \sim \mathcal{N}(0, I)$ along a straight line,
# for a time $s$ from 0 (the data) to 1 (pure noise):
#
# $$x_s = (1-s)\,x_0 + s\,\varepsilon, \qquad \frac{dx_s}{ds} = \varepsilon - x_0 =: u .$$
#
# Along one such line the velocity $u$ is constant. The network $u_\theta(x_s, s)$ is trained to predict it from $x_s$
# alone, with the squared error of notebook 05 and a new target:
#
# $$L = \mathbb{E}_{x_0, \varepsilon, s}\, \big\| (\varepsilon - x_0) - u_\theta(x_s, s) \big\|^2 .$$
#
# As for the noise, the best it can do is the average of the targets that could have produced $x_s$, $u^*(x_s, s) =
# \mathbb{E}[\varepsilon - x_0 \mid x_s]$, and the ODE $dx/ds = u^*$ carries the noise distribution at $s = 1$ to the
# data at $s = 0$ (Lipman et al. 2023, Theorem 1).
#
# This is notebook 10's argument again. There, along one noising path $\bar x = x_0 + \sigma\,\varepsilon$ moves with
# $d\bar x/d\sigma = \varepsilon$, and the probability-flow ODE replaces $\varepsilon$ by its average given $\bar x$,
# $\varepsilon^*$. Here, along one straight line $x_s$ moves with $\varepsilon - x_0$, and the ODE replaces it by its
# average given $x_s$. A path for one pair, then the average over all the pairs that pass through the same point: the
# same idea both times (section 5 shows that the two ODEs even take the same steps).
#
# **Which way time runs.** Here $s = 0$ is the data and $s = 1$ the noise, as in rectified flow (Liu et al. 2022) and
# Stable Diffusion 3. Lipman et al. (2023) and Meta's Flow Matching Guide (Lipman et al. 2024) put the noise at time 0
# and the data at time 1 (their $x_0$ is the noise), so their velocity is $x_{\text{data}} - \varepsilon$, the
# negative of $u$ here, and their sampler integrates forward in time. Check the convention before borrowing a formula.
#
# The course keeps its integer timesteps: the code timestep `t` in `0..T-1` stands for $s = (t+1)/T$, so the U-Net,
# its time embedding and the trainer are those of notebook 05. The objective is one more class in `dl.objectives`; its
# noisy input and its target:

# %%
# NBVAL_CHECK_OUTPUT
print(inspect.getsource(dl.objectives.flow_interpolant))
print(inspect.getsource(dl.objectives.FlowMatching.target))

# %% [markdown]
# Eight test digits on the straight path, beside the same digits and noises on notebook 02's DDPM path at the same
# code timestep, $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon$:

# %%
# NBVAL_IGNORE_OUTPUT
test_images, test_labels = dl.load_mnist(train=False)      # (10000, 1, 28, 28) in [-1, 1], (10000,)
x0_digits = test_images[:8]
eps_digits = torch.randn(x0_digits.shape, generator=torch.Generator().manual_seed(0))
flow_states = torch.stack([dl.objectives.flow_interpolant(x0_digits, eps_digits, dl.objectives.flow_time(
    torch.full((8,), t), T)) for t in range(T)])                                          # (T, 8, 1, 28, 28)
ddpm_states = torch.stack([dl.q_sample(x0_digits, torch.full((8,), t), schedule, eps_digits) for t in range(T)])
paths_at = {t: {"flow: x_s": flow_states[t], "DDPM: x_t": ddpm_states[t]} for t in range(T)}
titles_at = {t: f"t = {t}: flow s = {(t + 1) / T:.3f}, signal factor 1 - s = {1 - (t + 1) / T:.3f}; "
                f"DDPM sqrt(alpha_bar) = {float(schedule.sqrt_alpha_bar[t]):.3f}" for t in range(T)}
dl.widgets.slider_view(dl.plotting.labelled_grid_slider(lambda t: paths_at[t], lambda t: titles_at[t]),
                       values=range(T), description="t", value=499)

# %%
strip = [0, 99, 249, 499, 749, 999]
dl.plotting.show_rows({f"test image {i} (a {int(test_labels[i])}), {name}": torch.cat([paths_at[t][name][i:i + 1]
                                                                                      for t in strip])
                       for i in range(3) for name in ("flow: x_s", "DDPM: x_t")},
                      col_labels=[f"t = {t}" for t in strip], title="the first 3 test images on both paths, same noise");

# %% [markdown]
# **Question.** At $t = 499$ the flow's digits are still plain to see and the DDPM's are nearly gone. Is the straight
# path "less noisy"? What does the picture compare, and what would be a fair comparison?
#
# <details><summary>Answer</summary>
#
# It compares the two paths at the same *clock*, and the clocks run differently. What decides how recognisable an
# image is is its signal-to-noise ratio: $(1-s)^2/s^2$ on the flow, $\bar\alpha_t/(1-\bar\alpha_t)$ on the DDPM path.
# At $t = 499$ the first is 1, the second about 0.09: the linear schedule destroys the signal much earlier. Both paths
# go through every signal-to-noise ratio from infinity to 0; at equal ratios their images are the same up to a scale
# (next section). The fair comparison is therefore at equal signal-to-noise ratio, and what differs between the two
# objectives is not which noisy images the network sees but how the training spreads over the noise levels (the flow
# draws $s$ uniformly, so it spends much more of its training at the middle ratios) and what quantity it predicts.
#
# </details>

# %% [markdown]
# ## 2. The same family of paths: the conversion to the DDPM path and to v-prediction
#
# Divide the flow's state by $c_s = \sqrt{(1-s)^2 + s^2}$:
#
# $$\frac{x_s}{c_s} = \frac{1-s}{c_s}\,x_0 + \frac{s}{c_s}\,\varepsilon = \sqrt{\bar\alpha}\,x_0 + \sqrt{1-\bar\alpha}\,
# \varepsilon \quad\text{with}\quad \sqrt{\bar\alpha} = \frac{1-s}{c_s} ,$$
#
# the DDPM path's state at the noise level $\bar\alpha$ (its two coefficients' squares add up to 1). So $x_s$ is a DDPM
# state, rescaled, at a retimed noise level.
#
# The velocity converts to the v of v-prediction (Salimans & Ho 2022, $v = \sqrt{\bar\alpha}\,\varepsilon -
# \sqrt{1-\bar\alpha}\,x_0$, the target of `dl.objectives.PredictV`). $v$ is a velocity too, in an angle: write
# $\sqrt{\bar\alpha} = \cos\varphi$ and $\sqrt{1-\bar\alpha} = \sin\varphi$; then $x_{\mathrm{vp}} = \cos\varphi\,x_0 +
# \sin\varphi\,\varepsilon$ and $v = dx_{\mathrm{vp}}/d\varphi$. On the flow $\tan\varphi = s/(1-s)$, so
# $d\varphi/ds = 1/c_s^2$, and with $x_{\mathrm{vp}} = x_s/c_s$ and $dc_s/ds = (2s-1)/c_s$:
#
# $$v = \frac{dx_{\mathrm{vp}}}{d\varphi} = c_s^2\,\frac{d}{ds}\frac{x_s}{c_s} = c_s^2\Big(\frac{u}{c_s} -
# \frac{(2s-1)\,x_s}{c_s^3}\Big) = c_s\,u - \frac{(2s-1)\,x_s}{c_s} .$$
#
# `dl.objectives.flow_as_vp` and `dl.objectives.v_from_flow_velocity` are these two conversions; a check on real
# digits:

# %%
# NBVAL_CHECK_OUTPUT
s = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9, 1.0, 0.2, 0.6])                    # one flow time per digit
x_s = dl.objectives.flow_interpolant(x0_digits, eps_digits, s)
c, sqrt_ab = dl.objectives.flow_as_vp(s)
c4, a4 = c.reshape(-1, 1, 1, 1), sqrt_ab.reshape(-1, 1, 1, 1)
vp_state = a4 * x0_digits + (1 - a4 ** 2).sqrt() * eps_digits                # the DDPM path at alpha_bar = sqrt_ab^2
v_exact = a4 * eps_digits - (1 - a4 ** 2).sqrt() * x0_digits                 # v-prediction's target there
v_from_u = dl.objectives.v_from_flow_velocity(eps_digits - x0_digits, x_s, s)
print("x_s / c_s is the DDPM state (to float32 rounding, 1e-5):", torch.allclose(x_s / c4, vp_state, atol=1e-5))
print("v from the velocity is v-prediction's target (to 1e-5):", torch.allclose(v_from_u, v_exact, atol=1e-5))
print("alpha_bar of the flow times", [round(float(a) ** 2, 4) for a in sqrt_ab])

# %% [markdown]
# Which target is harder to learn? Not the larger one: size is not difficulty. What no network can remove is the spread
# of the target given its input, $\mathbb{E}\,\mathrm{Var}(\text{target} \mid x_s)$. For Gaussian data it is in closed
# form. A model of the digits' pixels: each pixel $\sim \mathcal{N}(m, \sigma_{\mathrm{data}}^2)$ with MNIST's pixel
# variance $\sigma_{\mathrm{data}}^2$; then $\mathrm{Var}(\varepsilon \mid x_s) = (1-s)^2 \sigma_{\mathrm{data}}^2 /
# ((1-s)^2 \sigma_{\mathrm{data}}^2 + s^2)$ and, since $u = (\varepsilon - x_s)/(1-s)$ at fixed
# $x_s$, $\mathrm{Var}(u \mid x_s) = \mathrm{Var}(\varepsilon \mid x_s)/(1-s)^2$. The last two columns say how an error
# of the network reaches the clean image the sampler steps towards: $\hat x_0 = x_s - s\,u$ multiplies an error of $u$
# by $s$; $\hat x_0 = \bar x - \sigma\,\varepsilon$ (notebook 10) multiplies an error of $\varepsilon$ by
# $\sigma = s/(1-s)$.

# %%
# NBVAL_CHECK_OUTPUT
data_variance = float(test_images.var())
print(f"Gaussian pixels with MNIST's pixel variance sigma_data^2 = {data_variance:.3f}")
print("   s   E Var(eps | x_s)   E Var(u | x_s)   x0_hat error per unit error of eps (sigma)   of u (s)")
for s_ in [0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99]:
    var_eps = (1 - s_) ** 2 * data_variance / ((1 - s_) ** 2 * data_variance + s_ ** 2)
    print(f"{s_:5.2f}   {var_eps:16.3g}   {var_eps / (1 - s_) ** 2:14.3g}   {s_ / (1 - s_):42.3g}   {s_:8.2f}")
sigma_999 = float(((1 - schedule.alpha_bar[T - 1]) / schedule.alpha_bar[T - 1]).sqrt())
print(f"the DDPM path's largest noise level, at t = {T - 1}: sigma = {sigma_999:.0f}")

# %% [markdown]
# **Question.** If the paths are the same family, why train on the straight one at all? Name one thing that really
# differs between a flow-matching network and a noise-prediction network of notebook 05.
#
# <details><summary>Answer</summary>
#
# Three things differ, none of them the set of noisy images. (1) The **target**. Near the data the two are one
# problem: $u$'s irreducible error is $\varepsilon$'s divided by $(1-s)^2$, 1.02 times it at $s = 0.01$ in the table.
# Towards the noise they part: $\varepsilon$ becomes trivial ($x_s$ is nearly $\varepsilon$: its irreducible error
# is 0.0047 at $s = 0.9$), while $u$ must predict $x_0$ (0.47 there, tending to the data's variance). What favours
# $u$ is where a network's errors land: the sampler's clean image $\hat x_0 = x_s - s\,u$ receives an error of $u$
# multiplied by $s \le 1$, while an error of $\varepsilon$ is multiplied by $\sigma = s/(1-s)$, 9 at $s = 0.9$ and up
# to 157 at the DDPM path's last timestep, `t = 999`. (2) The **weighting over noise levels**: drawing
# $s$ uniformly puts much more training at middle signal-to-noise ratios than drawing $t$ uniformly on the linear
# schedule (section 1's picture). (3) The **ODE a sampler solves**: $dx/ds = u$ in the flow's own time and scale. The
# exact solutions are the same curves up to the scale $c_s$ (section 4 measures it), but a sampler with a few steps
# takes them at different places, so the errors differ (for Euler's method that is the whole difference: section 5).
#
# </details>

# %% [markdown]
# ## 3. The toy again: the exact velocity field and a learned one
#
# On notebook 10's mixture of six Gaussians everything stays in closed form: $x_s$ is again a mixture, with means
# $(1-s)\mu_k$ and covariances $(1-s)^2\Sigma_k + s^2 I$ (`dl.toy.flow_mixture`), and given the component all of
# $x_0$, $\varepsilon$, $x_s$ are jointly Gaussian, so within a component the best guess of $u$ is a linear regression
# on $x_s$. $u^* = \mathbb{E}[\varepsilon - x_0 \mid x_s]$ is the six regressions averaged with weights $r_k(x_s)$, the
# **responsibilities**: the probability that $x_s$ came from component $k$, by Bayes' rule $r_k(x) = \pi_k\,
# \mathcal{N}(x; (1-s)\mu_k, C_k)/p_s(x)$ with $C_k = (1-s)^2\Sigma_k + s^2 I$ (`dl.toy.exact_velocity`,
# `dl.toy.responsibilities`). The tests check it against the score of $p_s$, by automatic differentiation of
# $\log p_s$, through Tweedie's formula (stated at the end of this section). The same `dl.PointMLP` as in notebook 10,
# with the same trainer and settings, now trained with `objective="flow"`:

# %%
# NBVAL_IGNORE_OUTPUT
mixture = dl.toy.ring_mixture(num_components=6, radius=0.7, std=0.1)
data = dl.toy.mixture_sample(mixture, 20_000, torch.Generator().manual_seed(0))            # (20000, 2, 1, 1)
toy_config = dl.TrainConfig(backbone="point_mlp", objective="flow", steps=B.toy_train_steps, batch_size=256,
                            lr=1e-2, warmup_steps=50, lr_decay="cosine", ema_decay=0.995, seed=0)
toy_run, toy_seconds = dl.sweeps.timed(dl.train, toy_config, data, progress=False)   # seconds: no bar
toy_net = toy_run.ema
print(f"PointMLP, {dl.count_parameters(toy_net):,} parameters, flow matching: {toy_run.step} steps in "
      f"{toy_seconds:.1f} s; mean loss of the last 100 steps {sum(toy_run.history['loss'][-100:]) / 100:.3f}")

# %% [markdown]
# The fields as arrows over the shaded density of $x_s$: the exact velocity (left), the network's (middle) and their
# difference (right), at every code timestep (the slider), and a strip of five. The slider's value is the code
# timestep `t`; the flow time is $s = (t+1)/T$.

# %%
# NBVAL_IGNORE_OUTPUT
grid = dl.toy.grid_points(1.4, 15)                                                    # (225, 2, 1, 1)
exact_velocity = dl.toy.ExactVelocity(mixture, T)      # u*(x_s, s) as a model: the flow samplers can call it too


velocity_fields = {"exact": {t: exact_velocity(grid, torch.full((grid.shape[0],), t)) for t in range(T)},
                   "learned": {t: dl.toy.learned_velocity(toy_net, grid, t) for t in range(T)}}
velocity_fields["learned - exact"] = {t: velocity_fields["learned"][t] - velocity_fields["exact"][t] for t in range(T)}
flow_density = lambda t: dl.toy.flow_mixture(mixture, (t + 1) / T)       # noqa: E731  (the shading: p_s)
velocity_title = r"the velocity $u(x, s)$ (arrows) over the density of $x_s$ (shaded)"
dl.widgets.slider_view(dl.plotting.field_slider(grid, velocity_fields, mixture, schedule, title=velocity_title,
                                                density_at=flow_density, quantity="velocity"),
                       values=range(T), description="t", value=299)

# %%
dl.plotting.plot_score_fields(grid, velocity_fields, [49, 199, 499, 799, 999], mixture, schedule,
                              title=velocity_title, density_at=flow_density, quantity="velocity");

# %% [markdown]
# **One quantity, three names.** Since $x_s = (1-s)\,x_0 + s\,\varepsilon$, the state and any one of $\varepsilon$,
# $x_0$, $u$ give the other two: $\varepsilon = x_s + (1-s)\,u$. Both sides are linear, so the same holds for the best
# guesses, and the score of $p_s$ joins them:
#
# $$u^* = \frac{\varepsilon^* - x_s}{1-s}, \qquad \nabla \log p_s(x_s) = -\frac{\varepsilon^*}{s},
# \qquad \varepsilon^* = \mathbb{E}[\varepsilon \mid x_s] .$$
#
# The second is **Tweedie's formula** on this path: given $x_0$, the score of $x_s$ is $-\varepsilon/s$, and the score
# of $p_s$ is that average given $x_s$. So a velocity network is also a noise predictor and a score model
# (`dl.objectives.eps_from_flow_velocity`, `flow_velocity_from_eps`, `score_from_flow_velocity`). On the toy in float64,
# from the exact velocity: $\varepsilon^*$ against notebook 10's exact noise prediction at the DDPM state $x_s/c_s$ of
# the same level (section 2), and $-\varepsilon^*/s$ against the score of the density $p_s$:

# %%
# NBVAL_CHECK_OUTPUT
points64 = dl.toy.grid_points(1.4, 15, dtype=torch.float64)                               # (225, 2, 1, 1)
mixture64 = mixture.to(points64)
for s_ in (0.1, 0.5, 0.9):
    u_star = dl.toy.exact_velocity(mixture64, points64, s_)
    c_s, sqrt_ab_s = dl.objectives.flow_as_vp(torch.tensor(s_, dtype=torch.float64))
    eps_ddpm = -(1 - sqrt_ab_s ** 2).sqrt() * dl.toy.q_t_score(mixture64, points64 / c_s, float(sqrt_ab_s) ** 2)
    eps_star = dl.objectives.eps_from_flow_velocity(u_star, points64, s_)
    score = dl.objectives.score_from_flow_velocity(u_star, points64, s_)
    score_of_p_s = dl.toy.q_t_score(dl.toy.flow_mixture(mixture64, s_), points64)
    print(f"s = {s_}: eps* from u* is notebook 10's eps* (to 1e-10): {torch.allclose(eps_star, eps_ddpm, atol=1e-10)}; "
          f"-eps*/s is the score of p_s: {torch.allclose(score, score_of_p_s, atol=1e-10)}")

# %% [markdown]
# Where does a point choose its component? Two equal Gaussians make two bumps only when their means are more than two
# standard deviations apart; below that the density between them has no dip. On the flow's ring, neighbouring means
# are $0.7\,(1-s)$ apart and each component's spread is $\sqrt{0.01\,(1-s)^2 + s^2}$. Beside that ratio, how well
# $x_s$ tells its component: the largest responsibility, averaged over draws of $x_s$ (1/6 is a blind guess):

# %%
# NBVAL_CHECK_OUTPUT
print("   s   neighbours' distance / (2 spreads)   mean largest responsibility")
for s_ in [0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7]:
    p_s = dl.toy.flow_mixture(mixture, s_)
    ratio = float((p_s.means[0] - p_s.means[1]).norm()) / (2 * float(p_s.covariances[0, 0, 0]) ** 0.5)
    draws = dl.toy.mixture_sample(p_s, 4000, torch.Generator().manual_seed(1))
    certainty = float(dl.toy.responsibilities(p_s, draws).max(dim=1).values.mean())
    print(f"{s_:5.2f}   {ratio:34.2f}   {certainty:27.2f}")

# %% [markdown]
# **Question.** At $s = 1$ (`t = 999`) the exact arrows form a perfectly regular pattern pointing away from the
# centre. Which field is it, and why does a velocity field exist there at all, where $x_1$ is pure noise and says
# nothing about the digit, or here the component, it will become?
#
# <details><summary>Answer</summary>
#
# At $s = 1$, $x_1 = \varepsilon$ is independent of $x_0$, so the best guess of $\varepsilon - x_0$ is
# $x_1 - \mathbb{E}[x_0]$: here $x_1$ itself, since the ring's mean is 0 (`dl.toy.exact_velocity` returns exactly that;
# the tests check it). It points away from the centre because $u$ points from the data to the noise: a sampler
# moves *against* it, $x_{s-ds} = x_s - ds\,u$, towards the centre of the data. So the first steps of a flow sampler
# only pull every point towards the data's mean; the choice of a component is made later, near $s \approx 0.25$:
# there the ring's neighbouring components stop overlapping (the distance between their means passes two spreads,
# ratio 1.01 in the table) and a draw of $x_s$ names its component with probability 0.69 on average, against 0.33 at
# $s = 0.5$ and 0.98 at $s = 0.1$. The strip's $s = 0.5$ panel (`t = 499`) still shows one round bump; the density
# has six bumps only in its $s = 0.2$ and $s = 0.05$ panels (`t = 199`, `t = 49`). The network has learned both regimes; its largest errors
# are near $s = 0$ in the corners, where no training point ever is.
#
# </details>

# %% [markdown]
# ## 4. Paths: the flow's ODE beside DDIM's, and how straight they are
#
# Sampling follows the ODE $dx/ds = u$ from $s = 1$ to $s = 0$. Euler's method over $N$ steps of equal $ds = 1/N$ is
# `dl.samplers.flow_euler_step`, one line like DDIM's:

# %%
# NBVAL_CHECK_OUTPUT
print(inspect.getsource(dl.samplers.flow_euler_step))

# %% [markdown]
# From the same starting noises, three chains of 1000 steps: the flow's ODE with the exact velocity and with the
# network, and notebook 10's DDIM with the exact noise prediction. Their ends, and their **straightness**: the length
# of each path divided by the distance between its ends (`dl.inspection.path_straightness`; 1 is a straight line).

# %%
# NBVAL_IGNORE_OUTPUT
starts = torch.randn((B.toy_points // 4, 2, 1, 1), generator=torch.Generator().manual_seed(4))   # x_1 = x_T, one per point
exact_eps = dl.toy.ExactEps(mixture, schedule)
chains = {"flow, exact u": dl.record(dl.samplers.flow_euler_sample_progressive(exact_velocity, starts, schedule, T)),
          "flow, the network": dl.record(dl.samplers.flow_euler_sample_progressive(toy_net, starts, schedule, T)),
          "DDIM, exact eps": dl.record(dl.ddim_sample_progressive(exact_eps, starts, schedule, num_steps=T))}
for name, chain in chains.items():
    ratio = dl.inspection.path_straightness(chain)
    distance = (dl.toy.as_xy(chain.sample)[:, None] - mixture.means).norm(dim=-1).min(1).values
    print(f"{name:>17}: straightness median {float(ratio.median()):.3f} (quartiles {float(ratio.quantile(0.25)):.3f}-"
          f"{float(ratio.quantile(0.75)):.3f}); {float((distance < 0.3).float().mean()):.3f} of the ends within 0.3 of a mean")
gap = (chains["flow, exact u"].sample - chains["DDIM, exact eps"].sample).flatten(1).norm(dim=1)
print(f"distance between the ends of the two exact ODEs from the same start: mean {float(gap.mean()):.4f}, "
      f"max {float(gap.max()):.4f} (the ring's components are 0.7 apart)")

# %% [markdown]
# The recorded states at each step, every point's last 20 steps as a trail, over the density of its own path's state
# (the flow's $x_s$ for the first two, notebook 10's $q_t$ for DDIM); a strip under the slider.

# %%
# NBVAL_IGNORE_OUTPUT
path_density = {"flow, exact u": flow_density, "flow, the network": flow_density, "DDIM, exact eps": None}
path_title = "the same starting points on each ODE: the points and their last 20 steps, over their path's density"
dl.widgets.slider_view(dl.plotting.toy_trajectory_slider(chains, mixture, schedule, trail=20, show=8,
                                                         density_at=path_density, title=path_title),
                       values=range(T + 1), description="step", value=700)

# %%
dl.plotting.plot_toy_trajectories(chains, [0, 300, 500, 700, 900, T], mixture, schedule, trail=None, show=8,
                                  density_at=path_density,
                                  title="the same starting points on each ODE: whole paths, over their path's density");

# %% [markdown]
# **Question.** Every training pair moves along a straight line, yet the flow's paths are *less* straight than
# DDIM's by this measure, and the two exact ODEs end in the same place from the same start. Explain both. (Use
# section 2.)
#
# <details><summary>Answer</summary>
#
# The lines of the training pairs cross each other: through one $x_s$ pass lines towards many data points, and the
# velocity the ODE follows is their average, which turns as $s$ falls. The marginal paths are straight only if no two
# lines cross, which the random pairing of data and noise does not give (reflow, Liu et al. 2022, re-pairs them to
# straighten the paths). Both ODEs carry the same family of densities: by section 2, $x_s / c_s$ is a DDPM state, and
# the probability-flow ODE of notebook 10 is the same curve in those coordinates, run on another clock. So with the
# exact fields a start has one end, whichever ODE carries it there (the printed mean gap, 0.0012, is under a
# five-hundredth of the 0.7 between components: what 1000 Euler steps leave). The difference in straightness is the scale: the flow's state is
# $c_s$ times DDIM's, and $c_s$ dips to $1/\sqrt 2$ at $s = 1/2$, so the flow's paths sag towards the centre halfway
# and swing back out, which adds length. Straight conditional paths do not make straight sampling paths; how fast the
# velocity changes along them, which decides how well a coarse solver follows them, the next section measures.
#
# </details>

# %% [markdown]
# ## 5. Which ODE suits a coarse solver? Measured where the answer is known
#
# Notebook 10 measured DDIM (Euler) and Heun against the exact end of the probability-flow ODE. The flow's ODE with
# the exact velocity has the same exact end (section 4), so all four solvers can be measured against one reference:
# Euler and Heun in the flow's time ($N$ equal steps in $s$), DDIM and Heun on DDIM's grid (equal steps in $t$). The
# reference is the flow Heun with 500 steps.

# %%
# NBVAL_IGNORE_OUTPUT
ode_starts = torch.randn((B.toy_points // 2, 2, 1, 1), generator=torch.Generator().manual_seed(5))
reference_ends = dl.sweeps.ode_images(exact_velocity, ode_starts, schedule, "flow Heun", 500)
toy_nfes = [2, 5, 10, 20, 50, 100]
solver_rows = (dl.sweeps.solver_errors(exact_velocity, ode_starts, schedule, toy_nfes, reference_ends,
                                       samplers=dl.sweeps.FLOW_SAMPLERS)
               + dl.sweeps.solver_errors(exact_eps, ode_starts, schedule, toy_nfes, reference_ends))
print(dl.sweeps.format_rows(solver_rows, ["sampler", "steps", "nfe", "mean_error", "max_error"]))

# %%
dl.plotting.plot_solver_errors(solver_rows, title="the toy, exact fields: distance to the ODE's exact end");

# %% [markdown]
# **Flow Euler is DDIM.** Put the straight path in notebook 10's variables, $\bar x = x_s/(1-s)$ and
# $\sigma = s/(1-s)$: dividing $x_s = (1-s)\,x_0 + s\,\varepsilon$ by $1-s$ gives $\bar x = x_0 + \sigma\,\varepsilon$,
# notebook 10's path. With $u = (\varepsilon - x_s)/(1-s)$, one flow Euler step $x_{s'} = x_s + (s'-s)\,u$ gives
# $x_{s'}/(1-s') = x_s/(1-s) + (s'-s)\,\varepsilon/((1-s)(1-s'))$, and $(s'-s)/((1-s)(1-s')) = \sigma' - \sigma$:
#
# $$\bar x' = \bar x + (\sigma' - \sigma)\,\varepsilon ,$$
#
# one DDIM step between the noise levels $\sigma$ and $\sigma'$, exactly. Flow Euler and DDIM are one solver on one
# ODE; they differ only in the levels they step through. `dl.samplers.flow_matched_timesteps(N, schedule)` picks the
# linear schedule's timesteps nearest to the flow grid's levels, and `dl.ddim_sample_progressive(...,
# timesteps=...)` walks them. DDIM with the exact $\varepsilon^*$ on that grid, beside the rows above (the small
# differences come from rounding the levels to integer timesteps; `tests/test_samplers.py` proves the identity to
# 1e-10 on matched levels, and the exercise below asks you to):

# %%
# NBVAL_IGNORE_OUTPUT
print("the matched grid for 10 steps:", dl.samplers.flow_matched_timesteps(10, schedule), "(DDIM's own:",
      dl.ddim_timesteps(10, T), ")")
errors_at = {(r["sampler"], r["nfe"]): r["mean_error"] for r in solver_rows}
grid_rows = []
for n in toy_nfes:
    on_flow_grid = dl.final(dl.ddim_sample_progressive(exact_eps, ode_starts, schedule,
                                                       timesteps=dl.samplers.flow_matched_timesteps(n, schedule)))
    grid_rows.append({"nfe": n, "flow Euler": errors_at[("flow Euler", n)], "DDIM, its grid": errors_at[("DDIM", n)],
                      "DDIM, the flow's grid": float((on_flow_grid - reference_ends).flatten(1).norm(dim=1).mean())})
print("mean distance to the exact end:")
print(dl.sweeps.format_rows(grid_rows, ["nfe", "flow Euler", "DDIM, the flow's grid", "DDIM, its grid"]))

# %% [markdown]
# So the grid is the whole difference. The two grids in log-SNR, $\log(\bar\alpha/(1-\bar\alpha)) = -2\log\sigma$,
# with 10 steps each (the flow's at $s = (t+1)/T$: $2\log((1-s)/s)$), and the factor by which each step divides
# $\sigma$:

# %%
# NBVAL_CHECK_OUTPUT
ddim_grid, flow_grid = dl.ddim_timesteps(10, T), dl.samplers.flow_timesteps(10, T)
ddim_log_snr = [float(schedule.log_snr[t]) for t in ddim_grid]
flow_s = [(t + 1) / T for t in flow_grid]
flow_log_snr = [2 * torch.log(torch.tensor((1 - s_) / s_)).item() if s_ < 1 else -float("inf") for s_ in flow_s]
print("step | DDIM: t  log-SNR  sigma / next sigma | flow: s  log-SNR  sigma / next sigma")
for k in range(10):
    ddim_ratio = torch.exp(torch.tensor((ddim_log_snr[k + 1] - ddim_log_snr[k]) / 2)).item() if k < 9 else None
    flow_ratio = torch.exp(torch.tensor((flow_log_snr[k + 1] - flow_log_snr[k]) / 2)).item() if 0 < k < 9 else None
    fmt = lambda r: f"{r:18.1f}" if r is not None else f"{'-':>18}"   # noqa: E731
    print(f"{k:4d} | {ddim_grid[k]:7d}  {ddim_log_snr[k]:7.2f}  {fmt(ddim_ratio)} | {flow_s[k]:7.1f}  "
          f"{flow_log_snr[k]:7.2f}  {fmt(flow_ratio)}")
print("then both step to the clean image (log-SNR +inf). The components separate at s = 0.25: log-SNR "
      f"{2 * torch.log(torch.tensor(3.0)).item():.2f}")

# %% [markdown]
# How fast the exact velocity changes along the exact paths of section 4 (1000 steps from the same starting points):
# $|du/ds|$ between consecutive recorded steps, with $u = (x_s - \hat x_0)/s$ read off each step.

# %%
# NBVAL_IGNORE_OUTPUT
exact_chain = chains["flow, exact u"]
chain_s = torch.tensor([(t + 1) / T for t in exact_chain.timesteps])                        # (1000,) from 1 down
chain_u = (exact_chain.x_t - exact_chain.x0_pred) / chain_s.reshape(-1, 1, 1, 1, 1)          # (1000, B, 2, 1, 1)
du_ds = (chain_u[:-1] - chain_u[1:]).flatten(2).norm(dim=2) / (chain_s[:-1] - chain_s[1:]).reshape(-1, 1)
print("    s   |du/ds| along the paths: median   mean   90th percentile")
for target in [0.95, 0.7, 0.5, 0.3, 0.2, 0.1, 0.05, 0.02]:
    k = int((chain_s[:-1] - target).abs().argmin())
    print(f"{target:5.2f}   {float(du_ds[k].median()):31.2f}   {float(du_ds[k].mean()):5.2f}   "
          f"{float(du_ds[k].quantile(0.9)):15.2f}")

# %% [markdown]
# **Question.** Flow Euler and DDIM take the same step, yet at 10 evaluations the flow's grid lands about four times
# closer to the exact end than DDIM's. Read the log-SNR table: what does DDIM's grid do wrong on this toy? And why does
# Heun not beat Euler on the flow before about 50 evaluations?
#
# <details><summary>Answer</summary>
#
# DDIM's grid, even steps in `t` on the linear schedule, spends 7 of its 10 evaluations below log-SNR 0, where the
# field only pulls every point towards the centre, and then crosses the range where the components separate
# (log-SNR 2.2, $s = 0.25$) in one step, from 1.93 to 9.21, dividing $\sigma$ by 38. The flow's grid, even in $s$,
# has steps at log-SNR 1.69 and 2.77 on either side of it. Neither grid is even in log-SNR: the flow's divides
# $\sigma$ by 1.5 in the middle and by 2.2 near both ends, DDIM's by 2.9 at its first step. And the grid is the
# whole difference: on the flow's grid DDIM lands 0.043 from the exact end, as flow Euler does, against 0.18 on its
# own.
#
# Heun's correction is only as good as the assumption that the slope changes little over a step, and the velocity
# changes fastest at the clean end: the median $|du/ds|$ grows from 0.36 at $s = 0.95$ to 2.4 at $s = 0.5$ and 12
# at $s = 0.02$, once each point is inside its component and is pulled to where in it it will end. Flow Heun with 5
# steps (9 evaluations) takes its last step, from $s = 0.2$ to 0, as a plain Euler step (the network has no level at
# $s = 0$ to correct with), twice as long as flow Euler's last step at 10 evaluations, exactly where the velocity
# changes most. (In the printed rows, at 10 evaluations: flow Euler 0.043, flow Heun with 9 evaluations 0.065, DDIM
# 0.18, Heun with 9 evaluations 0.41, as in notebook 10.)
#
# </details>

# %% [markdown]
# ## 6. MNIST: the U-Net trained to predict the velocity
#
# The shipped `unet_flow` is the U-Net of `unet` (base 16, channel multipliers (1, 2, 8), 684k parameters), trained
# with `--objective flow` and otherwise the first training command of `unet`'s model card, for the same 12,000 steps:
# see `diffusion_lib/weights/unet_flow.md` (command, commit, wall time, machine, scores). The shipped `unet` itself
# trained for 35,000 steps; after its first 12,000, with the same command but the objective, it scored 0.794 / 45.2
# (confident share / Fréchet distance, DDIM 50, 500 images), which is the fair comparison at equal training compute.
# Sampling is `dl.samplers.flow_euler_sample_progressive` from pure noise:

# %%
# NBVAL_IGNORE_OUTPUT
flow_model = dl.load_pretrained("unet_flow", device=device)
eps_model = dl.load_pretrained("unet", device=device)
print(f"unet_flow: {dl.count_parameters(flow_model):,} parameters, objective "
      f"{dl.pretrained.pretrained_objective('unet_flow')!r}; unet: objective {dl.pretrained.pretrained_objective('unet')!r}")
x_1 = dl.sample_noise(B.n_samples, generator=torch.Generator().manual_seed(0), device=device)
flow_samples = dl.final(dl.samplers.flow_euler_sample_progressive(flow_model, x_1, schedule, num_steps=20,
                                                                  progress=True))

# %%
dl.plotting.show_grid(flow_samples, nrow=8, title="unet_flow: flow Euler, 20 steps (20 network evaluations)");

# %% [markdown]
# Quality against network evaluations, live: the flow U-Net under flow Euler and flow Heun at (at most) 5, 10 and 20
# evaluations on `B.sweep_samples` images, from the same starting noises, each timed (`dl.sweeps.nfe_sweep`); 50
# evaluations are in the cards' table below.

# %%
# NBVAL_IGNORE_OUTPUT
reference = dl.metrics.reference_scores(classifier, n=B.sweep_samples, with_features=True)
nfe_x_T = dl.sample_noise(B.sweep_samples, generator=torch.Generator().manual_seed(6), device=device)
nfe_rows, nfe_images = dl.sweeps.nfe_sweep(flow_model, nfe_x_T, schedule, [5, 10, 20], classifier,
                                           reference["test_features"], samplers=dl.sweeps.FLOW_SAMPLERS)
print(dl.sweeps.format_rows(nfe_rows, ["sampler", "steps", "nfe", "n", "seconds_per_image", "confident_share",
                                       "frechet_distance"]))
print(f"real digits: confident share {reference['test_confident_share']:.3f} (test set); Frechet distance of "
      f"{B.sweep_samples} training digits {reference['train_vs_test_frechet_distance']:.1f}")
print("measured on:", dl.inspection.machine_description(device))

# %% [markdown]
# And the full comparison at 500 images (seed 0), from the model cards' files (`unet.json`, `unet_flow.json`, written
# by `benchmarks/evaluate.py` and reproduced by `python benchmarks/run.py --sections nfe cards`): both U-Nets, every
# deterministic sampler, at the same budgets. Their sampling times are left out of the picture: they were measured on
# the machine of the cards, not this one.

# %%
# NBVAL_IGNORE_OUTPUT
card_rows = [{"model": name, "sampler_name": dl.sweeps.SAMPLER_LABELS[r["sampler"]], **r, "seconds_per_image": None}
             for name in ("unet", "unet_flow")
             for r in json.loads((dl.pretrained.WEIGHTS_DIR / f"{name}.json").read_text())["scores"]
             if r.get("eta") in (None, 0.0)]
print(dl.sweeps.format_rows(card_rows, ["model", "sampler_name", "steps", "nfe", "n", "confident_share",
                                        "frechet_distance"]))
groups = {}
for r in sorted(card_rows, key=lambda r: r["nfe"]):
    groups.setdefault(f"{r['model']}: {r['sampler_name']}, 500 images", []).append(r)
dl.plotting.plot_quality_vs_nfe(groups);

# %%
dl.plotting.show_rows({f"{s}, NFE {nfe}": images[:8] for (s, nfe), images in nfe_images.items()},
                      title="unet_flow: the same 8 starting noises, each sampler at each budget");

# %% [markdown]
# **Question.** At 10 network evaluations, which model and sampler gives the best digits on this CPU, and by how much?
# Is the comparison fair to the noise-prediction U-Net?
#
# <details><summary>Answer</summary>
#
# The flow-matching U-Net, with Heun. In the cards' table (500 images), at 10 evaluations flow Heun (5 steps, 9
# evaluations) scored a confident share of 0.808 and a Fréchet distance of 41.3, flow Euler 0.788 and 53.1, while the
# noise-prediction U-Net scored 0.764 and 53.4 with DDIM and fell apart with Heun (0.452 and 491: notebook 10's
# overshoot). The live run above (200 images, so larger Fréchet distances) agrees: flow Heun with 9 evaluations 0.83
# and 73, flow Euler with 10 0.83 and 87. Each evaluation costs the same, so this is also the best per CPU second. The
# comparison is unfair the other way: `unet` trained for 35,000 steps, `unet_flow` for 12,000. After its own first
# 12,000 steps, with the same command, the noise-prediction U-Net scored 0.732 and 77.8 with DDIM at 10 evaluations
# (`diffusion_lib/weights/unet_flow.md`), so at equal training the margin is larger: 0.08 of confident share and half
# the Fréchet distance. One sampler of the shipped `unet` does better at 10 steps: stochastic DDIM, $\eta = 1$ (0.832
# and 36.3, in `unet.json`), whose fresh noise corrects some of the network's errors; the flow samplers here are
# deterministic. Unlike on the toy, Heun beats Euler on the flow at every budget here (in Fréchet distance; the
# confident shares tie at 50). This notebook does not measure why; one guess to test is that the digits' velocity
# changes more smoothly near the clean end than the toy's, whose $|du/ds|$ grows to 12 at $s = 0.02$ (section 5),
# the stretch that flow Heun crosses with its last step, a plain Euler step.
#
# </details>

# %% [markdown]
# **A control: is it the grid?** On the toy the flow's lead over DDIM came entirely from the grid (section 5). The same
# control on MNIST: the shipped noise-prediction `unet` under DDIM on the flow-matched grid
# (`dl.samplers.flow_matched_timesteps`), from the same 500 starting noises as the cards' rows (seed 0), scored by the
# same classifier. Sampling 500 images at three budgets on both grids takes a few minutes on this CPU, too long for
# this notebook, so it ran once as `python benchmarks/flow_grid_control.py` (which also reproduces the card's DDIM rows
# from the same noises, a check that the noises are the same), and the notebook reads its file:

# %%
# NBVAL_CHECK_OUTPUT
control = json.loads((dl.pretrained.WEIGHTS_DIR / "unet_flow_grid.json").read_text())
flow_card = {r["nfe"]: r for r in json.loads((dl.pretrained.WEIGHTS_DIR / "unet_flow.json").read_text())["scores"]
             if r["sampler"] == "flow-euler"}
control_rows = [{"model": "unet", "sampler": f"DDIM, {r['grid']} grid", "nfe": r["nfe"], "n": r["n"],
                 "confident_share": r["confident_share"], "frechet_distance": r["frechet_distance"]}
                for r in control["scores"]]
control_rows += [{"model": "unet_flow", "sampler": "flow Euler", "nfe": n, "n": flow_card[n]["n"],
                  "confident_share": flow_card[n]["confident_share"],
                  "frechet_distance": flow_card[n]["frechet_distance"]} for n in sorted({r["nfe"] for r in control_rows})]
print(dl.sweeps.format_rows(sorted(control_rows, key=lambda r: r["nfe"]),
                            ["nfe", "model", "sampler", "n", "confident_share", "frechet_distance"]))
print("the flow-matched grids:", {r["nfe"]: r["timesteps"] for r in control["scores"] if r["grid"] == "flow-matched"})
print("command:", control["command"])

# %% [markdown]
# **Question.** Does the flow-matched grid explain the flow U-Net's lead over the noise-prediction U-Net, as it did on
# the toy?
#
# <details><summary>Answer</summary>
#
# No. On the flow's grid the noise-prediction U-Net does no better than on its own, and at 10 and 20 evaluations it
# does worse in Fréchet distance: 0.650 / 150 against 0.666 / 143 on its own grid at 5 evaluations, 0.772 / 71.2
# against 0.764 / 53.4 at 10, 0.798 / 44.5 against 0.800 / 36.8 at 20. The flow U-Net under flow Euler, which takes
# exactly those steps, scores 0.706 / 112, 0.788 / 53.1 and 0.836 / 37.1. So whatever gives the flow model its
# higher confident share at every budget (and its lower Fréchet distance at 5), it is not where the steps fall: it is
# the network: trained with another target and another weighting of the noise levels (section 2). This control does
# not tell those two apart. On the toy the fields were exact, so only the grid could differ; here the fields are
# learned, and the two networks' errors differ.
#
# </details>

# %% [markdown]
# ## 7. Classifier-free guidance on the velocity
#
# Guidance (notebook 08) mixes a conditional and an unconditional prediction, $\tilde u = u_\theta(x, \varnothing) +
# w\,(u_\theta(x, y) - u_\theta(x, \varnothing))$. The velocity is, at each $s$, an affine function of the noise
# prediction and of $x_s$ with coefficients that do not depend on the label, so guiding the velocity is guiding the
# noise, and `dl.cfg_eps_model` guides either. `unet_flow_cond` is the conditional U-Net of notebook 08 (label dropout
# 0.1, the null label 10) trained with `unet_cond`'s recipe and the flow objective, in one command of 6,000 steps with
# one cosine decay of the learning rate, where `unet_cond` ran the same 6,000 steps as two commands, its cosine
# restarted at step 2,500 (its card: `diffusion_lib/weights/unet_flow_cond.md`). The sweep: the same noises and labels for every $w$, flow Euler with
# 20 steps (two network evaluations per step).

# %%
# NBVAL_IGNORE_OUTPUT
cond_model = dl.load_pretrained("unet_flow_cond", device=device)
ws = [0.0, 1.0, 2.0, 3.0, 5.0]
n_guided = B.sweep_samples // 2
labels = torch.arange(n_guided) % 10
x_T = dl.sample_noise(n_guided, generator=torch.Generator().manual_seed(0), device=device)
guide_reference = dl.metrics.reference_scores(classifier, n=n_guided, with_features=True)
guide_rows, guide_images = dl.sweeps.guidance_sweep(cond_model, x_T, schedule, labels, ws, classifier,
                                                    guide_reference["test_features"],
                                                    guide_reference["test_class_spread"], num_steps=20,
                                                    sampler="flow Euler")
print(dl.sweeps.format_rows(guide_rows, ["w", "n", "guided_accuracy", "confident_share", "frechet_distance",
                                         "relative_spread", "seconds"]))

# %%
# NBVAL_IGNORE_OUTPUT
per_row = min(10, n_guided // 10)
by_digit = {w: {f"{d}": x[labels == d][:per_row] for d in range(10)} for w, x in guide_images.items()}
dl.widgets.slider_view(dl.plotting.labelled_grid_slider(lambda w: by_digit[w], lambda w: f"w = {w:g}"),
                       values=ws, description="w", value=2.0)

# %%
dl.plotting.show_rows({f"w = {w:g}": torch.cat([by_digit[w][f"{d}"][:1] for d in range(10)]) for w in ws},
                      col_labels=[f"asked {d}" for d in range(10)],
                      title="unet_flow_cond, flow Euler 20: the first sample asked for each digit at each w");

# %% [markdown]
# **Question.** Compare the guided accuracy against $w$ with notebook 08's noise-prediction model. Does guidance behave
# differently on the velocity?
#
# <details><summary>Answer</summary>
#
# It behaves the same way, with less guidance needed. In this run (100 images, flow Euler 20 steps), the guided accuracy
# goes from 0.13 at $w = 0$ (chance: the label is ignored) to 0.95 at $w = 1$ and 1.00 from $w = 2$ on, while the
# within-class spread falls from 0.93 at $w = 1$ to 0.46 at $w = 5$ and the Fréchet distance grows: the same trade of
# variety for readability as in notebook 08. The difference is at $w = 1$, the conditional model without guidance: on
# 500 images (`unet_flow_cond.md`), 0.952 of the flow model's digits are the digit asked for, with a Fréchet distance of
# 13.3, as close to the test set as 500 real training digits (13.0); the noise-prediction model of notebook 08, trained
# with the same recipe (in two commands, as above), has 0.858 and 49.2 there and needs $w = 2$ to pass 0.99. Guidance itself is the same formula
# on either output, because the velocity is an affine function of the noise prediction with label-free coefficients.
#
# </details>

# %% [markdown]
# ## 8. The same network, sampled with noise: the flow's reverse SDE
#
# Notebook 10 wrote DDPM as the reverse SDE, whose drift $f - g^2\,\nabla\log p$ carries the score with twice the
# weight it has in the probability-flow ODE, $f - \tfrac12 g^2\,\nabla\log p$, plus fresh noise. In $\bar x$ and
# $\sigma$, DDPM's step from $\sigma$ to $\sigma'$ draws from the posterior at the predicted clean image: mean
# $\hat x_0 + (\sigma'^2/\sigma)\,\hat\varepsilon = \bar x + (\sigma'^2/\sigma - \sigma)\,\hat\varepsilon$, a move of
# about $2(\sigma' - \sigma)\,\hat\varepsilon$ for a small step, twice the ODE's, and noise of size
# $\sigma'\sqrt{1 - r^2}$ with $r = \sigma'/\sigma$. Multiplied back by $1 - s'$, with $\hat x_0 = x_s - s\,u_\theta$ and
# $\hat\varepsilon = x_s + (1-s)\,u_\theta$ from the flow network:
#
# $$x_{s'} = (1-s')\,\hat x_0 + s'\,\big(r\,\hat\varepsilon + \sqrt{1-r^2}\;z\big), \qquad
# r = \frac{\sigma'}{\sigma} = \frac{s'(1-s)}{s\,(1-s')}, \quad z \sim \mathcal{N}(0, I) .$$
#
# A new point of the straight path at $s'$, whose noise mixes the predicted noise with fresh noise in the proportion
# $r$; from pure noise ($s = 1$, $r = 0$) the first step draws $(1-s')\,\hat x_0 + s'\,z$. For a small step $h = s - s'$
# it is $x_{s'} = x_s - h\,\big(u_\theta + \hat\varepsilon/(1-s)\big) + \sqrt{2sh/(1-s)}\;z$: the ODE's velocity plus
# the score term $-\tfrac{s}{1-s}\nabla\log p_s$ (with the score $-\hat\varepsilon/s$ of section 3) once more, and the
# matching noise. It is `dl.samplers.flow_sde_step`, in the sampler `dl.samplers.flow_sde_sample_progressive`
# (`tests/test_samplers.py` checks it against DDPM's step under the change of variables, and against the exact
# marginals of Gaussian data). On the toy, from the starting points of section 4: how far the ends lie from their
# nearest component's mean (root mean square; the data's own value beside them):

# %%
# NBVAL_IGNORE_OUTPUT
nearest_mean_rms = {"the data": dl.toy.as_xy(data)}
for model_name, model_ in (("exact u", exact_velocity), ("the network", toy_net)):
    for n in (20, 200):
        nearest_mean_rms[f"{model_name}, flow Euler {n}"] = dl.toy.as_xy(
            dl.final(dl.samplers.flow_euler_sample_progressive(model_, starts, schedule, n)))
        nearest_mean_rms[f"{model_name}, flow SDE {n}"] = dl.toy.as_xy(dl.final(dl.samplers.flow_sde_sample_progressive(
            model_, starts, schedule, n, generator=torch.Generator().manual_seed(7))))
for name, ends in nearest_mean_rms.items():
    distance = (ends[:, None] - mixture.means).norm(dim=-1).min(1).values
    print(f"{name:>26}: distance to the nearest mean, root mean square {float(distance.square().mean().sqrt()):.3f}; "
          f"{float((distance < 0.3).float().mean()):.3f} within 0.3")

# %% [markdown]
# And `unet_flow` on MNIST, from section 6's 200 starting noises, 20 steps each way:

# %%
# NBVAL_IGNORE_OUTPUT
sde_images, sde_seconds = dl.sweeps.timed(dl.final, dl.samplers.flow_sde_sample_progressive(
    flow_model, nfe_x_T, schedule, num_steps=20, generator=torch.Generator().manual_seed(7)))
sde_rows = [r for r in nfe_rows if r["sampler"] == "flow Euler" and r["nfe"] == 20]
sde_rows.append(dl.sweeps.score_row(sde_images, sde_seconds, classifier, reference["test_features"],
                                    sampler="flow SDE", steps=20, nfe=20))
print(dl.sweeps.format_rows(sde_rows, ["sampler", "steps", "nfe", "n", "confident_share", "frechet_distance"]))

# %%
dl.plotting.show_rows({"flow Euler, 20 steps": nfe_images[("flow Euler", 20)][:8], "flow SDE, 20 steps": sde_images[:8]},
                      title="unet_flow: the same 8 starting noises, deterministic and stochastic");

# %% [markdown]
# **Question.** On the toy with the exact velocity, the SDE's ends at 20 steps sit closer to their means than the data
# does, and the gap closes at 200 steps. On MNIST at 20 steps the SDE's digits score better than the ODE's. Explain
# both.
#
# <details><summary>Answer</summary>
#
# With the exact field the only error is the step's. Each SDE step draws around the predicted clean image
# $\hat x_0 = \mathbb{E}[x_0 \mid x_s]$, a mean, so the spread of $x_0$ given $x_s$ is left out and the fresh noise
# makes up for it only as the steps shrink: root mean square distance to the nearest mean 0.126 with 20 steps and 0.137
# with 200, against the data's 0.141 (flow Euler: 0.135 and 0.140). `tests/test_samplers.py` measures the same
# first-order loss on Gaussian data (the worst gap in spread 0.024 with 50 steps, 0.0070 with 200, 0.0015 with 1000).
# With a learned field the network's errors come in as well. The ODE carries an error made early on to the end: the
# point is moved to another path and stays on it. The SDE replaces part of the state by fresh noise at every step, so
# an early error is partly forgotten, and the later, better-informed steps decide. On MNIST that wins: with 20 steps
# on 200 images, Fréchet distance 45 against flow Euler's 73.4, confident share 0.85 against 0.845; the
# noise-prediction `unet` shows the same with stochastic DDIM ($\eta = 1$: 0.832 and 36.3 at 10 steps against 0.764
# and 53.4 deterministic, in `unet.json`). On the toy the network's field is good enough that the two nearly tie
# (0.147 against 0.150).
#
# </details>

# %%
# NBVAL_IGNORE_OUTPUT
print(f"this whole notebook ran in {time.perf_counter() - notebook_start:.0f} s ({B.mode} mode) on "
      f"{dl.inspection.machine_description(device)}; load average {os.getloadavg()[0]:.1f} (other jobs share the CPU)")

# %% [markdown]
# ## Exercise: flow Euler on the noise-prediction network
#
# Section 5 showed on the toy that one flow Euler step is one DDIM step. Show it on a network that never saw the
# straight path: make the shipped noise-prediction `unet` into a velocity model. Write `eps_as_velocity(eps_model,
# schedule)`, which returns a function `velocity(x_s, t)`: here `t` (a `(B,)` tensor) is a timestep of `schedule`,
# $x_s$ is a state on the straight path at the flow time $s$ of the same noise level, $s/(1-s) =
# \sqrt{(1-\bar\alpha_t)/\bar\alpha_t}$ (`dl.objectives.flow_time_for_alpha_bar`), and `velocity` returns the $u$ that
# `eps_model` implies there. Three things to get right: the state the noise predictor was trained on (section 2), the
# flow time of the level (section 1: the two clocks differ), and the velocity from $\varepsilon$ (section 3). Keep
# $s$ in `x_s`'s dtype (`.to(x_s)`).
#
# The check walks flow Euler with your `velocity` between the flow times of DDIM's 10-step grid and compares its end
# with DDIM's: on the toy's exact $\varepsilon^*$ in float64, then on the shipped U-Net. A worked solution is in
# `solutions/11_flow_matching.py`.

# %%
# EXERCISE
def eps_as_velocity(eps_model, schedule):
    """velocity(x_s, t) -> u: the velocity that eps_model implies at x_s, the state on the straight path at the flow
    time of timestep t's noise level; t is a (B,) tensor of timesteps of schedule."""
    raise NotImplementedError

# %%
dl.exercises.check("11", eps_as_velocity);

# %% [markdown]
# ## Summary
#
# * Flow matching trains the network to predict the velocity $u = \varepsilon - x_0$ of the straight path
#   $x_s = (1-s)\,x_0 + s\,\varepsilon$; it is one more objective of the same trainer and the same U-Net. The best
#   velocity is the average of $\varepsilon - x_0$ given $x_s$, as notebook 10's ODE used the average of $\varepsilon$.
# * It is the same family of paths: $x_s/c_s$ is a DDPM state, $v$ is a velocity in an angle, and the velocity, the
#   noise and the score are one quantity, $u^* = (\varepsilon^* - x_s)/(1-s)$ and $\nabla\log p_s = -\varepsilon^*/s$.
#   Here time runs from data ($s = 0$) to noise; Lipman et al. and Meta's guide run it the other way, with the
#   opposite velocity.
# * Flow Euler *is* DDIM: in $\bar x = x_s/(1-s)$, $\sigma = s/(1-s)$ its step is DDIM's, exactly. On the toy, the
#   flow's fourfold lead at 10 evaluations came entirely from its grid (DDIM on the flow's grid: 0.043, as flow Euler),
#   which steps through the range where the components separate ($s \approx 0.25$) instead of jumping over it.
# * On MNIST the grid does not explain the flow U-Net's lead: the noise-prediction `unet` on the flow's grid does no
#   better than on its own. The course's U-Net trained with the flow objective and `unet`'s first training command
#   (12,000 steps) gave better digits than the noise-prediction U-Net after the same training at every number of
#   network evaluations (at 10: 0.81 and 41 with flow Heun against 0.73 and 78 with DDIM), and about as good as the
#   shipped `unet`, trained three times as long, under deterministic DDIM. Its conditional twin draws the digit asked
#   for 95 % of the time without guidance, and guiding the velocity works exactly as guiding the noise.
# * The same network samples stochastically too: the reverse SDE on the straight path, DDPM's step in the flow's
#   variables, with the score entering twice; with few steps it loses some of the data's spread.
#
# **Next:** notebook 12, few-step generation: reflow (Liu et al. 2022) re-pairs noise and data along the learned ODE
# and trains again, straightening the paths for one- or two-step sampling, and MeanFlow learns the average velocity
# over a whole step.
