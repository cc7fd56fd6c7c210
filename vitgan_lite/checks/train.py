"""Checkers for lessons 10 and 12: Exercises 10.1 ``ema_update``, 10.2 ``d_step``, 12.1 ``frechet_distance``.

Exercise 10.2 asks for exactly :func:`vitgan_lite.train.d_step`: the same signature, the same function.

``ema_update`` and ``d_step`` are taught in ``notebooks/10_training_loop.ipynb`` (the EMA generator every
sample comes from; the discriminator's update with DiffAugment and bCR), ``frechet_distance`` in
``notebooks/12_cifar10_on_a_gpu.ipynb`` (the distance behind FID).

Each checker tests one property at a time, from the most basic up, and names the mistake that explains a
failure: for ``ema_update`` the values of the known wrong rules (decay on the wrong side, the model copied,
a missing factor), for ``d_step`` the gradient D holds when ``opt_d.step()`` runs (compared with the
gradients of the known wrong losses), for ``frechet_distance`` the values of the known wrong formulas.

Shape legend: ``B`` batch, ``C, H, W`` image, ``Z`` latent width, ``d`` feature width.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from vitgan_lite.augment import diff_augment
from vitgan_lite.checks._core import checker, crash_message, expect, fail, seeded, stage
from vitgan_lite.losses import bcr_penalty, d_logistic_loss
from vitgan_lite.metrics import frechet_distance as ref_frechet_distance
from vitgan_lite.train import d_step as ref_d_step


def _named_crash(e: BaseException, causes: Sequence[tuple[str, str]]) -> None:
    """If the learner's crash ``e`` matches one of ``causes`` (regex, likely cause), fail naming that cause.

    A plain ``AssertionError`` raised ``from e``: the checker's wrapper turns it into the exercise's failure
    and keeps the learner's traceback below it. Returns (for the caller's bare ``raise``) when none matches.
    """
    if isinstance(e, (NotImplementedError, AssertionError)):
        return
    raised = f"{type(e).__name__}: {e}"
    for pattern, cause in causes:
        if re.search(pattern, raised, flags=re.S):
            text = crash_message(e).split(". Likely cause: ")[0].split(". Read the traceback")[0]
            raise AssertionError(
                f"{text}. Likely cause: {cause}. Read the traceback above for the line"
            ) from e


# ----------------------------------------------------------------------------------------------------
# Exercise 10.1: ema_update(ema, model, decay)

EMA_HINTS = (
    "Walk the two modules side by side: zip(ema.parameters(), model.parameters()) pairs each EMA parameter "
    "with the model's (both recurse into child modules, in the same order). Move each EMA parameter IN PLACE "
    "by (1 - decay) of its gap to the model's: ema_p.lerp_(p, 1 - decay), which is decay * ema_p + "
    "(1 - decay) * p. Then copy every buffer as it is (zip(ema.buffers(), model.buffers()), b_ema.copy_(b)): "
    "a power-iteration vector is not averaged. The whole update runs under torch.no_grad().",
    "@torch.no_grad()\n"
    "def ema_update(ema, model, decay):\n"
    "    for ema_p, p in zip(..., ...):\n"
    "        ema_p.lerp_(..., ...)        # in place: the trailing underscore\n"
    "    for ema_b, b in zip(..., ...):\n"
    "        ema_b.copy_(...)",
)


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


_EMA_CRASHES = (
    (
        r"leaf Variable that requires grad is being used in an in-place operation",
        "the update runs outside torch.no_grad(): an ema that still requires grad (a plain "
        "copy.deepcopy(model)) refuses in-place changes. Decorate ema_update with @torch.no_grad()",
    ),
    (
        r"must match the size of tensor|doesn't match the broadcast shape|shape mismatch|size mismatch",
        "an ema tensor paired with a model tensor of another shape: zip ema.parameters() with "
        "model.parameters() (and ema.buffers() with model.buffers()), each in its own order",
    ),
)
_EMA_TRACKS_NOTHING = (
    "your EMA tracks no parameters: not one ema parameter changed. Typical causes: an out-of-place "
    "operation whose result is thrown away (torch.lerp(e, p, w) or e.lerp(p, w): use e.lerp_(p, w), with the "
    "underscore), rebinding a local name (ema_p = ...) instead of updating in place, iterating over an "
    "empty list or an already-used generator (model.parameters() is a one-shot generator), iterating over "
    "ema.parameters() twice (zip with itself), or a filter on ema_p.requires_grad (the EMA is frozen, so "
    "nothing passes); zip ema.parameters() with model.parameters()"
)


def _ema_param_mistake(got: torch.Tensor, e0: torch.Tensor, p: torch.Tensor, decay: float) -> str | None:
    """The known wrong update rule that explains ``got`` (ema was ``e0``, the model ``p``), if any."""
    candidates = (
        (
            (1 - decay) * e0 + decay * p,
            f"with decay={decay} the ema moved almost all the way to the model: decay is applied to the "
            "wrong side. The EMA keeps `decay` of its OWN value: ema_p = decay * ema_p + (1 - decay) * p "
            "(so decay=0.999 changes the ema by only 0.1% of the gap per step); ema_p.lerp_(p, 1 - decay)",
        ),
        (
            p,
            f"with decay={decay} the ema parameter became the model's: decay is ignored (ema_p.copy_(p), or "
            "ema.load_state_dict(model.state_dict()), which copies the PARAMETERS too, not only the "
            "buffers). Parameters move by (1 - decay) of the gap: ema_p.lerp_(p, 1 - decay); only buffers "
            "are copied",
        ),
        (
            decay * e0 + p,
            "the model's term is missing its factor (1 - decay): ema_p = decay * ema_p + (1 - decay) * p "
            "(e.g. ema_p.mul_(decay).add_(p, alpha=1 - decay)); without it the weights grow with every call",
        ),
        (
            e0 + (1 - decay) * (e0 - p),
            "the ema moved AWAY from the model: the step is (1 - decay) * (p - ema_p), model minus ema, "
            "not ema minus model",
        ),
        (
            decay * e0,
            "the ema was scaled by decay but the model's term (1 - decay) * p was never added (is the add "
            "applied to a copy, or to a tensor that is then thrown away?)",
        ),
    )
    for value, message in candidates:
        if torch.allclose(got, value, atol=1e-6, rtol=1e-5):
            return message
    return None


@checker("10.1", "ema_update", hints=EMA_HINTS, reference="vitgan_lite.train:ema_update")
def check_ema_update(ema_update: Callable[[nn.Module, nn.Module, float], None]) -> None:
    """Check a learner's in-place ``ema_update(ema, model, decay)``: ema_p <- decay ema_p + (1 - decay) p."""

    def run(ema: nn.Module, model: nn.Module, decay: float, what: str) -> None:
        try:
            with stage(what):
                ema_update(ema, model, decay)
        except Exception as e:
            _named_crash(e, _EMA_CRASHES)
            raise

    # Does the update read the model at all? Two models, one ema: the results must differ.
    ema_a, model_a = _pair(11, ema_requires_grad=False)
    ema_b, model_b = copy.deepcopy(ema_a), copy.deepcopy(model_a)
    with torch.no_grad():
        for p in model_b.parameters():
            p.add_(1.0)
    start = _snapshot(ema_a)
    run(ema_a, model_a, 0.5, "an update with decay 0.5")
    run(ema_b, model_b, 0.5, "an update with decay 0.5")
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
        params_before = dict(ema.named_parameters())
        run(ema, model, decay, f"an update with decay {decay}")
        expect(
            all(torch.equal(v, before_model[k]) for k, v in _snapshot(model).items()),
            "ema_update changed the MODEL: only the ema is written; the model's weights and buffers are "
            "read-only here (is a copy_ the wrong way round, model.copy_(ema)?)",
        )
        after = dict(ema.named_parameters())
        expect(
            all(after.get(n) is p for n, p in params_before.items()),
            "ema's parameters were replaced by new objects: update them in place (ema_p.lerp_(p, 1 - decay) "
            "or ema_p.mul_(decay).add_(p, alpha=1 - decay)), so that anything holding them still sees them",
        )
        recorded = [n for n, p in ema.named_parameters() if p.grad_fn is not None or p.requires_grad]
        expect(
            not recorded,
            f"the EMA update was recorded by autograd (ema parameter {recorded[:1]} now has a grad_fn / "
            "requires grad): decorate ema_update with @torch.no_grad() (or use `with torch.no_grad():`) "
            "and read p.detach(); the EMA is a bookkeeping copy that no loss differentiates",
        )
        model_storage = {t.untyped_storage().data_ptr() for t in model.state_dict().values()}
        shared = [n for n, t in ema.state_dict().items() if t.untyped_storage().data_ptr() in model_storage]
        expect(
            not shared,
            f"ema's {shared[0] if shared else ''!r} now shares memory with the model's (ema_b.data = b, or "
            "the model's own tensor put into the ema): the ema would follow every later in-place change of "
            "the model. Copy the values: ema_b.copy_(b)",
        )
        # "moved" beyond float rounding (decay * e + (1 - decay) * e is e only up to rounding)
        changed = {
            n: bool((p.detach() - before_ema[n]).abs().max() > 1e-6)
            for n, p in ema.named_parameters()
            if decay < 1
        }
        if decay < 1 and not any(changed.values()):
            fail(_EMA_TRACKS_NOTHING)
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
            mistake = _ema_param_mistake(p.detach(), before_ema[n], mp[n].detach(), decay)
            if mistake:
                fail(mistake)
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
                    "statistics, ISN's power-iteration u) are not parameters; copy them, child modules "
                    "included: for b_ema, b in zip(ema.buffers(), model.buffers()): b_ema.copy_(b)"
                )
            fail(
                f"ema buffer {n!r} does not equal the model's: buffers are copied as they are, not averaged "
                "(a power-iteration vector averaged with an old one is no longer a unit singular vector)"
            )
    # an ema that still requires grad (a plain copy.deepcopy(model)): the update must still work
    ema, model = _pair(7, ema_requires_grad=True)
    before = _snapshot(ema)
    run(ema, model, 0.5, "an update of an ema that requires grad (a plain copy.deepcopy(model))")
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
        run(ema, model, 0.8, "five updates with decay 0.8")
    gap5 = (ema.scale - model.scale).detach().abs()  # (2,), hand: gap0 * 0.8**5 = 0.32768 * gap0
    expect(
        torch.allclose(gap5, gap0 * 0.8**5, atol=1e-5),
        "after 5 calls with decay 0.8 the gap between ema and model should be 0.8**5 = 0.328 of the "
        "first gap: each call must move the ema by (1 - decay) of the remaining gap",
    )


