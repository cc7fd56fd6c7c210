"""The course in a real browser: JupyterLab on loopback, driven by headless Chromium through Playwright.

nbval executes the lessons' code but never draws a widget: ipywidgets only come alive in a browser front
end, and "Error displaying widget: model not found" is how a course breaks for learners while CI stays
green. This module starts JupyterLab from the project's environment on 127.0.0.1, opens each lesson that
uses ipywidgets (lesson 02's sigma slider, lesson 08's latent walk, ...) in Debian's Chromium, runs all
cells and checks what a learner sees: every widget view renders, no cell ends in an error, and moving a
slider (or pressing a button) changes the displayed output. ``tests/test_browser.py`` drives it.

No tensors here, so no shape legend: the quantities are cells, outputs and seconds.
Nothing leaves the machine: the server listens on 127.0.0.1 only, and the browser aborts every request
whose host is not 127.0.0.1 / localhost.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nbformat

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(
    "/usr/bin/chromium"
)  # Debian's package: Playwright's own browser download is impossible offline
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
# Chromium flags for CI: no sandbox (CI runs as root), no GPU, and no background traffic to Google services.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-dev-shm-usage",  # containers have a tiny /dev/shm; Chromium then crashes on big pages
]
# What @jupyter-widgets/jupyterlab-manager writes into an output area instead of a view.
WIDGET_FAILURES = ("Error displaying widget", "Loading widget...")
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
# JupyterLab user settings (JUPYTERLAB_SETTINGS_DIR/<package>/<plugin>.jupyterlab-settings): nothing may
# cover the notebook (kernel dialog, news toast), every cell is attached to the DOM so that every output
# can be inspected, and nothing is ever written back into the lessons.
LAB_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false",  # no "Would you like to receive official Jupyter news?" toast, no request out
        "checkForUpdates": False,
        "doNotDisturbMode": True,  # no toast may cover a cell
    },
    "@jupyterlab/notebook-extension/tracker": {
        "autoStartDefaultKernel": True,  # no "Select Kernel" dialog on first open
        "windowingMode": "none",  # all cells in the DOM, not only those in the viewport
    },
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},  # never save outputs into notebooks/
}


class Deadline:
    """A global time budget: every wait takes ``min(its own cap, what is left)``, so the run always ends."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self, cap: float | None = None) -> float:
        """Seconds left (at most ``cap``); raises ``TimeoutError`` once the budget is spent."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the browser check ran past its {self.seconds:.0f} s budget")
        return left if cap is None else min(cap, left)


@dataclass
class LessonReport:
    """What the browser showed for one notebook; ``problems`` is empty when a learner would see it work."""

    name: str
    problems: list[str] = field(default_factory=list)
    widget_views: int = 0
    interactions: int = 0
    screenshot: Path | None = None
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step, for slow-CI diagnosis


def missing_requirements() -> str | None:
    """Why the browser check cannot run here (a sentence saying what to install), or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found: install Debian's Chromium with `apt-get install chromium`"
    for module, package in (("playwright", "playwright"), ("jupyterlab", "jupyterlab")):
        if importlib.util.find_spec(module) is None:
            return (
                f"Python package {package!r} is missing from {sys.executable}: "
                f"run `pip install -c constraints.txt -e '.[dev]'`"
            )
    return None


def widget_lessons(folder: Path = ROOT / "notebooks") -> list[Path]:
    """The lessons whose code uses ipywidgets, found by reading their code cells (no list to keep up)."""
    found = []
    for path in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        if any(c.cell_type == "code" and re.search(r"\bipywidgets\b", c.source) for c in nb.cells):
            found.append(path)
    return found


