"""Dot-product and L2 multi-head self-attention (ViTGAN eq. 2 and eq. 3), taught in
``notebooks/03_l2_attention.ipynb``.

A ViT block mixes tokens with multi-head self-attention (ViTGAN eq. 2, Vaswani et al. 2017)::

    Attention_h(X) = softmax(X W_q (X W_k)^T / sqrt(d_h)) X W_v

Kim et al. ("The Lipschitz constant of self-attention", ICML 2021) show that this map has no Lipschitz
bound: its Jacobian grows without limit as the inputs grow, which breaks the Lipschitz argument a GAN
discriminator relies on. ViTGAN (Sec. 4.1, eq. 3) therefore uses L2 attention in the discriminator; the
course writes it in Kim et al.'s form (ViTGAN's eq. 3 writes a distance d(.,.) with no sign or square)::

    Attention_h(X) = softmax(-||X W_q - X W_k||^2 / sqrt(d_h)) X W_v,   with W_q = W_k

i.e. the logit of query i and key j is minus the *squared* Euclidean distance between them, and the
query and key projections are *tied* (one weight). Kim et al.'s Theorem 3.2 bounds the Lipschitz constant
of their layer, which multiplies by X A_h (A_h = W_q W_q^T / sqrt(d_h)) where ViTGAN uses X W_v; tying
also puts every row's maximum logit (0) on the diagonal.

The generator keeps ordinary dot-product attention (``MultiHeadAttention``).

Shape legend: ``B`` batch, ``N`` tokens, ``D`` width, ``H`` heads, ``Dh`` head width (D / H).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vitgan_lite._shapes import check_shape
from vitgan_lite.linear import Linear


def _check_heads(dim: int, num_heads: int) -> None:
    """Refuse a width that does not split evenly across the heads."""
    if num_heads <= 0 or dim % num_heads:
        raise ValueError(
            f"dim {dim} is not divisible by num_heads {num_heads}: "
            "the width must split evenly across the heads (e.g. dim 192 with 3 heads)"
        )


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor | None = None) -> None:
    """q, k (and v) must be (B, H, N, Dh) with matching batch, heads, tokens and q/k width."""
    for name, t in (("q", q), ("k", k)) + ((("v", v),) if v is not None else ()):
        if t.ndim != 4:
            raise ValueError(
                f"{name} must have shape (B, H, N, Dh), got {tuple(t.shape)}: "
                "split the heads with x.view(B, N, H, Dh).transpose(1, 2)"
            )
    if q.shape != k.shape:
        raise ValueError(
            f"q and k must have the same shape (B, H, N, Dh), got {tuple(q.shape)} and {tuple(k.shape)}"
        )
    if v is not None and v.shape[:3] != k.shape[:3]:
        raise ValueError(
            f"v must share (B, H, N) with k, got v {tuple(v.shape)} and k {tuple(k.shape)}: "
            "every key needs exactly one value"
        )


def dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Naive scaled dot-product attention, softmax(q k^T / sqrt(Dh)) v (ViTGAN eq. 2).

    Args:
        q, k: (B, H, N, Dh) queries and keys.
        v: (B, H, N, Dv) values.

    Returns:
        out (B, H, N, Dv) and the attention probabilities attn (B, H, N, N), each row summing to 1.
    """
    _check_qkv(q, k, v)
    logits = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, N, N)
    attn = logits.softmax(dim=-1)  # (B, H, N, N), softmax over the keys j
    out = attn @ v  # (B, H, N, Dv)
    return out, attn


def l2_attention_logits(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """L2 attention logits -||q_i - k_j||^2 / sqrt(Dh) (ViTGAN eq. 3), for (B, H, N, Dh) inputs.

    Written in the expanded form -(|q_i|^2 - 2 q_i.k_j + |k_j|^2) / sqrt(Dh): every op in it has a
    twice-differentiable backward, unlike ``torch.cdist``, so gradient penalties (R1) that need a double
    backward through the discriminator still work. Returns (B, H, N, N).
    """
    _check_qkv(q, k)
    q_sq = q.square().sum(dim=-1, keepdim=True)  # (B, H, N, 1), |q_i|^2
    k_sq = k.square().sum(dim=-1).unsqueeze(-2)  # (B, H, 1, N), |k_j|^2
    qk = q @ k.transpose(-2, -1)  # (B, H, N, N), q_i . k_j
    # Minus sign: near keys get the large logits; the squared distance is a *sum* over Dh, not a mean.
    return -(q_sq - 2.0 * qk + k_sq) / math.sqrt(q.shape[-1])  # (B, H, N, N)


class MultiHeadAttention(nn.Module):
    """Standard multi-head self-attention (ViTGAN eq. 2), used by the generator.

    Args:
        dim: token width D.
        num_heads: number of heads H (must divide ``dim``).
        qkv_bias: whether the q/k/v projection has a bias.
        fast: use ``F.scaled_dot_product_attention`` (fused kernels where available) instead of the naive
            ``dot_product_attention``; both compute the same function.

    Forward: x (B, N, D) -> (B, N, D).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, fast: bool = True) -> None:
        super().__init__()
        _check_heads(dim, num_heads)
        self.dim, self.num_heads, self.head_dim, self.fast = dim, num_heads, dim // num_heads, fast
        # Linear: nn.Linear with a CPU speed knob (row blocks, vitgan_lite/linear.py), same function
        self.qkv = Linear(dim, 3 * dim, bias=qkv_bias)  # W_q, W_k, W_v stacked, as timm's ViT
        self.proj = Linear(dim, dim)  # W_o, merges the heads

    def attention_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits q_i . k_j / sqrt(Dh) for diagnostics, (B, N, D) -> (B, H, N, N)."""
        check_shape(x, (None, None, self.dim), name="x")
        B, N, _ = x.shape
        q, k, _ = self.qkv(x).view(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        return q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, H, N, N)

    def attention_probs(self, x: torch.Tensor) -> torch.Tensor:
        """Attention probabilities, (B, N, D) -> (B, H, N, N); row i is how much token i reads token j."""
        return self.attention_logits(x).softmax(dim=-1)  # (B, H, N, N)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, N, D) -> (B, N, D)."""
        check_shape(x, (None, None, self.dim), name="x")
        B, N, D = x.shape
        qkv = self.qkv(x).view(B, N, 3, self.num_heads, self.head_dim)  # (B, N, 3, H, Dh)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, H, N, Dh)
        if self.fast:
            out = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, Dh), default scale 1/sqrt(Dh)
        else:
            out, _ = dot_product_attention(q, k, v)  # (B, H, N, Dh)
        out = out.transpose(1, 2).reshape(B, N, D)  # (B, N, D), heads concatenated
        return self.proj(out)  # (B, N, D)


