"""Precompute the runs lesson 11 ("making the GAN learn") plots: the broken recipe, each fix on its own,
and the fixed recipe, on the same data, seed and step budget, with the course metric (cFD) on the way.

    VITGAN_LITE_DATA=/path/to/cifar10 python tools/gan_recipe_runs.py              # every run
    VITGAN_LITE_DATA=... python tools/gan_recipe_runs.py --runs before,after --steps 600

Each run writes ``docs/results/recipe/<name>.json`` (config overrides, the metrics log with cFD / cKID,
D's separation on held-out images, wall-clock) and ``<name>.png`` (a 6 x 6 grid of G_ema samples on
fixed z). The files are small and committed; the notebook loads them, and under the quick switch reruns
a few real steps of each configuration so that the code paths stay tested.

Runs share the CPU badly: run one at a time (``--threads`` sets torch's threads, default 2).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitgan_lite.config import get_config  # noqa: E402
from vitgan_lite.data import default_source, load_images, to_float  # noqa: E402
from vitgan_lite.diagnostics import cls_self_attention, separation  # noqa: E402
from vitgan_lite.run.trainer import Trainer  # noqa: E402

OUT = ROOT / "docs" / "results" / "recipe"

# The broken recipe is tiny-cpu as it was before lesson 11's fixes; every other run changes one thing.
BEFORE = dict(d_attn_init="xavier", lambda_real=10.0, lambda_fake=10.0, g_sln_gain=0.1)
RUNS: dict[str, tuple[str, dict]] = {
    "before": ("the recipe before lesson 11 (Xavier W_qk, bCR 10, gentle SLN)", BEFORE),
    "fix_d": ("both D-side fixes (W_qk init, bCR off), gentle SLN", {"g_sln_gain": 0.1}),
    "fix_sln": ("only the SLN gain", {**BEFORE, "g_sln_gain": 1.0}),
    "fix_bcr": ("only bCR lowered", {**BEFORE, "lambda_real": 0.0, "lambda_fake": 0.0}),
    "fix_attn": ("only W_qk at the unit-logit init", {**BEFORE, "d_attn_init": "unit-logit"}),
    "after_eq": ("every fix, plus the equalized learning rate", {"equalized_lr": True}),
    "after": ("tiny-cpu as it is now (every fix)", {}),
}


def run(
    name: str,
    overrides: dict,
    steps: int,
    images: torch.Tensor,
    held_out: torch.Tensor,
    out: Path = OUT,
    probe: Callable[[Trainer], dict] | None = None,
    log_every: int = 50,
) -> dict:
    """Train ``tiny-cpu`` with ``overrides`` for ``steps`` on ``images``; write ``out/<name>.png``.

    At every log line D's separation of ``held_out`` reals from fresh fakes is recorded, with CLS
    self-attention and whatever ``probe(trainer)`` returns. Returns the run's record (see the module doc).
    """
    cfg = get_config(
        "tiny-cpu",
        steps=steps,
        fid_num_samples=0,
        log_every=log_every,
        sample_every=10**9,
        ckpt_every=10**9,
        cfd_every=max(steps // 6, 1),
        **overrides,
    )
    records: list[dict] = []
    work = out / f".work_{name}"
    trainer = Trainer(cfg, work, device="cpu", data=images)

    def record(step: int, metrics: dict) -> None:
        if "d_loss" not in metrics:
            records.append({"step": step, **metrics})
            return
        g = torch.Generator().manual_seed(11)
        with torch.no_grad():
            fakes = trainer.G(torch.randn(len(held_out), cfg.latent_dim, generator=g))  # (M, C, H, W)
        sep = separation(trainer.D, held_out, fakes)
        cls = cls_self_attention(trainer.D, held_out[:32])
        extra = probe(trainer) if probe is not None else {}
        records.append({**metrics, **{f"sep_{k}": v for k, v in sep.items()}, "cls_self": cls, **extra})

    trainer.callbacks.append(record)
    t0 = time.perf_counter()
    trainer.train(steps)
    wall = time.perf_counter() - t0
    z = torch.randn(36, cfg.latent_dim, generator=torch.Generator().manual_seed(3))
    from torchvision.utils import save_image

    save_image((trainer.sample(z) + 1) / 2, out / f"{name}.png", nrow=6, padding=1, pad_value=1.0)
    for p in sorted(work.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    work.rmdir()
    return {
        "name": name,
        "overrides": overrides,
        "steps": steps,
        "wall_s": round(wall, 1),
        "threads": torch.get_num_threads(),
        "log": records,
    }


def parse_run_args(
    argv: list[str] | None, runs: dict, doc: str, threads: int
) -> tuple[argparse.Namespace, list[str]]:
    """``--runs a,b --steps N --threads T`` of a precompute script; unknown run names are refused."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--runs", default=",".join(runs), help=f"comma-separated, from {', '.join(runs)}")
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--threads", type=int, default=threads)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [n for n in args.runs.split(",") if n]
    unknown = [n for n in names if n not in runs]
    if unknown:
        p.error(f"unknown run(s) {unknown}; choose from {', '.join(runs)}")
    return args, names


def load_cifar() -> tuple[torch.Tensor, torch.Tensor]:
    """The training images (uint8) and 200 held-out test images in [-1, 1] (20 per class)."""
    source = default_source()
    images = load_images(source, "train", 32).images  # (50000, 3, 32, 32) uint8
    held_out = to_float(load_images(source, "test", 32, per_class=20).images)  # (200, 3, 32, 32)
    return images, held_out


def save_result(out: Path, name: str, result: dict) -> None:
    """``out/<name>.json``, and one line with the wall-clock and the last cFD."""
    (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    last = [r for r in result["log"] if "cfd" in r][-1]
    print(f"[{name}] {result['wall_s']:.0f} s, cFD {last['cfd']:.2f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args, names = parse_run_args(argv, RUNS, __doc__, threads=2)
    OUT.mkdir(parents=True, exist_ok=True)
    images, held_out = load_cifar()
    for name in names:
        desc, overrides = RUNS[name]
        print(f"[{name}] {desc}: {args.steps} steps", flush=True)
        save_result(OUT, name, {"description": desc, **run(name, overrides, args.steps, images, held_out)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
