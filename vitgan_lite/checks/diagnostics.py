"""Checkers of the diagnostics: Exercise 11.1 ``ranking_accuracy`` (lesson 11) and 13.1
``input_gradient_norm`` (lesson 13).

``ranking_accuracy(real_logits (Br,), fake_logits (Bf,)) -> float`` is P(D(real) > D(fake)) over all
pairs, ties counting 1/2. ``input_gradient_norm(D, x (B, C, H, W)) -> float`` is the mean over images of
||dD(x_i)/dx_i||. The references are ``vitgan_lite.diagnostics``'.

Both checkers compare the learner's number on small hand-made inputs with the right one and, when it
differs, with what each known mistake gives on the same input, so that the message names the mistake.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

import torch
from torch import nn

from vitgan_lite.checks._core import checker, crash_message, expect, fail, seeded, stage
from vitgan_lite.diagnostics import input_gradient_norm as _ref_input_gradient_norm
from vitgan_lite.diagnostics import ranking_accuracy as _reference


def _named_crash(e: BaseException, causes: Sequence[tuple[str, str]]) -> None:
    """If the learner's crash ``e`` matches one of ``causes`` (regex, likely cause), fail naming that cause.

    A plain ``AssertionError`` raised ``from e``: the checker's wrapper turns it into the exercise's failure
    and keeps the learner's traceback below it. Returns (for the caller's bare ``raise``) when none matches.
    """
    if isinstance(e, (NotImplementedError, AssertionError)):
        return
    raised = f"{type(e).__name__}: {e}"
    for pattern, cause in causes:
        if re.search(pattern, raised, flags=re.S):
            text = crash_message(e).split(". Likely cause: ")[0].split(". Read the traceback")[0]
            raise AssertionError(
                f"{text}. Likely cause: {cause}. Read the traceback above for the line"
            ) from e


def _name_mistake(
    got: float, want: float, variants: dict[str, float], messages: dict[str, str]
) -> str | None:
    """The message of the first known mistake whose value is ``got`` and differs from the right ``want``."""
    for name, value in variants.items():
        tol = 1e-6 + 1e-5 * abs(value)
        if math.isfinite(value) and abs(got - value) <= tol and abs(value - want) > tol:
            return messages[name]
    return None


# ----------------------------------------------------------------------------------------------------
# Exercise 11.1: ranking_accuracy(real_logits, fake_logits)

RANKING_HINTS = (
    "Compare EVERY real logit with EVERY fake logit: real[:, None] - fake[None, :] is the (Br, Bf) matrix of "
    "differences. A pair counts 1 when the difference is > 0 and 1/2 when it is exactly 0; the answer is the "
    "MEAN over all Br * Bf pairs (booleans need .float() before .mean()), returned as a Python float. No "
    "threshold at 0 anywhere: only the order of the logits matters.",
    "diff = real_logits[..., ...] - fake_logits[..., ...]   # (Br, Bf)\n"
    "return float((diff > 0).float().mean() + ... * (diff == 0).float().mean())",
)


def _ranking_variants(real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
    """What the known mistakes give on ``real (Br,)``, ``fake (Bf,)``."""
    r, f = real.double(), fake.double()
    d = r[:, None] - f[None, :]  # (Br, Bf)
    wins, ties = float((d > 0).sum()), float((d == 0).sum())
    n = min(len(r), len(f))
    right = (wins + 0.5 * ties) / d.numel()
    return {  # the tie mistakes first: they agree with the right answer wherever there is no tie
        "ties lost": wins / d.numel(),
        "ties won": (wins + ties) / d.numel(),
        "ties dropped": wins / (d.numel() - ties) if ties < d.numel() else math.nan,
        "reversed": float((d < 0).sum() + 0.5 * ties) / d.numel(),
        "threshold": 0.5 * (float((r > 0).double().mean()) + float((f < 0).double().mean())),
        "means": float(r.mean() > f.mean()),
        "paired": float((r[:n] > f[:n]).double().mean()),
        "sum": wins + 0.5 * ties,
        "rows": (wins + 0.5 * ties) / len(r),
        "columns": (wins + 0.5 * ties) / len(f),
        "Br + Bf": (wins + 0.5 * ties) / (len(r) + len(f)),
        "percent": 100 * right,
        "sigmoid": float(torch.sigmoid(d).mean()),
        "gap": float(r.mean() - f.mean()),
    }


_RANKING_MISTAKES = {
    "reversed": "the comparison is not the right way round: count the pairs with real > fake (a real that "
    "beats a fake), not real < fake",
    "threshold": "you compared each logit with 0: compare every real logit with every fake logit, not each "
    "logit with 0 (a threshold at 0 depends on the offset that all of D's logits share, which drifts from "
    "step to step)",
    "means": "you compared the MEAN real logit with the mean fake logit (a 0-or-1 answer): count the pairs "
    "(real_i, fake_j) with real_i > fake_j over ALL pairs, e.g. with real[:, None] - fake[None, :]",
    "paired": "you compared real_i with fake_i only: count the pairs (real_i, fake_j) over ALL pairs, "
    "Br * Bf of them, e.g. with real[:, None] - fake[None, :]",
    "ties lost": "a tie (real_i == fake_j) counted 0: a tie counts 1/2, so that identical logits give "
    "exactly 0.5 (D cannot tell); add 0.5 * (diff == 0).float().mean()",
    "ties won": "a tie (real_i == fake_j) counted 1 (>= instead of >): a tie counts 1/2, so that identical "
    "logits give exactly 0.5 (D cannot tell)",
    "ties dropped": "the ties were left out of the count (dividing by the number of pairs that are not "
    "tied): a tie counts 1/2 and stays in the denominator; divide by all Br * Bf pairs",
    "sum": "you returned the NUMBER of pairs won, not the fraction: divide by the number of pairs, Br * Bf "
    "(or take .mean() over the (Br, Bf) matrix)",
    "rows": "you divided by Br only: divide by the number of pairs, Br * Bf (or take .mean() over the whole "
    "(Br, Bf) matrix)",
    "columns": "you divided by Bf only: divide by the number of pairs, Br * Bf (or take .mean() over the "
    "whole (Br, Bf) matrix)",
    "Br + Bf": "you divided by Br + Bf: divide by the number of pairs, Br * Bf (or take .mean() over the "
    "whole (Br, Bf) matrix)",
    "percent": "you returned a percentage: the ranking accuracy is a fraction in [0, 1] (drop the * 100)",
    "sigmoid": "you averaged sigmoid(real_i - fake_j), a soft score: the ranking accuracy COUNTS the pairs, "
    "1 for real_i > fake_j and 1/2 for a tie",
    "gap": "you returned the gap between the mean logits: the ranking accuracy is the fraction of pairs "
    "(real_i, fake_j) with real_i > fake_j",
}

_RANKING_CRASHES = (
    (
        r"The size of tensor a \(\d+\) must match the size of tensor b \(\d+\)",
        "the real and fake logits were compared elementwise, but they have different lengths (Br, Bf): "
        "compare every pair with real[:, None] - fake[None, :], a (Br, Bf) matrix",
    ),
    (
        r"inconsistent tensor size|1D tensors expected",
        "a dot product (@) of the real and the fake logits: the ranking COMPARES every pair, it does not "
        "multiply them (and Br, Bf may differ); real[:, None] - fake[None, :] is the (Br, Bf) matrix of "
        "differences",
    ),
    (
        r"could not infer output dtype.*Bool|mean\(\).*Bool",
        "the mean of a boolean tensor: convert the comparison to numbers first, (diff > 0).float().mean()",
    ),
)


def _call(fn: Callable, real: torch.Tensor, fake: torch.Tensor, what: str) -> float:
    r, f = real.clone(), fake.clone()
    try:
        with stage(f"ranking_accuracy on {what}"):
            out = fn(r, f)
    except Exception as e:
        _named_crash(e, _RANKING_CRASHES)
        raise
    expect(
        torch.equal(r, real) and torch.equal(f, fake),
        f"ranking_accuracy changed the logits it was given (on {what}), e.g. an in-place shift or sort: work "
        "on new tensors (real - c, torch.sort(...) returns a copy), the caller still needs its logits",
    )
    expect(
        isinstance(out, (float, int)) or (isinstance(out, torch.Tensor) and out.numel() == 1),
        f"ranking_accuracy should return one number (a float), got {type(out).__name__}"
        + (f" of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else "")
        + f" on {what}: average over ALL pairs, the whole (Br, Bf) matrix",
    )
    return float(out)


def _expect_ranking(fn: Callable, real: torch.Tensor, fake: torch.Tensor, what: str, why: str) -> float:
    """The learner's answer on ``real``, ``fake`` is the reference's; otherwise name the mistake."""
    got, want = _call(fn, real, fake, what), _reference(real, fake)
    if abs(got - want) < 1e-6:
        return got
    all_tied = bool((real[:, None] == fake[None, :]).all())
    expect(
        not (math.isnan(got) and all_tied),
        f"on {what} you returned NaN: every pair is a tie there, and a tie counts 1/2 of a pair "
        "that stays in the count; divide by all Br * Bf pairs, not by the pairs that are not tied",
    )
    expect(not math.isnan(got), f"on {what} you returned NaN, a 0 / 0: {why}")
    mistake = _name_mistake(got, want, _ranking_variants(real, fake), _RANKING_MISTAKES)
    if mistake is None and got == 0.0 and 0 < want < 1:
        mistake = (
            "0 where some pairs are won: integer division (//) or a rounded count? The fraction of pairs won "
            "lies between 0 and 1: a true division, or .float().mean()"
        )
    fail(f"on {what} the answer is {want:.4f}, got {got:.4f}: {mistake or why}")


@checker(
    "11.1", "ranking_accuracy", hints=RANKING_HINTS, reference="vitgan_lite.diagnostics:ranking_accuracy"
)
def check_ranking_accuracy(fn: Callable[[torch.Tensor, torch.Tensor], float]) -> None:
    """Hand values first, then the defining properties (offset invariance, ties), then random sizes."""
    t = torch.tensor
    pairs = "count the pairs (real_i, fake_j) that the real wins and divide by the number of pairs, Br * Bf"
    # 1. every real above every fake, and the reverse
    _expect_ranking(fn, t([1.0, 2.0, 3.0]), t([-2.0, -1.0]), "reals [1, 2, 3], fakes [-2, -1]", pairs)
    _expect_ranking(fn, t([-2.0, -1.0]), t([1.0, 2.0, 3.0]), "reals [-2, -1], fakes [1, 2, 3]", pairs)
    # 2. all logits negative but perfectly ranked: a threshold at 0 gives 0.5, the ranking gives 1
    _expect_ranking(fn, t([-8.0, -7.0, -6.0]), t([-10.0, -9.0]), "reals [-8, -7, -6], fakes [-10, -9]", pairs)
    # 3. a partial ranking over all pairs, not just the means
    _expect_ranking(
        fn, t([0.0, 3.0, 4.0]), t([1.0, 2.0]), "reals [0, 3, 4], fakes [1, 2] (4 of the 6 pairs won)", pairs
    )
    # 4. ties count one half, and stay in the count
    tie = "a tie (real_i == fake_j) counts 1/2 of a pair and stays among the Br * Bf pairs"
    _expect_ranking(fn, t([1.0, 0.0]), t([1.0, 0.0]), "reals [1, 0], fakes [1, 0]", tie)
    _expect_ranking(
        fn, t([2.0, 1.0]), t([1.0, 0.0, 3.0]), "reals [2, 1], fakes [1, 0, 3] (3 wins, 1 tie, 2 losses)", tie
    )
    _expect_ranking(fn, t([2.0, 2.0]), t([2.0, 2.0, 2.0]), "reals [2, 2], fakes [2, 2, 2] (all ties)", tie)
    # 5. different sizes, random values, float64 logits; the same shifted by a common offset
    for seed, (nr, nf, dtype) in enumerate(
        ((7, 5, torch.float32), (1, 9, torch.float32), (64, 48, torch.float64))
    ):
        g = seeded(seed)
        real = torch.randn(nr, generator=g, dtype=dtype)  # (Br,)
        fake = torch.randn(nf, generator=g, dtype=dtype) + 0.3  # (Bf,)
        what = f"{nr} random real and {nf} random fake logits ({str(dtype).replace('torch.', '')})"
        _expect_ranking(fn, real, fake, what, pairs)
        _expect_ranking(
            fn, real + 5.0, fake + 5.0, f"the same {what} shifted by +5",
            "adding the same number to every logit must not change the ranking accuracy: compare the logits "
            "with each other, never with a fixed threshold",
        )  # fmt: skip


# ----------------------------------------------------------------------------------------------------
# Exercise 13.1: input_gradient_norm(D, x)

GRAD_NORM_HINTS = (
    "Make a copy of the images that autograd tracks: x.detach().clone().requires_grad_(True) (never mark the "
    "caller's tensor). Differentiate the SUM of D's logits with torch.autograd.grad(..., x): images do not "
    "interact in D, so row i of that gradient is dD(x_i)/dx_i, and autograd.grad (unlike .backward()) "
    "writes nothing into D's .grad. Then one L2 norm per image over all of C, H, W (flatten(1), norm over "
    "dim 1), and the plain mean of those B norms, as a float.",
    "x = x.detach().clone().requires_grad_(...)\n"
    "(grad,) = torch.autograd.grad(D(x)...., x)     # (B, C, H, W)\n"
    "return float(grad.flatten(...).norm(dim=...).mean())",
)


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


def _conv_d(seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(64, 1), nn.Flatten(0)
        )


def _grad_norm_variants(grad: torch.Tensor) -> dict[str, float]:
    """What the known mistakes give, from the true per-image input gradients ``grad (B, C, H, W)``."""
    B = grad.shape[0]
    per = grad.flatten(1).norm(dim=1)  # (B,)
    return {
        "mean of logits": float(per.mean()) / B,
        "one norm": float(grad.norm()),
        "squared": float(per.square().mean()),
        "mean abs": float(grad.abs().mean()),
        "rms of norms": float(per.square().mean().sqrt()),
        "sum of norms": float(per.sum()),
        "max": float(per.max()),
        "channel norm": float(grad.norm(dim=1).mean()),
        "batch norm": float(grad.flatten(1).norm(dim=0).mean()),
        "rms per image": float(grad.flatten(1).square().mean(1).sqrt().mean()),
        "l1": float(grad.flatten(1).abs().sum(1).mean()),
        "per channel": float(grad.flatten(2).norm(dim=2).mean()),
    }


_GRAD_NORM_MISTAKES = {
    "mean of logits": "you differentiated the MEAN of the logits: each image's gradient shrinks by 1/B. "
    "Differentiate their SUM: the images do not interact in D, so d(sum)/dx_i is dD(x_i)/dx_i",
    "one norm": "you took ONE norm of the whole batch's gradient (sqrt(B) times too large when the images "
    "agree): take one norm per image, grad.flatten(1).norm(dim=1), then their mean",
    "squared": "you returned the squared norm: take the square root (torch.linalg.vector_norm or .norm())",
    "mean abs": "you averaged the absolute gradient entries: the probe is the L2 NORM of each image's "
    "gradient",
    "rms of norms": "you took the root-mean-square of the per-image norms: the probe is their plain MEAN",
    "sum of norms": "you SUMMED the per-image norms: the probe is their MEAN over the B images",
    "max": "you took the LARGEST per-image norm: the probe is the MEAN over the B images",
    "channel norm": "you took the norm over the channel axis only (norm(dim=1) on (B, C, H, W)): one norm "
    "per IMAGE covers all of C, H, W, grad.flatten(1).norm(dim=1)",
    "batch norm": "you took the norm over the BATCH axis (dim 0): one norm per image is over all of C, H, W, "
    "grad.flatten(1).norm(dim=1), then the mean over the images",
    "rms per image": "you took the root-MEAN-square of each image's gradient entries: the L2 norm SUMS the "
    "squares (no division by C * H * W), grad.flatten(1).norm(dim=1)",
    "l1": "you took the L1 norm (sum of absolute values) of each image's gradient: the probe is the L2 norm, "
    "grad.flatten(1).norm(dim=1)",
    "per channel": "you took one norm per CHANNEL (on a batch of one, .squeeze() drops the batch axis, and "
    "flatten(1) then splits the channels): one norm per IMAGE, grad.flatten(1).norm(dim=1), with no "
    "squeeze()",
}

_GRAD_NORM_CRASHES = (
    (
        r"Input type \(\w+\) and (weight|bias) type \(\w+\) should be the same|expected scalar type|"
        r"same dtype",
        "the images were cast to another dtype than D's (a .float() on x?): keep x's dtype, "
        "x.detach().clone().requires_grad_(True); the probe must work for a float64 D too",
    ),
    (
        r"One of the differentiated Tensors does not require grad",
        "you differentiate with respect to a copy that autograd does not track: x = "
        "x.detach().clone().requires_grad_(True), and feed THAT x to D",
    ),
    (
        r"appears to not have been used in the graph",
        "you differentiate with respect to a tensor D never saw: make the tracked copy first, "
        "x = x.detach().clone().requires_grad_(True), then call D(x) on that same x",
    ),
    (
        r"grad can be implicitly created only for scalar outputs",
        "autograd.grad (or backward) on the B logits: differentiate their SUM, D(x).sum(); the images do "
        "not interact, so d(sum)/dx_i is dD(x_i)/dx_i",
    ),
    (
        r"does not require grad and does not have a grad_fn",
        "D's forward ran without a graph (under torch.no_grad() or on a detached output): the probe needs "
        "autograd; only the copy x = x.detach().clone().requires_grad_(True) is detached, and before D",
    ),
    (
        r"'NoneType' object has no attribute",
        "x.grad is None: .backward() fills .grad only of a tensor that requires grad, and a leaf; better, "
        "(grad,) = torch.autograd.grad(D(x).sum(), x) returns it directly",
    ),
)


def _probe(fn: Callable, D: nn.Module, x: torch.Tensor, what: str) -> float:
    """The learner's probe on a copy of ``x``: one number, and nothing changed in x or in D."""
    x_in = x.clone()
    stale = {n: torch.full_like(p, 0.25) for n, p in D.named_parameters()}
    for n, p in D.named_parameters():  # gradients that the trainer's step still holds: a probe keeps them
        p.grad = stale[n].clone()
    flags = {n: p.requires_grad for n, p in D.named_parameters()}
    training = D.training
    try:
        with stage(f"input_gradient_norm on {what}"):
            out = fn(D, x_in)
    except Exception as e:
        _named_crash(e, _GRAD_NORM_CRASHES)
        raise
    expect(
        not x_in.requires_grad and x_in.grad is None and torch.equal(x_in, x),
        "your function changed the images it was given (requires_grad or .grad set, or values changed): "
        "differentiate with respect to a copy, x = x.detach().clone().requires_grad_(True)",
    )
    expect(
        all(p.requires_grad == flags[n] for n, p in D.named_parameters()),
        "D's parameters no longer require grad (D.requires_grad_(False) left behind): D could not train "
        "after the probe. Leave D as it is: torch.autograd.grad(D(x).sum(), x) differentiates with respect "
        "to x only",
    )
    expect(
        D.training == training,
        f"the probe left D in {'eval' if training else 'train'} mode: restore the mode you found (or leave "
        "it alone); the trainer's D must stay as it was",
    )
    for n, p in D.named_parameters():
        expect(
            p.grad is not None,
            "you erased D's gradients (zero_grad() or .grad = None): a probe must leave D's .grad as it "
            "found it (the trainer reads them after its step). Use torch.autograd.grad(D(x).sum(), x), "
            "which writes nothing into D",
        )
        expect(
            torch.equal(p.grad, stale[n]),
            "D's parameters got gradients: a probe must not leave anything for the next optimizer step. Use "
            "torch.autograd.grad(D(x).sum(), x) instead of .backward() (backward accumulates into D's .grad)",
        )
    expect(
        isinstance(out, (float, int)) or (isinstance(out, torch.Tensor) and out.numel() == 1),
        f"input_gradient_norm should return one number (a float), got {type(out).__name__}"
        + (f" of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else "")
        + f" on {what}: the MEAN of the per-image norms",
    )
    return float(out)


def _true_grad(D: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).sum(), x)  # (B, C, H, W)
    return grad


