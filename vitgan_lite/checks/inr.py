"""Checkers for lesson 07 (implicit neural representation): Exercise 7.1 ``modulated_linear`` and
Exercise 7.2 ``SineLayer``.

``check_modulated_linear`` compares the learner's function with ``vitgan_lite.inr.modulated_linear`` on a
hand value, on square and non-square weights, with and without demodulation and bias, and names the usual
mistakes: s on the output axis, demodulation over columns, demodulation missing or applied when
``demodulate=False``, the bias added before demodulation, and one (B, O, I) weight built per batch item.

``check_sine_layer`` builds the learner's ``SineLayer`` class, measures the initialisation of its
``linear`` (SIREN: first layer U(-1/I, 1/I), others U(+-sqrt(6/I)/omega0)), copies its weights into the
reference ``vitgan_lite.inr.SineLayer`` and compares the forward passes, naming an omega0 outside the sine
or missing, and the wrong initialisation rule.

Shape legend: B batch, M points per batch item, I / O input / output features.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

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
from vitgan_lite.inr import SineLayer as RefSineLayer
from vitgan_lite.inr import modulated_linear as ref_modulated_linear

# ----------------------------------------------------------------------------------------------------
# Exercise 7.1: modulated_linear
# ----------------------------------------------------------------------------------------------------

# (B, M, O, I, demodulate, bias): odd batches, square and non-square W, both flags.
MOD_CASES = [
    (1, 4, 5, 5, False, True),
    (3, 5, 6, 6, True, True),
    (5, 2, 4, 4, True, False),
    (3, 5, 7, 4, True, True),
    (2, 3, 3, 8, False, False),
    (4, 1, 6, 9, True, False),
]


def _mod_variants(
    x: torch.Tensor, W: torch.Tensor, s: torch.Tensor, bias: torch.Tensor | None, demodulate: bool
) -> list[tuple[torch.Tensor, str]]:
    """What the known mistakes output for these inputs (explicit (B, O, I) form, easy to read)."""
    B, O, I = s.shape[0], W.shape[0], W.shape[1]
    b = 0.0 if bias is None else bias

    def run(w: torch.Tensor, demod_dim: int | None, bias_first: bool = False) -> torch.Tensor:
        """w (B, O, I) -> out (B, M, O), optionally demodulated over dim ``demod_dim`` of w."""
        out = None
        if demod_dim is not None:
            if bias_first:
                d = torch.rsqrt(w.square().sum(dim=2) + 1e-8)  # (B, O)
                return (torch.einsum("bmi,boi->bmo", x, w) + b) * d.unsqueeze(1)  # (B, M, O)
            w = w * torch.rsqrt(w.square().sum(dim=demod_dim, keepdim=True) + 1e-8)  # (B, O, I)
        out = torch.einsum("bmi,boi->bmo", x, w)  # (B, M, O)
        return out + b

    w_in = W.unsqueeze(0) * s.unsqueeze(1)  # (B, O, I): the right axis, s_j on the input axis j
    demod = 2 if demodulate else None
    variants: list[tuple[torch.Tensor, str]] = []
    if O == I:  # the output-axis mistake only runs when W is square
        w_out = W.unsqueeze(0) * s.unsqueeze(2)  # (B, O, I): s_i on the output axis i (wrong)
        variants += [
            (
                run(w_out, demod),
                (
                    "your output does not depend on s: either s is not used, or it scales the OUTPUT "
                    "axis of W (W'_ij = s_i W_ij), where the row demodulation cancels it. s scales the "
                    "input axis (W'_ij = s_j W_ij): multiply x by s before the matmul, x * s.unsqueeze(1)"
                )
                if demodulate
                else "s scales the OUTPUT axis of W (W'_ij = s_i W_ij) instead of the input axis "
                "(W'_ij = s_j W_ij): multiply x by s before the matmul, x * s.unsqueeze(1), "
                "not the result after it",
            ),
            (
                run(w_out, 1 if demodulate else None),
                "s scales the OUTPUT axis of W and the demodulation normalises columns: s_j multiplies "
                "the input axis j (x * s.unsqueeze(1)), and each ROW i of W' gets unit norm",
            ),
        ]
    if demodulate:
        variants += [
            (
                run(w_in, 1),
                "the demodulation normalises the COLUMNS of W' (a sum over the output axis i) instead "
                "of its ROWS: d_i = 1 / sqrt(sum_j (s_j W_ij)^2 + eps) sums over the input axis j, "
                "that is s.square() @ weight.square().t(), shape (B, O)",
            ),
            (
                run(w_in, None),
                "there is no demodulation although demodulate=True: divide each output i by "
                "sqrt(sum_j (s_j W_ij)^2 + eps)",
            ),
        ]
        if bias is not None:
            variants.append(
                (
                    run(w_in, 2, bias_first=True),
                    "the bias is added before the demodulation and gets scaled with it: add the bias "
                    "last, after multiplying by the demodulation coefficients",
                )
            )
    else:
        variants.append(
            (
                run(w_in, 2),
                "you demodulate although demodulate=False: normalise the rows only when the flag is "
                "True (the patch decoder's output layer, like StyleGAN2's toRGB, is not demodulated)",
            )
        )
    if bias is not None:
        variants.append(
            (
                run(w_in, demod) - b,
                "the bias is missing: add bias (shape (O,)) to the output when it is not None",
            )
        )
    variants.append(
        (
            run(W.unsqueeze(0).expand(B, O, I), demod),
            "the styles s are not used: W'_ij = s_j W_ij, so multiply the inputs by s (x * s.unsqueeze(1))",
        )
    )
    return variants


class _ShapeRecorder(TorchFunctionMode):
    """Records every tensor a function creates that owns its memory: its shape, and how many elements its
    storage holds. A view (``expand``, ``transpose``) shares storage and allocates nothing, so only what is
    really allocated counts (to spot a materialised (B, O, I) weight, not an expanded view of W)."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.untyped_storage().nbytes() >= t.numel() * t.element_size():
                self.shapes.append(tuple(t.shape))  # a tensor backed by storage as large as itself
        return out


