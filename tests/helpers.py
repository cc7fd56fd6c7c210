"""What the tests share: notebook definitions, checker assertions, tiny sizes, gradient checks, images.

Import from here (``from helpers import ...``); ``conftest.py`` holds only pytest fixtures.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
import torch
from PIL import Image
from torch import nn

from tools.notebooks import load_definitions
from vitgan_lite.checks import ExerciseFailed, ExerciseNotImplemented
from vitgan_lite.config import Config, get_config

# ---- notebooks and checkers -------------------------------------------------------------------------


def solution(lesson: str) -> dict:
    """Definitions (functions, classes) of ``solutions/<lesson>.ipynb``."""
    return load_definitions(f"solutions/{lesson}.ipynb")


def exercise(lesson: str) -> dict:
    """Definitions of the generated ``exercises/<lesson>.ipynb`` (the stubs a learner starts from)."""
    return load_definitions(f"exercises/{lesson}.ipynb")


def assert_not_implemented(check: Callable[[Any], Any], stub: Any) -> None:
    """The checker meets a stub with a friendly 'not implemented yet', not a traceback from deep inside."""
    with pytest.raises(ExerciseNotImplemented, match="is not implemented yet") as info:
        check(stub)
    assert "Goal:" in str(info.value)


def assert_rejects(check: Callable[[Any], Any], wrong: Any, match: str) -> None:
    """The checker rejects ``wrong`` and its message names the mistake (regex ``match``)."""
    with pytest.raises(ExerciseFailed) as info:
        check(wrong)
    assert re.search(match, str(info.value), flags=re.I | re.S), (
        f"message did not name the mistake: {info.value}"
    )


def mistakes_are_named(
    check: Callable[[Any], Any], cases: Sequence[tuple[Any, str]]
) -> Callable[[Any, str], None]:
    """A test that ``check`` rejects each ``(wrong, match)`` of ``cases`` and names the mistake.

    Assign it to a test name in the test module: ``test_foo_mistakes_are_named = mistakes_are_named(
    check_foo, [(wrong_foo, r"regex"), ...])``, one parametrized test case per ``(wrong, match)``.
    """

    @pytest.mark.parametrize("wrong,match", cases)
    def test(wrong: Any, match: str) -> None:
        assert_rejects(check, wrong, match)

    test.mutants = (check, list(cases))  # type: ignore[attr-defined]  # counted by tools/checker_mutants.py
    return test


def alternatives_pass(check: Callable[[Any], Any], alternatives: Sequence[Any]) -> Callable[[Any], None]:
    """A test that ``check`` accepts each correct alternative of ``alternatives`` (another way to write it).

    Assign it to a test name: ``test_foo_alternatives_pass = alternatives_pass(check_foo, [alt1, alt2])``.
    """

    @pytest.mark.parametrize("alternative", alternatives)
    def test(alternative: Any) -> None:
        assert check(alternative)

    test.alternatives = (check, list(alternatives))  # type: ignore[attr-defined]
    return test


def assert_checker_contract(
    lesson: str, cases: Mapping[str, tuple[Callable[[Any], Any], Any]], capsys: Any
) -> None:
    """Each checker passes the package's reference and the lesson's solution, and calls the stub unfinished.

    ``cases`` maps a name defined in ``solutions/<lesson>.ipynb`` to ``(check, reference)``.
    """
    sol, ex = solution(lesson), exercise(lesson)
    for name, (check, reference) in cases.items():
        assert check(reference), f"{name}: the package's reference failed its own checker"
        assert check(sol[name]), f"{name}: the solution notebook failed the checker"
        assert "all checks passed" in capsys.readouterr().out
        assert_not_implemented(check, ex[name])


# ---- tiny sizes -------------------------------------------------------------------------------------

# A training run that takes about a second on one CPU thread: tiny-cpu's recipe at 16 x 16 pixels.
TINY_RUN: dict[str, Any] = dict(
    image_size=16,
    latent_dim=16,
    style_dim=16,
    mapping_layers=1,
    g_dim=16,
    g_depth=1,
    g_num_heads=2,
    g_fourier_dim=16,
    g_decoder_dim=16,
    d_dim=16,
    d_depth=1,
    d_num_heads=2,
    batch_size=4,
    steps=6,
    log_every=1,
    sample_every=2,
    ckpt_every=2,
    keep_ckpts=2,
    fid_num_samples=0,
    cfd_every=0,
)


def tiny_config(**overrides: Any) -> Config:
    """``tiny-cpu`` shrunk to :data:`TINY_RUN`, with ``overrides``."""
    return get_config("tiny-cpu", **{**TINY_RUN, **overrides})


def tiny_cli_flags(**overrides: Any) -> list[str]:
    """The same run as :func:`tiny_config` on the command line: ``--preset tiny-cpu --set k=v ...``."""
    flags = ["--preset", "tiny-cpu", "--device", "cpu"]
    for key, value in {**TINY_RUN, **overrides}.items():
        flags += ["--set", f"{key}={value}"]
    return flags


# ---- gradients --------------------------------------------------------------------------------------


def assert_grads_reach_every_parameter(
    module: nn.Module, allow_zero: tuple[str, ...] = (), tol: float = 1e-4
) -> None:
    """After a backward pass: every parameter has a finite gradient that is not all zero.

    ``allow_zero`` names parameters whose true gradient is zero (e.g. the shared bias of tied W_q = W_k,
    which cancels in every L2 logit): for those, only float32 rounding (< ``tol``) may be left.
    """
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} got a non-finite gradient"
        if name in allow_zero:
            assert p.grad.abs().max() < tol, f"{name} should get (almost) no gradient, got {p.grad}"
        else:
            assert p.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


# ---- data -------------------------------------------------------------------------------------------


def write_image_folder(folder, n: int, size: int = 16, seed: int = 0):
    """``n`` random ``size`` x ``size`` PNGs in a flat folder (the data module's local-folder path)."""
    g = torch.Generator().manual_seed(seed)
    for i in range(n):
        pixels = torch.randint(0, 256, (size, size, 3), generator=g, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{i:02d}.png")
    return folder
