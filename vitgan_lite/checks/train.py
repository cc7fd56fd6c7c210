"""Checkers for lessons 10 and 12: Exercises 10.1 ``ema_update``, 10.2 ``d_step``, 12.1 ``frechet_distance``.

Exercise 10.2 asks for exactly :func:`vitgan_lite.train.d_step`: the same signature, the same function.

``ema_update`` and ``d_step`` are taught in ``notebooks/10_training_loop.ipynb`` (the EMA generator every
sample comes from; the discriminator's update with DiffAugment and bCR), ``frechet_distance`` in
``notebooks/12_cifar10_on_a_gpu.ipynb`` (the distance behind FID).

Shape legend: ``B`` batch, ``C, H, W`` image, ``Z`` latent width, ``d`` feature width.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from vitgan_lite.augment import diff_augment
from vitgan_lite.checks._core import ExerciseFailed, checker, expect, expect_close, fail, seeded
from vitgan_lite.losses import bcr_penalty, d_logistic_loss
from vitgan_lite.metrics import frechet_distance as ref_frechet_distance
from vitgan_lite.train import d_step as ref_d_step

# ----------------------------------------------------------------------------------------------------
# Exercise 10.1: ema_update(ema, model, decay)


class _Inner(nn.Module):
    """A nested block with a buffer, like ISN's power-iteration vector u in the discriminator."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.register_buffer("u", torch.zeros(3))