# ----------------------------------------------------------------------------------------------------
# Exercise 10.2: d_step(G, D, reals, z, augment, opt_d, lambda_real, lambda_fake)

D_STEP_KEYS = ("d_loss", "d_adv", "bcr", "d_real", "d_fake")

D_STEP_HINTS = (
    "Everything random is handed to you: make the fakes with G(z) under torch.no_grad(), and call augment "
    "exactly twice, once on the reals and once on the fakes. Run D once on torch.cat([T(x), T(G(z)), x, "
    "G(z)]) and .split(B) the logits into four (B,) vectors. The loss you call backward() on is "
    "d_logistic_loss(real_aug, fake_aug) PLUS bcr_penalty, which pairs each clean logit with its augmented "
    "one and takes lambda_real, lambda_fake. Clear D's old gradients before backward (backward adds to "
    ".grad), step opt_d once, and return the five numbers as detached tensors; d_real and d_fake are the "
    "MEAN logits of T(x) and T(G(z)).",
    "B = reals.shape[0]\n"
    "with torch.no_grad():\n"
    "    fakes = ...\n"
    "reals_aug, fakes_aug = augment(...), augment(...)\n"
    "real_aug, fake_aug, real, fake = D(torch.cat([...])).split(B)\n"
    "d_adv = d_logistic_loss(..., ...)\n"
    "bcr = bcr_penalty(real, ..., fake, ..., lambda_real, lambda_fake)\n"
    "d_loss = ...\n"
    "opt_d.zero_grad(set_to_none=True)\n"
    "...backward()\n"
    "opt_d.step()\n"
    'return {"d_loss": d_loss.detach(), ..., "d_real": real_aug.detach().mean(), ...}',
)


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


