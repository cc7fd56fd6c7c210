"""Exercises 11.1 (``ranking_accuracy``) and 13.1 (``input_gradient_norm``): each checker passes the
reference and the solution, meets the stub with "not implemented yet", and names each realistic mistake."""

from __future__ import annotations

import pytest
import torch
from helpers import assert_checker_contract, mistakes_are_named

from vitgan_lite.checks import check_input_gradient_norm, check_ranking_accuracy
from vitgan_lite.diagnostics import input_gradient_norm, ranking_accuracy

L11, L13 = "11_making_the_gan_learn", "13_what_breaks_without_it"


def test_checker_contract(capsys):
    assert_checker_contract(L11, {"ranking_accuracy": (check_ranking_accuracy, ranking_accuracy)}, capsys)


def threshold_at_zero(real, fake):  # the offset-dependent "accuracy"
    return float(0.5 * ((real > 0).float().mean() + (fake < 0).float().mean()))


def means_only(real, fake):
    return float(real.mean() > fake.mean())


def paired(real, fake):  # real_i against fake_i only
    n = min(len(real), len(fake))
    return float((real[:n] > fake[:n]).float().mean())


def ties_lost(real, fake):
    return float((real[:, None] > fake[None, :]).float().mean())


def ties_won(real, fake):
    return float((real[:, None] >= fake[None, :]).float().mean())


def reversed_sign(real, fake):
    return float((real[:, None] < fake[None, :]).float().mean())


def returns_tensor_matrix(real, fake):
    return (real[:, None] > fake[None, :]).float()


def wrong_normaliser(real, fake):  # divides by Br + Bf
    d = real[:, None] - fake[None, :]
    return float(((d > 0).float().sum() + 0.5 * (d == 0).float().sum()) / (len(real) + len(fake)) / 2)


test_realistic_mistakes_are_named = mistakes_are_named(
    check_ranking_accuracy,
    [
        (threshold_at_zero, r"not each logit with 0"),
        (means_only, r"ALL pairs"),
        (paired, r"ALL pairs"),
        (ties_lost, r"tie .* counts 1/2"),
        (ties_won, r"tie .* counts 1/2"),
        (reversed_sign, r"right way round"),
        (returns_tensor_matrix, r"one number"),
        (wrong_normaliser, r"number of pairs, Br \* Bf"),
    ],
)


def test_a_crash_is_reported_with_its_cause():
    def crashes(real, fake):
        return float((real @ fake > 0).float().mean())  # 1-D matmul of different lengths

    with pytest.raises(AssertionError, match="raised RuntimeError"):
        check_ranking_accuracy(crashes)


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


def marks_the_callers_images(D, x):
    x.requires_grad_(True)
    (g,) = torch.autograd.grad(D(x).sum(), x)
    return float(g.flatten(1).norm(dim=1).mean())


def backward_into_d(D, x):
    x = x.detach().clone().requires_grad_(True)
    D(x).sum().backward()
    return float(x.grad.flatten(1).norm(dim=1).mean())


def parameter_gradient(D, x):
    grads = torch.autograd.grad(D(x).sum(), [p for p in D.parameters()], allow_unused=True)
    return float(sum(g.norm() for g in grads if g is not None))


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
        (rms_of_norms, r"root-mean-square"),
        (marks_the_callers_images, r"changed the images it was given"),
        (backward_into_d, r"D's parameters got gradients"),
        (parameter_gradient, r"same input gradient v|mean of \|\|x_i\|\||expected"),
    ],
)
