"""diffusion_lib: the small library behind the course's notebooks.

Modules read like the course's table of contents:
    schedules   noise schedules and every quantity derived from beta_t         (notebook 01)
    forward     q(x_t | x_0), q(x_t | x_{t-1}) and the posterior                 (notebook 02)
    embeddings  the sinusoidal time embedding                                    (notebook 03)
    backbones   ConvNet, SmolMLP, ChunkyMLP (the seed blog's) and a small U-Net  (notebook 04)
    training    the noise-prediction objective, EMA, checkpoints, resume         (notebook 05)
    samplers    DDPM and DDIM over explicit timestep pairs                       (notebooks 06-07)
    guidance    classifier-free guidance                                         (notebook 08)
    data, device, config, plotting, checkpoints: the plumbing.
"""
from . import exercises, plotting, widgets  # dl.plotting.show_grid, dl.widgets.slider_view, dl.exercises.check
from .backbones import BACKBONES, ChunkyMLP, ConvNet, SmolMLP, UNet, build_backbone, count_parameters
from .checkpoints import CheckpointError, load_checkpoint, load_model, save_checkpoint
from .config import budget, quick_mode
from .data import MNISTNotFoundError, load_mnist
from .device import default_device
from .embeddings import TimeEmbedding, sinusoidal_embedding
from .forward import predict_x0_from_eps, q_posterior_mean_variance, q_sample, q_step
from .guidance import cfg_eps_model, guided_eps
from .samplers import (ddim_invert_progressive, ddim_sample_progressive, ddim_timesteps, ddpm_sample_progressive,
                       final, record, sample_noise, timestep_pairs, with_precision)
from .schedules import Schedule, extract, make_schedule
from .training import TrainConfig, Trainer, diffusion_loss, train

__version__ = "0.1.0"
