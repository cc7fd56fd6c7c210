"""Tests for vitgan_lite.attention (lesson 03): dot-product MSA and ViTGAN's L2 attention with W_q = W_k."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import assert_grads_reach_every_parameter
from torch import nn

from vitgan_lite.attention import (
    L2MultiHeadAttention,
    MultiHeadAttention,
    dot_product_attention,
    l2_attention_logits,
)


def _grads(mod: nn.Module, x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Output and the gradients of <mod(x), w> w.r.t. x and every parameter."""
    x = x.clone().requires_grad_(True)
    out = mod(x)
    params = dict(mod.named_parameters())
    grads = torch.autograd.grad((out * w).sum(), [x, *params.values()])
    return out, {"x": grads[0], **dict(zip(params, grads[1:]))}


# Tied W_q = W_k: q_i - k_j = (x_i - x_j) W, so the shared bias cancels in every logit and its true gradient
# is zero; only float32 rounding is left.
TIED_QK_BIAS = ("qk.bias",)


# ----------------------------------------------------------------------------- dot-product attention
def test_dot_product_attention_hand_value() -> None:
    # One head, Dh = 1, q = k = [[1], [0]], v = [[1], [0]].
    # Row 0 logits: [1*1, 1*0] / sqrt(1) = [1, 0] -> softmax = [e/(e+1), 1/(e+1)]; out_0 = e/(e+1) = 0.731059.
    # Row 1 logits: [0, 0] -> uniform -> out_1 = 0.5.
    q = torch.tensor([[1.0], [0.0]]).view(1, 1, 2, 1)
    v = torch.tensor([[1.0], [0.0]]).view(1, 1, 2, 1)
    out, attn = dot_product_attention(q, q, v)
    assert out.shape == (1, 1, 2, 1) and attn.shape == (1, 1, 2, 2)
    assert out[0, 0, 0, 0].item() == pytest.approx(math.e / (math.e + 1), abs=1e-6)
    assert out[0, 0, 1, 0].item() == pytest.approx(0.5, abs=1e-6)
    torch.testing.assert_close(attn.sum(-1), torch.ones(1, 1, 2))


def test_dot_product_attention_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"q must have shape \(B, H, N, Dh\)"):
        dot_product_attention(torch.randn(2, 5, 4), torch.randn(2, 5, 4), torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match="every key needs exactly one value"):
        dot_product_attention(torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 4), torch.randn(1, 2, 6, 4))


@pytest.mark.parametrize("batch, num_heads", [(1, 1), (3, 2), (5, 4)])
def test_mha_matches_torch_reference(batch: int, num_heads: int) -> None:
    torch.manual_seed(0)
    dim, n = 8, 7
    ref = nn.MultiheadAttention(dim, num_heads, batch_first=True)
    x = torch.randn(batch, n, dim)
    for fast in (True, False):
        mod = MultiHeadAttention(dim, num_heads, fast=fast)
        with torch.no_grad():  # same weights: torch stacks W_q, W_k, W_v in in_proj as qkv does
            ref.in_proj_weight.copy_(mod.qkv.weight)
            ref.in_proj_bias.copy_(mod.qkv.bias)
            ref.out_proj.weight.copy_(mod.proj.weight)
            ref.out_proj.bias.copy_(mod.proj.bias)
        expected, _ = ref(x, x, x, need_weights=False)
        out = mod(x)
        assert out.shape == (batch, n, dim)
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_mha_fast_equals_naive_with_gradients() -> None:
    torch.manual_seed(1)
    fast, naive = MultiHeadAttention(12, 3, fast=True), MultiHeadAttention(12, 3, fast=False)
    naive.load_state_dict(fast.state_dict())
    x, w = torch.randn(3, 5, 12), torch.randn(3, 5, 12)
    out_f, g_f = _grads(fast, x, w)
    out_n, g_n = _grads(naive, x, w)
    torch.testing.assert_close(out_f, out_n, atol=1e-5, rtol=1e-5)
    for name in g_f:
        torch.testing.assert_close(g_f[name], g_n[name], atol=1e-5, rtol=1e-5, msg=name)
    fast(x).square().sum().backward()
    assert_grads_reach_every_parameter(fast)  # dot-product attention: a fused qkv, no tied bias


