# %% [markdown]
# # 04 · The backbone: the network that predicts the noise
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/diffusion-course/diffusion-by-code/blob/main/notebooks/04_backbone.ipynb)
#
# Training (notebook 05) and sampling (notebooks 06-07) ask a network one question only: *here is a noisy
# image $x_t$ and its timestep $t$; what noise $\varepsilon$ was added?*
#
# $$\varepsilon_\theta(x_t, t) \approx \varepsilon, \qquad x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\, \varepsilon$$
#
# Any network with that signature will do: images `(B, 1, 28, 28)` and timesteps `(B,)` in, `(B, 1, 28, 28)` out.
# This notebook takes apart the two convolutional ones in `diffusion_lib.backbones`:
#
# - **`ConvNet`**, the network of the blog post "Diffusion models can be quite simple" (2025), one of the two works
#   this course grew out of: nine convolution blocks, all at full 28x28 resolution, no skips;
# - **`UNet`**, the course's network: it shrinks the image 28 → 14 → 7, grows it back, and copies each
#   resolution's features across with a skip connection.
#
# The blog's two MLPs, **`SmolMLP`** and **`ChunkyMLP`**, appear in the tables for comparison; notebook 09
# trains them. Nothing is trained here: every network has random weights, and every number below is measured
# on them: parameters, the shape of every layer's output, the receptive field, and the cost per image.
#
# **Which U-Net is which.** The course uses U-Nets of three sizes, all of the same design (`dl.UNet`, with a base
# width and three channel multipliers, one per resolution):
#
# | U-Net | parameters | where |
# | --- | --- | --- |
# | base 32, multipliers (1, 2, 2): the library's default | 612,353 | taken apart here, sections 2-4 |
# | base 16, multipliers (1, 2, 2) | 162,305 | timed here; what *you* train in notebook 05, and notebook 09's U-Net |
# | base 16, multipliers (1, 2, 8): the shipped `unet` | 684,161 | trained by the project for 35,000 steps; loaded at the end of 05 and in 06-07 |
#
# (Notebook 08's shipped `unet_cond` is the base-16, (1, 2, 2) U-Net with a label embedding added: 163,009 parameters.)

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
# - the one signature every noise-prediction network has, $\varepsilon_\theta(x_t, t)$, and how $t$ gets in;
# - the ConvNet and the U-Net layer by layer: shapes, parameters, and where the parameters sit;
# - the receptive field, computed and measured: how much of the image one output pixel can see;
# - what a forward and backward pass costs per image, and why the two networks differ so much.
#
# **What you need first:** notebook 03 (the time embedding) and the idea of a convolution (a small kernel slid
# over the image; channels; stride).
#
# **Run time:** about 38 seconds on a 2-core CPU (34 in quick mode), most of it section 4's timings; nothing is
# trained.

# %%
import torch

import diffusion_lib as dl

device = dl.default_device()   # only section 4 (the timings) uses it
B = dl.budget()                # nothing here depends on it: no network is trained
print(f"diffusion_lib {dl.__version__}, device {device}, {B.mode} mode")

# %% [markdown]
# ## 1. One signature, four networks
#
# $$\varepsilon_\theta : \underbrace{\mathbb{R}^{B \times 1 \times 28 \times 28}}_{x_t} \times
# \underbrace{\{0, \dots, T-1\}^B}_{t\text{, the code's index}} \to \mathbb{R}^{B \times 1 \times 28 \times 28}$$
#
# Each backbone turns $t$ into a vector with the sinusoidal embedding of notebook 03 and mixes it into its
# layers. We build each one, push a batch of four noisy images through it, and count its trainable
# parameters with `dl.count_parameters`. The U-Net is built twice: with 32 base channels (the library's
# default) and with 16 (the fast recipe that notebook 05 trains).

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
nets = {"ConvNet": dl.ConvNet(), "UNet (base 32)": dl.UNet(base=32), "UNet (base 16)": dl.UNet(base=16),
        "SmolMLP": dl.SmolMLP(), "ChunkyMLP": dl.ChunkyMLP()}
