"""Checkers for lesson 06: Exercise 6.1 ``EqualLinear`` and Exercise 6.2 ``SelfModulatedLayerNorm``.

The learner passes a CLASS with the package's constructor signature. The checker builds it with small
sizes, copies the learner's stored tensors into the reference (``vitgan_lite.modulation``), compares the
two on several seeds and shapes, checks the defining properties, and names the mistakes that public
ViTGAN / StyleGAN ports make (scale applied at init instead of at run time, a missing lr multiplier,
SLN as scalars times w, beta multiplied, a LayerNorm keeping its own affine, normalising over tokens).
The initialisation is checked on a layer large enough to measure its distribution (normal, its std,
the constant biases), and both classes must keep float64 when converted with ``.double()``.

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
    stage,
)
from vitgan_lite.modulation import EqualLinear as RefEqualLinear
from vitgan_lite.modulation import SelfModulatedLayerNorm as RefSLN

SQRT2 = math.sqrt(2.0)


def _near(value: float, target: float, rel: float = 0.1) -> bool:
    return abs(value - target) <= rel * abs(target)


def _normal_shape(W: torch.Tensor) -> str | None:
    """None when the ~3000 values of ``W`` look normal; else what they look like instead.

    A normal draw of n >= 2000 values reaches about 3.4 std (at least 2.6 std but with probability
    1e-8); a uniform one reaches sqrt(3) = 1.73 std, a normal truncated at 2 std only 2.3 std.
    """
    reach = (W.abs().max() / W.std()).item()
    if reach >= 2.6:
        return None
    kind = "a uniform draw" if reach < 1.9 else "a truncated normal (nn.init.trunc_normal_ cuts at +-2)"
    return f"its largest value is only {reach:.2f} std from 0, where a normal draw reaches ~3.4 std: {kind}"


def _grads_reach_everything(module: nn.Module, loss: torch.Tensor, what: str) -> None:
    module.zero_grad(set_to_none=True)
    loss.backward()
    expect_grads_reach_every_parameter(
        module,
        lambda name: (
            f"no gradient reaches the parameter {name!r} of your {what}: every learned tensor must "
            "be used in forward (no .detach(), no .data, no torch.no_grad(), no copy made once in __init__)"
        ),
    )


def _dtype_crash(e: Exception) -> bool:
    return "dtype" in str(e) or "scalar type" in str(e)


# ----------------------------------------------------------------------------------------------------
# Exercise 6.1: EqualLinear
# ----------------------------------------------------------------------------------------------------

EQUAL_LINEAR_HINTS = (
    "Two places, two rules, and lr_mul in all four of them. reset_parameters STORES W ~ N(0, 1) / lr_mul "
    "(a normal draw, std 1 / lr_mul) and b = the constant bias_init / lr_mul. forward multiplies them at "
    "RUN time: the weight by c = lr_mul / sqrt(in_dim) (the fan-in, the last size of the weight), the bias "
    "by lr_mul, then one F.linear; the activation comes after the bias: leaky_relu with slope 0.2, times "
    "sqrt(2). With bias=False, self.bias is None and nothing is added. Keep c a plain number, not a "
    "learned parameter.",
    "def reset_parameters(self):\n"
    "    nn.init.normal_(self.weight, mean=0.0, std=...)\n"
    "    if self.bias is not None:\n"
    "        nn.init.constant_(self.bias, ...)\n"
    "\n"
    "def forward(self, x):\n"
    "    weight = self.weight * (... / math.sqrt(...))\n"
    "    bias = None if self.bias is None else ...\n"
    "    out = F.linear(x, weight, bias)\n"
    "    if self.activation == 'lrelu':\n"
    "        out = F.leaky_relu(out, ...) * ...\n"
    "    return out",
)

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
    if isinstance(W, torch.Tensor) and tuple(W.shape) == (I, O) and I != O:
        fail(
            f"EqualLinear({I}, {O}) stores its weight transposed, shape (in_dim, out_dim) = {(I, O)}: store "
            f"it as nn.Linear does, (out_dim, in_dim) = {(O, I)}, and use F.linear(x, weight, bias)"
        )
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


def _check_parameters(layer: nn.Module, where: str) -> None:
    """weight and bias are the only learned tensors: the gain c is a constant, not learned."""
    names = [n for n, _ in layer.named_parameters()]
    extra = [n for n in names if n not in ("weight", "bias")]
    expect(
        not extra or "weight" not in names,  # a weight that is no parameter: the Adam step will tell
        f"{where} has learned parameters besides weight and bias: {extra}. The gains c = lr_mul / "
        "sqrt(in_dim) and lr_mul are constants (plain numbers, or a buffer): a learned gain is updated "
        "by the optimizer too and undoes the equalized learning rate",
    )


def _check_init(EqualLinear: type[nn.Module]) -> None:
    """Stored W ~ N(0, 1) / lr_mul and stored b = bias_init / lr_mul (the equalized-lr initialisation)."""
    I, O, bias_init = 64, 48, 0.5  # 3072 weights: their std is estimated to about 1.3%
    for seed, lr_mul in enumerate((1.0, 0.01)):
        where = f"EqualLinear({I}, {O}, lr_mul={lr_mul})"
        with stage(f"{where} being built"):
            layer = build_seeded(EqualLinear, seed, I, O, bias=True, bias_init=bias_init, lr_mul=lr_mul)
        W, b = _stored(layer, I, O, bias=True)
        _check_parameters(layer, where)
        std, mean, target = W.std().item(), W.mean().item(), 1.0 / lr_mul
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
            if lr_mul != 1.0 and _near(std, lr_mul):
                fail(
                    f"{where}: the stored weight has std {std:.3g} = lr_mul instead of 1/lr_mul = "
                    f"{target:.3g}: the init is multiplied by lr_mul instead of divided by it. Use "
                    "std = 1.0 / lr_mul"
                )
            shape = _normal_shape(W)
            fail(
                f"{where}: the stored weight should be drawn from N(0, 1) / lr_mul (std {target:.3g}), its "
                f"std is {std:.3g}"
                + (f"; {shape}" if shape else "")
                + ". Use nn.init.normal_(self.weight, 0.0, 1.0 / lr_mul) in reset_parameters"
            )
        shape = _normal_shape(W)
        expect(
            shape is None,
            f"{where}: the stored weight has the right std but is not drawn from a normal distribution: "
            f"{shape}. Use nn.init.normal_(self.weight, 0.0, 1.0 / lr_mul) (StyleGAN's N(0, 1) init)",
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
            if lr_mul != 1.0 and torch.allclose(b, torch.full_like(b, bias_init * lr_mul)):
                fail(
                    f"{where}, bias_init={bias_init}: the stored bias is bias_init * lr_mul = "
                    f"{bias_init * lr_mul:.3g}: it must be divided by lr_mul, bias_init / lr_mul = "
                    f"{expected_b:.3g} (forward multiplies it back by lr_mul)"
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
        (
            act_fn(F.linear(x, W * lr_mul / I, eb)),
            "the gain divides by in_dim instead of sqrt(in_dim): c = lr_mul / math.sqrt(in_dim)",
        ),
        (
            act_fn(F.linear(x, W / (lr_mul * math.sqrt(I)), eb)),
            "the run-time gain divides by lr_mul instead of multiplying: c = lr_mul / sqrt(in_dim) (the "
            "stored weight is N(0, 1) / lr_mul, so c W starts at N(0, 1/in_dim))",
        ),
    ]
    if act is None:
        candidates.append(
            (
                lrelu(F.linear(x, W * c, eb)),
                "an activation is applied although activation=None: apply the lrelu only when "
                "self.activation == 'lrelu'",
            )
        )
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
            (
                act_fn(F.linear(x, W, eb) * c),
                "the gain c multiplies the bias too (F.linear(x, W, b) * c): c belongs to the weight only; "
                "the bias gets its own run-time factor lr_mul",
            ),
            (
                act_fn(F.linear(x, W * c, b / lr_mul)),
                "the bias is divided by lr_mul at run time: it is stored as bias_init / lr_mul, so forward "
                "MULTIPLIES it by lr_mul",
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
            (
                F.leaky_relu(y, 0.2) * 2.0,
                "the leaky ReLU's gain is 2 instead of sqrt(2): multiply by math.sqrt(2.0)",
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


def _run_linear(layer: nn.Module, x: torch.Tensor, where: str, bias: bool) -> torch.Tensor:
    try:
        with stage(where):
            return layer(x)
    except TypeError as e:
        if not bias and "NoneType" in str(e):
            fail(
                f"{where}: your code raised {type(e).__name__}: {e}. With bias=False self.bias is None: "
                "only multiply and add it when it exists (bias = None if self.bias is None else ...)"
            )
        raise


def _check_linear_float64(EqualLinear: type[nn.Module]) -> None:
    I, O = 6, 4
    kwargs = dict(bias=True, bias_init=0.3, lr_mul=0.5, activation="lrelu")
    layer = build_seeded(EqualLinear, 11, I, O, **kwargs).double()
    W, b = _stored(layer, I, O, bias=True)
    ref = build_seeded(RefEqualLinear, 0, I, O, **kwargs).double()
    with torch.no_grad():
        ref.weight.copy_(W)
        ref.bias.copy_(b)
    x = torch.randn(3, I, generator=seeded(12), dtype=torch.float64)  # (3, I)
    where = f"EqualLinear({I}, {O}, activation='lrelu').double() on a float64 x (3, {I})"
    try:
        out = _run_linear(layer, x, where, bias=True)
    except RuntimeError as e:
        if _dtype_crash(e):
            fail(
                f"{where}: your code raised {type(e).__name__}: {str(e)[:120]}. Something is float32 "
                "(x.float(), or a tensor made in __init__ that .double() does not convert): keep the "
                "input's dtype; keep c a plain number (or a registered buffer)"
            )
        raise
    expect(
        isinstance(out, torch.Tensor) and out.dtype == torch.float64,
        f"{where} returns {getattr(out, 'dtype', type(out))}: keep the input's dtype (no .float())",
    )
    expect_close(out.detach(), ref(x), f"{where}: the output differs from the reference")


@checker("6.1", "EqualLinear", hints=EQUAL_LINEAR_HINTS, reference="vitgan_lite.modulation:EqualLinear")
def check_equal_linear(EqualLinear: type[nn.Module]) -> None:
    """Check a learner's ``EqualLinear(in_dim, out_dim, bias, bias_init, lr_mul, activation)`` class."""
    _check_init(EqualLinear)
    for seed, (lead, I, O, bias, bias_init, lr_mul, act) in enumerate(LINEAR_CASES):
        kwargs = dict(bias=bias, bias_init=bias_init, lr_mul=lr_mul, activation=act)
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        with stage(f"EqualLinear({I}, {O}, {args}) being built"):
            layer = build_seeded(EqualLinear, seed, I, O, **kwargs)
        W, b = _stored(layer, I, O, bias)
        ref = build_seeded(RefEqualLinear, 0, I, O, **kwargs)
        with torch.no_grad():
            ref.weight.copy_(W)  # the reference computes with the learner's stored tensors
            if b is not None:
                ref.bias.copy_(b)
        x = torch.randn(*lead, I, generator=seeded(seed))  # (..., I)
        where = f"EqualLinear({I}, {O}, {args}) on x {tuple(x.shape)}"
        out = expect_tensor(_run_linear(layer, x, where, bias), (*lead, O), where)
        expected = ref(x)  # (..., O)
        if not torch.allclose(out, expected, atol=1e-5, rtol=1e-4):
            fail(f"{where}: {_diagnose_linear(out.detach(), x, W, b, lr_mul, act)}")
        _grads_reach_everything(layer, (out * torch.randn(out.shape, generator=seeded(99))).sum(), where)
    _check_linear_float64(EqualLinear)

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