class _Tiny(nn.Module):
    """Parameters at the top level and inside a child, and buffers at both levels."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(2))
        self.inner = _Inner()
        self.register_buffer("step", torch.zeros(()))


def _pair(seed: int, ema_requires_grad: bool) -> tuple[nn.Module, nn.Module]:
    """``(ema, model)``: the EMA a copy of the model, then the model moved on (as after an optimizer step)."""
    gen = seeded(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _Tiny()
    ema = copy.deepcopy(model).requires_grad_(ema_requires_grad)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen))  # the model has trained a little
        for b in model.buffers():
            b.copy_(torch.randn(b.shape, generator=gen))  # e.g. a new power-iteration u
    return ema, model


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@checker("10.1", "ema_update")
def check_ema_update(ema_update: Callable[[nn.Module, nn.Module, float], None]) -> None:
    """Check a learner's in-place ``ema_update(ema, model, decay)``: ema_p <- decay ema_p + (1 - decay) p."""
    # Does the update read the model at all? Two models, one ema: the results must differ.
    ema_a, model_a = _pair(11, ema_requires_grad=False)
    ema_b, model_b = copy.deepcopy(ema_a), copy.deepcopy(model_a)
    with torch.no_grad():
        for p in model_b.parameters():
            p.add_(1.0)
    start = _snapshot(ema_a)
    ema_update(ema_a, model_a, 0.5)
    ema_update(ema_b, model_b, 0.5)
    moved = any(not torch.equal(p.detach(), start[n]) for n, p in ema_a.named_parameters())
    same = all(torch.equal(a.detach(), b.detach()) for a, b in zip(ema_a.parameters(), ema_b.parameters()))
    if moved and same:
        fail(
            "your EMA never reads the model's parameters: the ema moves, but the same way whatever the "
            "model holds (did you zip ema.parameters() with itself, i.e. iterate over ema.parameters() "
            "twice?). Zip ema.parameters() with model.parameters()"
        )
    for seed, decay in enumerate((0.9, 0.5, 0.999, 0.0, 0.75)):
        # ema frozen as the Trainer's G_ema is (requires_grad False); the model trains (requires_grad True)
        ema, model = _pair(seed, ema_requires_grad=False)
        before_ema, before_model = _snapshot(ema), _snapshot(model)
        params_before = {n: p for n, p in ema.named_parameters()}
        ema_update(ema, model, decay)
        after = dict(ema.named_parameters())
        expect(
            all(after.get(n) is p for n, p in params_before.items()),
            "ema's parameters were replaced by new objects: update them in place (ema_p.lerp_(p, 1 - decay) "
            "or ema_p.mul_(decay).add_(p, alpha=1 - decay)), so that anything holding them still sees them",
        )
        expect(
            all(torch.equal(v, before_model[k]) for k, v in _snapshot(model).items()),
            "ema_update changed the MODEL: only the ema is written; the model's weights are read-only here",
        )
        recorded = [n for n, p in ema.named_parameters() if p.grad_fn is not None or p.requires_grad]
        expect(
            not recorded,
            f"the EMA update was recorded by autograd (ema parameter {recorded[:1]} now has a grad_fn / "
            "requires grad): decorate ema_update with @torch.no_grad() (or use `with torch.no_grad():`) "
            "and read p.detach(); the EMA is a bookkeeping copy that no loss differentiates",
        )
        # "moved" beyond float rounding (decay * e + (1 - decay) * e is e only up to rounding)
        changed = {
            n: bool((p.detach() - before_ema[n]).abs().max() > 1e-6)
            for n, p in ema.named_parameters()
            if decay < 1
        }
        if decay < 1 and not any(changed.values()):
            fail(
                "your EMA tracks no parameters: not one ema parameter changed. Typical causes: iterating "
                "over an empty list or an already-used generator (model.parameters() is a one-shot "
                "generator), iterating over ema.parameters() twice (zip with itself), or rebinding a "
                "local name (ema_p = ...) instead of updating in place; zip ema.parameters() with "
                "model.parameters()"
            )
        if decay < 1 and not all(changed.values()):
            missed = sorted(n for n, c in changed.items() if not c)
            fail(
                f"some parameters were never averaged ({', '.join(missed)}): iterate over ALL parameters, "
                "including those of child modules (model.parameters() is recursive; "
                "parameters(recurse=False) and module._parameters are not)"
            )
        mp = dict(model.named_parameters())
        for n, p in ema.named_parameters():
            want = decay * before_ema[n] + (1 - decay) * mp[n].detach()
            if torch.allclose(p.detach(), want, atol=1e-6, rtol=1e-5):
                continue
            swapped = (1 - decay) * before_ema[n] + decay * mp[n].detach()
            if torch.allclose(p.detach(), swapped, atol=1e-6, rtol=1e-5):
                fail(
                    f"with decay={decay} the ema moved almost all the way to the model: decay is applied to "
                    "the wrong side. The EMA keeps `decay` of its OWN value: ema_p = decay * ema_p + "
                    "(1 - decay) * p (so decay=0.999 changes the ema by only 0.1% of the gap per step)"
                )
            err = (p.detach() - want).abs().max().item()
            fail(
                f"parameter {n} with decay={decay} is off by {err:.3g}: the rule is "
                "ema_p = decay * ema_p + (1 - decay) * p, applied once per call"
            )
        mb = dict(model.named_buffers())
        for n, b in ema.named_buffers():
            if torch.equal(b, mb[n]):
                continue
            if torch.equal(b, before_ema[n]):
                fail(
                    f"buffers not copied: ema buffer {n!r} still holds its old value. Buffers (running "
                    "statistics, ISN's power-iteration u) are not parameters; copy them: "
                    "for b_ema, b in zip(ema.buffers(), model.buffers()): b_ema.copy_(b)"
                )
            fail(
                f"ema buffer {n!r} does not equal the model's: buffers are copied as they are, not averaged "
                "(a power-iteration vector averaged with an old one is no longer a unit singular vector)"
            )
    # an ema that still requires grad (a plain copy.deepcopy(model)): the update must still work
    ema, model = _pair(7, ema_requires_grad=True)
    before = _snapshot(ema)
    try:
        ema_update(ema, model, 0.5)
    except RuntimeError as e:
        if "in-place" in str(e) or "leaf" in str(e):
            raise ExerciseFailed(
                'updating an ema that requires grad fails ("a leaf Variable that requires grad is being '
                'used in an in-place operation"): the update runs outside torch.no_grad(). Decorate '
                "ema_update with @torch.no_grad()"
            ) from None
        raise
    expect(
        all(p.grad_fn is None for p in ema.parameters()),
        "the EMA update was recorded by autograd (an ema parameter has a grad_fn): run it under "
        "torch.no_grad()",
    )
    for n, p in ema.named_parameters():
        want = 0.5 * before[n] + 0.5 * dict(model.named_parameters())[n].detach()
        expect(
            torch.allclose(p.detach(), want, atol=1e-6),
            f"with an ema that requires grad, parameter {n} was not averaged correctly",
        )
    # Defining property: the ema forgets geometrically, |ema - p| shrinks by `decay` per call.
    ema, model = _pair(8, ema_requires_grad=False)
    gap0 = (ema.scale - model.scale).detach().abs()  # (2,)
    for _ in range(5):
        ema_update(ema, model, 0.8)
    gap5 = (ema.scale - model.scale).detach().abs()  # (2,), hand: gap0 * 0.8**5 = 0.32768 * gap0
    expect(
        torch.allclose(gap5, gap0 * 0.8**5, atol=1e-5),
        "after 5 calls with decay 0.8 the gap between ema and model should be 0.8**5 = 0.328 of the "
        "first gap: each call must move the ema by (1 - decay) of the remaining gap",
    )