class _KeyedAugment:
    """The checker's T: DiffAugment whose draws are keyed to the batch it is given (the reals, or any other
    batch: the fakes), so that either order of the two calls replays the same transforms. Records its calls.
    """

    def __init__(self, reals: torch.Tensor, policy: str, seed: int) -> None:
        self.reals, self.policy, self.seed = reals, policy, seed
        self.inputs: list[torch.Tensor] = []  # what each call was given, detached copies
        self.with_graph: list[bool] = []  # whether that input required grad

    def key(self, x: torch.Tensor) -> int:
        return 0 if x.shape == self.reals.shape and torch.equal(x.detach(), self.reals) else 1

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        self.with_graph.append(bool(x.requires_grad))
        return diff_augment(x, self.policy, seeded(10 * self.seed + self.key(x)))


@dataclass
class _DRun:
    """One D step from a fixed start: what went in, what came out, what opt_d saw."""

    seed: int
    B: int
    policy: str
    lambdas: tuple[float, float]
    G: _ToyG
    D: _ToyD
    D_start: dict[str, torch.Tensor]
    G_start: dict[str, torch.Tensor]
    reals: torch.Tensor
    z: torch.Tensor
    fakes: torch.Tensor  # G(z) of the start G, no graph
    augment: _KeyedAugment
    step_grads: list[list[torch.Tensor | None]] = field(default_factory=list)  # D's .grad at each step
    out: Any = None


_STALE = 0.5  # the stale gradient every D parameter holds when the step starts

_D_STEP_CRASHES = (
    (
        r"(not enough|too many) values to unpack",
        "the concatenated logits split into a fixed count: with the four batches concatenated, "
        ".split(B) with B = reals.shape[0] (not a hard-coded batch size), or .chunk(4), gives four (B,) "
        "vectors",
    ),
    (
        r"backward through the graph a second time",
        "two backward passes through one graph: add the losses, d_loss = d_adv + bcr, and call "
        "d_loss.backward() once",
    ),
    (
        r"does not require grad and does not have a grad_fn",
        "the loss has no graph back to D's weights: only G(z) goes under torch.no_grad(); D's forward on "
        "the four batches must be recorded",
    ),
)


def _d_setup(seed: int, B: int, policy: str, lambdas: tuple[float, float]) -> tuple[_DRun, Any]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G, D = _ToyG(), _ToyD()
    reals = torch.rand(B, 3, 8, 8, generator=seeded(100 + seed)) * 2 - 1  # (B, 3, 8, 8) in [-1, 1]
    z = torch.randn(B, G.latent_dim, generator=seeded(200 + seed))  # (B, Z): the caller draws z
    with torch.no_grad():
        fakes = G(z)  # (B, 3, 8, 8)
    G.seen.clear()
    run = _DRun(
        seed, B, policy, lambdas, G, D, _snapshot(D), _snapshot(G), reals, z, fakes,
        _KeyedAugment(reals, policy, seed),
    )  # fmt: skip
    opt = torch.optim.Adam(D.parameters(), lr=1e-2, betas=(0.0, 0.99))
    opt.register_step_pre_hook(
        lambda *_: run.step_grads.append(
            [None if p.grad is None else p.grad.detach().clone() for p in D.parameters()]
        )
    )
    for p in D.parameters():  # stale gradients from an earlier step: a D step must clear them
        p.grad = torch.full_like(p, _STALE)
    return run, opt


def _d_run(fn: Callable[..., Any], seed: int, B: int, policy: str, lambdas: tuple[float, float]) -> _DRun:
    """One step of ``fn`` from the fixed start of ``seed``."""
    run, opt = _d_setup(seed, B, policy, lambdas)
    run.out = fn(run.G, run.D, run.reals, run.z, run.augment, opt, *lambdas)
    return run


def _d_reference(run: _DRun) -> tuple[dict[str, list[torch.Tensor]], dict[str, dict[str, torch.Tensor]]]:
    """The gradients D gets from the right loss and from each known wrong one, and the values to return
    (right and known wrong), all from D's start with the checker's transforms."""
    D = _ToyD()
    D.load_state_dict(run.D_start)
    T = _KeyedAugment(run.reals, run.policy, run.seed)
    ra_in, fa_in = T(run.reals), T(run.fakes)  # (B, 3, 8, 8) each
    real_aug, fake_aug, real, fake = D(torch.cat([ra_in, fa_in, run.reals, run.fakes])).split(run.B)
    lr, lf = run.lambdas
    adv = d_logistic_loss(real_aug, fake_aug)
    bcr = bcr_penalty(real, real_aug, fake, fake_aug, lr, lf)
    losses = {
        "right": adv + bcr,
        "no bcr": adv,
        "no logistic": bcr,
        "clean logistic": d_logistic_loss(real, fake) + bcr,
        "logistic swapped": d_logistic_loss(fake_aug, real_aug) + bcr,
        "bcr crossed": adv + bcr_penalty(real, fake_aug, fake, real_aug, lr, lf),
        "lambdas swapped": adv + bcr_penalty(real, real_aug, fake, fake_aug, lf, lr),
        "lambdas default": adv + bcr_penalty(real, real_aug, fake, fake_aug),
        "bcr clean detached": adv + bcr_penalty(real.detach(), real_aug, fake.detach(), fake_aug, lr, lf),
        "bcr aug detached": adv + bcr_penalty(real, real_aug.detach(), fake, fake_aug.detach(), lr, lf),
        "bcr fake half missing": adv + bcr_penalty(real, real_aug, fake, fake_aug, lr, 0.0),
        "bcr real half missing": adv + bcr_penalty(real, real_aug, fake, fake_aug, 0.0, lf),
    }
    params = list(D.parameters())
    grads = {k: list(torch.autograd.grad(v, params, retain_graph=True)) for k, v in losses.items()}
    with torch.no_grad():
        values = {
            "right": {
                "d_loss": adv + bcr,
                "d_adv": adv,
                "bcr": bcr,
                "d_real": real_aug.mean(),
                "d_fake": fake_aug.mean(),
            },
            "clean means": {"d_real": real.mean(), "d_fake": fake.mean()},
            "sums": {"d_real": real_aug.sum(), "d_fake": fake_aug.sum()},
            "swapped": {"d_real": fake_aug.mean(), "d_fake": real_aug.mean(), "d_adv": bcr, "bcr": adv},
            "parts": {"d_loss": adv, "d_adv": adv + bcr},
        }
    return grads, {k: {n: t.detach() for n, t in v.items()} for k, v in values.items()}


