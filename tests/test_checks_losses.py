"""The lesson-09 checkers pass the reference and the solution, meet the stubs kindly, reject real mistakes."""

import torch
import torch.nn.functional as F
from helpers import assert_checker_contract, assert_rejects, mistakes_are_named

from vitgan_lite import augment, losses
from vitgan_lite.checks import (
    check_bcr_loss,
    check_d_logistic_loss,
    check_g_nonsaturating_loss,
    check_rand_translation,
)

LESSON = "09_losses_and_augmentation"


def test_checker_contract(capsys):
    assert_checker_contract(
        LESSON,
        {
            "d_logistic_loss": (check_d_logistic_loss, losses.d_logistic_loss),
            "g_nonsaturating_loss": (check_g_nonsaturating_loss, losses.g_nonsaturating_loss),
            "rand_translation": (check_rand_translation, augment.rand_translation),
            "bcr_loss": (check_bcr_loss, losses.bcr_loss),
        },
        capsys,
    )


# ---------------------------------------------------------------------------------------------------
# 9.1 and 9.2


test_d_loss_mistakes_are_named = mistakes_are_named(
    check_d_logistic_loss,
    [
        (lambda r, f: F.softplus(r).mean() + F.softplus(-f).mean(), r"signs are flipped"),
        (
            lambda r, f: F.softplus(r).mean() + F.softplus(f).mean(),
            r"one of the two terms has the wrong sign",
        ),
        (
            lambda r, f: F.softplus(-r).mean() + F.softplus(-f).mean(),
            r"one of the two terms has the wrong sign",
        ),
        (lambda r, f: F.softplus(-r).sum() + F.softplus(f).sum(), r"SUM over the batch"),
        (lambda r, f: torch.cat([F.softplus(-r), F.softplus(f)]).mean(), r"concatenated"),
        (
            lambda r, f: -torch.log(torch.sigmoid(r)).mean() - torch.log(1 - torch.sigmoid(f)).mean(),
            r"underflow",
        ),
        (lambda r, f: torch.tensor(losses.d_logistic_loss(r, f).item()), r"no gradient"),
        (lambda r, f: F.softplus(-r) + F.softplus(f).mean(), r"scalar"),
    ],
)


test_g_loss_mistakes_are_named = mistakes_are_named(
    check_g_nonsaturating_loss,
    [
        (lambda f: F.softplus(f).mean(), r"sign is flipped.*DISCRIMINATOR"),
        (lambda f: -F.softplus(f).mean(), r"SATURATING"),
        (lambda f: torch.log(1 - torch.sigmoid(f)).mean(), r"SATURATING"),
        (lambda f: F.softplus(-f).sum(), r"SUM over the batch"),
        (lambda f: -torch.log(torch.sigmoid(f)).mean(), r"underflow"),
        (lambda f: torch.tensor(F.softplus(-f).mean().item()), r"no gradient"),
    ],
)


# ---------------------------------------------------------------------------------------------------
# 9.3: translations that are wrong in one way each


def _translate(
    x,
    ratio=0.125,
    generator=None,
    *,
    fill="zero",
    shared=False,
    same_axes=False,
    extra=0,
    exclusive=False,
    square=False,
    use_generator=True,
):
    B, C, H, W = x.shape
    sh = int(H * ratio + 0.5) + extra
    sw = sh if square else int(W * ratio + 0.5) + extra
    g = generator if use_generator else None
    n = 1 if shared else B
    hi = 0 if exclusive else 1
    ty = torch.randint(-sh, sh + hi, (n,), generator=g).expand(B)  # (B,)
    tx = ty if same_axes else torch.randint(-sw, sw + hi, (n,), generator=g).expand(B)  # (B,)
    out = []
    for b in range(B):
        t, s = int(ty[b]), int(tx[b])
        if fill == "roll":
            out.append(torch.roll(x[b], (t, s), dims=(1, 2)))
            continue
        P = max(H, W)
        mode = "replicate" if fill == "edge" else "constant"
        kw = {} if mode == "replicate" else {"value": -1.0 if fill == "minus_one" else 0.0}
        xp = F.pad(x[b : b + 1], [P, P, P, P], mode=mode, **kw)[0]  # (C, H + 2P, W + 2P)
        out.append(xp[:, P - t : P - t + H, P - s : P - s + W])
    return torch.stack(out)


