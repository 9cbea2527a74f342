# %% [markdown]
# # 07 · DDIM: fewer steps, a knob for the noise, and a way back
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/diffusion-course/diffusion-by-code/blob/main/notebooks/07_ddim.ipynb)
#
# DDPM (notebook 06) needs all 1000 steps. Song et al. (2021) showed that the *same* trained network can be sampled
# with a different, non-Markovian reverse process: it jumps between any two noise levels, takes a parameter $\eta$
# that sets how much fresh noise each step adds ($\eta = 0$: none at all), and, being deterministic at $\eta = 0$,
# can be run backwards, approximately, to turn a real image into a noise that generates it again. No retraining: we
# use the shipped unconditional U-Net of notebook 06 (684,161 parameters, channel multipliers (1, 2, 8)).

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
# - the DDIM update: guess the clean image, then re-noise it to any earlier level, with a knob $\eta$ for the fresh
#   noise (and DDPM as its special case $\eta = 1$);
# - to sample in 10 to 50 steps instead of 1000, and to measure what that costs in quality, with a classifier-based
#   metric and its limits;
# - to run the deterministic sampler backwards, from a digit to a noise that decodes to it, and what that noise
#   really looks like;
# - to interpolate between two noises, and why the straight line is the wrong path.
#
# **What you need first:** notebook 06 (the DDPM step, $\hat x_0$, the shipped network) and, for the metric, the
# idea of a classifier's confidence.
#
# **Run time:** about a minute on a 2-core CPU to itself (the run committed here took 360 s: other jobs shared the
# CPU; 22 seconds in quick mode). Most of it is the DDPM chain of section 3
# (1000 network calls on `B.ddpm_images // 2` images) and the measured sweep of section 5 (10 + 20 + 50 steps at two
# values of $\eta$ on `B.sweep_samples // 2` images). A GPU (Colab: Runtime > Change runtime type) makes it much
# faster.

# %%
import inspect
import json
import time

import torch

import diffusion_lib as dl

notebook_start = time.perf_counter()
device = dl.default_device()
B = dl.budget()
model = dl.pretrained.load_pretrained("unet", device=device)     # the shipped unconditional U-Net (notebook 06)
schedule = dl.pretrained.pretrained_schedule("unet")
classifier = dl.metrics.load_classifier(device=device)
T = schedule.T
print(f"device {device}, {B.mode} mode; {dl.count_parameters(model):,} parameters; {schedule.name} schedule, T = {T}")

# %% [markdown]
# ## 1. The DDIM update
#
# From $x_t$ and the predicted noise $\varepsilon = \varepsilon_\theta(x_t, t)$, jump to an *earlier* level $t' < t$ (any one,
# not only $t - 1$) with (Song et al. 2021, Eq. 12, with $\bar\alpha$ for their $\alpha$):
#
# $$x_{t'} = \sqrt{\bar\alpha_{t'}}\,\underbrace{\frac{x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon}{\sqrt{\bar\alpha_t}}}_{\hat x_0\text{, predicted clean image}}
# + \underbrace{\sqrt{1-\bar\alpha_{t'}-\sigma_t^2}\;\varepsilon}_{\text{direction pointing to } x_t} + \underbrace{\sigma_t z}_{\text{fresh noise}},
# \qquad \sigma_t(\eta) = \eta\,\sqrt{\frac{1-\bar\alpha_{t'}}{1-\bar\alpha_t}}\,\sqrt{1-\frac{\bar\alpha_t}{\bar\alpha_{t'}}}\quad\text{(Eq. 16)}$$
#
# Read it as: guess the clean image, then re-noise it to level $t'$, re-using the *predicted* noise for part of the
# variance and fresh noise for the rest. `dl.samplers.ddim_step` and `ddim_sigma` are these lines (the exercise at
# the end asks you to write them; the library's versions are printed after its check).
# %% [markdown]
# Two special cases. $\eta = 0$: $\sigma_t = 0$, no fresh noise, the whole chain is a deterministic function of
# $x_T$. $\eta = 1$ with $t' = t - 1$: $\sigma_t^2$ is exactly DDPM's posterior variance $\tilde\beta_t$, and
# DDIM *is* DDPM (the library's tests check this draw for draw). Numerically, on every step of the full grid:

# %%
# NBVAL_CHECK_OUTPUT
sigma_full = torch.tensor([dl.samplers.ddim_sigma(dl.samplers.alpha_bar_at(schedule, t),
                                                  dl.samplers.alpha_bar_at(schedule, t - 1), eta=1.0) for t in range(T)])
