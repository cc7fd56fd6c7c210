"""The lesson-09 checkers pass the reference and the solution, meet the stubs kindly, reject real mistakes."""

import random

import numpy as np
import torch
import torch.nn.functional as F
from helpers import alternatives_pass, assert_checker_contract, mistakes_are_named

from vitgan_lite import augment, losses
from vitgan_lite.checks import (
    check_bcr_loss,
    check_d_logistic_loss,
    check_g_nonsaturating_loss,
    check_rand_translation,
)

LESSON = "09_losses_and_augmentation"
sp = F.softplus


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
# 9.1: the discriminator's logistic loss


def d_signs_flipped(r, f):
    return sp(r).mean() + sp(-f).mean()


def d_real_fake_swapped(r, f):
    return losses.d_logistic_loss(f, r)


def d_real_sign(r, f):
    return sp(r).mean() + sp(f).mean()


def d_fake_sign(r, f):
    return sp(-r).mean() + sp(-f).mean()


def d_overall_sign(r, f):
    return -(sp(-r).mean() + sp(f).mean())


def d_sum(r, f):
    return sp(-r).sum() + sp(f).sum()


def d_concat_mean(r, f):
    return torch.cat([sp(-r), sp(f)]).mean()


def d_halved(r, f):
    return 0.5 * (sp(-r).mean() + sp(f).mean())


def d_divides_by_real_batch(r, f):
    return (sp(-r).sum() + sp(f).sum()) / r.shape[0]


def d_elementwise_sum(r, f):
    return (sp(-r) + sp(f)).mean()  # right only when B == B'


def d_naive_log_sigmoid(r, f):
    return -torch.log(torch.sigmoid(r)).mean() - torch.log(1 - torch.sigmoid(f)).mean()


def d_naive_softplus(r, f):
    return torch.log1p(torch.exp(-r)).mean() + torch.log1p(torch.exp(f)).mean()


def d_log_eps(r, f):
    eps = 1e-8
    return -torch.log(torch.sigmoid(r) + eps).mean() - torch.log(1 - torch.sigmoid(f) + eps).mean()


def d_bce_on_probs(r, f):
    pr, pf = torch.sigmoid(r), torch.sigmoid(f)
    return F.binary_cross_entropy(pr, torch.ones_like(pr)) + F.binary_cross_entropy(pf, torch.zeros_like(pf))


def d_sigmoid_first(r, f):
    return sp(-torch.sigmoid(r)).mean() + sp(torch.sigmoid(f)).mean()


def d_hinge(r, f):
    return F.relu(1 - r).mean() + F.relu(1 + f).mean()


def d_wasserstein(r, f):
    return -r.mean() + f.mean()


def d_item(r, f):
    return torch.tensor(losses.d_logistic_loss(r, f).item())


def d_python_float(r, f):
    return (sp(-r).mean() + sp(f).mean()).item()


def d_tuple(r, f):
    return sp(-r).mean(), sp(f).mean()


def d_no_mean_real(r, f):
    return sp(-r) + sp(f).mean()


def d_keepdim(r, f):
    return sp(-r).mean(0, keepdim=True) + sp(f).mean(0, keepdim=True)


def d_detach_fake(r, f):
    return sp(-r).mean() + sp(f.detach()).mean()


def d_detach_real(r, f):
    return sp(-r.detach()).mean() + sp(f).mean()


def d_no_grad(r, f):
    with torch.no_grad():
        return sp(-r).mean() + sp(f).mean()


def d_wrong_axis(r, f):
    return sp(-r).mean(dim=1) + sp(f).mean(dim=1)


