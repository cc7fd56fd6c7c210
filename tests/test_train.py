"""Tests of vitgan_lite/train.py: EMA, the D and G steps, the Trainer, checkpoints and resume (CPU, tiny)."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from helpers import write_image_folder
from PIL import Image
from torch import nn

import vitgan_lite.train as train_mod
from vitgan_lite.config import ConfigError, get_config
from vitgan_lite.discriminator import ViTDiscriminator
from vitgan_lite.generator import ViTGenerator
from vitgan_lite.metrics import MetricsUnavailable
from vitgan_lite.train import (
    CheckpointError,
    Trainer,
    TrainingDiverged,
    d_step,
    ema_update,
    g_step,
    list_checkpoints,
    load_checkpoint,
)

TINY = dict(
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
    steps=6,
    log_every=1,
    sample_every=2,
    ckpt_every=2,
    keep_ckpts=2,
    fid_num_samples=0,
    cfd_every=0,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(**overrides):
    return get_config("tiny-cpu", **{**TINY, **overrides})


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Twelve random 16 x 16 PNGs in a flat folder (the data module's local-folder path)."""
    return write_image_folder(tmp_path_factory.mktemp("images"), 12)


def nets(**overrides):
    cfg = tiny_config(**overrides)
    torch.manual_seed(0)
    return ViTGenerator.from_config(cfg), ViTDiscriminator.from_config(cfg), cfg


def adam(module):
    return torch.optim.Adam(module.parameters(), lr=1e-2, betas=(0.0, 0.99))


def snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def changed(module, before):
    return [not torch.equal(p, b) for p, b in zip(module.parameters(), before)]