print("sigma_t(eta = 1) on the full grid equals sqrt(beta_tilde_t) at every t:",
      torch.allclose(sigma_full.float(), schedule.beta_tilde.sqrt(), rtol=1e-4, atol=1e-7))

# %% [markdown]
# ## 2. Which timesteps?
#
# With $S$ steps the library visits $S$ timesteps evenly spaced from $t = T$ down to $t = 1$ (the code's indices `999`
# down to `0`, printed below), then jumps to the clean image (`-1` in the printout). It always **starts at $t = T$**,
# where $x_T$ really is almost pure noise: a grid that skipped it would hand the network pure noise while telling it
# that its input was less noisy than that.

# %%
# NBVAL_CHECK_OUTPUT
for S in (5, 10):
    grid = dl.ddim_timesteps(S, T)
    print(f"S = {S:>2}: timesteps {grid}")
    print(f"        pairs (t, t'): {dl.timestep_pairs(grid)}")
print(f"S = 50: {len(dl.ddim_timesteps(50, T))} timesteps, {dl.ddim_timesteps(50, T)[:4]} ... {dl.ddim_timesteps(50, T)[-3:]}")

# %% [markdown]
# ## 3. Same starting noise, DDPM and DDIM
#
# A few starting noises $x_T$ go through DDPM (1000 steps) and through DDIM with 10 and 50 steps, at $\eta = 0$
# and $\eta = 1$. Each row is timed.

# %%
# NBVAL_IGNORE_OUTPUT
n_compare = B.ddpm_images // 2
x_T = dl.sample_noise(n_compare, generator=torch.Generator().manual_seed(0), device=device)  # (n, 1, 28, 28)
ddpm, ddpm_seconds = dl.sweeps.timed(dl.sweeps.ddpm_images, model, x_T, schedule, seed=1, progress=True)
print(f"DDPM, {T} steps: {ddpm_seconds:.1f} s for {n_compare} images ({ddpm_seconds / n_compare:.2f} s per image)")

# %% [markdown]
# DDIM is one call: the sampler is a generator that yields every step, and `dl.final` runs it to the end and returns
# the images. Here with 10 steps and $\eta = 0$, from the same noises:

# %%
# NBVAL_IGNORE_OUTPUT
ddim_10 = dl.final(dl.ddim_sample_progressive(model, x_T, schedule, num_steps=10, eta=0.0))   # (n, 1, 28, 28)
print(f"DDIM, 10 steps: {tuple(ddim_10.shape)}, pixel range [{ddim_10.min():.2f}, {ddim_10.max():.2f}]")

# %% [markdown]
# The DDIM results for a grid of step counts and $\eta$ are computed once, here, so that the sliders below only look
# them up (instant in class):

# %%
# NBVAL_IGNORE_OUTPUT
grid_steps, grid_etas = [5, 10, 20, 50], [0.0, 0.5, 1.0]
grid_images, grid_seconds = dl.sweeps.timed(dl.sweeps.ddim_grid, model, x_T, schedule, grid_steps, grid_etas, seed=1)
print(f"{len(grid_steps) * len(grid_etas)} DDIM settings for {n_compare} images in {grid_seconds:.1f} s")
print("the grid's (10 steps, eta 0) images are the call above:", torch.equal(grid_images[(10, 0.0)], ddim_10))

# %%
compare_rows = {"DDPM 1000": ddpm, **{f"DDIM {s}, eta {e:g}": grid_images[(s, e)] for s in (50, 10) for e in (0.0, 1.0)}}
dl.plotting.show_rows(compare_rows, title="the same starting noise x_T in every column");

# %% [markdown]
# **Question.** DDIM with $\eta = 0$ and DDPM start from the same noise but usually end at *different* digits, while
# DDIM with 10 and with 50 steps mostly agree. Why? (What else, besides $x_T$, decides where a DDPM chain ends?)
#
# <details><summary>Answer</summary>
#
# A DDPM chain adds fresh noise $z$ at each of its 999 noisy steps, and where it ends depends on all those draws, not
# only on $x_T$: the same $x_T$ with another stream of $z$ ends at another digit. DDIM at $\eta = 0$ adds none, so
# its sample is a function of $x_T$ alone. That its 10-step and 50-step versions mostly agree (7 of the 8 columns
# above) is not because of that determinism, though: each step count is a different deterministic map. They agree
# because both approximate the solution of one and the same ordinary differential equation, which carries $x_T$
# to a sample (Song et al. 2021, section 4.3); more steps follow it more closely, and 10 steps already get near
# enough to land on the same digit most of the time. Section 5 counts how often.
#
# </details>

