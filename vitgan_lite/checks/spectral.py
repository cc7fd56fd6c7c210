"""Checkers for lesson 04 (spectral normalization): Exercise 4.1 ``power_iteration`` and Exercise 4.2
``ISN``, ViTGAN's improved spectral normalization W_bar = sigma(W_init) * W / sigma(W) (Sec. 4.1).

Each checker tests one property at a time, from the most basic up (what is returned, shapes, the inputs
left alone, the values, then gradients, state, edge cases), and on a wrong value computes what the known
mistakes would give (no normalization, wrong number of steps, W and W^T swapped, sigma from the old u,
plain SN, sigma(W_init) re-estimated, gradients into u and v or none through sigma, buffers not written
back or not persistent, ...) to name the one it sees.

Shape legend: ``W`` a weight matrix (out, in); ``u`` (out,) and ``v`` (in,) its singular-vector estimates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from vitgan_lite.checks._core import (
    checker,
    expect,
    expect_close,
    expect_tensor,
    fail,
    seeded,
    stage,
)
from vitgan_lite.spectral import ISN as RefISN
from vitgan_lite.spectral import power_iteration as ref_power_iteration

# (out, in, n_iters): square first (W and W^T then have the same shape, so swapping them gives numbers to
# name instead of a crash), tall, wide, a single row, and a long run.
PI_CASES = [(6, 6, 4), (5, 3, 1), (3, 7, 2), (1, 4, 1), (8, 5, 30)]

NORMALIZE_NO_DIM = (
    "F.normalize(x) normalizes along dim=1 by default, and u and v are 1-D vectors (they only have dim 0), "
    "hence 'Dimension out of range'. Pass the axis: F.normalize(x, dim=0, eps=eps)"
)

HINTS_POWER_ITERATION = (
    "Start from the u you are given (do not change it in place). Repeat n_iters times, in this order: "
    "v = W^T u normalized to length 1 (W.T @ u, shape (in,)), then u = W v normalized to length 1 (W @ v, "
    "shape (out,)); normalize with F.normalize(..., dim=0, eps=eps), whose eps keeps an all-zero vector "
    "from dividing by 0. After the loop, with the NEW u and v, sigma = u^T W v, a 0-dim tensor (not "
    ".item()). Return (sigma, u, v) in that order.",
    "for _ in range(...):\n"
    "    v = F.normalize(W.T @ ..., dim=..., eps=eps)  # (in,)\n"
    "    u = F.normalize(W @ ..., dim=..., eps=eps)    # (out,)\n"
    "sigma = ... @ (W @ ...)                          # (), a tensor\n"
    "return ..., ..., ...",
)
HINTS_ISN = (
    "__init__: W = weight.detach().flatten(1) (a conv weight (out, in, k, k) becomes (out, in*k*k)); a "
    "random unit u (out,) in W's dtype, then 15 power steps give u and v; sigma_init = "
    "torch.linalg.matrix_norm(W, ord=2) (exact, the SPECTRAL norm, not the Frobenius one); store all three "
    "with self.register_buffer(name, tensor) (persistent, so they are saved in state_dict), and keep "
    "n_power_iterations and eps on self. forward(weight): W = weight.flatten(1); only if self.training, "
    "under torch.no_grad(), take self.n_power_iterations steps from self.u and copy the results into "
    "self.u and self.v; then sigma = u^T W v from CLONES of the buffers, differentiable in W (no .data or "
    ".detach() on weight); return weight * (self.sigma_init / sigma).",
    "# __init__\n"
    "W = weight.detach().flatten(1)\n"
    "u = F.normalize(torch.randn(W.shape[0], dtype=W.dtype), dim=0, eps=eps)\n"
    "_, u, v = package_power_iteration(W, u, ..., eps)\n"
    "self.register_buffer('u', ...); self.register_buffer('v', ...)\n"
    "self.register_buffer('sigma_init', torch.linalg.matrix_norm(..., ord=2))\n"
    "# forward\n"
    "W = weight.flatten(1)\n"
    "if self.training:\n"
    "    with torch.no_grad():\n"
    "        _, u, v = package_power_iteration(W, self.u, self.n_power_iterations, self.eps)\n"
    "        self.u.copy_(...); self.v.copy_(...)\n"
    "sigma = self.u.clone() @ (W @ ...)\n"
    "return weight * (... / ...)",
)


def _unit(n: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return F.normalize(torch.randn(n, generator=seeded(seed), dtype=dtype), dim=0)  # (n,)


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


def _call(fn: Callable[..., Any], *args: Any, what: str, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, with the crashes a known mistake explains turned into a message naming it."""
    try:
        return fn(*args, **kwargs)
    except IndexError as e:
        if "Dimension out of range" in str(e) and "got 1" in str(e):
            fail(f"{what} raised IndexError: {e}. {NORMALIZE_NO_DIM}")
        raise
    except UnboundLocalError as e:
        fail(
            f"{what} raised UnboundLocalError: {e}. A name set only inside the loop was used after it, and "
            "the loop ran zero times: loop `for _ in range(n_iters)` (not range(n_iters - 1) or "
            "range(1, n_iters)), so that n_iters = 1 takes one step"
        )


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> bool:
    return a.shape == b.shape and torch.allclose(a.double(), b.double(), atol=atol, rtol=1e-4)