def file_digest(path: Path) -> str:
    """sha256 of a file, to prove the browser session left a lesson untouched."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_lab_settings(settings_dir: Path) -> None:
    """Write ``LAB_SETTINGS`` as JupyterLab user settings into a fresh ``settings_dir``."""
    for plugin, values in LAB_SETTINGS.items():
        package, name = plugin.rsplit("/", 1)
        target = settings_dir / package / f"{name}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values, indent=2))


class LabServer:
    """JupyterLab from this environment on 127.0.0.1, random port and token, its state in ``state_dir``.

    Use it as a context manager: leaving the block shuts the server (and its kernels) down, even when the
    block raised.
    """

    def __init__(
        self, root_dir: Path, state_dir: Path, deadline: Deadline, startup_timeout: float = 90.0
    ) -> None:
        self.root_dir = Path(root_dir)
        self.state_dir = Path(state_dir)
        self.deadline = deadline
        self.startup_timeout = startup_timeout
        self.port = _free_port()
        self.token = secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}/"
        self.log_path = self.state_dir / "jupyterlab.log"
        self.proc: subprocess.Popen | None = None

    def url(self, path: str) -> str:
        """Browser address of ``path`` (e.g. ``lab/tree/notebooks/x.ipynb``), logged in by the token."""
        return f"{self.base}{path}?token={self.token}"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        dirs = {
            "JUPYTER_CONFIG_DIR": "config",
            "JUPYTERLAB_SETTINGS_DIR": "settings",
            "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
            "JUPYTER_RUNTIME_DIR": "runtime",  # connection files land here, not in ~/.local/share
            "IPYTHONDIR": "ipython",  # the kernels' history database too
        }
        for var, name in dirs.items():
            (self.state_dir / name).mkdir(parents=True, exist_ok=True)
            env[var] = str(self.state_dir / name)
        # JUPYTER_DATA_DIR stays: the widgets lab extension lives in this environment's share/jupyter.
        # `make test` exports MPLBACKEND=Agg for nbval; in a kernel that would hide every figure, so the
        # kernels get ipykernel's inline backend, as a learner's do.
        env.pop("MPLBACKEND", None)
        env.setdefault("VITGAN_LITE_QUICK", "1")  # what `make test` sets: rendering is checked, not numbers
        return env

    def _request(self, method: str, path: str, timeout: float) -> bytes:
        req = urllib.request.Request(
            self.base + path, method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.read()

    def _log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"

    def start(self) -> LabServer:
        """Start ``python -m jupyter lab`` and wait until its REST API answers."""
        write_lab_settings(self.state_dir / "settings")
        cmd = [
            sys.executable, "-m", "jupyter", "lab",
            "--no-browser",
            "--allow-root",  # CI runs as root; JupyterLab refuses to start as root without it
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",  # fail loudly rather than drift to a port we do not know
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root_dir}",
            "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: run commands, read cell models
        ]  # fmt: skip
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=self.root_dir, env=self._env(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        end = time.monotonic() + self.deadline.left(self.startup_timeout)
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with code {self.proc.returncode}:\n{self._log_tail()}")
            try:
                self._request("GET", "api/status", timeout=5)
                return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        raise TimeoutError(f"JupyterLab did not answer on {self.base} in time:\n{self._log_tail()}")

    def stop(self) -> None:
        """Shut down cleanly (kernels first, through the REST API), then terminate, then kill."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self._request("POST", "api/shutdown", timeout=10)  # stops every kernel, then the server
            self.proc.wait(timeout=20)
        except (urllib.error.URLError, OSError, subprocess.TimeoutExpired):
            pass
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            if self.proc.poll() is not None:
                return
            try:
                os.killpg(self.proc.pid, sig)  # its own session: the whole group, nothing else
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> LabServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def launch_browser(playwright: Any, profile_dir: Path, blocked: list[str]) -> Any:
    """Headless Debian Chromium with a fresh profile; every request off 127.0.0.1/localhost is aborted.

    ``blocked`` collects the addresses that were refused. Returns a Playwright ``BrowserContext``
    (``launch_persistent_context``: Playwright refuses ``--user-data-dir`` in plain ``launch`` args).
    """
    context = playwright.chromium.launch_persistent_context(
        str(profile_dir),
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1280, "height": 900},
    )

    def only_loopback(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            blocked.append(url)
            route.abort("blockedbyclient")

    context.route("**/*", only_loopback)
    return context


# ---------------------------------------------------------------- JavaScript run inside JupyterLab's page
# Every snippet finds its notebook panel by path, so several lessons can be open (and run) at once.
_JS_PANEL = """const panelFor = (path) => {
  const app = window.jupyterapp;
  if (!app) return null;
  for (const w of app.shell.widgets('main')) if (w.context && w.context.path === path && w.content) return w;
  return null;
};
"""

_JS_STATE = (
    "(path) => {"
    + _JS_PANEL
    + """
  const panel = panelFor(path);
  if (!panel || !panel.content.model || !panel.sessionContext) return {phase: 'loading'};
  const session = panel.sessionContext.session;
  const kernel = session && session.kernel;
  const cells = panel.content.model.cells;
  let code = 0, pending = 0;
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code' || !c.sharedModel.getSource().trim()) continue;  // empty cells never run
    code++;
    if (c.executionCount === null || c.executionCount === undefined) pending++;
  }
  const running = Array.from(panel.node.querySelectorAll('.jp-InputPrompt'))
    .filter(e => e.textContent.includes('*')).length;  // [*]: queued or running
  return {phase: 'ready', kernel: kernel ? kernel.status : 'none', code, pending, running};
}"""
)

# "Run all" acts on the current notebook: activate it, then start it without waiting for the run.
_JS_RUN_ALL = (
    "(path) => {"
    + _JS_PANEL
    + """
  const panel = panelFor(path);
  window.jupyterapp.shell.activateById(panel.id);
  window.jupyterapp.commands.execute('notebook:run-all-cells');
  return true;
}"""
)

# One entry per code cell: the model's outputs (error outputs, widget views) and what the DOM shows.
# data-vitgan-cell lets Python find a cell's node by its index (only the checked notebook is marked).
_JS_CELLS = (
    "([path, failures, mime]) => {"
    + _JS_PANEL
    + """
  document.querySelectorAll('[data-vitgan-cell]').forEach(e => e.removeAttribute('data-vitgan-cell'));
  const panel = panelFor(path);
  const cells = panel.content.model.cells;
  const out = [];
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    const node = panel.content.widgets[i].node;
    node.setAttribute('data-vitgan-cell', String(i));
    const errors = [];
    let views = 0;
    for (let j = 0; j < c.outputs.length; j++) {
      const o = c.outputs.get(j).toJSON();
      if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
      if (o.data && o.data[mime]) views++;
    }
    const area = node.querySelector('.jp-Cell-outputArea');
    const text = area ? area.innerText : '';
    // A rendered ipywidgets view has a widget-* class; the failure placeholder has only 'jupyter-widgets'.
    const rendered = area ? Array.from(area.querySelectorAll('.jupyter-widgets'))
      .filter(e => Array.from(e.classList).some(k => k.startsWith('widget-'))).length : 0;
    out.push({
      index: i, count: c.executionCount, empty: !c.sharedModel.getSource().trim(), errors, views, rendered,
      failures: failures.filter(f => text.includes(f)),
      // Lab renders error outputs (and tracebacks inside Output widgets) as stderr-typed text.
      stderr: area ? Array.from(area.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]'))
        .map(e => e.innerText)
        .filter(t => t.includes('Traceback') || /^\\w+(Error|Exception)\\b/m.test(t)) : [],
      controls: area ? area.querySelectorAll('.widget-slider .noUi-handle, button.widget-button').length : 0,
    });
  }
  return out;
}"""
)

_JS_CLOSE = (
    "async (path) => {"
    + _JS_PANEL
    + """
  const panel = panelFor(path);
  if (!panel) return;
  panel.context.model.dirty = false;  // never offer to save the outputs into the lesson
  await Promise.race([panel.sessionContext.shutdown(), new Promise(r => setTimeout(r, 10000))]);
  panel.close();
}"""
)

_JS_NOTEBOOK_HEIGHT = (
    "(path) => {"
    + _JS_PANEL
    + """
  const panel = panelFor(path);
  const s = panel.node.querySelector('.jp-WindowedPanel-outer') || panel.content.node;
  s.scrollTop = 0;  // the shot starts at the notebook's first cell
  return s.getBoundingClientRect().top + s.scrollHeight + 40;
}"""
)

_HIDE_CONTROLS_CSS = (
    "[data-vitgan-hide] .widget-inline-hbox, [data-vitgan-hide] .widget-button"
    " { visibility: hidden !important; }"
)


def _dismiss_dialogs(page: Any) -> None:
    # Whatever dialog still appears (e.g. a kernel choice) would sit over the notebook: accept its default.
    for button in page.locator(".jp-Dialog .jp-mod-accept").all():
        try:
            button.click(timeout=2000)
        except Exception:  # it closed by itself; nothing to dismiss
            pass


def _state(page: Any, path: str) -> dict:
    try:
        return page.evaluate(_JS_STATE, path)
    except Exception as e:  # the page is still navigating (token login redirect): not ready yet
        if "context was destroyed" in str(e) or "navigat" in str(e):
            return {"phase": "navigating"}
        raise


def _wait_all(pages: dict[str, Any], done: Any, what: str, deadline: Deadline, timeout: float) -> dict:
    """Poll ``_JS_STATE`` of every notebook (path -> its page) until ``done(path, state)`` holds for all."""
    end = time.monotonic() + deadline.left(timeout)
    while True:
        for page in pages.values():
            _dismiss_dialogs(page)
        states = {path: _state(page, path) for path, page in pages.items()}
        if all(done(path, st) for path, st in states.items()):
            return states
        if time.monotonic() > end:
            raise TimeoutError(f"{what} took longer than {timeout:.0f} s: {states}")
        time.sleep(0.5)


def _output_signature(cell: Any) -> bytes:
    """Pixels of a cell's output area with the controls hidden, so that only the output is compared."""
    cell.evaluate("n => n.setAttribute('data-vitgan-hide', '')")
    try:
        return cell.locator(".jp-Cell-outputArea").screenshot(animations="disabled", timeout=10000)
    finally:
        cell.evaluate("n => n.removeAttribute('data-vitgan-hide')")


def _wait_for_change(page: Any, path: str, cell: Any, before: bytes, deadline: Deadline) -> bool:
    """True once the output differs from ``before`` and has settled; False if it settles unchanged."""
    end = time.monotonic() + deadline.left(30)
    idle_polls = 0
    while time.monotonic() < end:
        time.sleep(0.4)
        now = _output_signature(cell)
        if now != before:
            for _ in range(20):  # settle: the redraw (clear_output(wait=True), a new figure) is finished
                time.sleep(0.4)
                again = _output_signature(cell)
                if again == now and page.evaluate(_JS_STATE, path)["kernel"] == "idle":
                    break
                now = again
            return True
        idle_polls = idle_polls + 1 if page.evaluate(_JS_STATE, path)["kernel"] == "idle" else 0
        if idle_polls >= 8:  # ~3 s of an idle kernel and the same pixels: nothing is coming
            return False
    return False


def _interact(page: Any, path: str, index: int, deadline: Deadline, report: LessonReport) -> None:
    """Move every slider (ArrowRight x3 on its handle) and press every button; the output must change."""
    cell = page.locator(f'[data-vitgan-cell="{index}"]')
    controls = [("slider", h) for h in cell.locator(".widget-slider .noUi-handle").all()[:4]]
    controls += [("button", b) for b in cell.locator("button.widget-button").all()[:4]]
    for kind, control in controls:
        control.scroll_into_view_if_needed(timeout=10000)
        before = _output_signature(cell)
        if kind == "slider":
            slider = control.locator("xpath=ancestor::*[contains(@class, 'widget-slider')][1]")
            readout = slider.locator(".widget-readout")
            old = readout.inner_text(timeout=5000)
            control.focus(timeout=5000)
            for _ in range(3):
                page.keyboard.press("ArrowRight")
            new = readout.inner_text(timeout=5000)
            if new == old:
                report.problems.append(f"cell {index}: the slider did not move on ArrowRight (still {old})")
                continue
            what = f"moving the slider from {old} to {new}"
        else:
            control.click(timeout=5000)
            what = "pressing the button"
        report.interactions += 1
        if not _wait_for_change(page, path, cell, before, deadline):
            report.problems.append(f"cell {index}: {what} did not change the displayed output")


def _inspect(page: Any, path: str, report: LessonReport, deadline: Deadline) -> None:
    """Collect the problems a learner would see in the (active, fully run) notebook ``path``."""
    # Views in a tab that was hidden while it ran render once it is shown: give them a bounded while.
    end = time.monotonic() + deadline.left(12)
    while True:
        cells = page.evaluate(_JS_CELLS, [path, list(WIDGET_FAILURES), WIDGET_VIEW_MIME])
        if all(c["rendered"] or not c["views"] for c in cells) or time.monotonic() > end:
            break
        time.sleep(0.5)
    for info in cells:
        i = info["index"]
        report.problems += [f"cell {i} ended in an error: {error}" for error in info["errors"]]
        if not info["errors"]:  # tracebacks shown by an Output widget (e.g. an interact that raised)
            report.problems += [
                f"cell {i} shows a traceback: {t.strip().splitlines()[-1]}" for t in info["stderr"]
            ]
        report.problems += [f"cell {i} shows {f!r} instead of its widget" for f in info["failures"]]
        report.widget_views += info["views"]
        if info["views"] and not info["rendered"]:
            report.problems.append(f"cell {i}: {info['views']} widget view(s) in its output, none rendered")
    not_run = [c["index"] for c in cells if c["count"] is None and not c["empty"]]
    if not_run:
        report.problems.append(f"cells {not_run} never ran (no execution count; 'run all' stops at an error)")
    for info in cells:
        if info["rendered"] and info["controls"] and not info["failures"]:
            _interact(page, path, info["index"], deadline, report)


def _screenshot(page: Any, path: str, target: Path) -> None:
    # JupyterLab scrolls inside its notebook panel, so full_page alone shows one viewport: make the
    # viewport as tall as the notebook first (capped, for very long lessons), then restore it.
    height = page.evaluate(_JS_NOTEBOOK_HEIGHT, path)
    page.set_viewport_size({"width": 1280, "height": int(min(max(height, 900), 16000))})
    try:
        time.sleep(1.0)  # Lab re-lays out on resize
        target.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(target), full_page=True, timeout=30000)
    finally:
        page.set_viewport_size({"width": 1280, "height": 900})