# %% [markdown]
# ## 4. Sliders: number of steps and $\eta$
#
# The first slider sets the number of steps (one row per $\eta$), the second sets $\eta$ (one row per number of
# steps). Below them, every setting for the first three images, for GitHub and print.

# %%
# NBVAL_IGNORE_OUTPUT
dl.widgets.slider_view(dl.plotting.labelled_grid_slider(lambda s: {f"eta = {e:g}": grid_images[(s, e)] for e in grid_etas},
                                                       lambda s: f"DDIM with {s} steps"),
                       values=grid_steps, description="DDIM steps", value=10)

# %%
# NBVAL_IGNORE_OUTPUT
dl.widgets.slider_view(dl.plotting.labelled_grid_slider(lambda e: {f"{s} steps": grid_images[(s, e)] for s in grid_steps},
                                                       lambda e: f"DDIM with eta = {e:g}"),
                       values=grid_etas, description="eta", value=0.0)

# %%
dl.plotting.show_rows({f"image {i + 1}, eta = {e:g}": torch.stack([grid_images[(s, e)][i] for s in grid_steps])
                       for i in range(min(3, n_compare)) for e in grid_etas},
                      col_labels=[f"{s} steps" for s in grid_steps],
                      title="every setting of the sliders, first three images");

# %% [markdown]
# **Question.** At 5 and 10 steps, which $\eta$ gives the cleaner digits *here*? Song et al. (2021, Table 1) found
# $\eta = 0$ best when the steps are few: each step with $\eta > 0$ adds noise that the remaining steps must remove.
# Does this small network agree? What could make a deterministic path worse than a noisy one?
#
# <details><summary>Answer</summary>
#
# Here too, mostly $\eta = 0$. At 5 steps it gives a clean 4 and 3 and a rough 6 in the strip above, where
# $\eta = 0.5$ gives blurred or broken shapes and $\eta = 1$ two blurred 8-like shapes and a 7; at 10 steps the gap
# is small (section 5's table: a confident share of 0.83 against 0.82). With few steps each jump is long, and the
# fresh noise added at one step is more than the few remaining steps can remove. With many steps it turns around: section 5's table has $\eta = 1$ ahead at 50 steps (a confident share of
# 0.94 against 0.84, and the model card's 500 images agree, 0.876 against 0.822). A deterministic path carries every
# error of the network forward to the end; fresh noise at the next step partly washes an error out, and with short
# steps there is time to remove that noise again.
#
# </details>

# %% [markdown]
# ## 5. Quality and time against the number of steps
#
# Pictures of eight digits cannot say whether 20 steps are as good as 50, or which $\eta$ is better. The course's
# metric (`dl.metrics`) can: a
# small MNIST classifier reads every sample, and we report the **confident share** (images it reads as one digit with
# $p > 0.9$) and the **Fréchet distance** between the classifier features of the samples and of the 10,000 MNIST test
# digits (lower is better; FID's construction with an MNIST classifier in place of Inception). Real digits give the
# targets, measured with the same classifier and the same number of images. The same starting noises go through
# DDIM with 10, 20 and 50 steps, at $\eta = 0$ and at $\eta = 1$.
#
# **What these numbers can and cannot tell.**
#
# * The *confident share* counts samples that look like some digit to this classifier. It says nothing about variety
#   (a model that draws the same neat 1 every time scores 1.0), and the classifier, trained on MNIST only, can be
#   sure of a shape no person would call a digit (it was trained to doubt noise and scribbles, see
#   `diffusion_lib/weights/classifier.md`, but it cannot have seen every odd shape).
# * The *Fréchet distance* compares the mean and covariance of the classifier's 128 features for samples and real
#   digits, so it sees quality and variety together, but only through what this classifier learned to look at. It
#   grows as the number of images shrinks, even for real digits: compare it only between runs with the same number
#   of images, and against real digits at that number (the dashed line). It is not the FID of papers (Inception
#   features of natural images); these numbers compare with each other, not with published ones.
# * The *histogram of predicted classes* (and its effective number of classes, 10 when all digits are equally
#   common) tells whether every digit appears, not how well each is drawn.
# * None of them can replace looking at the samples: they are a few hundred images through one small network.