def _probe(fn: Callable[..., Any], W: torch.Tensor, u0: torch.Tensor, n_iters: int) -> torch.Tensor | None:
    """The u the learner's function returns for (W, u0), or None if that call fails or returns no u."""
    try:
        res = fn(W.clone(), u0.clone(), n_iters)
    except Exception:  # noqa: BLE001  only a probe for naming a mistake already found
        return None
    ok = isinstance(res, tuple) and len(res) == 3 and isinstance(res[1], torch.Tensor)
    return res[1].detach() if ok and res[1].shape == u0.shape else None


def _diagnose_power_iteration(fn, W, u0, n_iters, sigma, u, v) -> str:
    """Name the mistake that turns (W, u0) into (sigma, u, v), if it is one we know."""
    if abs(u.norm().item() - 1) > 1e-4 or abs(v.norm().item() - 1) > 1e-4:
        return (
            f"your u and v are not unit vectors (|u| = {u.norm().item():.4g}, |v| = {v.norm().item():.4g}): "
            "normalize BOTH at every step, v = W^T u / |W^T u| and u = W v / |W v| "
            "(F.normalize(..., dim=0)); without it the vectors grow like sigma^k and sigma = u^T W v is wrong"
        )
    s_ref, u_ref, v_ref = ref_power_iteration(W, u0, n_iters)
    if W.shape[0] == W.shape[1]:
        if _close(u, v_ref) and _close(v, u_ref):
            return (
                "u and v are swapped: u lives on the OUTPUT side, (out,), and v on the input side, (in,). "
                "Return (sigma, u, v) in that order"
            )
        _, u_t, v_t = ref_power_iteration(W.T, u0, n_iters)
        if _close(u, u_t) and _close(v, v_t):
            return (
                "W and W^T are swapped: v = normalize(W^T u) uses W.T @ u (shape (in,)) and u = "
                "normalize(W v) uses W @ v (shape (out,)); yours iterates on W^T, whose top "
                "singular vectors are the other way round"
            )
    for k in range(1, n_iters + 3):
        if k != n_iters:
            _, u_k, v_k = ref_power_iteration(W, u0, k)
            if _close(u, u_k) and _close(v, v_k):
                if k == 1:
                    msg = f"you took one step although n_iters = {n_iters}"
                    return f"{msg}: repeat the two updates n_iters times"
                if k == n_iters - 1:
                    return (
                        f"you took {k} steps although n_iters = {n_iters}, one too few (range(1, n_iters) or "
                        "range(n_iters - 1)?): loop exactly `for _ in range(n_iters)`"
                    )
                return (
                    f"you took {k} steps although n_iters = {n_iters}: loop exactly "
                    "`for _ in range(n_iters)`, with no extra step before or after the loop"
                )
    if _close(u, u_ref) and _close(v, F.normalize(W.T @ u_ref, dim=0)):
        return (
            "v comes from the NEW u: each step is v = normalize(W^T u) FIRST, then u = normalize(W v), in "
            "that order, so the v you return is the one that produced u (v first, then u, inside the loop)"
        )
    if _close(u, u_ref) and _close(v, v_ref):
        if _close(sigma, _stale_sigma(W, u0, n_iters), atol=1e-5):
            return (
                "u and v are right but sigma comes from the u *before* the last update: compute "
                "sigma = u^T W v after the loop, with the new u and v"
            )
        if _close(sigma, torch.linalg.matrix_norm(W, ord=2)):
            return (
                "u and v are right but sigma is the EXACT spectral norm (an SVD): return the power-iteration "
                "estimate sigma = u^T (W v), from the u and v of the loop (cheap, and what SN relies on)"
            )
        return "u and v are right but sigma is not: after the loop, sigma = u^T (W v), a scalar"
    again, other = _probe(fn, W, u0, n_iters), _probe(fn, W, _unit(W.shape[0], 999), n_iters)
    if again is not None and not _close(again, u):
        return (
            "calling it twice with the same W and u gives different results: you draw a new random start. "
            "Start from the u you are given"
        )
    if n_iters < 5 and other is not None and _close(other, u):
        return (
            "the result does not depend on the u you are given (a fixed start such as ones?): start the "
            "iteration from the u argument, which ISN carries over from one training step to the next"
        )
    return (
        "u or v differ from the reference. Each step is v = normalize(W^T u), then u = normalize(W v), in "
        "that order, starting from the u you are given; the result is (sigma, u, v)"
    )


