"""Sync notebooks/NN_*.py into NN_*.ipynb and execute them in place, in full mode.

    python tools/build_notebooks.py 01 03      # the notebooks 01 and 03
    python tools/build_notebooks.py all        # every notebooks/NN_*.py

For each notebook: the .py (jupytext py:percent, the file you edit) gets the canonical first two
cells (title + Colab badge, Colab set-up; see tools/notebook_cells.py) and is rewritten if they were
missing or stale; the .ipynb is regenerated from it, executed from the notebooks/ folder with the
current Python environment's kernel and DIFFUSION_LIB_QUICK unset (full mode: what gets committed),
stripped of widget metadata (GitHub does not render notebooks whose widget metadata has no state),
given cell ids derived from the cells (so a rebuild only changes what changed),
and saved with its outputs. The execution time of each notebook is printed.

Offline, point the library at MNIST first: export DIFFUSION_LIB_DATA=/path/to/folder/with/MNIST/raw.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from jupytext.config import load_jupytext_config
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebook_cells import header_problems, with_header  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
CELL_TIMEOUT_S = 1800


def find_sources(numbers: list[str]) -> list[Path]:
    """notebooks/NN_*.py for each NN ('all': every one), in order."""
    if numbers == ["all"]:
        return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
    paths = []
    for n in numbers:
        matches = sorted(NOTEBOOKS.glob(f"{int(n):02d}_*.py"))
        if len(matches) != 1:
            raise SystemExit(f"expected one notebooks/{int(n):02d}_*.py, found {[m.name for m in matches]}")
        paths.append(matches[0])
    return paths


def read_source(py: Path):
    """The notebook in the .py, its header cells made canonical (the .py is rewritten if they were not)."""
    config = load_jupytext_config(str(NOTEBOOKS))
    nb = jupytext.read(py, fmt="py:percent")
    if header_problems(nb, py.stem):
        with_header(nb, py.stem)
        jupytext.write(nb, py, fmt="py:percent", config=config)
        print(f"{py.name}: wrote the canonical title badge and Colab cell into the .py")
    return nb


def stable_cell_ids(nb) -> None:
    """Cell ids from each cell's type and source (jupytext draws random ones), so a rebuild does not churn the diff."""
    seen = set()
    for cell in nb.cells:
        base = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:8]
        cell_id, n = base, 1
        while cell_id in seen:
            cell_id, n = f"{base}-{n}", n + 1
        seen.add(cell_id)
        cell.id = cell_id


def strip_widget_metadata(nb) -> None:
    """Drop metadata.widgets: GitHub refuses to render a notebook whose widget entries lack 'state'."""
    nb.metadata.pop("widgets", None)


def build(py: Path) -> float:
    """Sync, execute and save one notebook; returns the execution time in seconds."""
    nb = read_source(py)
    nb.metadata = nbformat.from_dict({"kernelspec": KERNELSPEC})
    stable_cell_ids(nb)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    strip_widget_metadata(nb)
    nbformat.validate(nb)
    nbformat.write(nb, py.with_suffix(".ipynb"))
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", help="two-digit notebook numbers, or 'all'")
    args = parser.parse_args(argv)
    os.environ.pop("DIFFUSION_LIB_QUICK", None)   # committed notebooks are executed in full mode
    for py in find_sources(args.notebooks):
        print(f"{py.stem}: executing in full mode ...", flush=True)
        seconds = build(py)
        print(f"{py.stem}: executed in {seconds:.1f} s -> notebooks/{py.stem}.ipynb", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
