"""Patches: an image as a sequence of P x P tokens, and back; the discriminator's overlapping patch embedding.

Taught in ``notebooks/01_patches.ipynb``.

A ViT reads an image ``x in R^{C x H x W}`` as ``N = (H/P)(W/P)`` flattened patches
``x_p in R^{N x (P^2 C)}`` (Dosovitskiy et al. 2021, eq. 1). Conventions of this package:

* token ``n`` is the patch at grid row ``n // (W/P)``, column ``n % (W/P)`` (row-major);
* each patch is flattened channels-first, ``(C, P, P)``, so a linear layer on patch vectors is exactly
  a ``Conv2d(C, D, kernel_size=P, stride=P)`` with the same weights.

ViTGAN's discriminator lets neighbouring patches overlap (Sec. 4.1): a convolution with kernel
``P + 2o`` and stride ``P`` (padding ``o``) still gives one token per P x P cell, but each token also sees
``o`` pixels of its neighbours, which makes the discriminator harder to fool along the patch grid.

Shape legend: B batch, C channels, H x W pixels, P patch size, N = (H/P)(W/P) tokens, D width.
"""

from __future__ import annotations

import torch
from torch import nn

from vitgan_lite._shapes import check_divisible, check_image_batch


def num_patches(image_size: int, patch_size: int) -> int:
    """Number of tokens of a square image: ``(image_size / patch_size) ** 2``."""
    check_divisible(image_size, patch_size)
    return (image_size // patch_size) ** 2


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Images (B, C, H, W) -> patch vectors (B, N, C*P*P), row-major tokens, channels-first patches."""
    check_image_batch(x)
    B, C, H, W = x.shape
    P = patch_size
    check_divisible(H, P, "image height")
    check_divisible(W, P, "image width")
    x = x.reshape(B, C, H // P, P, W // P, P)  # (B, C, H/P, P, W/P, P)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, H/P, W/P, C, P, P): grid first, then the patch's own axes
    return x.reshape(B, (H // P) * (W // P), C * P * P)  # (B, N, C*P*P)


def unpatchify(
    patches: torch.Tensor, patch_size: int, image_size: int | tuple[int, int], channels: int = 3
) -> torch.Tensor:
    """Patch vectors (B, N, C*P*P) -> images (B, C, H, W); the exact inverse of :func:`patchify`."""
    H, W = (image_size, image_size) if isinstance(image_size, int) else image_size
    P = patch_size
    check_divisible(H, P, "image height")
    check_divisible(W, P, "image width")
    if patches.ndim != 3 or patches.shape[1:] != (H // P * (W // P), channels * P * P):
        raise ValueError(
            f"patches must have shape (B, {H // P * (W // P)}, {channels * P * P}) for a {H}x{W} image "
            f"with {channels} channels and patch size {P}, got {tuple(patches.shape)}"
        )
    B = patches.shape[0]
    x = patches.reshape(B, H // P, W // P, channels, P, P)  # (B, H/P, W/P, C, P, P)
    x = x.permute(0, 3, 1, 4, 2, 5)  # (B, C, H/P, P, W/P, P)
    return x.reshape(B, channels, H, W)  # (B, C, H, W)


class OverlappingPatchEmbed(nn.Module):
    """ViTGAN's discriminator patch embedding: Conv2d(kernel P + 2o, stride P, padding o).

    Returns one D-dim token per P x P cell, (B, N, D), each token seeing ``overlap`` extra pixels on
    every side. ``overlap=0`` is the plain ViT patch embedding.
    """

    def __init__(self, image_size: int, patch_size: int, overlap: int, channels: int, dim: int) -> None:
        super().__init__()
        check_divisible(image_size, patch_size)
        if overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {overlap}")
        self.image_size, self.patch_size, self.overlap, self.channels = (
            image_size,
            patch_size,
            overlap,
            channels,
        )
        self.grid_size = image_size // patch_size
        self.num_patches = self.grid_size**2
        self.proj = nn.Conv2d(
            channels, dim, kernel_size=patch_size + 2 * overlap, stride=patch_size, padding=overlap
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, channels=self.channels)
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"expected {self.image_size}x{self.image_size} images, got {tuple(x.shape[-2:])}: "
                "resize the images or build the embedding with image_size matching them"
            )
        x = self.proj(x)  # (B, D, H/P, W/P)
        return x.flatten(2).transpose(1, 2)  # (B, N, D)

    def receptive_field(self, token: int) -> tuple[int, int, int, int]:
        """Pixel box (top, left, bottom, right), clipped to the image, that ``token`` sees."""
        r, c = divmod(token, self.grid_size)
        P, o = self.patch_size, self.overlap
        top, left = r * P - o, c * P - o
        clip = lambda v: max(0, min(self.image_size, v))
        return clip(top), clip(left), clip(top + P + 2 * o), clip(left + P + 2 * o)


__all__ = ["OverlappingPatchEmbed", "num_patches", "patchify", "unpatchify"]