def reals(B=4, seed=1):
    return torch.rand(B, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1  # (B, 3, 16, 16)


# ---- ema_update ------------------------------------------------------------------------------------


def _ema_pair():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    ema = copy.deepcopy(model)
    return ema, model


def test_ema_hand_value_and_buffers():
    ema, model = _ema_pair()
    with torch.no_grad():
        for p in ema.parameters():
            p.zero_()
        for p in model.parameters():
            p.fill_(1.0)
        model[1].running_mean.fill_(5.0)
    ema_update(ema, model, decay=0.9)
    for p in ema.parameters():  # 0.9 * 0 + 0.1 * 1 = 0.1
        torch.testing.assert_close(p, torch.full_like(p, 0.1))
    torch.testing.assert_close(ema[1].running_mean, torch.full((3,), 5.0))  # copied, not averaged


def test_ema_decay_on_the_right_side():
    ema, model = _ema_pair()
    with torch.no_grad():
        for p in ema.parameters():
            p.fill_(2.0)
        for p in model.parameters():
            p.fill_(4.0)
    ema_update(ema, model, decay=0.75)
    # 0.75 * 2 + 0.25 * 4 = 2.5; with the decay on the wrong side it would be 0.25 * 2 + 0.75 * 4 = 3.5
    for p in ema.parameters():
        torch.testing.assert_close(p, torch.full_like(p, 2.5))


def test_ema_records_no_gradient():
    ema, model = _ema_pair()  # ema parameters still require grad: an in-place update outside no_grad fails
    ema_update(ema, model, decay=0.5)
    for p in ema.parameters():
        assert p.grad_fn is None and p.grad is None and p.is_leaf


def test_ema_refuses_a_different_model():
    with pytest.raises(ValueError, match="different parameters"):
        ema_update(nn.Linear(2, 3), nn.Sequential(nn.Linear(2, 3)), 0.9)
    with pytest.raises(ValueError, match="decay must lie in"):
        ema_update(nn.Linear(2, 3), nn.Linear(2, 3), 1.5)


# ---- d_step / g_step -------------------------------------------------------------------------------


@pytest.mark.parametrize("B", [3, 4])
def test_d_step_updates_d_only_and_detaches_fakes(B):
    G, D, _ = nets()
    g_before, d_before = snapshot(G), snapshot(D)
    opt_g = adam(G)
    opt_g.zero_grad(set_to_none=True)
    out = d_step(G, D, reals(B), adam(D), generator=torch.Generator().manual_seed(0))
    assert set(out) == {"d_loss", "d_adv", "bcr", "d_real", "d_fake", "d_grad_norm"}
    for k, v in out.items():
        assert v.shape == () and torch.isfinite(v) and not v.requires_grad, k
    assert all(changed(D, d_before)), "every D parameter should move in the D step"
    assert not any(changed(G, g_before)), "the D step must not change G"
    assert all(p.grad is None for p in G.parameters()), "G(z) must be detached in the D step"


@pytest.mark.parametrize("B", [3, 4])
def test_g_step_updates_g_only(B):
    G, D, _ = nets()
    g_before, d_before = snapshot(G), snapshot(D)
    out = g_step(G, D, adam(G), B, generator=torch.Generator().manual_seed(0))
    assert set(out) == {"g_loss", "g_grad_norm"}
    assert torch.isfinite(out["g_loss"]) and not out["g_loss"].requires_grad
    moved = changed(G, g_before)
    names = [n for (n, _), m in zip(G.named_parameters(), moved) if not m]
    assert all(moved), f"every G parameter should receive gradient and move; unchanged: {names}"
    assert not any(changed(D, d_before)), "the G step must not change D"
    assert all(p.grad is None for p in D.parameters())
    assert all(p.requires_grad for p in D.parameters()), "D's parameters must be unfrozen after the G step"


def test_d_loss_against_hand_computation():
    # D without spectral norm (no power-iteration state), so four separate forwards give the same logits:
    # L_D = mean softplus(-D(Tx)) + mean softplus(D(TGz))
    #     + 10 mean (D(x) - D(Tx))^2 + 10 mean (D(Gz) - D(TGz))^2
    G, D, _ = nets(d_norm="none")
    D_ref, x = copy.deepcopy(D), reals(3)
    out = d_step(G, D, x, adam(D), generator=torch.Generator().manual_seed(7))
    gen = torch.Generator().manual_seed(7)  # replay the step's draws: z, then T(x), then T(G(z))
    with torch.no_grad():
        fakes = G(torch.randn(3, 16, generator=gen))
        x_aug = train_mod.diff_augment(x, "color,translation,cutout", gen)
        f_aug = train_mod.diff_augment(fakes, "color,translation,cutout", gen)
        lr, lra, lf, lfa = D_ref(x), D_ref(x_aug), D_ref(fakes), D_ref(f_aug)
    adv = F.softplus(-lra).mean() + F.softplus(lfa).mean()
    bcr = 10 * (lr - lra).square().mean() + 10 * (lf - lfa).square().mean()
    torch.testing.assert_close(out["d_adv"], adv, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["bcr"], bcr, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["d_loss"], adv + bcr, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["d_real"], lra.mean(), rtol=1e-5, atol=1e-6)


def test_bcr_is_in_the_d_loss():
    G, D, _ = nets()
    losses = {}
    for lam in (0.0, 10.0):
        D_copy = copy.deepcopy(D)
        gen = torch.Generator().manual_seed(3)
        losses[lam] = d_step(G, D_copy, reals(), adam(D_copy), bcr_real=lam, bcr_fake=lam, generator=gen)
    torch.testing.assert_close(losses[0.0]["d_adv"], losses[10.0]["d_adv"])  # same draws, same logistic loss
    assert losses[0.0]["bcr"] == 0 and losses[10.0]["bcr"] > 0
    torch.testing.assert_close(losses[10.0]["d_loss"], losses[10.0]["d_adv"] + losses[10.0]["bcr"])
    assert losses[10.0]["d_loss"] > losses[0.0]["d_loss"]


def _record_augment(monkeypatch):
    calls = []
    real_fn = train_mod.diff_augment

    def recording(x, policy, generator=None):
        out = real_fn(x, policy, generator)
        calls.append({"input": x, "output": out, "policy": policy})
        return out

    monkeypatch.setattr(train_mod, "diff_augment", recording)
    return calls


def _record_d_inputs(D):
    seen = []
    D.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    return seen


def test_g_loss_sees_augmented_fakes(monkeypatch):
    calls = _record_augment(monkeypatch)
    G, D, _ = nets()
    seen = _record_d_inputs(D)
    g_step(G, D, adam(G), 3, policy="color,cutout", generator=torch.Generator().manual_seed(0))
    assert len(calls) == 1 and calls[0]["policy"] == "color,cutout"
    assert calls[0]["input"].requires_grad, "G step must augment the fakes G(z) with their graph"
    assert len(seen) == 1 and seen[0] is calls[0]["output"], "D must see T(G(z)), not G(z)"


def test_d_sees_the_same_augmentation_on_reals_and_fakes(monkeypatch):
    calls = _record_augment(monkeypatch)
    G, D, _ = nets()
    seen = _record_d_inputs(D)
    x = reals(3)
    d_step(G, D, x, adam(D), policy="translation", generator=torch.Generator().manual_seed(0))
    assert [c["policy"] for c in calls] == ["translation", "translation"]
    assert calls[0]["input"] is x and not calls[1]["input"].requires_grad  # reals, then detached fakes
    assert len(seen) == 1, "one D forward on the concatenated batch"
    batch = seen[0]  # (4B, C, H, W): T(x), T(G(z)), x, G(z)
    assert batch.shape[0] == 12
    torch.testing.assert_close(batch[:3], calls[0]["output"])
    torch.testing.assert_close(batch[3:6], calls[1]["output"])
    torch.testing.assert_close(batch[6:9], x)


# ---- Trainer ---------------------------------------------------------------------------------------


def read_metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def loss_lines(run):
    return {r["step"]: (r["d_loss"], r["g_loss"], r["bcr"]) for r in read_metrics(run) if "d_loss" in r}


def test_trainer_writes_the_run_folder(tmp_path, image_folder, monkeypatch):
    def no_weights(*args, **kwargs):
        raise MetricsUnavailable("no Inception weights on this machine")

    monkeypatch.setattr(train_mod, "compute_fid_is", no_weights)
    seen = []
    cfg = tiny_config(fid_num_samples=10)
    callbacks = [lambda step, metrics: seen.append(step)]
    trainer = Trainer(cfg, tmp_path / "run", device="cpu", data=image_folder, callbacks=callbacks)
    last = trainer.train()
    run = tmp_path / "run"
    records = read_metrics(run)
    steps = [r["step"] for r in records if "d_loss" in r]
    assert steps == [1, 2, 3, 4, 5, 6] and last["step"] == 6
    for key in ("d_loss", "g_loss", "bcr", "d_real", "d_fake", "d_grad_norm", "g_grad_norm", "images_per_s"):
        assert all(isinstance(r[key], float) for r in records if "d_loss" in r), key
    assert records[0]["sigma_min"] > 0
    assert records[-1] == {"step": 6, "fid_skipped": "no Inception weights on this machine"}
    assert seen == [1, 2, 3, 4, 5, 6, 6]  # log intervals, then the FID result
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == [
        "step_000002.png",
        "step_000004.png",
        "step_000006.png",
    ]
    assert Image.open(run / "samples" / "step_000006.png").size == (8 * 18 + 2, 8 * 18 + 2)  # 8 x 8 grid
    assert [p.name for p in list_checkpoints(run)] == ["ckpt_0000004.pt", "ckpt_0000006.pt"]  # keep_ckpts 2
    state = load_checkpoint(run / "ckpt_0000006.pt")
    assert state["step"] == 6 and state["config"]["g_dim"] == 16
    assert set(state["rng"]) >= {"torch", "sampler", "z"}
    # the EMA generator tracks G: it moved away from its initial copy
    assert not all(torch.equal(a, b) for a, b in zip(trainer.G_ema.parameters(), trainer.G.parameters()))


def test_resume_reproduces_the_uninterrupted_run(tmp_path, image_folder):
    cfg = tiny_config(ckpt_every=3)
    Trainer(cfg, tmp_path / "a", device="cpu", data=image_folder).train(6)
    Trainer(cfg, tmp_path / "b", device="cpu", data=image_folder).train(4)  # checkpoints at 3 and 4
    (tmp_path / "b" / "ckpt_0000004.pt").unlink()  # "killed" after step 4's log line, before its checkpoint
    resumed = Trainer(cfg, tmp_path / "b", device="cpu", data=image_folder).resume(tmp_path / "b")
    assert resumed.step == 3
    resumed.train(6)
    a, b = loss_lines(tmp_path / "a"), loss_lines(tmp_path / "b")
    assert sorted(b) == [1, 2, 3, 4, 5, 6], "the log shows each step once after a resume"
    assert a == b, "a resumed run must reproduce the uninterrupted run's losses exactly on the CPU"


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, image_folder, monkeypatch):
    calls = {"n": 0}
    real_loss = train_mod.g_nonsaturating_loss

    def nan_from_step_3(logits):
        calls["n"] += 1
        loss = real_loss(logits)
        return loss * float("nan") if calls["n"] >= 3 else loss

    monkeypatch.setattr(train_mod, "g_nonsaturating_loss", nan_from_step_3)
    cfg = tiny_config(log_every=10, ckpt_every=2)  # the NaN at step 3 is found at step 4's checkpoint
    with pytest.raises(TrainingDiverged, match=r"step 3 \(g_loss"):
        Trainer(cfg, tmp_path / "run", device="cpu", data=image_folder).train(6)
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["ckpt_0000002.pt"]
    state = load_checkpoint(tmp_path / "run" / "ckpt_0000002.pt")
    assert all(torch.isfinite(v).all() for v in state["G"].values())


