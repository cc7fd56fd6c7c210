"""The ablation switches of lesson 13 are real code paths: shapes, gradients, the property each removes."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import assert_grads_reach_every_parameter, tiny_config, write_image_folder
from torch import nn

from vitgan_lite.attention import L2MultiHeadAttention, MultiHeadAttention
from vitgan_lite.config import ARCH_FIELDS, ConfigError
from vitgan_lite.diagnostics import attention_logits, input_gradient_norm, logit_spread, sample_diversity
from vitgan_lite.discriminator import ViTDiscriminator
from vitgan_lite.generator import LayerNormIgnoringW, ViTGenerator
from vitgan_lite.inr import PatchCoordinateEncoding, PatchDecoder
from vitgan_lite.modulation import SLN
from vitgan_lite.run.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")
SWITCHES = (
    "d_attention",
    "d_overlap",
    "d_spectral_norm",
    "g_modulation",
    "g_patch_head",
    "g_fourier_features",
)


def images(B=3, seed=0):
    return torch.rand(B, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1  # (B, 3, 16, 16)


def nets(**overrides):
    cfg = tiny_config(**overrides)
    torch.manual_seed(0)
    return ViTGenerator.from_config(cfg), ViTDiscriminator.from_config(cfg), cfg


def test_every_switch_is_an_architecture_field_and_checked():
    assert set(SWITCHES) <= set(ARCH_FIELDS), "a switch that reshapes the networks must block a wrong resume"
    for field, bad in (("d_attention", "cosine"), ("g_modulation", "cross"), ("g_patch_head", "conv")):
        with pytest.raises(ConfigError, match=field):
            tiny_config(**{field: bad})


@pytest.mark.parametrize(
    "overrides",
    [
        {"d_attention": "dot"},
        {"d_overlap": 0},
        {"g_modulation": "input"},
        {"g_patch_head": "linear"},
        {"g_fourier_features": False},
    ],
    ids=lambda o: next(iter(o)),
)
def test_each_ablation_trains_end_to_end(overrides):
    G, D, cfg = nets(**overrides)
    x = G(torch.randn(3, cfg.latent_dim))  # (3, C, H, W)
    assert x.shape == (3, 3, 16, 16) and torch.isfinite(x).all()
    logits = D(x)  # (3,)
    assert logits.shape == (3,) and torch.isfinite(logits).all()
    (logits.sum() + D(images()).sum()).backward()
    # the tied L2 qk bias cancels in every logit q_i - k_j: only rounding reaches it
    tied = tuple(f"blocks.{i}.attn.qk.bias" for i in range(cfg.d_depth))
    assert_grads_reach_every_parameter(G)
    assert_grads_reach_every_parameter(D, allow_zero=tied)


def test_dot_attention_unties_q_and_k_and_its_logits_are_unbounded_above():
    _, D_l2, _ = nets()
    _, D_dot, _ = nets(d_attention="dot")
    assert all(isinstance(b.attn, L2MultiHeadAttention) for b in D_l2.blocks)
    assert all(isinstance(b.attn, MultiHeadAttention) for b in D_dot.blocks)
    x = images(4)
    (l2,), (dot,) = attention_logits(D_l2, x), attention_logits(D_dot, x)  # (B, H, N+1, N+1) each
    # L2: -|q_i - k_j|^2 / sqrt(Dh) <= 0, exactly 0 on the diagonal (W_q = W_k: a token is its own key)
    assert l2.max() <= 1e-5 and torch.allclose(l2.diagonal(dim1=-2, dim2=-1), torch.zeros(()), atol=1e-5)
    # dot: q_i . k_j / sqrt(Dh) takes both signs and has no such ceiling
    assert dot.max() > 0 and dot.min() < 0
    # scaling W_qkv by c scales dot logits by c^2 (the missing Lipschitz bound, lesson 03); without spectral
    # norm, since ISN would undo the scaling (it pins sigma(W) at its initial value)
    _, D_dot, _ = nets(d_attention="dot", d_spectral_norm="none")
    with torch.no_grad():
        D_dot.blocks[0].attn.qkv.weight.mul_(3.0)
        D_dot.blocks[0].attn.qkv.bias.zero_()
    spread = logit_spread(D_dot, x)[0]
    with torch.no_grad():
        D_dot.blocks[0].attn.qkv.weight.div_(3.0)
    assert spread == pytest.approx(9.0 * logit_spread(D_dot, x)[0], rel=1e-4)


def test_non_overlapping_patches_see_only_their_own_pixels():
    _, D, _ = nets(d_overlap=0)
    conv = D.patch_embed.proj
    P = D.patch_embed.patch_size
    assert conv.kernel_size == (P, P) and conv.stride == (P, P) and conv.padding == (0, 0)


def test_without_sln_w_enters_once_at_the_input():
    G, _, cfg = nets(g_modulation="input")
    assert not any(isinstance(m, SLN) for m in G.modules()), "no self-modulated LayerNorm may remain"
    assert isinstance(G.norm, LayerNormIgnoringW) and G.style_in is not None
    h = torch.randn(2, G.num_patches, cfg.g_dim)
    w1, w2 = torch.randn(2, cfg.style_dim), torch.randn(2, cfg.style_dim)
    block = G.blocks[0]
    torch.testing.assert_close(block(h, w1), block(h, w2))  # the blocks no longer read w
    x1, x2 = G.synthesize(w1), G.synthesize(w2)
    assert (x1 - x2).abs().max() > 1e-3, "w must still change the image, through the input tokens"


def test_linear_patch_head_is_affine_in_each_token():
    G, _, cfg = nets(g_patch_head="linear")
    assert isinstance(G.decoder, nn.Linear) and not any(isinstance(m, PatchDecoder) for m in G.modules())
    y1, y2 = torch.randn(2, 4, cfg.g_dim), torch.randn(2, 4, cfg.g_dim)
    zero = G.decoder(torch.zeros_like(y1))
    torch.testing.assert_close(G.decoder(y1 + y2), G.decoder(y1) + G.decoder(y2) - zero, rtol=1e-5, atol=1e-5)
    _, _, full = nets()
    G_full = ViTGenerator.from_config(full)
    with torch.no_grad():  # the implicit decoder is not affine: its sine bends the sum
        a, b = G_full.decoder(y1), G_full.decoder(y2)
        assert (G_full.decoder(y1 + y2) - (a + b - G_full.decoder(torch.zeros_like(y1)))).abs().max() > 1e-3


def test_without_fourier_features_the_decoder_reads_raw_coordinates():
    G, _, cfg = nets(g_fourier_features=False)
    assert not any(isinstance(m, PatchCoordinateEncoding) for m in G.modules()), "no learned frequencies left"
    coords = G.decoder.fourier()  # (P*P, 2)
    P = cfg.g_patch_size
    assert coords.shape == (P * P, 2) and coords.min() == -1 and coords.max() == 1
    assert G.decoder.hidden.in_dim == 2


def test_no_ema_samples_come_from_g_itself(tmp_path):
    (tmp_path / "img").mkdir()
    folder = write_image_folder(tmp_path / "img", 8)
    trainer = Trainer(tiny_config(ema_decay=0.0), tmp_path / "run", device="cpu", data=folder)
    trainer.train(2)
    for a, b in zip(trainer.G_ema.state_dict().values(), trainer.G.state_dict().values()):
        torch.testing.assert_close(a, b)


# ---- the diagnostics the lesson measures with --------------------------------------------------------


class LinearD(nn.Module):
    """D(x) = <v, x> + b: its input gradient is v for every image."""

    def __init__(self, v: torch.Tensor) -> None:
        super().__init__()
        self.v = nn.Parameter(v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.v).flatten(1).sum(1) + 1.0  # (B,)


def test_input_gradient_norm_hand_value():
    v = torch.full((3, 4, 4), 0.5)  # ||v|| = 0.5 * sqrt(48)
    D = LinearD(v)
    assert input_gradient_norm(D, images(2)[:, :, :4, :4]) == pytest.approx(0.5 * math.sqrt(48))
    assert D.v.grad is None, "the probe must leave D's parameter gradients alone"


def test_sample_diversity_is_zero_for_a_collapsed_generator():
    class Constant(nn.Module):
        def forward(self, z):
            return torch.ones(z.shape[0], 3, 4, 4) * 0.3

    assert sample_diversity(Constant(), torch.randn(5, 2)) == 0.0
    G, _, cfg = nets()
    assert sample_diversity(G, torch.randn(8, cfg.latent_dim)) > 0.01
