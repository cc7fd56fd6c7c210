"""Command line: ``python -m vitgan_lite train | sample | evaluate | bench`` (run layer, lesson 12).

Taught in ``notebooks/12_cifar10_on_a_gpu.ipynb``; it drives :class:`vitgan_lite.run.trainer.Trainer`.

    python -m vitgan_lite train --preset tiny-cpu --out runs/tiny [--data cifar10|PATH] [--steps N]
                                [--resume] [--device cpu|cuda] [--set field=value ...] [--batch-size 64]
    python -m vitgan_lite sample --ckpt runs/tiny/ckpt_0002000.pt --out grid.png [--n 64]
    python -m vitgan_lite evaluate --ckpt PATH [--num-samples N] [--inception-weights PATH]
    python -m vitgan_lite bench [--presets tiny-cpu,seed-report-cifar10] [--device cpu|cuda] [--iters N]

Every :class:`~vitgan_lite.config.Config` field can be set with ``--set field=value`` or as
``--field-name value`` (``--batch-size 64``, ``--lr-g 1e-3``). A mistake (unknown preset or field,
missing data, unreadable checkpoint) prints one line to stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vitgan_lite.config import PRESETS, Config, ConfigError, get_config

EXIT_USAGE = 2  # a mistake on the command line or in its inputs
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class UsageError(Exception):
    """A mistake the user can fix; printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a mistake in one line (no usage dump) and lets ``main`` return the status."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see {self.prog} --help)")


def _field_types() -> dict[str, type]:
    # the type of each field's default value (annotations are strings under `from __future__`)
    return {f.name: type(getattr(Config(), f.name)) for f in dataclasses.fields(Config)}


def parse_value(field: str, text: str) -> Any:
    """``"64"`` -> 64 for an int field, ``"true"`` -> True for a bool field, and so on."""
    types = _field_types()
    if field not in types:
        raise ConfigError(f"unknown config field {field!r}; known fields: {', '.join(types)}")
    kind = types[field]
    if kind is bool:
        if text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise ConfigError(f"{field} must be true or false, got {text!r}")
    try:
        if kind is int:  # "1e5" is allowed, "2.5" is refused (never rounded silently)
            value = float(text)
            if not value.is_integer():
                raise ValueError
            return int(value)
        return kind(text)
    except (ValueError, OverflowError):
        raise ConfigError(f"{field} must be a {kind.__name__}, got {text!r}") from None


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Config overrides from ``--set field=value`` and ``--field-name value``, in that order."""
    out: dict[str, Any] = {}
    for item in args.set or []:
        field, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects field=value, got {item!r} (e.g. --set batch_size=64)")
        out[field.strip()] = parse_value(field.strip(), text.strip())
    for field in _field_types():
        text = getattr(args, f"cfg_{field}", None)
        if text is not None:
            out[field] = parse_value(field, text)
    out.pop("preset", None)
    return out


# ---- train ----------------------------------------------------------------------------------------


def _add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train a ViTGAN into a run folder", description="Train a ViTGAN.")
    p.add_argument("--preset", default=None, help=f"one of {', '.join(PRESETS)} (default paper-cifar10)")
    p.add_argument("--out", required=True, help="run folder: metrics.jsonl, samples/, ckpt_*.pt")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument(
        "--overwrite", action="store_true",
        help="start a new run in a used --out: deletes its checkpoints, samples and metrics log",
    )  # fmt: skip
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override any config field")
    p.add_argument("--inception-weights", default=None, help="a local Inception weights file, for fid_every")
    group = p.add_argument_group(
        "config fields (each also settable with --set field=value; defaults are paper-cifar10's, "
        "a --preset changes some)"
    )
    defaults = Config()
    for f in dataclasses.fields(Config):
        if f.name != "preset":
            flag = "--" + f.name.replace("_", "-")
            kind = type(getattr(defaults, f.name)).__name__.upper()
            helptext = f"default {getattr(defaults, f.name)!r}: {f.metadata.get('source', '')}".replace(
                "%", "%%"
            )
            group.add_argument(flag, dest=f"cfg_{f.name}", metavar=kind, default=None, help=helptext)
    p.set_defaults(run=_run_train)


def _train_config(args: argparse.Namespace, saved: dict[str, Any] | None) -> Config:
    """The preset with the overrides; on resume without ``--preset``, the checkpoint's config with them."""
    overrides = _overrides(args)
    if saved is not None and args.preset is None:
        return Config.from_dict(saved).replace(**overrides).validate()
    return get_config(args.preset or "paper-cifar10", **overrides)