def _check_mod_case(
    modulated_linear: Callable[..., torch.Tensor], seed: int, case: tuple, named_only: bool = False
) -> None:
    """Compare with the reference on one case; name the mistake (``named_only``: fail only when named)."""
    B, M, O, I, demodulate, has_bias = case
    g = seeded(seed)
    x = torch.randn(B, M, I, generator=g)  # (B, M, I)
    W = torch.randn(O, I, generator=g)  # (O, I)
    s = torch.rand(B, I, generator=g) * 1.5 + 0.25  # (B, I), positive like StyleGAN2's styles around 1
    bias = torch.randn(O, generator=g) if has_bias else None  # (O,)
    where = (
        f"x {tuple(x.shape)}, weight {(O, I)}, s {(B, I)}, bias {'(O,)' if has_bias else None}, "
        f"demodulate={demodulate}"
    )
    try:
        out = modulated_linear(x.clone(), W.clone(), s.clone(), bias, demodulate=demodulate)
    except (RuntimeError, IndexError) as e:
        if O != I:
            fail(
                f"with a non-square weight ({where}) your code raised {type(e).__name__}: {e}. It works "
                "only when O == I, the sign that s multiplies the OUTPUT axis of W: s has one entry per "
                "INPUT feature j (W'_ij = s_j W_ij), so scale the inputs, x * s.unsqueeze(1)"
            )
        raise
    expect_tensor(out, (B, M, O), f"modulated_linear with {where}")
    expected = ref_modulated_linear(x, W, s, bias, demodulate=demodulate)  # (B, M, O)
    if torch.allclose(out, expected, atol=1e-5, rtol=1e-4):
        return
    for candidate, mistake in _mod_variants(x, W, s, bias, demodulate):
        if torch.allclose(out, candidate, atol=1e-5, rtol=1e-4):
            fail(f"with {where}: {mistake}")
    if named_only:
        return
    err = (out - expected).abs().max().item()
    fail(
        f"with {where} your output differs from the reference by up to {err:.3g}: out[b, m] should be "
        "W''_b x[b, m] + bias, with W'_bij = s_bj W_ij and (if demodulate) every row i of W'_b divided by "
        "sqrt(sum_j W'_bij^2 + eps)"
    )


