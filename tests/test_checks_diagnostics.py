"""Exercises 11.1 (``ranking_accuracy``) and 13.1 (``input_gradient_norm``): each checker passes the
reference and the solution, meets the stub with "not implemented yet", names each realistic mistake
(``mistakes_are_named``) and accepts each correct alternative (``alternatives_pass``)."""

from __future__ import annotations

import pytest
import torch
from helpers import alternatives_pass, assert_checker_contract, mistakes_are_named

from vitgan_lite.checks import check_input_gradient_norm, check_ranking_accuracy, reveal
from vitgan_lite.diagnostics import input_gradient_norm, ranking_accuracy

L11, L13 = "11_making_the_gan_learn", "13_what_breaks_without_it"


def test_checker_contract(capsys):
    assert_checker_contract(L11, {"ranking_accuracy": (check_ranking_accuracy, ranking_accuracy)}, capsys)


@pytest.mark.parametrize("exercise", ["11.1", "13.1"])
def test_hints_and_reference_resolve(exercise, capsys):
    from vitgan_lite.checks._core import EXERCISES

    record = EXERCISES[exercise]
    assert len(record.hints) == 2 and "..." in record.hints[1]
    assert "def " in reveal(exercise, force=True)


# ---- Exercise 11.1: ranking_accuracy ------------------------------------------------------------------


def _diff(real, fake):
    return real[:, None] - fake[None, :]  # (Br, Bf)


def threshold_at_zero(real, fake):  # the offset-dependent "accuracy"
    return float(0.5 * ((real > 0).float().mean() + (fake < 0).float().mean()))


def means_only(real, fake):
    return float(real.mean() > fake.mean())


def paired(real, fake):  # real_i against fake_i only
    n = min(len(real), len(fake))
    return float((real[:n] > fake[:n]).float().mean())


def ties_lost(real, fake):
    return float((_diff(real, fake) > 0).float().mean())


def ties_won(real, fake):
    return float((_diff(real, fake) >= 0).float().mean())


def ties_dropped(real, fake):  # the ties left out of the denominator
    d = _diff(real, fake)
    return float((d > 0).sum() / (d != 0).sum())


def reversed_sign(real, fake):
    return float((_diff(real, fake) < 0).float().mean())


def reversed_broadcast(real, fake):  # fake - real: the right pairs, the wrong way round
    d = fake[:, None] - real[None, :]
    return float((d > 0).float().mean() + 0.5 * (d == 0).float().mean())


def returns_tensor_matrix(real, fake):
    return (_diff(real, fake) > 0).float()


def row_means(real, fake):  # .mean(1): one number per real logit
    return (_diff(real, fake) > 0).float().mean(1)


def wrong_normaliser(real, fake):  # divides by Br + Bf
    d = _diff(real, fake)
    return float(((d > 0).float().sum() + 0.5 * (d == 0).float().sum()) / (len(real) + len(fake)))


def per_real_only(real, fake):  # divides by Br
    d = _diff(real, fake)
    return float(((d > 0).float().sum() + 0.5 * (d == 0).float().sum()) / len(real))


def count_not_fraction(real, fake):
    d = _diff(real, fake)
    return float((d > 0).float().sum() + 0.5 * (d == 0).float().sum())