test_d_loss_mistakes_are_named = mistakes_are_named(
    check_d_logistic_loss,
    [
        (d_signs_flipped, r"signs are flipped"),
        (d_real_fake_swapped, r"signs are flipped.*(swapped|exchanged)"),
        (d_real_sign, r"REAL term has the wrong sign"),
        (d_fake_sign, r"FAKE term has the wrong sign"),
        (d_overall_sign, r"wrong overall sign"),
        (d_sum, r"SUM over the batch"),
        (d_concat_mean, r"concatenated"),
        (d_halved, r"halved"),
        (d_divides_by_real_batch, r"own batch size"),
        (d_elementwise_sum, r"element-wise.*B != B'"),
        (d_naive_log_sigmoid, r"underflow.*softplus"),
        (d_naive_softplus, r"exp.*overflow.*F\.softplus"),
        (d_log_eps, r"clamp|epsilon"),
        (d_bce_on_probs, r"binary_cross_entropy.*clamp|clamp.*binary_cross_entropy"),
        (d_sigmoid_first, r"sigmoid.*already logits|logits.*no sigmoid"),
        (d_hinge, r"hinge"),
        (d_wasserstein, r"Wasserstein"),
        (d_item, r"no gradient.*\.item\(\)"),
        (d_python_float, r"torch\.Tensor, got float.*\.item\(\)"),
        (d_tuple, r"torch\.Tensor, got tuple.*add"),
        (d_no_mean_real, r"scalar.*\.mean\(\)"),
        (d_keepdim, r"scalar.*keepdim"),
        (d_detach_fake, r"no gradient reaches fake_logits.*detached"),
        (d_detach_real, r"no gradient reaches real_logits.*detached"),
        (d_no_grad, r"no gradient.*no_grad"),
        (d_wrong_axis, r"Likely cause: an axis that does not exist"),
    ],
)


def d_logsigmoid(r, f):
    return -F.logsigmoid(r).mean() - F.logsigmoid(-f).mean()


def d_bce_with_logits(r, f):
    bce = F.binary_cross_entropy_with_logits
    return bce(r, torch.ones_like(r)) + bce(f, torch.zeros_like(f))


def d_manual_stable_softplus(r, f):
    def softplus(t):
        return t.clamp(min=0) + torch.log1p(torch.exp(-t.abs()))

    return softplus(-r).sum() / r.numel() + softplus(f).sum() / f.numel()


def d_stacked_float64(r, f):
    terms = torch.stack([sp(-r.double()).mean(), sp(f.double()).mean()])
    return terms.sum()


test_d_loss_alternatives_pass = alternatives_pass(
    check_d_logistic_loss,
    [d_logsigmoid, d_bce_with_logits, d_manual_stable_softplus, d_stacked_float64],
)


# ---------------------------------------------------------------------------------------------------
# 9.2: the generator's non-saturating loss


def g_sign_flipped(f):
    return sp(f).mean()


def g_bce_target_zero(f):
    return F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))


def g_saturating(f):
    return -sp(f).mean()


def g_saturating_log(f):
    return torch.log(1 - torch.sigmoid(f)).mean()


def g_saturating_bce(f):
    return -F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))


def g_overall_sign(f):
    return -sp(-f).mean()


def g_sum(f):
    return sp(-f).sum()


def g_naive_log_sigmoid(f):
    return -torch.log(torch.sigmoid(f)).mean()


def g_naive_softplus(f):
    return torch.log1p(torch.exp(-f)).mean()


def g_log_eps(f):
    return -torch.log(torch.sigmoid(f) + 1e-8).mean()


def g_log_clamp(f):
    return -torch.log(torch.sigmoid(f).clamp(min=1e-6)).mean()


def g_bce_on_probs(f):
    p = torch.sigmoid(f)
    return F.binary_cross_entropy(p, torch.ones_like(p))


def g_hinge(f):
    return -f.mean()


def g_sigmoid_first(f):
    return sp(-torch.sigmoid(f)).mean()


def g_item(f):
    return torch.tensor(sp(-f).mean().item())


def g_python_float(f):
    return sp(-f).mean().item()


def g_no_mean(f):
    return sp(-f)


def g_detach(f):
    return sp(-f.detach()).mean()


def g_no_grad(f):
    with torch.no_grad():
        return sp(-f).mean()


def g_numpy(f):
    return torch.as_tensor(np.logaddexp(0.0, -f.detach().numpy()).mean())