@checker("7.1", "modulated_linear")
def check_modulated_linear(modulated_linear: Callable[..., torch.Tensor]) -> None:
    """Check ``modulated_linear(x, weight, s, bias=None, demodulate=True, eps=1e-8) -> (B, M, O)``."""
    # Hand value: W = [[1, 0], [0, 2]], s = [2, 1], x = [3, 4]. W'_ij = s_j W_ij = [[2, 0], [0, 2]], so
    # W' x = [6, 8]; both rows of W' have norm 2, so demodulated: [6, 8] / 2 = [3, 4].
    x = torch.tensor([[[3.0, 4.0]]])  # (1, 1, 2)
    W = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # (2, 2)
    s = torch.tensor([[2.0, 1.0]])  # (1, 2)
    plain = modulated_linear(x, W, s, None, demodulate=False)
    expect_tensor(plain, (1, 1, 2), "modulated_linear on the hand example")
    demod = modulated_linear(x, W, s, None, demodulate=True)
    expect_tensor(demod, (1, 1, 2), "modulated_linear on the hand example")
    if not (
        torch.allclose(plain, torch.tensor([6.0, 8.0])) and torch.allclose(demod, torch.tensor([3.0, 4.0]))
    ):
        for seed, case in enumerate(MOD_CASES):  # a known mistake says more than the hand value alone
            _check_mod_case(modulated_linear, seed, case, named_only=True)
    expect_close(
        plain,
        torch.tensor([[[6.0, 8.0]]]),
        "hand example, demodulate=False: W = [[1, 0], [0, 2]], s = [2, 1], x = [3, 4] gives "
        "W' = [[2, 0], [0, 2]] and W' x = [6, 8]",
    )
    expect_close(
        demod,
        torch.tensor([[[3.0, 4.0]]]),
        "hand example, demodulate=True: the rows of W' = [[2, 0], [0, 2]] both have norm 2, so the "
        "output is [6, 8] / 2 = [3, 4]",
    )
    for seed, case in enumerate(MOD_CASES):
        _check_mod_case(modulated_linear, seed, case)
    # Defining property of demodulation: scaling every style by c > 0 changes nothing.
    g = seeded(20)
    x, W = torch.randn(3, 4, 5, generator=g), torch.randn(6, 5, generator=g)  # (B, M, I), (O, I)
    s = torch.rand(3, 5, generator=g) + 0.5  # (B, I)
    expect_close(
        modulated_linear(x, W, 3.0 * s, None, demodulate=True),
        modulated_linear(x, W, s, None, demodulate=True),
        "with demodulation, scaling s by c = 3 must not change the output (each row of W' is divided by "
        "its own norm, which scales by c too)",
    )
    # Gradients reach every input.
    B, M, O, I = 3, 5, 7, 4
    g = seeded(30)
    leaves = [
        torch.randn(B, M, I, generator=g).requires_grad_(),  # x
        torch.randn(O, I, generator=g).requires_grad_(),  # weight
        (torch.rand(B, I, generator=g) + 0.5).requires_grad_(),  # s
        torch.randn(O, generator=g).requires_grad_(),  # bias
    ]
    r = torch.randn(B, M, O, generator=g)  # a random direction, so no gradient cancels by symmetry
    (modulated_linear(*leaves, demodulate=True) * r).sum().backward()
    for name, t in zip(("x", "weight", "s", "bias"), leaves):
        expect(
            t.grad is not None and bool(torch.isfinite(t.grad).all()) and bool(t.grad.abs().sum() > 0),
            f"no gradient reaches {name}: compute the output from the tensors you are given, without "
            ".detach(), .data, .item() or numpy",
        )
    # The point of the exercise: never build one (B, O, I) weight per batch item.
    with torch.no_grad():
        x, W, s = torch.randn(B, M, I), torch.randn(O, I), torch.rand(B, I) + 0.5
        with _ShapeRecorder() as rec:
            modulated_linear(x, W, s, None, demodulate=True)
    big = sorted((B, O, I))
    expect(
        not any(sorted(d for d in shape if d != 1) == big for shape in rec.shapes),
        f"your values are right, but with B={B}, O={O}, I={I} your code builds a tensor of shape "
        f"(B, O, I) (one modulated weight per batch item), which costs O / M times more memory than the "
        "data. Scale the inputs instead: (x * s.unsqueeze(1)) @ weight.t(), then multiply the output by "
        "the demodulation coefficients rsqrt(s.square() @ weight.square().t() + eps), shape (B, O)",
    )


# ----------------------------------------------------------------------------------------------------
# Exercise 7.2: SineLayer
# ----------------------------------------------------------------------------------------------------


def _linear_of(layer: nn.Module, I: int, O: int) -> nn.Linear:
    lin = getattr(layer, "linear", None)
    expect(
        isinstance(lin, nn.Linear) and tuple(lin.weight.shape) == (O, I) and lin.bias is not None,
        f"SineLayer({I}, {O}) should keep its affine map as self.linear = nn.Linear({I}, {O}) (with bias), "
        f"got {lin!r}",
    )
    return lin


