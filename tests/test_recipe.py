"""Tests of lesson 11's fixes and tools: the W_qk init, equalized learning rates through Adam's parameter
groups, the trainer's cFD, the presets, and the shipped generator."""

from __future__ import annotations

import json
import math

import pytest
import torch
from helpers import write_image_folder
from torch import nn

from vitgan_lite.attention import l2_attention_logits
from vitgan_lite.config import Config, ConfigError, get_config
from vitgan_lite.discriminator import ViTDiscriminator, qk_init_gain
from vitgan_lite.modulation import EqualLinear
from vitgan_lite.run import CheckpointError, Trainer, pretrained_generator
from vitgan_lite.train import adam_param_groups

pytestmark = pytest.mark.usefixtures("one_thread")


def _mean_offdiag_logit(D: ViTDiscriminator, x: torch.Tensor) -> float:
    blk = D.blocks[0]
    h = D.patch_embed(x)
    h = torch.cat([D.cls_token.expand(len(x), -1, -1), h], 1) + torch.cat([D.cls_pos, D.pos_embed()], 0)
    q = blk.attn._split_heads(blk.attn.qk(blk.norm1(h)))  # (B, H, N + 1, Dh)
    logits = l2_attention_logits(q, q)  # (B, H, N + 1, N + 1)
    return float(logits.detach()[..., ~torch.eye(logits.shape[-1], dtype=torch.bool)].mean())


def test_qk_init_gain_hand_value():
    assert qk_init_gain(32) == pytest.approx(128**-0.25)
    assert qk_init_gain(1) == pytest.approx(1 / math.sqrt(2))
    assert 2 * qk_init_gain(16) ** 2 * math.sqrt(16) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="positive"):
        qk_init_gain(0)


@pytest.mark.parametrize("dim,heads", [(64, 2), (96, 3)])
def test_attention_init_sets_the_mean_logit(dim, heads):
    """unit-logit: mean off-diagonal logit -1 at init; Xavier: -2 sqrt(d_h), as derived."""
    x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    d_h = dim // heads
    torch.manual_seed(0)
    unit = _mean_offdiag_logit(ViTDiscriminator(dim=dim, depth=1, num_heads=heads), x)
    torch.manual_seed(0)
    xav = _mean_offdiag_logit(ViTDiscriminator(dim=dim, depth=1, num_heads=heads, attn_init="xavier"), x)
    assert unit == pytest.approx(-1.0, rel=0.25)
    assert xav == pytest.approx(-2 * math.sqrt(d_h), rel=0.25)


def test_attention_init_survives_isn_and_is_validated():
    torch.manual_seed(0)
    D = ViTDiscriminator(dim=64, depth=1, num_heads=2)
    torch.manual_seed(0)
    X = ViTDiscriminator(dim=64, depth=1, num_heads=2, attn_init="xavier")
    w_unit = D.blocks[0].attn.qk.weight  # the effective weight, through ISN
    w_xav = X.blocks[0].attn.qk.weight
    ratio = torch.linalg.matrix_norm(w_unit, 2) / torch.linalg.matrix_norm(w_xav, 2)
    # ISN keeps the chosen sigma(W_init)
    assert float(ratio.detach()) == pytest.approx(qk_init_gain(32), rel=1e-3)
    with pytest.raises(ValueError, match="attn_init"):
        ViTDiscriminator(dim=64, depth=1, num_heads=2, attn_init="zeros")
    with pytest.raises(ConfigError, match="d_attn_init"):
        get_config("tiny-cpu", d_attn_init="zeros")


def test_param_groups_cover_every_parameter_once():
    D = ViTDiscriminator(image_size=16, dim=16, depth=1, num_heads=2)
    groups = adam_param_groups(D, 2e-3)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len([p for p in D.parameters() if p.requires_grad])
    qk = D.blocks[0].attn.qk.parametrizations.weight.original  # under ISN: the trained tensor
    (lr_qk,) = [g["lr"] for g in groups if any(p is qk for p in g["params"])]
    assert lr_qk == pytest.approx(2e-3 / math.sqrt(16))
    (lr_cls,) = [g["lr"] for g in groups if any(p is D.cls_token for p in g["params"])]
    assert lr_cls == 2e-3
    plain = adam_param_groups(D, 2e-3, equalized=False)
    assert len(plain) == 1 and plain[0]["lr"] == 2e-3


