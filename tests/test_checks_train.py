"""The lesson-10/12 checkers pass the reference and the solutions, meet the stubs kindly, name each
realistic mistake (``mistakes_are_named``) and accept each correct alternative (``alternatives_pass``)."""

import math

import numpy as np
import pytest
import torch
from helpers import alternatives_pass, assert_checker_contract, mistakes_are_named

from vitgan_lite.augment import diff_augment
from vitgan_lite.checks import check_d_step, check_ema_update, check_frechet_distance, reveal
from vitgan_lite.losses import bcr_penalty, d_logistic_loss
from vitgan_lite.metrics import frechet_distance
from vitgan_lite.train import d_step, ema_update

L10, L12 = "10_training_loop", "12_cifar10_on_a_gpu"


def test_checker_contract(capsys):
    assert_checker_contract(
        L10, {"ema_update": (check_ema_update, ema_update), "d_step": (check_d_step, d_step)}, capsys
    )
    assert_checker_contract(L12, {"frechet_distance": (check_frechet_distance, frechet_distance)}, capsys)


@pytest.mark.parametrize("exercise", ["10.1", "10.2", "12.1"])
def test_hints_and_reference_resolve(exercise, capsys):
    from vitgan_lite.checks._core import EXERCISES

    record = EXERCISES[exercise]
    assert len(record.hints) == 2 and "..." in record.hints[1]
    assert "def " in reveal(exercise, force=True)


# ---- Exercise 10.1: wrong EMA updates -----------------------------------------------------------------


@torch.no_grad()
def ema_wrong_side(ema, model, decay):
    for e, p in zip(ema.parameters(), model.parameters()):
        e.copy_((1 - decay) * e + decay * p)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


@torch.no_grad()
def ema_lerp_by_decay(ema, model, decay):  # lerp's weight is the step towards p: 1 - decay, not decay
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def ema_records_grad(ema, model, decay):  # no torch.no_grad()
    for e, p in zip(ema.parameters(), model.parameters()):
        e.copy_(decay * e + (1 - decay) * p)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def ema_inplace_no_guard(ema, model, decay):  # right on a frozen ema, refused on one that requires grad
    for e, p in zip(ema.parameters(), model.parameters()):
        e.mul_(decay).add_(p.detach(), alpha=1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


@torch.no_grad()
def ema_no_buffers(ema, model, decay):
    for e, p in zip(ema.parameters(), model.parameters()):
        e.mul_(decay).add_(p, alpha=1 - decay)


@torch.no_grad()
def ema_top_level_buffers(ema, model, decay):
    for e, p in zip(ema.parameters(), model.parameters()):
        e.mul_(decay).add_(p, alpha=1 - decay)
    for e, b in zip(ema.buffers(recurse=False), model.buffers(recurse=False)):
        e.copy_(b)


@torch.no_grad()
def ema_buffers_averaged(ema, model, decay):
    for e, p in zip(ema.parameters(), model.parameters()):
        e.mul_(decay).add_(p, alpha=1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.mul_(decay).add_(b, alpha=1 - decay)


@torch.no_grad()
def ema_state_dict_averaged(ema, model, decay):  # averages the buffers too
    target = ema.state_dict()
    for k, v in model.state_dict().items():
        target[k].mul_(decay).add_(v, alpha=1 - decay)


@torch.no_grad()
def ema_buffers_aliased(ema, model, decay):
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.data = b  # the ema's buffer now IS the model's


@torch.no_grad()
def ema_load_state_dict_after(ema, model, decay):  # meant to copy the buffers: copies the parameters too
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - decay)
    ema.load_state_dict(model.state_dict())


@torch.no_grad()
def ema_copies_model(ema, model, decay):
    for e, p in zip(ema.parameters(), model.parameters()):
        e.copy_(p)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


@torch.no_grad()
def ema_no_one_minus(ema, model, decay):
    for e, p in zip(ema.parameters(), model.parameters()):
        e.mul_(decay).add_(p)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


@torch.no_grad()
def ema_moves_away(ema, model, decay):
    for e, p in zip(ema.parameters(), model.parameters()):
        e.add_((1 - decay) * (e - p))
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


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
def ema_out_of_place_lerp(ema, model, decay):
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp(p, 1 - decay)  # returns a new tensor, thrown away
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


@torch.no_grad()
def ema_only_trainable(ema, model, decay):  # the EMA is frozen: no ema parameter requires grad
    for e, p in zip(ema.parameters(), model.parameters()):
        if e.requires_grad:
            e.lerp_(p, 1 - decay)
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


@torch.no_grad()
def ema_buffers_copied_backwards(ema, model, decay):
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        b.copy_(e)


@torch.no_grad()
def ema_replaces_parameters(ema, model, decay):
    for name, p in model.named_parameters():
        *path, leaf = name.split(".")
        owner = ema.get_submodule(".".join(path))
        owner._parameters[leaf] = torch.nn.Parameter(decay * owner._parameters[leaf] + (1 - decay) * p)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


@torch.no_grad()
def ema_buffers_paired_with_parameters(ema, model, decay):
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - decay)
    for e, b in zip(ema.buffers(), model.parameters()):  # the wrong list: shapes differ
        e.copy_(b)


