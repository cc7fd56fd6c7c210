"""Shared test helpers: get a notebook's exercise objects, and assert that a checker rejects a mistake."""

from __future__ import annotations

import re

import pytest
import torch
from PIL import Image

from tools.notebooks import load_definitions
from vitgan_lite.checks import ExerciseFailed, ExerciseNotImplemented


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


def solution(lesson: str) -> dict:
    """Definitions (functions, classes) of ``solutions/<lesson>.ipynb``."""
    return load_definitions(f"solutions/{lesson}.ipynb")


def exercise(lesson: str) -> dict:
    """Definitions of the generated ``exercises/<lesson>.ipynb`` (the stubs a learner starts from)."""
    return load_definitions(f"exercises/{lesson}.ipynb")


def assert_not_implemented(check, stub) -> None:
    """The checker meets a stub with a friendly 'not implemented yet', not a traceback from deep inside."""
    with pytest.raises(ExerciseNotImplemented, match="is not implemented yet") as info:
        check(stub)
    assert "Hint:" in str(info.value)


def assert_rejects(check, wrong, match: str) -> None:
    """The checker rejects ``wrong`` and its message names the mistake (regex ``match``)."""
    with pytest.raises(ExerciseFailed) as info:
        check(wrong)
    assert re.search(match, str(info.value), flags=re.I | re.S), (
        f"message did not name the mistake: {info.value}"
    )


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors on 2 shared cores: extra threads only add contention (training and CLI tests)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_image_folder(folder, n: int, size: int = 16, seed: int = 0):
    """``n`` random ``size`` x ``size`` PNGs in a flat folder (the data module's local-folder path)."""
    g = torch.Generator().manual_seed(seed)
    for i in range(n):
        pixels = torch.randint(0, 256, (size, size, 3), generator=g, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{i:02d}.png")
    return folder
