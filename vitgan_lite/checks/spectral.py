"""Checkers for lesson 04 (spectral normalization): Exercise 4.1 ``power_iteration`` and Exercise 4.2
``ISN``, ViTGAN's improved spectral normalization W_bar = sigma(W_init) * W / sigma(W) (Sec. 4.1).

Shape legend: ``W`` a weight matrix (out, in); ``u`` (out,) and ``v`` (in,) its singular-vector estimates.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from vitgan_lite.checks._core import checker, expect, expect_close, expect_tensor, fail, seeded
from vitgan_lite.spectral import ISN as RefISN
from vitgan_lite.spectral import power_iteration as ref_power_iteration

# (out, in, n_iters): tall, wide, square, a single row, and a long run.
PI_CASES = [(5, 3, 1), (3, 7, 2), (6, 6, 4), (1, 4, 1), (8, 5, 30)]


def _unit(n: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(n, generator=seeded(seed)), dim=0)  # (n,)


def _reference_u(W: torch.Tensor, u: torch.Tensor, n_iters: int) -> torch.Tensor:
    """u after ``n_iters`` power-iteration steps from ``u`` on ``W.flatten(1)``."""
    W = W.flatten(1)  # (out, in)
    for _ in range(n_iters):
        u = F.normalize(W @ F.normalize(W.T @ u, dim=0), dim=0)  # (out,)
    return u


def _stale_sigma(W: torch.Tensor, u: torch.Tensor, n_iters: int) -> torch.Tensor:
    """The mistake of returning sigma from the u *before* the last step: u_prev^T W v = |W^T u_prev|."""
    for _ in range(n_iters):
        u_prev = u
        v = F.normalize(W.T @ u, dim=0)  # (in,)
        u = F.normalize(W @ v, dim=0)  # (out,)
    return u_prev @ (W @ v)  # ()


def _diagnose_power_iteration(W, u0, n_iters, sigma, u, v) -> str:
    """Name the mistake that turns (W, u0) into (sigma, u, v), if it is one we know."""
    if abs(u.norm().item() - 1) > 1e-4 or abs(v.norm().item() - 1) > 1e-4:
        return (
            f"your u and v are not unit vectors (|u| = {u.norm().item():.4g}, |v| = {v.norm().item():.4g}): "
            "normalize at every step, v = W^T u / |W^T u| and u = W v / |W v| (F.normalize(..., dim=0)); "
            "without it the vectors grow like sigma^k and sigma = u^T W v is wrong"
        )
    if n_iters > 1:
        s1, u1, v1 = ref_power_iteration(W, u0, 1)
        if torch.allclose(u, u1, atol=1e-5) and torch.allclose(v, v1, atol=1e-5):
            return f"you took one step although n_iters = {n_iters}: repeat the two updates n_iters times"
    s_ref, u_ref, v_ref = ref_power_iteration(W, u0, n_iters)
    if torch.allclose(u, u_ref, atol=1e-5) and torch.allclose(v, v_ref, atol=1e-5):
        if torch.allclose(sigma, _stale_sigma(W, u0, n_iters), atol=1e-5, rtol=1e-4):
            return (
                "u and v are right but sigma comes from the u *before* the last update: compute "
                "sigma = u^T W v after the loop, with the new u and v"
            )
        return "u and v are right but sigma is not: after the loop, sigma = u^T (W v), a scalar"
    return (
        "u or v differ from the reference. Each step is v = normalize(W^T u), then u = normalize(W v), in "
        "that order, starting from the u you are given; the result is (sigma, u, v)"
    )


@checker("4.1", "power iteration")
def check_power_iteration(power_iteration: Callable[..., tuple]) -> None:
    """Check a learner's ``power_iteration(W, u, n_iters) -> (sigma, u, v)`` against the reference."""
    for seed, (out, inp, n_iters) in enumerate(PI_CASES):
        W = torch.randn(out, inp, generator=seeded(seed))  # (out, in)
        u0 = _unit(out, 100 + seed)  # (out,)
        u_given = u0.clone()
        res = power_iteration(W.clone(), u_given, n_iters)
        expect(
            isinstance(res, tuple) and len(res) == 3,
            f"power_iteration should return a tuple (sigma, u, v), got {type(res).__name__}",
        )
        sigma, u, v = res
        expect(
            isinstance(sigma, torch.Tensor) and sigma.numel() == 1,
            "sigma should be a scalar tensor: sigma = u @ (W @ v), not a vector or a Python float",
        )
        if out != inp and isinstance(u, torch.Tensor) and tuple(u.shape) == (inp,):
            fail(
                f"for W of shape {(out, inp)} your u has shape {(inp,)}: u lives on the OUTPUT side, (out,), "
                "and v on the input side, (in,). Return (sigma, u, v) in that order, with v = W^T u / |W^T u|"
            )
        expect_tensor(u, (out,), f"u for W of shape {(out, inp)}")
        expect_tensor(v, (inp,), f"v for W of shape {(out, inp)}")
        expect(
            torch.equal(u_given, u0),
            "you changed the u passed in, in place: return the new u instead (ISN writes it back itself)",
        )
        s_ref, u_ref, v_ref = ref_power_iteration(W, u0, n_iters)
        ok = (
            torch.allclose(u, u_ref, atol=1e-5)
            and torch.allclose(v, v_ref, atol=1e-5)
            and torch.allclose(sigma.reshape(()), s_ref, atol=1e-5, rtol=1e-4)
        )
        if not ok:
            msg = _diagnose_power_iteration(W, u0, n_iters, sigma.reshape(()), u, v)
            fail(f"for W of shape {(out, inp)} and n_iters={n_iters}: {msg}")
    # Defining property: with a clear gap between the top two singular values, the estimate converges to
    # the exact spectral norm. W = U diag(3, 1.5, 1, 0.5) V^T, so sigma(W) = 3 by construction.
    U, _ = torch.linalg.qr(torch.randn(6, 4, generator=seeded(20)))  # (6, 4), orthonormal columns
    V, _ = torch.linalg.qr(torch.randn(5, 4, generator=seeded(21)))  # (5, 4)
    W = U @ torch.diag(torch.tensor([3.0, 1.5, 1.0, 0.5])) @ V.T  # (6, 5)
    sigma, u, v = power_iteration(W, _unit(6, 22), 60)
    expect_close(
        sigma.reshape(()),
        torch.linalg.matrix_norm(W, ord=2),
        "after 60 steps sigma should equal the exact spectral norm torch.linalg.matrix_norm(W, 2) = 3",
        atol=1e-4,
    )
    expect_close(W @ v, sigma.reshape(()) * u, "at convergence W v = sigma u should hold", atol=1e-4)