_D_GRAD_MISTAKES = {
    "no bcr": (
        "bCR was computed and then dropped: D's gradient is that of the logistic loss alone. The loss you "
        "call backward() on must be d_adv + bcr_penalty(real, real_aug, fake, fake_aug, lambda_real, "
        "lambda_fake)"
    ),
    "no logistic": (
        "D's gradient is that of bCR alone: the logistic loss d_logistic_loss(real_aug, fake_aug) is missing "
        "from the loss you call backward() on (d_loss = d_adv + bcr)"
    ),
    "clean logistic": (
        "the logistic loss uses the un-augmented logits D(x), D(G(z)): it must use D(T(x)) and D(T(G(z))) "
        "(real_aug, fake_aug); the clean logits enter only bCR"
    ),
    "logistic swapped": (
        "d_logistic_loss got the fakes first: its arguments are (real_logits, fake_logits), here "
        "d_logistic_loss(real_aug, fake_aug); swapped, D learns to call the fakes real"
    ),
    "bcr crossed": (
        "bCR pairs D(x) with D(T(x)) and D(G(z)) with D(T(G(z))): you paired a real logit with a fake one. "
        "bcr_penalty(real, real_aug, fake, fake_aug, lambda_real, lambda_fake)"
    ),
    "lambdas swapped": (
        "lambda_real and lambda_fake are swapped: bcr_penalty(real, real_aug, fake, fake_aug, lambda_real, "
        "lambda_fake), in this order"
    ),
    "lambdas default": (
        "bCR ignores the lambda_real and lambda_fake d_step was given (it used the default 10 for both): "
        "pass them on, bcr_penalty(real, real_aug, fake, fake_aug, lambda_real, lambda_fake)"
    ),
    "bcr clean detached": (
        "bCR's clean logits D(x), D(G(z)) were detached (or computed under no_grad): the consistency "
        "penalty pulls D(x) and D(T(x)) towards each other, so its gradient flows through both; only G(z) "
        "itself is made under no_grad"
    ),
    "bcr aug detached": (
        "bCR's augmented logits D(T(x)), D(T(G(z))) were detached: the consistency penalty pulls D(x) and "
        "D(T(x)) towards each other, so its gradient flows through both; detach nothing in the loss"
    ),
    "bcr fake half missing": (
        "bCR's fake half is missing: the penalty is lambda_real * mean((D(x) - D(T(x)))^2) + lambda_fake * "
        "mean((D(G(z)) - D(T(G(z))))^2); bcr_penalty(real, real_aug, fake, fake_aug, ...) has both"
    ),
    "bcr real half missing": (
        "bCR's real half is missing: the penalty is lambda_real * mean((D(x) - D(T(x)))^2) + lambda_fake * "
        "mean((D(G(z)) - D(T(G(z))))^2); bcr_penalty(real, real_aug, fake, fake_aug, ...) has both"
    ),
}


def _grads_equal(a: Sequence[torch.Tensor | None], b: Sequence[torch.Tensor]) -> bool:
    return all(
        x is not None and torch.allclose(x, y, atol=1e-5, rtol=1e-4) for x, y in zip(a, b, strict=True)
    )


def _check_d_outputs_are_logged_numbers(out: Any) -> None:
    expect(
        isinstance(out, dict) and all(k in out for k in D_STEP_KEYS),
        f"d_step should return a dict with the keys {', '.join(D_STEP_KEYS)}"
        + (f"; yours has {', '.join(map(str, out))}" if isinstance(out, dict) else ""),
    )
    floats = [k for k in D_STEP_KEYS if isinstance(out[k], (float, int))]
    expect(
        not floats,
        f"{floats[0]!r} is a Python number: return detached TENSORS (d_loss.detach(), not d_loss.item() or "
        "float(d_loss)); .item() waits for the GPU at every step, and the trainer logs the tensors without "
        "that wait"
        if floats
        else "",
    )
    others = [k for k in D_STEP_KEYS if not isinstance(out[k], torch.Tensor)]
    expect(
        not others, f"{others[0]!r} should be a tensor, got {type(out[others[0]]).__name__}" if others else ""
    )
    wide = [k for k in D_STEP_KEYS if out[k].numel() != 1]
    expect(
        not wide,
        f"{wide[0]!r} has shape {tuple(out[wide[0]].shape)}: each value is ONE number; d_real and d_fake are "
        "the MEAN logits, real_aug.mean() and fake_aug.mean()"
        if wide
        else "",
    )
    expect(
        not any(out[k].requires_grad for k in D_STEP_KEYS),
        "a returned number still carries its autograd graph (requires_grad=True): return "
        "d_loss.detach() and friends, or the whole graph of the step stays in memory with the log",
    )


def _check_d_augment_calls(run: _DRun) -> None:
    """augment ran exactly twice: once on the reals, once on G(z)."""
    T, B = run.augment, run.B

    def equal(x: torch.Tensor, y: torch.Tensor) -> bool:
        return x.shape == y.shape and torch.allclose(x, y, atol=1e-6)

    expect(
        bool(T.inputs),
        "augment was never called, so D never saw augmented images made by the T you were given. Call "
        "reals_aug = augment(reals) and fakes_aug = augment(fakes), once each (not diff_augment yourself: "
        "the caller builds T, with its policy and its seeded draws), and feed D(T(x)), D(T(G(z))) to the "
        "logistic loss (bCR compares them with the clean logits)",
    )
    both = (torch.cat([run.reals, run.fakes]), torch.cat([run.fakes, run.reals]))
    expect(
        not any(x.shape[0] == 2 * B and any(equal(x, c) for c in both) for x in T.inputs),
        "augment was called once on the reals and the fakes concatenated: call it once on the reals and "
        "once on the fakes, as the exercise asks (T(x) and T(G(z)) are two calls; the trainer's seeded "
        "augment replays exactly those two)",
    )
    expect(
        any(equal(x, run.reals) for x in T.inputs),
        "the reals were never augmented (augment(reals) is missing, or it got something else): the "
        "logistic loss uses D(T(x)) with reals_aug = augment(reals)",
    )
    expect(
        any(equal(x, run.fakes) for x in T.inputs),
        "the fakes were never augmented (augment(fakes) with fakes = G(z) is missing, or it got something "
        "else): the logistic loss uses D(T(G(z))), the same T as the reals",
    )
    expect(
        len(T.inputs) == 2,
        f"augment was called {len(T.inputs)} times: call it exactly once on the reals and once on the "
        "fakes, and use those two augmented batches for both the logistic loss and bCR (each call draws a "
        "new transform, and augmenting an augmented batch applies T twice)",
    )