test_ema_mistakes_are_named = mistakes_are_named(
    check_ema_update,
    [
        (ema_wrong_side, r"decay is applied to the wrong side"),
        (ema_lerp_by_decay, r"decay is applied to the wrong side.*lerp_\(p, 1 - decay\)"),
        (ema_records_grad, r"recorded by autograd.*no_grad"),
        (ema_inplace_no_guard, r"outside torch\.no_grad.*@torch\.no_grad"),
        (ema_no_buffers, r"buffers not copied"),
        (ema_top_level_buffers, r"buffers not copied.*'inner\.u'.*child modules"),
        (ema_buffers_averaged, r"buffers are copied.*not averaged"),
        (ema_state_dict_averaged, r"buffers are copied.*not averaged"),
        (ema_buffers_aliased, r"shares memory with the model.*copy_"),
        (ema_load_state_dict_after, r"decay is ignored.*load_state_dict.*PARAMETERS too"),
        (ema_copies_model, r"became the model's: decay is ignored"),
        (ema_no_one_minus, r"missing its factor \(1 - decay\)"),
        (ema_moves_away, r"moved AWAY from the model"),
        (ema_twice_itself, r"never reads the model.*ema.parameters\(\) twice"),
        (ema_twice_itself_formula, r"tracks no parameters.*ema.parameters\(\) twice"),
        (ema_exhausted_generator, r"tracks no parameters.*one-shot generator"),
        (ema_rebinds_local, r"tracks no parameters.*rebinding a local name"),
        (ema_out_of_place_lerp, r"tracks no parameters.*thrown away.*lerp_"),
        (ema_only_trainable, r"tracks no parameters.*requires_grad.*frozen"),
        (ema_top_level_only, r"never averaged.*child modules"),
        (ema_moves_model, r"changed the MODEL"),
        (ema_buffers_copied_backwards, r"changed the MODEL.*the wrong way round"),
        (ema_replaces_parameters, r"replaced by new objects.*in place"),
        (ema_buffers_paired_with_parameters, r"your code raised.*Likely cause: an ema tensor paired with a"),
    ],
)


@torch.no_grad()
def ema_by_name(ema, model, decay):
    ema_params = dict(ema.named_parameters())
    for name, p in model.named_parameters():
        ema_params[name].mul_(decay).add_((1 - decay) * p)
    ema_buffers = dict(ema.named_buffers())
    for name, b in model.named_buffers():
        ema_buffers[name].copy_(b)


def ema_through_data(ema, model, decay):  # .data instead of no_grad: old style, not recorded either
    for e, p in zip(ema.parameters(), model.parameters()):
        e.data.mul_(decay).add_(p.data, alpha=1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.data.copy_(b.data)


@torch.no_grad()
def ema_foreach(ema, model, decay):
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - decay)
    torch._foreach_copy_(list(ema.buffers()), list(model.buffers()))


