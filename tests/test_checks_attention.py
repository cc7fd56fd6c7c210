"""The lesson-03 checkers pass the reference and the solution, meet the stub kindly, reject real mistakes."""

import math

import torch
from helpers import assert_checker_contract, assert_rejects, mistakes_are_named
from torch import nn

from vitgan_lite import attention
from vitgan_lite.checks import check_l2_attention, check_l2_attention_logits

LESSON = "03_l2_attention"


def test_checker_contract(capsys):
    assert_checker_contract(
        LESSON,
        {
            "l2_attention_logits": (check_l2_attention_logits, attention.l2_attention_logits),
            "L2MultiHeadAttention": (check_l2_attention, attention.L2MultiHeadAttention),
        },
        capsys,
    )
    assert check_l2_attention(
        lambda dim, num_heads: attention.L2MultiHeadAttention(dim, num_heads, fast=True)
    )


# ----------------------------------------------------------------------------- 3.1: the logits
def _sq(q, k):
    """Squared distances by broadcasting (an independent reference): (B, H, N, 1, Dh) - (B, H, 1, N, Dh)."""
    return (q.unsqueeze(-2) - k.unsqueeze(-3)).square()  # (B, H, N, N, Dh)


def _cross_plus(q, k):
    q_sq, k_sq = q.square().sum(-1, keepdim=True), k.square().sum(-1).unsqueeze(-2)
    return -(q_sq + 2 * q @ k.transpose(-2, -1) + k_sq) / math.sqrt(q.shape[-1])


def _no_q_sq(q, k):
    return (2 * q @ k.transpose(-2, -1) - k.square().sum(-1).unsqueeze(-2)) / math.sqrt(q.shape[-1])


test_logit_mistakes_are_named = mistakes_are_named(
    check_l2_attention_logits,
    [
        (lambda q, k: _sq(q, k).sum(-1) / math.sqrt(q.shape[-1]), r"minus sign is missing"),
        (lambda q, k: -_sq(q, k).mean(-1) / math.sqrt(q.shape[-1]), r"MEAN of the squared.*SUM"),
        (lambda q, k: -_sq(q, k).sum(-1), r"1/sqrt\(Dh\) scaling is missing"),
        (lambda q, k: -_sq(q, k).sum(-1) / q.shape[-1], r"divide by sqrt\(Dh\) once, not by Dh"),
        (lambda q, k: -torch.cdist(q, k) / math.sqrt(q.shape[-1]), r"not squared"),
        (_cross_plus, r"cross term has the wrong sign"),
        (_no_q_sq, r"\|q_i\|\^2 term is missing"),
        (
            lambda q, k: -_sq(k, q).sum(-1) / math.sqrt(q.shape[-1]) + 0 * q.sum(),
            r"rows and columns are swapped",
        ),
        (lambda q, k: -_sq(q, q).sum(-1) / math.sqrt(q.shape[-1]), r"does not depend on k"),
        (lambda q, k: q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), r"dot-product logits"),
        (lambda q, k: -torch.cdist(q, k).square() / math.sqrt(q.shape[-1]), r"torch\.cdist.*expanded form"),
        (lambda q, k: -_sq(q, k).sum(-1)[..., :-1], r"should have shape"),
        (lambda q, k: -_sq(q, k).sum(-1) / math.sqrt(q.shape[-1]) + 0.5, r"differ from -\|\|q_i - k_j"),
    ],
)


def test_logits_that_are_not_twice_differentiable_are_rejected():
    class _SquareWithBadSecondDerivative(torch.autograd.Function):
        """x^2 whose backward (2x * g) is computed without a graph: a double backward cannot go through it."""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.square()

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return (2 * x * g).detach()

    def wrong(q, k):
        d = _SquareWithBadSecondDerivative.apply(q.unsqueeze(-2) - k.unsqueeze(-3))  # (B, H, N, N, Dh)
        return -d.sum(-1) / math.sqrt(q.shape[-1])

    assert_rejects(check_l2_attention_logits, wrong, r"second derivatives .* NaN or wrong|double backward")