# %%
# NBVAL_IGNORE_OUTPUT
n_sweep = B.sweep_samples // 2
reference = dl.metrics.reference_scores(classifier, n=n_sweep, with_features=True)   # one pass over the test set
reference_features = reference["test_features"]                                      # (10000, 128)
print(f"real digits: confident share {reference['test_confident_share']:.3f} (test set); Frechet distance of "
      f"{n_sweep} training digits to the test set {reference['train_vs_test_frechet_distance']:.2f}")

# %%
# NBVAL_IGNORE_OUTPUT
sweep_x_T = dl.sample_noise(n_sweep, generator=torch.Generator().manual_seed(2), device=device)
sweep_rows, sweep_images = {}, {}
for eta in (0.0, 1.0):
    sweep_rows[eta], sweep_images[eta] = dl.sweeps.steps_sweep(model, sweep_x_T, schedule, [10, 20, 50], classifier,
                                                               reference_features, eta=eta, seed=3)
ddpm_row = dl.sweeps.score_row(ddpm, ddpm_seconds, classifier, reference_features, sampler="DDPM", steps=T)
ddpm_row["frechet_distance"] = None            # from a handful of images a Frechet distance means nothing
print(dl.sweeps.format_rows(sweep_rows[0.0] + sweep_rows[1.0] + [ddpm_row],
                            ["sampler", "steps", "eta", "n", "seconds_per_image", "confident_share", "frechet_distance"]))
print("measured on:", dl.inspection.machine_description(device))

# %% [markdown]
# How much of that is noise? The same sampler scored on another 100 starting noises can move the confident share by
# several hundredths. The shipped model's card (`diffusion_lib/weights/unet.json`, measured with
# `benchmarks/evaluate.py` on 500 images) is steadier; its DDIM scores (5 to 50 steps, $\eta = 0$ and 1) are loaded
# here and drawn as curves in the middle panel (its Fréchet distances are left out: they come from 500 images and
# compare with 500 real digits, not with the dashed line of this notebook's smaller sample; nor are its times shown;
# its Heun rows belong to notebook 10):

# %%
# NBVAL_IGNORE_OUTPUT
card = json.loads((dl.pretrained.WEIGHTS_DIR / "unet.json").read_text())
print("model card:", card["command"])
print(dl.sweeps.format_rows(card["scores"], ["sampler", "steps", "eta", "n", "confident_share", "frechet_distance"]))
card_rows = {eta: [{**r, "seconds_per_image": None, "frechet_distance": None}
                  for r in card["scores"] if r["sampler"] == "ddim" and r["eta"] == eta] for eta in (0.0, 1.0)}

# %%
dl.plotting.plot_quality_vs_steps({**{f"DDIM, eta = {eta:g}, {n_sweep} images": rows for eta, rows in sweep_rows.items()},
                                   f"DDPM 1000, {n_compare} images (section 3)": [ddpm_row],
                                   **{f"model card: DDIM, eta = {eta:g}, 500 images": rows for eta, rows in card_rows.items()}},
                                  reference=reference);

# %% [markdown]
# The DDPM point's time is real, but its confident share comes from only the few images of section 3 (and its
# Fréchet distance is left out: with so few images it means nothing). Scoring DDPM-1000 on as many images as the DDIM
# points would take $n \times 1000$ network calls, far beyond this notebook's budget; the project's benchmark
# (`python benchmarks/run.py --sections sampling`, results in `benchmarks/RESULTS.md` in the repository) scores DDPM-1000
# and DDIM on 500 images each, with the same classifier.
#
# The times per image are not comparable across that table either: DDPM ran in a batch of 8 (section 3), the DDIM
# rows in batches of 100, and the time per image depends on the batch size (and, on a shared machine, on what else
# runs). The same 8 starting noises through DDIM with 20 steps, timed in the same batch of 8:

# %%
# NBVAL_IGNORE_OUTPUT
_, ddim20_seconds = dl.sweeps.timed(dl.sweeps.ddim_images, model, x_T, schedule, 20)
print(f"a batch of {n_compare}: DDPM, {T} steps, {ddpm_seconds / n_compare:.3f} s per image; DDIM, 20 steps, "
      f"{ddim20_seconds / n_compare:.4f} s per image: {ddpm_seconds / ddim20_seconds:.0f} times less time for "
      f"{T // 20} times fewer network calls")

