"""checks._core: a learner's crash becomes a hint naming its cause; staged hints; reveal after a pass."""

from __future__ import annotations

import pytest
import torch
from helpers import assert_rejects

from vitgan_lite.checks import check_d_step, check_patchify
from vitgan_lite.checks._core import (
    ExerciseFailed,
    ExerciseNotImplemented,
    checker,
    crash_message,
    expect_close,
    stage,
)


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


# ---- staged hints and the reveal of the course's version -------------------------------------------

HINTS = ("the idea, made concrete", "the shape of the code: `y = ... * x`")


@checker("99.2", "toy with hints", hints=HINTS, reference="vitgan_lite.patches:patchify")
def check_toy_with_hints(fn) -> None:
    expect_close(fn(torch.ones(2)), torch.full((2,), 2.0), "fn(x) should be 2 * x")


def test_a_failure_points_to_the_hints_and_hint_goes_one_level_deeper_per_call(capsys):
    from vitgan_lite.checks import hint

    assert_rejects(check_toy_with_hints, lambda x: x, r"should be 2 \* x.*Stuck\? Run `hint\('99.2'\)`")
    first = hint()  # the exercise checked last
    assert "Hint 1" in first and HINTS[0] in first and "hint 2 of 2" in first
    second = hint("99.2")
    assert "Hint 2" in second and HINTS[1] in second and "the last hint" in second
    assert "Hint 2" in hint("99.2")  # stays at the last level; never the answer
    assert HINTS[0] in hint("99.2", level=1)
    with pytest.raises(ValueError, match="hints 1 to 2"):
        hint("99.2", level=3)
    with pytest.raises(ValueError, match="no exercise '98.7'"):
        hint("98.7")
    assert "Hint 1" in capsys.readouterr().out


def test_reveal_waits_for_a_passing_check(capsys):
    from vitgan_lite.checks import reveal
    from vitgan_lite.checks._core import EXERCISES

    EXERCISES["99.2"].passed = False
    assert reveal("99.2") is None
    assert "has not passed its checker" in capsys.readouterr().out
    assert check_toy_with_hints(lambda x: 2 * x)
    assert "all checks passed" in capsys.readouterr().out
    source = reveal("99.2")
    assert source.startswith("def patchify(") and "vitgan_lite.patches.patchify" in capsys.readouterr().out
    assert reveal("99.2", force=True) == source


def test_every_exercise_has_staged_hints_and_a_reference_that_resolves():
    from vitgan_lite.checks._core import EXERCISES, reference_source

    lessons = {n: e for n, e in EXERCISES.items() if not n.startswith("99.")}
    assert len(lessons) == 27
    for number, record in lessons.items():
        assert len(record.hints) >= 2, f"exercise {number} needs two staged hints"
        assert all(len(h) > 40 for h in record.hints), f"exercise {number}: a hint too short to help"
        assert "def " in reference_source(number) or "class " in reference_source(number), number


def test_the_stub_message_gives_the_goal_and_points_to_the_hints():
    def stub(x, P):
        raise NotImplementedError("Exercise 1.1: cut the images into patches")

    with pytest.raises(
        ExerciseNotImplemented, match=r"Goal: cut the images into patches\. For a hint, run `hint\('1.1'\)`"
    ):
        check_patchify(stub)


def test_every_exercise_has_a_mutation_suite_and_correct_alternatives():
    """The suite tools/checker_mutants.py counts: each checker meets >= 15 realistic wrong answers (each
    refused with its own named message, tested in test_checks_*.py) and >= 3 other correct ways to write
    it."""
    from tools.checker_mutants import collect
    from vitgan_lite.checks._core import EXERCISES

    suite = collect()
    lessons = sorted(n for n in EXERCISES if not n.startswith("99."))
    assert sorted(n for n in suite if not n.startswith("99.")) == lessons
    for number in lessons:
        _, mutants, alternatives = suite[number]
        assert len(mutants) >= 15, f"exercise {number}: only {len(mutants)} wrong answers"
        assert len(alternatives) >= 3, f"exercise {number}: only {len(alternatives)} correct alternatives"