x = torch.randn(4, 1, 28, 28)        # (B, 1, 28, 28): stands in for x_t
t = torch.tensor([0, 250, 500, 999])   # (B,): one timestep per image
for name, net in nets.items():
    with torch.no_grad():
        out = net(x, t)
    print(f"{name:<15} {dl.count_parameters(net):>11,} parameters    x_t {tuple(x.shape)}, t {tuple(t.shape)} "
          f"-> eps {tuple(out.shape)}")

# %% [markdown]
# The ConvNet has 3,276,129 parameters, as in the blog post, five times as many as the U-Net with 32 base
# channels and twenty times as many as the one with 16.
#
# **Question.** Before section 4 measures it: which of the two will be slower per image, the ConvNet or
# the U-Net (base 32), and by what factor? Write your guess down.
#
# <details><summary>Answer</summary>
#
# The ConvNet, and by much more than its five times the parameters: section 4 prints the factor for the machine
# that ran this notebook (near 20 on the course's 2-core CPU). Time follows the multiply-adds, not the
# parameters, and the ConvNet applies all its weights at every one of the 784 positions, where the U-Net applies
# its widest layers at 49 (7x7); the last question of section 4 counts them.
#
# </details>

# %% [markdown]
# ## 2. One forward pass, layer by layer
#
# A **ConvNet** block (`ConvBlock`) keeps the resolution and changes the number of channels:
#
# $$h = \mathrm{ReLU}(\mathrm{GN}(\mathrm{conv}_{3\times3}(x))) + W\,\mathrm{emb}(t), \qquad
# \mathrm{out} = \mathrm{ReLU}(\mathrm{GN}(\mathrm{conv}_{3\times3}(h)))$$
#
# with channels 1 → 32 → 64 → 128 → 256 → 256 → 128 → 64 → 32 → 32, then a 1x1 convolution to 1 channel.
#
# A **U-Net** block (`ResBlock`) also has two 3x3 convolutions and adds the time embedding between them, but in
# the other order, normalisation and activation *before* each convolution (and SiLU instead of ReLU), plus a
# residual path:
#
# $$h = \mathrm{conv}_{3\times3}(\mathrm{SiLU}(\mathrm{GN}(x))) + W\,\mathrm{emb}(t), \qquad
# \mathrm{out} = \mathrm{conv}_{3\times3}(\mathrm{SiLU}(\mathrm{GN}(h))) + \mathrm{skip}(x)$$
#
# where $\mathrm{skip}$ is the identity, or a 1x1 convolution when the number of channels changes.
# Between blocks, a stride-2 convolution halves the resolution on the way down (28 → 14 → 7); on the way up, a
# nearest-neighbour upsampling doubles it, and the features saved at that resolution on the way down are
# **concatenated** to the input of the next block: $[h, s]$ has the channels of both.
#
# `dl.inspection.shape_trace` runs one forward pass with hooks on every layer that the network's `forward` calls,
# and records each one's input shape, output shape and parameters, in the order they run.

# %%
# NBVAL_CHECK_OUTPUT
traces = {name: dl.inspection.shape_trace(nets[name], x, t) for name in ("ConvNet", "UNet (base 32)")}
traces["ConvNet"]

# %%
# NBVAL_CHECK_OUTPUT
traces["UNet (base 32)"]

# %% [markdown]
# The same two traces as a picture: the ConvNet works at 28x28 the whole way with up to 256 channels; the U-Net
# dips to 7x7, where its channels are widest.

# %%
dl.plotting.plot_shape_traces(traces);