def _init_rules(I: int, omega0: float) -> dict[str, float]:
    """The bounds U(-bound, bound) that a correct or a mistaken SIREN initialisation draws from."""
    return {
        "first": 1.0 / I,
        "hidden": math.sqrt(6.0 / I) / omega0,
        "hidden_no_omega": math.sqrt(6.0 / I),
        "hidden_30": math.sqrt(6.0 / I) / 30.0,
        "default": 1.0 / math.sqrt(I),
    }


def _diagnose_init(W: torch.Tensor, I: int, omega0: float, is_first: bool) -> str | None:
    """None when W ~ U(-bound, bound) with the SIREN bound; else the named mistake."""
    rules = _init_rules(I, omega0)
    bound = rules["first"] if is_first else rules["hidden"]
    top, std = W.abs().max().item(), W.std().item()
    # Uniform on [-b, b]: the largest of ~6000 draws is within 0.1% of b, the std is b / sqrt(3).
    if abs(top - bound) <= 0.03 * bound and abs(std * math.sqrt(3) - bound) <= 0.08 * bound:
        return None
    where = f"SineLayer(in_dim={I}, omega0={omega0:g}, is_first={is_first})"
    rule = (
        f"the first layer draws W ~ U(-1/in_dim, 1/in_dim) = U(-{bound:.3g}, {bound:.3g})"
        if is_first
        else f"a hidden layer draws W ~ U(-sqrt(6/in_dim)/omega0, +sqrt(6/in_dim)/omega0) = "
        f"U(-{bound:.3g}, {bound:.3g})"
    )
    seen = f"your weights reach {top:.3g} with std {std:.3g}"

    def near(name: str) -> bool:
        return abs(top - rules[name]) <= 0.03 * rules[name]

    if abs(std * math.sqrt(3) - bound) <= 0.08 * bound:
        return (
            f"{where}: {seen}: the spread is right but the draw is not uniform on "
            f"[-{bound:.3g}, {bound:.3g}] "
            "(a normal draw?): use nn.init.uniform_(self.linear.weight, -bound, bound)"
        )
    if near("default"):
        return (
            f"{where}: {seen}, which is PyTorch's default nn.Linear init U(-1/sqrt(in_dim), 1/sqrt(in_dim)): "
            f"reset_parameters must overwrite it; {rule}"
        )
    if is_first and near("hidden"):
        return (
            f"{where}: {seen}: the first layer uses the hidden-layer rule sqrt(6/in_dim)/omega0. The first "
            f"layer sees raw coordinates in [-1, 1], not sine outputs, so {rule} (check is_first)"
        )
    if not is_first and near("first"):
        return (
            f"{where}: {seen}: a hidden layer uses the first-layer rule 1/in_dim (is_first ignored?); {rule}"
        )
    if not is_first and near("hidden_no_omega"):
        return (
            f"{where}: {seen}: the hidden-layer bound is missing the 1/omega0. The sine multiplies W x by "
            f"omega0, so W must be omega0 times smaller for omega0 * W x to stay ~N(0, 1); {rule}"
        )
    if not is_first and omega0 != 30.0 and near("hidden_30"):
        return f"{where}: {seen}: the bound uses omega0 = 30 instead of self.omega0 = {omega0:g}; {rule}"
    if abs(top - bound) <= 0.03 * bound or top < bound:
        return (
            f"{where}: {seen}: not uniform on [-{bound:.3g}, {bound:.3g}] (a uniform draw has std "
            f"bound/sqrt(3) = {bound / math.sqrt(3):.3g}): use "
            "nn.init.uniform_(self.linear.weight, -bound, bound)"
        )
    return f"{where}: {seen}; {rule}"


