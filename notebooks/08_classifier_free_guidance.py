# %% [markdown]
# # 08 · Classifier-free guidance: asking for a digit, and how hard
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/diffusion-course/diffusion-by-code/blob/main/notebooks/08_classifier_free_guidance.ipynb)
#
# A class-conditional network $\varepsilon_\theta(x_t, t, y)$ draws the digit $y$ you ask for, but often weakly.
# Classifier-free guidance (Ho & Salimans 2022) trains the *same* network to work without a label too, and at sampling
# time extrapolates from the unconditional prediction towards the conditional one with a weight $w$. Larger $w$:
# digits that are easier to recognise, but more alike. This notebook measures that trade-off.
#
# **Run time.** About a minute on the 2-core CPU this notebook was built on (the end of section 4 prints the time and
# the load). Nearly all of it is the sweep of section 3: 7 guidance weights x `B.sweep_samples` images x
# `B.ddim_steps // 5` DDIM steps, each step calling the network on twice the batch. With a GPU (Colab: Runtime >
# Change runtime type) it takes seconds.

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
import inspect
import os
import time

import torch
from IPython.display import Markdown

import diffusion_lib as dl

notebook_start = time.perf_counter()
device = dl.default_device()
B = dl.budget()
model = dl.pretrained.load_pretrained("unet_cond", device=device)   # the shipped class-conditional U-Net, EMA weights
schedule = dl.pretrained.pretrained_schedule("unet_cond")
classifier = dl.metrics.load_classifier(device=device)
print(f"device {device}, {B.mode} mode; {dl.count_parameters(model):,} parameters; {schedule.name} schedule, T = {schedule.T}")

# %% [markdown]
# ## 1. One network, with and without a label
#
# The network gets the label through an embedding added to its time embedding. It has **11** label rows: the digits
# 0-9 and a **null label** 10 that means "no label". During training, each label is replaced by the null label with
# probability $p$ (label dropout), so the network learns both $\varepsilon_\theta(x_t, t, y)$ and
# $\varepsilon_\theta(x_t, t, \varnothing)$:

# %%
# NBVAL_CHECK_OUTPUT
print(inspect.getsource(dl.training.drop_labels))
y = torch.arange(20) % 10
print("labels            ", y.tolist())
print("after dropout 0.1 ", dl.training.drop_labels(y, 0.1, null_label=10, generator=torch.Generator().manual_seed(0)).tolist())

# %% [markdown]
# The shipped model was trained that way; its checkpoint keeps the training configuration and its model card says
# how, where and how long:

# %%
# NBVAL_CHECK_OUTPUT
checkpoint = dl.load_checkpoint(dl.pretrained.pretrained_path("unet_cond"))
config = checkpoint["config"]
print(f"num_classes = {model.num_classes}, null_label = {model.null_label}, "
      f"label embedding {tuple(model.label_embedding.weight.shape)} (11 labels x embedding width)")
print({k: config[k] for k in ("backbone", "backbone_kwargs", "label_dropout", "steps", "batch_size", "lr", "schedule", "T")})

# %%
Markdown((dl.pretrained.WEIGHTS_DIR / "unet_cond.md").read_text())

# %% [markdown]
# **About the seed report.** The "classifier-free" script of the report this course started from (folder
# DDPM-DDIM-ClassifierFree of disanda/GM) is plain class-conditional DDPM: it has no label dropout, no null class and no
# guidance weight $w$, so it cannot do what follows. The course does all three.

# %% [markdown]
# ## 2. The guidance equation
#
# At every sampling step, run the network twice, with the label and with the null label, and combine:
#
# $$\tilde\varepsilon = \varepsilon_\theta(x_t, t, \varnothing) + w\,\big(\varepsilon_\theta(x_t, t, y) - \varepsilon_\theta(x_t, t, \varnothing)\big)$$
#
# $w = 0$: the unconditional model; $w = 1$: the conditional model; $w > 1$: beyond it, away from the unconditional
# prediction. (Ho & Salimans write $(1 + w')\,\varepsilon_\theta(x_t, t, y) - w'\,\varepsilon_\theta(x_t, t, \varnothing)$: the
# same thing with $w' = w - 1$.) `guided_eps` is the equation; `cfg_eps_model` wraps the network into an
# `eps_model` for any sampler of notebooks 06-07, with both calls in one batch of $2B$:

# %%
# NBVAL_CHECK_OUTPUT
print(inspect.getsource(dl.guidance.guided_eps))
print(inspect.getsource(dl.guidance.cfg_eps_model))

# %% [markdown]
# **Question.** Guidance doubles the cost of each step. Why can the two predictions not be shared between the images
# of a batch that ask for different digits?

# %% [markdown]
# Sampling with guidance is the DDIM sampler of notebook 07 given the guided noise estimate instead of the network:
# `dl.cfg_eps_model(model, labels, w)` is a function $(x_t, t) \mapsto \tilde\varepsilon$, and the sampler calls it
# at every step. Eight 7s at $w = 3$:

# %%
# NBVAL_IGNORE_OUTPUT
sevens = torch.full((8,), 7)                                                              # the digit asked for, (8,)
x_T_sevens = dl.sample_noise(8, generator=torch.Generator(device=device).manual_seed(7), device=device)
guided_model = dl.cfg_eps_model(model, sevens, w=3.0)
sevens_images = dl.final(dl.ddim_sample_progressive(guided_model, x_T_sevens, schedule, num_steps=B.ddim_steps // 5))
dl.plotting.show_grid(sevens_images, nrow=8, title=f"w = 3, label 7: DDIM {B.ddim_steps // 5} steps");

# %% [markdown]
# ## 3. Sweeping $w$
#
# The same starting noises and the same labels (0, 1, ..., 9, 0, 1, ...) for every $w$, sampled with DDIM
# ($\eta = 0$, notebook 07), then scored with the course's classifier (`dl.metrics`):
#
# * **guided accuracy**: the share of images classified as the digit that was asked for;
# * **confident share**: the share the classifier reads as one digit with $p > 0.9$;
# * **within-class diversity**: take the images the classifier reads with confidence, group them by the digit it
#   reads, and measure the spread (total variance) of their classifier features in each group, divided by the same
#   spread for real test digits of that class, averaged over the digits (`dl.metrics.relative_spread`):
#   1 = as varied as real handwriting, towards 0 = the same digit every time;
# * **Fréchet distance** of all the samples to the test set (notebook 07).

# %%
# NBVAL_IGNORE_OUTPUT
ws = [0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0]
n_guided = B.sweep_samples                        # images per w, the ten digits in turn
guide_steps = B.ddim_steps // 5                   # DDIM steps per image; each step calls the network on 2 x n images
labels = torch.arange(n_guided) % 10                                    # (n,)
x_T = dl.sample_noise(n_guided, generator=torch.Generator(device=device).manual_seed(0), device=device)
reference = dl.metrics.reference_scores(classifier, n=n_guided, with_features=True)   # real digits, same classifier
guide_rows, guide_images = dl.sweeps.guidance_sweep(model, x_T, schedule, labels, ws, classifier,
                                                    reference["test_features"], reference["test_class_spread"],
                                                    num_steps=guide_steps)
print(f"{len(ws)} guidance weights x {n_guided} images, DDIM {guide_steps} steps, "
      f"{sum(r['seconds'] for r in guide_rows):.0f} s of sampling on {dl.inspection.machine_description(device)}")

# %% [markdown]
# One row per digit, as you drag $w$ (all computed above, so the slider only looks them up):

# %%
# NBVAL_IGNORE_OUTPUT
per_row = min(10, n_guided // 10)
by_digit = {w: {f"{d}": x[labels == d][:per_row] for d in range(10)} for w, x in guide_images.items()}
dl.widgets.slider_view(dl.plotting.labelled_grid_slider(lambda w: by_digit[w], lambda w: f"w = {w:g}"),
                       values=ws, description="w", value=3.0)

# %% [markdown]
# For GitHub and print: the grid at $w = 3$, then the first sample of every digit at every $w$.

# %%
dl.plotting.show_rows(by_digit[3.0], title="w = 3: one row per digit asked for");

# %%
dl.plotting.show_rows({f"w = {w:g}": torch.cat([by_digit[w][f"{d}"][:1] for d in range(10)]) for w in ws},
                      col_labels=[f"asked {d}" for d in range(10)],
                      title="the first sample asked for each digit: same noise down a column, another w in each row");

# %% [markdown]
# **Question.** At $w = 0$ the label is ignored: what decides which digit appears? Compare the $w = 0$ row with
# the $w = 1$ row above.

# %% [markdown]
# ## 4. The trade-off, measured

# %%
# NBVAL_IGNORE_OUTPUT
print(dl.sweeps.format_rows(guide_rows, ["w", "n", "guided_accuracy", "confident_share", "relative_spread",
                                         "frechet_distance", "effective_classes", "seconds"]))
print(f"real test digits: confident share {reference['test_confident_share']:.3f}; {n_guided} training digits against "
      f"the test set: Frechet distance {reference['train_vs_test_frechet_distance']:.2f}")

# %%
dl.plotting.plot_guidance_tradeoff(guide_rows, reference=reference);

# %% [markdown]
# Read the left panel from bottom right to top left: as $w$ grows, the classifier finds the requested digit more
# often, and the digits of one class become more alike. The Fréchet distance (right), which rewards both being
# recognisable *and* varied like real data, is lowest in between. Each point comes from the images of one run
# (see the table for how many), so differences of a few percent are within the noise.
#
# **Question.** Which $w$ would you pick to generate a training set for another classifier, and which to draw one
# clean example of each digit for a slide?

# %%
# NBVAL_IGNORE_OUTPUT
print(f"this whole notebook ran in {time.perf_counter() - notebook_start:.0f} s ({B.mode} mode) on "
      f"{dl.inspection.machine_description(device)}; load average {os.getloadavg()[0]:.1f} (other jobs share the CPU)")

# %% [markdown]
# ## Exercise: the guided prediction by hand
#
# Given a conditional `model` (called as `model(x_t, t, labels)`; its null label is `model.null_label`), a batch
# `x_t` (B, 1, 28, 28), timesteps `t` (B,), labels `y` (B,) and a weight `w`, return
# $\varepsilon_\theta(x_t, t, \varnothing) + w\,(\varepsilon_\theta(x_t, t, y) - \varepsilon_\theta(x_t, t, \varnothing))$.
# The check compares with `dl.cfg_eps_model` for $w = 0, 1, 3$ on a small random network.
# A worked solution is in `solutions/08_classifier_free_guidance.py`.

# %%
# EXERCISE
def guided_noise(model, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor, w: float) -> torch.Tensor:
    """eps_uncond + w (eps_cond - eps_uncond), with eps_uncond from the null label."""
    raise NotImplementedError

# %%
dl.exercises.check("08", guided_noise);
