"""Tests of vitgan_lite/distributed.py and Trainer's DDP path: 2 gloo processes on the CPU equal 1 process.

A 2-rank run with per-rank batch 2 draws the same global random numbers as a 1-process run with batch 4
and keeps rows ``rank::2`` of each, so its rank-averaged losses, its weights and its checkpoints must match
the single process's up to float rounding (DDP averages the two ranks' gradients).
"""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from vitgan_lite.augment import diff_augment
from vitgan_lite.config import get_config
from vitgan_lite.run.checkpoints import list_checkpoints, load_checkpoint
from vitgan_lite.run.distributed import augment_shard, shard_rows
from vitgan_lite.run.trainer import Trainer

STEPS = 3


def _cfg(batch_size: int):
    small = dict(
        image_size=8, latent_dim=8, style_dim=8, mapping_layers=1, g_patch_size=4, d_patch_size=4,
        g_dim=8, g_depth=1, g_num_heads=2, g_fourier_dim=8, g_decoder_dim=8, d_dim=8, d_depth=1,
        d_num_heads=2, batch_size=batch_size, log_every=1, sample_every=100, ckpt_every=2,
        fid_num_samples=0, cfd_every=0, steps=STEPS,
    )  # fmt: skip
    return get_config("tiny-cpu", **small)


def _images() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (16, 3, 8, 8), generator=gen, dtype=torch.uint8)  # (16, C, H, W)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    from vitgan_lite.run.distributed import from_process_group

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        ctx = from_process_group()
        trainer = Trainer(_cfg(batch_size=2), out_dir, device="cpu", data=_images(), dist=ctx)
        trainer.train()
        torch.save(trainer.D.state_dict(), os.path.join(out_dir, f"D_rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _losses(out_dir) -> list[dict]:
    lines = [json.loads(line) for line in open(os.path.join(out_dir, "metrics.jsonl"))]
    return [rec for rec in lines if "d_loss" in rec]


def test_augment_shard_gives_each_rank_its_rows_of_the_global_draw():
    x = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(1))  # (6, C, H, W), global batch
    policy = "color,translation,cutout"
    full = diff_augment(x, policy, torch.Generator().manual_seed(5))  # (6, C, H, W), one process
    for rank in range(3):
        part = augment_shard(shard_rows(x, (rank, 3)), policy, torch.Generator().manual_seed(5), (rank, 3))
        torch.testing.assert_close(part, full[rank::3])  # (2, C, H, W): rows rank, rank + 3
    xs = shard_rows(x, (1, 3)).requires_grad_(True)  # (2, C, H, W)
    augment_shard(xs, policy, None, (1, 3)).sum().backward()
    assert xs.grad is not None and xs.grad.abs().sum() > 0  # the G step's gradient flows through T
    with pytest.raises(ValueError, match="does not split over 4 ranks"):
        shard_rows(x, (0, 4))


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    torch.set_num_threads(1)
    ref = Trainer(_cfg(batch_size=4), one, device="cpu", data=_images())
    ref.train()
    mp.spawn(_worker, args=(2, _free_port(), str(two)), nprocs=2, join=True)

    a, b = _losses(one), _losses(two)
    assert [r["step"] for r in b] == list(range(1, STEPS + 1))  # rank 0 alone wrote the log, once a step
    for ra, rb in zip(a, b):
        for key in ("d_loss", "d_adv", "bcr", "g_loss"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-4, abs=1e-5), (ra["step"], key)
    # checkpoints on rank 0 only (one file per step, not per rank), and the same weights as one process
    assert [p.name for p in list_checkpoints(two)] == [p.name for p in list_checkpoints(one)]
    s1, s2 = load_checkpoint(list_checkpoints(one)[-1]), load_checkpoint(list_checkpoints(two)[-1])
    for part in ("G", "D", "G_ema"):
        for name, t in s1[part].items():
            # A key bias (in qkv.bias / qk.bias) cancels in the softmax: its exact gradient is 0, and Adam
            # turns the round-off left in it (which differs between 1 and 2 ranks) into steps of size lr.
            tol = dict(rtol=0, atol=4 * STEPS * 2e-3) if name.endswith(("qkv.bias", "qk.bias")) else {}
            tol = tol or dict(rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(s2[part][name], t, **tol, msg=f"{part}.{name}")
    # ISN's power-iteration buffers stayed identical on both ranks
    d0, d1 = (torch.load(two / f"D_rank{r}.pt", weights_only=True) for r in (0, 1))
    for name, t in d0.items():
        torch.testing.assert_close(d1[name], t, rtol=0, atol=0, msg=name)
