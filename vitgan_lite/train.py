"""Training, the algorithm (lesson 10): one D step, one G step, the EMA generator.

Taught in ``notebooks/10_training_loop.ipynb``; exercise 10.2 asks for exactly :func:`d_step`. The run
machinery around these steps (data, devices, mixed precision, several GPUs, checkpoints, logs) is the
run layer, :mod:`vitgan_lite.run`, which calls them unchanged.

One iteration of ViTGAN (Lee et al., ICLR 2022, Sec. 4 and implementation details) is, with T a
DiffAugment policy (Zhao et al. 2020) and the non-saturating logistic loss (Goodfellow et al. 2014):

    D step:  L_D = E[softplus(-D(T(x)))] + E[softplus(D(T(G(z))))]                   (logistic loss)
                 + lambda_real E[(D(x) - D(T(x)))^2] + lambda_fake E[(D(G(z)) - D(T(G(z))))^2]   (bCR)
    G step:  L_G = E[softplus(-D(T(G(z))))]                                          (non-saturating)
    EMA:     G_ema <- decay * G_ema + (1 - decay) * G                                (every sample uses G_ema)

The augmented view T(x) of the logistic loss is also bCR's T(x): both terms are unbiased estimates of
their expectations, and one view saves D a third of its work (4B images per D forward instead of 6B).

The steps are pure in the sense that matters here: the caller draws z and builds ``augment`` (for
example ``lambda x: diff_augment(x, policy, generator)``), so every random number is drawn where the
caller can see and replay it, and the steps read no config.

Shape legend: ``B`` batch, ``C`` channels, ``H, W`` pixels, ``Z`` latent width. Logits are ``(B,)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from vitgan_lite.losses import bcr_penalty, d_logistic_loss, g_nonsaturating_loss

Augment = Callable[[torch.Tensor], torch.Tensor]  # T: images (B, C, H, W) -> augmented (B, C, H, W)


def d_step(
    G: nn.Module,
    D: nn.Module,
    reals: torch.Tensor,
    z: torch.Tensor,
    augment: Augment,
    opt_d: torch.optim.Optimizer,
    lambda_real: float = 10.0,
    lambda_fake: float = 10.0,
) -> dict[str, torch.Tensor]:
    """One discriminator update on ``reals (B, C, H, W)`` in [-1, 1] and ``z (B, Z)``.

    ``augment`` is called twice, on the reals and then on the fakes (this order: a seeded ``augment``
    replays). Returns detached scalars: ``d_loss`` (total), ``d_adv`` (logistic), ``bcr``, and
    ``d_real`` / ``d_fake``, the mean logits of D(T(x)) and D(T(G(z))).
    """
    B = reals.shape[0]
    with torch.no_grad():  # G(z) is a constant here: no graph through G, no gradient reaches it
        fakes = G(z)  # (B, C, H, W)
    reals_aug = augment(reals)  # (B, C, H, W), T(x)
    fakes_aug = augment(fakes)  # (B, C, H, W), T(G(z)), the same policy
    # One forward on all four batches: D treats each image on its own (LayerNorm, no batch statistics),
    # and ISN's power iteration advances once per D step.
    real_aug, fake_aug, real, fake = D(torch.cat([reals_aug, fakes_aug, reals, fakes])).split(B)  # (B,) x 4
    d_adv = d_logistic_loss(real_aug, fake_aug)  # ()
    bcr = bcr_penalty(real, real_aug, fake, fake_aug, lambda_real, lambda_fake)  # ()
    d_loss = d_adv + bcr  # L_D = logistic + bCR
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    return {
        "d_loss": d_loss.detach(),
        "d_adv": d_adv.detach(),
        "bcr": bcr.detach(),
        "d_real": real_aug.detach().mean(),
        "d_fake": fake_aug.detach().mean(),
    }


def g_step(
    G: nn.Module, D: nn.Module, z: torch.Tensor, augment: Augment, opt_g: torch.optim.Optimizer
) -> dict[str, torch.Tensor]:
    """One generator update with ``z (B, Z)``: the loss is ``g_nonsaturating_loss(D(T(G(z))))``.

    G sees its fakes through the same DiffAugment T as D does, and the gradient flows back through T
    into G. D's parameters are frozen for the step (their gradients would be thrown away). Returns the
    detached scalar ``g_loss``.
    """
    d_params = [p for p in D.parameters() if p.requires_grad]
    for p in d_params:
        p.requires_grad_(False)
    try:
        fakes = G(z)  # (B, C, H, W)
        g_loss = g_nonsaturating_loss(D(augment(fakes)))  # (), from the logits of T(G(z)) (B,)
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
    finally:
        for p in d_params:
            p.requires_grad_(True)
    opt_g.step()
    return {"g_loss": g_loss.detach()}


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema_p <- decay * ema_p + (1 - decay) * p`` for every parameter; buffers are copied.

    DiT ``update_ema`` / rosinality ``accumulate``. Runs under ``torch.no_grad()``: the EMA is a
    bookkeeping copy that no loss ever differentiates.
    """
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must lie in [0, 1], got {decay}: 0.999 keeps a long average, 0 copies")
    ema_params, params = dict(ema.named_parameters()), dict(model.named_parameters())
    if ema_params.keys() != params.keys():
        missing = sorted(set(params) ^ set(ema_params))[:5]
        raise ValueError(
            f"ema and model have different parameters (e.g. {missing}): "
            "build the EMA with copy.deepcopy(model)"
        )
    for name, p in params.items():
        # lerp: ema + (1 - decay) * (p - ema) = decay * ema + (1 - decay) * p
        ema_params[name].lerp_(p.detach(), 1.0 - decay)
    ema_buffers = dict(ema.named_buffers())
    for name, b in model.named_buffers():
        ema_buffers[name].copy_(b)  # running estimates (power-iteration u, v) are copied, not averaged


