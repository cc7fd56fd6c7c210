"""DiffAugment: differentiable augmentations applied to reals AND fakes (Zhao et al., NeurIPS 2020).

Taught in ``notebooks/09_losses_and_augmentation.ipynb``.

DiffAugment trains both players on augmented images, with the same differentiable T in both steps:

    L_D = E_x[f_D(-D(T(x)))] + E_z[f_D(D(T(G(z))))]        L_G = E_z[f_G(-D(T(G(z))))]

Augmenting the reals only would teach G to produce augmented-looking images; augmenting in the D step
only would train G against a D that never sees un-augmented fakes. Because T is differentiable, the G
step's gradient flows back through T(G(z)) into G.
ViTGAN (Lee et al., ICLR 2022) uses the policy ``"color,translation,cutout"`` together with bCR.

    color        brightness  x + (r - 0.5)                        r ~ U[0, 1) per sample
                 saturation  (x - mean_C(x)) * 2r + mean_C(x)
                 contrast    (x - mean_CHW(x)) * (r + 0.5) + mean_CHW(x)
    translation  integer shift in [-s, s] per axis, s = int(H * ratio + 0.5), zero fill
    cutout       a square of side int(H * ratio + 0.5) at a random centre, set to zero, clipped at borders

Every draw is PER SAMPLE (one draw shared by the batch would give every image the same transform: far
fewer distinct augmentations per step, all correlated) and made on the CPU with the optional
``generator``, then moved to ``x.device``: a seeded run gives the same augmentations on any device.
Images are in [-1, 1], so the zero fill is mid-grey.

Shape legend: ``B`` batch, ``C`` channels, ``H, W`` pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from vitgan_lite._shapes import check_image_batch


def _check_input(x: torch.Tensor, generator: torch.Generator | None) -> None:
    """A float (B, C, H, W) batch and, if given, a CPU generator; else a sentence saying what to change."""
    check_image_batch(x)
    if not x.is_floating_point():
        raise TypeError(
            f"x must be a float image batch in [-1, 1], got dtype {x.dtype}: convert uint8 images with "
            "vitgan_lite.data.to_float"
        )
    if generator is not None and generator.device.type != "cpu":
        raise ValueError(
            f"generator must be a CPU torch.Generator, got one on {generator.device}: draws are made on the "
            "CPU so that a seeded run is reproducible on any device; use torch.Generator().manual_seed(seed)"
        )


def _uniform(B: int, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One r ~ U[0, 1) per sample, drawn on the CPU and moved to x, shaped to broadcast over (C, H, W)."""
    r = torch.rand(B, 1, 1, 1, generator=generator)  # (B, 1, 1, 1)
    return r.to(device=x.device, dtype=x.dtype)  # (B, 1, 1, 1)


def _randint(low: int, high: int, B: int, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """B integers in [low, high), drawn on the CPU and moved to x's device."""
    return torch.randint(low, high, (B,), generator=generator).to(x.device)  # (B,)


def _check_ratio(ratio: float, name: str) -> None:
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"{name} ratio must lie in [0, 1] (a fraction of the image size), got {ratio}")


