"""The lesson-06 checkers pass the reference and the solution, meet the stub kindly, reject real mistakes."""

import math

import torch
import torch.nn.functional as F
from helpers import alternatives_pass, assert_checker_contract, mistakes_are_named
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


def _init(layer, std, bias_value):
    nn.init.normal_(layer.weight, std=std)
    if layer.bias is not None:
        nn.init.constant_(layer.bias, bias_value)


class UniformInit(Ref):
    """Right std, wrong distribution: U(-sqrt(3), sqrt(3)) / lr_mul."""

    def reset_parameters(self):
        bound = math.sqrt(3.0) / self.lr_mul
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.constant_(self.bias, self.bias_init / self.lr_mul)


class TruncNormalInit(Ref):
    def reset_parameters(self):
        nn.init.trunc_normal_(self.weight, std=1.0 / self.lr_mul)  # cut at +-2 (absolute)
        if self.bias is not None:
            nn.init.constant_(self.bias, self.bias_init / self.lr_mul)


class LrMulMultipliedInit(Ref):
    def reset_parameters(self):
        _init(self, self.lr_mul, self.bias_init / self.lr_mul)


class BiasLrMulMultipliedInit(Ref):
    def reset_parameters(self):
        _init(self, 1.0 / self.lr_mul, self.bias_init * self.lr_mul)


class NoneBiasUsed(Ref):
    """bias=False crashes: self.bias * lr_mul on None."""

    def forward(self, x):
        out = F.linear(x, self.effective_weight(), self.bias * self.lr_mul)
        return modulation.scaled_leaky_relu(out) if self.activation == "lrelu" else out


class AlwaysLrelu(Ref):
    def forward(self, x):
        return modulation.scaled_leaky_relu(F.linear(x, self.effective_weight(), self.effective_bias()))


class LreluGainTwo(Ref):
    def forward(self, x):
        out = F.linear(x, self.effective_weight(), self.effective_bias())
        return F.leaky_relu(out, 0.2) * 2.0 if self.activation == "lrelu" else out


class GainWithoutSqrt(Ref):
    def effective_weight(self):
        return self.weight * self.lr_mul / self.in_dim


class GainDividesByLrMul(Ref):
    def effective_weight(self):
        return self.weight / (self.lr_mul * math.sqrt(self.in_dim))


class GainOnBiasToo(Ref):
    def forward(self, x):
        out = F.linear(x, self.weight, self.effective_bias()) * self.weight_gain
        return modulation.scaled_leaky_relu(out) if self.activation == "lrelu" else out


class BiasDividedAtRunTime(Ref):
    def effective_bias(self):
        return None if self.bias is None else self.bias / self.lr_mul


class WeightTransposed(Ref):
    def __init__(self, in_dim, out_dim, bias=True, bias_init=0.0, lr_mul=1.0, activation=None):
        super().__init__(in_dim, out_dim, bias, bias_init, lr_mul, activation)
        self.weight = nn.Parameter(torch.randn(in_dim, out_dim) / lr_mul)  # (I, O)

    def forward(self, x):
        out = x @ (self.weight * self.weight_gain) + self.effective_bias()
        return modulation.scaled_leaky_relu(out) if self.activation == "lrelu" else out


class CastsToFloat32(Ref):
    def forward(self, x):
        return super().forward(x.float())


class WeightDataInForward(Ref):
    def effective_weight(self):
        return self.weight.data * self.weight_gain


class LearnedGain(Ref):
    """The gain c as a learned parameter: Adam moves it too."""

    def __init__(self, in_dim, out_dim, bias=True, bias_init=0.0, lr_mul=1.0, activation=None):
        super().__init__(in_dim, out_dim, bias, bias_init, lr_mul, activation)
        self.scale = nn.Parameter(torch.tensor(lr_mul / math.sqrt(in_dim)))

    def effective_weight(self):
        return self.weight * self.scale


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
        (UniformInit, r"right std but is not drawn from a normal.*uniform"),
        (TruncNormalInit, r"truncated normal"),
        (LrMulMultipliedInit, r"multiplied by lr_mul instead of divided"),
        (BiasLrMulMultipliedInit, r"bias is bias_init \* lr_mul.*divided by lr_mul"),
        (NoneBiasUsed, r"bias=False self.bias is None"),
        (AlwaysLrelu, r"activation is applied although activation=None"),
        (LreluGainTwo, r"gain is 2 instead of sqrt\(2\)"),
        (GainWithoutSqrt, r"divides by in_dim instead of sqrt\(in_dim\)"),
        (GainDividesByLrMul, r"divides by lr_mul instead of multiplying"),
        (GainOnBiasToo, r"gain c multiplies the bias too"),
        (BiasDividedAtRunTime, r"bias is divided by lr_mul at run time"),
        (WeightTransposed, r"stores its weight transposed"),
        (CastsToFloat32, r"float64.*float32"),
        (WeightDataInForward, r"no gradient reaches the parameter 'weight'"),
        (LearnedGain, r"learned parameters besides weight and bias: \['scale'\]"),
    ],
)


