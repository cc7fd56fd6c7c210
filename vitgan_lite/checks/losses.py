"""Checkers for lesson 09 (losses and augmentation), ``notebooks/09_losses_and_augmentation.ipynb``.

Exercise 9.1 ``d_logistic_loss``, 9.2 ``g_nonsaturating_loss``, 9.3 ``rand_translation`` (DiffAugment's
translation op) and 9.4 ``bcr_loss``. Each checker compares the learner's code with the package's
reference (``vitgan_lite.losses``, ``vitgan_lite.augment``), values AND gradients, one property at a time,
and names the classic mistakes: a sign flip, a sum instead of a mean, ``log(sigmoid(.))`` underflow or
``exp`` overflow, a clamp in the log, a detached input, one random draw shared by the batch, a wrong fill
or wrap-around, a wrongly rounded bound, a non-uniform draw, bCR on probabilities, on both augmented
sides, with swapped weights or on fakes that still carry G's graph.

Random draws are checked by their distribution (per sample, per axis, uniform over [-s, s]), never by
their order, so that a translation drawing tx before ty (or both in one call) passes.

Shape legend: ``B`` batch, ``C`` channels, ``H, W`` pixels. Logits have shape ``(B,)``.
"""

from __future__ import annotations

import math
import re
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
    stage,
)
from vitgan_lite.losses import bcr_loss as ref_bcr_loss
from vitgan_lite.losses import d_logistic_loss as ref_d_loss
from vitgan_lite.losses import g_nonsaturating_loss as ref_g_loss

# (B_real, B_fake): unequal batches first (so that a sum, a halving and a concatenated mean all differ),
# equal ones, and a batch of one
LOGIT_CASES = [(3, 5), (4, 4), (1, 7), (6, 2)]
_NO_GRAPH = (
    "something cut the autograd graph: a .item() or float(), a numpy round trip, a .detach(), or "
    "torch.no_grad()"
)


def _logits(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, generator=seeded(seed)) * 3.0  # (n,): a spread of confident and unsure logits


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (
        a.shape == b.shape
        and bool(torch.isfinite(a).all())
        and torch.allclose(a.float(), b.float(), atol=1e-5, rtol=1e-4)
    )


def _expect_scalar(out: object, what: str, combine: str) -> torch.Tensor:
    """``out`` must be a 0-dim tensor; a float, a tuple or a (B,) / (1,) tensor each get their own fix."""
    if isinstance(out, (float, int)):
        fail(
            f"{what} should return a torch.Tensor, got {type(out).__name__}: a .item() (or float()) turns "
            "the loss into a Python number with no gradient. Return the tensor itself"
        )
    if isinstance(out, (tuple, list)):
        fail(f"{what} should return a torch.Tensor, got {type(out).__name__}: {combine}")
    if not isinstance(out, torch.Tensor):
        fail(f"{what} should return a torch.Tensor, got {type(out).__name__}")
    if out.ndim != 0:
        fix = (
            "drop keepdim=True (or reshape to ())"
            if out.numel() == 1
            else "average over the batch with .mean()"
        )
        fail(f"{what} should return a scalar (shape ()), got shape {tuple(out.shape)}: {fix}")
    return out


def _elementwise_crash(e: RuntimeError, B: int, Bf: int, formula: str) -> None:
    """A real (B,) and a fake (B',) term added element-wise only broadcast when B == B'."""
    if B != Bf and re.search(r"must match the size|size of tensor a|cannot broadcast", str(e)):
        fail(
            f"with {B} real and {Bf} fake logits your code fails: you add the real and fake terms "
            f"element-wise ({formula}) before averaging, which only works when B == B' (here B != B'). "
            "Average each term over its own batch, then add the two means"
        )


def _expect_graph(out: torch.Tensor, reaches: str) -> None:
    expect(
        out.requires_grad,
        f"the loss carries no gradient (requires_grad is False): {_NO_GRAPH}. Compute it with torch "
        f"operations on the logits so that backward() reaches {reaches}",
    )


# ---------------------------------------------------------------------------------------------------
# 9.1 and 9.2: the logistic losses


