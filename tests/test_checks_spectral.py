"""The lesson-04 checkers pass the reference and the solution, meet the stubs kindly, reject real mistakes."""

import torch
import torch.nn.functional as F
from helpers import alternatives_pass, assert_checker_contract, assert_rejects, mistakes_are_named
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


def pi_item_sigma(W, u, n_iters=1, eps=1e-12):
    sigma, u, v = spectral.power_iteration(W, u, n_iters, eps)
    return sigma.item(), u, v


def pi_normalize_without_dim(W, u, n_iters=1, eps=1e-12):
    for _ in range(n_iters):
        v = F.normalize(W.T @ u)  # default dim=1: u and v are 1-D
        u = F.normalize(W @ v)
    return u @ (W @ v), u, v


def pi_transposes_swapped(W, u, n_iters=1, eps=1e-12):
    for _ in range(n_iters):
        v = F.normalize(W @ u, dim=0, eps=eps)  # W where W^T belongs
        u = F.normalize(W.T @ v, dim=0, eps=eps)
    return u @ (W.T @ v), u, v


def pi_one_extra_step(W, u, n_iters=1, eps=1e-12):
    v = F.normalize(W.T @ u, dim=0, eps=eps)
    u = F.normalize(W @ v, dim=0, eps=eps)  # a warm-up step before the loop
    for _ in range(n_iters):
        v = F.normalize(W.T @ u, dim=0, eps=eps)
        u = F.normalize(W @ v, dim=0, eps=eps)
    return u @ (W @ v), u, v


def pi_range_minus_one(W, u, n_iters=1, eps=1e-12):
    for _ in range(n_iters - 1):  # off by one: no step at all for n_iters = 1
        v = F.normalize(W.T @ u, dim=0, eps=eps)
        u = F.normalize(W @ v, dim=0, eps=eps)
    return u @ (W @ v), u, v


def pi_exact_sigma(W, u, n_iters=1, eps=1e-12):
    _, u, v = spectral.power_iteration(W, u, n_iters, eps)
    return torch.linalg.matrix_norm(W, ord=2), u, v


def pi_random_start(W, u, n_iters=1, eps=1e-12):
    u = F.normalize(torch.randn(W.shape[0]), dim=0)  # ignores the u it is given
    return spectral.power_iteration(W, u, n_iters, eps)


def pi_fixed_start(W, u, n_iters=1, eps=1e-12):
    u = F.normalize(torch.ones(W.shape[0]), dim=0)
    return spectral.power_iteration(W, u, n_iters, eps)


def pi_no_eps_guard(W, u, n_iters=1, eps=1e-12):
    for _ in range(n_iters):
        v = W.T @ u
        v = v / v.norm()  # 0 / 0 for W = 0
        u = W @ v
        u = u / u.norm()
    return u @ (W @ v), u, v


def pi_ignores_eps(W, u, n_iters=1, eps=1e-12):
    for _ in range(n_iters):
        v = F.normalize(W.T @ u, dim=0)  # eps not passed on
        u = F.normalize(W @ v, dim=0)
    return u @ (W @ v), u, v


def pi_only_v_normalized(W, u, n_iters=1, eps=1e-12):
    for _ in range(n_iters):
        v = F.normalize(W.T @ u, dim=0, eps=eps)
        u = W @ v
    return u @ (W @ v), u, v


test_power_iteration_mistakes_are_named = mistakes_are_named(
    check_power_iteration,
    [
        (pi_unnormalized, r"not unit vectors.*normalize"),
        (pi_one_step_only, r"one step although n_iters"),
        (pi_stale_sigma, r"u \*before\* the last update"),
        (pi_swapped_outputs, r"u and v are swapped.*u lives on the OUTPUT side"),
        (pi_in_place, r"changed the u passed in, in place"),
        (pi_u_first, r"v comes from the NEW u.*FIRST"),
        (pi_float_sigma, r"sigma should be a scalar"),
        (pi_item_sigma, r"sigma is a Python float \(\.item\(\)\?\).*0-dim tensor"),
        (pi_normalize_without_dim, r"F\.normalize\(x\) normalizes along dim=1 by default.*dim=0"),
        (pi_transposes_swapped, r"W and W\^T are swapped"),
        (pi_one_extra_step, r"you took 5 steps although n_iters = 4.*range\(n_iters\)"),
        (pi_range_minus_one, r"3 steps although n_iters = 4, one too few.*range\(n_iters\)"),
        (pi_exact_sigma, r"EXACT spectral norm.*estimate"),
        (pi_random_start, r"new random start.*u you are given"),
        (pi_fixed_start, r"does not depend on the u you are given"),
        (pi_no_eps_guard, r"W = 0.*NaN.*F\.normalize\(x, dim=0, eps=eps\)"),
        (pi_ignores_eps, r"eps argument is ignored"),
        (pi_only_v_normalized, r"not unit vectors.*BOTH"),
    ],
)