def check_lessons(
    context: Any,
    lab: LabServer,
    notebooks: list[Path],
    screenshot_dir: Path,
    deadline: Deadline,
    run_timeout: float = 150.0,
) -> list[LessonReport]:
    """Open ``notebooks`` (under the server's root) in JupyterLab, run them, and check what they show.

    All notebooks run at once (one kernel each) to use the waiting time; then each is checked in turn:
    cells that did not run or ended in an error, widget views that did not render ("Error displaying
    widget", "Loading widget..."), and sliders or buttons that do not change the output. Problems are
    collected, not raised, so one report names everything a learner would meet. A full-page screenshot
    of each goes to ``screenshot_dir/NAME.png``. Kernels are shut down and the notebooks closed unsaved.
    """
    start = time.monotonic()
    rels = [Path(nb).resolve().relative_to(lab.root_dir.resolve()).as_posix() for nb in notebooks]
    reports = {rel: LessonReport(name=Path(rel).stem) for rel in rels}
    # One browser tab per notebook, each with the notebook as Lab's only, active document: widget views
    # of a notebook that ran in a hidden Lab tab do not render, and "run all" acts on the current one.
    pages: dict[str, Any] = {}
    try:
        for rel in rels:
            pages[rel] = page = context.new_page()
            page.set_default_timeout(30000)
            page.goto(lab.url(f"lab/tree/{rel}"), wait_until="commit", timeout=deadline.left(90) * 1000)
        # Kernels started (autoStartDefaultKernel) and idle: only then is "run all" meaningful.
        _wait_all(pages, lambda p, st: st.get("kernel") == "idle", "starting the kernels", deadline, 120)
        opened = time.monotonic()
        for rel, page in pages.items():
            page.evaluate(_JS_RUN_ALL, rel)
        time.sleep(1.0)  # let the first cells go busy before polling for idle
        quiet_since: dict[str, float] = {}

        def finished(path: str, st: dict) -> bool:
            # Done: idle, nothing queued, every non-empty code cell counted; or idle for 4 s with cells
            # left uncounted (an error stopped "run all"; _inspect reports them).
            if st.get("kernel") != "idle" or st.get("running"):
                quiet_since.pop(path, None)
                return False
            since = quiet_since.setdefault(path, time.monotonic())
            return time.monotonic() - since > (0.5 if st.get("pending") == 0 else 4.0)

        _wait_all(pages, finished, "running the notebooks", deadline, run_timeout)
        ran = time.monotonic()
        for rel, page in pages.items():
            report = reports[rel]
            report.phases = {"open": opened - start, "run": ran - opened}
            t0 = time.monotonic()
            page.bring_to_front()
            page.add_style_tag(content=_HIDE_CONTROLS_CSS)  # now: the token login redirects the page early on
            _inspect(page, rel, report, deadline)
            t1 = time.monotonic()
            report.screenshot = screenshot_dir / f"{report.name}.png"
            _screenshot(page, rel, report.screenshot)
            page.evaluate(_JS_CLOSE, rel)
            report.phases.update(check=t1 - t0, screenshot=time.monotonic() - t1)
            report.seconds = time.monotonic() - start
    finally:
        for page in pages.values():
            page.close()
    return [reports[rel] for rel in rels]
