# %% [markdown]
# # 03 · Time embeddings: telling the network which step it is at
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/diffusion-course/diffusion-by-code/blob/main/notebooks/03_time_embeddings.ipynb)
#
# The denoising network sees a noisy image $x_t$ **and** the timestep $t$. This notebook first shows why $t$
# is needed at all, then how it is given to the network: as a vector of sines and cosines at many
# frequencies, the *sinusoidal time embedding* (`diffusion_lib.embeddings`).

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
# - why a denoiser must be told $t$: the same $x_t$ is undone differently at different noise levels (measured);
# - the sinusoidal time embedding: its frequencies, its periods, and which dimensions separate near and far
#   timesteps;
# - why the similarity of two embeddings depends only on how far apart the timesteps are;
# - how the embedding enters the network.
#
# **What you need first:** notebooks 01 and 02 ($\bar\alpha_t$, `q_sample`, and the code's index `t = 0 ... 999`).
#
# **Run time:** about 13 seconds on a 2-core CPU (11 in quick mode); nothing is trained.

# %%
import torch

import diffusion_lib as dl

device = dl.default_device()   # the tensors here are small: everything stays on the CPU
B = dl.budget()                # nothing here depends on it
images, labels = dl.load_mnist(train=False)   # (10000, 1, 28, 28) in [-1, 1]
linear = dl.make_schedule("linear")
T = linear.T
print(f"device {device}, {B.mode} mode, T = {T}")

# %% [markdown]
# ## 1. Why the network needs $t$
#
# The network is trained to predict the noise $\varepsilon$ in $x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\, \varepsilon$.
# Suppose it did that perfectly. To get the clean image back we still have to undo the mixing,
#
# $$\hat x_0 = \frac{x_t - \sqrt{1-\bar\alpha_t}\, \varepsilon}{\sqrt{\bar\alpha_t}} \qquad (\texttt{dl.predict\_x0\_from\_eps})$$
#
# and that needs $\bar\alpha_t$, i.e. $t$: how much noise to remove and how much to amplify what is left.
# Below, one $x_t$ made at `t = 400`, and the reconstruction with the **true** noise but a guessed timestep `s`:

# %%
# NBVAL_CHECK_OUTPUT
g = torch.Generator().manual_seed(0)
x0 = images[:1]                                          # (1, 1, 28, 28)
eps = torch.randn(x0.shape, generator=g)                 # (1, 1, 28, 28)
t_true = 400
x_t = dl.q_sample(x0, torch.tensor([t_true]), linear, noise=eps)
guesses = [100, 250, 350, 400, 450, 600, 900]
s = torch.tensor(guesses)                                # (7,) guessed timesteps
x0_hat = dl.predict_x0_from_eps(x_t.expand(len(guesses), -1, -1, -1), s, eps.expand(len(guesses), -1, -1, -1), linear)
errors = ((x0_hat - x0) ** 2).mean(dim=(1, 2, 3))        # (7,) mean squared error per guess
for guess, err in zip(guesses, errors):
    print(f"guess s = {guess:>3}: mean squared error of x0_hat = {err:.3f}")

# %%
dl.plotting.show_rows({"": torch.cat([x0, x_t, x0_hat])},
                      col_labels=["x_0", f"x_t, t={t_true}"] + [f"s = {guess}" for guess in guesses],
                      title=f"x0_hat from x_t (made at t = {t_true}) with the true noise, assuming timestep s");

# %% [markdown]
# Guess too early and noise is left in; guess too late and too much is subtracted and the rest blown up (the
# picture looks clean only because the display clips to $[-1, 1]$: the error above says how far off it is).
# And $x_t$ alone does not tell $t$ for sure. A 7 at `t = 350` and the same 7 drawn one and a half times bolder
# at `t = 450` give noisy images with the same mean ($\sqrt{\bar\alpha_t}$ is 1.5 times smaller at `t = 450`), and
# since $q(x_t \mid x_0)$ is a Gaussian over all of pixel space, any $x_t$ can come from either: only its probability
# differs. So the network is given $t$ as a second input.
#
# **Question.** With a variance-preserving schedule every $x_t$ has about the same overall scale (notebook 01). Why
# does that make it *harder* for a network to guess $t$ from $x_t$ alone than for a variance-exploding one?
#
# <details><summary>Answer</summary>
#
# In a variance-exploding process $\mathrm{Var}(x_t) = \mathrm{Var}(x_0) + \sigma_t^2$ grows by orders of magnitude
# over the run, so the overall scale of $x_t$ (its standard deviation, one number) gives away $\sigma_t$ almost
# exactly. In the variance-preserving process it stays between about 0.6 and 1 (notebook 02, section 3, measured it
# on digits), and a faint digit under little noise can have the same spread as a bold digit under more noise: the
# network would have to tell from the content how much of it is noise, which is just what it is trying to learn.
#
# </details>

