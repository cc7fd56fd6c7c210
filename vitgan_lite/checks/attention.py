"""Checkers for lesson 03 (L2 attention, ViTGAN eq. 3): Exercise 3.1 and Exercise 3.2.

* 3.1 ``l2_attention_logits(q, k)``: (B, H, N, Dh) queries and keys -> (B, H, N, N) logits
  ``-||q_i - k_j||^2 / sqrt(Dh)``.
* 3.2 ``L2MultiHeadAttention(dim, num_heads)``: an ``nn.Module`` with one tied projection ``qk``
  (W_q = W_k), a value projection ``v`` and an output projection ``proj``: the package's class, with the
  same layout, so the checker copies the reference's weights into it.

Each checker compares with the package's reference on several seeds and shapes, then computes what the
known mistakes would output (no minus sign, mean instead of sum, missing 1/sqrt(Dh), scaling after the
softmax, softmax over the wrong axis, torch.cdist, untied q and k, ...) to name the one it sees.

Shape legend: ``B`` batch, ``N`` tokens, ``D`` width, ``H`` heads, ``Dh`` head width (D / H).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from vitgan_lite.attention import L2MultiHeadAttention as RefL2MultiHeadAttention
from vitgan_lite.attention import l2_attention_logits as ref_logits
from vitgan_lite.checks._core import checker, expect, expect_close, expect_tensor, fail, seeded

# (B, H, N, Dh): odd batches, one and several heads, several head widths (Dh > 1 so that the mistakes
# "mean instead of sum" and "missing 1/sqrt(Dh)" change the numbers).
LOGIT_CASES = [(2, 1, 5, 4), (3, 2, 7, 3), (1, 3, 4, 8), (5, 2, 6, 2)]
# (B, N, D, H) for the module.
MODULE_CASES = [(3, 5, 12, 3), (1, 7, 8, 2), (5, 4, 6, 1), (2, 9, 16, 4)]
# More than 25 tokens: torch.cdist then switches to its matrix-multiply path, whose double backward is NaN.
DOUBLE_BACKWARD_TOKENS = 27

CDIST_MESSAGE = (
    "your code calls torch.cdist (its backward shows up in the autograd graph). The values are right, but "
    "cdist's backward is not safely twice differentiable (NaN second derivatives for more than 25 tokens), "
    "and the R1 gradient penalty of a GAN discriminator needs a double backward. Use the expanded form "
    "-(|q_i|^2 - 2 q_i.k_j + |k_j|^2) / sqrt(Dh), built from square(), sum() and a matrix product"
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


def _diagnose_logits(out: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> str:
    """Name the mistake that gives ``out`` for ``q``, ``k``, if it is one we know."""
    Dh = q.shape[-1]
    s = math.sqrt(Dh)
    ref = ref_logits(q, k)  # (B, H, N, N)
    sq_dist = -ref * s  # (B, H, N, N), ||q_i - k_j||^2
    q_sq = q.square().sum(-1, keepdim=True)  # (B, H, N, 1)
    k_sq = k.square().sum(-1).unsqueeze(-2)  # (B, H, 1, N)
    qk = q @ k.transpose(-2, -1)  # (B, H, N, N)
    known = [
        (
            -ref,
            "the logits are +||q_i - k_j||^2 / sqrt(Dh): the minus sign is missing, so far keys get the "
            "largest logits. Negate the squared distance",
        ),
        (
            ref / Dh,
            "the logits are Dh times too small: you took the MEAN of the squared differences over Dh. "
            "The squared Euclidean distance is a SUM over the head width: .sum(dim=-1), not .mean(dim=-1)",
        ),
        (
            ref * s,
            "the logits are sqrt(Dh) times too large: the 1/sqrt(Dh) scaling is missing "
            "(ViTGAN eq. 3 divides the squared distance by sqrt(d_h))",
        ),
        (ref / s, "the logits are sqrt(Dh) times too small: divide by sqrt(Dh) once, not by Dh"),
        (
            -sq_dist.clamp_min(0).sqrt() / s,
            "the distance is not squared: ViTGAN eq. 3 uses the SQUARED "
            "distance ||q_i - k_j||^2, i.e. |q_i|^2 - 2 q_i.k_j + |k_j|^2",
        ),
        (
            -(q_sq + 2 * qk + k_sq) / s,
            "the cross term has the wrong sign: ||q - k||^2 = |q|^2 - 2 q.k + |k|^2 "
            "(yours adds +2 q.k, which is ||q + k||^2)",
        ),
        (
            ref + q_sq / s,
            "the |q_i|^2 term is missing. Softmax over the keys would not notice (it is the same "
            "for every key j), but the logits should be the full -||q_i - k_j||^2 / sqrt(Dh)",
        ),
        (
            ref.transpose(-2, -1),
            "rows and columns are swapped: row i must belong to query i and column j to "
            "key j (put |q_i|^2 in a column, shape (B, H, N, 1), and |k_j|^2 in a row, shape (B, H, 1, N))",
        ),
        (ref_logits(q, q), "the result does not depend on k: you used q where k belongs"),
        (ref_logits(k, k), "the result does not depend on q: you used k where q belongs"),
        (
            qk / s,
            "these are dot-product logits q_i.k_j / sqrt(Dh), not L2 ones: use minus the squared distance",
        ),
    ]
    for wrong, message in known:
        if _close(out, wrong):
            return message
    return (
        "the logits differ from -||q_i - k_j||^2 / sqrt(Dh). Compute |q_i|^2 as "
        "q.square().sum(-1, keepdim=True) (B, H, N, 1), |k_j|^2 as a row (B, H, 1, N), the cross term "
        "q @ k.transpose(-2, -1) (B, H, N, N), "
        "then -(|q|^2 - 2 q.k + |k|^2) / sqrt(Dh)"
    )


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


@checker("3.1", "L2 attention logits")
def check_l2_attention_logits(
    l2_attention_logits: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> None:
    """Check a learner's ``l2_attention_logits(q, k) -> (B, H, N, N)`` against the reference."""
    for seed, (B, H, N, Dh) in enumerate(LOGIT_CASES):
        g = seeded(seed)
        q, k = torch.randn(B, H, N, Dh, generator=g), torch.randn(B, H, N, Dh, generator=g)
        out = l2_attention_logits(q.clone(), k.clone())
        expect_tensor(out, (B, H, N, N), f"l2_attention_logits of q, k with shape {(B, H, N, Dh)}")
        if not _close(out, ref_logits(q, k)):
            fail(f"for q, k of shape {(B, H, N, Dh)}: {_diagnose_logits(out, q, k)}")

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

    # cdist: right values, but named here, before the generic double-backward check.
    q = torch.randn(1, 1, DOUBLE_BACKWARD_TOKENS, 3, generator=seeded(11), dtype=torch.float64)
    _check_double_backward(
        lambda x: l2_attention_logits(x, x), lambda x: ref_logits(x, x), q, "l2_attention_logits"
    )


