"""Sync notebooks/NN_*.py into NN_*.ipynb and execute them in place, in full mode.

    python tools/build_notebooks.py 01 03      # the notebooks 01 and 03
    python tools/build_notebooks.py all        # every notebooks/NN_*.py
    python tools/build_notebooks.py --no-execute all   # only the header cells and the .py -> .ipynb sync
    python tools/build_notebooks.py --quick --out /tmp/built 06   # a check: quick mode, written elsewhere

For each notebook: the .py (jupytext py:percent, the file you edit) gets the canonical first two
cells (title + Colab badge, Colab set-up; see tools/notebook_cells.py) and is rewritten if they were
missing or stale; the .ipynb is regenerated from it, executed from the notebooks/ folder with the
current Python environment's kernel and DIFFUSION_LIB_QUICK unset (full mode: what gets committed),
its tqdm progress bars replaced by their last text (tools/notebook_outputs.py: the widget's own text is
the bar at 0%), stripped of widget metadata (GitHub does not render notebooks whose widget metadata has no
state), given cell ids derived from the cells (so a rebuild only changes what changed), and saved with its
outputs. The execution time of each notebook is printed, then every output a reader must not see (a
widget's repr, a bar at 0%, stderr, an absolute path: notebook_outputs.output_problems, which
tests/test_notebooks_static.py checks too); the exit code is 1 if there is one.

--no-execute writes the header cells into the .py files and updates each .ipynb from its .py, keeping the
outputs it has (jupytext --update): for a change to tools/notebook_cells.py or to a cell's source, without
running anything. --quick (DIFFUSION_LIB_QUICK=1) and --out DIR (write the executed notebook into DIR, not
notebooks/) are for checking the build and its outputs quickly; never commit a quick-mode notebook.

Offline, point the library at MNIST first: export DIFFUSION_LIB_DATA=/path/to/folder/with/MNIST/raw.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import nbformat
from jupytext.config import load_jupytext_config
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebook_cells import header_problems, with_header  # noqa: E402
from notebook_outputs import finish_progress_bars, output_problems  # noqa: E402

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


def build(py: Path, out: Path | None = None) -> tuple[float, list[str]]:
    """Sync, execute and save one notebook (into `out`, default notebooks/); returns the execution time in seconds
    and its output problems."""
    nb = read_source(py)
    nb.metadata = nbformat.from_dict({"kernelspec": KERNELSPEC})
    stable_cell_ids(nb)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", record_timing=False,
                            store_widget_state=True, resources={"metadata": {"path": str(NOTEBOOKS)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    finish_progress_bars(nb)               # needs metadata.widgets: before it is stripped
    strip_widget_metadata(nb)
    nbformat.validate(nb)
    nbformat.write(nb, (out or py.parent) / py.with_suffix(".ipynb").name)
    return seconds, output_problems(nb)


def sync_without_executing(py: Path) -> None:
    """Header cells into the .py, then the .ipynb updated from the .py with its outputs kept (nothing runs)."""
    read_source(py)
    subprocess.run([sys.executable, "-m", "jupytext", "--quiet", "--to", "ipynb", "--update", str(py)], check=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", help="two-digit notebook numbers, or 'all'")
    parser.add_argument("--no-execute", action="store_true",
                        help="only write the header cells into the .py and update the .ipynb from it, keeping outputs")
    parser.add_argument("--quick", action="store_true", help="execute in quick mode (a check; never commit it)")
    parser.add_argument("--out", type=Path, help="write the executed notebooks into this folder, not notebooks/")
    args = parser.parse_args(argv)
    if args.no_execute:
        for py in find_sources(args.notebooks):
            sync_without_executing(py)
            print(f"{py.stem}: synced notebooks/{py.stem}.ipynb from the .py (not executed)", flush=True)
        return 0
    if args.quick:
        os.environ["DIFFUSION_LIB_QUICK"] = "1"
    else:
        os.environ.pop("DIFFUSION_LIB_QUICK", None)   # committed notebooks are executed in full mode
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    mode = "quick" if args.quick else "full"
    bad = {}
    for py in find_sources(args.notebooks):
        print(f"{py.stem}: executing in {mode} mode ...", flush=True)
        seconds, problems = build(py, args.out)
        where = args.out or "notebooks"
        print(f"{py.stem}: executed in {seconds:.1f} s -> {where}/{py.stem}.ipynb", flush=True)
        if problems:
            bad[py.stem] = problems
    for stem, problems in bad.items():
        print(f"{stem}: {len(problems)} output(s) a reader must not see (fix the cell, then build it again):",
              file=sys.stderr)
        for problem in problems:
            print(f"    {problem}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
