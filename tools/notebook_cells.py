"""The two cells every notebook starts with, and the one place the GitHub repository is named.

    1. a markdown title cell: "# Title" and, on the next line, the "Open in Colab" badge;
    2. the Colab set-up cell: installs diffusion_lib from GitHub when run in Google Colab, a no-op elsewhere.

tools/build_notebooks.py writes both into the .py files and tests/test_notebooks_static.py checks them.
To move the course to another repository, change GITHUB_SLUG and run `python tools/build_notebooks.py all`.
"""
from __future__ import annotations

import nbformat

# Placeholder for the real repository: owner/name on GitHub.
GITHUB_SLUG = "diffusion-course/diffusion-by-code"
BRANCH = "main"

COLAB_CELL_MARKER = "# Colab set-up"

# Colab already ships torch, torchvision, ipywidgets 7.7.1, matplotlib and tqdm, which is everything
# diffusion_lib needs; --no-deps installs only diffusion_lib itself, so none of them is reinstalled.
# A failed install (the repository is not published under GITHUB_SLUG yet, no network, a typo in the
# address) prints what pip said and what to do, and raises nothing: a traceback would bury the advice.
# tests/test_colab_setup.py runs this cell's command against a local clone (git+file://) and a bad address.
INSTALL_URL = f"git+https://github.com/{GITHUB_SLUG}.git@{BRANCH}"
COLAB_CELL_SOURCE = f"""\
{COLAB_CELL_MARKER}: in Google Colab, install diffusion_lib from GitHub; elsewhere this cell does nothing.
import subprocess
import sys

if "google.colab" in sys.modules:
    url = "{INSTALL_URL}"
    # --no-deps: keep Colab's own torch, torchvision and ipywidgets (it also has matplotlib and tqdm).
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", url],
                             capture_output=True, text=True)
    if install.returncode != 0:
        print(f"Could not install diffusion_lib from {{url}} (pip exited with {{install.returncode}}):")
        said = (install.stderr or install.stdout).strip().splitlines()
        print("\\n".join([line.strip() for line in said if "fatal:" in line or "ERROR:" in line] or said[-6:]))
        if "could not read Username" in install.stderr:
            print("In plain words: GitHub asked for a user name, which is how it answers when the repository does "
                  "not exist at that address or is private.")
        print("What to do: the cells below need diffusion_lib. Either set url above to the course's repository "
              "(git+https://github.com/OWNER/NAME.git@main) and run this cell again; or install your own copy: zip "
              "the course's folder (the one with pyproject.toml) on your computer, upload the zip with the folder "
              "icon in Colab's left bar, then run in a new cell: !unzip -q NAME.zip -d /content/course && "
              "pip install --no-deps /content/course/FOLDER")"""


def colab_url(stem: str) -> str:
    """The Colab address of notebooks/<stem>.ipynb on GitHub."""
    return f"https://colab.research.google.com/github/{GITHUB_SLUG}/blob/{BRANCH}/notebooks/{stem}.ipynb"


def badge_line(stem: str) -> str:
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(stem)})"


def title_cell_source(stem: str, title: str, rest: str = "") -> str:
    """'# title', the badge, then the rest of the cell's markdown (if any)."""
    return f"# {title}\n\n{badge_line(stem)}" + (f"\n\n{rest.strip()}" if rest.strip() else "")


def _split_title_cell(source: str):
    """(title, rest) of a markdown cell that starts with '# title', dropping any existing badge line."""
    lines = source.strip().splitlines()
    if not lines or not lines[0].startswith("# "):
        return None
    rest = [line for line in lines[1:] if "colab-badge.svg" not in line]
    return lines[0][2:].strip(), "\n".join(rest)


def header_problems(nb, stem: str) -> list[str]:
    """What is wrong with the first two cells of notebook `nb` (named notebooks/<stem>.ipynb); [] when right."""
    cells = nb.cells
    problems = []
    if not cells or cells[0].cell_type != "markdown" or _split_title_cell(cells[0].source) is None:
        problems.append("cell 1 must be a markdown cell starting with '# Title'")
    elif cells[0].source.strip() != title_cell_source(stem, *_split_title_cell(cells[0].source)):
        problems.append(f"cell 1 must have the Colab badge on the line after the title: {badge_line(stem)}")
    if len(cells) < 2 or cells[1].cell_type != "code" or cells[1].source.strip() != COLAB_CELL_SOURCE:
        problems.append("cell 2 must be the Colab set-up cell of tools/notebook_cells.py")
    return problems


def with_header(nb, stem: str):
    """Put the canonical badge into the title cell and the Colab cell second (inserted or replaced), in place."""
    split = _split_title_cell(nb.cells[0].source) if nb.cells and nb.cells[0].cell_type == "markdown" else None
    if split is None:
        raise ValueError(f"{stem}: the first cell must be a markdown cell starting with '# Title'")
    nb.cells[0].source = title_cell_source(stem, *split)
    colab = nbformat.v4.new_code_cell(COLAB_CELL_SOURCE)
    if len(nb.cells) > 1 and nb.cells[1].cell_type == "code" and nb.cells[1].source.startswith(COLAB_CELL_MARKER):
        nb.cells[1].source = COLAB_CELL_SOURCE
    else:
        nb.cells.insert(1, colab)
    return nb