# %% [markdown]
# ## 2. The sinusoidal embedding
#
# The network receives the code's index `t`, a single number in $\{0, \dots, 999\}$, and that is a poor input:
# neighbouring steps are almost equal and its scale is huge. Instead (as in the Transformer's positional encoding), with $d = 256$ and $h = d/2$ frequencies
#
# $$\omega_i = \exp\!\Big(-\ln(10000)\,\frac{i}{h-1}\Big),\ i = 0 \dots h-1, \qquad
# \mathrm{emb}(t) = \big[\sin(t\,\omega_0), \dots, \sin(t\,\omega_{h-1}),\ \cos(t\,\omega_0), \dots, \cos(t\,\omega_{h-1})\big]$$
#
# The frequencies fall geometrically from $1$ to $10^{-4}$: the first dimensions turn fast (period $2\pi$ steps),
# the last ones barely move over the whole run (period $62{,}832$ steps).

# %%
# NBVAL_CHECK_OUTPUT
emb = dl.sinusoidal_embedding(torch.arange(T), dim=256)      # (1000, 256)
omega = dl.embeddings.sinusoidal_frequencies(256)            # (128,)
print(f"emb has shape {tuple(emb.shape)}; {omega.numel()} frequencies from {omega[0]:.3g} to {omega[-1]:.3g}")
print("periods 2 pi / omega_i in steps, i = 0, 16, 32, ..., 127:",
      [round(p) for p in (2 * torch.pi / omega[list(range(0, 128, 16)) + [127]]).tolist()])

# %%
dl.plotting.plot_embedding_heatmap(emb);

# %% [markdown]
# Each row of the picture is one $\mathrm{emb}(t)$. On the left of each half, the fast dimensions oscillate many
# times down the picture; on the right, slow ones change smoothly over all 1000 steps. Every row has the same length,
# $\sqrt{128} = 11.3$: that is an identity, not a measurement ($\sin^2 + \cos^2 = 1$ for each of the 128
# frequencies), and it means the network's input has the same scale at every $t$.
#
# **Question.** Which dimensions tell apart `t = 500` and `t = 501`? Which ones tell apart `t = 100` and `t = 900`?
# Why would a network want both kinds? With $T = 1000$, about how many of the 256 dimensions hardly change at all
# over the run (look at the periods printed above)?
#
# <details><summary>Answer</summary>
#
# The fast ones, at small $i$: with a period of 6 steps ($i = 0$), one step turns $\sin(t\,\omega_0)$ and
# $\cos(t\,\omega_0)$ by a sixth of a circle. But a fast dimension repeats every few steps, so on its own it cannot
# say whether $t$ is 100 or 900; the slow ones, with periods of thousands of steps, move steadily in one direction
# over the whole run and can. The network wants the slow ones to know roughly how noisy its input is, and the fast
# ones to tell neighbouring steps apart. The periods above pass 10,000 steps between $i = 96$ and $i = 112$ (it
# happens at $i = 102$): from there on a frequency turns by less than a tenth of a circle over the 1000 steps. That
# is 26 of the 128 frequencies, 52 of the 256 dimensions: their cosines hardly change (they stay above 0.81), and
# their sines rise slowly and almost in a straight line, a plain ramp in $t$ (the slowest, $i = 127$, turns by only
# 0.1 radian over the whole run).
#
# </details>

# %% [markdown]
# ## 3. How alike are two timesteps?
#
# The cosine similarity of two embeddings is $\cos\angle(\mathrm{emb}(t), \mathrm{emb}(s)) =
# \frac{\mathrm{emb}(t)\cdot\mathrm{emb}(s)}{\|\mathrm{emb}(t)\|\,\|\mathrm{emb}(s)\|}$. Since
# $\sin a \sin b + \cos a \cos b = \cos(a - b)$, it equals $\frac{1}{h}\sum_i \cos\big((t-s)\,\omega_i\big)$:
# it depends only on the distance $t - s$.