# ------------------------------------------------------------------------------------------------------
# Exercise 4.2: ISN as a parametrization, ISN(weight, n_power_iterations=1, eps=1e-12), forward(W) -> W_bar.

_REWRAP = (
    "the weight you normalize no longer receives a gradient: it looks re-wrapped as a fresh nn.Parameter "
    "(nn.Parameter(...) makes a NEW leaf tensor, cut off from the graph). The optimizer holds the original "
    "parameter, which then silently stops training. Compute W_bar with ordinary tensor operations on the "
    "`weight` argument and return it; never wrap it in nn.Parameter"
)
_NO_GRAD = (
    "gradients flow into u and v: they are estimates, constants for the backward (Miyato et al. 2018). "
    "Take the power step inside `with torch.no_grad():`, write u and v back there, and use the stored "
    "buffers (cloned) in sigma = u^T W v"
)


def _buffers(norm: nn.Module, W: torch.Tensor) -> dict[str, torch.Tensor]:
    """Find u, v, sigma_init on the learner's module; name what is missing or mis-registered."""
    params, bufs = dict(norm.named_parameters()), dict(norm.named_buffers())
    out_f, in_f = W.shape[0], W[0].numel()
    for name in ("u", "v", "sigma_init"):
        expect(
            name not in params,
            f"{name} is an nn.Parameter: the optimizer would train it and gradients would flow into it. "
            f"Register it with self.register_buffer({name!r}, ...) instead",
        )
        if name not in bufs:
            expect(
                not isinstance(getattr(norm, name, None), torch.Tensor),
                f"self.{name} is a plain attribute, not a buffer: it would be missing from state_dict() "
                f"(checkpoints) and would not follow .to(device). Use self.register_buffer({name!r}, ...)",
            )
            fail(
                "ISN must keep three buffers: u (out,), v (in,) and sigma_init (a scalar), registered in "
                f"__init__ with self.register_buffer; found buffers {sorted(bufs)}"
            )
    saved = norm.state_dict()
    dropped = [name for name in ("u", "v", "sigma_init") if name not in saved]
    expect(
        not dropped,
        f"{', '.join(dropped)} is registered with persistent=False, so it is missing from state_dict(): a "
        "checkpoint would lose it and a resumed run would restart the power iteration (and, for "
        "sigma_init, forget sigma(W_init)). Use self.register_buffer(name, tensor) without persistent=False",
    )
    kind = "conv weight (out, in, k, k)" if W.ndim == 4 else "weight (out, in)"
    expect(
        tuple(bufs["u"].shape) == (out_f,) and tuple(bufs["v"].shape) == (in_f,),
        f"for a {kind} of shape {tuple(W.shape)}, u should be ({out_f},) and v ({in_f},), got "
        f"{tuple(bufs['u'].shape)} and {tuple(bufs['v'].shape)}: treat the weight as the matrix W.flatten(1)",
    )
    expect(bufs["sigma_init"].numel() == 1, "sigma_init should be a scalar tensor, sigma(W_init)")
    return bufs