def _diagnose_d(out: torch.Tensor, r: torch.Tensor, f: torch.Tensor) -> str:
    """Name the mistake that gives ``out`` for real logits ``r`` and fake logits ``f``."""
    sp = F.softplus
    B, Bf = len(r), len(f)
    candidates = [
        (
            sp(r).mean() + sp(-f).mean(),
            "the signs are flipped (or real and fake logits are swapped): D must push real logits UP and "
            "fake logits DOWN, so the real term is softplus(-D(x)) and the fake term softplus(+D(G(z)))",
        ),
        (
            sp(r).mean() + sp(f).mean(),
            "the REAL term has the wrong sign: it is softplus(-D(x)) = -log sigmoid(D(x)), small when D(x) "
            "is large",
        ),
        (
            sp(-r).mean() + sp(-f).mean(),
            "the FAKE term has the wrong sign: it is softplus(+D(G(z))) = -log(1 - sigmoid(D(G(z)))), small "
            "when D(G(z)) is very negative",
        ),
        (
            -(sp(-r).mean() + sp(f).mean()),
            "the loss has the wrong overall sign: return +[mean softplus(-D(x)) + mean softplus(D(G(z)))], "
            "a loss to minimise",
        ),
        (
            sp(-r).sum() + sp(f).sum(),
            "you SUM over the batch instead of averaging: the loss would grow with the batch size. Use "
            ".mean() on each term",
        ),
        (
            torch.cat([sp(-r), sp(f)]).mean(),
            "you average over the concatenated real and fake batch: that halves the loss (and weighs the "
            "batches by their sizes). Average each term on its own, then add them",
        ),
        (
            (sp(-r).sum() + sp(f).sum()) / B,
            "both sums are divided by the real batch size B: average each term over its own batch size "
            "(B reals, B' fakes), i.e. .mean() on each",
        ),
        (
            (sp(-r).sum() + sp(f).sum()) / Bf,
            "both sums are divided by the fake batch size B': average each term over its own batch size "
            "(B reals, B' fakes), i.e. .mean() on each",
        ),
        (0.5 * (sp(-r).mean() + sp(f).mean()), "the loss is halved: add the two means, do not average them"),
        (
            sp(-torch.sigmoid(r)).mean() + sp(torch.sigmoid(f)).mean(),
            "you apply a sigmoid before the softplus: the inputs are already logits (D has no sigmoid), and "
            "softplus(-t) = -log sigmoid(t) includes it. Use F.softplus on the logits themselves",
        ),
        (
            F.relu(1 - r).mean() + F.relu(1 + f).mean(),
            "this is the hinge loss relu(1 - D(x)) + relu(1 + D(G(z))): ViTGAN uses the logistic loss "
            "softplus(-D(x)) + softplus(D(G(z)))",
        ),
        (
            f.mean() - r.mean(),
            "this is the Wasserstein (WGAN) critic loss D(G(z)) - D(x): ViTGAN uses the logistic loss "
            "mean softplus(-D(x)) + mean softplus(D(G(z)))",
        ),
    ]
    for value, message in candidates:
        if _close(out, value):
            return message
    return "the value differs from mean(softplus(-D(x))) + mean(softplus(D(G(z))))"


def _d_value(d_logistic_loss: Callable[..., torch.Tensor], r: list[float], f: list[float]) -> torch.Tensor:
    out = d_logistic_loss(torch.tensor(r), torch.tensor(f))
    return _expect_scalar(out, "d_logistic_loss", "add the two terms into one scalar").detach()


def _capped_message(value: float, expected: float, t: float, term: str) -> str:
    if abs(value - 100.0 - (expected - abs(t))) < 0.5:
        how = (
            "F.binary_cross_entropy on sigmoid probabilities clamps its log at -100, so the term stops at "
            "100. Use F.binary_cross_entropy_with_logits or F.softplus on the logits"
        )
    else:
        how = (
            "a clamp or an epsilon inside the log (log(sigmoid(t) + eps), sigmoid(t).clamp(min=eps)) caps "
            "each term at -log(eps). Drop the clamp and use F.softplus, which is exact and finite"
        )
    return f"for a confident {term} logit t = {t:g} the loss is {value:.4g} instead of {expected:.4g}: {how}"