# %%
# NBVAL_CHECK_OUTPUT
unit = emb / emb.norm(dim=1, keepdim=True)                   # (1000, 256), each row of length 1
sim = unit @ unit.T                                          # (1000, 1000) cosine similarities
for d in [1, 10, 100, 500]:
    print(f"distance {d:>3}: similarity {sim[0, d]:.3f} at t = 0, {sim[400, 400 + d]:.3f} at t = 400")

# %%
dl.plotting.plot_similarity_matrix(sim);

# %% [markdown]
# The same matrix, row by row: how alike $\mathrm{emb}(t)$ is to every $\mathrm{emb}(s)$, for a few $t$ (the static
# twin of the slider below).

# %%
dl.plotting.plot_similarity_curves(sim, [0, 250, 500, 999]);

# %%
# NBVAL_IGNORE_OUTPUT
dl.widgets.slider_view(dl.plotting.embedding_slider(emb, sim), values=range(T), description="t", value=500)

# %% [markdown]
# **Question.** Nearby timesteps get similar embeddings, far ones dissimilar (though never orthogonal: the slow
# dimensions are alike for all $t$). Why is "nearby steps look alike" what we want for a denoiser (think of how
# similar the denoising jobs at `t = 400` and `t = 401` are)?
#
# <details><summary>Answer</summary>
#
# The two jobs are almost the same: one step multiplies $\bar\alpha_t$ by $1 - \beta_t$, which is at least 0.98 for
# the linear schedule, so the best denoiser at `t = 400` is very nearly the best at `t = 401`. If their embeddings
# are close, whatever the network learns at one timestep carries over to its neighbours, and each timestep gets
# only a thousandth of the training examples. A code in which every $t$ is unrelated to every other (a one-hot
# vector of 1000 entries, say) would leave the network 1000 separate jobs to learn from a thousandth of the data each.
#
# </details>

# %% [markdown]
# ## 4. Into the network
#
# The backbones of the course pass $\mathrm{emb}(t)$ through a learned layer, $\mathrm{ReLU}(W\,\mathrm{emb}(t) + b)$
# (`dl.TimeEmbedding`), then every block adds its own linear projection of it to its feature maps (notebook 04).
# The sinusoids have no parameters; the learned layer has $256 \cdot 256 + 256$:

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
time_embedding = dl.TimeEmbedding(256)
h = time_embedding(torch.tensor([0, 400, 999]))             # (3, 256)
print(f"TimeEmbedding(256): {dl.count_parameters(time_embedding):,} parameters; output shape {tuple(h.shape)}")

# %% [markdown]
# ## Exercise: write the sinusoidal embedding
#
# Given timesteps `t` of shape `(B,)` (long) and an even `dim`, return the `(B, dim)` float tensor
# $[\sin(t\,\omega_0), \dots, \sin(t\,\omega_{h-1}), \cos(t\,\omega_0), \dots, \cos(t\,\omega_{h-1})]$ with
# $h = $ `dim // 2` and $\omega_i = \exp(-\ln(10000)\, i / (h-1))$. (`torch.arange`, `torch.exp`, `torch.cat`.) A worked
# solution is in `solutions/03_time_embeddings.py`.

# %%
# EXERCISE
def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """[sin(t omega), cos(t omega)], shape (B, dim)."""
    raise NotImplementedError

# %%
dl.exercises.check("03", time_embedding);

# %% [markdown]
# ## Summary
#
# - Undoing the noise needs $\bar\alpha_t$: with the true noise but a wrong timestep, $\hat x_0$ is off, and
#   $x_t$ alone cannot say which $t$ it came from, so the network gets $t$ as a second input.
# - The sinusoidal embedding turns $t$ into 128 sines and 128 cosines whose periods run from 6 to 62,832 steps:
#   fast dimensions tell neighbouring steps apart, slow ones tell the ends of the run apart.
# - The similarity of two embeddings depends only on $t - s$: nearby steps look alike, far ones less so.
# - Each block of the network adds its own learned projection of the embedding to its feature maps.
#
# **Next:** notebook 04 takes apart the networks that use this embedding: the blog's ConvNet and the course's
# U-Net, layer by layer, with their parameters, receptive fields and cost.
