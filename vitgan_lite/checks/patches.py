"""Checkers for lesson 01 (patches): Exercise 1.1 ``patchify`` and Exercise 1.2 ``unpatchify``.

Both functions only move values, so the checkers feed them tensors whose values are their own flat
indices (pixel k holds the number k). Where each number lands then says exactly what the learner's
layout does: which image, which P x P block, which token, which slot of the patch vector. The
properties are tested one at a time, from the most basic up (a tensor of the right shape, the same
values, each image kept apart, each token one block, the token order, the order inside a patch), so
that the first failing property names the mistake. The first case is a plain one; each later case
changes one size at a time, so that a failure there names the size that is hard-coded.

Shape legend: B batch, C channels, H x W pixels, P patch size, (Gh, Gw) = (H/P, W/P) patch grid,
N = Gh * Gw tokens, D = C * P * P values per patch vector.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

import torch

from vitgan_lite.checks._core import ExerciseFailed, checker, expect, expect_close, fail, seeded
from vitgan_lite.patches import patchify as ref_patchify
from vitgan_lite.patches import unpatchify as ref_unpatchify

# ---- shared: the cases, crashes, and what a layout does ----------------------------------------------

HOLD_ON = "keep every size read from the arguments: B, C, H, W = x.shape and P = patch_size"

# (B, C, H, W, P): a plain case first, then one size changed at a time: (what changed, what to fix).
PATCHIFY_BASE = (2, 3, 8, 8, 4)
PATCHIFY_VARIED = [
    ((2, 1, 8, 8, 4), "only the channel count changed (C = 1)", "read C from x.shape, do not hard-code 3"),
    ((2, 3, 8, 8, 2), "only the patch size changed (P = 2)", "use patch_size everywhere, not a fixed 4"),
    (
        (2, 3, 12, 8, 4),
        "only the height changed (a 12 x 8 image)",
        "keep H and W apart: H // P rows of patches, W // P columns (H and W may differ)",
    ),
    (
        (2, 3, 8, 12, 4),
        "only the width changed (an 8 x 12 image)",
        "keep H and W apart: H // P rows of patches, W // P columns (H and W may differ)",
    ),
    (
        (1, 3, 8, 8, 4),
        "only the batch size changed (B = 1)",
        "keep the batch axis: no squeeze(), B from x.shape",
    ),
    (
        (2, 3, 4, 4, 4),
        "the image is a single patch (H = W = P, so N = 1)",
        "keep every axis, also those of size 1 (no squeeze()), and read the sizes from the shapes",
    ),
    (
        (2, 3, 32, 32, 4),
        "only the image size changed (32 x 32)",
        "read H and W from x.shape, not a fixed size",
    ),
    ((3, 2, 6, 10, 2), "every size changed", HOLD_ON),
]

# (B, C, S, P) for unpatchify(patches, P, S, C): the image is S x S.
UNPATCHIFY_BASE = (2, 3, 8, 4)
UNPATCHIFY_VARIED = [
    (
        (2, 1, 8, 4),
        "only the channel count changed (channels = 1)",
        "use the channels argument (or patches.shape[-1] // (P * P)), do not hard-code 3",
    ),
    ((2, 3, 8, 2), "only the patch size changed (P = 2)", "use patch_size everywhere, not a fixed 4"),
    (
        (2, 3, 16, 4),
        "only the image size changed (16 x 16)",
        "the grid has image_size // patch_size patches per side: compute it, do not fix it",
    ),
    (
        (1, 3, 8, 4),
        "only the batch size changed (B = 1)",
        "keep the batch axis: no squeeze(), B from the shape",
    ),
    (
        (2, 3, 4, 4),
        "the image is a single patch (image_size = P, so N = 1)",
        "keep every axis, also those of size 1 (no squeeze())",
    ),
    (
        (3, 2, 12, 2),
        "every size changed",
        "read B from patches.shape and use patch_size, image_size, channels",
    ),
]

FLOAT_SIZE = (
    "a size computed with / (or ** 0.5) is a float, 8 / 4 = 2.0, even when it divides evenly, and shapes "
    "take whole numbers: use integer division, H // P"
)


def _float_size(e: BaseException) -> bool:
    """Whether ``e`` is a reshape/view called with a float size."""
    s = str(e)
    return isinstance(e, TypeError) and bool(
        re.search(r"but got float|not float|'float' object cannot be interpreted as an integer", s)
    )


def _call(fn: Callable[..., Any], args: tuple, case: str, changed: str | None, fix: str | None) -> Any:
    """``fn(*args)``; a crash on a later case names what changed since the plain case."""
    try:
        return fn(*args)
    except (NotImplementedError, ExerciseFailed):
        raise
    except Exception as e:
        raised = f"your code raised {type(e).__name__}: {str(e)[:200]}"
        if _float_size(e):
            fail(f"{raised} ({case}): {FLOAT_SIZE}")
        if changed is None:
            raise  # the plain case: the checker's wrapper names the crash and its likely cause
        fail(f"{raised} on {case}, though it ran on the plain case: {changed}, so {fix}")


def _blocks(values: set[int], P: int, G: int) -> str:
    """How one token's rows (or columns) sit: 'block' (P neighbours), 'strided' (every G-th) or 'other'."""
    v = sorted(values)
    if len(v) == P and v[-1] - v[0] == P - 1 and v[0] % P == 0:
        return "block"
    if len(v) == P and all(b - a == G for a, b in zip(v, v[1:])):
        return "strided"
    return "other"