def pi_norm_sigma(W, u, n_iters=1, eps=1e-12):
    """sigma = |W v|: equal to u^T W v, since u = W v / |W v|."""
    for _ in range(n_iters):
        v = F.normalize(W.t() @ u, p=2, dim=0, eps=eps)
        u = F.normalize(W @ v, p=2, dim=0, eps=eps)
    return torch.linalg.vector_norm(W @ v), u, v


def pi_manual_normalize(W, u, n_iters=1, eps=1e-12):
    """Normalization written out, max(|x|, eps) as F.normalize does; torch.mv and torch.dot."""
    n = 0
    while n < n_iters:
        v = torch.mv(W.T, u)
        v = v / v.norm().clamp_min(eps)
        u = torch.mv(W, v)
        u = u / u.norm().clamp_min(eps)
        n += 1
    return torch.dot(u, torch.mv(W, v)), u, v


def pi_plus_eps(W, u, n_iters=1, eps=1e-12):
    """x / (|x| + eps): another common guard."""
    for _ in range(n_iters):
        v = torch.einsum("oi,o->i", W, u)
        v = v / (v.norm() + eps)
        u = torch.einsum("oi,i->o", W, v)
        u = u / (u.norm() + eps)
    return v @ (W.T @ u), u, v


test_power_iteration_alternatives_pass = alternatives_pass(
    check_power_iteration, [spectral.power_iteration, pi_norm_sigma, pi_manual_normalize, pi_plus_eps]
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
        if weight.ndim > 2:  # v sized by weight.shape[1], which is only right for a linear weight
            self.register_buffer("v", F.normalize(weight.detach().new_ones(weight.shape[1]), dim=0))


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


class SolutionISN(nn.Module):
    """Written as the lesson's solution does (random unit u, 15 power steps); a base for __init__ mistakes."""

    def __init__(self, weight, n_power_iterations=1, eps=1e-12):
        super().__init__()
        self.n_power_iterations, self.eps = n_power_iterations, eps
        W = self.matrix(weight)
        u, v = self.start(W)
        self.register_buffer("u", u)
        self.register_buffer("v", v)
        self.register_buffer("sigma_init", torch.linalg.matrix_norm(W, ord=2))

    def matrix(self, weight):
        return weight.detach().flatten(1)

    def start(self, W):
        u = F.normalize(torch.randn(W.shape[0], dtype=W.dtype), dim=0, eps=self.eps)
        _, u, v = spectral.power_iteration(W, u, 15, self.eps)
        return u, v

    def forward(self, weight):
        W = weight.flatten(1)
        if self.training:
            with torch.no_grad():
                _, u, v = spectral.power_iteration(W, self.u, self.n_power_iterations, self.eps)
                self.u.copy_(u)
                self.v.copy_(v)
        return weight * (self.sigma_init / (self.u.clone() @ (W @ self.v.clone())))


class WeightDataSigma(GoodISN):
    def forward(self, weight):
        W = weight.data.flatten(1)  # .data: right values, but sigma is now a constant for autograd
        if self.training:
            self.step(W)
        return weight * (self.sigma_init / self.sigma(W))


class WeightDataOutput(GoodISN):
    def forward(self, weight):
        return super().forward(weight.data)


class NoGradForward(GoodISN):
    def forward(self, weight):
        with torch.no_grad():
            return super().forward(weight)


class NonPersistentU(GoodISN):
    def __init__(self, weight, n_power_iterations=1, eps=1e-12):
        super().__init__(weight, n_power_iterations, eps)
        self.register_buffer("u", self.u.clone(), persistent=False)


class NormalizeWithoutDimInit(SolutionISN):
    def start(self, W):
        u = F.normalize(torch.randn(W.shape[0], dtype=W.dtype))  # default dim=1 on a 1-D vector
        _, u, v = spectral.power_iteration(W, u, 15, self.eps)
        return u, v


class OnlyUWrittenBack(GoodISN):
    def step(self, W):
        with torch.no_grad():
            _, u, v = spectral.power_iteration(W, self.u, self.n_power_iterations, self.eps)
            self.u.copy_(u)  # v forgotten


class FreshStartEachForward(GoodISN):
    def step(self, W):
        with torch.no_grad():
            u = F.normalize(torch.randn(W.shape[0], dtype=W.dtype), dim=0)  # not self.u: nothing carries over
            _, u, v = spectral.power_iteration(W, u, self.n_power_iterations, self.eps)
            self.u.copy_(u)
            self.v.copy_(v)


class RandomUVNoSteps(SolutionISN):
    def start(self, W):
        return F.normalize(torch.randn(W.shape[0], dtype=W.dtype), dim=0), F.normalize(
            torch.randn(W.shape[1], dtype=W.dtype), dim=0
        )


class ZeroUV(SolutionISN):
    def start(self, W):
        return W.new_zeros(W.shape[0]), W.new_zeros(W.shape[1])


class Float32Buffers(SolutionISN):
    def start(self, W):
        W = W.float()  # "fixes" a dtype clash by casting the weight
        u = F.normalize(torch.randn(W.shape[0]), dim=0)
        _, u, v = spectral.power_iteration(W, u, 15, self.eps)
        return u, v


class MixedDtypeInit(SolutionISN):
    def start(self, W):
        u = F.normalize(torch.randn(W.shape[0]), dim=0)  # float32, whatever W is
        _, u, v = spectral.power_iteration(W, u, 15, self.eps)
        return u, v


class SigmaInitFloat(GoodISN):
    def __init__(self, weight, n_power_iterations=1, eps=1e-12):
        super().__init__(weight, n_power_iterations, eps)
        s = self.sigma_init.item()
        del self._buffers["sigma_init"]
        self.sigma_init = s


class FrobeniusSigmaInit(GoodISN):
    def __init__(self, weight, n_power_iterations=1, eps=1e-12):
        super().__init__(weight, n_power_iterations, eps)
        self.sigma_init.copy_(torch.linalg.norm(weight.detach().flatten(1)))  # default ord: Frobenius


class ConvMatrixNormNoFlatten(GoodISN):
    def __init__(self, weight, n_power_iterations=1, eps=1e-12):
        super().__init__(weight, n_power_iterations, eps)
        self.register_buffer("sigma_init", torch.linalg.matrix_norm(weight.detach(), ord=2))


class InvertedRatio(GoodISN):
    def forward(self, weight):
        W = weight.flatten(1)
        if self.training:
            self.step(W)
        return weight * (self.sigma(W) / self.sigma_init)


class StepAfterSigma(GoodISN):
    def forward(self, weight):
        W = weight.flatten(1)
        sigma = self.sigma(W)  # from the old u, v
        if self.training:
            self.step(W)
        return weight * (self.sigma_init / sigma)


class SigmaInitNotDetached(GoodISN):
    def __init__(self, weight, n_power_iterations=1, eps=1e-12):
        super().__init__(weight, n_power_iterations, eps)
        self.register_buffer("sigma_init", torch.linalg.matrix_norm(weight.flatten(1), ord=2))


class NoNPowerIterationsArg(GoodISN):
    def __init__(self, weight, eps=1e-12):  # the stub's n_power_iterations argument left out
        super().__init__(weight, 1, eps)


class NoFlattenInit(SolutionISN):
    def matrix(self, weight):
        return weight.detach()  # .flatten(1) forgotten: a conv weight stays (out, in, k, k)


class EvalReturnsWeight(GoodISN):
    def forward(self, weight):
        return super().forward(weight) if self.training else weight


class ForwardNoFlatten(GoodISN):
    def forward(self, weight):
        if self.training:
            self.step(weight)  # a conv weight (out, in, k, k) is not a matrix
        return weight * (self.sigma_init / self.sigma(weight.flatten(1)))


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
        (WeightDataSigma, r"sigma carries no gradient.*weight\.data"),
        (WeightDataOutput, r"no autograd graph.*weight\.data"),
        (NoGradForward, r"no autograd graph.*torch\.no_grad\(\)"),
        (NonPersistentU, r"u is registered with persistent=False.*state_dict"),
        (NormalizeWithoutDimInit, r"F\.normalize\(x\) normalizes along dim=1 by default.*dim=0"),
        (OnlyUWrittenBack, r"v is never written back"),
        (FreshStartEachForward, r"does not start from the stored self\.u"),
        (RandomUVNoSteps, r"after __init__, u and v should be power-iteration estimates.*15 power steps"),
        (ZeroUV, r"after __init__.*\|u\| = 0.*random UNIT u"),
        (Float32Buffers, r"float64 weight your buffers are .*u.*float32.*dtype"),
        (SigmaInitFloat, r"self\.sigma_init is a plain attribute, not a buffer \(a float\).*not \.item\(\)"),
        (FrobeniusSigmaInit, r"FROBENIUS norm.*matrix_norm\(W, ord=2\)"),
        (ConvMatrixNormNoFlatten, r"one norm per \(k, k\) kernel.*flatten"),
        (InvertedRatio, r"ratio is upside down"),
        (StepAfterSigma, r"BEFORE the power step.*take the power step first"),
        (SigmaInitNotDetached, r"sigma_init requires grad.*detach"),
        (NoNPowerIterationsArg, r"unexpected keyword argument 'n_power_iterations'.*argument names"),
        (EvalReturnsWeight, r"in eval mode you return the weight unchanged"),
        (ForwardNoFlatten, r"W must be a matrix.*W\.flatten\(1\)"),
        (NoFlattenInit, r"W must be a matrix.*W\.flatten\(1\).*ISN\(weight of shape \(4, 3, 3, 3\)\)"),
        (MixedDtypeInit, r"float64 weight.*Likely cause: mixed dtypes.*input's dtype"),
    ],
)


