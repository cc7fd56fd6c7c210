"""Positional embeddings and Fourier features (ViTGAN Sec. 4.2, E_pos and E_fou), taught in
``notebooks/02_positional_embeddings.ipynb``.

A transformer sees a set of tokens; a positional embedding tells it where each token sits.

* ``SinePositionalEmbedding``: ViTGAN's E_pos = sin(Linear(coords)), a sinusoid of a linear map of the
  token's (row, col) coordinate in [-1, 1] (the generator's input tokens, ViTGAN eq. 5, h_0 = E_pos).
* ``LearnedPositionalEmbedding``: the plain ViT table, one free vector per token (Dosovitskiy et al.).
* ``fourier_features`` / ``FourierFeatures``: gamma(v) = [sin(2 pi v B^T), cos(2 pi v B^T)] with a fixed
  Gaussian B (Tancik et al., NeurIPS 2020), the E_fou of the generator's implicit patch decoder.

Shape legend: ``N`` tokens (grid_size ** 2), ``D`` width, ``d`` coordinate width, ``m`` number of
Fourier frequencies. Embeddings have no batch dimension: callers broadcast them over ``B``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def coordinate_grid(
    n: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """The (row, col) coordinates of an n x n grid in [-1, 1], row-major: shape (n * n, 2).

    Row k of the result is the cell at grid row ``k // n``, column ``k % n``, matching the token order
    of ``vitgan_lite.patches``. Values come from ``torch.linspace(-1, 1, n)``, so the corners are
    exactly (-1, -1) and (1, 1).
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"grid size n must be a positive integer, got {n!r}")
    axis = torch.linspace(-1.0, 1.0, n, device=device, dtype=dtype)  # (n,)
    rows, cols = torch.meshgrid(axis, axis, indexing="ij")  # (n, n) each; "ij": rows vary along dim 0
    return torch.stack([rows, cols], dim=-1).reshape(n * n, 2)  # (n * n, 2), columns (row, col)


class SinePositionalEmbedding(nn.Module):
    """ViTGAN's E_pos = sin(coords W^T + b) over a grid_size x grid_size token grid.

    Args:
        grid_size: tokens per side; N = grid_size ** 2.
        dim: embedding width D.
        learnable: if False, the linear layer is frozen (``requires_grad=False``) so the embedding is a
            fixed random sinusoid (lesson 02 compares the two).

    Forward: () -> (N, D).
    """

    def __init__(self, grid_size: int, dim: int, learnable: bool = True) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim}")
        self.grid_size, self.dim, self.learnable = grid_size, dim, learnable
        # Coordinates are a constant of the grid: a non-persistent buffer follows .to(device) but stays
        # out of the state dict.
        self.register_buffer("coords", coordinate_grid(grid_size), persistent=False)  # (N, 2)
        self.linear = nn.Linear(2, dim)  # W (D, 2), b (D,)
        self.reset_parameters()
        self.linear.requires_grad_(learnable)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Random frequencies and phases, as random Fourier features (Rahimi & Recht, NeurIPS 2007)."""
        # Frequencies W ~ N(0, sigma^2) with sigma half the grid's Nyquist frequency, pi (n - 1) / 2 for a
        # spacing of 2 / (n - 1): neighbouring tokens get distinguishable embeddings without aliasing most
        # of the features (Tancik et al. 2020 on choosing the Fourier scale).
        sigma = math.pi * max(self.grid_size - 1, 1) / 4.0
        nn.init.normal_(self.linear.weight, std=sigma)
        # Phases b ~ U(-pi, pi), Rahimi & Recht: without them every feature would be odd in the coordinates.
        nn.init.uniform_(self.linear.bias, -math.pi, math.pi)

    def forward(self) -> torch.Tensor:
        """E_pos, shape (N, D)."""
        return torch.sin(self.linear(self.coords))  # (N, D)

    def extra_repr(self) -> str:
        return f"grid_size={self.grid_size}, dim={self.dim}, learnable={self.learnable}"


class LearnedPositionalEmbedding(nn.Module):
    """A ViT-style table of one learned vector per token (Dosovitskiy et al., ICLR 2021).

    Args:
        num_tokens: N.
        dim: embedding width D.

    Forward: () -> (N, D).
    """

    def __init__(self, num_tokens: int, dim: int) -> None:
        super().__init__()
        if num_tokens < 1 or dim < 1:
            raise ValueError(f"num_tokens and dim must be positive integers, got {num_tokens} and {dim}")
        self.weight = nn.Parameter(torch.empty(num_tokens, dim))  # (N, D)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Truncated normal, std 0.02: timm's ``VisionTransformer`` rule for ``pos_embed``."""
        # Cut at 2 std; timm's call keeps the default cut at +-2 (absolute), i.e. barely truncates.
        nn.init.trunc_normal_(self.weight, std=0.02, a=-0.04, b=0.04)

    def forward(self) -> torch.Tensor:
        """The table, shape (N, D)."""
        return self.weight


def fourier_features(v: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """gamma(v) = [sin(2 pi v B^T), cos(2 pi v B^T)] (Tancik et al. 2020), shape (..., d) -> (..., 2m).

    Args:
        v: coordinates (..., d).
        B: frequency matrix (m, d).
    """
    if B.ndim != 2:
        raise ValueError(f"B must have shape (m, d), got {tuple(B.shape)}")
    if v.shape[-1] != B.shape[1]:
        raise ValueError(
            f"v has {v.shape[-1]} coordinates in its last dim but B expects d = {B.shape[1]} "
            f"(B has shape {tuple(B.shape)}): give v shape (..., {B.shape[1]})"
        )
    phase = 2.0 * math.pi * (v @ B.T)  # (..., m)
    return torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1)  # (..., 2m)


class FourierFeatures(nn.Module):
    """Fourier features with a fixed Gaussian frequency matrix B ~ N(0, sigma^2), shape (m, d).

    Args:
        in_dim: coordinate width d.
        num_features: number of frequencies m; the output has 2m features.
        sigma: standard deviation of the frequencies (larger sigma, finer detail; Tancik et al. 2020).
        generator: optional ``torch.Generator`` that draws B, for reproducibility.

    Forward: v (..., d) -> (..., 2m). B is a buffer: it moves with the module and is saved, never trained.
    """

    def __init__(
        self, in_dim: int, num_features: int, sigma: float, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        if in_dim < 1 or num_features < 1:
            raise ValueError(f"in_dim and num_features must be positive, got {in_dim} and {num_features}")
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.in_dim, self.num_features, self.sigma = in_dim, num_features, sigma
        B = torch.randn(num_features, in_dim, generator=generator) * sigma  # (m, d)
        self.register_buffer("B", B)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """gamma(v), (..., d) -> (..., 2m)."""
        return fourier_features(v, self.B)  # (..., 2m)

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, num_features={self.num_features}, sigma={self.sigma}"


__all__ = [
    "coordinate_grid",
    "SinePositionalEmbedding",
    "LearnedPositionalEmbedding",
    "fourier_features",
    "FourierFeatures",
]
