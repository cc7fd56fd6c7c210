"""Tests for vitgan_lite.discriminator (lesson 05): the ViT discriminator with L2 attention and ISN."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import assert_grads_reach_every_parameter
from torch import nn

from vitgan_lite.config import get_config
from vitgan_lite.discriminator import DiscriminatorBlock, ViTDiscriminator
from vitgan_lite.spectral import ISN, SpectralNorm, spectral_parametrization

TINY = dict(image_size=8, patch_size=4, overlap=1, channels=3, dim=12, depth=2, num_heads=3, mlp_ratio=2.0)


def _tiny(**overrides) -> ViTDiscriminator:
    torch.manual_seed(0)
    return ViTDiscriminator(**{**TINY, **overrides})


def _images(batch: int, channels: int = 3, size: int = 8, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, channels, size, size, generator=g) * 2 - 1  # [-1, 1], the package convention


# ----------------------------------------------------------------------------- shapes and gradients
@pytest.mark.parametrize("batch, channels", [(1, 3), (3, 3), (5, 1)])
def test_output_is_one_finite_logit_per_image(batch: int, channels: int) -> None:
    d = _tiny(channels=channels)
    y = d(_images(batch, channels))
    assert y.shape == (batch,)
    assert torch.isfinite(y).all()
    assert d.tokens(_images(batch, channels)).shape == (batch, 2 * 2 + 1, 12)  # N = (8/4)^2 patches + CLS


def test_non_default_sizes() -> None:
    d = _tiny(image_size=12, patch_size=3, overlap=2, dim=8, depth=1, num_heads=2, mlp_ratio=1.5)
    assert d(_images(3, size=12)).shape == (3,)
    assert d.tokens(_images(1, size=12)).shape == (1, 16 + 1, 8)
    assert d.blocks[0].mlp.fc1.out_features == 12  # int(8 * 1.5)


@pytest.mark.parametrize("norm", ["isn", "sn", "none"])
def test_every_parameter_gets_a_gradient(norm: str) -> None:
    d = _tiny(spectral_norm=norm)
    (d(_images(3)) * torch.tensor([1.0, -2.0, 0.5])).sum().backward()
    # L2 attention ties W_q = W_k: the shared qk bias cancels in every q_i - k_j, so its true gradient is zero
    # (only float32 rounding, ~1e-7, reaches it).
    tied = tuple(name for name, _ in d.named_parameters() if name.endswith("attn.qk.bias"))
    assert_grads_reach_every_parameter(d, allow_zero=tied)


def test_r1_penalty_double_backward() -> None:
    # R1 (Mescheder et al. 2018) needs grad of the logits w.r.t. the images with create_graph=True, then a
    # backward through that gradient: every layer, ISN and the fast L2 attention included, must support it.
    d = _tiny()
    x = _images(3).requires_grad_(True)
    (g,) = torch.autograd.grad(d(x).sum(), x, create_graph=True)
    g.square().sum().backward()
    assert d.head.parametrizations.weight.original.grad.abs().sum() > 0
    assert d.blocks[0].attn.qk.parametrizations.weight.original.grad.abs().sum() > 0


def test_deepcopy_keeps_the_spectral_state() -> None:
    d = _tiny().eval()
    twin = copy.deepcopy(d)
    x = _images(2)
    torch.testing.assert_close(twin(x), d(x))
    assert twin.head.parametrizations.weight.original is not d.head.parametrizations.weight.original


def test_block_is_pre_norm_residual() -> None:
    torch.manual_seed(2)
    block = DiscriminatorBlock(dim=8, num_heads=2, mlp_ratio=2.0)
    x = torch.randn(3, 5, 8)
    h = x + block.attn(block.norm1(x))  # independent recomputation of h' and h
    expected = h + block.mlp.fc2(nn.functional.gelu(block.mlp.fc1(block.norm2(h))))
    torch.testing.assert_close(block(x), expected)


# ----------------------------------------------------------------------------- the CLS token
def test_forward_matches_a_hand_assembled_vit() -> None:
    d = _tiny().eval()  # eval: u, v fixed, so the two passes use identical weights
    x = _images(3)
    h = d.patch_embed.proj(x).flatten(2).transpose(1, 2)  # (B, N, D), row-major patches
    h = torch.cat([d.cls_token.expand(3, 1, 12), h], dim=1)  # CLS first
    h = h + torch.cat([d.cls_pos, d.pos_embed()], dim=0)
    for block in d.blocks:
        h = block(h)
    torch.testing.assert_close(d.tokens(x), h)
    torch.testing.assert_close(d(x), d.head(d.norm(h[:, 0])).squeeze(-1))  # y = LN(h_L^0)


def test_the_cls_token_is_the_one_pooled() -> None:
    d = _tiny().eval()
    x = _images(3)
    y = d(x)
    h = d.tokens(x)
    # A model that pooled the last token (or the mean) would give a different logit.
    assert not torch.allclose(y, d.head(d.norm(h[:, -1])).squeeze(-1))
    assert not torch.allclose(y, d.head(d.norm(h.mean(dim=1))).squeeze(-1))
    # Changing only the CLS parameter changes the logit. (Not by a constant: every LayerNorm would
    # remove a shift shared by all of the CLS token's features.)
    with torch.no_grad():
        d.cls_token.add_(0.5 * torch.randn(12))
    assert not torch.allclose(d(x), y)


def test_input_changes_reach_the_logit() -> None:
    d = _tiny().eval()
    x = _images(3)
    y = d(x)
    x2 = x.clone()
    x2[0, 1, 3, 5] += 0.5  # one pixel of image 0
    y2 = d(x2)
    assert (y2[0] - y[0]).abs() > 1e-6
    torch.testing.assert_close(y2[1:], y[1:])  # images are independent


# ----------------------------------------------------------------------------- the head
def test_no_nonlinearity_after_the_head_none() -> None:
    d = _tiny(spectral_norm="none").eval()
    x = _images(4)
    with torch.no_grad():
        d.head.bias.zero_()
        y1 = d(x)
        d.head.weight.mul_(-300.0)
        y2 = d(x)
    torch.testing.assert_close(y2, -300.0 * y1)  # linear in the head weight: no GELU/tanh/sigmoid after it
    assert y2.min() < -1.0 and y2.max() > 1.0  # large logits of both signs come through


def test_no_nonlinearity_after_the_head_isn() -> None:
    # Under ISN the effective head weight is sigma_init * W / sigma(W): scale it through sigma_init.
    d = _tiny(spectral_norm="isn").eval()
    x = _images(4)
    with torch.no_grad():
        d.head.bias.zero_()
        y1 = d(x)
        spectral_parametrization(d.head).sigma_init.mul_(-50.0)
        y2 = d(x)
    torch.testing.assert_close(y2, -50.0 * y1)


# ----------------------------------------------------------------------------- spectral normalization
@pytest.mark.parametrize("norm, cls", [("isn", ISN), ("sn", SpectralNorm), ("none", type(None))])
def test_every_linear_and_conv_is_wrapped(norm: str, cls: type) -> None:
    d = _tiny(spectral_norm=norm)
    layers = {n: m for n, m in d.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}
    # patch conv + E_pos linear + 5 per block (qk, v, proj, fc1, fc2) + head
    assert len(layers) == 2 + 5 * TINY["depth"] + 1
    for name, layer in layers.items():
        assert type(spectral_parametrization(layer)) is cls, name


def test_isn_records_sigma_init_of_the_initialized_weights() -> None:
    d = _tiny()
    for name, m in d.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            W = m.parametrizations.weight.original.detach().flatten(1)
            sigma = torch.linalg.matrix_norm(W, ord=2)
            torch.testing.assert_close(spectral_parametrization(m).sigma_init, sigma, msg=name)
    # Re-initializing after wrapping re-records sigma(W_init) for the new weights.
    with torch.no_grad():
        d.head.parametrizations.weight.original.mul_(7.0)
    d.initialize_weights()
    W = d.head.parametrizations.weight.original.detach()
    torch.testing.assert_close(
        spectral_parametrization(d.head).sigma_init, torch.linalg.matrix_norm(W, ord=2)
    )


def test_fast_and_naive_attention_agree() -> None:
    fast, naive = _tiny(fast=True).eval(), _tiny(fast=False).eval()
    naive.load_state_dict(fast.state_dict())
    x = _images(3)
    torch.testing.assert_close(fast(x), naive(x), atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- config and errors
def test_from_config_presets() -> None:
    counts = {}
    for preset in ("paper-cifar10", "seed-report-cifar10", "tiny-cpu"):
        cfg = get_config(preset)
        # SN/ISN add buffers, not parameters: count the big presets without them (their exact-SVD
        # sigma(W_init) of every layer is slow on a busy 2-core CI box); tiny-cpu is built as configured.
        d = ViTDiscriminator.from_config(cfg if preset == "tiny-cpu" else cfg.replace(d_spectral_norm="none"))
        assert d.dim == cfg.d_dim and len(d.blocks) == cfg.d_depth
        assert d.patch_embed.proj.kernel_size == (cfg.d_patch_size + 2 * cfg.d_overlap,) * 2
        counts[preset] = d.num_parameters()
    # Paper, by hand (D = 192, hidden 768, kernel 4 + 2*2 = 8):
    #   patch conv 3*8*8*192 + 192 = 37056; CLS 192; CLS position 192; E_pos linear 2*192 + 192 = 576;
    #   per block: 2 LayerNorms 4*192 = 768, qk/v/proj 3 * (192*192 + 192) = 111168,
    #   fc1 192*768 + 768 = 148224, fc2 768*192 + 192 = 147648 -> 407808, times 4 = 1631232;
    #   final LayerNorm 384; head 192 + 1 = 193. Total 1669825.
    assert counts["paper-cifar10"] == 1_669_825
    assert counts["tiny-cpu"] < counts["paper-cifar10"] < counts["seed-report-cifar10"]
    tiny = get_config("tiny-cpu")
    assert tiny.d_spectral_norm == "isn"
    bare = ViTDiscriminator.from_config(tiny.replace(d_spectral_norm="none"))
    assert bare.num_parameters() == counts["tiny-cpu"]


def test_trainable_parameter_count() -> None:
    d = _tiny()
    assert d.num_parameters(trainable_only=True) == d.num_parameters()
    d.cls_token.requires_grad_(False)
    assert d.num_parameters(trainable_only=True) == d.num_parameters() - 12


def test_bad_inputs_raise_clear_errors() -> None:
    d = _tiny()
    with pytest.raises(ValueError, match="built for 8x8 images, got 12x12"):
        d(_images(2, size=12))
    with pytest.raises(ValueError, match="must have 3 channels"):
        d(_images(2, channels=1))
    with pytest.raises(ValueError, match=r"add a batch dimension"):
        d(_images(1)[0])
    with pytest.raises(ValueError, match="not divisible by patch size"):
        ViTDiscriminator(image_size=10, patch_size=4)
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        ViTDiscriminator(image_size=8, patch_size=4, dim=10, num_heads=3)
    with pytest.raises(ValueError, match="mode must be one of"):
        ViTDiscriminator(image_size=8, patch_size=4, dim=12, num_heads=3, spectral_norm="spectral")