def _checked_power_iteration(power_iteration, W, u0, n_iters, *extra) -> tuple:
    """One call on copies: a 3-tuple with a scalar tensor sigma, u (out,) and v (in,), u0 left alone."""
    out, inp = W.shape
    u_given = u0.clone()
    res = _call(
        power_iteration,
        W.clone(),
        u_given,
        n_iters,
        *extra,
        what=f"power_iteration on W of shape {(out, inp)}",
    )
    expect(
        isinstance(res, tuple) and len(res) == 3,
        f"power_iteration should return a tuple (sigma, u, v), got {type(res).__name__}",
    )
    sigma, u, v = res
    expect(
        not isinstance(sigma, (float, int)),
        f"sigma is a Python {type(sigma).__name__} (.item()?): return the 0-dim tensor sigma = u @ (W @ v); "
        "ISN divides the weight by it, and that division must stay in the autograd graph",
    )
    expect(
        isinstance(sigma, torch.Tensor) and sigma.numel() == 1,
        "sigma should be a scalar tensor: sigma = u @ (W @ v), not a vector or a Python float",
    )
    if out != inp and isinstance(u, torch.Tensor) and tuple(u.shape) == (inp,):
        fail(
            f"for W of shape {(out, inp)} your u has shape {(inp,)}: u lives on the OUTPUT side, (out,), "
            "and v on the input side, (in,). Return (sigma, u, v) in that order, with v = W^T u / |W^T u|"
        )
    expect(isinstance(u, torch.Tensor), f"u should be a tensor (out,), got {type(u).__name__}")
    expect(isinstance(v, torch.Tensor), f"v should be a tensor (in,), got {type(v).__name__}")
    expect(
        tuple(u.shape) == (out,),
        f"u for W of shape {(out, inp)} should have shape {(out,)}, got {tuple(u.shape)}",
    )
    expect(
        tuple(v.shape) == (inp,),
        f"v for W of shape {(out, inp)} should have shape {(inp,)}, got {tuple(v.shape)}",
    )
    expect(
        torch.equal(u_given, u0),
        "you changed the u passed in, in place: return the new u instead (ISN writes it back itself)",
    )
    return sigma.reshape(()), u, v


