# %% [markdown]
# # 08 · Classifier-free guidance: asking for a digit, and how hard
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/diffusion-course/diffusion-by-code/blob/main/notebooks/08_classifier_free_guidance.ipynb)
#
# A class-conditional network $\varepsilon_\theta(x_t, t, y)$ draws the digit $y$ you ask for, but often weakly.
# Classifier-free guidance (Ho & Salimans 2022) trains the *same* network to work without a label too, and at sampling
# time extrapolates from the unconditional prediction towards the conditional one with a weight $w$. Larger $w$:
# digits that are easier to recognise, but more alike, up to a point. This notebook measures that trade-off.

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
# - how one network learns both $\varepsilon_\theta(x_t, t, y)$ and the unconditional $\varepsilon_\theta(x_t, t, \varnothing)$:
#   label dropout and the null label;
# - the guidance equation, and what the weight $w$ does at 0, at 1 and beyond;
# - to measure the trade-off between recognisable and varied digits as $w$ grows, with four numbers and their
#   limits.
#
# **What you need first:** notebook 07 (DDIM and the classifier-based metric).
#
# **Run time:** under a minute on a 2-core CPU to itself (the run committed here took 38 s; an earlier one, 243 s, when other jobs shared the
# CPU; 10 seconds in quick mode). Nearly all of it is the sweep of section
# 3: 7 guidance weights x `B.sweep_samples` images x `B.ddim_steps // 5` DDIM steps, each step calling the network on
# twice the batch. A GPU (Colab: Runtime > Change runtime type) makes it much faster.

# %%
import inspect
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
# The shipped conditional model, `unet_cond`, was trained that way. It is another network than the unconditional
# `unet` of notebooks 06-07: the base-16 U-Net with channel multipliers (1, 2, 2), the width of your run in notebook
# 05, plus the label embedding, 163,009 parameters in all, trained for 6,000 steps. Its checkpoint keeps the training
# configuration and its model card says how, where and how long:

# %%
# NBVAL_CHECK_OUTPUT
checkpoint = dl.load_checkpoint(dl.pretrained.pretrained_path("unet_cond"))
config = checkpoint["config"]
print(f"num_classes = {model.num_classes}, null_label = {model.null_label}, "
      f"label embedding {tuple(model.label_embedding.weight.shape)} (11 labels x embedding width)")
print({k: config[k] for k in ("backbone", "backbone_kwargs", "label_dropout", "steps", "batch_size", "lr", "schedule", "T")})

# %%
# the card as a quoted block, its headings as bold lines, so that they do not read as this notebook's own sections
card_text = (dl.pretrained.WEIGHTS_DIR / "unet_cond.md").read_text()
Markdown("\n".join("> " + (f"**{line.lstrip('#').strip()}**" if line.startswith("#") else line)
                    for line in card_text.splitlines()))

# %% [markdown]
# ## 2. The guidance equation
#
# At every sampling step, run the network twice, with the label and with the null label, and combine:
#
# $$\tilde\varepsilon = \varepsilon_\theta(x_t, t, \varnothing) + w\,\big(\varepsilon_\theta(x_t, t, y) - \varepsilon_\theta(x_t, t, \varnothing)\big)$$
#
# $w = 0$: the unconditional model; $w = 1$: the conditional model; $w > 1$: beyond it, away from the unconditional
# prediction. (Ho & Salimans write $(1 + w')\,\varepsilon_\theta(x_t, t, y) - w'\,\varepsilon_\theta(x_t, t, \varnothing)$: the
# same thing with $w' = w - 1$.) `dl.guidance.guided_eps` is the equation; `dl.guidance.cfg_eps_model` wraps the
# network into an `eps_model` for any sampler of notebooks 06-07, with both calls in one batch of $2B$. (The exercise
# at the end asks you to write the guided prediction; the library's versions are printed after its check.)
#
# **Question.** Guidance doubles the cost of each step: two network calls per image. For which values of $w$ does the
# formula need only one of the two predictions, and which one? Why does every other $w$ need both, computed for each
# image?
#
# <details><summary>Answer</summary>
#
# At $w = 0$ only the unconditional prediction is left, $\tilde\varepsilon = \varepsilon_\theta(x_t, t, \varnothing)$, and at
# $w = 1$ only the conditional one, $\tilde\varepsilon = \varepsilon_\theta(x_t, t, y)$. Any other $w$ mixes the two, so both
# are needed, and for every image separately: each prediction depends on that image's own $x_t$, so nothing can be
# reused from one image to the next, even among images that ask for the same digit. (`cfg_eps_model` computes both
# for every $w$, 0 and 1 included: simpler, at twice the cost there.)
#
# </details>