SLN_HINTS = (
    "SLN(h, w) = gamma(w) * LN(h) + beta(w). self.norm normalises each token over its own D features "
    "(the last axis) and learns nothing: an nn.LayerNorm without affine parameters of its own. self.gamma "
    "and self.beta are two separate nn.Linear(style_dim, dim): one (D,) scale and one (D,) shift per "
    "image, computed from w. reset_parameters sets their biases to the constants 1 (gamma) and 0 (beta) "
    "and draws their weights from a normal with std 0.1 / sqrt(style_dim). In forward, gamma(w) and "
    "beta(w) are (B, D): reshape them to (B, 1, D) so that the N tokens of each image share them; beta is "
    "added, not multiplied.",
    "__init__:\n"
    "    self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=...)\n"
    "    self.gamma = nn.Linear(..., ...)\n"
    "    self.beta = nn.Linear(..., ...)\n"
    "reset_parameters:\n"
    "    for layer, bias in ((self.gamma, ...), (self.beta, ...)):\n"
    "        nn.init.normal_(layer.weight, mean=0.0, std=... / math.sqrt(...))\n"
    "        nn.init.constant_(layer.bias, bias)\n"
    "forward:\n"
    "    gamma = self.gamma(w).unsqueeze(...)      # (B, 1, D)\n"
    "    beta = ...\n"
    "    return gamma * self.norm(h) + beta",
)

