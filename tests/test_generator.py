"""Tests for vitgan_lite/generator.py: SLN blocks, the ViTGAN generator and its patch assembly (lesson 08)."""

from __future__ import annotations

import pytest
import torch
from helpers import assert_grads_reach_every_parameter
from torch import nn

from vitgan_lite.config import get_config
from vitgan_lite.generator import GeneratorBlock, ViTGenerator
from vitgan_lite.positional import SinePositionalEmbedding

TINY = dict(
    image_size=8,
    patch_size=2,
    channels=3,
    latent_dim=8,
    style_dim=6,
    mapping_layers=2,
    dim=8,
    depth=2,
    num_heads=2,
    mlp_ratio=2.0,
    fourier_dim=6,
    decoder_dim=5,
)


@pytest.fixture
def gen() -> ViTGenerator:
    torch.manual_seed(0)
    return ViTGenerator(**TINY)


# ----------------------------------------------------------------------------------------------------
# GeneratorBlock


def test_block_shape_and_grads():
    torch.manual_seed(0)
    block = GeneratorBlock(dim=8, num_heads=2, mlp_ratio=1.5, style_dim=5)
    h = torch.randn(3, 7, 8)
    out = block(h, torch.randn(3, 5))
    assert out.shape == (3, 7, 8) and torch.isfinite(out).all()
    assert block.mlp.fc1.out_features == 12  # int(8 * 1.5)
    (out * torch.randn_like(out)).sum().backward()
    assert_grads_reach_every_parameter(block)


def test_block_has_two_different_slns():
    block = GeneratorBlock(dim=8, num_heads=2, mlp_ratio=2.0, style_dim=5)
    assert block.norm1 is not block.norm2
    ids1 = {id(p) for p in block.norm1.parameters()}
    assert ids1.isdisjoint(id(p) for p in block.norm2.parameters())
    assert not torch.equal(block.norm1.gamma.weight, block.norm2.gamma.weight)


def test_block_residuals_add_the_unnormalised_input():
    # With both branches silenced (their last layers zero) the block must be the identity: the residual
    # carries h itself, not SLN(h, w) (a mistake of some ports, which re-assign h = norm(h) first).
    torch.manual_seed(0)
    block = GeneratorBlock(dim=8, num_heads=2, mlp_ratio=2.0, style_dim=5)
    with torch.no_grad():
        for layer in (block.attn.proj, block.mlp.fc2):
            layer.weight.zero_()
            layer.bias.zero_()
    h = 3.0 * torch.randn(2, 4, 8) + 1.0
    torch.testing.assert_close(block(h, torch.randn(2, 5)), h)


@pytest.mark.parametrize("last_layer", ["mlp.fc2", "attn.proj"])
def test_block_both_branches_matter(last_layer):
    # Zeroing the last layer of a branch must change the output, or that branch's result is discarded.
    torch.manual_seed(0)
    block = GeneratorBlock(dim=8, num_heads=2, mlp_ratio=2.0, style_dim=5)
    h, w = torch.randn(2, 4, 8), torch.randn(2, 5)
    before = block(h, w)
    with torch.no_grad():
        layer = block.get_submodule(last_layer)
        layer.weight.zero_()
        layer.bias.zero_()
    assert (block(h, w) - before).abs().max() > 1e-3


def test_block_bad_mlp_ratio():
    with pytest.raises(ValueError, match="use mlp_ratio > 0"):
        GeneratorBlock(dim=8, num_heads=2, mlp_ratio=0.0, style_dim=5)


# ----------------------------------------------------------------------------------------------------
# ViTGenerator


def test_generator_output_shape_range_finite(gen):
    x = gen(torch.randn(3, 8))
    assert x.shape == (3, 3, 8, 8)
    assert torch.isfinite(x).all()
    assert x.min() >= -1.0 and x.max() <= 1.0


def test_generator_single_channel_and_odd_batch():
    torch.manual_seed(0)
    g = ViTGenerator(**{**TINY, "channels": 1, "image_size": 6, "patch_size": 3})
    assert g(torch.randn(5, 8)).shape == (5, 1, 6, 6)


def test_generator_gradients_reach_every_parameter(gen):
    x = gen(torch.randn(3, 8))
    (x * torch.randn_like(x)).sum().backward()
    assert_grads_reach_every_parameter(gen)


def test_generator_output_depends_on_z(gen):
    z = torch.randn(2, 8)
    x = gen(z)
    assert (x[0] - x[1]).abs().max() > 1e-3  # two z in one batch give two images
    assert (gen(torch.randn(2, 8)) - x).abs().max() > 1e-3


