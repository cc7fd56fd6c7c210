"""The trainer: lesson 10's steps in a loop, with data, devices, logs, samples, checkpoints and metrics.

Taught in ``notebooks/10_training_loop.ipynb`` (a tiny run) and ``notebooks/12_cifar10_on_a_gpu.ipynb``.

The algorithm is :mod:`vitgan_lite.train` (``d_step``, ``g_step``, ``ema_update``), called unchanged.
What this module adds wraps it instead of threading through it:

- :class:`Parts` holds what one iteration needs and runs it (:meth:`Parts.iteration`): it draws z and
  builds the augmentation T, so every random number comes from one saved stream;
- mixed precision is :class:`Autocast`, a module wrapped around G and D; several processes are DDP
  wrappers plus :func:`~vitgan_lite.run.distributed.shard_rows` on z and the batch; compilation wraps the
  module too. The steps never know;
- :class:`Trainer` runs :class:`Parts` in a loop and writes the run folder.

Random streams: every draw of a run comes from a CPU generator seeded ``cfg.seed + RNG_STREAMS[name]``.
Shape legend: ``B`` batch, ``C`` channels, ``H, W`` pixels, ``Z`` latent width.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vitgan_lite.config import Config, ConfigError
from vitgan_lite.course import resolve_device
from vitgan_lite.data import DeviceBatches, ImageSet, load_images, resolve_source
from vitgan_lite.discriminator import ViTDiscriminator
from vitgan_lite.generator import ViTGenerator
from vitgan_lite.linear import ROW_BLOCK, set_row_block
from vitgan_lite.metrics import MetricsUnavailable
from vitgan_lite.run.checkpoints import (
    CHECKPOINT_VERSION,
    CheckpointError,
    checkpoint_path,
    find_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_state,
    require_same_architecture,
    save_checkpoint,
)
from vitgan_lite.run.distributed import DistContext, augment_shard, shard_rows
from vitgan_lite.run.fidelity import compute_fid_is, fid_reference
from vitgan_lite.run.runfolder import RunLock
from vitgan_lite.spectral import spectral_norms
from vitgan_lite.train import adam_param_groups, d_step, ema_update, g_step

# The run's random streams: ``rng_stream(cfg.seed, name)``. The first three are saved in checkpoints.
RNG_STREAMS = {"data": 1, "z": 2, "grid": 3, "fid": 4, "cfd": 5}
LOSS_NAMES = ("d_loss", "g_loss")  # watched for NaN / inf
GRID_SAMPLES = 64  # an 8 x 8 sample grid, from the same fixed z at every step
PROGRESS_MODES = ("bar", "lines", "auto", "off")


class TrainingDiverged(RuntimeError):
    """A loss or a weight became NaN or inf; the message names the step. No checkpoint follows it."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped training after a whole step, and a checkpoint of that step was written.

    ``step``, ``checkpoint`` (the file, or None on a rank that writes none) and ``signum`` say what
    happened; the command line exits with ``128 + signum`` (130 for Ctrl-C, 143 for SIGTERM).
    """

    def __init__(self, step: int, checkpoint: Path | None, signum: int) -> None:
        self.step, self.checkpoint, self.signum = step, checkpoint, signum
        name = signal.Signals(signum).name
        where = f"; checkpoint {checkpoint}" if checkpoint is not None else ""
        super().__init__(f"{name} received: stopped after step {step}{where}")


class StopRequest:
    """While active, SIGINT and SIGTERM ask training to stop after the current step (``requested``).

    A second signal aborts at once (KeyboardInterrupt). Handlers can only be set from the main thread;
    elsewhere (a trainer in a worker thread) the signals keep their usual meaning.
    """

    SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s)

    def __init__(self) -> None:
        self.requested: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: aborted without a checkpoint")
        self.requested = signum
        print(
            f"\n{signal.Signals(signum).name} received: finishing this step and writing a checkpoint "
            "(press Ctrl-C again to abort at once, without one)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()


def rng_stream(seed: int, name: str) -> torch.Generator:
    """The CPU generator of one random stream (``RNG_STREAMS``) of a run seeded ``seed``."""
    return torch.Generator().manual_seed(seed + RNG_STREAMS[name])


def build_networks(cfg: Config, device: torch.device | str = "cpu") -> tuple[ViTGenerator, ViTDiscriminator]:
    """G and D from ``cfg.seed``, without touching the global RNG (no hidden global state)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        G = ViTGenerator.from_config(cfg).to(device)
        D = ViTDiscriminator.from_config(cfg).to(device)
    return G, D