test_g_loss_mistakes_are_named = mistakes_are_named(
    check_g_nonsaturating_loss,
    [
        (g_sign_flipped, r"sign is flipped.*DISCRIMINATOR"),
        (g_bce_target_zero, r"sign is flipped.*DISCRIMINATOR"),
        (g_saturating, r"SATURATING"),
        (g_saturating_log, r"SATURATING"),
        (g_saturating_bce, r"SATURATING"),
        (g_overall_sign, r"wrong overall sign"),
        (g_sum, r"SUM over the batch"),
        (g_naive_log_sigmoid, r"underflow.*softplus"),
        (g_naive_softplus, r"exp.*overflow.*F\.softplus"),
        (g_log_eps, r"clamp|epsilon"),
        (g_log_clamp, r"clamp|epsilon"),
        (g_bce_on_probs, r"binary_cross_entropy.*clamp|clamp.*binary_cross_entropy"),
        (g_hinge, r"hinge"),
        (g_sigmoid_first, r"sigmoid.*already logits|logits.*no sigmoid"),
        (g_item, r"no gradient.*\.item\(\)"),
        (g_python_float, r"torch\.Tensor, got float.*\.item\(\)"),
        (g_no_mean, r"scalar.*\.mean\(\)"),
        (g_detach, r"no gradient.*detach"),
        (g_no_grad, r"no gradient.*no_grad"),
        (g_numpy, r"no gradient.*numpy"),
    ],
)


def g_logsigmoid(f):
    return -F.logsigmoid(f).mean()


def g_bce_with_logits(f):
    return torch.nn.BCEWithLogitsLoss()(f, torch.ones_like(f))


def g_manual_stable(f):
    return ((-f).clamp(min=0) + torch.log1p(torch.exp(-f.abs()))).sum() / len(f)


def g_float64(f):
    return sp(-f.double()).mean()


test_g_loss_alternatives_pass = alternatives_pass(
    check_g_nonsaturating_loss, [g_logsigmoid, g_bce_with_logits, g_manual_stable, g_float64]
)


# ---------------------------------------------------------------------------------------------------
# 9.3: translations that are wrong in one way each


def _bound(size, ratio, rounding):
    v = size * ratio
    return {"half_up": int(v + 0.5), "int": int(v), "round": round(v), "ceil": int(np.ceil(v))}[rounding]


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
    swap_bounds=False,
    use_generator=True,
    rounding="half_up",
    ignore_ratio=False,
    positive=False,
    rows_only=False,
    float_draw=False,
    order="ty_first",
    reverse=False,
):
    B, C, H, W = x.shape
    ratio = 0.125 if ignore_ratio else ratio
    sh, sw = _bound(H, ratio, rounding) + extra, _bound(W, ratio, rounding) + extra
    sw = sh if square else sw
    if swap_bounds:
        sh, sw = sw, sh
    g = generator if use_generator else None
    n = 1 if shared else B
    hi = 0 if exclusive else 1

    def draw(s):
        if positive:
            return torch.randint(0, 2 * s + 1, (n,), generator=g)
        if float_draw:
            return ((torch.rand(n, generator=g) * 2 - 1) * s).round().long()
        return torch.randint(-s, s + hi, (n,), generator=g)

    if order == "tx_first":
        tx = draw(sw)
        ty = draw(sh)
    elif order == "pair":
        t = torch.stack([torch.randint(-sh, sh + 1, (n,), generator=g), torch.zeros(n, dtype=torch.long)], 1)
        t[:, 1] = torch.randint(-sw, sw + 1, (n,), generator=g)
        ty, tx = t[:, 0], t[:, 1]
    elif order == "loop":
        pairs = [(int(torch.randint(-sh, sh + 1, (1,), generator=g)), int(torch.randint(-sw, sw + 1, (1,),
                  generator=g))) for _ in range(n)]  # fmt: skip
        ty, tx = torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs])
    else:
        ty = draw(sh)
        tx = ty if same_axes else draw(sw)
    if rows_only:
        tx = torch.zeros_like(tx)
    ty, tx = ty.expand(B), tx.expand(B)
    if reverse:
        ty, tx = -ty, -tx
    out = []
    for b in range(B):
        t, s = int(ty[b]), int(tx[b])
        if fill == "roll":
            out.append(torch.roll(x[b], (t, s), dims=(1, 2)))
            continue
        if fill == "reflect":
            P, Q = max(abs(t), 1), max(abs(s), 1)
            xp = F.pad(x[b : b + 1], [Q, Q, P, P], mode="reflect")[0]
            out.append(xp[:, P - t : P - t + H, Q - s : Q - s + W])
            continue
        P = max(H, W)
        mode = "replicate" if fill == "edge" else "constant"
        kw = {} if mode == "replicate" else {"value": {"minus_one": -1.0, "one": 1.0}.get(fill, 0.0)}
        xp = F.pad(x[b : b + 1], [P, P, P, P], mode=mode, **kw)[0]  # (C, H + 2P, W + 2P)
        out.append(xp[:, P - t : P - t + H, P - s : P - s + W])
    return torch.stack(out)