@checker(
    "9.1",
    "discriminator logistic loss",
    hints=(
        "Two terms, each averaged over ITS OWN batch (B reals, B' fakes), then added. Write them with "
        "F.softplus, using -log sigmoid(t) = softplus(-t) and -log(1 - sigmoid(t)) = softplus(t): the real "
        "term is -log sigmoid(D(x)) (small when D(x) is large), the fake term -log(1 - sigmoid(D(G(z)))) "
        "(small when D(G(z)) is very negative). softplus never takes log(0), so confident logits "
        "(|t| = 200) stay finite; keep it all torch ops so that gradients reach both inputs.",
        "The shape of the code (fill in the signs):\n"
        "    real_term = F.softplus(... real_logits).mean()\n"
        "    fake_term = F.softplus(... fake_logits).mean()\n"
        "    return real_term + fake_term",
    ),
    reference="vitgan_lite.losses:d_logistic_loss",
)
def check_d_logistic_loss(d_logistic_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check ``d_logistic_loss(real_logits (B,), fake_logits (B',)) -> ()`` against the reference."""
    for seed, (B, Bf) in enumerate(LOGIT_CASES):
        r = _logits(B, seed).requires_grad_(True)
        f = _logits(Bf, 100 + seed).requires_grad_(True)
        try:
            out = d_logistic_loss(r, f)
        except RuntimeError as e:
            _elementwise_crash(e, B, Bf, "softplus(-D(x)) + softplus(D(G(z)))")
            raise
        what = f"d_logistic_loss on {B} real and {Bf} fake logits"
        out = _expect_scalar(out, what, "add the real and the fake term into one scalar loss")
        expect(bool(torch.isfinite(out)), "d_logistic_loss returned NaN or inf on ordinary logits")
        expected = ref_d_loss(r.detach(), f.detach())
        if not _close(out.detach(), expected):
            fail(f"for {B} real and {Bf} fake logits: {_diagnose_d(out.detach(), r.detach(), f.detach())}")
        _expect_graph(out, "D")
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
    out = _d_value(d_logistic_loss, [0.0, 0.0, 0.0], [0.0] * 5)
    expect_close(out, torch.tensor(2 * math.log(2)), "at zero logits L_D must be 2 log 2")
    # Confident logits, one term at a time: each naive form breaks at a different logit
    with stage("d_logistic_loss on confident logits"):
        out = _d_value(d_logistic_loss, [0.0], [30.0])
        expect(
            bool(torch.isfinite(out)),
            "the loss is inf for a fake logit D(G(z)) = 30: 1 - sigmoid(30) rounds to 0 in float32 (it "
            "underflows), so log(1 - sigmoid(t)) = log(0) = -inf. Use F.softplus(t), which equals "
            "-log(1 - sigmoid(t)) and is finite for any t",
        )
        out = _d_value(d_logistic_loss, [0.0], [200.0])
        expect(
            bool(torch.isfinite(out)),
            "the loss is inf for a fake logit D(G(z)) = 200: exp(200) overflows to inf in log(1 + exp(t)). "
            "Use F.softplus(t), the stable form of log(1 + exp(t))",
        )
        out = _d_value(d_logistic_loss, [-200.0], [0.0])
        expect(
            bool(torch.isfinite(out)),
            "the loss is inf for a real logit D(x) = -200: log(sigmoid(-200)) underflows to log(0) = -inf "
            "(and in log(1 + exp(-t)) exp(200) overflows). Use F.softplus(-t), which is finite for any t",
        )
        for rr, ff, t, term in (([-200.0], [0.0], -200.0, "real"), ([0.0], [200.0], 200.0, "fake")):
            out = _d_value(d_logistic_loss, rr, ff)
            expected = ref_d_loss(torch.tensor(rr), torch.tensor(ff))
            if not _close(out, expected):
                fail(_capped_message(float(out), float(expected), t, term))


def _diagnose_g(out: torch.Tensor, f: torch.Tensor) -> str:
    sp = F.softplus
    candidates = [
        (
            sp(f).mean(),
            "the sign is flipped: softplus(D(G(z))) (BCE with target 0) is the DISCRIMINATOR's fake term. "
            "G wants D(G(z)) large, so it minimises softplus(-D(G(z))) = -log sigmoid(D(G(z)))",
        ),
        (
            -sp(f).mean(),
            "this is the SATURATING loss log(1 - sigmoid(D(G(z)))) = -softplus(D(G(z))): its gradient "
            "vanishes when D confidently rejects the fakes. Use the non-saturating softplus(-D(G(z)))",
        ),
        (-sp(-f).mean(), "the loss has the wrong overall sign: return +mean(softplus(-D(G(z))))"),
        (sp(-f).sum(), "you SUM over the batch instead of averaging: use .mean()"),
        (0.5 * sp(-f).mean(), "the loss is halved: return mean(softplus(-D(G(z))))"),
        (
            sp(-torch.sigmoid(f)).mean(),
            "you apply a sigmoid before the softplus: the inputs are already logits (D has no sigmoid). "
            "Use F.softplus(-fake_logits)",
        ),
        (
            -f.mean(),
            "this is the hinge / WGAN generator loss -D(G(z)): ViTGAN's G uses the logistic non-saturating "
            "loss mean(softplus(-D(G(z))))",
        ),
    ]
    for value, message in candidates:
        if _close(out, value):
            return message
    return "the value differs from mean(softplus(-D(G(z))))"


def _g_value(g_nonsaturating_loss: Callable[..., torch.Tensor], f: list[float]) -> torch.Tensor:
    out = g_nonsaturating_loss(torch.tensor(f))
    return _expect_scalar(out, "g_nonsaturating_loss", "return one scalar").detach()


@checker(
    "9.2",
    "generator non-saturating loss",
    hints=(
        "G wants D(G(z)) LARGE: minimise -log sigmoid(D(G(z))), averaged over the batch, written with "
        "F.softplus since -log sigmoid(t) = softplus(-t). That is the non-saturating form; the saturating "
        "log(1 - sigmoid(t)) has a vanishing gradient where D rejects the fakes, and log(sigmoid(t)) itself "
        "gives inf at t = -200 where softplus stays finite.",
        "The shape of the code (fill in the sign):\n    return F.softplus(... fake_logits).mean()",
    ),
    reference="vitgan_lite.losses:g_nonsaturating_loss",
)
def check_g_nonsaturating_loss(g_nonsaturating_loss: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Check ``g_nonsaturating_loss(fake_logits (B,)) -> ()`` against the reference."""
    for seed, (_, B) in enumerate(LOGIT_CASES):
        f = _logits(B, 200 + seed).requires_grad_(True)
        what = f"g_nonsaturating_loss on {B} fake logits"
        out = _expect_scalar(g_nonsaturating_loss(f), what, "return one scalar loss")
        expected = ref_g_loss(f.detach())
        if not _close(out.detach(), expected):
            fail(f"for {B} fake logits: {_diagnose_g(out.detach(), f.detach())}")
        _expect_graph(out, "G through D")
        (g,) = torch.autograd.grad(out, f, allow_unused=True)
        expect(g is not None, "no gradient reaches fake_logits: they are detached inside the loss")
        # d/dt softplus(-t) = -sigmoid(-t), divided by the batch size
        expect_close(g, -torch.sigmoid(-f.detach()) / B, "the gradient with respect to fake_logits is wrong")
    # Hand value: softplus(-0) = log 2
    expect_close(_g_value(g_nonsaturating_loss, [0.0] * 3), torch.tensor(math.log(2)), "at zero L_G = log 2")
    with stage("g_nonsaturating_loss on confident logits"):
        out = _g_value(g_nonsaturating_loss, [-200.0])
        expect(
            bool(torch.isfinite(out)),
            "the loss is inf for a confidently rejected fake (t = -200): log(sigmoid(-200)) underflows to "
            "log(0) = -inf (and in log(1 + exp(-t)) exp(200) overflows). Use F.softplus(-t), finite for any "
            "t",
        )
        if not _close(out, torch.tensor(200.0)):
            fail(_capped_message(float(out), 200.0, -200.0, "fake"))
    # Defining property: where D rejects the fakes (t = -10), the gradient is -sigmoid(10)/B ~ -1/B, not ~0
    f = torch.tensor([-10.0, -10.0, -200.0], requires_grad=True)
    (g,) = torch.autograd.grad(g_nonsaturating_loss(f), f)
    expect_close(
        g,
        torch.full((3,), -1.0 / 3),
        "where D confidently rejects the fakes (logit -10) the gradient should be about -1/B: the "
        "non-saturating loss keeps G learning early in training",
        atol=1e-4,
    )


# ---------------------------------------------------------------------------------------------------
# 9.3: DiffAugment's translation


def _coded_images(B: int, C: int, H: int, W: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Images whose every value is distinct and in [0.05, 0.95]: a value tells where it came from."""
    k = torch.arange(B * C * H * W, dtype=torch.float64).reshape(B, C, H, W)  # (B, C, H, W)
    return (0.05 + 0.9 * (k % (C * H * W)) / (C * H * W)).to(dtype)  # (B, C, H, W), same code per sample


def _shift(x: torch.Tensor, ty: int, tx: int, mode: str = "zero") -> torch.Tensor:
    """``out[i, j] = x[i - ty, j - tx]`` for one image ``(C, H, W)``, outside filled according to ``mode``."""
    C, H, W = x.shape
    if mode == "roll":
        return torch.roll(x, shifts=(ty, tx), dims=(1, 2))  # (C, H, W)
    i = torch.arange(H)[:, None] - ty  # (H, 1)
    j = torch.arange(W)[None, :] - tx  # (1, W)
    if mode == "reflect":  # mirror without repeating the edge: -1 -> 1, H -> H - 2
        i = torch.where(i < 0, -i, torch.where(i >= H, 2 * (H - 1) - i, i)).clamp(0, H - 1)
        j = torch.where(j < 0, -j, torch.where(j >= W, 2 * (W - 1) - j, j)).clamp(0, W - 1)
        return x[:, i, j]  # (C, H, W)
    src = x[:, i.clamp(0, H - 1), j.clamp(0, W - 1)]  # (C, H, W), edge-replicated reading
    if mode == "edge":
        return src
    inside = (i >= 0) & (i < H) & (j >= 0) & (j < W)  # (H, W)
    return torch.where(inside, src, torch.zeros_like(src))  # (C, H, W)


def _find_shift(img: torch.Tensor, c: int) -> tuple[int, int] | None:
    """The (ty, tx) most pixels of channel ``c`` of ``img (C, H, W)`` agree on, from each value's source."""
    C, H, W = img.shape
    v = img[c].double()  # (H, W): codes c*H*W .. (c+1)*H*W - 1
    code = torch.round((v - 0.05) / 0.9 * (C * H * W))  # (H, W)
    exact = (v - (0.05 + 0.9 * code / (C * H * W))).abs() < 1e-5
    valid = (v > 0.04) & (v < 0.96) & exact & (code // (H * W) == c)  # (H, W)
    if not bool(valid.any()):
        return None
    pixel = code[valid].long() % (H * W)
    ii, jj = torch.nonzero(valid, as_tuple=True)
    ty, tx = ii - pixel // W, jj - pixel % W  # (n,), (n,)
    pairs = (ty + 2 * H) * (4 * W) + (tx + 2 * W)  # one integer per shift
    best = int(torch.mode(pairs).values)
    return best // (4 * W) - 2 * H, best % (4 * W) - 2 * W


def _diagnose_image(out: torch.Tensor, x: torch.Tensor, b: int, ty: int, tx: int, ratio: float) -> None:
    """``out (C, H, W)`` is not the zero-filled shift of ``x (C, H, W)`` by (ty, tx): name how it differs."""
    C, H, W = x.shape
    if C > 1:
        per_channel = [_find_shift(out, c) for c in range(C)]
        if all(s is not None and torch.allclose(out[c], _shift(x, *s)[c]) for c, s in enumerate(per_channel)):
            fail(
                f"the channels of image {b} are shifted by different amounts {per_channel}: draw one "
                "(ty, tx) per IMAGE and apply the same shift to all its channels (index [b, :, rows, cols])"
            )
    inside = _shift(torch.ones_like(x), ty, tx) > 0  # (C, H, W): pixels that come from the image
    if torch.allclose(out[inside], _shift(x, ty, tx)[inside]) and not bool(inside.all()):
        border = out[~inside]
        if torch.allclose(border, _shift(x, ty, tx, "roll")[~inside]):
            fail(
                "your translation wraps around (torch.roll): the pixels pushed off one edge reappear at the "
                "other. DiffAugment fills the uncovered border with 0 (mid-grey in [-1, 1]): zero-pad, then "
                "crop"
            )
        if torch.allclose(border, _shift(x, ty, tx, "edge")[~inside]):
            fail(
                "the uncovered border repeats the edge pixels (replicate padding): DiffAugment fills it "
                "with 0. Use F.pad(x, pad) with its default constant mode, value 0"
            )
        if torch.allclose(border, _shift(x, ty, tx, "reflect")[~inside]):
            fail(
                "the uncovered border mirrors the image (reflect padding): DiffAugment fills it with 0. "
                "Use F.pad(x, pad) with its default constant mode, value 0"
            )
        if bool((border == border.flatten()[0]).all()):
            value = float(border.flatten()[0])
            colour = {-1.0: " (black)", 1.0: " (white)"}.get(value, "")
            fail(
                f"the uncovered border is filled with {value:g}{colour}: DiffAugment fills with 0, which is "
                "mid-grey for images in [-1, 1]. Pad with zeros (F.pad(..., value=0), the default)"
            )
    if ty == 0 and tx == 0:
        fail(f"image {b} is not a translation of its input (no shift found)")
    fail(
        f"image {b} is shifted by ({ty}, {tx}) but its other pixels are wrong: outside the shifted image "
        "every value must be 0 and inside out[i, j] = x[i - ty, j - tx] for all channels"
    )


def _translation_shifts(
    rand_translation: Callable[..., torch.Tensor],
    shape: tuple[int, int, int, int],
    ratio: float,
    seed: int,
    dtype: torch.dtype = torch.float32,
) -> None:
    """Run the learner's op on coded images and check each output is a zero-filled shift of its input."""
    B, C, H, W = shape
    x = _coded_images(B, C, H, W, dtype)  # (B, C, H, W)
    x_in = x.clone()
    out = rand_translation(x_in, ratio=ratio, generator=seeded(seed))
    expect_tensor(out, (B, C, H, W), f"rand_translation of a {(B, C, H, W)} batch")
    expect(torch.equal(x_in, x), "rand_translation changed its input in place: build a new tensor instead")
    expect(
        out.dtype == x.dtype,
        f"for a {str(dtype).replace('torch.', '')} batch your translation returned "
        f"{str(out.dtype).replace('torch.', '')}: a tensor was created without the input's dtype (e.g. "
        "torch.zeros(...)). Build it with x.new_zeros(...) / torch.zeros_like(x), or use F.pad, which keep "
        "the dtype and the device",
    )
    for b in range(B):
        found = _find_shift(out[b], 0)
        if found is None:
            fail(
                f"image {b} of the batch contains none of the input's pixels: the shift must stay within "
                f"ratio * size = {ratio} * {H}, not move the whole image out"
            )
        if not torch.allclose(out[b], _shift(x[b], *found)):
            _diagnose_image(out[b], x[b], b, *found, ratio)


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


# (H, W, ratio) of the draw statistics: CIFAR's 32 x 32 at 1/8; 22 x 30 at 1/4 (5.5 rows, 7.5 columns);
# 20 x 18 at 1/8 (2.5 rows, 2.25 columns): together they tell int(), round(), ceil(), an ignored ratio and
# swapped axes apart, and even swapped bounds keep the centre dot inside the image
DOT_CASES = [(32, 32, 0.125), (22, 30, 0.25), (20, 18, 0.125)]
N_DOTS = 4000

# How a bound can be computed wrongly: (bound(size, other_size, ratio), what to say, formatted with the
# axis's size, ratio, v = size * ratio and the bound hi the learner's shifts reach)
_BOUND_MISTAKES: list[tuple[Callable[[int, int, float], int], str]] = [
    (
        lambda size, other, ratio: int(size * 0.125 + 0.5),
        "the bounds ignore the ratio argument (they are those of the default 0.125): compute "
        "s = int(size * ratio + 0.5) from the `ratio` you are given",
    ),
    (
        lambda size, other, ratio: int(other * ratio + 0.5),
        "the row and column bounds are swapped: take the row bound from H and the column bound from W",
    ),
    (
        lambda size, other, ratio: int(size * ratio),
        "s must be int(size * ratio + 0.5), rounded half up: you truncated, int({size} * {ratio}) = {hi}. "
        "Add 0.5 before int()",
    ),
    (
        lambda size, other, ratio: round(size * ratio),
        "s must be int(size * ratio + 0.5), rounded half up: Python's round() rounds halves to even, "
        "round({v:g}) = {hi}. Use int(size * ratio + 0.5)",
    ),
    (
        lambda size, other, ratio: math.ceil(size * ratio),
        "s must be int(size * ratio + 0.5), rounded half up: math.ceil rounds every fraction up, "
        "ceil({v:g}) = {hi}. Use int(size * ratio + 0.5)",
    ),
]


def _check_bounds(observed: list[tuple[int, int, float, list[tuple[int, int]]]]) -> None:
    """``observed``: per dot case (H, W, ratio, [(lo, hi) rows, (lo, hi) columns]). Name a wrong range."""
    axes = []  # (name, size, other, ratio, s, lo, hi)
    for H, W, ratio, ranges in observed:
        for (lo, hi), name, size, other in zip(ranges, ("row", "column"), (H, W), (W, H)):
            axes.append((name, size, other, ratio, int(size * ratio + 0.5), lo, hi))
    if all(lo == -s and hi == s for _, _, _, _, s, lo, hi in axes):
        return
    for name, _, _, _, s, lo, hi in axes:
        if lo == -s and hi == s - 1:
            fail(
                f"{name} shifts never reach +s = {s} (they ranged over [{lo}, {hi}] in {N_DOTS} draws): "
                "torch.randint's upper end is exclusive, so draw with torch.randint(-s, s + 1, ...)"
            )
    for bound, message in _BOUND_MISTAKES:
        if all(lo == -bound(size, other, ratio) and hi == -lo for _, size, other, ratio, _, lo, hi in axes):
            name, size, _, ratio, s, lo, hi = next(a for a in axes if a[5] != -a[4])
            why = message.format(size=size, ratio=ratio, v=size * ratio, hi=hi)
            fail(
                f"{name} shifts reach \u00b1{hi} on a {size}-pixel axis with ratio {ratio}, but the bound is "
                f"s = int({size} * {ratio} + 0.5) = {s}: {why}"
            )
    # a bound from the wrong axis on one side only (e.g. H for both): every axis right or from the other one
    if all(hi == -lo and hi in (s, int(other * ratio + 0.5)) for _, _, other, ratio, s, lo, hi in axes):
        name, size, _, ratio, s, lo, hi = next(a for a in axes if a[5] != -a[4])
        fail(
            f"{name} shifts reach \u00b1{hi} but the bound is s = int({size} * {ratio} + 0.5) = {s}: it "
            "comes from the other axis. Take the row bound from H and the column bound from W"
        )
    for name, size, _, ratio, s, lo, hi in axes:
        if hi > s or lo < -s:
            fail(
                f"a {name} shift of {max(hi, -lo)} pixels goes beyond the bound s = int({size} * {ratio} + "
                f"0.5) = {s}. Draw shifts in [-s, s] (torch.randint(-s, s + 1, ...)), with the row bound "
                "from H and the column bound from W"
            )
        if (lo, hi) != (-s, s):
            fail(
                f"{name} shifts should cover [-{s}, {s}] but ranged over [{lo}, {hi}] in {N_DOTS} draws: "
                "draw them with torch.randint(-s, s + 1, ...), s = int(size * ratio + 0.5)"
            )


def _check_draws(rand_translation: Callable[..., torch.Tensor]) -> None:
    """The statistics of the shifts, on many one-dot images: per sample, per axis, uniform over [-s, s]."""
    observed = []
    counts = []
    for seed, (H, W, ratio) in enumerate(DOT_CASES):
        sh, sw = int(H * ratio + 0.5), int(W * ratio + 0.5)
        shifts = _dot_shifts(rand_translation, N_DOTS, H, W, ratio, 10 + seed)  # (N, 2)
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
            "torch.randint(-s, s + 1, (B,)); with one shared draw every image of a step gets the same shift",
        )
        expect(
            bool((ty != tx).any()),
            "the row shift and the column shift are always equal: draw them separately, one per axis",
        )
        for name, t in (("row", ty), ("column", tx)):
            expect(
                bool((t != 0).any()),
                f"the {name}s are never shifted: draw a second, independent shift for that axis and apply it",
            )
            expect(
                int(t.min()) < 0,
                f"the {name} shifts are never negative (they ranged over [{int(t.min())}, {int(t.max())}]): "
                "torch.randint(0, 2 * s + 1) draws in [0, 2s]; subtract s, i.e. draw "
                "torch.randint(-s, s + 1, ...)",
            )
        observed.append((H, W, ratio, [(int(ty.min()), int(ty.max())), (int(tx.min()), int(tx.max()))]))
        counts.append((ty, tx))
    _check_bounds(observed)
    for ty, tx in counts:
        for name, t in (("row", ty), ("column", tx)):
            s = int(t.max())
            hist = torch.bincount(t + s, minlength=2 * s + 1)  # (2s + 1,)
            expected = N_DOTS / (2 * s + 1)
            v = int((hist - expected).abs().argmax())
            expect(
                bool(((hist > 0.7 * expected) & (hist < 1.3 * expected)).all()),
                f"the {name} shifts are not uniform over [-{s}, {s}]: the shift {v - s} came up "
                f"{int(hist[v])} times in {N_DOTS} draws where about {expected:.0f} were expected (rounding "
                "a continuous draw gives the end values half the weight). Draw integers with "
                "torch.randint(-s, s + 1, ...)",
            )


@checker(
    "9.3",
    "DiffAugment translation",
    hints=(
        "Per image b draw its own ty[b] in [-s_h, s_h] and tx[b] in [-s_w, s_w]: torch.randint(-s, s + 1, "
        "(B,), generator=generator), with s_h = int(H * ratio + 0.5) and s_w = int(W * ratio + 0.5) "
        "(randint's upper end is exclusive). Zero-pad by (s_h, s_w) with F.pad (value 0, not torch.roll); "
        "the shifted image is then the H x W window of the padded one that starts at row s_h - ty[b], "
        "column s_w - tx[b]. Slicing and stacking keep the dtype and the gradient.",
        "The shape of the code:\n"
        "    B, C, H, W = x.shape\n"
        "    sh, sw = int(H * ratio + 0.5), int(W * ratio + 0.5)\n"
        "    ty = torch.randint(..., ..., (B,), generator=generator)\n"
        "    tx = ...\n"
        "    x_pad = F.pad(x, [sw, sw, sh, sh])  # (B, C, H + 2sh, W + 2sw), zeros around\n"
        "    crops = []\n"
        "    for b in range(B):\n"
        "        top, left = ..., ...\n"
        "        crops.append(x_pad[b, :, top : top + H, left : left + W])\n"
        "    return torch.stack(crops)",
    ),
    reference="vitgan_lite.augment:rand_translation",
)
def check_rand_translation(rand_translation: Callable[..., torch.Tensor]) -> None:
    """Check ``rand_translation(x (B, C, H, W), ratio=0.125, generator=None) -> (B, C, H, W)``."""
    # every output must be a zero-filled shift of its input: this names wrong fills and wrap-around.
    # (B, C, H, W), ratio: default 1/8 of a CIFAR-sized image, a non-square one at 1/4, a batch of one
    cases = [((17, 3, 32, 32), 0.125), ((13, 1, 16, 24), 0.25), ((1, 3, 8, 8), 0.25)]
    for seed, (shape, ratio) in enumerate(cases):
        _translation_shifts(rand_translation, shape, ratio, seed)
    _check_draws(rand_translation)
    # dtype: a float64 batch stays float64 (a canvas made with torch.zeros(...) would turn it to float32)
    _translation_shifts(rand_translation, (4, 2, 8, 8), 0.25, 5, torch.float64)
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
    try:
        out = rand_translation(x, ratio=0.25, generator=seeded(3))
    except RuntimeError as e:
        if "numpy" in str(e):
            fail(
                "your translation goes through numpy (x.numpy()), which cuts the autograd graph: the G step "
                "backpropagates through T into G. Use torch operations (F.pad, slicing, torch.stack)"
            )
        raise
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


class _CountingT:
    """``_T`` that counts its calls (to tell 'augment never called' from 'augment on both sides')."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return _T(x)


def _bcr_terms(D: nn.Module, reals: torch.Tensor, fakes: torch.Tensor) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        return D(reals), D(_T(reals)), D(fakes), D(_T(fakes))  # (B,), (B,), (B',), (B',)


def _diagnose_bcr(
    out: torch.Tensor, terms: tuple[torch.Tensor, ...], lr: float, lf: float, calls: int
) -> str:
    r, ra, f, fa = terms
    dr, df = r - ra, f - fa  # (B,), (B',)
    tr, tf = dr.square().mean(), df.square().mean()  # (), ()
    s = torch.sigmoid
    if _close(out, torch.zeros(())):
        if calls >= 3:
            return (
                "the penalty is zero: you apply augment on both sides, D(T(x)) - D(T(x)). bCR compares the "
                "CLEAN logit D(x) with the augmented one D(T(x))"
            )
        return (
            "the penalty is zero: both sides of each difference are the same (D(x) - D(x), or augment on "
            "both sides). Compare the clean D(x) with the augmented D(T(x)), where T = augment"
        )
    candidates = [
        (
            lr * (s(r) - s(ra)).square().mean() + lf * (s(f) - s(fa)).square().mean(),
            "you compare PROBABILITIES sigmoid(D(.)): bCR penalises the difference of LOGITS, "
            "(D(x) - D(T(x)))^2, which stays informative where the sigmoid saturates. Drop the sigmoid",
        ),
        (
            lr * tr,
            "only the real term is there: bCR is BALANCED, add lambda_fake * mean((D(G(z)) - D(T(G(z))))^2)",
        ),
        (lf * tf, "only the fake term is there: add lambda_real * mean((D(x) - D(T(x)))^2)"),
        (-(lr * tr + lf * tf), "the penalty is negative: it is a sum of squares to ADD to D's loss, >= 0"),
        (0.5 * (lr * tr + lf * tf), "the penalty is halved: add the two weighted terms, do not average them"),
        (lf * tr + lr * tf, "lambda_real and lambda_fake are swapped: lambda_real weighs the REAL term"),
        (10.0 * (tr + tf), "the weights are hard-coded to 10: use the lambda_real and lambda_fake arguments"),
        (lr * (tr + tf), "you use lambda_real for both terms: lambda_fake weighs the fake term"),
        (lf * (tr + tf), "you use lambda_fake for both terms: lambda_real weighs the real term"),
        (
            lr**2 * tr + lf**2 * tf,
            "the lambda is inside the square, (lambda * (D(x) - D(T(x))))^2: multiply the mean squared "
            "difference by lambda, lambda * mean((D(x) - D(T(x)))^2)",
        ),
        (
            lr * dr.square().sum() + lf * df.square().sum(),
            "you SUM the squared differences over the batch instead of averaging: use .mean() "
            "(F.mse_loss's default reduction)",
        ),
        (
            lr * dr.norm() + lf * df.norm(),
            "you use the norm ||D(x) - D(T(x))||, not its SQUARE: use .square().mean()",
        ),
        (
            lr * dr.abs().mean() + lf * df.abs().mean(),
            "you use the absolute difference: bCR uses the squared difference, .square().mean()",
        ),
        (
            lr * dr.mean() + lf * df.mean(),
            "the differences are not squared: square the difference before averaging, "
            "mean((D(x) - D(T(x)))^2), or positive and negative differences cancel",
        ),
        (
            (lr + lf) * tr,
            "the fake term is computed on the reals (a copy-paste): the fake term is "
            "mean((D(G(z)) - D(T(G(z))))^2), on the fakes",
        ),
    ]
    if r.shape == f.shape:
        candidates.append(
            (
                lr * (r - fa).square().mean() + lf * (f - ra).square().mean(),
                "you compare a real image with the augmentation of a FAKE one (and vice versa): compare each "
                "image with its OWN augmentation, D(x) - D(T(x)) and D(G(z)) - D(T(G(z)))",
            )
        )
    for value, message in candidates:
        if _close(out, value):
            return message
    return (
        "the value differs from lambda_real * mean((D(x) - D(T(x)))^2) "
        "+ lambda_fake * mean((D(G(z)) - D(T(G(z))))^2)"
    )


def _d_grads(D: nn.Module, loss: torch.Tensor) -> list[torch.Tensor]:
    grads = torch.autograd.grad(loss, list(D.parameters()), allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, D.parameters())]


def _same_grads(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.allclose(x, y, atol=1e-5, rtol=1e-3) for x, y in zip(a, b))


def _diagnose_bcr_grads(
    D: nn.Module, reals: torch.Tensor, fakes: torch.Tensor, lr: float, lf: float, got: list[torch.Tensor]
) -> str:
    """The value is right but D's gradient is not: find which logits were cut from the graph."""
    fakes = fakes.detach()

    def penalty(cut_clean: bool = False, cut_aug: bool = False, cut_term: int | None = None) -> torch.Tensor:
        terms = []
        for k, x in enumerate((reals, fakes)):
            clean, aug = D(x), D(_T(x))  # (B,), (B,)
            clean = clean.detach() if cut_clean or cut_term == k else clean
            aug = aug.detach() if cut_aug or cut_term == k else aug
            terms.append((clean - aug).square().mean())
        return lr * terms[0] + lf * terms[1]

    both = "Both logits must carry gradient into D"
    candidates = [
        (
            penalty(cut_clean=True),
            "the clean logits D(x) are detached (or computed under torch.no_grad()), so only D(T(x)) is "
            f"pulled towards D(x). {both}",
        ),
        (
            penalty(cut_aug=True),
            "the augmented logits D(T(x)) are detached (or computed under torch.no_grad()), so only D(x) is "
            f"pulled towards D(T(x)). {both}",
        ),
        (
            penalty(cut_term=1),
            "the FAKE term carries no gradient into D (computed under torch.no_grad() or detached): detach "
            "only the fake IMAGES, fakes = fakes.detach(); D's logits on them must keep their graph, so that "
            "bCR trains D on fakes too",
        ),
        (
            penalty(cut_term=0),
            "the REAL term carries no gradient into D (computed under torch.no_grad() or detached): D's "
            "logits on x and T(x) must keep their graph",
        ),
    ]
    for loss, message in candidates:
        if _same_grads(got, _d_grads(D, loss)):
            return f"D's gradient is wrong although the value is right: {message}"
    return (
        "D's gradient differs from the reference although the value is right: part of the penalty is "
        "detached or computed under torch.no_grad(). Every D(.) in bCR must carry gradient into D"
    )


@checker(
    "9.4",
    "bCR",
    hints=(
        "Detach the fakes first (fakes = fakes.detach()): bCR trains D only. For each batch compare the "
        "CLEAN logit with the AUGMENTED one, d = D(x) - D(augment(x)) (logits, no sigmoid; augment on one "
        "side only), square it and average over that batch with .mean(). Weigh the real term with "
        "lambda_real and the fake term with lambda_fake, and add: one scalar, no torch.no_grad().",
        "The shape of the code:\n"
        "    fakes = ...\n"
        "    real_term = (discriminator(...) - discriminator(augment(...))).square().mean()\n"
        "    fake_term = ...\n"
        "    return lambda_real * ... + lambda_fake * ...",
    ),
    reference="vitgan_lite.losses:bcr_loss",
)
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
        T = _CountingT()
        try:
            out = bcr_loss(D, reals, fakes, T, lr, lf)
        except RuntimeError as e:
            _elementwise_crash(e, B, Bf, "lambda_real * d_real^2 + lambda_fake * d_fake^2")
            raise
        what = f"bcr_loss on {B} reals and {Bf} fakes"
        out = _expect_scalar(out, what, "add the two weighted terms into one scalar penalty")
        expect(
            T.calls > 0,
            "you never call the `augment` argument: bCR must compare D(x) with D(T(x)) for the T it is "
            "given (the training loop passes its DiffAugment policy), not a T of your own",
        )
        terms = _bcr_terms(D, reals, fakes.detach())
        expected = ref_bcr_loss(D, reals, fakes.detach(), _T, lr, lf).detach()
        if not _close(out.detach(), expected):
            fail(
                f"with {B} reals, {Bf} fakes, lambda_real={lr}, lambda_fake={lf}: "
                f"{_diagnose_bcr(out.detach(), terms, lr, lf, T.calls)}"
            )
        expect(
            out.requires_grad,
            f"the penalty carries no gradient: {_NO_GRAPH}. bCR trains D, so compute D's logits with the "
            "graph on",
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
        got = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in D.parameters()]
        want = _d_grads(D, ref_bcr_loss(D, reals, fakes.detach(), _T, lr, lf))
        if not _same_grads(got, want):
            fail(f"with {B} reals and {Bf} fakes: {_diagnose_bcr_grads(D, reals, fakes, lr, lf, got)}")
    # Defining property: an augmentation that D cannot notice costs nothing
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(9)
        D = _TinyD()
    x = torch.rand(3, 3, 6, 6, generator=seeded(9)) * 2 - 1  # (3, 3, 6, 6)
    out = bcr_loss(D, x, x.flip(0), lambda t: t.clone(), 10.0, 10.0)
    expect_close(out.detach(), torch.zeros(()), "with T = identity the penalty must be 0")


__all__ = ["check_bcr_loss", "check_d_logistic_loss", "check_g_nonsaturating_loss", "check_rand_translation"]
