"""Implicit neural representation of a patch: SIREN, Fourier features, weight modulation, the patch decoder.

Taught in ``notebooks/07_implicit_neural_representation.ipynb`` (implicit neural representation).

ViTGAN does not project each output token linearly to its P x P pixels. It treats a patch as a function
of the pixel coordinates and decodes token i with a small MLP shared by all tokens (Lee et al. 2022,
Sec. 4.2, "implicit neural representation for patch generation"):

    x^i = f_theta(E_fou, y^i),   x^i in R^{P^2 x C}

where ``E_fou in R^{P^2 x D}`` are Fourier features of the P x P pixel coordinates and the token y^i
*modulates the weights* of the two-layer network f_theta as StyleGAN2 does (Karras et al. 2020, eq. 1-3):

    W'_ij = s_j * W_ij                             (modulation: s scales the input axis j)
    W''_ij = W'_ij / sqrt(sum_j W'_ij^2 + eps)     (demodulation: every output row i gets unit norm)

with ``s = A(y^i)`` a learned affine map of the token. Here ``W_ij`` is stored as PyTorch does, row i =
output, column j = input; StyleGAN2's paper names the same axes the other way round (its w_ijk has
input i, output j), so read its "s_i" as our "s_j": in both, s scales the inputs.

Sine activations (SIREN, Sitzmann et al. 2020) and Fourier features (Tancik et al. 2020) let such
coordinate networks produce fine detail.

Shape legend: B batch, N tokens, D token width, P patch size, C channels, I / O input / output
features, M points per modulated batch item (here the P*P pixels of one patch), S style width.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vitgan_lite.modulation import EqualLinear, _check_activation, _check_positive, scaled_leaky_relu
from vitgan_lite.positional import coordinate_grid

DEFAULT_FOURIER_FREQ = math.sqrt(9.0 / 2.0)  # CIPS ``LFF`` first-layer bound (Anokhin et al. 2021)


class SineLayer(nn.Module):
    """SIREN layer ``sin(omega0 * (W x + b))`` (Sitzmann et al. 2020).

    Args:
        in_dim, out_dim: features in and out (I, O).
        omega0: frequency factor; 30 in SIREN, so that a first layer on [-1, 1] inputs spans several periods.
        is_first: use the first-layer initialisation (see ``reset_parameters``).

    Shapes: forward ``(..., I) -> (..., O)``, values in [-1, 1].
    """

    def __init__(self, in_dim: int, out_dim: int, omega0: float = 30.0, is_first: bool = False) -> None:
        super().__init__()
        _check_positive(in_dim=in_dim, out_dim=out_dim, omega0=omega0)
        self.in_dim, self.out_dim, self.omega0, self.is_first = in_dim, out_dim, omega0, is_first
        self.linear = nn.Linear(in_dim, out_dim)  # W (O, I), b (O,)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """SIREN initialisation (Sitzmann et al. 2020, Sec. 3.2 and their reference code).

        First layer: W ~ U(-1/I, 1/I), so that omega0 * W x covers a few periods for x in [-1, 1]^I.
        Other layers: W ~ U(-sqrt(6/I)/omega0, +sqrt(6/I)/omega0), so that omega0 * W x is ~N(0, 1) whatever
        the depth (the input of each sine stays in the regime where sin(.) is arcsine-distributed).
        The bias keeps PyTorch's default U(-1/sqrt(I), 1/sqrt(I)), as in the SIREN code.
        """
        bound = 1.0 / self.in_dim if self.is_first else math.sqrt(6.0 / self.in_dim) / self.omega0
        nn.init.uniform_(self.linear.weight, -bound, bound)
        nn.init.uniform_(self.linear.bias, -1.0 / math.sqrt(self.in_dim), 1.0 / math.sqrt(self.in_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., I) -> (..., O)``."""
        if x.ndim == 0 or x.shape[-1] != self.in_dim:
            raise ValueError(
                f"SineLayer expects {self.in_dim} input features in the last dim, got {tuple(x.shape)}"
            )
        return torch.sin(self.omega0 * self.linear(x))  # (..., O)

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}, omega0={self.omega0}, is_first={self.is_first}"


