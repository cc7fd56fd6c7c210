"""Checkers for lesson 06: Exercise 6.1 ``EqualLinear`` and Exercise 6.2 ``SelfModulatedLayerNorm``.

The learner passes a CLASS with the package's constructor signature. The checker builds it with small
sizes, copies the learner's stored tensors into the reference (``vitgan_lite.modulation``), compares the
two on several seeds and shapes, checks the defining properties, and names the mistakes that public
ViTGAN / StyleGAN ports make (scale applied at init instead of at run time, a missing lr multiplier,
SLN as scalars times w, beta multiplied, a LayerNorm keeping its own affine, normalising over tokens).

Shape legend: B batch, N tokens, D width, S style width (w), I / O input / output features.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vitgan_lite.checks._core import (
    build_seeded,
    checker,
    expect,
    expect_close,
    expect_grads_reach_every_parameter,
    expect_tensor,
    fail,
    seeded,
)
from vitgan_lite.modulation import EqualLinear as RefEqualLinear
from vitgan_lite.modulation import SelfModulatedLayerNorm as RefSLN

SQRT2 = math.sqrt(2.0)


def _near(value: float, target: float, rel: float = 0.1) -> bool:
    return abs(value - target) <= rel * abs(target)


def _grads_reach_everything(module: nn.Module, loss: torch.Tensor, what: str) -> None:
    module.zero_grad(set_to_none=True)
    loss.backward()
    expect_grads_reach_every_parameter(
        module,
        lambda name: (
            f"no gradient reaches the parameter {name!r} of your {what}: every learned tensor must "
            "be used in forward (no .detach(), no .data, no copy made once in __init__)"
        ),
    )


# ----------------------------------------------------------------------------------------------------
# Exercise 6.1: EqualLinear
# ----------------------------------------------------------------------------------------------------

# (leading dims of x, I, O, bias, bias_init, lr_mul, activation): odd batches, extra token axis, lrelu.
LINEAR_CASES = [
    ((3,), 8, 5, True, 0.0, 1.0, None),
    ((5,), 6, 7, True, 0.5, 0.01, None),
    ((2, 3), 4, 9, True, 0.2, 0.5, "lrelu"),
    ((1,), 10, 3, False, 0.0, 0.01, "lrelu"),
    ((7,), 5, 5, True, -0.3, 0.01, "lrelu"),
]


def _stored(layer: nn.Module, I: int, O: int, bias: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The learner's stored weight (O, I) and bias (O,) or None, with a sentence when they are missing."""
    W = getattr(layer, "weight", None)
    expect(
        isinstance(W, torch.Tensor) and tuple(W.shape) == (O, I),
        f"EqualLinear({I}, {O}) should store its weight as self.weight, an nn.Parameter of shape "
        f"(out_dim, in_dim) = {(O, I)}, got {tuple(W.shape) if isinstance(W, torch.Tensor) else W!r}",
    )
    b = getattr(layer, "bias", None)
    if not bias:
        expect(
            b is None,
            f"EqualLinear({I}, {O}, bias=False) should have no bias: set self.bias = None",
        )
        return W.detach(), None
    expect(
        isinstance(b, torch.Tensor) and tuple(b.shape) == (O,),
        f"EqualLinear({I}, {O}) should store its bias as self.bias, an nn.Parameter of shape ({O},), "
        f"got {tuple(b.shape) if isinstance(b, torch.Tensor) else b!r}",
    )
    return W.detach(), b.detach()


