"""The lesson-04 checkers pass the reference and the solution, meet the stubs kindly, reject real mistakes."""

import torch
import torch.nn.functional as F
from helpers import assert_checker_contract, assert_rejects, mistakes_are_named
from torch import nn

from vitgan_lite import spectral
from vitgan_lite.checks import check_isn, check_power_iteration

LESSON = "04_spectral_normalization"


def test_checker_contract(capsys):
    assert_checker_contract(
        LESSON,
        {
            "power_iteration": (check_power_iteration, spectral.power_iteration),
            "ISN": (check_isn, spectral.ISN),
        },
        capsys,
    )


# ---- Exercise 4.1: wrong power iterations -------------------------------------------------------------


def pi_unnormalized(W, u, n_iters=1, eps=1e-12):
    for _ in range(n_iters):
        v = W.T @ u
        u = W @ v
    return u @ (W @ v), u, v


def pi_one_step_only(W, u, n_iters=1, eps=1e-12):
    return spectral.power_iteration(W, u, 1)


def pi_stale_sigma(W, u, n_iters=1, eps=1e-12):
    for _ in range(n_iters):
        u_prev = u
        v = F.normalize(W.T @ u, dim=0)
        u = F.normalize(W @ v, dim=0)
    return u_prev @ (W @ v), u, v


def pi_swapped_outputs(W, u, n_iters=1, eps=1e-12):
    sigma, u, v = spectral.power_iteration(W, u, n_iters)
    return sigma, v, u


def pi_in_place(W, u, n_iters=1, eps=1e-12):
    sigma, u_new, v = spectral.power_iteration(W, u, n_iters)
    u.copy_(u_new)
    return sigma, u, v


def pi_u_first(W, u, n_iters=1, eps=1e-12):
    # Updates u from the previous v's direction in the wrong order: u = W (W^T u) normalized first.
    for _ in range(n_iters):
        u = F.normalize(W @ (W.T @ u), dim=0)
        v = F.normalize(W.T @ u, dim=0)
    return u @ (W @ v), u, v


def pi_float_sigma(W, u, n_iters=1, eps=1e-12):
    sigma, u, v = spectral.power_iteration(W, u, n_iters)
    return sigma.expand(3), u, v


test_power_iteration_mistakes_are_named = mistakes_are_named(
    check_power_iteration,
    [
        (pi_unnormalized, r"not unit vectors.*normalize"),
        (pi_one_step_only, r"one step although n_iters"),
        (pi_stale_sigma, r"u \*before\* the last update"),
        (pi_swapped_outputs, r"u lives on the OUTPUT side"),
        (pi_in_place, r"changed the u passed in, in place"),
        (pi_u_first, r"u or v differ from the reference.*in\s+that order"),
        (pi_float_sigma, r"sigma should be a scalar"),
    ],
)


# ---- Exercise 4.2: wrong ISNs ---------------------------------------------------------------------------


class GoodISN(nn.Module):
    """An independent correct ISN, the base of the mutants below."""

    def __init__(self, weight, n_power_iterations=1, eps=1e-12):
        super().__init__()
        self.n_power_iterations, self.eps = n_power_iterations, eps
        W = weight.detach().flatten(1)
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        self.register_buffer("u", U[:, 0].clone())
        self.register_buffer("v", Vh[0].clone())
        self.register_buffer("sigma_init", S[0].clone())

    def step(self, W):
        with torch.no_grad():
            _, u, v = spectral.power_iteration(W, self.u, self.n_power_iterations, self.eps)
            self.u.copy_(u)
            self.v.copy_(v)

    def sigma(self, W):
        return self.u.clone() @ (W @ self.v.clone())

    def forward(self, weight):
        W = weight.flatten(1)
        if self.training:
            self.step(W)
        return weight * (self.sigma_init / self.sigma(W))


def test_independent_good_isn_passes():
    assert check_isn(GoodISN)


class NoWriteBack(GoodISN):
    def forward(self, weight):
        W = weight.flatten(1)
        u, v = self.u, self.v
        if self.training:
            with torch.no_grad():
                _, u, v = spectral.power_iteration(W, self.u, self.n_power_iterations)
        return weight * (self.sigma_init / (u @ (W @ v)))


class ReestimatedInit(GoodISN):
    def forward(self, weight):
        W = weight.flatten(1)
        if self.training:
            self.step(W)
        return weight * (torch.linalg.matrix_norm(W.detach(), ord=2) / self.sigma(W))


class OverwritesSigmaInit(GoodISN):
    def forward(self, weight):
        self.sigma_init.copy_(torch.linalg.matrix_norm(weight.detach().flatten(1), ord=2))
        return super().forward(weight)


class RewrapsOutput(GoodISN):
    def forward(self, weight):
        return nn.Parameter(super().forward(weight))


class RewrapsInput(GoodISN):
    def forward(self, weight):
        return super().forward(nn.Parameter(weight.detach()))


class PlainSN(GoodISN):
    def forward(self, weight):
        W = weight.flatten(1)
        if self.training:
            self.step(W)
        return weight / self.sigma(W)


class UpdatesInEval(GoodISN):
    def forward(self, weight):
        W = weight.flatten(1)
        self.step(W)
        return weight * (self.sigma_init / self.sigma(W))


