"""Tests for vitgan_lite/inr.py: SIREN, weight (de)modulation, E_fou, the patch decoder (lesson 07)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_grads_reach_every_parameter
from torch import nn

from vitgan_lite.inr import (
    ModulatedLinear,
    PatchCoordinateEncoding,
    PatchDecoder,
    SineLayer,
    modulated_linear,
    modulated_linear_explicit,
    modulated_linear_shared,
)
from vitgan_lite.positional import coordinate_grid

BOTH = pytest.mark.parametrize("fn", [modulated_linear, modulated_linear_explicit], ids=["fast", "explicit"])


# ----------------------------------------------------------------------------------------------------
# modulated_linear


@BOTH
def test_modulated_linear_hand_value_diagonal(fn):
    W = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    s = torch.tensor([[2.0, 1.0]])
    x = torch.tensor([[[3.0, 4.0]]])
    # W' = W diag(s) = [[2, 0], [0, 2]]; W' x = [6, 8]; both rows of W' have norm 2 -> demodulated [3, 4].
    torch.testing.assert_close(fn(x, W, s, demodulate=True), torch.tensor([[[3.0, 4.0]]]))
    torch.testing.assert_close(fn(x, W, s, demodulate=False), torch.tensor([[[6.0, 8.0]]]))


@BOTH
def test_modulation_scales_the_input_axis(fn):
    # Non-diagonal W tells the two axes apart.
    W = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    s = torch.tensor([[2.0, 1.0]])
    x = torch.tensor([[[1.0, 1.0]]])
    # Input axis (StyleGAN2): W'_ij = s_j W_ij = [[2, 2], [6, 4]] -> W' x = [4, 10].
    # (Scaling the output axis instead, s_i W_ij = [[2, 4], [3, 4]], would give [6, 7].)
    torch.testing.assert_close(fn(x, W, s, demodulate=False), torch.tensor([[[4.0, 10.0]]]))
    # Row norms of W': sqrt(4 + 4) = sqrt(8), sqrt(36 + 16) = sqrt(52); bias added after demodulation.
    expected = torch.tensor([[[4.0 / math.sqrt(8.0) + 0.5, 10.0 / math.sqrt(52.0) - 1.0]]])
    torch.testing.assert_close(fn(x, W, s, bias=torch.tensor([0.5, -1.0])), expected)


@BOTH
def test_modulated_linear_non_square(fn):
    # W (O=3, I=2): s has one entry per INPUT feature (I = 2), never per output.
    W = torch.tensor([[1.0, 1.0], [0.0, 1.0], [2.0, 0.0]])
    x = torch.tensor([[[1.0, 2.0]]])
    s = torch.tensor([[3.0, 0.5]])
    # W' = [[3, 0.5], [0, 0.5], [6, 0]] -> W' x = [3 + 1, 0 + 1, 6 + 0] = [4, 1, 6]
    torch.testing.assert_close(fn(x, W, s, demodulate=False), torch.tensor([[[4.0, 1.0, 6.0]]]))
    with pytest.raises(ValueError, match="one scale per INPUT feature"):
        fn(x, W, torch.ones(1, 3))


def test_demodulated_rows_have_unit_norm():
    # Feeding the basis vectors e_j as the M points reads out the columns of W'': out[b, j, i] = W''_bij,
    # so with demodulation every output i has sum_j out[b, j, i]^2 = 1 (up to eps).
    torch.manual_seed(0)
    I, O = 6, 4
    x = torch.eye(I).expand(3, I, I)  # (B, M=I, I)
    out = modulated_linear(x, torch.randn(O, I), torch.rand(3, I) + 0.1)
    torch.testing.assert_close(out.square().sum(dim=1), torch.ones(3, O))


def test_demodulation_is_invariant_to_style_scale():
    torch.manual_seed(0)
    x, W, s, b = torch.randn(3, 5, 7), torch.randn(4, 7), torch.randn(3, 7), torch.randn(4)
    ref = modulated_linear(x, W, s, b)
    for c in (0.3, 7.0):
        torch.testing.assert_close(modulated_linear(x, W, c * s, b), ref)
    # Without demodulation the output is linear in s (a check that the invariance is not vacuous).
    torch.testing.assert_close(
        modulated_linear(x, W, 3.0 * s, demodulate=False), 3.0 * modulated_linear(x, W, s, demodulate=False)
    )


@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("shape", [(3, 5, 7, 4), (1, 1, 2, 9), (5, 16, 8, 3)])
def test_fast_equals_explicit_values_and_grads(shape, demodulate):
    torch.manual_seed(sum(shape))
    B, M, I, O = shape
    leaves = [torch.randn(B, M, I), torch.randn(O, I), torch.randn(B, I), torch.randn(O)]
    grads = []
    outs = []
    for fn in (modulated_linear, modulated_linear_explicit):
        x, W, s, b = (t.clone().requires_grad_(True) for t in leaves)
        out = fn(x, W, s, b, demodulate=demodulate)
        assert out.shape == (B, M, O)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        outs.append(out.detach())
        grads.append([x.grad, W.grad, s.grad, b.grad])
    torch.testing.assert_close(outs[0], outs[1])
    for g_fast, g_explicit in zip(*grads):
        torch.testing.assert_close(g_fast, g_explicit)


@pytest.mark.parametrize(
    "demodulate,bias,scale", [(True, True, 2**0.5), (False, True, 1.0), (True, False, 3.0)]
)
@pytest.mark.parametrize("shape", [(3, 5, 7, 4), (1, 1, 2, 9), (6, 16, 8, 3)])
def test_shared_input_gemm_equals_the_explicit_form_values_and_grads(shape, demodulate, bias, scale):
    """The decoder's first layer as one GEMM, s @ K with K[j, (m, o)] = x[m, j] W[o, j], is the same function
    as the explicit (B, O, I) modulated weights on x expanded to every batch item: values and gradients."""
    torch.manual_seed(sum(shape))
    B, M, I, O = shape
    leaves = [torch.randn(M, I, dtype=torch.float64), torch.randn(O, I, dtype=torch.float64)]
    leaves += [torch.randn(B, I, dtype=torch.float64), torch.randn(O, dtype=torch.float64)]
    weights = torch.linspace(-1, 1, B * M * O, dtype=torch.float64).view(B, M, O)
    outs, grads = [], []
    for shared in (True, False):
        x, W, s, b = (t.clone().requires_grad_(True) for t in leaves)
        b_or_none = b if bias else None
        if shared:
            out = modulated_linear_shared(x, W, s, b_or_none, demodulate=demodulate, scale=scale)
        else:
            out = scale * modulated_linear_explicit(x.expand(B, M, I), W, s, b_or_none, demodulate=demodulate)
        assert out.shape == (B, M, O)
        (out * weights).sum().backward()
        outs.append(out.detach())
        grads.append([x.grad, W.grad, s.grad] + ([b.grad] if bias else []))
    torch.testing.assert_close(outs[0], outs[1])
    for g_shared, g_explicit in zip(*grads):
        torch.testing.assert_close(g_shared, g_explicit)


def test_shared_input_hand_value():
    x = torch.tensor([[1.0, 2.0]])  # M = 1 point, I = 2
    W = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # O = 2
    s = torch.tensor([[3.0, 4.0]])  # B = 1
    # modulated rows: [3, 0] and [3, 4]; outputs 3 and 3 + 8 = 11; demodulated: 3/3 = 1 and 11/5 = 2.2
    out = modulated_linear_shared(x, W, s, torch.tensor([0.5, -0.5]), demodulate=True, eps=0.0, scale=2.0)
    torch.testing.assert_close(out, torch.tensor([[[2 * 1.5, 2 * 1.7]]]))
    with pytest.raises(ValueError, match=r"x must have shape \(M, I\)"):
        modulated_linear_shared(x.unsqueeze(0), W, s)


def test_modulated_linear_bad_shapes():
    W = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"x must have shape \(B, M, 3\)"):
        modulated_linear(torch.randn(2, 3), W, torch.ones(2, 3))
    with pytest.raises(ValueError, match="one scale per INPUT feature"):
        modulated_linear(torch.randn(2, 5, 3), W, torch.ones(3, 3))
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
        modulated_linear(torch.randn(2, 5, 3), W, torch.ones(2, 3), bias=torch.zeros(3))
    with pytest.raises(ValueError, match=r"weight must have shape \(O, I\)"):
        modulated_linear(torch.randn(2, 5, 3), torch.randn(4, 3, 1), torch.ones(2, 3))


# ----------------------------------------------------------------------------------------------------
# ModulatedLinear


def test_modulated_linear_layer_with_unit_style_is_a_plain_linear():
    torch.manual_seed(0)
    layer = ModulatedLinear(6, 4, style_dim=5, demodulate=False)
    with torch.no_grad():
        layer.bias.normal_()
    # s = A(0) = the affine's effective bias = 1 exactly, so the layer is F.linear with W / sqrt(I).
    torch.testing.assert_close(layer.affine.effective_bias(), torch.ones(6))
    x = torch.randn(3, 2, 6)
    expected = F.linear(x, layer.weight / math.sqrt(6), layer.bias)
    torch.testing.assert_close(layer(x, torch.zeros(3, 5)), expected)


def test_modulated_linear_layer_shapes_grads_errors():
    torch.manual_seed(0)
    layer = ModulatedLinear(6, 4, style_dim=5, activation="lrelu")
    out = layer(torch.randn(3, 7, 6), torch.randn(3, 5))
    assert out.shape == (3, 7, 4) and torch.isfinite(out).all()
    (out * torch.randn_like(out)).sum().backward()
    assert_grads_reach_every_parameter(layer)
    with pytest.raises(ValueError, match=r"style must have shape \(B, 5\)"):
        layer(torch.randn(3, 7, 6), torch.randn(3, 4))
    with pytest.raises(ValueError, match="activation must be None or 'lrelu'"):
        ModulatedLinear(6, 4, style_dim=5, activation="sine")


# ----------------------------------------------------------------------------------------------------
# SIREN


def test_sine_layer_hand_value():
    layer = SineLayer(1, 1, omega0=2.0)
    with torch.no_grad():
        layer.linear.weight.fill_(0.5)
        layer.linear.bias.fill_(0.25)
    # sin(omega0 * (W x + b)) = sin(2 * (0.5 * 1 + 0.25)) = sin(1.5)
    torch.testing.assert_close(layer(torch.tensor([[1.0]])), torch.tensor([[math.sin(1.5)]]))
    with pytest.raises(ValueError, match="expects 1 input features"):
        layer(torch.randn(2, 3))


def test_siren_init_bounds():
    torch.manual_seed(0)
    first = SineLayer(2, 256, is_first=True)  # bound 1 / in = 0.5 (512 draws)
    w = first.linear.weight.abs().max().item()
    assert 0.95 * 0.5 < w <= 0.5
    hidden = SineLayer(64, 64, omega0=30.0)  # bound sqrt(6 / 64) / 30 = 0.0102 (4096 draws)
    bound = math.sqrt(6.0 / 64) / 30.0
    w = hidden.linear.weight.abs().max().item()
    assert 0.95 * bound < w <= bound
    # The rule lives in reset_parameters: re-running it after a perturbation restores the bounds.
    with torch.no_grad():
        hidden.linear.weight.fill_(1.0)
    hidden.reset_parameters()
    assert hidden.linear.weight.abs().max().item() <= bound


def test_siren_hidden_init_keeps_sine_inputs_unit_std():
    # SIREN's point (Sitzmann et al. 2020, Sec. 3.2): with W ~ U(+-sqrt(6/I)/omega0), omega0 * W x has
    # std ~1 at every depth. Hand computation: Var(omega0 W_ij) = 6/I / 3 = 2/I, E[sin^2] = 1/2 for the
    # arcsine-distributed inputs, so Var(omega0 W x) = I * 2/I * 1/2 = 1. (The bias is left out: SIREN's
    # code keeps PyTorch's default bias, which adds a little on top.)
    torch.manual_seed(0)
    net = [SineLayer(2, 256, is_first=True)] + [SineLayer(256, 256) for _ in range(3)]
    h = net[0](torch.rand(512, 2) * 2 - 1)  # (512, 256), first layer on [-1, 1]^2
    for layer in net[1:]:
        assert 0.85 < (layer.omega0 * h @ layer.linear.weight.t()).std().item() < 1.15
        h = layer(h)


def test_siren_fits_1d_signal_better_than_relu():
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 64).unsqueeze(1)
    y = torch.sin(8 * x) * torch.cos(3 * x) + 0.5 * torch.sin(20 * x)

    def fit(net: nn.Module, steps: int = 20) -> float:
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        for _ in range(steps):
            loss = (net(x) - y).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item()

    siren = nn.Sequential(SineLayer(1, 16, is_first=True), SineLayer(16, 16), nn.Linear(16, 1))
    relu = nn.Sequential(nn.Linear(1, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1))
    assert fit(siren) < 0.2 * fit(relu)


# ----------------------------------------------------------------------------------------------------
# E_fou


def test_patch_coordinate_encoding_shape_range_hand_value():
    torch.manual_seed(0)
    enc = PatchCoordinateEncoding(patch_size=4, dim=10)
    e = enc()
    assert e.shape == (16, 10)
    assert e.abs().max() <= 1.0
    assert not torch.allclose(e[0], e[5])  # different pixels, different features
    torch.testing.assert_close(enc.coords, coordinate_grid(4))
    assert "coords" not in enc.state_dict()  # a constant of P, not a learned or saved value
    enc3 = PatchCoordinateEncoding(patch_size=3, dim=2)
    with torch.no_grad():
        enc3.proj.weight.copy_(torch.eye(2))
        enc3.proj.bias.zero_()
    # features = (sin(row), sin(col)); pixel 5 of a 3 x 3 patch is row 5 // 3 = 1 -> 0, col 5 % 3 = 2 -> 1.
    torch.testing.assert_close(enc3()[5], torch.tensor([0.0, math.sin(1.0)]))
    with pytest.raises(ValueError, match="patch_size must be positive"):
        PatchCoordinateEncoding(patch_size=0, dim=4)


# ----------------------------------------------------------------------------------------------------
# Patch decoder


def test_patch_decoder_shape_finite_grads():
    torch.manual_seed(0)
    dec = PatchDecoder(token_dim=12, patch_size=2, channels=3, hidden_dim=10, fourier_dim=6)
    y = torch.randn(3, 5, 12)
    out = dec(y)
    assert out.shape == (3, 5, 3 * 2 * 2)
    assert torch.isfinite(out).all()
    (out * torch.randn_like(out)).sum().backward()
    assert_grads_reach_every_parameter(dec)
    assert not dec.to_rgb.demodulate and dec.hidden.demodulate


def test_patch_decoder_tokens_are_decoded_independently():
    torch.manual_seed(0)
    dec = PatchDecoder(token_dim=8, patch_size=2, channels=3)
    y = torch.randn(2, 4, 8)
    y2 = y.clone()
    y2[1, 2] = torch.randn(8)
    diff = (dec(y2) - dec(y)).abs().amax(dim=-1)  # (B, N)
    assert diff[1, 2] > 1e-4
    diff[1, 2] = 0
    assert torch.all(diff == 0)


def test_patch_decoder_channel_order():
    torch.manual_seed(0)
    dec = PatchDecoder(token_dim=8, patch_size=2, channels=3)
    with torch.no_grad():
        dec.to_rgb.weight.zero_()
        dec.to_rgb.bias.copy_(torch.tensor([0.0, 10.0, 20.0]))  # channel c is the constant 10 c
    out = dec(torch.randn(2, 3, 8))
    # Channels-first (C, P, P) flattening: entries [c * P*P, (c + 1) * P*P) all belong to channel c.
    expected = torch.tensor([0.0, 10.0, 20.0]).repeat_interleave(4).expand(2, 3, 12)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("axis", [0, 1])
def test_patch_decoder_pixel_order(axis):
    # Mirroring one coordinate axis of E_fou must mirror the patch along the same image axis:
    # pixel k of the decoder is coordinate_grid(P)[k], and the flattening is row-major (C, P, P).
    torch.manual_seed(0)
    P, C = 3, 2
    dec = PatchDecoder(token_dim=8, patch_size=P, channels=C)
    y = torch.randn(2, 3, 8)
    out = dec(y).view(2, 3, C, P, P)
    flip = torch.ones(2)
    flip[axis] = -1.0
    dec.fourier.coords = dec.fourier.coords * flip  # (row, col) -> (-row, col) or (row, -col)
    mirrored = dec(y).view(2, 3, C, P, P)
    torch.testing.assert_close(mirrored, out.flip(3 + axis), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(mirrored, out.flip(4 - axis), rtol=1e-4, atol=1e-5)


def test_patch_decoder_omega0_gives_unit_std_sine_inputs():
    # The default omega0 = sqrt(2) makes the demodulated sine input ~N(0, 1) (SIREN's condition);
    # SIREN's 30 would be far outside it.
    torch.manual_seed(0)
    dec = PatchDecoder(token_dim=64, patch_size=4, channels=3)
    y = F.layer_norm(torch.randn(4 * 8, 64), (64,))  # tokens as the final SLN hands them over
    x = dec.fourier().expand(4 * 8, -1, -1)
    u = dec.hidden(x, y)
    assert 0.8 < (dec.omega0 * u).std().item() < 1.25
    assert (30.0 * u).std().item() > 10


def test_patch_decoder_bad_input():
    dec = PatchDecoder(token_dim=8, patch_size=2)
    with pytest.raises(ValueError, match=r"y must have shape \(B, N, 8\)"):
        dec(torch.randn(2, 8))
    with pytest.raises(ValueError, match=r"y must have shape \(B, N, 8\)"):
        dec(torch.randn(2, 4, 7))