def _check_modulated_args(
    x: torch.Tensor, weight: torch.Tensor, s: torch.Tensor, bias: torch.Tensor | None
) -> None:
    if weight.ndim != 2:
        raise ValueError(f"weight must have shape (O, I), got {tuple(weight.shape)}")
    O, I = weight.shape
    if x.ndim != 3 or x.shape[-1] != I:
        raise ValueError(
            f"x must have shape (B, M, {I}) to match weight (O={O}, I={I}), got {tuple(x.shape)}: "
            "add the points axis M with x.unsqueeze(1) if you have one point per batch item"
        )
    if s.ndim != 2 or s.shape != (x.shape[0], I):
        raise ValueError(
            f"s must have shape (B, I) = ({x.shape[0]}, {I}): one scale per INPUT feature j of W_ij, "
            f"got {tuple(s.shape)}"
        )
    if bias is not None and bias.shape != (O,):
        raise ValueError(f"bias must have shape ({O},), got {tuple(bias.shape)}")


def modulated_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    s: torch.Tensor,
    bias: torch.Tensor | None = None,
    demodulate: bool = True,
    eps: float = 1e-8,
) -> torch.Tensor:
    """StyleGAN2 weight (de)modulation of a linear layer, one modulated weight per batch item.

    Computes ``out[b, m] = W''_b x[b, m] + bias`` with ``W'_b = W diag(s_b)`` (s scales the input axis j)
    and, if ``demodulate``, every row of ``W'_b`` divided by its norm ``sqrt(sum_j W'_bij^2 + eps)``.
    Instead of building the (B, O, I) weights it scales the inputs by s and the outputs by the
    demodulation coefficients (StyleGAN2's "fused" trick), which is exact because both are diagonal.

    Args:
        x: (B, M, I) inputs, M points per batch item.
        weight: (O, I) shared weight W.
        s: (B, I) styles, one per batch item.
        bias: optional (O,), added after demodulation.
        demodulate: divide each output row by its norm (True) or not (plain modulation).
        eps: added under the square root.

    Returns:
        (B, M, O).
    """
    _check_modulated_args(x, weight, s, bias)
    out = (x * s.unsqueeze(1)) @ weight.t()  # (B, M, O): x_j s_j summed against W_ij
    if demodulate:
        # sum_j (s_j W_ij)^2 = sum_j W_ij^2 s_j^2: a (B, I) x (I, O) product, no (B, O, I) tensor.
        d = torch.rsqrt(s.square() @ weight.square().t() + eps)  # (B, O)
        out = out * d.unsqueeze(1)  # (B, M, O)
    if bias is not None:
        out = out + bias  # (B, M, O)
    return out


def modulated_linear_shared(
    x: torch.Tensor,
    weight: torch.Tensor,
    s: torch.Tensor,
    bias: torch.Tensor | None = None,
    demodulate: bool = True,
    eps: float = 1e-8,
    scale: float = 1.0,
) -> torch.Tensor:
    """:func:`modulated_linear` when every batch item reads the SAME inputs ``x (M, I)``: one large GEMM.

    The patch decoder's first layer is this case: its input is E_fou, the Fourier features of the P x P
    pixel coordinates, identical for every token; only the style differs. Then

        out[b, m, o] = sum_j s[b, j] * (x[m, j] W[o, j])   (before demodulation)
                     = (s @ K)[b, (m, o)],   K[j, (m, o)] = x[m, j] W[o, j]  (I, M*O), built once,

    a (B, I) x (I, M*O) matrix product instead of scaling a (B, M, I) tensor and multiplying it by W: the
    same multiply-adds, no elementwise pass over (B, M, I), and no such tensor kept for the backward pass.
    Demodulation, bias and an output ``scale`` (the sine's omega0) then cost one fused ``addcmul``.

    Args:
        x: (M, I) inputs shared by every batch item.
        weight, s, bias, demodulate, eps: as in :func:`modulated_linear`.
        scale: a factor applied to the whole output (``scale * (W'' x + bias)``).

    Returns:
        (B, M, O), equal to ``scale * modulated_linear(x.expand(B, M, I), weight, s, bias, ...)``.
    """
    if x.ndim != 2:
        raise ValueError(
            f"x must have shape (M, I), the inputs shared by every batch item, got {tuple(x.shape)}"
        )
    _check_modulated_args(x.unsqueeze(0).expand(s.shape[0], -1, -1), weight, s, bias)
    (M, I), O, B = x.shape, weight.shape[0], s.shape[0]
    K = (x.t().unsqueeze(2) * weight.t().unsqueeze(1)).reshape(I, M * O)  # (I, M*O): K[j, (m, o)]
    out = (s @ K).view(B, M, O)  # (B, M, O): one GEMM for every token and pixel
    if demodulate:
        d = torch.rsqrt(s.square() @ weight.square().t() + eps)  # (B, O), as in modulated_linear
        coef = (d * scale).unsqueeze(1)  # (B, 1, O)
    else:
        coef = out.new_full((1, 1, O), scale)
    if bias is None:
        return out * coef  # (B, M, O)
    return torch.addcmul(bias * scale, out, coef)  # (B, M, O): scale * (out * d + bias), one pass