def _check_init(EqualLinear: type[nn.Module]) -> None:
    """Stored W ~ N(0, 1) / lr_mul and stored b = bias_init / lr_mul (the equalized-lr initialisation)."""
    I, O, bias_init = 64, 48, 0.5  # 3072 weights: their std is estimated to about 1.3%
    for seed, lr_mul in enumerate((1.0, 0.01)):
        layer = build_seeded(EqualLinear, seed, I, O, bias=True, bias_init=bias_init, lr_mul=lr_mul)
        W, b = _stored(layer, I, O, bias=True)
        std, mean, target = W.std().item(), W.mean().item(), 1.0 / lr_mul
        where = f"EqualLinear({I}, {O}, lr_mul={lr_mul})"
        if not _near(std, target):
            if _near(std, 1 / math.sqrt(I)) or _near(std, lr_mul / math.sqrt(I)):
                fail(
                    f"{where}: the stored weight has std {std:.3g} ~ 1/sqrt(in_dim): the equalized scale is "
                    "applied once at init instead of at run time. Store W ~ N(0, 1) / lr_mul (torch.randn "
                    "/ lr_mul) and multiply by c = lr_mul / sqrt(in_dim) inside forward, so that Adam's "
                    "steps on the stored W are scaled by c too"
                )
            if _near(std, 1.0):
                fail(
                    f"{where}: the stored weight has std {std:.3g} ~ 1 instead of 1/lr_mul = {target:.3g}: "
                    "the lr multiplier is missing from the weight's init. Store W ~ N(0, 1) / lr_mul, so "
                    "that the effective weight c W (c = lr_mul / sqrt(in_dim)) starts at N(0, 1/in_dim)"
                )
            fail(
                f"{where}: the stored weight should be drawn from N(0, 1) / lr_mul (std {target:.3g}), its "
                f"std is {std:.3g}: use nn.init.normal_(self.weight, 0.0, 1.0 / lr_mul) in reset_parameters"
            )
        expect(
            abs(mean) < 0.1 * target,
            f"{where}: the stored weight has mean {mean:.3g}; draw it from a normal with mean 0",
        )
        expected_b = bias_init / lr_mul
        if not torch.allclose(b, torch.full_like(b, expected_b), rtol=1e-4, atol=1e-6):
            if lr_mul != 1.0 and torch.allclose(b, torch.full_like(b, bias_init)):
                fail(
                    f"{where}, bias_init={bias_init}: the stored bias is bias_init = {bias_init} instead of "
                    f"bias_init / lr_mul = {expected_b:.3g}: the lr multiplier is missing from the bias's "
                    "init. Store b = bias_init / lr_mul and add lr_mul * b in forward"
                )
            if torch.allclose(b, torch.zeros_like(b)):
                fail(
                    f"{where}: the stored bias is 0, but bias_init={bias_init} was asked for: fill it with "
                    "bias_init / lr_mul (nn.init.constant_)"
                )
            fail(
                f"{where}: the stored bias should be the constant bias_init / lr_mul = {expected_b:.3g}, "
                f"got values from {b.min().item():.3g} to {b.max().item():.3g}"
            )