def test_generator_batch_items_are_independent(gen):
    # Every image is made from its own w only (no statistics across the batch leak between images).
    z = torch.randn(3, 8)
    together = gen(z)
    alone = torch.cat([gen(z[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone)


def test_generator_w_path(gen):
    z = torch.randn(3, 8)
    x, w = gen(z, return_w=True)
    assert w.shape == (3, 6)
    torch.testing.assert_close(w, gen.mapping(z))
    torch.testing.assert_close(gen.synthesize(w), x)


def test_generator_structure(gen):
    assert isinstance(gen.pos_embed, SinePositionalEmbedding) and gen.pos_embed.grid_size == 4
    assert len(gen.blocks) == 2
    # The final SLN is one more instance of its own, and the init of every SLN survived initialize_weights.
    norms = [gen.norm] + [n for b in gen.blocks for n in (b.norm1, b.norm2)]
    assert len({id(n) for n in norms}) == 5
    for n in norms:
        torch.testing.assert_close(n.gamma.bias, torch.ones(8))


def test_patch_assembly(gen):
    # A decoder stub that fills token n's patch with a value naming (channel c, token n, pixel k of the
    # patch): v = 0.001 * (k + P*P * (n + N * c)). Hand layout of the image: pixel (r, col) belongs to token
    # n = (r // P) * (W / P) + col // P and is pixel k = (r % P) * P + col % P of its patch.
    P, C, H, W = 2, 3, 8, 8
    N = (H // P) * (W // P)

    class Stub(nn.Module):
        def forward(self, y: torch.Tensor) -> torch.Tensor:
            c = torch.arange(C).view(C, 1, 1)
            n = torch.arange(N).view(1, N, 1)
            k = torch.arange(P * P).view(1, 1, P * P)
            v = 0.001 * (k + P * P * (n + N * c))  # (C, N, P*P)
            return v.permute(1, 0, 2).reshape(1, N, C * P * P).expand(y.shape[0], -1, -1)  # (B, N, C*P*P)

    gen.decoder = Stub()
    x = gen(torch.randn(3, 8))
    r = torch.arange(H).view(H, 1)
    col = torch.arange(W).view(1, W)
    n = (r // P) * (W // P) + col // P  # (H, W)
    k = (r % P) * P + col % P  # (H, W)
    expected = torch.stack([0.001 * (k + P * P * (n + N * c)) for c in range(C)])  # (C, H, W)
    torch.testing.assert_close(x, torch.tanh(expected).expand(3, C, H, W))


def test_generator_bad_inputs(gen):
    with pytest.raises(ValueError, match=r"z must have shape \(B, 8\)"):
        gen(torch.randn(3, 7))
    with pytest.raises(ValueError, match=r"z must have shape \(B, 8\)"):
        gen(torch.randn(8))
    with pytest.raises(ValueError, match=r"w must have shape \(B, 6\)"):
        gen.synthesize(torch.randn(3, 8))
    with pytest.raises(ValueError, match="image size 30 is not divisible by patch size 4"):
        ViTGenerator(**{**TINY, "image_size": 30, "patch_size": 4})


@pytest.mark.parametrize("preset", ["paper-cifar10", "seed-report-cifar10", "tiny-cpu"])
def test_from_config_presets(preset):
    cfg = get_config(preset)
    g = ViTGenerator.from_config(cfg)
    assert (g.image_size, g.patch_size, g.channels) == (cfg.image_size, cfg.g_patch_size, cfg.channels)
    assert (g.latent_dim, g.style_dim, g.dim) == (cfg.latent_dim, cfg.style_dim, cfg.g_dim)
    assert len(g.blocks) == cfg.g_depth and len(g.mapping.layers) == cfg.mapping_layers
    assert g.blocks[0].attn.num_heads == cfg.g_num_heads
    assert g.decoder.hidden.out_dim == cfg.g_decoder_dim and g.decoder.fourier.dim == cfg.g_fourier_dim
    assert g.num_parameters() == sum(p.numel() for p in g.parameters()) > 0
    if preset == "tiny-cpu":
        # Hand count, D = S = latent = 64, MLP 256, E_fou 64, decoder 64, C = 3:
        # mapping 2 * (64*64 + 64) = 8320; E_pos 2*64 + 64 = 192;
        # block: 2 SLN * 2 * (64*64 + 64) = 16640, qkv 64*192 + 192 = 12480, proj 4160,
        #        MLP 64*256 + 256 + 256*64 + 64 = 33088 -> 66368, times 2 blocks = 132736; final SLN 8320;
        # decoder: E_fou 192, hidden 64*64 + 64 + affine 4160 = 8320, toRGB 3*64 + 3 + affine 4160 = 4355.
        assert g.num_parameters() == 8320 + 192 + 132736 + 8320 + 192 + 8320 + 4355
        x = g(torch.randn(2, cfg.latent_dim))
        assert x.shape == (2, 3, 32, 32) and torch.isfinite(x).all()
