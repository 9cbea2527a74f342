"""Pictures, built on the core and on measure: figures and sliders. Nothing in the core imports it.

    plotting   image grids and tables, and the figures of each notebook (matplotlib), sized for a projector
    widgets    sliders over time-indexed pictures, for ipywidgets 7.7 (what Colab ships) and 8
"""
