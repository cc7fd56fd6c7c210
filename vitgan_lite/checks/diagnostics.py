"""Checkers of the diagnostics: Exercise 11.1 ``ranking_accuracy`` (lesson 11) and 13.1
``input_gradient_norm`` (lesson 13).

``ranking_accuracy(real_logits (Br,), fake_logits (Bf,)) -> float`` is P(D(real) > D(fake)) over all
pairs, ties counting 1/2. ``input_gradient_norm(D, x (B, C, H, W)) -> float`` is the mean over images of
||dD(x_i)/dx_i||. The references are ``vitgan_lite.diagnostics``'.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from vitgan_lite.checks._core import checker, expect, fail, seeded
from vitgan_lite.diagnostics import input_gradient_norm as _ref_input_gradient_norm
from vitgan_lite.diagnostics import ranking_accuracy as _reference


def _call(fn: Callable, real: torch.Tensor, fake: torch.Tensor, what: str) -> float:
    out = fn(real.clone(), fake.clone())
    expect(
        isinstance(out, (float, int)) or (isinstance(out, torch.Tensor) and out.numel() == 1),
        f"ranking_accuracy should return one number (a float), got {type(out).__name__} on {what}",
    )
    return float(out)


@checker("11.1", "ranking_accuracy")
def check_ranking_accuracy(fn: Callable[[torch.Tensor, torch.Tensor], float]) -> None:
    """Hand values first, then the defining properties (offset invariance, ties), then random sizes."""
    # 1. every real above every fake, and the reverse
    r, f = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([-2.0, -1.0])
    got = _call(fn, r, f, "reals [1, 2, 3], fakes [-2, -1]")
    expect(
        abs(got) > 1e-6,
        "with every real logit above every fake logit the answer is 1.0, got 0.0: the comparison is not "
        "the right way round; count the pairs with real > fake",
    )
    expect(
        abs(got - 1.0) < 1e-6,
        f"with every real logit above every fake logit the answer is 1.0, got {got:.3f}: count the pairs "
        "(real_i, fake_j) that the real wins and divide by the number of pairs, Br * Bf",
    )
    got = _call(fn, f, r, "reals [-2, -1], fakes [1, 2, 3]")
    expect(
        abs(got - 0.0) < 1e-6,
        f"with every real logit below every fake logit the answer is 0.0, got {got:.3f}: "
        "is the comparison the right way round (real > fake)?",
    )
    # 2. all logits negative but perfectly ranked: a threshold at 0 gives 0.5, the ranking gives 1
    got = _call(fn, r - 10.0, f - 10.0, "reals [-8, -7, -6], fakes [-10, -9]")
    expect(
        abs(got - 1.0) < 1e-6,
        f"reals [-8, -7, -6] against fakes [-10, -9] should give 1.0, got {got:.3f}: compare every real "
        "logit with every fake logit, not each logit with 0 (a threshold at 0 depends on the offset "
        "that all of D's logits share, which drifts from step to step)",
    )
    # 3. a partial ranking over all pairs, not just the means
    got = _call(fn, torch.tensor([0.0, 3.0, 4.0]), torch.tensor([1.0, 2.0]), "reals [0, 3, 4], fakes [1, 2]")
    expect(
        abs(got - 4.0 / 6.0) < 1e-6,
        f"reals [0, 3, 4] against fakes [1, 2] should give 0.667 (4 of the 6 pairs won), got {got:.3f}: "
        "count the pairs (real_i, fake_j) with real_i > fake_j over ALL pairs, e.g. with "
        "real[:, None] - fake[None, :]; comparing the means, or pairing real_i with fake_i only, "
        "is not the ranking accuracy",
    )
    # 4. ties count one half
    got = _call(fn, torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0]), "reals [1, 0], fakes [1, 0]")
    expect(
        abs(got - 0.5) < 1e-6,
        f"reals [1, 0] against fakes [1, 0] should give 0.5, got {got:.3f}: a tie (real_i == fake_j) "
        "counts 1/2, so that identical logits give exactly 0.5 (D cannot tell)",
    )
    # 5. different sizes and random values against the reference
    for seed, (nr, nf) in enumerate(((7, 5), (1, 9), (64, 64))):
        g = seeded(seed)
        real, fake = torch.randn(nr, generator=g), torch.randn(nf, generator=g) + 0.3
        got, want = _call(fn, real, fake, f"{nr} reals, {nf} fakes"), _reference(real, fake)
        expect(
            abs(got - want) < 1e-5,
            f"on {nr} random real and {nf} random fake logits the answer should be {want:.4f}, got "
            f"{got:.4f}: the two sets may have different sizes; divide by the number of pairs (Br * Bf)",
        )
        offset = _call(fn, real + 5.0, fake + 5.0, "the same logits shifted by +5")
        expect(
            abs(offset - got) < 1e-6,
            "adding the same number to every logit must not change the ranking accuracy",
        )


# ----------------------------------------------------------------------------------------------------
# Exercise 13.1: input_gradient_norm(D, x)


class _ScaledLinearD(nn.Module):
    """D(x_i) = <v, x_i> + b: its input gradient is v for every image, of norm ||v||."""

    def __init__(self, v: torch.Tensor) -> None:
        super().__init__()
        self.v = nn.Parameter(v)
        self.b = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.v).flatten(1).sum(1) + self.b  # (B,)


class _SquareD(nn.Module):
    """D(x_i) = 0.5 * ||x_i||^2: the gradient is x_i itself, so each image has its own gradient norm."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.flatten(1).square().sum(1)  # (B,)


