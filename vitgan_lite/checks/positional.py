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

from vitgan_lite.checks._core import (
    ExerciseFailed,
    checker,
    expect,
    expect_close,
    expect_tensor,
    fail,
    seeded,
)
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
        (
            torch.linspace(-1, 1, n + 1)[1:],
            "your coordinates stop at 1 but start at -1 + 2/n (linspace with n + 1 points and the first "
            "one dropped): the linspace endpoints are wrong. Use torch.linspace(-1, 1, n), from -1 to 1",
        ),
    ]


def _diagnose_grid(out: torch.Tensor, n: int) -> str:
    """Name the mistake that produced ``out`` (shape (n * n, 2)) instead of the reference grid."""
    ref = ref_coordinate_grid(n)  # (N, 2)
    values = out.detach().float().flatten().unique()  # sorted distinct values of both columns
    if n > 1 and values.numel() == n * n and torch.allclose(values, torch.linspace(-1, 1, n * n), atol=1e-5):
        return (
            f"your grid has {n * n} different coordinate values, torch.linspace(-1, 1, n * n): each axis "
            f"has only n = {n} values, torch.linspace(-1, 1, n); the n * n rows come from pairing every row "
            "value with every column value (torch.meshgrid(axis, axis, indexing='ij'))"
        )
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
    rows, cols = ref[:, 0].view(n, n), ref[:, 1].view(n, n)  # (n, n) each
    for dim, shape in ((0, "(2, n, n)"), (1, "(n, 2, n)")):
        if torch.allclose(out, torch.stack([rows, cols], dim=dim).reshape(n * n, 2), atol=1e-5):
            return (
                f"you stacked rows and cols on dim {dim}, shape {shape}, then reshaped to (n * n, 2): a "
                "reshape does not move values, so your pairs mix values of one coordinate. Stack on the "
                "LAST dim, torch.stack([rows, cols], dim=-1), then reshape to (n * n, 2)"
            )
    if torch.allclose(out, ref * torch.tensor([-1.0, 1.0]), atol=1e-5):
        return (
            "your row coordinate decreases down the grid (y pointing up, as in a plot): in an image row 0 "
            "is the top, and the top-left token sits at (-1, -1); keep the row axis increasing, "
            "torch.linspace(-1, 1, n)"
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


@checker(
    "2.1",
    "coordinate_grid",
    hints=(
        "Build one axis of n values from -1 to 1, both ends included: torch.linspace(-1, 1, n) (it also "
        "handles n = 1). Pair every row value with every column value with torch.meshgrid(axis, axis, "
        "indexing='ij'): 'ij' makes the first tensor vary down the grid (rows), the second along it "
        "(columns). Stack the two on a new LAST axis, (n, n, 2), and flatten the grid to (n * n, 2): row "
        "k is then (row k // n, col k % n), the order of patchify's tokens.",
        "def coordinate_grid(n):\n    axis = torch.linspace(..., ..., n)\n"
        "    rows, cols = torch.meshgrid(axis, axis, indexing=...)\n"
        "    return torch.stack([..., ...], dim=...).reshape(..., 2)",
    ),
    reference="vitgan_lite.positional:coordinate_grid",
)
def check_coordinate_grid(coordinate_grid: Callable[[int], torch.Tensor]) -> None:
    """Check a learner's ``coordinate_grid(n) -> (n * n, 2)`` (row, col) in [-1, 1], row-major."""
    for n in GRID_SIZES:  # n = 1 comes last: a crash there is about the grid of one cell
        try:
            out = coordinate_grid(n)  # (n * n, 2) when right
        except (NotImplementedError, ExerciseFailed):
            raise
        except Exception as e:
            if n != 1:
                raise
            fail(
                f"your code raised {type(e).__name__}: {str(e)[:200]} for n = 1 (it ran for n = 2 .. 8): a "
                "grid of one cell (an image that is a single patch) must work too. A formula like "
                "2 / (n - 1) divides by zero there; torch.linspace(-1, 1, n) handles n = 1 (it gives [-1])"
            )
        if isinstance(out, torch.Tensor) and tuple(out.shape) == (2, n * n) and n > 1:
            fail(
                f"coordinate_grid({n}) has shape (2, {n * n}): stack rows and cols on the LAST dim "
                "(torch.stack([rows, cols], dim=-1)) so that each token gets one (row, col) pair"
            )
        if isinstance(out, torch.Tensor) and tuple(out.shape) in ((n, n, 2), (2, n, n)) and n > 1:
            fail(
                f"coordinate_grid({n}) has shape {tuple(out.shape)}: flatten the grid to one row per "
                f"token, shape ({n * n}, 2), with torch.stack([rows, cols], dim=-1).reshape({n * n}, 2)"
            )
        if isinstance(out, torch.Tensor) and out.ndim == 2 and out.shape[1] == 2 and out.shape[0] != n * n:
            side = math.isqrt(out.shape[0])
            if side * side == out.shape[0]:
                fail(
                    f"coordinate_grid({n}) returned {out.shape[0]} rows, the grid of a {side} x {side} "
                    "image: is the grid size hard-coded? Use the argument n everywhere (n * n rows)"
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
        if n == 1 and not torch.allclose(out.float(), ref, atol=1e-5):
            fail(
                f"coordinate_grid(1) should be [[-1, -1]], got {out.tolist()}: the course's axis is "
                "torch.linspace(-1, 1, n), which is [-1] for n = 1 (the first token of every grid sits at "
                "(-1, -1)); no special case for n = 1 is needed"
            )
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


def _gamma(
    v: torch.Tensor, B: torch.Tensor, scale: float = 2 * math.pi, order: str = "sincos"
) -> torch.Tensor:
    """Variants of gamma(v) for diagnosis: (..., d), (m, d) -> (..., 2m) or (..., m)."""
    phase = scale * (v @ B.T)  # (..., m)
    parts = {"sin": torch.sin(phase), "cos": torch.cos(phase)}
    if order == "interleaved":
        return torch.stack([parts["sin"], parts["cos"]], dim=-1).flatten(-2)  # (..., 2m)
    if order in parts:
        return parts[order]  # (..., m)
    if order == "sum":
        return parts["sin"] + parts["cos"]  # (..., m)
    if order == "phase":
        return phase  # (..., m)
    return torch.cat([parts[order[:3]], parts[order[3:]]], dim=-1)  # (..., 2m)


def _close(out: torch.Tensor, wrong: torch.Tensor) -> bool:
    return out.shape == wrong.shape and torch.allclose(out.double(), wrong.double(), atol=1e-4)


FIX_FOURIER = "return torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1) with phase = 2 * pi * v @ B.T"


def _diagnose_fourier(out: torch.Tensor, v: torch.Tensor, B: torch.Tensor) -> str:
    """Name the mistake that produced ``out`` instead of gamma(v)."""
    m, d = B.shape
    fix_cat = FIX_FOURIER
    if out.shape[-1:] == (m,) and out.shape[:-1] == v.shape[:-1]:
        for only in ("sin", "cos"):
            for scale in (2 * math.pi, 1.0):
                if _close(out, _gamma(v, B, scale, only)):
                    return (
                        f"you return only the {only} half, {m} features instead of {2 * m}: gamma(v) "
                        f"concatenates sin AND cos, [sin(2 pi v B^T), cos(2 pi v B^T)]; {fix_cat}"
                    )
        if _close(out, _gamma(v, B, order="sum")):
            return (
                f"you add sin and cos, which gives {m} features: gamma(v) concatenates them, "
                f"2m = {2 * m}; {fix_cat}"
            )
        if _close(out, _gamma(v, B, order="phase")) or _close(out, _gamma(v, B, 1.0, "phase")):
            return f"you return the phase itself: gamma(v) takes its sin and its cos; {fix_cat}"
        return f"your output has {m} features, but gamma(v) has 2m = {2 * m}: {fix_cat}"
    if v.ndim >= 2 and out.shape[0] == 2 * v.shape[0] and out.shape[-1] == m:
        return f"you concatenated sin and cos along dim 0; concatenate along the LAST dim: {fix_cat}"
    if v.ndim >= 3:
        phase = 2 * math.pi * (v @ B.T)
        if _close(out, torch.cat([torch.sin(phase), torch.cos(phase)], dim=1)):
            return (
                "you concatenate on dim 1 (dim=1, or torch.hstack), which is the last dim only when v is "
                f"2-D; v may have any number of leading dims (here v is {tuple(v.shape)}): concatenate "
                "on dim=-1"
            )
    if out.shape != v.shape[:-1] + (2 * m,):
        return f"gamma(v) should have shape {tuple(v.shape[:-1]) + (2 * m,)}; yours is {tuple(out.shape)}"
    candidates = [
        (
            _gamma(v, B, scale=1.0),
            "the 2*pi is missing: gamma(v) = [sin(2 pi v B^T), cos(2 pi v B^T)], so multiply the phase "
            "v @ B.T by 2 * math.pi (B holds frequencies in cycles per unit, not radians)",
        ),
        (
            _gamma(v, B, scale=math.pi),
            "the phase is pi * v @ B.T, half of what it should be: gamma(v) uses 2 * pi * v @ B.T (B holds "
            "frequencies in cycles per unit, and one cycle is 2 pi radians)",
        ),
        (
            _gamma(v, B, order="cossin"),
            "sin and cos are swapped: gamma(v) puts the m sines first, then the m cosines: "
            "torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1)",
        ),
        (
            _gamma(v, B, scale=1.0, order="cossin"),
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
        (
            _gamma(v, B, order="coscos"),
            "both halves are cosines: the first half of gamma(v) should be sin(2 pi v B^T)",
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
        if _close(out, wrong):
            return message
    return (
        "your features differ from gamma(v) = [sin(2 pi v B^T), cos(2 pi v B^T)]: check the phase "
        "2 * math.pi * (v @ B.T), then sin first, cos second, concatenated on the last dim"
    )


# (leading shape of v, m, d, dtype, what changed since the plain first case, what to fix): B square first
# (so that v @ B runs and can be named), then one thing changed at a time.
FOURIER_CASES: list[tuple[tuple[int, ...], int, int, torch.dtype, str | None, str | None]] = [
    ((7,), 2, 2, torch.float32, None, None),
    (
        (5,),
        6,
        2,
        torch.float32,
        "B is not square (m = 6 frequencies of d = 2 coordinates)",
        "each ROW of B is one frequency vector, so the phase is v @ B.T, shape (..., m)",
    ),
    (
        (9,),
        3,
        1,
        torch.float32,
        "the coordinates are 1-D (d = 1)",
        "read m and d from B.shape, hard-code neither",
    ),
    (
        (3, 4),
        5,
        2,
        torch.float32,
        "v has two leading dims",
        "v @ B.T (torch.matmul) and dim=-1 work for any number of leading dims; torch.mm, dim=1, "
        "torch.hstack and v.T do not",
    ),
    (
        (2, 3),
        4,
        3,
        torch.float32,
        "the coordinates are 3-D (d = 3)",
        "read m and d from B.shape, hard-code neither",
    ),
    (
        (),
        3,
        2,
        torch.float32,
        "v is a single point, shape (d,), with no leading dims",
        "v @ B.T and dim=-1 work without leading dims too; do not index v[:, ...] or assume v is 2-D",
    ),
    (
        (4,),
        1,
        2,
        torch.float32,
        "there is one frequency (m = 1)",
        "keep the axis of size m = 1 (no squeeze())",
    ),
    (
        (5,),
        4,
        2,
        torch.float64,
        "v and B are float64",
        "keep the inputs' dtype: make no float32 tensors of your own (torch.tensor(...), .float())",
    ),
]


def _call_fourier(
    fourier_features: Callable[..., torch.Tensor],
    v: torch.Tensor,
    B: torch.Tensor,
    changed: str | None,
    fix: str | None,
) -> torch.Tensor:
    m, d = B.shape
    shapes = f"v of shape {tuple(v.shape)} and B of shape ({m}, {d})"
    try:
        return fourier_features(v.clone(), B.clone())  # (..., 2m) when right
    except (NotImplementedError, ExerciseFailed):
        raise
    except Exception as e:
        raised = f"your code raised {type(e).__name__}: {str(e)[:200]}"
        text = str(e)
        if "cannot be multiplied" in text or "size mismatch" in text:
            fail(
                f"{raised}. With {shapes}: B is applied transposed? Each ROW of B is one frequency vector, "
                "so the phase is v @ B.T, shape (..., m); v @ B.T also works for any leading dims of v"
            )
        if "must match the size of tensor" in text and changed is None:
            fail(
                f"{raised}. With {shapes}: v * B is an elementwise product, which does not broadcast here; "
                "the phase needs the matrix product, phase_j = b_j . v for each row b_j of B: "
                "2 * math.pi * (v @ B.T), shape (..., m)"
            )
        if "must be a matrix" in text:
            fail(
                f"{raised}. With {shapes}: torch.mm takes 2-D matrices only, but v may have any number of "
                "leading dims (or none): use v @ B.T (torch.matmul), which handles them all"
            )
        if changed is None:
            raise
        fail(f"{raised} on {shapes}, though it ran on the plain case: {changed}, so {fix}")


@checker(
    "2.2",
    "fourier_features",
    hints=(
        "B has one frequency vector b_j per ROW, shape (m, d). The phase of frequency j is 2 pi (b_j . v); "
        "all m of them at once, for any leading dims of v, are one matrix product v @ B.T, shape (..., m). "
        "Take the sine and the cosine of that phase and put the m sines first, then the m cosines, side by "
        "side on the LAST dim (dim=-1, not dim=1), giving (..., 2m).",
        "def fourier_features(v, B):\n    phase = ... * math.pi * (v @ ...)   # (..., m)\n"
        "    return torch.cat([torch.sin(...), torch.cos(...)], dim=...)",
    ),
    reference="vitgan_lite.positional:fourier_features",
)
def check_fourier_features(fourier_features: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check a learner's ``fourier_features(v, B) -> (..., 2m)`` against gamma(v) of Tancik et al."""
    for seed, (lead, m, d, dtype, changed, fix) in enumerate(FOURIER_CASES):
        g = seeded(seed)
        v = (torch.rand(*lead, d, generator=g) * 2 - 1).to(dtype)  # (..., d) coordinates in [-1, 1]
        B = (torch.randn(m, d, generator=g) * 1.5).to(dtype)  # (m, d), B ~ N(0, sigma^2) with sigma = 1.5
        out = _call_fourier(fourier_features, v, B, changed, fix)
        expected = ref_fourier_features(v, B)  # (..., 2m)
        what = f"fourier_features(v {tuple(v.shape)}, B {(m, d)})"
        after = f" (It passed on the plain case; {changed}: {fix}.)" if changed else ""
        expect(isinstance(out, torch.Tensor), f"{what} should return a tensor, got {type(out).__name__}")
        expect(out.is_floating_point(), f"{what} should return floats, got {out.dtype}")
        if changed is None:
            again = fourier_features(v.clone(), B.clone())
            expect(
                isinstance(again, torch.Tensor) and torch.equal(again, out),
                "two calls with the same v and B give different features: gamma(v) is a fixed function of "
                "v and the B passed in; draw no random frequencies inside fourier_features",
            )
        if out.shape != expected.shape or not torch.allclose(out.double(), expected.double(), atol=1e-5):
            fail(f"for {what}: {_diagnose_fourier(out, v, B)}{after}")
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
