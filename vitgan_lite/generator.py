"""The ViTGAN generator: positional tokens, SLN transformer blocks, a per-token implicit patch decoder.

Taught in ``notebooks/08_vit_generator.ipynb`` (ViT generator).

The generator equations (Lee et al. 2022, Sec. 4.2), for L = (H/P)(W/P) tokens of width D:

    w    = MLP(z)                                       mapping network (lesson 06)
    h_0  = E_pos,                E_pos in R^{L x D}     no image, no noise: only positions (lesson 02)
    h'_l = MSA(SLN(h_{l-1}, w)) + h_{l-1}               l = 1..depth
    h_l  = MLP(SLN(h'_l, w)) + h'_l
    y    = SLN(h_L, w) = [y^1, ..., y^L]
    x^i  = f_theta(E_fou, y^i),  x^i in R^{P^2 x C}     implicit patch decoder (lesson 07)
    x    = [x^1, ..., x^L]                              patches -> image, then tanh into [-1, 1]

z enters only through w, and w only through the SLNs: every SLN has its own gamma, beta layers, and
the residuals add the *un-normalised* h (pre-norm transformer).

Shape legend: B batch, N = L tokens, D width, S style width (w), P patch size, C channels, H x W pixels.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from vitgan_lite._shapes import check_divisible
from vitgan_lite.attention import MultiHeadAttention
from vitgan_lite.config import Config
from vitgan_lite.inr import DEFAULT_FOURIER_FREQ, PatchDecoder
from vitgan_lite.linear import Linear
from vitgan_lite.modulation import SLN, MappingNetwork
from vitgan_lite.patches import unpatchify
from vitgan_lite.positional import SinePositionalEmbedding

MODULATIONS = ("sln", "input")  # where w enters: every SLN (ViTGAN), or once at the input (lesson 13)
PATCH_HEADS = ("implicit", "linear")  # the patch decoder f_theta(E_fou, y), or a linear per-token head


class LayerNormIgnoringW(nn.LayerNorm):
    """``LayerNorm(h)`` with SLN's call signature ``(h, w)``: w is ignored (the ablation without SLN)."""

    def forward(self, h: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(h)  # (B, N, D)


def _norm(dim: int, style_dim: int, sln_gain: float, modulation: str) -> nn.Module:
    if modulation not in MODULATIONS:
        raise ValueError(f"modulation must be one of {MODULATIONS}, got {modulation!r}")
    return SLN(dim, style_dim, gain=sln_gain) if modulation == "sln" else LayerNormIgnoringW(dim)


class GeneratorBlock(nn.Module):
    """One generator transformer block: two self-modulated LayerNorms, MSA and an MLP.

        h' = h + MSA(SLN_1(h, w))
        out = h' + MLP(SLN_2(h', w))        MLP = Linear -> GELU -> Linear

    ``norm1`` and ``norm2`` are two separate SLN instances (their own gamma, beta); the attention is the
    ordinary dot-product ``MultiHeadAttention`` (the L2 attention is for the discriminator's Lipschitz
    bound only).

    Args:
        dim: token width D.
        num_heads: attention heads (must divide ``dim``).
        mlp_ratio: hidden width of the MLP is ``int(dim * mlp_ratio)``.
        style_dim: width S of w.
        modulation: "sln" (ViTGAN); "input" puts plain LayerNorms that ignore w in their place (the
            generator then feeds w in once, at its input: lesson 13's ablation).

    Shapes: forward ``h (B, N, D), w (B, S) -> (B, N, D)``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        style_dim: int,
        sln_gain: float = 1.0,
        modulation: str = "sln",
    ) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        if hidden < 1:
            raise ValueError(
                f"mlp_ratio {mlp_ratio} gives an empty MLP for dim {dim}: use mlp_ratio > 0 (4.0 in ViT)"
            )
        self.norm1 = _norm(dim, style_dim, sln_gain, modulation)  # SLN_1: its own gamma_1(w), beta_1(w)
        self.attn = MultiHeadAttention(dim, num_heads)
        self.norm2 = _norm(dim, style_dim, sln_gain, modulation)  # SLN_2: another instance, never shared
        # Linear: nn.Linear with a CPU speed knob (row blocks, vitgan_lite/linear.py), same function
        self.mlp = nn.Sequential(OrderedDict(fc1=Linear(dim, hidden), act=nn.GELU(), fc2=Linear(hidden, dim)))

    def forward(self, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``h (B, N, D), w (B, S) -> (B, N, D)``."""
        h = h + self.attn(self.norm1(h, w))  # (B, N, D): residual adds the un-normalised h_{l-1}
        h = h + self.mlp(self.norm2(h, w))  # (B, N, D): and here h'_l
        return h


class ViTGenerator(nn.Module):
    """ViTGAN's generator, ``z (B, latent_dim) -> images (B, C, H, W)`` in [-1, 1].

    Args:
        image_size: H = W.
        patch_size: P; ``image_size`` must be a multiple of it.
        channels: C.
        latent_dim: width of z.
        style_dim: width S of w.
        mapping_layers, mapping_lr_mul: depth and learning-rate multiplier of the mapping network.
        dim, depth, num_heads, mlp_ratio: the transformer (timm names).
        fourier_dim: width of E_fou in the patch decoder.
        decoder_dim: hidden width of the patch decoder.
        demodulate: StyleGAN2 demodulation in the decoder's hidden layer.
        fourier_freq: initial frequency bound of the decoder's E_fou (lesson 07).
        sln_gain: how strongly w steers every SLN at init (``SLN(gain=...)``). 1.0, as the official code:
            at 0.1 every z gave nearly the same image layout and the GAN collapsed (lesson 11).
        modulation, patch_head, fourier_features: ViTGAN is ``"sln"``, ``"implicit"``, ``True``. The
            ablations of lesson 13: ``modulation="input"`` (plain LayerNorms, w added to every input token
            through a linear layer), ``patch_head="linear"`` (each token's patch is ``Linear(y^i)``, no
            implicit decoder), ``fourier_features=False`` (the decoder reads raw pixel coordinates, no E_fou).

    ``forward(z)`` is ``synthesize(mapping(z))``; start from ``synthesize(w)`` to interpolate in w space.
    ``from_config(cfg)`` builds it from a :class:`~vitgan_lite.config.Config`.
    """

    def __init__(
        self,
        image_size: int = 32,
        patch_size: int = 4,
        channels: int = 3,
        latent_dim: int = 384,
        style_dim: int = 384,
        mapping_layers: int = 4,
        mapping_lr_mul: float = 0.01,
        dim: int = 384,
        depth: int = 4,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        fourier_dim: int = 384,
        decoder_dim: int = 384,
        demodulate: bool = True,
        fourier_freq: float = DEFAULT_FOURIER_FREQ,
        sln_gain: float = 1.0,
        modulation: str = "sln",
        patch_head: str = "implicit",
        fourier_features: bool = True,
    ) -> None:
        super().__init__()
        check_divisible(image_size, patch_size)
        if depth < 1:
            raise ValueError(f"depth must be a positive number of blocks, got {depth}")
        if patch_head not in PATCH_HEADS:
            raise ValueError(f"patch_head must be one of {PATCH_HEADS}, got {patch_head!r}")
        self.image_size, self.patch_size, self.channels = image_size, patch_size, channels
        self.latent_dim, self.style_dim, self.dim = latent_dim, style_dim, dim
        self.grid_size = image_size // patch_size
        self.num_patches = self.grid_size**2  # N = L tokens
        self.mapping = MappingNetwork(latent_dim, style_dim, num_layers=mapping_layers, lr_mul=mapping_lr_mul)
        self.pos_embed = SinePositionalEmbedding(self.grid_size, dim)  # E_pos, (N, D)
        self.blocks = nn.ModuleList(
            GeneratorBlock(dim, num_heads, mlp_ratio, style_dim, sln_gain, modulation) for _ in range(depth)
        )
        self.norm = _norm(dim, style_dim, sln_gain, modulation)  # y = SLN(h_L, w): its own instance again
        # w at the input instead (ablation): h_0 = E_pos + Linear(w) for every token
        self.style_in = nn.Linear(style_dim, dim) if modulation == "input" else None
        if patch_head == "linear":  # ablation: x^i = Linear(y^i), channels-first like the decoder's
            self.decoder: nn.Module = nn.Linear(dim, channels * patch_size**2)
        else:
            self.decoder = PatchDecoder(
                dim,
                patch_size,
                channels,
                hidden_dim=decoder_dim,
                fourier_dim=fourier_dim,
                demodulate=demodulate,
                fourier_freq=fourier_freq,
                fourier_features=fourier_features,
            )
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Initialise the transformer blocks' linear layers; every other part keeps its own rule.

        Attention and MLP ``nn.Linear``: Xavier-uniform weights, zero biases (DiT ``initialize_weights``,
        the JAX ViT rule), so every block starts with O(1) updates of the residual stream. The mapping
        network (equalized lr), the SLNs (gamma ~ 1, beta ~ 0), E_pos (random Fourier features) and the
        decoder (SIREN / StyleGAN2 rules) are initialised by their own ``reset_parameters``, which their
        constructors already ran: this method must not overwrite them.
        """
        extra = [
            m for m in (self.style_in, self.decoder) if isinstance(m, nn.Linear)
        ]  # the ablations' layers
        for block in self.blocks:
            for module in (*block.attn.modules(), *block.mlp.modules(), *extra):
                if isinstance(module, nn.Linear):
                    nn.init.xavier_uniform_(module.weight)
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)

    def forward(
        self, z: torch.Tensor, return_w: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``z (B, latent_dim) -> images (B, C, H, W)`` in [-1, 1]; also w (B, S) if ``return_w``."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"z must have shape (B, {self.latent_dim}), got {tuple(z.shape)}: sample it as "
                f"torch.randn(B, {self.latent_dim}), or build the generator with latent_dim={z.shape[-1]}"
            )
        w = self.mapping(z)  # (B, S)
        x = self.synthesize(w)  # (B, C, H, W)
        return (x, w) if return_w else x

    def synthesize(self, w: torch.Tensor) -> torch.Tensor:
        """``w (B, S) -> images (B, C, H, W)`` in [-1, 1]: the generator after the mapping network."""
        if w.ndim != 2 or w.shape[1] != self.style_dim:
            raise ValueError(
                f"w must have shape (B, {self.style_dim}), got {tuple(w.shape)}: pass the mapping network's "
                "output, e.g. generator.mapping(z)"
            )
        B = w.shape[0]
        h = self.pos_embed().unsqueeze(0).expand(B, -1, -1)  # (B, N, D): h_0 = E_pos for every image
        if self.style_in is not None:  # ablation without SLN: w enters once, added to every token
            h = h + self.style_in(w).unsqueeze(1)  # (B, N, D)
        for block in self.blocks:
            h = block(h, w)  # (B, N, D)
        y = self.norm(h, w)  # (B, N, D): y = SLN(h_L, w)
        patches = self.decoder(y)  # (B, N, C*P*P): x^i = f_theta(E_fou, y^i)
        x = unpatchify(patches, self.patch_size, self.image_size, self.channels)  # (B, C, H, W)
        return torch.tanh(x)  # (B, C, H, W) in [-1, 1], the value range of the real images

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of parameters (only those with ``requires_grad`` if ``trainable_only``)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @classmethod
    def from_config(cls, cfg: Config) -> ViTGenerator:
        """Build the generator from a :class:`~vitgan_lite.config.Config` (its ``g_*`` and latent fields)."""
        return cls(
            image_size=cfg.image_size,
            channels=cfg.channels,
            latent_dim=cfg.latent_dim,
            style_dim=cfg.style_dim,
            mapping_layers=cfg.mapping_layers,
            mapping_lr_mul=cfg.mapping_lr_mul,
            **cfg.section("g_"),  # g_dim -> dim, g_depth -> depth, ...
        )

    def extra_repr(self) -> str:
        return (
            f"image_size={self.image_size}, patch_size={self.patch_size}, channels={self.channels}, "
            f"latent_dim={self.latent_dim}, style_dim={self.style_dim}, num_patches={self.num_patches}"
        )


__all__ = ["GeneratorBlock", "ViTGenerator"]
