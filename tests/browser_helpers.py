"""Machinery for tests/test_browser.py: a JupyterLab server on a scratch folder, a headless Chromium
driven by Playwright, and the few page operations the slider tests need.

Nothing here is course content; it is plumbing kept out of the test so the test reads as the steps
a teacher takes: open the notebook, run all, press keys on the slider, drag it, look at the picture.

Every wait is bounded. The server runs in its own process group, its kernels are found by the
connection files in the scratch runtime folder, and all of them are ended by PID at teardown.
"""
from __future__ import annotations

import copy
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "browser"

# Debian's chromium; Playwright's own browser download (`playwright install`) is never used.
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

SERVER_START_S = float(os.environ.get("BROWSER_TEST_SERVER_START_S", 120))   # server up, answering /api
KERNEL_READY_S = float(os.environ.get("BROWSER_TEST_KERNEL_READY_S", 180))   # notebook open, kernel idle
RUN_ALL_S = float(os.environ.get("BROWSER_TEST_RUN_ALL_S", 600))             # "Run All" finished
UPDATE_S = float(os.environ.get("BROWSER_TEST_UPDATE_S", 60))                # one slider move -> new picture
ACTION_MS = 15_000                                                           # one Playwright action

# JupyterLab user settings for the scratch server: every cell in the DOM (no virtual scrolling), no news
# or update checks (no internet; and the notification would cover the page).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing_tools() -> list[str]:
    """What the browser test needs and is not installed here ([] when everything is)."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the Python package playwright (pip install playwright; never `playwright install`)")
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        missing.append("the Python package jupyterlab (pip install -e '.[test]')")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"Chromium at {CHROMIUM} (apt-get install -y chromium; or set $CHROMIUM)")
    return missing


def require_tools() -> None:
    """Skip when a tool is missing on a developer's machine; fail in CI (CI=true), where it must run."""
    missing = missing_tools()
    if not missing:
        return
    message = "browser test needs " + "; ".join(missing)
    if in_ci():
        pytest.fail(message + " (CI=true: installing them is .ci/run's job)", pytrace=False)
    pytest.skip(message)


def data_root() -> str | None:
    """$DIFFUSION_LIB_DATA, else a shared/data folder in or beside the repository (where MNIST lives offline)."""
    if os.environ.get("DIFFUSION_LIB_DATA"):
        return os.environ["DIFFUSION_LIB_DATA"]
    for candidate in (ROOT / "shared" / "data", ROOT.parent / "shared" / "data"):
        if (candidate / "MNIST").is_dir():
            return str(candidate)
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scratch_copy(source: Path | nbformat.NotebookNode, dest: Path) -> nbformat.NotebookNode:
    """Write a copy of a notebook to `dest` with outputs and widget state cleared and the python3 kernel.

    Cleared, so every widget on the page comes from this run and not from saved outputs; the kernelspec
    is set so JupyterLab never asks which kernel to use. The repository's file is never opened for writing.
    """
    nb = nbformat.read(source, as_version=4) if isinstance(source, Path) else copy.deepcopy(source)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)
    return nb


class JupyterLab:
    """`python -m jupyterlab` on 127.0.0.1:<free port> with a token, serving `root_dir` (a scratch folder).

    All of Jupyter's per-user folders (config, data, runtime, lab settings, workspaces) point into
    `home`, so the server neither reads nor writes the user's own and its kernels are easy to find.
    """

    def __init__(self, root_dir: Path, home: Path, extra_env: dict[str, str]):
        self.root_dir, self.home = root_dir, home
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "jupyterlab.log"
        self.runtime = home / "runtime"
        self.proc: subprocess.Popen | None = None
        self.env = dict(os.environ, **extra_env,
                        JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
                        JUPYTER_RUNTIME_DIR=str(self.runtime), JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
                        JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), JUPYTER_PLATFORM_DIRS="1",
                        MPLBACKEND="module://matplotlib_inline.backend_inline", PYTHONUNBUFFERED="1")
        self.env.pop("JUPYTER_TOKEN", None)

    def start(self) -> "JupyterLab":
        for name, settings in LAB_SETTINGS.items():
            path = self.home / "settings" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(settings))
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root_dir}",
               "--LabApp.expose_app_in_browser=True",        # window.jupyterapp: run commands, read models
               "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")                  # CI containers run as root
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=self.root_dir, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base}/api/status?token={self.token}", timeout=5) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"JupyterLab did not answer on {self.base} in {SERVER_START_S:.0f} s:\n{self.log_tail()}")

    def url(self, notebook_name: str) -> str:
        return f"{self.base}/lab/tree/{notebook_name}?token={self.token}"

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def _kernel_pids(self) -> list[int]:
        """PIDs of the kernels this server started: their command line names a file in our runtime folder."""
        pids = []
        marker = str(self.runtime).encode()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if marker in (entry / "cmdline").read_bytes():
                        pids.append(int(entry.name))
                except OSError:
                    pass
        return pids

    def stop(self) -> None:
        if self.proc is None:
            return
        kernels = self._kernel_pids()
        try:  # polite first: the server shuts its kernels down and exits
            req = urllib.request.Request(f"{self.base}/api/shutdown?token={self.token}", method="POST", data=b"")
            urllib.request.urlopen(req, timeout=10).close()
            self.proc.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            pass
        for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)       # the server's own process group (start_new_session)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                pass
        for pid in kernels:                          # kernels run in sessions of their own
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()
        self.proc = None


