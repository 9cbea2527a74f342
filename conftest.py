"""Test-session defaults (at the repository root, so `pytest notebooks/NN.ipynb` gets them too), set before anything is collected so notebook kernels (nbval) inherit them.

    DIFFUSION_LIB_QUICK=1     quick mode: tiny budgets, every notebook runs in seconds on a CPU.
                              Run the same command with DIFFUSION_LIB_QUICK=0 for the full budgets.
    DIFFUSION_LIB_DATA        the MNIST root. Defaults to ../shared/data beside the repository when
                              that folder exists (CI clones the repository next to it); otherwise
                              the library's own default (~/.cache/diffusion_lib/data) applies.
    OMP_NUM_THREADS           torch's CPU threads per process: the cores divided by the number of
                              pytest-xdist workers (1 per worker with `-n 2` on 2 cores). Each worker
                              runs one busy process at a time (itself, or the notebook kernel it waits
                              on); with more threads than cores, torch's small ops wait on descheduled
                              threads and run 5-10x slower (measured on a 2-core machine).
    DIFFUSION_LIB_EMULATE_CUDA=1   notebook kernels run under the CUDA-rules emulation (tests/cuda_emulation.py)
                              with DIFFUSION_LIB_DEVICE=cuda: an IPython start-up file, in a fresh IPYTHONDIR,
                              installs it before the first cell. .ci/run runs notebooks 05, 07 and 11 so.
    MPLBACKEND=Agg            draw without a display. Notebook kernels inherit it too, in place of the
                              inline backend: figures are not rendered (faster) and a cell that only
                              shows a figure has no output, so never mark such a cell NBVAL_CHECK_OUTPUT.

A variable that is already set is left alone. Nothing here downloads data or weights.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent
SHARED_DATA = REPO.parent / "shared" / "data"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # macOS, Windows
        return os.cpu_count() or 1


os.environ.setdefault("DIFFUSION_LIB_QUICK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
if "DIFFUSION_LIB_DATA" not in os.environ and SHARED_DATA.is_dir():
    os.environ["DIFFUSION_LIB_DATA"] = str(SHARED_DATA)
if os.environ.get("DIFFUSION_LIB_EMULATE_CUDA") == "1":
    _startup = Path(tempfile.mkdtemp(prefix="ipython-cuda-emulation-")) / "profile_default" / "startup"
    _startup.mkdir(parents=True)
    (_startup / "00-cuda-emulation.py").write_text(
        "# the notebook kernel runs under the CUDA-rules emulation (conftest.py, DIFFUSION_LIB_EMULATE_CUDA=1)\n"
        f"import sys\nsys.path.insert(0, {str(REPO / 'tests')!r})\n"
        "from cuda_emulation import install\n_emulated_cuda = install()\n")
    os.environ["IPYTHONDIR"] = str(_startup.parents[1])
    os.environ["DIFFUSION_LIB_DEVICE"] = "cuda"


def pytest_configure(config):
    """OMP_NUM_THREADS, once xdist's `-n` is known; before any test module imports torch."""
    if "PYTEST_XDIST_WORKER" in os.environ:
        return   # an xdist worker: it inherited the controller's environment, set below
    if "OMP_NUM_THREADS" not in os.environ:
        workers = config.getoption("numprocesses", default=None)   # `-n N` (xdist turns "auto" into a number)
        workers = workers if isinstance(workers, int) and workers > 0 else 1
        os.environ["OMP_NUM_THREADS"] = str(max(1, _cores() // workers))


def pytest_report_header(config):
    """Say which mode and data root this run uses, at the top of pytest's output."""
    return [f"diffusion_lib: DIFFUSION_LIB_QUICK={os.environ['DIFFUSION_LIB_QUICK']} "
            f"DIFFUSION_LIB_DATA={os.environ.get('DIFFUSION_LIB_DATA', '(unset: ~/.cache/diffusion_lib/data)')} "
            f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} MPLBACKEND={os.environ['MPLBACKEND']}"]