def _expect_grad_norm(fn: Callable, D: nn.Module, x: torch.Tensor, what: str, why: str) -> None:
    got = _probe(fn, D, x, what)
    grad, want = _true_grad(D, x), _ref_input_gradient_norm(D, x)
    if abs(got - want) <= 1e-4 * max(1.0, want):
        return
    mistake = _name_mistake(got, want, _grad_norm_variants(grad), _GRAD_NORM_MISTAKES)
    fail(f"on {what} the answer is {want:.4f}, got {got:.4f}: {mistake or why}")


@checker(
    "13.1",
    "input_gradient_norm",
    hints=GRAD_NORM_HINTS,
    reference="vitgan_lite.diagnostics:input_gradient_norm",
)
def check_input_gradient_norm(fn: Callable[[nn.Module, torch.Tensor], float]) -> None:
    """Hand values on two discriminators whose gradients are known, then the reference on random ones."""
    # D(x) = <v, x>: every image's gradient is v; v has entries of different sizes so that norms and means
    # of absolute values differ
    v = torch.rand(3, 4, 4, generator=seeded(2)) + 0.25  # (3, 4, 4)
    x = torch.rand(4, 3, 4, 4, generator=seeded(0)) * 2 - 1  # (4, 3, 4, 4)
    what = f"D(x) = <v, x> (gradient v for every image, ||v|| = {float(v.norm()):.4f})"
    _expect_grad_norm(
        fn, _ScaledLinearD(v.clone()), x, what,
        "D(x) = <v, x> has the same input gradient v for every image, so the answer is ||v||, whatever x",
    )  # fmt: skip
    # D(x) = ||x||^2 / 2: gradient x_i, so the answer is the mean of the per-image norms
    x = torch.randn(5, 3, 4, 4, generator=seeded(1)) * torch.arange(1.0, 6.0).view(5, 1, 1, 1)  # (5, 3, 4, 4)
    _expect_grad_norm(
        fn, _SquareD(), x, "D(x) = ||x||^2 / 2 (gradient x_i)",
        "with D(x) = ||x||^2 / 2 the gradient of image i is x_i, so the answer is the mean of ||x_i|| over "
        "the images",
    )  # fmt: skip
    # random small discriminators against the reference: a batch of one, and a float64 D and x
    for seed, B, dtype in ((0, 3, torch.float32), (1, 1, torch.float32), (2, 2, torch.float64)):
        D = _conv_d(seed).to(dtype)
        x = torch.randn(B, 3, 4, 4, generator=seeded(10 + seed), dtype=dtype)  # (B, 3, 4, 4)
        name = str(dtype).replace("torch.", "")
        _expect_grad_norm(
            fn, D, x, f"a small {name} conv D on a batch of {B}",
            "one gradient of D(x).sum() with respect to a tracked copy of x, one L2 norm per image "
            "(flatten(1).norm(dim=1)), their mean",
        )  # fmt: skip


__all__ = ["check_input_gradient_norm", "check_ranking_accuracy"]