# --- page operations (window.jupyterapp is exposed by --LabApp.expose_app_in_browser) -------------------

_NOTEBOOK_STATE_JS = """() => {
    const app = window.jupyterapp;
    const panel = app && app.shell.currentWidget;
    if (!panel || !panel.content || !panel.sessionContext) return {ready: false};
    const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
    const cells = panel.content.widgets.map(c => ({
        type: c.model.type,
        count: c.model.type === 'code' ? c.model.executionCount : null,
        errors: c.model.type === 'code'
            ? c.model.outputs.toJSON().filter(o => o.output_type === 'error')
                .map(o => o.ename + ': ' + o.evalue + '\\n' + (o.traceback || []).join('\\n'))
            : [],
    }));
    return {ready: panel.context.isReady && !!kernel, kernel: kernel ? kernel.status : null, cells};
}"""


def notebook_state(page) -> dict:
    return page.evaluate(_NOTEBOOK_STATE_JS)


def open_notebook(page, server: JupyterLab, name: str) -> None:
    page.goto(server.url(name), wait_until="domcontentloaded", timeout=120_000)
    deadline = time.monotonic() + KERNEL_READY_S
    state = {}
    while time.monotonic() < deadline:
        try:
            state = notebook_state(page)
        except Exception as exc:   # the page may still be navigating (token login, /lab/tree redirect)
            state = {"error": str(exc).splitlines()[0]}
        if state.get("ready") and state.get("kernel") == "idle":
            return
        time.sleep(0.5)
    raise TimeoutError(f"{name}: notebook/kernel not ready in {KERNEL_READY_S:.0f} s (last state {state});\n"
                       f"server log:\n{server.log_tail()}")


def run_all(page, name: str) -> float:
    """Run > Run All Cells; wait until every code cell has run and the kernel is idle. Returns seconds."""
    start = time.monotonic()
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    deadline = start + RUN_ALL_S
    state = {}
    while time.monotonic() < deadline:
        time.sleep(1.0)
        state = notebook_state(page)
        errors = [e for c in state.get("cells", []) for e in c["errors"]]
        if errors:
            raise AssertionError(f"{name}: a cell raised while running all cells:\n" + "\n".join(errors)[-4000:])
        code = [c for c in state.get("cells", []) if c["type"] == "code"]
        if code and all(c["count"] is not None for c in code) and state.get("kernel") == "idle":
            return time.monotonic() - start
    pending = [i for i, c in enumerate(state.get("cells", [])) if c["type"] == "code" and c["count"] is None]
    raise TimeoutError(f"{name}: Run All did not finish in {RUN_ALL_S:.0f} s (cells not run: {pending}, "
                       f"kernel {state.get('kernel')})")


def kernel_idle(page) -> bool:
    return notebook_state(page).get("kernel") == "idle"


def mark_cell(page, index: int) -> str:
    """Tag the DOM node of notebook cell `index` and scroll to it; returns a CSS selector for it."""
    page.evaluate("""(i) => {
        const cell = window.jupyterapp.shell.currentWidget.content.widgets[i];
        cell.node.setAttribute('data-browser-test-cell', String(i));
        cell.node.scrollIntoView({block: 'start'});
    }""", index)
    return f'[data-browser-test-cell="{index}"]'


_IMAGE_DIGEST_JS = """async (img) => {
    if (!img.src || !img.complete || img.naturalWidth === 0) return null;
    try {
        const bytes = await (await fetch(img.src)).arrayBuffer();
        const digest = await crypto.subtle.digest('SHA-256', bytes);
        return Array.from(new Uint8Array(digest)).map(b => b.toString(16).padStart(2, '0')).join('')
            + ':' + bytes.byteLength;
    } catch (e) { return null; }   // the blob URL was revoked by a newer picture: ask again
}"""


def image_digest(image_locator) -> str | None:
    """SHA-256 of the bytes the <img> shows (its blob: or data: URL fetched in the page), or None."""
    return image_locator.evaluate(_IMAGE_DIGEST_JS)