# (B, N, D, S): B == N first (a (B, D) gamma then broadcasts over tokens without crashing), odd sizes,
# a style width different from the token width, a single image.
SLN_CASES = [(4, 4, 8, 8), (3, 5, 6, 4), (1, 7, 10, 3), (5, 2, 12, 12)]
INIT_DIM, INIT_STYLE = 32, 64  # 2048 weights per layer: their std is measured to about 1.6%


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
            layer is not None,
            f"your SLN has no self.{label}: the checker looks for self.gamma and self.beta, two "
            "nn.Linear(style_dim, dim) (not one nn.Linear(style_dim, 2 * dim) split in two), and copies "
            "their weights into the reference",
        )
        expect(
            isinstance(layer, nn.Linear),
            f"store the affine layer of w as self.{label} = nn.Linear(style_dim, dim) (got "
            f"{type(layer).__name__}); the checker copies its weights into the reference",
        )
    expect(
        gamma is not beta,
        "self.gamma and self.beta are the same nn.Linear: then beta(w) = gamma(w), and the init of one "
        "overwrites the other. Build two separate layers, each nn.Linear(style_dim, dim)",
    )
    for label, layer in (("gamma", gamma), ("beta", beta)):
        shape = (layer.in_features, layer.out_features)
        if shape == (S, 1):
            fail(
                f"self.{label} = nn.Linear({S}, 1) gives ONE scalar per image: SLN modulates every feature, "
                f"so {label}(w) is a (D,) vector per image: nn.Linear(style_dim, dim) = nn.Linear({S}, {D})"
            )
        if shape == (D, S) and D != S:
            fail(
                f"self.{label} = nn.Linear({D}, {S}): the arguments are swapped. It maps w (B, style_dim) "
                f"to (B, dim): nn.Linear(style_dim, dim) = nn.Linear({S}, {D})"
            )
        expect(
            shape == (S, D),
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


def _check_sln_bias(layer: nn.Linear, label: str, value: float) -> None:
    """The bias of gamma is the constant 1, that of beta the constant 0 (no random init)."""
    b = layer.bias.detach()
    if torch.allclose(b, torch.full_like(b, value)):
        return
    fix = f"initialise the bias of {label} to {value:g} (nn.init.constant_(self.{label}.bias, {value:.1f}))"
    why = (
        "so that gamma(w) starts near 1 and the SLN starts as a plain LayerNorm (like LayerNorm's own "
        "weight init)"
        if label == "gamma"
        else "so that beta(w) starts near 0 and the SLN starts as a plain LayerNorm"
    )
    lo, hi = b.min().item(), b.max().item()
    if hi - lo < 1e-6:
        fail(f"the bias of {label} is the constant {lo:.3g}: {fix}, {why}")
    fail(
        f"the bias of {label} is random (values from {lo:.3g} to {hi:.3g}; nn.Linear's default init, or a "
        f"random draw): {fix}, a constant, {why}"
    )


def _check_sln_weight(layer: nn.Linear, label: str, D: int, S: int) -> None:
    """Weights ~ N(0, (0.1 / sqrt(S))^2): measured on a layer with S * D = 2048 of them."""
    W = layer.weight.detach()
    target = 0.1 / math.sqrt(S)
    std = W.std().item()
    where = f"the weight of {label}"
    want = "nn.init.normal_(weight, 0.0, 0.1 / math.sqrt(style_dim))"
    if not _near(std, target):
        named = [
            (0.1, "the 1/sqrt(style_dim) is missing: std 0.1 / sqrt(style_dim), not 0.1"),
            (0.1 / S, "it divides by style_dim instead of sqrt(style_dim)"),
            (
                0.01 / S,
                "0.01 / style_dim is the VARIANCE of the draw; the std is its square root, 0.1 / sqrt(S)",
            ),
            (
                0.1 / math.sqrt(D),
                "it uses dim instead of style_dim: the fan-in of nn.Linear(style_dim, dim) is S",
            ),
            (
                1.0 / math.sqrt(S),
                "std 1 / sqrt(S) is w at full strength (the official code's init); this lesson starts "
                "gently, 0.1 / sqrt(S)",
            ),
        ]
        if _normal_shape(W) is not None and _near(W.abs().max().item(), 1.0 / math.sqrt(S), 0.03):
            named = [(std, "this is nn.Linear's default init U(-1/sqrt(S), 1/sqrt(S)), never overwritten")]
        for value, mistake in named:
            if _near(std, value):
                fail(
                    f"{where} has std {std:.3g} instead of 0.1 / sqrt(S) = {target:.3g} (S = style_dim = "
                    f"{S}): {mistake}. Use {want}"
                )
        scaled = std * math.sqrt(S)
        fail(
            f"{where} has std {std:.3g}, i.e. {scaled:.2f} / sqrt(S) instead of 0.1 / sqrt(S): {want}, so "
            f"that {label}(w) starts within about 0.1 of its bias and the SLN starts as a plain LayerNorm"
        )
    shape = _normal_shape(W)
    expect(shape is None, f"{where} has the right std but is not drawn from a normal: {shape}. Use {want}")
    expect(
        abs(W.mean().item()) < 0.1 * target,
        f"{where} has mean {W.mean().item():.3g}: draw it from a normal with mean 0, {want}",
    )


def _check_sln_init(gamma: nn.Linear, beta: nn.Linear, D: int, S: int, measure: bool) -> None:
    """Start close to a plain LayerNorm: bias of gamma 1, bias of beta 0, weights small but not zero
    (``measure``: on a layer large enough to measure the weights' distribution)."""
    _check_sln_bias(gamma, "gamma", 1.0)
    _check_sln_bias(beta, "beta", 0.0)
    for label, layer in (("gamma", gamma), ("beta", beta)):
        expect(
            bool(layer.weight.abs().sum() > 0),
            f"the weight of {label} is all zero: no gradient would reach w (and the mapping network), "
            "and every image would get the same modulation. Use small random weights",
        )
        if measure:
            _check_sln_weight(layer, label, D, S)


def _layer_norm(h: torch.Tensor, dim: int | tuple[int, ...], unbiased: bool = False, eps: float = 1e-5):
    mu = h.mean(dim=dim, keepdim=True)
    var = h.var(dim=dim, keepdim=True, unbiased=unbiased)
    return (h - mu) / torch.sqrt(var + eps)


def _diagnose_sln(
    out: torch.Tensor, h: torch.Tensor, g: torch.Tensor, b: torch.Tensor, gamma: nn.Linear, beta: nn.Linear
) -> str | None:
    """Name the mistake; ``g`` and ``b`` are the reference's gamma(w), beta(w) of shape (B, D)."""
    gs, bs = g.unsqueeze(1), b.unsqueeze(1)  # (B, 1, D)
    ln = _layer_norm(h, -1)  # (B, N, D)
    mu, var = h.mean(-1, keepdim=True), h.var(-1, keepdim=True, unbiased=False)  # (B, N, 1)
    B, N, _ = h.shape
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
            lambda: gamma.bias.detach() * ln + beta.bias.detach(),
            "the output does not change when w changes: only the biases of gamma and beta are used. "
            "Compute gamma = self.gamma(w) and beta = self.beta(w), the layers applied to w",
        ),
        (
            lambda: g.mean(0) * ln + b.mean(0),
            "gamma and beta are computed from the batch's mean style: each image has its own w, so "
            "self.gamma(w) on w (B, S) gives one (D,) row per image; do not average over the batch",
        ),
        (
            lambda: gs * _layer_norm(h, 1) + bs,
            "h is normalised over the tokens instead of over the features (dim 1, not the last dim): "
            "each token is normalised by the mean and std of its own D features",
        ),
        (
            lambda: gs * _layer_norm(h, (1, 2)) + bs,
            "h is normalised over the tokens AND the features (h.shape[1:]) instead of over the features "
            "only: normalise each token over its own D features, nn.LayerNorm(dim)",
        ),
        (
            lambda: gs * _layer_norm(h, -1, unbiased=True) + bs,
            "the std is the unbiased one (divides by D - 1): LayerNorm uses the biased variance, "
            "h.var(-1, unbiased=False), or simply nn.LayerNorm(dim, elementwise_affine=False)",
        ),
        (
            lambda: gs * (h - mu) / (var + 1e-5) + bs,
            "h - mean is divided by the VARIANCE instead of the std: divide by torch.sqrt(var + eps)",
        ),
        (
            lambda: gs * h / torch.sqrt(var + 1e-5) + bs,
            "the mean is not subtracted: LN(h) = (h - mean) / std, both over each token's D features",
        ),
        (
            lambda: gs * (h - mu) + bs,
            "h - mean is not divided by the std: LN(h) = (h - mean) / sqrt(var + eps)",
        ),
        (
            lambda: _layer_norm(gs * h + bs, -1),
            "gamma(w) and beta(w) are applied BEFORE the LayerNorm, which then undoes most of them: "
            "normalise h first, then gamma(w) * LN(h) + beta(w)",
        ),
        (
            lambda: _layer_norm(gs * h, -1) + bs,
            "gamma(w) scales h before the LayerNorm: normalise first, then gamma(w) * LN(h) + beta(w)",
        ),
        (
            lambda: gs * h + bs,
            "h is not normalised: subtract each token's mean and divide by its std before gamma(w), beta(w)",
        ),
    ]
    if B == N:
        candidates.append(
            (
                lambda: g.unsqueeze(0) * ln + b.unsqueeze(0),
                "gamma(w) and beta(w), shape (B, D), are not reshaped: against h (B, N, D) they line up "
                "with the TOKEN axis (this ran only because B == N), so token n of every image gets image "
                "n's style and changing one image's w changes other images' outputs. Reshape them to "
                "(B, 1, D): unsqueeze(1)",
            )
        )
    for candidate, message in candidates:
        c = candidate()
        if c.shape == out.shape and torch.allclose(out, c, atol=1e-4, rtol=1e-3):
            return message
    return None


