"""Checkers for lesson 00 (setup and data): Exercise 0.1 ``to_float`` and Exercise 0.2 ``to_uint8``."""

from __future__ import annotations

from collections.abc import Callable

import torch

from vitgan_lite.checks._core import checker, expect, expect_close, fail, seeded
from vitgan_lite.data import to_float as ref_to_float
from vitgan_lite.data import to_uint8 as ref_to_uint8


@checker("0.1", "to_float")
def check_to_float(to_float: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check ``to_float(uint8 images) -> float in [-1, 1]``."""
    ends = torch.tensor([0, 255, 128], dtype=torch.uint8).view(1, 3, 1, 1)
    out = to_float(ends.clone())
    expect(isinstance(out, torch.Tensor), f"to_float should return a tensor, got {type(out).__name__}")
    expect(out.is_floating_point(), f"to_float should return floats, got {out.dtype}: call .float() first")
    expect(
        out.shape == ends.shape, f"to_float should keep the shape {tuple(ends.shape)}, got {tuple(out.shape)}"
    )
    lo, hi = out.flatten()[:2].tolist()
    if abs(lo) < 1e-6 and abs(hi - 1) < 1e-3:
        fail("0 -> 0 and 255 -> 1: that is [0, 1]. This course uses [-1, 1]: x / 127.5 - 1")
    if out.unique().numel() <= 2 and abs(lo + 1) < 1e-6:
        fail(
            "only -1 and a few whole numbers come out: integer division on uint8? Convert with .float() "
            "before dividing"
        )
    expect(abs(lo + 1) < 1e-6, f"byte 0 should map to -1, got {lo:.4f}")
    expect(abs(hi - 1) < 1e-6, f"byte 255 should map to +1, got {hi:.4f} (divide by 127.5, not 128 or 255)")
    for seed, shape in enumerate([(2, 3, 4, 4), (5, 1, 3, 7)]):
        u = torch.randint(0, 256, shape, generator=seeded(seed), dtype=torch.uint8)
        expect_close(
            to_float(u.clone()), ref_to_float(u), f"to_float disagrees with the reference on {shape}"
        )
    expect(out.dtype == torch.float32, f"return float32 (what the models use), got {out.dtype}")


@checker("0.2", "to_uint8")
def check_to_uint8(to_uint8: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check ``to_uint8(float in [-1, 1]) -> uint8``: the inverse of to_float, rounded and clipped."""
    u = torch.randint(0, 256, (3, 3, 5, 5), generator=seeded(0), dtype=torch.uint8)
    out = to_uint8(ref_to_float(u))
    expect(
        isinstance(out, torch.Tensor) and out.dtype == torch.uint8, "to_uint8 should return a uint8 tensor"
    )
    expect(out.shape == u.shape, f"to_uint8 should keep the shape {tuple(u.shape)}, got {tuple(out.shape)}")
    expect(
        torch.equal(out, u),
        "to_uint8(to_float(u)) does not give u back: a plain cast truncates (127.9999 -> 127); "
        "round() before casting",
    )
    wild = torch.tensor([-1.7, 1.4, 0.0, -1.0, 1.0]).view(1, 5, 1, 1)
    got = to_uint8(wild).flatten().tolist()
    expect(
        got[:2] == [0, 255],
        f"values outside [-1, 1] should clip to 0 and 255, got {got[:2]} for -1.7 and 1.4: "
        "clamp to [0, 255] before the uint8 cast (a cast wraps around instead)",
    )
    x = torch.rand(2, 3, 4, 4, generator=seeded(1)) * 2.4 - 1.2
    expect(
        torch.equal(to_uint8(x), ref_to_uint8(x)), "to_uint8 disagrees with the reference on random inputs"
    )


__all__ = ["check_to_float", "check_to_uint8"]