def _diagnose_linear(
    out: torch.Tensor,
    x: torch.Tensor,
    W: torch.Tensor,
    b: torch.Tensor | None,
    lr_mul: float,
    act: str | None,
) -> str:
    """Name the mistake that turns the stored (W, b) and x into ``out``, if it is one we know."""
    I, O = W.shape[1], W.shape[0]
    c = lr_mul / math.sqrt(I)
    lrelu = lambda y: F.leaky_relu(y, 0.2) * SQRT2  # noqa: E731
    act_fn = (lambda y: y) if act is None else lrelu
    eb = None if b is None else b * lr_mul
    candidates: list[tuple[torch.Tensor, str]] = [
        (
            act_fn(F.linear(x, W, eb)),
            "the stored weight is used as is: the equalized gain c = lr_mul / sqrt(in_dim) must multiply "
            "the weight at run time, in forward (scaling it once at init makes Adam's steps 1/c too big)",
        ),
        (
            act_fn(F.linear(x, W / math.sqrt(I), eb)),
            "the run-time gain of the weight is missing the lr multiplier: use c = lr_mul / sqrt(in_dim), "
            "not 1 / sqrt(in_dim)",
        ),
        (
            act_fn(F.linear(x, W * lr_mul / math.sqrt(O), eb)),
            "the gain uses fan_out (out_dim); equalized lr divides by sqrt(fan_in) = sqrt(in_dim)",
        ),
    ]
    if b is not None:
        candidates += [
            (
                act_fn(F.linear(x, W * c, b)),
                "the bias is missing its lr multiplier at run time: add lr_mul * self.bias (it is stored "
                "as bias_init / lr_mul)",
            ),
            (
                act_fn(F.linear(x, W * c)),
                "the bias is never added: add lr_mul * self.bias before the activation",
            ),
        ]
    if act == "lrelu":
        y = F.linear(x, W * c, eb)  # (..., O)
        candidates += [
            (
                F.leaky_relu(y, 0.2),
                "the leaky ReLU is missing its gain sqrt(2): StyleGAN2's lrelu is leaky_relu(y, 0.2) * "
                "sqrt(2), which keeps the second moment of the activations near 1",
            ),
            (y, "activation='lrelu' was asked for but no activation is applied"),
            (
                F.leaky_relu(y, 0.01) * SQRT2,
                "the leaky ReLU uses PyTorch's default slope 0.01: use negative_slope=0.2",
            ),
            (
                F.relu(y) * SQRT2,
                "a plain ReLU is used: use leaky_relu(y, 0.2) * sqrt(2)",
            ),
        ]
        if b is not None:
            candidates.append(
                (
                    lrelu(F.linear(x, W * c)) + eb,
                    "the activation is applied before the bias: add lr_mul * bias first, then the lrelu",
                )
            )
    for candidate, message in candidates:
        if torch.allclose(out, candidate, atol=1e-5, rtol=1e-4):
            return message
    return (
        "compute y = x @ (c W).T + lr_mul * b with c = lr_mul / sqrt(in_dim) (F.linear), then, for "
        "activation='lrelu', leaky_relu(y, 0.2) * sqrt(2)"
    )


def _effective_weight(layer: nn.Module, I: int) -> torch.Tensor:
    """Probe the weight a linear layer (activation=None) applies: ``f(e_i) - f(0)`` for each basis vector."""
    with torch.no_grad():
        return (layer(torch.eye(I)) - layer(torch.zeros(1, I))).T  # (O, I)


@checker("6.1", "EqualLinear")
def check_equal_linear(EqualLinear: type[nn.Module]) -> None:
    """Check a learner's ``EqualLinear(in_dim, out_dim, bias, bias_init, lr_mul, activation)`` class."""
    _check_init(EqualLinear)
    for seed, (lead, I, O, bias, bias_init, lr_mul, act) in enumerate(LINEAR_CASES):
        kwargs = dict(bias=bias, bias_init=bias_init, lr_mul=lr_mul, activation=act)
        layer = build_seeded(EqualLinear, seed, I, O, **kwargs)
        W, b = _stored(layer, I, O, bias)
        ref = build_seeded(RefEqualLinear, 0, I, O, **kwargs)
        with torch.no_grad():
            ref.weight.copy_(W)  # the reference computes with the learner's stored tensors
            if b is not None:
                ref.bias.copy_(b)
        x = torch.randn(*lead, I, generator=seeded(seed))  # (..., I)
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        where = f"EqualLinear({I}, {O}, {args}) on x {tuple(x.shape)}"
        out = expect_tensor(layer(x), (*lead, O), where)
        expected = ref(x)  # (..., O)
        if not torch.allclose(out, expected, atol=1e-5, rtol=1e-4):
            fail(f"{where}: {_diagnose_linear(out.detach(), x, W, b, lr_mul, act)}")
        _grads_reach_everything(layer, (out * torch.randn(out.shape, generator=seeded(99))).sum(), where)

    # Defining property: under Adam, the run-time gain c sets the effective step. Adam's first step moves
    # every stored entry by ~lr (its update is m/sqrt(v) = g/|g|), so the effective weight c W moves by
    # lr * c = 1e-2 * 0.01 / sqrt(16) = 2.5e-5 per entry; scaled once at init, it would move by lr = 1e-2.
    I, O, lr_mul, lr = 16, 8, 0.01, 1e-2
    layer = build_seeded(EqualLinear, 7, I, O, lr_mul=lr_mul)
    before = _effective_weight(layer, I)  # (O, I)
    opt = torch.optim.Adam(layer.parameters(), lr=lr)
    x = torch.randn(5, I, generator=seeded(7))  # (5, I)
    (layer(x) * torch.randn(5, O, generator=seeded(8))).sum().backward()
    opt.step()
    moved = (_effective_weight(layer, I) - before).abs().mean().item()
    expected = lr * lr_mul / math.sqrt(I)
    expect(
        0.5 * expected < moved < 2 * expected,
        f"one Adam step (lr={lr}) moved the effective weight by {moved:.3g} per entry, expected "
        f"lr * lr_mul / sqrt(in_dim) = {expected:.3g}: the equalized scale must be applied at run time "
        "(forward multiplies the stored N(0, 1)/lr_mul weight by c = lr_mul / sqrt(in_dim)), not once at "
        "init; otherwise the lr multiplier does not slow this layer down",
    )