def amp_dtype(cfg: Config, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA when ``cfg.amp`` is "bf16", or "auto" on a GPU with bf16 arithmetic (not a T4
    or older); None (float32) otherwise."""
    if device.type != "cuda" or cfg.amp == "none":
        return None
    if cfg.amp == "auto" and not torch.cuda.is_bf16_supported(including_emulation=False):
        return None  # emulated bf16 is slower than float32
    return torch.bfloat16


# torch.compile: the compile time is paid once per process, so "auto" compiles only runs long enough to earn
# it back. Measured on the course's 2-core CPU (README, "Performance": bench --compile): a cold compile
# takes 80-100 s (seconds with a warm cache) and saves 0.04 s per step at tiny-cpu (1.32x) and 0.9 s at
# seed-report-cifar10 (1.37x), so it pays from about 2,000 steps at tiny-cpu's size: 5,000 leaves a margin
# (cpu-hour's 12,000 steps compile, tiny-cpu's 2,000 do not). On a GPU the course has not measured it; a
# compile there takes about a minute and a step tens of milliseconds, hence 2,000.
COMPILE_MIN_STEPS = {"cuda": 2_000, "cpu": 5_000}  # None would mean: never under "auto" on that device
COMPILE_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def compile_decision(cfg: Config, device: torch.device, steps: int | None = None) -> tuple[bool, str]:
    """Whether a run of ``cfg`` on ``device`` for ``steps`` steps (default cfg.steps) is compiled, and why.

    ``cfg.compile``: "on" and "off" decide; "auto" compiles when the device's ``COMPILE_MIN_STEPS`` is met.
    """
    if cfg.compile in ("on", "off"):
        return cfg.compile == "on", f"compile={cfg.compile}"
    steps = cfg.steps if steps is None else steps
    need = COMPILE_MIN_STEPS.get(device.type)
    if need is None:
        return False, f"compile=auto: off on {device.type} (the compiled iteration is not faster there)"
    if steps < need:
        return False, f"compile=auto: off for {steps} steps (it pays from {need} steps on {device.type})"
    return True, f"compile=auto: on for {steps} steps on {device.type}"


def use_persistent_compile_cache() -> str:
    """Point inductor's cache (compiled kernels, FX graphs) at ``<vitgan_lite cache>/inductor`` unless
    ``$TORCHINDUCTOR_CACHE_DIR`` is set, so that a rerun of the same configuration reuses the kernels;
    clear it with ``rm -rf`` on the printed folder. Returns the folder."""
    from vitgan_lite.data import default_cache_dir

    return os.environ.setdefault(COMPILE_CACHE_ENV, str(default_cache_dir() / "inductor"))


class Autocast(nn.Module):
    """Runs ``module`` under ``torch.autocast(dtype)`` and hands back float32: mixed precision as a wrapper.

    The losses then see float32 logits and images, exactly as without it. ``parameters()`` and the state
    dict are the wrapped module's.
    """

    def __init__(self, module: nn.Module, device_type: str, dtype: torch.dtype) -> None:
        super().__init__()
        self.module, self.device_type, self.dtype = module, device_type, dtype

    def forward(self, *args: Any) -> torch.Tensor:
        with torch.autocast(device_type=self.device_type, dtype=self.dtype):
            return self.module(*args).float()


def grad_norm(module: nn.Module) -> torch.Tensor:
    """Global L2 norm of the gradients of ``module`` (a tensor: no host sync)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads).detach()  # ()