def _sln_properties(
    sln: nn.Module, h: torch.Tensor, w: torch.Tensor, out: torch.Tensor, seed: int, where: str
) -> None:
    """Defining properties, independent of the reference: each token on its own, each image on its own."""
    B, N, D = h.shape
    S = w.shape[1]
    w2 = w.clone()
    w2[0] = torch.randn(S, generator=seeded(40 + seed))  # change image 0's style only
    dw = (sln(h, w2) - out).detach().abs().amax(dim=(1, 2))  # (B,)
    expect(
        bool(dw[0] > 1e-4),
        f"{where}: the output does not change when w changes: gamma and beta must be computed from w, "
        "gamma = self.gamma(w), beta = self.beta(w) (not from h, not from a constant)",
    )
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
    expect(
        B == 1 or bool(dw[1:].max() < 1e-5),
        f"{where}: changing image 0's w changed other images' outputs: gamma(w) and beta(w) are one "
        "(D,) vector per image, computed from that image's w alone; reshape them to (B, 1, D) "
        "(unsqueeze(1)) so they broadcast over the N tokens of that image, not over the batch",
    )


def _check_sln_grads(
    sln: nn.Module, ref: nn.Module, h: torch.Tensor, w: torch.Tensor, where: str, seed: int
) -> None:
    """Every parameter, h and w get gradients, and h's and w's equal the reference's."""
    B, N, D = h.shape
    r = torch.randn(B, N, D, generator=seeded(60 + seed))  # a random direction
    hg, wg = h.clone().requires_grad_(True), w.clone().requires_grad_(True)
    _grads_reach_everything(sln, (sln(hg, wg) * r).sum(), where)
    expect(
        wg.grad is not None and bool(wg.grad.abs().sum() > 0),
        f"{where}: no gradient reaches w: compute gamma and beta from w without detaching it",
    )
    expect(
        hg.grad is not None and bool(hg.grad.abs().sum() > 0),
        f"{where}: no gradient reaches h: normalise h itself, without .detach() or torch.no_grad()",
    )
    hr, wr = h.clone().requires_grad_(True), w.clone().requires_grad_(True)
    (ref(hr, wr) * r).sum().backward()
    expect_close(
        hg.grad,
        hr.grad,
        f"{where}: the values are right but the gradient with respect to h is not: the mean or std of "
        "the LayerNorm is cut from the graph (.detach(), torch.no_grad()); the gradient must flow through "
        "them too (nn.LayerNorm does this)",
        atol=1e-4,
        rtol=1e-3,
    )
    expect_close(
        wg.grad,
        wr.grad,
        f"{where}: the values are right but the gradient with respect to w is not: part of gamma(w) or "
        "beta(w) is cut from the graph (.detach(), .data, torch.no_grad())",
        atol=1e-4,
        rtol=1e-3,
    )