# ----------------------------------------------------------------------------------------------------
# Exercise 6.2: SelfModulatedLayerNorm
# ----------------------------------------------------------------------------------------------------

# (B, N, D, S): B == N first (a (B, D) gamma then broadcasts over tokens without crashing), odd sizes,
# a style width different from the token width, a single image.
SLN_CASES = [(4, 4, 8, 8), (3, 5, 6, 4), (1, 7, 10, 3), (5, 2, 12, 12)]


def _check_sln_structure(sln: nn.Module, D: int, S: int) -> tuple[nn.Linear, nn.Linear]:
    """gamma and beta are nn.Linear(S, D) with a bias; they hold every learned parameter of the module."""
    for name, m in sln.named_modules():
        if isinstance(m, nn.LayerNorm) and (m.weight is not None or m.bias is not None):
            fail(
                f"your LayerNorm {name!r} keeps its own affine parameters (weight and bias of shape "
                f"({D},)). In SLN, gamma(w) and beta(w) replace them: use nn.LayerNorm(dim, "
                "elementwise_affine=False)"
            )
    gamma, beta = getattr(sln, "gamma", None), getattr(sln, "beta", None)
    if isinstance(gamma, torch.Tensor) or isinstance(beta, torch.Tensor):
        fail(
            "gamma and beta are plain tensors (scalars or vectors times w), not affine layers of w. "
            "ViTGAN's SLN computes gamma(w) and beta(w) with learned affine maps of the style vector: "
            "self.gamma = nn.Linear(style_dim, dim) and self.beta = nn.Linear(style_dim, dim)"
        )
    for label, layer in (("gamma", gamma), ("beta", beta)):
        expect(
            isinstance(layer, nn.Linear),
            f"store the affine layer of w as self.{label} = nn.Linear(style_dim, dim) (got "
            f"{type(layer).__name__}); the checker copies its weights into the reference",
        )
        expect(
            (layer.in_features, layer.out_features) == (S, D),
            f"self.{label} should map w (B, style_dim={S}) to (B, dim={D}): nn.Linear({S}, {D}), got "
            f"nn.Linear({layer.in_features}, {layer.out_features})",
        )
        expect(layer.bias is not None, f"self.{label} needs a bias (nn.Linear's default bias=True)")
    own = {id(p) for p in list(gamma.parameters()) + list(beta.parameters())}
    extra = [n for n, p in sln.named_parameters() if id(p) not in own]
    expect(
        not extra,
        f"your SLN has learned parameters besides gamma and beta: {extra}. A LayerNorm with its own "
        "affine weight/bias (or any extra scale) is not SLN: the only learned parameters are the two "
        "affine layers of w",
    )
    return gamma, beta


