"""Training: the D step, the G step, the EMA generator, and a thin loop with checkpoints and metrics.

Taught in ``notebooks/10_training_loop.ipynb`` (the steps, a tiny run) and run at full size in
``notebooks/12_cifar10_on_a_gpu.ipynb`` (the :class:`Trainer`, checkpoints, FID / IS).

One iteration of ViTGAN (Lee et al., ICLR 2022, Sec. 4 and implementation details) is, with T a
DiffAugment policy (Zhao et al. 2020) and the non-saturating logistic loss (Goodfellow et al. 2014):

    D step:  L_D = E[softplus(-D(T(x)))] + E[softplus(D(T(G(z))))]                   (logistic loss)
                 + lambda_real E[(D(x) - D(T(x)))^2] + lambda_fake E[(D(G(z)) - D(T(G(z))))^2]   (bCR)
    G step:  L_G = E[softplus(-D(T(G(z))))]                                          (non-saturating)
    EMA:     G_ema <- decay * G_ema + (1 - decay) * G                                (every sample uses G_ema)

The augmented view T(x) of the logistic loss is also bCR's T(x): both terms are unbiased estimates of
their expectations, and one view saves D a third of its work (4B images per D forward instead of 6B).

Shape legend: ``B`` batch, ``C`` channels, ``H, W`` pixels, ``Z`` latent width. Logits are ``(B,)``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import pickle
import re
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from vitgan_lite.augment import diff_augment, parse_policy
from vitgan_lite.config import Config, ConfigError
from vitgan_lite.data import DeviceBatches, ImageSet, default_source, load_images
from vitgan_lite.discriminator import ViTDiscriminator
from vitgan_lite.distributed import DistContext, augment_shard, shard_rows
from vitgan_lite.generator import ViTGenerator
from vitgan_lite.losses import bcr_penalty, d_logistic_loss, g_nonsaturating_loss
from vitgan_lite.metrics import MetricsUnavailable, compute_fid_is
from vitgan_lite.spectral import spectral_norms

CHECKPOINT_VERSION = 1
CKPT_RE = re.compile(r"^ckpt_(\d{7})\.pt$")
LOSS_NAMES = ("d_loss", "g_loss")  # watched for NaN / inf
GRID_SAMPLES = 64  # an 8 x 8 sample grid, from the same fixed z at every step
# Fields that change the networks' parameters: a checkpoint only resumes into the same architecture.
ARCH_FIELDS = (
    "image_size",
    "channels",
    "latent_dim",
    "style_dim",
    "mapping_layers",
    "mapping_lr_mul",
    "g_patch_size",
    "g_dim",
    "g_depth",
    "g_num_heads",
    "g_mlp_ratio",
    "g_fourier_dim",
    "g_decoder_dim",
    "g_demodulate",
    "d_patch_size",
    "d_overlap",
    "d_dim",
    "d_depth",
    "d_num_heads",
    "d_mlp_ratio",
    "d_norm",
)


class TrainingDiverged(RuntimeError):
    """A loss became NaN or inf; the message names the step and the loss. No checkpoint follows it."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, corrupt or of another architecture; the message says which."""


