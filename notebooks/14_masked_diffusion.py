# %% [markdown]
# # 14 · Masked diffusion: how diffusion writes text, measured on digits and on names
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/diffusion-course/diffusion-by-code/blob/main/notebooks/14_masked_diffusion.ipynb)
#
# Text is made of tokens, and there is no Gaussian noise to add to a letter. **Masked diffusion** (also called
# absorbing-state diffusion: Austin et al. 2021's D3PM, Sahoo et al. 2024's MDLM, Shi et al. 2024; LLaDA and the fast
# diffusion coders are built on it) replaces noise by forgetting: the forward process hides tokens behind a
# `[MASK]` symbol, and the network learns to fill them in. This notebook builds it with the course's habits, one
# function per equation in `diffusion_lib.masked`, a slider over $t$, and measured claims, on MNIST digits (pixels
# as tokens, scored with the course's metric) and on surnames (characters as tokens, against an autoregressive model
# of the same size).

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
# - the forward process of masked diffusion, each token hidden independently with probability $1 - \alpha_t$, and
#   its loss, a cross-entropy on the hidden tokens weighted so that it bounds the likelihood in bits per token;
# - two ways to sample by unmasking (ancestral, and most-confident-first), and how quality depends on how many
#   tokens are revealed per network evaluation;
# - measured: digits against the real quantised digits, and names against an autoregressive model of the same size
#   (bits per character, novelty, and the cost in network evaluations and seconds).
#
# **What you need first:** notebooks 01-02 (a forward process and its schedule) and 06 (sampling as a reverse
# chain); notebook 05 for the training loop that trained the shipped models here.
#
# **Run time:** about 90 seconds on a 2-core CPU shared with other jobs (less in quick mode); nothing is trained,
# the three shipped models are read from `diffusion_lib/weights/` with their measured numbers.

# %%
import json

import torch

import diffusion_lib as dl
from diffusion_lib import masked

B = dl.budget()
names = dl.tokens.load_names()                            # 87,957 surnames of the 1990 US Census, a-z, <= 11 letters
training_names, held_out_names = dl.tokens.split_names(names)   # 90% / 10%, a fixed random split
digits_net = dl.pretrained.load_pretrained_tokens("masked_digits")   # U-Net, tokens (B, 28, 28) -> logits (B, 28, 28, V)
names_net = dl.pretrained.load_pretrained_tokens("masked_names")     # transformer, (B, 12) -> (B, 12, 27)
ar_net = dl.pretrained.load_pretrained_tokens("ar_names")            # the same transformer, causal
card = {name: json.loads((dl.pretrained.WEIGHTS_DIR / f"{name}.json").read_text())
        for name in ("masked_digits", "masked_names")}
levels = card["masked_digits"]["levels"]                  # grey levels of the digits: the vocabulary V
M_DIGIT, M_NAME = digits_net.vocab_size, names_net.vocab_size   # the [MASK] ids: one past the vocabulary
images, _ = dl.load_mnist(train=False)
digits = dl.tokens.quantise(images[:8], levels)           # (8, 28, 28) tokens in [0, V - 1]
print(f"{B.mode} mode; digits: V = {levels} grey levels, [MASK] = {M_DIGIT}; names: V = {M_NAME} "
      f"(a-z and the end mark '.'), [MASK] = {M_NAME}, {len(training_names):,} training and "
      f"{len(held_out_names):,} held-out names; e.g. {held_out_names[:5]}")
print(f"parameters: digits U-Net {sum(p.numel() for p in digits_net.parameters()):,}, names transformer "
      f"{sum(p.numel() for p in names_net.parameters()):,}, autoregressive transformer "
      f"{sum(p.numel() for p in ar_net.parameters()):,}")