# %% [markdown]
# **Question.** From the table, which number of steps and which $\eta$ would you use in class, and how much faster
# than DDPM is that? (DDPM is DDIM with $\eta = 1$ on all 1000 steps: where would its point lie on the $\eta = 1$
# curve if it were scored on as many images?)
#
# <details><summary>Answer</summary>
#
# Within this table's noise (a few hundredths), 20 steps are as good as 50 at $\eta = 0$ (confident share 0.86
# against 0.84, Fréchet distance 82 against 84), and $\eta = 1$ at 50 steps is the best point (0.94). For a class,
# 20 steps at $\eta = 0$: deterministic, so the same noise gives the same digit every time you run it, and 20 network
# calls per image against DDPM's 1000, fifty times fewer. Timed in the same batch of 8 it took 74 times less time per
# image in the run committed here, near the ratio of calls for a CPU that other jobs shared (the table's own ratio,
# 67 here, compares DDPM's batch of 8 with DDIM's batches of 100, and moves with the batch size). If
# quality matters more than speed, 50 steps at $\eta = 1$, the best confident share here and in the model card,
# although its Fréchet distance here is the table's worst (89): with 100 images, a few units either way are noise.
# DDPM sits at the right end of the $\eta = 1$ curve: the
# project's benchmark (benchmarks/README.md's sampling table) gives DDPM-1000 a confident share of 0.870
# against 0.885 for DDIM 50 at $\eta = 1$, level within the noise, at twenty times the cost.
#
# </details>
#
# Does the same $x_T$ give the same digit whatever the number of steps? With $\eta = 0$ each step count is a
# deterministic map from $x_T$ to a sample, but each count is a *different* map, so determinism alone does not say.
# What makes them agree is that they all approximate one ordinary differential equation (Song et al., section 4.3),
# and the more steps, the closer they get to it and to each other. With $\eta = 1$ the fresh noise of every step has
# its say too:

# %%
# NBVAL_IGNORE_OUTPUT
for eta, images_by_steps in sweep_images.items():
    predicted = {s: dl.metrics.classify(x, classifier).argmax(1) for s, x in images_by_steps.items()}  # steps -> (n,)
    print(f"eta = {eta:g}: " + ", ".join(f"DDIM {s} and DDIM 50 agree on {(predicted[s] == predicted[50]).float().mean():.0%}"
                                         for s in (10, 20)) + f" of {n_sweep} images (same noise, classifier's digit)")

# %% [markdown]
# The numbers above bear this out: at $\eta = 0$, 10 and 20 steps agree with 50 on most images, and more so the
# closer the step count; at $\eta = 1$ they agree about as often as two unrelated samples would.
#
# **Does the network copy its training digits?** The shipped U-Net saw the 60,000 training digits for 35,000 steps;
# could its samples be copies of them? For every DDIM-50 sample above, find the nearest of the 60,000 training
# images, in pixels and in the classifier's features (`dl.metrics.nearest_training_images`, exact Euclidean nearest
# neighbours). A copy would lie at a distance of about 0. The yardstick is the same number of real test digits,
# which the network never saw and which are no copies: how far do *they* lie from their nearest training digit?

# %%
# NBVAL_IGNORE_OUTPUT
train_images, _ = dl.load_mnist(train=True)                                                 # (60000, 1, 28, 28)
train_features = dl.metrics.classifier_features(train_images, classifier)                    # (60000, 128)
generated = sweep_images[0.0][50].cpu()                                                      # (n, 1, 28, 28)
held_out = dl.load_mnist(train=False)[0][:generated.shape[0]]                               # n real test digits
nearest = {"generated": dl.metrics.nearest_training_images(generated, train_images, classifier, train_features),
           "real test digits": dl.metrics.nearest_training_images(held_out, train_images, classifier, train_features)}
for space in ("pixels", "features"):
    print(f"distance to the nearest training image, {space}: " + "; ".join(
        f"{who} median {found[space][0].median():.2f} (smallest {found[space][0].min():.2f})"
        for who, found in nearest.items()))

# %%
pixel_d, pixel_i = nearest["generated"]["pixels"]
_, feature_i = nearest["generated"]["features"]
dl.plotting.show_rows({"generated": generated[:8], "nearest, pixels": train_images[pixel_i[:8]],
                       "nearest, features": train_images[feature_i[:8]]},
                      col_labels=[f"d = {d:.1f}" for d in pixel_d[:8]],
                      title="eight samples and their nearest training images (d: pixel distance)");

