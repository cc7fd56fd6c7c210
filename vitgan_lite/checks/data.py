"""Checkers for lesson 00 (setup and data): Exercise 0.1 ``to_float`` and Exercise 0.2 ``to_uint8``.

Both run the learner's function on every byte value at once (a ramp 0 .. 255), so that each property
(a per-pixel map, increasing, the two ends, the scale, the rounding, the clipping) can be tested on
its own, from the most basic up, and the first one that fails names the mistake.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vitgan_lite.checks._core import checker, expect, expect_close, fail, seeded
from vitgan_lite.data import to_float as ref_to_float
from vitgan_lite.data import to_uint8 as ref_to_uint8

FIX_FLOAT = "x = images.float() / 127.5 - 1"


def _returned(out: object, name: str) -> torch.Tensor:
    """``out`` must be a tensor; a NumPy array or a list gets its own message."""
    kind = type(out).__name__
    if kind == "ndarray":
        fail(f"{name} returns a NumPy array: return a torch.Tensor (torch.from_numpy(...), or stay in torch)")
    expect(isinstance(out, torch.Tensor), f"{name} should return a torch.Tensor, got {kind}")
    return out  # type: ignore[return-value]


def _ramp_uint8() -> torch.Tensor:
    """Every byte 0 .. 255 once per channel, each channel in another order: (1, 3, 16, 16) uint8."""
    g = seeded(0)
    channels = [torch.arange(256)] + [torch.randperm(256, generator=g) for _ in range(2)]
    return torch.stack(channels).to(torch.uint8).view(1, 3, 16, 16)


# ---- Exercise 0.1 ------------------------------------------------------------------------------------


@checker(
    "0.1",
    "to_float",
    hints=(
        "Two steps, in this order. First leave uint8: `.float()` gives float32 (arithmetic on a uint8 "
        "tensor stays in bytes and wraps around: 0 - 1 is 255). Then a straight line through two "
        "points, byte 0 -> -1 and byte 255 -> +1: its slope is 2 / 255 = 1 / 127.5, its offset -1. "
        "Every pixel is mapped on its own: no mean, std, min or max of the batch.",
        "def to_float(images):\n    x = images.float()        # float32 copy, still 0 .. 255\n"
        "    return x / ... - ...      # 0 -> -1, 255 -> +1",
    ),
    reference="vitgan_lite.data:to_float",
)
def check_to_float(to_float: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check ``to_float(uint8 images) -> float32 in [-1, 1]``, 0 -> -1 and 255 -> +1."""
    u = _ramp_uint8()  # (1, 3, 16, 16), every byte in every channel
    try:
        out = to_float(u.clone())
    except RuntimeError as e:
        if "can't be cast to the desired output type Byte" in str(e):
            fail(
                f"your code raised RuntimeError: {e}. An in-place division (`images /= 127.5`, `.div_`) "
                "on the uint8 tensor: a uint8 tensor cannot hold the float result. Convert first, "
                f"out of place: {FIX_FLOAT}"
            )
        raise
    out = _returned(out, "to_float")
    if not out.is_floating_point():
        fail(
            f"to_float should return floats, got {out.dtype}: arithmetic on the uint8 tensor (or a cast "
            "back to an integer type) keeps whole numbers; call .float() first"
        )
    expect(
        out.dtype == torch.float32,
        f"to_float should return float32 (what the models use), got {out.dtype}: use .float(), not "
        ".double() or .half()",
    )
    expect(out.shape == u.shape, f"to_float should keep the shape {tuple(u.shape)}, got {tuple(out.shape)}")
    expect(bool(torch.isfinite(out).all()), "to_float returned NaN or inf values")

    # A fixed map, byte by byte: the same byte gives the same value in every channel and in every batch.
    table = torch.empty(3, 256)
    for c in range(3):
        table[c, u[0, c].flatten().long()] = out[0, c].flatten()  # table[c, byte] = learner's value
    if not torch.allclose(table, table[:1].expand(3, -1), atol=1e-6):
        fail(
            "the same byte maps to different values in different channels: a per-channel normalisation "
            "(ImageNet mean and std, torchvision's Normalize)? This course maps every channel the same "
            f"way: {FIX_FLOAT}"
        )
    v = table[0]  # (256,) the learner's value of byte k
    narrow = torch.arange(100, 140, dtype=torch.uint8).view(1, 1, 5, 8)  # only bytes 100 .. 139
    alone = to_float(narrow.clone())
    if not (
        isinstance(alone, torch.Tensor)
        and alone.shape == narrow.shape
        and torch.allclose(alone.float().flatten(), v[100:140], atol=1e-6)
    ):
        fail(
            "to_float gives a byte another value when the other pixels change (bytes 100 .. 139 alone "
            "do not map as they do among all 256): it uses statistics of the batch (min and max, or mean "
            f"and std). Map each byte on its own, with fixed numbers: {FIX_FLOAT}"
        )

    # Increasing in the byte, with 256 distinct values.
    if v.unique().numel() < 128:
        fail(
            f"only {v.unique().numel()} distinct values come out for the 256 bytes: integer division on "
            "uint8 (// or a division that stays integer) or rounding. Convert with .float() before "
            "dividing, and do not round"
        )
    if bool((v[1:] < v[:-1]).all()):
        fail(
            f"byte 0 maps to {v[0]:.3f} and byte 255 to {v[255]:.3f}: the map is reversed (decreasing). "
            f"Bright pixels should be near +1: {FIX_FLOAT}"
        )
    if not bool((v[1:] > v[:-1]).all()):
        k = int((v[1:] <= v[:-1]).nonzero()[0, 0]) + 1
        fail(
            f"the values do not increase with the byte (byte {k} gives {v[k]:.3f}, less than byte {k - 1}'s "
            f"{v[k - 1]:.3f}): uint8 arithmetic wrapped around before the conversion (on uint8, "
            "0 - 128 = 128 and 200 * 2 = 144). Convert with .float() first, then subtract or multiply"
        )

    # The two ends, then a straight line between them.
    lo, hi = v[0].item(), v[255].item()
    if abs(lo) < 1e-6 and abs(hi - 1) < 1e-3:
        fail(f"0 -> 0 and 255 -> 1: that is [0, 1]. This course uses [-1, 1]: {FIX_FLOAT}")
    if abs(lo + 0.5) < 1e-3 and abs(hi - 0.5) < 1e-3:
        fail(
            "byte 0 should map to -1 and 255 to +1, but yours run from -0.5 to 0.5: the scale is half. "
            f"Divide by 127.5 (half of 255), not by 255: {FIX_FLOAT}"
        )
    if abs(hi - lo - 2) < 1e-5 and abs(lo + 1) > 1e-5:
        fail(
            f"your values run from {lo:.4f} to {hi:.4f}: the scale is right but the offset is not; "
            f"subtract 1 after dividing by 127.5 so that byte 0 lands on -1: {FIX_FLOAT}"
        )
    expect(abs(lo + 1) < 1e-6, f"byte 0 should map to -1, got {lo:.4f}: {FIX_FLOAT}")
    expect(abs(hi - 1) < 1e-6, f"byte 255 should map to +1, got {hi:.4f} (divide by 127.5, not 128 or 255)")
    expect_close(
        v,
        ref_to_float(torch.arange(256, dtype=torch.uint8)),
        "the ends are right but the bytes in between are not on the straight line x = u / 127.5 - 1",
        atol=1e-6,
    )
    for seed, shape in enumerate([(2, 3, 4, 4), (5, 1, 3, 7)]):
        images = torch.randint(0, 256, shape, generator=seeded(seed), dtype=torch.uint8)
        expect_close(
            to_float(images.clone()),
            ref_to_float(images),
            f"to_float disagrees with the reference on {shape}",
        )