def integer_division(real, fake):
    d = _diff(real, fake)
    return float(((d > 0).sum() + 0.5 * (d == 0).sum()) // d.numel())


def percentage(real, fake):
    return 100 * ranking_accuracy(real, fake)


def soft_sigmoid(real, fake):
    return float(torch.sigmoid(_diff(real, fake)).mean())


def logit_gap(real, fake):
    return float(real.mean() - fake.mean())


def elementwise_compare(real, fake):  # crashes on different lengths
    return float((real > fake).float().mean() + 0.5 * (real == fake).float().mean())


def bool_mean(real, fake):  # crashes: the mean of a boolean tensor
    d = _diff(real, fake)
    return float((d > 0).mean() + 0.5 * (d == 0).mean())


def dot_product(real, fake):  # crashes: a 1-D matmul of different lengths
    return float((real @ fake > 0).float().mean())


def centres_in_place(real, fake):  # "remove the common offset" in place: the caller's logits change
    offset = torch.cat([real, fake]).mean()
    real -= offset
    fake -= offset
    return ranking_accuracy(real, fake)


test_realistic_mistakes_are_named = mistakes_are_named(
    check_ranking_accuracy,
    [
        (threshold_at_zero, r"not each logit with 0"),
        (means_only, r"MEAN real logit.*ALL pairs"),
        (paired, r"real_i with fake_i only.*ALL pairs"),
        (ties_lost, r"tie .* counted 0.*counts 1/2"),
        (ties_won, r"tie .* counted 1 \(>= instead of >\)"),
        (ties_dropped, r"ties were left out of the count"),
        (reversed_sign, r"right way round"),
        (reversed_broadcast, r"right way round"),
        (returns_tensor_matrix, r"one number.*shape \(3, 2\)"),
        (row_means, r"one number.*shape \(3,\).*ALL pairs"),
        (wrong_normaliser, r"divided by Br \+ Bf.*Br \* Bf"),
        (per_real_only, r"divided by Br only"),
        (count_not_fraction, r"NUMBER of pairs won, not the fraction"),
        (integer_division, r"integer division"),
        (percentage, r"percentage.*\[0, 1\]"),
        (soft_sigmoid, r"sigmoid.*COUNTS the pairs"),
        (logit_gap, r"gap between the mean logits"),
        (elementwise_compare, r"your code raised.*Likely cause: the real and fake logits were compared elem"),
        (bool_mean, r"your code raised.*Likely cause: the mean of a boolean tensor.*\.float\(\)"),
        (centres_in_place, r"changed the logits it was given"),
        (dot_product, r"your code raised RuntimeError.*Likely cause: a dot product \(@\)"),
    ],
)


def via_sign(real, fake):  # (sign + 1) / 2 is 1 for a win, 1/2 for a tie, 0 for a loss
    return float(((torch.sign(_diff(real, fake)) + 1) / 2).mean())


def via_loops(real, fake):
    score = 0.0
    for r in real.tolist():
        for f in fake.tolist():
            score += 1.0 if r > f else 0.5 if r == f else 0.0
    return score / (len(real) * len(fake))


def via_ranks(real, fake):  # Mann-Whitney U from tied (mid) ranks
    both = torch.cat([real, fake]).double()
    below = (both[:, None] > both[None, :]).double().sum(1)
    equal = (both[:, None] == both[None, :]).double().sum(1)
    ranks = below + (equal + 1) / 2  # 1-based mid-ranks
    n_r, n_f = len(real), len(fake)
    u = ranks[:n_r].sum() - n_r * (n_r + 1) / 2
    return float(u / (n_r * n_f))


def returns_tensor(real, fake):  # a one-element tensor, not a float
    d = fake[None, :] < real[:, None]
    return d.float().mean() + 0.5 * (real[:, None] == fake[None, :]).float().mean()


test_ranking_alternatives_pass = alternatives_pass(
    check_ranking_accuracy, [via_sign, via_loops, via_ranks, returns_tensor]
)


# ---- Exercise 13.1: input_gradient_norm ---------------------------------------------------------------


def _grad(D, x, reduce="sum"):
    x = x.detach().clone().requires_grad_(True)
    out = D(x)
    (g,) = torch.autograd.grad(out.sum() if reduce == "sum" else out.mean(), x)
    return g  # (B, C, H, W)


def grad_of_mean(D, x):
    return float(_grad(D, x, "mean").flatten(1).norm(dim=1).mean())


def one_norm_for_the_batch(D, x):
    return float(_grad(D, x).norm())


def squared_norm(D, x):
    return float(_grad(D, x).flatten(1).square().sum(1).mean())


def mean_abs_entry(D, x):
    return float(_grad(D, x).abs().mean())


def rms_of_norms(D, x):
    return float(_grad(D, x).flatten(1).norm(dim=1).square().mean().sqrt())


def sum_of_norms(D, x):
    return float(_grad(D, x).flatten(1).norm(dim=1).sum())


def max_of_norms(D, x):
    return float(_grad(D, x).flatten(1).norm(dim=1).max())


def channel_norm(D, x):  # norm(dim=1) on (B, C, H, W): over the channels only
    return float(_grad(D, x).norm(dim=1).mean())


def batch_axis_norm(D, x):
    return float(_grad(D, x).flatten(1).norm(dim=0).mean())


def rms_per_image(D, x):
    return float(_grad(D, x).flatten(1).square().mean(1).sqrt().mean())


def l1_norm(D, x):
    return float(_grad(D, x).flatten(1).abs().sum(1).mean())


def squeezed(D, x):  # .squeeze() drops the batch axis of a batch of one
    return float(_grad(D, x).squeeze().flatten(1).norm(dim=1).mean())


def per_image_norms(D, x):  # forgot the mean
    return _grad(D, x).flatten(1).norm(dim=1)


def marks_the_callers_images(D, x):
    x.requires_grad_(True)
    (g,) = torch.autograd.grad(D(x).sum(), x)
    return float(g.flatten(1).norm(dim=1).mean())


def backward_into_d(D, x):
    x = x.detach().clone().requires_grad_(True)
    D(x).sum().backward()
    return float(x.grad.flatten(1).norm(dim=1).mean())


def backward_then_zero_grad(D, x):
    x = x.detach().clone().requires_grad_(True)
    D(x).sum().backward()
    D.zero_grad()
    return float(x.grad.flatten(1).norm(dim=1).mean())


def freezes_d(D, x):  # stops gradients into D's parameters, and never unfreezes them
    D.requires_grad_(False)
    x = x.detach().clone().requires_grad_(True)
    D(x).sum().backward()
    return float(x.grad.flatten(1).norm(dim=1).mean())


def eval_mode(D, x):
    D.eval()
    return float(_grad(D, x).flatten(1).norm(dim=1).mean())


def parameter_gradient(D, x):
    grads = torch.autograd.grad(D(x).sum(), [p for p in D.parameters()], allow_unused=True)
    return float(sum(g.norm() for g in grads if g is not None))


def casts_to_float32(D, x):
    x = x.detach().float().requires_grad_(True)
    (g,) = torch.autograd.grad(D(x).sum(), x)
    return float(g.flatten(1).norm(dim=1).mean())


def copy_not_tracked(D, x):
    x = x.detach().clone()
    (g,) = torch.autograd.grad(D(x).sum(), x)
    return float(g.flatten(1).norm(dim=1).mean())


def copy_made_after(D, x):
    out = D(x)
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(out.sum(), x)
    return float(g.flatten(1).norm(dim=1).mean())


def no_sum(D, x):
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(D(x), x)
    return float(g.flatten(1).norm(dim=1).mean())


def under_no_grad(D, x):
    x = x.detach().clone().requires_grad_(True)
    with torch.no_grad():
        out = D(x)
    (g,) = torch.autograd.grad(out.sum(), x)
    return float(g.flatten(1).norm(dim=1).mean())


def backward_without_requires_grad(D, x):
    x = x.detach().clone()
    D(x).sum().backward()
    return float(x.grad.flatten(1).norm(dim=1).mean())


def test_input_gradient_norm_checker_contract(capsys):
    assert_checker_contract(
        L13, {"input_gradient_norm": (check_input_gradient_norm, input_gradient_norm)}, capsys
    )


test_input_gradient_norm_mistakes_are_named = mistakes_are_named(
    check_input_gradient_norm,
    [
        (grad_of_mean, r"MEAN of the logits"),
        (one_norm_for_the_batch, r"ONE norm of the whole batch"),
        (squared_norm, r"squared norm"),
        (mean_abs_entry, r"absolute gradient entries"),
        (rms_of_norms, r"root-mean-square of the per-image norms"),
        (sum_of_norms, r"SUMMED the per-image norms"),
        (max_of_norms, r"LARGEST per-image norm"),
        (channel_norm, r"channel axis only"),
        (batch_axis_norm, r"BATCH axis"),
        (rms_per_image, r"root-MEAN-square of each image's gradient entries"),
        (l1_norm, r"L1 norm"),
        (squeezed, r"batch of 1 the answer.*squeeze\(\) drops the batch axis"),
        (per_image_norms, r"one number.*shape \(4,\).*MEAN of the per-image norms"),
        (marks_the_callers_images, r"changed the images it was given"),
        (backward_into_d, r"D's parameters got gradients.*autograd\.grad"),
        (backward_then_zero_grad, r"erased D's gradients"),
        (freezes_d, r"no longer require grad.*requires_grad_\(False\)"),
        (eval_mode, r"left D in eval mode"),
        (parameter_gradient, r"same input gradient v for every image"),
        (
            casts_to_float32,
            r"your code raised.*float64 conv D.*Likely cause: the images were cast to another",
        ),
        (copy_not_tracked, r"your code raised.*Likely cause: .*autograd does not track.*requires_grad_"),
        (copy_made_after, r"your code raised.*Likely cause: .*a tensor D never saw"),
        (no_sum, r"your code raised.*Likely cause: autograd\.grad.*on the B logits.*SUM"),
        (under_no_grad, r"your code raised.*Likely cause: D's forward ran without a graph.*no_grad"),
        (backward_without_requires_grad, r"your code raised.*Likely cause: x\.grad is None.*requires grad"),
    ],
)


def via_vector_norm(D, x):
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(D(x).sum(), x)
    return torch.linalg.vector_norm(g, dim=(1, 2, 3)).mean().item()


def via_grad_outputs(D, x):  # a vector-Jacobian product with ones is the gradient of the sum
    x = x.detach().requires_grad_(True)  # detach() is a new tensor: the caller's x is not marked
    out = D(x)
    (g,) = torch.autograd.grad(out, x, grad_outputs=torch.ones_like(out))
    return float(g.pow(2).sum(dim=(1, 2, 3)).sqrt().mean())


def one_image_at_a_time(D, x):
    norms = []
    for image in x:
        xi = image[None].detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(D(xi).sum(), xi)
        norms.append(g.norm())
    return float(torch.stack(norms).mean())


def backward_then_restore(D, x):  # .backward(inputs=[x]) accumulates into x only
    x = x.detach().clone().requires_grad_(True)
    D(x).sum().backward(inputs=[x])
    return float(x.grad.flatten(1).norm(dim=1).mean())


def returns_tensor(D, x):
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(D(x).sum(), x)
    return g.flatten(1).norm(dim=1).mean()


test_input_gradient_norm_alternatives_pass = alternatives_pass(
    check_input_gradient_norm,
    [via_vector_norm, via_grad_outputs, one_image_at_a_time, backward_then_restore, returns_tensor],
)