def _variant(**kw):
    return lambda x, ratio=0.125, generator=None: _translate(x, ratio, generator, **kw)


def t_in_place(x, ratio=0.125, generator=None):
    out = augment.rand_translation(x, ratio, generator)
    x.mul_(1.0)
    x[0, 0, 0, 0] = 0.5
    return out


def t_per_channel(x, ratio=0.125, generator=None):
    return torch.cat(
        [augment.rand_translation(x[:, c : c + 1], ratio, generator) for c in range(x.shape[1])], 1
    )


def t_float32_canvas(x, ratio=0.125, generator=None):
    B, C, H, W = x.shape
    sh, sw = int(H * ratio + 0.5), int(W * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (B,), generator=generator)
    tx = torch.randint(-sw, sw + 1, (B,), generator=generator)
    canvas = torch.zeros(B, C, H + 2 * sh, W + 2 * sw)  # float32, whatever x's dtype
    canvas[:, :, sh : sh + H, sw : sw + W] = x
    return torch.stack(
        [canvas[b, :, sh - ty[b] : sh - ty[b] + H, sw - tx[b] : sw - tx[b] + W] for b in range(B)]
    )


def t_numpy(x, ratio=0.125, generator=None):
    B, C, H, W = x.shape
    sh, sw = int(H * ratio + 0.5), int(W * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (B,), generator=generator)
    tx = torch.randint(-sw, sw + 1, (B,), generator=generator)
    xp = np.pad(x.numpy(), [(0, 0), (0, 0), (sh, sh), (sw, sw)])
    crops = [xp[b, :, sh - ty[b] : sh - ty[b] + H, sw - tx[b] : sw - tx[b] + W] for b in range(B)]
    return torch.from_numpy(np.stack(crops))


def t_python_random(x, ratio=0.125, generator=None):
    B, C, H, W = x.shape
    sh, sw = int(H * ratio + 0.5), int(W * ratio + 0.5)
    xp = F.pad(x, [sw, sw, sh, sh])
    crops = []
    for b in range(B):
        ty, tx = random.randint(-sh, sh), random.randint(-sw, sw)
        crops.append(xp[b, :, sh - ty : sh - ty + H, sw - tx : sw - tx + W])
    return torch.stack(crops)


def test_loop_variant_with_defaults_passes():
    assert check_rand_translation(_variant())  # the helper itself is right: each mutation below is one bug


