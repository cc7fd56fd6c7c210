"""Tests for vitgan_lite.positional (lesson 02): coordinate grid, E_pos, learned table, Fourier features."""

from __future__ import annotations

import math

import pytest
import torch

from vitgan_lite.positional import (
    FourierFeatures,
    LearnedPositionalEmbedding,
    SinePositionalEmbedding,
    coordinate_grid,
    fourier_features,
)


# ----------------------------------------------------------------------------- coordinate_grid
def test_grid_shape_corners_and_row_major_order() -> None:
    n = 5
    g = coordinate_grid(n)
    assert g.shape == (n * n, 2)
    # Corners exactly (no rounding): first token is the top-left cell, last the bottom-right.
    assert g[0].tolist() == [-1.0, -1.0]
    assert g[-1].tolist() == [1.0, 1.0]
    # Row-major with columns (row, col): token k sits at row k // n, column k % n.
    axis = torch.linspace(-1, 1, n)
    for k in (1, n - 1, n, 2 * n + 3):
        assert g[k].tolist() == [axis[k // n].item(), axis[k % n].item()]
    # Hand value: n = 3, token 5 = row 1, col 2 -> (0, 1).
    assert coordinate_grid(3)[5].tolist() == [0.0, 1.0]


def test_grid_dtype_device_and_single_cell() -> None:
    g = coordinate_grid(4, device="cpu", dtype=torch.float64)
    assert g.dtype == torch.float64 and g.device.type == "cpu"
    assert coordinate_grid(1).tolist() == [[-1.0, -1.0]]  # linspace(-1, 1, 1) == [-1]


@pytest.mark.parametrize("n", [0, -2, 2.5])
def test_grid_rejects_bad_size(n) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        coordinate_grid(n)


# ----------------------------------------------------------------------------- SinePositionalEmbedding
@pytest.mark.parametrize("grid_size, dim", [(2, 3), (3, 8), (4, 5)])
def test_sine_embedding_shape_and_finite(grid_size: int, dim: int) -> None:
    e = SinePositionalEmbedding(grid_size, dim)()
    assert e.shape == (grid_size**2, dim)
    assert torch.isfinite(e).all() and e.abs().max() <= 1.0


def test_sine_embedding_matches_hand_computation() -> None:
    emb = SinePositionalEmbedding(grid_size=2, dim=2)
    with torch.no_grad():
        emb.linear.weight.copy_(torch.tensor([[0.5, 0.25], [1.0, -2.0]]))
        emb.linear.bias.copy_(torch.tensor([0.1, 0.0]))
    e = emb()
    # Grid 2: tokens (row, col) = (-1,-1), (-1,1), (1,-1), (1,1).
    # Token 1, feature 0: sin(0.5 * -1 + 0.25 * 1 + 0.1) = sin(-0.15).
    # Token 2, feature 1: sin(1.0 * 1 - 2.0 * -1 + 0.0) = sin(3).
    assert e[1, 0].item() == pytest.approx(math.sin(-0.15), abs=1e-6)
    assert e[2, 1].item() == pytest.approx(math.sin(3.0), abs=1e-6)
    # Whole table: sin(coords W^T + b).
    W, b = emb.linear.weight, emb.linear.bias
    torch.testing.assert_close(e, torch.sin(coordinate_grid(2) @ W.T + b))


def test_sine_embedding_learnable_gets_gradients() -> None:
    emb = SinePositionalEmbedding(grid_size=3, dim=4)
    emb().square().sum().backward()
    params = list(emb.named_parameters())
    assert {n for n, _ in params} == {"linear.weight", "linear.bias"}
    for name, p in params:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_sine_embedding_fixed_has_no_trainable_params() -> None:
    emb = SinePositionalEmbedding(grid_size=3, dim=4, learnable=False)
    assert [n for n, p in emb.named_parameters() if p.requires_grad] == []
    assert not emb().requires_grad  # nothing to backpropagate into
    # Still a random sinusoid, not a degenerate constant.
    assert emb().std() > 0.1


def test_sine_embedding_distinguishes_tokens() -> None:
    # Every token gets its own embedding (what a positional embedding is for).
    e = SinePositionalEmbedding(grid_size=4, dim=16)()
    dist = torch.cdist(e, e)  # (N, N)
    off_diag = dist[~torch.eye(16, dtype=torch.bool)]
    assert off_diag.min() > 1e-3


def test_sine_embedding_coords_not_in_state_dict() -> None:
    emb = SinePositionalEmbedding(grid_size=2, dim=3)
    assert set(emb.state_dict()) == {"linear.weight", "linear.bias"}


# ----------------------------------------------------------------------------- LearnedPositionalEmbedding
def test_learned_embedding_shape_init_and_gradient() -> None:
    torch.manual_seed(0)
    emb = LearnedPositionalEmbedding(num_tokens=64, dim=32)
    e = emb()
    assert e.shape == (64, 32)
    # Truncated normal, std 0.02, cut at 2 std: std a bit under 0.02, nothing beyond 0.04.
    assert 0.014 < e.std().item() < 0.02
    assert e.abs().max() <= 0.04
    (e * torch.randn(64, 32)).sum().backward()
    assert emb.weight.grad is not None and emb.weight.grad.abs().sum() > 0


def test_learned_embedding_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="positive integers"):
        LearnedPositionalEmbedding(0, 4)


# ----------------------------------------------------------------------------- Fourier features
def test_fourier_features_hand_values() -> None:
    # v = 0.25, B = [[1]]: phase 2 pi * 0.25 = pi / 2 -> [sin, cos] = [1, 0].
    out = fourier_features(torch.tensor([[0.25]]), torch.tensor([[1.0]]))
    torch.testing.assert_close(out, torch.tensor([[1.0, 0.0]]), atol=1e-6, rtol=0)
    # v = (0.5, 0.25), B = [[1, 2], [0.5, 0]]: phases 2 pi (0.5 + 0.5) = 2 pi and 2 pi * 0.25 = pi / 2
    # -> [sin 2pi, sin pi/2, cos 2pi, cos pi/2] = [0, 1, 1, 0].
    out = fourier_features(torch.tensor([0.5, 0.25]), torch.tensor([[1.0, 2.0], [0.5, 0.0]]))
    torch.testing.assert_close(out, torch.tensor([0.0, 1.0, 1.0, 0.0]), atol=1e-5, rtol=0)


def test_fourier_features_leading_dims_and_bad_width() -> None:
    v = torch.rand(2, 3, 5, 2)
    B = torch.randn(7, 2)
    out = fourier_features(v, B)
    assert out.shape == (2, 3, 5, 14)
    # sin^2 + cos^2 = 1 feature by feature.
    torch.testing.assert_close(out[..., :7] ** 2 + out[..., 7:] ** 2, torch.ones(2, 3, 5, 7))
    with pytest.raises(ValueError, match="give v shape"):
        fourier_features(torch.rand(4, 3), B)


def test_fourier_module_buffer_is_fixed_and_seeded() -> None:
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    ff = FourierFeatures(in_dim=2, num_features=2000, sigma=10.0, generator=g1)
    ff2 = FourierFeatures(in_dim=2, num_features=2000, sigma=10.0, generator=g2)
    torch.testing.assert_close(ff.B, ff2.B)  # same generator seed, same B
    assert ff.B.shape == (2000, 2)
    assert list(ff.parameters()) == [] and "B" in ff.state_dict()  # a buffer: saved, never trained
    assert ff.B.std().item() == pytest.approx(10.0, rel=0.05)  # B ~ N(0, sigma^2)
    v = torch.rand(3, 2)
    torch.testing.assert_close(ff(v), fourier_features(v, ff.B))
    assert ff(v).shape == (3, 4000)


def test_fourier_module_rejects_bad_sigma() -> None:
    with pytest.raises(ValueError, match="sigma must be positive"):
        FourierFeatures(2, 4, sigma=0.0)