# ----------------------------------------------------------------------------------------------------
# The steps (lesson 10)


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema_p <- decay * ema_p + (1 - decay) * p`` for every parameter; buffers are copied.

    DiT ``update_ema`` / rosinality ``accumulate``. Runs under ``torch.no_grad()``: the EMA is a
    bookkeeping copy that no loss ever differentiates.
    """
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must lie in [0, 1], got {decay}: 0.999 keeps a long average, 0 copies")
    ema_params, params = dict(ema.named_parameters()), dict(model.named_parameters())
    if ema_params.keys() != params.keys():
        missing = sorted(set(params) ^ set(ema_params))[:5]
        raise ValueError(
            f"ema and model have different parameters (e.g. {missing}): "
            "build the EMA with copy.deepcopy(model)"
        )
    for name, p in params.items():
        # lerp: ema + (1 - decay) * (p - ema) = decay * ema + (1 - decay) * p
        ema_params[name].lerp_(p.detach(), 1.0 - decay)
    ema_buffers = dict(ema.named_buffers())
    for name, b in model.named_buffers():
        ema_buffers[name].copy_(b)  # running estimates (power-iteration u, v) are copied, not averaged


def adam_param_groups(module: nn.Module, lr: float, equalized: bool = True) -> list[dict[str, Any]]:
    """Adam parameter groups: ``lr / sqrt(fan_in)`` for every plain ``nn.Linear`` / ``nn.Conv2d`` weight.

    This is StyleGAN2's equalized learning rate (Karras et al. 2018), moved from the layer into the
    optimizer. An equalized layer stores ``W_hat ~ N(0, 1)`` and uses ``W = W_hat / sqrt(fan_in)``; Adam's
    step on ``W_hat`` has size ~lr whatever the gradient's scale (lesson 06), so the step on ``W`` is
    ``lr / sqrt(fan_in)``. A plain layer with the same ``W`` at init reaches exactly the same trajectory
    (up to Adam's epsilon) when its weight gets the learning rate ``lr / sqrt(fan_in)``.

    Why it matters here: ViTGAN's learning rate 2e-3 with betas (0, 0.99) is StyleGAN2's, and the authors'
    code (mlpc-ucsd/ViTGAN, ``models/gan/stylegan2/vit_common.py``) builds every attention and MLP layer
    from ``EqualLinear``. The course's transformer layers are plain ``nn.Linear`` with Xavier init; at 2e-3
    every weight of a 64-wide layer moves by ~1.6% of its size per step, and D's output swings by about
    one logit per step (lesson 11 measures it). ``equalized=False`` gives one group at ``lr`` (plain Adam).

    Weights under SN/ISN are the parametrization's ``original`` tensor. The course's own equalized layers
    (``EqualLinear``, ``ModulatedLinear``) already scale at run time and keep ``lr``. Biases, norms, tokens
    and positional frequencies keep ``lr``, as an equalized layer's bias does.
    """
    if not equalized:
        return [{"params": [p for p in module.parameters() if p.requires_grad], "lr": lr}]
    by_fan_in: dict[int, list[nn.Parameter]] = {}
    scaled: set[int] = set()
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            wrapped = parametrize.is_parametrized(m, "weight")
            weight = m.parametrizations.weight.original if wrapped else m.weight
            if weight.requires_grad:
                by_fan_in.setdefault(weight[0].numel(), []).append(weight)
                scaled.add(id(weight))
    rest = [p for p in module.parameters() if p.requires_grad and id(p) not in scaled]
    groups = [{"params": rest, "lr": lr}] if rest else []
    for fan_in, params in sorted(by_fan_in.items()):
        groups.append({"params": params, "lr": lr / math.sqrt(fan_in)})
    return groups


def _sample_z(batch_size: int, latent_dim: int, device: torch.device, generator: torch.Generator | None):
    # drawn on the CPU with the CPU generator, then moved: the same z on every device
    return torch.randn(batch_size, latent_dim, generator=generator).to(device)  # (B, Z)


def _latent_dim(G: nn.Module) -> int:
    return getattr(G, "module", G).latent_dim  # through a DistributedDataParallel wrapper


def _augment(x: torch.Tensor, policy: str, generator: torch.Generator | None, shard: tuple[int, int] | None):
    if shard is None:
        return diff_augment(x, policy, generator)  # (B, C, H, W)
    return augment_shard(x, policy, generator, shard)  # (B, C, H, W): this rank's rows of the global draws


def _grad_norm(module: nn.Module) -> torch.Tensor:
    """Global L2 norm of the gradients of ``module`` (a tensor: no host sync)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads).detach()  # ()


