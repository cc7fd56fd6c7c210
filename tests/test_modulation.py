"""Tests for vitgan_lite/modulation.py: equalized lr, mapping network z -> w, SLN (lesson 06)."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import assert_grads_reach_every_parameter

from vitgan_lite.modulation import (
    SLN,
    EqualLinear,
    MappingNetwork,
    SelfModulatedLayerNorm,
    normalize_2nd_moment,
    scaled_leaky_relu,
)

# ----------------------------------------------------------------------------------------------------
# EqualLinear


def test_equal_linear_hand_value():
    layer = EqualLinear(4, 3, bias_init=0.5)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [-1.0, 0.0, 0.0, 5.0]])
    # Hand computation: effective weight = 1 * lr_mul / sqrt(4) = 1/2, so each output = sum(x) / 2 + 0.5:
    # row 0: 10 / 2 + 0.5 = 5.5; row 1: 4 / 2 + 0.5 = 2.5.
    expected = torch.tensor([[5.5] * 3, [2.5] * 3])
    torch.testing.assert_close(layer(x), expected)


def test_equal_linear_lrelu_hand_value():
    layer = EqualLinear(4, 1, activation="lrelu")
    with torch.no_grad():
        layer.weight.fill_(1.0)
    x = torch.tensor([[1.0, 1.0, 1.0, 1.0], [-1.0, -1.0, -1.0, -1.0]])
    # pre-activation +-4 / 2 = +-2; lrelu(2) * sqrt(2) = 2 sqrt(2); lrelu(-2) * sqrt(2) = -0.4 sqrt(2)
    expected = torch.tensor([[2.0 * math.sqrt(2.0)], [-0.4 * math.sqrt(2.0)]])
    torch.testing.assert_close(layer(x), expected)
    torch.testing.assert_close(scaled_leaky_relu(torch.tensor([-1.0])), torch.tensor([-0.2 * math.sqrt(2.0)]))


def test_equal_linear_lr_mul_scales_at_run_time():
    torch.manual_seed(0)
    layer = EqualLinear(64, 64, bias_init=0.3, lr_mul=0.01)
    # The stored weight is N(0, 1) / lr_mul: std 100 (4096 samples: within a few percent).
    assert layer.weight.std().item() == pytest.approx(1.0 / 0.01, rel=0.05)
    # ... and the effective one is N(0, 1 / in_dim): std 1/8; the effective bias starts at bias_init.
    assert layer.effective_weight().std().item() == pytest.approx(1.0 / 8.0, rel=0.05)
    torch.testing.assert_close(layer.effective_bias(), torch.full((64,), 0.3))
    x = torch.randn(5, 64)
    y = layer(x)
    # The gain is applied in forward, not baked in at construction: changing lr_mul now rescales the
    # effective weight and bias (lr_mul 0.01 -> 0.02 doubles the whole output).
    layer.lr_mul = 0.02
    torch.testing.assert_close(layer(x), 2.0 * y)


def test_equal_linear_same_function_at_init_for_any_lr_mul():
    # lr_mul changes the learning dynamics, not the initial function: same seed, same output.
    x = torch.randn(3, 16)
    torch.manual_seed(1)
    a = EqualLinear(16, 8, bias_init=1.0, lr_mul=1.0)
    torch.manual_seed(1)
    b = EqualLinear(16, 8, bias_init=1.0, lr_mul=0.01)
    torch.testing.assert_close(a(x), b(x))


def test_equal_linear_adam_step_moves_effective_weight_by_lr_times_gain():
    # Adam's first step moves every stored parameter by ~lr (m / sqrt(v) = g / |g| after bias correction),
    # whatever the parameter's scale. With the gain applied at run time, the *effective* weight moves by
    # lr * lr_mul / sqrt(fan_in) = 1e-2 * 0.1 / sqrt(25) = 2e-4, not by lr = 1e-2. This is the point of
    # equalized lr: a layer with fan_in 25 and one with fan_in 2500 change at the same relative speed.
    torch.manual_seed(0)
    lr, lr_mul, fan_in = 1e-2, 0.1, 25
    layer = EqualLinear(fan_in, 4, lr_mul=lr_mul)
    before = layer.effective_weight().detach().clone()
    opt = torch.optim.Adam(layer.parameters(), lr=lr)
    layer(torch.randn(8, fan_in)).square().sum().backward()
    opt.step()
    delta = (layer.effective_weight().detach() - before).abs()
    torch.testing.assert_close(
        delta, torch.full_like(delta, lr * lr_mul / math.sqrt(fan_in)), rtol=1e-3, atol=0
    )
    assert delta.max() < lr / 10


def test_equal_linear_gradients_and_odd_batch():
    layer = EqualLinear(7, 5, lr_mul=0.5, activation="lrelu")
    y = layer(torch.randn(3, 2, 7))
    assert y.shape == (3, 2, 5)
    y.sum().backward()
    assert_grads_reach_every_parameter(layer)


def test_equal_linear_bad_input():
    with pytest.raises(ValueError, match="expects 4 input features"):
        EqualLinear(4, 2)(torch.randn(2, 5))
    with pytest.raises(ValueError, match="activation must be None or 'lrelu'"):
        EqualLinear(4, 2, activation="relu")
    with pytest.raises(ValueError, match="lr_mul must be positive"):
        EqualLinear(4, 2, lr_mul=0.0)


# ----------------------------------------------------------------------------------------------------
# normalize_2nd_moment and the mapping network


def test_normalize_2nd_moment_hand_value():
    # [3, 4]: mean of squares (9 + 16) / 2 = 12.5 -> [3, 4] / sqrt(12.5)
    x = torch.tensor([[3.0, 4.0]])
    torch.testing.assert_close(normalize_2nd_moment(x), x / math.sqrt(12.5))
    with pytest.raises(ValueError, match=r"shape \(B, D\)"):
        normalize_2nd_moment(torch.randn(4))


def test_mapping_network_shape_finite_grads():
    torch.manual_seed(0)
    mapping = MappingNetwork(latent_dim=12, style_dim=10, num_layers=3, hidden_dim=9)
    w = mapping(torch.randn(5, 12))
    assert w.shape == (5, 10)
    assert torch.isfinite(w).all()
    assert len(mapping.layers) == 3 and mapping.layers[1].weight.shape == (9, 9)
    assert all(layer.lr_mul == 0.01 for layer in mapping.layers)
    w.square().sum().backward()
    assert_grads_reach_every_parameter(mapping)


def test_mapping_network_normalizes_z():
    torch.manual_seed(0)
    mapping = MappingNetwork(latent_dim=8, style_dim=6, num_layers=2)
    z = torch.randn(3, 8)
    # Only the direction of z matters: z and 5 z give the same w.
    torch.testing.assert_close(mapping(5.0 * z), mapping(z))
    # ... while a different z gives a different w.
    assert not torch.allclose(mapping(torch.randn(3, 8)), mapping(z))


def test_mapping_network_bad_z():
    mapping = MappingNetwork(latent_dim=8, style_dim=6, num_layers=2)
    with pytest.raises(ValueError, match=r"z must have shape \(B, 8\)"):
        mapping(torch.randn(3, 7))
    with pytest.raises(ValueError, match="num_layers must be positive"):
        MappingNetwork(latent_dim=8, style_dim=6, num_layers=0)


# ----------------------------------------------------------------------------------------------------
# Self-modulated LayerNorm


def test_sln_is_the_alias():
    assert SLN is SelfModulatedLayerNorm


def test_sln_shape_finite_odd_batch():
    sln = SLN(dim=6, style_dim=5)
    out = sln(torch.randn(3, 7, 6), torch.randn(3, 5))
    assert out.shape == (3, 7, 6)
    assert torch.isfinite(out).all()


def test_sln_hand_value():
    torch.manual_seed(0)
    sln = SLN(dim=4, style_dim=3)
    with torch.no_grad():
        sln.gamma.weight.zero_()
        sln.gamma.bias.fill_(2.0)  # gamma(w) = 2 for every w
        sln.beta.weight.zero_()
        sln.beta.bias.fill_(1.0)  # beta(w) = 1
    h = torch.tensor([[[1.0, 2.0, 3.0, 6.0]]])
    # Hand computation: mu = 12 / 4 = 3; biased variance = (4 + 1 + 0 + 9) / 4 = 3.5;
    # layernorm(h) = (h - 3) / sqrt(3.5 + eps) = [-2, -1, 0, 3] / sqrt(3.5); output = 2 * that + 1.
    expected = 2.0 * torch.tensor([[[-2.0, -1.0, 0.0, 3.0]]]) / math.sqrt(3.5 + 1e-5) + 1.0
    torch.testing.assert_close(sln(h, torch.randn(1, 3)), expected)


def test_sln_starts_near_layernorm():
    torch.manual_seed(0)
    sln = SLN(dim=32, style_dim=16)
    w = torch.randn(4, 16)  # unit second moment, like the mapping network's output
    gamma, beta = sln.gamma(w), sln.beta(w)
    assert (gamma - 1).abs().max() < 0.5 and (gamma - 1).std() > 0.02
    assert beta.abs().max() < 0.5 and beta.std() > 0.02


def test_sln_depends_on_w():
    torch.manual_seed(0)
    sln = SLN(dim=8, style_dim=4)
    h = torch.randn(2, 5, 8)
    out_a = sln(h, torch.randn(2, 4))
    out_b = sln(h, torch.randn(2, 4))
    assert (out_a - out_b).abs().max() > 1e-3


def test_sln_depends_on_h_only_per_token():
    torch.manual_seed(0)
    sln = SLN(dim=8, style_dim=4)
    h, w = torch.randn(2, 6, 8), torch.randn(2, 4)
    h2 = h.clone()
    h2[:, 3] = torch.randn(2, 8)
    diff = (sln(h2, w) - sln(h, w)).abs().amax(dim=(0, 2))  # (N,)
    assert diff[3] > 1e-3
    assert torch.all(diff[torch.arange(6) != 3] == 0)


def test_sln_has_no_layernorm_affine_params():
    sln = SLN(dim=8, style_dim=4)
    assert list(sln.norm.parameters()) == []
    names = {name for name, _ in sln.named_parameters()}
    assert names == {"gamma.weight", "gamma.bias", "beta.weight", "beta.bias"}
    # gamma and beta are affine layers of w (B, S) -> (B, D), not scalars multiplying w.
    assert sln.gamma.weight.shape == (8, 4) and sln.beta.weight.shape == (8, 4)


def test_two_sln_instances_share_nothing():
    a, b = SLN(dim=8, style_dim=4), SLN(dim=8, style_dim=4)
    ids_a = {id(p) for p in a.parameters()}
    assert ids_a.isdisjoint(id(p) for p in b.parameters())
    assert not torch.equal(a.gamma.weight, b.gamma.weight)


def test_sln_gradients_reach_every_parameter_and_w():
    torch.manual_seed(0)
    sln = SLN(dim=8, style_dim=4)
    h = torch.randn(3, 5, 8, requires_grad=True)
    w = torch.randn(3, 4, requires_grad=True)
    (sln(h, w) * torch.randn(3, 5, 8)).sum().backward()
    assert_grads_reach_every_parameter(sln)
    assert w.grad is not None and w.grad.abs().sum() > 0
    assert h.grad is not None and h.grad.abs().sum() > 0


def test_sln_bad_shapes():
    sln = SLN(dim=8, style_dim=4)
    with pytest.raises(ValueError, match=r"h must have shape \(B, N, 8\)"):
        sln(torch.randn(2, 5, 7), torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"w must have shape \(B, 4\)"):
        sln(torch.randn(2, 5, 8), torch.randn(2, 3))
    with pytest.raises(ValueError, match="same batch size"):
        sln(torch.randn(2, 5, 8), torch.randn(3, 4))