# %% [markdown]
# The names are the surnames of the 1990 US Census (public domain, a work of the US government), as shipped in the
# PyPI package `names` 0.3.0 (MIT licence; its README says its data files are public domain), lower-cased and kept to
# 11 letters; `diffusion_lib/corpora/surnames.txt.gz` ships them (316 KB). A name is 12 tokens: its letters, then the
# end mark `.` to the end. A digit is 28 × 28 tokens, each pixel rounded to one of V grey levels (here 2: black or
# white), so the data are not MNIST's any more: the real digits after that rounding are the yardstick below.
#
# ## 1. The forward process: forgetting instead of noise
#
# Each token $x_0^l$ of a sequence is kept with probability $\alpha_t$ and replaced by the `[MASK]` token $m$
# otherwise, independently (Sahoo et al. 2024, Eq. 2):
#
# $$q(x_t^l \mid x_0^l) = \alpha_t\, [x_t^l = x_0^l] + (1 - \alpha_t)\, [x_t^l = m],
# \qquad \alpha_0 = 1,\ \alpha_1 = 0,$$
#
# with continuous time $t \in [0, 1]$ and the linear schedule $\alpha_t = 1 - t$ (MDLM's; `masked.alpha`). Once a
# token is masked it stays masked (the state is *absorbing*). `masked.q_mask(x0, t, mask_id)` is this line. Below,
# one digit and four held-out names at six times, with the same uniform draws at every $t$, so a token masked at
# one time is masked at every later one.

# %%
# NBVAL_CHECK_OUTPUT
ts = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
digit_strip = torch.cat([masked.q_mask(digits[:1], torch.tensor([t]), M_DIGIT, generator=torch.Generator().manual_seed(0))
                         for t in ts])                                          # (6, 28, 28): one row per t
four = dl.tokens.encode_names(held_out_names[:4])                               # (4, 12)
name_strips = {f"t = {t:g}": dl.tokens.names_as_text(masked.q_mask(four, torch.full((4,), t), M_NAME,
                                                                   generator=torch.Generator().manual_seed(0)))
               for t in ts}
for t, x_t in zip(ts, digit_strip):
    print(f"t = {t:.1f}: alpha_t = {float(masked.alpha(torch.tensor(t))):.1f}, "
          f"masked pixels {int((x_t == M_DIGIT).sum()):>3} of 784 ({float((x_t == M_DIGIT).float().mean()):.2f})")

# %%
dl.plotting.show_rows({"x_t": dl.plotting.tokens_as_images(digit_strip, levels, M_DIGIT)},
                      col_labels=[f"t = {t:g}" for t in ts], title="one digit masked ([MASK] drawn grey)");

# %%
dl.plotting.show_names(name_strips, title="four held-out names masked ('_' is [MASK], '.' the end mark)");

# %% [markdown]
# The masked share is $1 - \alpha_t$ on average, measured here on 2,000 names (24,000 tokens) per time, for the
# linear schedule and the cosine one of Shi et al. (2024), $\alpha_t = 1 - \cos(\tfrac{\pi}{2}(1 - t))$, which
# masks fewer tokens early on:

# %%
# NBVAL_CHECK_OUTPUT
many = dl.tokens.encode_names(held_out_names[:2000])                            # (2000, 12)
g = torch.Generator().manual_seed(1)
print(f"{'t':>5} | {'linear: 1 - alpha_t':>20} {'measured':>9} | {'cosine: 1 - alpha_t':>20} {'measured':>9}")
for t in (0.1, 0.3, 0.5, 0.7, 0.9):
    cells = []
    for schedule in ("linear", "cosine"):
        x_t = masked.q_mask(many, torch.full((2000,), t), M_NAME, schedule, generator=g)
        cells.append(f"{1 - float(masked.alpha(torch.tensor(t), schedule)):>20.3f} {float((x_t == M_NAME).float().mean()):>9.3f}")
    print(f"{t:>5} | " + " | ".join(cells))

# %%
dl.plotting.plot_masking_schedule(t_marks=ts);

# %% [markdown]
# With a slider over $t$: eight digits masked at $t$, the same draws at every $t$ (on GitHub the slider is inert;
# the strips above show the same thing).

# %%
# NBVAL_IGNORE_OUTPUT
eight_draws = torch.Generator().manual_seed(2)
u_eight = torch.rand(digits.shape, generator=eight_draws)                        # (8, 28, 28): one draw per pixel
dl.widgets.slider_view(dl.plotting.labelled_grid_slider(
    lambda k: {"x_t": dl.plotting.tokens_as_images(torch.where(u_eight < 1 - k / 100, digits, M_DIGIT), levels,
                                                   M_DIGIT)},
    lambda k: f"t = {k / 100:.2f}: each pixel masked with probability 1 - alpha_t = {k / 100:.2f}"),
    values=range(0, 101), description="100 t", value=40)