def _randomize(ref: nn.Module, seed: int) -> None:
    """Give the reference fresh weights from a seeded generator (leaves the global RNG alone)."""
    g = seeded(seed)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1]))  # (fan_out, fan_in) or bias


def _diagnose_parameters(mod: nn.Module, ref: nn.Module) -> str:
    """Why the learner's parameters do not line up with the reference's qk / v / proj layout."""
    D = ref.dim
    shapes = {n: tuple(p.shape) for n, p in mod.named_parameters()}
    prefixes = {n.rsplit(".", 1)[0] for n in shapes}
    names = ", ".join(f"{n} {s}" for n, s in shapes.items()) or "none"
    has_q = any(p.split(".")[-1] in ("q", "to_q", "w_q", "W_q", "query") for p in prefixes)
    has_k = any(p.split(".")[-1] in ("k", "to_k", "w_k", "W_k", "key") for p in prefixes)
    stacked = any(len(s) == 2 and s[1] == D and s[0] in (2 * D, 3 * D) for s in shapes.values())
    if has_q or has_k or stacked:
        return (
            "q and k come from separate projections (untied W_q and W_k; your parameters: "
            f"{names}). ViTGAN eq. 3 ties them, W_q = W_k, which is what makes L2 attention Lipschitz: "
            "create ONE nn.Linear(dim, dim) called self.qk and use its output as both the queries and "
            "the keys"
        )
    expected = ", ".join(f"{n} {tuple(p.shape)}" for n, p in ref.named_parameters())
    return (
        f"the module's parameters should be exactly {expected} (the layout of the package's "
        f"L2MultiHeadAttention, so the checker can copy its weights in); yours are: {names}"
    )


def _learner_and_reference(
    learner_cls: type[nn.Module], dim: int, num_heads: int, seed: int
) -> tuple[nn.Module, RefL2MultiHeadAttention]:
    """The learner's module and the reference, both holding the reference's seeded random weights."""
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


