# %% [markdown]
# # 12 · Few-step generation: reflow and MeanFlow, from fifty network evaluations to one
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/diffusion-course/diffusion-by-code/blob/main/notebooks/12_few_step.ipynb)
#
# Notebook 11's flow U-Net draws good digits in 20 to 50 network evaluations. With one, its Euler step lands on a
# blur. This notebook teaches the two main routes to one- and few-step generation and measures them on the course's
# own networks, on a CPU: **reflow** (Liu et al. 2022, "Flow Straight and Fast"), which straightens the paths by
# training again on the teacher's own pairs of noise and image, and **MeanFlow** (Geng et al. 2025), which teaches the
# network the *average* velocity over an interval, so that one step covers the whole path.

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
# - why one Euler step of a flow lands on the data's mean, and what a one-step generator must learn instead;
# - reflow: pair each noise with the teacher's ODE end from it (`dl.objectives.reflow_pairs`), train again on those
#   pairs, and watch the paths straighten; then distil the one step, by training on the pairs where that step is taken;
# - MeanFlow: the average velocity $u(z, r, s)$, the MeanFlow identity $u = v - (s - r)\,\frac{d}{ds}u$ with the total
#   derivative from `torch.func.jvp`, the one-step sampler it gives, and a teacher's velocity in its target, which
#   builds guidance into the student;
# - both on notebook 10's 2-D toy, where the exact answer is known, and on MNIST, measured at 1, 2, 4 and 8 network
#   evaluations against the teacher.
#
# **What you need first:** Notebook 10 (the ODE view, the toy) and 11 (flow matching, the straightness measure).
#
# **Run time:** About 40 seconds on the 2-core AMD EPYC this notebook was last built on, with a benchmark on the other
# core; 100 to 110 seconds on an earlier machine when other jobs loaded both cores (the last cell before the exercise
# prints the time and the load). The toy's students train here for `B.toy_train_steps`
# steps at most; the MNIST networks are the shipped ones, trained by the commands in their model cards, and the MNIST
# table is read from `diffusion_lib/weights/few_step.json`, written by `benchmarks/few_step.py table`.

# %%
import inspect
import json
import os
import time

import torch

import diffusion_lib as dl
from diffusion_lib.pictures import few_step_paths

notebook_start = time.perf_counter()
device = dl.default_device()
B = dl.budget()
schedule = dl.pretrained_schedule("unet_flow")              # linear, T = 1000: the code timesteps of every model here
T = schedule.T
print(f"device {device}, {B.mode} mode; T = {T}")

# %% [markdown]
# ## 1. One step of the teacher: the mean image
#
# The flow's ODE $dx/ds = u^*(x, s)$ runs from noise at $s = 1$ to data at $s = 0$, and notebook 11's sampler takes
# Euler steps $x_{s - \Delta s} = x_s - \Delta s\, u(x_s, s)$. At $s = 1$ the state is pure noise, independent of the
# image, so the best velocity there is $u^*(x_1, 1) = \mathbb{E}[\varepsilon - x_0 \mid x_1] = x_1 - \mathbb{E}[x_0]$,
# and one Euler step over the whole interval gives $x_1 - u^* = \mathbb{E}[x_0]$, the same mean image for every
# noise. The shipped `unet_flow` at 1, 2, 4 and 8 steps, from the same noises:

# %%
# NBVAL_IGNORE_OUTPUT
teacher = dl.load_pretrained("unet_flow", device=device)
x_1 = dl.sample_noise(10, generator=torch.Generator().manual_seed(0)).to(device)       # drawn on the CPU, then moved
teacher_rows = {f"{k} step{'s' if k > 1 else ''}": dl.final(dl.samplers.flow_euler_sample_progressive(
    teacher, x_1, schedule, k)).cpu() for k in (1, 2, 4, 8, 50)}
train_images, train_labels = dl.load_mnist(train=True)                                 # (60000, 1, 28, 28)
mean_image = train_images.mean(0, keepdim=True)
gap = (teacher_rows["1 step"] - mean_image).flatten(1).norm(dim=1)
print(f"one Euler step: distance to the training set's mean image {float(gap.mean()):.2f} on average "
      f"(a digit's own distance to it: {float((train_images[:500] - mean_image).flatten(1).norm(dim=1).mean()):.2f})")

# %%
dl.plotting.show_rows(teacher_rows, title="unet_flow, flow Euler: the same 10 noises in 1, 2, 4, 8 and 50 steps");

# %% [markdown]
# **Question.** The 1-step row is not exactly the mean image, and the 2-step row already shows rough digits. Why is the
# network's one step only *near* the mean, and what would an ideal network's two steps give?
#
# <details><summary>Answer</summary>
#
# The network learned $u^*(x_1, 1) = x_1 - \mathbb{E}[x_0]$ only approximately (the printed distance is the error),
# but no training can do better with one Euler step: the best velocity at $s = 1$ forgets the noise. Two Euler steps
# of the exact field stop at $s = 1/2$ on $x_1 - \frac12 u^*$, half-way between the noise and the mean image, where the
# velocity does depend on the state, and then take one more straight step: a blurred average of the digits that the
# state at $s = 1/2$ could still become. The exact ODE's paths bend between the steps; Euler follows the tangent.
#
# </details>