# %% [markdown]
# **Question.** In notebook 02, $x_T$ kept a trace of the digit ($\sqrt{\bar\alpha_T} = 0.0064$ for the linear
# schedule), and sampling started from pure noise all the same. What is left of $x_0$ at $t = 1$ here, and where does
# a sampler start?
#
# <details><summary>Answer</summary>
#
# Nothing: $\alpha_1 = 0$, so every token is `[MASK]` at $t = 1$, whatever $x_0$ was (the strips' last column). The
# sampler starts from the all-`[MASK]` sequence (`masked.all_masked`), which is exactly the distribution of $x_1$:
# there is no mismatch between the training inputs at the last time and the sampler's start, unlike the Gaussian
# case of notebook 02.
#
# </details>
#
# ## 2. The loss: a cross-entropy on the hidden tokens, weighted into a likelihood bound
#
# The network $x_\theta(x_t)$ gives, at every position, a distribution over the V clean tokens; it is not told $t$
# (the share of `[MASK]` in its input tells it). Its loss is the cross-entropy at the masked positions, weighted by
# $-\alpha'_t / (1 - \alpha_t)$, which is $1/t$ for the linear schedule (MDLM, Eq. 10; Shi et al. 2024, Eq. 5):
#
# $$\mathcal{L} = \mathbb{E}_{t \sim U(0, 1)}\, \mathbb{E}_{q(x_t \mid x_0)} \Big[ \frac{-\alpha'_t}{1 - \alpha_t}
# \sum_{l:\ x_t^l = m} -\log x_\theta(x_t)_l[x_0^l] \Big] \ \ge\ -\log p_\theta(x_0).$$
#
# `masked.elbo_weight` is the weight, `masked.masked_cross_entropy` the sum, `masked.masked_diffusion_loss` the
# product; divided by the number of tokens and by $\ln 2$ it is a bound in **bits per token**, comparable with any
# other model of the same data. Below, on 500 held-out names: the mean cross-entropy per masked character at a few
# times (the *unweighted* loss, MaskGIT's), and the weighted integrand per character, whose average over $t$ is the
# bound.

# %%
# NBVAL_CHECK_OUTPUT
x0 = dl.tokens.encode_names(held_out_names[:500])                               # (500, 12)
chars = int(dl.tokens.characters(x0).sum())                                     # letters + one end mark per name
ln2 = torch.log(torch.tensor(2.0))
print(f"{'t':>5} {'weight 1/t':>10} {'masked per name':>16} {'bits per masked char':>21} {'weighted, bits/char':>20}")
with torch.no_grad():
    for t in (0.05, 0.1, 0.25, 0.5, 0.75, 1.0):
        times = torch.full((500,), t)
        x_t = masked.q_mask(x0, times, M_NAME, generator=torch.Generator().manual_seed(3))
        ce = masked.masked_cross_entropy(names_net(x_t), x0, x_t, M_NAME)    # (500,) nats per name
        n_masked = int((x_t == M_NAME).sum())
        weighted = masked.elbo_weight(times) * ce                               # (500,)
        print(f"{t:>5} {float(masked.elbo_weight(torch.tensor(t))):>10.1f} {n_masked / 500:>16.2f} "
              f"{float(ce.sum() / n_masked / ln2):>21.3f} {float(weighted.sum() / chars / ln2):>20.3f}")

# %% [markdown]
# Early (small $t$) a masked letter is guessed from almost the whole name, so its cross-entropy is low, but there are
# few of them and the weight $1/t$ is large; late, most letters are hidden and each costs more bits. The unweighted
# loss treats every time alike; the weight makes the average over $t$ a bound on $-\log_2 p_\theta(x_0)$. Averaged
# over $t$ (stratified, `masked.continuous_nelbo`), and next to the exact $-\log_2 p$ of the autoregressive model of
# the same size and training steps, on the same 500 names:

# %%
# NBVAL_CHECK_OUTPUT
with torch.no_grad():
    bound = masked.continuous_nelbo(names_net, x0, M_NAME, n_times=32, generator=torch.Generator().manual_seed(4))
    exact_ar = masked.autoregressive_nll(ar_net, x0, ar_net.vocab_size)
    k_step = {k: masked.discrete_nelbo(names_net, x0, M_NAME, k, generator=torch.Generator().manual_seed(5))
              for k in (1, 3, 12)}
print(f"masked diffusion, continuous-time bound: {float(bound.sum() / chars / ln2):.3f} bits per character")
for k, nats in k_step.items():
    print(f"masked diffusion, {k:>2}-step bound:        {float(nats.sum() / chars / ln2):.3f} bits per character")
print(f"autoregressive, exact:                   {float(exact_ar.sum() / chars / ln2):.3f} bits per character")

# %% [markdown]
# The $K$-step bound (`masked.discrete_nelbo`, MDLM Eq. 8) is the bound for the sampler of section 3 run with $K$
# steps: with one step every letter is drawn at once, from its own marginal, and the bound is the sum of those
# marginal cross-entropies; as $K$ grows it falls towards the continuous-time bound. The full curve, measured on
# 2,000 held-out names by `benchmarks/masked_diffusion.py`, is in section 5.
#
# **Question.** The weight $1/t$ is unbounded near $t = 0$. Why does the bound still count every token once, and
# not infinitely often? (Hint: how many tokens are masked at time $t$, on average?)
#
# <details><summary>Answer</summary>
#
# At time $t$ about $t L$ of the $L$ tokens are masked, so the weighted count of masked tokens is
# $\int_0^1 \frac{1}{t}\, t L\, dt = L$: each token is counted once on average. Near $t = 0$ the weight is large but
# hardly any token is masked; the product stays bounded. (The training code draws $t \ge 10^{-3}$ and spreads the
# batch evenly over $[0, 1]$, `masked.draw_times`, to keep the variance of the estimate small.)
#
# </details>
#
# ## 3. Sampling by unmasking
#
# Start from all `[MASK]` at $t = 1$ and walk $K$ steps down to $t = 0$. In a step from $t$ to $s < t$, a masked token
# becomes clean with the posterior's probability (MDLM, Eq. 7)
#
# $$q(x_s^l = x_0^l \mid x_t^l = m, x_0) = \frac{\alpha_s - \alpha_t}{1 - \alpha_t},$$
#
# and then takes a value drawn from the network's $x_\theta(x_t)_l$; a revealed token never changes.
# `masked.unmask_probability` is the fraction, `masked.ancestral_unmask_progressive` the sampler. With the linear
# schedule and $K$ even steps, it reveals on average $L / K$ tokens per step. **Confidence-ordered unmasking**
# (MaskGIT, Chang et al. 2022; LLaDA's low-confidence remasking, Nie et al. 2025; `masked.confidence_unmask_progressive`)
# reveals the same number per step, but chooses *which* ones: it draws a token at every masked position and keeps the
# ones the network is surest of. Purely greedy (LLaDA's rule), it fails on binary digits, as section 4 measures: the
# surest pixels are background, and revealing background first ends, often, in an empty page. MaskGIT adds Gumbel
# noise to the confidences, strong at first and fading to nothing at the last step (`choice_temperature`, here 1), so
# the early choices are spread over the image. Below, eight digits revealed in 64 steps that way; drag the slider to
# watch one sample being written.

# %%
# NBVAL_CHECK_OUTPUT
reveal_steps = list(masked.confidence_unmask_progressive(digits_net, masked.all_masked(8, (28, 28), M_DIGIT), M_DIGIT,
                                                         64, generator=torch.Generator().manual_seed(6),
                                                         choice_temperature=1.0))
states = [reveal_steps[0].x_t] + [s.x_s for s in reveal_steps]                  # 65 states (8, 28, 28), t = 1 .. 0
print(f"{len(reveal_steps)} steps, {reveal_steps[-1].nfe} network evaluations; masked pixels per image after steps "
      f"8, 16, 32, 48, 64: {[int((states[k] == M_DIGIT).sum()) // 8 for k in (8, 16, 32, 48, 64)]} "
      f"(the schedule says {[masked.masked_counts(784, 64)[k - 1] for k in (8, 16, 32, 48, 64)]})")

