"""The Colab set-up cell of every notebook, as it stands in the committed .ipynb, executed for real.

Outside Colab it must run nothing. In (simulated) Colab it must install diffusion_lib from the
course's repository and nothing else: Colab's torch, torchvision and ipywidgets 7.7.1 stay as they are
(--no-deps or a constraint), and nothing asks for ipywidgets 8. Every way a cell can start a command
(subprocess, os.system, `!pip`, `%pip`) is replaced by a recorder, so nothing is installed here.

Two tests run the cell's own pip command for real, offline: against a git+file:// URL of a clone of this
repository (installed with --target into a scratch folder, --no-index so pip never asks an index), which
proves the command works once the repository is where the URL says; and against an address that does not
exist, where the cell must print what happened and what to do, and raise nothing.
"""
from __future__ import annotations

import importlib.abc
import os
import shlex
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
from packaging.requirements import InvalidRequirement, Requirement

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from notebook_cells import COLAB_CELL_MARKER, COLAB_CELL_SOURCE, GITHUB_SLUG, INSTALL_URL  # noqa: E402

NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
COLAB_OWNED = ("torch", "torchvision", "ipywidgets")     # Colab's own; a reinstall breaks its runtime
COLAB_IPYWIDGETS = "7.7.1"


def colab_cell(nb) -> str:
    """The source of the notebook's Colab set-up cell: the code cell that starts with the marker."""
    cells = [c.source for c in nb.cells if c.cell_type == "code" and c.source.lstrip().startswith(COLAB_CELL_MARKER)]
    assert len(cells) == 1, f"expected one code cell starting with {COLAB_CELL_MARKER!r}, found {len(cells)}"
    return cells[0]


class _Recorder:
    """Stands in for everything that runs a command; keeps each command as a list of arguments."""

    def __init__(self):
        self.commands: list[list[str]] = []

    def record(self, cmd, *args, **kwargs):
        self.commands.append(shlex.split(cmd) if isinstance(cmd, str) else [str(a) for a in cmd])
        return subprocess.CompletedProcess(cmd, 0, stdout=b"", stderr=b"")

    def ipython(self):
        rec = self

        class FakeShell:                      # get_ipython() for `!cmd` and `%pip` lines
            def system(self, cmd):
                rec.record(cmd)

            getoutput = system

            def run_line_magic(self, name, line, *args, **kwargs):
                rec.record(f"{name} {line}")

            def run_cell_magic(self, name, line, cell):
                rec.record(f"{name} {line} {cell}")

        return FakeShell()