# %% [markdown]
# **Questions.**
# 1. In the U-Net's table, `mid` outputs 64 channels but `up3` takes 128 in. Where do the other 64 come from:
#    which layer's output is copied across? The same happens at `up2` and `up1`.
# 2. In the ConvNet's table, blocks 3 and 4 hold two thirds of all the parameters. A 3x3 convolution from
#    $c_{in}$ to $c_{out}$ channels has $9\, c_{in} c_{out} + c_{out}$ parameters, whatever the size of the image:
#    why? (The exercise at the end counts a whole block.)
#
# <details><summary>Answers</summary>
#
# 1. The output of `down3`, saved on the way down (64 channels at 7x7): `up3` gets `[mid's output, down3's output]`.
#    Likewise `up2` gets the 64 channels of `unpool2` and the 64 of `down2` (at 14x14), and `up1` the 32 of `unpool1`
#    and the 32 of `down1` (at 28x28).
# 2. A convolution slides one and the same kernel over every position of the image: it has one $3 \times 3$
#    weight for each pair of an input and an output channel, and one bias per output channel. The image's size
#    decides how often the kernel is applied (the compute), not how many weights there are. Blocks 3 and 4 are
#    where the channels are widest (128 → 256 → 256), and the weights grow with $c_{in} c_{out}$: together
#    952,064 + 1,246,976 = 2,199,040 of the 3,276,129 parameters.
#
# </details>

# %% [markdown]
# ## 3. Receptive field: how much of the image can one output pixel see?
#
# To predict the noise at one pixel it helps to know what digit the image holds, and that takes the whole image.
# The **receptive field** of an output pixel is the set of input pixels that can change it. For a chain of
# convolutions with kernel sizes $k_l$ and strides $s_l$ it is a square of side
#
# $$r = 1 + \sum_{l} (k_l - 1)\, j_l, \qquad j_l = \prod_{m < l} s_m$$
#
# ($j_l$ is how many input pixels apart the neighbouring positions of layer $l$'s grid are). The ConvNet is such
# a chain: 18 convolutions 3x3 with stride 1 and a final 1x1. The U-Net is not a chain (skips join paths of
# different lengths), but its way down to the 7x7 bottleneck is: `conv_in`, two convolutions in `down1`, the
# stride-2 `pool1`, two in `down2`, `pool2`, two in `down3` and two in `mid`.
# `dl.inspection.chain_receptive_field` evaluates the formula.

# %%
# NBVAL_CHECK_OUTPUT
convnet_chain = [(3, 1)] * 18 + [(1, 1)]                                  # (kernel, stride) of each conv
unet_down_chain = [(3, 1)] * 3 + [(3, 2)] + [(3, 1)] * 2 + [(3, 2)] + [(3, 1)] * 4
print("ConvNet, input to output:          r =", dl.inspection.chain_receptive_field(convnet_chain))
print("U-Net, input to the 7x7 bottleneck: r =", dl.inspection.chain_receptive_field(unet_down_chain))

# %% [markdown]
# A square of side 37 centred on a pixel reaches 18 pixels to each side. That covers the whole 28x28 image from
# the centre, but not from a corner. The formula knows nothing of the image's border or of the U-Net's up path,
# so we **measure** instead: `dl.inspection.receptive_fields(net, pixels)` backpropagates from each output pixel
# to the input and marks every input pixel whose gradient is not zero. (It works on a copy of the network with
# all weights positive and GroupNorm bypassed, so that no path can cancel another; GroupNorm's mean and variance
# are computed from every pixel, a thin global link that would otherwise connect everything to everything.)
# We measure ten output pixels along the diagonal, from the top-left corner to the bottom-right one.

# %%
# NBVAL_CHECK_OUTPUT
pixels = [(k, k) for k in range(0, 28, 3)]                    # (0, 0), (3, 3), ..., (27, 27)
masks = {name: dl.inspection.receptive_fields(nets[name], pixels) for name in ("ConvNet", "UNet (base 32)")}
print("output pixel   ConvNet sees   U-Net sees   (height x width of the input window)")
for p, pixel in enumerate(pixels):
    (h1, w1), (h2, w2) = (dl.inspection.mask_extent(masks[name][p]) for name in masks)
    print(f"{str(pixel):<14} {h1:>4} x {w1:<9} {h2:>3} x {w2}")
