"""Tests of vitgan_lite/train.py, lesson 10's algorithm: the EMA, the D step and the G step (CPU, tiny)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_config
from torch import nn

from vitgan_lite.augment import diff_augment
from vitgan_lite.discriminator import ViTDiscriminator
from vitgan_lite.generator import ViTGenerator
from vitgan_lite.train import d_step, ema_update, g_step

POLICY = "color,translation,cutout"
pytestmark = pytest.mark.usefixtures("one_thread")


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


def latents(B=4, seed=2):
    return torch.randn(B, 16, generator=torch.Generator().manual_seed(seed))  # (B, Z)


def augmenter(seed, policy=POLICY):
    """T as the caller builds it: DiffAugment drawing from its own seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    return lambda x: diff_augment(x, policy, gen)


def recording(augment):
    """``augment`` that also records each call's input and output."""
    calls = []

    def T(x):
        out = augment(x)
        calls.append({"input": x, "output": out})
        return out

    return T, calls


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
    out = d_step(G, D, reals(B), latents(B), augmenter(0), adam(D))
    assert set(out) == {"d_loss", "d_adv", "bcr", "d_real", "d_fake"}
    for k, v in out.items():
        assert v.shape == () and torch.isfinite(v) and not v.requires_grad, k
    assert all(changed(D, d_before)), "every D parameter should move in the D step"
    assert not any(changed(G, g_before)), "the D step must not change G"
    assert all(p.grad is None for p in G.parameters()), "G(z) must be detached in the D step"


@pytest.mark.parametrize("B", [3, 4])
def test_g_step_updates_g_only(B):
    G, D, _ = nets()
    g_before, d_before = snapshot(G), snapshot(D)
    out = g_step(G, D, latents(B), augmenter(0), adam(G))
    assert set(out) == {"g_loss"}
    assert torch.isfinite(out["g_loss"]) and not out["g_loss"].requires_grad
    moved = changed(G, g_before)
    names = [n for (n, _), m in zip(G.named_parameters(), moved) if not m]
    assert all(moved), f"every G parameter should receive gradient and move; unchanged: {names}"
    assert not any(changed(D, d_before)), "the G step must not change D"
    assert all(p.grad is None for p in D.parameters())
    assert all(p.requires_grad for p in D.parameters()), "D's parameters must be unfrozen after the G step"


def test_steps_draw_no_random_numbers_of_their_own():
    # The caller owns every draw: with z given and a deterministic T, the global RNG is untouched, and two
    # calls from the same state give the same result.
    G, D, _ = nets()
    state = torch.get_rng_state()
    outs = []
    for _ in range(2):
        G2, D2 = copy.deepcopy(G), copy.deepcopy(D)
        d_out = d_step(G2, D2, reals(), latents(), lambda x: x.flip(3), adam(D2))
        g_out = g_step(G2, D2, latents(seed=3), lambda x: x.flip(3), adam(G2))
        outs.append((d_out["d_loss"], g_out["g_loss"]))
    assert torch.equal(torch.get_rng_state(), state), "a step drew from the global RNG"
    assert outs[0] == outs[1]


def test_d_loss_against_hand_computation():
    # D without spectral norm (no power-iteration state), so four separate forwards give the same logits:
    # L_D = mean softplus(-D(Tx)) + mean softplus(D(TGz))
    #     + 10 mean (D(x) - D(Tx))^2 + 10 mean (D(Gz) - D(TGz))^2
    G, D, _ = nets(d_spectral_norm="none")
    D_ref, x, z = copy.deepcopy(D), reals(3), latents(3)
    out = d_step(G, D, x, z, augmenter(7), adam(D))
    gen = torch.Generator().manual_seed(7)  # replay the step's draws: T(x), then T(G(z))
    with torch.no_grad():
        fakes = G(z)
        x_aug = diff_augment(x, POLICY, gen)
        f_aug = diff_augment(fakes, POLICY, gen)
        lr, lra, lf, lfa = D_ref(x), D_ref(x_aug), D_ref(fakes), D_ref(f_aug)
    adv = F.softplus(-lra).mean() + F.softplus(lfa).mean()
    bcr = 10 * (lr - lra).square().mean() + 10 * (lf - lfa).square().mean()
    torch.testing.assert_close(out["d_adv"], adv, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["bcr"], bcr, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["d_loss"], adv + bcr, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["d_real"], lra.mean(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["d_fake"], lfa.mean(), rtol=1e-5, atol=1e-6)


def test_bcr_is_in_the_d_loss():
    G, D, _ = nets()
    losses = {}
    for lam in (0.0, 10.0):
        D_copy = copy.deepcopy(D)
        losses[lam] = d_step(G, D_copy, reals(), latents(), augmenter(3), adam(D_copy), lam, lam)
    torch.testing.assert_close(losses[0.0]["d_adv"], losses[10.0]["d_adv"])  # same draws, same logistic loss
    assert losses[0.0]["bcr"] == 0 and losses[10.0]["bcr"] > 0
    torch.testing.assert_close(losses[10.0]["d_loss"], losses[10.0]["d_adv"] + losses[10.0]["bcr"])
    assert losses[10.0]["d_loss"] > losses[0.0]["d_loss"]


def _record_d_inputs(D):
    seen = []
    D.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    return seen


def test_g_loss_sees_augmented_fakes():
    G, D, _ = nets()
    seen = _record_d_inputs(D)
    T, calls = recording(augmenter(0, "color,cutout"))
    g_step(G, D, latents(3), T, adam(G))
    assert len(calls) == 1
    assert calls[0]["input"].requires_grad, "G step must augment the fakes G(z) with their graph"
    assert len(seen) == 1 and seen[0] is calls[0]["output"], "D must see T(G(z)), not G(z)"


def test_d_sees_the_same_augmentation_on_reals_and_fakes():
    G, D, _ = nets()
    seen = _record_d_inputs(D)
    T, calls = recording(augmenter(0, "translation"))
    x = reals(3)
    d_step(G, D, x, latents(3), T, adam(D))
    assert len(calls) == 2
    assert calls[0]["input"] is x and not calls[1]["input"].requires_grad  # reals, then detached fakes
    assert len(seen) == 1, "one D forward on the concatenated batch"
    batch = seen[0]  # (4B, C, H, W): T(x), T(G(z)), x, G(z)
    assert batch.shape[0] == 12
    torch.testing.assert_close(batch[:3], calls[0]["output"])
    torch.testing.assert_close(batch[3:6], calls[1]["output"])
    torch.testing.assert_close(batch[6:9], x)
