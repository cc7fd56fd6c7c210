"""The lesson-02 checkers pass the reference and the solution, meet the stub kindly, reject real mistakes."""

import math

import torch
from helpers import assert_checker_contract, assert_rejects, mistakes_are_named

from vitgan_lite import positional
from vitgan_lite.checks import check_coordinate_grid, check_fourier_features

LESSON = "02_positional_embeddings"


def test_checker_contract(capsys):
    assert_checker_contract(
        LESSON,
        {
            "coordinate_grid": (check_coordinate_grid, positional.coordinate_grid),
            "fourier_features": (check_fourier_features, positional.fourier_features),
        },
        capsys,
    )


# ---- Exercise 2.1: coordinate_grid -------------------------------------------------------------------


def _grid(axis_fn, swap=False, indexing="ij"):
    """A coordinate_grid built from ``axis_fn(n)``, optionally with columns swapped or meshgrid 'xy'."""

    def f(n):
        axis = axis_fn(n)  # (n,)
        a, b = torch.meshgrid(axis, axis, indexing=indexing)  # (n, n) each
        return torch.stack([b, a] if swap else [a, b], dim=-1).reshape(n * n, 2)  # (n * n, 2)

    return f


def _linspace(n):
    return torch.linspace(-1, 1, n)


test_coordinate_grid_mistakes_are_named = mistakes_are_named(
    check_coordinate_grid,
    [
        (_grid(lambda n: torch.linspace(0, 1, n)), r"\[0, 1\] instead of \[-1, 1\]"),
        (_grid(lambda n: torch.arange(n) / n), r"arange\(n\) / n.*endpoints are wrong"),
        (_grid(lambda n: 2 * torch.arange(n) / n - 1), r"endpoints are wrong"),
        (_grid(lambda n: torch.linspace(-1, 1, n + 1)[:-1]), r"endpoints are wrong"),
        (_grid(lambda n: (2 * torch.arange(n) + 1) / n - 1), r"cell centres.*endpoints are wrong"),
        (_grid(lambda n: torch.arange(n).float()), r"integer indices"),
        (_grid(_linspace, swap=True), r"column-major.*\(col, row\)"),  # (col, row) columns
        (_grid(_linspace, indexing="xy"), r"column-major"),  # meshgrid 'xy' = column-major order
        (_grid(lambda n: torch.linspace(1, -1, n)), r"starts at \(1, 1\)"),
        # Both mistakes at once: the range is named first.
        (_grid(lambda n: torch.linspace(0, 1, n), swap=True), r"\[0, 1\] instead of \[-1, 1\]"),
        (lambda n: _grid(_linspace)(n).T, r"shape \(2, \d+\).*LAST dim"),
        (lambda n: _grid(_linspace)(n).reshape(n, n, 2), r"flatten the grid"),
        (lambda n: _grid(_linspace)(n).long(), r"float tensor"),
        (lambda n: _grid(lambda k: torch.linspace(-1, 1, k) ** 3)(n), r"evenly spaced"),
        (lambda n: _grid(_linspace)(n)[torch.randperm(n * n)], r"order is not"),
    ],
)


# ---- Exercise 2.2: fourier_features ------------------------------------------------------------------


def _phase(v, B):
    return 2 * math.pi * (v @ B.T)  # (..., m)


test_fourier_features_mistakes_are_named = mistakes_are_named(
    check_fourier_features,
    [
        (lambda v, B: torch.cat([torch.sin(v @ B.T), torch.cos(v @ B.T)], -1), r"2\*pi is missing"),
        (lambda v, B: torch.cat([torch.cos(_phase(v, B)), torch.sin(_phase(v, B))], -1), r"swapped"),
        (lambda v, B: torch.cat([torch.cos(v @ B.T), torch.sin(v @ B.T)], -1), r"swapped AND the 2\*pi"),
        (lambda v, B: torch.sin(_phase(v, B)), r"only the sin half"),
        (lambda v, B: torch.cos(_phase(v, B)), r"only the cos half"),
        (lambda v, B: torch.sin(v @ B.T), r"only the sin half"),
        (
            lambda v, B: torch.cat([torch.sin(2 * math.pi * v @ B), torch.cos(2 * math.pi * v @ B)], -1),
            r"B is applied transposed",
        ),
        (
            lambda v, B: torch.stack([torch.sin(_phase(v, B)), torch.cos(_phase(v, B))], -1).flatten(-2),
            r"interleaved",
        ),
        (lambda v, B: torch.cat([torch.sin(_phase(v, B)), torch.cos(_phase(v, B))], 0), r"along dim 0"),
        (lambda v, B: torch.cat([torch.sin(_phase(v, B)), torch.sin(_phase(v, B))], -1), r"both halves"),
        (
            lambda v, B: positional.fourier_features(v, B) * 0.5,
            r"differ from gamma",
        ),
    ],
)


def test_transposed_B_that_crashes_is_explained():
    """On a non-square B, ``v @ B`` crashes; the checker still names the mistake."""

    def wrong(v, B):
        if B.shape[0] == B.shape[1]:  # dodge the square case: only the crash is left to explain
            return positional.fourier_features(v, B)
        phase = 2 * math.pi * (v @ B)
        return torch.cat([torch.sin(phase), torch.cos(phase)], -1)

    assert_rejects(check_fourier_features, wrong, r"RuntimeError.*B is applied transposed\? .*v @ B\.T")


def test_crash_in_learner_code_is_reported_with_its_cause():
    def crashes(n):
        return torch.zeros(n).view(-1, 7)

    assert_rejects(check_coordinate_grid, crashes, r"your code raised RuntimeError")


def test_a_grid_of_one_patch_is_checked():
    def divides_by_n_minus_1(n):
        axis = torch.arange(n) * 2 / (n - 1) - 1  # NaN when n = 1
        rows, cols = torch.meshgrid(axis, axis, indexing="ij")
        return torch.stack([rows, cols], dim=-1).reshape(n * n, 2)

    assert_rejects(
        check_coordinate_grid, divides_by_n_minus_1, r"coordinate_grid\(1\) contains NaN.*linspace"
    )
