"""Benchmark: how fast one ViTGAN training iteration runs, and how much the fast path buys (run layer).

Taught in ``notebooks/12_cifar10_on_a_gpu.ipynb``; run it as ``python -m vitgan_lite bench``.

One iteration is what the trainer does per step, :meth:`vitgan_lite.run.trainer.Parts.iteration` (Lee et
al., ICLR 2022, Sec. 4): a D step (logistic loss on DiffAugment views + bCR), a G step (non-saturating
loss) and an EMA update.
The benchmark builds the trainer's own parts (:func:`~vitgan_lite.run.trainer.build_parts`) and swaps only
the pieces it compares. For each preset it measures, in one process and one run:

- images/s of the full iteration, of G's forward (no grad) and of D's forward + backward;
- the iteration's FLOPs (``torch.utils.flop_counter.FlopCounterMode``) per second, divided by the
  throughput of a large dense ``torch.matmul`` in the training dtype on the same machine, in the same run
  (the "efficiency ratio": 1.0 would mean the iteration runs as fast as a big GEMM);
- the same iteration built the straightforward way the lessons build first (the "naive" variant, same
  weights, same seed): naive L2 / dot-product attention (``fast=False``), modulated weights materialised
  per token (``inr.modulated_linear_explicit``), four separate D passes for T(x), T(G(z)), x and G(z),
  a per-parameter Adam (``foreach=False``) and a per-parameter gradient norm. The speed-up is the ratio of
  the two throughputs, timed in interleaved rounds so that a busy machine slows both alike.

The images are random uint8 pixels held on the device (no data set needed: the throughput does not depend
on the pixels). Shape legend: ``B`` batch, ``C`` channels, ``H, W`` pixels, ``Z`` latent width.
"""

from __future__ import annotations

import copy
import dataclasses
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from vitgan_lite.attention import L2MultiHeadAttention, MultiHeadAttention
from vitgan_lite.config import Config, get_config
from vitgan_lite.course import resolve_device
from vitgan_lite.inr import ModulatedLinear
from vitgan_lite.run.trainer import Parts, amp_dtype, build_networks, build_parts

DEFAULT_PRESETS = ("tiny-cpu", "seed-report-cifar10")
CPU_ITERS = {"tiny-cpu": 3, "seed-report-cifar10": 1, "paper-cifar10": 1}  # timed iterations per round
CPU_MAX_BATCH = {"paper-cifar10": 32}  # the paper's batch 128 takes minutes per iteration on a laptop CPU
NUM_IMAGES = 512  # random uint8 images resident on the device


# ----------------------------------------------------------------------------------------------------
# The straightforward ("naive") variant: same modules, same weights, slower code paths