def rand_brightness(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add one offset r - 0.5 in [-0.5, 0.5) per sample to every pixel. ``x (B, C, H, W)`` -> same."""
    _check_input(x, generator)
    return x + (_uniform(x.shape[0], x, generator) - 0.5)  # (B, C, H, W)


def rand_saturation(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Scale each pixel's distance from its channel mean by 2r in [0, 2). ``x (B, C, H, W)`` -> same."""
    _check_input(x, generator)
    m = x.mean(dim=1, keepdim=True)  # (B, 1, H, W): the grey value of each pixel
    return (x - m) * (2.0 * _uniform(x.shape[0], x, generator)) + m  # (B, C, H, W)


def rand_contrast(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Scale each image's distance from its mean by r + 0.5 in [0.5, 1.5). ``x (B, C, H, W)`` -> same."""
    _check_input(x, generator)
    m = x.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1): the mean of the whole image
    return (x - m) * (_uniform(x.shape[0], x, generator) + 0.5) + m  # (B, C, H, W)


def rand_translation(
    x: torch.Tensor, ratio: float = 0.125, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Shift each image by integers (ty, tx) in [-s, s], zero fill: ``out[i, j] = x[i - ty, j - tx]``.

    ``s = int(H * ratio + 0.5)`` rows and ``int(W * ratio + 0.5)`` columns (DiffAugment's 1/8 of the
    image by default), drawn independently per sample and per axis. ``x (B, C, H, W)`` -> same.
    """
    _check_input(x, generator)
    _check_ratio(ratio, "translation")
    B, C, H, W = x.shape
    sh, sw = int(H * ratio + 0.5), int(W * ratio + 0.5)
    ty = _randint(-sh, sh + 1, B, x, generator)  # (B,)
    tx = _randint(-sw, sw + 1, B, x, generator)  # (B,)
    # zero-pad by the largest shift, then read row i - ty (col j - tx) of the image, i.e. row
    # i - ty + sh of the padded one: always inside it, so the fill comes from the padding (no loop over B)
    x_pad = F.pad(x, [sw, sw, sh, sh])  # (B, C, H + 2sh, W + 2sw)
    rows = torch.arange(H, device=x.device)[None, :] - ty[:, None] + sh  # (B, H)
    cols = torch.arange(W, device=x.device)[None, :] - tx[:, None] + sw  # (B, W)
    b = torch.arange(B, device=x.device)[:, None, None]  # (B, 1, 1)
    out = x_pad.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()  # (B, C, H, W)


def rand_cutout(
    x: torch.Tensor, ratio: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Zero a square of side ``int(H * ratio + 0.5)`` at a random centre per sample, clipped at the borders.

    The square covers rows ``[cy - side // 2, cy - side // 2 + side)`` (and likewise columns) with the
    centre ``(cy, cx)`` uniform over the pixels, so it may hang over an edge. ``x (B, C, H, W)`` -> same.
    """
    _check_input(x, generator)
    _check_ratio(ratio, "cutout")
    B, C, H, W = x.shape
    side_h, side_w = int(H * ratio + 0.5), int(W * ratio + 0.5)
    top = _randint(0, H, B, x, generator) - side_h // 2  # (B,): first row of the square
    left = _randint(0, W, B, x, generator) - side_w // 2  # (B,): first column of the square
    r = torch.arange(H, device=x.device)[None, :]  # (1, H)
    c = torch.arange(W, device=x.device)[None, :]  # (1, W)
    in_rows = (r >= top[:, None]) & (r < top[:, None] + side_h)  # (B, H)
    in_cols = (c >= left[:, None]) & (c < left[:, None] + side_w)  # (B, W)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])  # (B, H, W): False inside the square
    # multiply by a 0/1 mask (not in-place assignment) so gradient flows to the pixels that remain
    return x * keep[:, None].to(x.dtype)  # (B, C, H, W)


AUGMENT_FNS: dict[str, list[Callable[..., torch.Tensor]]] = {
    "color": [rand_brightness, rand_saturation, rand_contrast],
    "translation": [rand_translation],
    "cutout": [rand_cutout],
}


def parse_policy(policy: str) -> list[str]:
    """``"color, cutout"`` -> ``["color", "cutout"]``; an unknown name raises a ValueError naming the choices.

    ``""`` gives ``[]`` (no augmentation). Call it early to refuse a bad policy before training starts.
    """
    names = [name.strip() for name in policy.split(",") if name.strip()]
    for name in names:
        if name not in AUGMENT_FNS:
            raise ValueError(
                f"unknown DiffAugment policy {name!r} in {policy!r}: choose from {', '.join(AUGMENT_FNS)}, "
                'comma-separated (e.g. "color,translation,cutout"), or "" for none'
            )
    return names


def diff_augment(
    x: torch.Tensor, policy: str = "color,translation,cutout", generator: torch.Generator | None = None
) -> torch.Tensor:
    """Apply the comma-separated DiffAugment ``policy`` in order; ``""`` is the identity.

    ``x (B, C, H, W)`` in [-1, 1] -> augmented ``(B, C, H, W)``, differentiable with respect to ``x``.
    Use the same policy on reals and fakes, in the D step and the G step (Zhao et al. 2020).
    """
    names = parse_policy(policy)  # refuse a bad policy before touching x
    _check_input(x, generator)
    for name in names:
        for fn in AUGMENT_FNS[name]:
            x = fn(x, generator=generator)  # (B, C, H, W)
    return x


__all__ = [
    "AUGMENT_FNS",
    "diff_augment",
    "parse_policy",
    "rand_brightness",
    "rand_contrast",
    "rand_cutout",
    "rand_saturation",
    "rand_translation",
]