def _probe(fn: Callable, D: nn.Module, x: torch.Tensor, what: str) -> float:
    x_in = x.clone()
    out = fn(D, x_in)
    expect(
        isinstance(out, (float, int)) or (isinstance(out, torch.Tensor) and out.numel() == 1),
        f"input_gradient_norm should return one number (a float), got {type(out).__name__} on {what}",
    )
    expect(
        not x_in.requires_grad and x_in.grad is None and torch.equal(x_in, x),
        "your function changed the images it was given (requires_grad or .grad set, or values changed): "
        "differentiate with respect to a copy, x = x.detach().clone().requires_grad_(True)",
    )
    expect(
        all(p.grad is None for p in D.parameters()),
        "D's parameters got gradients: a probe must not leave anything for the next optimizer step. Use "
        "torch.autograd.grad(D(x).sum(), x) instead of .backward()",
    )
    return float(out)


@checker("13.1", "input_gradient_norm")
def check_input_gradient_norm(fn: Callable[[nn.Module, torch.Tensor], float]) -> None:
    """Hand values on two discriminators whose gradients are known, then the reference on random ones."""
    v = torch.full((3, 4, 4), 0.5)  # every image's gradient is v, ||v|| = 0.5 sqrt(48) = 3.46
    x = torch.rand(4, 3, 4, 4, generator=seeded(0)) * 2 - 1  # (4, 3, 4, 4)
    got = _probe(fn, _ScaledLinearD(v.clone()), x, "D(x) = <v, x> with ||v|| = 3.46")
    want = float(v.norm())
    if abs(got - want / 4) < 1e-4:
        fail(
            "you differentiated the MEAN of the logits: each image's gradient shrinks by 1/B. Differentiate "
            "their SUM: the images do not interact in D, so d(sum)/dx_i is dD(x_i)/dx_i"
        )
    if abs(got - want * 2) < 1e-4:
        fail(
            "you took ONE norm of the whole batch's gradient (sqrt(B) times too large here): take one norm "
            "per image, grad.flatten(1).norm(dim=1), then their mean"
        )
    if abs(got - want**2) < 1e-3:
        fail("you returned the squared norm: take the square root (torch.linalg.vector_norm or .norm())")
    if abs(got - 0.5) < 1e-4:
        fail("you averaged the absolute gradient entries: the probe is the L2 NORM of each image's gradient")
    expect(
        abs(got - want) < 1e-4,
        f"D(x) = <v, x> has the same input gradient v for every image, of norm {want:.4f}; got {got:.4f}",
    )
    # D(x) = ||x||^2 / 2: gradient x_i, so the answer is the mean of the per-image norms
    x = torch.randn(5, 3, 4, 4, generator=seeded(1)) * torch.arange(1.0, 6.0).view(5, 1, 1, 1)  # (5, 3, 4, 4)
    got = _probe(fn, _SquareD(), x, "D(x) = ||x||^2 / 2")
    per_image = x.flatten(1).norm(dim=1)  # (5,)
    if abs(got - float(per_image.square().mean().sqrt())) < 1e-3:
        fail("you took the root-mean-square of the per-image norms: the probe is their plain MEAN")
    expect(
        abs(got - float(per_image.mean())) < 1e-3,
        f"with D(x) = ||x||^2 / 2 the gradient of image i is x_i, so the answer is the mean of ||x_i|| = "
        f"{float(per_image.mean()):.4f}; got {got:.4f}",
    )
    # random small discriminators against the reference
    for seed in range(2):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            D = nn.Sequential(
                nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(64, 1), nn.Flatten(0)
            )
        x = torch.randn(3, 3, 4, 4, generator=seeded(10 + seed))  # (3, 3, 4, 4)
        want = _ref_input_gradient_norm(D, x)
        got = _probe(fn, D, x, f"a small conv D (seed {seed})")
        expect(
            abs(got - want) < 1e-4 * max(1.0, want), f"on a small conv D: expected {want:.5f}, got {got:.5f}"
        )


__all__ = ["check_input_gradient_norm", "check_ranking_accuracy"]