class _NoColab(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "google.colab" or name.startswith("google.colab."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def run_cell(source: str, monkeypatch, in_colab: bool) -> list[list[str]]:
    """Execute the cell (IPython syntax transformed, as a kernel would) and return the commands it started."""
    from IPython.core.inputtransformer2 import TransformerManager

    rec = _Recorder()
    for name in ("run", "call", "check_call", "check_output", "Popen"):
        monkeypatch.setattr(subprocess, name, rec.record)
    monkeypatch.setattr(os, "system", lambda cmd: rec.record(cmd) and 0)
    if in_colab:
        colab = types.ModuleType("google.colab")
        google = sys.modules.get("google") or types.ModuleType("google")
        monkeypatch.setitem(sys.modules, "google", google)
        monkeypatch.setitem(sys.modules, "google.colab", colab)
        monkeypatch.setattr(google, "colab", colab, raising=False)
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
        monkeypatch.setattr(sys, "meta_path", [_NoColab(), *sys.meta_path])
    code = TransformerManager().transform_cell(source)
    exec(compile(code, "<colab set-up cell>", "exec"), {"__name__": "__main__", "get_ipython": rec.ipython})
    return rec.commands


def pip_install_args(cmd: list[str]) -> list[str] | None:
    """The arguments after `install` when `cmd` is a pip install (python -m pip, pip, %pip), else None."""
    for i, word in enumerate(cmd[:-1]):
        if Path(word).name.startswith("pip") and cmd[i + 1] == "install":
            return cmd[i + 2:]
    return None


def requirements(args: list[str]) -> list[Requirement]:
    """The named requirements among pip's arguments (URLs, paths and options are not requirements)."""
    found = []
    for arg in args:
        if arg.startswith("-") or "://" in arg or arg.startswith((".", "/")):
            continue
        try:
            found.append(Requirement(arg))
        except InvalidRequirement:
            pass
    return found


def _params():
    if not NOTEBOOKS:
        return [pytest.param(None, marks=pytest.mark.skip(reason="no notebook in notebooks/ yet"), id="none")]
    return [pytest.param(p, id=p.stem) for p in NOTEBOOKS]


@pytest.fixture(params=_params())
def cell_source(request):
    return colab_cell(nbformat.read(request.param, as_version=4))


def test_runs_nothing_outside_colab(cell_source, monkeypatch):
    assert run_cell(cell_source, monkeypatch, in_colab=False) == []


def test_in_colab_installs_only_diffusion_lib(cell_source, monkeypatch):
    commands = run_cell(cell_source, monkeypatch, in_colab=True)
    assert commands, "in Colab the cell must install diffusion_lib, and it ran nothing"
    installs = [pip_install_args(c) for c in commands]
    assert all(a is not None for a in installs), f"the cell runs something other than pip install: {commands}"
    repo = f"git+https://github.com/{GITHUB_SLUG}"
    assert any(arg.startswith(repo) for args in installs for arg in args), (
        f"no pip install of the course repository ({repo}...): {commands}")
    for args in installs:
        constrained = "--no-deps" in args or any(a in ("-c", "--constraint") or a.startswith("--constraint=")
                                                 for a in args)
        assert constrained, f"pip install without --no-deps or a constraint may replace Colab's torch: {args}"
        assert not any("--upgrade" == a or "-U" == a or a.startswith("--force-reinstall") for a in args), args
        for req in requirements(args):
            assert req.name.lower() not in COLAB_OWNED, f"the cell reinstalls Colab's {req.name}: {args}"


def test_never_requires_ipywidgets_8(cell_source, monkeypatch):
    for cmd in run_cell(cell_source, monkeypatch, in_colab=True):
        for req in requirements(cmd):
            if req.name.lower() == "ipywidgets":
                assert req.specifier.contains(COLAB_IPYWIDGETS), f"{req} excludes Colab's ipywidgets {COLAB_IPYWIDGETS}"


def test_package_metadata_admits_colab_ipywidgets():
    """What the cell installs declares a dependency range that Colab's ipywidgets 7.7.1 satisfies."""
    tomllib = pytest.importorskip("tomllib")   # Python 3.11+
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    widgets = [Requirement(d) for d in deps if Requirement(d).name.lower() == "ipywidgets"]
    assert widgets, "pyproject.toml should declare ipywidgets"
    for req in widgets:
        assert req.specifier.contains(COLAB_IPYWIDGETS), f"pyproject.toml's {req} excludes Colab's ipywidgets 7.7.1"


# --- the cell's pip command, run for real (offline) -------------------------------------------------------------

PIP_S = 240


def _run_cell_in_colab(monkeypatch, url: str, target: Path) -> None:
    """Execute the Colab cell as in Colab, its pip command pointed at `url` and installing into `target` only."""
    real_run = subprocess.run
    seen = []

    def run(cmd, *args, **kwargs):
        assert INSTALL_URL in cmd, f"the cell's command no longer installs {INSTALL_URL}: {cmd}"
        seen.append(cmd)
        cmd = [url if arg == INSTALL_URL else arg for arg in cmd]
        # Offline and out of the way: no index, no build isolation (setuptools comes from this environment),
        # and into a scratch folder instead of the environment.
        cmd += ["--target", str(target), "--no-index", "--no-build-isolation", "--disable-pip-version-check"]
        return real_run(cmd, *args, **kwargs, timeout=PIP_S)

    colab = types.ModuleType("google.colab")
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr(subprocess, "run", run)
    exec(compile(COLAB_CELL_SOURCE, "<colab set-up cell>", "exec"), {"__name__": "__main__"})
    assert len(seen) == 1, seen


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def test_the_install_command_works_from_a_clone(tmp_path, monkeypatch, capsys):
    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if git.returncode != 0:
        message = f"the repository is not a git checkout here ({git.stderr.strip()})"
        pytest.fail(message) if _ci() else pytest.skip(message)
    import importlib.util
    if importlib.util.find_spec("setuptools") is None:      # --no-build-isolation builds with this environment's
        pytest.skip("setuptools is not installed here (pip install setuptools), and pip may not fetch it offline")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=PIP_S)
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", "-B", "main"], check=True)   # the URL's @main
    target = tmp_path / "site"
    _run_cell_in_colab(monkeypatch, INSTALL_URL.replace(f"https://github.com/{GITHUB_SLUG}.git", clone.as_uri()),
                       target)
    out = capsys.readouterr().out
    assert out == "", f"the install from the clone failed:\n{out}"
    assert (target / "diffusion_lib" / "__init__.py").is_file()
    assert (target / "diffusion_lib" / "weights" / "unet.pt").is_file(), "package data (the shipped weights) missing"
    installed = sorted(p.name for p in target.iterdir() if not p.name.endswith((".dist-info", ".egg-info")))
    assert installed == ["bin", "diffusion_lib"], f"--no-deps: only diffusion_lib may be installed, found {installed}"
    assert [p.name for p in (target / "bin").iterdir()] == ["diffusion-lib"]      # its command-line entry point


def test_a_failed_install_prints_what_to_do_and_raises_nothing(tmp_path, monkeypatch, capsys):
    missing = f"git+{(tmp_path / 'not-published.git').as_uri()}@main"
    _run_cell_in_colab(monkeypatch, missing, tmp_path / "site")              # must not raise
    out = capsys.readouterr().out
    assert out.startswith(f"Could not install diffusion_lib from {INSTALL_URL} (pip exited with "), out
    assert "What to do:" in out and "set url above" in out and "pip install --no-deps" in out, out
    assert "not-published.git" in out, f"pip's own reason should be shown:\n{out}"
    assert "Traceback" not in out
    assert not (tmp_path / "site" / "diffusion_lib").exists()


def test_a_missing_or_private_repository_is_explained_in_plain_words(monkeypatch, capsys):
    """What pip prints when GitHub has no public repository at the address (the real answer, offline here)."""
    said = ("  fatal: could not read Username for 'https://github.com': No such device or address\n"
            "  error: subprocess-exited-with-error\nERROR: Could not find a version that satisfies the requirement\n")

    def run(cmd, *args, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr=said)

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(subprocess, "run", run)
    exec(compile(COLAB_CELL_SOURCE, "<colab set-up cell>", "exec"), {"__name__": "__main__"})
    out = capsys.readouterr().out
    assert "could not read Username" in out                                    # pip's own line, shown
    assert "does not exist at that address or is private" in out               # and what it means
    assert "upload the zip" in out and "!unzip" in out and "pip install --no-deps /content/course/" in out