# %%
strip_at = [0, 8, 16, 32, 48, 64]
dl.plotting.show_rows({f"step {k}": dl.plotting.tokens_as_images(states[k][:4], levels, M_DIGIT) for k in strip_at},
                      col_labels=None, title="confidence-ordered unmasking (MaskGIT), 64 steps, 4 of 8 digits");

# %%
# NBVAL_IGNORE_OUTPUT
dl.widgets.slider_view(dl.plotting.labelled_grid_slider(
    lambda k: {"x_s": dl.plotting.tokens_as_images(states[k], levels, M_DIGIT),
               "x_theta's guess": dl.plotting.tokens_as_images(reveal_steps[min(k, 63)].x0_pred, levels, M_DIGIT)},
    lambda k: f"after step {k} of 64 (t = {1 - k / 64:.3f}): {int((states[k] == M_DIGIT).sum()) // 8} of 784 pixels masked"),
    values=range(0, 65), description="step", value=16)

# %% [markdown]
# The same for names, in 12 steps: the ancestral sampler reveals a random subset at each step, the confidence one
# the letters it is surest of (often the end marks first: the length of a name is decided early).

# %%
# NBVAL_CHECK_OUTPUT
name_reveal = {}
for label, sampler in (("ancestral", masked.ancestral_unmask_progressive),
                       ("confidence", masked.confidence_unmask_progressive)):
    steps = list(sampler(names_net, masked.all_masked(1, (12,), M_NAME), M_NAME, 12,
                         generator=torch.Generator().manual_seed(7)))
    name_reveal[label] = dl.tokens.names_as_text(torch.cat([steps[0].x_t] + [s.x_s for s in steps]))
for k in range(13):
    print(f"step {k:>2}: {name_reveal['ancestral'][k]}   {name_reveal['confidence'][k]}")

# %% [markdown]
# **Question.** With $K = 1$ the ancestral sampler reveals every token at once, each from its own $x_\theta$. What
# distribution does it sample, if the network were perfect? What do you expect the names to look like?
#
# <details><summary>Answer</summary>
#
# At $t = 1$ the network sees nothing, so a perfect $x_\theta$ gives each position's marginal distribution over the
# data, and all positions are drawn independently: the product of the marginals, not the joint. The names get
# plausible letters at each position that do not go together (section 5's one-step samples). `tests/test_masked.py`
# checks this on a tiny distribution known exactly: with a perfect denoiser, one step draws the product of marginals,
# while many steps (at most one token per step, most of the time) or one token per step reproduce the distribution.
#
# </details>
#
# ## 4. Digits: quality against the number of steps
#
# The digit model is the course's U-Net (notebook 04) with an embedding of the V + 1 tokens in place of the pixels
# and V logits per pixel out (`dl.token_networks.TokenUNet`); its time input is given the masked share of the image.
# (Notebook 13's diffusion transformer was being written at the same time and had not landed; the U-Net is the
# network notebooks 04-11 teach.) Its card, `diffusion_lib/weights/masked_digits.md`, has the training command and
# its cost. Decoded samples (token $k$ to grey $-1 + 2k/(V-1)$) are scored by the course's metric, 
# `benchmarks/masked_diffusion.py digits`, beside real training digits, as they are and rounded to V levels, and
# beside the continuous U-Nets of notebooks 07 and 11 (their cards, 500 images: the Frechet distance grows as n
# shrinks, so compare those with the real digits' at their own n, 13.0 at 500):

# %%
# NBVAL_CHECK_OUTPUT
d = card["masked_digits"]
print(f"n = {d['n']} images per row; real digits: confident share {d['real']['confident_share']:.3f}, Frechet "
      f"distance {d['real']['frechet_distance']:.1f}; real digits at {d['levels']} levels: "
      f"{d['real_quantised']['confident_share']:.3f} / {d['real_quantised']['frechet_distance']:.1f}")