class ScaleOnTheOutput(nn.Module):
    """The gain applied to the output of an unscaled matmul (the same function), einsum, torch.where lrelu."""

    def __init__(self, in_dim, out_dim, bias=True, bias_init=0.0, lr_mul=1.0, activation=None):
        super().__init__()
        self.in_dim, self.lr_mul, self.bias_init, self.activation = in_dim, lr_mul, bias_init, activation
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))
        self.bias = nn.Parameter(torch.empty(out_dim)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        with torch.no_grad():  # another order of draws: the bias first, the weight from torch.randn
            if self.bias is not None:
                self.bias.fill_(self.bias_init / self.lr_mul)
            self.weight.copy_(torch.randn(self.weight.shape) / self.lr_mul)

    def forward(self, x):
        out = torch.einsum("...i,oi->...o", x, self.weight) * (self.lr_mul / math.sqrt(self.in_dim))
        if self.bias is not None:
            out = out + self.lr_mul * self.bias
        if self.activation == "lrelu":
            out = torch.where(out >= 0, out, 0.2 * out) * math.sqrt(2.0)
        return out


class GainAsBuffer(Ref):
    """c kept in a buffer (not learned; it follows .double()), the lrelu as an nn.LeakyReLU module."""

    def __init__(self, in_dim, out_dim, bias=True, bias_init=0.0, lr_mul=1.0, activation=None):
        super().__init__(in_dim, out_dim, bias, bias_init, lr_mul, activation)
        self.register_buffer("c", torch.tensor(lr_mul / math.sqrt(in_dim)))
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x):
        bias = None if self.bias is None else self.bias * self.lr_mul
        out = F.linear(x, self.weight * self.c, bias)
        return self.act(out) * math.sqrt(2.0) if self.activation == "lrelu" else out


class InPlaceLrelu(Ref):
    def forward(self, x):
        out = x.matmul(self.effective_weight().t())
        if self.bias is not None:
            out += self.effective_bias()
        if self.activation == "lrelu":
            out = F.leaky_relu(out, 0.2, inplace=True) * math.sqrt(2.0)
        return out


