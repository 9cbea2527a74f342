#!/usr/bin/env bash
# The course in a Colab-like environment: Colab's Python and torch, ipywidgets 7.7.1 and the classic notebook 6.5,
# with diffusion_lib installed as each notebook's first cell installs it in Colab (--no-deps, keeping that torch);
# then every notebook in quick mode under nbval, and the slider tests on ipywidgets 7.
#
#   bash tools/colab_like_check.sh                      # python3.13 and torch 2.11.0, what Colab shipped when checked
#   bash tools/colab_like_check.sh python3.12 2.10.0    # another pair
#
# The environment goes to $COLAB_LIKE_ENV (default: a folder in /tmp), made fresh each time; about 3 GB of
# downloads (torch). Prints the versions it ran with, then pytest's summary; exits with pytest's code.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${1:-python3.13}"
TORCH="${2:-2.11.0}"
ENV_DIR="${COLAB_LIKE_ENV:-${TMPDIR:-/tmp}/diffusion-course-colab-like}"

rm -rf "$ENV_DIR"
"$PYTHON" -m venv "$ENV_DIR"
. "$ENV_DIR/bin/activate"
# What Colab provides (torch and a matching torchvision, ipywidgets 7.7.1, the classic notebook), then the test tools.
pip install --quiet "torch==$TORCH" torchvision "ipywidgets==7.7.1" "notebook==6.5.*" matplotlib tqdm \
    pytest nbval jupytext ipykernel nbformat pytest-xdist
pip install --quiet --no-deps -e .          # as the Colab cell does: diffusion_lib only
python -c "import sys, torch, torchvision, ipywidgets, notebook; print('Colab-like:', 'Python', sys.version.split()[0], \
'torch', torch.__version__, 'torchvision', torchvision.__version__, 'ipywidgets', ipywidgets.__version__, \
'notebook', notebook.__version__)"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
pytest -n 2 --dist loadfile notebooks tests/test_widgets.py tests/test_widgets_versions.py tests/test_on_cuda.py
