"""SliderView works on the kernel side with ipywidgets 7.7.1 (what Colab ships) and with the installed 8.

Each version runs in a subprocess: for 7.7.1, a folder holding ipywidgets 7.7.1 (pip --target, made once
and cached) goes first on PYTHONPATH. The subprocess builds both kinds of slider (IntSlider for a
contiguous range, SelectionSlider otherwise), moves them the way the browser does (a state update from
the front end: `value` for an IntSlider, `index` for a SelectionSlider) and from code (view.set), and
checks that the PNG in view.image follows, and that its display bundle is our sentence plus the box's view.

The 7.7.1 folder: $DIFFUSION_LIB_IPYWIDGETS7 if set, else ~/.cache/diffusion_lib/ipywidgets-7.7.1
(installed on first use with IPYWIDGETS7_PIN below). Without network and without that folder the 7.7.1
case skips, except in CI (CI=true), where it fails.
"""
from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Colab's widget stack; --no-deps: only these, everything else comes from the test environment.
IPYWIDGETS7_PIN = ["ipywidgets==7.7.1", "widgetsnbextension~=3.6.0", "jupyterlab_widgets~=1.1",
                   "ipython_genutils==0.2.0"]
SUBPROCESS_S = 300

CHECK = textwrap.dedent('''
    import sys
    import ipywidgets
    import matplotlib.pyplot as plt
    import diffusion_lib.pictures.widgets as dw

    expected, where = sys.argv[1], sys.argv[2]
    assert ipywidgets.__version__.startswith(expected), (ipywidgets.__version__, expected)
    assert where == "-" or ipywidgets.__file__.startswith(where), ipywidgets.__file__

    calls = []
    def render(v):
        calls.append(v)
        fig, ax = plt.subplots(figsize=(1, 1))
        ax.set_title(str(v))
        ax.axis("off")
        return fig

    def png(view):
        data = bytes(view.image.value)
        assert data.startswith(b"\\x89PNG"), data[:8]
        return data

    # Contiguous integers: an IntSlider. The front end sends {"value": v}.
    view = dw.slider_view(render, values=range(0, 50), description="t")
    assert isinstance(view.slider, ipywidgets.IntSlider), type(view.slider)
    assert (view.slider.min, view.slider.max, view.value) == (0, 49, 0)
    assert isinstance(view.box, ipywidgets.VBox) and list(view.box.children) == [view.slider, view.image]
    at0 = png(view)
    view.set(10)
    at10 = png(view)
    assert at10 != at0 and view.value == 10
    view.slider.set_state({"value": 20})          # what a drag in the browser does
    assert view.value == 20 and png(view) not in (at0, at10)
    view.set(10)
    assert png(view) == at10, "the same value should give the same picture"
    assert calls == [0, 10, 20], calls            # 10 was drawn before: its PNG is kept

    # Without a kernel (GitHub, nbconvert, an untrusted notebook) the output's text/plain is all there is:
    # a sentence, not the widget's repr; with one, the front end shows the VBox by its model id.
    from IPython.core.formatters import DisplayFormatter
    data, _ = DisplayFormatter().format(view)
    assert data["text/plain"].startswith("Interactive slider over t (run the notebook"), data["text/plain"]
    assert "VBox" not in data["text/plain"], data["text/plain"]
    bundle = data["application/vnd.jupyter.widget-view+json"]
    own = view.box._repr_mimebundle_() if hasattr(view.box, "_repr_mimebundle_") else None
    if own is not None:                           # ipywidgets 8: the same view as the box's own bundle
        assert bundle == own["application/vnd.jupyter.widget-view+json"], (bundle, own)
    assert bundle == {"version_major": 2, "version_minor": 0, "model_id": view.box.model_id}, bundle

    # Anything else (e.g. timesteps in sampling order): a SelectionSlider. The front end sends {"index": i}.
    calls.clear()
    chain = dw.slider_view(render, values=[999, 666, 333, 0], description="step", value=666)
    assert calls == [666, 999, 333, 0], calls     # four values: all drawn up front, the shown one first
    assert isinstance(chain.slider, ipywidgets.SelectionSlider), type(chain.slider)
    assert (chain.value, chain.slider.index, chain.slider.label) == (666, 1, "666")
    first = png(chain)
    chain.slider.set_state({"index": 3})          # what a drag in the browser does
    assert (chain.value, chain.slider.label) == (0, "0") and png(chain) != first
    chain.set(999)
    assert chain.slider.index == 0 and png(chain) != first
    assert calls == [666, 999, 333, 0], calls     # moving only swapped bytes

    for bad in ((render, []), (render, range(3), "t", 7)):
        try:
            dw.slider_view(*bad)
        except ValueError:
            pass
        else:
            raise AssertionError(f"slider_view{bad[1:]} should raise ValueError")
    print("OK", ipywidgets.__version__)
''')


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _has_ipywidgets_771(folder: Path) -> bool:
    return (folder / "ipywidgets" / "__init__.py").is_file() and (folder / "ipywidgets-7.7.1.dist-info").is_dir()


def _unavailable(message: str):
    if _in_ci():
        pytest.fail(message + " (CI=true: the 7.7.1 check must run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def ipywidgets7_dir() -> Path:
    """A folder with ipywidgets 7.7.1 in it, installed there once (pip --target) if it is not yet."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = Path(os.environ.get("DIFFUSION_LIB_IPYWIDGETS7") or cache / "diffusion_lib" / "ipywidgets-7.7.1")
    if _has_ipywidgets_771(folder):
        return folder
    staging = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
           "--target", str(staging), *IPYWIDGETS7_PIN]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SUBPROCESS_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"could not install ipywidgets 7.7.1 ({exc})")
    if proc.returncode != 0 or not _has_ipywidgets_771(staging):
        shutil.rmtree(staging, ignore_errors=True)
        _unavailable(f"could not install ipywidgets 7.7.1: {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    if folder.exists() and not _has_ipywidgets_771(folder):
        shutil.rmtree(folder, ignore_errors=True)          # a half-made folder from an interrupted install
    try:
        staging.rename(folder)          # atomic; another process may have won the race
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    assert _has_ipywidgets_771(folder), folder
    return folder


def _run_check(expected: str, pythonpath: Path | None) -> str:
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONNOUSERSITE="1")
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), *filter(None, [os.environ.get("PYTHONPATH")])])
    where = str(pythonpath) if pythonpath is not None else "-"
    proc = subprocess.run([sys.executable, "-c", CHECK, expected, where], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=SUBPROCESS_S)
    assert proc.returncode == 0, f"ipywidgets {expected}: the SliderView check failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return proc.stdout


def test_slider_view_on_installed_ipywidgets_8():
    installed = importlib.metadata.version("ipywidgets")
    if not installed.startswith("8."):
        pytest.skip(f"ipywidgets {installed} is installed, as in Colab (7.7.1): this check is for ipywidgets 8; "
                    "test_slider_view_on_ipywidgets_7_7_1 checks 7.7.1")
    assert _run_check("8.", None).startswith("OK 8.")


def test_slider_view_on_ipywidgets_7_7_1(ipywidgets7_dir):
    assert _run_check("7.7.1", ipywidgets7_dir).startswith("OK 7.7.1")
