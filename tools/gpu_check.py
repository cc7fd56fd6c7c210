"""GPU check: every preset's benchmark with bf16 and torch.compile, model FLOP utilisation, and a short
real training run of paper-cifar10 with FID, in under 10 minutes; prints a Markdown table for the README.

    python tools/gpu_check.py                                   # on a CUDA machine
    python tools/gpu_check.py --inception-weights pt_inception-2015-12-05.pth
    VITGAN_LITE_DATA=/data/cifar10 python tools/gpu_check.py    # a local copy of the training data
    python tools/gpu_check.py --allow-cpu                       # the same code path, tiny, on a CPU

Phases, each with its own share of ``--budget`` (default 600 s; elapsed times are printed as it goes):

1. benchmark (``vitgan_lite.run.bench.bench_preset``, compile on, bf16 where the GPU has it) of every
   preset of ``vitgan_lite.config.PRESETS``, paper-cifar10 first; presets whose networks and batch equal
   an earlier one's reuse its figures; no new preset starts after 45% of the budget. Per preset: eager
   and compiled images/s, the compile time, model FLOP utilisation (MFU: achieved FLOP/s of the faster
   iteration over the GPU's peak dense bf16 FLOP/s, from :data:`PEAK_FLOPS` by device name), the
   measured bf16 GEMM FLOP/s, peak memory, time per 1,000 steps and for the preset's whole schedule;
2. training: paper-cifar10 with the real :class:`vitgan_lite.run.trainer.Trainer` for ``--train-seconds``
   (default 180, shortened to fit the budget; compile as the trainer decides), on ``cfg.data`` resolved
   by :func:`vitgan_lite.data.resolve_source` (``$VITGAN_LITE_DATA`` when set), or random images when no
   data can be loaded without a download (said so);
3. FID of the EMA generator on ``--fid-samples`` (default 2,000) samples when Inception weights are
   available (``--inception-weights``); otherwise the reason (MetricsUnavailable's message).

On a CPU it refuses unless ``--allow-cpu``, which runs the same path tiny: tiny-cpu only at batch 4,
``torch.compile`` with the tracing-only "eager" backend (inductor compiles for minutes on a CPU; pass
``--compile-backend inductor`` to measure it), a few seconds of training, no FID.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import gc
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

if __package__ in (None, ""):  # python tools/gpu_check.py: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vitgan_lite.config import PRESETS, get_config  # noqa: E402
from vitgan_lite.run.bench import BenchResult, bench_preset, random_images  # noqa: E402

# Peak dense (no 2:4 sparsity) tensor-core FLOP/s in bf16, from the vendors' data sheets, matched by
# device name in order: (substrings that must all appear, peak, label, note). T4 and V100 have no bf16:
# their fp16 peak is given and the note says so (amp="auto" trains them in float32).
PEAK_FLOPS: list[tuple[tuple[str, ...], float, str, str]] = [
    (("H200",), 989e12, "H200", ""),
    (("H100", "PCIe"), 756e12, "H100 PCIe", ""),
    (("H100", "SXM"), 989e12, "H100 SXM", ""),
    (("H100", "HBM3"), 989e12, "H100 SXM", ""),
    (("A100",), 312e12, "A100", ""),
    (("L4",), 121e12, "L4", ""),
    (("A10G",), 70e12, "A10G", "A10G peak approximate (AWS publishes no bf16 figure): check it"),
    (("T4",), 65e12, "T4", "T4 has no bf16: peak is its fp16 figure, and the run is float32 (amp=auto)"),
    (("V100",), 125e12, "V100", "V100 has no bf16: peak is its fp16 figure, and the run is float32"),
    (("4090",), 165e12, "RTX 4090", ""),
]
TRAIN_PRESET = "paper-cifar10"
# Config fields that do not change the cost of an iteration: presets equal in every other field (tiny-cpu
# and cpu-hour) are benchmarked once.
COST_FREE_FIELDS = (
    "preset", "steps", "seed", "data", "ema_decay", "log_every", "sample_every", "ckpt_every", "fid_every",
    "cfd_every", "fid_num_samples", "cfd_num_samples", "keep_ckpts",
)  # fmt: skip
BENCH_SHARE, FID_RESERVE_S, MARGIN_S = 0.45, 120.0, 20.0


def peak_flops(device_name: str) -> tuple[float | None, str, str]:
    """``(peak dense bf16 FLOP/s or None, label, note)`` of a GPU by its name; None: unknown."""
    for needles, peak, label, note in PEAK_FLOPS:
        if all(n.lower() in device_name.lower() for n in needles):
            return peak, label, note
    return None, "unknown", f"no peak FLOP/s known for {device_name!r}: MFU unknown"


@dataclasses.dataclass
class PresetFigures:
    """One preset's row of the table."""

    preset: str
    result: BenchResult
    steps: int  # the preset's whole schedule
    same_as: str | None = None  # figures reused from an equal preset

    @property
    def ips(self) -> float:
        """Images/s of the faster variant (compiled, unless eager was faster)."""
        return self.result.best_iter_ips

    @property
    def achieved_flops_per_s(self) -> float:
        r = self.result
        return r.flops_per_iter * self.ips / r.batch_size

    def mfu(self, peak: float | None) -> float | None:
        return self.achieved_flops_per_s / peak if peak else None

    def seconds_per_steps(self, steps: int) -> float:
        return steps * self.result.batch_size / self.ips


