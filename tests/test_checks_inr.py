"""The lesson-07 checkers pass the reference and the solution, meet the stubs kindly, reject real mistakes."""

import math

import torch
from helpers import assert_checker_contract, assert_rejects, mistakes_are_named
from torch import nn

from vitgan_lite import inr
from vitgan_lite.checks import check_modulated_linear, check_sine_layer

LESSON = "07_implicit_neural_representation"


def test_checker_contract(capsys):
    assert_checker_contract(
        LESSON,
        {
            "modulated_linear": (check_modulated_linear, inr.modulated_linear),
            "SineLayer": (check_sine_layer, inr.SineLayer),
        },
        capsys,
    )


# ---- Exercise 7.1: wrong modulated_linear ---------------------------------------------------------------


def _explicit(x, weight, s, bias=None, demodulate=True, eps=1e-8, s_axis=1, demod_dim=2, bias_first=False):
    """The explicit (B, O, I) form with switches for the mistakes (s_axis=2: s on the output axis)."""
    w = weight.unsqueeze(0) * s.unsqueeze(s_axis)  # (B, O, I)
    out = None
    if demodulate and bias_first and bias is not None:
        d = torch.rsqrt(w.square().sum(dim=2) + eps)  # (B, O)
        return (torch.einsum("bmi,boi->bmo", x, w) + bias) * d.unsqueeze(1)
    if demodulate:
        w = w * torch.rsqrt(w.square().sum(dim=demod_dim, keepdim=True) + eps)
    out = torch.einsum("bmi,boi->bmo", x, w)
    return out if bias is None else out + bias