def _check_d_update(run: _DRun, grads: dict[str, list[torch.Tensor]]) -> None:
    """opt_d stepped once, on D's gradient of d_adv + bcr (nothing stale, nothing missing)."""
    steps = run.step_grads
    moved = any(not torch.equal(p.detach(), run.D_start[n]) for n, p in run.D.named_parameters())
    expect(
        bool(steps) or not moved,
        "D's weights changed but opt_d.step() never ran: you stepped an optimizer of your own. Use opt_d, "
        "the one you were given (it carries Adam's moments from step to step)",
    )
    expect(
        bool(steps),
        "opt_d.step() was never called: D was not updated. After d_loss.backward(), call opt_d.step()",
    )
    expect(
        len(steps) == 1,
        f"opt_d.step() ran {len(steps)} times: one D step is one optimizer step (backward the SUM "
        "d_adv + bcr once, then step once)",
    )
    held = steps[0]
    expect(
        any(g is not None and bool(g.abs().sum() > 0) for g in held),
        "D's gradients were empty when opt_d.step() ran: zero_grad() must come BEFORE backward(), not "
        "between backward() and step() (it wipes what backward computed). The order: zero_grad, backward, "
        "step",
    )
    right = grads["right"]
    if _grads_equal(held, right):
        return
    if _grads_equal(held, [g + _STALE for g in right]):
        left = [p.grad for p in run.D.parameters()]
        if all(g is None or not g.abs().any() for g in left):
            fail(
                "D's gradients from an earlier step were added to this step's: you clear them AFTER "
                "opt_d.step(), so the step itself used stale ones (and the trainer, which reads D's "
                "gradient norm after d_step, finds zeros). Call opt_d.zero_grad(set_to_none=True) before "
                "d_loss.backward()"
            )
        fail(
            "D's gradients from the previous step were added to this step's: call "
            "opt_d.zero_grad(set_to_none=True) before d_loss.backward() (backward ACCUMULATES into .grad)"
        )
    for name, message in _D_GRAD_MISTAKES.items():
        if not _grads_equal(grads[name], right) and _grads_equal(held, grads[name]):
            fail(f"(batch {run.B}, lambdas {run.lambdas}) {message}")
    fail(
        f"after one step (batch {run.B}, policy {run.policy!r}) D's gradient differs from the reference's. "
        "Check that the logistic loss uses D(T(x)) and D(T(G(z))), that bCR pairs D(x) with D(T(x)) and "
        "D(G(z)) with D(T(G(z))) with lambda_real and lambda_fake, and that backward() runs once on "
        "d_adv + bcr"
    )


def _check_d_values(run: _DRun, values: dict[str, dict[str, torch.Tensor]], D_ref: nn.Module) -> None:
    """The returned numbers are the reference's, computed from this step's forward (before the update)."""
    T = _KeyedAugment(run.reals, run.policy, run.seed)
    with torch.no_grad():
        after = {"d_real": D_ref(T(run.reals)).mean(), "d_fake": D_ref(T(run.fakes)).mean()}
    for key in D_STEP_KEYS:
        got = float(run.out[key].detach().double().reshape(()))
        want = values["right"][key]

        def near(t: torch.Tensor, got: float = got) -> bool:
            return abs(got - float(t)) <= 1e-5 + 1e-4 * abs(float(t))

        if near(want):
            continue
        if key in ("d_real", "d_fake"):
            which = "D(T(x)) (real_aug)" if key == "d_real" else "D(T(G(z))) (fake_aug)"
            expect(
                not near(values["clean means"][key]),
                f"the returned {key!r} is the mean of the CLEAN logits: it is the mean of the augmented "
                f"logits {which}, the ones the logistic loss saw",
            )
            expect(
                not near(values["sums"][key]),
                f"the returned {key!r} differs: it is the SUM of the {run.B} logits; return the MEAN logits "
                f"of {which}, e.g. real_aug.detach().mean()",
            )
            expect(
                not near(values["swapped"][key]),
                "the returned 'd_real' and 'd_fake' are swapped: d_real is the mean logit of D(T(x)), "
                "d_fake of D(T(G(z)))",
            )
            expect(
                not near(after[key]),
                f"the returned {key!r} comes from a new forward AFTER opt_d.step(): return the mean of the "
                "logits this step's loss used, real_aug.detach().mean() (no second forward)",
            )
        if key == "d_loss":
            expect(
                not near(values["parts"]["d_loss"]),
                "the returned 'd_loss' is the logistic loss alone: 'd_loss' is the TOTAL d_adv + bcr "
                "(the loss you call backward() on), 'd_adv' the logistic part",
            )
        if key == "d_adv":
            expect(
                not near(values["parts"]["d_adv"]),
                "the returned 'd_adv' is the total loss: 'd_adv' is the logistic part d_logistic_loss("
                "real_aug, fake_aug), 'd_loss' the total",
            )
        if key in ("d_adv", "bcr"):
            expect(
                not near(values["swapped"][key]),
                "the returned 'd_adv' and 'bcr' are swapped: 'd_adv' is the logistic loss, 'bcr' the "
                "consistency penalty",
            )
        fail(
            f"D was updated correctly but the returned {key!r} is {got:.5g}, the reference "
            f"{float(want):.5g}: return the total loss d_adv + bcr as 'd_loss', and the MEAN logits of "
            "D(T(x)) and D(T(G(z))) as 'd_real' and 'd_fake', all detached"
        )


# (batch, policy, lambda_real, lambda_fake): the second case's lambdas differ from each other and from 10
_D_CASES = (
    (4, "color,translation,cutout", 10.0, 10.0),
    (3, "translation,cutout", 2.0, 5.0),
    (1, "color,translation", 10.0, 1.0),
)