def _check_run_folder(args: argparse.Namespace) -> Path | None:
    """The checkpoint to resume from (None for a new run), or a UsageError that says what to do instead."""
    from vitgan_lite.run.runfolder import RunLock, folder_state, nearest_run_folders

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder: choose another --out")
    RunLock(out).check()  # a folder in use by another trainer: say that first
    state = folder_state(out)
    if args.resume and args.overwrite:
        raise UsageError("--resume continues the run in --out and --overwrite deletes it: pass one of them")
    if args.resume:
        if state.checkpoints:
            return state.checkpoints[-1]
        if state.has_log:
            raise UsageError(
                f"{out} has a metrics log but no checkpoint yet (the run stopped before its first one): "
                "nothing to resume; start it over with --overwrite"
            )
        near = nearest_run_folders(out)
        hint = f"; run folders nearby: {', '.join(near)}" if near else ""
        raise UsageError(f"--resume: there is no run to resume in {out} (no ckpt_*.pt){hint}")
    if state.used and not args.overwrite:
        what = f"checkpoints up to {state.checkpoints[-1].name}" if state.checkpoints else "a metrics log"
        raise UsageError(
            f"{out} already holds a run ({what}): continue it with --resume, train into a new --out, "
            "or pass --overwrite to delete it and start over"
        )
    return None


def _clear_run_folder(out: Path) -> None:
    """--overwrite: remove an old run's checkpoints, samples and metrics log (nothing else)."""
    import shutil

    from vitgan_lite.run.checkpoints import list_checkpoints

    for path in list_checkpoints(out):
        path.unlink()
    (out / "metrics.jsonl").unlink(missing_ok=True)
    shutil.rmtree(out / "samples", ignore_errors=True)


def _run_train(args: argparse.Namespace) -> int:
    from vitgan_lite.run.checkpoints import load_checkpoint, require_same_architecture
    from vitgan_lite.run.distributed import from_env, shutdown
    from vitgan_lite.run.runfolder import RunLock
    from vitgan_lite.run.trainer import Trainer, TrainingInterrupted

    newest = _check_run_folder(args)  # refuse a misuse of the folder before any work
    saved = load_checkpoint(newest) if newest is not None else None
    cfg = _train_config(args, saved["config"] if saved else None)  # refuse a bad config before any work
    if saved is not None:  # refuse another architecture, or nothing left to do, before loading any data
        fix = (
            "resume with the same settings (or without --preset to reuse the checkpoint's), "
            "or train into a new --out folder"
        )
        require_same_architecture(saved["config"], cfg, newest, fix)
        if int(saved["step"]) >= cfg.steps:
            raise UsageError(
                f"the run in {args.out} is at step {saved['step']} already, not before steps={cfg.steps}: "
                f"nothing to do; pass a larger --steps to continue it"
            )
    dist = from_env(args.device)  # under torchrun: join the process group (DDP); else None
    lock = RunLock(args.out) if dist is None or dist.is_main else None
    try:
        if lock is not None:
            lock.acquire()  # before --overwrite deletes anything: the folder may be another trainer's
            if args.overwrite:
                _clear_run_folder(Path(args.out))
        main_rank = dist is None or dist.is_main
        if args.preset is None and newest is None and main_rank:
            print(
                f"note: no --preset, so paper-cifar10: {cfg.steps:,} steps at batch {cfg.batch_size}, days "
                "on a GPU and far longer on a CPU. A first run on a laptop: --preset tiny-cpu (about 10 min)",
                file=sys.stderr,
            )
        if main_rank:
            print(f"loading the training images ({cfg.data}) ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        trainer = Trainer(
            cfg,
            args.out,
            device=args.device,
            dist=dist,
            progress="auto",
            inception_weights=args.inception_weights,
        )
        if main_rank:
            print(
                f"{len(trainer.images):,} images loaded in {time.perf_counter() - t0:.0f} s; training on "
                f"{trainer.device} into {args.out}",
                file=sys.stderr,
            )
        if newest is not None:
            trainer.resume(newest)
            if trainer.is_main:
                print(f"resumed from {newest} at step {trainer.step}", file=sys.stderr)
                changed = _changed_fields(Config.from_dict(saved["config"]), cfg)
                if changed:
                    print(f"with these settings changed (applied): {changed}", file=sys.stderr)
        try:
            last = trainer.train()
        except TrainingInterrupted as e:
            if trainer.is_main:
                print(
                    f"vitgan-lite: {e}. Resume with: python -m vitgan_lite train --out {args.out} --resume",
                    file=sys.stderr,
                )
            return 128 + e.signum
    finally:
        if lock is not None:
            lock.release()
        shutdown()
    if trainer.is_main:
        print(run_summary(trainer, last))
    return 0