class LocalVectors(GoodISN):
    """sigma from the power step's own (fresh) u, v in training mode: no clones needed there."""

    def forward(self, weight):
        W = weight.reshape(weight.shape[0], -1)
        u, v = self.u.clone(), self.v.clone()
        if self.training:
            with torch.no_grad():
                _, u, v = spectral.power_iteration(W, self.u, self.n_power_iterations, self.eps)
                self.u.copy_(u)
                self.v.copy_(v)
        return weight / (u @ W @ v) * self.sigma_init


class AssignBuffers(SolutionISN):
    """Writes back by assignment (nn.Module routes `self.u = tensor` to the buffer); svdvals; eps 1e-6."""

    def __init__(self, weight, n_power_iterations=1, eps=1e-6):
        super().__init__(weight, n_power_iterations, eps)
        self.sigma_init = torch.linalg.svdvals(weight.detach().flatten(1))[0]

    @torch.no_grad()
    def _update(self, W):
        _, self.u, self.v = spectral.power_iteration(W, self.u, self.n_power_iterations, self.eps)

    def forward(self, weight):
        W = weight.flatten(1)
        if self.training:
            self._update(W)
        sigma = torch.dot(self.u.clone(), torch.mv(W, self.v.clone()))
        return self.sigma_init * weight / sigma


test_isn_alternatives_pass = alternatives_pass(
    check_isn, [spectral.ISN, GoodISN, SolutionISN, LocalVectors, AssignBuffers]
)


def test_crash_in_learner_code_is_reported_with_its_cause():
    def crashes(W, u, n_iters=1, eps=1e-12):
        return (W @ u[None]).sum(), u, u  # (out, in) @ (1, out): inner sizes differ

    assert_rejects(
        check_power_iteration, crashes, r"your code raised RuntimeError.*Likely cause: a matrix product"
    )