# ---- Exercise 0.2 ------------------------------------------------------------------------------------

# Probes: every byte k, and k + 0.25 and k + 0.75 (round to the nearest byte: k, k, k + 1), as floats.
_PROBE_BYTES = torch.cat([torch.arange(256.0), torch.arange(255.0) + 0.25, torch.arange(255.0) + 0.75])
_PROBE_X = (_PROBE_BYTES.double() / 127.5 - 1).float().view(1, 2, 1, 383)  # (1, 2, 1, 383) in [-1, 1]
_PROBE_EXPECTED = _PROBE_BYTES.round().to(torch.uint8).view(1, 2, 1, 383)


def _uint8_candidates(
    x: torch.Tensor,
) -> list[tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor], str]]:
    """Known wrong maps: (value before rounding, how it is rounded, the message naming the mistake)."""
    y = (x + 1) * 127.5  # the right scale, before rounding
    return [
        (
            y,
            torch.floor,
            "to_uint8(to_float(u)) does not give u back: the scale is right, but a plain cast truncates "
            "(127.9999 -> 127, and 3.75 -> 3 instead of 4); round() before casting",
        ),
        (y, torch.ceil, "ceil() always rounds up (3.25 -> 4): round() to the nearest byte before casting"),
        (
            x * 255,
            torch.round,
            "x * 255 is the map for images in [0, 1], but these are in [-1, 1] (0 would land on byte 0, "
            "not 128): first undo to_float, (x + 1) * 127.5",
        ),
        (
            x * 127.5,
            torch.round,
            "-1 should map to byte 0 but your scale leaves it at -127.5: add 1 before scaling",
        ),
        (
            (x + 1) * 255,
            torch.round,
            "(x + 1) * 255 maps [-1, 1] onto [0, 510]: x + 1 is in [0, 2], so scale by 255 / 2 = 127.5",
        ),
        (
            (x + 1) * 128,
            torch.round,
            "the scale is 128 instead of 127.5 (255 / 2): bytes above 127 come back one too high",
        ),
        (
            (x + 1) * 127,
            torch.round,
            "the scale is 127 instead of 127.5 (255 / 2): +1 maps to 254 and most bytes come back one "
            "too low",
        ),
        (
            x * 127.5 + 128,
            torch.round,
            "the offset is 128 instead of 127.5: (x + 1) * 127.5 = x * 127.5 + 127.5, so that -1 "
            "lands exactly on 0 and +1 on 255",
        ),
        (
            x * 128 + 128,
            torch.round,
            "x * 128 + 128 is not the inverse of to_float (which divides by 127.5): -1 and +1 must land "
            "exactly on 0 and 255",
        ),
        (
            (1 - x) * 127.5,
            torch.round,
            "the map is reversed: -1 (black) should give byte 0 and +1 (white) byte 255",
        ),
    ]