# ----------------------------------------------------------------------------- L2 attention logits
def test_l2_logits_hand_value() -> None:
    # One head, W_qk = I, bias 0, Dh = 2, X = [[0,0],[1,0],[3,0]], so q = k = X.
    # Row 0: squared distances [0, 1, 9] -> logits -[0, 1, 9] / sqrt(2) = [0, -0.707107, -6.363961].
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    logits = l2_attention_logits(x.view(1, 1, 3, 2), x.view(1, 1, 3, 2))
    torch.testing.assert_close(logits[0, 0, 0], torch.tensor([0.0, -0.707107, -6.363961]), atol=1e-5, rtol=0)

    mod = L2MultiHeadAttention(dim=2, num_heads=1)
    with torch.no_grad():
        mod.qk.weight.copy_(torch.eye(2))
        mod.qk.bias.zero_()
    probs = mod.attention_probs(x.unsqueeze(0))  # (1, 1, 3, 3)
    torch.testing.assert_close(probs[0, 0, 0], torch.tensor([0.0, -0.707107, -6.363961]).softmax(0))


def test_l2_logits_match_cdist_reference() -> None:
    # Independent reference: -cdist(q, k)^2 / sqrt(Dh) (fine for a forward check; the module avoids cdist
    # because its backward is not twice differentiable).
    torch.manual_seed(2)
    q, k = torch.randn(3, 2, 6, 5), torch.randn(3, 2, 6, 5)
    expected = -torch.cdist(q, k).square() / math.sqrt(5)
    torch.testing.assert_close(l2_attention_logits(q, k), expected, atol=1e-4, rtol=1e-5)


def test_l2_logits_rejects_mismatched_qk() -> None:
    with pytest.raises(ValueError, match="q and k must have the same shape"):
        l2_attention_logits(torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 3))


# ----------------------------------------------------------------------------- L2MultiHeadAttention
@pytest.mark.parametrize("batch, dim, num_heads", [(1, 8, 1), (3, 8, 2), (5, 12, 4), (2, 6, 3)])
def test_l2_fast_equals_naive_outputs_and_gradients(batch: int, dim: int, num_heads: int) -> None:
    torch.manual_seed(batch * 100 + num_heads)
    fast = L2MultiHeadAttention(dim, num_heads, fast=True)
    naive = L2MultiHeadAttention(dim, num_heads, fast=False)
    naive.load_state_dict(fast.state_dict())
    x, w = torch.randn(batch, 7, dim), torch.randn(batch, 7, dim)
    out_f, g_f = _grads(fast, x, w)
    out_n, g_n = _grads(naive, x, w)
    assert out_f.shape == (batch, 7, dim) and torch.isfinite(out_f).all()
    torch.testing.assert_close(out_f, out_n, atol=1e-5, rtol=1e-5)
    for name in g_f:
        torch.testing.assert_close(g_f[name], g_n[name], atol=1e-5, rtol=1e-5, msg=name)


@pytest.mark.parametrize("fast", [True, False])
def test_l2_every_parameter_gets_gradient(fast: bool) -> None:
    torch.manual_seed(3)
    mod = L2MultiHeadAttention(8, 2, fast=fast)
    (mod(torch.randn(3, 5, 8)) * torch.randn(3, 5, 8)).sum().backward()
    assert_grads_reach_every_parameter(mod, allow_zero=TIED_QK_BIAS)


def test_l2_qk_is_the_only_query_key_weight() -> None:
    mod = L2MultiHeadAttention(8, 2)
    assert {n for n, _ in mod.named_parameters()} == {
        "qk.weight",
        "qk.bias",
        "v.weight",
        "v.bias",
        "proj.weight",
        "proj.bias",
    }
    assert mod.qk.weight.shape == (8, 8) and mod.v.weight.shape == (8, 8)