def _check_sine_init(SineLayer: type[nn.Module]) -> None:
    I, O = 64, 96  # 6144 weights; the rules' bounds 1/64, sqrt(6/64)/omega0 and 1/8 are far apart
    for seed, (omega0, is_first) in enumerate(((30.0, True), (30.0, False), (10.0, False), (5.0, True))):
        layer = build_seeded(SineLayer, seed, I, O, omega0=omega0, is_first=is_first)
        lin = _linear_of(layer, I, O)
        mistake = _diagnose_init(lin.weight.detach(), I, omega0, is_first)
        if mistake is not None:
            fail(mistake)
        b, b_max = lin.bias.detach(), 1.0 / math.sqrt(I)
        expect(
            bool(b.abs().max() <= b_max * (1 + 1e-6)),
            f"the bias of SineLayer({I}, {O}) reaches {b.abs().max().item():.3g}; SIREN keeps PyTorch's "
            f"default U(-1/sqrt(in_dim), 1/sqrt(in_dim)) = U(-{b_max:.3g}, {b_max:.3g})",
        )
        # The rule lives in reset_parameters: calling it again must redraw the weights.
        reset = getattr(layer, "reset_parameters", None)
        expect(
            callable(reset),
            "SineLayer needs a reset_parameters() method that draws the SIREN initialisation "
            "(and __init__ should call it)",
        )
        with torch.no_grad():
            lin.weight.zero_()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(100 + seed)
            reset()
        expect(
            _diagnose_init(lin.weight.detach(), I, omega0, is_first) is None,
            "after self.linear.weight.zero_(), calling reset_parameters() did not redraw the SIREN "
            "initialisation: put the nn.init.uniform_ call inside reset_parameters, and call "
            "self.reset_parameters() at the end of __init__",
        )


def _diagnose_sine_forward(
    out: torch.Tensor, x: torch.Tensor, lin: nn.Linear, omega0: float, where: str
) -> str | None:
    with torch.no_grad():
        a = x @ lin.weight.t()  # (..., O): W x, without the bias
        b = lin.bias
        candidates = [
            (omega0 * torch.sin(a + b), "omega0 is applied outside the sine (omega0 * sin(W x + b))"),
            (torch.sin(a + b), "omega0 is missing: the layer computes sin(W x + b)"),
            (
                torch.sin(omega0 * a + b),
                "omega0 multiplies W x but not the bias: use sin(omega0 * (W x + b))",
            ),
            (omega0 * (a + b), "the sine is missing: the layer computes omega0 * (W x + b)"),
        ]
        if omega0 != 30.0:
            candidates.append(
                (torch.sin(30.0 * (a + b)), "omega0 is hard-coded to 30 instead of self.omega0")
            )
    for candidate, mistake in candidates:
        if torch.allclose(out, candidate, atol=1e-5, rtol=1e-4):
            return (
                f"{where}: {mistake}. A SIREN layer is sin(omega0 * (W x + b)) = "
                "torch.sin(omega0 * self.linear(x))"
            )
    return None


@checker("7.2", "SineLayer")
def check_sine_layer(SineLayer: type[nn.Module]) -> None:
    """Check a learner's ``SineLayer(in_dim, out_dim, omega0=30.0, is_first=False)`` class."""
    _check_sine_init(SineLayer)
    # (leading dims, I, O, omega0, is_first): odd batches, an extra axis, other omega0.
    cases = [
        ((5,), 2, 8, 30.0, True),
        ((3, 4), 8, 6, 30.0, False),
        ((7,), 5, 3, 10.0, False),
        ((1,), 3, 3, 1.0, True),
    ]
    for seed, (lead, I, O, omega0, is_first) in enumerate(cases):
        layer = build_seeded(SineLayer, seed, I, O, omega0=omega0, is_first=is_first)
        lin = _linear_of(layer, I, O)
        ref = RefSineLayer(I, O, omega0=omega0, is_first=is_first)
        with torch.no_grad():
            ref.linear.weight.copy_(lin.weight)
            ref.linear.bias.copy_(lin.bias)
        x = torch.rand(*lead, I, generator=seeded(10 + seed)) * 2 - 1  # (..., I), coordinates in [-1, 1]
        out = layer(x.clone())
        where = f"SineLayer({I}, {O}, omega0={omega0:g}, is_first={is_first}) on x of shape {tuple(x.shape)}"
        expect_tensor(out, (*lead, O), where)
        expected = ref(x)  # (..., O)
        if not torch.allclose(out, expected, atol=1e-5, rtol=1e-4):
            mistake = _diagnose_sine_forward(out.detach(), x, lin, omega0, where)
            if mistake is not None:
                fail(mistake)
            expect_close(out, expected, f"{where}: the output should be sin(omega0 * (W x + b))")
    # Every parameter learns.
    layer = build_seeded(SineLayer, 7, 4, 5, omega0=30.0, is_first=False)
    x = torch.rand(6, 4, generator=seeded(40)) * 2 - 1  # (6, I)
    (layer(x) * torch.randn(6, 5, generator=seeded(41))).sum().backward()
    expect_grads_reach_every_parameter(
        layer,
        lambda name: (
            f"no gradient reaches the parameter {name!r}: compute the output from self.linear(x) in "
            "forward (no .detach(), no .data)"
        ),
    )


__all__ = ["check_modulated_linear", "check_sine_layer"]