def _check_sln_init(gamma: nn.Linear, beta: nn.Linear) -> None:
    """Start close to a plain LayerNorm: bias of gamma 1, bias of beta 0, weights small but not zero."""
    expect(
        torch.allclose(gamma.bias.detach(), torch.ones_like(gamma.bias)),
        "initialise the bias of gamma to 1 (nn.init.constant_(self.gamma.bias, 1.0)), so that gamma(w) "
        "starts near 1 and the SLN starts as a plain LayerNorm (like LayerNorm's own weight init)",
    )
    expect(
        torch.allclose(beta.bias.detach(), torch.zeros_like(beta.bias)),
        "initialise the bias of beta to 0 (nn.init.constant_(self.beta.bias, 0.0))",
    )
    for label, layer in (("gamma", gamma), ("beta", beta)):
        expect(
            bool(layer.weight.abs().sum() > 0),
            f"the weight of {label} is all zero: no gradient would reach w (and the mapping network), "
            "and every image would get the same modulation. Use small random weights",
        )
        S = layer.weight.shape[1]
        scaled_std = float(layer.weight.detach().std()) * math.sqrt(S)  # 0.1 for N(0, (0.1 / sqrt(S))^2)
        expect(
            0.04 < scaled_std < 0.25,
            f"the weight of {label} has std {scaled_std / math.sqrt(S):.3g}, i.e. {scaled_std:.2f} / sqrt(S) "
            "instead of 0.1 / sqrt(S): nn.init.normal_(weight, 0.0, 0.1 / math.sqrt(style_dim)), so that "
            f"{label}(w) starts within about 0.1 of its bias and the SLN starts as a plain LayerNorm",
        )


def _layer_norm(h: torch.Tensor, dim: int, unbiased: bool = False, eps: float = 1e-5) -> torch.Tensor:
    mu = h.mean(dim=dim, keepdim=True)
    var = h.var(dim=dim, keepdim=True, unbiased=unbiased)
    return (h - mu) / torch.sqrt(var + eps)


def _diagnose_sln(out: torch.Tensor, h: torch.Tensor, g: torch.Tensor, b: torch.Tensor) -> str:
    """Name the mistake; ``g`` and ``b`` are the reference's gamma(w), beta(w) of shape (B, D)."""
    gs, bs = g.unsqueeze(1), b.unsqueeze(1)  # (B, 1, D)
    ln = _layer_norm(h, -1)  # (B, N, D)
    candidates: list[tuple[Callable[[], torch.Tensor], str]] = [
        (
            lambda: gs * ln * bs,
            "beta(w) is multiplied instead of added: SLN(h, w) = gamma(w) * LN(h) + beta(w)",
        ),
        (
            lambda: bs * ln + gs,
            "gamma and beta are swapped: gamma(w) scales the normalised h, beta(w) is added",
        ),
        (
            lambda: (1 + gs) * ln + bs,
            "you add 1 to gamma(w): the bias of self.gamma already starts at 1, so use gamma(w) as is",
        ),
        (
            lambda: gs * _layer_norm(h, 1) + bs,
            "h is normalised over the tokens (dim 1) instead of over the features (the last dim): each "
            "token is normalised by the mean and std of its own D features",
        ),
        (
            lambda: gs * _layer_norm(h, -1, unbiased=True) + bs,
            "the std is the unbiased one (divides by D - 1): LayerNorm uses the biased variance, "
            "h.var(-1, unbiased=False), or simply nn.LayerNorm(dim, elementwise_affine=False)",
        ),
        (
            lambda: gs * h + bs,
            "h is not normalised: subtract each token's mean and divide by its std before gamma(w), beta(w)",
        ),
    ]
    for candidate, message in candidates:
        c = candidate()
        if c.shape == out.shape and torch.allclose(out, c, atol=1e-4, rtol=1e-3):
            return message
    return (
        "compute gamma(w) and beta(w) with self.gamma and self.beta, unsqueeze them to (B, 1, D), and "
        "return gamma * LayerNorm(h) + beta with a LayerNorm over the last dim and no affine of its own"
    )