# ----------------------------------------------------------------------------------------------------
# Exercise 10.2: d_step(G, D, reals, z, augment, opt_d, lambda_real, lambda_fake)

D_STEP_KEYS = ("d_loss", "d_adv", "bcr", "d_real", "d_fake")


class _ToyG(nn.Module):
    """z (B, Z) -> images (B, 3, 8, 8) in [-1, 1]: a stand-in generator that records the z it is given."""

    def __init__(self, latent_dim: int = 6) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.fc = nn.Linear(latent_dim, 3 * 8 * 8)
        self.seen: list[torch.Tensor] = []

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.seen.append(z)
        return torch.tanh(self.fc(z)).view(-1, 3, 8, 8)  # (B, 3, 8, 8)


class _ToyD(nn.Module):
    """images (B, 3, 8, 8) -> logits (B,): each image on its own, like the ViT discriminator."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3 * 8 * 8, 16)
        self.fc2 = nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.tanh(self.fc1(x.flatten(1)))).squeeze(-1)  # (B,)


def _run_d_step(fn: Callable[..., dict], seed: int, B: int, policy: str, lam: float):
    """One step of ``fn`` from a fixed start; returns its output, G and D afterwards, and the z given."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G, D = _ToyG(), _ToyD()
    reals = torch.rand(B, 3, 8, 8, generator=seeded(100 + seed)) * 2 - 1  # (B, 3, 8, 8) in [-1, 1]
    z = torch.randn(B, G.latent_dim, generator=seeded(200 + seed))  # (B, Z): the caller draws z

    def augment(x: torch.Tensor) -> torch.Tensor:
        # T with draws keyed to the batch it is given (the reals, or anything else: the fakes), so that
        # augmenting the fakes before the reals is as right as the other order
        is_reals = x.shape == reals.shape and torch.equal(x, reals)
        return diff_augment(x, policy, seeded(10 * seed + (0 if is_reals else 1)))

    opt = torch.optim.Adam(D.parameters(), lr=1e-2, betas=(0.0, 0.99))
    for p in D.parameters():  # stale gradients from an earlier step: a D step must clear them
        p.grad = torch.full_like(p, 0.5)
    out = fn(G, D, reals, z, augment, opt, lam, lam)
    return out, G, D, z


def _d_step_without_zero_grad(G, D, reals, z, augment, opt_d, lambda_real=10.0, lambda_fake=10.0):  # noqa: ANN001
    """The reference D step with one mistake, to recognise it: the stale gradients are not cleared."""
    B = reals.shape[0]
    with torch.no_grad():
        fakes = G(z)
    real_aug, fake_aug, real, fake = D(torch.cat([augment(reals), augment(fakes), reals, fakes])).split(B)
    (
        d_logistic_loss(real_aug, fake_aug)
        + bcr_penalty(real, real_aug, fake, fake_aug, lambda_real, lambda_fake)
    ).backward()
    opt_d.step()
    return {}


def _same_params(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.allclose(p, q, atol=1e-6, rtol=1e-5) for p, q in zip(a.parameters(), b.parameters()))


