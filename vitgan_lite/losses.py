"""Losses: the non-saturating logistic GAN loss and balanced consistency regularisation (bCR).

Taught in ``notebooks/09_losses_and_augmentation.ipynb``.

ViTGAN (Lee et al., ICLR 2022, implementation details) trains with the non-saturating logistic loss of
Goodfellow et al. (2014), in softplus form as StyleGAN2 writes it, since ``-log sigmoid(t) = softplus(-t)``:

    L_D = E_x[softplus(-D(x))] + E_z[softplus(D(G(z)))]          (discriminator)
    L_G = E_z[softplus(-D(G(z)))]                                 (generator, non-saturating)

and adds bCR (Zhao et al., "Improved consistency regularization for GANs", AAAI 2021, Algorithm 1) to the
discriminator step, with T a DiffAugment policy and lambda_real = lambda_fake = 10:

    L_bCR = lambda_real * E_x[(D(x) - D(T(x)))^2] + lambda_fake * E_z[(D(G(z)) - D(T(G(z))))^2]

D(.) is a LOGIT here: the discriminator ends in a linear layer with no sigmoid (``docs/ARCHITECTURE.md``).

Shape legend: ``B`` batch, ``C`` channels, ``H, W`` pixels. Logits have shape ``(B,)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from vitgan_lite._shapes import check_image_batch


def _check_logits(t: torch.Tensor, name: str) -> None:
    """Refuse anything that is not a (B,) float tensor of logits, saying what to change."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B,), got {type(t).__name__}")
    if t.ndim != 1:
        hint = " (squeeze the last dim with .squeeze(-1))" if t.ndim == 2 and t.shape[-1] == 1 else ""
        raise ValueError(
            f"{name} must have shape (B,), one logit per image as the discriminator returns, "
            f"got {tuple(t.shape)}{hint}"
        )
    if t.shape[0] == 0:
        raise ValueError(f"{name} is empty: the loss of an empty batch is undefined")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a float tensor of logits, got dtype {t.dtype}")


def _check_pair(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """bCR compares each image with its own augmentation, so the two logit vectors must pair up."""
    _check_logits(a, name_a)
    _check_logits(b, name_b)
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} {tuple(a.shape)} and {name_b} {tuple(b.shape)} must have the same shape: "
            "bCR pairs each image with its own augmentation T(x)"
        )


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator logistic loss ``mean(softplus(-D(x))) + mean(softplus(D(G(z))))``, a scalar.

    Equals binary cross-entropy with target 1 for reals and 0 for fakes; softplus is its numerically
    stable form (no ``log(sigmoid(.))`` underflow). ``real_logits (B,)`` and ``fake_logits (B',)`` may
    come from batches of different sizes.
    """
    _check_logits(real_logits, "real_logits")
    _check_logits(fake_logits, "fake_logits")
    # softplus(-D(x)) = -log sigmoid(D(x)): push D(x) up; softplus(D(G(z))) = -log(1 - sigmoid(.)): push down
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()  # ()


def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator non-saturating loss ``mean(softplus(-D(G(z))))``, a scalar.

    The "non-saturating" form maximises log D(G(z)) instead of minimising log(1 - D(G(z))): its gradient
    stays large while D confidently rejects the fakes early in training (Goodfellow et al. 2014, sec. 3).
    """
    _check_logits(fake_logits, "fake_logits")
    return F.softplus(-fake_logits).mean()  # ()


def bcr_penalty(
    real_logits: torch.Tensor,
    real_aug_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    fake_aug_logits: torch.Tensor,
    lambda_real: float = 10.0,
    lambda_fake: float = 10.0,
) -> torch.Tensor:
    """bCR penalty on logits, a scalar (Zhao et al. 2021, Algorithm 1; ViTGAN uses 10 for both).

    ``lambda_real * mean((D(x) - D(T(x)))^2) + lambda_fake * mean((D(G(z)) - D(T(G(z))))^2)``.
    Each ``*_aug_logits`` must pair element-wise with its un-augmented logits, shape ``(B,)``.
    """
    _check_pair(real_logits, real_aug_logits, "real_logits", "real_aug_logits")
    _check_pair(fake_logits, fake_aug_logits, "fake_logits", "fake_aug_logits")
    # squared difference of LOGITS, as in the bCR paper: it stays informative where sigmoid saturates
    real_term = (real_logits - real_aug_logits).square().mean()  # ()
    fake_term = (fake_logits - fake_aug_logits).square().mean()  # ()
    return lambda_real * real_term + lambda_fake * fake_term  # ()


def bcr_loss(
    discriminator: Callable[[torch.Tensor], torch.Tensor],
    reals: torch.Tensor,
    fakes: torch.Tensor,
    augment: Callable[[torch.Tensor], torch.Tensor],
    lambda_real: float = 10.0,
    lambda_fake: float = 10.0,
) -> torch.Tensor:
    """bCR term of the DISCRIMINATOR step: evaluates D on x, T(x), G(z), T(G(z)) and returns ``bcr_penalty``.

    ``reals (B, C, H, W)`` and ``fakes (B', C, H, W)`` are images in [-1, 1]; ``augment`` is T, e.g.
    ``lambda x: diff_augment(x, policy)``. The fakes are detached: bCR regularises D only and must never
    send gradient into G (Zhao et al. 2021, Algorithm 1). Add it to the D loss, never to the G loss.

    D runs once on the concatenation of the four batches rather than four times: the ViT discriminator
    treats each image independently (LayerNorm, no BatchNorm), so the logits are the same, and a spectral
    norm's power iteration advances once per D step instead of four times.
    """
    check_image_batch(reals, "reals")
    check_image_batch(fakes, "fakes")
    if reals.shape[1:] != fakes.shape[1:]:
        raise ValueError(
            f"reals {tuple(reals.shape)} and fakes {tuple(fakes.shape)} must share (C, H, W): "
            "the generator must produce images of the dataset's size"
        )
    fakes = fakes.detach()  # G(z) is a constant in the D step: no gradient reaches G
    reals_aug = augment(reals)  # (B, C, H, W)
    fakes_aug = augment(fakes)  # (B', C, H, W)
    if reals_aug.shape != reals.shape or fakes_aug.shape != fakes.shape:
        raise ValueError(
            f"augment must keep the image shape: got {tuple(reals_aug.shape)} from {tuple(reals.shape)} "
            f"and {tuple(fakes_aug.shape)} from {tuple(fakes.shape)}"
        )
    B, Bf = reals.shape[0], fakes.shape[0]
    logits = discriminator(torch.cat([reals, reals_aug, fakes, fakes_aug]))  # (2B + 2B',)
    _check_logits(logits, "discriminator(x)")
    if logits.shape[0] != 2 * B + 2 * Bf:
        raise ValueError(
            f"discriminator returned {logits.shape[0]} logits for {2 * B + 2 * Bf} images: "
            "it must return one logit per image, shape (B,)"
        )
    real_logits, real_aug_logits, fake_logits, fake_aug_logits = logits.split([B, B, Bf, Bf])  # (B,), (B'),..
    return bcr_penalty(real_logits, real_aug_logits, fake_logits, fake_aug_logits, lambda_real, lambda_fake)


__all__ = ["bcr_loss", "bcr_penalty", "d_logistic_loss", "g_nonsaturating_loss"]