@checker(
    "4.1",
    "power iteration",
    hints=HINTS_POWER_ITERATION,
    reference="vitgan_lite.spectral:power_iteration",
)
def check_power_iteration(power_iteration: Callable[..., tuple]) -> None:
    """Check a learner's ``power_iteration(W, u, n_iters, eps) -> (sigma, u, v)`` against the reference."""
    for seed, (out, inp, n_iters) in enumerate(PI_CASES):
        W = torch.randn(out, inp, generator=seeded(seed))  # (out, in)
        u0 = _unit(out, 100 + seed)  # (out,)
        sigma, u, v = _checked_power_iteration(power_iteration, W, u0, n_iters)
        expect(
            bool(torch.isfinite(sigma) & torch.isfinite(u).all() & torch.isfinite(v).all()),
            f"for W of shape {(out, inp)} your sigma, u or v contain NaN or inf",
        )
        s_ref, u_ref, v_ref = ref_power_iteration(W, u0, n_iters)
        if not (_close(u, u_ref) and _close(v, v_ref) and _close(sigma, s_ref)):
            msg = _diagnose_power_iteration(power_iteration, W, u0, n_iters, sigma, u, v)
            fail(f"for W of shape {(out, inp)} and n_iters={n_iters}: {msg}")

    # float64 works as the reference does.
    W = torch.randn(4, 3, generator=seeded(10), dtype=torch.float64)  # (out, in)
    u0 = _unit(4, 11, torch.float64)
    with stage("power_iteration on a float64 W of shape (4, 3)"):
        sigma, u, v = _checked_power_iteration(power_iteration, W, u0, 2)
    s_ref, u_ref, v_ref = ref_power_iteration(W, u0, 2)
    expect(
        _close(sigma, s_ref) and _close(u, u_ref) and _close(v, v_ref),
        "for a float64 W the result differs from the reference (a tensor created without the input's dtype?)",
    )

    # Numerical guard: for W = 0, W^T u is the zero vector; F.normalize's eps keeps it finite (sigma = 0).
    W = torch.zeros(4, 3)
    sigma, u, v = _checked_power_iteration(power_iteration, W, _unit(4, 12), 1)
    expect(
        bool(torch.isfinite(sigma) & torch.isfinite(u).all() & torch.isfinite(v).all()),
        "for W = 0 (an all-zero layer) your sigma, u or v are NaN: W^T u is the zero vector and x / x.norm() "
        "divides 0 by 0. Use F.normalize(x, dim=0, eps=eps), which divides by max(|x|, eps)",
    )
    # The eps argument is used: with eps = 1 and |W^T u| ~ 1e-3, F.normalize divides by eps, not by |W^T u|.
    W = 1e-3 * torch.randn(4, 3, generator=seeded(13))
    sigma, u, v = _checked_power_iteration(power_iteration, W, _unit(4, 14), 1, 1.0)
    expect(
        v.norm().item() < 0.5,
        "power_iteration(W, u, 1, eps=1.0) with |W^T u| ~ 0.001 returned a unit v: the eps argument is "
        "ignored. Pass it on: F.normalize(..., dim=0, eps=eps)",
    )

    # Defining property: with a clear gap between the top two singular values, the estimate converges to
    # the exact spectral norm. W = U diag(3, 1.5, 1, 0.5) V^T, so sigma(W) = 3 by construction.
    U, _ = torch.linalg.qr(torch.randn(6, 4, generator=seeded(20)))  # (6, 4), orthonormal columns
    V, _ = torch.linalg.qr(torch.randn(5, 4, generator=seeded(21)))  # (5, 4)
    W = U @ torch.diag(torch.tensor([3.0, 1.5, 1.0, 0.5])) @ V.T  # (6, 5)
    sigma, u, v = _checked_power_iteration(power_iteration, W, _unit(6, 22), 60)
    expect_close(
        sigma,
        torch.linalg.matrix_norm(W, ord=2),
        "after 60 steps sigma should equal the exact spectral norm torch.linalg.matrix_norm(W, 2) = 3",
        atol=1e-4,
    )
    expect_close(W @ v, sigma * u, "at convergence W v = sigma u should hold", atol=1e-4)


# ------------------------------------------------------------------------------------------------------
# Exercise 4.2: ISN as a parametrization, ISN(weight, n_power_iterations=1, eps=1e-12), forward(W) -> W_bar.