def test_equalized_groups_reproduce_an_equalized_layer():
    """Adam at lr / sqrt(fan_in) on a plain Linear follows the same trajectory as an EqualLinear at lr."""
    torch.manual_seed(0)
    eq = EqualLinear(16, 8)
    plain = nn.Linear(16, 8)
    with torch.no_grad():
        plain.weight.copy_(eq.effective_weight())
        plain.bias.copy_(eq.effective_bias())
    opt_eq = torch.optim.Adam(eq.parameters(), lr=1e-2, betas=(0.0, 0.99), eps=1e-12)
    opt_plain = torch.optim.Adam(adam_param_groups(plain, 1e-2), betas=(0.0, 0.99), eps=1e-12)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        x, y = torch.randn(32, 16, generator=g), torch.randn(32, 8, generator=g)
        for layer, opt in ((eq, opt_eq), (plain, opt_plain)):
            loss = (layer(x) - y).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.testing.assert_close(plain.weight, eq.effective_weight(), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(plain.bias, eq.effective_bias(), rtol=1e-4, atol=1e-6)


def test_trainer_logs_cfd(tmp_path):
    folder = write_image_folder(tmp_path, 24, size=32)
    cfg = get_config(
        "tiny-cpu",
        latent_dim=16,
        style_dim=16,
        mapping_layers=1,
        g_dim=16,
        g_depth=1,
        g_num_heads=2,
        g_fourier_dim=16,
        g_decoder_dim=16,
        d_dim=16,
        d_depth=1,
        d_num_heads=2,
        batch_size=4,
        steps=2,
        log_every=1,
        sample_every=10,
        ckpt_every=10,
        fid_num_samples=0,
        cfd_every=2,
        cfd_num_samples=40,
        equalized_lr=True,
    )
    Trainer(cfg, tmp_path / "run", device="cpu", data=str(folder)).train()
    recs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    (q,) = [r for r in recs if "cfd" in r]
    assert q["step"] == 2 and q["cfd_samples"] == 40
    assert math.isfinite(q["cfd"]) and q["cfd"] > 0 and math.isfinite(q["ckid"])


def test_presets_and_legacy_configs():
    tiny, hour, paper = get_config("tiny-cpu"), get_config("cpu-hour"), get_config("paper-cifar10")
    assert tiny.lambda_real == tiny.lambda_fake == 0.0 and paper.lambda_real == paper.lambda_fake == 10.0
    assert hour.g_dim == tiny.g_dim and hour.steps > tiny.steps and hour.cfd_every > 0
    assert paper.d_attn_init == "unit-logit" and not paper.equalized_lr
    # a checkpoint saved before the W_qk init existed resumes as what it was: Xavier
    old = {k: v for k, v in tiny.to_dict().items() if k != "d_attn_init"}
    assert Config.from_dict(old).d_attn_init == "xavier"
    assert Config.from_dict(tiny.to_dict()).d_attn_init == "unit-logit"


def test_resume_across_optimizer_groupings_is_refused(tmp_path):
    folder = write_image_folder(tmp_path, 8, size=16)
    kw = dict(
        image_size=16,
        latent_dim=16,
        style_dim=16,
        mapping_layers=1,
        g_dim=16,
        g_depth=1,
        g_num_heads=2,
        g_fourier_dim=16,
        g_decoder_dim=16,
        d_dim=16,
        d_depth=1,
        d_num_heads=2,
        batch_size=4,
        steps=1,
        log_every=1,
        sample_every=10,
        ckpt_every=1,
        fid_num_samples=0,
    )
    Trainer(get_config("tiny-cpu", **kw), tmp_path / "run", device="cpu", data=str(folder)).train()
    other = Trainer(
        get_config("tiny-cpu", equalized_lr=True, **kw), tmp_path / "run", device="cpu", data=str(folder)
    )
    with pytest.raises(CheckpointError, match="equalized_lr=False"):
        other.resume(tmp_path / "run")


def test_pretrained_generator_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no shipped generator"):
        pretrained_generator("no-such-run")
    bad = tmp_path / "bad_generator.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        pretrained_generator(path=bad)


def test_sln_gain_sets_the_weight_scale_and_how_much_z_matters():
    from vitgan_lite.generator import ViTGenerator
    from vitgan_lite.modulation import SLN

    torch.manual_seed(0)
    for gain in (0.1, 1.0):
        sln = SLN(256, 400, gain=gain)
        assert float(sln.gamma.weight.detach().std()) == pytest.approx(gain / math.sqrt(400), rel=0.05)
        assert float(sln.gamma.bias.mean()) == 1.0 and float(sln.beta.bias.abs().max()) == 0.0
    spread = {}
    z = torch.randn(32, 16, generator=torch.Generator().manual_seed(1))
    for gain in (0.1, 1.0):
        torch.manual_seed(0)
        G = ViTGenerator(
            image_size=16,
            patch_size=4,
            latent_dim=16,
            style_dim=16,
            mapping_layers=1,
            dim=32,
            depth=1,
            num_heads=2,
            fourier_dim=16,
            decoder_dim=16,
            sln_gain=gain,
        )
        with torch.no_grad():
            spread[gain] = float(G(z).std(dim=0).mean())  # how much the image changes across z
    assert spread[1.0] > 3 * spread[0.1], spread
    assert get_config("tiny-cpu").g_sln_gain == 1.0
    with pytest.raises(ValueError, match="gain"):
        SLN(8, 8, gain=0.0)
