"""Checkers for lesson 01 (patches): Exercise 1.1 ``patchify`` and Exercise 1.2 ``unpatchify``."""

from __future__ import annotations

from collections.abc import Callable

import torch

from vitgan_lite.checks._core import checker, expect_close, expect_tensor, fail, seeded
from vitgan_lite.patches import patchify as ref_patchify

# (B, C, H, W, P): odd batches, one and two channels, a non-square image, several patch sizes.
CASES = [(2, 3, 8, 8, 4), (3, 1, 12, 8, 4), (5, 2, 6, 6, 2), (1, 3, 32, 32, 4), (4, 3, 8, 8, 8)]


def _channels_last(x: torch.Tensor, P: int) -> torch.Tensor:
    B, C, H, W = x.shape
    x = x.reshape(B, C, H // P, P, W // P, P).permute(0, 2, 4, 3, 5, 1)  # (B, H/P, W/P, P, P, C)
    return x.reshape(B, -1, C * P * P)


def _column_major(x: torch.Tensor, P: int) -> torch.Tensor:
    B, C, H, W = x.shape
    x = x.reshape(B, C, H // P, P, W // P, P).permute(0, 4, 2, 1, 3, 5)  # (B, W/P, H/P, C, P, P)
    return x.reshape(B, -1, C * P * P)


def _pixels_transposed(x: torch.Tensor, P: int) -> torch.Tensor:
    B, C, H, W = x.shape
    x = x.reshape(B, C, H // P, P, W // P, P).permute(0, 2, 4, 1, 5, 3)  # (B, H/P, W/P, C, P_w, P_h)
    return x.reshape(B, -1, C * P * P)


def _diagnose_patchify(out: torch.Tensor, x: torch.Tensor, P: int) -> str:
    """Name the mistake that turns ``x`` into ``out``, if it is one we know."""
    B, C, H, W = x.shape
    if torch.equal(out, _channels_last(x, P)):
        return (
            "your patch vectors are flattened channels-last, (P, P, C). This course flattens each patch "
            "channels-first, (C, P, P), so that a linear layer on patch vectors equals a Conv2d with "
            "kernel_size=P, stride=P: permute to (B, H/P, W/P, C, P, P) before the last reshape"
        )
    if torch.equal(out, _column_major(x, P)):
        return (
            "your tokens run down the columns (the patch grid is transposed): token 1 should be the patch "
            "to the RIGHT of token 0, not below it. Put the grid-row axis H/P before the grid-column axis "
            "W/P in your permute"
        )
    if torch.equal(out, _pixels_transposed(x, P)):
        return (
            "inside each patch the pixels are transposed (columns before rows): keep the patch's own axes "
            "in the order (C, P_rows, P_cols)"
        )
    if not torch.equal(out[:, 0].sort(dim=1).values, x[:, :, :P, :P].reshape(B, -1).sort(dim=1).values):
        return (
            f"patch 0 is not the top-left {P}x{P} block of the image: did you reshape to (B, N, C*P*P) "
            "without permuting first? Split H and W into (H/P, P) and (W/P, P), permute the two grid axes "
            "to the front, then flatten"
        )
    return (
        "patch 0 holds the right pixels but in the wrong order, or later patches are wrong: compare "
        "your permute with the (B, H/P, W/P, C, P, P) order described above"
    )


@checker("1.1", "patchify")
def check_patchify(patchify: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
    """Check a learner's ``patchify(x, patch_size) -> (B, N, C*P*P)`` against the reference."""
    for seed, (B, C, H, W, P) in enumerate(CASES):
        x = torch.randn(B, C, H, W, generator=seeded(seed))
        out = patchify(x.clone(), P)
        N, D = (H // P) * (W // P), C * P * P
        expect_tensor(out, (B, N, D), f"patchify of a {(B, C, H, W)} batch with patch size {P}")
        expected = ref_patchify(x, P)
        if not torch.equal(out, expected):
            fail(f"for x of shape {(B, C, H, W)} and patch size {P}: {_diagnose_patchify(out, x, P)}")
    # Defining property: a linear layer on patch vectors is a strided convolution.
    x = torch.randn(2, 3, 8, 8, generator=seeded(10))
    conv = torch.nn.Conv2d(3, 5, kernel_size=4, stride=4)
    via_conv = conv(x).flatten(2).transpose(1, 2)  # (B, N, 5)
    via_linear = patchify(x, 4) @ conv.weight.reshape(5, -1).T + conv.bias  # (B, N, 5)
    expect_close(via_linear, via_conv, "a linear layer on your patches should equal Conv2d(k=P, stride=P)")


@checker("1.2", "unpatchify")
def check_unpatchify(unpatchify: Callable[..., torch.Tensor]) -> None:
    """Check a learner's ``unpatchify(patches, patch_size, image_size, channels) -> (B, C, H, W)``."""
    for seed, (B, C, H, W, P) in enumerate(CASES):
        if H != W:
            continue  # image_size is one int in the exercise
        x = torch.randn(B, C, H, W, generator=seeded(seed))
        patches = ref_patchify(x, P)
        out = unpatchify(patches.clone(), P, H, C)
        expect_tensor(out, (B, C, H, W), f"unpatchify of {tuple(patches.shape)} patches")
        if torch.equal(out, x):
            continue
        first = out[:, :, :P, :P].reshape(B, -1)
        if not torch.equal(first, patches[:, 0]) and torch.equal(
            first.sort(1).values, patches[:, 0].sort(1).values
        ):
            fail(
                f"the top-left {P}x{P} block holds patch 0's pixels, but in the wrong order, so "
                "unpatchify(patchify(x)) does not give x back: inside each patch keep the axes "
                "(C, P_rows, P_cols); from (B, H/P, W/P, C, P, P) permute with (0, 3, 1, 4, 2, 5)"
            )
        if not torch.equal(first, patches[:, 0]):
            fail(
                f"the top-left {P}x{P} block of your image is not patch 0 (image size {H}, patch {P}, "
                f"{C} channels): reshape the patches to (B, H/P, W/P, C, P, P) and permute to "
                "(B, C, H/P, P, W/P, P) before the final reshape"
            )
        fail(
            f"unpatchify(patchify(x)) does not give x back (image size {H}, patch {P}, {C} channels): "
            "the permute must be the exact inverse of patchify's, (0, 3, 1, 4, 2, 5) from "
            "(B, H/P, W/P, C, P, P)"
        )
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