def make_naive(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` (same weights and buffers) that runs the lessons' first, slow forms.

    Attention switches to ``fast=False`` (explicit (B, H, N, N) logits and softmax); every
    :class:`~vitgan_lite.inr.ModulatedLinear` builds its per-token (B, O, I) weight. Both compute the same
    function as the fast forms, so the copy's outputs match the original's up to rounding.
    """
    naive = copy.deepcopy(module)
    for m in naive.modules():
        if isinstance(m, (MultiHeadAttention, L2MultiHeadAttention, ModulatedLinear)):
            m.fast = False
    return naive


def _grad_norm_loop(module: nn.Module) -> torch.Tensor:
    """Global L2 norm of the gradients, one parameter at a time (the textbook loop)."""
    total = torch.zeros(())
    for p in module.parameters():
        if p.grad is not None:
            total = total + p.grad.detach().float().square().sum().cpu()
    return total.sqrt()  # ()


class SeparatePasses(nn.Module):
    """D called once per batch of the D step's ``[T(x), T(G(z)), x, G(z)]``: the straightforward four passes.

    Wrapped around D, it turns :func:`vitgan_lite.train.d_step` (one D forward on the four batches
    concatenated) into the version that calls D four times, and changes nothing else: same logits, same
    losses. ``parametrize.cached()`` computes each spectrally normalized weight once for the four passes,
    so ISN's power iteration advances once per D step, as in the batched forward (without it, it would
    advance four times and the two variants would drift apart). The G step keeps the bare D.
    """

    def __init__(self, D: nn.Module, passes: int = 4) -> None:
        super().__init__()
        self.D, self.passes = D, passes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with parametrize.cached():
            return torch.cat([self.D(part) for part in x.chunk(self.passes)])  # (4B,)


def naive_parts(
    cfg: Config, device: torch.device, images: torch.Tensor, models: tuple[nn.Module, nn.Module]
) -> Parts:
    """The trainer's parts with the straightforward pieces swapped in: :func:`make_naive` networks,
    the D step's four D passes (:class:`SeparatePasses`), a per-parameter Adam and gradient norm, float32,
    no compilation."""
    G, D = models
    parts = build_parts(
        cfg.replace(compile=False), device, images, models=(make_naive(G), make_naive(D)),
        adam_options={"foreach": False}, mixed_precision=False,
    )  # fmt: skip
    return dataclasses.replace(parts, D_fwd=SeparatePasses(parts.D), grad_norm=_grad_norm_loop)


def random_images(cfg: Config, n: int = NUM_IMAGES, seed: int = 0) -> torch.Tensor:
    """``n`` random uint8 images ``(n, C, H, W)`` of the config's size (pixels do not change timings)."""
    gen = torch.Generator().manual_seed(seed)
    shape = (n, cfg.channels, cfg.image_size, cfg.image_size)
    return torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)  # (n, C, H, W)


# ----------------------------------------------------------------------------------------------------
# Timing helpers


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device, iters: int) -> float:
    """Seconds per call of ``fn``, averaged over ``iters`` calls, with CUDA synced around the timing."""
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / iters


def matmul_flops_per_s(
    device: torch.device, dtype: torch.dtype, n: int | None = None, repeats: int = 3
) -> float:
    """Dense ``torch.matmul`` throughput (FLOP/s) of an n x n x n product, best of ``repeats``.

    2 n^3 FLOPs per product (one multiply and one add per term). n defaults to 1024 on the CPU, 8192 on a
    GPU: large enough to reach the machine's GEMM speed.
    """
    n = n or (8192 if device.type == "cuda" else 1024)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)  # (n, n)
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)  # (n, n)
    torch.matmul(a, b)  # warm-up
    inner = 1 if device.type == "cpu" else 10
    best = min(time_call(lambda: torch.matmul(a, b), device, inner) for _ in range(repeats))
    return 2.0 * n**3 / best


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` (matmuls, convolutions, attention) by ``FlopCounterMode``."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux and bytes on macOS
    scale = 1.0 / 1024 if sys.platform != "darwin" else 1.0 / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


# ----------------------------------------------------------------------------------------------------
# The benchmark


@dataclass
class BenchResult:
    """The figures of one preset; ``*_ips`` are images per second."""

    preset: str
    device: str
    batch_size: int
    iters: int
    iter_ips: float
    naive_iter_ips: float | None
    g_fwd_ips: float
    d_fwd_bwd_ips: float
    peak_mem_mb: float
    mem_kind: str
    flops_per_iter: int
    matmul_flops_per_s: float
    notes: list[str] = field(default_factory=list)

    @property
    def speedup(self) -> float | None:
        """Fast / naive iteration throughput."""
        return self.iter_ips / self.naive_iter_ips if self.naive_iter_ips else None

    @property
    def achieved_flops_per_s(self) -> float:
        return self.flops_per_iter * self.iter_ips / self.batch_size

    @property
    def efficiency(self) -> float:
        """Achieved FLOP/s of the iteration over dense matmul FLOP/s of this machine."""
        return self.achieved_flops_per_s / self.matmul_flops_per_s


def bench_preset(
    preset: str,
    device: str | torch.device | None = None,
    iters: int | None = None,
    batch_size: int | None = None,
    warmup: int = 1,
    rounds: int = 2,
    naive: bool = True,
    compile: bool = False,
) -> BenchResult:
    """Benchmark one preset; see the module docstring for what is measured.

    Args:
        preset: a name of :data:`vitgan_lite.config.PRESETS`.
        device: ``"cpu"``, ``"cuda"`` or None (CUDA when available).
        iters: timed iterations per round (default: small on the CPU, see ``CPU_ITERS``; 20 on a GPU).
        batch_size: overrides the preset's (on the CPU, paper-cifar10 defaults to 32).
        warmup: untimed iterations of each variant before timing (compilation, allocator, caches).
        rounds: fast and naive are timed in alternating rounds; the median round counts.
        naive: also time the straightforward variant (the speed-up column).
        compile: ``torch.compile`` the fast variant's G and D (CUDA only).
    """
    dev = resolve_device(device)
    notes: list[str] = []
    overrides: dict[str, Any] = {}
    if batch_size is not None:
        overrides["batch_size"] = batch_size
    elif dev.type == "cpu" and preset in CPU_MAX_BATCH:
        overrides["batch_size"] = CPU_MAX_BATCH[preset]
        notes.append(f"batch {CPU_MAX_BATCH[preset]} instead of the preset's on CPU")
    cfg = get_config(preset, **overrides)
    if iters is None:
        iters = CPU_ITERS.get(preset, 2) if dev.type == "cpu" else 20
        if dev.type == "cpu" and preset == "paper-cifar10":
            notes.append(f"{iters} iteration(s) per round on CPU")
    if iters < 1 or warmup < 0 or rounds < 1:
        raise ValueError(f"iters and rounds must be >= 1 and warmup >= 0, got {iters}, {rounds}, {warmup}")
    cfg = cfg.replace(compile=compile)
    mixed = amp_dtype(cfg, dev)  # bf16 on CUDA, as the trainer
    dtype = mixed or torch.float32
    B = cfg.batch_size

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        mem0, mem_kind = 0.0, "cuda max_memory_allocated"
    else:
        mem0, mem_kind = (
            _peak_rss_mb(),
            "CPU peak-RSS growth (ru_maxrss; 0 if an earlier preset peaked higher)",
        )
    images = random_images(cfg)
    models = build_networks(cfg, dev)  # both variants start from the same weights
    fast = build_parts(cfg, dev, images, models=models)  # exactly the trainer's
    slow = naive_parts(cfg, dev, images, models) if naive else None
    del models

    for _ in range(warmup):
        fast.iteration()
        if slow is not None:
            slow.iteration()
    flops = count_flops(fast.iteration)  # also one more warm-up iteration
    fast_t, slow_t = [], []
    for _ in range(rounds):  # interleaved: a load spike hits both variants
        fast_t.append(time_call(fast.iteration, dev, iters))
        if slow is not None:
            slow_t.append(time_call(slow.iteration, dev, iters))

    # G forward (sampling, no grad) and D forward + backward, on the fast variant's networks
    z = torch.randn(B, cfg.latent_dim, generator=torch.Generator().manual_seed(0)).to(dev)  # (B, Z)
    x = next(fast.batches)  # (B, C, H, W)

    def g_forward() -> None:
        with torch.no_grad():
            fast.G_fwd(z)  # under the run's precision, as in training

    def d_forward_backward() -> None:
        fast.D_fwd(x).sum().backward()  # logits (B,)

    g_forward()
    d_forward_backward()
    g_t = statistics.median(time_call(g_forward, dev, iters) for _ in range(rounds))
    d_t = statistics.median(time_call(d_forward_backward, dev, iters) for _ in range(rounds))
    fast.D.zero_grad(set_to_none=True)

    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev) / 2**20
    else:
        peak = max(0.0, _peak_rss_mb() - mem0)
    if mixed is not None:
        notes.append("bf16 autocast")
    if compile and dev.type == "cuda":
        notes.append("torch.compile")
    return BenchResult(
        preset=preset,
        device=str(dev),
        batch_size=B,
        iters=iters * rounds,
        iter_ips=B / statistics.median(fast_t),
        naive_iter_ips=B / statistics.median(slow_t) if slow_t else None,
        g_fwd_ips=B / g_t,
        d_fwd_bwd_ips=B / d_t,
        peak_mem_mb=peak,
        mem_kind=mem_kind,
        flops_per_iter=flops,
        matmul_flops_per_s=matmul_flops_per_s(dev, dtype),
        notes=notes,
    )


