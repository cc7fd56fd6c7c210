"""Checkers for lesson 09 (losses and augmentation), ``notebooks/09_losses_and_augmentation.ipynb``.

Exercise 9.1 ``d_logistic_loss``, 9.2 ``g_nonsaturating_loss``, 9.3 ``rand_translation`` (DiffAugment's
translation op) and 9.4 ``bcr_loss``. Each checker compares the learner's code with the package's
reference (``vitgan_lite.losses``, ``vitgan_lite.augment``) and names the classic mistakes: a sign flip,
a sum instead of a mean, ``log(sigmoid(.))`` underflow, one random draw shared by the batch, a wrong
fill value, a shift beyond its bound, bCR on probabilities, a missing bCR term, G(z) not detached.

Shape legend: ``B`` batch, ``C`` channels, ``H, W`` pixels. Logits have shape ``(B,)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vitgan_lite.checks._core import (
    checker,
    expect,
    expect_close,
    expect_grads_reach_every_parameter,
    expect_tensor,
    fail,
    seeded,
)
from vitgan_lite.losses import bcr_loss as ref_bcr_loss
from vitgan_lite.losses import d_logistic_loss as ref_d_loss
from vitgan_lite.losses import g_nonsaturating_loss as ref_g_loss

# (B_real, B_fake): odd batches and batches of different sizes
LOGIT_CASES = [(4, 4), (3, 5), (1, 7), (6, 2)]


def _logits(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, generator=seeded(seed)) * 3.0  # (n,): a spread of confident and unsure logits


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(torch.isfinite(a).all()) and torch.allclose(a.float(), b.float(), atol=1e-5, rtol=1e-4)


def _expect_scalar(out: object, what: str) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        fail(f"{what} should return a torch.Tensor, got {type(out).__name__}")
    expect(
        out.ndim == 0,
        f"{what} should return a scalar (shape ()), got shape {tuple(out.shape)}: average over the batch "
        "with .mean()",
    )
    return out


# ---------------------------------------------------------------------------------------------------
# 9.1 and 9.2: the logistic losses


def _diagnose_d(out: torch.Tensor, r: torch.Tensor, f: torch.Tensor) -> str:
    """Name the mistake that gives ``out`` for real logits ``r`` and fake logits ``f``."""
    sp = F.softplus
    if _close(out, sp(r).mean() + sp(-f).mean()):
        return (
            "the signs are flipped: D must push real logits UP and fake logits DOWN, so the real term is "
            "softplus(-D(x)) and the fake term is softplus(+D(G(z)))"
        )
    if _close(out, sp(r).mean() + sp(f).mean()) or _close(out, sp(-r).mean() + sp(-f).mean()):
        return (
            "one of the two terms has the wrong sign: the real term is softplus(-D(x)) "
            "(= -log sigmoid(D(x))) and the fake term is softplus(D(G(z))) (= -log(1 - sigmoid(D(G(z)))))"
        )
    if _close(out, -(sp(-r).mean() + sp(f).mean())):
        return "the loss has the wrong overall sign: return +[mean softplus(-D(x)) + mean softplus(D(G(z)))]"
    if _close(out, sp(-r).sum() + sp(f).sum()):
        return (
            "you SUM over the batch instead of averaging: the loss would grow with the batch size. "
            "Use .mean() on each term"
        )
    if _close(out, torch.cat([sp(-r), sp(f)]).mean()):
        return (
            "you average over the concatenated real and fake batch: that halves the loss (and weighs the "
            "batches by their sizes). Average each term on its own, then add them"
        )
    if _close(out, 0.5 * (sp(-r).mean() + sp(f).mean())):
        return "the loss is halved: add the two means, do not average them"
    return "the value differs from mean(softplus(-D(x))) + mean(softplus(D(G(z))))"


@checker("9.1", "discriminator logistic loss")
def check_d_logistic_loss(d_logistic_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check ``d_logistic_loss(real_logits (B,), fake_logits (B',)) -> ()`` against the reference."""
    for seed, (B, Bf) in enumerate(LOGIT_CASES):
        r = _logits(B, seed).requires_grad_(True)
        f = _logits(Bf, 100 + seed).requires_grad_(True)
        out = _expect_scalar(d_logistic_loss(r, f), f"d_logistic_loss on {B} real and {Bf} fake logits")
        expect(bool(torch.isfinite(out)), "d_logistic_loss returned NaN or inf on ordinary logits")
        expected = ref_d_loss(r.detach(), f.detach())
        if not _close(out.detach(), expected):
            fail(f"for {B} real and {Bf} fake logits: {_diagnose_d(out.detach(), r.detach(), f.detach())}")
        expect(
            out.requires_grad,
            "the loss carries no gradient: compute it with torch operations on the logits (no .item(), "
            "no numpy, no torch.no_grad) so that backward() reaches D",
        )
        gr, gf = torch.autograd.grad(out, (r, f), allow_unused=True)
        for g, which in ((gr, "real_logits"), (gf, "fake_logits")):
            expect(
                g is not None,
                f"no gradient reaches {which}: it is detached (or used under torch.no_grad()) inside the "
                "loss. The value is right, but D would never learn from that half of the loss",
            )
        # d/dt softplus(-t) = -sigmoid(-t); d/dt softplus(t) = sigmoid(t); each divided by its batch size
        expect_close(gr, -torch.sigmoid(-r.detach()) / B, "the gradient with respect to real_logits is wrong")
        expect_close(gf, torch.sigmoid(f.detach()) / Bf, "the gradient with respect to fake_logits is wrong")
    # Hand value: zero logits give softplus(0) = log 2 per term, so L_D = 2 log 2 = 1.3863
    out = d_logistic_loss(torch.zeros(3), torch.zeros(5))
    expect_close(out.detach(), torch.tensor(2 * 0.6931471805599453), "at zero logits L_D must be 2 log 2")
    # Confident logits: softplus stays finite where -log(sigmoid(t)) underflows to inf
    r, f = torch.tensor([-200.0, 3.0, 200.0]), torch.tensor([200.0, -200.0])
    out = d_logistic_loss(r, f).detach()
    expect(
        bool(torch.isfinite(out)),
        "the loss is inf or NaN for confident logits (|t| = 200): log(sigmoid(t)) underflows to log(0). "
        "Use F.softplus: -log sigmoid(t) = softplus(-t) and -log(1 - sigmoid(t)) = softplus(t)",
    )
    expect_close(out, ref_d_loss(r, f), "the loss is wrong for confident logits (|t| = 200)", rtol=1e-4)