# %% [markdown]
# ## 2. The toy: curved paths, straightened paths, and jumps
#
# On notebook 10's ring of six Gaussians the exact velocity is known (`dl.toy.exact_velocity`, notebook 11), so the
# teacher here is exact and its accurate ODE end from each noise is computable. Students learn from it.
#
# **Reflow** couples each noise $\varepsilon$ with the teacher's ODE end $x_0 = \mathrm{ODE}(\varepsilon)$ and trains
# flow matching again on those pairs instead of independent ones (Liu et al. 2022, Algorithm 1). The straight lines
# between the pairs no longer cross (the ODE's paths never do), so the new velocity field bends less. The pairs come
# from `dl.objectives.reflow_pairs`, flow Heun solves of the teacher with a progress bar:

# %%
# NBVAL_CHECK_OUTPUT
print(inspect.signature(dl.objectives.reflow_pairs))

# %%
# NBVAL_IGNORE_OUTPUT
mixture = dl.toy.ring_mixture(num_components=6, radius=0.7, std=0.1)
exact_velocity = dl.toy.ExactVelocity(mixture, T)                     # the teacher: u*(x_s, s) as a model
toy_noise = torch.randn((20 * B.toy_points, 2, 1, 1), generator=torch.Generator().manual_seed(1))
start = time.perf_counter()
toy_ends = dl.objectives.reflow_pairs(exact_velocity, toy_noise, schedule, num_steps=25, batch_size=10_000)
pair_seconds = time.perf_counter() - start
print(f"{toy_noise.shape[0]:,} pairs (noise, the teacher's ODE end by flow Heun, 25 steps = 49 evaluations) in "
      f"{pair_seconds:.1f} s")

# %% [markdown]
# The student is notebook 11's `PointMLP` trained by flow matching on the pairs: `dl.train(..., noise=...)` takes the
# noise of each pair instead of drawing a fresh one, and the loop is otherwise the same. **MeanFlow** needs no pairs:
# it trains on the data, section 3 explains how, on a `PointMLP(interval=True)`, which also takes the end $r$ of the
# interval. Its times are embedded at a hundredth of the usual scale (`time_scale=0.01`): MeanFlow differentiates the
# network in $s$, and the usual embedding's fastest wave, a radian per code timestep, is a thousand radians per unit of
# $s$. Both train here in seconds, with the same settings (and a third student, explained after the picture):

# %%
# NBVAL_IGNORE_OUTPUT
data = dl.toy.mixture_sample(mixture, 20_000, torch.Generator().manual_seed(0))        # (20000, 2, 1, 1)
toy_settings = dict(steps=B.toy_train_steps // 4, batch_size=1024, lr=1e-2, warmup_steps=50, lr_decay="cosine",
                    ema_decay=0.995, seed=0)
reflow_config = dl.TrainConfig(backbone="point_mlp", objective="flow", **toy_settings)
reflow_run, reflow_seconds = dl.sweeps.timed(dl.train, reflow_config, toy_ends, noise=toy_noise, progress=False)
meanflow_config = dl.TrainConfig(backbone="point_mlp", backbone_kwargs={"interval": True, "time_scale": 0.01},
                                 objective="meanflow", **toy_settings)
meanflow_run, meanflow_seconds = dl.sweeps.timed(dl.train, meanflow_config, data, progress=False)
distill_config = dl.TrainConfig(backbone="point_mlp", objective="flow", objective_kwargs={"noise_end_share": 0.5},
                                **toy_settings)           # the same pairs, half of each batch at s = 1 (see below)
distill_run, distill_seconds = dl.sweeps.timed(dl.train, distill_config, toy_ends, noise=toy_noise, progress=False)
print(f"reflow student: {reflow_run.step} steps in {reflow_seconds:.1f} s; "
      f"MeanFlow: {meanflow_run.step} steps in {meanflow_seconds:.1f} s; "
      f"reflow + distillation (below): {distill_run.step} steps in {distill_seconds:.1f} s (batch {toy_settings['batch_size']})")

# %% [markdown]
# From the same noises, each sampler in $k$ steps: the teacher by Euler steps of the exact velocity, the reflow
# student by Euler steps of its velocity, MeanFlow by steps of its average velocity over each interval
# (`dl.samplers.meanflow_sample_progressive`). The error is the distance to the teacher's accurate ODE end from the
# same noise (flow Heun, 100 steps), the point every sampler aims at.

# %%
# NBVAL_IGNORE_OUTPUT
starts = torch.randn((B.toy_points, 2, 1, 1), generator=torch.Generator().manual_seed(5))
accurate = dl.record(dl.samplers.flow_heun_sample_progressive(exact_velocity, starts, schedule, 100))
targets = dl.toy.as_xy(accurate.sample)                                                  # (N, 2)
samplers_of = {"teacher (exact u), Euler": lambda k: dl.samplers.flow_euler_sample_progressive(exact_velocity, starts, schedule, k),
               "reflow student, Euler": lambda k: dl.samplers.flow_euler_sample_progressive(reflow_run.ema, starts, schedule, k),
               "reflow + distillation, Euler": lambda k: dl.samplers.flow_euler_sample_progressive(distill_run.ema, starts, schedule, k),
               "MeanFlow": lambda k: dl.samplers.meanflow_sample_progressive(meanflow_run.ema, starts, schedule, k)}