def run_summary(trainer: Any, last: dict[str, Any]) -> str:
    """What a finished run left: its last losses, newest checkpoint and samples, the log, and FID's fate."""
    from vitgan_lite.run.checkpoints import latest_checkpoint

    out = Path(trainer.out_dir)
    lines = [f"done: step {trainer.step}"]
    if last:
        lines[0] += f", d_loss {last['d_loss']:.4f}, g_loss {last['g_loss']:.4f}"
    grids = sorted((out / "samples").glob("step_*.png"))
    fid = None
    log = out / "metrics.jsonl"
    for line in log.read_text().splitlines() if log.is_file() else []:
        record = json.loads(line) if line.startswith("{") else {}
        if "fid" in record:
            fid = (
                f"{record['fid']:.2f} at step {record['step']} (IS {record.get('is_mean', float('nan')):.2f})"
            )
        elif "fid_skipped" in record:
            fid = f"skipped at step {record['step']}: {for_the_command_line(record['fid_skipped'])}"
    lines += [
        f"  newest checkpoint: {latest_checkpoint(out)}",
        f"  latest samples:    {grids[-1] if grids else 'none'}",
        f"  metrics log:       {log}",
        f"  FID:               {fid or 'not computed'}",
    ]
    return "\n".join(lines)


def _changed_fields(old: Config, new: Config) -> str:
    a, b = old.to_dict(), new.to_dict()
    return ", ".join(f"{k} {a[k]!r} -> {b[k]!r}" for k in b if a.get(k) != b[k])


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
# Python argument names in the package's messages -> the flags a command-line user types
_FLAGS = {
    "weights_path=None": "no --inception-weights",
    "weights_path=<file>": "--inception-weights <file>",
    "as weights_path": "as --inception-weights",
    "reference=<folder of real images>": "--reference <folder of real images>",
    "source='/path/to/images'": "--data /path/to/images",
    "source='cifar10'": "--data cifar10",
}


def for_the_command_line(message: str) -> str:
    """A package message with its Python argument names replaced by the command line's flags."""
    for python, flag in _FLAGS.items():
        message = message.replace(python, flag)
    return message


def _checkpoint_arg(path: str) -> Path:
    """--ckpt: a checkpoint file, or a run folder, whose newest checkpoint is used (and said so)."""
    from vitgan_lite.run.checkpoints import CheckpointError, latest_checkpoint

    p = Path(path)
    if p.is_dir():
        newest = latest_checkpoint(p)
        if newest is None:
            raise CheckpointError(f"--ckpt {p} is a folder with no checkpoint (ckpt_*.pt) in it")
        print(f"{p} is a run folder; using its newest checkpoint, {newest.name}", file=sys.stderr)
        return newest
    return p


# ---- sample ---------------------------------------------------------------------------------------