# %% [markdown]
# **Question.** What would the two printed lines look like if the network had memorised some of its training
# digits, and what do they say here?
#
# <details><summary>Answer</summary>
#
# A memorised sample sits on top of a training image: its smallest distance would be about 0, far below anything a
# real unseen digit reaches, in pixels and in features alike. Here no sample comes close to 0: the generated digits
# lie at distances of the same order as the real test digits' (the medians printed above), and the pictures show
# the nearest training image as the same digit written by another hand: these samples are digits of its own.
# (Run the same cell on a network trained on a few hundred images to see the other case.)
#
# </details>
#
# ## 6. The way back: deterministic encoding
#
# The $\eta = 0$ update can be run in reverse: from a clean image, step *up* the grid from level $t'$ to the noisier
# level $t$ with the update of section 1, the roles of $t$ and $t'$ swapped,
#
# $$x_t = \sqrt{\bar\alpha_t}\,\hat x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon, \qquad
# \hat x_0 = \frac{x_{t'} - \sqrt{1-\bar\alpha_{t'}}\,\varepsilon}{\sqrt{\bar\alpha_{t'}}}, \qquad
# \varepsilon = \varepsilon_\theta(x_{t'}, t).$$
#
# This is an **approximation**. To undo a sampling step exactly, $\varepsilon$ would have to be the network's
# prediction at the state being computed, $\varepsilon_\theta(x_t, t)$, which is not known yet; the inversion uses
# the prediction at the state it comes from, $x_{t'}$, at the new level's timestep. That is close when one step
# changes $x$ and $\varepsilon_\theta$ little, and closer the more steps are taken (Song et al. 2021, section 4.3: both
# directions are steps along the same ODE); the experiment at the end measures it.
# `dl.ddim_invert_progressive` does this; `dl.sweeps.ddim_encode` records it. One real test digit of each class:

# %%
# NBVAL_CHECK_OUTPUT
test_images, test_labels = dl.load_mnist(train=False)
first_of_each = torch.tensor([int((test_labels == d).nonzero()[0]) for d in range(10)])
digits = test_images[first_of_each].to(device)                                               # (10, 1, 28, 28)
print("test images used:", first_of_each.tolist(), "labels:", test_labels[first_of_each].tolist())

# %%
# NBVAL_IGNORE_OUTPUT
encoding, encode_seconds = dl.sweeps.timed(dl.sweeps.ddim_encode, model, digits, schedule, B.ddim_steps)
latents = encoding.sample.to(device)                                                         # (10, 1, 28, 28) x_T
reconstructions = dl.sweeps.ddim_images(model, latents, schedule, B.ddim_steps)
recon_class = dl.metrics.classify(reconstructions, classifier).argmax(1)
print(f"encoded and decoded with {B.ddim_steps} steps each ({encode_seconds:.1f} s to encode 10 digits)")
print(f"|latent| / sqrt(784): {(latents.flatten(1).norm(dim=1) / 28).mean():.3f} on average (pure noise: 1.000); "
      f"latent pixel std {latents.std():.3f}")
print(f"mean |reconstruction - original| per pixel: {(reconstructions - digits).abs().mean():.3f}; "
      f"reconstructions classified as the original digit: {(recon_class.cpu() == torch.arange(10)).sum()} of 10")

# %%
dl.plotting.show_rows({"original": digits, "encoded x_T": latents, "decoded": reconstructions},
                      title=f"DDIM encoding and decoding, {B.ddim_steps} steps each way");

# %%
# the recorded states start at the clean image (the code's t = -1) and the encoded noise is the chain's end, .sample
encode_k = torch.linspace(0, len(encoding.timesteps) - 1, 6).round().long().tolist()
dl.plotting.show_rows({f"digit {d}": torch.cat([encoding.x_t[encode_k, d], encoding.sample[d:d + 1]]) for d in (2, 7)},
                      col_labels=["x_0" if encoding.timesteps[k] < 0 else f"t = {encoding.timesteps[k]}"
                                  for k in encode_k] + [f"t = {T - 1}"],
                      title="encoding: the digit walks up the noise levels");

