"""Exercise 11.1 (``ranking_accuracy``): the checker passes the reference and the solution, meets the stub
with "not implemented yet", and names each realistic mistake."""

from __future__ import annotations

import pytest
from helpers import assert_checker_contract, mistakes_are_named

from vitgan_lite.checks import check_ranking_accuracy
from vitgan_lite.diagnostics import ranking_accuracy

L11 = "11_making_the_gan_learn"


def test_checker_contract(capsys):
    assert_checker_contract(L11, {"ranking_accuracy": (check_ranking_accuracy, ranking_accuracy)}, capsys)


def threshold_at_zero(real, fake):  # the offset-dependent "accuracy"
    return float(0.5 * ((real > 0).float().mean() + (fake < 0).float().mean()))


def means_only(real, fake):
    return float(real.mean() > fake.mean())


def paired(real, fake):  # real_i against fake_i only
    n = min(len(real), len(fake))
    return float((real[:n] > fake[:n]).float().mean())


def ties_lost(real, fake):
    return float((real[:, None] > fake[None, :]).float().mean())


def ties_won(real, fake):
    return float((real[:, None] >= fake[None, :]).float().mean())


def reversed_sign(real, fake):
    return float((real[:, None] < fake[None, :]).float().mean())


def returns_tensor_matrix(real, fake):
    return (real[:, None] > fake[None, :]).float()


def wrong_normaliser(real, fake):  # divides by Br + Bf
    d = real[:, None] - fake[None, :]
    return float(((d > 0).float().sum() + 0.5 * (d == 0).float().sum()) / (len(real) + len(fake)) / 2)


test_realistic_mistakes_are_named = mistakes_are_named(
    check_ranking_accuracy,
    [
        (threshold_at_zero, r"not each logit with 0"),
        (means_only, r"ALL pairs"),
        (paired, r"ALL pairs"),
        (ties_lost, r"tie .* counts 1/2"),
        (ties_won, r"tie .* counts 1/2"),
        (reversed_sign, r"right way round"),
        (returns_tensor_matrix, r"one number"),
        (wrong_normaliser, r"number of pairs, Br \* Bf"),
    ],
)


def test_a_crash_is_reported_with_its_cause():
    def crashes(real, fake):
        return float((real @ fake > 0).float().mean())  # 1-D matmul of different lengths

    with pytest.raises(AssertionError, match="raised RuntimeError"):
        check_ranking_accuracy(crashes)