@dataclasses.dataclass
class Parts:
    """Everything one training iteration touches. ``G_fwd`` / ``D_fwd`` are what the steps call (the
    networks, possibly wrapped in DDP, ``torch.compile`` and :class:`Autocast`); ``D_for_g`` is the D of
    the G step (under DDP the bare D: its parameters are frozen there, so no all-reduce is needed).
    The benchmark swaps ``D_fwd`` and ``grad_norm`` for straightforward versions (``run.bench``)."""

    cfg: Config
    G: nn.Module
    D: nn.Module
    G_ema: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    data_gen: torch.Generator
    z_gen: torch.Generator
    batches: DeviceBatches
    G_fwd: nn.Module
    D_fwd: nn.Module
    D_for_g: nn.Module
    shard: tuple[int, int] | None = None
    keep_ema: bool = True
    grad_norm: Callable[[nn.Module], torch.Tensor] = grad_norm

    def draw_z(self, batch_size: int, device: torch.device) -> torch.Tensor:
        """z for this rank: the global batch's z drawn on the CPU (same z on every device), our rows kept."""
        world = self.shard[1] if self.shard else 1
        z = torch.randn(batch_size * world, self.cfg.latent_dim, generator=self.z_gen)  # (R*B, Z)
        return shard_rows(z.to(device), self.shard)  # (B, Z)

    def iteration(self) -> dict[str, torch.Tensor]:
        """One D step, one G step and the EMA update; returns detached scalars (no host sync)."""
        cfg = self.cfg
        reals = shard_rows(next(self.batches), self.shard)  # (B, C, H, W) in [-1, 1], this rank's rows
        B = reals.shape[0]
        # T: DiffAugment with the z stream's draws (this rank's rows of the global draws under DDP)
        augment = functools.partial(
            augment_shard, policy=cfg.diffaug_policy, generator=self.z_gen, shard=self.shard
        )
        d_out = d_step(
            self.G_fwd,
            self.D_fwd,
            reals,
            self.draw_z(B, reals.device),
            augment,
            self.opt_d,
            cfg.lambda_real,
            cfg.lambda_fake,
        )
        d_out["d_grad_norm"] = self.grad_norm(self.D)  # the gradients stay after opt.step()
        g_out = g_step(self.G_fwd, self.D_for_g, self.draw_z(B, reals.device), augment, self.opt_g)
        g_out["g_grad_norm"] = self.grad_norm(self.G)
        if self.keep_ema:  # under DDP only rank 0 keeps the EMA generator
            ema_update(self.G_ema, self.G, cfg.ema_decay)
        return {**d_out, **g_out}

    def state_dict(self) -> dict[str, Any]:
        """The trainable state: plain state dicts of G, D, G_ema and both optimizers, and every RNG state."""
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
            "rng": rng,
        }

    def load_state_dict(self, state: dict[str, Any], source: str | os.PathLike = "the checkpoint") -> None:
        """Restore :meth:`state_dict`; an optimizer of another parameter grouping is refused by name."""
        load_state(self.G, state["G"], source, "generator")
        load_state(self.D, state["D"], source, "discriminator")
        load_state(self.G_ema, state["G_ema"], source, "EMA generator")
        try:
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_d.load_state_dict(state["opt_d"])
        except ValueError as e:  # another grouping of the parameters: equalized_lr differs
            saved = state.get("config", {}).get("equalized_lr", False)
            raise CheckpointError(
                f"checkpoint {source} was trained with equalized_lr={saved} and this run has "
                f"equalized_lr={self.cfg.equalized_lr} ({e}): resume with --set equalized_lr={saved}"
            ) from None
        # the run's config decides the optimizer's settings: a resume with --lr-d 1e-5 trains at 1e-5
        for opt, module, lr in ((self.opt_g, self.G, self.cfg.lr_g), (self.opt_d, self.D, self.cfg.lr_d)):
            for group, fresh in zip(opt.param_groups, adam_param_groups(module, lr, self.cfg.equalized_lr)):
                group["lr"], group["betas"] = fresh["lr"], (self.cfg.beta1, self.cfg.beta2)
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        self.data_gen.set_state(rng["sampler"])
        self.z_gen.set_state(rng["z"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])