ks = [1, 2, 4, 8, 16]
chains = {name: {k: dl.record(run(k)) for k in ks} for name, run in samplers_of.items()}
toy_rows = []
for name, by_k in chains.items():
    for k in ks:
        error = (dl.toy.as_xy(by_k[k].sample) - targets).norm(dim=1)
        toy_rows.append({"sampler": name, "steps": k, "mean_error": float(error.mean()),
                         "share_within_0.1": float((error < 0.1).float().mean())})
print(dl.sweeps.format_rows(toy_rows, ["sampler", "steps", "mean_error", "share_within_0.1"]))

# %% [markdown]
# The picture: the first twelve chains of each sampler (dots at each state), the accurate path of the teacher and of
# the reflow student from the same noise (dashed), the teacher's accurate end (x). The slider moves the number of steps; the strip below shows 1 and 4.

# %%
# NBVAL_IGNORE_OUTPUT
fine = {"teacher (exact u), Euler": accurate, "reflow student, Euler":
        dl.record(dl.samplers.flow_euler_sample_progressive(reflow_run.ema, starts, schedule, 100)), "MeanFlow": None}

panels = {name: {"fine": None if fine[name] is None else few_step_paths.path_states(fine[name]),
                 "steps": {k: few_step_paths.path_states(chains[name][k]) for k in ks}, "targets": targets}
          for name in fine}
toy_data_xy = dl.toy.as_xy(data[:1500])
dl.widgets.slider_view(few_step_paths.few_step_paths_slider(panels, toy_data_xy), values=ks, description="steps",
                       value=1)

# %%
few_step_paths.plot_few_step_paths(panels, [1, 4], toy_data_xy);

# %% [markdown]
# Straightness (notebook 11's measure: the length of each accurate path over the distance between its ends; 1 is a
# straight line), for the teacher's paths and the reflow student's, each solved with 100 steps:

# %%
# NBVAL_IGNORE_OUTPUT
for name in ("teacher (exact u), Euler", "reflow student, Euler"):
    ratio = dl.inspection.path_straightness(fine[name])
    print(f"{name:>26}: straightness median {float(ratio.median()):.3f} (quartiles {float(ratio.quantile(0.25)):.3f}-"
          f"{float(ratio.quantile(0.75)):.3f})")

# %% [markdown]
# **Question.** Reflow's paths are much straighter, yet its one Euler step does not land exactly on the accurate end.
# Name the two errors that remain, and say which of them MeanFlow removes in principle.
#
# <details><summary>Answer</summary>
#
# First, the student's own field is only an approximation of the field of the pairs (a few seconds of training); with
# 100 steps it already ends away from the teacher's ends by that much. Second, straight *pairs* make straight paths
# only where no two pairs' lines cross; after one reflow they still cross a little, so the paths keep some curvature
# and one Euler step follows the tangent at $s = 1$. MeanFlow removes the second in principle: its step moves by the
# average of the velocity over the interval, which is exact for the exact average velocity however curved the path;
# what remains is the first kind of error, how well the network learned that average. Section 3 shows the identity
# that defines it. In the table above, after the same 750 training steps: the teacher's one Euler step misses the
# accurate end by 0.70 on average, the reflow student's by 0.063 (and by 0.026 in 16 steps, about the teacher's own
# error at 16 steps), MeanFlow's by 0.21, falling only to 0.15 in 4 steps: on this toy, within seconds of training,
# reflow's straight paths win; MeanFlow needs more training (its target holds the network's own derivative).
#
# </details>

# %% [markdown]
# **One-step distillation.** At $s = 1$ reflow's loss is the error of one Euler step: on a pair
# $(\varepsilon, x_0)$ the state there is the noise itself, $z_1 = \varepsilon$, the target is $\varepsilon - x_0$, and
# $|u(\varepsilon, 1) - (\varepsilon - x_0)|^2 = |x_0 - (\varepsilon - u(\varepsilon, 1))|^2$, the distance between the
# one-step sample and the teacher's end. Times drawn uniformly give that single point of the path one draw in a
# thousand. Liu et al. (2022, Sec. 2.3) therefore follow reflow by a distillation that trains the step to be taken.
# The course keeps the flow-matching loss and puts a share of each batch at $s = 1$:
# `dl.objectives.FlowMatching(noise_end_share=0.5)` for half, the third student of the table above, trained on the
# same pairs with the same settings. Its errors beside the reflow student's:

# %%
# NBVAL_IGNORE_OUTPUT
by_name = {(row["sampler"], row["steps"]): row["mean_error"] for row in toy_rows}
for k in ks:
    plain, distilled = by_name[("reflow student, Euler", k)], by_name[("reflow + distillation, Euler", k)]
    print(f"{k:>2} step{'s' if k > 1 else ' '}: reflow {plain:.4f}, reflow + distillation {distilled:.4f} "
          f"({distilled / plain:.2f} times)")