class L2MultiHeadAttention(nn.Module):
    """ViTGAN's L2 multi-head self-attention with tied weights W_q = W_k (ViTGAN eq. 3).

    One shared projection ``qk`` gives both the queries and the keys (so there is no separate q or k
    weight), ``v`` gives the values and ``proj`` merges the heads.

    Args:
        dim: token width D.
        num_heads: number of heads H (must divide ``dim``).
        qkv_bias: whether ``qk`` and ``v`` have a bias. A bias on ``qk`` shifts q and k alike, so it
            cancels in the distances: it is kept only to match the usual layer layout.
        fast: compute the attention with ``F.scaled_dot_product_attention`` through an equivalent
            dot product (see ``forward``); ``fast=False`` uses the naive ``l2_attention_logits``.

    A convolutional q/k/v projection over the token grid (CvT style) is deliberately left out: the
    discriminator's CLS token is not on the grid, and the paper's CIFAR-10 setting does not need it.

    Forward: x (B, N, D) -> (B, N, D).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, fast: bool = True) -> None:
        super().__init__()
        _check_heads(dim, num_heads)
        self.dim, self.num_heads, self.head_dim, self.fast = dim, num_heads, dim // num_heads, fast
        # Linear: nn.Linear with a CPU speed knob (row blocks, vitgan_lite/linear.py), same function
        self.qk = Linear(dim, dim, bias=qkv_bias)  # W_q = W_k, tied (ViTGAN eq. 3)
        self.v = Linear(dim, dim, bias=qkv_bias)  # W_v
        self.proj = Linear(dim, dim)  # W_o, merges the heads

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        B, N, _ = t.shape
        return t.view(B, N, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, N, Dh)

    def attention_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits -||q_i - k_j||^2 / sqrt(Dh) for diagnostics, (B, N, D) -> (B, H, N, N)."""
        check_shape(x, (None, None, self.dim), name="x")
        q = self._split_heads(self.qk(x))  # (B, H, N, Dh); k is the same tensor, W_q = W_k
        return l2_attention_logits(q, q)  # (B, H, N, N)

    def attention_probs(self, x: torch.Tensor) -> torch.Tensor:
        """Attention probabilities softmax(-||q_i - k_j||^2 / sqrt(Dh)), (B, N, D) -> (B, H, N, N).

        For diagnostics (attention entropy in lesson 10); row i is how much token i reads every token j.
        """
        return self.attention_logits(x).softmax(dim=-1)  # (B, H, N, N)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, N, D) -> (B, N, D)."""
        check_shape(x, (None, None, self.dim), name="x")
        B, N, D = x.shape
        q = self._split_heads(self.qk(x))  # (B, H, N, Dh); tied: k = q
        v = self._split_heads(self.v(x))  # (B, H, N, Dh)
        if self.fast:
            # -|q_i - k_j|^2 = -|q_i|^2 + (2 q_i.k_j - |k_j|^2). The first term is the same for every key j
            # of row i, so softmax ignores it; the rest is one dot product of augmented vectors:
            # q'_i = [2 q_i, 1], k'_j = [k_j, -|k_j|^2]  ->  q'_i . k'_j = 2 q_i.k_j - |k_j|^2.
            ones = torch.ones_like(q[..., :1])  # (B, H, N, 1)
            q_aug = torch.cat([2.0 * q, ones], dim=-1)  # (B, H, N, Dh + 1)
            k_aug = torch.cat([q, -q.square().sum(dim=-1, keepdim=True)], dim=-1)  # (B, H, N, Dh + 1)
            # The scale is 1/sqrt(Dh) of the paper, not SDPA's default 1/sqrt(Dh + 1). As the value width
            # (Dh) differs from the q/k width (Dh + 1), PyTorch usually picks its math kernel, which (unlike
            # the fused kernels) supports the double backward of R1 penalties. If a fused kernel is ever
            # chosen and a double backward fails, use fast=False or sdpa_kernel(SDPBackend.MATH).
            out = F.scaled_dot_product_attention(
                q_aug, k_aug, v, scale=1.0 / math.sqrt(self.head_dim)
            )  # (B, H, N, Dh)
        else:
            attn = l2_attention_logits(q, q).softmax(dim=-1)  # (B, H, N, N)
            out = attn @ v  # (B, H, N, Dh)
        out = out.transpose(1, 2).reshape(B, N, D)  # (B, N, D), heads concatenated
        return self.proj(out)  # (B, N, D)


__all__ = ["dot_product_attention", "MultiHeadAttention", "l2_attention_logits", "L2MultiHeadAttention"]