def slider_position(slider_locator) -> dict:
    """The slider's readout text and its handle's aria values (noUiSlider, ipywidgets 8)."""
    return slider_locator.evaluate("""(s) => {
        const h = s.querySelector('.noUi-handle');
        const r = s.querySelector('.widget-readout');
        const num = (a) => h && h.hasAttribute(a) ? Number(h.getAttribute(a)) : null;
        return {readout: r ? (r.value !== undefined && r.tagName === 'INPUT' ? r.value : r.textContent).trim() : null,
                now: num('aria-valuenow'), min: num('aria-valuemin'), max: num('aria-valuemax')};
    }""")


def wait_for_new_picture(page, slider, image, before_pos: dict, before_digest: str, what: str) -> tuple[dict, str]:
    """After a move: the readout changes, then the picture changes and settles with the kernel idle."""
    deadline = time.monotonic() + UPDATE_S
    pos = slider_position(slider)
    while pos["readout"] == before_pos["readout"] and time.monotonic() < deadline:
        time.sleep(0.1)
        pos = slider_position(slider)
    assert pos["readout"] != before_pos["readout"], f"{what}: the slider readout stayed at {pos['readout']!r}"
    last, stable_since = None, None
    while time.monotonic() < deadline:
        digest = image_digest(image)
        now = time.monotonic()
        if digest is not None and digest != before_digest and digest == last and kernel_idle(page):
            if stable_since is not None and now - stable_since >= 0.5:
                return slider_position(slider), digest
            stable_since = stable_since or now
        else:
            stable_since = None
        last = digest
        time.sleep(0.2)
    raise AssertionError(f"{what}: the readout moved {before_pos['readout']!r} -> {pos['readout']!r} but the "
                         f"picture did not change and settle within {UPDATE_S:.0f} s")


def drag_handle(page, slider, fraction: float) -> None:
    """Mouse down on the handle, move along the track to `fraction` of its width in steps, mouse up."""
    handle = slider.locator(".noUi-handle").first
    track = slider.locator(".noUi-target").first
    hb, tb = handle.bounding_box(timeout=ACTION_MS), track.bounding_box(timeout=ACTION_MS)
    x0, y = hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2
    page.mouse.move(x0, y)
    page.mouse.down()
    page.mouse.move(tb["x"] + fraction * tb["width"], y, steps=12)
    page.mouse.up()


def save_screenshot(locator_or_page, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    locator_or_page.screenshot(path=str(path), timeout=ACTION_MS)
    print(f"screenshot: {path}")
    return path


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


_LATENCY_ARM_JS = """(img) => {
    // One measurement: the time from the key going down to the new picture having loaded in the <img>.
    const m = {key: null, src: null, load: null};
    window.__browserTestLatency = m;
    document.addEventListener('keydown', () => { if (m.key === null) m.key = performance.now(); },
                              {capture: true, once: true});
    const observer = new MutationObserver(() => {
        if (m.src !== null) return;
        m.src = performance.now();
        observer.disconnect();
        const loaded = () => { if (m.load === null) m.load = performance.now(); };
        if (img.complete && img.naturalWidth > 0) loaded();
        img.addEventListener('load', loaded, {once: true});
    });
    observer.observe(img, {attributes: true, attributeFilter: ['src']});
}"""


def key_latencies(page, handle, image, key: str = "ArrowRight", presses: int = 8) -> list[float]:
    """Seconds from a key press on the slider's handle to the new picture loaded in its <img>, `presses` times.

    Each press waits for its picture and for the kernel to go idle before the next, so the presses do not
    queue up. The clock is the page's own (performance.now()), so Playwright's round trips are not counted.
    """
    element = image.element_handle(timeout=ACTION_MS)
    seconds = []
    for n in range(presses):
        handle.focus()
        page.evaluate(_LATENCY_ARM_JS, element)
        page.keyboard.press(key)
        deadline = time.monotonic() + UPDATE_S
        m = page.evaluate("() => window.__browserTestLatency")
        while m["load"] is None and time.monotonic() < deadline:
            time.sleep(0.02)
            m = page.evaluate("() => window.__browserTestLatency")
        assert m["key"] is not None, f"press {n + 1} of {key}: the page saw no keydown"
        assert m["load"] is not None, f"press {n + 1} of {key}: no new picture within {UPDATE_S:.0f} s"
        seconds.append((m["load"] - m["key"]) / 1000)
        while not kernel_idle(page) and time.monotonic() < deadline:
            time.sleep(0.05)
    return seconds


def notebook_room(page, screen_height: int) -> float:
    """Pixels of notebook left on a screen `screen_height` tall: below the notebook's top edge (JupyterLab's
    menu, tab bar and toolbar sit above it), above the status bar."""
    return page.evaluate("""(h) => {
        const panel = window.jupyterapp.shell.currentWidget.content.node.getBoundingClientRect();
        const status = document.querySelector('#jp-bottom-panel, .jp-StatusBar-Widget');
        const statusHeight = status ? status.getBoundingClientRect().height : 0;
        return h - (panel.top + window.scrollY) - statusHeight;
    }""", screen_height)