@torch.no_grad()
def ema_load_state_dict(ema, model, decay):  # load_state_dict copies in place: the objects stay
    params = dict(model.named_parameters())
    state = {
        k: decay * v + (1 - decay) * params[k] if k in params else v for k, v in ema.state_dict().items()
    }
    state.update({k: b for k, b in model.named_buffers()})
    ema.load_state_dict(state)


@torch.no_grad()
def ema_subtract_gap(ema, model, decay):
    for e, p in zip(ema.parameters(), model.parameters()):
        e.sub_((1 - decay) * (e - p))
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


test_ema_alternatives_pass = alternatives_pass(
    check_ema_update, [ema_by_name, ema_through_data, ema_foreach, ema_load_state_dict, ema_subtract_gap]
)


# ---- Exercise 10.2: wrong D steps ---------------------------------------------------------------------


def _make_d_step(
    *, drop_bcr=False, no_aug_logistic=False, grad_to_g=False, swap_order=False, bcr_pairs=False, own_z=False,
    no_aug=False, no_means=False, no_zero_grad=False, attached=False, zero_grad_late=False,
    zero_grad_end=False, no_step=False, step_twice=False, own_opt=False, items=False, clean_means=False,
    loss_is_adv=False,
    lambdas_swapped=False, lambdas_default=False, clean_detached=False, logistic_swapped=False,
    augment_together=False, augment_each_use=False, fakes_not_augmented=False, split_four=False,
    backward_twice=False, retain_twice=False, four_calls=False, detach_fakes=False, d_zero_grad=False,
    bcr_sides=False, means_after=False, fake_half_missing=False, vector_means=False, augment_twice=False,
    own_diff_augment=False,
):  # fmt: skip
    """The solution's D step with one switch flipped: a realistic mistake, or a correct variant."""

    def step(G, D, reals, z, augment, opt_d, lambda_real=10.0, lambda_fake=10.0):
        B = reals.shape[0]
        if own_z:  # draws its own z instead of using the caller's
            z = torch.randn(B, G.latent_dim)
        if detach_fakes:
            fakes = G(z).detach()
        else:
            with torch.enable_grad() if grad_to_g else torch.no_grad():
                fakes = G(z)
        T = (lambda x: x) if no_aug else augment
        if own_diff_augment:  # the package's DiffAugment instead of the augment given
            T = diff_augment
        if augment_together:
            reals_aug, fakes_aug = T(torch.cat([reals, fakes])).split(B)
        elif swap_order:  # fakes augmented first: the other order of the two calls
            fakes_aug = T(fakes)
            reals_aug = T(reals)
        elif fakes_not_augmented:
            reals_aug, fakes_aug = T(reals), fakes
        elif augment_twice:
            reals_aug, fakes_aug = T(T(reals)), T(fakes)
        else:
            reals_aug = T(reals)
            fakes_aug = T(fakes)
        if four_calls:
            real_aug, fake_aug, real, fake = D(reals_aug), D(fakes_aug), D(reals), D(fakes)
        elif split_four:
            real_aug, fake_aug, real, fake = D(torch.cat([reals_aug, fakes_aug, reals, fakes])).split(4)
        else:
            real_aug, fake_aug, real, fake = D(torch.cat([reals_aug, fakes_aug, reals, fakes])).split(B)
        if clean_detached:
            real, fake = real.detach(), fake.detach()
        if logistic_swapped:
            d_adv = d_logistic_loss(fake_aug, real_aug)
        else:
            d_adv = d_logistic_loss(real, fake) if no_aug_logistic else d_logistic_loss(real_aug, fake_aug)
        lam_r, lam_f = (lambda_fake, lambda_real) if lambdas_swapped else (lambda_real, lambda_fake)
        if fake_half_missing:
            lam_f = 0.0
        if augment_each_use:  # a fresh T for bCR: two more calls
            real_aug2, fake_aug2 = D(torch.cat([augment(reals), augment(fakes)])).split(B)
            bcr = bcr_penalty(real, real_aug2, fake, fake_aug2, lam_r, lam_f)
        elif lambdas_default:
            bcr = bcr_penalty(real, real_aug, fake, fake_aug)
        elif bcr_pairs:  # real paired with the fake's augmentation
            bcr = bcr_penalty(real, fake_aug, fake, real_aug, lam_r, lam_f)
        elif bcr_sides:  # each pair the other way round: the squared difference is the same
            bcr = bcr_penalty(real_aug, real, fake_aug, fake, lam_r, lam_f)
        else:
            bcr = bcr_penalty(real, real_aug, fake, fake_aug, lam_r, lam_f)
        d_loss = d_adv + bcr
        if own_opt:
            opt_d = torch.optim.Adam(D.parameters(), lr=1e-2, betas=(0.0, 0.99))
        if d_zero_grad:
            D.zero_grad()
        elif not (no_zero_grad or zero_grad_late or zero_grad_end):
            opt_d.zero_grad()
        if backward_twice or retain_twice:
            d_adv.backward(retain_graph=retain_twice)
            bcr.backward()
        else:
            (d_adv if drop_bcr else d_loss).backward()
        if zero_grad_late:
            opt_d.zero_grad()
        if not no_step:
            opt_d.step()
        if step_twice:
            opt_d.step()
        if zero_grad_end:
            opt_d.zero_grad()
        if clean_means:
            means = real.mean(), fake.mean()
        elif no_means:
            means = real_aug.sum(), fake_aug.sum()
        elif means_after:
            with torch.no_grad():
                means = D(reals_aug).mean(), D(fakes_aug).mean()
        elif vector_means:
            means = real_aug, fake_aug
        else:
            means = real_aug.mean(), fake_aug.mean()
        out = {"d_loss": d_adv if loss_is_adv else d_loss, "d_adv": d_adv, "bcr": bcr}
        out.update(d_real=means[0], d_fake=means[1])
        if items:
            return {k: v.item() for k, v in out.items()}
        if attached:  # the losses returned with their graphs
            return out
        return {k: v.detach() for k, v in out.items()}

    return step


