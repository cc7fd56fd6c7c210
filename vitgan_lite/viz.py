"""Pictures for the lessons: image grids of [-1, 1] tensors."""

from __future__ import annotations

import torch


def image_grid(x: torch.Tensor, nrow: int = 8, padding: int = 1, pad_value: float = 1.0) -> torch.Tensor:
    """Images (B, C, H, W) in [-1, 1] -> one grid image (H', W', C) in [0, 1], ready for imshow."""
    from torchvision.utils import make_grid

    grid = make_grid(
        x.detach().float().cpu().clamp(-1, 1) * 0.5 + 0.5, nrow=nrow, padding=padding, pad_value=pad_value
    )  # (C, H', W')
    return grid.permute(1, 2, 0)  # (H', W', C)


def show_images(x: torch.Tensor, nrow: int = 8, title: str | None = None, ax=None, scale: float = 0.6):
    """Show a batch of [-1, 1] images as a grid; returns the matplotlib Axes."""
    import matplotlib.pyplot as plt

    grid = image_grid(x, nrow=nrow)
    if ax is None:
        h, w = grid.shape[:2]
        _, ax = plt.subplots(figsize=(max(2.0, scale * w / 12), max(2.0, scale * h / 12)))
    ax.imshow(
        grid.squeeze(-1) if grid.shape[-1] == 1 else grid,
        cmap="gray" if grid.shape[-1] == 1 else None,
        interpolation="nearest",
    )
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


__all__ = ["image_grid", "show_images"]