class GradThroughUV(GoodISN):
    def forward(self, weight):
        W = weight.flatten(1)
        u, v = self.u, self.v
        if self.training:
            _, u, v = spectral.power_iteration(W, self.u, self.n_power_iterations)  # no no_grad
            with torch.no_grad():
                self.u.copy_(u)
                self.v.copy_(v)
        return weight * (self.sigma_init / (u @ (W @ v)))


class GradThroughUVCloned(GoodISN):
    def forward(self, weight):
        W = weight.flatten(1)
        _, u, v = spectral.power_iteration(W, self.u.clone(), self.n_power_iterations)  # no no_grad
        if self.training:
            with torch.no_grad():
                self.u.copy_(u)
                self.v.copy_(v)
        return weight * (self.sigma_init / (u @ (W @ v)))


class BuffersRequireGrad(GoodISN):
    def step(self, W):
        _, u, v = spectral.power_iteration(W, self.u, self.n_power_iterations)
        self.u.copy_(u)  # outside no_grad: the buffer joins the graph
        self.v.copy_(v)


class NoClone(GoodISN):
    def sigma(self, W):
        return self.u @ (W @ self.v)


class ExactSigmaEveryStep(GoodISN):
    def forward(self, weight):
        W = weight.flatten(1)
        if self.training:
            self.step(W)
        return weight * (self.sigma_init / torch.linalg.matrix_norm(W, ord=2))


class NoPowerStep(GoodISN):
    def forward(self, weight):
        W = weight.flatten(1)
        return weight * (self.sigma_init / self.sigma(W))


class UVAsParameters(GoodISN):
    def __init__(self, weight, n_power_iterations=1, eps=1e-12):
        super().__init__(weight, n_power_iterations, eps)
        u = self.u.clone()
        del self._buffers["u"]
        self.u = nn.Parameter(u)


class SigmaInitAttribute(GoodISN):
    def __init__(self, weight, n_power_iterations=1, eps=1e-12):
        super().__init__(weight, n_power_iterations, eps)
        s = self.sigma_init.clone()
        del self._buffers["sigma_init"]
        self.sigma_init = s


class SigmaInitOneStep(GoodISN):
    def __init__(self, weight, n_power_iterations=1, eps=1e-12):
        super().__init__(weight, n_power_iterations, eps)
        W = weight.detach().flatten(1)
        sigma, _, _ = spectral.power_iteration(W, F.normalize(torch.ones(W.shape[0]), dim=0), 1)
        self.sigma_init.copy_(sigma)


class NoFlatten(GoodISN):
    def __init__(self, weight, n_power_iterations=1, eps=1e-12):
        super().__init__(weight, n_power_iterations, eps)
        self.register_buffer("v", weight.detach().new_ones(weight.shape[1]) / weight.shape[1] ** 0.5)


class NonPersistentBuffers(GoodISN):
    def __init__(self, weight, n_power_iterations=1, eps=1e-12):
        super().__init__(weight, n_power_iterations, eps)
        self.register_buffer("sigma_init", self.sigma_init.clone(), persistent=False)


class IgnoresIterations(GoodISN):
    def step(self, W):
        with torch.no_grad():
            _, u, v = spectral.power_iteration(W, self.u, 1, self.eps)  # always one step
            self.u.copy_(u)
            self.v.copy_(v)


test_isn_mistakes_are_named = mistakes_are_named(
    check_isn,
    [
        (NoWriteBack, r"never written back"),
        (ReestimatedInit, r"re-estimated every step"),
        (OverwritesSigmaInit, r"re-estimated every step"),
        (RewrapsOutput, r"re-wrapped as a fresh nn\.Parameter"),
        (RewrapsInput, r"re-wrapped as a fresh nn\.Parameter"),
        (PlainSN, r"plain SN.*sigma_init \* W"),
        (UpdatesInEval, r"changed in eval mode.*self\.training"),
        (GradThroughUV, r"gradients flow into u and v.*torch\.no_grad"),
        (GradThroughUVCloned, r"gradients flow into u and v.*torch\.no_grad"),
        (BuffersRequireGrad, r"gradients flow into u and v"),
        (NoClone, r"overwrote u, v in place.*clone"),
        (ExactSigmaEveryStep, r"exactly \(an SVD\) on every forward"),
        (NoPowerStep, r"never take a power-iteration step"),
        (UVAsParameters, r"u is an nn\.Parameter.*register_buffer"),
        (SigmaInitAttribute, r"plain attribute, not a buffer"),
        (SigmaInitOneStep, r"compute it once, exactly"),
        (NoFlatten, r"conv weight.*W\.flatten\(1\)"),
        (NonPersistentBuffers, r"sigma_init is registered with persistent=False.*state_dict"),
        (IgnoresIterations, r"did not take 3 power-iteration steps.*self\.n_power_iterations"),
    ],
)


def test_crash_in_learner_code_is_reported_with_its_cause():
    def crashes(W, u, n_iters=1, eps=1e-12):
        return (W @ u).sum(), u, u

    assert_rejects(check_power_iteration, crashes, r"your code raised RuntimeError")