def output_axis(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    return _explicit(x, weight, s, bias, demodulate, eps, s_axis=2)


def output_axis_fused(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    # Scales the outputs instead of the inputs: runs only when O == I.
    out = (x @ weight.t()) * s.unsqueeze(1)
    if demodulate:
        out = out * torch.rsqrt(weight.square().sum(-1) * s.square() + eps).unsqueeze(1)  # |s_i| |W_i|
    return out if bias is None else out + bias


def column_demod(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    return _explicit(x, weight, s, bias, demodulate, eps, demod_dim=1)


def no_demod(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    return inr.modulated_linear(x, weight, s, bias, demodulate=False, eps=eps)


def always_demod(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    return inr.modulated_linear(x, weight, s, bias, demodulate=True, eps=eps)


def bias_before_demod(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    return _explicit(x, weight, s, bias, demodulate, eps, bias_first=True)


def no_bias(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    return inr.modulated_linear(x, weight, s, None, demodulate=demodulate, eps=eps)


def s_ignored(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    return inr.modulated_linear(x, weight, torch.ones_like(s), bias, demodulate=demodulate, eps=eps)


def detached_weight(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    return inr.modulated_linear(x, weight.detach(), s, bias, demodulate=demodulate, eps=eps)


test_modulated_linear_mistakes_are_named = mistakes_are_named(
    check_modulated_linear,
    [
        (output_axis, r"s scales the OUTPUT axis of W"),
        (output_axis_fused, r"s scales the OUTPUT axis of W"),
        (column_demod, r"COLUMNS"),
        (no_demod, r"no demodulation although demodulate=True"),
        (always_demod, r"demodulate although demodulate=False"),
        (bias_before_demod, r"bias is added before the demodulation"),
        (no_bias, r"bias is missing"),
        (s_ignored, r"styles s are not used"),
        (detached_weight, r"no gradient reaches weight"),
        (inr.modulated_linear_explicit, r"values are right.*\(B, O, I\).*Scale the inputs"),
        (lambda x, weight, s, bias=None, demodulate=True, eps=1e-8: x[..., :1], r"should have shape"),
    ],
)


def test_modulated_linear_hand_value_is_checked():
    # Hand example: [6, 8] without, [3, 4] with demodulation; doubling the output breaks both.
    def doubled(x, weight, s, bias=None, demodulate=True, eps=1e-8):
        return 2 * inr.modulated_linear(x, weight, s, bias, demodulate, eps)

    assert_rejects(check_modulated_linear, doubled, r"hand example.*\[6, 8\]")


# ---- Exercise 7.2: wrong SineLayer ------------------------------------------------------------------


class FirstUsesHiddenRule(inr.SineLayer):
    def reset_parameters(self):
        bound = math.sqrt(6 / self.in_dim) / self.omega0
        nn.init.uniform_(self.linear.weight, -bound, bound)


class DefaultInit(inr.SineLayer):
    def reset_parameters(self):
        self.linear.reset_parameters()


class HiddenWithoutOmega(inr.SineLayer):
    def reset_parameters(self):
        bound = 1 / self.in_dim if self.is_first else math.sqrt(6 / self.in_dim)
        nn.init.uniform_(self.linear.weight, -bound, bound)


class AlwaysFirstRule(inr.SineLayer):
    def reset_parameters(self):
        nn.init.uniform_(self.linear.weight, -1 / self.in_dim, 1 / self.in_dim)


class HardCoded30Init(inr.SineLayer):
    def reset_parameters(self):
        bound = 1 / self.in_dim if self.is_first else math.sqrt(6 / self.in_dim) / 30
        nn.init.uniform_(self.linear.weight, -bound, bound)


class NormalInit(inr.SineLayer):
    def reset_parameters(self):
        bound = 1 / self.in_dim if self.is_first else math.sqrt(6 / self.in_dim) / self.omega0
        nn.init.normal_(self.linear.weight, 0.0, bound / math.sqrt(3))


def _init_in_constructor(cls):
    """A class whose __init__ draws the SIREN weights itself and whose reset_parameters does nothing."""

    class InitInConstructor(cls):
        def __init__(self, in_dim, out_dim, omega0=30.0, is_first=False):
            super().__init__(in_dim, out_dim, omega0, is_first)
            inr.SineLayer.reset_parameters(self)

        def reset_parameters(self):
            pass

    return InitInConstructor


class OmegaOutside(inr.SineLayer):
    def forward(self, x):
        return self.omega0 * torch.sin(self.linear(x))


class OmegaMissing(inr.SineLayer):
    def forward(self, x):
        return torch.sin(self.linear(x))


class OmegaNotOnBias(inr.SineLayer):
    def forward(self, x):
        return torch.sin(self.omega0 * (x @ self.linear.weight.t()) + self.linear.bias)


class Forward30(inr.SineLayer):
    def forward(self, x):
        return torch.sin(30.0 * self.linear(x))


class DetachedBias(inr.SineLayer):
    def forward(self, x):
        return torch.sin(self.omega0 * (x @ self.linear.weight.t() + self.linear.bias.detach()))


class NoLinear(nn.Module):
    def __init__(self, in_dim, out_dim, omega0=30.0, is_first=False):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(out_dim, in_dim))


test_sine_layer_mistakes_are_named = mistakes_are_named(
    check_sine_layer,
    [
        (FirstUsesHiddenRule, r"first layer uses the hidden-layer rule"),
        (DefaultInit, r"PyTorch's default nn.Linear init"),
        (HiddenWithoutOmega, r"missing the 1/omega0"),
        (AlwaysFirstRule, r"hidden layer uses the first-layer rule"),
        (HardCoded30Init, r"omega0 = 30 instead of self.omega0"),
        (NormalInit, r"not uniform"),
        (_init_in_constructor(inr.SineLayer), r"reset_parameters\(\) did not redraw"),
        (OmegaOutside, r"omega0 is applied outside the sine"),
        (OmegaMissing, r"omega0 is missing"),
        (OmegaNotOnBias, r"omega0 multiplies W x but not the bias"),
        (Forward30, r"hard-coded to 30"),
        (DetachedBias, r"no gradient reaches the parameter 'linear.bias'"),
        (NoLinear, r"self.linear = nn.Linear"),
    ],
)


def test_a_bmm_over_an_expanded_weight_view_is_accepted():
    # expand() allocates nothing: only a materialised (B, O, I) weight is the mistake, not a view of W
    def bmm_expanded(x, weight, s, bias=None, demodulate=True, eps=1e-8):
        W = weight.unsqueeze(0).expand(x.shape[0], *weight.shape)  # (B, O, I) view of W
        out = torch.bmm(x * s.unsqueeze(1), W.transpose(1, 2))  # (B, M, O)
        if demodulate:
            out = out * torch.rsqrt(s.square() @ weight.square().t() + eps).unsqueeze(1)
        return out + bias if bias is not None else out

    assert check_modulated_linear(bmm_expanded)