@checker("10.2", "d_step")
def check_d_step(d_step: Callable[..., dict]) -> None:
    """Check a learner's ``d_step(G, D, reals, z, augment, opt_d, lambda_real, lambda_fake) -> dict``."""
    for seed, (B, policy, lam) in enumerate(
        [(4, "color,translation,cutout", 10.0), (3, "translation", 10.0), (5, "color,cutout", 2.0)]
    ):
        out, G, D, z = _run_d_step(d_step, seed, B, policy, lam)
        expect(
            isinstance(out, dict) and all(k in out for k in D_STEP_KEYS),
            f"d_step should return a dict with the keys {', '.join(D_STEP_KEYS)}",
        )
        expect(
            not any(isinstance(v, torch.Tensor) and v.requires_grad for v in out.values()),
            "a returned number still carries its autograd graph (requires_grad=True): return "
            "d_loss.detach() and friends, or the whole graph of the step stays in memory with the log",
        )
        expect(
            all(p.grad is None or not p.grad.abs().any() for p in G.parameters()),
            "a gradient reached G during the D step: make the fakes under torch.no_grad() (or .detach() "
            "them); the D step must not build a graph through the generator",
        )
        expect(
            any(seen.shape == z.shape and torch.equal(seen, z) for seen in G.seen),
            "G never saw the z you were given: make the fakes with G(z). The caller draws z (so that every "
            "random number of a run comes from one place); d_step draws no random numbers of its own",
        )
        _, G0, _, _ = _run_d_step(lambda *a: {}, seed, B, policy, lam)
        expect(_same_params(G, G0), "the D step changed G's weights: only opt_d steps, and only D's weights")
        ref_out, _, D_ref, _ = _run_d_step(ref_d_step, seed, B, policy, lam)
        if _same_params(D, D_ref):
            for key in D_STEP_KEYS:
                expect_close(
                    torch.as_tensor(out[key]).detach().float(),
                    ref_out[key],
                    f"D was updated correctly but the returned {key!r} differs: return the total loss "
                    "d_adv + bcr as 'd_loss', and the MEAN logits of D(T(x)) and D(T(G(z))) as 'd_real' "
                    "and 'd_fake', all detached",
                )
            continue
        _, _, D_nobcr, _ = _run_d_step(ref_d_step, seed, B, policy, 0.0)
        if _same_params(D, D_nobcr):
            fail(
                "bCR was computed and then dropped: D was updated with the logistic loss alone. The loss "
                "you call backward() on must be d_adv + bcr_penalty(real, real_aug, fake, fake_aug, "
                "lambda_real, lambda_fake)"
            )
        _, _, D_stale, _ = _run_d_step(_d_step_without_zero_grad, seed, B, policy, lam)
        if _same_params(D, D_stale):
            fail(
                "D's gradients from the previous step were added to this step's: call "
                "opt_d.zero_grad(set_to_none=True) before d_loss.backward() (backward ACCUMULATES into .grad)"
            )
        _, _, D_noaug, _ = _run_d_step(ref_d_step, seed, B, "", lam)
        if _same_params(D, D_noaug):
            fail(
                "D never saw augmented images: pass reals AND fakes through augment(...) and feed the "
                "augmented logits to the logistic loss (bCR compares them with the clean ones)"
            )
        fail(
            f"after one step (batch {B}, policy {policy!r}) D's weights differ from the reference. Check "
            "that the reals and the fakes each go through augment on their own (one call each), that the "
            "logistic loss uses D(T(x)) and D(T(G(z))), and that bCR pairs D(x) with D(T(x)) and D(G(z)) "
            "with D(T(G(z)))"
        )


# ----------------------------------------------------------------------------------------------------
# Exercise 12.1: frechet_distance(mu1, sigma1, mu2, sigma2)


def _spd(d: int, gen: torch.Generator) -> torch.Tensor:
    """A random symmetric positive-definite (d, d) matrix with correlations (not diagonal)."""
    a = torch.randn(d, d, generator=gen, dtype=torch.float64)  # (d, d)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)  # (d, d)