# %% [markdown]
# **Question.** Half of the distilled student's training went to one time, $s = 1$. Why did its errors at 2 to 16
# steps not get worse, when each of those steps also uses times other than 1?
#
# <details><summary>Answer</summary>
#
# Two reasons. The second step of a 2-step sampler starts where the first ended, at $\varepsilon - \frac12 u(\varepsilon, 1)$,
# and a better velocity at $s = 1$ puts it nearer the pair's own line, at $\frac12(\varepsilon + x_0)$, which is where
# the pairs' loss trains $s = 1/2$: the first step's error is carried by every later one, so fixing it helps them
# all. And the other half of each batch is still flow matching at uniform times, so every part of the path keeps
# being trained, with half as many draws as before.
#
# </details>

# %% [markdown]
# ## 3. MeanFlow: the average velocity and its identity
#
# MeanFlow's network $u_\theta(z, r, s)$ learns the **average velocity** over the interval $[r, s]$ of the path
# through $z$ at time $s$:
#
# $$u(z_s, r, s) = \frac{1}{s - r}\int_r^s v(z_\tau, \tau)\, d\tau ,\qquad\text{so}\qquad z_r = z_s - (s - r)\, u(z_s, r, s)$$
#
# exactly: one step from $s = 1$ to $r = 0$ is a generator. The integral is not computable during training, but
# differentiating $(s - r)\,u = \int_r^s v\,d\tau$ in $s$ gives the **MeanFlow identity** (Geng et al. 2025, Eq. 6)
#
# $$u(z_s, r, s) = v(z_s, s) - (s - r)\,\frac{d}{ds}u(z_s, r, s), \qquad \frac{d}{ds}u = v\cdot\nabla_z u + \partial_s u ,$$
#
# whose right side needs only the velocity $v$ at one point and the network's own total derivative along the path: a
# Jacobian-vector product with the tangent $(v, 1, 0)$ for $(z, s, r)$, one call of `torch.func.jvp`. Training
# regresses $u_\theta$ on that right side, computed without gradient, with $v = \varepsilon - x_0$ as in flow matching:

# %%
# NBVAL_CHECK_OUTPUT
print(inspect.getsource(dl.objectives.meanflow_target))

# %% [markdown]
# A check where the average velocity is known in closed form: Gaussian data $x_0 \sim \mathcal{N}(\mu, \sigma^2 I)$,
# whose ODE carries each noise along $z_s = m_s + \mathrm{std}_s\,\varepsilon$ with $m_s = (1-s)\mu$ and
# $\mathrm{std}_s = \sqrt{(1-s)^2\sigma^2 + s^2}$, so $u$ is the chord $(z_s - z_r)/(s - r)$. The exercise's check
# holds that field (`dl.exercises.nb12.average_velocity`, in flow times). Its target from the identity equals it:

# %%
# NBVAL_CHECK_OUTPUT
from diffusion_lib.exercises import nb12 as gaussian                                      # noqa: E402

