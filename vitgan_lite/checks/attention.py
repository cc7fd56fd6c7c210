"""Checkers for lesson 03 (L2 attention, ViTGAN eq. 3): Exercise 3.1 and Exercise 3.2.

* 3.1 ``l2_attention_logits(q, k)``: (B, H, N, Dh) queries and keys -> (B, H, N, N) logits
  ``-||q_i - k_j||^2 / sqrt(Dh)``.
* 3.2 ``L2MultiHeadAttention(dim, num_heads)``: an ``nn.Module`` with one tied projection ``qk``
  (W_q = W_k), a value projection ``v`` and an output projection ``proj``: the package's class, with the
  same layout, so the checker copies the reference's weights into it.

Each checker tests one property at a time, from the most basic up (a tensor, its shape, its dtype, the
inputs left alone, the values, then gradients and double backward), and on a wrong value computes what
the known mistakes would output (no minus sign, mean instead of sum, a missing or wrong scale, scaling
after the softmax, softmax over the wrong axis, torch.cdist, untied q and k, values from the wrong
projection, heads split or merged wrongly, ...) to name the one it sees.

Shape legend: ``B`` batch, ``N`` tokens, ``D`` width, ``H`` heads, ``Dh`` head width (D / H).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vitgan_lite.attention import L2MultiHeadAttention as RefL2MultiHeadAttention
from vitgan_lite.attention import l2_attention_logits as ref_logits
from vitgan_lite.checks._core import ExerciseFailed, checker, expect, expect_close, fail, seeded, stage

# (B, H, N, Dh): odd batches, one and several heads, several head widths (Dh > 1 so that the mistakes
# "mean instead of sum" and "missing 1/sqrt(Dh)" change the numbers). The first case tells every known
# mistake apart (B, H, N, Dh all different), so it is the one whose message names the mistake.
LOGIT_CASES = [(2, 1, 5, 4), (3, 2, 7, 3), (1, 3, 4, 8), (5, 2, 6, 2)]
# Edge sizes, after the ordinary ones: one token (N = 1), and a single query and key (B = H = N = 1).
LOGIT_EDGE_CASES = [(2, 2, 1, 3), (1, 1, 1, 5)]
# (B, N, D, H) for the module; the first case (Dh = 4, D = 12, N = 6) tells every known mistake apart.
MODULE_CASES = [(3, 6, 12, 3), (1, 7, 8, 2), (5, 4, 6, 1), (2, 9, 16, 4)]
# Edge sizes for the module: one token (N = 1), and one sample with a head width of 1.
MODULE_EDGE_CASES = [(2, 1, 8, 2), (1, 3, 4, 4)]
# More than 25 tokens: torch.cdist then switches to its matrix-multiply path, whose double backward is NaN.
DOUBLE_BACKWARD_TOKENS = 27

CDIST_MESSAGE = (
    "your code calls torch.cdist (its backward shows up in the autograd graph). The values are right, but "
    "cdist's backward is not safely twice differentiable (NaN second derivatives for more than 25 tokens), "
    "and the R1 gradient penalty of a GAN discriminator needs a double backward. Use the expanded form "
    "-(|q_i|^2 - 2 q_i.k_j + |k_j|^2) / sqrt(Dh), built from square(), sum() and a matrix product"
)
DETACHED_MESSAGE = (
    "the values are right but part of the computation is cut from autograd (a .detach(), .data, "
    "torch.no_grad() or a tensor rebuilt from .item()/.tolist()): the discriminator is trained through "
    "this computation, so every step must stay differentiable"
)

HINTS_LOGITS = (
    "Logit (i, j) is minus the squared distance between query i and key j, divided by sqrt(Dh) with "
    "Dh = q.shape[-1] (the head width, the LAST axis). Expand ||q_i - k_j||^2 = |q_i|^2 - 2 q_i.k_j + "
    "|k_j|^2: |q_i|^2 is a SUM of squares over the last axis and must vary down the rows, so keep it as a "
    "column (B, H, N, 1) with keepdim=True; |k_j|^2 must vary along the columns, a row (B, H, 1, N); the "
    "cross term is one batched matrix product of q with k transposed on its last two axes, (B, H, N, N). "
    "No torch.cdist (the R1 penalty needs a double backward), no softmax here, and do not change q or k "
    "in place.",
    "q_sq = q.square().sum(dim=..., keepdim=...)   # (B, H, N, 1), |q_i|^2\n"
    "k_sq = k.square().sum(dim=...).unsqueeze(...)  # (B, H, 1, N), |k_j|^2\n"
    "qk = q @ k.transpose(..., ...)                 # (B, H, N, N), q_i . k_j\n"
    "return -(... - 2.0 * ... + ...) / math.sqrt(...)",
)
HINTS_MODULE = (
    "__init__: exactly three nn.Linear(dim, dim) (with their default biases): self.qk gives the queries AND "
    "the keys (W_q = W_k, tied), self.v the values, self.proj merges the heads. forward: split each "
    "projection into heads, (B, N, D) -> view (B, N, H, Dh) -> transpose(1, 2) -> (B, H, N, Dh); take "
    "q = k = the heads of self.qk(x); logits -(|q_i|^2 - 2 q_i.q_j + |q_j|^2) / sqrt(Dh), scaled BEFORE "
    "the softmax; softmax over the keys (dim=-1); multiply by the heads of self.v(x); transpose(1, 2) back "
    "and reshape (not view: the tensor is no longer contiguous) to (B, N, D); finally self.proj.",
    "B, N, D = x.shape\n"
    "q = self.qk(x).view(B, N, ..., ...).transpose(..., ...)  # (B, H, N, Dh), and k = q\n"
    "v = self.v(x).view(...).transpose(...)                   # (B, H, N, Dh)\n"
    "q_sq = ...                                               # (B, H, N, 1)\n"
    "sq_dist = q_sq - 2.0 * ... + q_sq.transpose(..., ...)     # (B, H, N, N)\n"
    "attn = (-sq_dist / math.sqrt(...)).softmax(dim=...)      # (B, H, N, N)\n"
    "out = (attn @ v).transpose(..., ...).reshape(B, N, D)\n"
    "return self.proj(...)",
)


def _size_one_crash(e: Exception, what: str, sizes: dict[str, int]) -> str:
    """The message for a crash on sizes with a 1 in them, after the ordinary sizes passed."""
    ones = ", ".join(f"{n} = 1" for n, v in sizes.items() if v == 1)
    return (
        f"your code passed the first sizes but raised {type(e).__name__}: {str(e)[:200]} for {what}, where "
        f"{ones}. A .squeeze() without an axis drops EVERY size-1 axis, not only the one you meant: name "
        "the axis (.squeeze(-1)) or keep it with keepdim=True; or a size is hard-coded"
    )


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=1e-4, rtol=1e-3)


def _autograd_ops(t: torch.Tensor) -> set[str]:
    """Names of the backward nodes in ``t``'s autograd graph (e.g. ``CdistBackward0``)."""
    seen, names, stack = set(), set(), [t.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(n for n, _ in node.next_functions)
    return names


def _uses_cdist(t: torch.Tensor) -> bool:
    return any("Cdist" in n or "EuclideanDist" in n for n in _autograd_ops(t))


# ------------------------------------------------------------------------------------------------------
# Exercise 3.1: the logits


def _probe(fn: Callable, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """q, k of ``shape`` and the learner's logits for them (None if that call crashes or is misshapen)."""
    g = seeded(9)
    q, k = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    try:
        out = fn(q.clone(), k.clone())
    except Exception:  # noqa: BLE001  only a probe: the checker reports the learner's first crash itself
        return q, k, None
    ok = isinstance(out, torch.Tensor) and tuple(out.shape) == (*shape[:3], shape[2])
    return q, k, (out.detach() if ok else None)


# A second input for naming a mistake: no size is 1 and all differ, so that a mistake that only looks like
# another one for the failing input (e.g. a scale of 1/sqrt(H) with H = 1) is told apart.
PROBE_SHAPE = (4, 2, 3, 5)


def _logits_shape_message(shape: tuple[int, ...], q: torch.Tensor, fn: Callable) -> str:
    """Why the logits have ``shape`` instead of (B, H, N, N), if a known mistake explains it."""
    B, H, N, Dh = q.shape
    want = (B, H, N, N)
    head = f"for q, k of shape {tuple(q.shape)} the logits should have shape {want}, got {shape}"
    if shape in ((B, H, N), (B, H, N, 1)):
        return (
            f"{head}: one value per token, so query i met only key i (q - k pairs them elementwise). Every "
            "query needs every key: the cross term q @ k.transpose(-2, -1) is (B, H, N, N), and so is "
            "q.unsqueeze(-2) - k.unsqueeze(-3)"
        )
    if shape == (B * H, N, N):
        return f"{head}: the heads were merged into the batch; reshape back to (B, H, N, N) at the end"
    if 1 in (B, H, N) and _probe(fn, PROBE_SHAPE)[2] is not None:  # right when no size is 1
        return (
            f"{head}. Your shapes are right when no size is 1, so a .squeeze() without an axis drops the "
            f"size-1 axes here (B = {B}, H = {H}, N = {N}): name the axis (.squeeze(-1)) or keep it with "
            "keepdim=True"
        )
    try:
        no_keepdim = torch.broadcast_shapes((B, H, N), want)
    except RuntimeError:
        no_keepdim = None
    if shape == tuple(no_keepdim or ()):
        return (
            f"{head}: |q_i|^2 of shape (B, H, N), summed without keepdim=True, lines up with the LAST axis "
            "when added to (B, H, N, N) and broadcasts over a new one. Keep the axis: "
            "q.square().sum(-1, keepdim=True) is (B, H, N, 1)"
        )
    return head


def _known_logit_mistakes(shape: tuple[int, ...]) -> list[tuple[Callable, str]]:
    """``(wrong(q, k), message)`` for each known mistake; the messages quote the sizes of ``shape``."""
    B, H, N, Dh = shape

    def parts(q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, ...]:
        q_sq = q.square().sum(-1, keepdim=True)  # (B, H, N, 1)
        k_sq = k.square().sum(-1).unsqueeze(-2)  # (B, H, 1, N)
        return q_sq, k_sq, q @ k.transpose(-2, -1), math.sqrt(q.shape[-1])  # qk (B, H, N, N), scale

    def scaled(q: torch.Tensor, k: torch.Tensor, by: Callable[[int, int, int, int], float]) -> torch.Tensor:
        return ref_logits(q, k) * math.sqrt(q.shape[-1]) / by(*q.shape)

    def q_sq_row(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        _, k_sq, qk, s = parts(q, k)
        return -(q.square().sum(-1).unsqueeze(-2) - 2 * qk + k_sq) / s

    def k_sq_col(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        q_sq, _, qk, s = parts(q, k)
        return -(q_sq - 2 * qk + k.square().sum(-1, keepdim=True)) / s

    def cross(q: torch.Tensor, k: torch.Tensor, factor: float) -> torch.Tensor:
        q_sq, k_sq, qk, s = parts(q, k)
        return -(q_sq - factor * qk + k_sq) / s

    def norms(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        q_sq, k_sq, qk, s = parts(q, k)
        return -(q_sq.sqrt() - 2 * qk + k_sq.sqrt()) / s

    return [
        (
            lambda q, k: -ref_logits(q, k),
            "the logits are +||q_i - k_j||^2 / sqrt(Dh): the minus sign is missing, so far keys get the "
            "largest logits. Negate the squared distance",
        ),
        (
            lambda q, k: scaled(q, k, lambda B, H, N, Dh: Dh * math.sqrt(Dh)),
            "the logits are Dh times too small: you took the MEAN of the squared differences over Dh. "
            "The squared Euclidean distance is a SUM over the head width: .sum(dim=-1), not .mean(dim=-1)",
        ),
        (
            lambda q, k: scaled(q, k, lambda B, H, N, Dh: 1.0),
            "the logits are sqrt(Dh) times too large: the 1/sqrt(Dh) scaling is missing "
            "(ViTGAN eq. 3 divides the squared distance by sqrt(d_h))",
        ),
        (
            lambda q, k: scaled(q, k, lambda B, H, N, Dh: Dh),
            "the logits are sqrt(Dh) times too small: divide by sqrt(Dh) once, not by Dh",
        ),
        (
            lambda q, k: scaled(q, k, lambda B, H, N, Dh: math.sqrt(N)),
            f"the scale is 1/sqrt(N) (here 1/sqrt({N})), with N = q.shape[-2] the number of TOKENS: use the "
            "head width, 1/sqrt(Dh) with Dh = q.shape[-1]",
        ),
        (
            lambda q, k: scaled(q, k, lambda B, H, N, Dh: math.sqrt(H)),
            f"the scale is 1/sqrt(H) (here 1/sqrt({H})), with H = q.shape[1] the number of HEADS: use the "
            "head width, 1/sqrt(Dh) with Dh = q.shape[-1]",
        ),
        (
            lambda q, k: scaled(q, k, lambda B, H, N, Dh: math.sqrt(H * Dh)),
            f"the scale is 1/sqrt(H * Dh) (here 1/sqrt({H * Dh})), the full width: use the head width, "
            "1/sqrt(Dh) with Dh = q.shape[-1]",
        ),
        (
            lambda q, k: ref_logits(q, k).softmax(-1),
            "you return softmax probabilities: this function returns the LOGITS -||q_i - k_j||^2 / "
            "sqrt(Dh); the softmax comes later, in the attention module",
        ),
        (
            lambda q, k: (
                -(-ref_logits(q, k) * math.sqrt(q.shape[-1])).clamp_min(0).sqrt() / math.sqrt(q.shape[-1])
            ),
            "the distance is not squared: ViTGAN eq. 3 uses the SQUARED "
            "distance ||q_i - k_j||^2, i.e. |q_i|^2 - 2 q_i.k_j + |k_j|^2",
        ),
        (
            norms,
            "|q_i| and |k_j| are norms, not squared norms (.norm() is the square ROOT of the sum of "
            "squares): use q.square().sum(-1) for |q_i|^2",
        ),
        (
            lambda q, k: cross(q, k, -2.0),
            "the cross term has the wrong sign: ||q - k||^2 = |q|^2 - 2 q.k + |k|^2 "
            "(yours adds +2 q.k, which is ||q + k||^2)",
        ),
        (
            lambda q, k: cross(q, k, 1.0),
            "the cross term lacks its factor 2: ||q - k||^2 = |q|^2 - 2 q.k + |k|^2",
        ),
        (
            lambda q, k: ref_logits(q, k) + parts(q, k)[0] / math.sqrt(q.shape[-1]),
            "the |q_i|^2 term is missing. Softmax over the keys would not notice (it is the same "
            "for every key j), but the logits should be the full -||q_i - k_j||^2 / sqrt(Dh)",
        ),
        (
            k_sq_col,
            "|k_j|^2 is added as a COLUMN (B, H, N, 1), so row i gets |k_i|^2 for every key: make it a row, "
            "k.square().sum(-1).unsqueeze(-2), shape (B, H, 1, N), so that column j gets |k_j|^2",
        ),
        (
            q_sq_row,
            "|q_i|^2 is added as a ROW (B, H, 1, N), so column j gets |q_j|^2: make it a column, "
            "q.square().sum(-1, keepdim=True), shape (B, H, N, 1), so that row i gets |q_i|^2",
        ),
        (
            lambda q, k: ref_logits(q, k).transpose(-2, -1),
            "rows and columns are swapped: row i must belong to query i and column j to "
            "key j (put |q_i|^2 in a column, shape (B, H, N, 1), and |k_j|^2 in a row, shape (B, H, 1, N))",
        ),
        (lambda q, k: ref_logits(q, q), "the result does not depend on k: you used q where k belongs"),
        (lambda q, k: ref_logits(k, k), "the result does not depend on q: you used k where q belongs"),
        (
            lambda q, k: parts(q, k)[2] / math.sqrt(q.shape[-1]),
            "these are dot-product logits q_i.k_j / sqrt(Dh), not L2 ones: use minus the squared distance",
        ),
    ]


def _diagnose_logits(fn: Callable, out: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> str:
    """Name the mistake that gives ``out`` for ``q``, ``k`` (and fits a second input), if we know it."""
    q2, k2, out2 = _probe(fn, PROBE_SHAPE)
    for wrong, message in _known_logit_mistakes(tuple(q.shape)):
        if _close(out, wrong(q, k)) and (out2 is None or _close(out2, wrong(q2, k2))):
            return message
    ref = ref_logits(q, k)  # (B, H, N, N)
    c = float((out.double() * ref.double()).sum() / ref.double().square().sum())  # least-squares factor
    if _close(out, c * ref):
        return (
            f"the logits are {c:.4g} times the right ones: the scale must be exactly 1/sqrt(Dh) = "
            f"1/sqrt({q.shape[-1]}), with Dh = q.shape[-1], the head width"
        )
    return (
        "the logits differ from -||q_i - k_j||^2 / sqrt(Dh). Compute |q_i|^2 as "
        "q.square().sum(-1, keepdim=True) (B, H, N, 1), |k_j|^2 as a row (B, H, 1, N), the cross term "
        "q @ k.transpose(-2, -1) (B, H, N, N), "
        "then -(|q|^2 - 2 q.k + |k|^2) / sqrt(Dh)"
    )


def _checked_logits(fn: Callable, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``fn(q, k)`` on copies, checked for type, shape, dtype, finiteness and the inputs left alone."""
    qc, kc = q.clone(), k.clone()
    out = fn(qc, kc)
    expect(
        torch.equal(qc, q) and torch.equal(kc, k),
        "your l2_attention_logits changed q or k in place (an in-place op such as q /= ..., q.mul_(...) or "
        "q[...] = ...): the caller still needs them (in the module k IS q, so an in-place scale would even "
        "apply twice). Build new tensors: q = q / ..., not q /= ...",
    )
    expect(
        isinstance(out, torch.Tensor),
        f"l2_attention_logits should return a torch.Tensor, got {type(out).__name__}",
    )
    B, H, N, Dh = q.shape
    if tuple(out.shape) != (B, H, N, N):
        fail(_logits_shape_message(tuple(out.shape), q, fn))
    expect(
        out.dtype == q.dtype,
        f"for {str(q.dtype).replace('torch.', '')} q and k your logits are "
        f"{str(out.dtype).replace('torch.', '')}: a new tensor made without a dtype (torch.zeros(...), "
        "torch.tensor(...)) or a cast. Keep the input's dtype: q.new_zeros(...), torch.zeros_like(...), or "
        "no buffer at all",
    )
    expect(
        bool(torch.isfinite(out).all()), f"the logits for q, k of shape {tuple(q.shape)} contain NaN or inf"
    )
    return out


def _check_double_backward(
    fn: Callable[[torch.Tensor], torch.Tensor],
    ref_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    what: str,
) -> None:
    """Second derivatives through ``fn`` must exist, be finite and match the reference (R1 needs them)."""
    grads = []
    for f in (fn, ref_fn):
        xx = x.clone().requires_grad_(True)
        out = f(xx)
        if f is fn and _uses_cdist(out):
            fail(CDIST_MESSAGE)
        expect(out.requires_grad, f"no gradient flows through your {what}: {DETACHED_MESSAGE}")
        w = torch.linspace(-1.0, 1.0, out.numel(), dtype=out.dtype).view_as(out)  # a fixed test direction
        (g,) = torch.autograd.grad((out.softmax(-1) * w).sum(), xx, create_graph=True)
        try:
            (h,) = torch.autograd.grad(g.square().sum(), xx)
        except RuntimeError as e:
            fail(
                f"a double backward through your {what} fails ({e}). The R1 gradient penalty needs it: build "
                "the distance from square(), sum() and matrix products, not torch.cdist"
            )
        grads.append(h)
    expect(
        bool(torch.isfinite(grads[0]).all()) and _close(grads[0], grads[1]),
        f"second derivatives through your {what} are NaN or wrong (torch.cdist-like ops give NaN or zero "
        "second derivatives where q_i = k_j): use the expanded form -(|q|^2 - 2 q.k + |k|^2) / sqrt(Dh)",
    )


@checker(
    "3.1",
    "L2 attention logits",
    hints=HINTS_LOGITS,
    reference="vitgan_lite.attention:l2_attention_logits",
)
def check_l2_attention_logits(
    l2_attention_logits: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> None:
    """Check a learner's ``l2_attention_logits(q, k) -> (B, H, N, N)`` against the reference."""
    for seed, (B, H, N, Dh) in enumerate(LOGIT_CASES + LOGIT_EDGE_CASES):
        g = seeded(seed)
        q, k = torch.randn(B, H, N, Dh, generator=g), torch.randn(B, H, N, Dh, generator=g)
        try:
            with stage(f"the logits for q, k of shape {(B, H, N, Dh)}"):
                out = _checked_logits(l2_attention_logits, q, k)
        except ExerciseFailed:
            raise
        except Exception as e:
            if seed == 0 or 1 not in (B, H, N):
                raise
            fail(_size_one_crash(e, f"q, k of shape {(B, H, N, Dh)}", {"B": B, "H": H, "N": N}))
        if not _close(out, ref_logits(q, k)):
            fail(f"for q, k of shape {(B, H, N, Dh)}: {_diagnose_logits(l2_attention_logits, out, q, k)}")

    # float64 works as the reference does, and stays float64.
    g = seeded(8)
    q, k = (torch.randn(1, 2, 3, 5, generator=g, dtype=torch.float64) for _ in range(2))  # (B, H, N, Dh)
    with stage("the logits for float64 q, k of shape (1, 2, 3, 5)"):
        out = _checked_logits(l2_attention_logits, q, k)
    expect_close(out, ref_logits(q, k), "for float64 q and k the logits differ from the reference")

    # The hand value of the lesson: one head, Dh = 2, q = k = X = [[0, 0], [1, 0], [3, 0]].
    # Row 0: squared distances [0, 1, 9] -> logits -[0, 1, 9] / sqrt(2) = [0, -0.707107, -6.363961].
    X = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]]).view(1, 1, 3, 2)  # (B, H, N, Dh)
    expect_close(
        l2_attention_logits(X, X.clone())[0, 0, 0],
        torch.tensor([0.0, -0.707107, -6.363961]),
        "the first logits row for X = [[0, 0], [1, 0], [3, 0]] (Dh = 2) should be -[0, 1, 9] / sqrt(2)",
    )

    # Defining property with tied weights (k = q): every row's maximum is on the diagonal, and it is 0.
    q = torch.randn(3, 2, 6, 4, generator=seeded(10))  # (B, H, N, Dh)
    out = l2_attention_logits(q, q.clone())  # (B, H, N, N)
    diag = out.diagonal(dim1=-2, dim2=-1)  # (B, H, N)
    expect(
        bool(diag.abs().max() < 1e-4) and bool((out.amax(-1) - diag).abs().max() < 1e-4),
        "with k = q, each query is at distance 0 from its own key, so the diagonal should be 0 and be "
        "each row's maximum; it is not",
    )

    # Gradients: the same as the reference's, with respect to q and to k.
    q0, k0 = torch.randn(2, 2, 5, 3, generator=seeded(12)), torch.randn(2, 2, 5, 3, generator=seeded(13))
    G = torch.randn(2, 2, 5, 5, generator=seeded(14))  # an upstream gradient
    grads = []
    for fn in (l2_attention_logits, ref_logits):
        q, k = q0.clone().requires_grad_(True), k0.clone().requires_grad_(True)
        out = fn(q, k)
        if fn is l2_attention_logits:
            expect(out.requires_grad, f"no gradient reaches q and k: {DETACHED_MESSAGE}")
        grads.append(torch.autograd.grad((out * G).sum(), (q, k), allow_unused=True))
    for name, mine, want in zip(("q", "k"), *grads):
        expect(
            mine is not None and _close(mine, want),
            f"the gradient with respect to {name} differs from the reference: {DETACHED_MESSAGE}",
        )

    # cdist: right values, but named here, before the generic double-backward check.
    q = torch.randn(1, 1, DOUBLE_BACKWARD_TOKENS, 3, generator=seeded(11), dtype=torch.float64)
    _check_double_backward(
        lambda x: l2_attention_logits(x, x), lambda x: ref_logits(x, x), q, "l2_attention_logits"
    )


# ------------------------------------------------------------------------------------------------------
# Exercise 3.2: the module


def _randomize(ref: nn.Module, seed: int) -> None:
    """Give the reference fresh weights from a seeded generator (leaves the global RNG alone)."""
    g = seeded(seed)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))  # (fan_out, fan_in) or bias


_UNTIED_NAMES = ("q", "k", "to_q", "to_k", "w_q", "w_k", "W_q", "W_k", "query", "key", "q_proj", "k_proj")


def _diagnose_parameters(mod: nn.Module, ref: nn.Module) -> str:
    """Why the learner's parameters do not line up with the reference's qk / v / proj layout."""
    D = ref.dim
    shapes = {n: tuple(p.shape) for n, p in mod.named_parameters()}
    want = {n: tuple(p.shape) for n, p in ref.named_parameters()}
    prefixes = {n.rsplit(".", 1)[0] for n in shapes}
    names = ", ".join(f"{n} {s}" for n, s in shapes.items()) or "none"
    extra_square = [
        p for p in prefixes - {"qk", "v", "proj"} if shapes.get(f"{p}.weight") == (D, D)
    ]  # another (D, D) projection besides qk, v, proj
    complete = all(f"{m}.weight" in shapes for m in ("qk", "v", "proj"))
    untied = any(p.split(".")[-1] in _UNTIED_NAMES for p in prefixes) or (extra_square and complete)
    stacked = any(len(s) == 2 and s[1] == D and s[0] in (2 * D, 3 * D) for s in shapes.values())
    if untied or stacked:
        return (
            "q and k come from separate projections (untied W_q and W_k; your parameters: "
            f"{names}). ViTGAN eq. 3 ties them, W_q = W_k, which is what makes L2 attention Lipschitz: "
            "create ONE nn.Linear(dim, dim) called self.qk and use its output as both the queries and "
            "the keys"
        )
    missing = [m for m in ("qk", "v", "proj") if f"{m}.weight" not in shapes]
    if missing:
        return (
            f"the module has no self.{missing[0]} (your parameters: {names}). Keep the names of the "
            "exercise, self.qk, self.v and self.proj, each an nn.Linear(dim, dim): the checker copies the "
            "course's weights into them"
        )
    for n, s in want.items():
        if n in shapes and shapes[n] != s:
            return (
                f"{n} has shape {shapes[n]} but should be {s}: each projection maps the full width D = {D} "
                "to D (all heads at once, Dh = D / H each): nn.Linear(dim, dim), split into heads afterwards"
            )
    for n in want:
        if n not in shapes and n != "qk.bias":
            return (
                f"{n} is missing (bias=False?): keep the default bias of nn.Linear(dim, dim) for self.v and "
                f"self.proj (your parameters: {names})"
            )
    extra = sorted(set(shapes) - set(want))
    if extra:
        return (
            f"extra parameters {', '.join(extra)}: L2 attention has exactly self.qk, self.v and self.proj "
            "(a learnable scale or temperature is not part of ViTGAN eq. 3; the scale is 1/sqrt(Dh))"
        )
    expected = ", ".join(f"{n} {s}" for n, s in want.items())
    return (
        f"the module's parameters should be exactly {expected} (the layout of the package's "
        f"L2MultiHeadAttention, so the checker can copy its weights in); yours are: {names}"
    )


def _learner_and_reference(
    learner_cls: type[nn.Module], dim: int, num_heads: int, seed: int
) -> tuple[nn.Module, RefL2MultiHeadAttention]:
    """The learner's module and the reference, both holding the reference's seeded random weights."""
    with stage(f"L2MultiHeadAttention(dim={dim}, num_heads={num_heads})"):
        mod = learner_cls(dim=dim, num_heads=num_heads)
    expect(isinstance(mod, nn.Module), "your L2MultiHeadAttention should be an nn.Module subclass")
    ref = RefL2MultiHeadAttention(dim=dim, num_heads=num_heads, fast=False)
    _randomize(ref, seed)
    ref_state = ref.state_dict()
    if "qk.bias" not in mod.state_dict():
        # A bias-free tied projection is right too: the shared bias cancels in every q_i - k_j.
        ref_state = {n: t for n, t in ref_state.items() if n != "qk.bias"}
    if {n: p.shape for n, p in mod.state_dict().items()} != {n: t.shape for n, t in ref_state.items()}:
        fail(_diagnose_parameters(mod, ref))
    mod.load_state_dict(ref_state)
    return mod, ref


def _variants(ref: RefL2MultiHeadAttention, x: torch.Tensor) -> list[tuple[Callable[[], torch.Tensor], str]]:
    """What the known mistakes output, with the reference's weights (each computed only when compared)."""
    B, N, D = x.shape
    H, Dh = ref.num_heads, ref.head_dim
    s = math.sqrt(Dh)
    split = ref._split_heads
    q = split(ref.qk(x))  # (B, H, N, Dh), k = q (tied)
    v = split(ref.v(x))  # (B, H, N, Dh)
    sq_dist = -ref_logits(q, q) * s  # (B, H, N, N), ||q_i - q_j||^2
    logits = -sq_dist / s  # (B, H, N, N), the right logits

    def finish(attn: torch.Tensor, values: torch.Tensor = v, proj: bool = True) -> torch.Tensor:
        out = (attn @ values).transpose(1, 2).reshape(B, N, D)  # (B, N, D)
        return ref.proj(out) if proj else out

    def bad_split(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(B, H, N, Dh)  # (B, H, N, Dh), heads split without the transpose

    def bad_heads() -> torch.Tensor:
        qb, vb = bad_split(ref.qk(x)), bad_split(ref.v(x))
        return ref_logits(qb, qb).softmax(-1) @ vb  # (B, H, N, Dh)

    def sdpa_default_scale() -> torch.Tensor:
        q_aug = torch.cat([2.0 * q, torch.ones_like(q[..., :1])], dim=-1)  # (B, H, N, Dh + 1)
        k_aug = torch.cat([q, -q.square().sum(-1, keepdim=True)], dim=-1)  # (B, H, N, Dh + 1)
        out = F.scaled_dot_product_attention(q_aug, k_aug, v)  # scale 1/sqrt(Dh + 1)
        return ref.proj(out.transpose(1, 2).reshape(B, N, D))

    def no_heads(scale: float) -> torch.Tensor:
        qf = ref.qk(x).unsqueeze(1)  # (B, 1, N, D), one head over the full width
        attn = (ref_logits(qf, qf) * math.sqrt(D) / scale).softmax(-1)  # (B, 1, N, N)
        return ref.proj((attn @ ref.v(x).unsqueeze(1)).squeeze(1))

    no_heads_msg = (
        f"the heads are never split: your attention runs once over the full width D = {D}. Split each "
        f"projection into H = {H} heads of Dh = {Dh}: view (B, N, H, Dh), transpose(1, 2) -> (B, H, N, Dh)"
    )
    split_msg = (
        "the heads are split wrongly: view the projections as (B, N, H, Dh) and transpose to "
        "(B, H, N, Dh); a direct view(B, H, N, Dh) mixes tokens and heads"
    )
    return [
        (
            lambda: finish((sq_dist / s).softmax(-1)),
            "the softmax sees +||q_i - k_j||^2: the minus sign is missing, "
            "so every token attends to the FARTHEST tokens. Negate the squared distance before the softmax",
        ),
        (
            lambda: finish((-sq_dist / (Dh * s)).softmax(-1)),
            "the squared distance is Dh times too small: you took the "
            "MEAN of the squared differences; use the SUM over the head width (.sum(dim=-1))",
        ),
        (
            lambda: finish((-sq_dist).softmax(-1)),
            "the 1/sqrt(Dh) scaling is missing: divide the squared distance by "
            "sqrt(Dh) BEFORE the softmax (ViTGAN eq. 3)",
        ),
        (
            lambda: finish((-sq_dist).softmax(-1) / s),
            "the 1/sqrt(Dh) scaling is applied AFTER the softmax (the rows "
            "of the attention no longer sum to 1): scale the logits, then take the softmax",
        ),
        (
            lambda: finish((-sq_dist / Dh).softmax(-1)),
            "the squared distance is divided by Dh: divide by sqrt(Dh) once (math.sqrt(self.head_dim))",
        ),
        (
            lambda: finish((-sq_dist / math.sqrt(D)).softmax(-1)),
            f"the scale is 1/sqrt(D) = 1/sqrt({D}), the full width: L2 attention scales by the HEAD "
            f"width, 1/sqrt(Dh) = 1/sqrt({Dh}) (self.head_dim = dim // num_heads)",
        ),
        (
            lambda: finish((-sq_dist / math.sqrt(N)).softmax(-1)),
            f"the scale is 1/sqrt(N) = 1/sqrt({N}), the number of tokens: scale by the head width, "
            f"1/sqrt(Dh) = 1/sqrt({Dh}) (self.head_dim)",
        ),
        (
            lambda: sdpa_default_scale(),
            "F.scaled_dot_product_attention on the augmented (Dh + 1)-wide vectors uses its default scale "
            "1/sqrt(Dh + 1): pass scale=1 / math.sqrt(self.head_dim)",
        ),
        (
            lambda: finish(logits.softmax(-2)),
            "the softmax runs over the wrong axis (the queries, dim=-2): "
            "each query's weights over the keys must sum to 1, so use softmax(dim=-1)",
        ),
        (
            lambda: finish(logits.softmax(1)),
            "the softmax runs over the HEADS (dim=1): each query's weights over the keys must sum to 1, "
            "so use softmax(dim=-1)",
        ),
        (
            lambda: finish(logits),
            "the softmax is missing: the attention weights are softmax(logits, dim=-1), each row summing "
            "to 1, not the raw logits",
        ),
        (
            lambda: finish((q @ q.transpose(-2, -1) / s).softmax(-1)),
            "this is dot-product attention "
            "softmax(q.k / sqrt(Dh)): use minus the squared distance, -||q_i - k_j||^2 / sqrt(Dh)",
        ),
        (
            lambda: finish((-sq_dist.clamp_min(0).sqrt() / s).softmax(-1)),
            "the distance is not squared: ViTGAN eq. 3 uses -||q_i - k_j||^2 = "
            "-(|q_i|^2 - 2 q_i.k_j + |k_j|^2), no square root",
        ),
        (
            lambda: finish((-(sq_dist + 4 * q @ q.transpose(-2, -1)) / s).softmax(-1)),
            "the cross term has the wrong sign: ||q - k||^2 = |q|^2 - 2 q.k + |k|^2 (yours adds +2 q.k)",
        ),
        (
            lambda: finish((2 * q @ q.transpose(-2, -1) / s).softmax(-1)),
            "|k_j|^2 is added as a COLUMN (B, H, N, 1), the same for every key, so the softmax drops it and "
            "sees only 2 q_i.k_j / sqrt(Dh): make it a row, q_sq.transpose(-2, -1), shape (B, H, 1, N)",
        ),
        (
            lambda: finish(logits.softmax(-1), values=q),
            "the values come from self.qk: the values are the heads of self.v(x) (only q and k are tied)",
        ),
        (
            lambda: finish(logits.softmax(-1), values=split(x)),
            "the values are the raw input x: project them first, v = heads of self.v(x)",
        ),
        (
            lambda: finish(ref_logits(split(x), split(x)).softmax(-1)),
            "the queries and keys are the raw input x: project them first, q = k = heads of self.qk(x)",
        ),
        (
            lambda: finish(ref_logits(q, v).softmax(-1)),
            "the keys come from self.v: with tied weights the keys ARE the queries, k = q = heads of "
            "self.qk(x); self.v gives only the values",
        ),
        (
            lambda: finish(logits.softmax(-1), proj=False),
            "the output projection self.proj is missing: merge "
            "the heads back to (B, N, D) and apply self.proj",
        ),
        (
            lambda: ref.proj((logits.softmax(-1) @ v).reshape(B, N, D)),
            "the heads are merged wrongly: (B, H, N, Dh) must go back to (B, N, H, Dh) with transpose(1, 2) "
            "BEFORE the reshape to (B, N, D); a direct reshape mixes tokens and heads",
        ),
        (lambda: no_heads(s), no_heads_msg),
        (lambda: no_heads(math.sqrt(D)), no_heads_msg),
        (lambda: ref.proj(bad_heads().transpose(1, 2).reshape(B, N, D)), split_msg),
        (lambda: ref.proj(bad_heads().reshape(B, N, D)), split_msg),
    ]


def _module_call(mod: nn.Module, x: torch.Tensor, D: int, H: int) -> torch.Tensor:
    """``mod(x)`` on a copy of x, checked for type, shape, dtype and finiteness."""
    B, N, _ = x.shape
    with stage(f"L2MultiHeadAttention(dim={D}, num_heads={H}) on x of shape {(B, N, D)}"):
        out = mod(x.clone())
    what = f"L2MultiHeadAttention(dim={D}, num_heads={H}) on x of shape {(B, N, D)}"
    expect(isinstance(out, torch.Tensor), f"{what} should return a torch.Tensor, got {type(out).__name__}")
    if tuple(out.shape) != (B, N, D):
        squeeze = (
            f" (with B = {B} or N = {N}, a .squeeze() without an axis drops it: name the axis)"
            if 1 in (B, N)
            else ""
        )
        fail(f"{what} should have shape {(B, N, D)}, got {tuple(out.shape)}{squeeze}")
    expect(
        out.dtype == x.dtype, f"{what}: the output is {out.dtype} for {x.dtype} input; keep the input's dtype"
    )
    expect(bool(torch.isfinite(out).all()), f"{what} contains NaN or inf values")
    return out


@checker(
    "3.2",
    "L2 attention module with tied W_q = W_k",
    hints=HINTS_MODULE,
    reference="vitgan_lite.attention:L2MultiHeadAttention",
)
def check_l2_attention(learner_cls: type[nn.Module]) -> None:
    """Check a learner's ``L2MultiHeadAttention(dim, num_heads)`` class against the package's."""
    for seed, (B, N, D, H) in enumerate(MODULE_CASES + MODULE_EDGE_CASES):
        mod, ref = _learner_and_reference(learner_cls, D, H, seed)
        x = torch.randn(B, N, D, generator=seeded(100 + seed))  # (B, N, D)
        sizes = {"B": B, "N": N, "H": H, "Dh": D // H}
        try:
            out = _module_call(mod, x, D, H)
        except ExerciseFailed:
            raise
        except Exception as e:
            if seed == 0 or 1 not in sizes.values():
                raise
            fail(_size_one_crash(e, f"dim={D}, num_heads={H}, x of shape {(B, N, D)}", sizes))
        with torch.no_grad():
            expected = ref(x)  # (B, N, D)
            if not _close(out, expected):
                for wrong, message in _variants(ref, x):
                    if _close(out, wrong()):
                        fail(f"for dim={D}, num_heads={H}: {message}")
                ones = ", ".join(f"{n} = 1" for n, v in sizes.items() if v == 1)
                note = (
                    f" (the first sizes passed; here {ones}: a .squeeze() without an axis?)"
                    if seed and ones
                    else ""
                )
                fail(
                    f"for dim={D}, num_heads={H}, x of shape {(B, N, D)}: the output differs from "
                    "softmax(-||q_i - k_j||^2 / sqrt(Dh)) v with q = k = split_heads(self.qk(x)), v = "
                    f"split_heads(self.v(x)), heads merged back and passed through self.proj{note}"
                )

    # Defining property 1: only differences q_i - q_j matter, so shifting the qk bias (the same vector
    # added to every query and key) changes nothing. Untied or dot-product attention would change.
    mod, _ = _learner_and_reference(learner_cls, 8, 2, 20)
    x = torch.randn(3, 6, 8, generator=seeded(21))  # (B, N, D)
    with torch.no_grad():
        before = mod(x)  # (B, N, D)
        if mod.qk.bias is not None:  # a bias-free qk passes this property by construction
            mod.qk.bias.add_(3.0 * torch.randn(8, generator=seeded(22)))
        expect_close(
            mod(x),
            before,
            "shifting every query and key by the same vector (the qk bias) must not change L2 "
            "attention: use the SAME projection self.qk for the queries and the keys",
            atol=1e-4,
            rtol=1e-3,
        )

    # Defining property 2 (W_q = W_k puts each row's max on the diagonal): with W_qk = W_v = W_o = I and
    # tokens far apart, each token attends (almost) only to itself, so the output is (almost) the input.
    mod = learner_cls(dim=4, num_heads=1)
    with torch.no_grad():
        for name in ("qk", "v", "proj"):
            getattr(mod, name).weight.copy_(torch.eye(4))
            if getattr(mod, name).bias is not None:
                getattr(mod, name).bias.zero_()
        x = 10.0 * torch.randn(2, 5, 4, generator=seeded(23))  # (B, N, D), far apart tokens
        expect_close(
            mod(x),
            x,
            "with identity projections and far-apart tokens each token should attend to itself "
            "(its distance to itself is 0, the row's maximum logit)",
            atol=1e-3,
            rtol=1e-3,
        )

    # Gradients: the same as the reference's for every parameter and the input. qk.bias is left out: it
    # cancels in q_i - q_j, so its gradient is (up to rounding) zero by design.
    mod, ref = _learner_and_reference(learner_cls, 8, 2, 24)
    x0 = torch.randn(3, 5, 8, generator=seeded(25))  # (B, N, D)
    G = torch.randn(3, 5, 8, generator=seeded(26))  # an upstream gradient
    xs = [x0.clone().requires_grad_(True) for _ in range(2)]
    out = mod(xs[0])
    expect(out.requires_grad, f"no gradient flows through your module: {DETACHED_MESSAGE}")
    (out * G).sum().backward()
    (ref(xs[1]) * G).sum().backward()
    ref_params = dict(ref.named_parameters())
    for name, p in mod.named_parameters():
        if name == "qk.bias":
            continue
        expect(p.grad is not None, f"{name} gets no gradient: {DETACHED_MESSAGE}")
        expect(
            _close(p.grad, ref_params[name].grad),
            f"the gradient of {name} differs from the reference's: {DETACHED_MESSAGE}",
        )
    expect(
        xs[0].grad is not None and _close(xs[0].grad, xs[1].grad),
        f"the gradient with respect to the input x differs from the reference's: {DETACHED_MESSAGE}",
    )

    # cdist and double backward (R1 penalties differentiate the discriminator's gradient once more).
    mod, ref = _learner_and_reference(learner_cls, 6, 2, 30)  # float32 weights, exact in float64
    mod, ref = mod.double(), ref.double()
    x = torch.randn(1, DOUBLE_BACKWARD_TOKENS, 6, generator=seeded(31), dtype=torch.float64)  # (B, N, D)
    _check_double_backward(mod, ref, x, "your L2MultiHeadAttention")


__all__ = ["check_l2_attention", "check_l2_attention_logits"]