def d_step(
    G: nn.Module,
    D: nn.Module,
    reals: torch.Tensor,
    opt_d: torch.optim.Optimizer,
    *,
    policy: str = "color,translation,cutout",
    bcr_real: float = 10.0,
    bcr_fake: float = 10.0,
    generator: torch.Generator | None = None,
    amp_dtype: torch.dtype | None = None,
    shard: tuple[int, int] | None = None,
) -> dict[str, torch.Tensor]:
    """One discriminator update on ``reals (B, C, H, W)`` in [-1, 1]; returns detached scalar tensors.

    z is drawn with ``generator`` (CPU), and so are DiffAugment's draws. ``amp_dtype`` (e.g.
    ``torch.bfloat16``) runs the networks under autocast; the losses are computed in float32.
    Keys: ``d_loss`` (total), ``d_adv`` (logistic), ``bcr``, ``d_real`` / ``d_fake`` (mean logits of
    D(T(x)) and D(T(G(z)))), ``d_grad_norm``. ``shard=(rank, world)``: this rank's rows of the global
    random draws (see ``vitgan_lite.distributed``); None for one process.
    """
    B = reals.shape[0]
    with torch.no_grad():  # G(z) is a constant here: no graph through G, no gradient reaches it
        with _autocast(reals.device, amp_dtype):
            world = shard[1] if shard else 1  # draw the global batch's z, keep this rank's rows
            z = shard_rows(_sample_z(B * world, _latent_dim(G), reals.device, generator), shard)  # (B, Z)
            fakes = G(z)  # (B, C, H, W)
    fakes = fakes.detach().to(reals.dtype)  # (B, C, H, W)
    reals_aug = _augment(reals, policy, generator, shard)  # (B, C, H, W), T(x)
    fakes_aug = _augment(fakes, policy, generator, shard)  # (B, C, H, W), T(G(z)), the same policy
    # One forward on all four batches: D treats each image on its own (LayerNorm, no batch statistics),
    # and ISN's power iteration advances once per D step.
    with _autocast(reals.device, amp_dtype):
        logits = D(torch.cat([reals_aug, fakes_aug, reals, fakes]))  # (4B,)
    real_aug, fake_aug, real, fake = logits.float().split(B)  # (B,) each, float32 for the losses
    d_adv = d_logistic_loss(real_aug, fake_aug)  # ()
    bcr = bcr_penalty(real, real_aug, fake, fake_aug, bcr_real, bcr_fake)  # ()
    d_loss = d_adv + bcr  # L_D = logistic + bCR
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    grad_norm = _grad_norm(D)
    opt_d.step()
    return {
        "d_loss": d_loss.detach(),
        "d_adv": d_adv.detach(),
        "bcr": bcr.detach(),
        "d_real": real_aug.detach().mean(),
        "d_fake": fake_aug.detach().mean(),
        "d_grad_norm": grad_norm,
    }


def g_step(
    G: nn.Module,
    D: nn.Module,
    opt_g: torch.optim.Optimizer,
    batch_size: int,
    *,
    policy: str = "color,translation,cutout",
    generator: torch.Generator | None = None,
    amp_dtype: torch.dtype | None = None,
    shard: tuple[int, int] | None = None,
) -> dict[str, torch.Tensor]:
    """One generator update with a fresh batch of ``batch_size`` z; returns detached scalar tensors.

    The loss is ``g_nonsaturating_loss(D(T(G(z))))``: G sees its fakes through the same DiffAugment T
    as D does, and the gradient flows back through T into G. D's parameters are frozen for the step
    (their gradients would be thrown away). Keys: ``g_loss``, ``g_grad_norm``. ``shard`` as in ``d_step``
    (pass the unwrapped D under DDP: G's all-reduce is the only one this step needs).
    """
    device = next(G.parameters()).device
    d_params = [p for p in D.parameters() if p.requires_grad]
    for p in d_params:
        p.requires_grad_(False)
    try:
        with _autocast(device, amp_dtype):
            world = shard[1] if shard else 1
            z = shard_rows(_sample_z(batch_size * world, _latent_dim(G), device, generator), shard)  # (B, Z)
            fakes = G(z)  # (B, C, H, W)
        fakes_aug = _augment(fakes.float(), policy, generator, shard)  # (B, C, H, W), T(G(z))
        with _autocast(device, amp_dtype):
            logits = D(fakes_aug)  # (B,)
        g_loss = g_nonsaturating_loss(logits.float())  # ()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
    finally:
        for p in d_params:
            p.requires_grad_(True)
    grad_norm = _grad_norm(G)
    opt_g.step()
    return {"g_loss": g_loss.detach(), "g_grad_norm": grad_norm}


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# ----------------------------------------------------------------------------------------------------
# Checkpoints: plain dicts, written atomically, read with weights_only=True


def checkpoint_path(out_dir: str | os.PathLike, step: int) -> Path:
    """``out_dir/ckpt_XXXXXXX.pt`` for ``step``."""
    return Path(out_dir) / f"ckpt_{step:07d}.pt"


