"""The lesson-06 checkers pass the reference and the solution, meet the stub kindly, reject real mistakes."""

import math

import torch
import torch.nn.functional as F
from helpers import assert_checker_contract, assert_rejects, mistakes_are_named
from torch import nn

from vitgan_lite import modulation
from vitgan_lite.checks import check_equal_linear, check_sln

LESSON = "06_mapping_and_sln"
Ref = modulation.EqualLinear
RefSLN = modulation.SelfModulatedLayerNorm


def test_checker_contract(capsys):
    assert_checker_contract(
        LESSON,
        {"EqualLinear": (check_equal_linear, Ref), "SelfModulatedLayerNorm": (check_sln, RefSLN)},
        capsys,
    )


def test_checkers_leave_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    check_equal_linear(Ref)
    check_sln(RefSLN)
    assert torch.equal(torch.get_rng_state(), before)


# ---- wrong EqualLinear implementations (each overrides one piece of the reference) -------------------


class ScaleAtInit(Ref):
    """Public-port mistake: He-init N(0, 1/I) once, then a plain linear layer."""

    def reset_parameters(self):
        nn.init.normal_(self.weight, std=1 / math.sqrt(self.in_dim))
        if self.bias is not None:
            nn.init.constant_(self.bias, self.bias_init / self.lr_mul)

    def effective_weight(self):
        return self.weight


class NoRunTimeGain(Ref):
    """Init right, but forward uses the stored weight as is."""

    def effective_weight(self):
        return self.weight


class NoLrMulWeightInit(Ref):
    def reset_parameters(self):
        nn.init.normal_(self.weight, std=1.0)
        if self.bias is not None:
            nn.init.constant_(self.bias, self.bias_init / self.lr_mul)


class NoLrMulWeightRunTime(Ref):
    def effective_weight(self):
        return self.weight / math.sqrt(self.in_dim)


class NoLrMulBiasInit(Ref):
    def reset_parameters(self):
        nn.init.normal_(self.weight, std=1.0 / self.lr_mul)
        if self.bias is not None:
            nn.init.constant_(self.bias, self.bias_init)


class NoLrMulBiasRunTime(Ref):
    def effective_bias(self):
        return self.bias


class IgnoresBiasInit(Ref):
    def reset_parameters(self):
        nn.init.normal_(self.weight, std=1.0 / self.lr_mul)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class FanOut(Ref):
    def effective_weight(self):
        return self.weight * self.lr_mul / math.sqrt(self.out_dim)


class LreluWithoutGain(Ref):
    def forward(self, x):
        out = F.linear(x, self.effective_weight(), self.effective_bias())
        return F.leaky_relu(out, 0.2) if self.activation == "lrelu" else out


class DefaultSlope(Ref):
    def forward(self, x):
        out = F.linear(x, self.effective_weight(), self.effective_bias())
        return F.leaky_relu(out) * math.sqrt(2) if self.activation == "lrelu" else out


class ActivationBeforeBias(Ref):
    def forward(self, x):
        out = F.linear(x, self.effective_weight())
        if self.activation == "lrelu":
            out = modulation.scaled_leaky_relu(out)
        return out if self.bias is None else out + self.effective_bias()


class IgnoresActivation(Ref):
    def forward(self, x):
        return F.linear(x, self.effective_weight(), self.effective_bias())


class KeepsBiasWhenFalse(Ref):
    def __init__(self, in_dim, out_dim, bias=True, bias_init=0.0, lr_mul=1.0, activation=None):
        super().__init__(in_dim, out_dim, True, bias_init, lr_mul, activation)


class DetachedWeight(Ref):
    def effective_weight(self):
        return self.weight.detach() * self.weight_gain


class ScaledAtInitInDisguise(nn.Module):
    """Stores W_eff = N(0, 1/I) (trained directly), but shows ``weight = W_eff / c``: init statistics and
    the forward on copied weights look right; only the Adam step gives it away."""

    def __init__(self, in_dim, out_dim, bias=True, bias_init=0.0, lr_mul=1.0, activation=None):
        super().__init__()
        self.c = lr_mul / math.sqrt(in_dim)
        self.lr_mul, self.activation = lr_mul, activation
        self.raw = nn.Parameter(torch.randn(out_dim, in_dim) * self.c / lr_mul)
        self.raw_bias = nn.Parameter(torch.full((out_dim,), float(bias_init))) if bias else None

    @property
    def weight(self):
        return self.raw / self.c

    @property
    def bias(self):
        return None if self.raw_bias is None else self.raw_bias / self.lr_mul

    def forward(self, x):
        out = F.linear(x, self.raw, self.raw_bias)
        return modulation.scaled_leaky_relu(out) if self.activation == "lrelu" else out


test_equal_linear_mistakes_are_named = mistakes_are_named(
    check_equal_linear,
    [
        (ScaleAtInit, r"applied once at init instead of at run time"),
        (NoRunTimeGain, r"used as is.*at run time"),
        (NoLrMulWeightInit, r"lr multiplier is missing from the weight"),
        (NoLrMulWeightRunTime, r"gain of the weight is missing the lr multiplier"),
        (NoLrMulBiasInit, r"lr multiplier is missing from the bias"),
        (NoLrMulBiasRunTime, r"bias is missing its lr multiplier at run time"),
        (IgnoresBiasInit, r"bias_init=0.5 was asked for"),
        (FanOut, r"fan_out.*sqrt\(fan_in\)"),
        (LreluWithoutGain, r"missing its gain sqrt\(2\)"),
        (DefaultSlope, r"default slope 0.01"),
        (ActivationBeforeBias, r"activation is applied before the bias"),
        (IgnoresActivation, r"no activation is applied"),
        (KeepsBiasWhenFalse, r"bias=False\) should have no bias"),
        (DetachedWeight, r"no gradient reaches the parameter 'weight'"),
        (ScaledAtInitInDisguise, r"one Adam step .* must be applied at run time"),
    ],
)


