"""The lesson-02 checkers pass the reference and the solution, meet the stub kindly, reject real mistakes."""

import math

import numpy as np
import torch
from helpers import alternatives_pass, assert_checker_contract, assert_rejects, mistakes_are_named

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


def _step_by_division(n):
    step = 2 / (n - 1)  # ZeroDivisionError for a grid of one cell
    axis = torch.arange(n) * step - 1
    rows, cols = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([rows, cols], dim=-1).reshape(n * n, 2)


def _special_case_one(n):
    if n == 1:
        return torch.zeros(1, 2)  # "the centre of the only cell": not the course's convention
    return _grid(_linspace)(n)


def _stack_on(dim):
    def f(n):
        rows, cols = torch.meshgrid(_linspace(n), _linspace(n), indexing="ij")
        return torch.stack([rows, cols], dim=dim).reshape(n * n, 2)

    return f


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
        (_step_by_division, r"ZeroDivisionError.*n = 1.*linspace"),
        (_special_case_one, r"coordinate_grid\(1\) should be \[\[-1, -1\]\]"),
        (lambda n: _grid(_linspace)(8), r"64 rows.*hard-coded"),
        (lambda n: torch.linspace(-1, 1, n * n).unsqueeze(-1).expand(n * n, 2).clone(), r"n \* n.*meshgrid"),
        (_stack_on(0), r"stacked rows and cols on dim 0.*LAST dim"),
        (_stack_on(1), r"stacked rows and cols on dim 1.*LAST dim"),
        (_grid(lambda n: torch.linspace(-1, 1, n + 1)[1:]), r"endpoints are wrong"),
        (
            lambda n: _grid(_linspace)(n) * torch.tensor([-1.0, 1.0]),
            r"row coordinate decreases.*y pointing up",
        ),
        (lambda n: _grid(_linspace)(n).tolist(), r"torch\.Tensor, got list"),
    ],
)


def _grid_loops(n):
    axis = [-1 + 2 * i / (n - 1) if n > 1 else -1.0 for i in range(n)]
    return torch.tensor([[r, c] for r in axis for c in axis])


test_coordinate_grid_alternatives_pass = alternatives_pass(
    check_coordinate_grid,
    [
        lambda n: torch.cartesian_prod(_linspace(n), _linspace(n)).reshape(n * n, 2),
        _grid(_linspace, swap=True, indexing="xy"),  # 'xy' with the columns swapped back
        lambda n: torch.from_numpy(
            np.stack(np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n), indexing="ij"), -1).reshape(
                -1, 2
            )
        ),
        lambda n: (lambda k: torch.stack([k // n, k % n], -1).float() * 2 / max(n - 1, 1) - 1)(
            torch.arange(n * n)
        ),
        _grid_loops,
        lambda n: torch.hstack(
            [_linspace(n).repeat_interleave(n).unsqueeze(1), _linspace(n).repeat(n).unsqueeze(1)]
        ),
    ],
)


# ---- Exercise 2.2: fourier_features ------------------------------------------------------------------


def _phase(v, B):
    return 2 * math.pi * (v @ B.T)  # (..., m)


def _mm(v, B):
    phase = 2 * math.pi * torch.mm(v, B.T)  # 2-D only
    return torch.cat([torch.sin(phase), torch.cos(phase)], -1)


def _elementwise(v, B):
    phase = 2 * math.pi * v * B  # elementwise, not a matrix product
    return torch.cat([torch.sin(phase), torch.cos(phase)], -1)


def _random_B(v, B):
    B = torch.randn_like(B) * 10  # draws its own frequencies instead of using B
    return positional.fourier_features(v, B)


def _transpose_trick(v, B):
    phase = 2 * math.pi * (B @ v.permute(*reversed(range(v.ndim)))).T  # v.T: right for 2-D v only
    return torch.cat([torch.sin(phase), torch.cos(phase)], -1)


def _squeezed(v, B):
    phase = (2 * math.pi * (v @ B.T)).squeeze()
    return torch.cat([torch.sin(phase), torch.cos(phase)], -1)


def _float32_B(v, B):
    phase = 2 * math.pi * (v @ B.T.float())  # mixes dtypes when v is float64
    return torch.cat([torch.sin(phase), torch.cos(phase)], -1)


def _batch_index(v, B):
    phase = 2 * math.pi * (v[:, None, :] * B).sum(-1)  # assumes v is 2-D
    return torch.cat([torch.sin(phase), torch.cos(phase)], -1)


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
        (
            lambda v, B: torch.cat([torch.sin(math.pi * v @ B.T), torch.cos(math.pi * v @ B.T)], -1),
            r"pi \* v @ B\.T, half",
        ),
        (lambda v, B: torch.cat([torch.sin(_phase(v, B)), torch.cos(_phase(v, B))], dim=1), r"dim 1.*dim=-1"),
        (lambda v, B: torch.hstack([torch.sin(_phase(v, B)), torch.cos(_phase(v, B))]), r"hstack.*dim=-1"),
        (lambda v, B: torch.sin(_phase(v, B)) + torch.cos(_phase(v, B)), r"add sin and cos"),
        (_phase, r"phase itself"),
        (_mm, r"torch\.mm takes 2-D.*v @ B\.T"),
        (_elementwise, r"elementwise product.*v @ B\.T"),
        (_random_B, r"different features.*random"),
        (
            lambda v, B: torch.cat([torch.cos(_phase(v, B)), torch.cos(_phase(v, B))], -1),
            r"both halves are cosines",
        ),
        (_transpose_trick, r"leading dims"),
        (_squeezed, r"one frequency.*squeeze"),
        (_float32_B, r"float64.*dtype"),
        (_batch_index, r"v has two leading dims.*dim=-1 work for any number of leading dims"),
    ],
)


test_fourier_features_alternatives_pass = alternatives_pass(
    check_fourier_features,
    [
        lambda v, B: (lambda p: torch.cat([p.sin(), p.cos()], -1))(
            2 * math.pi * torch.einsum("...d,md->...m", v, B)
        ),
        lambda v, B: (lambda p: torch.cat([p.sin(), p.cos()], -1))(
            2 * torch.pi * torch.nn.functional.linear(v, B)
        ),
        lambda v, B: torch.sin(
            torch.cat([_phase(v, B), _phase(v, B) + math.pi / 2], dim=-1)
        ),  # cos as shifted sin
        lambda v, B: (lambda p: torch.cat([p.sin(), p.cos()], p.ndim - 1))(
            2 * math.pi * torch.matmul(v, B.mT)
        ),
        lambda v, B: (lambda p: torch.cat([p.sin(), p.cos()], -1))(
            2 * math.pi * (v.unsqueeze(-2) * B).sum(-1)
        ),
        lambda v, B: positional.fourier_features(v.float(), B.float()),  # float32 is fine: dtype is not fixed
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