test_translation_mistakes_are_named = mistakes_are_named(
    check_rand_translation,
    [
        (_variant(shared=True), r"same shift.*PER SAMPLE"),
        (_variant(same_axes=True), r"row shift and the column shift are always equal"),
        (_variant(fill="minus_one"), r"filled with -1"),
        (_variant(fill="one"), r"filled with 1\b"),
        (_variant(fill="edge"), r"repeats the edge pixels"),
        (_variant(fill="reflect"), r"mirror|reflect"),
        (_variant(fill="roll"), r"wraps around"),
        (_variant(extra=2), r"beyond the bound"),
        (_variant(exclusive=True), r"never reach \+s.*exclusive"),
        (_variant(square=True), r"column shifts.*bound from W"),
        (_variant(swap_bounds=True), r"row bound from H.*column bound from W"),
        (_variant(rounding="int"), r"int\(size \* ratio \+ 0\.5\).*trunc"),
        (_variant(rounding="round"), r"int\(size \* ratio \+ 0\.5\).*round\(\)"),
        (_variant(rounding="ceil"), r"int\(size \* ratio \+ 0\.5\).*ceil"),
        (_variant(ignore_ratio=True), r"ratio argument"),
        (_variant(positive=True), r"never negative.*subtract s|randint\(-s, s \+ 1"),
        (_variant(rows_only=True), r"columns are never shifted"),
        (_variant(float_draw=True), r"not uniform.*torch\.randint"),
        (_variant(use_generator=False), r"same seed gave different shifts.*generator"),
        (t_python_random, r"same seed gave different shifts.*generator"),
        (lambda x, ratio=0.125, generator=None: x.clone(), r"no image was shifted"),
        (
            lambda x, ratio=0.125, generator=None: augment.rand_translation(x, ratio, generator).detach(),
            r"no gradient",
        ),
        (t_numpy, r"numpy.*(gradient|graph)"),
        (t_in_place, r"in place"),
        (t_per_channel, r"channels.*(same|one) shift"),
        (t_float32_canvas, r"float64.*dtype"),
        (lambda x, ratio=0.125, generator=None: torch.zeros_like(x), r"none of the input's pixels"),
        (
            lambda x, ratio=0.125, generator=None: augment.rand_translation(x, ratio, generator)[:, :, 1:],
            r"shape",
        ),
    ],
)


def t_roll_and_mask(x, ratio=0.125, generator=None):
    B, C, H, W = x.shape
    sh, sw = int(H * ratio + 0.5), int(W * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (B,), generator=generator)
    tx = torch.randint(-sw, sw + 1, (B,), generator=generator)
    i, j = torch.arange(H), torch.arange(W)
    out = []
    for b in range(B):
        t, s = int(ty[b]), int(tx[b])
        inside = ((i - t >= 0) & (i - t < H))[:, None] & ((j - s >= 0) & (j - s < W))[None, :]  # (H, W)
        out.append(torch.roll(x[b], (t, s), dims=(1, 2)) * inside.to(x.dtype))
    return torch.stack(out)


def t_rand_floor(x, ratio=0.125, generator=None):
    B, C, H, W = x.shape
    sh, sw = int(H * ratio + 0.5), int(W * ratio + 0.5)
    u = torch.rand(B, 2, generator=generator)
    ty = (u[:, 0] * (2 * sh + 1)).floor().long() - sh
    tx = (u[:, 1] * (2 * sw + 1)).floor().long() - sw
    xp = F.pad(x, [sw, sw, sh, sh])
    return torch.stack([xp[b, :, sh - ty[b] : sh - ty[b] + H, sw - tx[b] : sw - tx[b] + W] for b in range(B)])


def t_diffaugment_original(x, ratio=0.125, generator=None):
    """The DiffAugment repository's own translation (meshgrid, clamp into a 1-pixel zero border, gather)."""
    shift_x, shift_y = int(x.size(2) * ratio + 0.5), int(x.size(3) * ratio + 0.5)
    translation_x = torch.randint(-shift_x, shift_x + 1, size=[x.size(0), 1, 1], generator=generator)
    translation_y = torch.randint(-shift_y, shift_y + 1, size=[x.size(0), 1, 1], generator=generator)
    grid_batch, grid_x, grid_y = torch.meshgrid(
        torch.arange(x.size(0), dtype=torch.long),
        torch.arange(x.size(2), dtype=torch.long),
        torch.arange(x.size(3), dtype=torch.long),
        indexing="ij",
    )
    grid_x = torch.clamp(grid_x + translation_x + 1, 0, x.size(2) + 1)
    grid_y = torch.clamp(grid_y + translation_y + 1, 0, x.size(3) + 1)
    x_pad = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
    return x_pad.permute(0, 2, 3, 1).contiguous()[grid_batch, grid_x, grid_y].permute(0, 3, 1, 2)