class Clock:
    """Elapsed wall time since the start, printed with every phase message."""

    def __init__(self, budget_s: float) -> None:
        self.t0, self.budget_s = time.perf_counter(), budget_s

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    @property
    def left(self) -> float:
        return self.budget_s - self.elapsed

    def say(self, message: str) -> None:
        print(f"[{self.elapsed:6.1f} s] {message}", flush=True)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _tflops(flops_per_s: float) -> str:
    x = flops_per_s / 1e12
    return f"{x:.0f}" if x >= 10 else f"{x:.2f}" if x >= 0.01 else f"{x:.4f}"


def _cost_key(preset: str, fields: dict[str, Any]) -> tuple:
    d = get_config(preset, **fields).to_dict()
    return tuple(sorted((k, repr(v)) for k, v in d.items() if k not in COST_FREE_FIELDS))


def _use_compile_cache() -> None:
    """Share inductor's cache between the benchmark and the trainer, as the trainer does (when it can)."""
    from vitgan_lite.run import trainer

    setup = getattr(trainer, "use_persistent_compile_cache", None)
    if setup is not None:
        print(f"inductor cache: {setup()}")


def run_benchmarks(args: argparse.Namespace, dev: torch.device, clock: Clock, fields: dict[str, Any]) -> list:
    """Phase 1: bench every preset (compile on); returns the rows of the table."""
    cpu = dev.type == "cpu"
    presets = ["tiny-cpu"] if cpu else [TRAIN_PRESET] + [p for p in PRESETS if p != TRAIN_PRESET]
    if args.presets:
        presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    stop_at = BENCH_SHARE * args.budget
    rows: list[PresetFigures] = []
    by_cost: dict[tuple, PresetFigures] = {}
    for preset in presets:
        steps = get_config(preset).steps
        key = _cost_key(preset, {**fields, **({"batch_size": 4} if cpu else {})})
        if key in by_cost:
            first = by_cost[key]
            clock.say(f"{preset}: same networks and batch as {first.preset}: its figures reused")
            rows.append(PresetFigures(preset, first.result, steps, same_as=first.preset))
            continue
        if clock.elapsed > stop_at:
            clock.say(f"{preset}: skipped (the benchmark phase has used its {stop_at:.0f} s)")
            continue
        clock.say(f"{preset}: benchmarking (compile {args.compile_backend}, naive {args.naive}) ...")
        try:
            result = bench_preset(
                preset, dev, iters=1 if cpu else None, batch_size=4 if cpu else None, rounds=1 if cpu else 2,
                naive=args.naive, compile=True, compile_backend=args.compile_backend, overrides=fields,
            )  # fmt: skip
        except Exception as e:  # noqa: BLE001  one preset's failure (a compile error) must not lose the rest
            traceback.print_exc()
            clock.say(f"{preset}: FAILED ({type(e).__name__}: {str(e)[:300]}); going on")
            args.failures.append(f"{preset}: benchmark failed ({type(e).__name__}: {str(e)[:200]})")
            continue
        row = PresetFigures(preset, result, steps)
        by_cost[key] = row
        rows.append(row)
        clock.say(
            f"{preset}: eager {result.iter_ips:.1f} img/s, compiled "
            f"{result.compiled_iter_ips or 0:.1f} img/s, compile {result.compile_s or 0:.1f} s"
        )
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return rows