def adam_param_groups(module: nn.Module, lr: float, equalized: bool = True) -> list[dict[str, Any]]:
    """Adam parameter groups: ``lr / sqrt(fan_in)`` for every plain ``nn.Linear`` / ``nn.Conv2d`` weight.

    This is StyleGAN2's equalized learning rate (Karras et al. 2018), moved from the layer into the
    optimizer. An equalized layer stores ``W_hat ~ N(0, 1)`` and uses ``W = W_hat / sqrt(fan_in)``; Adam's
    step on ``W_hat`` has size ~lr whatever the gradient's scale (lesson 06), so the step on ``W`` is
    ``lr / sqrt(fan_in)``. A plain layer with the same ``W`` at init reaches exactly the same trajectory
    (up to Adam's epsilon) when its weight gets the learning rate ``lr / sqrt(fan_in)``.

    Why it matters here: ViTGAN's learning rate 2e-3 with betas (0, 0.99) is StyleGAN2's, and the authors'
    code (mlpc-ucsd/ViTGAN, ``models/gan/stylegan2/vit_common.py``) builds every attention and MLP layer
    from ``EqualLinear``. The course's transformer layers are plain ``nn.Linear`` with Xavier init; at 2e-3
    every weight of a 64-wide layer moves by ~1.6% of its size per step, and D's output swings by about
    one logit per step (lesson 11 measures it). ``equalized=False`` gives one group at ``lr`` (plain Adam).

    Weights under SN/ISN are the parametrization's ``original`` tensor. The course's own equalized layers
    (``EqualLinear``, ``ModulatedLinear``) already scale at run time and keep ``lr``. Biases, norms, tokens
    and positional frequencies keep ``lr``, as an equalized layer's bias does.
    """
    if not equalized:
        return [{"params": [p for p in module.parameters() if p.requires_grad], "lr": lr}]
    by_fan_in: dict[int, list[nn.Parameter]] = {}
    scaled: set[int] = set()
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            wrapped = parametrize.is_parametrized(m, "weight")
            weight = m.parametrizations.weight.original if wrapped else m.weight
            if weight.requires_grad:
                by_fan_in.setdefault(weight[0].numel(), []).append(weight)
                scaled.add(id(weight))
    rest = [p for p in module.parameters() if p.requires_grad and id(p) not in scaled]
    groups = [{"params": rest, "lr": lr}] if rest else []
    for fan_in, params in sorted(by_fan_in.items()):
        groups.append({"params": params, "lr": lr / math.sqrt(fan_in)})
    return groups


__all__ = ["Augment", "adam_param_groups", "d_step", "ema_update", "g_step"]