test_equal_linear_alternatives_pass = alternatives_pass(
    check_equal_linear, [Ref, ScaleOnTheOutput, GainAsBuffer, InPlaceLrelu]
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


class Crashes(RefSLN):
    def forward(self, h, w):
        return h.view(-1, 7)


class WideInit(RefSLN):
    def reset_parameters(self):
        super().reset_parameters()
        nn.init.normal_(self.gamma.weight, 0.0, 1.0)


class _Plain(nn.Module):
    """The solution's SLN (no gain argument), for mutants that change one line of it."""

    def __init__(self, dim, style_dim, eps=1e-5):
        super().__init__()
        self.dim, self.style_dim = dim, style_dim
        self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.gamma = nn.Linear(style_dim, dim)
        self.beta = nn.Linear(style_dim, dim)
        self.reset_parameters()

    def reset_parameters(self):
        for layer, bias in ((self.gamma, 1.0), (self.beta, 0.0)):
            nn.init.normal_(layer.weight, mean=0.0, std=0.1 / math.sqrt(self.style_dim))
            nn.init.constant_(layer.bias, bias)

    def forward(self, h, w):
        return self.gamma(w).unsqueeze(1) * self.norm(h) + self.beta(w).unsqueeze(1)


class ScalarGammaLayer(_Plain):
    """'SLN as a scalar': one scale and one shift per image."""

    def __init__(self, dim, style_dim, eps=1e-5):
        super().__init__(dim, style_dim, eps)
        self.gamma, self.beta = nn.Linear(style_dim, 1), nn.Linear(style_dim, 1)
        self.reset_parameters()


class SwappedLinearArgs(_Plain):
    def __init__(self, dim, style_dim, eps=1e-5):
        super().__init__(dim, style_dim, eps)
        self.gamma, self.beta = nn.Linear(dim, style_dim), nn.Linear(dim, style_dim)
        self.reset_parameters()


class SharedLayer(_Plain):
    def __init__(self, dim, style_dim, eps=1e-5):
        super().__init__(dim, style_dim, eps)
        self.beta = self.gamma
        self.reset_parameters()


class OneLinearSplit(nn.Module):
    def __init__(self, dim, style_dim, eps=1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.affine = nn.Linear(style_dim, 2 * dim)

    def forward(self, h, w):
        gamma, beta = self.affine(w).unsqueeze(1).chunk(2, dim=-1)
        return gamma * self.norm(h) + beta


class RandomBiasAroundOne(_Plain):
    """Bias init 'distribution': drawn like the weights, around 1 and 0."""

    def reset_parameters(self):
        std = 0.1 / math.sqrt(self.style_dim)
        for layer, bias in ((self.gamma, 1.0), (self.beta, 0.0)):
            nn.init.normal_(layer.weight, 0.0, std)
            nn.init.normal_(layer.bias, bias, std)


class BetaBiasOne(_Plain):
    def reset_parameters(self):
        super().reset_parameters()
        nn.init.ones_(self.beta.bias)


class BothBiasesZero(_Plain):
    def reset_parameters(self):
        super().reset_parameters()
        nn.init.zeros_(self.gamma.bias)


def _weight_std(name, std_of):
    class WrongWeightStd(_Plain):
        def reset_parameters(self):
            super().reset_parameters()
            for layer in (self.gamma, self.beta):
                nn.init.normal_(layer.weight, 0.0, std_of(self.dim, self.style_dim))

    WrongWeightStd.__name__ = WrongWeightStd.__qualname__ = name
    return WrongWeightStd


StdWithoutSqrtS = _weight_std("StdWithoutSqrtS", lambda d, s: 0.1)
StdOverS = _weight_std("StdOverS", lambda d, s: 0.1 / s)
VarianceAsStd = _weight_std("VarianceAsStd", lambda d, s: 0.01 / s)
StdOverSqrtDim = _weight_std("StdOverSqrtDim", lambda d, s: 0.1 / math.sqrt(d))


class UniformWeights(_Plain):
    def reset_parameters(self):
        super().reset_parameters()
        bound = 0.1 * math.sqrt(3.0 / self.style_dim)  # the right std, the wrong distribution
        for layer in (self.gamma, self.beta):
            nn.init.uniform_(layer.weight, -bound, bound)


class DefaultWeightsRightBiases(_Plain):
    def reset_parameters(self):
        for layer, bias in ((self.gamma, 1.0), (self.beta, 0.0)):
            layer.reset_parameters()
            nn.init.constant_(layer.bias, bias)


class DividesByVariance(_Plain):
    def forward(self, h, w):
        mu, var = h.mean(-1, keepdim=True), h.var(-1, keepdim=True, unbiased=False)
        return self.gamma(w).unsqueeze(1) * (h - mu) / (var + 1e-5) + self.beta(w).unsqueeze(1)


class NoMeanSubtracted(_Plain):
    def forward(self, h, w):
        var = h.var(-1, keepdim=True, unbiased=False)
        return self.gamma(w).unsqueeze(1) * h / torch.sqrt(var + 1e-5) + self.beta(w).unsqueeze(1)


class NoStdDivision(_Plain):
    def forward(self, h, w):
        return self.gamma(w).unsqueeze(1) * (h - h.mean(-1, keepdim=True)) + self.beta(w).unsqueeze(1)


class BatchMeanStyle(_Plain):
    def forward(self, h, w):
        w = w.mean(0, keepdim=True)  # one style for the whole batch
        return self.gamma(w).unsqueeze(1) * self.norm(h) + self.beta(w).unsqueeze(1)


class StyleFromTokens(_Plain):
    """'Self'-modulated read as modulated by h itself (runs when style_dim == dim)."""

    def forward(self, h, w):
        m = h.mean(1)
        return self.gamma(m).unsqueeze(1) * self.norm(h) + self.beta(m).unsqueeze(1)


class OverTokensAndFeatures(_Plain):
    def forward(self, h, w):
        return self.gamma(w).unsqueeze(1) * F.layer_norm(h, h.shape[1:]) + self.beta(w).unsqueeze(1)


class ModulateBeforeNorm(_Plain):
    def forward(self, h, w):
        return self.norm(self.gamma(w).unsqueeze(1) * h + self.beta(w).unsqueeze(1))


class UnsqueezeLast(_Plain):
    def forward(self, h, w):
        return self.gamma(w).unsqueeze(-1) * self.norm(h) + self.beta(w).unsqueeze(-1)


class StatsDetached(_Plain):
    def forward(self, h, w):
        mu = h.mean(-1, keepdim=True).detach()
        sd = torch.sqrt(h.var(-1, keepdim=True, unbiased=False) + 1e-5).detach()
        return self.gamma(w).unsqueeze(1) * (h - mu) / sd + self.beta(w).unsqueeze(1)


class GammaUnderNoGrad(_Plain):
    def forward(self, h, w):
        with torch.no_grad():
            gamma = self.gamma(w).unsqueeze(1)
        return gamma * self.norm(h) + self.beta(w).unsqueeze(1)


class StyleCastToFloat32(_Plain):
    def forward(self, h, w):
        return super().forward(h, w.float())


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
        (Crashes, r"your code raised RuntimeError.*Likely cause"),
        (WideInit, r"weight of gamma has std .* instead of 0\.1 / sqrt\(S\)"),
        (ScalarGammaLayer, r"ONE scalar per image"),
        (SwappedLinearArgs, r"arguments are swapped"),
        (SharedLayer, r"same nn.Linear"),
        (OneLinearSplit, r"no self.gamma.*two\s+nn.Linear"),
        (RandomBiasAroundOne, r"bias of gamma is random"),
        (BetaBiasOne, r"bias of beta is the constant 1.*to 0"),
        (BothBiasesZero, r"bias of gamma is the constant 0.*to 1"),
        (StdWithoutSqrtS, r"1/sqrt\(style_dim\) is missing"),
        (StdOverS, r"divides by style_dim instead of sqrt\(style_dim\)"),
        (VarianceAsStd, r"VARIANCE"),
        (StdOverSqrtDim, r"uses dim instead of style_dim"),
        (UniformWeights, r"right std but is not drawn from a normal.*uniform"),
        (DefaultWeightsRightBiases, r"nn.Linear's default init"),
        (DividesByVariance, r"divided by the VARIANCE instead of the std"),
        (NoMeanSubtracted, r"mean is not subtracted"),
        (NoStdDivision, r"not divided by the std"),
        (BatchMeanStyle, r"batch's mean style"),
        (StyleFromTokens, r"does not change when w changes"),
        (OverTokensAndFeatures, r"over the tokens AND the features"),
        (ModulateBeforeNorm, r"BEFORE the LayerNorm"),
        (UnsqueezeLast, r"your code raised RuntimeError.*unsqueeze"),
        (StatsDetached, r"gradient with respect to h.*mean or std .* cut from the graph"),
        (GammaUnderNoGrad, r"no gradient reaches the parameter 'gamma.weight'"),
        (StyleCastToFloat32, r"float64.*cast to float32"),
    ],
)


