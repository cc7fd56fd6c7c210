"""Data-parallel training over several processes with ``torch.distributed`` (run layer, lesson 12).

Taught in ``notebooks/12_cifar10_on_a_gpu.ipynb``. Launch with torchrun; one process per GPU (or, for a
test, per CPU process with the gloo backend):

    torchrun --nproc_per_node=N -m vitgan_lite train --preset paper-cifar10 --out runs/ddp

How the ViTGAN iteration (Lee et al., ICLR 2022, Sec. 4: D step with DiffAugment + bCR, G step, EMA) is
split across R ranks, so that an R-process run computes the same losses as one process with the global
batch R x B (``cfg.batch_size`` is the per-rank batch B):

- every rank draws the *same* global random numbers (same seeds): the R*B data indices, the R*B latents
  z, and DiffAugment's per-image draws for R*B images; rank r keeps rows ``r::R`` of each
  (:func:`shard_rows`, :func:`augment_shard`). So a rank's images, z and augmentations are exactly the
  ones a single process would have given those rows;
- D and G are wrapped in ``DistributedDataParallel``: one D forward per D step (reals, fakes and both
  bCR views concatenated) and one G forward per G step, so one gradient all-reduce each. DDP averages the
  gradients over ranks, which is the gradient of the global-batch mean loss because every rank holds the
  same number of rows;
- spectral-norm power-iteration buffers (u, v) depend on the weights only, not on the data, so they
  evolve identically on every rank; DDP's default ``broadcast_buffers=True`` also copies rank 0's at each
  forward, which keeps them bit-identical;
- the EMA generator, sample grids, checkpoints and ``metrics.jsonl`` live on rank 0; logged numbers are
  averaged over ranks (:meth:`DistContext.mean`) at log intervals only (no per-step host sync).

Shape legend: ``B`` per-rank batch, ``R`` world size, ``C`` channels, ``H, W`` pixels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from vitgan_lite.augment import diff_augment
from vitgan_lite.course import resolve_device


@dataclass(frozen=True)
class DistContext:
    """This process's place in a distributed run: ``rank`` of ``world_size``, GPU ``local_rank``."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, samples and logs."""
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        """``(rank, world_size)``: which rows of the global draws are this rank's (:func:`shard_rows`)."""
        return self.rank, self.world_size

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """The average of ``t`` over ranks (an all-reduce; a host sync on the caller's side follows)."""
        t = t.detach().clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t / self.world_size

    def max(self, t: torch.Tensor) -> torch.Tensor:
        """The element-wise maximum of ``t`` over ranks."""
        t = t.detach().clone()
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t


def from_env(device: str | torch.device | None = None) -> DistContext | None:
    """Join the process group that torchrun describes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``).

    Returns None for a single process (no ``WORLD_SIZE`` or ``WORLD_SIZE=1``). Backend: nccl on CUDA,
    gloo on the CPU. ``device``: ``"cpu"``, ``"cuda"`` (GPU ``LOCAL_RANK``) or None (CUDA when available).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    kind = resolve_device(device).type  # refuses 'cuda' without a GPU
    if kind == "cuda":
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if kind == "cuda" else "gloo")
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def from_process_group(device: torch.device | str = "cpu") -> DistContext:
    """A context for a process group that is already initialised (tests, notebooks)."""
    if not dist.is_initialized():
        raise RuntimeError("no process group: call torch.distributed.init_process_group first")
    dev = torch.device(device)
    return DistContext(dist.get_rank(), dist.get_world_size(), dev.index or 0, dev)


def shutdown() -> None:
    """Leave the process group (if any)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def shard_rows(x: torch.Tensor, shard: tuple[int, int] | None) -> torch.Tensor:
    """Rows ``rank::world`` of a global batch ``(R*B, ...)`` -> ``(B, ...)``; ``shard=None`` keeps all."""
    if shard is None:
        return x
    rank, world = shard
    if x.shape[0] % world:
        raise ValueError(f"a global batch of {x.shape[0]} rows does not split over {world} ranks")
    return x[rank::world]  # (B, ...)


def augment_shard(
    x: torch.Tensor,
    policy: str,
    generator: torch.Generator | None,
    shard: tuple[int, int] | None = None,
) -> torch.Tensor:
    """DiffAugment this rank's rows with the draws a single process would give them.

    ``x (B, C, H, W)`` holds rows ``rank::world`` of a global batch ``(R*B, C, H, W)``. The rank places
    them in a zero batch of the global size, augments that (drawing R*B values per random op, like a single
    process) and keeps its own rows again. Every DiffAugment op acts on each image alone, so the other
    ranks' (zero) rows do not touch ours; the placement is differentiable, so the G step's gradient still
    flows through T. ``shard=None`` is plain :func:`diff_augment`.
    """
    if shard is None:
        return diff_augment(x, policy, generator)
    rank, world = shard
    B = x.shape[0]
    rows = torch.arange(rank, B * world, world, device=x.device)  # (B,): our rows in the global batch
    full = x.new_zeros((B * world, *x.shape[1:])).index_copy(0, rows, x)  # (R*B, C, H, W)
    return diff_augment(full, policy, generator)[rank::world]  # (B, C, H, W)


__all__ = ["DistContext", "augment_shard", "from_env", "from_process_group", "shard_rows", "shutdown"]