_REWRAP = (
    "the weight you normalize no longer receives a gradient: it looks re-wrapped as a fresh nn.Parameter "
    "(nn.Parameter(...) makes a NEW leaf tensor, cut off from the graph). The optimizer holds the original "
    "parameter, which then silently stops training. Compute W_bar with ordinary tensor operations on the "
    "`weight` argument and return it; never wrap it in nn.Parameter"
)
_NO_GRAPH = (
    "W_bar has no autograd graph, so the trained weight gets no gradient: the forward reads weight.data "
    "or weight.detach(), or runs entirely under torch.no_grad(). Only the power step belongs under "
    "no_grad; W_bar = weight * (sigma_init / sigma) must be computed from `weight` itself"
)
_NO_GRAD = (
    "gradients flow into u and v: they are estimates, constants for the backward (as torch's "
    "spectral_norm treats them). "
    "Take the power step inside `with torch.no_grad():`, write u and v back there, and use the stored "
    "buffers (cloned) in sigma = u^T W v"
)
_SIGMA_DETACHED = (
    "sigma carries no gradient: it was computed from weight.data / weight.detach() or under "
    "torch.no_grad(). Only u and v are constants; sigma = u^T W v must stay differentiable in W (its "
    "gradient is what keeps the normalized weight's spectral norm in check), so build it from `weight`"
)