# ---- wrong SLN implementations -----------------------------------------------------------------------


class ScalarTimesW(nn.Module):
    """Public-port mistake: gamma and beta as learned scalars times w (needs style_dim == dim to run)."""

    def __init__(self, dim, style_dim, eps=1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.gamma = nn.Parameter(torch.ones(1))
        self.beta = nn.Parameter(torch.zeros(1))

    def forward(self, h, w):
        return self.gamma * w.unsqueeze(1) * self.norm(h) + self.beta * w.unsqueeze(1)


class BetaMultiplied(RefSLN):
    def forward(self, h, w):
        return self.gamma(w).unsqueeze(1) * self.norm(h) * self.beta(w).unsqueeze(1)


class AffineLayerNorm(RefSLN):
    def __init__(self, dim, style_dim, eps=1e-5):
        super().__init__(dim, style_dim, eps)
        self.norm = nn.LayerNorm(dim, eps=eps)  # keeps weight and bias: the mistake


class ExtraScale(RefSLN):
    def __init__(self, dim, style_dim, eps=1e-5):
        super().__init__(dim, style_dim, eps)
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, h, w):
        return super().forward(h, w) * self.weight


class OverTokens(RefSLN):
    def forward(self, h, w):
        mu, var = h.mean(1, keepdim=True), h.var(1, keepdim=True, unbiased=False)
        return self.gamma(w).unsqueeze(1) * (h - mu) / torch.sqrt(var + 1e-5) + self.beta(w).unsqueeze(1)


class NoUnsqueeze(RefSLN):
    def forward(self, h, w):
        return self.gamma(w) * self.norm(h) + self.beta(w)  # (B, D) broadcasts over the batch axis


class Swapped(RefSLN):
    def forward(self, h, w):
        return self.beta(w).unsqueeze(1) * self.norm(h) + self.gamma(w).unsqueeze(1)


class UnbiasedStd(RefSLN):
    def forward(self, h, w):
        mu, var = h.mean(-1, keepdim=True), h.var(-1, keepdim=True, unbiased=True)
        return self.gamma(w).unsqueeze(1) * (h - mu) / torch.sqrt(var + 1e-5) + self.beta(w).unsqueeze(1)


class OnePlusGamma(RefSLN):
    def forward(self, h, w):
        return (1 + self.gamma(w).unsqueeze(1)) * self.norm(h) + self.beta(w).unsqueeze(1)


class NotNormalised(RefSLN):
    def forward(self, h, w):
        return self.gamma(w).unsqueeze(1) * h + self.beta(w).unsqueeze(1)


class DefaultLinearInit(RefSLN):
    def reset_parameters(self):
        self.gamma.reset_parameters()
        self.beta.reset_parameters()


class ZeroWeights(RefSLN):
    def reset_parameters(self):
        super().reset_parameters()
        nn.init.zeros_(self.gamma.weight)


class IgnoresW(RefSLN):
    def forward(self, h, w):
        return self.gamma.bias * self.norm(h) + self.beta.bias


class DetachesW(RefSLN):
    def forward(self, h, w):
        return super().forward(h, w.detach())


class NoBias(RefSLN):
    def __init__(self, dim, style_dim, eps=1e-5):
        super().__init__(dim, style_dim, eps)
        self.beta = nn.Linear(style_dim, dim, bias=False)


test_sln_mistakes_are_named = mistakes_are_named(
    check_sln,
    [
        (ScalarTimesW, r"plain tensors \(scalars.*not affine layers of w"),
        (BetaMultiplied, r"beta\(w\) is multiplied instead of added"),
        (AffineLayerNorm, r"keeps its own affine parameters.*elementwise_affine=False"),
        (ExtraScale, r"parameters besides gamma and beta: \['weight'\]"),
        (OverTokens, r"normalised over the tokens instead of over the features"),
        (NoUnsqueeze, r"other images' outputs.*unsqueeze\(1\)"),
        (Swapped, r"gamma and beta are swapped"),
        (UnbiasedStd, r"unbiased"),
        (OnePlusGamma, r"add 1 to gamma\(w\)"),
        (NotNormalised, r"SLN\(a h \+ c, w\) should equal|h is not normalised"),
        (DefaultLinearInit, r"bias of gamma to 1"),
        (ZeroWeights, r"weight of gamma is all zero"),
        (IgnoresW, r"does not change when w changes"),
        (DetachesW, r"no gradient reaches w"),
        (NoBias, r"self.beta needs a bias"),
    ],
)


def test_crash_in_learner_code_is_reported_with_its_cause():
    class Crashes(RefSLN):
        def forward(self, h, w):
            return h.view(-1, 7)

    assert_rejects(check_sln, Crashes, r"your code raised RuntimeError")


def test_sln_weight_init_scale_is_checked():
    class WideInit(modulation.SelfModulatedLayerNorm):
        def reset_parameters(self):
            super().reset_parameters()
            nn.init.normal_(self.gamma.weight, 0.0, 1.0)

    assert_rejects(check_sln, WideInit, r"weight of gamma has std .* instead of 0\.1 / sqrt\(S\)")
