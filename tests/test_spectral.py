"""Tests for vitgan_lite.spectral (lesson 04): power iteration, SN and ISN as parametrizations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vitgan_lite.spectral import (
    ISN,
    SpectralNorm,
    apply_spectral_norm,
    power_iteration,
    spectral_norms,
    spectral_parametrization,
)


def _sigma(W: torch.Tensor) -> float:
    """Exact spectral norm (by SVD) of a weight, conv weights viewed as (out, in * k * k)."""
    return torch.linalg.matrix_norm(W.detach().flatten(1), ord=2).item()


def _wrapped(layer: nn.Module, mode: str = "isn") -> nn.Module:
    return apply_spectral_norm(layer, mode)


# ----------------------------------------------------------------------------- power iteration
def test_power_iteration_matches_svd() -> None:
    g = torch.Generator().manual_seed(0)
    W = torch.randn(7, 5, generator=g)
    u0 = torch.randn(7, generator=g)
    sigma, u, v = power_iteration(W, u0, n_iters=100)
    assert sigma.item() == pytest.approx(_sigma(W), rel=1e-3)
    assert u.shape == (7,) and v.shape == (5,)
    assert u.norm().item() == pytest.approx(1.0, abs=1e-5) and v.norm().item() == pytest.approx(1.0, abs=1e-5)
    torch.testing.assert_close(W @ v, sigma * u, atol=1e-3, rtol=1e-3)  # top singular pair: W v = sigma u


def test_power_iteration_hand_value() -> None:
    # W = diag(3, 1), u0 = (1, 1)/sqrt 2. One step: v = W^T u0 / |W^T u0| = (3, 1)/sqrt 10,
    # u = W v / |W v| = (9, 1)/sqrt 82, sigma = u^T W v = (81 + 1)/(sqrt 82 sqrt 10) = sqrt 8.2 = 2.863564.
    W = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    sigma, u, v = power_iteration(W, torch.tensor([1.0, 1.0]) / 2**0.5, n_iters=1)
    torch.testing.assert_close(v, torch.tensor([3.0, 1.0]) / 10**0.5)
    torch.testing.assert_close(u, torch.tensor([9.0, 1.0]) / 82**0.5)
    assert sigma.item() == pytest.approx(2.863564, abs=1e-5)  # below the true 3: converges from below


def test_power_iteration_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="W must be a matrix"):
        power_iteration(torch.randn(2, 3, 4), torch.randn(2))
    with pytest.raises(ValueError, match=r"u must have shape \(4,\)"):
        power_iteration(torch.randn(4, 3), torch.randn(3))


# ----------------------------------------------------------------------------- buffers u, v
def test_buffers_update_in_training_mode_only() -> None:
    torch.manual_seed(0)
    lin = _wrapped(nn.Linear(5, 4))
    norm = spectral_parametrization(lin)
    with torch.no_grad():  # move W away from the u, v the wrapper converged to
        lin.parametrizations.weight.original.add_(torch.randn(4, 5))
    x = torch.randn(3, 5)
    u0, v0 = norm.u.clone(), norm.v.clone()
    lin.eval()
    lin(x)
    assert torch.equal(norm.u, u0) and torch.equal(norm.v, v0)  # eval: no power step
    lin.train()
    lin(x)
    assert not torch.allclose(norm.u, u0) and not torch.allclose(norm.v, v0)  # train: one step
    # ... and the step was written back: it is exactly one power step from the previous estimate.
    _, u1, v1 = power_iteration(lin.parametrizations.weight.original.detach(), u0)
    torch.testing.assert_close(norm.u, u1)
    torch.testing.assert_close(norm.v, v1)


def test_no_gradient_flows_through_u_v() -> None:
    torch.manual_seed(1)
    lin = _wrapped(nn.Linear(5, 4), "sn")
    norm = spectral_parametrization(lin)
    W = lin.parametrizations.weight.original
    G = torch.randn(4, 5)
    (lin.weight * G).sum().backward()  # training-mode access: u, v take a step first
    assert not norm.u.requires_grad and not norm.v.requires_grad and norm.u.grad is None
    # Reference: the same loss with u, v (after the step) as constants, sigma = u^T W v.
    W_ref = W.detach().clone().requires_grad_(True)
    u, v = norm.u.clone(), norm.v.clone()
    (W_ref / (u @ W_ref @ v) * G).sum().backward()
    torch.testing.assert_close(W.grad, W_ref.grad)


def test_two_forwards_then_one_backward() -> None:
    # D(real) and D(fake) run before one backward: the in-place buffer update must not break autograd.
    lin = _wrapped(nn.Linear(5, 4))
    loss = lin(torch.randn(2, 5)).sum() + lin(torch.randn(2, 5)).sum()
    loss.backward()
    assert lin.parametrizations.weight.original.grad is not None


def test_sigma_stays_in_full_precision_under_autocast() -> None:
    torch.manual_seed(9)
    lin = _wrapped(nn.Linear(16, 16))
    norm = spectral_parametrization(lin)
    u0 = norm.u.clone()
    W_ref = lin.eval().weight.detach().clone()  # fp32, no power step
    lin.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        norm.u.copy_(u0)
        W_amp = lin.weight  # one power step from u0, under autocast
        assert lin(torch.randn(2, 16)).dtype == torch.bfloat16  # autocast is on for the layer itself
    norm.u.copy_(u0)
    W_fp32 = lin.weight  # the same power step without autocast
    assert W_amp.dtype == torch.float32
    torch.testing.assert_close(W_amp, W_fp32, atol=1e-6, rtol=1e-6)  # bf16 would be off by ~1e-3
    torch.testing.assert_close(W_fp32, W_ref, atol=1e-4, rtol=1e-4)


# ----------------------------------------------------------------------------- the optimizer's parameter
def test_optimizer_keeps_training_the_same_parameter() -> None:
    torch.manual_seed(2)
    lin = nn.Linear(6, 4)
    weight = lin.weight
    opt = torch.optim.Adam(lin.parameters(), lr=0.1)  # built BEFORE wrapping, as a learner might
    _wrapped(lin)
    assert lin.parametrizations.weight.original is weight  # never re-wrapped as a new Parameter
    assert opt.param_groups[0]["params"][0] is weight
    before, w_eff_before = weight.detach().clone(), lin.weight.detach().clone()
    for _ in range(3):
        opt.zero_grad()
        (lin(torch.randn(8, 6)) * torch.randn(8, 4)).sum().backward()
        opt.step()
        assert lin.parametrizations.weight.original is weight
    assert not torch.allclose(weight, before)
    assert not torch.allclose(lin.weight, w_eff_before)


# ----------------------------------------------------------------------------- ISN and SN
def test_isn_hand_value() -> None:
    # W_init = diag(3, 1): sigma_init = 3 and W_eff = 3 W / 3 = W.
    lin = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 1.0]]))
    _wrapped(lin)
    norm = spectral_parametrization(lin)
    assert isinstance(norm, ISN) and norm.sigma_init.item() == pytest.approx(3.0)
    # Then W = diag(6, 1): sigma = 6, W_eff = 3 * W / 6 = diag(3, 0.5) once u has converged.
    with torch.no_grad():
        lin.parametrizations.weight.original.copy_(torch.tensor([[6.0, 0.0], [0.0, 1.0]]))
    for _ in range(20):
        _ = lin.weight  # each training-mode access takes a power step
    lin.eval()
    torch.testing.assert_close(lin.weight, torch.tensor([[3.0, 0.0], [0.0, 0.5]]), atol=1e-5, rtol=0)


def test_isn_keeps_sigma_init_through_adam_steps() -> None:
    torch.manual_seed(3)
    lin = nn.Linear(8, 6)
    W = lin.weight
    _wrapped(lin)
    norm = spectral_parametrization(lin)
    sigma_init = norm.sigma_init.clone()
    assert sigma_init.item() == pytest.approx(_sigma(W), rel=1e-6)  # exact, at wrap time
    W0 = W.detach().clone()
    opt = torch.optim.Adam(lin.parameters(), lr=0.05)
    target = torch.randn(6, 8) * 3.0
    for _ in range(50):
        opt.zero_grad()
        x = torch.randn(16, 8)
        (lin(x) - x @ target.T).square().mean().backward()
        opt.step()
        assert torch.equal(norm.sigma_init, sigma_init)  # never re-estimated
    assert (W.detach() - W0).norm() > 0.5 * W0.norm()  # W changed a lot
    # The running estimate carries over: a few more power steps from it converge. (An estimate that
    # restarted from the wrap-time u every step would stay one step from it and miss sigma(W).)
    with torch.no_grad():
        for _ in range(20):
            lin(torch.randn(1, 8))
    lin.eval()
    assert _sigma(lin.weight) == pytest.approx(sigma_init.item(), rel=1e-3)


def test_sn_gives_unit_spectral_norm() -> None:
    torch.manual_seed(4)
    lin = _wrapped(nn.Linear(10, 7), "sn")
    assert type(spectral_parametrization(lin)) is SpectralNorm
    with torch.no_grad():
        lin.parametrizations.weight.original.mul_(5.0)
        for _ in range(30):
            lin(torch.randn(1, 10))
    lin.eval()
    assert _sigma(lin.weight) == pytest.approx(1.0, rel=1e-3)
    # Independent reference: W / sigma(W) by SVD.
    W = lin.parametrizations.weight.original.detach()
    torch.testing.assert_close(lin.weight, W / _sigma(W), atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("mode", ["isn", "sn"])
def test_conv2d_is_normalized_as_a_matrix(mode: str) -> None:
    torch.manual_seed(5)
    conv = nn.Conv2d(3, 4, kernel_size=3, padding=1)
    sigma0 = _sigma(conv.weight)
    _wrapped(conv, mode)
    norm = spectral_parametrization(conv)
    assert norm.u.shape == (4,) and norm.v.shape == (3 * 3 * 3,)
    with torch.no_grad():
        for _ in range(30):
            y = conv(torch.randn(2, 3, 5, 5))
    assert y.shape == (2, 4, 5, 5) and torch.isfinite(y).all()
    conv.eval()
    expected = sigma0 if mode == "isn" else 1.0
    assert conv.weight.shape == (4, 3, 3, 3)
    assert _sigma(conv.weight) == pytest.approx(expected, rel=1e-3)
    conv.train()
    (conv(torch.randn(2, 3, 5, 5)) * torch.randn(2, 4, 5, 5)).sum().backward()
    assert conv.parametrizations.weight.original.grad.abs().sum() > 0 and conv.bias.grad.abs().sum() > 0


def test_state_dict_round_trip() -> None:
    torch.manual_seed(6)
    lin = _wrapped(nn.Linear(5, 3))
    with torch.no_grad():
        lin.parametrizations.weight.original.mul_(2.0)
        lin(torch.randn(1, 5))
    sd = lin.state_dict()
    for key in (
        "parametrizations.weight.0.u",
        "parametrizations.weight.0.v",
        "parametrizations.weight.0.sigma_init",
    ):
        assert key in sd
    torch.manual_seed(7)
    other = _wrapped(nn.Linear(5, 3))
    other.load_state_dict(sd)
    a, b = spectral_parametrization(lin), spectral_parametrization(other)
    for name in ("u", "v", "sigma_init"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    lin.eval(), other.eval()
    x = torch.randn(4, 5)
    torch.testing.assert_close(other(x), lin(x))


# ------------------------------------------------------------------------ apply_spectral_norm, diagnostics
def test_apply_wraps_every_linear_and_conv() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 5), nn.LayerNorm(5), nn.Linear(5, 1)
    )
    out = apply_spectral_norm(model, "isn")
    assert out is model
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert len(layers) == 3 and all(isinstance(spectral_parametrization(m), ISN) for m in layers)
    assert spectral_parametrization(model[4]) is None  # LayerNorm untouched
    with pytest.raises(ValueError, match="already spectrally normalized"):
        apply_spectral_norm(model, "sn")


def test_apply_none_and_bad_mode() -> None:
    lin = nn.Linear(3, 2)
    weight = lin.weight
    assert apply_spectral_norm(lin, "none") is lin and lin.weight is weight
    assert spectral_parametrization(lin) is None
    with pytest.raises(ValueError, match="mode must be one of"):
        apply_spectral_norm(lin, "ISN ")


def test_spectral_norms_report() -> None:
    torch.manual_seed(8)
    model = nn.Sequential(nn.Linear(6, 5), nn.GELU(), nn.Linear(5, 2))
    plain = nn.Linear(4, 4)
    exact_plain = _sigma(plain.weight)
    assert spectral_norms(plain) == {"": pytest.approx(exact_plain, rel=1e-5)}  # unwrapped: exact
    sigma_inits = [_sigma(model[0].weight), _sigma(model[2].weight)]
    apply_spectral_norm(model, "isn")
    u_before = spectral_parametrization(model[0]).u.clone()
    report = spectral_norms(model)
    assert set(report) == {"0", "2"}
    assert report["0"] == pytest.approx(sigma_inits[0], rel=1e-3)
    assert report["2"] == pytest.approx(sigma_inits[1], rel=1e-3)
    assert torch.equal(spectral_parametrization(model[0]).u, u_before)  # diagnostics leave u alone
    exact = spectral_norms(model, exact=True)
    assert exact["0"] == pytest.approx(_sigma(model[0].weight), rel=1e-5)
