"""The lesson-07 checkers pass the reference and the solution, meet the stubs kindly, reject real mistakes."""

import math

import torch
from helpers import alternatives_pass, assert_checker_contract, mistakes_are_named
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


def _fused(
    x, weight, s, bias=None, demodulate=True, eps=1e-8, d_of=None, matmul_weight=None, bias_first=False
):
    """The fused form with one piece swapped: ``d_of(s, weight, eps) -> (B, O)``, the matmul's weight."""
    out = (x * s.unsqueeze(1)) @ (weight.t() if matmul_weight is None else matmul_weight)  # (B, M, O)
    if bias_first and bias is not None:
        out = out + bias
    if demodulate:
        d = torch.rsqrt(s.square() @ weight.square().t() + eps) if d_of is None else d_of(s, weight, eps)
        out = out * d.unsqueeze(1)
    return out + bias if bias is not None and not bias_first else out


def no_transpose(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    return _fused(x, weight, s, bias, demodulate, eps, matmul_weight=weight)  # (O, I) used as (I, O)


def no_transpose_anywhere(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    return _fused(
        x,
        weight,
        s,
        bias,
        demodulate,
        eps,
        matmul_weight=weight,
        d_of=lambda s, w, e: torch.rsqrt(s.square() @ w.square() + e),
    )


def demod_no_transpose(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    return _fused(
        x, weight, s, bias, demodulate, eps, d_of=lambda s, w, e: torch.rsqrt(s.square() @ w.square() + e)
    )


def demod_without_s(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    return _fused(
        x,
        weight,
        s,
        bias,
        demodulate,
        eps,
        d_of=lambda s, w, e: torch.rsqrt(w.square().sum(1) + e).expand(s.shape[0], -1),
    )


def s_not_squared(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    return _fused(
        x, weight, s, bias, demodulate, eps, d_of=lambda s, w, e: torch.rsqrt(s @ w.square().t() + e)
    )


def weight_not_squared(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    return _fused(
        x, weight, s, bias, demodulate, eps, d_of=lambda s, w, e: torch.rsqrt(s.square() @ w.t() + e)
    )


def sqrt_not_rsqrt(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    return _fused(
        x, weight, s, bias, demodulate, eps, d_of=lambda s, w, e: torch.sqrt(s.square() @ w.square().t() + e)
    )


def squared_norm(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    return _fused(
        x, weight, s, bias, demodulate, eps, d_of=lambda s, w, e: 1 / (s.square() @ w.square().t() + e)
    )


def mean_not_sum(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    # the mean over j: each row gets norm sqrt(I)
    return _fused(
        x,
        weight,
        s,
        bias,
        demodulate,
        eps,
        d_of=lambda s, w, e: torch.rsqrt((s.square() @ w.square().t()) / w.shape[1] + e),
    )


def whole_matrix_norm(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    return _fused(
        x,
        weight,
        s,
        bias,
        demodulate,
        eps,
        d_of=lambda s, w, e: torch.rsqrt((s.square() @ w.square().t()).sum(1, keepdim=True) + e).expand(
            -1, w.shape[0]
        ),
    )


def no_eps(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    return _fused(
        x, weight, s, bias, demodulate, eps, d_of=lambda s, w, e: torch.rsqrt(s.square() @ w.square().t())
    )


def eps_hard_coded(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    return _fused(
        x,
        weight,
        s,
        bias,
        demodulate,
        eps,
        d_of=lambda s, w, e: torch.rsqrt(s.square() @ w.square().t() + 1e-8),
    )


def s_unsqueeze_last(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    out = (x * s.unsqueeze(-1)) @ weight.t()
    if demodulate:
        out = out * torch.rsqrt(s.square() @ weight.square().t() + eps).unsqueeze(1)
    return out if bias is None else out + bias


def d_unsqueeze_last(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    out = (x * s.unsqueeze(1)) @ weight.t()
    if demodulate:
        out = out * torch.rsqrt(s.square() @ weight.square().t() + eps).unsqueeze(2)
    return out if bias is None else out + bias


def s_not_unsqueezed(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    out = (x * s) @ weight.t()  # (B, M, I) * (B, I): lines s's batch axis up with M
    if demodulate:
        out = out * torch.rsqrt(s.square() @ weight.square().t() + eps).unsqueeze(1)
    return out if bias is None else out + bias


def truth_value_of_bias(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    out = inr.modulated_linear(x, weight, s, None, demodulate, eps)
    if bias:
        out = out + bias
    return out


def x_in_place(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    x.mul_(s.unsqueeze(1))
    out = x @ weight.t()
    if demodulate:
        out = out * torch.rsqrt(s.square() @ weight.square().t() + eps).unsqueeze(1)
    return out if bias is None else out + bias


def s_detached(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    return inr.modulated_linear(x, weight, s.detach(), bias, demodulate, eps)


def demod_under_no_grad(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    out = (x * s.unsqueeze(1)) @ weight.t()
    if demodulate:
        with torch.no_grad():  # "the normalisation is a constant"
            d = torch.rsqrt(s.square() @ weight.square().t() + eps)
        out = out * d.unsqueeze(1)
    return out if bias is None else out + bias


def casts_to_float32(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    return inr.modulated_linear(x, weight.float(), s, bias, demodulate, eps)


def returns_float32(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    return inr.modulated_linear(x, weight, s, bias, demodulate, eps).float()


def demod_from_materialised_weight(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    out = (x * s.unsqueeze(1)) @ weight.t()
    if demodulate:
        w = weight.unsqueeze(0) * s.unsqueeze(1)  # (B, O, I), only for the norms
        out = out * torch.rsqrt(w.square().sum(-1) + eps).unsqueeze(1)
    return out if bias is None else out + bias


def materialised_bmm(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    w = weight.unsqueeze(0) * s.unsqueeze(1)  # (B, O, I)
    if demodulate:
        w = w * torch.rsqrt(w.square().sum(-1, keepdim=True) + eps)
    out = torch.bmm(x, w.transpose(1, 2))
    return out if bias is None else out + bias


def output_transposed(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    return inr.modulated_linear(x, weight, s, bias, demodulate, eps).transpose(1, 2)


def doubled(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    # Hand example: [6, 8] without, [3, 4] with demodulation; doubling the output breaks both.
    return 2 * inr.modulated_linear(x, weight, s, bias, demodulate, eps)


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
        (no_transpose, r"weight is not transposed.*weight.t\(\)"),
        (no_transpose_anywhere, r"weight is not transposed"),
        (demod_no_transpose, r"demodulation sum uses weight.square\(\) without .t\(\)"),
        (demod_without_s, r"demodulation ignores s"),
        (s_not_squared, r"s is not squared in the demodulation"),
        (weight_not_squared, r"weight is not squared in the demodulation"),
        (sqrt_not_rsqrt, r"multiplied by the row norm instead of divided"),
        (squared_norm, r"divided by the SQUARED row norm"),
        (mean_not_sum, r"MEAN of .* instead of the sum"),
        (whole_matrix_norm, r"norm of the whole W'_b instead of each ROW"),
        (no_eps, r"all-zero row.*NaN.*eps under the\s+square root"),
        (eps_hard_coded, r"eps argument is ignored"),
        (s_unsqueeze_last, r"s is reshaped to \(B, I, 1\).*s.unsqueeze\(1\)"),
        (
            d_unsqueeze_last,
            r"demodulation coefficients d \(B, O\) are reshaped to \(B, O, 1\).*d.unsqueeze\(1\)",
        ),
        (s_not_unsqueezed, r"x \* s multiplies \(B, M, I\) by \(B, I\).*s.unsqueeze\(1\)"),
        (truth_value_of_bias, r"`if bias:`.*if bias is not None"),
        (x_in_place, r"changed its input x in place"),
        (s_detached, r"no gradient reaches s"),
        (demod_under_no_grad, r"demodulation coefficients are cut from the graph"),
        (casts_to_float32, r"float64.*float32.*do not cast"),
        (returns_float32, r"float64.*keep the inputs' dtype"),
        (demod_from_materialised_weight, r"allocates a tensor of shape \(B, O, I\).*demodulation"),
        (materialised_bmm, r"allocates a tensor of shape \(B, O, I\)"),
        (output_transposed, r"\(B, O, M\): the output is transposed"),
        (doubled, r"hand example.*\[6, 8\]"),
    ],
)


def bmm_expanded(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    """expand() allocates nothing: only a materialised (B, O, I) weight is the mistake, not a view of W."""
    W = weight.unsqueeze(0).expand(x.shape[0], *weight.shape)  # (B, O, I) view of W
    out = torch.bmm(x * s.unsqueeze(1), W.transpose(1, 2))  # (B, M, O)
    if demodulate:
        out = out * torch.rsqrt(s.square() @ weight.square().t() + eps).unsqueeze(1)
    return out + bias if bias is not None else out


def einsum_form(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    out = torch.einsum("bmi,bi,oi->bmo", x, s, weight)
    if demodulate:
        out = out / torch.sqrt(torch.einsum("bi,oi->bo", s**2, weight**2) + eps)[:, None, :]
    if bias is not None:
        out += bias  # in place on a fresh tensor
    return out


def f_linear_eps_outside(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    out = torch.nn.functional.linear(x * s[:, None, :], weight)
    if demodulate:
        norm = (s.square() @ weight.square().t()).sqrt()  # (B, O)
        out = out / (norm + eps).unsqueeze(1)  # the other usual guard, eps outside the root
    return out if bias is None else out + bias.view(1, 1, -1)


def clamped_norm(x, weight, s, bias=None, demodulate=True, eps=1e-8):
    out = (x * s.unsqueeze(1)).matmul(weight.T)
    if demodulate:
        out = out * (s * s).mm((weight * weight).T).clamp_min(eps).rsqrt().unsqueeze(1)
    if bias is not None:
        out = torch.add(out, bias)
    return out


test_modulated_linear_alternatives_pass = alternatives_pass(
    check_modulated_linear,
    [bmm_expanded, einsum_form, f_linear_eps_outside, clamped_norm, inr.modulated_linear],
)


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


def _hidden_rule(name, rule):
    """A SineLayer whose hidden layers draw U(-rule(I, O, omega0), +rule(...)), first layers as SIREN."""

    class WrongHiddenBound(inr.SineLayer):
        def reset_parameters(self):
            bound = 1 / self.in_dim if self.is_first else rule(self.in_dim, self.out_dim, self.omega0)
            nn.init.uniform_(self.linear.weight, -bound, bound)

    WrongHiddenBound.__name__ = WrongHiddenBound.__qualname__ = name
    return WrongHiddenBound


FanOutBound = _hidden_rule("FanOutBound", lambda i, o, w: math.sqrt(6 / o) / w)
NoSqrtBound = _hidden_rule("NoSqrtBound", lambda i, o, w: 6 / i / w)
TimesOmegaBound = _hidden_rule("TimesOmegaBound", lambda i, o, w: math.sqrt(6 / i) * w)
Sqrt3Bound = _hidden_rule("Sqrt3Bound", lambda i, o, w: math.sqrt(3 / i) / w)


class FirstDividedByOmega(inr.SineLayer):
    def reset_parameters(self):
        bound = 1 / self.in_dim / self.omega0 if self.is_first else math.sqrt(6 / self.in_dim) / self.omega0
        nn.init.uniform_(self.linear.weight, -bound, bound)


class FirstFanOut(inr.SineLayer):
    def reset_parameters(self):
        bound = 1 / self.out_dim if self.is_first else math.sqrt(6 / self.in_dim) / self.omega0
        nn.init.uniform_(self.linear.weight, -bound, bound)


class PositiveOnly(inr.SineLayer):
    def reset_parameters(self):
        bound = 1 / self.in_dim if self.is_first else math.sqrt(6 / self.in_dim) / self.omega0
        with torch.no_grad():
            self.linear.weight.copy_(torch.rand(self.out_dim, self.in_dim) * bound)  # U(0, bound)


class XavierInit(inr.SineLayer):
    def reset_parameters(self):
        nn.init.xavier_uniform_(self.linear.weight)


class NormalWithBoundAsStd(inr.SineLayer):
    def reset_parameters(self):
        bound = 1 / self.in_dim if self.is_first else math.sqrt(6 / self.in_dim) / self.omega0
        nn.init.normal_(self.linear.weight, 0.0, bound)


class ZeroBias(inr.SineLayer):
    def reset_parameters(self):
        super().reset_parameters()
        nn.init.zeros_(self.linear.bias)


class BiasWithWeightBound(inr.SineLayer):
    def reset_parameters(self):
        bound = 1 / self.in_dim if self.is_first else math.sqrt(6 / self.in_dim) / self.omega0
        nn.init.uniform_(self.linear.weight, -bound, bound)
        nn.init.uniform_(self.linear.bias, -bound, bound)


class WideBias(inr.SineLayer):
    def reset_parameters(self):
        super().reset_parameters()
        nn.init.normal_(self.linear.bias, 0.0, 1.0)


class InPlaceWithoutNoGrad(inr.SineLayer):
    def reset_parameters(self):
        bound = 1 / self.in_dim if self.is_first else math.sqrt(6 / self.in_dim) / self.omega0
        self.linear.weight.uniform_(-bound, bound)  # a parameter changed in place outside no_grad


class NoBiasForward(inr.SineLayer):
    def forward(self, x):
        return torch.sin(self.omega0 * (x @ self.linear.weight.t()))


class CosForward(inr.SineLayer):
    def forward(self, x):
        return torch.cos(self.omega0 * self.linear(x))


class CastsToFloat32(inr.SineLayer):
    def forward(self, x):
        return torch.sin(self.omega0 * self.linear(x.float()))


class ReturnsFloat32(inr.SineLayer):
    def forward(self, x):
        return torch.sin(self.omega0 * self.linear(x)).float()


class WeightData(inr.SineLayer):
    def forward(self, x):
        return torch.sin(self.omega0 * (x @ self.linear.weight.data.t() + self.linear.bias))


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
        (FanOutBound, r"uses out_dim \(fan_out\)"),
        (NoSqrtBound, r"square root is missing"),
        (TimesOmegaBound, r"multiplied by omega0 instead of divided"),
        (Sqrt3Bound, r"sqrt\(3/in_dim\) instead of sqrt\(6/in_dim\)"),
        (FirstDividedByOmega, r"first-layer bound is divided by omega0"),
        (FirstFanOut, r"first-layer bound uses out_dim"),
        (PositiveOnly, r"not centred on 0"),
        (XavierInit, r"Xavier"),
        (NormalWithBoundAsStd, r"not uniform.*normal"),
        (ZeroBias, r"bias of SineLayer.* is all zero"),
        (BiasWithWeightBound, r"bias .* drawn with the weight's SIREN bound"),
        (WideBias, r"bias of SineLayer.* reaches"),
        (InPlaceWithoutNoGrad, r"in-place.*torch.no_grad"),
        (NoBiasForward, r"the bias is missing"),
        (CosForward, r"cos instead of sin"),
        (CastsToFloat32, r"float64.*cast to float32"),
        (ReturnsFloat32, r"float64.*keep the input's dtype"),
        (WeightData, r"no gradient reaches the parameter 'linear.weight'"),
    ],
)


class ParameterReplaced(inr.SineLayer):
    """reset_parameters assigns a fresh Parameter; forward through F.linear."""

    def reset_parameters(self):
        bound = 1 / self.in_dim if self.is_first else math.sqrt(6 / self.in_dim) / self.omega0
        self.linear.weight = nn.Parameter(torch.empty(self.out_dim, self.in_dim).uniform_(-bound, bound))

    def forward(self, x):
        return torch.sin(self.omega0 * nn.functional.linear(x, self.linear.weight, self.linear.bias))


class NoGradRandDraw(inr.SineLayer):
    """Another draw (torch.rand, shifted), under no_grad; omega0 as a buffer (it follows .double())."""

    def __init__(self, in_dim, out_dim, omega0=30.0, is_first=False):
        super().__init__(in_dim, out_dim, omega0, is_first)
        self.register_buffer("w0", torch.tensor(float(omega0)))

    def reset_parameters(self):
        bound = 1 / self.in_dim if self.is_first else math.sqrt(6 / self.in_dim) / self.omega0
        with torch.no_grad():
            self.linear.weight.copy_((torch.rand(self.out_dim, self.in_dim) * 2 - 1) * bound)

    def forward(self, x):
        return torch.sin(self.linear(x) * self.w0)


class DataUniformAndBias(inr.SineLayer):
    """.data in reset_parameters (fine there), and the default bias redrawn explicitly before the weight."""

    def reset_parameters(self):
        b = 1 / math.sqrt(self.in_dim)
        self.linear.bias.data.uniform_(-b, b)
        bound = 1 / self.in_dim if self.is_first else math.sqrt(6 / self.in_dim) / self.omega0
        self.linear.weight.data.uniform_(-bound, bound)


test_sine_layer_alternatives_pass = alternatives_pass(
    check_sine_layer, [inr.SineLayer, ParameterReplaced, NoGradRandDraw, DataUniformAndBias]
)