# %% [markdown]
# What is really there: the encoded $x_T$ is nothing like a typical draw from $\mathcal{N}(0, I)$. Each digit is plainly
# visible in it, at every level of the way up (the second picture), and its norm is 0.47 of a typical noise's
# (printed above: $|x_T| / \sqrt{784}$ = 0.474, where pure noise gives 1). Yet decoding it gives the digit back, 10 of
# 10, within 0.027 per pixel.
#
# **Question.** Where in the encoded $x_T$ does the structure sit, in the background or on the strokes? Why might the
# network's predictions on the way up leave it there? And why is a latent so unlike the starting noises of sampling
# no obstacle to decoding it?
#
# <details><summary>Answer</summary>
#
# The background is a flat grey, close to 0, and the noise-like texture sits on the strokes. On the way up, the
# network is asked at every level what noise is in its input. The clean digit's background is a flat black, and a
# flat patch contains no noise at all, so the network predicts $\varepsilon \approx 0$ there; with $\varepsilon = 0$ the
# update only rescales those pixels, by $\sqrt{\bar\alpha_t / \bar\alpha_{t'}}$, and they stay flat at every level,
# shrinking towards 0. Only on and around the strokes does the network see something it takes for noise, and only
# there does noise enter; hence also the small norm. Decoding does not need a typical $x_T$: it runs the same
# deterministic map the other way, and the encoder produced exactly the point that map sends back to the digit
# (up to the approximation above). Such latents are, however, far from where sampling starts, which matters when
# they are used as starting noises, as in section 7.
#
# </details>

# %% [markdown]
# ## 7. Interpolating between two noises
#
# Decode a path between two starting noises. A straight line $(1-s) z_a + s z_b$ passes through vectors that are too
# short to be typical noise: two independent draws from $\mathcal{N}(0, I)$ in 784 dimensions are almost orthogonal,
# so the midpoint has norm $\approx |z|/\sqrt{2}$, and the network never saw such a quiet $x_T$. Spherical
# interpolation (`dl.interpolation.slerp`) turns along the great circle instead and keeps the norm:
#
# $$\mathrm{slerp}(z_a, z_b, s) = \frac{\sin((1-s)\theta)}{\sin\theta}\, z_a + \frac{\sin(s\theta)}{\sin\theta}\, z_b,
# \qquad \cos\theta = \frac{\langle z_a, z_b\rangle}{|z_a|\,|z_b|}$$
#
# Two pairs of ends: two draws of noise from section 5 (the two whose DDIM-50, eta = 0 digits the classifier is surest of,
# among different digits), and the encoded noises of the 2 and the 7 of section 6.

# %%
# NBVAL_IGNORE_OUTPUT
sure = dl.metrics.classify(sweep_images[0.0][50], classifier)                                   # (n, 10)
order = sure.max(1).values.argsort(descending=True).tolist()
i_a = order[0]
i_b = next(i for i in order if sure[i].argmax() != sure[i_a].argmax())
s_values = torch.linspace(0, 1, 9).tolist()
ends = {"drawn noises": (sweep_x_T[i_a], sweep_x_T[i_b]), "encoded 2 and 7": (latents[2], latents[7])}
paths = {}
for name, (z_a, z_b) in ends.items():
    paths[f"{name}, slerp"] = dl.interpolation.slerp_path(z_a, z_b, len(s_values))                       # (9, 1, 28, 28)
    paths[f"{name}, lerp"] = torch.stack([dl.interpolation.lerp(z_a, z_b, s) for s in s_values])        # (9, 1, 28, 28)
    print(f"{name}: angle between the ends {torch.rad2deg(torch.tensor(dl.interpolation.angle(z_a, z_b))):.1f} degrees")
for name, z in paths.items():
    print(f"  |z| / 28 along {name:<22}", " ".join(f"{v:.2f}" for v in (z.flatten(1).norm(dim=1) / 28).tolist()))
path_images = {name: dl.sweeps.ddim_images(model, z, schedule, B.ddim_steps) for name, z in paths.items()}

# %%
dl.plotting.show_rows(path_images, col_labels=[f"s = {s:.3g}" for s in s_values],
                      title=f"decoded paths between two noises (DDIM, {B.ddim_steps} steps)");

# %% [markdown]
# **Question.** For the drawn noises, where along the straight path do the digits fade, and how does that match the
# printed norms? The encoded noises are not typical draws (their norms above are not 28): does the argument for
# slerp still hold for them? Compare what the two rows of each pair actually show.
#
# <details><summary>Answer</summary>
#
# Along the straight path between the drawn noises, the 1 gets thinner and fainter from about $s = 0.375$ to
# $s = 0.875$, just where the printed norm drops from 1.01 at the ends to 0.71 in the middle; the slerp path keeps
# the norm near 1 and the 1 bold until it turns into the 3. For the encoded noises the argument does not carry
# over as it stands: their norms were never typical (0.54 and 0.38), and slerp only keeps the path from dipping
# below the ends' norms (lerp goes down to 0.32). It does keep the decoded digit bold instead of fading, but the
# middle of the slerp row is a fat blob, neither a 2 nor a 7: neither path stays among the latents the encoder
# produces, which is what a smooth morph between two real digits would need.
#
# </details>