test_d_step_mistakes_are_named = mistakes_are_named(
    check_d_step,
    [
        (_make_d_step(drop_bcr=True), r"bCR was computed and then dropped"),
        (_make_d_step(no_aug=True), r"never saw augmented images"),
        (_make_d_step(own_diff_augment=True), r"augment was never called.*not diff_augment yourself"),
        (_make_d_step(own_z=True), r"G never saw the z you were given"),
        (_make_d_step(no_zero_grad=True), r"previous step were added.*zero_grad.*before"),
        (_make_d_step(zero_grad_end=True), r"clear them AFTER.*before d_loss\.backward"),
        (_make_d_step(zero_grad_late=True), r"empty when opt_d\.step\(\) ran.*BEFORE backward"),
        (_make_d_step(no_step=True), r"opt_d\.step\(\) was never called"),
        (_make_d_step(step_twice=True), r"opt_d\.step\(\) ran 2 times"),
        (_make_d_step(own_opt=True), r"optimizer of your own.*opt_d"),
        (_make_d_step(attached=True), r"still carries its autograd graph.*detach"),
        (_make_d_step(items=True), r"Python number.*detached TENSORS.*item"),
        (_make_d_step(vector_means=True), r"'d_real'.*ONE number.*MEAN"),
        (_make_d_step(no_means=True), r"returned 'd_real' differs.*SUM.*MEAN logits"),
        (_make_d_step(clean_means=True), r"'d_real' is the mean of the CLEAN logits"),
        (_make_d_step(means_after=True), r"'d_real' comes from a new forward AFTER opt_d\.step"),
        (_make_d_step(loss_is_adv=True), r"'d_loss' is the logistic loss alone.*TOTAL"),
        (_make_d_step(grad_to_g=True), r"gradient reached G.*no_grad"),
        (_make_d_step(no_aug_logistic=True), r"logistic loss uses the un-augmented logits"),
        (_make_d_step(logistic_swapped=True), r"d_logistic_loss got the fakes first"),
        (_make_d_step(bcr_pairs=True), r"paired a real logit with a fake one"),
        (_make_d_step(lambdas_swapped=True), r"lambda_real and lambda_fake are swapped"),
        (_make_d_step(lambdas_default=True), r"ignores the lambda_real and lambda_fake"),
        (_make_d_step(fake_half_missing=True), r"bCR's fake half is missing"),
        (_make_d_step(clean_detached=True), r"clean logits D\(x\), D\(G\(z\)\) were detached"),
        (_make_d_step(augment_together=True), r"augment was called once on the reals and the fakes concat"),
        (_make_d_step(augment_each_use=True), r"augment was called 4 times"),
        (_make_d_step(augment_twice=True), r"augment was called 3 times.*augmenting an augmented batch"),
        (_make_d_step(fakes_not_augmented=True), r"the fakes were never augmented"),
        (_make_d_step(split_four=True), r"your code raised ValueError.*Likely cause:.*split\(B\)"),
        (_make_d_step(backward_twice=True), r"your code raised.*Likely cause: two backward passes.*once"),
        (lambda *a, **k: torch.tensor(1.0), r"should return a dict"),
        (lambda *a: {"d_loss": torch.tensor(1.0)}, r"should return a dict with the keys d_loss, d_adv"),
    ],
)