@checker("10.2", "d_step", hints=D_STEP_HINTS, reference="vitgan_lite.train:d_step")
def check_d_step(d_step: Callable[..., dict]) -> None:
    """Check a learner's ``d_step(G, D, reals, z, augment, opt_d, lambda_real, lambda_fake) -> dict``.

    D starts with stale gradients (a missing zero_grad shows); the checker's augment keys its random draws
    to the batch it gets (either order of the two calls is right) and records its calls; opt_d records the
    gradient D holds when it steps, which is compared with the gradients of the right and known wrong losses.
    """
    for seed, (B, policy, lam_r, lam_f) in enumerate(_D_CASES):
        what = f"one D step (batch {B}, policy {policy!r}, lambda_real {lam_r}, lambda_fake {lam_f})"
        try:
            with stage(what):
                run = _d_run(d_step, seed, B, policy, (lam_r, lam_f))
        except Exception as e:
            _named_crash(e, _D_STEP_CRASHES)
            raise
        _check_d_outputs_are_logged_numbers(run.out)
        expect(
            all(p.grad is None or not p.grad.abs().any() for p in run.G.parameters()),
            "a gradient reached G during the D step: make the fakes under torch.no_grad() (or .detach() "
            "them); the D step must not build a graph through the generator",
        )
        expect(
            all(torch.equal(v, run.G_start[k]) for k, v in _snapshot(run.G).items()),
            "the D step changed G's weights: only opt_d steps, and only D's weights",
        )
        expect(
            any(seen.shape == run.z.shape and torch.equal(seen, run.z) for seen in run.G.seen),
            "G never saw the z you were given: make the fakes with G(z). The caller draws z (so that every "
            "random number of a run comes from one place); d_step draws no random numbers of its own",
        )
        _check_d_augment_calls(run)
        grads, values = _d_reference(run)
        _check_d_update(run, grads)
        ref = _d_run(ref_d_step, seed, B, policy, (lam_r, lam_f))
        expect(
            all(
                torch.allclose(p, q, atol=1e-6, rtol=1e-5)
                for p, q in zip(run.D.parameters(), ref.D.parameters(), strict=True)
            ),
            f"{what}: D's gradient was right when opt_d stepped, but D's weights afterwards differ from the "
            "reference's: change D's weights only through opt_d.step()",
        )
        _check_d_values(run, values, ref.D)


# ----------------------------------------------------------------------------------------------------
# Exercise 12.1: frechet_distance(mu1, sigma1, mu2, sigma2)

FD_HINTS = (
    "Three terms, all numbers: the SQUARED norm of mu1 - mu2 (diff @ diff), Tr(sigma1) + Tr(sigma2), and "
    "2 Tr((sigma1 sigma2)^(1/2)). You never need the matrix square root itself, only its trace: the sum of "
    "the square roots of the EIGENVALUES of the matrix product sigma1 @ sigma2. That product is not "
    "symmetric, so use torch.linalg.eigvals (not eigvalsh), keep the real part, and clamp it at 0 (rounding "
    "makes zero eigenvalues slightly negative) before the square root. Stay in float64.",
    "diff = ...\n"
    "eig = torch.linalg.eigvals(... @ ...).real.clamp(min=...)   # (d,)\n"
    "tr_covmean = eig.sqrt().sum()\n"
    "return float(diff @ diff + ... + ... - 2 * tr_covmean)",
)


def _spd(d: int, gen: torch.Generator) -> torch.Tensor:
    """A random symmetric positive-definite (d, d) matrix with correlations (not diagonal)."""
    a = torch.randn(d, d, generator=gen, dtype=torch.float64)  # (d, d)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)  # (d, d)