def test_l2_diagonal_is_row_max() -> None:
    # Tied W_q = W_k: token i is at distance 0 from itself, so its logit to itself (0) is its row's max.
    torch.manual_seed(4)
    mod = L2MultiHeadAttention(12, 3)
    probs = mod.attention_probs(torch.randn(3, 9, 12))  # (B, H, N, N)
    assert probs.shape == (3, 3, 9, 9)
    torch.testing.assert_close(probs.sum(-1), torch.ones(3, 3, 9))
    diag = probs.diagonal(dim1=-2, dim2=-1)  # (B, H, N)
    torch.testing.assert_close(diag, probs.amax(dim=-1))


@pytest.mark.parametrize("fast", [True, False])
def test_l2_invariant_to_shifting_q_and_k_together(fast: bool) -> None:
    # Changing the qk bias adds the same vector t to every q_i and k_j; |q_i - k_j| is unchanged, so the
    # attention and the output are too. (Dot-product attention would change: q.k picks up t terms.)
    torch.manual_seed(5)
    mod = L2MultiHeadAttention(8, 2, fast=fast)
    x = torch.randn(3, 6, 8)
    probs, out = mod.attention_probs(x), mod(x)
    with torch.no_grad():
        mod.qk.bias.add_(3.0 * torch.randn(8))
    torch.testing.assert_close(mod.attention_probs(x), probs, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(mod(x), out, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("fast", [True, False])
def test_l2_double_backward(fast: bool) -> None:
    # R1-style: grad of the output w.r.t. the input with create_graph=True, then backward of its norm.
    torch.manual_seed(6)
    mod = L2MultiHeadAttention(8, 2, fast=fast)
    x = torch.randn(3, 5, 8, requires_grad=True)
    (g,) = torch.autograd.grad(mod(x).square().sum(), x, create_graph=True)
    g.norm().backward()
    assert_grads_reach_every_parameter(mod, allow_zero=TIED_QK_BIAS)


@pytest.mark.parametrize("fast", [True, False])
def test_l2_attention_is_lipschitz_where_dot_product_is_not(fast: bool) -> None:
    # Kim et al. 2021: let token 0 sit at the origin and scale the other tokens by s. Dot-product token 0
    # attends uniformly (all its logits are 0) to values that grow with s, and its attention weights move
    # with s too: the Jacobian of its output grows like s^2. With L2 attention and W_q = W_k, token 0
    # attends to itself (the farther the others, the more so) and the Jacobian stays bounded.
    torch.manual_seed(0)
    dim, n = 8, 5
    dot = MultiHeadAttention(dim, 2, qkv_bias=False)
    l2 = L2MultiHeadAttention(dim, 2, qkv_bias=False, fast=fast)
    x0 = torch.randn(1, n, dim)
    x0[:, 0] = 0.0

    def jac_norm(mod: nn.Module, s: float) -> float:
        J = torch.autograd.functional.jacobian(lambda z: mod(z)[0, 0], s * x0)  # (D, 1, N, D)
        return torch.linalg.matrix_norm(J.reshape(dim, -1), ord=2).item()

    dot_16, dot_64 = jac_norm(dot, 16.0), jac_norm(dot, 64.0)
    l2_16, l2_64 = jac_norm(l2, 16.0), jac_norm(l2, 64.0)
    assert dot_64 > 8.0 * dot_16  # s^2 growth would give 16x; demand at least 8x
    assert l2_64 < 1.5 * l2_16  # bounded: no growth
    assert dot_64 > 50.0 * l2_64


@pytest.mark.parametrize("cls", [MultiHeadAttention, L2MultiHeadAttention])
def test_attention_rejects_bad_sizes(cls: type[nn.Module]) -> None:
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        cls(10, 3)
    mod = cls(8, 2)
    with pytest.raises(ValueError, match=r"x must have shape \(\*, \*, 8\)"):
        mod(torch.randn(2, 5, 6))
    with pytest.raises(ValueError, match=r"x must have shape"):
        mod(torch.randn(5, 8))