def _diagnose_uint8(out: torch.Tensor, x: torch.Tensor, expected: torch.Tensor) -> str:
    """Name the mistake that gives ``out`` (uint8) for the probes ``x`` instead of ``expected``."""
    got = out.long().flatten()
    for before, rounding, message in _uint8_candidates(x.flatten()):
        inside = (before >= 0) & (before <= 255)  # where a missing clamp cannot matter
        agree = (got[inside] == rounding(before[inside]).long()).float().mean()  # robust to float ties
        if inside.float().mean() > 0.4 and agree > 0.98:
            return message
    bad = (got != expected.long().flatten()).nonzero()[:, 0]
    k = int(bad[0])
    return (
        f"to_uint8(to_float(u)) should give every byte u back and round values in between to the nearest "
        f"byte: {_PROBE_BYTES[k].item():g} (x = {x.flatten()[k].item():.5f}) came back as {got[k].item()}, "
        f"not {expected.flatten()[k].item()} ({bad.numel()} of {got.numel()} probes wrong). Map [-1, 1] "
        "onto [0, 255] with (x + 1) * 127.5, then round, clamp to [0, 255] and cast to uint8, in this order"
    )


@checker(
    "0.2",
    "to_uint8",
    hints=(
        "Undo to_float's straight line: x + 1 is in [0, 2], times 127.5 gives [0, 255]. Then three "
        "things in this order: round() to the nearest byte (a cast truncates, 127.99 -> 127), clamp to "
        "[0, 255] (generated images stray outside [-1, 1], and a uint8 cast wraps 256 around to 0), "
        "and only then cast with .to(torch.uint8). Out of place: do not change the caller's x.",
        "def to_uint8(x):\n    y = (x + ...) * ...            # [-1, 1] -> [0, 255]\n"
        "    return y.round().clamp(..., ...).to(...)",
    ),
    reference="vitgan_lite.data:to_uint8",
)
def check_to_uint8(to_uint8: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check ``to_uint8(float in [-1, 1]) -> uint8``: the inverse of to_float, rounded and clipped."""
    x = _PROBE_X.clone()  # (1, 2, 1, 383): every byte, and values a quarter byte either side
    out = _returned(to_uint8(x), "to_uint8")
    if out.dtype == torch.int8:
        fail(
            "to_uint8 returns int8, whose range is -128 .. 127, so bytes above 127 wrap around: cast "
            "with .to(torch.uint8) (unsigned, 0 .. 255)"
        )
    expect(
        out.dtype == torch.uint8,
        f"to_uint8 should return a uint8 tensor, got {out.dtype}: after round() and clamp(), cast with "
        ".to(torch.uint8)",
    )
    expect(out.shape == x.shape, f"to_uint8 should keep the shape {tuple(x.shape)}, got {tuple(out.shape)}")
    expect(
        torch.equal(x, _PROBE_X),
        "to_uint8 changed its input in place (add_, mul_, clamp_, x += 1 ...): the caller's images "
        "would be altered. Compute a new tensor instead (x + 1 makes one; then no in-place steps on x)",
    )
    # A fixed map, value by value: the same x gives the same byte whatever the other pixels are.
    part = _PROBE_X[..., :40].clone()  # (1, 2, 1, 40): two narrow ranges, not the whole [-1, 1]
    alone = to_uint8(part)
    if not (
        isinstance(alone, torch.Tensor)
        and torch.equal(alone.flatten().long(), out[..., :40].flatten().long())
    ):
        fail(
            "to_uint8 gives a value another byte when the other pixels change: it stretches by "
            "statistics of the batch (min and max, mean and std). Map each value on its own, with the "
            "fixed numbers that undo to_float"
        )
    if not torch.equal(out, _PROBE_EXPECTED):
        fail(_diagnose_uint8(out, _PROBE_X, _PROBE_EXPECTED))
    # Clipping: generated images stray outside [-1, 1].
    wild = torch.tensor([-1.7, 1.4, -3.0, 2.0, 1.004, -1.004]).view(1, 6, 1, 1)  # (1, 6, 1, 1)
    got = to_uint8(wild.clone()).flatten().tolist()
    expect(
        got == [0, 255, 0, 255, 255, 0],
        f"values outside [-1, 1] should clip to 0 and 255, got {got} for [-1.7, 1.4, -3, 2, 1.004, -1.004]: "
        "clamp to [0, 255] before the uint8 cast (a cast wraps around instead: 256 -> 0, -1 -> 255; "
        "clamping after the cast is too late)",
    )
    # Float64 images (what NumPy makes) work as well, with the same bytes.
    x64 = torch.rand(2, 3, 4, 4, generator=seeded(1), dtype=torch.float64) * 2.4 - 1.2
    out64 = to_uint8(x64.clone())
    expect(
        isinstance(out64, torch.Tensor)
        and out64.dtype == torch.uint8
        and torch.equal(out64, ref_to_uint8(x64)),
        "to_uint8 should give the same bytes for float64 images as for float32 ones (uint8 out)",
    )
    x = torch.rand(2, 3, 4, 4, generator=seeded(2)) * 2.4 - 1.2
    expect(
        torch.equal(to_uint8(x.clone()), ref_to_uint8(x)),
        "to_uint8 disagrees with the reference on random inputs",
    )


__all__ = ["check_to_float", "check_to_uint8"]