test_translation_alternatives_pass = alternatives_pass(
    check_rand_translation,
    [
        _variant(order="tx_first"),
        _variant(order="pair"),
        _variant(order="loop"),
        _variant(reverse=True),
        t_roll_and_mask,
        t_rand_floor,
        t_diffaugment_original,
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
    absolute=False,
    unsquared=False,
):
    if detach:
        fakes = fakes.detach()
    act = torch.sigmoid if probs else (lambda t: t)
    with torch.set_grad_enabled(not no_grad):
        dr = act(D(reals)) - act(D(augment(reals)))  # (B,)
        df = act(D(fakes)) - act(D(augment(fakes)))  # (B',)
    if norm:
        tr, tf = dr.norm(), df.norm()
    elif absolute:
        tr, tf = dr.abs().mean(), df.abs().mean()
    elif unsquared:
        tr, tf = dr.mean(), df.mean()
    else:
        tr, tf = getattr(dr.square(), reduce)(), getattr(df.square(), reduce)()
    if swap:
        lambda_real, lambda_fake = lambda_fake, lambda_real
    return lambda_real * tr + (0.0 if real_only else lambda_fake * tf)


def _bcr_variant(**kw):
    return lambda D, r, f, T, lr=10.0, lf=10.0: _bcr(D, r, f, T, lr, lf, **kw)


def bcr_fake_only(D, r, f, T, lr=10.0, lf=10.0):
    f = f.detach()
    return lf * (D(f) - D(T(f))).square().mean()


def bcr_both_sides(D, r, f, T, lr=10.0, lf=10.0):
    f = f.detach()
    return lr * (D(T(r)) - D(T(r))).square().mean() + lf * (D(T(f)) - D(T(f))).square().mean()


def bcr_no_augment(D, r, f, T, lr=10.0, lf=10.0):
    return _bcr(D, r, f, lambda t: t, lr, lf)


def bcr_own_augment(D, r, f, T, lr=10.0, lf=10.0):
    return _bcr(D, r, f, lambda t: augment.rand_translation(t, 0.25), lr, lf)


def bcr_hard_coded_10(D, r, f, T, lr=10.0, lf=10.0):
    return 10.0 * _bcr(D, r, f, T, 1.0, 1.0)


def bcr_one_lambda(D, r, f, T, lr=10.0, lf=10.0):
    return lr * _bcr(D, r, f, T, 1.0, 1.0)


def bcr_lambda_inside(D, r, f, T, lr=10.0, lf=10.0):
    f = f.detach()
    return (lr * (D(r) - D(T(r)))).square().mean() + (lf * (D(f) - D(T(f)))).square().mean()


def bcr_halved(D, r, f, T, lr=10.0, lf=10.0):
    return 0.5 * _bcr(D, r, f, T, lr, lf)


def bcr_negative(D, r, f, T, lr=10.0, lf=10.0):
    return -_bcr(D, r, f, T, lr, lf)


def bcr_mse_sum(D, r, f, T, lr=10.0, lf=10.0):
    f = f.detach()
    return lr * F.mse_loss(D(r), D(T(r)), reduction="sum") + lf * F.mse_loss(D(f), D(T(f)), reduction="sum")


def bcr_reals_twice(D, r, f, T, lr=10.0, lf=10.0):
    return lr * (D(r) - D(T(r))).square().mean() + lf * (D(r) - D(T(r))).square().mean()


def bcr_cross_pairs(D, r, f, T, lr=10.0, lf=10.0):
    f = f.detach()
    return lr * (D(r) - D(T(f))).square().mean() + lf * (D(f) - D(T(r))).square().mean()


def bcr_detach_clean(D, r, f, T, lr=10.0, lf=10.0):
    f = f.detach()
    return lr * (D(r).detach() - D(T(r))).square().mean() + lf * (D(f).detach() - D(T(f))).square().mean()


def bcr_no_grad_augmented(D, r, f, T, lr=10.0, lf=10.0):
    f = f.detach()
    with torch.no_grad():
        ra, fa = D(T(r)), D(T(f))
    return lr * (D(r) - ra).square().mean() + lf * (D(f) - fa).square().mean()


def bcr_fake_term_no_grad(D, r, f, T, lr=10.0, lf=10.0):
    real_term = (D(r) - D(T(r))).square().mean()
    with torch.no_grad():  # "no gradient may reach G", taken too far: D learns nothing from the fakes
        fake_term = (D(f) - D(T(f))).square().mean()
    return lr * real_term + lf * fake_term


def bcr_item(D, r, f, T, lr=10.0, lf=10.0):
    return _bcr(D, r, f, T, lr, lf).item()


def bcr_tuple(D, r, f, T, lr=10.0, lf=10.0):
    f = f.detach()
    return lr * (D(r) - D(T(r))).square().mean(), lf * (D(f) - D(T(f))).square().mean()


def bcr_no_mean(D, r, f, T, lr=10.0, lf=10.0):
    f = f.detach()
    return lr * (D(r) - D(T(r))).square() + lf * (D(f) - D(T(f))).square()  # (B,) when B == B'


test_bcr_mistakes_are_named = mistakes_are_named(
    check_bcr_loss,
    [
        (_bcr_variant(probs=True), r"PROBABILITIES.*LOGITS"),
        (_bcr_variant(real_only=True), r"only the real term.*lambda_fake"),
        (bcr_fake_only, r"only the fake term.*lambda_real"),
        (_bcr_variant(detach=False), r"reached the GENERATOR.*detach"),
        (_bcr_variant(reduce="sum"), r"SUM the squared differences"),
        (bcr_mse_sum, r"SUM the squared differences"),
        (_bcr_variant(swap=True), r"swapped"),
        (_bcr_variant(norm=True), r"norm.*not its SQUARE"),
        (_bcr_variant(absolute=True), r"absolute difference"),
        (_bcr_variant(unsquared=True), r"not squared|square the difference"),
        (_bcr_variant(no_grad=True), r"no gradient.*no_grad"),
        (bcr_hard_coded_10, r"hard-coded to 10"),
        (bcr_one_lambda, r"lambda_real for both|one lambda"),
        (bcr_lambda_inside, r"lambda.*inside the square"),
        (bcr_halved, r"halved"),
        (bcr_negative, r"negative"),
        (bcr_no_augment, r"never call.*augment"),
        (bcr_own_augment, r"never call.*augment"),
        (bcr_both_sides, r"both sides"),
        (bcr_reals_twice, r"fake term.*reals"),
        (bcr_cross_pairs, r"its OWN augmentation"),
        (bcr_detach_clean, r"gradient.*D\(x\).*detach"),
        (bcr_no_grad_augmented, r"gradient.*D\(T\(x\)\).*(no_grad|detach)"),
        (bcr_fake_term_no_grad, r"FAKE term.*no gradient.*fakes\.detach\(\)"),
        (bcr_item, r"torch\.Tensor, got float.*\.item\(\)"),
        (bcr_tuple, r"torch\.Tensor, got tuple.*add"),
        (bcr_no_mean, r"scalar.*\.mean\(\)"),
    ],
)


def test_bcr_variant_with_defaults_passes():
    assert check_bcr_loss(_bcr_variant())


def bcr_mse(D, r, f, T, lr=10.0, lf=10.0):
    f = f.detach()
    return lr * F.mse_loss(D(r), D(T(r))) + lf * F.mse_loss(D(f), D(T(f)))


def bcr_fakes_first_one_augment_call(D, r, f, T, lr=10.0, lf=10.0):
    B = r.shape[0]
    both = torch.cat([r, f.data])  # .data detaches the fakes too
    d, da = D(both), D(T(both))
    sq = (d - da) ** 2
    return lf * sq[B:].mean() + lr * sq[:B].mean()


def bcr_penalty_helper(D, r, f, T, lr=10.0, lf=10.0):
    f = f.detach()
    return losses.bcr_penalty(D(r), D(T(r)), D(f), D(T(f)), lambda_real=lr, lambda_fake=lf)


test_bcr_alternatives_pass = alternatives_pass(
    check_bcr_loss, [bcr_mse, bcr_fakes_first_one_augment_call, bcr_penalty_helper, _bcr_variant()]
)