test_d_step_alternatives_pass = alternatives_pass(
    check_d_step,
    [
        _make_d_step(swap_order=True),  # the other order of the two augment calls
        _make_d_step(four_calls=True),  # four D forwards instead of one on the concatenation
        _make_d_step(detach_fakes=True),  # G(z).detach() instead of no_grad
        _make_d_step(d_zero_grad=True),  # D.zero_grad() instead of opt_d.zero_grad()
        _make_d_step(retain_twice=True),  # two backward passes: the gradients add up
        _make_d_step(bcr_sides=True),  # bcr_penalty(real_aug, real, ...): a squared difference
    ],
)


# ---- Exercise 12.1: wrong Frechet distances -----------------------------------------------------------


def _sqrtm(m):
    vals, vecs = torch.linalg.eigh(m)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def _tr_covmean(s1, s2):
    return torch.linalg.eigvals(s1 @ s2).real.clamp(min=0).sqrt().sum()


def _fd(mu1, s1, mu2, s2, *, mean=None, traces=None, cov=None, factor=2.0):
    """FID with one term swapped for a wrong one."""
    d = mu1 - mu2
    m = (d @ d) if mean is None else mean(d)
    t = (s1.trace() + s2.trace()) if traces is None else traces(s1, s2)
    c = _tr_covmean(s1, s2) if cov is None else cov(s1, s2)
    return float(m + t - factor * c)


def fd_no_factor_2(mu1, s1, mu2, s2):
    return _fd(mu1, s1, mu2, s2, factor=1.0)


def fd_plus(mu1, s1, mu2, s2):
    return _fd(mu1, s1, mu2, s2, factor=-2.0)


def fd_norm(mu1, s1, mu2, s2):
    return _fd(mu1, s1, mu2, s2, mean=lambda d: d.norm())


def fd_mean_of_squares(mu1, s1, mu2, s2):
    return _fd(mu1, s1, mu2, s2, mean=lambda d: d.pow(2).mean())


def fd_square_of_sum(mu1, s1, mu2, s2):
    return _fd(mu1, s1, mu2, s2, mean=lambda d: d.sum() ** 2)


def fd_traces_missing(mu1, s1, mu2, s2):
    return _fd(mu1, s1, mu2, s2, traces=lambda a, b: 0.0)


def fd_trace_sigma1_twice(mu1, s1, mu2, s2):
    return _fd(mu1, s1, mu2, s2, traces=lambda a, b: a.trace() + a.trace())


def fd_elementwise(mu1, s1, mu2, s2):
    return _fd(mu1, s1, mu2, s2, cov=lambda a, b: (a * b).sqrt().trace())


def fd_elementwise_of_product(mu1, s1, mu2, s2):
    return _fd(mu1, s1, mu2, s2, cov=lambda a, b: torch.nan_to_num((a @ b).sqrt()).trace())


def fd_elementwise_of_product_nan(mu1, s1, mu2, s2):
    return _fd(mu1, s1, mu2, s2, cov=lambda a, b: (a @ b).sqrt().sum())


def fd_product_of_roots(mu1, s1, mu2, s2):
    return _fd(mu1, s1, mu2, s2, cov=lambda a, b: (_sqrtm(a) @ _sqrtm(b)).trace())


