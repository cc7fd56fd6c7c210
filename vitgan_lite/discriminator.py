"""ViTGAN's ViT discriminator (ViTGAN eq. 1, the ViT forward pass h_0 ... y = LN(h_L^0), with the
changes of Sec. 4.1), taught in ``notebooks/05_vit_discriminator.ipynb``.

The discriminator is a Vision Transformer that reads an image and returns one real/fake logit::

    h_0  = [x_cls; E(x_p^1); ...; E(x_p^N)] + E_pos     overlapping patch embedding E, CLS token first
    h'_l = MSA(LN(h_{l-1})) + h_{l-1}                    pre-norm residual blocks, l = 1 .. L,
    h_l  = MLP(LN(h'_l)) + h'_l                          MSA being L2 attention with W_q = W_k
    y    = LN(h_L^0)                                     the CLS token, position 0, is pooled
    D(x) = Linear(y)                                     one logit, no non-linearity after it

ViTGAN's changes to a plain ViT discriminator all live here: overlapping patches against overfitting
(``OverlappingPatchEmbed``), and for a Lipschitz discriminator, L2 attention (``L2MultiHeadAttention``)
and ISN on every Linear and Conv2d (``apply_spectral_norm``).

Shape legend: ``B`` batch, ``C`` channels, ``H, W`` pixels, ``P`` patch size, ``N`` = (H/P)^2 patch
tokens (N + 1 with the CLS token), ``D`` width.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torch.nn.utils import parametrize

from vitgan_lite._shapes import check_image_batch, check_shape
from vitgan_lite.attention import L2MultiHeadAttention, MultiHeadAttention
from vitgan_lite.config import Config
from vitgan_lite.linear import Linear
from vitgan_lite.patches import OverlappingPatchEmbed
from vitgan_lite.positional import SinePositionalEmbedding
from vitgan_lite.spectral import apply_spectral_norm, spectral_parametrization

ATTN_INITS = ("unit-logit", "xavier")
ATTENTIONS = ("l2", "dot")  # ViTGAN's tied L2 attention; dot-product attention (lesson 13's ablation)


def qk_init_gain(head_dim: int) -> float:
    """Gain on Xavier's W_qk that starts the mean L2-attention logit between two tokens at -1: (4 d_h)^(-1/4).

    A course choice, derived here and measured in lesson 11. After a LayerNorm every token has unit
    variance per feature, and a Xavier W_qk (D x D) keeps it, so for two unrelated tokens
    ``E||q_i - q_j||^2 = 2 d_h g^2``, and the logit ``-||q_i - q_j||^2 / sqrt(d_h)`` averages
    ``-2 g^2 sqrt(d_h)``,
    while a token's logit to itself is exactly 0 (W_q = W_k). With g = 1 (plain Xavier) and d_h = 32 that
    is -11: every token, the CLS token included, attends ~99% to itself, and the CLS token, which carries
    the logit, barely sees the image. ISN then keeps sigma(W_qk) at its initial value for the whole run
    (lesson 04), so this sharpness is permanent: the initial gain is the attention's temperature.
    g = (4 d_h)^(-1/4) sets ``2 g^2 sqrt(d_h) = 1``. The official code instead multiplies the logits by a
    learnable temperature (mlpc-ucsd/ViTGAN ``vit_common.py``), which ISN does not bound.
    """
    if head_dim < 1:
        raise ValueError(f"head_dim must be a positive integer, got {head_dim}")
    return (4.0 * head_dim) ** -0.25


class DiscriminatorBlock(nn.Module):
    """Pre-norm transformer block: x = x + attn(norm1(x)); x = x + mlp(norm2(x)).

    The attention is ViTGAN's L2 attention with tied q/k weights; the MLP is Linear -> GELU -> Linear
    with hidden width ``int(dim * mlp_ratio)``. ``attention="dot"`` puts the ordinary dot-product
    attention (separate W_q, W_k) in its place: the ablation of lesson 13, not a ViTGAN setting.

    Forward: x (B, N, D) -> (B, N, D).
    """

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float = 4.0, fast: bool = True, attention: str = "l2"
    ) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        if hidden < 1:
            raise ValueError(f"mlp_ratio {mlp_ratio} gives an MLP of width {hidden}: use mlp_ratio > 0")
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
        self.norm1 = nn.LayerNorm(dim)
        attn_cls = L2MultiHeadAttention if attention == "l2" else MultiHeadAttention
        self.attn = attn_cls(dim, num_heads, fast=fast)
        self.norm2 = nn.LayerNorm(dim)
        # Linear: nn.Linear with a CPU speed knob (row blocks, vitgan_lite/linear.py), same function
        self.mlp = nn.Sequential(OrderedDict(fc1=Linear(dim, hidden), act=nn.GELU(), fc2=Linear(hidden, dim)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, N, D) -> (B, N, D)."""
        x = x + self.attn(self.norm1(x))  # (B, N, D), h'_l
        return x + self.mlp(self.norm2(x))  # (B, N, D), h_l