@checker("6.2", "SelfModulatedLayerNorm")
def check_sln(SelfModulatedLayerNorm: type[nn.Module]) -> None:
    """Check a learner's ``SelfModulatedLayerNorm(dim, style_dim, eps=1e-5)`` class (forward ``h, w``)."""
    for seed, (B, N, D, S) in enumerate(SLN_CASES):
        sln = build_seeded(SelfModulatedLayerNorm, seed, dim=D, style_dim=S)
        gamma, beta = _check_sln_structure(sln, D, S)
        _check_sln_init(gamma, beta)
        where = f"SLN(dim={D}, style_dim={S}) on h {(B, N, D)}, w {(B, S)}"
        h = torch.randn(B, N, D, generator=seeded(10 + seed)) * 2 + 0.5  # (B, N, D), not already normalised
        w = torch.randn(B, S, generator=seeded(20 + seed))  # (B, S)
        out = expect_tensor(sln(h, w), (B, N, D), where)

        # Defining properties, independent of the reference.
        k = N // 2
        h2 = h.clone()
        h2[:, k] = torch.randn(B, D, generator=seeded(30 + seed))  # change token k only
        diff = (sln(h2, w) - out).detach().abs().amax(dim=(0, 2))  # (N,)
        others = torch.cat([diff[:k], diff[k + 1 :]])
        expect(
            bool(others.max() < 1e-5) if N > 1 else True,
            f"{where}: changing token {k} of h changed the output of other tokens (largest change "
            f"{others.max().item():.3g}): h is normalised over the tokens instead of over the features; "
            "normalise each token over its own D features (the last dim)",
        )
        w2 = w.clone()
        w2[0] = torch.randn(S, generator=seeded(40 + seed))  # change image 0's style only
        dw = (sln(h, w2) - out).detach().abs().amax(dim=(1, 2))  # (B,)
        expect(
            bool(dw[0] > 1e-4),
            f"{where}: the output does not change when w changes: gamma and beta must be computed from w, "
            "gamma = self.gamma(w), beta = self.beta(w)",
        )
        expect(
            B == 1 or bool(dw[1:].max() < 1e-5),
            f"{where}: changing image 0's w changed other images' outputs: gamma(w) and beta(w) are one "
            "(D,) vector per image; reshape them to (B, 1, D) (unsqueeze(1)) so they broadcast over the N "
            "tokens of that image, not over the batch",
        )

        ref = build_seeded(RefSLN, 0, dim=D, style_dim=S)
        ref.gamma.load_state_dict(gamma.state_dict())  # the reference computes with the learner's layers
        ref.beta.load_state_dict(beta.state_dict())
        expected = ref(h, w)  # (B, N, D)
        if not torch.allclose(out, expected, atol=1e-4, rtol=1e-3):
            with torch.no_grad():
                g, b = ref.gamma(w), ref.beta(w)  # (B, D)
            fail(f"{where}: {_diagnose_sln(out.detach(), h, g, b)}")

        # LayerNorm invariance: a per-token affine change of h (scale > 0) leaves the output unchanged.
        scale = torch.rand(B, N, 1, generator=seeded(50 + seed)) * 3 + 0.5  # (B, N, 1)
        expect_close(
            sln(h * scale - 1.5, w),
            out,
            f"{where}: SLN(a h + c, w) should equal SLN(h, w) for a per-token scale a > 0 and shift c: "
            "normalise h (subtract each token's mean, divide by its std) before modulating",
            atol=1e-4,
            rtol=1e-3,
        )
        wg = w.clone().requires_grad_(True)
        _grads_reach_everything(sln, (sln(h, wg) * torch.randn(B, N, D, generator=seeded(60))).sum(), where)
        expect(
            wg.grad is not None and bool(wg.grad.abs().sum() > 0),
            f"{where}: no gradient reaches w: compute gamma and beta from w without detaching it",
        )


__all__ = ["check_equal_linear", "check_sln"]