AXES = ("C", "P_rows", "P_cols")


def _layout(
    c: torch.Tensor, h: torch.Tensor, w: torch.Tensor, C: int, H: int, W: int, P: int
) -> tuple[str, Any]:
    """What a layout does, from where slot j of token n sits in the image: (channel, row, column) = (c, h, w),
    each (N, D). Returns (code, detail); code "ok" when it is the course's layout."""
    N, D = c.shape
    Gh, Gw = H // P, W // P
    flat = c * H * W + h * W + w  # (N, D): position in the image's memory
    if torch.equal(flat, _course_layout(C, H, W, P)):
        return "ok", None
    k = torch.arange(N * D)
    if torch.equal(flat, k.view(N, D)):
        return "reshape_only", None
    if N > 1 and torch.equal(flat, k.view(D, N).T):
        return "tokens_last", None
    rows, cols = h // P, w // P  # (N, D) the block each value sits in
    if not (bool((rows == rows[:, :1]).all()) and bool((cols == cols[:, :1]).all())):
        kinds = [
            {_blocks(set(h[n].tolist()), P, Gh) for n in range(N)},
            {_blocks(set(w[n].tolist()), P, Gw) for n in range(N)},
        ]
        strided = [kind == {"strided"} for kind in kinds]
        if any(strided) and all(kind <= {"strided", "block"} for kind in kinds):
            return "split", strided
        return "block_other", (
            sorted(set(c[0].tolist())),
            sorted(set(h[0].tolist())),
            sorted(set(w[0].tolist())),
        )
    n = torch.arange(N)
    r0, c0 = rows[:, 0], cols[:, 0]  # (N,) the block of each token
    if not (torch.equal(r0, n // Gw) and torch.equal(c0, n % Gw)):
        if torch.equal(r0, n % Gh) and torch.equal(c0, n // Gh):
            return "grid_transposed", None
        return "grid_other", (int(r0[1]), int(c0[1])) if N > 1 else None
    key = (c, h % P, w % P)  # (N, D) each: the slot's channel, row and column inside the patch
    sizes = (C, P, P)
    for order in itertools.permutations(range(3)):
        j = torch.zeros_like(c)
        for axis in order:  # mixed radix: the first axis of ``order`` varies slowest
            j = j * sizes[axis] + key[axis]
        if torch.equal(j, torch.arange(D).expand(N, D)):
            return "inner", tuple(AXES[a] for a in order)
    return "inner", None


def _course_layout(C: int, H: int, W: int, P: int) -> torch.Tensor:
    """(N, D): the image position (flat index into (C, H, W)) of slot j of token n in the course's layout."""
    return ref_patchify(torch.arange(C * H * W).view(1, C, H, W), P)[0]


# The axes of x.reshape(B, C, H/P, P, W/P, P), by name; patchify's permute is (0, 2, 4, 1, 3, 5).
SPLIT_AXES = ("C", "H/P", "P_rows", "W/P", "P_cols")


def _patchify_permute(out_idx: torch.Tensor, C: int, H: int, W: int, P: int) -> tuple[str, ...] | None:
    """The axis order (names of SPLIT_AXES) whose permute and reshape give ``out_idx`` (N, D), if any."""
    x6 = torch.arange(C * H * W).view(C, H // P, P, W // P, P)
    for order in itertools.permutations(range(5)):
        if torch.equal(x6.permute(*order).reshape(out_idx.shape), out_idx):
            return tuple(SPLIT_AXES[a] for a in order)
    return None


# The axes of patches.reshape(B, H/P, W/P, C, P, P); unpatchify's permute is (0, 3, 1, 4, 2, 5).
PATCH_AXES = ("H/P", "W/P", "C", "P_rows", "P_cols")


def _unpatchify_permute(img_idx: torch.Tensor, C: int, S: int, P: int) -> tuple[str, ...] | None:
    """The axis order (names of PATCH_AXES) whose permute and reshape give ``img_idx`` (C, S, S), if any."""
    G = S // P
    p5 = torch.arange(G * G * C * P * P).view(G, G, C, P, P)
    for order in itertools.permutations(range(5)):
        if torch.equal(p5.permute(*order).reshape(C, S, S), img_idx):
            return tuple(PATCH_AXES[a] for a in order)
    return None


def _show(values: list[int]) -> str:
    return "{" + ", ".join(map(str, values[:8])) + (", ...}" if len(values) > 8 else "}")


def _index_tensor(*shape: int) -> torch.Tensor:
    """A float32 tensor whose value k + 0.5 marks flat index k (exact up to 2**23). Half-integers, so that
    a clamp, a rounding or a scaling shows as a changed value, not as a moved one."""
    n = 1
    for size in shape:
        n *= size
    return torch.arange(n, dtype=torch.float32).view(*shape) + 0.5


def _indices(out: torch.Tensor) -> torch.Tensor:
    """The flat index each value of ``out`` carries (see :func:`_index_tensor`)."""
    return (out.detach().double() - 0.5).round().long()


def _same_values(out: torch.Tensor, given: torch.Tensor, name: str) -> None:
    """``out`` holds exactly the values of ``given``, each once (both hold flat indices)."""
    got = out.detach().double().flatten().sort().values
    if torch.equal(got, given.double().flatten().sort().values):
        return
    k = got - 0.5
    whole = bool((k == k.round()).all()) and k.min() >= 0 and k.max() < given.numel()
    if whole:
        fail(
            f"some values appear twice and others not at all: {name} must move each value to exactly one "
            "place (reshape and permute; no expand, repeat, indexing that repeats, or overlapping windows)"
        )
    fail(
        f"{name} changed the values: it should only move them (reshape and permute), with no arithmetic, "
        "normalisation, clamping or rounding"
    )


# ---- Exercise 1.1: patchify --------------------------------------------------------------------------


def _patchify_shape(out: torch.Tensor, B: int, C: int, H: int, W: int, P: int) -> str | None:
    """Name a wrong output shape, or None when it is (B, N, C*P*P)."""
    Gh, Gw = H // P, W // P
    N, D = Gh * Gw, C * P * P
    s = tuple(out.shape)
    if s == (B, N, D):
        return None
    if s == (B, D, N):
        return (
            f"your output has shape (B, C*P*P, N) = {s}, tokens on the last axis (the layout F.unfold "
            "gives): the exercise's layout is (B, N, C*P*P), one row per token; transpose(1, 2)"
        )
    if s == (B, Gh, Gw, D):
        return f"your output keeps the patch grid, shape {s}: flatten it into N = (H/P)(W/P) = {N} tokens"
    if s == (B, N, C, P, P):
        return f"your output has shape {s}: flatten each patch into one vector of C*P*P = {D} values"
    if s == (B * N, D) and B > 1:
        return f"your output has shape {s}: the batch axis is merged with the tokens; keep it, (B, N, C*P*P)"
    if out.numel() == B * N * D and len(s) < 3 and list(s) == [d for d in (B, N, D) if d != 1]:
        return (
            f"your output has shape {s} instead of {(B, N, D)}: squeeze() dropped an axis of size 1; "
            "keep it, the output is always (B, N, C*P*P)"
        )
    return f"patchify should have shape {(B, N, D)} (B, N, C*P*P) for x of shape {(B, C, H, W)}, got {s}"


PATCHIFY_FIX = (
    "Reshape to (B, C, H/P, P, W/P, P), permute to (B, H/P, W/P, C, P, P), then reshape to (B, N, C*P*P)"
)


def _patchify_message(code: str, detail: Any, C: int, H: int, W: int, P: int) -> str:
    D = C * P * P
    if code == "reshape_only":
        return (
            f"patch 0 is not the top-left {P}x{P} block: your tokens are runs of C*P*P = {D} consecutive "
            "values in memory (whole rows of one channel), what a reshape to (B, N, C*P*P) gives without a "
            "permute. A reshape cannot cut out blocks: split H and W into (H/P, P) and (W/P, P), permute "
            "the two grid axes to the front, (B, H/P, W/P, C, P, P), then flatten"
        )
    if code == "tokens_last":
        return (
            f"patch 0 is not the top-left {P}x{P} block: your token n takes every N-th value in memory, "
            "what a reshape to (B, C*P*P, N) and a transpose give (that is not F.unfold): "
            f"{PATCHIFY_FIX}"
        )
    if code == "split":
        along = " and ".join(a for a, s in zip(("H into (P, H/P)", "W into (P, W/P)"), detail) if s)
        return (
            f"each token takes every (H/P)-th row or (W/P)-th column, a strided sample spread over the whole "
            f"image, instead of a {P}x{P} block of neighbours: you split {along} instead of (H/P, P) and "
            "(W/P, P). Reshape to (B, C, H/P, P, W/P, P): the grid index first, the pixel inside the patch "
            "second"
        )
    if code == "permute":
        names = detail
        why = (
            "the channel axis C comes before the grid axes, so a token gathers one channel of several blocks"
            if names.index("C") < max(names.index("H/P"), names.index("W/P"))
            else "a pixel-in-patch axis comes before a grid axis, so a token gathers pieces of several blocks"
        )
        return (
            f"patch 0 is not the top-left {P}x{P} block with all {C} channels: your permute orders the axes "
            f"(B, {', '.join(names)}) before the last reshape: {why}. Patchify needs "
            "(B, H/P, W/P, C, P_rows, P_cols), that is permute(0, 2, 4, 1, 3, 5) of "
            "x.reshape(B, C, H/P, P, W/P, P): the two grid axes first (they become the N tokens), then the "
            "patch's own axes"
        )
    if code == "block_other":
        ch, rs, cs = detail
        return (
            f"patch 0 is not the top-left {P}x{P} block with all {C} channels: your token 0 holds channels "
            f"{_show(ch)}, rows {_show(rs)}, columns {_show(cs)}. {PATCHIFY_FIX}"
        )
    if code == "grid_transposed":
        return (
            "your tokens run down the columns (the patch grid is transposed): token 1 should be the patch "
            "to the RIGHT of token 0, not below it. Put the grid-row axis H/P before the grid-column axis "
            "W/P in your permute"
        )
    if code == "grid_other":
        where = f": your token 1 is the block at grid row {detail[0]}, column {detail[1]}" if detail else ""
        return (
            f"each token is a whole block, but not in row-major order{where}. Token n must be the block at "
            f"grid row n // (W/P), column n % (W/P) (token 1 is the patch to the right of token 0): permute "
            "to (B, H/P, W/P, C, P, P), grid rows before grid columns"
        )
    if detail == ("P_rows", "P_cols", "C"):
        return (
            "your patch vectors are flattened channels-last, (P, P, C). This course flattens each patch "
            "channels-first, (C, P, P), so that a linear layer on patch vectors equals a Conv2d with "
            "kernel_size=P, stride=P: permute to (B, H/P, W/P, C, P, P) before the last reshape"
        )
    if detail == ("C", "P_cols", "P_rows"):
        return (
            "inside each patch the pixels are transposed (columns before rows): keep the patch's own axes "
            "in the order (C, P_rows, P_cols)"
        )
    order = f"ordered ({', '.join(detail)})" if detail else "in an order that is not a plain permute"
    return (
        f"each token is the right block, but inside it your values are {order}: this course flattens "
        f"each patch as (C, P_rows, P_cols): permute to (B, H/P, W/P, C, P, P) before the last reshape"
    )


def _check_patchify_case(
    patchify: Callable[..., Any], size: tuple[int, int, int, int, int], changed: str | None, fix: str | None
) -> None:
    B, C, H, W, P = size
    case = f"x of shape {(B, C, H, W)} with patch size {P}"
    x = _index_tensor(B, C, H, W)  # pixel k holds the number k
    out = _call(patchify, (x.clone(), P), case, changed, fix)
    after = f" (It passed on the plain case; {changed}: {fix}.)" if changed else ""
    expect(isinstance(out, torch.Tensor), f"patchify should return a torch.Tensor, got {type(out).__name__}")
    shape_problem = _patchify_shape(out, B, C, H, W, P)
    if shape_problem:
        fail(f"for {case}: {shape_problem}{after}")
    _same_values(out, x, "patchify")
    idx = _indices(out)  # (B, N, D) the pixel each value came from
    image = idx // (C * H * W)
    if not torch.equal(image, torch.arange(B).view(B, 1, 1).expand_as(image)):
        fail(
            f"for {case}: pixels of different images end up in one row of your output: the batch axis must "
            f"stay first (reshape(B, ...) and a permute that starts with 0){after}"
        )
    r = idx[0] % (C * H * W)  # (N, D) flat position in image 0
    code, detail = _layout(r // (H * W), (r // W) % H, r % W, C, H, W, P)
    if code == "block_other":
        order = _patchify_permute(r, C, H, W, P)
        code, detail = ("permute", order) if order else (code, detail)
    if code != "ok":
        fail(f"for {case}: {_patchify_message(code, detail, C, H, W, P)}{after}")
    expect(torch.equal(out.float(), ref_patchify(x, P)), f"for {case}: patchify disagrees with the reference")


@checker(
    "1.1",
    "patchify",
    hints=(
        "Only reshape and permute, no loops. Cut each image axis in two: H becomes (H/P, P), the patch's "
        "grid row and the pixel row inside the patch (in this order), W likewise. Then move the two grid "
        "axes next to the batch axis, so that the patch's own axes (C, P, P) come last and merge into "
        "one vector of C*P*P; the two grid axes merge into N tokens, grid row first (row-major). Read "
        "every size from x.shape and patch_size, and use // for sizes.",
        "def patchify(x, patch_size):\n    B, C, H, W = x.shape\n    P = patch_size\n"
        "    x = x.reshape(B, C, ..., P, ..., P)      # split H and W\n"
        "    x = x.permute(0, ..., ..., 1, ..., ...)  # (B, H/P, W/P, C, P, P)\n"
        "    return x.reshape(B, ..., C * P * P)",
    ),
    reference="vitgan_lite.patches:patchify",
)
def check_patchify(patchify: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
    """Check a learner's ``patchify(x, patch_size) -> (B, N, C*P*P)`` against the reference."""
    _check_patchify_case(patchify, PATCHIFY_BASE, None, None)
    for size, changed, fix in PATCHIFY_VARIED:
        _check_patchify_case(patchify, size, changed, fix)
    # Only values move, so the dtype stays and float64 images come back bit for bit.
    x = torch.randn(2, 3, 8, 8, generator=seeded(10), dtype=torch.float64)
    out = patchify(x.clone(), 4)
    expect(
        isinstance(out, torch.Tensor) and out.dtype == torch.float64,
        f"patchify turned float64 images into {getattr(out, 'dtype', type(out).__name__)}: it only moves "
        "values (reshape and permute), so keep the dtype; remove the cast (.float(), torch.tensor(...))",
    )
    expect(torch.equal(out, ref_patchify(x, 4)), "patchify disagrees with the reference on float64 images")
    # Defining property: a linear layer on patch vectors is a strided convolution.
    x = torch.randn(2, 3, 8, 8, generator=seeded(11))
    conv = torch.nn.Conv2d(3, 5, kernel_size=4, stride=4)
    via_conv = conv(x).flatten(2).transpose(1, 2)  # (B, N, 5)
    via_linear = patchify(x, 4) @ conv.weight.reshape(5, -1).T + conv.bias  # (B, N, 5)
    expect_close(via_linear, via_conv, "a linear layer on your patches should equal Conv2d(k=P, stride=P)")


# ---- Exercise 1.2: unpatchify ------------------------------------------------------------------------

UNPATCHIFY_FIX = (
    "Reshape the patches to (B, H/P, W/P, C, P, P), permute with (0, 3, 1, 4, 2, 5) to "
    "(B, C, H/P, P, W/P, P), then reshape to (B, C, H, W)"
)


def _unpatchify_shape(out: torch.Tensor, B: int, C: int, S: int) -> str | None:
    s = tuple(out.shape)
    if s == (B, C, S, S):
        return None
    if s == (B, S, S, C) and C != S:
        return (
            f"your image has shape {s}, channels last: the exercise's images are (B, C, H, W), with the "
            "channels at dim 1"
        )
    if out.numel() == B * C * S * S and len(s) < 4 and list(s) == [d for d in (B, C, S, S) if d != 1]:
        return (
            f"your image has shape {s} instead of {(B, C, S, S)}: squeeze() dropped an axis of size 1; "
            "keep it, the output is always (B, C, H, W)"
        )
    return f"unpatchify should have shape {(B, C, S, S)} (B, C, H, W), got {s}"


def _unpatchify_message(code: str, detail: Any, C: int, S: int, P: int) -> str:
    D = C * P * P
    back = "unpatchify(patchify(x)) does not give x back: "
    if code == "reshape_only":
        return (
            f"the top-left {P}x{P} block of your image is not patch 0: each patch vector lands as {D} "
            "consecutive values in memory (whole rows of one channel), what a reshape of (B, N, C*P*P) "
            f"straight to (B, C, H, W) gives. {UNPATCHIFY_FIX}"
        )
    if code == "tokens_last":
        return (
            f"the top-left {P}x{P} block of your image is not patch 0: patch n's values land on every N-th "
            "position in memory, as if the patches were (B, C*P*P, N) (the layout F.fold takes; yours are "
            f"(B, N, C*P*P)). {UNPATCHIFY_FIX}"
        )
    if code == "split":
        return (
            back
            + f"each patch lands on every (H/P)-th row or column, spread over the whole image, instead of "
            f"on a {P}x{P} block: in the image's height (and width) the grid axis must come before the "
            "pixel-in-patch axis, (H/P, P). From (B, H/P, W/P, C, P, P) permute with (0, 3, 1, 4, 2, 5), "
            "then reshape"
        )
    if code == "permute":
        return (
            f"the top-left {P}x{P} block of your image is not patch 0: your permute orders the axes "
            f"(B, {', '.join(detail)}) before the last reshape, but from (B, H/P, W/P, C, P, P) it must give "
            "(B, C, H/P, P_rows, W/P, P_cols), permute(0, 3, 1, 4, 2, 5): the channel first, then each "
            "image axis as its grid index followed by its pixel-in-patch index"
        )
    if code == "block_other":
        ch, rs, cs = detail
        return (
            f"the top-left {P}x{P} block of your image is not patch 0: patch 0 lands on channels "
            f"{_show(ch)}, rows {_show(rs)}, columns {_show(cs)}. {UNPATCHIFY_FIX}"
        )
    if code == "grid_transposed":
        return (
            back + "patch 1 lands BELOW patch 0 instead of to its right (the patch grid is transposed): the "
            "tokens are row-major, so from (B, H/P, W/P, C, P, P) the permute (0, 3, 1, 4, 2, 5) puts the "
            "grid-row axis (1) in the image's height and the grid-column axis (2) in its width"
        )
    if code == "grid_other":
        where = f": patch 1 lands on grid row {detail[0]}, column {detail[1]}" if detail else ""
        return (
            back + f"each patch lands on a whole block, but not in row-major order{where}. Patch n belongs "
            f"at grid row n // (H/P), column n % (H/P) (patch 1 is right of patch 0). {UNPATCHIFY_FIX}"
        )
    if detail == ("P_rows", "P_cols", "C"):
        return (
            back + "inside each patch you read the vector as channels-last, (P, P, C), but patchify "
            "flattens each patch channels-first, (C, P, P): reshape the patches to "
            "(B, H/P, W/P, C, P, P)"
        )
    if detail == ("C", "P_cols", "P_rows"):
        return (
            back + "inside each patch the pixels are transposed (columns before rows): inside each patch "
            "keep the axes (C, P_rows, P_cols); from (B, H/P, W/P, C, P, P) permute with (0, 3, 1, 4, 2, 5)"
        )
    order = f"as ({', '.join(detail)})" if detail else "in an order that is not a plain permute"
    return (
        back + f"each patch lands on the right block, but you read its vector {order}, while patchify "
        f"flattens it as (C, P_rows, P_cols). {UNPATCHIFY_FIX}"
    )


def _grid_as_image_size(e: BaseException, S: int, P: int) -> bool:
    """Whether ``e`` is a reshape to (B, S, S, ...) where (B, S/P, S/P, ...) belongs."""
    found = re.search(r"shape '\[([-\d, ]+)\]' is invalid", str(e))
    dims = [int(d) for d in found.group(1).split(",")] if found else []
    return len(dims) == 6 and dims[1] == dims[2] == S and S != S // P


def _check_unpatchify_case(
    unpatchify: Callable[..., Any], size: tuple[int, int, int, int], changed: str | None, fix: str | None
) -> None:
    B, C, S, P = size
    G = S // P
    N, D = G * G, C * P * P
    case = f"patches of shape {(B, N, D)} (patch size {P}, image size {S}, {C} channels)"
    patches = _index_tensor(B, N, D)  # value k of the patch sequence holds the number k
    try:
        out = _call(unpatchify, (patches.clone(), P, S, C), case, changed, fix)
    except RuntimeError as e:
        if _grid_as_image_size(e, S, P):
            fail(
                f"your code raised RuntimeError: {str(e)[:200]} ({case}): image_size counts pixels; the "
                f"grid has image_size // patch_size = {G} patches per side, so reshape the patches to "
                f"(B, {G}, {G}, C, P, P)"
            )
        raise
    after = f" (It passed on the plain case; {changed}: {fix}.)" if changed else ""
    expect(
        isinstance(out, torch.Tensor), f"unpatchify should return a torch.Tensor, got {type(out).__name__}"
    )
    shape_problem = _unpatchify_shape(out, B, C, S)
    if shape_problem:
        fail(f"for {case}: {shape_problem}{after}")
    _same_values(out, patches, "unpatchify")
    idx = _indices(out)  # (B, C, S, S): the patch value each pixel came from
    batch = idx // (N * D)
    if not torch.equal(batch, torch.arange(B).view(B, 1, 1, 1).expand_as(batch)):
        fail(
            f"for {case}: patches of different images end up in one image: the batch axis must stay first "
            f"(reshape(B, ...) and a permute that starts with 0){after}"
        )
    src = idx[0].flatten() % (N * D)  # (C*S*S,) the slot n * D + j each pixel of image 0 came from
    where = torch.empty(N * D, dtype=torch.long)
    where[src] = torch.arange(C * S * S)  # the image position each slot landed on
    where = where.view(N, D)
    code, detail = _layout(where // (S * S), (where // S) % S, where % S, C, S, S, P)
    if code == "block_other":
        order = _unpatchify_permute(idx[0] % (N * D), C, S, P)
        code, detail = ("permute", order) if order else (code, detail)
    if code != "ok":
        fail(f"for {case}: {_unpatchify_message(code, detail, C, S, P)}{after}")
    expect(
        torch.equal(out.float(), ref_unpatchify(patches, P, S, C)),
        f"for {case}: unpatchify disagrees with the reference",
    )


@checker(
    "1.2",
    "unpatchify",
    hints=(
        "Run patchify backwards: its last step merged (B, H/P, W/P, C, P, P) into (B, N, C*P*P), so first "
        "split the patch vectors back into those six axes (the grid side is image_size // patch_size, "
        "the channels come from the argument). Then permute so that each image axis has its two halves "
        "next to each other, grid index first: (B, C, H/P, P, W/P, P); then merge them into H and W. "
        "The permute is the inverse of patchify's (0, 2, 4, 1, 3, 5).",
        "def unpatchify(p, patch_size, image_size, channels=3):\n"
        "    B, P, G = p.shape[0], patch_size, image_size // patch_size\n"
        "    x = p.reshape(B, G, G, ..., P, P)         # (B, H/P, W/P, C, P, P)\n"
        "    x = x.permute(0, ..., 1, ..., 2, ...)    # (B, C, H/P, P, W/P, P)\n"
        "    return x.reshape(B, ..., image_size, image_size)",
    ),
    reference="vitgan_lite.patches:unpatchify",
)
def check_unpatchify(unpatchify: Callable[..., torch.Tensor]) -> None:
    """Check a learner's ``unpatchify(patches, patch_size, image_size, channels) -> (B, C, H, W)``."""
    _check_unpatchify_case(unpatchify, UNPATCHIFY_BASE, None, None)
    for size, changed, fix in UNPATCHIFY_VARIED:
        _check_unpatchify_case(unpatchify, size, changed, fix)
    # Bit for bit on real images, in float64 too: only values move, so the dtype stays.
    x = torch.randn(2, 3, 8, 8, generator=seeded(12), dtype=torch.float64)
    out = unpatchify(ref_patchify(x, 4), 4, 8, 3)
    expect(
        isinstance(out, torch.Tensor) and out.dtype == torch.float64,
        f"unpatchify turned float64 patches into {getattr(out, 'dtype', type(out).__name__)}: it only moves "
        "values (reshape and permute), so keep the dtype; remove the cast (.float(), torch.tensor(...))",
    )
    expect(torch.equal(out, x), "unpatchify(patchify(x)) should give float64 images x back bit for bit")
    # Round trip in the other direction, on patches that did not come from an image.
    patches = torch.randn(3, 16, 3 * 2 * 2, generator=seeded(20))
    expect_close(
        ref_patchify(unpatchify(patches, 2, 8, 3), 2),
        patches,
        "patchify(unpatchify(p)) should give p back for any patches p",
        atol=0,
        rtol=0,
    )


__all__ = ["check_patchify", "check_unpatchify"]