print(f"{'sampler':>11} {'K = NFE':>8} {'seconds':>8} {'confident share':>16} {'of real quantised':>18} {'Frechet':>8}")
for r in d["samples"]:
    print(f"{r['sampler']:>11} {r['steps']:>8} {r['seconds']:>8.1f} {r['confident_share']:>16.3f} "
          f"{r['share_of_real_quantised']:>18.2f} {r['frechet_distance']:>8.1f}")
continuous = {name: json.loads((dl.pretrained.WEIGHTS_DIR / f"{name}.json").read_text())["scores"]
              for name in ("unet", "unet_flow")}
for name, sampler, steps in (("unet", "ddim", 50), ("unet_flow", "flow-euler", 50)):
    r = next(r for r in continuous[name] if r["sampler"] == sampler and r["steps"] == steps and not r.get("eta"))
    print(f"beside it, the continuous {name} ({sampler} {steps}, n = {r['n']}, unquantised): confident share "
          f"{r['confident_share']:.3f}, Frechet distance {r['frechet_distance']:.1f} (their cards)")
best = max(d["samples"], key=lambda r: r["confident_share"])
print(f"best: {best['sampler']} with K = {best['steps']}: {best['confident_share']:.3f}, "
      f"{best['share_of_real_quantised']:.2f} of the real quantised digits' own (the target is 0.80: "
      f"{'met' if best['share_of_real_quantised'] >= 0.8 else 'not met'})")

# %%
dl.plotting.plot_digit_quality(card["masked_digits"]);

# %%
# NBVAL_CHECK_OUTPUT
digit_samples, blank = {}, {}
for k in (8, 16, 64):
    for label, choice in (("ancestral", None), ("greedy confidence", 0.0), ("MaskGIT", 1.0)):
        start = masked.all_masked(8, (28, 28), M_DIGIT)
        g = torch.Generator().manual_seed(8)
        steps = (masked.ancestral_unmask_progressive(digits_net, start, M_DIGIT, k, generator=g) if choice is None else
                 masked.confidence_unmask_progressive(digits_net, start, M_DIGIT, k, generator=g, choice_temperature=choice))
        x = masked.final_tokens(steps)                                            # (8, 28, 28)
        digit_samples[f"{label} {k}"] = dl.plotting.tokens_as_images(x, levels, M_DIGIT)
        blank[f"{label} {k}"] = int((x.flatten(1).sum(1) == 0).sum())           # images with no white pixel
print("empty pages of 8:", blank)

# %%
dl.plotting.show_rows(digit_samples, title="samples: sampler and number of steps K (8 per row, the same seed)");

# %% [markdown]
# With few steps, about $784 / K$ pixels are revealed per network evaluation, each drawn independently of the others
# revealed at the same time, so neighbouring pixels drawn together need not agree: look at the ancestral rows at
# $K = 8$. The greedy confidence order reveals the surest pixels, the background, first, and a page of background
# leaves the network sure of more background: the empty pages counted above. MaskGIT's noisy choice keeps the
# benefit of revealing sure pixels without that collapse, and has the highest confident share in the table, but its
# digits are thin and mostly 1s and 7s (the Frechet distance stays high); the ancestral sampler keeps more variety
# (its Frechet distance falls to 129 at $K = 64$) and fewer of its digits are confident.
#
# ## 5. Names: masked diffusion against an autoregressive model of the same size
#
# The fast-text claim needs an honest comparison: the same network (`dl.token_networks.CharTransformer`, 4 heads,
# causal or not), the same data, the same number of training steps, with the likelihood in bits per character on
# held-out names (a character is a letter or the end mark; the padding after it is part of both models' 12 tokens).
# The autoregressive model's $-\log_2 p$ is exact and takes 12 network evaluations per sample (one per token); the
# masked model's $K$-step bound belongs to its $K$-step sampler. From `benchmarks/masked_diffusion.py names` (2,000
# held-out names; 1,000 samples per row):

# %%
# NBVAL_CHECK_OUTPUT
nm = card["masked_names"]
ar_bits = nm["ar_bits_per_char"]
print(f"held-out: {nm['held_out_names']:,} names, {nm['held_out_characters']:,} characters; "
      f"autoregressive (exact, 12 NFE): {ar_bits:.3f} bits per character; masked, continuous bound: "
      f"{nm['masked_continuous_bits_per_char']:.3f}")