class _TimeUp(Exception):
    """Raised from a trainer callback when the training budget is spent."""


def training_data(cfg: Any, choice: str | None) -> tuple[Any, str, bool]:
    """``(data for the Trainer, description, real)``: the config's data when it loads without a download,
    else random images (``real`` False)."""
    from vitgan_lite.data import is_cifar10, load_images, resolve_source

    if choice == "random":
        return random_images(cfg, 2048), "random images (--data random)", False
    source = resolve_source(choice or cfg.data)
    try:
        n = len(load_images(source, "train", cfg.image_size, download=False).images)
    except Exception as e:  # noqa: BLE001  DataError, a missing folder, a broken archive: fall back
        why = f"{type(e).__name__}: {str(e)[:200]}"
        return random_images(cfg, 2048), f"random images: {source} could not be loaded ({why})", False
    what = "CIFAR-10" if is_cifar10(source) else source
    return source, f"{what} ({n:,} training images)", True


def run_training(
    args: argparse.Namespace, dev: torch.device, clock: Clock, fields: dict[str, Any], out_dir: Path
) -> dict[str, Any]:
    """Phase 2 (and 3): train with the real Trainer for a wall-clock budget, then FID when possible."""
    from vitgan_lite.run import trainer as trainer_mod

    cpu = dev.type == "cpu"
    preset = "tiny-cpu" if cpu else TRAIN_PRESET
    fid = not cpu and args.fid_samples >= 2
    reserve = (FID_RESERVE_S if fid else 5.0) + MARGIN_S
    seconds = max(1.0, min(args.train_seconds, clock.left - reserve))
    overrides = dict(
        fields, log_every=1 if cpu else 25, sample_every=0, ckpt_every=0, cfd_every=0, fid_every=0,
        fid_num_samples=0,  # the end-of-training actions never run: the run stops on time, not on steps
    )  # fmt: skip
    if cpu:
        overrides["batch_size"] = 4
    cfg = get_config(preset, **overrides)
    data, data_note, real = training_data(cfg, args.data)
    decide = getattr(trainer_mod, "compile_decision", None)
    compile_note = decide(cfg, dev)[1] if decide is not None else f"compile={cfg.compile}"
    clock.say(f"training {preset} for {seconds:.0f} s: data {data_note}; {compile_note}")
    marks: list[tuple[float, int, dict[str, Any]]] = []
    deadline = time.perf_counter() + seconds

    def watch(step: int, metrics: dict[str, Any]) -> None:
        marks.append((time.perf_counter(), step, metrics))
        if time.perf_counter() >= deadline:
            raise _TimeUp

    t0 = time.perf_counter()
    trainer = trainer_mod.Trainer(
        cfg, out_dir, device=dev, callbacks=[watch], data=data, progress="off",
        inception_weights=args.inception_weights,
    )  # fmt: skip
    with contextlib.suppress(_TimeUp):
        trainer.train()
    wall = time.perf_counter() - t0
    out: dict[str, Any] = {
        "preset": preset, "batch": cfg.batch_size, "steps": trainer.step, "wall_s": wall, "data": data_note,
        "compile": compile_note, "real_data": real,
    }  # fmt: skip
    if len(marks) >= 2:  # steady state: between the first and the last log (compilation before the first)
        (ta, sa, _), (tb, sb, last) = marks[0], marks[-1]
        out["steady_ips"] = (sb - sa) * cfg.batch_size / max(tb - ta, 1e-9)
        out["d_loss"], out["g_loss"] = last.get("d_loss"), last.get("g_loss")
        out["first_log_s"] = ta - t0
    clock.say(f"training: {trainer.step} steps in {wall:.0f} s ({out.get('steady_ips', 0):.1f} img/s steady)")

    if cpu:
        out["fid"] = "skipped: on the CPU (--allow-cpu)"
    elif not real:
        out["fid"] = "skipped: no real training images, so no FID reference"
    elif not fid:
        out["fid"] = "skipped: --fid-samples below 2"
    else:
        clock.say(f"FID on {args.fid_samples:,} samples ...")
        res = trainer.evaluate(num_samples=args.fid_samples)
        if "fid" in res:
            out["fid"] = f"{res['fid']:.2f} ({args.fid_samples:,} samples; IS {res['is_mean']:.2f})"
        else:
            out["fid"] = f"skipped: {res.get('fid_skipped', res)}"
        clock.say(f"FID: {out['fid']}")
    return out