def _check_sln_float64(SelfModulatedLayerNorm: type[nn.Module]) -> None:
    B, N, D, S = 2, 3, 6, 4
    sln = build_seeded(SelfModulatedLayerNorm, 70, dim=D, style_dim=S).double()
    gamma, beta = _check_sln_structure(sln, D, S)
    ref = build_seeded(RefSLN, 0, dim=D, style_dim=S).double()
    ref.gamma.load_state_dict(gamma.state_dict())
    ref.beta.load_state_dict(beta.state_dict())
    h = torch.randn(B, N, D, generator=seeded(71), dtype=torch.float64) * 2 + 0.5  # (B, N, D)
    w = torch.randn(B, S, generator=seeded(72), dtype=torch.float64)  # (B, S)
    where = f"SLN(dim={D}, style_dim={S}).double() on float64 h {(B, N, D)}, w {(B, S)}"
    try:
        with stage(where):
            out = sln(h, w)
    except RuntimeError as e:
        if _dtype_crash(e):
            fail(
                f"{where}: your code raised {type(e).__name__}: {str(e)[:120]}. Something is cast to float32 "
                "(w.float(), h.float()?): keep the inputs' dtype"
            )
        raise
    expect(
        isinstance(out, torch.Tensor) and out.dtype == torch.float64,
        f"{where} returns {getattr(out, 'dtype', type(out))}: keep the inputs' dtype (no .float())",
    )
    expect_close(
        out.detach(), ref(h, w), f"{where}: the output differs from the reference", atol=1e-4, rtol=1e-3
    )