def test_resume_refuses_another_architecture(tmp_path, image_folder):
    Trainer(tiny_config(), tmp_path / "run", device="cpu", data=image_folder).train(2)
    other = Trainer(tiny_config(g_dim=32, d_depth=2), tmp_path / "other", device="cpu", data=image_folder)
    with pytest.raises(CheckpointError, match=r"another architecture.*g_dim: 16 vs 32.*d_depth: 1 vs 2"):
        other.resume(tmp_path / "run")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        other.resume(tmp_path / "other")


def test_corrupt_or_truncated_checkpoint(tmp_path, image_folder):
    trainer = Trainer(tiny_config(), tmp_path / "run", device="cpu", data=image_folder)
    trainer.train(2)
    good = (tmp_path / "run" / "ckpt_0000002.pt").read_bytes()
    bad = tmp_path / "run" / "ckpt_0000009.pt"
    for content in (good[: len(good) // 2], b"not a checkpoint at all", b""):
        bad.write_bytes(content)
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            trainer.resume(tmp_path / "run")  # the newest file is the bad one
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere.pt")
    torch.save({"weights": torch.zeros(2)}, bad)
    with pytest.raises(CheckpointError, match="not a vitgan-lite checkpoint"):
        load_checkpoint(bad)


def test_bad_config_is_refused_before_any_work(tmp_path):
    bad = tiny_config().replace(g_dim=15)  # replace() does not validate; the trainer must
    with pytest.raises(ConfigError, match="g_dim 15 is not divisible by g_num_heads"):
        Trainer(bad, tmp_path / "run", device="cpu", data=tmp_path / "no-such-folder")
    assert not (tmp_path / "run").exists()


def test_data_of_the_wrong_size_is_refused(tmp_path):
    images = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ConfigError, match="image_size"):
        Trainer(tiny_config(), tmp_path / "run", device="cpu", data=images)
