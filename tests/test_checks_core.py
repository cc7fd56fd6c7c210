"""checks._core: a learner's crash becomes a hint that names the likely cause and the check that ran."""

from __future__ import annotations

import pytest
import torch
from helpers import assert_rejects

from vitgan_lite.checks import check_d_step, check_patchify
from vitgan_lite.checks._core import ExerciseFailed, checker, crash_message, stage


@checker("99.1", "toy")  # a number no lesson uses: the registry of exercises is global
def check_toy(fn) -> None:
    with stage("fn on x of shape (2, 3, 4)"):
        fn(torch.zeros(2, 3, 4))


def view_after_permute(x):
    return x.permute(0, 2, 1).view(2, -1)


def hard_coded_size(x):
    return x.reshape(2, 3, 5)


def inner_sizes_differ(x):
    return x @ torch.zeros(5, 2)


def no_broadcast(x):
    return x + torch.zeros(2, 3, 5)


def missing_axis(x):
    return x.sum(dim=3)


def no_graph(x):
    with torch.no_grad():
        y = (x * 2).sum()
    y.backward()


def grad_is_none(x):
    return x.grad.sum()


def wrong_signature(x, extra):
    return x


def mixed_dtypes(x):
    return x @ torch.zeros(4, 2, dtype=torch.float64)


@pytest.mark.parametrize(
    "fn,cause",
    [
        (view_after_permute, r"`\.view` after `permute`"),
        (hard_coded_size, r"hard-coding"),
        (inner_sizes_differ, r"inner sizes differ"),
        (no_broadcast, r"do not broadcast"),
        (missing_axis, r"axis that does not exist"),
        (no_graph, r"no graph.*no_grad"),
        (grad_is_none, r"something is None.*\.grad"),
        (wrong_signature, r"signature the exercise asks for"),
        (mixed_dtypes, r"mixed dtypes"),
    ],
)
def test_a_crash_names_its_likely_cause_and_the_check(fn, cause):
    with pytest.raises(ExerciseFailed) as info:
        check_toy(fn)
    msg = str(info.value)
    assert "Exercise 99.1 (toy): your code raised" in msg
    assert (
        f"while checking fn on x of shape (2, 3, 4), in the call {fn.__name__}(tensor (2, 3, 4) float32"
        in msg
    ), msg
    assert "Likely cause:" in msg and __import__("re").search(cause, msg), msg
    assert info.value.__cause__ is not None, "the learner's traceback must stay attached"


def test_an_unknown_crash_still_gets_the_generic_sentence():
    msg = crash_message(KeyError("weights"))
    assert msg.startswith("your code raised KeyError") and "Likely cause" not in msg
    assert "Read the traceback above" in msg


def test_real_checkers_turn_crashes_into_hints():
    def patchify_with_view(x, P):
        B, C, H, W = x.shape
        return x.reshape(B, C, H // P, P, W // P, P).permute(0, 2, 4, 1, 3, 5).view(B, -1, C * P * P)

    assert_rejects(
        check_patchify,
        patchify_with_view,
        r"in the call patchify_with_view\(tensor \(\d+, 3, \d+, \d+\) float32, \d+\)\. "
        r"Likely cause: `\.view` after `permute`",
    )

    def d_step_old_signature(G, D, reals, opt_d, *, policy="color", generator=None):
        return {}

    assert_rejects(check_d_step, d_step_old_signature, r"signature the exercise asks for")