for k, bits in nm["masked_discrete_bits_per_char"].items():
    print(f"  masked, K = {int(k):>2} ({int(k) / 12:.2f} of the AR's evaluations): bound {bits:.3f} bits per character, "
          f"{bits / ar_bits - 1:+.1%} against the AR")
within = [int(k) for k, bits in nm["masked_discrete_bits_per_char"].items() if bits <= 1.1 * ar_bits]
print("within 10% of the AR at K =", within or "none of the measured K",
      f"(the target: at most 3 = a quarter of its 12 evaluations: {'met' if within and min(within) <= 3 else 'not met'})")

# %%
dl.plotting.plot_bits_vs_nfe(card["masked_names"]);

# %% [markdown]
# For names the confidence order is the greedy one, LLaDA's rule. Samples, 1,000 per row: how many are well formed
# (letters, then only end marks), novel (a well-formed name found in neither split of the list) and distinct, how
# typical they look to the autoregressive model (its bits per character on them: lower is more name-like, though a
# model that repeats common names would also score low, and the autoregressive model's own samples score its entropy
# rate, which favours them), and their cost on this CPU (seconds for the 1,000, under the load of the card's run).

# %%
# NBVAL_CHECK_OUTPUT
print(f"{'model':>14} {'sampler':>14} {'K':>3} {'NFE':>4} {'seconds':>8} {'well formed':>12} {'novel':>6} "
      f"{'distinct':>9} {'AR bits/char':>13}  examples")
for r in nm["samples"]:
    print(f"{r['model']:>14} {r['sampler']:>14} {r['steps']:>3} {r['nfe']:>4} {r['seconds']:>8.2f} "
          f"{r['well_formed']:>12.3f} {r['novel']:>6.3f} {r['distinct']:>9.3f} {r['ar_bits_per_char']:>13.2f}  "
          + " ".join(r["examples"][:5]))

# %% [markdown]
# Speed at equal quality: the fewest evaluations at which a masked sampler's names look as typical to the
# autoregressive model as its own samples do (within 10% of their bits per character), and what that costs:

# %%
# NBVAL_CHECK_OUTPUT
ar_row = next(r for r in nm["samples"] if r["model"] == "autoregressive")
matching = sorted((r for r in nm["samples"] if r["model"] == "masked" and r["ar_bits_per_char"] <= 1.1 * ar_row["ar_bits_per_char"]),
                  key=lambda r: (r["nfe"], r["seconds"]))
print(f"autoregressive: {ar_row['nfe']} NFE, {ar_row['seconds']:.2f} s per 1,000 names, AR bits/char of its samples "
      f"{ar_row['ar_bits_per_char']:.2f}")
if matching:
    m = matching[0]
    print(f"masked, cheapest within 10%: {m['sampler']} K = {m['steps']}: {m['nfe']} NFE ({m['nfe'] / ar_row['nfe']:.2f} "
          f"of the AR's), {m['seconds']:.2f} s ({m['seconds'] / ar_row['seconds']:.2f} of the AR's), "
          f"{m['ar_bits_per_char']:.2f} bits/char, novel {m['novel']:.3f}")
else:
    print("no masked sampler setting comes within 10% of the autoregressive samples' bits per character")

# %% [markdown]
# Two readings of "quality" give two answers: the likelihood bound asks whether the model assigns held-out names
# their probability, the typicality of samples whether what it writes looks like names. A sampler can buy typicality
# with diversity (the confidence sampler prefers likely letters, so its names are more common, less often novel, and
# not drawn from the model's distribution: the test suite shows this bias on a known distribution).
#
# ## 6. The link to autoregression
#
# Reveal one token per step, in a fixed order (left to right): this is an autoregressive model, whose conditionals are
# the masked network's predictions given the tokens revealed so far (`masked.fixed_order_unmask_progressive`; its row
# above). Because the masked model was trained on every pattern of masks, any order works; the continuous-time bound
# is the average over all orders of the log-likelihood such an any-order sampler assigns (Shi et al. 2024; checked on
# a tiny distribution in `tests/test_masked.py`, where a perfect denoiser makes the bound exact). The price: one
# network must learn the conditionals of every order, where the autoregressive one learns a single order.