# ----------------------------------------------------------------------------- 3.2: the module
class _Tied(nn.Module):
    """A correct, independently written L2 attention; the mistakes below override one piece of it."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qk, self.v, self.proj = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)

    def split(self, t):
        B, N, _ = t.shape
        return t.view(B, N, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, N, Dh)

    def attn(self, q, k):
        return (-_sq(q, k).sum(-1) / math.sqrt(self.head_dim)).softmax(-1)  # (B, H, N, N)

    def keys(self, x):
        return self.split(self.qk(x))

    def merge(self, out, x):
        return self.proj(out.transpose(1, 2).reshape(x.shape))  # (B, N, D)

    def forward(self, x):
        q = self.split(self.qk(x))
        return self.merge(self.attn(q, self.keys(x)) @ self.split(self.v(x)), x)


def test_independent_module_passes(capsys):
    assert check_l2_attention(_Tied)


class _Untied(_Tied):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__(dim, num_heads)
        del self.qk
        self.q, self.k = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x):
        q, k = self.split(self.q(x)), self.split(self.k(x))
        return self.merge(self.attn(q, k) @ self.split(self.v(x)), x)


class _UntiedStacked(_Tied):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__(dim, num_heads)
        self.qk = nn.Linear(dim, 2 * dim)

    def forward(self, x):
        q, k = self.qk(x).chunk(2, dim=-1)
        return self.merge(self.attn(self.split(q), self.split(k)) @ self.split(self.v(x)), x)


class _ExtraKey(_Tied):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__(dim, num_heads)
        self.k = nn.Linear(dim, dim)

    def keys(self, x):
        return self.split(self.k(x))


class _PositiveDistance(_Tied):
    def attn(self, q, k):
        return (_sq(q, k).sum(-1) / math.sqrt(self.head_dim)).softmax(-1)


class _Mean(_Tied):
    def attn(self, q, k):
        return (-_sq(q, k).mean(-1) / math.sqrt(self.head_dim)).softmax(-1)


class _NoScale(_Tied):
    def attn(self, q, k):
        return (-_sq(q, k).sum(-1)).softmax(-1)


class _ScaleAfterSoftmax(_Tied):
    def attn(self, q, k):
        return (-_sq(q, k).sum(-1)).softmax(-1) / math.sqrt(self.head_dim)


class _WrongAxis(_Tied):
    def attn(self, q, k):
        return (-_sq(q, k).sum(-1) / math.sqrt(self.head_dim)).softmax(-2)


class _DotProduct(_Tied):
    def attn(self, q, k):
        return (q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)).softmax(-1)


class _Cdist(_Tied):
    def attn(self, q, k):
        return (-torch.cdist(q, k).square() / math.sqrt(self.head_dim)).softmax(-1)


class _NoProj(_Tied):
    def merge(self, out, x):
        self.proj(x)  # computed, then forgotten
        return out.transpose(1, 2).reshape(x.shape)


class _BadSplit(_Tied):
    def split(self, t):
        B, N, _ = t.shape
        return t.view(B, self.num_heads, N, self.head_dim)


class _ZeroOutput(_Tied):
    def forward(self, x):
        return torch.zeros_like(x)


test_module_mistakes_are_named = mistakes_are_named(
    check_l2_attention,
    [
        (_Untied, r"separate projections \(untied.*W_q = W_k.*self\.qk"),
        (_UntiedStacked, r"separate projections \(untied"),
        (_ExtraKey, r"separate projections \(untied"),
        (_PositiveDistance, r"minus sign is missing.*FARTHEST"),
        (_Mean, r"MEAN of the squared differences.*SUM"),
        (_NoScale, r"1/sqrt\(Dh\) scaling is missing"),
        (_ScaleAfterSoftmax, r"scaling is applied AFTER the softmax"),
        (_WrongAxis, r"softmax runs over the wrong axis.*dim=-1"),
        (_DotProduct, r"dot-product attention"),
        (_Cdist, r"torch\.cdist.*double backward"),
        (_NoProj, r"output projection self\.proj is missing"),
        (_BadSplit, r"heads are split wrongly"),
        (_ZeroOutput, r"the output differs from softmax"),
    ],
)


def test_module_must_be_a_module_and_crashes_are_reported():
    class Crashes(_Tied):
        def forward(self, x):
            return x.view(-1, 7)

    assert_rejects(check_l2_attention, Crashes, r"your code raised RuntimeError")


def test_a_bias_free_tied_projection_is_accepted():
    # the shared qk bias cancels in every q_i - k_j: leaving it out is as right as keeping it
    class NoQkBias(attention.L2MultiHeadAttention):
        def __init__(self, dim, num_heads):
            super().__init__(dim, num_heads)
            self.qk = nn.Linear(dim, dim, bias=False)

    assert check_l2_attention(NoQkBias)
