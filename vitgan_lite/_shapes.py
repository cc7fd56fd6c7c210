"""Shape checks at public boundaries that fail with a sentence naming what to change."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def check_image_batch(x: torch.Tensor, name: str = "x", channels: int | None = None) -> None:
    """Refuse anything that is not a (B, C, H, W) float batch, saying what to change."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        hint = " (add a batch dimension with x.unsqueeze(0))" if x.ndim == 3 else ""
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}{hint}")
    if channels is not None and x.shape[1] != channels:
        hint = " (channels-last? use x.permute(0, 3, 1, 2))" if x.shape[-1] == channels else ""
        raise ValueError(f"{name} must have {channels} channels in dim 1, got shape {tuple(x.shape)}{hint}")


def check_divisible(size: int, patch_size: int, what: str = "image size") -> None:
    if patch_size <= 0:
        raise ValueError(f"patch size must be positive, got {patch_size}")
    if size % patch_size:
        raise ValueError(
            f"{what} {size} is not divisible by patch size {patch_size}: "
            f"resize to {size - size % patch_size} or {size + patch_size - size % patch_size}, "
            "or pick a patch size that divides it"
        )


def check_shape(x: torch.Tensor, expected: Sequence[int | None], name: str = "x") -> None:
    """Assert ``x.shape`` matches ``expected`` where ``None`` is a wildcard (NVlabs assert_shape)."""
    if x.ndim != len(expected) or any(e is not None and s != e for s, e in zip(x.shape, expected)):
        want = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