def fd_eigenvalues_separately(mu1, s1, mu2, s2):
    return _fd(
        mu1, s1, mu2, s2, cov=lambda a, b: (torch.linalg.eigvalsh(a) * torch.linalg.eigvalsh(b)).sqrt().sum()
    )


def fd_eigvalsh_of_product(mu1, s1, mu2, s2):
    return _fd(mu1, s1, mu2, s2, cov=lambda a, b: torch.linalg.eigvalsh(a @ b).clamp(min=0).sqrt().sum())


def fd_no_square_root(mu1, s1, mu2, s2):
    return _fd(mu1, s1, mu2, s2, cov=lambda a, b: (a @ b).trace())


def fd_root_of_trace(mu1, s1, mu2, s2):
    return _fd(mu1, s1, mu2, s2, cov=lambda a, b: (a @ b).trace().sqrt())


def fd_returns_root(mu1, s1, mu2, s2):
    return math.sqrt(frechet_distance(mu1, s1, mu2, s2))


def fd_unclamped(mu1, s1, mu2, s2):
    return _fd(mu1, s1, mu2, s2, cov=lambda a, b: torch.linalg.eigvals(a @ b).real.sqrt().sum())


def fd_complex_eigvals(mu1, s1, mu2, s2):  # no .real: the root of a negative eigenvalue is imaginary
    return _fd(mu1, s1, mu2, s2, cov=lambda a, b: torch.linalg.eigvals(a @ b).sqrt().sum())


def fd_complex_returned(mu1, s1, mu2, s2):
    d = mu1 - mu2
    return d @ d + s1.trace() + s2.trace() - 2 * torch.linalg.eigvals(s1 @ s2).sqrt().sum()


def fd_sqrtm_through_eig(mu1, s1, mu2, s2):  # the matrix root of a non-symmetric matrix goes complex
    vals, vecs = torch.linalg.eig(s1 @ s2)
    covmean = vecs @ torch.diag(vals.sqrt()) @ torch.linalg.inv(vecs)
    d = mu1 - mu2
    return float(d @ d + s1.trace() + s2.trace() - 2 * covmean.trace())


def fd_torch_sqrtm(mu1, s1, mu2, s2):
    return _fd(mu1, s1, mu2, s2, cov=lambda a, b: torch.linalg.sqrtm(a @ b).trace())


def fd_float32(mu1, s1, mu2, s2):
    return _fd(mu1.float(), s1.float(), mu2.float(), s2.float())


def fd_regularises_in_place(mu1, s1, mu2, s2):
    eps = 1e-6 * torch.eye(len(mu1), dtype=s1.dtype)
    s1 += eps
    s2 += eps
    return _fd(mu1, s1, mu2, s2)


def fd_asymmetric(mu1, s1, mu2, s2):  # an unknown mistake: the generic message with the hand value
    return frechet_distance(mu1, s1, mu2, s2) + float((mu1 - mu2).sum()) * 1e-3


