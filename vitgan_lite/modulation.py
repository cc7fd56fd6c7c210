"""Mapping network and self-modulated LayerNorm: how the latent z steers the ViTGAN generator.

Taught in ``notebooks/06_mapping_and_sln.ipynb``.

ViTGAN does not feed the noise z to the transformer as a token. A StyleGAN2 mapping network turns it
into a style vector ``w = MLP(z)`` (Karras et al. 2019, Sec. 2), and every LayerNorm of the generator is
*self-modulated* by w (Lee et al. 2022, Sec. 4.2, "self-modulated LayerNorm"):

    SLN(h_l, w) = gamma_l(w) * (h_l - mu) / sigma + beta_l(w)

where mu and sigma are the mean and standard deviation of each token's D features and gamma_l, beta_l
are affine layers of w owned by that one normalisation (no weight sharing, no affine parameters of
the LayerNorm itself).

The mapping network's layers use StyleGAN's *equalized learning rate* (Karras et al. 2018, Sec. 4.1):
weights are stored as N(0, 1) and scaled by ``1 / sqrt(fan_in)`` at run time, so that Adam, whose step
size does not depend on a parameter's scale, moves every layer at the same relative speed.

Shape legend: B batch, N tokens, D width, S style width (w), I / O input / output features.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = (None, "lrelu")


def _check_activation(activation: str | None) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be None or 'lrelu', got {activation!r}")


def _check_positive(**sizes: int | float) -> None:
    for name, value in sizes.items():
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")


def scaled_leaky_relu(x: torch.Tensor, negative_slope: float = 0.2) -> torch.Tensor:
    """StyleGAN2's activation: ``leaky_relu(x, 0.2) * sqrt(2)``.

    The gain sqrt(2) keeps the second moment of N(0, 1) inputs near 1 through the layer (He et al.
    2015), so a deep stack of equalized-lr layers neither shrinks nor blows up (StyleGAN2 ``fused_lrelu``).
    """
    return F.leaky_relu(x, negative_slope) * math.sqrt(2.0)


class EqualLinear(nn.Module):
    """Linear layer with StyleGAN's equalized learning rate: ``y = x (c W)^T + lr_mul * b``.

    ``W`` is stored as ``N(0, 1) / lr_mul`` and multiplied at run time by ``c = lr_mul / sqrt(in_dim)``;
    the bias is stored as ``bias_init / lr_mul`` and multiplied by ``lr_mul``. At initialisation the layer
    computes the same function for every ``lr_mul`` (effective weight ``N(0, 1/in_dim)``, effective bias
    ``bias_init``), but every optimizer step on the stored tensors moves the effective ones ``lr_mul``
    times as far: ``lr_mul`` is a per-layer learning-rate multiplier (0.01 in StyleGAN2's mapping network).

    Args:
        in_dim, out_dim: features in and out (I, O).
        bias: add a learned bias.
        bias_init: the effective bias at initialisation (1 for a StyleGAN2 style affine, so s starts at 1).
        lr_mul: learning-rate multiplier of this layer.
        activation: None or ``"lrelu"`` (``scaled_leaky_relu``, applied after the bias).

    Shapes: forward ``(..., I) -> (..., O)``.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activation: str | None = None,
    ) -> None:
        super().__init__()
        _check_positive(in_dim=in_dim, out_dim=out_dim, lr_mul=lr_mul)
        _check_activation(activation)
        self.in_dim, self.out_dim = in_dim, out_dim
        self.bias_init, self.lr_mul, self.activation = bias_init, lr_mul, activation
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))  # (O, I)
        self.bias = nn.Parameter(torch.empty(out_dim)) if bias else None  # (O,)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Equalized-lr initialisation (Karras et al. 2018, Sec. 4.1; StyleGAN2 ``FullyConnectedLayer``)."""
        # Stored W ~ N(0, 1) / lr_mul: times the run-time gain lr_mul / sqrt(I) this is He-init N(0, 1/I).
        nn.init.normal_(self.weight, mean=0.0, std=1.0 / self.lr_mul)
        if self.bias is not None:
            # Stored b = bias_init / lr_mul: times the run-time lr_mul the effective bias starts at bias_init.
            nn.init.constant_(self.bias, self.bias_init / self.lr_mul)

    @property
    def weight_gain(self) -> float:
        """The run-time multiplier ``c = lr_mul / sqrt(in_dim)`` of the stored weight."""
        return self.lr_mul / math.sqrt(self.in_dim)

    def effective_weight(self) -> torch.Tensor:
        """The weight the layer actually applies, ``c W``, shape (O, I)."""
        return self.weight * self.weight_gain  # (O, I)

    def effective_bias(self) -> torch.Tensor | None:
        """The bias the layer actually adds, ``lr_mul * b``, shape (O,), or None without a bias."""
        return None if self.bias is None else self.bias * self.lr_mul  # (O,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., I) -> (..., O)``."""
        if x.ndim == 0 or x.shape[-1] != self.in_dim:
            raise ValueError(
                f"EqualLinear expects {self.in_dim} input features in the last dim, got shape "
                f"{tuple(x.shape)}: fix the input or build the layer with a matching in_dim"
            )
        out = F.linear(x, self.effective_weight(), self.effective_bias())  # (..., O)
        if self.activation == "lrelu":
            out = scaled_leaky_relu(out)  # (..., O)
        return out

    def extra_repr(self) -> str:
        return (
            f"in_dim={self.in_dim}, out_dim={self.out_dim}, bias={self.bias is not None}, "
            f"lr_mul={self.lr_mul}, activation={self.activation}"
        )


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``x / sqrt(mean(x^2, dim=1) + eps)``: put every z on the sphere of radius sqrt(dim).

    StyleGAN's "pixel norm" on the latent (Karras et al. 2019, appendix C; StyleGAN2
    ``normalize_2nd_moment``): the mapping network then sees only the direction of z, not its length.
    Shape: (B, D) -> (B, D) (any shape with features in dim 1).
    """
    if x.ndim < 2:
        raise ValueError(
            f"normalize_2nd_moment expects features in dim 1, shape (B, D), got {tuple(x.shape)}"
        )
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)  # (B, D)


class MappingNetwork(nn.Module):
    """StyleGAN2 mapping network ``z -> w``: normalise z, then ``num_layers`` EqualLinear + lrelu.

    Every layer uses ``lr_mul`` (0.01 in StyleGAN2: the mapping network learns 100x slower than the
    synthesis network, which keeps w stable; Karras et al. 2020, appendix B).

    Args:
        latent_dim: width of z.
        style_dim: width of w (S).
        num_layers: number of EqualLinear layers (8 in StyleGAN2; ViTGAN's configs use fewer).
        hidden_dim: width of the hidden layers; defaults to ``style_dim``.
        lr_mul: learning-rate multiplier of every layer.

    Shapes: forward ``z (B, latent_dim) -> w (B, S)``.
    """

    def __init__(
        self,
        latent_dim: int,
        style_dim: int,
        num_layers: int = 8,
        hidden_dim: int | None = None,
        lr_mul: float = 0.01,
    ) -> None:
        super().__init__()
        hidden_dim = style_dim if hidden_dim is None else hidden_dim
        _check_positive(
            latent_dim=latent_dim, style_dim=style_dim, num_layers=num_layers, hidden_dim=hidden_dim
        )
        self.latent_dim, self.style_dim = latent_dim, style_dim
        widths = [latent_dim] + [hidden_dim] * (num_layers - 1) + [style_dim]
        self.layers = nn.ModuleList(
            EqualLinear(i, o, lr_mul=lr_mul, activation="lrelu") for i, o in zip(widths[:-1], widths[1:])
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z (B, latent_dim) -> w (B, S)``."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"z must have shape (B, {self.latent_dim}), got {tuple(z.shape)}: "
                f"sample it as torch.randn(B, {self.latent_dim})"
            )
        w = normalize_2nd_moment(z)  # (B, latent_dim)
        for layer in self.layers:
            w = layer(w)  # (B, hidden_dim), then (B, S) after the last layer
        return w


class SelfModulatedLayerNorm(nn.Module):
    """ViTGAN's SLN (Sec. 4.2): ``SLN(h, w) = gamma(w) * LayerNorm(h) + beta(w)``.

    The LayerNorm has no affine parameters of its own (``elementwise_affine=False``); its scale and
    shift are ``gamma = Linear_gamma(w)`` and ``beta = Linear_beta(w)``, two affine layers of w that belong
    to this instance only, computed once per image (B, D) and broadcast over the N tokens.

    Args:
        dim: token width D.
        style_dim: width S of w.
        eps: LayerNorm epsilon.
        gain: std of the gamma / beta weights times sqrt(S): how strongly w steers the norm at init
            (0.1: gently, this lesson's default; 1.0: at full strength, as the official code's
            ``EqualLinear`` and StyleGAN's style affines; the generator uses 1.0, see lesson 11).

    Shapes: forward ``h (B, N, D), w (B, S) -> (B, N, D)``.
    """

    def __init__(self, dim: int, style_dim: int, eps: float = 1e-5, gain: float = 0.1) -> None:
        super().__init__()
        _check_positive(dim=dim, style_dim=style_dim, gain=gain)
        self.dim, self.style_dim, self.gain = dim, style_dim, gain
        self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)  # (h - mu) / sigma, nothing learned
        self.gamma = nn.Linear(style_dim, dim)  # gamma(w): (B, S) -> (B, D)
        self.beta = nn.Linear(style_dim, dim)  # beta(w): (B, S) -> (B, D)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Start as a plain LayerNorm, gently steered by w: gamma = 1 + O(0.1), beta = O(0.1).

        The bias of gamma is 1 and that of beta is 0, as for the default LayerNorm affine (and StyleGAN's
        AdaIN style bias init 1, Karras et al. 2019). The weights are small, N(0, 0.01 / S), so that for a
        w of unit second moment the w-dependent part has std ~0.1. They are not zero (unlike DiT's
        adaLN-Zero): with zero weights no gradient would reach w and the mapping network at step 0, and
        every image would start out identical.
        """
        for layer, bias in ((self.gamma, 1.0), (self.beta, 0.0)):
            nn.init.normal_(layer.weight, mean=0.0, std=self.gain / math.sqrt(self.style_dim))
            nn.init.constant_(layer.bias, bias)

    def forward(self, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``h (B, N, D), w (B, S) -> (B, N, D)``."""
        if h.ndim != 3 or h.shape[-1] != self.dim:
            raise ValueError(
                f"h must have shape (B, N, {self.dim}) (tokens of width dim), got {tuple(h.shape)}"
            )
        if w.ndim != 2 or w.shape[1] != self.style_dim:
            raise ValueError(
                f"w must have shape (B, {self.style_dim}) (one style vector per image), got {tuple(w.shape)}"
            )
        if w.shape[0] != h.shape[0]:
            raise ValueError(
                f"h and w must have the same batch size, got {h.shape[0]} token sequences "
                f"and {w.shape[0]} styles"
            )
        gamma = self.gamma(w).unsqueeze(1)  # (B, 1, D): one scale per image, shared by its N tokens
        beta = self.beta(w).unsqueeze(1)  # (B, 1, D)
        return gamma * self.norm(h) + beta  # (B, N, D)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, style_dim={self.style_dim}, eps={self.norm.eps}"


SLN = SelfModulatedLayerNorm

__all__ = [
    "ACTIVATIONS",
    "EqualLinear",
    "MappingNetwork",
    "SLN",
    "SelfModulatedLayerNorm",
    "normalize_2nd_moment",
    "scaled_leaky_relu",
]
