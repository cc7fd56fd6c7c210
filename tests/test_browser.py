"""The course in a real browser: every lesson with ipywidgets runs in JupyterLab and its widgets work.

nbval runs the lessons' code but never draws a widget; this test opens each lesson that uses ipywidgets
(found by reading notebooks/, so new widget lessons are picked up) in JupyterLab on 127.0.0.1, driven by
headless Debian Chromium through Playwright, runs all cells, and checks what a learner sees: the widget
views render, no cell ends in an error, and moving a slider changes the output. Screenshots go to
test-artifacts/browser/NAME.png. Logic: tools/browser_check.py.

Run alone: ``.venv/bin/python -m pytest -m browser tests/test_browser.py``. Without chromium or
playwright it skips, unless VITGAN_LITE_REQUIRE_BROWSER=1 (CI), where it fails with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tools import browser_check as bc

pytestmark = pytest.mark.browser

ROOT = bc.ROOT
ARTIFACTS = ROOT / "test-artifacts" / "browser"
BUDGET_S = 300.0  # one deadline for the module (~170 s used on a loaded 2-core box): everything stops in time


@pytest.fixture(scope="module")
def deadline() -> bc.Deadline:
    reason = bc.missing_requirements()
    if reason:
        if os.environ.get("VITGAN_LITE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"VITGAN_LITE_REQUIRE_BROWSER=1 but the browser test cannot run: {reason}")
        pytest.skip(reason)
    return bc.Deadline(BUDGET_S)


@pytest.fixture(scope="module")
def lab(deadline: bc.Deadline, tmp_path_factory: pytest.TempPathFactory) -> Iterator[bc.LabServer]:
    """One JupyterLab for the module, its config/settings/workspaces/runtime dirs under pytest's tmp."""
    with bc.LabServer(ROOT, tmp_path_factory.mktemp("jupyterlab"), deadline) as server:
        yield server


@pytest.fixture(scope="module")
def browser(lab: bc.LabServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium with a fresh profile; requests off loopback are aborted and must not happen."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    blocked: list[str] = []
    with sync_playwright() as playwright:
        context = bc.launch_browser(playwright, profile, blocked)
        try:
            yield context
        finally:
            context.close()
    shutil.rmtree(profile, ignore_errors=True)
    if blocked:  # the Colab badges in the lessons' first cells: refused, never fetched
        print(f"blocked {len(blocked)} off-loopback request(s): {sorted(set(blocked))}")


def _print(reports: list[bc.LessonReport]) -> None:
    for r in reports:
        phases = ", ".join(f"{k} {v:.0f} s" for k, v in r.phases.items())
        print(f"{r.name}: {r.widget_views} widget view(s), {r.interactions} interaction(s), {phases}")
        print(f"  screenshot: {r.screenshot}")
        for problem in r.problems:
            print(f"  PROBLEM: {problem}")


def test_discovery_finds_the_widget_lessons():
    lessons = [p.name for p in bc.widget_lessons()]
    assert "02_positional_embeddings.ipynb" in lessons  # the sigma slider
    assert "01_patches.ipynb" not in lessons  # no widgets there


@pytest.fixture(scope="module")
def reports(browser: Any, lab: bc.LabServer, deadline: bc.Deadline) -> Iterator[dict[str, bc.LessonReport]]:
    """Every widget lesson and a deliberately broken copy of lesson 02, run together in one JupyterLab.

    One run saves minutes on a 2-core machine. The broken copy lives in the git-ignored test-artifacts/
    (the server only serves the repository) for the duration of the run, and is removed afterwards.
    """
    lessons = bc.widget_lessons()
    scratch = ARTIFACTS / f"scratch-{uuid.uuid4().hex[:8]}"
    scratch.mkdir(parents=True)
    try:
        broken = scratch / "02_broken_widgets.ipynb"
        _broken_copy(broken)
        before = {p: bc.file_digest(p) for p in lessons}
        checked = bc.check_lessons(browser, lab, [*lessons, broken], ARTIFACTS, deadline)
        after = {p: bc.file_digest(p) for p in lessons}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _print(checked)
    assert after == before, "the browser session modified a lesson"
    yield {r.name: r for r in checked}


def test_widget_lessons_work_in_a_browser(reports: dict[str, bc.LessonReport]):
    lessons = [p.stem for p in bc.widget_lessons()]
    assert lessons, "no lesson uses ipywidgets: discovery is broken"
    for name in lessons:
        report = reports[name]
        assert not report.problems, f"{name} is broken in the browser: {report.problems}"
        assert report.widget_views >= 1 and report.interactions >= 1, f"{name}: no widget was exercised"
        assert report.screenshot is not None and report.screenshot.stat().st_size > 10_000


def _broken_copy(target: Path) -> None:
    """Lesson 02 plus the classic ways a widget breaks for a learner (each must be reported)."""
    nb = nbformat.read(ROOT / "notebooks" / "02_positional_embeddings.ipynb", as_version=4)
    nb.cells += [
        nbformat.v4.new_code_cell(  # an interact whose function raises: traceback in the Output widget
            "def boom(k: int = 1) -> None:\n    raise ZeroDivisionError('broken on purpose')\n\n\n"
            "widgets.interact(boom, k=widgets.IntSlider(value=1, min=0, max=9));"
        ),
        nbformat.v4.new_code_cell(  # a view of a model the kernel never sent
            "from IPython.display import display\n\n"
            "display({'application/vnd.jupyter.widget-view+json': "
            "{'version_major': 2, 'version_minor': 0, 'model_id': '0' * 32}}, raw=True)"
        ),
        nbformat.v4.new_code_cell(  # a slider whose output never changes
            "widgets.interact(lambda k=1: print('the same text for every k'), "
            "k=widgets.IntSlider(value=1, min=0, max=9));"
        ),
        nbformat.v4.new_code_cell("raise ValueError('the last cell fails on purpose')"),
    ]
    nbformat.write(nb, target)


def test_a_broken_widget_is_reported(reports: dict[str, bc.LessonReport]):
    text = "\n".join(reports["02_broken_widgets"].problems)
    n = len(nbformat.read(ROOT / "notebooks" / "02_positional_embeddings.ipynb", as_version=4).cells)
    assert f"cell {n} shows a traceback: ZeroDivisionError: broken on purpose" in text
    assert re.search(rf"cell {n + 1} shows '(Error displaying widget|Loading widget\.\.\.)'", text)
    assert f"cell {n + 2}: moving the slider from 1 to 4 did not change the displayed output" in text
    assert f"cell {n + 3} ended in an error: ValueError: the last cell fails on purpose" in text
    assert not re.search(rf"cell ({'|'.join(map(str, range(n)))})\b", text), "the lesson's own cells are fine"