test_frechet_mistakes_are_named = mistakes_are_named(
    check_frechet_distance,
    [
        (fd_no_factor_2, r"missing its factor 2"),
        (fd_plus, r"must SUBTRACT"),
        (fd_norm, r"not the SQUARED norm"),
        (fd_mean_of_squares, r"MEAN of the squared differences.*SUM"),
        (fd_square_of_sum, r"square of the SUM of mu1 - mu2"),
        (fd_traces_missing, r"trace terms Tr\(sigma1\) \+ Tr\(sigma2\) are missing"),
        (fd_trace_sigma1_twice, r"adds Tr\(sigma1\) twice"),
        (fd_elementwise, r"ELEMENTWISE product.*MATRIX square root"),
        (fd_elementwise_of_product, r"elementwise square root of sigma1 @ sigma2.*EIGENVALUES"),
        (fd_elementwise_of_product_nan, r"NaN.*negative\s+ENTRIES.*elementwise sqrt.*EIGENVALUES"),
        (fd_product_of_roots, r"only when the two covariances commute"),
        (fd_eigenvalues_separately, r"eigenvalues of a product are not the products"),
        (fd_eigvalsh_of_product, r"eigvalsh assumes a SYMMETRIC matrix"),
        (fd_no_square_root, r"2 Tr\(sigma1 sigma2\) with no square root"),
        (fd_root_of_trace, r"square root of the TRACE"),
        (fd_returns_root, r"returned the square root of the distance"),
        (fd_unclamped, r"singular covariances.*NaN.*[Cc]lamp the eigenvalues at 0"),
        (fd_complex_eigvals, r"your code raised.*Likely cause: a complex number.*REAL part"),
        (fd_complex_returned, r"returned a complex number.*REAL part"),
        (fd_sqrtm_through_eig, r"complex number.*torch\.linalg\.eig of the non-symmetric"),
        (fd_torch_sqrtm, r"torch has no matrix square root"),
        (fd_float32, r"float32 rounding.*float64"),
        (fd_regularises_in_place, r"changed its input sigma1 in place"),
        (fd_asymmetric, r"should give 4\.0"),
        (lambda *a: "4.0", r"should return a float"),
        (lambda mu1, *a: mu1 * 0 + 4.0, r"should return a float.*shape \(2,\)"),
    ],
)


def fd_symmetric_form(mu1, s1, mu2, s2):  # the package's route: Tr((S1^1/2 S2 S1^1/2)^1/2), all symmetric
    root = _sqrtm(s1)
    inner = root @ s2 @ root
    d = mu1 - mu2
    return float(d @ d + s1.trace() + s2.trace() - 2 * torch.linalg.eigvalsh(inner).clamp(min=0).sqrt().sum())


def fd_nuclear_norm(mu1, s1, mu2, s2):  # Tr((S1 S2)^1/2) = the sum of the singular values of S1^1/2 S2^1/2
    d = mu1 - mu2
    nuc = torch.linalg.matrix_norm(_sqrtm(s1) @ _sqrtm(s2), ord="nuc")
    return float((d**2).sum() + torch.trace(s1 + s2) - 2 * nuc)


def fd_numpy(mu1, s1, mu2, s2):
    mu1, s1, mu2, s2 = (t.numpy() for t in (mu1, s1, mu2, s2))
    eig = np.linalg.eigvals(s1 @ s2).real.clip(min=0)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(eig).sum())


def fd_root_then_real(mu1, s1, mu2, s2):  # the root of a complex eigenvalue, then the real part
    return _fd(mu1, s1, mu2, s2, cov=lambda a, b: torch.linalg.eigvals(a @ b).sqrt().real.sum())


def fd_regularised(mu1, s1, mu2, s2):  # a 1e-6 ridge on both covariances, out of place
    eps = 1e-6 * torch.eye(len(mu1), dtype=s1.dtype)
    return _fd(mu1, s1 + eps, mu2, s2 + eps)


def fd_tensor(mu1, s1, mu2, s2):  # a one-element tensor instead of a float
    d = mu1 - mu2
    return d.dot(d) + s1.trace() + s2.trace() - 2 * _tr_covmean(s1, s2)


test_frechet_alternatives_pass = alternatives_pass(
    check_frechet_distance,
    [fd_symmetric_form, fd_nuclear_norm, fd_numpy, fd_root_then_real, fd_regularised, fd_tensor],
)


def test_diagonal_covariances_cannot_tell_the_elementwise_root_apart():
    """Why the checker uses correlated covariances: on N(0, I) vs N(1, 4I) the mistake gives 4.0 too."""
    eye = torch.eye(2, dtype=torch.float64)
    args = (torch.zeros(2, dtype=torch.float64), eye, torch.ones(2, dtype=torch.float64), 4 * eye)
    assert fd_elementwise(*args) == pytest.approx(4.0) == frechet_distance(*args)


def test_singular_case_has_negative_eigenvalues():
    """The singular case is what makes a missing clamp visible: rounding leaves a negative eigenvalue."""
    from vitgan_lite.checks.train import _fd_singular_case

    _, s1, _, s2 = _fd_singular_case()
    assert torch.linalg.eigvals(s1 @ s2).real.min() < 0