def format_table(results: Sequence[BenchResult]) -> str:
    """The results as a fixed-width text table, one row per preset, with footnotes."""
    head = (
        f"{'preset':<22}{'B':>5}{'iter img/s':>12}{'naive img/s':>13}{'speed-up':>10}{'G fwd img/s':>13}"
        f"{'D f+b img/s':>13}{'GFLOP/iter':>12}{'GFLOP/s':>9}{'matmul':>9}{'eff.':>7}{'peak MiB':>10}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        naive = f"{r.naive_iter_ips:13.1f}" if r.naive_iter_ips else f"{'-':>13}"
        speed = f"{r.speedup:9.2f}x" if r.speedup else f"{'-':>10}"
        lines.append(
            f"{r.preset:<22}{r.batch_size:>5}{r.iter_ips:12.1f}{naive}{speed}{r.g_fwd_ips:13.1f}"
            f"{r.d_fwd_bwd_ips:13.1f}{r.flops_per_iter / 1e9:12.2f}{r.achieved_flops_per_s / 1e9:9.1f}"
            f"{r.matmul_flops_per_s / 1e9:9.1f}{r.efficiency:7.2f}{r.peak_mem_mb:10.0f}"
        )
    lines.append("")
    if results:
        r0 = results[0]
        lines.append(f"device {r0.device}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
        lines.append(f"peak memory: {r0.mem_kind}")
    lines.append(
        "iter = D step (DiffAugment + bCR) + G step + EMA; naive = fast=False attention, materialised "
        "modulated weights, 4 separate D passes, per-parameter Adam;\n"
        "eff. = (GFLOP/s of the iteration) / (dense matmul GFLOP/s, same dtype, same run)"
    )
    for r in results:
        if r.notes:
            lines.append(f"{r.preset}: {'; '.join(r.notes)}")
    return "\n".join(lines)


def run_bench(
    presets: Sequence[str] = DEFAULT_PRESETS,
    device: str | torch.device | None = None,
    iters: int | None = None,
    batch_size: int | None = None,
    naive: bool = True,
    compile: bool = False,
    print_fn: Callable[[str], None] | None = print,
) -> list[BenchResult]:
    """:func:`bench_preset` for each preset (smallest first), printing the table at the end."""
    results = [
        bench_preset(p, device, iters=iters, batch_size=batch_size, naive=naive, compile=compile)
        for p in presets
    ]
    if print_fn is not None:
        print_fn(format_table(results))
    return results


__all__ = [
    "BenchResult",
    "bench_preset",
    "count_flops",
    "format_table",
    "make_naive",
    "matmul_flops_per_s",
    "SeparatePasses",
    "naive_parts",
    "random_images",
    "run_bench",
]