z = torch.randn((4, 2, 1, 1), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
s = torch.tensor([1.0, 0.8, 0.6, 0.3], dtype=torch.float64)
r = torch.tensor([0.0, 0.5, 0.1, 0.3], dtype=torch.float64)
v = gaussian.average_velocity(z, s, s)                          # the velocity: the average over an empty interval
target = dl.objectives.meanflow_target(gaussian.average_velocity, z, s, r, v)
u = gaussian.average_velocity(z, s, r)
print("largest |target - u| over the 4 points:", f"{float((target - u).abs().max()):.1e}")
print("largest |v - u| (what one flow step would use instead):", f"{float((v - u).abs().max()):.2f}")

# %% [markdown]
# **Question.** The loss asks the network to match a target that contains the network itself. Why does this not
# collapse to a trivial solution, and what anchors it?
#
# <details><summary>Answer</summary>
#
# The anchor is the empty interval: at $r = s$ the target is $v = \varepsilon - x_0$, the flow-matching target of
# notebook 11, and three quarters of each batch has $r = s$ (`dl.objectives.MeanFlow`, the paper's share). Its best
# solution there is the exact velocity, which the data alone decide. For $r < s$ the identity is a consistency
# condition: a field satisfies it for all $(z, r, s)$ only if it is the average of that velocity (differentiate the
# integral; the check above), so as the network's velocity gets right, the averages built on it follow, from short
# intervals to long ones. The target is computed without gradient (the paper's stop-gradient), so the network is not
# rewarded for changing its own target.
#
# </details>

# %% [markdown]
# **A teacher's velocity instead of $\varepsilon - x_0$.** The $v = \varepsilon - x_0$ in the target is one random
# draw: many pairs $(x_0, \varepsilon)$ pass through the same $z_s$, and only their average there is the velocity. The
# network still learns the average, but every batch carries the draw's noise. A trained flow model gives the velocity
# itself: put a teacher's $v_\phi(z_s, s)$ in place of $\varepsilon - x_0$ (`dl.objectives.teacher_velocity`,
# `MeanFlow.with_teacher`; on the command line `train --objective meanflow --teacher unet_flow_cond`). If the teacher
# is exact, the fixed point is the same and the target has no noise left. A conditional teacher can also be guided
# (`--teacher-w`, notebook 08's $w$ on the velocity), which builds classifier-free guidance into the student: one
# network evaluation per step instead of two. On the Gaussian data above, with the exact velocity as the teacher, the
# exact field's loss is zero for every draw; with $\varepsilon - x_0$ it is not:

# %%
# NBVAL_CHECK_OUTPUT
g = torch.Generator().manual_seed(4)
x_0 = gaussian.MEAN + gaussian.STD * torch.randn((5, 2, 1, 1), generator=g, dtype=torch.float64)   # 5 draws of the data
eps = torch.randn((5, 2, 1, 1), generator=g, dtype=torch.float64)
times = torch.tensor([[1.0, 0.0], [0.9, 0.2], [0.7, 0.7], [0.6, 0.1], [0.4, 0.0]], dtype=torch.float64)   # (s, r)

exact_field = gaussian.as_network(T)                  # the exact u, called as a network: code timesteps t and r
plain = dl.objectives.MeanFlow(p=0.0)                 # p = 0: the plain squared error
distilled = plain.with_teacher(gaussian.velocity)     # the exact velocity as the teacher
for name, objective in (("v = eps - x_0", plain), ("v = the teacher's", distilled)):
    loss = objective.loss(exact_field, x_0, times, eps, schedule)
    print(f"{name:>18}: loss of the exact field at the 5 draws", " ".join(f"{float(x):.3f}" for x in loss))

# %% [markdown]
# ## 4. MNIST: seven students, measured
#
# Seven students, each trained on one core of a 2-core CPU beside other jobs (the commands are in
# `benchmarks/README.md`, section "Few-step generation"): a **reflow** student of `unet_flow_cond` run at $w = 1$, whose pairs
# are unconditional (the label of each pair is decided by its noise, `dl.objectives.noise_labels`, so the map from
# noise to image stays a function an unconditional network can learn), starting from the teacher's own weights; and
# a **MeanFlow** model started from `unet_flow`'s weights, its second time input added at zero
# (`dl.UNet(interval=True)`, trained with `--objective meanflow --init-from unet_flow`); and the same MeanFlow recipe
# with the time embedding slowed a hundredfold, as the toy needed (`dl.UNet(interval=True, time_scale=0.01)`), shipped
# as `meanflow` (its card: `diffusion_lib/weights/meanflow.md`); and a **conditional MeanFlow** student of
# `unet_flow_cond` with the teacher's velocity guided at $w = 1.25$ in its target, as above, shipped as `meanflow_cond`
# (`train --objective meanflow --teacher unet_flow_cond --teacher-w 1.25`; its card: `meanflow_cond.md`); and a
# **reflow** student of `unet_flow` itself, an unconditional teacher, from its weights; and that student **distilled**
# for one step on the same pairs (`noise_end_share=0.5`, as on the toy), shipped as `reflow` (its card: `reflow.md`);
# and a **conditional reflow** student of `unet_flow_cond` guided at $w = 1.25$, whose pairs carry their labels
# (0 to 9 in turn) and the guided teacher's ends, trained from the teacher's weights with the labels and no null
# label, so that the guidance is built in, and with half of each batch at $s = 1$ from the start, shipped as
# `reflow_cond` (its card: `reflow_cond.md`). The table
# compares them with the teachers at 1, 2, 4 and 8 network evaluations (500 images from seed 0, the course's metric of
# notebook 07). The row `unet_flow_cond, w = 1.25` is the teacher guided at sampling time, two evaluations a step;
# `seconds_64` is the time for 64 digits:

# %%
# NBVAL_IGNORE_OUTPUT
with open(dl.pretrained.WEIGHTS_DIR / "few_step.json") as f:
    few_step = json.load(f)
print(dl.sweeps.format_rows(few_step["rows"], ["model", "sampler", "nfe", "w", "confident_share", "frechet_distance",
                                               "guided_accuracy", "seconds_64"]))
print(f"(seconds_64: 64 digits, {few_step['threads']} thread(s), float32)")

# %% [markdown]
# How the unconditional students' one-, two- and four-step quality moved during their training (snapshots of the
# runs, 200 images each), against the course's unconditional one-step targets (confident share 0.80, Fréchet
# distance 45). First the two first attempts, then the shipped `meanflow` and the reflow student of `unet_flow`
# before and after its distillation, which continued from its last step:

# %%
curves = few_step["curves"]
targets = {"confident_share": 0.80, "frechet_distance": 45.0}
few_step_paths.plot_student_curves({name: curves[name] for name in ("MeanFlow", "reflow")}, targets,
                                   title="the first attempts during training (200 images from seed 0 per point)");
reflow_end = max(row["step"] for row in curves["reflow of unet_flow"])       # the distillation's step 0
shipped_curves = {"MeanFlow, time_scale 0.01": curves["MeanFlow, time_scale 0.01"],
                  "reflow of unet_flow": curves["reflow of unet_flow"],
                  "then distilled": [{**row, "step": reflow_end + row["step"]}
                                     for row in curves["reflow of unet_flow, distilled"]]}
few_step_paths.plot_student_curves(shipped_curves, targets,
                                   title="the shipped unconditional students (200 images from seed 0 per point)");

# %% [markdown]
# The conditional students', against their one-step target of a Fréchet distance of at most 25 (their guided accuracy
# is in the table above). At 200 images a point a Fréchet distance reads higher than at the table's 500: the last
# point of `reflow_cond`'s one-step curve, 25.6, is the model that scores 14.2 in the table.

# %%
conditional = [name for name in curves if "built in" in name]
few_step_paths.plot_student_curves({name: curves[name] for name in conditional}, {"frechet_distance": 25.0},
                                   title="the conditional students (200 images from seed 0 per point)");

# %% [markdown]
# What the table says. The first **reflow** student (5,585 steps, 74 minutes, 17,000 pairs) makes one step worth something:
# 0.348 / 733.5 (confident share / Fréchet distance) where the teacher `unet_flow`'s one Euler step gives the mean
# image for every noise (1475.6), and at 2 evaluations 0.510 / 319.5 against 0.474 / 560.0; from 4 evaluations on it is
# only level with `unet_flow` (0.688 / 153.0 against 0.668 / 156.6) and far from its own teacher, `unet_flow_cond` at
# $w = 1$, which is at 0.952 / 19.8 in 4 evaluations without any student. The first **MeanFlow** model did not learn
# the long intervals at all in its 3,000 steps (82 minutes): its one step is still the mean image (1405.1), and it
# lost ground at 2 and 4 evaluations (0.118 / 1089.4 and 0.534 / 288.2, against the 0.474 / 560.0 and 0.668 / 156.6
# of the flow model it started from). The same recipe with the **slowed time embedding** learned them: after 17,053
# steps (100 minutes) it is at 0.656 / 141.9 in one step, 0.756 / 78.1 in two, 0.834 / 62.4 in four and
# 0.880 / 57.4 in eight: a lower Fréchet distance at every budget than the flow model it started from under flow
# Euler (whose one step is the mean image, hence its confident share of 1.000). It is the course's unconditional
# one-step generator, still short of the one-step targets (0.80 and 45). Its curve flattens after about 8,000 steps,
# so more of the same training is unlikely to reach them.
# The **reflow student of `unet_flow`** (14,000 pairs, then 3,800 steps: 71 minutes in all) does better in one and
# two evaluations: 0.694 / 104.4 and 0.736 / 75.2, the course's best unconditional one-step generator; from four
# evaluations on MeanFlow's digits are more often confident (0.834 against 0.764 at four) at about the same distance.
# Its curve above was still falling when the run ended. Unlike the first reflow student's, its teacher is one
# unconditional ODE, a smooth map from noise to digit with no borders where a label jumps. **Distilled** on the same
# pairs for 3,200 more steps (46 minutes), half of each batch at $s = 1$ as on the toy, it improves at every budget:
# 0.740 / 77.8 in one evaluation, 0.768 / 59.2 in two, 0.794 / 51.7 in four and 0.826 / 45.9 in eight, the course's
# lowest unconditional Fréchet distance at each. In the second figure its one-step distance drops as soon as the
# distillation starts and flattens in its second half. Still short of the one-step targets. The one-step digits of
# `meanflow` and of the shipped `reflow` (the distilled student), 64 from seed 0 (one network evaluation each):

# %%
meanflow_model = dl.load_pretrained("meanflow", device=device)
noise_64 = dl.sample_noise(64, (1, 28, 28), generator=torch.Generator().manual_seed(0)).to(device)
one_step = dl.final(dl.samplers.meanflow_sample_progressive(meanflow_model, noise_64, dl.pretrained_schedule("meanflow"),
                                                            1))
dl.plotting.show_grid(one_step.cpu(), nrow=16, title="64 digits in one network evaluation: the shipped MeanFlow model");
reflow_model = dl.load_pretrained("reflow", device=device)
one_step_reflow = dl.final(dl.samplers.flow_euler_sample_progressive(reflow_model, noise_64,
                                                                     dl.pretrained_schedule("reflow"), 1))
dl.plotting.show_grid(one_step_reflow.cpu(), nrow=16,
                      title="the same 64 noises, one flow Euler step: the shipped reflow (distilled) student");

# %% [markdown]
# The **conditional MeanFlow student** with guidance built in reaches the accuracy target: at one evaluation 0.998 of
# its digits are the digit asked for (target 0.95), at a Fréchet distance of 91.4 (target 25, missed). From four
# evaluations on, its Fréchet distance is below its teacher's at the same budget: 13.7 at four against 19.8 (teacher
# at $w = 1$, four steps) and 53.7 (teacher guided at $w = 1.25$, two steps of two evaluations), and 11.6 at eight,
# with a guided accuracy of 0.982 (the teacher: 0.980 and 0.998). Built-in guidance is the better use of each
# evaluation here. Its curve above shows a cost: while its one-step distance fell (141 at
# step 1,750, 97 at 13,000, 200 images a point), its two-step distance rose (33 to 54), as if learning the whole
# interval took capacity from the half intervals. Its one-step digits, labels 0 to 9 in each row, from seed 0:

# %%
cond_student = dl.load_pretrained("meanflow_cond", device=device)
labels_80 = (torch.arange(80) % 10).to(device)
noise_80 = dl.sample_noise(80, (1, 28, 28), generator=torch.Generator().manual_seed(0)).to(device)
one_step_cond = dl.final(dl.samplers.meanflow_sample_progressive(
    lambda x, t, r: cond_student(x, t, labels_80, r=r), noise_80, dl.pretrained_schedule("meanflow_cond"), 1))
dl.plotting.show_grid(one_step_cond.cpu(), nrow=10,
                      title="one network evaluation each, guidance built in: the shipped meanflow_cond");

# %% [markdown]
# The **conditional reflow student** (`reflow_cond`) reaches both conditional one-step targets: at one evaluation
# 0.988 of its digits are the digit asked for (target 0.95), at a Fréchet distance of 14.2 (target 25). At two
# evaluations it is at 11.8, which its teacher reaches only after 50 guided steps, 100 evaluations (the card of
# `meanflow_cond` has that run); more steps add nothing. Its 64 one-step digits take 0.076 s on the CPU that made the
# table (`seconds_64`). Its training curve, in the conditional students' figure above, was already near its end
# after a few thousand steps. Its one-step digits, from the same noises and labels as `meanflow_cond`'s above:

# %%
reflow_cond = dl.load_pretrained("reflow_cond", device=device)
one_step_reflow_cond = dl.final(dl.samplers.flow_euler_sample_progressive(
    lambda x, t: reflow_cond(x, t, labels_80), noise_80, dl.pretrained_schedule("reflow_cond"), 1))
dl.plotting.show_grid(one_step_reflow_cond.cpu(), nrow=10,
                      title="one flow Euler step each, guidance built in: the shipped reflow_cond");

# %% [markdown]
# **Question.** The first reflow student of this same teacher gave 733.5 in one step (the table's row
# `reflow (student)`); `reflow_cond` gives 14.2. Both are reflow students of `unet_flow_cond`. What changed, and which
# change matters most?
#
# <details><summary>Answer</summary>
#
# Three things changed. The student takes the **label as an input**: the first student was unconditional, so the
# digit of each pair had to be decided by the noise itself (`noise_labels`), and the map from noise to image jumped
# at the borders between digits, which a network smooth in its input can only blur. Given the label, the teacher's
# ODE is one smooth map per digit, with no borders to learn. Second, the teacher is **guided** ($w = 1.25$), so each
# class's digits are more typical. Third, half of each batch sits at $s = 1$ (**distillation**). The last two are
# measured elsewhere, and each is small beside a fiftyfold drop: guidance at 1.25 moves the teacher's own 50-step
# distance from 13.3 to 11.8 (`meanflow_cond.md`), and distillation lowered the one-step distance of the
# unconditional student of `unet_flow` by about a quarter (104.4 to 77.8). So the label input is the change that
# matters most: it turns one map with borders into ten smooth ones.
#
# A side remark: drawn with a label chosen at random, `reflow_cond` is also an unconditional sampler of digits in one
# evaluation (with labels 0 to 9 in turn, as here, its 500 digits score 14.2 against all the test digits). That is
# how class-conditional image models are usually scored; the course still counts its unconditional targets against
# networks that take no label, and none of those reaches them.
#
# </details>

# %% [markdown]
# **Question.** Why should slowing the time embedding a hundredfold change what MeanFlow learns, when flow matching
# trained the same U-Net well with the usual embedding?
#
# <details><summary>Answer</summary>
#
# Flow matching only asks the network for its value at each time. MeanFlow's target also contains the network's
# derivative along the path, $\frac{d}{ds}u = v \cdot \nabla_z u + \partial_s u$, and $\partial_s u$ goes through the time
# embedding. The usual embedding turns one code timestep into up to one radian, so one unit of flow time $s$ (a
# thousand timesteps) into up to a thousand radians: the embedding's fastest features oscillate hundreds of times
# across $[0, 1]$, and their derivatives are a thousand times their values. The network's output need not oscillate,
# but its derivative in $s$, read through those features, is large and noisy, and the target
# $v - (s - r)\frac{d}{ds}u$ is dominated by that noise over long intervals, where $s - r$ is large. At a hundredth of
# the scale the fastest feature turns ten radians across $[0, 1]$: smooth enough for the derivative to mean something.
#
# </details>
#
# **Question.** On the toy, reflow's one step landed within 0.063 of the teacher's end after seconds of training; the
# first MNIST reflow student (of `unet_flow_cond`) is far from its teacher. Name two differences between the toy's
# reflow and that one that make the MNIST student's task harder.
#
# <details><summary>Answer</summary>
#
# First, the amount of training for what must be learned: the toy's student saw 40,000 pairs in a 2-D space, this one
# 17,000 pairs of 784 pixels, each seen about 40 times in 5,585 steps, and its Fréchet distance was still falling when
# the time ran out (the curves above: from 843 to 720 at one evaluation, from 234 to 149 at four). Second, the map it must learn is harder. The toy's teacher is one ODE, a smooth map from
# noise to data. This teacher is conditional: each noise's digit is decided by `noise_labels`, ten cones around ten
# directions in noise space, so two nearby noises on either side of a border become two different digits. A
# one-step student must jump there, and a network that is smooth in its input blurs the border: the one-step class
# histogram printed below is far from flat (319 of the 500 read as an 8), the signature of images between digits.
# The reflow student of the unconditional `unet_flow` has no such borders to learn (its teacher's ODE is one smooth map), and its one step is far better
# (104.4 against 733.5) after fewer steps, though its teacher is the weaker sampler.
#
# </details>

# %% [markdown]
# **Is it copying?** One-step generators can fail quietly: the same few images again and again, or a collapse onto a
# few digits. Notebook 07's check finds each sample's nearest training image, in pixels and in the classifier's
# features; real test digits give the yardstick. The table script ran it on the 500 one-step samples of each student:

# %%
# NBVAL_IGNORE_OUTPUT
print("real test digits: median distance to the nearest training digit", few_step["real_test_digits"])
for row in few_step["rows"]:
    if "nearest_pixels_median" in row:
        print(f"{row['model']}, 1 evaluation: median distance in pixels {row['nearest_pixels_median']}, in features "
              f"{row['nearest_features_median']}; {row['distinct_nearest']} distinct nearest training images of "
              f"{row['n']}; class histogram {row['class_histogram']}")

# %% [markdown]
# **Question.** Is any student copying its training digits, or collapsing?
#
# <details><summary>Answer</summary>
#
# None copies: the first reflow student's one-step samples lie at a median (Euclidean, pixel) distance of 10.33 from
# their nearest training digit, farther than real test digits do (8.76), and 474 of its 500 samples have different
# nearest training digits; the reflow student of `unet_flow`'s lie at 9.77, with 498 different nearest training digits
# and 34 to 61 of each digit, and after its distillation at 9.72, with 497. The slowed MeanFlow model's lie at 9.44,
# farther than real test digits, with 495 different nearest
# training digits, and its class histogram is close to flat (33 to 71 of each digit). The conditional student's lie
# at 8.46, a little nearer than real test digits, likely because guidance makes digits more typical, which puts them
# nearer the crowded middle of the training set. They are still not copies: 463 different nearest training digits, and each digit
# is drawn 49 to 51 times, as asked. The conditional reflow student's lie at 9.25, with 496 different nearest training
# digits and 48 to 52 of each digit. The first
# MeanFlow model's one step collapses instead of copying: every sample is the same blurred mean image, which the
# classifier reads as an 8 (all 500 in the class histogram) and which is near only 21 different training digits. The
# confident share of 1.000 in the table is that collapse, not quality: the Fréchet distance and the class histogram
# are what show it.
#
# </details>

# %%
# NBVAL_IGNORE_OUTPUT
print(f"this whole notebook ran in {time.perf_counter() - notebook_start:.0f} s ({B.mode} mode) on "
      f"{dl.inspection.machine_description(device)}; load average {os.getloadavg()[0]:.1f} (other jobs share the CPU)")

# %% [markdown]
# ## Exercise: two MeanFlow steps
#
# Write the two-step MeanFlow sampler: from pure noise `x_1` at $s = 1$, one step to $s = 1/2$ and one to $s = 0$,
# each $z_r = z_s - (s - r)\,u(z_s, r, s)$. The average velocity is given as `u_model(z, s, r)` with two floats, the
# flow time `s` and the end of the interval `r <= s`. The check hands you the exact average velocity of Gaussian data,
# so your two steps must land exactly on the ODE's end. Before you run it: with the exact $u$, is two steps better than
# one? A worked solution is in `solutions/12_few_step.py`.

# %%
# EXERCISE
def two_step_meanflow(u_model, x_1: torch.Tensor) -> torch.Tensor:
    """x_0 after two MeanFlow steps s = 1 -> 1/2 -> 0 of the average velocity u_model(z, s, r)."""
    raise NotImplementedError

# %%
dl.exercises.check("12", two_step_meanflow);

# %% [markdown]
# ## Summary
#
# * One Euler step of the best velocity lands on the data's mean: the velocity at pure noise cannot know the image.
# * Reflow pairs each noise with the teacher's ODE end and trains flow matching again on the pairs; the paths
#   straighten, and few Euler steps get close to the teacher's ends.
# * MeanFlow learns the average velocity over an interval through the identity $u = v - (s - r)\frac{d}{ds}u$, with the
#   total derivative from one `torch.func.jvp`; one step over the whole interval is then a generator.
# * On the toy, a few seconds of training made reflow's one step ten times closer to the teacher's end than the
#   teacher's own one step, and MeanFlow's three times. On MNIST, MeanFlow needs its time embedding slowed as on the
#   toy: then 100 minutes of training give one-step digits (confident share 0.656, Fréchet distance 141.9; the shipped
#   `meanflow`) and beat the flow model it started from at every budget. Reflow on the unconditional `unet_flow` does
#   better in one step after 71 minutes (0.694 / 104.4), and distilled on the same pairs, half of each batch at
#   $s = 1$, better again (0.740 / 77.8 after 115 minutes in all; the shipped `reflow`); reflow on the conditional
#   teacher without its label gave a rough digit after 74. None reaches the unconditional one-step targets.
# * A teacher's velocity can replace $\varepsilon - x_0$ in MeanFlow's target, and a guided teacher builds the guidance
#   into the student: `meanflow_cond` draws the digit asked for 99.8 % of the time in one evaluation (Fréchet distance
#   91.4, target 25), and from four evaluations on its Fréchet distance is below its teacher's at the same budget.
# * Reflow on the guided teacher's pairs, with the label as an input, builds the guidance in too: `reflow_cond`
#   reaches both conditional one-step targets (guided accuracy 0.988, Fréchet distance 14.2) and, in two
#   evaluations, the distance of its teacher's 50 guided steps.
#
# **Next:** notebook 13 moves the diffusion into a small autoencoder's latent space and replaces the U-Net by a
# diffusion transformer.