def _build(cls: type, weight: torch.Tensor, **kwargs: Any) -> nn.Module:
    """``cls(nn.Parameter(weight), **kwargs)``, naming the crashes a known mistake explains."""
    shown = "".join(f", {k}={v}" for k, v in kwargs.items())
    dtype = "" if weight.dtype == torch.float32 else f"{str(weight.dtype).replace('torch.', '')} "
    what = f"ISN({dtype}weight of shape {tuple(weight.shape)}{shown})"
    with stage(what):
        return _call(cls, nn.Parameter(weight.clone()), what=what, **kwargs)


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
            value = getattr(norm, name, None)
            expect(
                not isinstance(value, (torch.Tensor, float, int)),
                f"self.{name} is a plain attribute, not a buffer (a {type(value).__name__}): it would be "
                "missing from state_dict() (checkpoints) and would not follow .to(device). Use "
                f"self.register_buffer({name!r}, tensor) (a tensor, not .item())",
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
    if W.ndim == 4 and tuple(bufs["sigma_init"].shape) == tuple(W.shape[:2]):
        fail(
            f"sigma_init has shape {tuple(bufs['sigma_init'].shape)} for a conv weight of shape "
            f"{tuple(W.shape)}: matrix_norm of the 4-D weight takes one norm per (k, k) kernel. Flatten "
            "first: torch.linalg.matrix_norm(W.flatten(1), ord=2)"
        )
    expect(bufs["sigma_init"].numel() == 1, "sigma_init should be a scalar tensor, sigma(W_init)")
    for name in ("u", "v", "sigma_init"):
        expect(
            not bufs[name].requires_grad,
            f"{name} requires grad after __init__: it was computed from the weight without .detach(), so it "
            "stays attached to a graph (the next backward runs through it, a second one fails). Build the "
            "buffers from W = weight.detach().flatten(1)",
        )
    return bufs


def _check_initial_estimate(bufs: dict[str, torch.Tensor], W_init: torch.Tensor) -> None:
    """After __init__, u and v are unit vectors from power steps on W_init: u = normalize(W v)."""
    W = W_init.flatten(1)  # (out, in)
    u, v = bufs["u"], bufs["v"]
    units = abs(u.norm().item() - 1) < 1e-4 and abs(v.norm().item() - 1) < 1e-4
    # The last step may have ended on u (u = normalize(W v), as in the lesson) or on v (v = normalize(W^T u)).
    paired = _close(u, F.normalize(W @ v, dim=0), atol=1e-4) or _close(
        v, F.normalize(W.T @ u, dim=0), atol=1e-4
    )
    expect(
        units and paired,
        "after __init__, u and v should be power-iteration estimates for W_init "
        f"(|u| = {u.norm().item():.3g}, |v| = {v.norm().item():.3g}): start from a random UNIT u, "
        "take 15 power steps, and register the u and v they return (then u = normalize(W v) "
        "holds); zeros or unrelated random vectors would give a wrong sigma until the iteration "
        "catches up",
    )


def _reference(W_init: torch.Tensor, bufs: dict[str, torch.Tensor], u, v) -> RefISN:
    """The package's ISN with the learner's sigma_init and the given u, v (so both start equal)."""
    ref = RefISN(W_init)
    with torch.no_grad():
        ref.sigma_init.copy_(bufs["sigma_init"].reshape(()))
        ref.u.copy_(u)
        ref.v.copy_(v)
    return ref


def _diagnose_isn_forward(out, Wt, norm, s_init, u0, v0) -> str:
    """Name the mistake that turns the trained weight Wt into ``out``, if it is one we know."""
    W = Wt.flatten(1)  # (out, in)
    with torch.no_grad():
        _, u1, v1 = ref_power_iteration(W, u0, 1)
        sigma_est = u1 @ (W @ v1)  # () the estimate after the power step
        sigma_exact = torch.linalg.matrix_norm(W, ord=2)  # ()
        sigma_stale = u0 @ (W @ v0)  # () with no power step
        u_now, v_now = norm.u.detach(), norm.v.detach()  # the learner's buffers after its forward

    def close(t: torch.Tensor) -> bool:
        return torch.allclose(out, t, atol=1e-5, rtol=1e-4)

    if close(Wt / sigma_est):
        return (
            "your output has spectral norm 1: that is plain SN, W / sigma(W). ISN multiplies back the norm "
            "the weight had at initialization: W_bar = sigma_init * W / sigma(W) (ViTGAN eq. 4)"
        )
    if close(Wt * (sigma_est / s_init)):
        return "the ratio is upside down: W_bar = W * sigma_init / sigma(W), not W * sigma(W) / sigma_init"
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
        if not (torch.allclose(u_now, u0) and torch.allclose(v_now, v0)):
            return (
                "sigma comes from u, v as they were BEFORE the power step (you update the buffers after "
                "computing sigma): in training mode take the power step first, write u and v back, then "
                "compute sigma = u^T W v from the new ones"
            )
        return (
            "in training mode you never take a power-iteration step: sigma comes from the stored u, v as "
            "they were. When self.training, first update u, v by power_iteration(W, self.u, n) under "
            "torch.no_grad() and write them back"
        )
    if not torch.allclose(u_now, u0) and not torch.allclose(u_now, u1, atol=1e-5):
        if close(Wt * (s_init / (u_now @ (W @ v_now)))):
            return (
                "your power step does not start from the stored self.u (a fresh random or fixed start each "
                "forward?): the estimate must carry over from step to step, so start from self.u"
            )
    if torch.allclose(u_now, u1, atol=1e-5) and torch.allclose(v_now, v0):
        return (
            "v is never written back (only u is): after the power step copy both, self.u.copy_(u) and "
            "self.v.copy_(v), inside torch.no_grad()"
        )
    return "W_bar differs from sigma_init * W / (u^T W v) with u, v one power step from the stored ones"


def _grad_through_uv(
    Wt: torch.Tensor, u0: torch.Tensor, s_init: torch.Tensor, G: torch.Tensor
) -> torch.Tensor:
    """The gradient with respect to W if the power step were (wrongly) differentiated through."""
    W = Wt.clone().requires_grad_(True)
    _, u, v = ref_power_iteration(W.flatten(1), u0, 1)
    ((W * (s_init / (u @ (W.flatten(1) @ v)))) * G).sum().backward()
    return W.grad


def _train_forward_checks(cls: type, W_init: torch.Tensor, Wt: torch.Tensor, seed: int) -> None:
    """One training-mode forward and backward on a 'trained' weight Wt, against the reference."""
    norm = _build(cls, W_init)
    bufs = _buffers(norm, W_init)
    sigma_true = torch.linalg.matrix_norm(W_init.flatten(1), ord=2)  # () sigma(W_init), exact
    s_init = bufs["sigma_init"].reshape(())
    if abs(s_init.item() - sigma_true.item()) > 1e-3 * sigma_true.item():
        frobenius = torch.linalg.vector_norm(W_init).item()
        if abs(s_init.item() - frobenius) <= 1e-3 * frobenius:
            fail(
                f"sigma_init = {s_init.item():.5g} is the FROBENIUS norm of W_init (torch.linalg.norm(W) or "
                "W.norm() with no ord), the square root of the sum of ALL squared singular values. ISN needs "
                f"the spectral norm, the largest one, {sigma_true.item():.5g}: "
                "torch.linalg.matrix_norm(W, ord=2)"
            )
        fail(
            f"sigma_init = {s_init.item():.5g} but sigma(W_init) = {sigma_true.item():.5g}: compute it once, "
            "exactly, with torch.linalg.matrix_norm(W.flatten(1), ord=2) on the weight given to __init__"
        )
    _check_initial_estimate(bufs, W_init)
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
    with stage(f"ISN's training-mode forward on a weight of shape {tuple(Wt.shape)}"):
        out = norm(Wl)
    expected = ref(Wr)
    expect_tensor(out, tuple(Wt.shape), f"ISN's forward on a weight of shape {tuple(Wt.shape)}")
    expect(not isinstance(out, nn.Parameter), _REWRAP)
    expect(out.grad_fn is not None, _NO_GRAPH)
    expect(
        torch.allclose(norm.sigma_init.reshape(()), s_init),
        "sigma_init changed during forward: sigma(W_init) is re-estimated every step. Compute it once, "
        "in __init__, and only read it in forward",
    )
    if not torch.allclose(out, expected, atol=1e-5, rtol=1e-4):
        fail(_diagnose_isn_forward(out.detach(), Wt, norm, s_init, u0, v0))
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
    if not torch.allclose(Wl.grad, Wr.grad, atol=1e-5, rtol=1e-4):
        with torch.no_grad():
            W = Wt.flatten(1)
            sigma = ref.u @ (W @ ref.v)  # () the reference's sigma after the power step
        if torch.allclose(Wl.grad, G * (s_init / sigma), atol=1e-5, rtol=1e-4):
            fail(_SIGMA_DETACHED)
        if torch.allclose(Wl.grad, _grad_through_uv(Wt, u0, s_init, G), atol=1e-5, rtol=1e-4):
            fail(f"{_NO_GRAD} (the gradient with respect to W differs from the reference)")
        fail(
            "the gradient with respect to W differs from the reference's, although W_bar is right: sigma = "
            "u^T W v must be differentiable in W, with u and v constants (clones of the buffers, updated "
            "under torch.no_grad())"
        )


@checker(
    "4.2",
    "ISN, improved spectral normalization",
    hints=HINTS_ISN,
    reference="vitgan_lite.spectral:ISN",
)
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
    norm = _build(ISN, W_init).eval()
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
    expect(
        not torch.allclose(out, Wt),
        "in eval mode you return the weight unchanged: ISN still normalizes in eval mode, W_bar = "
        "sigma_init * W / (u^T W v) with the stored u, v; only the power step is skipped",
    )
    expect_close(out, ref(Wt), "in eval mode W_bar should be sigma_init * W / (u^T W v) with the stored u, v")

    # The number of power iterations is an argument: 3 steps from a random u must go further than 1.
    norm = _build(ISN, W_init, n_power_iterations=3).train()
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

    # A float64 weight: the buffers follow its dtype and the forward matches the reference.
    W64 = 0.4 * torch.randn(5, 4, generator=seeded(710), dtype=torch.float64)
    norm = _build(ISN, W64).train()
    bufs = _buffers(norm, W64)
    wrong = {n: str(b.dtype).replace("torch.", "") for n, b in bufs.items() if b.dtype != torch.float64}
    expect(
        not wrong,
        f"for a float64 weight your buffers are {wrong}: create them in the weight's dtype "
        "(torch.randn(n, dtype=W.dtype), or W.new_empty(n).normal_()); a mixed-dtype power step fails or "
        "loses precision",
    )
    ref = _reference(W64, bufs, bufs["u"].clone(), bufs["v"].clone()).train()
    with stage("ISN's training-mode forward on a float64 weight of shape (5, 4)"):
        out = norm(1.3 * W64)
    expect_close(out, ref(1.3 * W64), "for a float64 weight, W_bar differs from the reference")

    # Two training forwards before one backward (D(real) and D(fake) in one step) must work.
    norm = _build(ISN, W_init).train()
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