class ManualLayerNorm(nn.Module):
    """LayerNorm by hand with eps 1e-6 (not fixed by the exercise), [:, None] instead of unsqueeze."""

    def __init__(self, dim, style_dim, eps=1e-5):
        super().__init__()
        self.style_dim = style_dim
        self.gamma = nn.Linear(style_dim, dim)
        self.beta = nn.Linear(style_dim, dim)
        self.reset_parameters()

    def reset_parameters(self):
        std = 0.1 / math.sqrt(self.style_dim)
        nn.init.constant_(self.beta.bias, 0.0)  # another order of draws
        nn.init.normal_(self.beta.weight, 0.0, std)
        nn.init.constant_(self.gamma.bias, 1.0)
        nn.init.normal_(self.gamma.weight, 0.0, std)

    def forward(self, h, w):
        mu = h.mean(-1, keepdim=True)
        var = ((h - mu) ** 2).mean(-1, keepdim=True)
        return self.gamma(w)[:, None] * (h - mu) / torch.sqrt(var + 1e-6) + self.beta(w)[:, None]


class FunctionalLayerNorm(_Plain):
    """F.layer_norm with eps 1e-6, the styles given a token axis before the layers."""

    def forward(self, h, w):
        w = w.unsqueeze(1)  # (B, 1, S)
        return self.gamma(w) * F.layer_norm(h, (h.shape[-1],), eps=1e-6) + self.beta(w)


class EpsOutsideAndInPlace(_Plain):
    """eps added to the std, in-place ops on a fresh tensor, an extra (non-learned) buffer."""

    def __init__(self, dim, style_dim, eps=1e-5):
        super().__init__(dim, style_dim, eps)
        self.register_buffer("calls", torch.zeros(()), persistent=False)

    def forward(self, h, w):
        mu, sd = h.mean(-1, keepdim=True), h.std(-1, keepdim=True, unbiased=False)
        out = (h - mu) / (sd + 1e-5)
        out.mul_(self.gamma(w).unsqueeze(1)).add_(self.beta(w).unsqueeze(1))
        return out


test_sln_alternatives_pass = alternatives_pass(
    check_sln, [RefSLN, _Plain, ManualLayerNorm, FunctionalLayerNorm, EpsOutsideAndInPlace]
)