def _reference(W_init: torch.Tensor, bufs: dict[str, torch.Tensor], u, v) -> RefISN:
    """The package's ISN with the learner's sigma_init and the given u, v (so both start equal)."""
    ref = RefISN(W_init)
    with torch.no_grad():
        ref.sigma_init.copy_(bufs["sigma_init"].reshape(()))
        ref.u.copy_(u)
        ref.v.copy_(v)
    return ref


def _diagnose_isn_forward(out, Wt, bufs, u0, v0, expected) -> str:
    """Name the mistake that turns the trained weight Wt into ``out``, if it is one we know."""
    W = Wt.flatten(1)  # (out, in)
    s_init = bufs["sigma_init"].reshape(())
    with torch.no_grad():
        _, u1, v1 = ref_power_iteration(W, u0)
        sigma_est = u1 @ (W @ v1)  # () the one-step estimate of sigma(W)
        sigma_exact = torch.linalg.matrix_norm(W, ord=2)  # ()
        sigma_stale = u0 @ (W @ v0)  # () with no power step

    def close(t: torch.Tensor) -> bool:
        return torch.allclose(out, t, atol=1e-5, rtol=1e-4)

    if close(Wt / sigma_est):
        return (
            "your output has spectral norm 1: that is plain SN, W / sigma(W). ISN multiplies back the norm "
            "the weight had at initialization: W_bar = sigma_init * W / sigma(W) (ViTGAN eq. 4)"
        )
    if close(Wt * (sigma_exact / sigma_est)) or close(Wt * (sigma_exact / sigma_exact)):
        return (
            "sigma(W_init) is re-estimated every step from the CURRENT weight, so W_bar ~= W and nothing is "
            "normalized. Compute sigma_init once, in __init__, store it with register_buffer, and only read "
            "it in forward"
        )
    if close(Wt * (s_init / sigma_exact)):
        return (
            "you compute sigma(W) exactly (an SVD) on every forward. ISN estimates it cheaply: one power "
            "step from the stored u, v in training mode, then sigma = u^T W v"
        )
    if close(Wt * (s_init / sigma_stale)):
        return (
            "in training mode you never take a power-iteration step: sigma comes from the stored u, v as "
            "they were. When self.training, first update u, v by power_iteration(W, self.u, n) under "
            "torch.no_grad() and write them back"
        )
    return "W_bar differs from sigma_init * W / (u^T W v) with u, v one power step from the stored ones"