# %% [markdown]
# Sampling with guidance is the DDIM sampler of notebook 07 given the guided noise estimate instead of the network:
# `dl.cfg_eps_model(model, labels, w)` is a function $(x_t, t) \mapsto \tilde\varepsilon$, and the sampler calls it
# at every step. Eight 7s at $w = 3$:

# %%
# NBVAL_IGNORE_OUTPUT
sevens = torch.full((8,), 7)                                                              # the digit asked for, (8,)
x_T_sevens = dl.sample_noise(8, generator=torch.Generator().manual_seed(7), device=device)
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
x_T = dl.sample_noise(n_guided, generator=torch.Generator().manual_seed(0), device=device)
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
#
# <details><summary>Answer</summary>
#
# Only the starting noise $x_T$, through the unconditional network: the guided accuracy at $w = 0$ (section 4's
# table) is 0.09, what chance gives for ten digits. Down each column of the picture the noise stays the same, and at
# $w = 0$ the digit is whatever that noise leads to (a 9 for the noise of "asked 9", a 7-like stroke for "asked 4").
# At $w = 1$ the label takes over in most columns (guided accuracy 0.825), and the digit often keeps the layout of the
# $w = 0$ sample, with its strokes bent into the digit asked for: the noise still decides the handwriting.
#
# </details>

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
# often, and the digits of one class become more alike, down to $w = 5$. At $w = 8$ the spread rises again (the table:
# 0.688 against 0.613 at $w = 5$), and not because the handwriting got more varied: the confident share falls and
# the Fréchet distance keeps rising, and the $w = 8$ row of the grid above shows speckles and broken strokes, which
# differ from one image to the next. The Fréchet distance (right), which rewards both being recognisable *and*
# varied like real data, is lowest in between. Each point comes from the images of one run
# (see the table for how many), so differences of a few percent are within the noise.
#
# **Question.** Which $w$ would you pick to generate a training set for another classifier, and which to draw one
# clean example of each digit for a slide?
#
# <details><summary>Answer</summary>
#
# For a training set, the digits must be right *and* as varied as real handwriting, so the lowest Fréchet distance:
# $w = 2$ in the table (34.2, with a guided accuracy of 0.975 and a within-class diversity of 0.74). For a slide,
# recognisability is all that counts: $w = 3$ to $5$ (guided accuracy 0.98 to 0.985, confident share 0.94 to 0.95),
# picking the cleanest sample of each row; at $w = 8$ the damage starts to show.
#
# </details>

# %%
# NBVAL_IGNORE_OUTPUT
print(f"this whole notebook ran in {time.perf_counter() - notebook_start:.0f} s ({B.mode} mode) on "
      f"{dl.inspection.machine_description(device)}")

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

# %% [markdown]
# The library's versions, for comparison with yours:

# %%
# NBVAL_CHECK_OUTPUT
print(inspect.getsource(dl.guidance.guided_eps))
print(inspect.getsource(dl.guidance.cfg_eps_model))

# %% [markdown]
# ## Summary
#
# - Label dropout (10% of the labels replaced by a null label) teaches one network both the conditional and the
#   unconditional noise prediction.
# - Guidance combines them at every step, $\tilde\varepsilon = \varepsilon_\varnothing + w\,(\varepsilon_y - \varepsilon_\varnothing)$:
#   $w = 0$ ignores the label, $w = 1$ is the conditional model, $w > 1$ pushes beyond it, at twice the cost per step.
# - As $w$ grows, the requested digit comes out more often and the digits of a class look more alike; the Fréchet
#   distance is best in between ($w = 2$ here), and large $w$ damages the images.
#
# **Next:** notebook 09 goes back to the network: it reruns the blog's experiment, two MLPs against convolutional
# networks under one budget, and measures why the MLPs draw only noise.
