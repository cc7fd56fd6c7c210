"""Patches: exact round trip, row-major channels-first layout, conv equivalence, overlapping embedding."""

import pytest
import torch

from vitgan_lite.patches import OverlappingPatchEmbed, num_patches, patchify, unpatchify


@pytest.mark.parametrize("B,C,H,W,P", [(1, 3, 32, 32, 4), (3, 1, 8, 12, 4), (5, 2, 6, 6, 3)])
def test_round_trip_is_exact(B, C, H, W, P):
    x = torch.randn(B, C, H, W)
    p = patchify(x, P)
    assert p.shape == (B, (H // P) * (W // P), C * P * P)
    assert torch.equal(unpatchify(p, P, (H, W), C), x)


def test_hand_layout_2x2_image():
    # A 1-channel 4x4 image with values 0..15, P = 2: token 1 is the top-right block (row-major grid),
    # and its pixels are read row by row.
    x = torch.arange(16.0).view(1, 1, 4, 4)
    p = patchify(x, 2)
    assert p[0].tolist() == [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]


def test_channels_first_flattening():
    x = torch.zeros(1, 3, 2, 2)
    x[0, 1] = 1.0  # the green channel
    assert patchify(x, 2)[0, 0].tolist() == [0] * 4 + [1] * 4 + [0] * 4


def test_linear_on_patches_equals_strided_conv():
    x = torch.randn(2, 3, 8, 8)
    conv = torch.nn.Conv2d(3, 5, kernel_size=4, stride=4)
    want = conv(x).flatten(2).transpose(1, 2)
    got = patchify(x, 4) @ conv.weight.reshape(5, -1).T + conv.bias
    torch.testing.assert_close(got, want)


def test_token_count():
    assert num_patches(32, 4) == 64 and num_patches(32, 8) == 16


def test_errors_say_what_to_change():
    with pytest.raises(
        ValueError, match=r"image height 30 is not divisible by patch size 4: resize to 28 or 32"
    ):
        patchify(torch.randn(1, 3, 30, 32), 4)
    with pytest.raises(ValueError, match=r"add a batch dimension"):
        patchify(torch.randn(3, 32, 32), 4)
    with pytest.raises(ValueError, match=r"patches must have shape \(B, 64, 48\)"):
        unpatchify(torch.randn(2, 16, 48), 4, 32, 3)


def test_overlapping_embed_shape_and_gradients():
    emb = OverlappingPatchEmbed(image_size=32, patch_size=4, overlap=2, channels=3, dim=16)
    x = torch.randn(3, 3, 32, 32, requires_grad=True)
    out = emb(x)
    assert out.shape == (3, 64, 16) and torch.isfinite(out).all()
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in emb.parameters())


def test_overlap_lets_a_token_see_its_neighbour():
    # Change one pixel just right of token 0's 4x4 cell: with overlap 2 token 0 sees it, without it does not.
    x = torch.zeros(1, 3, 8, 8)
    y = x.clone()
    y[0, :, 1, 4] = 1.0
    for overlap, sees in ((2, True), (0, False)):
        emb = OverlappingPatchEmbed(8, 4, overlap, 3, 4)
        changed = not torch.allclose(emb(x)[0, 0], emb(y)[0, 0])
        assert changed == sees
    emb = OverlappingPatchEmbed(8, 4, 2, 3, 4)
    assert emb.receptive_field(0) == (0, 0, 6, 6) and emb.receptive_field(3) == (2, 2, 8, 8)


def test_overlapping_embed_refuses_wrong_sizes():
    emb = OverlappingPatchEmbed(32, 4, 2, 3, 8)
    with pytest.raises(ValueError, match="expected 32x32 images"):
        emb(torch.randn(1, 3, 16, 16))
    with pytest.raises(ValueError, match="must have 3 channels"):
        emb(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match="not divisible"):
        OverlappingPatchEmbed(30, 4, 2, 3, 8)
