"""Diagnostics for a GAN that does not learn, and the sanity ladder, taught in
``notebooks/11_making_the_gan_learn.ipynb``.

A GAN has two players and no loss that must fall, so "it does not learn" says nothing about *where* it
fails. The sanity ladder tests one thing at a time, from the bottom up; the first rung that fails is
where to look:

1. ``d_versus_noise``   D alone separates real images from noise in a few dozen steps (D can see).
2. ``g_fits_batch``     G alone fits a fixed batch with a D-free loss (G can draw).
3. a short GAN run opens a gap between D's logits on held-out reals and on fresh fakes (the players talk).
4. one class of CIFAR-10 is learned before all ten (the recipe scales).

And three probes of the discriminator that explain most failures:

* ``cls_self_attention``: how much the CLS token, which carries D's logit, attends to itself instead of
  the image, per block (L2 attention with tied W_q = W_k gives every token logit 0 to itself, its maximum);
* ``separation``: D's ranking accuracy (AUC) and logit gap on held-out reals against fresh fakes;
  the AUC ignores the common offset of all logits, which drifts from step to step;
* ``logit_offset_swing``: how far one optimizer step moves D's logits *on the same images*; a swing as
  large as the real/fake gap means the learning rate, not the data, drives D.

Shape legend: ``B`` batch, ``C`` channels, ``H, W`` pixels, ``N`` patch tokens, ``Z`` latent width.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from vitgan_lite.discriminator import ViTDiscriminator
from vitgan_lite.losses import d_logistic_loss


def _check_images(x: torch.Tensor, name: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{name} must be images (B, C, H, W) in [-1, 1], got shape {tuple(x.shape)}")


@torch.no_grad()
def attention_logits(D: ViTDiscriminator, x: torch.Tensor) -> list[torch.Tensor]:
    """The attention logits of every block of ``D`` on images ``x (B, C, H, W)``: (B, H, N + 1, N + 1)
    each, token 0 the CLS token. L2 blocks give -||q_i - k_j||^2 / sqrt(Dh), dot-product blocks
    q_i . k_j / sqrt(Dh).
    """
    _check_images(x, "x")
    h = D.patch_embed(x)  # (B, N, D)
    h = torch.cat([D.cls_token.expand(h.shape[0], -1, -1), h], dim=1)  # (B, N + 1, D)
    h = h + torch.cat([D.cls_pos, D.pos_embed()], dim=0)  # (B, N + 1, D)
    out = []
    for block in D.blocks:
        out.append(block.attn.attention_logits(block.norm1(h)))  # (B, H, N + 1, N + 1)
        h = block(h)  # (B, N + 1, D)
    return out


def cls_self_attention(D: ViTDiscriminator, x: torch.Tensor) -> list[float]:
    """Mean attention weight of the CLS token on itself, per block of ``D``, on images ``x (B, C, H, W)``.

    1.0 means the CLS token reads nothing but itself: D's logit then hardly depends on the image.
    With N patch tokens, uniform attention would give ``1 / (N + 1)``.
    """
    # row 0 is the CLS token, column 0 itself
    return [float(logits.softmax(dim=-1)[:, :, 0, 0].mean()) for logits in attention_logits(D, x)]


def logit_spread(D: ViTDiscriminator, x: torch.Tensor) -> list[float]:
    """Per block, the mean over rows of (largest - smallest) attention logit: how sharp attention can get.

    A Lipschitz proxy of the attention (Kim et al. 2021, ViTGAN Sec. 4.1): dot-product logits grow with
    the square of the token norms, L2 logits are bounded by the spread of the tokens themselves.
    """
    return [float((a.amax(dim=-1) - a.amin(dim=-1)).mean()) for a in attention_logits(D, x)]


def input_gradient_norm(D: nn.Module, x: torch.Tensor) -> float:
    """Mean over images of ||dD(x_i)/dx_i||: how steeply D's logit moves with its input (a Lipschitz proxy).

    D's parameters are left without gradients.
    """
    _check_images(x, "x")
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).sum(), x)  # (B, C, H, W); images are independent in D
    return float(grad.flatten(1).norm(dim=1).mean())


@torch.no_grad()
def sample_diversity(G: nn.Module, z: torch.Tensor) -> float:
    """Per-pixel standard deviation of ``G(z)`` across the batch, averaged over pixels: 0 when every z
    gives the same image (mode collapse), about 0.5 for CIFAR-10 images in [-1, 1]."""
    return float(G(z).float().std(dim=0).mean())


def ranking_accuracy(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> float:
    """P(D(real) > D(fake)) over all pairs (the AUC), ties counting 1/2. 0.5: D cannot tell them apart.

    Unlike ``mean(D(real) > 0)``, it does not depend on the offset common to all logits.
    """
    r, f = real_logits.detach().flatten().float(), fake_logits.detach().flatten().float()  # (Br,), (Bf,)
    diff = r[:, None] - f[None, :]  # (Br, Bf)
    return float((diff > 0).float().mean() + 0.5 * (diff == 0).float().mean())


@torch.no_grad()
def separation(D: nn.Module, reals: torch.Tensor, fakes: torch.Tensor) -> dict[str, float]:
    """How well ``D`` tells held-out ``reals`` from ``fakes`` (both (B, C, H, W) in [-1, 1]).

    Keys: ``auc`` (ranking accuracy), ``gap`` (mean logit on reals minus mean on fakes), ``real`` and
    ``fake`` (mean logits). Run it on images D was not trained on, without augmentation.
    """
    _check_images(reals, "reals")
    _check_images(fakes, "fakes")
    lr, lf = D(reals).float(), D(fakes).float()  # (B,), (B',)
    return {
        "auc": ranking_accuracy(lr, lf),
        "gap": float(lr.mean() - lf.mean()),
        "real": float(lr.mean()),
        "fake": float(lf.mean()),
    }


def d_versus_noise(
    D: nn.Module,
    reals: torch.Tensor,
    held_out: torch.Tensor,
    steps: int = 40,
    batch_size: int = 32,
    lr: float = 2e-3,
    betas: tuple[float, float] = (0.0, 0.99),
    seed: int = 0,
) -> list[dict[str, float]]:
    """Rung 1: train a copy of ``D`` alone, reals against uniform noise, with the logistic loss.

    ``reals (N, C, H, W)`` are the training images, ``held_out (M, C, H, W)`` the images ``separation``
    is measured on, against fresh noise. Returns one ``separation`` record per step (step 0 first).
    A healthy D reaches AUC ~1 within a few dozen steps; if it does not, D cannot see its input.
    """
    _check_images(reals, "reals")
    _check_images(held_out, "held_out")
    D = copy.deepcopy(D).train()
    opt = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
    g = torch.Generator().manual_seed(seed)

    def noise(n: int) -> torch.Tensor:
        return torch.rand((n, *reals.shape[1:]), generator=g) * 2 - 1  # (n, C, H, W), uniform [-1, 1]

    history = [{"step": 0, **separation(D, held_out, noise(len(held_out)))}]
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(reals), (batch_size,), generator=g)  # (B,)
        logits = D(torch.cat([reals[idx], noise(batch_size)]))  # (2B,)
        loss = d_logistic_loss(logits[:batch_size], logits[batch_size:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append({"step": step, **separation(D, held_out, noise(len(held_out)))})
    return history


def g_fits_batch(
    G: nn.Module,
    images: torch.Tensor,
    steps: int = 150,
    lr: float = 2e-3,
    betas: tuple[float, float] = (0.0, 0.99),
    seed: int = 0,
) -> tuple[list[float], torch.Tensor]:
    """Rung 2: fit a copy of ``G`` to ``images (B, C, H, W)`` from fixed z, with the mean squared error.

    No discriminator: if G cannot reproduce a handful of images it is shown directly, it cannot learn
    them from D's gradients either. Returns the loss per step (step 0 first) and the final G(z).
    """
    _check_images(images, "images")
    G = copy.deepcopy(G).train()
    z = torch.randn(images.shape[0], G.latent_dim, generator=torch.Generator().manual_seed(seed))  # (B, Z)
    opt = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    losses = []
    for _ in range(steps):
        loss = F.mse_loss(G(z), images)  # G(z): (B, C, H, W)
        losses.append(float(loss.detach()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = G(z)  # (B, C, H, W)
    losses.append(float(F.mse_loss(out, images)))
    return losses, out


@torch.no_grad()
def logit_offset_swing(D: nn.Module, before: nn.Module, x: torch.Tensor) -> float:
    """Mean |D(x) - before(x)|: how far one (or a few) optimizer steps moved the logits of the same images."""
    _check_images(x, "x")
    return float((D(x).float() - before(x).float()).abs().mean())


__all__ = [
    "attention_logits",
    "cls_self_attention",
    "d_versus_noise",
    "g_fits_batch",
    "input_gradient_norm",
    "logit_spread",
    "logit_offset_swing",
    "ranking_accuracy",
    "sample_diversity",
    "separation",
]