for name, m in masks.items():
    print(f"{name}: {int(m.flatten(1).all(1).sum())} of these {len(pixels)} output pixels see the whole image")

# %% [markdown]
# Drag the slider along the diagonal: the red square is the output pixel, white the input pixels it can see.
# The strip below shows four of the same pictures for GitHub and print, where the slider is inert.

# %%
# NBVAL_IGNORE_OUTPUT
dl.widgets.slider_view(lambda k: dl.plotting.plot_receptive_fields(masks, pixels, which=[pixels.index((k, k))]),
                       values=[k for k, _ in pixels], description="output pixel (k, k), k")

# %%
dl.plotting.plot_receptive_fields(masks, pixels, which=[0, 2, 5, 9]);

# %% [markdown]
# The ConvNet's corner pixel sees a 19x19 window, less than half the image: whatever stroke lies beyond it, that
# pixel's noise estimate cannot take into account. The U-Net's bottleneck cells already see 53 pixels across, and
# the up path hands that view back to every output pixel, corners included. The MLPs see everything by
# construction: their first layer multiplies the whole flattened image.
#
# **Questions.**
# 1. How many 3x3 convolutions would the ConvNet need for its corner pixel to see the opposite corner? How many
#    blocks is that?
# 2. The measurement bypasses GroupNorm. Without that, every output pixel of both networks would depend a little on
#    every input pixel. Why is that thin link a poor substitute for a large receptive field?
#
# <details><summary>Answers</summary>
#
# 1. Each 3x3 convolution widens the view by one pixel on each side, so $n$ of them see $1 + 2n$ pixels across, and
#    a corner pixel sees $n$ pixels into the image. Reaching the opposite corner, 27 pixels away in each direction,
#    takes 27 convolutions: 14 blocks of two, against the ConvNet's 9 (18 convolutions: the 19x19 window measured
#    at the corner).
# 2. Through GroupNorm, an output pixel learns only two numbers per group of channels about the rest of the image:
#    the mean and the variance over all positions. They say how bright or how noisy the image is overall, but they
#    are the same whichever way the pixels are arranged: they cannot say where a stroke lies, or which digit the
#    strokes make. A receptive field gives a pixel the spatial pattern itself.
#
# </details>

# %% [markdown]
# ## 4. What one image costs
#
# A training step is a forward and a backward pass over a batch, then the optimizer's update (cheap by
# comparison). `dl.inspection.time_per_image` times the forward + backward pass on a batch of 16 random images
# (the median of three passes after a warm-up) and divides by 16. The result depends on the machine, so the
# first line names it. On a shared machine, expect the numbers to move by a factor of two from run to run;
# their ratios move much less.

# %%
# NBVAL_IGNORE_OUTPUT
print("measured on:", dl.inspection.machine_description(device))
seconds = {name: dl.inspection.time_per_image(net, batch_size=16, device=device) for name, net in nets.items()}
precision = dl.fast_precision(device)      # "bf16" where the hardware computes in bfloat16 (notebook 05), else "fp32"
seconds[f"UNet (base 16), {precision}"] = dl.inspection.time_per_image(nets["UNet (base 16)"], batch_size=16,
                                                                       precision=precision, device=device)
for name, s in seconds.items():
    print(f"{name:<22} {1000 * s:8.2f} ms per image   {1 / s:8,.0f} images/s   "
          f"one epoch of 60,000 images: {60000 * s / 60:6.1f} min")
print(f"\nthe ConvNet costs {seconds['ConvNet'] / seconds['UNet (base 32)']:.0f}x the U-Net (base 32) per image")

