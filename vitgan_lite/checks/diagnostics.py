"""Checker for lesson 11 (making the GAN learn): Exercise 11.1 ``ranking_accuracy``.

``ranking_accuracy(real_logits (Br,), fake_logits (Bf,)) -> float`` is P(D(real) > D(fake)) over all
pairs, ties counting 1/2, the reference being ``vitgan_lite.diagnostics.ranking_accuracy``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vitgan_lite.checks._core import checker, expect, seeded
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


__all__ = ["check_ranking_accuracy"]
