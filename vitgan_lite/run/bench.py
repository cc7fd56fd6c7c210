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
  the two throughputs, timed in interleaved rounds so that a busy machine slows both alike;
- with ``compile=True`` (``bench --compile``), on any device: the same fast iteration with G and D under
  ``torch.compile`` (inductor; C++ kernels built with the system compiler on the CPU), timed in the same
  interleaved rounds, and the compile time on its own: the wall time of the first compiled iteration(s)
  minus as many steady-state iterations. It is paid once per process, so it says how long a run must be
  before compiling pays.

:func:`scaling_table` (``bench --scaling``) shows how the cost grows: images/s, memory and the FLOP split
of one iteration against batch size, and against image size and token count (N = (H / P)^2). The split
(:class:`ModuleFlops`) separates the attention term that grows with N^2 (the N x N logits and attention x
values), G's patch decoder (per pixel) and the rest (the blocks' linear layers and MLPs, per token).

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
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.utils import flop_counter
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from vitgan_lite.attention import L2MultiHeadAttention, MultiHeadAttention
from vitgan_lite.config import Config, get_config
from vitgan_lite.course import resolve_device
from vitgan_lite.inr import ModulatedLinear
from vitgan_lite.linear import MIN_BLOCKS, MIN_WEIGHT, ROW_BLOCK
from vitgan_lite.run.trainer import Autocast, Parts, amp_dtype, build_networks, build_parts

DEFAULT_PRESETS = ("tiny-cpu", "seed-report-cifar10")
CPU_ITERS = {"tiny-cpu": 3, "seed-report-cifar10": 1, "paper-cifar10": 1}  # timed iterations per round
CPU_MAX_BATCH = {"paper-cifar10": 32}  # the paper's batch 128 takes minutes per iteration on a laptop CPU
NUM_IMAGES = 512  # random uint8 images resident on the device
SCALING_BATCHES = (8, 32, 128)  # batch sizes of the scaling table, at 32 x 32 pixels and patch 4
SCALING_SIZES = ((32, 4), (64, 8), (64, 4))  # (image size, patch size): 64, 64 and 256 tokens


# ----------------------------------------------------------------------------------------------------
# Compilation: the benchmark wraps the networks itself, whatever the trainer would decide


def compile_off(cfg: Config) -> Config:
    """``cfg`` with compilation off, whether its ``compile`` field is a bool (older configs) or a mode
    string ("auto" | "on" | "off"): the benchmark decides what it compiles (:func:`compile_parts`)."""
    return cfg.replace(compile=False if isinstance(cfg.compile, bool) else "off")


def _uncompiled(module: nn.Module) -> nn.Module:
    """``module`` without its ``torch.compile`` wrappers (an ``OptimizedModule`` keeps the original in
    ``_orig_mod``)."""
    while isinstance(getattr(module, "_orig_mod", None), nn.Module):
        module = module._orig_mod
    return module


def _rewrap(parts: Parts, wrap: Callable[[nn.Module], nn.Module]) -> Parts:
    """``parts`` with ``wrap`` applied to the bare callables of ``G_fwd``, ``D_fwd`` and ``D_for_g``;
    :class:`~vitgan_lite.run.trainer.Autocast` stays outermost, as in ``build_parts``."""

    def one(m: nn.Module) -> nn.Module:
        if isinstance(m, Autocast):
            return Autocast(one(m.module), m.device_type, m.dtype)
        return wrap(_uncompiled(m))

    return dataclasses.replace(
        parts, G_fwd=one(parts.G_fwd), D_fwd=one(parts.D_fwd), D_for_g=one(parts.D_for_g)
    )


def eager_parts(parts: Parts) -> Parts:
    """``parts`` with every ``torch.compile`` wrapper removed (what the eager rows time)."""
    return _rewrap(parts, lambda m: m)


def compile_parts(parts: Parts, backend: str = "inductor") -> Parts:
    """``parts`` with G and D under ``torch.compile(backend=backend)``, on any device.

    As in ``build_parts``: the compiled module sits inside the Autocast wrapper, and ``D_for_g`` (the G
    step's D) is the same compiled D as ``D_fwd`` when they wrap the same module (no DDP here).
    ``backend="eager"`` or ``"aot_eager"`` traces without generating kernels (fast; for tests).
    """
    compiled: dict[int, nn.Module] = {}

    def comp(m: nn.Module) -> nn.Module:
        if id(m) not in compiled:
            compiled[id(m)] = torch.compile(m, backend=backend)
        return compiled[id(m)]

    return _rewrap(parts, comp)