def _train_forward_checks(cls: type, W_init: torch.Tensor, Wt: torch.Tensor, seed: int) -> None:
    """One training-mode forward and backward on a 'trained' weight Wt, against the reference."""
    norm = cls(nn.Parameter(W_init.clone()))
    bufs = _buffers(norm, W_init)
    sigma_true = torch.linalg.matrix_norm(W_init.flatten(1), ord=2)  # () sigma(W_init), exact
    s_init = bufs["sigma_init"].reshape(())
    expect(
        abs(s_init.item() - sigma_true.item()) <= 1e-3 * sigma_true.item(),
        f"sigma_init = {s_init.item():.5g} but sigma(W_init) = {sigma_true.item():.5g}: compute it once, "
        "exactly, with torch.linalg.matrix_norm(W.flatten(1), ord=2) on the weight given to __init__",
    )
    expect(
        not bufs["u"].requires_grad and not bufs["v"].requires_grad,
        "u and v require grad after __init__: build them from weight.detach() (or under torch.no_grad())",
    )
    # Put both at the same NON-converged u, v, so that a missing power step or a gradient through it shows.
    out_f, in_f = bufs["u"].shape[0], bufs["v"].shape[0]
    u0, v0 = _unit(out_f, 200 + seed), _unit(in_f, 300 + seed)  # (out,), (in,)
    with torch.no_grad():
        norm.u.copy_(u0)
        norm.v.copy_(v0)
    ref = _reference(W_init, bufs, u0, v0)
    norm.train()
    ref.train()
    Wl = Wt.clone().requires_grad_(True)
    Wr = Wt.clone().requires_grad_(True)
    out = norm(Wl)
    expected = ref(Wr)
    expect_tensor(out, tuple(Wt.shape), f"ISN's forward on a weight of shape {tuple(Wt.shape)}")
    expect(not isinstance(out, nn.Parameter) and out.grad_fn is not None, _REWRAP)
    expect(
        torch.allclose(norm.sigma_init.reshape(()), s_init),
        "sigma_init changed during forward: sigma(W_init) is re-estimated every step. Compute it once, "
        "in __init__, and only read it in forward",
    )
    if not torch.allclose(out, expected, atol=1e-5, rtol=1e-4):
        fail(_diagnose_isn_forward(out.detach(), Wt, bufs, u0, v0, expected))
    if torch.allclose(norm.u, u0) and torch.allclose(norm.v, v0):
        fail(
            "u and v are never written back: after a training forward the buffers still hold their old "
            "values, so the estimate does not carry over and never converges. Inside torch.no_grad(), "
            "copy the new vectors in: self.u.copy_(u); self.v.copy_(v)"
        )
    expect(
        not (norm.u.requires_grad or norm.v.requires_grad),
        _NO_GRAD,
    )
    expect_close(norm.u, ref.u, "after one training forward, u should be one power step from the stored u")
    expect_close(norm.v, ref.v, "after one training forward, v should be one power step from the stored u")
    G = torch.randn(Wt.shape, generator=seeded(400 + seed))  # a random upstream gradient
    try:
        (out * G).sum().backward()
    except RuntimeError as e:
        if "inplace" in str(e):  # the power step was recorded by autograd and then overwritten in place
            fail(_NO_GRAD)
        raise
    (expected * G).sum().backward()
    expect(Wl.grad is not None, _REWRAP)
    expect(
        torch.allclose(Wl.grad, Wr.grad, atol=1e-5, rtol=1e-4),
        f"{_NO_GRAD} (the gradient with respect to W differs from the reference)",
    )