class ViTDiscriminator(nn.Module):
    """ViTGAN's discriminator: images (B, C, H, W) in [-1, 1] -> one logit per image, shape (B,).

    Args:
        image_size: H = W of the input images.
        patch_size: P, the stride of the patch embedding; must divide ``image_size``.
        overlap: o, extra pixels each patch sees on every side (kernel P + 2o).
        channels: C of the input images.
        dim, depth, num_heads, mlp_ratio: ViT sizes (timm names).
        spectral_norm: "isn" (ViTGAN), "sn" or "none": the spectral normalization of every Linear and Conv2d.
        fast: use the ``scaled_dot_product_attention`` form of L2 attention (same function).
        attn_init: "unit-logit" (course choice, see :func:`qk_init_gain`) or "xavier" (timm / DiT rule)
            for the tied W_qk of every block. Under ISN the initial scale of W_qk is permanent.
        attention: "l2" (ViTGAN, Sec. 4.1) or "dot" (plain dot-product attention, Xavier-initialised: the
            ablation that removes L2 attention's Lipschitz bound).
    """

    def __init__(
        self,
        image_size: int = 32,
        patch_size: int = 4,
        overlap: int = 2,
        channels: int = 3,
        dim: int = 192,
        depth: int = 4,
        num_heads: int = 3,
        mlp_ratio: float = 4.0,
        spectral_norm: str = "isn",
        fast: bool = True,
        attn_init: str = "unit-logit",
        attention: str = "l2",
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        if attn_init not in ATTN_INITS:
            raise ValueError(f"attn_init must be one of {ATTN_INITS}, got {attn_init!r}")
        self.attn_init = attn_init
        self.image_size, self.channels, self.dim = image_size, channels, dim
        self.spectral_norm = spectral_norm  # the mode; self.norm below is the final LayerNorm
        self.patch_embed = OverlappingPatchEmbed(image_size, patch_size, overlap, channels=channels, dim=dim)
        self.num_patches = self.patch_embed.num_patches  # N
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))  # (1, 1, D), x_cls
        self.cls_pos = nn.Parameter(torch.zeros(1, dim))  # (1, D), the CLS token's own learned position
        self.pos_embed = SinePositionalEmbedding(self.patch_embed.grid_size, dim)  # E_pos of the patches
        self.blocks = nn.ModuleList(
            DiscriminatorBlock(dim, num_heads, mlp_ratio, fast=fast, attention=attention)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)  # the final LN of y = LN(h_L^0)
        self.head = nn.Linear(dim, 1)  # the logit, no activation after it
        self.initialize_weights()
        # After initialization: ISN records sigma(W_init) of the weights it wraps.
        apply_spectral_norm(self, spectral_norm)

    @classmethod
    def from_config(cls, cfg: Config) -> ViTDiscriminator:
        """The discriminator of a ``Config`` (its ``d_*`` fields, ``image_size`` and ``channels``)."""
        return cls(image_size=cfg.image_size, channels=cfg.channels, **cfg.section("d_"))  # d_dim -> dim, ...

    @torch.no_grad()
    def initialize_weights(self) -> None:
        """Every initialization rule in one place; safe to call before or after spectral wrapping."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                if module is self.pos_embed.linear:
                    continue  # random frequencies and phases: SinePositionalEmbedding.reset_parameters
                # The trained tensor: under SN/ISN, module.weight is computed from ``original``.
                wrapped = parametrize.is_parametrized(module, "weight")
                weight = module.parametrizations.weight.original if wrapped else module.weight
                # Xavier-uniform, zero bias: timm ViT / DiT ``initialize_weights``. The patch-embedding
                # conv is initialized as the Linear it is, on its (D, C * k * k) view (MAE, DiT).
                nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)  # identity affine, as torch's default and timm
                nn.init.zeros_(module.bias)
        if self.attn_init == "unit-logit":
            for block in (b for b in self.blocks if isinstance(b.attn, L2MultiHeadAttention)):
                qk = block.attn.qk
                wrapped = parametrize.is_parametrized(qk, "weight")
                weight = qk.parametrizations.weight.original if wrapped else qk.weight
                weight.mul_(qk_init_gain(block.attn.head_dim))  # on top of Xavier: see qk_init_gain
        self.pos_embed.reset_parameters()
        nn.init.normal_(self.cls_token, std=0.02)  # MAE ``initialize_weights``
        nn.init.trunc_normal_(self.cls_pos, std=0.02)  # timm ``pos_embed`` rule
        # A re-initialized weight needs a fresh power-iteration state and, for ISN, a new sigma(W_init).
        for module in self.modules():
            sn = spectral_parametrization(module)
            if sn is not None:
                sn.reset_state(module.parametrizations.weight.original)

    def _check_images(self, x: torch.Tensor) -> None:
        check_image_batch(x, channels=self.channels)
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"ViTDiscriminator was built for {self.image_size}x{self.image_size} images, got "
                f"{x.shape[-2]}x{x.shape[-1]}: resize the images or build it with image_size={x.shape[-1]}"
            )

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's tokens h_L, before the final norm: (B, C, H, W) -> (B, N + 1, D), CLS first."""
        self._check_images(x)
        h = self.patch_embed(x)  # (B, N, D)
        cls = self.cls_token.expand(h.shape[0], -1, -1)  # (B, 1, D)
        h = torch.cat([cls, h], dim=1)  # (B, N + 1, D), CLS at position 0
        pos = torch.cat([self.cls_pos, self.pos_embed()], dim=0)  # (N + 1, D)
        h = h + pos  # (B, N + 1, D), h_0, E_pos broadcast over the batch
        for block in self.blocks:
            h = block(h)  # (B, N + 1, D)
        check_shape(h, (x.shape[0], self.num_patches + 1, self.dim), name="tokens")
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] -> logits (B,), with no non-linearity after the head."""
        y = self.norm(self.tokens(x)[:, 0])  # (B, D), y = LN(h_L^0): the CLS token is pooled
        return self.head(y).squeeze(-1)  # (B,)

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of parameters (each trained weight counted once, SN/ISN buffers excluded)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


__all__ = ["ATTENTIONS", "ATTN_INITS", "DiscriminatorBlock", "ViTDiscriminator", "qk_init_gain"]
