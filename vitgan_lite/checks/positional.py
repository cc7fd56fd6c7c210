"""Checkers for lesson 02 (positional embeddings): Exercise 2.1 ``coordinate_grid`` and Exercise 2.2
``fourier_features`` (ViTGAN Sec. 4.2: the token grid behind E_pos, and E_fou's Fourier features).

Each checker compares the learner's function with ``vitgan_lite.positional`` and, when they differ,
computes what each known mistake would have returned, so that the message can name it.
Shape legend: ``n`` grid side, ``N = n * n`` tokens, ``d`` coordinate width, ``m`` frequencies.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from vitgan_lite.checks._core import checker, expect, expect_close, expect_tensor, fail, seeded
from vitgan_lite.positional import coordinate_grid as ref_coordinate_grid
from vitgan_lite.positional import fourier_features as ref_fourier_features

# Grid sides: even and odd, the 8 x 8 token grid of CIFAR-10 with patch 4, and a 4 x 4 patch of pixels.
GRID_SIZES = [3, 8, 4, 5, 2, 1]  # 1: an image that is one patch


def _grid_from_axis(axis: torch.Tensor) -> torch.Tensor:
    """Row-major (row, col) grid from a 1-D axis of values: (n,) -> (n * n, 2)."""
    n = axis.numel()
    return torch.stack([axis.repeat_interleave(n), axis.repeat(n)], dim=-1)  # (n * n, 2)


def _wrong_axes(n: int) -> list[tuple[torch.Tensor, str]]:
    """Axes a learner may build instead of ``torch.linspace(-1, 1, n)``, each with the name of the mistake."""
    k = torch.arange(n, dtype=torch.float32)  # (n,)
    return [
        (
            torch.linspace(0, 1, n),
            "your coordinates lie in [0, 1] instead of [-1, 1]: ViTGAN (and this course) centre the grid on "
            "0, so use torch.linspace(-1, 1, n) (or map c to 2 * c - 1)",
        ),
        (
            k / n,
            "your coordinates look like torch.arange(n) / n: the linspace endpoints are wrong (they run "
            f"from 0 to 1 - 1/n = {1 - 1 / n:.3f}, never reaching 1). Use torch.linspace(-1, 1, n), which "
            "includes both endpoints",
        ),
        (
            2 * k / n - 1,
            "your coordinates start at -1 but stop at 1 - 2/n (arange(n) / n rescaled, or linspace with "
            "n + 1 points and the last one dropped): the linspace endpoints are wrong. Use "
            "torch.linspace(-1, 1, n) so that the last row and column sit exactly at 1",
        ),
        (
            (2 * k + 1) / n - 1,
            "your coordinates are cell centres, -1 + 1/n ... 1 - 1/n: the linspace endpoints are wrong for "
            "this course, whose convention is torch.linspace(-1, 1, n) (corners exactly at -1 and 1, like "
            "align_corners=True)",
        ),
        (
            k,
            "your coordinates are integer indices 0 .. n-1: normalise them to [-1, 1] with "
            "torch.linspace(-1, 1, n), so that the embedding does not depend on the grid size",
        ),
    ]


def _diagnose_grid(out: torch.Tensor, n: int) -> str:
    """Name the mistake that produced ``out`` (shape (n * n, 2)) instead of the reference grid."""
    ref = ref_coordinate_grid(n)  # (N, 2)
    values = out.detach().float().flatten().unique()  # sorted distinct values of both columns
    for axis, message in _wrong_axes(n):
        if values.numel() == n and torch.allclose(values, axis, atol=1e-5):
            return message
    if values.numel() != n or not torch.allclose(values, ref[:, 1][:n], atol=1e-5):
        lo, hi = values.min().item(), values.max().item()
        return (
            f"each column should hold the {n} evenly spaced values of torch.linspace(-1, 1, {n}), from -1 "
            f"to 1; yours has {values.numel()} distinct values from {lo:.3f} to {hi:.3f}"
        )
    # The values are right, so the order is wrong.
    if torch.allclose(out, ref[:, [1, 0]], atol=1e-5):
        return (
            "your grid runs column-major, or its columns are (col, row), which is the same tensor: the first "
            "column should stay constant along each row of the grid and the second should vary fastest. "
            "Row k must be (row k // n, col k % n), as the patch tokens are ordered; with torch.meshgrid use "
            "indexing='ij' and stack [rows, cols] (indexing='xy' swaps them)"
        )
    if torch.allclose(out, ref.flip(0), atol=1e-5) or torch.allclose(out, -ref, atol=1e-5):
        return (
            "your grid starts at (1, 1) instead of (-1, -1): row 0 is the top-left token, at coordinates "
            "(-1, -1); keep linspace increasing"
        )
    return (
        "the values are right but the order is not: row k of the grid must be the (row, col) of token k, "
        "that is (axis[k // n], axis[k % n]) with axis = torch.linspace(-1, 1, n)"
    )


@checker("2.1", "coordinate_grid")
def check_coordinate_grid(coordinate_grid: Callable[[int], torch.Tensor]) -> None:
    """Check a learner's ``coordinate_grid(n) -> (n * n, 2)`` (row, col) in [-1, 1], row-major."""
    for n in GRID_SIZES:
        out = coordinate_grid(n)  # (n * n, 2) when right
        if isinstance(out, torch.Tensor) and tuple(out.shape) == (2, n * n):
            fail(
                f"coordinate_grid({n}) has shape (2, {n * n}): stack rows and cols on the LAST dim "
                "(torch.stack([rows, cols], dim=-1)) so that each token gets one (row, col) pair"
            )
        if isinstance(out, torch.Tensor) and tuple(out.shape) in ((n, n, 2), (2, n, n)):
            fail(
                f"coordinate_grid({n}) has shape {tuple(out.shape)}: flatten the grid to one row per "
                f"token, shape ({n * n}, 2), with torch.stack([rows, cols], dim=-1).reshape({n * n}, 2)"
            )
        if n == 1 and isinstance(out, torch.Tensor) and out.is_floating_point() and out.isnan().any():
            fail(
                "coordinate_grid(1) contains NaN: a formula like 2 * i / (n - 1) - 1 divides by zero for a "
                "grid of one patch. torch.linspace(-1, 1, n) handles n = 1 (it gives [-1])"
            )
        expect_tensor(out, (n * n, 2), f"coordinate_grid({n})")
        expect(
            out.is_floating_point(),
            f"coordinate_grid({n}) should be a float tensor (the coordinates feed a Linear layer), got "
            f"{out.dtype}",
        )
        ref = ref_coordinate_grid(n)  # (N, 2)
        if not torch.allclose(out.float(), ref, atol=1e-5):
            fail(f"for n = {n}: {_diagnose_grid(out.float(), n)}")
    # Defining property: token k of patchify sits at grid row k // n, col k % n (ARCHITECTURE.md).
    n = 8
    grid = coordinate_grid(n).float()  # (64, 2)
    k = torch.tensor([0, 1, 9, 27, 63])  # (5,) a few token indices
    expect_close(
        grid[k],
        torch.linspace(-1, 1, n)[torch.stack([k // n, k % n], dim=-1)],
        "token k must sit at (row k // n, col k % n), in the same order as patchify's tokens",
    )


def _gamma(v: torch.Tensor, B: torch.Tensor, two_pi: bool = True, order: str = "sincos") -> torch.Tensor:
    """Variants of gamma(v) for diagnosis: (..., d), (m, d) -> (..., 2m) or (..., m)."""
    phase = (2 * math.pi if two_pi else 1.0) * (v @ B.T)  # (..., m)
    parts = {"sin": torch.sin(phase), "cos": torch.cos(phase)}
    if order == "interleaved":
        return torch.stack([parts["sin"], parts["cos"]], dim=-1).flatten(-2)  # (..., 2m)
    if order in parts:
        return parts[order]  # (..., m)
    return torch.cat([parts[order[:3]], parts[order[3:]]], dim=-1)  # (..., 2m)


def _diagnose_fourier(out: torch.Tensor, v: torch.Tensor, B: torch.Tensor) -> str:
    """Name the mistake that produced ``out`` instead of gamma(v)."""
    m, d = B.shape
    fix_cat = "return torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1) with phase = 2 * pi * v @ B.T"
    if out.shape[-1] == m and out.shape[:-1] == v.shape[:-1]:
        for only in ("sin", "cos"):
            for two_pi in (True, False):
                if torch.allclose(out, _gamma(v, B, two_pi, only), atol=1e-4):
                    return (
                        f"you return only the {only} half, {m} features instead of {2 * m}: gamma(v) "
                        f"concatenates sin AND cos, [sin(2 pi v B^T), cos(2 pi v B^T)]; {fix_cat}"
                    )
        return f"your output has {m} features, but gamma(v) has 2m = {2 * m}: {fix_cat}"
    if v.ndim >= 2 and out.shape[0] == 2 * v.shape[0] and out.shape[-1] == m:
        return f"you concatenated sin and cos along dim 0; concatenate along the LAST dim: {fix_cat}"
    if out.shape != v.shape[:-1] + (2 * m,):
        return f"gamma(v) should have shape {tuple(v.shape[:-1]) + (2 * m,)}; yours is {tuple(out.shape)}"
    candidates = [
        (
            _gamma(v, B, two_pi=False),
            "the 2*pi is missing: gamma(v) = [sin(2 pi v B^T), cos(2 pi v B^T)], so multiply the phase "
            "v @ B.T by 2 * math.pi (B holds frequencies in cycles per unit, not radians)",
        ),
        (
            _gamma(v, B, order="cossin"),
            "sin and cos are swapped: gamma(v) puts the m sines first, then the m cosines: "
            "torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1)",
        ),
        (
            _gamma(v, B, two_pi=False, order="cossin"),
            "sin and cos are swapped AND the 2*pi is missing: use phase = 2 * math.pi * v @ B.T, then "
            "torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1)",
        ),
        (
            _gamma(v, B, order="interleaved"),
            "your sines and cosines are interleaved (sin_1, cos_1, sin_2, ...): concatenate the two blocks "
            "with torch.cat([...], dim=-1) instead of stacking and flattening",
        ),
        (
            _gamma(v, B, order="sinsin"),
            "both halves are sines: the second half of gamma(v) should be cos(2 pi v B^T)",
        ),
    ]
    if m == d:  # v @ B only runs when B is square; otherwise it crashes (see check_fourier_features)
        candidates.append(
            (
                _gamma(v, B.T),
                "B is applied transposed: B has shape (m, d), one frequency vector per ROW, so the phase is "
                "v @ B.T (shape (..., m)), not v @ B",
            )
        )
    for wrong, message in candidates:
        if torch.allclose(out, wrong, atol=1e-4):
            return message
    return (
        "your features differ from gamma(v) = [sin(2 pi v B^T), cos(2 pi v B^T)]: check the phase "
        "2 * math.pi * (v @ B.T), then sin first, cos second, concatenated on the last dim"
    )


# (leading shape of v, m, d): B square first (so that v @ B runs and can be named), then batched
# leading dims, a 1-D coordinate, and 3-D coordinates.
FOURIER_CASES = [((7,), 2, 2), ((5,), 6, 2), ((3, 4), 5, 2), ((9,), 3, 1), ((2, 3), 4, 3)]


@checker("2.2", "fourier_features")
def check_fourier_features(fourier_features: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check a learner's ``fourier_features(v, B) -> (..., 2m)`` against gamma(v) of Tancik et al."""
    for seed, (lead, m, d) in enumerate(FOURIER_CASES):
        g = seeded(seed)
        v = torch.rand(*lead, d, generator=g) * 2 - 1  # (..., d) coordinates in [-1, 1]
        B = torch.randn(m, d, generator=g) * 1.5  # (m, d), B ~ N(0, sigma^2) with sigma = 1.5
        try:
            out = fourier_features(v.clone(), B.clone())  # (..., 2m) when right
        except RuntimeError as e:
            if "cannot be multiplied" in str(e) or "size mismatch" in str(e) or "must match" in str(e):
                fail(
                    f"your code raised RuntimeError: {e}. With v of shape {tuple(v.shape)} and B of shape "
                    f"({m}, {d}): B is applied transposed? Each ROW of B is one frequency vector, so the "
                    "phase is v @ B.T, shape (..., m); v @ B.T also works for any leading dims of v"
                )
            raise
        expected = ref_fourier_features(v, B)  # (..., 2m)
        what = f"fourier_features(v {tuple(v.shape)}, B {(m, d)})"
        expect(isinstance(out, torch.Tensor), f"{what} should return a tensor, got {type(out).__name__}")
        out = out.float() if out.is_floating_point() else out
        if out.shape != expected.shape or not torch.allclose(out, expected, atol=1e-5):
            fail(f"for {what}: {_diagnose_fourier(out, v, B)}")
        expect_tensor(out, tuple(expected.shape), what)
    # Defining property 1: each (sin, cos) pair lies on the unit circle, so |gamma(v)|^2 = m for every v.
    g = seeded(10)
    v = torch.rand(6, 2, generator=g) * 2 - 1  # (6, 2)
    B = torch.randn(8, 2, generator=g) * 3.0  # (8, 2)
    out = fourier_features(v, B)  # (6, 16)
    expect_close(
        out.pow(2).sum(-1),
        torch.full((6,), 8.0),
        "|gamma(v)|^2 should equal m (sin^2 + cos^2 = 1 for each frequency)",
    )
    # Defining property 2: the kernel gamma(v) . gamma(v') = sum_j cos(2 pi b_j . (v - v')) depends only on
    # v - v' (Tancik et al. 2020), so shifting both points by the same offset leaves it unchanged.
    delta = torch.tensor([0.1, -0.05])  # (2,)
    shift = torch.tensor([0.3, 0.2])  # (2,)
    k1 = (fourier_features(v, B) * fourier_features(v + delta, B)).sum(-1)  # (6,)
    k2 = (fourier_features(v + shift, B) * fourier_features(v + shift + delta, B)).sum(-1)  # (6,)
    expect_close(k1, k2, "gamma(v) . gamma(v + delta) should depend only on delta (a stationary kernel)")
    hand = torch.cos(2 * math.pi * (B @ delta)).sum().expand(6)  # (6,), sum_j cos(2 pi b_j . delta)
    expect_close(k1, hand, "gamma(v) . gamma(v + delta) should equal sum_j cos(2 pi b_j . delta)", atol=1e-4)


__all__ = ["check_coordinate_grid", "check_fourier_features"]
