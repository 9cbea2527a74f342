"""Test-session defaults, set before anything is collected so notebook kernels (nbval) inherit them.

    DIFFUSION_LIB_QUICK=1     quick mode: tiny budgets, every notebook runs in seconds on a CPU.
                              Run the same command with DIFFUSION_LIB_QUICK=0 for the full budgets.
    DIFFUSION_LIB_DATA        the MNIST root. Defaults to ../shared/data beside the repository when
                              that folder exists (CI clones the repository next to it); otherwise
                              the library's own default (~/.cache/diffusion_lib/data) applies.
    MPLBACKEND=Agg            draw without a display.

A variable that is already set is left alone. Nothing here downloads data or weights.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("DIFFUSION_LIB_QUICK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
if "DIFFUSION_LIB_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["DIFFUSION_LIB_DATA"] = str(SHARED_DATA)


def pytest_report_header(config):
    """Say which mode and data root this run uses, at the top of pytest's output."""
    return [f"diffusion_lib: DIFFUSION_LIB_QUICK={os.environ['DIFFUSION_LIB_QUICK']} "
            f"DIFFUSION_LIB_DATA={os.environ.get('DIFFUSION_LIB_DATA', '(unset: ~/.cache/diffusion_lib/data)')} "
            f"MPLBACKEND={os.environ['MPLBACKEND']}"]
