"""Pictures, built on the core and on measure: figures and sliders. Nothing in the core imports it.

One file per kind of picture, named after what it draws (each file's docstring lists its pictures and the
notebooks that show them):
    grids             image grids and tables (show_grid, show_rows), 06's chain step
    schedule_curves   noise schedules against t (01), DDPM's two noise levels (06)
    histograms        pixel histograms of noised images, 02's forward-process slider
    time_embedding    the sinusoidal time embedding and its similarities (03)
    networks          shapes, receptive fields and cost of the backbones (04)
    training_curves   training losses (05, 09)
    sampling_curves   quality against cost, guidance, quantities along a chain, an ODE solver's error (06-11)
    masked_tokens     masked diffusion: the masking schedule, names and digits being revealed, bits and quality (14)
    fields_and_paths  the 2-D toy: noised density, score and velocity fields, sampler paths (10, 11)
and what they share:
    style             the greatest size of a figure, its fonts, text measuring
    live              LiveFigure: a slider's picture that redraws only what moves
    plotting          every picture above under one name, dl.plotting (dl.plotting.show_rows, ...)
    widgets           sliders over time-indexed pictures, for ipywidgets 7.7 (what Colab ships) and 8
"""
