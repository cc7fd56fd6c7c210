"""Tests for vitgan_lite.losses: logistic GAN losses and bCR (lesson 09)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitgan_lite.losses import bcr_loss, bcr_penalty, d_logistic_loss, g_nonsaturating_loss


def _logits(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, generator=torch.Generator().manual_seed(seed)) * 3.0  # (n,)


def TinyD() -> nn.Module:
    """A per-image discriminator with a few parameters: conv -> tanh -> mean pool -> linear -> (B,)."""
    return nn.Sequential(
        nn.Conv2d(3, 4, kernel_size=3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, 1), nn.Flatten(0),
    )  # fmt: skip


def _shift_right(x: torch.Tensor) -> torch.Tensor:
    """A deterministic stand-in for T: roll one pixel to the right."""
    return torch.roll(x, shifts=1, dims=3)


# ---------------------------------------------------------------------------------------------------
# logistic losses


def test_hand_values_at_zero_logits():
    # softplus(0) = log(1 + e^0) = log 2, so each term is log 2: L_D = 2 log 2, L_G = log 2
    zeros = torch.zeros(5)
    assert d_logistic_loss(zeros, torch.zeros(3)).item() == pytest.approx(2 * math.log(2))
    assert g_nonsaturating_loss(zeros).item() == pytest.approx(math.log(2))


def test_hand_values_nonzero():
    # real [2], fake [-1]: softplus(-2) + softplus(-1) = log(1 + e^-2) + log(1 + e^-1)
    got = d_logistic_loss(torch.tensor([2.0]), torch.tensor([-1.0])).item()
    assert got == pytest.approx(math.log1p(math.exp(-2)) + math.log1p(math.exp(-1)))
    # fake [1, 3]: mean(softplus(-1), softplus(-3))
    got = g_nonsaturating_loss(torch.tensor([1.0, 3.0])).item()
    assert got == pytest.approx((math.log1p(math.exp(-1)) + math.log1p(math.exp(-3))) / 2)


@pytest.mark.parametrize("batch", [1, 3, 7])
def test_equal_the_bce_form(batch: int):
    # independent reference: BCE with targets 1 for reals and 0 for fakes (Goodfellow et al. 2014)
    real, fake = _logits(batch, 0), _logits(batch + 2, 1)
    bce = F.binary_cross_entropy_with_logits
    d_ref = bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))
    g_ref = F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    torch.testing.assert_close(d_logistic_loss(real, fake), d_ref)
    torch.testing.assert_close(g_nonsaturating_loss(fake), g_ref)


def test_signs():
    real, fake = _logits(6, 2), _logits(6, 3)
    base = d_logistic_loss(real, fake)
    assert d_logistic_loss(real + 1.0, fake) < base, "D loss must fall as D(x) rises"
    assert d_logistic_loss(real, fake - 1.0) < base, "D loss must fall as D(G(z)) falls"
    assert g_nonsaturating_loss(fake + 1.0) < g_nonsaturating_loss(fake), "G loss must fall as D(G(z)) rises"
    # the same through gradients: descent raises D(x), lowers D(G(z)) in the D step, raises it in the G step
    r, f = real.clone().requires_grad_(), fake.clone().requires_grad_()
    d_logistic_loss(r, f).backward()
    assert (r.grad < 0).all() and (f.grad > 0).all()
    f2 = fake.clone().requires_grad_()
    g_nonsaturating_loss(f2).backward()
    assert (f2.grad < 0).all()


def test_non_saturating_gradient_stays_large():
    # the defining property of the non-saturating G loss: when D confidently rejects fakes (logit -10),
    # d/dt softplus(-t) = -sigmoid(-t) ~ -1 per sample; the saturating log(1 - sigmoid(t)) would give ~ 0
    f = torch.full((4,), -10.0, requires_grad=True)
    g_nonsaturating_loss(f).backward()
    torch.testing.assert_close(f.grad, torch.full((4,), -torch.sigmoid(torch.tensor(10.0)).item() / 4))


def test_losses_stable_for_large_logits():
    big = torch.tensor([80.0, -80.0, 1e4, -1e4])
    assert torch.isfinite(d_logistic_loss(big, big)) and torch.isfinite(g_nonsaturating_loss(big))


def test_losses_refuse_bad_logits():
    with pytest.raises(ValueError, match=r"shape \(B,\).*squeeze"):
        d_logistic_loss(torch.zeros(4, 1), torch.zeros(4))
    with pytest.raises(ValueError, match="fake_logits must have shape"):
        g_nonsaturating_loss(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="empty"):
        g_nonsaturating_loss(torch.zeros(0))
    with pytest.raises(TypeError, match="float tensor"):
        g_nonsaturating_loss(torch.zeros(3, dtype=torch.long))


# ---------------------------------------------------------------------------------------------------
# bCR


def test_bcr_penalty_hand_value():
    # real - real_aug = [1, 2] -> mean([1, 4]) = 2.5; fake - fake_aug = [-1, -2] -> mean([1, 4]) = 2.5
    # lambda_real * 2.5 + lambda_fake * 2.5 = 10 * 2.5 + 2 * 2.5 = 30
    got = bcr_penalty(
        torch.tensor([1.0, 2.0]),
        torch.tensor([0.0, 0.0]),
        torch.tensor([0.0, -1.0]),
        torch.tensor([1.0, 1.0]),
        lambda_real=10.0,
        lambda_fake=2.0,
    )
    assert got.item() == pytest.approx(30.0)
    # paper defaults lambda_real = lambda_fake = 10: 25 + 25
    assert bcr_penalty(
        torch.tensor([1.0, 2.0]), torch.zeros(2), torch.tensor([0.0, -1.0]), torch.ones(2)
    ).item() == pytest.approx(50.0)


def test_bcr_uses_both_terms():
    real = _logits(5, 4)
    fake, fake_aug = _logits(5, 5), _logits(5, 6)  # fakes disagree with their augmentations
    both = bcr_penalty(real, real, fake, fake_aug)
    assert both > 0, "reals agree with T(x), so a non-zero penalty must come from the fake term"
    assert bcr_penalty(real, real, fake, fake_aug, lambda_fake=0.0) == 0
    assert bcr_penalty(real, real + 1.0, fake, fake, lambda_real=0.0) == 0
    assert bcr_penalty(real, real + 1.0, fake, fake) == pytest.approx(10.0)  # 10 * mean(1^2)


def test_bcr_on_logits_not_probabilities():
    a, b, c, d = (_logits(4, s) for s in range(7, 11))
    base = bcr_penalty(a, b, c, d)
    # scaling logits by 2 scales a squared difference of logits by 4 (false on sigmoid probabilities)
    torch.testing.assert_close(bcr_penalty(2 * a, 2 * b, 2 * c, 2 * d), 4 * base)
    # shifting every logit by a constant leaves differences of logits unchanged (also false on sigmoid)
    torch.testing.assert_close(bcr_penalty(a + 3, b + 3, c + 3, d + 3), base)


def test_bcr_penalty_refuses_unpaired_logits():
    with pytest.raises(ValueError, match="same shape.*pairs each image"):
        bcr_penalty(torch.zeros(4), torch.zeros(3), torch.zeros(2), torch.zeros(2))
    with pytest.raises(ValueError, match=r"fake_aug_logits must have shape \(B,\)"):
        bcr_penalty(torch.zeros(4), torch.zeros(4), torch.zeros(2), torch.zeros(2, 1))


@pytest.mark.parametrize("b_real,b_fake", [(3, 3), (2, 5)])
def test_bcr_loss_matches_four_calls(b_real: int, b_fake: int):
    # independent reference: D called separately on x, T(x), G(z), T(G(z)) as in Zhao et al. Algorithm 1
    torch.manual_seed(0)
    D = TinyD()
    reals, fakes = torch.randn(b_real, 3, 6, 6), torch.randn(b_fake, 3, 6, 6)
    ref = bcr_penalty(D(reals), D(_shift_right(reals)), D(fakes), D(_shift_right(fakes)), 10.0, 3.0)
    got = bcr_loss(D, reals, fakes, _shift_right, lambda_real=10.0, lambda_fake=3.0)
    assert got.ndim == 0 and torch.isfinite(got)
    torch.testing.assert_close(got, ref)


def test_bcr_loss_gradients_reach_d_not_g():
    torch.manual_seed(1)
    D = TinyD()
    reals = torch.randn(3, 3, 6, 6)
    fakes = torch.randn(3, 3, 6, 6, requires_grad=True)  # stands in for G(z), attached to G's graph
    bcr_loss(D, reals, fakes, _shift_right).backward()
    assert fakes.grad is None, "bCR is a D-step term: no gradient may reach G(z)"
    for name, p in D.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reached D.{name}"


def test_bcr_loss_refuses_bad_inputs():
    D = TinyD()
    x = torch.randn(2, 3, 6, 6)
    with pytest.raises(ValueError, match=r"must share \(C, H, W\)"):
        bcr_loss(D, x, torch.randn(2, 3, 8, 8), _shift_right)
    with pytest.raises(ValueError, match="augment must keep the image shape"):
        bcr_loss(D, x, x, lambda t: t[:, :, :4])
    with pytest.raises(ValueError, match="one logit per image"):
        bcr_loss(lambda t: D(t)[:1], x, x, _shift_right)
    with pytest.raises(ValueError, match=r"reals must have shape \(B, C, H, W\)"):
        bcr_loss(D, x[0], x, _shift_right)