def _diagnose_g(out: torch.Tensor, f: torch.Tensor) -> str:
    sp = F.softplus
    if _close(out, sp(f).mean()):
        return (
            "the sign is flipped: softplus(D(G(z))) is the DISCRIMINATOR's fake term. G wants D(G(z)) large, "
            "so it minimises softplus(-D(G(z))) = -log sigmoid(D(G(z)))"
        )
    if _close(out, -sp(f).mean()):
        return (
            "this is the SATURATING loss log(1 - sigmoid(D(G(z)))) = -softplus(D(G(z))): its gradient "
            "vanishes when D confidently rejects the fakes. Use the non-saturating softplus(-D(G(z)))"
        )
    if _close(out, -sp(-f).mean()):
        return "the loss has the wrong overall sign: return +mean(softplus(-D(G(z))))"
    if _close(out, sp(-f).sum()):
        return "you SUM over the batch instead of averaging: use .mean()"
    return "the value differs from mean(softplus(-D(G(z))))"


@checker("9.2", "generator non-saturating loss")
def check_g_nonsaturating_loss(g_nonsaturating_loss: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check ``g_nonsaturating_loss(fake_logits (B,)) -> ()`` against the reference."""
    for seed, (_, B) in enumerate(LOGIT_CASES):
        f = _logits(B, 200 + seed).requires_grad_(True)
        out = _expect_scalar(g_nonsaturating_loss(f), f"g_nonsaturating_loss on {B} fake logits")
        expected = ref_g_loss(f.detach())
        if not _close(out.detach(), expected):
            fail(f"for {B} fake logits: {_diagnose_g(out.detach(), f.detach())}")
        expect(
            out.requires_grad,
            "the loss carries no gradient: compute it with torch operations (no .item(), no numpy) so "
            "that backward() reaches G through D",
        )
    # Hand value: softplus(-0) = log 2
    expect_close(
        g_nonsaturating_loss(torch.zeros(3)).detach(), torch.tensor(0.6931471805599453), "at zero L_G = log 2"
    )
    # Defining property: where D rejects the fakes (t = -10), the gradient is -sigmoid(10)/B ~ -1/B, not ~0
    f = torch.tensor([-10.0, -10.0, -200.0], requires_grad=True)
    out = g_nonsaturating_loss(f)
    expect(
        bool(torch.isfinite(out)),
        "the loss is inf or NaN for a confidently rejected fake (t = -200): -log(sigmoid(t)) underflows. "
        "Use F.softplus(-t)",
    )
    (g,) = torch.autograd.grad(out, f)
    expect_close(
        g,
        torch.full((3,), -1.0 / 3),
        "where D confidently rejects the fakes (logit -10) the gradient should be about -1/B: the "
        "non-saturating loss keeps G learning early in training",
        atol=1e-4,
    )


# ---------------------------------------------------------------------------------------------------
# 9.3: DiffAugment's translation


def _coded_images(B: int, C: int, H: int, W: int) -> torch.Tensor:
    """Images whose every value is distinct and in [0.05, 0.95]: a value tells where it came from."""
    k = torch.arange(B * C * H * W, dtype=torch.float32).reshape(B, C, H, W)  # (B, C, H, W)
    return 0.05 + 0.9 * (k % (C * H * W)) / (C * H * W)  # (B, C, H, W), same code in every sample


def _shift(x: torch.Tensor, ty: int, tx: int, mode: str = "zero") -> torch.Tensor:
    """``out[i, j] = x[i - ty, j - tx]`` for one image ``(C, H, W)``, outside filled according to ``mode``."""
    C, H, W = x.shape
    if mode == "roll":
        return torch.roll(x, shifts=(ty, tx), dims=(1, 2))  # (C, H, W)
    i = torch.arange(H)[:, None] - ty  # (H, 1)
    j = torch.arange(W)[None, :] - tx  # (1, W)
    inside = (i >= 0) & (i < H) & (j >= 0) & (j < W)  # (H, W)
    src = x[:, i.clamp(0, H - 1), j.clamp(0, W - 1)]  # (C, H, W), edge-replicated reading
    if mode == "edge":
        return src
    fill = {"zero": 0.0, "minus_one": -1.0}[mode]
    return torch.where(inside, src, torch.full_like(src, fill))  # (C, H, W)


def _find_shift(out: torch.Tensor, H: int, W: int, C: int) -> tuple[int, int] | None:
    """The (ty, tx) most pixels of ``out (C, H, W)`` agree on, decoding each value's source pixel."""
    v = out[0]  # (H, W), channel 0: codes 0 .. H*W - 1
    code = torch.round((v - 0.05) / 0.9 * (C * H * W))  # (H, W)
    valid = (v > 0.04) & (v < 0.96) & ((v - (0.05 + 0.9 * code / (C * H * W))).abs() < 1e-5) & (code < H * W)
    if not bool(valid.any()):
        return None
    code = code[valid].long()
    ii, jj = torch.nonzero(valid, as_tuple=True)
    ty, tx = ii - code // W, jj - code % W  # (n,), (n,)
    pairs = (ty + 2 * H) * (4 * W) + (tx + 2 * W)  # one integer per shift
    best = int(torch.mode(pairs).values)
    return best // (4 * W) - 2 * H, best % (4 * W) - 2 * W


def _translation_shifts(
    rand_translation: Callable[..., torch.Tensor], B: int, C: int, H: int, W: int, ratio: float, seed: int
) -> torch.Tensor:
    """Run the learner's op on coded images, check each output is a zero-filled shift; return (B, 2)."""
    x = _coded_images(B, C, H, W)  # (B, C, H, W)
    x_in = x.clone()
    out = rand_translation(x_in, ratio=ratio, generator=seeded(seed))
    expect_tensor(out, (B, C, H, W), f"rand_translation of a {(B, C, H, W)} batch")
    expect(torch.equal(x_in, x), "rand_translation changed its input in place: build a new tensor instead")
    shifts = []
    for b in range(B):
        found = _find_shift(out[b], H, W, C)
        if found is None:
            fail(
                f"image {b} of the batch contains none of the input's pixels: the shift must stay within "
                f"ratio * size = {ratio} * {H}, not move the whole image out"
            )
        ty, tx = found
        if torch.allclose(out[b], _shift(x[b], ty, tx)):
            shifts.append((ty, tx))
            continue
        if ty == 0 and tx == 0:
            fail(f"image {b} is not a translation of its input (no shift found)")
        if torch.allclose(out[b], _shift(x[b], ty, tx, "roll")):
            fail(
                "your translation wraps around (torch.roll): the pixels pushed off one edge reappear at the "
                "other. DiffAugment fills the uncovered border with 0 (mid-grey in [-1, 1]): zero-pad, then "
                "crop"
            )
        if torch.allclose(out[b], _shift(x[b], ty, tx, "minus_one")):
            fail(
                "the uncovered border is filled with -1 (black): DiffAugment fills with 0, which is mid-grey "
                "for images in [-1, 1]. Pad with zeros (F.pad(..., value=0))"
            )
        if torch.allclose(out[b], _shift(x[b], ty, tx, "edge")):
            fail(
                "the uncovered border repeats the edge pixels (replicate padding): DiffAugment fills it "
                "with 0. Use F.pad(x, pad) with its default constant mode, value 0"
            )
        fail(
            f"image {b} is shifted by ({ty}, {tx}) but its other pixels are wrong: outside the shifted image "
            "every value must be 0 and inside out[i, j] = x[i - ty, j - tx] for all channels"
        )
    return torch.tensor(shifts)  # (B, 2)


def _dot_shifts(
    rand_translation: Callable[..., torch.Tensor], B: int, H: int, W: int, ratio: float, seed: int
) -> torch.Tensor | None:
    """Shifts (B, 2) of many images holding one bright dot at the centre (None if a dot left the image)."""
    x = torch.zeros(B, 1, H, W)  # (B, 1, H, W)
    x[:, :, H // 2, W // 2] = 1.0
    out = rand_translation(x, ratio=ratio, generator=seeded(seed))  # (B, 1, H, W)
    expect_tensor(out, (B, 1, H, W), f"rand_translation of a {(B, 1, H, W)} batch")
    flat = out.detach().reshape(B, H * W)  # (B, H*W)
    if not bool((flat.max(dim=1).values == 1.0).all()):
        return None
    pos = flat.argmax(dim=1)  # (B,)
    return torch.stack([pos // W - H // 2, pos % W - W // 2], dim=1)  # (B, 2): (ty, tx)


@checker("9.3", "DiffAugment translation")
def check_rand_translation(rand_translation: Callable[..., torch.Tensor]) -> None:
    """Check ``rand_translation(x (B, C, H, W), ratio=0.125, generator=None) -> (B, C, H, W)``."""
    # (B, C, H, W, ratio): default 1/8 of a CIFAR-sized image, and a non-square image with ratio 1/4
    cases = [(17, 3, 32, 32, 0.125), (13, 1, 16, 24, 0.25)]
    for seed, (B, C, H, W, ratio) in enumerate(cases):
        # every output must be a zero-filled shift of its input: this names wrong fills and wrap-around
        _translation_shifts(rand_translation, B, C, H, W, ratio, seed)
    for seed, (_, _, H, W, ratio) in enumerate(cases):
        # the statistics of the draws, on many one-dot images: per sample, per axis, within [-s, s]
        B, sh, sw = 1000, int(H * ratio + 0.5), int(W * ratio + 0.5)
        shifts = _dot_shifts(rand_translation, B, H, W, ratio, 10 + seed)  # (B, 2)
        if shifts is None:
            fail(
                f"a shift moved the centre pixel of a {H}x{W} image off the image: shifts must stay within "
                f"[-s, s] with s = int(size * ratio + 0.5), here {sh} rows and {sw} columns"
            )
        ty, tx = shifts[:, 0], shifts[:, 1]
        expect(
            bool((shifts != 0).any()),
            "no image was shifted at all: draw integer shifts in [-s, s] with s = int(H * ratio + 0.5)",
        )
        expect(
            len(set(map(tuple, shifts.tolist()))) > 1,
            "every image of the batch got the same shift: draw one (ty, tx) PER SAMPLE, e.g. "
            "torch.randint(-s, s + 1, (B,)); one shared draw augments nothing from D's point of view",
        )
        expect(
            bool((ty != tx).any()),
            "the row shift and the column shift are always equal: draw them separately, one per axis",
        )
        for name, t, s, size in (("row", ty, sh, H), ("column", tx, sw, W)):
            expect(
                int(t.abs().max()) <= s,
                f"a {name} shift of {int(t.abs().max())} pixels goes beyond the bound s = int({size} * "
                f"{ratio} + 0.5) = {s}. Draw shifts in [-s, s] (torch.randint(-s, s + 1, ...)), with the "
                "row bound from H and the column bound from W",
            )
            expect(
                int(t.max()) == s and int(t.min()) == -s,
                f"{name} shifts should cover [-{s}, {s}] but ranged over [{int(t.min())}, {int(t.max())}] in "
                f"{B} draws: torch.randint's upper end is exclusive, so use torch.randint(-s, s + 1, ...); "
                "take s from the image size (H for rows, W for columns) times ratio",
            )
    # The generator makes the draws: same seed, same shifts; different seed, different shifts
    x = torch.randn(16, 3, 8, 8, generator=seeded(7))
    a = rand_translation(x, ratio=0.25, generator=seeded(1))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)  # a learner who ignores `generator` would now draw from here
        b = rand_translation(x, ratio=0.25, generator=seeded(1))
    expect(
        torch.equal(a, b),
        "two calls with generators of the same seed gave different shifts: pass generator=generator to "
        "every torch.randint / torch.rand call (it is how a seeded run stays reproducible)",
    )
    c = rand_translation(x, ratio=0.25, generator=seeded(2))
    expect(
        not torch.equal(a, c), "different generator seeds gave the same shifts: draw them from `generator`"
    )
    # Differentiable: each output pixel is one input pixel or 0, so d(sum out)/dx is 1 or 0
    x = x.clone().requires_grad_(True)
    out = rand_translation(x, ratio=0.25, generator=seeded(3))
    expect(
        out.requires_grad,
        "no gradient flows through your translation: use differentiable torch indexing / padding (no "
        "numpy, no .detach(), no torch.no_grad()), since the G step backpropagates through T",
    )
    (g,) = torch.autograd.grad(out.sum(), x)
    kept = int((g == 1).sum())
    expect(
        bool(((g == 0) | (g == 1)).all()) and kept == int((out != 0).sum()),
        "the gradient of sum(out) with respect to x should be 1 on the pixels that stay in the image and "
        "0 on those shifted out",
    )


# ---------------------------------------------------------------------------------------------------
# 9.4: bCR


class _TinyD(nn.Module):
    """A per-image discriminator with few parameters: conv -> tanh -> mean pool -> linear -> (B,)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, kernel_size=3, padding=1)
        self.head = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.conv(x)).mean(dim=(2, 3))  # (B, 4)
        return 3.0 * self.head(h).squeeze(-1)  # (B,), scaled so that some logits are confident


class _TinyG(nn.Module):
    """z (B, 4) -> images (B, 3, 6, 6) in [-1, 1], so that a gradient into G can be detected."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3 * 6 * 6)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(z)).view(-1, 3, 6, 6)  # (B, 3, 6, 6)


def _T(x: torch.Tensor) -> torch.Tensor:
    """A deterministic stand-in for T: shift right by one pixel (zero fill) and brighten by 0.3."""
    return F.pad(x, [1, 0, 0, 0])[..., :-1] + 0.3  # (B, C, H, W)


def _bcr_terms(D: nn.Module, reals: torch.Tensor, fakes: torch.Tensor) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        return D(reals), D(_T(reals)), D(fakes), D(_T(fakes))  # (B,), (B,), (B',), (B',)


def _diagnose_bcr(out: torch.Tensor, terms: tuple[torch.Tensor, ...], lr: float, lf: float) -> str:
    r, ra, f, fa = terms
    dr, df = r - ra, f - fa  # (B,), (B',)
    s = torch.sigmoid
    if _close(out, lr * (s(r) - s(ra)).square().mean() + lf * (s(f) - s(fa)).square().mean()):
        return (
            "you compare PROBABILITIES sigmoid(D(.)): bCR penalises the difference of LOGITS, "
            "(D(x) - D(T(x)))^2, which stays informative where the sigmoid saturates. Drop the sigmoid"
        )
    if _close(out, lr * dr.square().mean()):
        return (
            "only the real term is there: bCR is BALANCED, add lambda_fake * mean((D(G(z)) - D(T(G(z))))^2)"
        )
    if _close(out, lf * df.square().mean()):
        return "only the fake term is there: add lambda_real * mean((D(x) - D(T(x)))^2)"
    if _close(out, lf * dr.square().mean() + lr * df.square().mean()):
        return "lambda_real and lambda_fake are swapped: lambda_real weighs the REAL term"
    if _close(out, 10.0 * dr.square().mean() + 10.0 * df.square().mean()):
        return "the weights are hard-coded to 10: use the lambda_real and lambda_fake arguments"
    if _close(out, lr * dr.square().sum() + lf * df.square().sum()):
        return "you SUM the squared differences over the batch instead of averaging: use .mean()"
    if _close(out, lr * dr.norm() + lf * df.norm()):
        return "you use the norm ||D(x) - D(T(x))||, not its SQUARE: use .square().mean()"
    if _close(out, lr * dr.abs().mean() + lf * df.abs().mean()):
        return "you use the absolute difference: bCR uses the squared difference, .square().mean()"
    if _close(out, torch.zeros(())):
        return "the penalty is zero: compare D(x) with D(T(x)), where T = augment, not D(x) with itself"
    return (
        "the value differs from lambda_real * mean((D(x) - D(T(x)))^2) "
        "+ lambda_fake * mean((D(G(z)) - D(T(G(z))))^2)"
    )


@checker("9.4", "bCR")
def check_bcr_loss(bcr_loss: Callable[..., torch.Tensor]) -> None:
    """Check ``bcr_loss(discriminator, reals, fakes, augment, lambda_real, lambda_fake) -> ()``."""
    # (B, B', lambda_real, lambda_fake): ViTGAN's 10 / 10, other weights, odd and unequal batches
    for seed, (B, Bf, lr, lf) in enumerate([(4, 4, 10.0, 10.0), (3, 5, 2.0, 0.5), (5, 1, 0.25, 4.0)]):
        with torch.random.fork_rng(devices=[]):  # seed the tiny nets without touching the learner's RNG
            torch.manual_seed(seed)
            D, G = _TinyD(), _TinyG()
        reals = torch.rand(B, 3, 6, 6, generator=seeded(seed)) * 2 - 1  # (B, 3, 6, 6)
        z = torch.randn(Bf, 4, generator=seeded(50 + seed))  # (B', 4)
        fakes = G(z)  # (B', 3, 6, 6), attached to G's graph on purpose
        out = _expect_scalar(bcr_loss(D, reals, fakes, _T, lr, lf), f"bcr_loss on {B} reals and {Bf} fakes")
        terms = _bcr_terms(D, reals, fakes.detach())
        expected = ref_bcr_loss(D, reals, fakes.detach(), _T, lr, lf).detach()
        if not _close(out.detach(), expected):
            fail(
                f"with {B} reals, {Bf} fakes, lambda_real={lr}, lambda_fake={lf}: "
                f"{_diagnose_bcr(out.detach(), terms, lr, lf)}"
            )
        expect(
            out.requires_grad,
            "the penalty carries no gradient: bCR trains D, so do not compute D's logits under "
            "torch.no_grad() or detach them",
        )
        out.backward()
        # head.bias is skipped: a constant offset of the logit cancels in D(x) - D(T(x)), its gradient is 0
        expect_grads_reach_every_parameter(
            D,
            lambda name: f"D's parameter {name} got no gradient from bCR: it must train the discriminator",
            skip=("head.bias",),
        )
        expect(
            all(p.grad is None or bool((p.grad == 0).all()) for p in G.parameters()),
            "a gradient reached the GENERATOR: bCR regularises D only, in the D step. Detach the fakes "
            "(fakes = fakes.detach()) before feeding D",
        )
    # Defining property: an augmentation that D cannot notice costs nothing
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(9)
        D = _TinyD()
    x = torch.rand(3, 3, 6, 6, generator=seeded(9)) * 2 - 1  # (3, 3, 6, 6)
    out = bcr_loss(D, x, x.flip(0), lambda t: t.clone(), 10.0, 10.0)
    expect_close(out.detach(), torch.zeros(()), "with T = identity the penalty must be 0")


__all__ = ["check_bcr_loss", "check_d_logistic_loss", "check_g_nonsaturating_loss", "check_rand_translation"]
