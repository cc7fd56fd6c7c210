"""The lesson-10/11 checkers pass the reference and the solutions, meet the stubs kindly, reject mistakes."""

import pytest
import torch
from helpers import assert_not_implemented, assert_rejects, exercise, solution

from vitgan_lite.checks import check_d_step, check_ema_update, check_frechet_distance
from vitgan_lite.losses import bcr_penalty, d_logistic_loss
from vitgan_lite.metrics import frechet_distance
from vitgan_lite.train import d_step, ema_update

L10, L12 = "10_training_loop", "12_cifar10_on_a_gpu"


def test_reference_and_solutions_pass(capsys):
    assert check_ema_update(ema_update)
    assert check_frechet_distance(frechet_distance)
    assert check_ema_update(solution(L10)["ema_update"])
    assert check_d_step(d_step) and check_d_step(solution(L10)["d_step"])
    assert check_frechet_distance(solution(L12)["frechet_distance"])
    assert "all checks passed" in capsys.readouterr().out


def test_stubs_are_not_implemented_yet():
    assert_not_implemented(check_ema_update, exercise(L10)["ema_update"])
    assert_not_implemented(check_d_step, exercise(L10)["d_step"])
    assert_not_implemented(check_frechet_distance, exercise(L12)["frechet_distance"])


# ---- Exercise 10.1: wrong EMA updates -----------------------------------------------------------------


@torch.no_grad()
def ema_wrong_side(ema, model, decay):
    for e, p in zip(ema.parameters(), model.parameters()):
        e.copy_((1 - decay) * e + decay * p)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def ema_records_grad(ema, model, decay):  # no torch.no_grad()
    for e, p in zip(ema.parameters(), model.parameters()):
        e.copy_(decay * e + (1 - decay) * p)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


@torch.no_grad()
def ema_no_buffers(ema, model, decay):
    for e, p in zip(ema.parameters(), model.parameters()):
        e.mul_(decay).add_(p, alpha=1 - decay)