@checker("4.2", "ISN, improved spectral normalization")
def check_isn(ISN: type) -> None:
    """Check a learner's ISN parametrization class ``ISN(weight, n_power_iterations=1, eps=1e-12)``."""
    # A linear weight (5, 7), a tall one (9, 4) and a conv weight (4, 3, 3, 3); the 'trained' weights are
    # scaled and perturbed copies of the initial ones, as after some optimizer steps.
    for seed, shape in enumerate([(5, 7), (9, 4), (4, 3, 3, 3)]):
        W_init = 0.4 * torch.randn(shape, generator=seeded(500 + seed))
        Wt = 2.5 * W_init + 0.3 * torch.randn(shape, generator=seeded(600 + seed))
        _train_forward_checks(ISN, W_init, Wt, seed)

    # Eval mode: no power step, buffers untouched, output from the stored u, v.
    W_init = 0.4 * torch.randn(6, 5, generator=seeded(700))
    norm = ISN(nn.Parameter(W_init.clone())).eval()
    bufs = _buffers(norm, W_init)
    u0, v0 = _unit(6, 701), _unit(5, 702)
    with torch.no_grad():
        norm.u.copy_(u0)
        norm.v.copy_(v0)
    ref = _reference(W_init, bufs, u0, v0).eval()
    Wt = 1.7 * W_init
    with torch.no_grad():
        out = norm(Wt)
    expect(
        torch.equal(norm.u, u0) and torch.equal(norm.v, v0),
        "u and v changed in eval mode: power iteration must update them only when self.training is True "
        "(evaluation, sampling and FID must not change the layer)",
    )
    expect_close(out, ref(Wt), "in eval mode W_bar should be sigma_init * W / (u^T W v) with the stored u, v")

    # The number of power iterations is an argument: 3 steps from a random u must go further than 1.
    norm = ISN(nn.Parameter(W_init.clone()), n_power_iterations=3).train()
    bufs = _buffers(norm, W_init)
    with torch.no_grad():
        norm.u.copy_(u0)
        norm.v.copy_(v0)
        norm(Wt)
    expected_u = _reference_u(Wt, u0, 3)
    expect(
        torch.allclose(norm.u, expected_u, atol=1e-5),
        "ISN(weight, n_power_iterations=3) did not take 3 power-iteration steps per training forward: use "
        "self.n_power_iterations (stored in __init__) in the loop instead of a fixed count",
    )

    # Two training forwards before one backward (D(real) and D(fake) in one step) must work.
    norm = ISN(nn.Parameter(W_init.clone())).train()
    W = W_init.clone().requires_grad_(True)
    try:
        (norm(W).sum() + norm(W).sum()).backward()
    except RuntimeError as e:
        if "inplace" in str(e):
            fail(
                "two forwards then one backward fails: the second forward overwrote u, v in place while "
                "the first forward's graph still needed them. Use clones in the graph: "
                "sigma = self.u.clone() @ (W @ self.v.clone())"
            )
        raise

    # Defining property: with an optimizer pushing the weights to grow, sigma(W_bar) stays at sigma(W_init),
    # and the optimizer (built BEFORE wrapping) still trains the same nn.Parameter.
    torch_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)
        layer = nn.Linear(6, 9)
        with torch.no_grad():
            layer.weight.mul_(3.0)  # sigma(W_init) well away from 1, so plain SN would show
        param, before = layer.weight, layer.weight.detach().clone()
        opt = torch.optim.Adam(layer.parameters(), lr=0.05)
        parametrize.register_parametrization(layer, "weight", ISN(layer.weight))
        norm = layer.parametrizations.weight[0]
        sigma_init = float(norm.sigma_init)
        x = torch.randn(32, 6, generator=seeded(800))
        for _ in range(20):
            loss = -layer(x).square().mean()  # wants ever larger weights
            opt.zero_grad()
            loss.backward()
            expect(param.grad is not None, _REWRAP)
            opt.step()
    finally:
        torch.random.set_rng_state(torch_state)
    expect(
        layer.parametrizations.weight.original is param and not torch.equal(param.detach(), before),
        "the optimizer's parameter did not change after 20 steps: " + _REWRAP,
    )
    with torch.no_grad():
        for _ in range(30):  # training-mode forwards without steps: the power iteration catches up with W
            layer(x)
        layer.eval()
        sigma_eff = torch.linalg.matrix_norm(layer.weight, ord=2).item()
        sigma_raw = torch.linalg.matrix_norm(param, ord=2).item()
    expect(
        abs(sigma_eff - sigma_init) < 0.02 * sigma_init,
        f"after 20 Adam steps that grow W (sigma(W) = {sigma_raw:.3g}) and 30 more power steps, "
        f"sigma(W_bar) = {sigma_eff:.3g} but should stay at sigma(W_init) = {sigma_init:.3g}: that is what "
        "ISN is for",
    )


__all__ = ["check_isn", "check_power_iteration"]