def build_parts(
    cfg: Config,
    device: torch.device,
    images: torch.Tensor,
    *,
    dist: DistContext | None = None,
    models: tuple[nn.Module, nn.Module] | None = None,
    adam_options: dict[str, Any] | None = None,
    mixed_precision: bool = True,
    compile: bool | None = None,
    row_blocks: bool | None = None,
) -> Parts:
    """The parts of a run of ``cfg`` on ``device`` over ``images`` (uint8 ``(N, C, H, W)``).

    ``models``: ``(G, D)`` to start from (deep-copied), else :func:`build_networks`. ``adam_options``:
    Adam's implementation flags (default fused on CUDA, foreach elsewhere). ``mixed_precision=False``
    keeps float32 whatever ``cfg.amp`` says. ``compile``: wrap G and D in ``torch.compile`` (None: as
    :func:`compile_decision` decides from ``cfg.compile``, the device and the run's length).
    ``row_blocks``: run the blocks' long matrix products in row blocks (:mod:`vitgan_lite.linear`; the
    same numbers, faster on the CPU). None: on the CPU only.
    """
    G, D = (copy.deepcopy(m) for m in models) if models is not None else build_networks(cfg, device)
    if row_blocks is None:
        row_blocks = device.type == "cpu"
    for m in (G, D):  # G_ema, a copy of G, inherits it
        set_row_block(m, ROW_BLOCK if row_blocks else None)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    if adam_options is None:
        adam_options = {"fused": True} if device.type == "cuda" else {"foreach": True}
    betas = (cfg.beta1, cfg.beta2)
    groups_g = adam_param_groups(G, cfg.lr_g, cfg.equalized_lr)  # lr / sqrt(fan_in) per layer if equalized
    groups_d = adam_param_groups(D, cfg.lr_d, cfg.equalized_lr)
    opt_g = torch.optim.Adam(groups_g, lr=cfg.lr_g, betas=betas, **adam_options)
    opt_d = torch.optim.Adam(groups_d, lr=cfg.lr_d, betas=betas, **adam_options)
    data_gen = rng_stream(cfg.seed, "data")
    world = dist.world_size if dist is not None else 1  # every rank draws the global batch's indices
    batches = DeviceBatches(images, cfg.batch_size * world, device, generator=data_gen)
    G_fwd, D_fwd = G, D
    if dist is not None:  # gradients all-reduced (averaged) over ranks; state dicts stay un-prefixed
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        G_fwd, D_fwd = DDP(G, device_ids=ids), DDP(D, device_ids=ids)
    if compile is None:
        compile, _ = compile_decision(cfg, device)
    if compile:  # compiled callables; state dicts stay un-prefixed
        use_persistent_compile_cache()
        G_fwd, D_fwd = torch.compile(G_fwd), torch.compile(D_fwd)
    D_for_g = D if dist is not None else D_fwd
    dtype = amp_dtype(cfg, device) if mixed_precision else None
    if dtype is not None:
        G_fwd, D_fwd, D_for_g = (Autocast(m, device.type, dtype) for m in (G_fwd, D_fwd, D_for_g))
    return Parts(
        cfg, G, D, G_ema, opt_g, opt_d, data_gen, rng_stream(cfg.seed, "z"), batches, G_fwd, D_fwd, D_for_g,
        shard=dist.shard if dist is not None else None, keep_ema=dist is None or dist.is_main,
    )  # fmt: skip


