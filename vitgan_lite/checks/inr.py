"""Checkers for lesson 07 (implicit neural representation): Exercise 7.1 ``modulated_linear`` and
Exercise 7.2 ``SineLayer``.

``check_modulated_linear`` first probes shapes (a non-square weight, B != M, so a misplaced axis crashes
here and is named from smaller probes), then compares the learner's function with
``vitgan_lite.inr.modulated_linear`` on a hand value and on square and non-square weights, with and
without demodulation and bias; it names the usual mistakes (s on the output axis, a missing transpose,
demodulation over columns, without s, with s or W not squared, missing or applied when
``demodulate=False``, the bias before demodulation), then checks the numerical guard (an all-zero row,
the ``eps`` argument), float64 inputs, the gradients against the reference's, and that no (B, O, I)
weight is allocated.

``check_sine_layer`` builds the learner's ``SineLayer`` class, measures the initialisation of its
``linear`` (SIREN: first layer U(-1/I, 1/I), others U(+-sqrt(6/I)/omega0), PyTorch's default bias),
naming a wrong bound by the rule it matches, copies its weights into the reference
``vitgan_lite.inr.SineLayer`` and compares the forward passes (float32 and float64), naming an omega0
outside the sine or missing, and the wrong initialisation rule.

Shape legend: B batch, M points per batch item, I / O input / output features.
"""

from __future__ import annotations

import contextlib
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
    stage,
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
PROBE = (3, 5, 6, 4)  # (B, M, O, I): all different, so a misplaced axis cannot broadcast by luck

MOD_HINTS = (
    "Both steps are diagonal scalings, so the (B, O, I) weights W'_b never need to exist. Modulation "
    "W'_ij = s_j W_ij scales the INPUT features: multiply x (B, M, I) by s (B, I) reshaped to (B, 1, I) so "
    "it is shared by the M points, then one matmul with weight.t() (I, O). Demodulation divides output i "
    "by the norm of row i of W', sqrt(sum_j s_j^2 W_ij^2 + eps): a sum over the input axis j, i.e. the "
    "product of the squares (B, I) @ (I, O), reshaped to (B, 1, O). Add the bias last, and only when it "
    "is not None; use the eps argument (under the square root), not a constant.",
    "out = (x * s.unsqueeze(...)) @ weight....          # (B, M, O)\n"
    "if demodulate:\n"
    "    d = torch.rsqrt(... @ ... + eps)                # (B, O): sum_j s_j^2 W_ij^2\n"
    "    out = out * d.unsqueeze(...)                    # (B, 1, O) broadcast over the M points\n"
    "if bias is not None:\n"
    "    out = ...\n"
    "return out",
)

_S_ON_OUTPUT_DEMOD = (
    "your output does not depend on s: either s is not used, or it scales the OUTPUT axis of W "
    "(W'_ij = s_i W_ij), where the row demodulation cancels it. s scales the input axis "
    "(W'_ij = s_j W_ij): multiply x by s before the matmul, x * s.unsqueeze(1)"
)
_S_ON_OUTPUT = (
    "s scales the OUTPUT axis of W (W'_ij = s_i W_ij) instead of the input axis (W'_ij = s_j W_ij): "
    "multiply x by s before the matmul, x * s.unsqueeze(1), not the result after it"
)
_NO_TRANSPOSE = (
    "the weight is not transposed: weight is stored (O, I) as in nn.Linear, so the matmul is "
    "(x * s.unsqueeze(1)) @ weight.t() (and the demodulation sum s.square() @ weight.square().t())"
)
_DEMOD_NO_TRANSPOSE = (
    "the demodulation sum uses weight.square() without .t(): d_bi sums s_bj^2 W_ij^2 over the input "
    "axis j, which is s.square() @ weight.square().t(), shape (B, O)"
)