@torch.no_grad()
def ema_buffers_averaged(ema, model, decay):
    for e, p in zip(ema.parameters(), model.parameters()):
        e.mul_(decay).add_(p, alpha=1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.mul_(decay).add_(b, alpha=1 - decay)


@torch.no_grad()
def ema_twice_itself(ema, model, decay):
    for e, p in zip(ema.parameters(), ema.parameters()):  # aliasing: e is scaled, then e added to itself
        e.mul_(decay).add_(p, alpha=1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


@torch.no_grad()
def ema_twice_itself_formula(ema, model, decay):
    for e, p in zip(ema.parameters(), ema.parameters()):  # decay * e + (1 - decay) * e == e
        e.copy_(decay * e + (1 - decay) * p)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


@torch.no_grad()
def ema_exhausted_generator(ema, model, decay):
    params = model.parameters()
    print("tracking", len(list(params)), "parameters")  # uses the one-shot generator up
    for e, p in zip(ema.parameters(), params):  # an empty zip
        e.mul_(decay).add_(p, alpha=1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


@torch.no_grad()
def ema_rebinds_local(ema, model, decay):
    for e, p in zip(ema.parameters(), model.parameters()):
        e = decay * e + (1 - decay) * p  # noqa: PLW2901 -- the mistake: a new local tensor
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


@torch.no_grad()
def ema_top_level_only(ema, model, decay):
    for e, p in zip(ema.parameters(recurse=False), model.parameters(recurse=False)):
        e.mul_(decay).add_(p, alpha=1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


@torch.no_grad()
def ema_moves_model(ema, model, decay):
    for e, p in zip(ema.parameters(), model.parameters()):
        e.mul_(decay).add_(p, alpha=1 - decay)
        p.copy_(e)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


@pytest.mark.parametrize(
    "wrong,match",
    [
        (ema_wrong_side, r"decay is applied to the wrong side"),
        (ema_records_grad, r"recorded by autograd.*no_grad"),
        (ema_no_buffers, r"buffers not copied"),
        (ema_buffers_averaged, r"buffers are copied.*not averaged"),
        (ema_twice_itself, r"never reads the model.*ema.parameters\(\) twice"),
        (ema_twice_itself_formula, r"tracks no parameters.*ema.parameters\(\) twice"),
        (ema_exhausted_generator, r"tracks no parameters.*one-shot generator"),
        (ema_rebinds_local, r"tracks no parameters.*in place"),
        (ema_top_level_only, r"never averaged.*child modules"),
        (ema_moves_model, r"changed the MODEL"),
    ],
)
def test_ema_mistakes_are_named(wrong, match):
    assert_rejects(check_ema_update, wrong, match)


def test_ema_outside_no_grad_on_a_trainable_copy_is_named():
    """A requires-grad ema makes the in-place update raise; the checker names the missing no_grad."""

    def inplace_no_guard(ema, model, decay):
        for e, p in zip(ema.parameters(), model.parameters()):
            e.mul_(decay).add_(p.detach(), alpha=1 - decay)  # fails on a leaf that requires grad
        for e, b in zip(ema.buffers(), model.buffers()):
            e.copy_(b)

    # on the frozen ema of the first cases this version is right; the trainable-copy case catches it
    assert_rejects(check_ema_update, inplace_no_guard, r"outside torch\.no_grad")


# ---- Exercise 10.2: wrong D steps ---------------------------------------------------------------------


def _make_d_step(
    *, drop_bcr=False, no_aug_logistic=False, grad_to_g=False, swap_order=False, bcr_pairs=False, own_z=False,
    no_aug=False, no_means=False, no_zero_grad=False, attached=False,
):  # fmt: skip
    """The solution's D step with one realistic mistake switched on."""

    def step(G, D, reals, z, augment, opt_d, lambda_real=10.0, lambda_fake=10.0):
        B = reals.shape[0]
        if own_z:  # draws its own z instead of using the caller's
            z = torch.randn(B, G.latent_dim)
        with torch.enable_grad() if grad_to_g else torch.no_grad():
            fakes = G(z)
        T = (lambda x: x) if no_aug else augment
        if swap_order:  # fakes augmented first: other random draws for each
            fakes_aug = T(fakes)
            reals_aug = T(reals)
        else:
            reals_aug = T(reals)
            fakes_aug = T(fakes)
        real_aug, fake_aug, real, fake = D(torch.cat([reals_aug, fakes_aug, reals, fakes])).split(B)
        d_adv = d_logistic_loss(real, fake) if no_aug_logistic else d_logistic_loss(real_aug, fake_aug)
        if bcr_pairs:  # real paired with the fake's augmentation
            bcr = bcr_penalty(real, fake_aug, fake, real_aug, lambda_real, lambda_fake)
        else:
            bcr = bcr_penalty(real, real_aug, fake, fake_aug, lambda_real, lambda_fake)
        d_loss = d_adv + bcr
        if not no_zero_grad:
            opt_d.zero_grad()
        (d_adv if drop_bcr else d_loss).backward()
        opt_d.step()
        means = (real_aug.sum(), fake_aug.sum()) if no_means else (real_aug.mean(), fake_aug.mean())
        if attached:  # the losses returned with their graphs
            return {"d_loss": d_loss, "d_adv": d_adv, "bcr": bcr, "d_real": means[0], "d_fake": means[1]}
        return {
            "d_loss": d_loss.detach(),
            "d_adv": d_adv.detach(),
            "bcr": bcr.detach(),
            "d_real": means[0].detach(),
            "d_fake": means[1].detach(),
        }

    return step


@pytest.mark.parametrize(
    "wrong,match",
    [
        (_make_d_step(drop_bcr=True), r"bCR was computed and then dropped"),
        (_make_d_step(no_aug=True), r"never saw augmented images"),
        (_make_d_step(own_z=True), r"G never saw the z you were given"),
        (_make_d_step(no_zero_grad=True), r"previous step were added.*zero_grad"),
        (_make_d_step(attached=True), r"still carries its autograd graph.*detach"),
        (_make_d_step(no_means=True), r"returned 'd_real' differs.*MEAN logits"),
        (_make_d_step(grad_to_g=True), r"gradient reached G.*no_grad"),
        (_make_d_step(no_aug_logistic=True), r"logistic loss uses D\(T\(x\)\)"),
        (_make_d_step(bcr_pairs=True), r"bCR pairs D\(x\) with D\(T\(x\)\)"),
        (lambda *a, **k: torch.tensor(1.0), r"should return a dict"),
        (lambda *a: {"d_loss": torch.tensor(1.0)}, r"should return a dict with the keys d_loss, d_adv"),
    ],
)
def test_d_step_mistakes_are_named(wrong, match):
    assert_rejects(check_d_step, wrong, match)


# ---- Exercise 12.1: wrong Frechet distances -----------------------------------------------------------


def _sqrtm(m):
    vals, vecs = torch.linalg.eigh(m)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def _tr_covmean(s1, s2):
    return torch.linalg.eigvals(s1 @ s2).real.clamp(min=0).sqrt().sum()


def fd_no_factor_2(mu1, s1, mu2, s2):
    d = mu1 - mu2
    return float(d @ d + s1.trace() + s2.trace() - _tr_covmean(s1, s2))


def fd_elementwise(mu1, s1, mu2, s2):
    d = mu1 - mu2
    return float(d @ d + s1.trace() + s2.trace() - 2 * (s1 * s2).sqrt().trace())


def fd_elementwise_of_product(mu1, s1, mu2, s2):
    d = mu1 - mu2
    return float(d @ d + s1.trace() + s2.trace() - 2 * torch.nan_to_num((s1 @ s2).sqrt()).trace())


def fd_product_of_roots(mu1, s1, mu2, s2):
    d = mu1 - mu2
    return float(d @ d + s1.trace() + s2.trace() - 2 * (_sqrtm(s1) @ _sqrtm(s2)).trace())


def fd_norm(mu1, s1, mu2, s2):
    return float((mu1 - mu2).norm() + s1.trace() + s2.trace() - 2 * _tr_covmean(s1, s2))


def fd_plus(mu1, s1, mu2, s2):
    d = mu1 - mu2
    return float(d @ d + s1.trace() + s2.trace() + 2 * _tr_covmean(s1, s2))


def fd_asymmetric(mu1, s1, mu2, s2):  # an unknown mistake: the generic message with the hand value
    return frechet_distance(mu1, s1, mu2, s2) + float((mu1 - mu2).sum()) * 1e-3


@pytest.mark.parametrize(
    "wrong,match",
    [
        (fd_no_factor_2, r"missing its factor 2"),
        (fd_elementwise, r"ELEMENTWISE product.*MATRIX square root"),
        (fd_elementwise_of_product, r"elementwise square root of sigma1 @ sigma2.*EIGENVALUES"),
        (fd_product_of_roots, r"only when the two covariances commute"),
        (fd_norm, r"not the SQUARED norm"),
        (fd_plus, r"must SUBTRACT"),
        (fd_asymmetric, r"should give 4\.0"),
        (lambda *a: "4.0", r"should return a float"),
    ],
)
def test_frechet_mistakes_are_named(wrong, match):
    assert_rejects(check_frechet_distance, wrong, match)


def test_diagonal_covariances_cannot_tell_the_elementwise_root_apart():
    """Why the checker uses correlated covariances: on N(0, I) vs N(1, 4I) the mistake gives 4.0 too."""
    eye = torch.eye(2, dtype=torch.float64)
    args = (torch.zeros(2, dtype=torch.float64), eye, torch.ones(2, dtype=torch.float64), 4 * eye)
    assert fd_elementwise(*args) == pytest.approx(4.0) == frechet_distance(*args)


def test_d_step_correct_alternatives_pass():
    # augmenting the fakes before the reals is just as right: the checker keys T's draws to the batch
    assert check_d_step(_make_d_step(swap_order=True))