def _variant(**kw):
    return lambda x, ratio=0.125, generator=None: _translate(x, ratio, generator, **kw)


def _in_place(x, ratio=0.125, generator=None):
    out = augment.rand_translation(x, ratio, generator)
    x.mul_(1.0)
    x[0, 0, 0, 0] = 0.5
    return out


def test_loop_variant_with_defaults_passes():
    assert check_rand_translation(_variant())  # the helper itself is right: each mutation below is one bug


test_translation_mistakes_are_named = mistakes_are_named(
    check_rand_translation,
    [
        (_variant(shared=True), r"same shift.*PER SAMPLE"),
        (_variant(same_axes=True), r"row shift and the column shift are always equal"),
        (_variant(fill="minus_one"), r"filled with -1"),
        (_variant(fill="edge"), r"repeats the edge pixels"),
        (_variant(fill="roll"), r"wraps around"),
        (_variant(extra=2), r"beyond the bound"),
        (_variant(exclusive=True), r"should cover.*exclusive"),
        (_variant(square=True), r"column shifts should cover|bound from W"),
        (_variant(use_generator=False), r"same seed gave different shifts.*generator"),
        (lambda x, ratio=0.125, generator=None: x.clone(), r"no image was shifted"),
        (
            lambda x, ratio=0.125, generator=None: augment.rand_translation(x, ratio, generator).detach(),
            r"no gradient",
        ),
        (_in_place, r"in place"),
        (lambda x, ratio=0.125, generator=None: torch.zeros_like(x), r"none of the input's pixels"),
        (
            lambda x, ratio=0.125, generator=None: augment.rand_translation(x, ratio, generator)[:, :, 1:],
            r"shape",
        ),
    ],
)


# ---------------------------------------------------------------------------------------------------
# 9.4: bCR variants


def _bcr(
    D,
    reals,
    fakes,
    augment,
    lambda_real=10.0,
    lambda_fake=10.0,
    *,
    probs=False,
    real_only=False,
    detach=True,
    reduce="mean",
    swap=False,
    norm=False,
    no_grad=False,
):
    if detach:
        fakes = fakes.detach()
    act = torch.sigmoid if probs else (lambda t: t)
    with torch.set_grad_enabled(not no_grad):
        dr = act(D(reals)) - act(D(augment(reals)))  # (B,)
        df = act(D(fakes)) - act(D(augment(fakes)))  # (B',)
    if norm:
        tr, tf = dr.norm(), df.norm()
    else:
        tr, tf = getattr(dr.square(), reduce)(), getattr(df.square(), reduce)()
    if swap:
        lambda_real, lambda_fake = lambda_fake, lambda_real
    return lambda_real * tr + (0.0 if real_only else lambda_fake * tf)


def _bcr_variant(**kw):
    return lambda D, r, f, T, lr=10.0, lf=10.0: _bcr(D, r, f, T, lr, lf, **kw)


def test_bcr_variant_with_defaults_passes():
    assert check_bcr_loss(_bcr_variant())


test_bcr_mistakes_are_named = mistakes_are_named(
    check_bcr_loss,
    [
        (_bcr_variant(probs=True), r"PROBABILITIES.*LOGITS"),
        (_bcr_variant(real_only=True), r"only the real term.*lambda_fake"),
        (_bcr_variant(detach=False), r"reached the GENERATOR.*detach"),
        (_bcr_variant(reduce="sum"), r"SUM the squared differences"),
        (_bcr_variant(swap=True), r"swapped"),
        (_bcr_variant(norm=True), r"norm.*not its SQUARE"),
        (_bcr_variant(no_grad=True), r"no gradient"),
        (lambda D, r, f, T, lr=10.0, lf=10.0: 10.0 * _bcr(D, r, f, T, 1.0, 1.0), r"hard-coded to 10"),
        (lambda D, r, f, T, lr=10.0, lf=10.0: _bcr(D, r, f, lambda t: t, lr, lf), r"penalty is zero"),
    ],
)


def test_a_detached_half_of_the_d_loss_is_named():
    def d_detached(real, fake):
        return F.softplus(-real).mean() + F.softplus(fake.detach()).mean()

    assert_rejects(check_d_logistic_loss, d_detached, r"no gradient reaches fake_logits.*detached")
