"""dl.plotting: every picture of the course under one name, so a notebook writes dl.plotting.show_rows(...).

The pictures themselves live in files named after what they draw; this module only gathers them:

    grids             image grids and tables: show_grid, show_rows and its slider, 06's chain step
    schedule_curves   noise schedules against t (01), DDPM's two noise levels (06)
    histograms        pixel histograms of noised images and 02's forward-process slider
    time_embedding    the sinusoidal embedding and its similarities (03)
    networks          shapes, receptive fields and cost of the backbones (04)
    training_curves   training losses (05, 09)
    sampling_curves   quality against cost (07, 10, 11), guidance (08), quantities along a chain (06, 09),
                      an ODE solver's error (10, 11)
    fields_and_paths  the 2-D toy: noised density, score and velocity fields, sampler paths (10, 11)
    attention_maps    the DiT's patches and what its attention heads look at (13)
    scaling_curves    held-out loss against training compute, log-log (13)
and the machinery they share: style (sizes and fonts) and live (LiveFigure, a slider's fast redraw).
"""
from .attention_maps import plot_attention_maps, plot_patches
from .fields_and_paths import (NOISING_LABEL, NOISING_TITLE, SCORE_TITLE, TOY_LIMIT, TOY_PANEL_IN,
                               TOY_SLIDER_TICK_SIZE, field_slider, plot_score_fields, plot_toy_noising,
                               plot_toy_trajectories, toy_noising_slider, toy_trajectory_slider)
from .grids import (GRID_HEIGHT_IN, GRID_SCALE_MAX, GRID_TILE_IN, chain_slider, image_grid, labelled_grid_slider,
                    plot_chain_step, show_grid, show_rows)
from .histograms import HIST_BINS, HIST_RANGE, forward_state_slider, plot_forward_state, plot_pixel_histograms
from .live import PNG_COMPRESS_LEVEL, LiveFigure
from .masked_tokens import (names_slider, plot_bits_vs_nfe, plot_digit_quality, plot_masking_schedule, show_names,
                            tokens_as_images)
from .networks import plot_cost_per_image, plot_receptive_fields, plot_shape_traces
from .sampling_curves import (plot_chain_magnitudes, plot_guidance_tradeoff, plot_over_t, plot_quality_vs_nfe,
                              plot_quality_vs_steps, plot_solver_errors)
from .schedule_curves import (SCHEDULE_COLORS, SCHEDULE_LABELS, SCHEDULE_LEGEND_LOC, plot_ddpm_sigmas,
                              plot_schedules, plot_variance_split, schedule_table, schedules_slider)
from .style import LABEL_SIZE, MAX_WIDTH_IN, SLIDER_HEIGHT_IN, TICK_SIZE, TITLE_SIZE
from .time_embedding import (embedding_slider, plot_embedding_at, plot_embedding_heatmap, plot_similarity_curves,
                             plot_similarity_matrix)
from .scaling_curves import ARCHITECTURE_COLORS, plot_scaling_curves
from .training_curves import LOSS_LABEL, plot_loss_by_timestep, plot_loss_curve, plot_loss_curves

__all__ = [
    # attention_maps, scaling_curves
    "plot_patches", "plot_attention_maps", "plot_scaling_curves", "ARCHITECTURE_COLORS",
    # masked_tokens (notebook 14)
    "plot_masking_schedule", "tokens_as_images", "show_names", "names_slider", "plot_bits_vs_nfe", "plot_digit_quality",
    # grids
    "image_grid", "show_grid", "show_rows", "labelled_grid_slider", "plot_chain_step", "chain_slider",
    "GRID_TILE_IN", "GRID_SCALE_MAX", "GRID_HEIGHT_IN",
    # schedule_curves
    "plot_schedules", "schedules_slider", "schedule_table", "plot_variance_split", "plot_ddpm_sigmas",
    "SCHEDULE_COLORS", "SCHEDULE_LABELS", "SCHEDULE_LEGEND_LOC",
    # histograms
    "plot_pixel_histograms", "plot_forward_state", "forward_state_slider", "HIST_BINS", "HIST_RANGE",
    # time_embedding
    "plot_embedding_heatmap", "plot_similarity_matrix", "plot_similarity_curves", "plot_embedding_at",
    "embedding_slider",
    # networks
    "plot_shape_traces", "plot_receptive_fields", "plot_cost_per_image",
    # training_curves
    "plot_loss_curve", "plot_loss_by_timestep", "plot_loss_curves", "LOSS_LABEL",
    # sampling_curves
    "plot_quality_vs_steps", "plot_quality_vs_nfe", "plot_guidance_tradeoff", "plot_over_t", "plot_chain_magnitudes",
    "plot_solver_errors",
    # fields_and_paths
    "plot_toy_noising", "toy_noising_slider", "plot_score_fields", "field_slider", "plot_toy_trajectories",
    "toy_trajectory_slider", "TOY_LIMIT", "TOY_PANEL_IN", "TOY_SLIDER_TICK_SIZE", "NOISING_TITLE", "NOISING_LABEL",
    "SCORE_TITLE",
    # style and live
    "MAX_WIDTH_IN", "SLIDER_HEIGHT_IN", "TITLE_SIZE", "LABEL_SIZE", "TICK_SIZE", "LiveFigure", "PNG_COMPRESS_LEVEL",
]