# %%
# NBVAL_CHECK_OUTPUT
with torch.no_grad():
    left_to_right = masked.final_tokens(masked.fixed_order_unmask_progressive(
        names_net, masked.all_masked(8, (12,), M_NAME), M_NAME, generator=torch.Generator().manual_seed(9)))
    right_to_left = masked.final_tokens(masked.fixed_order_unmask_progressive(
        names_net, masked.all_masked(8, (12,), M_NAME), M_NAME, order=list(range(11, -1, -1)),
        generator=torch.Generator().manual_seed(9)))
    autoregressive = masked.final_tokens(masked.autoregressive_sample_progressive(
        ar_net, 8, 12, ar_net.vocab_size, torch.Generator().manual_seed(9)))
print("masked, left to right: ", " ".join(dl.tokens.decode_names(left_to_right)))
print("masked, right to left: ", " ".join(dl.tokens.decode_names(right_to_left)))
print("autoregressive:        ", " ".join(dl.tokens.decode_names(autoregressive)))

# %% [markdown]
# **Question.** The masked model and the autoregressive model have the same layers, the same parameters and the same
# training steps. Read the table of section 5: which one gives held-out names the higher probability, and why should
# the masked model pay for its freedom of order?
#
# <details><summary>Answer</summary>
#
# Compare the autoregressive model's exact bits per character with the masked model's continuous-time bound in the
# table of section 5: the autoregressive model needs fewer bits, so it assigns held-out names a higher probability
# (the masked number is a bound, but the $K$-step samplers it describes are what the masked model can do). The
# autoregressive network learns one chain of conditionals, $p(x^l \mid x^{<l})$; the masked one must learn
# $p(x^l \mid \text{any subset})$ for every subset, with the same capacity and the same number of training examples,
# and each example teaches it only the positions masked at the drawn $t$. What the masked model buys with that cost
# is the choice of order and of how many tokens to write per network evaluation.
#
# </details>
#
# ## Exercise: one step of ancestral unmasking
#
# Write the step from $t$ to $s$ by hand. Given tokens `x_t` (B, L) with `[MASK]` id `mask_id`, the network's draws
# `proposal` (B, L) (one clean token per position), uniform numbers `u` (B, L) and the floats `alpha_t` and `alpha_s`
# ($\alpha_t < \alpha_s$), return `x_s`: a masked token becomes its proposal where $u < (\alpha_s - \alpha_t) /
# (1 - \alpha_t)$, every other token is kept. A worked solution is in `solutions/14_masked_diffusion.py`.

# %%
# EXERCISE
def unmask_step(x_t: torch.Tensor, proposal: torch.Tensor, u: torch.Tensor, alpha_t: float, alpha_s: float,
                mask_id: int) -> torch.Tensor:
    """x_s: the masked tokens of x_t revealed (set to proposal) where u < (alpha_s - alpha_t) / (1 - alpha_t)."""
    raise NotImplementedError

# %%
dl.exercises.check("14", unmask_step);

# %% [markdown]
# ## Summary
#
# - Masked diffusion hides each token behind `[MASK]` with probability $1 - \alpha_t$ (`masked.q_mask`); at $t = 1$
#   nothing of $x_0$ is left and the sampler starts exactly there.
# - Its loss is the cross-entropy on the hidden tokens weighted by $-\alpha'_t / (1 - \alpha_t)$, a bound on
#   $-\log p_\theta(x_0)$ in bits per token; the $K$-step bound is the bound of the $K$-step sampler.
# - Sampling reveals masked tokens step by step, at random (ancestral, the posterior's probability) or most confident
#   first; revealing many tokens per evaluation draws them independently, which costs quality, and one token per
#   step in a fixed order is an autoregressive model.
# - Measured here, on a CPU, with small models trained in minutes: the digits and names tables above, with the
#   targets' verdicts computed from the cards' numbers.
#
# **Next:** this is the last notebook of the course so far. The references to read on are MDLM (Sahoo et al. 2024),
# Shi et al. 2024 (simplified masked diffusion) and LLaDA (Nie et al. 2025), which trains the same objective at the
# scale of a language model.