def _sqrtm(m: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(m)  # (d,), (d, d)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T  # (d, d)


def _fd_variants(mu1, s1, mu2, s2) -> dict[str, float]:  # noqa: ANN001
    """What the known mistakes compute, to name the one a learner made (NaN where the mistake gives NaN)."""
    diff = mu1 - mu2  # (d,)
    sq, t1, t2 = float(diff @ diff), float(s1.trace()), float(s2.trace())
    tr = t1 + t2
    prod = s1 @ s2  # (d, d), not symmetric
    covmean = float(torch.linalg.eigvals(prod).real.clamp(min=0).sqrt().sum())  # Tr((S1 S2)^(1/2))
    right = sq + tr - 2 * covmean
    return {
        "no factor 2": sq + tr - covmean,
        "plus sign": sq + tr + 2 * covmean,
        "norm": math.sqrt(sq) + tr - 2 * covmean,
        "mean of squares": sq / diff.numel() + tr - 2 * covmean,
        "square of sum": float(diff.sum()) ** 2 + tr - 2 * covmean,
        "traces missing": sq - 2 * covmean,
        "trace of sigma1 twice": sq + 2 * t1 - 2 * covmean,
        "trace of sigma2 twice": sq + 2 * t2 - 2 * covmean,
        "no square root": sq + tr - 2 * float(prod.trace()),
        "root of trace": sq + tr - 2 * math.sqrt(max(float(prod.trace()), 0.0)),
        "elementwise": sq + tr - 2 * float((s1 * s2).diagonal().sqrt().sum()),
        "elementwise of product": sq + tr - 2 * float(prod.diagonal().sqrt().nansum()),
        "product of roots": sq + tr - 2 * float((_sqrtm(s1) @ _sqrtm(s2)).trace()),
        "eigenvalues separately": sq
        + tr
        - 2
        * float(
            (torch.linalg.eigvalsh(s1).clamp(min=0) * torch.linalg.eigvalsh(s2).clamp(min=0)).sqrt().sum()
        ),
        "eigvalsh of product": sq + tr - 2 * float(torch.linalg.eigvalsh(prod).clamp(min=0).sqrt().sum()),
        "returned the root": math.sqrt(max(right, 0.0)),
    }


_FD_MISTAKES = {
    "no factor 2": (
        "the trace term is missing its factor 2: FID = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - "
        "2 (sigma1 sigma2)^(1/2)); with sigma1 = sigma2 the distance must be 0, which needs the 2"
    ),
    "plus sign": "the covariance term must SUBTRACT 2 Tr((sigma1 sigma2)^(1/2)), not add it",
    "norm": (
        "the mean term is the norm ||mu1 - mu2||, not the SQUARED norm ||mu1 - mu2||^2: use "
        "(mu1 - mu2) @ (mu1 - mu2) or .pow(2).sum()"
    ),
    "mean of squares": (
        "the mean term is the MEAN of the squared differences: it is their SUM, ||mu1 - mu2||^2 = "
        "(mu1 - mu2).pow(2).sum()"
    ),
    "square of sum": (
        "the mean term is the square of the SUM of mu1 - mu2: it is the sum of the SQUARES, "
        "||mu1 - mu2||^2 = (mu1 - mu2) @ (mu1 - mu2)"
    ),
    "traces missing": (
        "the trace terms Tr(sigma1) + Tr(sigma2) are missing: FID = ||mu1 - mu2||^2 + Tr(sigma1) + "
        "Tr(sigma2) - 2 Tr((sigma1 sigma2)^(1/2))"
    ),
    "trace of sigma1 twice": (
        "the trace term adds Tr(sigma1) twice: it is Tr(sigma1) + Tr(sigma2), one of each covariance"
    ),
    "trace of sigma2 twice": (
        "the trace term adds Tr(sigma2) twice: it is Tr(sigma1) + Tr(sigma2), one of each covariance"
    ),
    "no square root": (
        "the cross term is 2 Tr(sigma1 sigma2) with no square root: it is 2 Tr((sigma1 sigma2)^(1/2)), the "
        "sum of the square roots of the eigenvalues of sigma1 @ sigma2"
    ),
    "root of trace": (
        "you took the square root of the TRACE, sqrt(Tr(sigma1 sigma2)): the term is the trace of the "
        "square ROOT, Tr((sigma1 sigma2)^(1/2)) = the sum of the square roots of the EIGENVALUES of "
        "sigma1 @ sigma2"
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
    "eigenvalues separately": (
        "you multiplied the eigenvalues of sigma1 and of sigma2: the eigenvalues of a product are not the "
        "products of the eigenvalues (only when the two covariances commute). Take the eigenvalues of the "
        "product sigma1 @ sigma2"
    ),
    "eigvalsh of product": (
        "you used torch.linalg.eigvalsh on sigma1 @ sigma2: eigvalsh assumes a SYMMETRIC matrix and reads "
        "only one triangle, and the product of two covariances is not symmetric. Use "
        "torch.linalg.eigvals(sigma1 @ sigma2).real (its eigenvalues are real and >= 0)"
    ),
    "returned the root": (
        "you returned the square root of the distance: FID is the SQUARED Frechet distance d^2 = "
        "||mu1 - mu2||^2 + Tr(...), with no root taken at the end"
    ),
}

_FD_COMPLEX = (
    "the square root of a slightly negative eigenvalue (rounding turns "
    "the zero eigenvalues of a singular covariance into -1e-16) is imaginary, and a matrix square root built "
    "through torch.linalg.eig of the non-symmetric sigma1 @ sigma2 is complex. Take the REAL part of the "
    "eigenvalues and clamp it at 0 before the square root: torch.linalg.eigvals(...).real.clamp(min=0)"
)
_FD_CRASHES = (
    (
        r"has no attribute 'sqrtm'",
        "torch has no matrix square root (there is no torch.sqrtm or torch.linalg.sqrtm): you need only "
        "its TRACE, the sum of the square roots of the eigenvalues of sigma1 @ sigma2 "
        "(torch.linalg.eigvals(...).real.clamp(min=0).sqrt().sum())",
    ),
    (r"cannot be converted to type double without overflow|[Cc]omplex", f"a complex number: {_FD_COMPLEX}"),
)


def _fd_case(seed: int, d: int, same_mu: bool = False, same_sigma: bool = False):
    gen = seeded(seed)
    mu1 = torch.randn(d, generator=gen, dtype=torch.float64)  # (d,)
    mu2 = mu1.clone() if same_mu else torch.randn(d, generator=gen, dtype=torch.float64) * 2  # (d,)
    s1 = _spd(d, gen)  # (d, d)
    s2 = s1.clone() if same_sigma else _spd(d, gen)  # (d, d)
    return mu1, s1, mu2, s2


def _fd_singular_case():
    """Rank-3 covariances in 6-D (fewer samples than features, as FID on few images): eigvals of the
    product include zeros that rounding makes slightly negative (-3.6e-16 here)."""
    gen = seeded(0)
    a = torch.randn(6, 3, generator=gen, dtype=torch.float64)  # (6, 3)
    b = torch.randn(6, 3, generator=gen, dtype=torch.float64)  # (6, 3)
    mu1 = torch.randn(6, generator=gen, dtype=torch.float64)  # (6,)
    return mu1, a @ a.T / 3, mu1 + 0.5, b @ b.T / 3


def _fd_wide_case():
    """FID-like statistics: 48 features of size ~10 and two close Gaussians, so that the traces (~5000)
    dwarf the distance (~2) and float32 rounding shows in the difference."""
    gen = seeded(3)
    a = torch.randn(48, 96, generator=gen, dtype=torch.float64) * 10  # (48, 96)
    s1 = a @ a.T / 96  # (48, 48)
    b = a + 0.05 * torch.randn(48, 96, generator=gen, dtype=torch.float64)
    mu1 = torch.randn(48, generator=gen, dtype=torch.float64)  # (48,)
    return mu1, s1, mu1 + 0.1, b @ b.T / 96


def _fd_call(fn: Callable[..., Any], mu1, s1, mu2, s2, what: str) -> float:  # noqa: ANN001
    """The learner's distance on copies of the inputs: one real number, the inputs untouched."""
    args = [t.clone() for t in (mu1, s1, mu2, s2)]
    try:
        with stage(what):
            out = fn(*args)
    except Exception as e:
        _named_crash(e, _FD_CRASHES)
        raise
    for name, given, kept in zip(("mu1", "sigma1", "mu2", "sigma2"), args, (mu1, s1, mu2, s2), strict=True):
        expect(
            torch.equal(given, kept),
            f"frechet_distance changed its input {name} in place (e.g. sigma.add_(eps * I) or diff = mu1; "
            "diff -= mu2): work on new tensors, sigma + eps * I, mu1 - mu2",
        )
    expect(
        not (isinstance(out, complex) or (isinstance(out, torch.Tensor) and out.is_complex())),
        f"on {what}, frechet_distance returned a complex number: {_FD_COMPLEX}",
    )
    expect(
        isinstance(out, float) or (isinstance(out, torch.Tensor) and out.numel() == 1),
        f"frechet_distance should return a float (or a one-element tensor), got {type(out).__name__}"
        + (f" of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else ""),
    )
    return float(out)


def _fd_name(got: float, want: float, variants: dict[str, float], where: str) -> None:
    """Fail naming the known mistake that gives ``got`` (one whose value differs from ``want``), if any."""
    for name, value in variants.items():
        tol = 1e-6 + 1e-5 * abs(value)
        if math.isfinite(value) and abs(got - value) <= tol and abs(value - want) > tol:
            fail(f"{where}: {_FD_MISTAKES[name]}")


@checker("12.1", "frechet_distance", hints=FD_HINTS, reference="vitgan_lite.metrics:frechet_distance")
def check_frechet_distance(frechet_distance: Callable[..., float]) -> None:
    """Check a learner's ``frechet_distance(mu1, sigma1, mu2, sigma2) -> float`` against the reference.

    Hand value first, then correlated covariances (where the matrix square root matters), singular
    covariances (rounding makes eigenvalues negative), wide FID-like statistics (float64 matters), and the
    properties of a distance.
    """
    # Known Gaussians: N(0, I) vs N(1, 4I) in 2-D. Hand: ||(1, 1)||^2 = 2;
    # Tr(I + 4I - 2 (4I)^(1/2)) = 2 + 8 - 2 * 4 = 2; total 4.0.
    eye = torch.eye(2, dtype=torch.float64)  # (2, 2)
    zeros, ones = torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)  # (2,)
    hand = (zeros, eye, ones, 4 * eye)
    known = _fd_call(frechet_distance, *hand, "N(0, I) vs N(1, 4I) in 2-D")
    if abs(known - 4.0) > 1e-6:
        _fd_name(known, 4.0, _fd_variants(*hand), f"N(0, I) vs N(1, 4I) in 2-D gave {known:.4f}, not 4.0")
        fail(
            f"N(0, I) vs N(1, 4I) in 2-D should give 4.0 (mean term 2 + covariance term 2 + 8 - 2*4 = 2), "
            f"got {known:.4f}"
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
        where = f"in {d}-D with correlated covariances"
        want = ref_frechet_distance(mu1, s1, mu2, s2)
        got = _fd_call(frechet_distance, mu1, s1, mu2, s2, f"{d}-D Gaussians with correlated covariances")
        if abs(got - want) <= 1e-6 + 1e-5 * abs(want):
            continue
        expect(
            not math.isnan(got),
            f"{where} you returned NaN: a square root of a negative number. sigma1 @ sigma2 has negative "
            "ENTRIES, so an elementwise sqrt gives NaN (and would be wrong anyway: a matrix square root is "
            "not the root of each entry); take the square roots of its EIGENVALUES, "
            "torch.linalg.eigvals(sigma1 @ sigma2).real.clamp(min=0).sqrt()",
        )
        _fd_name(got, want, _fd_variants(mu1, s1, mu2, s2), where)
        fail(
            f"{where} you gave {got:.6f}, the reference {want:.6f}: FID = "
            "||mu1 - mu2||^2 + Tr(sigma1) + Tr(sigma2) - 2 Tr((sigma1 sigma2)^(1/2))"
        )
    # Singular covariances: rounding makes the zero eigenvalues of sigma1 @ sigma2 slightly negative.
    mu1, s1, mu2, s2 = _fd_singular_case()
    want = ref_frechet_distance(mu1, s1, mu2, s2)
    got = _fd_call(frechet_distance, mu1, s1, mu2, s2, "6-D Gaussians with rank-3 covariances")
    expect(
        not math.isnan(got),
        "with singular covariances (rank 3 in 6-D, as FID on fewer images than features) you returned NaN: "
        "rounding makes the zero eigenvalues of sigma1 @ sigma2 slightly negative (-3.6e-16 here), and "
        "their square root is NaN. Clamp the eigenvalues at 0 before the square root: .real.clamp(min=0)",
    )
    expect(
        abs(got - want) <= 1e-4 + 1e-3 * abs(want),
        f"with singular covariances (rank 3 in 6-D) you gave {got:.6f}, the reference {want:.6f}: clamp the "
        "eigenvalues at 0 (not their absolute value of a large negative), and keep any regularising eps "
        "added to the covariances at 1e-6 or below",
    )
    # Wide, FID-like statistics: the traces dwarf the distance, so float32 rounding shows.
    mu1, s1, mu2, s2 = _fd_wide_case()
    want = ref_frechet_distance(mu1, s1, mu2, s2)
    got = _fd_call(frechet_distance, mu1, s1, mu2, s2, "48-D FID-like statistics")
    if not abs(got - want) <= 1e-6 + 1e-5 * abs(want):
        expect(
            not abs(got - want) <= 1e-3 * float(s1.trace() + s2.trace()),
            f"on 48-D FID-like statistics (traces ~{float(s1.trace()):.0f}, distance {want:.4f}) you gave "
            f"{got:.4f}: close, but float32 rounding of the large traces shows. Keep the float64 inputs in "
            "float64 (no .float()); FID subtracts large numbers, so it needs the precision",
        )
        _fd_name(got, want, _fd_variants(mu1, s1, mu2, s2), "on 48-D FID-like statistics")
        fail(f"on 48-D FID-like statistics you gave {got:.6f}, the reference {want:.6f}")
    # Defining properties of a distance: zero on itself, symmetric.
    mu1, s1, mu2, s2 = _fd_case(5, 4)
    self_d = _fd_call(frechet_distance, mu1, s1, mu1, s1, "a Gaussian and itself")
    expect(abs(self_d) < 1e-6, f"the distance of a Gaussian to itself should be 0, got {self_d:.3g}")
    ab = _fd_call(frechet_distance, mu1, s1, mu2, s2, "two 4-D Gaussians")
    ba = _fd_call(frechet_distance, mu2, s2, mu1, s1, "the same two 4-D Gaussians, swapped")
    expect(
        abs(ab - ba) < 1e-6 * max(1.0, abs(ab)), f"the distance should be symmetric, got {ab:.6f} vs {ba:.6f}"
    )


__all__ = ["check_d_step", "check_ema_update", "check_frechet_distance"]