def _summary_writer(folder: Path) -> Any:
    """TensorBoard's SummaryWriter into ``folder``, or None when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # an optional extra: pip install 'vitgan-lite[tensorboard]'
        return None
    return SummaryWriter(str(folder))


class RunLog:
    """``metrics.jsonl`` of a run folder: one JSON record per line, appended; cut back on resume.

    When ``tensorboard`` is installed, every number also goes to TensorBoard event files in
    ``<run>/tensorboard`` (``tensorboard --logdir runs``; in a notebook ``%load_ext tensorboard``).
    """

    def __init__(self, path: Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.path, self.enabled = path, enabled  # under DDP only rank 0 writes
        self.tensorboard = tensorboard
        self._writer: Any = None

    def append(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
            if self.tensorboard:
                self._to_tensorboard(record)

    def _to_tensorboard(self, record: dict[str, Any]) -> None:
        if self._writer is None:
            self._writer = _summary_writer(self.path.parent / "tensorboard")
            if self._writer is None:
                self.tensorboard = False
                return
        step = int(record.get("step", 0))
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self._writer.add_scalar(key, value, step)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def truncate(self, step: int) -> None:
        """Drop records after ``step`` (and a half-written last line) from a run that was killed."""
        if not self.enabled or not self.path.exists():
            return
        keep = []
        for line in self.path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("step", 0) <= step:
                keep.append(line)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(line + "\n" for line in keep))
        os.replace(tmp, self.path)


def _due(step: int, every: int, at_end: bool) -> bool:
    """Every ``every`` steps and at the end; ``every = 0`` means only at the end."""
    return at_end or (every > 0 and step % every == 0)


class Trainer:
    """Trains a ViTGAN from a :class:`Config` into ``out_dir``; a notebook watches it through callbacks.

    Args:
        cfg: the run's config (validated here, before any work).
        out_dir: run folder: ``metrics.jsonl``, ``samples/step_XXXXXX.png``, ``ckpt_XXXXXXX.pt``.
        device: ``"cpu"``, ``"cuda"`` or None (:func:`vitgan_lite.course.resolve_device`).
        callbacks: callables ``(step, metrics)`` run at every log interval with the logged numbers.
        data: the training images: None (``cfg.data``, see :func:`vitgan_lite.data.resolve_source`), a
            folder path, an :class:`~vitgan_lite.data.ImageSet`, or a uint8 tensor ``(N, C, H, W)``.
        dist: this process's place in a torchrun run (:func:`vitgan_lite.run.distributed.from_env`), or
            None. Then ``cfg.batch_size`` is the per-rank batch, G and D are wrapped in DDP, and rank 0
            alone keeps the EMA generator and writes logs, samples and checkpoints.
        progress: ``"bar"`` (a tqdm bar, also in notebooks), ``"lines"`` (one plain line on stderr per log
            interval: for nohup, schedulers' logs, subprocesses), ``"auto"`` (a bar on a terminal, lines
            elsewhere) or ``"off"``.
        inception_weights: a local copy of the Inception weights for FID / IS (``fid_every``).

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
        progress: str = "bar",
        inception_weights: str | os.PathLike | None = None,
    ) -> None:
        if progress not in PROGRESS_MODES:
            raise ValueError(f"progress must be one of {PROGRESS_MODES}, got {progress!r}")
        self.progress = progress
        self.inception_weights = inception_weights
        self.cfg = cfg.validate()
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
        self.parts = parts = build_parts(cfg, self.device, self.images, dist=dist)
        for name in ("G", "D", "G_ema", "opt_g", "opt_d", "data_gen", "z_gen"):  # the names notebooks use
            setattr(self, name, getattr(parts, name))
        grid = rng_stream(cfg.seed, "grid")
        self.fixed_z = torch.randn(GRID_SAMPLES, cfg.latent_dim, generator=grid).to(self.device)  # (64, Z)
        self.amp_dtype = amp_dtype(cfg, self.device)
        dtype = self.amp_dtype  # samples under the run's precision, returned as float32
        self._sampler = self.G_ema if dtype is None else Autocast(self.G_ema, self.device.type, dtype)
        self.log = RunLog(self.out_dir / "metrics.jsonl", enabled=self.is_main)
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
        source = resolve_source(data if data is not None else self.cfg.data)
        images = load_images(source, "train", self.cfg.image_size).images  # (N, C, H, W) uint8
        return images, fid_reference(source)

    @property
    def is_main(self) -> bool:
        """True unless this is a rank other than 0 of a distributed run."""
        return self.dist is None or self.dist.is_main

    # ---- checkpoints -------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint: the parts' state (networks, optimizers, RNG), the step and the config."""
        return {
            **self.parts.state_dict(),
            "step": self.step,
            "config": self.cfg.to_dict(),
            "version": CHECKPOINT_VERSION,
        }

    def _check_finite_weights(self) -> None:
        """TrainingDiverged if a weight of G, D or G_ema is NaN or inf (one host sync)."""
        bad = [
            name
            for name, m in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema))
            if not bool(torch.stack([p.detach().isfinite().all() for p in m.parameters()]).all())
        ]
        if bad:
            raise TrainingDiverged(
                f"at step {self.step} the weights of {' and '.join(bad)} hold NaN or inf (the losses were "
                f"still finite); no checkpoint was written. Resume from the newest checkpoint in "
                f"{self.out_dir} with a lower learning rate (lr_g, lr_d)."
            )

    def save(self) -> Path:
        """Write ``ckpt_<step>.pt`` atomically and keep the newest ``cfg.keep_ckpts``; never NaN weights."""
        self._check_finite_weights()
        path = save_checkpoint(self.state_dict(), checkpoint_path(self.out_dir, self.step))
        for old in list_checkpoints(self.out_dir)[: -max(1, self.cfg.keep_ckpts)]:
            old.unlink(missing_ok=True)
        return path

    def resume(self, path: str | os.PathLike) -> Trainer:
        """Restore a checkpoint file, or the newest one in a run folder; returns self.

        Refuses a checkpoint of another architecture, naming the differing config fields. The run's
        ``metrics.jsonl`` is cut back to the checkpoint's step, so a plot shows each step once.
        """
        path = find_checkpoint(path)
        state = load_checkpoint(path)
        require_same_architecture(
            state["config"], self.cfg, path, "resume with the same config, or start a new run folder"
        )
        self.parts.load_state_dict(state, path)
        self.step = int(state["step"])
        self.log.truncate(self.step)
        return self

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, out_dir: str | os.PathLike | None = None, **kwargs: Any
    ) -> Trainer:
        """A trainer built from a checkpoint's own config, resumed from it."""
        cfg = Config.from_dict(load_checkpoint(find_checkpoint(path))["config"])
        return cls(cfg, out_dir if out_dir is not None else Path(path).parent, **kwargs).resume(path)

    # ---- logging ------------------------------------------------------------------------------------

    def _log(self, record: dict[str, Any]) -> None:
        """Append ``record`` to metrics.jsonl and hand it to the callbacks (rank 0 only)."""
        self.log.append(record)
        for cb in self.callbacks if self.is_main else ():
            cb(self.step, dict(record))

    # ---- samples and metrics -----------------------------------------------------------------------

    @torch.no_grad()
    def sample(self, z: torch.Tensor | None = None) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] from the EMA generator (default: the fixed grid z)."""
        z = self.fixed_z if z is None else z.to(self.device)  # (B, Z)
        return self._sampler(z).float()  # (B, C, H, W)

    def _sample_stream(self, name: str) -> Callable[[int], torch.Tensor]:
        """``n -> n`` samples of G_ema from the random stream ``name`` (training RNG untouched)."""
        gen = rng_stream(self.cfg.seed, name)
        return lambda n: self.sample(torch.randn(n, self.cfg.latent_dim, generator=gen))  # (n, C, H, W)

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
        kwargs.setdefault("weights_path", self.inception_weights)
        try:
            return compute_fid_is(self._sample_stream("fid"), n, self.fid_reference, **kwargs)
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
            draw = self._sample_stream("cfd")
            fakes = torch.cat([draw(min(500, n - i)).cpu() for i in range(0, n, 500)])  # (n, C, H, W)
            r = quality.score(fakes, self._quality_ref)
        except MetricsUnavailable as e:
            return {"cfd_skipped": str(e)}
        return {"cfd": r["cfd"], "ckid": r["kid"], "ckid_std": r["kid_std"], "cfd_samples": n}

    def _sigma_summary(self) -> dict[str, float]:
        """min / mean / max of sigma(W_eff) over D's spectrally normalized layers (ISN keeps sigma_init)."""
        if self.cfg.d_spectral_norm == "none":
            return {}
        sig = list(spectral_norms(self.D).values())
        return {"sigma_min": min(sig), "sigma_mean": sum(sig) / len(sig), "sigma_max": max(sig)}

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

    def _log_losses(self, out: dict[str, torch.Tensor], images_per_s: float) -> dict[str, Any]:
        """One log line of the losses (global-batch means under DDP), D's sigmas and the throughput."""
        if self.dist is not None:  # every rank holds B rows: the mean over ranks is the global mean
            values = self.dist.mean(torch.stack([v.float() for v in out.values()]))  # (K,)
            out = dict(zip(out, values))
        record = {"step": self.step, **{k: float(v) for k, v in out.items()}, "images_per_s": images_per_s}
        record.update(self._sigma_summary())
        self._log(record)
        return record

    def train(self, steps: int | None = None) -> dict[str, Any]:
        """Train until step ``steps`` (absolute: a resumed run stops at the same step); returns the last log.

        Per step: :meth:`Parts.iteration` (D step, G step, EMA update). Every ``log_every`` steps: one
        metrics.jsonl line and the callbacks; every ``sample_every``: a sample grid; every ``ckpt_every``:
        a checkpoint; cFD every ``cfd_every``; FID / IS every ``fid_every``. An interval of 0 means only
        at the end, where all of them run (cFD only when ``cfd_every > 0``).
        """
        lock = RunLock(self.out_dir) if self.is_main else None  # one trainer per run folder
        if lock is not None:
            lock.acquire()
        try:
            with StopRequest() as stop:
                return self._train(steps, stop)
        finally:
            if lock is not None:
                lock.release()

    def _stop_requested(self, stop: StopRequest) -> int | None:
        """The signal that asked to stop (agreed by every rank under DDP), or None."""
        if self.dist is None:
            return stop.requested
        flag = self.dist.max(torch.tensor([stop.requested or 0], device=self.device))  # (1,)
        return int(flag.item()) or None

    def _train(self, steps: int | None, stop: StopRequest) -> dict[str, Any]:
        from tqdm.auto import tqdm

        cfg = self.cfg
        total = cfg.steps if steps is None else int(steps)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.out_dir.glob(".ckpt_*.pt.tmp-*"):  # half-written by a killed run: never loaded
            stale.unlink(missing_ok=True)
        # a fresh start (or a rerun) in a used folder: drop log lines beyond this step, and a cut last line
        self.log.truncate(self.step)
        B_global = cfg.batch_size * (self.dist.world_size if self.dist is not None else 1)
        # per loss, the first step at which it was NaN/inf (-1: never), kept on the device so that the
        # hot path never waits for the GPU: checked at log intervals and before every checkpoint
        first_bad = torch.full((len(LOSS_NAMES),), -1, device=self.device)  # (2,)
        last: dict[str, Any] = {}
        t0, step0 = time.perf_counter(), self.step
        mode = self.progress
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        bar = tqdm(
            total=total,
            initial=self.step,
            unit="step",
            dynamic_ncols=True,
            disable=None if self.is_main and mode == "bar" else True,
        )
        lines = mode == "lines" and self.is_main
        try:
            while self.step < total:
                out = self.parts.iteration()
                self.step += 1
                finite = torch.isfinite(torch.stack([out[k] for k in LOSS_NAMES]))  # (2,)
                first_bad = torch.where((first_bad < 0) & ~finite, self.step, first_bad)  # (2,)
                bar.update(1)
                at_end = self.step == total
                if _due(self.step, cfg.log_every, at_end):
                    self._check_finite(first_bad)
                    ips = (self.step - step0) * B_global / max(time.perf_counter() - t0, 1e-9)
                    last = self._log_losses(out, ips)
                    bar.set_postfix(d=f"{last['d_loss']:.3f}", g=f"{last['g_loss']:.3f}", img_s=f"{ips:.0f}")
                    if lines:
                        print(
                            f"step {self.step}/{total}  d_loss {last['d_loss']:.4f}  "
                            f"g_loss {last['g_loss']:.4f}  {ips:.1f} img/s  {time.strftime('%H:%M:%S')}",
                            file=sys.stderr,
                            flush=True,
                        )
                if _due(self.step, cfg.sample_every, at_end) and self.is_main:
                    self.save_samples()
                if _due(self.step, cfg.ckpt_every, at_end):
                    self._check_finite(first_bad)  # never checkpoint a diverged model
                    if self.is_main:
                        self.save()
                if cfg.cfd_every > 0 and _due(self.step, cfg.cfd_every, at_end) and self.is_main:
                    self._log({"step": self.step, **self.quality()})
                if _due(self.step, cfg.fid_every, at_end):
                    self._check_finite(first_bad)
                    if self.is_main:
                        self._log({"step": self.step, **self.evaluate()})
                signum = self._stop_requested(stop)
                if signum is not None and not at_end:  # Ctrl-C / SIGTERM: keep this step's work
                    self._check_finite(first_bad)
                    path = self.save() if self.is_main else None
                    raise TrainingInterrupted(self.step, path, signum)
        finally:
            bar.close()
            self.log.close()
        return last


__all__ = [
    "Autocast",
    "Parts",
    "RNG_STREAMS",
    "RunLog",
    "Trainer",
    "StopRequest",
    "TrainingDiverged",
    "TrainingInterrupted",
    "amp_dtype",
    "build_networks",
    "build_parts",
    "compile_decision",
    "use_persistent_compile_cache",
    "grad_norm",
    "rng_stream",
]