def _mod_variants(
    x: torch.Tensor,
    W: torch.Tensor,
    s: torch.Tensor,
    bias: torch.Tensor | None,
    demodulate: bool,
    eps: float = 1e-8,
) -> list[tuple[torch.Tensor, str]]:
    """What the known mistakes output for these inputs, each with the sentence that names it."""
    B, O, I = s.shape[0], W.shape[0], W.shape[1]
    b = 0.0 if bias is None else bias

    def run(w: torch.Tensor, demod_dim: int | None, bias_first: bool = False) -> torch.Tensor:
        """The explicit form: w (B, O, I) -> out (B, M, O), optionally demodulated over dim ``demod_dim``."""
        if demod_dim is not None:
            if bias_first:
                d = torch.rsqrt(w.square().sum(dim=2) + eps)  # (B, O)
                return (torch.einsum("bmi,boi->bmo", x, w) + b) * d.unsqueeze(1)  # (B, M, O)
            w = w * torch.rsqrt(w.square().sum(dim=demod_dim, keepdim=True) + eps)  # (B, O, I)
        return torch.einsum("bmi,boi->bmo", x, w) + b  # (B, M, O)

    mod = (x * s.unsqueeze(1)) @ W.t()  # (B, M, O): the right modulation
    q = s.square() @ W.square().t()  # (B, O): sum_j s_j^2 W_ij^2, the squared row norms of W'

    def demod_by(d: torch.Tensor) -> torch.Tensor:
        return mod * d.unsqueeze(1) + b  # (B, M, O)

    w_in = W.unsqueeze(0) * s.unsqueeze(1)  # (B, O, I): s_j on the input axis j
    demod = 2 if demodulate else None
    variants: list[tuple[torch.Tensor, str]] = []
    if O == I:  # these mistakes only run when W is square
        w_out = W.unsqueeze(0) * s.unsqueeze(2)  # (B, O, I): s_i on the output axis i (wrong)
        w_t = W.t().unsqueeze(0) * s.unsqueeze(1)  # (B, O, I): W.T used as (O, I), s on its input axis
        variants += [
            (run(w_out, demod), _S_ON_OUTPUT_DEMOD if demodulate else _S_ON_OUTPUT),
            (
                run(w_out, 1 if demodulate else None),
                "s scales the OUTPUT axis of W and the demodulation normalises columns: s_j multiplies "
                "the input axis j (x * s.unsqueeze(1)), and each ROW i of W' gets unit norm",
            ),
            (run(w_t, demod), _NO_TRANSPOSE),
        ]
        if demodulate:
            variants += [
                (((x * s.unsqueeze(1)) @ W) * torch.rsqrt(q + eps).unsqueeze(1) + b, _NO_TRANSPOSE),
                (demod_by(torch.rsqrt(s.square() @ W.square() + eps)), _DEMOD_NO_TRANSPOSE),
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
            (
                demod_by(torch.rsqrt(W.square().sum(1) + eps).expand(B, O)),
                "the demodulation ignores s: it must normalise the rows of the MODULATED weight, "
                "sqrt(sum_j (s_j W_ij)^2 + eps), i.e. s.square() @ weight.square().t(), not of W alone",
            ),
            (
                demod_by(torch.rsqrt(s @ W.square().t() + eps)),
                "s is not squared in the demodulation: the row norm of W' is sqrt(sum_j s_j^2 W_ij^2), "
                "so use s.square() @ weight.square().t()",
            ),
            (
                demod_by(torch.rsqrt(s.square() @ W.t() + eps)),
                "the weight is not squared in the demodulation (its sum can be negative, hence NaN): "
                "use s.square() @ weight.square().t()",
            ),
            (
                demod_by(torch.sqrt(q + eps)),
                "the output is multiplied by the row norm instead of divided by it: use torch.rsqrt "
                "(1 / sqrt), not torch.sqrt",
            ),
            (
                demod_by(1.0 / (q + eps)),
                "the output is divided by the SQUARED row norm: take the square root, "
                "torch.rsqrt(s.square() @ weight.square().t() + eps)",
            ),
            (
                demod_by(torch.rsqrt(q / I + eps)),
                "the demodulation takes the MEAN of s_j^2 W_ij^2 over j instead of the sum: each row "
                "of W' gets norm sqrt(I) instead of 1; use a plain sum (the matmul already sums)",
            ),
            (
                demod_by(torch.rsqrt(q.sum(1, keepdim=True) + eps).expand(B, O)),
                "the demodulation divides by the norm of the whole W'_b instead of each ROW's own norm: "
                "keep one coefficient per output i, d (B, O), without summing over i",
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


def _named_mistake(
    out: torch.Tensor,
    x: torch.Tensor,
    W: torch.Tensor,
    s: torch.Tensor,
    bias: torch.Tensor | None,
    demodulate: bool,
) -> str | None:
    """The sentence of the known mistake ``out`` matches (NaN where the mistake gives NaN), or None."""
    with torch.no_grad():
        for candidate, mistake in _mod_variants(x, W, s, bias, demodulate):
            if candidate.shape == out.shape and torch.allclose(
                out, candidate.to(out.dtype), atol=1e-5, rtol=1e-4, equal_nan=True
            ):
                return mistake
    return None


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


def _mod_inputs(
    B: int, M: int, O: int, I: int, seed: int, bias: bool = True, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    g = seeded(seed)
    x = torch.randn(B, M, I, generator=g, dtype=dtype)  # (B, M, I)
    W = torch.randn(O, I, generator=g, dtype=dtype)  # (O, I)
    s = torch.rand(B, I, generator=g, dtype=dtype) * 1.5 + 0.25  # (B, I), positive like styles around 1
    b = torch.randn(O, generator=g, dtype=dtype) if bias else None  # (O,)
    return x, W, s, b


def _diagnose_mod_crash(modulated_linear: Callable[..., torch.Tensor], e: Exception, size: tuple) -> None:
    """The learner's function raised on sizes ``size`` = (B, M, O, I): find out why from smaller probes,
    and fail with the mistake when one is recognised (else return, and the crash is reported as such)."""
    if isinstance(e, NotImplementedError):
        return  # the stub: not a mistake, the checker's wrapper says "not implemented yet"
    B, M, O, I = size
    raised = f"{type(e).__name__}: {e}"
    if "Boolean value of Tensor" in raised:
        fail(
            f"your code raised {raised[:120]}: `if bias:` asks a tensor of {O} numbers whether it is "
            "true. Test the argument itself: `if bias is not None:`"
        )

    def attempt(b: int, m: int, o: int, i: int, demodulate: bool = True) -> tuple[torch.Tensor, tuple] | None:
        inputs = _mod_inputs(b, m, o, i, seed=77)
        try:
            with torch.no_grad():
                out = modulated_linear(*(t.clone() for t in inputs), demodulate=demodulate)
        except Exception:  # noqa: BLE001  a probe: only a run that works tells something
            return None
        return (out, inputs) if isinstance(out, torch.Tensor) else None

    one_point = attempt(B, 1, O, I)  # M = 1 broadcasts against any size
    if one_point is not None:
        shape = tuple(one_point[0].shape)
        if shape == (B, I, O):
            fail(
                f"with x {(B, M, I)} your code raised {raised[:120]}; with one point (M = 1) it returns "
                f"shape {shape} = (B, I, O): s is reshaped to (B, I, 1) (s.unsqueeze(2) or -1). It must line "
                "up with x's features, (B, 1, I): x * s.unsqueeze(1)"
            )
        if shape == (B, O, O):
            fail(
                f"with x {(B, M, I)} your code raised {raised[:120]}; with one point (M = 1) it returns "
                f"shape {shape} = (B, O, O): the demodulation coefficients d (B, O) are reshaped to "
                "(B, O, 1). They scale the outputs of every point: out * d.unsqueeze(1), d as (B, 1, O)"
            )
        if shape == (B, B, O):
            fail(
                f"with x {(B, M, I)} your code raised {raised[:120]}; with one point it returns shape "
                f"{shape} = (B, B, O): x * s multiplies (B, M, I) by (B, I), which lines s's batch axis up "
                "with the points axis M. Reshape s to (B, 1, I): x * s.unsqueeze(1)"
            )
    same_bm = attempt(B, B, O, I)  # M == B: s (B, I) then broadcasts against x (B, M, I) by luck
    if same_bm is not None and tuple(same_bm[0].shape) == (B, B, O):
        fail(
            f"with x {(B, M, I)} your code raised {raised[:120]}, but it runs when M == B: x * s multiplies "
            "(B, M, I) by (B, I), which lines s's batch axis up with the points axis M. Reshape s to "
            "(B, 1, I): x * s.unsqueeze(1)"
        )
    mistake, runs = None, False
    for demodulate in (False, True):  # O == I; without demodulation first, which cannot hide s
        square = attempt(B, M, I, I, demodulate)
        if square is not None and tuple(square[0].shape) == (B, M, I):
            runs = True
            mistake = mistake or _named_mistake(square[0], *square[1], demodulate=demodulate)
    if runs:
        where = f"with a non-square weight (O={O}, I={I}) your code raised {raised[:120]}"
        if mistake:
            fail(f"{where}; it runs only when O == I, and there {mistake}")
        fail(
            f"{where}. It works only when O == I: either the weight is not transposed (weight is (O, I): "
            "use weight.t()) or s multiplies the OUTPUT axis of W (s has one entry per INPUT feature j: "
            "x * s.unsqueeze(1))"
        )


def _call(
    modulated_linear: Callable[..., torch.Tensor],
    inputs: tuple,
    demodulate: bool,
    **kwargs: float,
) -> torch.Tensor:
    """The learner's output on copies of ``inputs``; a crash is diagnosed from smaller probes first."""
    x, W, s, b = inputs
    try:
        bias = None if b is None else b.clone()
        return modulated_linear(x.clone(), W.clone(), s.clone(), bias, demodulate=demodulate, **kwargs)
    except (RuntimeError, IndexError, TypeError, ValueError) as e:
        _diagnose_mod_crash(modulated_linear, e, (x.shape[0], x.shape[1], W.shape[0], W.shape[1]))
        raise


def _check_mod_probe(modulated_linear: Callable[..., torch.Tensor]) -> None:
    """Shapes first, on sizes that are all different, and the inputs left as they were."""
    B, M, O, I = PROBE
    x, W, s, b = _mod_inputs(B, M, O, I, seed=5)
    copies = [t.clone() for t in (x, W, s, b)]
    where = f"modulated_linear on x {(B, M, I)}, weight {(O, I)}, s {(B, I)}, bias ({O},)"
    try:
        with stage(f"the shapes, {where}"):
            out = modulated_linear(x, W, s, b, demodulate=True)
    except (RuntimeError, IndexError, TypeError, ValueError) as e:
        _diagnose_mod_crash(modulated_linear, e, PROBE)
        raise
    for name, before, after in zip(("x", "weight", "s", "bias"), copies, (x, W, s, b)):
        expect(
            torch.equal(before, after),
            f"{where}: your function changed its input {name} in place (an in-place op such as "
            f"{name}.mul_(...) or {name} *= ...). The caller still needs it: compute new tensors instead, "
            "e.g. x * s.unsqueeze(1)",
        )
    expect(isinstance(out, torch.Tensor), f"{where} should return a torch.Tensor, got {type(out).__name__}")
    shape = tuple(out.shape)
    if shape != (B, M, O):
        known = {
            (B, M, I): "(B, M, I): the matmul with weight.t() is missing, or the weight is used as (I, I)",
            (B, O, M): "(B, O, M): the output is transposed; keep the points on axis 1, (B, M, O)",
            (M, B, O): "(M, B, O): the batch and points axes are swapped",
        }
        fail(
            f"{where} should have shape (B, M, O) = {(B, M, O)}, got {shape}"
            + (f" = {known[shape]}" if shape in known else "")
        )


class _Unnamed(Exception):
    """A case is wrong, and not by a mistake we know (``named_only``): the hand example will say more."""


def _check_mod_case(
    modulated_linear: Callable[..., torch.Tensor], seed: int, case: tuple, named_only: bool = False
) -> None:
    """Compare with the reference on one case; name the mistake (``named_only``: fail only when named)."""
    B, M, O, I, demodulate, has_bias = case
    inputs = _mod_inputs(B, M, O, I, seed, bias=has_bias)
    x, W, s, bias = inputs
    where = (
        f"x {tuple(x.shape)}, weight {(O, I)}, s {(B, I)}, bias {'(O,)' if has_bias else None}, "
        f"demodulate={demodulate}"
    )
    with stage(f"modulated_linear with {where}"):
        out = _call(modulated_linear, inputs, demodulate)
    expect(isinstance(out, torch.Tensor), f"modulated_linear should return a torch.Tensor, got {type(out)}")
    expect(
        tuple(out.shape) == (B, M, O),
        f"modulated_linear with {where} should have shape {(B, M, O)}, got {tuple(out.shape)}",
    )
    out = out.detach()
    expected = ref_modulated_linear(x, W, s, bias, demodulate=demodulate)  # (B, M, O)
    if torch.allclose(out, expected, atol=1e-5, rtol=1e-4):
        return
    mistake = _named_mistake(out, x, W, s, bias, demodulate)
    if mistake is not None:
        fail(f"with {where}: {mistake}")
    if named_only:
        raise _Unnamed
    expect_tensor(out, (B, M, O), f"modulated_linear with {where}")
    err = (out - expected).abs().max().item()
    fail(
        f"with {where} your output differs from the reference by up to {err:.3g}: out[b, m] should be "
        "W''_b x[b, m] + bias, with W'_bij = s_bj W_ij and (if demodulate) every row i of W'_b divided by "
        "sqrt(sum_j W'_bij^2 + eps)"
    )


def _check_mod_guard(modulated_linear: Callable[..., torch.Tensor]) -> None:
    """An all-zero row of W' must give 0 (+ bias), not 0/0 = NaN; and the ``eps`` argument is used."""
    x, W, s, b = _mod_inputs(2, 3, 4, 5, seed=40)
    W[1] = 0.0  # an all-zero row: its norm is 0, so eps is all that keeps 0 / 0 away
    where = "with an all-zero row in weight (row 1 of (4, 5)), demodulate=True"
    with stage(f"modulated_linear {where}"):
        out = _call(modulated_linear, (x, W, s, b), True)
    expect(
        bool(torch.isfinite(out).all()),
        f"{where}, your output has NaN or inf: the row norm is 0 and 0 / 0 is NaN. The eps under the "
        "square root is the guard: torch.rsqrt(s.square() @ weight.square().t() + eps)",
    )
    expect_close(
        out.detach(),
        ref_modulated_linear(x, W, s, b),
        f"{where}: an all-zero row must output just the bias (0 * rsqrt(eps) = 0)",
    )
    # eps = 0.25: row 0 of W' has squared norm 4, row 1 only 0.01, below eps.
    x = torch.tensor([[[3.0, 4.0]]])  # (1, 1, 2)
    W = torch.tensor([[1.0, 0.0], [0.0, 0.1]])  # (2, 2)
    s = torch.tensor([[2.0, 1.0]])  # (1, 2): W' = [[2, 0], [0, 0.1]], W' x = [6, 0.4]
    eps = 0.25
    with stage(f"modulated_linear with eps={eps}"):
        out = _call(modulated_linear, (x, W, s, None), True, eps=eps)
    raw, q = torch.tensor([6.0, 0.4]), torch.tensor([4.0, 0.01])  # W' x and the squared row norms
    accepted = [  # eps under the root (the formula), or the usual guards that agree with it at eps=1e-8
        raw * torch.rsqrt(q + eps),
        raw / (q.sqrt() + eps),
        raw / q.sqrt().clamp_min(eps),
        raw * torch.rsqrt(q.clamp_min(eps)),
    ]
    if any(torch.allclose(out.detach().reshape(-1), a, atol=1e-4, rtol=1e-4) for a in accepted):
        return
    if torch.allclose(out.detach().reshape(-1), raw * torch.rsqrt(q), atol=1e-4, rtol=1e-4):
        fail(
            f"with eps={eps} your output is the one for eps ~ 0: the eps argument is ignored (a constant "
            "such as 1e-8 written in its place?). Use the argument: torch.rsqrt(... + eps)"
        )
    fail(
        f"with eps={eps} on W' = [[2, 0], [0, 0.1]], W' x = [6, 0.4], your output is "
        f"{[round(v, 4) for v in out.detach().reshape(-1).tolist()]} instead of "
        f"{[round(v, 4) for v in accepted[0].tolist()]}: eps goes under the square root, "
        "rsqrt(sum_j s_j^2 W_ij^2 + eps)"
    )


def _check_mod_float64(modulated_linear: Callable[..., torch.Tensor]) -> None:
    inputs = _mod_inputs(2, 3, 5, 4, seed=50, dtype=torch.float64)
    where = "with float64 x, weight, s and bias"
    try:
        with stage(f"modulated_linear {where}"):
            out = modulated_linear(*(t.clone() for t in inputs), demodulate=True)
    except RuntimeError as e:
        if "dtype" in str(e) or "scalar type" in str(e):
            fail(
                f"{where} your code raised {type(e).__name__}: {str(e)[:120]}. Some tensor is float32: "
                "do not cast (.float()) and create any new tensor with the inputs' dtype, so that the "
                "function works in float64 like the reference"
            )
        raise
    expect(
        isinstance(out, torch.Tensor) and out.dtype == torch.float64,
        f"{where} your output is {getattr(out, 'dtype', type(out))}: keep the inputs' dtype (no .float(), "
        "no new tensors in the default float32)",
    )
    expect_close(
        out.detach(), ref_modulated_linear(*inputs), f"{where} your output differs from the reference"
    )


def _check_mod_grads(modulated_linear: Callable[..., torch.Tensor]) -> None:
    """Gradients reach every input and equal the reference's (the demodulation is differentiated too)."""
    B, M, O, I = 3, 5, 7, 4
    x, W, s, b = _mod_inputs(B, M, O, I, seed=30)
    r = torch.randn(B, M, O, generator=seeded(31))  # a random direction, so no gradient cancels by symmetry
    names = ("x", "weight", "s", "bias")

    def grads(fn: Callable[..., torch.Tensor], **kw: bool) -> list[torch.Tensor | None]:
        leaves = [t.clone().requires_grad_() for t in (x, W, s, b)]
        (fn(*leaves, demodulate=True, **kw) * r).sum().backward()
        return [t.grad for t in leaves]

    with stage("the gradients of modulated_linear"):
        got = grads(modulated_linear)
    for name, g in zip(names, got):
        expect(
            g is not None and bool(torch.isfinite(g).all()) and bool(g.abs().sum() > 0),
            f"no gradient reaches {name}: compute the output from the tensors you are given, without "
            ".detach(), .data, .item(), numpy or torch.no_grad()",
        )
    want = grads(ref_modulated_linear)

    def detached_demod(x: torch.Tensor, weight: torch.Tensor, s: torch.Tensor, bias: torch.Tensor, **_: bool):
        d = torch.rsqrt(s.square() @ weight.square().t() + 1e-8).detach()  # (B, O)
        return ((x * s.unsqueeze(1)) @ weight.t()) * d.unsqueeze(1) + bias

    for name, g, w in zip(names, got, want):
        if not torch.allclose(g, w, atol=1e-4, rtol=1e-3):
            if all(torch.allclose(a, c, atol=1e-4, rtol=1e-3) for a, c in zip(got, grads(detached_demod))):
                fail(
                    "the values are right but the gradients are not: the demodulation coefficients are cut "
                    "from the graph (computed under torch.no_grad() or .detach()ed). Demodulation is part of "
                    "the layer: weight and s must get the gradient through rsqrt(...) as well"
                )
            err = (g - w).abs().max().item()
            fail(
                f"the values are right but the gradient of {name} differs from the reference's by up to "
                f"{err:.3g}: some part of the computation is cut from the graph (.detach(), .data, "
                "torch.no_grad()) or replaced by a constant"
            )


@checker("7.1", "modulated_linear", hints=MOD_HINTS, reference="vitgan_lite.inr:modulated_linear")
def check_modulated_linear(modulated_linear: Callable[..., torch.Tensor]) -> None:
    """Check ``modulated_linear(x, weight, s, bias=None, demodulate=True, eps=1e-8) -> (B, M, O)``."""
    _check_mod_probe(modulated_linear)
    # Hand value: W = [[1, 0], [0, 2]], s = [2, 1], x = [3, 4]. W'_ij = s_j W_ij = [[2, 0], [0, 2]], so
    # W' x = [6, 8]; both rows of W' have norm 2, so demodulated: [6, 8] / 2 = [3, 4].
    x = torch.tensor([[[3.0, 4.0]]])  # (1, 1, 2)
    W = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # (2, 2)
    s = torch.tensor([[2.0, 1.0]])  # (1, 2)
    with stage("the hand example"):
        plain = modulated_linear(x.clone(), W.clone(), s.clone(), None, demodulate=False)
        expect_tensor(plain, (1, 1, 2), "modulated_linear on the hand example")
        demod = modulated_linear(x.clone(), W.clone(), s.clone(), None, demodulate=True)
        expect_tensor(demod, (1, 1, 2), "modulated_linear on the hand example")
    if not (
        torch.allclose(plain, torch.tensor([6.0, 8.0])) and torch.allclose(demod, torch.tensor([3.0, 4.0]))
    ):
        with contextlib.suppress(_Unnamed):  # a known mistake on the first wrong case says more than the
            for seed, case in enumerate(MOD_CASES):  # hand value alone
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
    _check_mod_guard(modulated_linear)
    # Defining property of demodulation: scaling every style by c > 0 changes nothing.
    x, W, s, _ = _mod_inputs(3, 4, 6, 5, seed=20, bias=False)
    expect_close(
        modulated_linear(x, W, 3.0 * s, None, demodulate=True),
        modulated_linear(x, W, s, None, demodulate=True),
        "with demodulation, scaling s by c = 3 must not change the output (each row of W' is divided by "
        "its own norm, which scales by c too)",
    )
    _check_mod_float64(modulated_linear)
    _check_mod_grads(modulated_linear)
    # The point of the exercise: never build one (B, O, I) weight per batch item.
    B, M, O, I = 3, 5, 7, 4
    with torch.no_grad():
        x, W, s, _ = _mod_inputs(B, M, O, I, seed=60, bias=False)
        with _ShapeRecorder() as rec:
            modulated_linear(x, W, s, None, demodulate=True)
    big = sorted((B, O, I))
    expect(
        not any(sorted(d for d in shape if d != 1) == big for shape in rec.shapes),
        f"your values are right, but with B={B}, O={O}, I={I} your code allocates a tensor of shape "
        "(B, O, I) (one modulated weight per batch item, for the output or for the demodulation), which "
        "costs O / M times more memory than the data. Scale the inputs instead, (x * s.unsqueeze(1)) @ "
        "weight.t(), and compute the demodulation coefficients without W': rsqrt(s.square() @ "
        "weight.square().t() + eps), shape (B, O)",
    )


# ----------------------------------------------------------------------------------------------------
# Exercise 7.2: SineLayer
# ----------------------------------------------------------------------------------------------------

SINE_HINTS = (
    "Two separate things. reset_parameters draws self.linear.weight from a UNIFORM distribution "
    "U(-bound, bound) with nn.init.uniform_, where the bound depends on is_first: 1/in_dim for the first "
    "layer (it sees raw coordinates), sqrt(6/in_dim)/omega0 for every other layer (the sine multiplies W x "
    "by omega0, so W must be omega0 times smaller); the bias keeps nn.Linear's default. forward applies "
    "the sine to omega0 times the WHOLE affine map, bias included, using self.omega0.",
    "def reset_parameters(self):\n"
    "    bound = ... if self.is_first else math.sqrt(...) / ...\n"
    "    nn.init.uniform_(self.linear.weight, ..., ...)\n"
    "\n"
    "def forward(self, x):\n"
    "    return torch.sin(... * self.linear(...))",
)

INIT_IN, INIT_OUT = 64, 80  # 5120 weights; every rule below gives a bound at least 10% from the others
# (omega0, is_first) of the initialisation checks
INIT_CASES = ((30.0, True), (30.0, False), (10.0, False), (5.0, True))


def _linear_of(layer: nn.Module, I: int, O: int) -> nn.Linear:
    lin = getattr(layer, "linear", None)
    expect(
        isinstance(lin, nn.Linear) and tuple(lin.weight.shape) == (O, I) and lin.bias is not None,
        f"SineLayer({I}, {O}) should keep its affine map as self.linear = nn.Linear({I}, {O}) (with bias), "
        f"got {lin!r}",
    )
    return lin


def _wrong_bounds(I: int, O: int, omega0: float, is_first: bool) -> list[tuple[float, str]]:
    """Bounds U(-b, b) of the usual wrong rules, each with the sentence that names it."""
    hidden, first = math.sqrt(6.0 / I) / omega0, 1.0 / I
    rules = [
        (
            1.0 / math.sqrt(I),
            "which is PyTorch's default nn.Linear init U(-1/sqrt(in_dim), 1/sqrt(in_dim)): reset_parameters "
            "must overwrite it",
        ),
        (
            math.sqrt(6.0 / (I + O)),
            "the Xavier/Glorot bound sqrt(6/(in_dim + out_dim)) (nn.init.xavier_uniform_): SIREN has "
            "its own rule",
        ),
        (
            math.sqrt(6.0 / (I + O)) / omega0,
            "sqrt(6/(in_dim + out_dim))/omega0: the SIREN bound uses in_dim only (fan_in), not "
            "in_dim + out_dim",
        ),
    ]
    if is_first:
        rules += [
            (
                hidden,
                "the first layer uses the hidden-layer rule sqrt(6/in_dim)/omega0. The first layer sees raw "
                "coordinates in [-1, 1], not sine outputs (check is_first)",
            ),
            (
                first / omega0,
                "the first-layer bound is divided by omega0: the first layer's rule is just 1/in_dim",
            ),
            (1.0 / O, "the first-layer bound uses out_dim: it is 1/in_dim (the fan-in)"),
            (
                1.0 / math.sqrt(I) / omega0,
                "the bound is 1/sqrt(in_dim)/omega0: the first layer's rule is 1/in_dim",
            ),
        ]
    else:
        rules += [
            (first, "a hidden layer uses the first-layer rule 1/in_dim (is_first ignored?)"),
            (
                math.sqrt(6.0 / I),
                "the hidden-layer bound is missing the 1/omega0. The sine multiplies W x by omega0, so W "
                "must be omega0 times smaller for omega0 * W x to stay ~N(0, 1)",
            ),
            (
                math.sqrt(6.0 / I) * omega0,
                "the hidden-layer bound is multiplied by omega0 instead of divided by it",
            ),
            (
                math.sqrt(6.0 / O) / omega0,
                "the bound uses out_dim (fan_out): SIREN's rule uses in_dim (fan_in)",
            ),
            (
                6.0 / I / omega0,
                "the square root is missing: the bound is sqrt(6/in_dim)/omega0, not 6/in_dim/omega0",
            ),
            (
                math.sqrt(3.0 / I) / omega0,
                "the bound uses sqrt(3/in_dim) instead of sqrt(6/in_dim): SIREN's hidden rule is "
                "sqrt(6/in_dim)/omega0",
            ),
        ]
        if omega0 != 30.0:
            rules.append(
                (hidden * omega0 / 30.0, f"the bound uses omega0 = 30 instead of self.omega0 = {omega0:g}")
            )
    return rules


def _diagnose_init(W: torch.Tensor, I: int, O: int, omega0: float, is_first: bool) -> str | None:
    """None when W ~ U(-bound, bound) with the SIREN bound; else the named mistake, one property at a time:
    symmetric around 0, uniform (not normal), then the bound."""
    bound = 1.0 / I if is_first else math.sqrt(6.0 / I) / omega0
    top, std, mean = W.abs().max().item(), W.std().item(), W.mean().item()
    where = f"SineLayer(in_dim={I}, out_dim={O}, omega0={omega0:g}, is_first={is_first})"
    rule = (
        f"the first layer draws W ~ U(-1/in_dim, 1/in_dim) = U(-{bound:.3g}, {bound:.3g})"
        if is_first
        else f"a hidden layer draws W ~ U(-sqrt(6/in_dim)/omega0, +sqrt(6/in_dim)/omega0) = "
        f"U(-{bound:.3g}, {bound:.3g})"
    )
    if top == 0.0:
        return f"{where}: the weights are all zero: {rule}"
    seen = f"your weights reach {top:.3g} with std {std:.3g}"
    # Uniform on [-b, b]: mean ~0 (+-0.01 b here), the largest of 5120 draws within 0.1% of b, std b/sqrt(3).
    if W.min().item() >= 0.0 or abs(mean) > 0.1 * top:
        return (
            f"{where}: {seen} and mean {mean:.3g}: the draw is not centred on 0 (U(0, bound), or "
            "torch.rand without shifting?). Draw from U(-bound, +bound): nn.init.uniform_(weight, -bound, "
            f"bound); {rule}"
        )
    if abs(top / (std * math.sqrt(3.0)) - 1.0) > 0.06:
        spread = abs(std * math.sqrt(3.0) - bound) <= 0.08 * bound
        return (
            f"{where}: {seen}: the draw is not uniform (a uniform draw on [-b, b] reaches b = sqrt(3) std; "
            f"yours reaches {top / std:.2f} std: a normal draw?"
            + (" the spread is right" if spread else "")
            + f"). Use nn.init.uniform_(self.linear.weight, -bound, bound); {rule}"
        )
    if abs(top - bound) <= 0.03 * bound:
        return None
    for wrong, mistake in _wrong_bounds(I, O, omega0, is_first):
        if abs(top - wrong) <= 0.03 * wrong:
            return f"{where}: your weights are uniform on [-{top:.3g}, {top:.3g}], {mistake}; {rule}"
    return f"{where}: your weights are uniform on [-{top:.3g}, {top:.3g}], but the bound is wrong: {rule}"


def _check_sine_bias(b: torch.Tensor, I: int, O: int, weight_bound: float) -> None:
    """PyTorch's default bias U(-1/sqrt(I), 1/sqrt(I)): not zero, not the weight's rule, not wider."""
    b_max, top = 1.0 / math.sqrt(I), b.abs().max().item()
    default = (
        "SIREN keeps PyTorch's default bias U(-1/sqrt(in_dim), 1/sqrt(in_dim)) = "
        f"U(-{b_max:.3g}, {b_max:.3g})"
    )
    where = f"the bias of SineLayer({I}, {O})"
    expect(top > 0.0, f"{where} is all zero: {default}; leave it as nn.Linear draws it (do not zero it)")
    expect(top <= b_max * (1 + 1e-6), f"{where} reaches {top:.3g}: {default}")
    if top < 0.85 * b_max:  # the largest of 80 draws from U(-b, b) is below 0.85 b with probability 2e-6
        same = abs(top - weight_bound) <= 0.05 * weight_bound
        fail(
            f"{where} only reaches {top:.3g}"
            + (": it is drawn with the weight's SIREN bound" if same else "")
            + f"; {default}: initialise only self.linear.weight in reset_parameters"
        )


def _check_sine_init(SineLayer: type[nn.Module]) -> None:
    I, O = INIT_IN, INIT_OUT
    for seed, (omega0, is_first) in enumerate(INIT_CASES):
        with stage(f"SineLayer({I}, {O}, omega0={omega0:g}, is_first={is_first}) being built"):
            layer = build_seeded(SineLayer, seed, I, O, omega0=omega0, is_first=is_first)
        lin = _linear_of(layer, I, O)
        mistake = _diagnose_init(lin.weight.detach(), I, O, omega0, is_first)
        if mistake is not None:
            fail(mistake)
        bound = 1.0 / I if is_first else math.sqrt(6.0 / I) / omega0
        _check_sine_bias(lin.bias.detach(), I, O, bound)
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
            with stage("SineLayer.reset_parameters()"):
                reset()
        lin = _linear_of(layer, I, O)
        expect(
            _diagnose_init(lin.weight.detach(), I, O, omega0, is_first) is None,
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
            (torch.sin(omega0 * a), "the bias is missing: the layer computes sin(omega0 * W x)"),
            (torch.cos(omega0 * (a + b)), "the layer uses cos instead of sin"),
        ]
        if omega0 != 30.0:
            candidates.append(
                (torch.sin(30.0 * (a + b)), "omega0 is hard-coded to 30 instead of self.omega0")
            )
    for candidate, mistake in candidates:
        if candidate.shape == out.shape and torch.allclose(out, candidate, atol=1e-5, rtol=1e-4):
            return (
                f"{where}: {mistake}. A SIREN layer is sin(omega0 * (W x + b)) = "
                "torch.sin(omega0 * self.linear(x))"
            )
    return None


def _check_sine_float64(SineLayer: type[nn.Module]) -> None:
    layer = build_seeded(SineLayer, 9, 3, 4, omega0=30.0, is_first=False).double()
    ref = build_seeded(RefSineLayer, 0, 3, 4, omega0=30.0).double()
    lin = _linear_of(layer, 3, 4)
    ref.load_state_dict({"linear.weight": lin.weight.detach(), "linear.bias": lin.bias.detach()})
    x = torch.rand(5, 3, generator=seeded(90), dtype=torch.float64) * 2 - 1  # (5, 3)
    where = "SineLayer(3, 4).double() on a float64 x (5, 3)"
    try:
        with stage(where):
            out = layer(x.clone())
    except RuntimeError as e:
        if "dtype" in str(e) or "scalar type" in str(e):
            fail(
                f"{where}: your code raised {type(e).__name__}: {str(e)[:120]}. Something is cast to float32 "
                "(x.float()?): keep the input's dtype, torch.sin(self.omega0 * self.linear(x))"
            )
        raise
    expect(
        isinstance(out, torch.Tensor) and out.dtype == torch.float64,
        f"{where} returns {getattr(out, 'dtype', type(out))}: keep the input's dtype (no .float())",
    )
    expect_close(out.detach(), ref(x), f"{where}: the output differs from the reference")


@checker("7.2", "SineLayer", hints=SINE_HINTS, reference="vitgan_lite.inr:SineLayer")
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
        ref = build_seeded(RefSineLayer, 0, I, O, omega0=omega0, is_first=is_first)
        with torch.no_grad():
            ref.linear.weight.copy_(lin.weight)
            ref.linear.bias.copy_(lin.bias)
        x = torch.rand(*lead, I, generator=seeded(10 + seed)) * 2 - 1  # (..., I), coordinates in [-1, 1]
        where = f"SineLayer({I}, {O}, omega0={omega0:g}, is_first={is_first}) on x of shape {tuple(x.shape)}"
        with stage(where):
            out = layer(x.clone())
        expect(
            isinstance(out, torch.Tensor), f"{where} should return a torch.Tensor, got {type(out).__name__}"
        )
        expect(
            tuple(out.shape) == (*lead, O), f"{where} should have shape {(*lead, O)}, got {tuple(out.shape)}"
        )
        expected = ref(x)  # (..., O)
        if not torch.allclose(out, expected, atol=1e-5, rtol=1e-4):
            mistake = _diagnose_sine_forward(out.detach(), x, lin, omega0, where)
            if mistake is not None:
                fail(mistake)
            expect_tensor(out, (*lead, O), where)
            expect_close(out, expected, f"{where}: the output should be sin(omega0 * (W x + b))")
    _check_sine_float64(SineLayer)
    # Every parameter learns, with the reference's gradients.
    layer = build_seeded(SineLayer, 7, 4, 5, omega0=30.0, is_first=False)
    ref = build_seeded(RefSineLayer, 0, 4, 5, omega0=30.0)
    ref.load_state_dict(_linear_of(layer, 4, 5).state_dict(prefix="linear."))
    x = torch.rand(6, 4, generator=seeded(40)) * 2 - 1  # (6, I)
    r = torch.randn(6, 5, generator=seeded(41))  # (6, O)
    (layer(x) * r).sum().backward()
    (ref(x) * r).sum().backward()
    expect_grads_reach_every_parameter(
        layer,
        lambda name: (
            f"no gradient reaches the parameter {name!r}: compute the output from self.linear(x) in "
            "forward (no .detach(), no .data)"
        ),
    )
    lin = _linear_of(layer, 4, 5)
    for name, mine, theirs in (
        ("weight", lin.weight, ref.linear.weight),
        ("bias", lin.bias, ref.linear.bias),
    ):
        expect_close(
            mine.grad,
            theirs.grad,
            f"the gradient of self.linear.{name} differs from the reference's: part of the forward is cut "
            "from the graph (.detach(), .data, torch.no_grad()) or replaced by a constant",
            atol=1e-4,
            rtol=1e-3,
        )


__all__ = ["check_modulated_linear", "check_sine_layer"]