@checker(
    "6.2",
    "SelfModulatedLayerNorm",
    hints=SLN_HINTS,
    reference="vitgan_lite.modulation:SelfModulatedLayerNorm",
)
def check_sln(SelfModulatedLayerNorm: type[nn.Module]) -> None:
    """Check a learner's ``SelfModulatedLayerNorm(dim, style_dim, eps=1e-5)`` class (forward ``h, w``)."""
    D, S = INIT_DIM, INIT_STYLE
    with stage(f"SLN(dim={D}, style_dim={S}) being built"):
        sln = build_seeded(SelfModulatedLayerNorm, 100, dim=D, style_dim=S)
    gamma, beta = _check_sln_structure(sln, D, S)
    _check_sln_init(gamma, beta, D, S, measure=True)
    for seed, (B, N, D, S) in enumerate(SLN_CASES):
        with stage(f"SLN(dim={D}, style_dim={S}) being built"):
            sln = build_seeded(SelfModulatedLayerNorm, seed, dim=D, style_dim=S)
        gamma, beta = _check_sln_structure(sln, D, S)
        _check_sln_init(gamma, beta, D, S, measure=False)
        where = f"SLN(dim={D}, style_dim={S}) on h {(B, N, D)}, w {(B, S)}"
        h = torch.randn(B, N, D, generator=seeded(10 + seed)) * 2 + 0.5  # (B, N, D), not already normalised
        w = torch.randn(B, S, generator=seeded(20 + seed))  # (B, S)
        with stage(where):
            out = expect_tensor(sln(h, w), (B, N, D), where)

        ref = build_seeded(RefSLN, 0, dim=D, style_dim=S)
        ref.gamma.load_state_dict(gamma.state_dict())  # the reference computes with the learner's layers
        ref.beta.load_state_dict(beta.state_dict())
        expected = ref(h, w)  # (B, N, D)
        if not torch.allclose(out, expected, atol=1e-4, rtol=1e-3):
            with torch.no_grad():
                g, b = ref.gamma(w), ref.beta(w)  # (B, D)
                mistake = _diagnose_sln(out.detach(), h, g, b, gamma, beta)
            if mistake is not None:
                fail(f"{where}: {mistake}")
            with stage(where):
                _sln_properties(sln, h, w, out, seed, where)
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
        expect_close(
            out,
            expected,
            f"{where}: the output should be gamma(w) * LayerNorm(h) + beta(w), with gamma(w) and beta(w) "
            "reshaped to (B, 1, D) and a LayerNorm over the last dim with no affine of its own",
            atol=1e-4,
            rtol=1e-3,
        )
        _check_sln_grads(sln, ref, h, w, where, seed)
    _check_sln_float64(SelfModulatedLayerNorm)


__all__ = ["check_equal_linear", "check_sln"]