def _add_sample(sub: Any) -> None:
    p = sub.add_parser("sample", help="a grid of samples from a checkpoint's EMA generator")
    p.add_argument("--ckpt", required=True, help="a ckpt_*.pt file, or a run folder (its newest)")
    p.add_argument("--out", required=True, help="the image file to write (.png, .jpg, ...)")
    p.add_argument("--n", type=int, default=64, help="number of images (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("cpu", "cuda"), default=None)
    p.set_defaults(run=_run_sample)


def _run_sample(args: argparse.Namespace) -> int:
    import torch
    from torchvision.utils import save_image

    from vitgan_lite.course import resolve_device
    from vitgan_lite.run.checkpoints import generator_from_checkpoint

    if args.n < 1:
        raise UsageError(f"--n must be at least 1, got {args.n}")
    out = Path(args.out)
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder: give the image file to write, e.g. {out / 'grid.png'}")
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise UsageError(
            f"--out {out}: unknown image type {out.suffix or '(no suffix)'}; use one of "
            f"{', '.join(IMAGE_SUFFIXES)}"
        )
    device = resolve_device(args.device)
    G, cfg = generator_from_checkpoint(_checkpoint_arg(args.ckpt), device)
    z = torch.randn(args.n, cfg.latent_dim, generator=torch.Generator().manual_seed(args.seed))  # (n, Z)
    with torch.no_grad():
        images = G(z.to(device)).float().cpu()  # (n, C, H, W) in [-1, 1]
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image((images + 1) / 2, out, nrow=math.ceil(math.sqrt(args.n)))
    print(f"wrote {args.n} samples to {out}")
    return 0


# ---- evaluate -------------------------------------------------------------------------------------


def _add_evaluate(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="FID / IS of a checkpoint's EMA generator (torch-fidelity)")
    p.add_argument("--ckpt", required=True, help="a ckpt_*.pt file, or a run folder (its newest)")
    p.add_argument("--num-samples", type=int, default=None, help="default: the config's fid_num_samples")
    p.add_argument("--inception-weights", default=None, help="a local copy of the Inception weights")
    p.add_argument("--reference", default=None, help="real images: cifar10-train (default) or a folder")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None)
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    import torch

    from vitgan_lite.course import resolve_device
    from vitgan_lite.metrics import MetricsUnavailable
    from vitgan_lite.run.checkpoints import generator_from_checkpoint
    from vitgan_lite.run.fidelity import compute_fid_is, fid_reference
    from vitgan_lite.run.trainer import rng_stream

    if args.num_samples is not None and args.num_samples < 2:
        raise UsageError(f"--num-samples must be at least 2 (FID needs a covariance), got {args.num_samples}")
    device = resolve_device(args.device)
    G, cfg = generator_from_checkpoint(_checkpoint_arg(args.ckpt), device)
    n = args.num_samples if args.num_samples is not None else cfg.fid_num_samples
    reference = args.reference or fid_reference(cfg.data)
    gen = rng_stream(cfg.seed, "fid")  # the trainer's FID stream: the same samples as its own evaluation

    @torch.no_grad()
    def generator_fn(m: int) -> torch.Tensor:
        return G(torch.randn(m, cfg.latent_dim, generator=gen).to(device)).float()  # (m, C, H, W)

    try:
        result = compute_fid_is(generator_fn, n, reference, weights_path=args.inception_weights)
    except MetricsUnavailable as e:
        print(f"FID / IS not computed: {for_the_command_line(str(e))}")
        return 1
    print(f"FID {result['fid']:.2f}  IS {result['is_mean']:.2f} +- {result['is_std']:.2f}  ({n} samples)")
    return 0


# ---- bench ----------------------------------------------------------------------------------------