# %%
# NBVAL_IGNORE_OUTPUT
dl.plotting.plot_cost_per_image(seconds, machine=dl.inspection.machine_description(device));

# %% [markdown]
# The last row is the recipe of notebook 05: the 16-channel U-Net in the precision `dl.fast_precision` chooses for
# the device, its forward pass autocast to bfloat16 where the hardware has bfloat16 instructions (CPUs with
# AVX512-BF16 or AMX, GPUs of compute capability 8 or more), float32 elsewhere, where bfloat16 is slower. How
# much faster depends on the machine and on the batch: benchmarks/README.md measures training throughput
# on the course's CPU, fp32 against bf16, with batches of 128.
#
# **Question.** The ConvNet's widest convolution maps 256 to 256 channels at 28x28; the U-Net's widest maps 64 to
# 64 channels at 7x7. Count the multiply-adds of each ($H \cdot W \cdot 9\, c_{in} c_{out}$). Does their ratio
# explain the measured gap, or is it a different ratio? What else does the U-Net do at full resolution?
#
# <details><summary>Answer</summary>
#
# $28 \cdot 28 \cdot 9 \cdot 256 \cdot 256 = 4.6 \times 10^8$ against $7 \cdot 7 \cdot 9 \cdot 64 \cdot 64 = 1.8 \times 10^6$:
# a ratio of 256, far above the measured gap (near 20 on the course's CPU). What counts is the whole network. Summed
# over all its convolutions, the ConvNet does $2.3 \times 10^9$ multiply-adds per image, all at 28x28; the U-Net
# (base 32) does $9.0 \times 10^7$, a ratio of about 26, close to the measured one. Half of the U-Net's multiply-adds
# are at full resolution: `conv_in`, the two convolutions of `down1` and of `up1` (whose first takes 64 channels),
# `unpool1` and `conv_out`. The rest of the gap is work that costs time but few multiply-adds: GroupNorm, SiLU, the
# concatenations and the upsampling.
#
# </details>

# %% [markdown]
# ## Exercise: count a block's parameters
#
# Write `conv_block_parameters(c_in, c_out, emb_dim)`: the number of trainable parameters of one ConvNet block,
# `dl.backbones.ConvBlock(c_in, c_out, emb_dim)`, from its layers: a 3x3 convolution $c_{in} \to c_{out}$, a
# GroupNorm over $c_{out}$ channels, a `Linear(emb_dim, c_out)` for the time embedding, a 3x3 convolution
# $c_{out} \to c_{out}$ and a second GroupNorm. Every convolution and Linear has a bias; a GroupNorm has a
# scale and a shift per channel. The check compares your formula with `dl.count_parameters` on five blocks.
# Then: with the time embedding's `Linear(256, 256)` and the final 1x1 convolution, does it add up to 3,276,129?

# %%
# EXERCISE
def conv_block_parameters(c_in: int, c_out: int, emb_dim: int = 256) -> int:
    """Trainable parameters of dl.backbones.ConvBlock(c_in, c_out, emb_dim)."""
    raise NotImplementedError

# %%
dl.exercises.check("04", conv_block_parameters);

# %% [markdown]
# ## Summary
#
# - Every backbone has one signature: images `(B, 1, 28, 28)` and timesteps `(B,)` in, a noise estimate of the
#   images' shape out; the timestep enters through the sinusoidal embedding of notebook 03.
# - The ConvNet works at 28x28 throughout; its parameters sit in its widest blocks, and its corner pixels see only
#   a 19x19 window.
# - The U-Net goes down to 7x7 and back, with skip connections; every output pixel sees the whole image, with a
#   fifth of the ConvNet's parameters (base 32) and a small fraction of its multiply-adds.
# - Cost per image follows the multiply-adds, not the parameter count.
#
# **Next:** notebook 05 trains the base-16 U-Net to predict the noise: the loss walked through one batch, a real
# training run, the loss at each timestep, and the shipped weights that the later notebooks use.