def markdown(rows: Sequence[PresetFigures], peak: float | None, peak_label: str) -> str:
    """The benchmark rows as a Markdown table."""
    peak_txt = f"{peak / 1e12:.0f} TFLOP/s ({peak_label})" if peak else "unknown"
    lines = [
        f"| preset | batch | eager img/s | compiled img/s | compile s | GFLOP/iter | TFLOP/s | MFU (peak "
        f"{peak_txt}) | GEMM TFLOP/s | peak memory GiB | per 1,000 steps | full schedule |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        r = row.result
        mfu = row.mfu(peak)
        name = f"{row.preset} (= {row.same_as})" if row.same_as else row.preset
        mem = (
            f"{r.peak_mem_mb / 1024:.2f}"
            if r.device.startswith("cuda")
            else f"{r.peak_mem_mb / 1024:.2f} (RSS)"
        )
        lines.append(
            f"| {name} | {r.batch_size} | {r.iter_ips:,.0f} | {r.compiled_iter_ips or 0:,.0f} | "
            f"{r.compile_s or 0:.0f} | {r.flops_per_iter / 1e9:.1f} | {_tflops(row.achieved_flops_per_s)} | "
            f"{f'{mfu:.1%}' if mfu is not None else 'unknown'} | {_tflops(r.matmul_flops_per_s)} | {mem} | "
            f"{_duration(row.seconds_per_steps(1000))} | {row.steps:,} steps: "
            f"{_duration(row.seconds_per_steps(row.steps))} |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python tools/gpu_check.py",
        description="Benchmark every preset with bf16 + torch.compile (MFU, memory, schedule time), then "
        "train paper-cifar10 for a few minutes with the real Trainer and report FID: a Markdown table for "
        "the README, within --budget seconds (default 600).",
    )
    p.add_argument("--allow-cpu", action="store_true", help="run tiny on a CPU (tiny-cpu, batch 4, no FID)")
    p.add_argument("--budget", type=float, default=600.0, help="wall-clock seconds for everything (600)")
    p.add_argument(
        "--train-seconds", type=float, default=None,
        help="training phase budget (default 180 on a GPU, 3 with --allow-cpu; shortened to fit --budget)",
    )  # fmt: skip
    p.add_argument("--fid-samples", type=int, default=2000, help="samples for FID (default 2,000)")
    p.add_argument(
        "--inception-weights", default=None, help="a local copy of torch-fidelity's Inception weights"
    )
    p.add_argument(
        "--data", default=None,
        help="training images: a folder, cifar10 or 'random' (default: the config's, $VITGAN_LITE_DATA)",
    )  # fmt: skip
    p.add_argument("--presets", default=None, help="comma-separated presets to benchmark (default: all)")
    p.add_argument("--naive", action="store_true", help="also time the straightforward variant (slower)")
    p.add_argument(
        "--compile-backend", default=None,
        help="torch.compile backend (default inductor on a GPU, eager (tracing only) with --allow-cpu)",
    )  # fmt: skip
    p.add_argument("--out", default=None, help="the training run's folder (default: a temporary one)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cuda = torch.cuda.is_available()
    if not cuda and not args.allow_cpu:
        print(
            "gpu_check: no CUDA device here. This check measures a GPU; on a CPU, --allow-cpu runs the same "
            "steps tiny (a smoke test, not figures for the README).",
            file=sys.stderr,
        )
        return 2
    unknown = [p for p in (args.presets or "").split(",") if p.strip() and p.strip() not in PRESETS]
    if unknown:
        print(f"gpu_check: unknown preset(s) {unknown}; choose from {', '.join(PRESETS)}", file=sys.stderr)
        return 2
    dev = torch.device("cuda" if cuda else "cpu")
    if args.compile_backend is None:
        args.compile_backend = "inductor" if cuda else "eager"
    if args.train_seconds is None:
        args.train_seconds = 180.0 if cuda else 3.0
    clock = Clock(args.budget)
    args.failures = []

    # ---- environment
    fields: dict[str, Any] = {}
    notes: list[str] = []
    if cuda:
        name = torch.cuda.get_device_name(dev)
        bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        if bf16:
            fields["amp"] = "bf16"
        else:
            notes.append(f"{name} has no bf16 arithmetic: the runs use amp=auto (float32)")
        peak, peak_label, peak_note = peak_flops(name)
        _use_compile_cache()
    else:
        name, peak, peak_label = f"CPU ({torch.get_num_threads()} thread(s))", None, "unknown"
        peak_note = "a CPU: MFU unknown (no peak in the table)"
    if peak_note:
        notes.append(peak_note)
    clock.say(
        f"device {name}; torch {torch.__version__}, CUDA {torch.version.cuda}; peak bf16 "
        f"{f'{peak / 1e12:.0f} TFLOP/s' if peak else 'unknown'}; budget {args.budget:.0f} s"
    )

    # ---- 1. benchmark
    rows = run_benchmarks(args, dev, clock, fields)
    t_bench = clock.elapsed

    # ---- 2. and 3. training and FID
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        out_dir = Path(args.out) if args.out else Path(tmp) / "run"
        try:
            training = run_training(args, dev, clock, fields, out_dir)
        except Exception as e:  # noqa: BLE001  the benchmark's table is still worth printing
            traceback.print_exc()
            args.failures.append(f"training failed ({type(e).__name__}: {str(e)[:300]})")
            training = None
    t_total = clock.elapsed

    # ---- report
    print()
    print(f"### GPU check: {name}, torch {torch.__version__} ({datetime.date.today()}, tools/gpu_check.py)")
    print()
    print(markdown(rows, peak, peak_label))
    print()
    paper = next((r for r in rows if r.preset == TRAIN_PRESET), None)
    if paper is not None:
        print(
            f"paper-cifar10's schedule, {paper.steps:,} steps at batch {paper.result.batch_size}: "
            f"{_duration(paper.seconds_per_steps(paper.steps))} at {paper.ips:,.0f} img/s "
            f"(+ {paper.result.compile_s or 0:.0f} s of compilation once)."
        )
    t = training
    if t is not None:
        steady = f"{t['steady_ips']:,.0f} img/s steady" if "steady_ips" in t else "no steady-state figure"
        loss = t.get("d_loss") is not None
        losses = f", last d_loss {t['d_loss']:.3f}, g_loss {t['g_loss']:.3f}" if loss else ""
        print(
            f"Training ({t['preset']}, batch {t['batch']}, the real Trainer; {t['compile']}; data "
            f"{t['data']}): {t['steps']:,} steps in {t['wall_s']:.0f} s, {steady}{losses}. FID: {t['fid']}."
        )
    gemm = "8192^3, bf16" if cuda and fields.get("amp") == "bf16" else "8192^3, float32" if cuda else "1024^3"
    print(
        "MFU = FLOPs of one iteration (FlopCounterMode, forward + backward of G and D) x iterations/s of the "
        "faster variant (compiled or eager) / the GPU's peak dense bf16 FLOP/s; GEMM = a large dense matmul "
        f"measured in the same run ({gemm}); compile s = first compiled iteration minus a steady one; per "
        "1,000 steps and full schedule at the faster variant's img/s."
    )
    for note in notes:
        print(f"Note: {note}.")
    for failure in args.failures:
        print(f"FAILED: {failure}")
    for row in rows:
        if row.result.notes and row.same_as is None:
            print(f"{row.preset}: {'; '.join(row.result.notes)}")
    rest = t_total - t_bench
    print(f"\nelapsed: benchmark {t_bench:.0f} s, training + FID {rest:.0f} s, total {t_total:.0f} s")
    return 1 if args.failures else 0


if __name__ == "__main__":
    sys.exit(main())
