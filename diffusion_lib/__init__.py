"""diffusion_lib: the small library behind the course's notebooks, in three layers.

The core is the math the notebooks teach, one function per equation; it loads only torch (and tqdm):
    schedules      noise schedules and every quantity derived from beta_t                (notebook 01)
    forward        q(x_t | x_0), q(x_t | x_{t-1}) and the posterior q(x_{t-1} | x_t, x_0)  (notebook 02)
    embeddings     the sinusoidal time embedding                                          (notebook 03)
    backbones      ConvNet, SmolMLP, ChunkyMLP (the blog's), a small U-Net; the DiT        (notebooks 04, 13)
    autoencoder    a tiny autoencoder, its latent's scale factor, sampling in the latent  (notebook 13)
    objectives     what the network predicts (eps, x0, v, flow velocity), loss, weighting (notebook 05)
    training       the training loop, EMA, label dropout, checkpoints and resuming        (notebook 05)
    samplers       DDPM, DDIM, Heun, flow Euler/Heun: one step convention, one loop      (notebooks 06-07, 10)
    guidance       classifier-free guidance                                               (notebook 08)
    interpolation  blending two images through their DDIM noises                          (notebook 07)
    toy            a 2-D mixture of Gaussians: its noised density q_t, score and exact eps (notebook 10)
    masked         masked (absorbing-state) diffusion over tokens: forward masking, ELBO, unmasking samplers (14)
    token_networks, tokens, masked_training   its networks, data (quantised digits, surnames) and training (14)
    and the plumbing: checks (the arguments' rules), checkpoints, pretrained (the shipped weights), data (MNIST, Fashion-MNIST),
    images (grids and PNG files), device, config (quick and full mode), cli (the command line; cli_tokens: its
    train-tokens and sample-tokens commands).

Built on the core, and never imported by it:
    measure    metrics, sweeps, inspection, experiments, scaling: numbers about models, samples and runs
    pictures   figures and sliders (matplotlib, ipywidgets), in files named after what they draw: grids
               (image grids and tables), schedule_curves, histograms, time_embedding, networks,
               training_curves, sampling_curves, fields_and_paths (the 2-D toy's densities, fields and
               paths), attention_maps (the DiT's patches and attention), scaling_curves, few_step_paths (notebook 12's toy paths and
               students' curves), masked_tokens (notebook 14); style and live (what they share); plotting gathers them all as dl.plotting;
               widgets (the sliders)
    exercises  the automatic checks of the notebooks' exercises

`import diffusion_lib` loads the core only. The other layers load on first use (PEP 562), so
`dl.plotting.show_grid(...)`, `dl.metrics.classify(...)` or `dl.exercises.check(...)` work after a
plain `import diffusion_lib as dl`.
"""
import importlib

from .autoencoder import Autoencoder, LatentCodec, sample_latent_images
from .backbones import BACKBONES, ChunkyMLP, ConvNet, DiT, PointMLP, SmolMLP, UNet, build_backbone, count_parameters
from .checkpoints import CheckpointError, load_checkpoint, load_codec, load_model, save_checkpoint
from .config import budget, quick_mode
from .data import DATASETS, DatasetCorruptError, DatasetNotFoundError, MNISTNotFoundError, load_dataset, load_mnist
from .device import default_device, fast_precision
from .embeddings import TimeEmbedding, sinusoidal_embedding
from .forward import predict_x0_from_eps, q_posterior_mean_variance, q_sample, q_step
from .guidance import cfg_eps_model, conditional_eps_model, guided_eps
from . import autoencoder, interpolation, objectives, pretrained, toy
from . import masked, masked_training, token_networks, tokens
from .objectives import OBJECTIVES, eps_model_for, objective_loss
from .pretrained import load_pretrained, load_pretrained_codec, pretrained_objective, pretrained_schedule
from .samplers import (ddim_invert, ddim_invert_progressive, ddim_sample_progressive, ddim_timesteps,
                       ddpm_sample_progressive, heun_sample_progressive,
                       final, record, sample_noise, timestep_pairs, with_precision)
from .schedules import Schedule, extract, make_schedule
from .training import TrainConfig, Trainer, diffusion_loss, train

__version__ = "0.1.0"

# The layers on top of the core, loaded on first attribute access: name -> module.
_LAZY = {
    "measure": ".measure", "metrics": ".measure.metrics", "sweeps": ".measure.sweeps",
    "inspection": ".measure.inspection", "experiments": ".measure.experiments", "scaling": ".measure.scaling",
    "pictures": ".pictures", "plotting": ".pictures.plotting", "widgets": ".pictures.widgets",
    "exercises": ".exercises",
}


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name], __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