def list_checkpoints(out_dir: str | os.PathLike) -> list[Path]:
    """The checkpoints in ``out_dir``, oldest first (by step); temporary files are ignored."""
    folder = Path(out_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CKPT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The newest checkpoint in ``out_dir``, or None."""
    ckpts = list_checkpoints(out_dir)
    return ckpts[-1] if ckpts else None


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, flush + fsync, then ``os.replace``.

    A crash at any moment leaves either the old file or the complete new one, never half a file
    (the rename is atomic on POSIX and Windows within one file system).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # make the rename itself durable (not possible on every OS)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``; CheckpointError if it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({type(e).__name__}: {reason[:200]}); "
            "delete it and resume from an earlier checkpoint in the same folder"
        ) from None
    keys = ("G", "D", "G_ema", "opt_g", "opt_d", "step", "config", "rng", "version")
    if not isinstance(state, dict) or any(k not in state for k in keys):
        raise CheckpointError(
            f"{path} is not a vitgan-lite checkpoint: expected a dict with keys {', '.join(keys)}"
        )
    if state["version"] > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has version {state['version']}, newer than this vitgan-lite "
            f"({CHECKPOINT_VERSION}): update the package"
        )
    return state


def architecture_mismatch(a: Config | dict[str, Any], b: Config | dict[str, Any]) -> list[str]:
    """``["g_dim: 64 vs 128", ...]``: the architecture fields in which two configs differ."""
    a = a.to_dict() if isinstance(a, Config) else a
    b = b.to_dict() if isinstance(b, Config) else b
    return [f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in ARCH_FIELDS if a.get(k) != b.get(k)]


# ----------------------------------------------------------------------------------------------------
# The trainer (lessons 10 to 12)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` -> CUDA when available, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is available: use --device cpu")
    return device


class Trainer:
    """Trains a ViTGAN from a :class:`Config` into ``out_dir``; a notebook watches it through callbacks.

    Args:
        cfg: the run's config (validated here, before any work).
        out_dir: run folder: ``metrics.jsonl``, ``samples/step_XXXXXX.png``, ``ckpt_XXXXXXX.pt``.
        device: ``"cpu"``, ``"cuda"`` or None (CUDA when available).
        callbacks: callables ``(step, metrics)`` run at every log interval with the logged numbers.
        data: the training images: None (``cfg.data``; ``"cifar10"`` means the folder in
            ``$VITGAN_LITE_DATA`` when it is set, else torchvision's download), a folder path,
            an :class:`~vitgan_lite.data.ImageSet`, or a uint8 tensor ``(N, C, H, W)``.
        dist: this process's place in a torchrun run (:func:`vitgan_lite.distributed.from_env`), or None.
            Then ``cfg.batch_size`` is the per-rank batch, G and D are wrapped in DDP, and rank 0 alone
            keeps the EMA generator and writes logs, samples and checkpoints.

    ``train(steps)`` runs to step ``steps`` (default ``cfg.steps``); ``resume(path)`` restores a checkpoint.
    """

    def __init__(
        self,
        cfg: Config,
        out_dir: str | os.PathLike,
        device: str | torch.device | None = None,
        callbacks: Sequence[Callable[[int, dict[str, Any]], None]] = (),
        data: str | os.PathLike | ImageSet | torch.Tensor | None = None,
        dist: DistContext | None = None,
    ) -> None:
        self.cfg = cfg.validate()
        parse_policy(cfg.diffaug_policy)
        self.out_dir = Path(out_dir)
        self.dist = dist
        self.device = dist.device if dist is not None else resolve_device(device)
        self.callbacks = list(callbacks)
        self.images, self.fid_reference = self._load_data(data)  # (N, C, H, W) uint8
        if tuple(self.images.shape[1:]) != (cfg.channels, cfg.image_size, cfg.image_size):
            raise ConfigError(
                f"the data has images of shape {tuple(self.images.shape[1:])} but the config expects "
                f"({cfg.channels}, {cfg.image_size}, {cfg.image_size}): set image_size / channels to match"
            )
        # Build the networks from cfg.seed without touching the global RNG (no hidden global state).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.G = ViTGenerator.from_config(cfg).to(self.device)
            self.D = ViTDiscriminator.from_config(cfg).to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        fused = {"fused": True} if self.device.type == "cuda" else {"foreach": True}
        betas = (cfg.beta1, cfg.beta2)
        groups_g = adam_param_groups(self.G, cfg.lr_g, cfg.equalized_lr)  # lr / sqrt(fan_in) per layer
        groups_d = adam_param_groups(self.D, cfg.lr_d, cfg.equalized_lr)
        self.opt_g = torch.optim.Adam(groups_g, lr=cfg.lr_g, betas=betas, **fused)
        self.opt_d = torch.optim.Adam(groups_d, lr=cfg.lr_d, betas=betas, **fused)
        # Every random draw of the loop goes through one of these CPU generators, saved in checkpoints.
        self.data_gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.z_gen = torch.Generator().manual_seed(cfg.seed + 2)  # z and DiffAugment draws
        world = dist.world_size if dist is not None else 1  # every rank draws the global batch's indices
        self.batches = DeviceBatches(
            self.images, cfg.batch_size * world, self.device, generator=self.data_gen
        )
        fixed = torch.Generator().manual_seed(cfg.seed + 3)
        self.fixed_z = torch.randn(GRID_SAMPLES, cfg.latent_dim, generator=fixed).to(self.device)  # (64, Z)
        use_amp = self.device.type == "cuda" and cfg.amp in ("auto", "bf16")
        self.amp_dtype = torch.bfloat16 if use_amp else None
        self.G_fwd, self.D_fwd = self.G, self.D
        if dist is not None:  # gradients all-reduced (averaged) over ranks; state dicts stay un-prefixed
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.G_fwd, self.D_fwd = DDP(self.G, device_ids=ids), DDP(self.D, device_ids=ids)
        if cfg.compile and self.device.type == "cuda":  # compiled callables; state dicts stay un-prefixed
            self.G_fwd, self.D_fwd = torch.compile(self.G_fwd), torch.compile(self.D_fwd)
        self.step = 0
        self._quality_ref = None  # the real side of cFD, computed on first use

    def _load_data(self, data: Any) -> tuple[torch.Tensor, Any]:
        if isinstance(data, ImageSet):
            return data.images, data.images
        if isinstance(data, torch.Tensor):
            if data.dtype != torch.uint8 or data.ndim != 4:
                got = f"{data.dtype} {tuple(data.shape)}"
                raise ValueError(f"data must be uint8 images (N, C, H, W), got {got}")
            return data, data
        source = str(data) if data is not None else self.cfg.data
        if source.lower() in ("cifar10", "cifar-10"):
            source = default_source()  # $VITGAN_LITE_DATA (a local copy) when set
        images = load_images(source, "train", self.cfg.image_size).images  # (N, C, H, W) uint8
        return images, ("cifar10-train" if source.lower() in ("cifar10", "cifar-10") else source)

    # ---- checkpoints -------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint: plain state dicts, config, step and every RNG state."""
        rng = {
            "torch": torch.get_rng_state(),
            "sampler": self.data_gen.get_state(),
            "z": self.z_gen.get_state(),
        }
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "step": self.step,
            "config": self.cfg.to_dict(),
            "rng": rng,
            "version": CHECKPOINT_VERSION,
        }

    def save(self) -> Path:
        """Write ``ckpt_<step>.pt`` atomically and keep the newest ``cfg.keep_ckpts``."""
        path = save_checkpoint(self.state_dict(), checkpoint_path(self.out_dir, self.step))
        for old in list_checkpoints(self.out_dir)[: -max(1, self.cfg.keep_ckpts)]:
            old.unlink(missing_ok=True)
        return path

    def resume(self, path: str | os.PathLike) -> Trainer:
        """Restore a checkpoint file, or the newest one in a run folder; returns self.

        Refuses a checkpoint of another architecture, naming the differing config fields. The run's
        ``metrics.jsonl`` is cut back to the checkpoint's step, so a plot shows each step once.
        """
        path = Path(path)
        if not path.exists():
            raise CheckpointError(f"{path} does not exist: no checkpoint to resume from")
        if path.is_dir():
            newest = latest_checkpoint(path)
            if newest is None:
                raise CheckpointError(f"no checkpoint (ckpt_*.pt) in {path} to resume from")
            path = newest
        state = load_checkpoint(path)
        diff = architecture_mismatch(state["config"], self.cfg)
        if diff:
            raise CheckpointError(
                f"checkpoint {path} has another architecture ({'; '.join(diff)}; checkpoint vs this run): "
                "resume with the same config, or start a new run folder"
            )
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.G_ema.load_state_dict(state["G_ema"])
        try:
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_d.load_state_dict(state["opt_d"])
        except ValueError as e:  # another grouping of the parameters: equalized_lr differs
            saved = state["config"].get("equalized_lr", False)
            raise CheckpointError(
                f"checkpoint {path} was trained with equalized_lr={saved} and this run has "
                f"equalized_lr={self.cfg.equalized_lr} ({e}): resume with --set equalized_lr={saved}"
            ) from None
        self.step = int(state["step"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        self.data_gen.set_state(rng["sampler"])
        self.z_gen.set_state(rng["z"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self._truncate_metrics(self.step)
        return self

    # ---- logging ------------------------------------------------------------------------------------

    @property
    def metrics_path(self) -> Path:
        return self.out_dir / "metrics.jsonl"

    @property
    def is_main(self) -> bool:
        """True unless this is a rank other than 0 of a distributed run."""
        return self.dist is None or self.dist.is_main

    def _log(self, record: dict[str, Any]) -> None:
        if not self.is_main:
            return
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def _truncate_metrics(self, step: int) -> None:
        """Drop log lines after ``step`` (and a half-written last line) from a run that was killed."""
        if not self.metrics_path.exists():
            return
        keep = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("step", 0) <= step:
                keep.append(line)
        tmp = self.metrics_path.with_name(".metrics.jsonl.tmp")
        tmp.write_text("".join(line + "\n" for line in keep))
        os.replace(tmp, self.metrics_path)

    @torch.no_grad()
    def sample(self, z: torch.Tensor | None = None) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] from the EMA generator (default: the fixed grid z)."""
        z = self.fixed_z if z is None else z.to(self.device)  # (B, Z)
        with _autocast(self.device, self.amp_dtype):
            return self.G_ema(z).float()  # (B, C, H, W)

    def save_samples(self) -> Path:
        """``samples/step_XXXXXX.png``: an 8 x 8 grid from G_ema on the fixed z."""
        from torchvision.utils import save_image

        path = self.out_dir / "samples" / f"step_{self.step:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image((self.sample() + 1) / 2, path, nrow=8)  # [-1, 1] -> [0, 1]
        return path

    def evaluate(self, num_samples: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """FID / IS of the EMA generator; on MetricsUnavailable, ``{"fid_skipped": reason}``."""
        n = self.cfg.fid_num_samples if num_samples is None else num_samples
        if n <= 0:
            return {"fid_skipped": "fid_num_samples is 0"}
        gen = torch.Generator().manual_seed(self.cfg.seed + 4)  # its own draws: training RNG untouched

        def generator_fn(m: int) -> torch.Tensor:
            return self.sample(torch.randn(m, self.cfg.latent_dim, generator=gen))  # (m, C, H, W)

        try:
            return compute_fid_is(generator_fn, n, self.fid_reference, **kwargs)
        except MetricsUnavailable as e:
            return {"fid_skipped": str(e)}

    def quality(self, num_samples: int | None = None) -> dict[str, Any]:
        """Course metric of the EMA generator: ``{"cfd", "ckid", "ckid_std"}`` against the training images.

        cFD / cKID (``vitgan_lite.quality``) use a small CIFAR-10 classifier shipped with the package, so
        they work offline; they are not comparable with Inception FID. The real side (a fixed subset of at
        most 10,000 training images) is computed once per trainer. ``{"cfd_skipped": reason}`` when the
        feature net cannot be loaded or the images are not 3 x 32 x 32.
        """
        from vitgan_lite import quality

        n = self.cfg.cfd_num_samples if num_samples is None else num_samples
        if tuple(self.images.shape[1:]) != (3, quality.IMAGE_SIZE, quality.IMAGE_SIZE):
            shape = tuple(self.images.shape[1:])
            return {"cfd_skipped": f"cFD needs 3 x 32 x 32 images, the data has {shape}"}
        try:
            if self._quality_ref is None:
                m = min(len(self.images), quality.REFERENCE_SIZE)
                idx = quality.reference_indices(len(self.images), m)  # (m,)
                self._quality_ref = quality.reference_statistics(self.images[idx])
            gen = torch.Generator().manual_seed(self.cfg.seed + 5)  # its own draws: training RNG untouched
            fakes = torch.cat([
                self.sample(torch.randn(min(500, n - i), self.cfg.latent_dim, generator=gen)).cpu()
                for i in range(0, n, 500)
            ])  # (n, C, H, W)
            r = quality.score(fakes, self._quality_ref)
        except MetricsUnavailable as e:
            return {"cfd_skipped": str(e)}
        return {"cfd": r["cfd"], "ckid": r["kid"], "ckid_std": r["kid_std"], "cfd_samples": n}

    def _evaluate_and_log(self) -> dict[str, Any]:
        result = self.evaluate()
        self._log({"step": self.step, **result})
        for cb in self.callbacks:
            cb(self.step, dict(result))
        return result

    # ---- the loop -----------------------------------------------------------------------------------

    def _check_finite(self, first_bad: torch.Tensor) -> None:
        """Raise TrainingDiverged if a loss was non-finite since the last check (one host sync).

        ``first_bad (2,)`` holds, per loss of ``LOSS_NAMES``, the first step at which it was NaN or inf
        (-1: never).
        """
        if self.dist is not None:  # every rank stops together
            first_bad = self.dist.max(first_bad)  # (2,)
        bad = [(step, name) for step, name in zip(first_bad.tolist(), LOSS_NAMES) if step >= 0]
        if bad:
            step = min(s for s, _ in bad)
            names = " and ".join(name for s, name in bad if s == step)
            raise TrainingDiverged(
                f"training diverged at step {step} ({names} is NaN or inf); it stopped there and wrote no "
                f"checkpoint after it. Resume from the newest checkpoint in {self.out_dir} with a lower "
                "learning rate (lr_g, lr_d) or a smaller batch."
            )

    def train(self, steps: int | None = None) -> dict[str, Any]:
        """Train until step ``steps`` (absolute: a resumed run stops at the same step); returns the last log.

        Per step: D step, G step, EMA update. Every ``log_every`` steps: one metrics.jsonl line and the
        callbacks; every ``sample_every``: a sample grid; every ``ckpt_every`` and at the end: a
        checkpoint; FID / IS every ``fid_every`` (if > 0) and at the end.
        """
        from tqdm.auto import tqdm

        cfg = self.cfg
        total = cfg.steps if steps is None else int(steps)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.out_dir.glob(".ckpt_*.pt.tmp-*"):  # half-written by a killed run: never loaded
            stale.unlink(missing_ok=True)
        # a fresh start (or a rerun) in a used folder: drop log lines beyond this step, and a cut last line
        if self.is_main:
            self._truncate_metrics(self.step)
        B = cfg.batch_size
        shard = self.dist.shard if self.dist is not None else None  # (rank, world) or None
        B_global = B * (self.dist.world_size if self.dist is not None else 1)
        kw = dict(policy=cfg.diffaug_policy, generator=self.z_gen, amp_dtype=self.amp_dtype, shard=shard)
        # under DDP the G step runs the bare D: its parameters are frozen there, so no all-reduce for D
        D_in_g_step = self.D if self.dist is not None else self.D_fwd
        # per loss, the first step at which it was NaN/inf (-1: never), kept on the device so that the
        # hot path never waits for the GPU: checked at log intervals and before every checkpoint
        first_bad = torch.full((len(LOSS_NAMES),), -1, device=self.device)  # (2,)
        last: dict[str, Any] = {}
        t0, step0 = time.perf_counter(), self.step
        bar = tqdm(
            total=total,
            initial=self.step,
            unit="step",
            dynamic_ncols=True,
            disable=None if self.is_main else True,
        )
        try:
            while self.step < total:
                reals = shard_rows(next(self.batches), shard)  # (B, C, H, W) in [-1, 1], this rank's rows
                bcr = dict(bcr_real=cfg.bcr_real, bcr_fake=cfg.bcr_fake)
                d_out = d_step(self.G_fwd, self.D_fwd, reals, self.opt_d, **bcr, **kw)
                g_out = g_step(self.G_fwd, D_in_g_step, self.opt_g, B, **kw)
                if self.is_main:  # the EMA generator lives on rank 0
                    ema_update(self.G_ema, self.G, cfg.ema_decay)
                self.step += 1
                finite = torch.isfinite(torch.stack([d_out["d_loss"], g_out["g_loss"]]))  # (2,), LOSS_NAMES
                first_bad = torch.where((first_bad < 0) & ~finite, self.step, first_bad)  # (2,)
                bar.update(1)
                at_end = self.step == total
                if self.step % cfg.log_every == 0 or at_end:
                    self._check_finite(first_bad)
                    elapsed = time.perf_counter() - t0
                    ips = (self.step - step0) * B_global / max(elapsed, 1e-9)
                    logged = {**d_out, **g_out}
                    if self.dist is not None:  # the global-batch means: every rank holds B rows
                        values = self.dist.mean(torch.stack([v.float() for v in logged.values()]))  # (K,)
                        logged = dict(zip(logged, values))
                    last = {"step": self.step, **{k: float(v) for k, v in logged.items()}}
                    last["images_per_s"] = ips
                    last.update(self._sigma_summary())
                    self._log(last)
                    bar.set_postfix(d=f"{last['d_loss']:.3f}", g=f"{last['g_loss']:.3f}", img_s=f"{ips:.0f}")
                    for cb in self.callbacks if self.is_main else ():
                        cb(self.step, dict(last))
                if (self.step % cfg.sample_every == 0 or at_end) and self.is_main:
                    self.save_samples()
                if self.step % cfg.ckpt_every == 0 or at_end:
                    self._check_finite(first_bad)  # never checkpoint a diverged model
                    if self.is_main:
                        self.save()
                if cfg.cfd_every > 0 and (self.step % cfg.cfd_every == 0 or at_end) and self.is_main:
                    q = self.quality()
                    self._log({"step": self.step, **q})
                    for cb in self.callbacks:
                        cb(self.step, dict(q))
                if (cfg.fid_every > 0 and self.step % cfg.fid_every == 0) or at_end:
                    self._check_finite(first_bad)
                    if self.is_main:
                        self._evaluate_and_log()
        finally:
            bar.close()
        return last

    def _sigma_summary(self) -> dict[str, float]:
        """min / mean / max of sigma(W_eff) over D's spectrally normalized layers (ISN keeps sigma_init)."""
        if self.cfg.d_norm == "none":
            return {}
        sig = list(spectral_norms(self.D).values())
        return {"sigma_min": min(sig), "sigma_mean": sum(sig) / len(sig), "sigma_max": max(sig)}

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, out_dir: str | os.PathLike | None = None, **kwargs: Any
    ) -> Trainer:
        """A trainer built from a checkpoint's own config, resumed from it."""
        state = load_checkpoint(path)
        cfg = Config.from_dict(state["config"])
        return cls(cfg, out_dir if out_dir is not None else Path(path).parent, **kwargs).resume(path)


def generator_from_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[ViTGenerator, Config]:
    """The EMA generator of a checkpoint (eval mode) and its config, without loading any data."""
    state = load_checkpoint(path)
    cfg = Config.from_dict(state["config"])
    with torch.random.fork_rng(devices=[]):
        G = ViTGenerator.from_config(cfg)
    G.load_state_dict(state["G_ema"])
    return G.to(device).eval().requires_grad_(False), cfg


def pretrained_generator(
    name: str = "cpu-hour", device: str | torch.device = "cpu", path: str | os.PathLike | None = None
) -> tuple[ViTGenerator, Config, dict[str, Any]]:
    """A generator the course trained and ships: ``vitgan_lite/assets/<name>_generator.pt`` (or ``path``).

    Returns the EMA generator (eval mode, float32), its config, and the run's facts (``step``,
    ``wall_s``, ``cfd``, ``command``). Written by ``tools/export_generator.py`` from a run's checkpoint.
    """
    default = Path(__file__).resolve().parent / "assets" / f"{name.replace('-', '_')}_generator.pt"
    path = default if path is None else Path(path)
    if not path.is_file():
        shipped = sorted(p.name for p in path.parent.glob("*_generator.pt"))
        raise CheckpointError(f"no shipped generator {path.name}; the package has {shipped or 'none'}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        cfg = Config.from_dict(state["config"])
    except (RuntimeError, EOFError, OSError, KeyError, ValueError, pickle.UnpicklingError) as e:
        raise CheckpointError(
            f"{path} is truncated or corrupt ({type(e).__name__}): re-export it with "
            "tools/export_generator.py"
        ) from None
    with torch.random.fork_rng(devices=[]):
        G = ViTGenerator.from_config(cfg)
    G.load_state_dict({k: v.float() for k, v in state["G_ema"].items()})
    return G.to(device).eval().requires_grad_(False), cfg, dict(state["meta"])


__all__ = [
    "ARCH_FIELDS",
    "CheckpointError",
    "adam_param_groups",
    "Trainer",
    "TrainingDiverged",
    "architecture_mismatch",
    "checkpoint_path",
    "d_step",
    "ema_update",
    "g_step",
    "generator_from_checkpoint",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "pretrained_generator",
    "resolve_device",
    "save_checkpoint",
]