def modulated_linear_explicit(
    x: torch.Tensor,
    weight: torch.Tensor,
    s: torch.Tensor,
    bias: torch.Tensor | None = None,
    demodulate: bool = True,
    eps: float = 1e-8,
) -> torch.Tensor:
    """The same function as :func:`modulated_linear`, built the way the equations read.

    Materialises one modulated weight ``W'_b`` (B, O, I) per batch item: easy to read, ``O / M`` times more
    memory. Kept for tests and lesson 07, which compares the two. Shapes as in ``modulated_linear``.
    """
    _check_modulated_args(x, weight, s, bias)
    w = weight.unsqueeze(0) * s.unsqueeze(1)  # (B, O, I): W'_bij = s_bj W_ij, the input axis j scaled
    if demodulate:
        w = w * torch.rsqrt(w.square().sum(dim=2, keepdim=True) + eps)  # (B, O, I), unit-norm rows i
    out = torch.einsum("bmi,boi->bmo", x, w)  # (B, M, O)
    if bias is not None:
        out = out + bias  # (B, M, O)
    return out


class ModulatedLinear(nn.Module):
    """A linear layer whose weight is modulated, per batch item, by a style vector (StyleGAN2's ModFC).

    ``s = A(style)`` is an :class:`EqualLinear` with effective bias 1, so s starts around 1 (StyleGAN2,
    ``bias_init=1``); the shared weight is stored N(0, 1) and scaled by ``1/sqrt(I)`` at run time
    (equalized learning rate, as every StyleGAN2 layer).

    Args:
        in_dim, out_dim: features in and out (I, O).
        style_dim: width S of the style vector (a token y^i in the patch decoder).
        demodulate: StyleGAN2 demodulation (off for an output layer, like toRGB).
        bias: add a learned bias after (de)modulation.
        activation: None or ``"lrelu"`` (scaled leaky ReLU, as in CIPS's modulated FC layers).
        fast: scale the input instead of the weight (:func:`modulated_linear`); ``fast=False`` builds the
            (B, O, I) modulated weights of lesson 07 (:func:`modulated_linear_explicit`). Same function.

    Shapes: forward ``x (B, M, I), style (B, S) -> (B, M, O)``.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        style_dim: int,
        demodulate: bool = True,
        bias: bool = True,
        activation: str | None = None,
        fast: bool = True,
    ) -> None:
        super().__init__()
        _check_positive(in_dim=in_dim, out_dim=out_dim, style_dim=style_dim)
        _check_activation(activation)
        self.in_dim, self.out_dim, self.style_dim, self.fast = in_dim, out_dim, style_dim, fast
        self.demodulate, self.activation = demodulate, activation
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))  # (O, I)
        self.bias = nn.Parameter(torch.empty(out_dim)) if bias else None  # (O,)
        self.affine = EqualLinear(style_dim, in_dim, bias_init=1.0)  # A: style (B, S) -> s (B, I)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """StyleGAN2 rules: W ~ N(0, 1) (scaled by 1/sqrt(I) at run time), bias 0, s = A(style) around 1."""
        nn.init.normal_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        self.affine.reset_parameters()  # EqualLinear's own rule, effective bias 1

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """``x (B, M, I), style (B, S) -> (B, M, O)``."""
        if style.ndim != 2 or style.shape[1] != self.style_dim:
            raise ValueError(f"style must have shape (B, {self.style_dim}), got {tuple(style.shape)}")
        s = self.affine(style)  # (B, I)
        weight = self.weight / math.sqrt(self.in_dim)  # (O, I), equalized lr
        modulate = modulated_linear if self.fast else modulated_linear_explicit
        out = modulate(x, weight, s, self.bias, demodulate=self.demodulate)  # (B, M, O)
        if self.activation == "lrelu":
            out = scaled_leaky_relu(out)  # (B, M, O)
        return out

    def forward_shared(self, x: torch.Tensor, style: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """``scale * forward(x expanded to every batch item, style)`` for inputs ``x (M, I)`` shared by the
        batch: one GEMM (:func:`modulated_linear_shared`) on the fast path. ``-> (B, M, O)``."""
        if style.ndim != 2 or style.shape[1] != self.style_dim:
            raise ValueError(f"style must have shape (B, {self.style_dim}), got {tuple(style.shape)}")
        if not self.fast or self.activation is not None:
            out = self(x.unsqueeze(0).expand(style.shape[0], -1, -1), style)  # (B, M, O)
            return out * scale if scale != 1.0 else out
        s = self.affine(style)  # (B, I)
        weight = self.weight / math.sqrt(self.in_dim)  # (O, I), equalized lr
        return modulated_linear_shared(x, weight, s, self.bias, demodulate=self.demodulate, scale=scale)

    def extra_repr(self) -> str:
        return (
            f"in_dim={self.in_dim}, out_dim={self.out_dim}, style_dim={self.style_dim}, "
            f"demodulate={self.demodulate}, bias={self.bias is not None}, activation={self.activation}"
        )


class PatchCoordinateEncoding(nn.Module):
    """E_fou: learned Fourier features ``sin(Linear(coords))`` of the P x P pixel coordinates of a patch.

    The coordinates are ``coordinate_grid(P)``: (P*P, 2) with columns (row, col) in [-1, 1], row-major, the
    same pixel order as a flattened patch. It has the form of E_pos (``positional.SinePositionalEmbedding``)
    over the pixels of one patch instead of the token grid; like CIPS's learned Fourier features
    (Anokhin et al. 2021), the frequencies (the Linear's weight) are trained.

    Args:
        patch_size: P.
        dim: number of features (the paper's D of E_fou).
        max_freq: initial frequencies are drawn from U(-max_freq, max_freq) per axis (CIPS: sqrt(9/2)).

    Shapes: forward ``() -> (P*P, dim)``, values in [-1, 1].
    """

    def __init__(self, patch_size: int, dim: int, max_freq: float = DEFAULT_FOURIER_FREQ) -> None:
        super().__init__()
        _check_positive(patch_size=patch_size, dim=dim, max_freq=max_freq)
        self.patch_size, self.dim, self.max_freq = patch_size, dim, max_freq
        self.register_buffer("coords", coordinate_grid(patch_size), persistent=False)  # (P*P, 2)
        self.proj = nn.Linear(2, dim)  # the frequencies (weight) and phases (bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Frequencies as CIPS's first layer, random phases as random Fourier features.

        Weight ~ U(-sqrt(9/2), sqrt(9/2)) = U(-2.1, 2.1) per axis (CIPS ``LFF``, Anokhin et al. 2021): a few
        periods across [-1, 1], under the Nyquist limit pi (P - 1) / 2 of a P-pixel grid for P >= 3.
        Bias ~ U(-pi, pi) (Rahimi & Recht 2007; a course choice, the official ``LFF`` keeps PyTorch's
        default bias): uniform phases, so every feature has mean 0 and second
        moment 1/2 over random initialisations, which the decoder's choice of omega0 relies on.
        """
        nn.init.uniform_(self.proj.weight, -self.max_freq, self.max_freq)  # default sqrt(9/2) = 2.12
        nn.init.uniform_(self.proj.bias, -math.pi, math.pi)

    def forward(self) -> torch.Tensor:
        """``() -> E_fou (P*P, dim)``."""
        return torch.sin(self.proj(self.coords))  # (P*P, dim)

    def extra_repr(self) -> str:
        return f"patch_size={self.patch_size}, dim={self.dim}, max_freq={self.max_freq:.3g}"


class _RawCoordinates(nn.Module):
    """The decoder's input without E_fou: the (row, col) coordinates of its pixels, ``() -> (P*P, 2)``."""

    def __init__(self, patch_size: int) -> None:
        super().__init__()
        self.register_buffer("coords", coordinate_grid(patch_size), persistent=False)  # (P*P, 2)

    def forward(self) -> torch.Tensor:
        return self.coords  # (P*P, 2)


class PatchDecoder(nn.Module):
    """f_theta(E_fou, y^i): decode every token into its P x P x C patch with a token-modulated SIREN.

    For each token y^i (its own modulation, shared weights for all tokens):

        h = sin(omega0 * ModLinear_1(E_fou; y^i))        (P*P, hidden_dim), demodulated
        x^i = ModLinear_2(h; y^i)                        (P*P, C), not demodulated (StyleGAN2's toRGB)

    The sine hidden layer and ``omega0`` are course choices. The official decoder (mlpc-ucsd/ViTGAN,
    ``models/gan/stylegan2/vit_cips.py``, ``CIPSGenerator``) maps the token through its own mapping network
    and decodes LFF features with three modulated 1x1 convolutions (leaky ReLU, noise injection) and a
    non-demodulated ToRGB.

    ``omega0`` defaults to sqrt(2), not SIREN's 30. Demodulation fixes the norm of every row of the
    effective weight to 1, so the pre-activation ``u`` of the sine has variance about ``E[x^2] = 1/2``
    (the second moment of the E_fou features) whatever the weights; ``omega0 = sqrt(2)`` then gives
    ``omega0 * u`` the unit standard deviation that SIREN's analysis asks of every sine input (Sitzmann et
    al. 2020, Sec. 3.2). With 30 the sine would see std ~21: pure aliasing noise on a 4 x 4 patch.

    Args:
        token_dim: width D of the tokens y^i (the style of both modulated layers).
        patch_size: P.
        channels: C.
        hidden_dim: width of the hidden layer; defaults to ``token_dim``.
        fourier_dim: width of E_fou; defaults to ``token_dim``.
        demodulate: demodulate the hidden layer (the output layer never is).
        omega0: frequency factor of the hidden sine.
        fourier_freq: initial frequency bound of E_fou (``PatchCoordinateEncoding.max_freq``).
        fourier_features: False reads the raw (row, col) pixel coordinates in [-1, 1] instead of E_fou
            (lesson 13's ablation): the first layer then sees 2 numbers per pixel, no learned frequencies.

    Shapes: forward ``y (B, N, D) -> (B, N, C*P*P)``, each patch flattened channels-first (C, P, P), the
    layout ``patches.unpatchify`` expects.
    """

    def __init__(
        self,
        token_dim: int,
        patch_size: int,
        channels: int = 3,
        hidden_dim: int | None = None,
        fourier_dim: int | None = None,
        demodulate: bool = True,
        omega0: float = math.sqrt(2.0),
        fourier_freq: float = DEFAULT_FOURIER_FREQ,
        fourier_features: bool = True,
    ) -> None:
        super().__init__()
        hidden_dim = token_dim if hidden_dim is None else hidden_dim
        fourier_dim = (token_dim if fourier_dim is None else fourier_dim) if fourier_features else 2
        _check_positive(token_dim=token_dim, channels=channels, hidden_dim=hidden_dim, omega0=omega0)
        self.token_dim, self.patch_size, self.channels = token_dim, patch_size, channels
        self.omega0 = omega0
        if fourier_features:
            self.fourier: nn.Module = PatchCoordinateEncoding(
                patch_size, fourier_dim, fourier_freq
            )  # (P*P, F)
        else:
            self.fourier = _RawCoordinates(patch_size)  # (P*P, 2)
        self.hidden = ModulatedLinear(fourier_dim, hidden_dim, token_dim, demodulate=demodulate)
        self.to_rgb = ModulatedLinear(hidden_dim, channels, token_dim, demodulate=False)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """``y (B, N, D) -> patches (B, N, C*P*P)``, channels-first within each patch."""
        if y.ndim != 3 or y.shape[-1] != self.token_dim:
            raise ValueError(
                f"y must have shape (B, N, {self.token_dim}) (one token of width token_dim per patch), "
                f"got {tuple(y.shape)}"
            )
        B, N, D = y.shape
        P, C = self.patch_size, self.channels
        y = y.reshape(B * N, D)  # (B*N, D): every token is one modulated network
        e_fou = self.fourier()  # (P*P, F), the same for every token
        # omega0 * ModLinear_1(E_fou; y): one (B*N, F) x (F, P*P*hidden) GEMM on the fast path
        h = torch.sin(self.hidden.forward_shared(e_fou, y, scale=self.omega0))  # (B*N, P*P, hidden_dim)
        rgb = self.to_rgb(h, y)  # (B*N, P*P, C): one C-vector per pixel
        rgb = rgb.view(B, N, P * P, C).transpose(2, 3)  # (B, N, C, P*P): channels first
        return rgb.reshape(B, N, C * P * P)  # (B, N, C*P*P)

    def extra_repr(self) -> str:
        return (
            f"token_dim={self.token_dim}, patch_size={self.patch_size}, channels={self.channels}, "
            f"omega0={self.omega0:.4g}"
        )


__all__ = [
    "ModulatedLinear",
    "PatchCoordinateEncoding",
    "PatchDecoder",
    "SineLayer",
    "modulated_linear",
    "modulated_linear_explicit",
    "modulated_linear_shared",
]