# %%
# NBVAL_IGNORE_OUTPUT
print(f"this whole notebook ran in {time.perf_counter() - notebook_start:.0f} s ({B.mode} mode) on "
      f"{dl.inspection.machine_description(device)}")

# %% [markdown]
# ## Exercise: write the DDIM update yourself
#
# Given `x_t` (B, 1, 28, 28), the predicted noise `eps`, the floats `alpha_bar_t` and `alpha_bar_prev`
# ($\bar\alpha_t$ and $\bar\alpha_{t'}$), the float `eta` and fresh noise `noise` (same shape as `x_t`), return
# $x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 + \sqrt{1-\bar\alpha_{t'}-\sigma_t^2}\,\varepsilon + \sigma_t z$ with
# $\sigma_t(\eta)$ of Eq. 16. The check runs it on a 5-step grid for $\eta = 0, 0.5, 1$. A worked solution is in
# `solutions/07_ddim.py`.

# %%
# EXERCISE
def ddim_update(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: float, alpha_bar_prev: float, eta: float,
                noise: torch.Tensor) -> torch.Tensor:
    """x_prev = sqrt(alpha_bar_prev) x0_pred + sqrt(1 - alpha_bar_prev - sigma^2) eps + sigma noise."""
    raise NotImplementedError

# %%
dl.exercises.check("07", ddim_update);

# %% [markdown]
# The library's versions, for comparison with yours:

# %%
# NBVAL_CHECK_OUTPUT
print(inspect.getsource(dl.samplers.ddim_sigma))
print(inspect.getsource(dl.samplers.ddim_step))

# %% [markdown]
# ## Experiment: how exact is the way back?
#
# Section 6 encoded and decoded with `B.ddim_steps` steps each way and got the digits back to within a few hundredths
# per pixel. Measure the round-trip error, the mean of $|\text{decoded} - \text{original}|$ per pixel over the ten
# `digits` of section 6, for several numbers of steps: encode with `dl.sweeps.ddim_encode(model, digits, schedule, S)`,
# take its last state (`.sample`), decode it with `dl.sweeps.ddim_images(model, latents, schedule, S)`. Before you run
# it, predict: does the error fall to zero as $S$ grows? Steadily? What limits it? The check looks at the direction
# of what you measured (a few seconds in full mode). A worked version is in `solutions/07_ddim.py`.

# %%
# EXPERIMENT: round-trip error against the number of steps
exp_steps = sorted({2, 5, 10, 20, B.ddim_steps})   # 2 to 50 steps in full mode, 2 to 20 in quick mode
exp_errors = []                                     # one error per entry of exp_steps: fill it

# %%
dl.exercises.check("07-inversion", {"steps": exp_steps, "errors": exp_errors});

# %% [markdown]
# <details><summary>What to look for</summary>
#
# The error falls fast, from several units per pixel at 2 steps (the decoded image is not a digit at all) to a few
# hundredths at 50, but not necessarily at every step count: in our measurement it rose from 0.039 at 10 steps to
# 0.075 at 20 before falling to 0.027 at 50 (and 0.016 at 100). It does not reach zero at any finite $S$: every
# step of the encoding uses the noise predicted at the state it comes from, an error that shrinks with the step but
# never vanishes, and the decoding's own steps add theirs.
#
# </details>

# %% [markdown]
# ## Summary
#
# - DDIM guesses $\hat x_0$ and re-noises it to any earlier level; $\eta$ sets the fresh noise, and $\eta = 1$ on the
#   full grid is DDPM.
# - 20 to 50 steps give digits about as good as DDPM's 1000; at few steps $\eta = 0$ is best, at 50 steps the noisy
#   sampler is ahead for this network.
# - The classifier's confident share and Fréchet distance measure what pictures cannot, within limits: they need
#   the same number of images to compare, and they see only what the classifier learned to see.
# - At $\eta = 0$ the sampler approximates one ODE, which is why different step counts mostly agree and why it can be
#   run backwards; the encoded noise keeps the digit in plain sight and decodes back to it.
# - Between two noises, interpolate along the great circle (slerp), not the straight line.
#
# **Next:** notebook 08 conditions the network on the digit to draw: classifier-free guidance, and the trade-off
# between recognisable digits and varied ones, measured.