def _variants(ref: RefL2MultiHeadAttention, x: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    """What the known mistakes output, with the reference's weights."""
    B, N, D = x.shape
    H, Dh = ref.num_heads, ref.head_dim
    s = math.sqrt(Dh)
    q = ref._split_heads(ref.qk(x))  # (B, H, N, Dh), k = q (tied)
    v = ref._split_heads(ref.v(x))  # (B, H, N, Dh)
    sq_dist = -ref_logits(q, q) * s  # (B, H, N, N), ||q_i - q_j||^2

    def finish(attn: torch.Tensor, proj: bool = True) -> torch.Tensor:
        out = (attn @ v).transpose(1, 2).reshape(B, N, D)  # (B, N, D)
        return ref.proj(out) if proj else out

    bad_split = ref.qk(x).view(B, H, N, Dh)  # (B, H, N, Dh), heads split without the transpose
    bad_v = ref.v(x).view(B, H, N, Dh)  # (B, H, N, Dh)
    bad_out = ref_logits(bad_split, bad_split).softmax(-1) @ bad_v  # (B, H, N, Dh)
    return [
        (
            finish((sq_dist / s).softmax(-1)),
            "the softmax sees +||q_i - k_j||^2: the minus sign is missing, "
            "so every token attends to the FARTHEST tokens. Negate the squared distance before the softmax",
        ),
        (
            finish((-sq_dist / (Dh * s)).softmax(-1)),
            "the squared distance is Dh times too small: you took the "
            "MEAN of the squared differences; use the SUM over the head width (.sum(dim=-1))",
        ),
        (
            finish((-sq_dist).softmax(-1)),
            "the 1/sqrt(Dh) scaling is missing: divide the squared distance by "
            "sqrt(Dh) BEFORE the softmax (ViTGAN eq. 3)",
        ),
        (
            finish((-sq_dist).softmax(-1) / s),
            "the 1/sqrt(Dh) scaling is applied AFTER the softmax (the rows "
            "of the attention no longer sum to 1): scale the logits, then take the softmax",
        ),
        (
            finish((-sq_dist / s).softmax(-2)),
            "the softmax runs over the wrong axis (the queries, dim=-2): "
            "each query's weights over the keys must sum to 1, so use softmax(dim=-1)",
        ),
        (
            finish((q @ q.transpose(-2, -1) / s).softmax(-1)),
            "this is dot-product attention "
            "softmax(q.k / sqrt(Dh)): use minus the squared distance, -||q_i - k_j||^2 / sqrt(Dh)",
        ),
        (
            finish((-sq_dist / s).softmax(-1), proj=False),
            "the output projection self.proj is missing: merge "
            "the heads back to (B, N, D) and apply self.proj",
        ),
        (
            ref.proj(bad_out.transpose(1, 2).reshape(B, N, D)),
            "the heads are split wrongly: view the projections as (B, N, H, Dh) and transpose to "
            "(B, H, N, Dh); a direct view(B, H, N, Dh) mixes tokens and heads",
        ),
        (
            ref.proj(bad_out.reshape(B, N, D)),
            "the heads are split wrongly: view the projections as "
            "(B, N, H, Dh) and transpose to (B, H, N, Dh); a direct view(B, H, N, Dh) mixes tokens and heads",
        ),
    ]


@checker("3.2", "L2 attention module with tied W_q = W_k")
def check_l2_attention(learner_cls: type[nn.Module]) -> None:
    """Check a learner's ``L2MultiHeadAttention(dim, num_heads)`` class against the package's."""
    for seed, (B, N, D, H) in enumerate(MODULE_CASES):
        mod, ref = _learner_and_reference(learner_cls, D, H, seed)
        x = torch.randn(B, N, D, generator=seeded(100 + seed))  # (B, N, D)
        out = mod(x.clone())
        expect_tensor(
            out, (B, N, D), f"L2MultiHeadAttention(dim={D}, num_heads={H}) on x of shape {(B, N, D)}"
        )
        with torch.no_grad():
            expected = ref(x)  # (B, N, D)
            if not _close(out, expected):
                for wrong, message in _variants(ref, x):
                    if _close(out, wrong):
                        fail(f"for dim={D}, num_heads={H}: {message}")
                fail(
                    f"for dim={D}, num_heads={H}, x of shape {(B, N, D)}: the output differs from "
                    "softmax(-||q_i - k_j||^2 / sqrt(Dh)) v with q = k = split_heads(self.qk(x)), v = "
                    "split_heads(self.v(x)), heads merged back and passed through self.proj"
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

    # Gradients reach every parameter. qk.bias is the exception: it cancels in q_i - q_j, so its gradient
    # is (up to rounding) zero by design.
    mod = learner_cls(dim=8, num_heads=2)
    (
        mod(torch.randn(3, 5, 8, generator=seeded(24))) * torch.randn(3, 5, 8, generator=seeded(25))
    ).sum().backward()
    for name, p in mod.named_parameters():
        expect(p.grad is not None, f"{name} got no gradient: is it used in forward?")
        if name != "qk.bias":
            expect(bool(p.grad.abs().sum() > 0), f"{name} got an all-zero gradient: is it used in forward?")

    # cdist and double backward (R1 penalties differentiate the discriminator's gradient once more).
    mod, ref = _learner_and_reference(learner_cls, 6, 2, 30)  # float32 weights, exact in float64
    mod, ref = mod.double(), ref.double()
    x = torch.randn(1, DOUBLE_BACKWARD_TOKENS, 6, generator=seeded(31), dtype=torch.float64)  # (B, N, D)
    _check_double_backward(mod, ref, x, "your L2MultiHeadAttention")


__all__ = ["check_l2_attention", "check_l2_attention_logits"]
