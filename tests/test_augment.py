"""Tests for vitgan_lite.augment: DiffAugment (lesson 09)."""

from __future__ import annotations

import pytest
import torch

from vitgan_lite.augment import (
    AUGMENT_FNS,
    diff_augment,
    parse_policy,
    rand_brightness,
    rand_contrast,
    rand_cutout,
    rand_saturation,
    rand_translation,
)
from vitgan_lite.config import ConfigError, get_config

ALL_FNS = [rand_brightness, rand_saturation, rand_contrast, rand_translation, rand_cutout]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(B: int, C: int = 3, H: int = 8, W: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(B, C, H, W, generator=gen(seed)) * 2 - 1  # (B, C, H, W) in [-1, 1)


def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Reference shift by slicing: out[..., i, j] = x[..., i - dy, j - dx], zero where that is outside."""
    H, W = x.shape[-2:]
    out = torch.zeros_like(x)
    out[..., max(dy, 0) : H + min(dy, 0), max(dx, 0) : W + min(dx, 0)] = x[
        ..., max(-dy, 0) : H + min(-dy, 0), max(-dx, 0) : W + min(-dx, 0)
    ]
    return out


# ---------------------------------------------------------------------------------------------------
# every augmentation


@pytest.mark.parametrize("fn", ALL_FNS + [diff_augment], ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_finite(fn, dtype):
    x = images(3, C=3, H=8, W=12).to(dtype)  # odd batch, non-square
    y = fn(x, generator=gen())
    assert y.shape == x.shape and y.dtype == dtype and y.device == x.device
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("fn", ALL_FNS + [diff_augment], ids=lambda f: f.__name__)
def test_differentiable(fn):
    x = images(3).requires_grad_()
    fn(x, generator=gen()).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("fn", ALL_FNS, ids=lambda f: f.__name__)
def test_draws_are_per_sample(fn):
    # identical images in, different augmentations out: one draw shared by the batch would fail this
    x = images(1, H=16, W=16).expand(8, -1, -1, -1)  # (8, 3, 16, 16), all the same image
    y = fn(x, generator=gen(1))
    distinct = {tuple(y[i].flatten().tolist()) for i in range(8)}
    assert len(distinct) >= 4, f"{fn.__name__} gave only {len(distinct)} distinct results for 8 samples"


@pytest.mark.parametrize("fn", ALL_FNS + [diff_augment], ids=lambda f: f.__name__)
def test_seeded_generator_is_reproducible(fn):
    x = images(4, H=16, W=16)
    torch.testing.assert_close(fn(x, generator=gen(3)), fn(x, generator=gen(3)), rtol=0, atol=0)
    assert not torch.equal(fn(x, generator=gen(3)), fn(x, generator=gen(4)))


def test_generator_threads_through_the_policy():
    # independent reference: the color policy is brightness, saturation, contrast, in that order, all
    # drawing from the one generator
    x = images(5)
    g = gen(7)
    ref = rand_contrast(rand_saturation(rand_brightness(x, generator=g), generator=g), generator=g)
    torch.testing.assert_close(diff_augment(x, "color", generator=gen(7)), ref)
    g = gen(8)
    ref = rand_cutout(rand_translation(x, generator=g), generator=g)
    torch.testing.assert_close(diff_augment(x, "translation,cutout", generator=gen(8)), ref)


# ---------------------------------------------------------------------------------------------------
# color


def test_brightness_offsets():
    x = images(512, H=4, W=4)
    delta = rand_brightness(x, generator=gen(2)) - x  # (B, C, H, W)
    per_sample = delta[:, :1, :1, :1]  # (B, 1, 1, 1)
    torch.testing.assert_close(delta, per_sample.expand_as(delta))  # one offset per sample
    assert delta.min() >= -0.5 and delta.max() < 0.5  # r - 0.5 with r in [0, 1)
    assert delta.min() < -0.45 and delta.max() > 0.45  # and the whole range is used


def test_saturation_scales_distance_to_grey():
    x = images(64)
    y = rand_saturation(x, generator=gen(3))
    m = x.mean(dim=1, keepdim=True)  # (B, 1, H, W): the grey value, which saturation keeps
    torch.testing.assert_close(y.mean(dim=1, keepdim=True), m)
    k = ((y - m) * (x - m)).sum(dim=(1, 2, 3)) / (x - m).square().sum(dim=(1, 2, 3))  # (B,) least squares
    torch.testing.assert_close(y - m, (x - m) * k[:, None, None, None])  # y - m = (x - m) * 2r
    assert k.min() >= 0 and k.max() < 2 and k.max() > 1.5


def test_contrast_scales_distance_to_image_mean():
    x = images(64)
    y = rand_contrast(x, generator=gen(4))
    m = x.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    torch.testing.assert_close(y.mean(dim=(1, 2, 3), keepdim=True), m)
    k = ((y - m) * (x - m)).sum(dim=(1, 2, 3)) / (x - m).square().sum(dim=(1, 2, 3))  # (B,)
    torch.testing.assert_close(y - m, (x - m) * k[:, None, None, None])  # y - m = (x - m) * (r + 0.5)
    assert k.min() >= 0.5 and k.max() < 1.5


# ---------------------------------------------------------------------------------------------------
# translation


@pytest.mark.parametrize("H,W,ratio", [(16, 16, 0.125), (8, 16, 0.25), (12, 12, 0.2)])
def test_translation_is_a_zero_filled_shift(H: int, W: int, ratio: float):
    B = 96
    base = torch.arange(1, 3 * H * W + 1, dtype=torch.float32).view(1, 3, H, W)  # unique, non-zero values
    y = rand_translation(base.expand(B, -1, -1, -1), ratio=ratio, generator=gen(5))
    sh, sw = int(H * ratio + 0.5), int(W * ratio + 0.5)  # (16, .125) -> 2; (8, .25) -> 2, (16, .25) -> 4
    shifts = []
    for i in range(B):
        matches = [
            (dy, dx)
            for dy in range(-sh - 1, sh + 2)  # search one step beyond s: a shift of s + 1 must not occur
            for dx in range(-sw - 1, sw + 2)
            if torch.equal(y[i], shifted(base[0], dy, dx))
        ]
        assert len(matches) == 1, f"sample {i} is not a zero-filled shifted copy of the input"
        shifts.append(matches[0])
    dys, dxs = zip(*shifts)
    assert max(map(abs, dys)) == sh and max(map(abs, dxs)) == sw  # never beyond s, and s itself occurs
    assert {-sh, sh} <= set(dys) and {-sw, sw} <= set(dxs)
    assert len(set(shifts)) > max(2 * sh + 1, 2 * sw + 1)  # the two axes are drawn independently


def test_translation_ratio_zero_is_identity_and_bad_ratio_raises():
    x = images(3)
    torch.testing.assert_close(rand_translation(x, ratio=0.0, generator=gen()), x)
    with pytest.raises(ValueError, match=r"translation ratio must lie in \[0, 1\]"):
        rand_translation(x, ratio=1.5)


# ---------------------------------------------------------------------------------------------------
# cutout


@pytest.mark.parametrize("H,ratio", [(16, 0.5), (10, 0.3)])
def test_cutout_square(H: int, ratio: float):
    B = 200
    x = torch.rand(B, 3, H, H, generator=gen(6)) + 0.5  # no zeros anywhere before cutout
    y = rand_cutout(x, ratio=ratio, generator=gen(7))
    side = int(H * ratio + 0.5)  # 16 * 0.5 -> 8; 10 * 0.3 -> 3 (odd)
    hole = y == 0  # (B, C, H, W)
    assert (hole == hole[:, :1]).all(), "the square must cut all channels alike"
    torch.testing.assert_close(y[~hole], x[~hole], rtol=0, atol=0)  # outside the square nothing changes
    inside = clipped_rows = clipped_cols = 0
    for i in range(B):
        rows = hole[i, 0].any(dim=1).nonzero().flatten()  # rows touched by the hole
        cols = hole[i, 0].any(dim=0).nonzero().flatten()
        assert len(rows) > 0, f"sample {i} has no hole"
        r0, r1, c0, c1 = rows.min().item(), rows.max().item() + 1, cols.min().item(), cols.max().item() + 1
        assert hole[i, 0].sum() == (r1 - r0) * (c1 - c0), "the hole must be a filled rectangle"
        assert hole[i, 0, r0:r1, c0:c1].all()
        assert r1 - r0 <= side and c1 - c0 <= side
        if not (r0 == 0 or c0 == 0 or r1 == H or c1 == H):
            assert (r1 - r0, c1 - c0) == (side, side), "a square fully inside is exactly side x side"
            inside += 1
        clipped_rows += r1 - r0 < side
        clipped_cols += c1 - c0 < side
    assert inside > 0, "over many draws, some squares must fall fully inside"
    assert clipped_rows > 0 and clipped_cols > 0, "the centre is uniform: squares must also cross each border"


def test_cutout_bad_ratio_raises():
    with pytest.raises(ValueError, match=r"cutout ratio must lie in \[0, 1\]"):
        rand_cutout(images(2), ratio=-0.1)


# ---------------------------------------------------------------------------------------------------
# policy


def test_the_config_checks_policies_against_this_table():
    # one home for the augmentation names: the config validates through parse_policy and AUGMENT_FNS
    assert AUGMENT_FNS["color"] == [rand_brightness, rand_saturation, rand_contrast]
    assert get_config("tiny-cpu", diffaug_policy="cutout, color").diffaug_policy == "cutout, color"
    with pytest.raises(ConfigError, match=r"diffaug_policy.*'flip'.*color, translation, cutout"):
        get_config("tiny-cpu", diffaug_policy="color,flip")


@pytest.mark.parametrize("policy", ["", " ", ",", " , "])
def test_empty_policy_is_identity(policy: str):
    x = images(3)
    assert parse_policy(policy) == []
    torch.testing.assert_close(diff_augment(x, policy, generator=gen()), x, rtol=0, atol=0)


def test_policy_parsing_tolerates_spaces():
    assert parse_policy(" color , cutout") == ["color", "cutout"]


def test_unknown_policy_raises():
    with pytest.raises(ValueError, match=r"unknown DiffAugment policy 'flip'.*color, translation, cutout"):
        diff_augment(images(2), "color,flip")


def test_bad_input_raises():
    with pytest.raises(ValueError, match=r"shape \(B, C, H, W\).*unsqueeze"):
        diff_augment(images(1)[0])
    with pytest.raises(TypeError, match="float image batch.*to_float"):
        rand_brightness(torch.zeros(2, 3, 4, 4, dtype=torch.uint8))