def _compile_counters() -> dict[str, int]:
    """Dynamo's graph count and inductor's FX-graph cache hits / misses so far in this process."""
    from torch._dynamo.utils import counters

    return {
        "graphs": int(counters["stats"]["unique_graphs"]),
        "cache_hits": int(counters["inductor"]["fxgraph_cache_hit"]),
        "cache_misses": int(counters["inductor"]["fxgraph_cache_miss"]),
    }


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
    plain (not row-blocked) linear layers, no compilation."""
    G, D = models
    parts = build_parts(
        compile_off(cfg), device, images, models=(make_naive(G), make_naive(D)),
        adam_options={"foreach": False}, mixed_precision=False, row_blocks=False,
    )  # fmt: skip
    parts = eager_parts(parts)
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
    device: torch.device, dtype: torch.dtype, n: int | None = None, repeats: int = 10
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


def _sdpa_cpu_flop(query: Any, key: Any, value: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return flop_counter.sdpa_flop_count(query, key, value)  # shapes (B, H, N, Dh)


def _sdpa_cpu_backward_flop(
    grad_out: Any, query: Any, key: Any, value: Any, *args: Any, out_shape: Any = None, **kwargs: Any
) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_out, query, key, value)


def _extra_flop_formulas() -> dict[Any, Callable[..., int]]:
    """FLOP formulas that ``FlopCounterMode`` lacks: the CPU flash-attention kernel of
    ``scaled_dot_product_attention`` and its backward (same count as the GPU kernels: 2 N^2 Dh per head
    for the logits, 2 N^2 Dv for attention x values). Without them G's attention counts 0 FLOPs on a CPU."""
    extra: dict[Any, Callable[..., int]] = {}
    if not hasattr(flop_counter, "sdpa_backward_flop_count"):  # an older torch: no attention formulas
        return extra
    for name, formula in (
        ("_scaled_dot_product_flash_attention_for_cpu", _sdpa_cpu_flop),
        ("_scaled_dot_product_flash_attention_for_cpu_backward", _sdpa_cpu_backward_flop),
    ):
        try:
            op = getattr(torch.ops.aten, name)
        except (AttributeError, RuntimeError):  # a torch without this kernel
            continue
        if op not in flop_counter.flop_registry:  # a newer torch may count it itself
            extra[op] = formula
    return extra