def _add_bench(sub: Any) -> None:
    p = sub.add_parser("bench", help="time a training iteration: fast vs straightforward, eager vs compiled")
    presets = ", ".join(PRESETS)
    p.add_argument(
        "--presets", default=None,
        help=f"comma-separated: {presets} (default tiny-cpu,seed-report-cifar10; with --scaling tiny-cpu; "
        "with --gemm seed-report-cifar10)",
    )  # fmt: skip
    p.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available")
    p.add_argument(
        "--iters", type=int, default=None, help="timed iterations per round (per row with --scaling)"
    )
    p.add_argument(
        "--batch-size", type=int, default=None,
        help="override every preset's batch size (with --scaling: the batch of the image-size rows)",
    )  # fmt: skip
    p.add_argument("--no-naive", action="store_true", help="skip the straightforward variant")
    p.add_argument(
        "--compile", action="store_true",
        help="also time the iteration under torch.compile (any device) and print the compile time apart",
    )  # fmt: skip
    p.add_argument(
        "--compile-backend", default="inductor",
        help="torch.compile backend for --compile (default inductor; 'eager' only traces, for a quick look)",
    )  # fmt: skip
    p.add_argument(
        "--scaling", action="store_true",
        help="instead: images/s, memory and the FLOP split against batch size (8, 32, 128) and against "
        "image size / tokens (32x32 P=4, 64x64 P=8, 64x64 P=4)",
    )  # fmt: skip
    p.add_argument(
        "--gemm", action="store_true",
        help="instead: every matrix product of one iteration timed alone, plain and in row blocks, and the "
        "efficiency ratio they bound (about a minute at seed-report-cifar10 on 2 CPU cores)",
    )  # fmt: skip
    p.set_defaults(run=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from vitgan_lite.run.bench import gemm_table, run_bench, scaling_table

    if args.gemm and (args.scaling or args.compile):
        raise UsageError("--gemm times the eager products: run it without --scaling and --compile")
    default = (
        "tiny-cpu" if args.scaling else "seed-report-cifar10" if args.gemm else "tiny-cpu,seed-report-cifar10"
    )
    presets = [name.strip() for name in (args.presets or default).split(",") if name.strip()]
    unknown = [name for name in presets if name not in PRESETS]
    if unknown or not presets:
        raise UsageError(f"--presets has unknown preset(s) {unknown}: choose from {', '.join(PRESETS)}")
    if args.iters is not None and args.iters < 1:
        raise UsageError(f"--iters must be at least 1, got {args.iters}")
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.gemm:
        for preset in presets:
            gemm_table(preset, args.device, batch_size=args.batch_size, iters=args.iters or 3)
        return 0
    if args.scaling:
        if args.compile:
            raise UsageError(
                "--scaling times the eager iteration: drop --compile (or run it without --scaling)"
            )
        for preset in presets:
            scaling_table(preset, args.device, size_batch=args.batch_size, iters=args.iters)
        return 0
    run_bench(
        presets, args.device, iters=args.iters, batch_size=args.batch_size, naive=not args.no_naive,
        compile=args.compile, compile_backend=args.compile_backend,
    )  # fmt: skip
    return 0


# ---- the command table ----------------------------------------------------------------------------

EPILOG = f"""\
presets (--preset):  {", ".join(PRESETS)}
                     (tiny-cpu: a first run on a laptop, about 10 min)
data (--data):       cifar10 (downloaded once by torchvision; a local copy instead when the
                     environment variable VITGAN_LITE_DATA names one), or a folder of images
                     (<folder>/<class>/*.jpg, or <folder>/train/<class>/*.jpg)
run folder (--out):  metrics.jsonl, samples/step_*.png, ckpt_*.pt (the newest keep_ckpts);
                     continue a run with --resume, start over with --overwrite;
                     Ctrl-C or SIGTERM stop after the current step with a checkpoint
examples:
  python -m vitgan_lite train --preset tiny-cpu --out runs/tiny
  python -m vitgan_lite train --out runs/tiny --resume --steps 4000
  python -m vitgan_lite sample --ckpt runs/tiny --out grid.png
  python -m vitgan_lite evaluate --ckpt runs/tiny --inception-weights pt_inception-2015-12-05.pth
"""

# One function per subcommand: it adds the subparser and sets ``run`` to the function that carries it out.
COMMANDS: list[Callable[[Any], None]] = [_add_train, _add_sample, _add_evaluate, _add_bench]


def build_parser() -> argparse.ArgumentParser:
    """The ``vitgan-lite`` argument parser with one subcommand per entry of ``COMMANDS``."""
    parser = _Parser(
        prog="vitgan-lite",
        description="Train, sample and evaluate ViTGAN (vitgan-lite).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 metrics unavailable, 2 a usage mistake)."""
    from vitgan_lite.data import DataError
    from vitgan_lite.run.checkpoints import CheckpointError
    from vitgan_lite.run.runfolder import RunFolderError
    from vitgan_lite.run.trainer import TrainingDiverged

    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except SystemExit as e:  # --help
        return int(e.code or 0)
    except (UsageError, ConfigError, DataError, CheckpointError, RunFolderError, FileNotFoundError) as e:
        print(f"vitgan-lite: error: {for_the_command_line(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingDiverged as e:
        print(f"vitgan-lite: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vitgan-lite: interrupted; resume with --resume", file=sys.stderr)
        return 130