def _sqrtm(m: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(m)  # (d,), (d, d)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T  # (d, d)


def _fd_variants(mu1, s1, mu2, s2) -> dict[str, float]:
    """What the known mistakes compute, to name the one a learner made."""
    diff = mu1 - mu2  # (d,)
    sq, tr = float(diff @ diff), float(s1.trace() + s2.trace())
    covmean = float(torch.linalg.eigvals(s1 @ s2).real.clamp(min=0).sqrt().sum())  # Tr((S1 S2)^(1/2))
    return {
        "no factor 2": sq + tr - covmean,
        "elementwise": sq + tr - 2 * float((s1 * s2).diagonal().sqrt().sum()),
        "elementwise of product": sq + tr - 2 * float((s1 @ s2).diagonal().sqrt().nansum()),
        "product of roots": sq + tr - 2 * float((_sqrtm(s1) @ _sqrtm(s2)).trace()),
        "norm": float(diff.norm()) + tr - 2 * covmean,
        "plus sign": sq + tr + 2 * covmean,
    }


_FD_MISTAKES = {
    "no factor 2": (
        "the trace term is missing its factor 2: FID = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - "
        "2 (sigma1 sigma2)^(1/2)); with sigma1 = sigma2 the distance must be 0, which needs the 2"
    ),
    "elementwise": (
        "you took the square root of the ELEMENTWISE product sigma1 * sigma2: (sigma1 sigma2)^(1/2) is a "
        "MATRIX square root of the matrix product sigma1 @ sigma2 (e.g. through torch.linalg.eigvals or "
        "eigh); the two agree only for diagonal covariances, which is why N(0, I) vs N(1, 4I) cannot "
        "tell them apart"
    ),
    "elementwise of product": (
        "you took the elementwise square root of sigma1 @ sigma2: a matrix square root is not the square "
        "root of each entry. Tr((sigma1 sigma2)^(1/2)) is the sum of the square roots of the EIGENVALUES "
        "of sigma1 @ sigma2"
    ),
    "product of roots": (
        "you used sigma1^(1/2) @ sigma2^(1/2): that equals (sigma1 sigma2)^(1/2) only when the two "
        "covariances commute. Take the matrix square root of the product sigma1 @ sigma2 (sum of the square "
        "roots of its eigenvalues)"
    ),
    "norm": (
        "the mean term is the norm ||mu1 - mu2||, not the SQUARED norm ||mu1 - mu2||^2: use "
        "(mu1 - mu2) @ (mu1 - mu2) or .pow(2).sum()"
    ),
    "plus sign": "the covariance term must SUBTRACT 2 Tr((sigma1 sigma2)^(1/2)), not add it",
}


def _fd_case(seed: int, d: int, same_mu: bool = False, same_sigma: bool = False):
    gen = seeded(seed)
    mu1 = torch.randn(d, generator=gen, dtype=torch.float64)  # (d,)
    mu2 = mu1.clone() if same_mu else torch.randn(d, generator=gen, dtype=torch.float64) * 2  # (d,)
    s1 = _spd(d, gen)  # (d, d)
    s2 = s1.clone() if same_sigma else _spd(d, gen)  # (d, d)
    return mu1, s1, mu2, s2


@checker("12.1", "frechet_distance")
def check_frechet_distance(frechet_distance: Callable[..., float]) -> None:
    """Check a learner's ``frechet_distance(mu1, sigma1, mu2, sigma2) -> float`` against the reference."""
    # Known Gaussians: N(0, I) vs N(1, 4I) in 2-D. Hand: ||(1, 1)||^2 = 2;
    # Tr(I + 4I - 2 (4I)^(1/2)) = 2 + 8 - 2 * 4 = 2; total 4.0.
    eye = torch.eye(2, dtype=torch.float64)  # (2, 2)
    zeros, ones = torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)  # (2,)
    known = frechet_distance(zeros.clone(), eye.clone(), ones.clone(), 4 * eye)
    expect(
        isinstance(known, float) or (isinstance(known, torch.Tensor) and known.numel() == 1),
        f"frechet_distance should return a float (or a one-element tensor), got {type(known).__name__}",
    )
    known = float(known)
    if abs(known - 4.0) > 1e-6:
        for name in ("no factor 2", "norm", "plus sign"):
            if abs(known - _fd_variants(zeros, eye, ones, 4 * eye)[name]) < 1e-6:
                fail(f"N(0, I) vs N(1, 4I) in 2-D gave {known:.4f}, not 4.0: {_FD_MISTAKES[name]}")
        fail(
            f"N(0, I) vs N(1, 4I) in 2-D should give 4.0 (mean term 2 + covariance term 10 - 2*4 = 2), got "
            f"{known:.4f}"
        )
    # Correlated covariances (where the matrix square root matters), isolated terms, several widths.
    cases = [
        _fd_case(0, 3, same_mu=True),  # only the covariance term
        _fd_case(1, 4, same_sigma=True),  # only the mean term
        _fd_case(2, 5),
        _fd_case(3, 2),
        _fd_case(4, 7),
    ]
    for mu1, s1, mu2, s2 in cases:
        d = mu1.shape[0]
        want = ref_frechet_distance(mu1, s1, mu2, s2)
        got = float(frechet_distance(mu1.clone(), s1.clone(), mu2.clone(), s2.clone()))
        if abs(got - want) <= 1e-6 + 1e-5 * abs(want):
            continue
        for name, value in _fd_variants(mu1, s1, mu2, s2).items():
            if abs(got - value) <= 1e-6 + 1e-5 * abs(value) and abs(value - want) > 1e-6:
                fail(f"in {d}-D with correlated covariances: {_FD_MISTAKES[name]}")
        fail(
            f"in {d}-D with correlated covariances you gave {got:.6f}, the reference {want:.6f}: FID = "
            "||mu1 - mu2||^2 + Tr(sigma1) + Tr(sigma2) - 2 Tr((sigma1 sigma2)^(1/2))"
        )
    # Defining properties of a distance: zero on itself, symmetric.
    mu1, s1, mu2, s2 = _fd_case(5, 4)
    self_d = float(frechet_distance(mu1, s1, mu1.clone(), s1.clone()))
    expect(abs(self_d) < 1e-6, f"the distance of a Gaussian to itself should be 0, got {self_d:.3g}")
    ab, ba = float(frechet_distance(mu1, s1, mu2, s2)), float(frechet_distance(mu2, s2, mu1, s1))
    expect(
        abs(ab - ba) < 1e-6 * max(1.0, abs(ab)), f"the distance should be symmetric, got {ab:.6f} vs {ba:.6f}"
    )


__all__ = ["check_d_step", "check_ema_update", "check_frechet_distance"]