EXTRA_FLOP_FORMULAS = _extra_flop_formulas()


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` (matmuls, convolutions, attention) by ``FlopCounterMode``, with the
    formulas it lacks (:data:`EXTRA_FLOP_FORMULAS`)."""
    counter = flop_counter.FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS)
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
    """The figures of one preset; ``*_ips`` are images per second. ``compiled_*`` and ``compile_s`` are
    None unless the compiled variant was timed."""

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
    compiled_iter_ips: float | None = None
    compile_s: float | None = None  # first compiled iteration(s) minus as many steady-state ones
    compile_backend: str | None = None

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

    @property
    def compile_speedup(self) -> float | None:
        """Compiled / eager iteration throughput (steady state, compile time excluded)."""
        return self.compiled_iter_ips / self.iter_ips if self.compiled_iter_ips else None

    @property
    def compiled_flops_per_s(self) -> float | None:
        """Achieved FLOP/s of the compiled iteration (the same FLOPs, counted on the eager one)."""
        if not self.compiled_iter_ips:
            return None
        return self.flops_per_iter * self.compiled_iter_ips / self.batch_size

    @property
    def best_iter_ips(self) -> float:
        """The faster of the eager and the compiled iteration (steady state)."""
        return max(self.iter_ips, self.compiled_iter_ips or 0.0)


def bench_preset(
    preset: str,
    device: str | torch.device | None = None,
    iters: int | None = None,
    batch_size: int | None = None,
    warmup: int = 1,
    rounds: int = 2,
    naive: bool = True,
    compile: bool = False,
    compile_backend: str = "inductor",
    overrides: dict[str, Any] | None = None,
) -> BenchResult:
    """Benchmark one preset; see the module docstring for what is measured.

    Args:
        preset: a name of :data:`vitgan_lite.config.PRESETS`.
        device: ``"cpu"``, ``"cuda"`` or None (CUDA when available).
        iters: timed iterations per round (default: small on the CPU, see ``CPU_ITERS``; 20 on a GPU).
        batch_size: overrides the preset's (on the CPU, paper-cifar10 defaults to 32).
        warmup: untimed iterations of each variant before timing (allocator, caches); the compiled
            variant's first ``max(warmup, 1)`` iterations are timed apart: they hold the compilation.
        rounds: the variants are timed in alternating rounds; the median round counts.
        naive: also time the straightforward variant (the speed-up column).
        compile: also time the fast iteration with G and D under ``torch.compile`` (any device), and
            report the compile time apart from the steady-state throughput.
        compile_backend: ``torch.compile``'s backend ("inductor"; "eager" / "aot_eager" only trace).
        overrides: further config fields (e.g. ``{"amp": "bf16"}``).
    """
    dev = resolve_device(device)
    notes: list[str] = []
    fields: dict[str, Any] = dict(overrides or {})
    if batch_size is not None:
        fields["batch_size"] = batch_size
    elif dev.type == "cpu" and preset in CPU_MAX_BATCH and "batch_size" not in fields:
        fields["batch_size"] = CPU_MAX_BATCH[preset]
        notes.append(f"batch {CPU_MAX_BATCH[preset]} instead of the preset's on CPU")
    cfg = compile_off(get_config(preset, **fields))  # the benchmark compiles what it times itself
    if iters is None:
        iters = CPU_ITERS.get(preset, 2) if dev.type == "cpu" else 20
        if dev.type == "cpu" and preset == "paper-cifar10":
            notes.append(f"{iters} iteration(s) per round on CPU")
    if iters < 1 or warmup < 0 or rounds < 1:
        raise ValueError(f"iters and rounds must be >= 1 and warmup >= 0, got {iters}, {rounds}, {warmup}")
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
    models = build_networks(cfg, dev)  # every variant starts from the same weights
    fast = eager_parts(build_parts(cfg, dev, images, models=models))  # the trainer's, not compiled
    slow = naive_parts(cfg, dev, images, models) if naive else None
    comp = compile_parts(build_parts(cfg, dev, images, models=models), compile_backend) if compile else None
    del models

    for _ in range(warmup):
        fast.iteration()
        if slow is not None:
            slow.iteration()
    flops = count_flops(fast.iteration)  # also one more warm-up iteration
    first_s, n_first, counts0, counts1 = 0.0, max(warmup, 1), {}, {}
    if comp is not None:
        torch._dynamo.reset()  # a fresh compile cache: an earlier preset's graphs neither help nor crowd
        counts0 = _compile_counters()
        _sync(dev)
        t0 = time.perf_counter()
        for _ in range(n_first):
            comp.iteration()  # traces, compiles, runs
        _sync(dev)
        first_s = time.perf_counter() - t0
        counts1 = _compile_counters()
    fast_t, comp_t, slow_t = [], [], []
    for _ in range(rounds):  # interleaved: a load spike hits every variant
        fast_t.append(time_call(fast.iteration, dev, iters))
        if comp is not None:
            comp_t.append(time_call(comp.iteration, dev, iters))
        if slow is not None:
            slow_t.append(time_call(slow.iteration, dev, iters))
    compile_s = None
    if comp is not None:
        compile_s = max(0.0, first_s - n_first * statistics.median(comp_t))
        graphs = counts1["graphs"] - counts0["graphs"]
        hits = counts1["cache_hits"] - counts0["cache_hits"]
        misses = counts1["cache_misses"] - counts0["cache_misses"]
        cache = f"; inductor cache {hits} hit(s), {misses} miss(es)" if hits + misses else ""
        notes.append(
            f"torch.compile ({compile_backend}): {graphs} graph(s), first {n_first} iteration(s) "
            f"{first_s:.1f} s{cache}"
        )
        if _compile_counters()["graphs"] > counts1["graphs"]:
            notes.append("torch.compile recompiled during the timed rounds: the compiled img/s includes it")

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
        if comp is not None:
            mem_kind += "; with --compile it includes the compiler's own memory"
    if mixed is not None:
        notes.append("bf16 autocast")
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
        compiled_iter_ips=B / statistics.median(comp_t) if comp_t else None,
        compile_s=compile_s,
        compile_backend=compile_backend if comp is not None else None,
    )


def format_table(results: Sequence[BenchResult]) -> str:
    """The results as a fixed-width text table, with footnotes: one row per preset (the eager fast
    iteration), and under it a ``+ torch.compile`` row when the compiled variant was timed."""
    head = (
        f"{'preset':<22}{'B':>5}{'iter img/s':>12}{'naive img/s':>13}{'speed-up':>10}{'G fwd img/s':>13}"
        f"{'D f+b img/s':>13}{'GFLOP/iter':>12}{'GFLOP/s':>9}{'matmul':>9}{'eff.':>7}{'peak MiB':>10}"
        f"{'compile s':>11}{'vs eager':>10}"
    )
    lines = [head, "-" * len(head)]
    dash = "-"
    for r in results:
        naive = f"{r.naive_iter_ips:13.1f}" if r.naive_iter_ips else f"{dash:>13}"
        speed = f"{r.speedup:9.2f}x" if r.speedup else f"{dash:>10}"
        lines.append(
            f"{r.preset:<22}{r.batch_size:>5}{r.iter_ips:12.1f}{naive}{speed}{r.g_fwd_ips:13.1f}"
            f"{r.d_fwd_bwd_ips:13.1f}{r.flops_per_iter / 1e9:12.2f}{r.achieved_flops_per_s / 1e9:9.1f}"
            f"{r.matmul_flops_per_s / 1e9:9.1f}{r.efficiency:7.2f}{r.peak_mem_mb:10.0f}{dash:>11}{dash:>10}"
        )
        if r.compiled_iter_ips:
            ips, flops_s = r.compiled_iter_ips, r.compiled_flops_per_s or 0.0
            speed = f"{ips / r.naive_iter_ips:9.2f}x" if r.naive_iter_ips else f"{dash:>10}"
            lines.append(
                f"{'  + torch.compile':<22}{r.batch_size:>5}{ips:12.1f}{dash:>13}{speed}{dash:>13}{dash:>13}"
                f"{r.flops_per_iter / 1e9:12.2f}{flops_s / 1e9:9.1f}{r.matmul_flops_per_s / 1e9:9.1f}"
                f"{flops_s / r.matmul_flops_per_s:7.2f}{dash:>10}{r.compile_s or 0.0:11.1f}"
                f"{r.compile_speedup or 0.0:9.2f}x"
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
    if any(r.compiled_iter_ips for r in results):
        lines.append(
            "+ torch.compile = the same fast iteration with G and D compiled (steady state; speed-up vs "
            "naive);\ncompile s = wall time of the first compiled iteration(s) minus as many steady-state "
            "ones, paid once per process; vs eager = compiled / eager img/s"
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
    compile_backend: str = "inductor",
) -> list[BenchResult]:
    """:func:`bench_preset` for each preset (smallest first), printing the table at the end."""
    results = [
        bench_preset(
            p,
            device,
            iters=iters,
            batch_size=batch_size,
            naive=naive,
            compile=compile,
            compile_backend=compile_backend,
        )  # fmt: skip
        for p in presets
    ]
    if print_fn is not None:
        print_fn(format_table(results))
    return results


# ----------------------------------------------------------------------------------------------------
# Scaling: where the FLOPs and the memory of one iteration go as batch, image size and tokens grow

_ATTENTION = (MultiHeadAttention, L2MultiHeadAttention)
_TAG = "vitgan_lite.bench.module"  # key of an autograd node's metadata: the module that created it


def _tag_new_nodes(outputs: Any, start: int, end: int, name: str) -> None:
    """Tag with ``name`` the autograd nodes behind ``outputs`` created with sequence numbers in [start, end)
    (during one module call) that an inner module has not tagged yet."""
    stack = [t.grad_fn for t in tree_leaves(outputs) if isinstance(t, torch.Tensor) and t.grad_fn is not None]
    seen: dict[int, Any] = {}  # id -> node, kept alive so that ids stay unique
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen[id(node)] = node
        if not start <= node._sequence_nr() < end:  # older (or AccumulateGrad): not this call's
            continue
        node.metadata.setdefault(_TAG, name)
        stack.extend(fn for fn, _ in node.next_functions)


class ModuleFlops(TorchDispatchMode):
    """FLOPs of every op run inside it, charged to the innermost module of ``roots`` that ran it, in the
    forward *and* in the backward; ``flops[name]`` (``None``: outside every module, e.g. the losses).

    ``FlopCounterMode.get_flop_counts()`` follows the backward with module hooks, and in a training
    iteration it charges backward ops to modules that are long done (spectral norm's parametrizations
    and the SLN layers collect the decoder's backward), so its per-module counts cannot split an
    iteration. Here every autograd node created during a module's forward is tagged with that module
    (nodes carry sequence numbers), and a backward op is charged to the module of the node that runs it
    (``torch._C._current_autograd_node``). FLOP formulas: FlopCounterMode's, plus
    :data:`EXTRA_FLOP_FORMULAS`; the total equals :func:`count_flops`.
    """

    def __init__(self, roots: dict[str, nn.Module]) -> None:
        super().__init__()
        self.names = {
            m: f"{prefix}.{n}" if n else prefix
            for prefix, root in roots.items()
            for n, m in root.named_modules()
        }
        self.formulas = {
            **flop_counter.flop_registry,
            **{op: flop_counter.shape_wrapper(f) for op, f in EXTRA_FLOP_FORMULAS.items()},
        }
        self.flops: dict[str | None, int] = defaultdict(int)
        self._stack: list[tuple[str, int]] = []
        self._hooks: list[Any] = []

    def _pre(self, module: nn.Module, args: Any) -> None:
        if module in self.names:
            self._stack.append((self.names[module], torch._C._autograd._get_sequence_nr()))

    def _post(self, module: nn.Module, args: Any, output: Any) -> None:
        if module in self.names and self._stack:
            name, start = self._stack.pop()
            end = torch._C._autograd._get_sequence_nr()
            if end > start:
                _tag_new_nodes(output, start, end, name)

    def __enter__(self) -> ModuleFlops:
        from torch.nn.modules import module as module_mod

        self._hooks = [
            module_mod.register_module_forward_pre_hook(self._pre),
            module_mod.register_module_forward_hook(self._post),
        ]
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks, self._stack = [], []
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = self.formulas.get(func._overloadpacket)
        if formula is not None:
            node = torch._C._current_autograd_node()  # None outside the backward
            if node is not None:
                where = node.metadata.get(_TAG)
            else:
                where = self._stack[-1][0] if self._stack else None
            self.flops[where] += int(formula(*args, **kwargs, out_val=out))
        return out


@dataclass
class FlopSplit:
    """FLOPs of one iteration in three terms (forward and backward, G and D)."""

    attention: int  # the N x N logits and attention x values in the attention modules: grows with N^2
    decoder: int  # G's patch decoder (G.decoder): per pixel
    rest: int  # everything else, mostly the blocks' linear layers and MLPs: per token

    @property
    def total(self) -> int:
        return self.attention + self.decoder + self.rest

    def share(self, term: str) -> float:
        return getattr(self, term) / max(self.total, 1)


def split_flops(flops: dict[str | None, int], roots: dict[str, nn.Module]) -> FlopSplit:
    """The :class:`FlopSplit` of :class:`ModuleFlops` counts over ``roots`` (``{"G": G, "D": D}``).

    Ops charged to an attention module itself (not to its q/k/v and output Linear layers) are the N^2
    term: the attention kernel (``scaled_dot_product_attention``) or the explicit (B, H, N, N) matmuls."""
    attention = {
        f"{prefix}.{n}" if n else prefix
        for prefix, root in roots.items()
        for n, m in root.named_modules()
        if isinstance(m, _ATTENTION)
    }
    split = FlopSplit(0, 0, 0)
    for name, n in flops.items():
        if name in attention:
            split.attention += n
        elif name is not None and (name == "G.decoder" or name.startswith("G.decoder.")):
            split.decoder += n
        else:
            split.rest += n
    return split


def _storage_key(t: torch.Tensor) -> tuple[int, int]:
    s = t.untyped_storage()
    return s.data_ptr(), s.nbytes()


def state_bytes(parts: Parts) -> int:
    """Bytes of the training state: parameters and buffers of G, D and G_ema, the gradients of G and D,
    and both optimizers' state (Adam's two moments)."""
    tensors: list[torch.Tensor] = []
    for m in (parts.G, parts.D, parts.G_ema):
        tensors += [*m.parameters(), *m.buffers()]
    tensors += [p.grad for m in (parts.G, parts.D) for p in m.parameters() if p.grad is not None]
    for opt in (parts.opt_g, parts.opt_d):
        tensors += [v for st in opt.state.values() for v in st.values() if isinstance(v, torch.Tensor)]
    return sum(dict(_storage_key(t) for t in tensors).values())


class SavedTensorBytes:
    """Counts the bytes of the tensors autograd saves for backward while it is active.

    Every saved tensor (``torch.autograd.graph.saved_tensors_hooks``; the tensors themselves are kept as
    they are) is counted once per storage, by data pointer, leaving out the storages of ``exclude``
    (parameters and buffers: counted as state). :meth:`next_step` starts a new count: ``steps`` holds one
    ``{data pointer: bytes}`` per step, ``peak`` the largest step total.
    """

    def __init__(self, exclude: Sequence[torch.Tensor] = ()) -> None:
        self.exclude = {_storage_key(t)[0] for t in exclude}
        self.steps: list[dict[int, int]] = [{}]
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        if t.device.type != "meta":
            ptr, nbytes = _storage_key(t)
            if ptr and ptr not in self.exclude:
                self.steps[-1][ptr] = nbytes
        return t

    def next_step(self, *_: Any) -> None:
        self.steps.append({})

    @property
    def peak(self) -> int:
        return max(sum(step.values()) for step in self.steps)

    def __enter__(self) -> SavedTensorBytes:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._hooks.__exit__(*exc)


def measure_iteration(parts: Parts) -> tuple[FlopSplit, int]:
    """Run one iteration of ``parts`` and return its :class:`FlopSplit` (:class:`ModuleFlops`) and the
    bytes of the activations it saves for backward (:class:`SavedTensorBytes`).

    The D step's backward frees its saved tensors before the G step saves its own, so the bytes are the
    larger of the two steps' (told apart by a post-hook on D's optimizer step).
    """
    roots = {"G": parts.G, "D": parts.D}
    weights = [t for m in (parts.G, parts.D, parts.G_ema) for t in (*m.parameters(), *m.buffers())]
    saved = SavedTensorBytes(exclude=weights)
    hook = parts.opt_d.register_step_post_hook(saved.next_step)
    counter = ModuleFlops(roots)
    try:
        with counter, saved:
            parts.iteration()
    finally:
        hook.remove()
    return split_flops(counter.flops, roots), saved.peak


@dataclass
class ScalingRow:
    """One configuration of the scaling table. ``memory_bytes``: CUDA ``max_memory_allocated`` over the
    timed iterations; on the CPU the estimate ``saved_bytes + state_bytes``."""

    axis: str  # "batch" or "size": which part of the table the row belongs to
    preset: str
    device: str
    batch_size: int
    image_size: int
    patch_size: int
    iters: int
    iter_ips: float
    flops: FlopSplit
    saved_bytes: int
    state_bytes: int
    cuda_peak_bytes: int | None = None

    @property
    def tokens(self) -> int:
        """N = (H / P)^2, the generator's tokens (D adds one CLS token)."""
        return (self.image_size // self.patch_size) ** 2

    @property
    def memory_bytes(self) -> int:
        return (
            self.cuda_peak_bytes if self.cuda_peak_bytes is not None else self.saved_bytes + self.state_bytes
        )

    @property
    def achieved_flops_per_s(self) -> float:
        return self.flops.total * self.iter_ips / self.batch_size

    def sentence(self) -> str:
        """Which FLOP term dominates this row, and its share."""
        f = self.flops
        shares = {"attention": f.share("attention"), "decoder": f.share("decoder"), "rest": f.share("rest")}
        top = max(shares, key=shares.__getitem__)
        what, plural = {
            "attention": ("the quadratic attention term", False),
            "decoder": ("the per-pixel decoder", False),
            "rest": ("the per-token layers (linear layers and MLPs)", True),
        }[top]
        if shares[top] >= 0.5:
            verb = "dominate" if plural else "dominates"
        else:
            verb = "are the largest term" if plural else "is the largest term"
        return (
            f"{self.image_size}x{self.image_size}, P={self.patch_size}, batch {self.batch_size}: "
            f"{self.tokens} tokens; attention N^2 term {shares['attention']:.0%} of FLOPs, decoder "
            f"{shares['decoder']:.0%}, per-token layers {shares['rest']:.0%}: {what} {verb} "
            f"({shares[top]:.0%})"
        )


def scaling_row(
    preset: str,
    device: str | torch.device | None,
    batch_size: int,
    image_size: int,
    patch_size: int,
    iters: int | None = None,
    axis: str = "batch",
) -> ScalingRow:
    """Measure one configuration: ``preset`` at ``batch_size``, ``image_size`` pixels and patch size
    ``patch_size`` (G's and D's), the fast eager iteration. One measured iteration (FLOP split and saved
    bytes; also the warm-up), then ``iters`` timed ones (default 1 on the CPU, 10 after 2 more warm-ups on
    a GPU)."""
    dev = resolve_device(device)
    cfg = compile_off(
        get_config(
            preset,
            batch_size=batch_size,
            image_size=image_size,
            g_patch_size=patch_size,
            d_patch_size=patch_size,
        )
    )
    iters = iters if iters is not None else (1 if dev.type == "cpu" else 10)
    if iters < 1:
        raise ValueError(f"iters must be >= 1, got {iters}")
    parts = eager_parts(build_parts(cfg, dev, random_images(cfg, max(NUM_IMAGES // 4, batch_size))))
    if dev.type == "cuda":
        for _ in range(2):
            parts.iteration()
    split, saved = measure_iteration(parts)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    seconds = time_call(parts.iteration, dev, iters)
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None
    return ScalingRow(
        axis=axis, preset=preset, device=str(dev), batch_size=batch_size, image_size=image_size,
        patch_size=patch_size, iters=iters, iter_ips=batch_size / seconds, flops=split, saved_bytes=saved,
        state_bytes=state_bytes(parts), cuda_peak_bytes=peak,
    )  # fmt: skip


def scaling_table(
    preset: str = "tiny-cpu",
    device: str | torch.device | None = None,
    batch_sizes: Sequence[int] = SCALING_BATCHES,
    sizes: Sequence[tuple[int, int]] = SCALING_SIZES,
    size_batch: int | None = None,
    iters: int | None = None,
    print_fn: Callable[[str], None] | None = print,
) -> list[ScalingRow]:
    """How one iteration of ``preset`` scales: rows against batch size (``batch_sizes`` at 32 x 32 pixels,
    patch 4), then against image size and token count (``sizes``, (image size, patch size) pairs, at
    ``size_batch``, default the preset's batch). A configuration in both parts is measured once.
    Prints :func:`format_scaling` unless ``print_fn`` is None."""
    if not batch_sizes and not sizes:
        raise ValueError("scaling_table needs batch sizes or image sizes")
    size_batch = size_batch if size_batch is not None else get_config(preset).batch_size
    done: dict[tuple[int, int, int], ScalingRow] = {}
    rows = []
    for axis, configs in (
        ("batch", [(b, 32, 4) for b in batch_sizes]),
        ("size", [(size_batch, s, p) for s, p in sizes]),
    ):
        for key in configs:
            if key not in done:
                done[key] = scaling_row(preset, device, *key, iters=iters, axis=axis)
            rows.append(dataclasses.replace(done[key], axis=axis))
    if print_fn is not None:
        print_fn(format_scaling(rows))
    return rows


def format_scaling(rows: Sequence[ScalingRow]) -> str:
    """The scaling table: one block per axis, then one sentence per row naming the dominant FLOP term."""
    if not rows:
        return "(no rows)"
    head = (
        f"{'B':>5}{'image':>7}{'P':>4}{'tokens':>8}{'img/s':>9}{'GFLOP/iter':>12}{'GFLOP/s':>9}"
        f"{'attn N^2':>10}{'decoder':>9}{'rest':>7}{'memory MiB':>12}{'saved MiB':>11}"
    )
    r0 = rows[0]
    lines = [f"scaling of one training iteration: preset {r0.preset}, device {r0.device} (fast path, eager)"]
    for axis, title in (("batch", "against batch size"), ("size", "against image size and tokens")):
        part = [r for r in rows if r.axis == axis]
        if not part:
            continue
        lines += ["", title, head, "-" * len(head)]
        for r in part:
            f = r.flops
            lines.append(
                f"{r.batch_size:>5}{r.image_size:>7}{r.patch_size:>4}{r.tokens:>8}{r.iter_ips:9.1f}"
                f"{f.total / 1e9:12.2f}{r.achieved_flops_per_s / 1e9:9.1f}{f.share('attention'):10.0%}"
                f"{f.share('decoder'):9.0%}{f.share('rest'):7.0%}{r.memory_bytes / 2**20:12.0f}"
                f"{r.saved_bytes / 2**20:11.0f}"
            )
    lines.append("")
    seen = set()
    for r in rows:
        key = (r.batch_size, r.image_size, r.patch_size)
        if key not in seen:
            seen.add(key)
            lines.append(r.sentence())
    memory = (
        "CUDA max_memory_allocated over the timed iterations"
        if r0.cuda_peak_bytes is not None
        else "saved MiB (tensors saved for backward, the larger of the D step and the G step) + parameters, "
        "buffers, gradients and Adam state"
    )
    lines += [
        "",
        f"memory MiB: {memory}; torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"{r0.iters} timed iteration(s) per row",
        "attn N^2 = the N x N logits and attention x values inside the attention modules (G and D, forward "
        "and backward); decoder = G's patch decoder (per pixel); rest = the blocks' linear layers, MLPs, "
        "embeddings and heads (per token)",
    ]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# GEMMs: the iteration's matrix products timed alone, plain and in row blocks (vitgan_lite/linear.py)

_GEMM_OPS = {  # the out= forms are the row blocks' (vitgan_lite/linear.py)
    torch.ops.aten.mm.default: "mm",
    torch.ops.aten.mm.out: "mm",
    torch.ops.aten.addmm.default: "addmm",
    torch.ops.aten.addmm.out: "addmm",
}
GEMM_BLOCKS = (512, 1024, 2048)  # row blocks compared by gemm_table; linear.ROW_BLOCK is the chosen one


class _GemmShapes(TorchDispatchMode):
    """Counts every ``mm`` / ``addmm`` run inside it by (op, operand shapes and strides)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[tuple, int] = defaultdict(int)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        op = _GEMM_OPS.get(func)
        if op is not None:
            a, b = (args[1], args[2]) if op == "addmm" else (args[0], args[1])
            key = (op, tuple(a.shape), a.stride(), tuple(b.shape), b.stride(), a.dtype)
            self.calls[key] += 1
        return func(*args, **(kwargs or {}))


@dataclass
class GemmRow:
    """One matrix product of the iteration: ``(M, K) x (K, N)``, ``calls`` per iteration, seconds per call
    alone (``plain_s``) and in row blocks (``blocked_s[block]``, only where ``M >= MIN_BLOCKS * block``,
    as :class:`vitgan_lite.linear.Linear` does it)."""

    op: str
    m: int
    k: int
    n: int
    calls: int
    plain_s: float
    blocked_s: dict[int, float]

    @property
    def flop(self) -> int:
        return 2 * self.m * self.k * self.n


@dataclass
class GemmReport:
    """:func:`gemm_table`'s result: the products of the iteration with row blocks off (``rows``) and as the
    trainer runs them (``trainer_rows``), the dense ``matmul`` reference and the iteration's own times
    (eager, with row blocks and without, same run)."""

    preset: str
    device: str
    batch_size: int
    rows: list[GemmRow]
    trainer_rows: list[GemmRow]
    matmul_flops_per_s: float
    flops_per_iter: int
    iter_s: float
    iter_plain_s: float

    def gemm_s(self, trainer: bool = False) -> float:
        """Seconds per iteration of the products alone: row blocks off, or as the trainer runs them."""
        return sum(r.calls * r.plain_s for r in (self.trainer_rows if trainer else self.rows))

    def efficiency(self, seconds: float) -> float:
        """The iteration's FLOPs done in ``seconds``, over the dense ``matmul``'s FLOP/s."""
        return self.flops_per_iter / seconds / self.matmul_flops_per_s


def _time_best(fn: Callable[[], Any], device: torch.device, iters: int, repeats: int) -> float:
    fn()  # warm-up
    return min(time_call(fn, device, iters) for _ in range(repeats))


def _time_gemm(key: tuple, calls: int, device: torch.device, blocks: Sequence[int], iters: int) -> GemmRow:
    op, a_shape, a_stride, b_shape, b_stride, dtype = key
    gen = torch.Generator().manual_seed(0)

    def operand(shape: tuple, stride: tuple) -> torch.Tensor:  # the layout the iteration passed
        return torch.empty_strided(shape, stride).normal_(generator=gen).to(device, dtype)

    a, b = operand(a_shape, a_stride), operand(b_shape, b_stride)
    bias = torch.randn(b_shape[1], generator=gen).to(device, dtype)
    M, N = a_shape[0], b_shape[1]

    def plain() -> None:
        torch.addmm(bias, a, b) if op == "addmm" else torch.mm(a, b)

    def blocked(block: int) -> Callable[[], None]:
        out = torch.empty(M, N, device=device, dtype=dtype)

        def run() -> None:
            for start in range(0, M, block):
                rows = slice(start, start + block)
                if op == "addmm":
                    torch.addmm(bias, a[rows], b, out=out[rows])
                else:
                    torch.mm(a[rows], b, out=out[rows])

        return run

    repeats = 3
    return GemmRow(
        op=op, m=M, k=a_shape[1], n=N, calls=calls,
        plain_s=_time_best(plain, device, iters, repeats),
        blocked_s={
            blk: _time_best(blocked(blk), device, iters, repeats) for blk in blocks if M >= MIN_BLOCKS * blk
        },
    )  # fmt: skip


def gemm_table(
    preset: str = "seed-report-cifar10",
    device: str | torch.device | None = None,
    batch_size: int | None = None,
    blocks: Sequence[int] = GEMM_BLOCKS,
    iters: int = 3,
    print_fn: Callable[[str], None] | None = print,
) -> GemmReport:
    """Every matrix product of one training iteration of ``preset``, timed alone: plain, and in row blocks.

    The products are recorded from the fast iteration with row blocks off (so every product has its full
    rows), then each distinct shape (and operand layout) is timed on its own, ``iters`` calls per timing,
    best of three. Summing ``calls x seconds`` gives the time the iteration would take if it were nothing
    but its products at these speeds: ``FLOPs / that time / dense matmul FLOP/s`` is an upper bound on the
    efficiency ratio the iteration can reach with this BLAS (a bound with warm caches: in the iteration
    the operands arrive cold). The iteration itself is timed in the same run with row blocks on and off
    (eager). Prints :func:`format_gemm` unless ``print_fn`` is None.
    """
    dev = resolve_device(device)
    fields = {"batch_size": batch_size} if batch_size is not None else {}
    if batch_size is None and dev.type == "cpu" and preset in CPU_MAX_BATCH:
        fields["batch_size"] = CPU_MAX_BATCH[preset]
    cfg = compile_off(get_config(preset, **fields))
    images = random_images(cfg)
    models = build_networks(cfg, dev)
    plain_parts, fast = (
        eager_parts(build_parts(cfg, dev, images, models=models, row_blocks=on, mixed_precision=False))
        for on in (False, True)
    )
    del models
    plain_parts.iteration()
    fast.iteration()
    shapes, trainer_shapes = _GemmShapes(), _GemmShapes()
    with shapes:
        plain_parts.iteration()
    with trainer_shapes:
        fast.iteration()
    flops = count_flops(plain_parts.iteration)
    n = CPU_ITERS.get(preset, 2) if dev.type == "cpu" else 20
    iter_s, iter_plain_s = [], []
    for _ in range(2):  # interleaved rounds, median
        iter_s.append(time_call(fast.iteration, dev, n))
        iter_plain_s.append(time_call(plain_parts.iteration, dev, n))
    timed = {key: _time_gemm(key, calls, dev, blocks, iters) for key, calls in shapes.calls.items()}
    rows = sorted(timed.values(), key=lambda r: -r.calls * r.plain_s)
    trainer_rows = [  # the blocks' own shapes (1024 rows, and the last block's), timed plain
        dataclasses.replace(timed[key], calls=n) if key in timed else _time_gemm(key, n, dev, (), iters)
        for key, n in trainer_shapes.calls.items()
    ]
    report = GemmReport(
        preset=preset, device=str(dev), batch_size=cfg.batch_size, rows=rows, trainer_rows=trainer_rows,
        matmul_flops_per_s=matmul_flops_per_s(dev, torch.float32), flops_per_iter=flops,
        iter_s=statistics.median(iter_s), iter_plain_s=statistics.median(iter_plain_s),
    )  # fmt: skip
    if print_fn is not None:
        print_fn(format_gemm(report, blocks))
    return report


def format_gemm(report: GemmReport, blocks: Sequence[int] = GEMM_BLOCKS, top: int = 12) -> str:
    """The ``top`` products by time (efficiency plain and per row block), then what they bound."""
    peak = report.matmul_flops_per_s
    head = f"{'op':<6}{'M x K x N':>20}{'calls':>7}{'time %':>8}{'plain':>7}" + "".join(
        f"{f'{b} rows':>11}" for b in blocks
    )
    total = report.gemm_s()
    lines = [
        f"matrix products of one training iteration: preset {report.preset}, batch {report.batch_size}, "
        f"device {report.device}, float32",
        "each timed alone; columns: efficiency = its FLOP/s / dense 1024-cube matmul FLOP/s "
        f"({peak / 1e9:.0f} GFLOP/s)",
        "",
        head,
        "-" * len(head),
    ]
    for r in report.rows[:top]:
        cells = "".join(
            f"{r.flop / r.blocked_s[b] / peak:11.2f}" if b in r.blocked_s else f"{'-':>11}" for b in blocks
        )
        lines.append(
            f"{r.op:<6}{f'{r.m} x {r.k} x {r.n}':>20}{r.calls:>7}{r.calls * r.plain_s / total:8.0%}"
            f"{r.flop / r.plain_s / peak:7.2f}{cells}"
        )
    if len(report.rows) > top:
        lines.append(f"... and {len(report.rows) - top} more shape(s)")
    mm_flops = sum(r.calls * r.flop for r in report.rows)
    lines += [
        "",
        f"products: {mm_flops / report.flops_per_iter:.0%} of the iteration's "
        f"{report.flops_per_iter / 1e9:.1f} GFLOP",
        f"{'':<54}{'s/iter':>8}{'efficiency':>12}",
        *(
            f"{what:<54}{sec:8.2f}{report.efficiency(sec):12.2f}"
            for what, sec in (
                ("products alone, plain (a bound)", total),
                ("products alone, as the trainer runs them (a bound)", report.gemm_s(trainer=True)),
                ("the iteration, eager, plain", report.iter_plain_s),
                (f"the iteration, eager, {ROW_BLOCK}-row blocks (the trainer's)", report.iter_s),
            )
        ),
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); a bound assumes that all but "
        "the products takes no time and that their operands are in cache; the trainer blocks the products of "
        f"layers with >= {MIN_WEIGHT} weights over >= {MIN_BLOCKS} blocks of rows (vitgan_lite/linear.py)",
    ]
    return "\n".join(lines)


__all__ = [
    "BenchResult",
    "EXTRA_FLOP_FORMULAS",
    "FlopSplit",
    "GemmReport",
    "GemmRow",
    "ModuleFlops",
    "ScalingRow",
    "bench_preset",
    "compile_off",
    "compile_parts",
    "count_flops",
    "eager_parts",
    "gemm_table",
    "format_gemm",
    "format_scaling",
    "format_table",
    "make_naive",
    "matmul_flops_per_s",
    "measure_iteration",
    "SavedTensorBytes",
    "SeparatePasses",
    "naive_parts",
    "random_images",
    "run_bench",
    "scaling_row",
    "scaling_table",
    "split_flops",
    "state_bytes",
]
