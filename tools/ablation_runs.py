"""Precompute the runs of lesson 13 ("what breaks without it"): ViTGAN's components switched off one at a
time, on the same data, seed and step budget as the full recipe, with the course's diagnostics on the way.

    VITGAN_LITE_DATA=/path/to/cifar10 python tools/ablation_runs.py                      # every run
    VITGAN_LITE_DATA=... python tools/ablation_runs.py --runs full,no_isn --steps 600 --threads 1

Each run writes ``docs/results/ablations/<name>.json`` (overrides, the metrics log with cFD / cKID, and
per log line: D's separation of held-out and of training images from fresh fakes, its attention-logit
spread and input-gradient norm, G's sample diversity; wall-clock) and ``<name>.png`` (6 x 6 G_ema
samples on fixed z). Small files, committed; lesson 13 loads them and, under the quick switch, reruns a
few real steps of each configuration.

Two processes at one thread each share a 2-core machine well: give each its own ``--runs``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.gan_recipe_runs import load_cifar, parse_run_args, run, save_result  # noqa: E402
from vitgan_lite.data import to_float  # noqa: E402
from vitgan_lite.diagnostics import input_gradient_norm, logit_spread, sample_diversity, separation  # noqa: E402
from vitgan_lite.run.trainer import Trainer  # noqa: E402

OUT = ROOT / "docs" / "results" / "ablations"
SUBSET = 1_000  # the data-efficiency runs train on this many images (Zhao et al. 2020 use 10-20% of CIFAR)

# name: (what is switched off, config overrides of tiny-cpu, train on the small subset?)
RUNS: dict[str, tuple[str, dict, bool]] = {
    "full": ("tiny-cpu, every component on", {}, False),
    "full_seed1": ("tiny-cpu, every component on, seed 1: the noise floor", {"seed": 1}, False),
    "sn": ("D: plain spectral norm instead of ISN", {"d_spectral_norm": "sn"}, False),
    "no_sn": ("D: no spectral normalization", {"d_spectral_norm": "none"}, False),
    "dot_attention": ("D: dot-product attention instead of L2", {"d_attention": "dot"}, False),
    "no_overlap": ("D: non-overlapping patches (o = 0)", {"d_overlap": 0}, False),
    "no_sln": ("G: plain LayerNorm, w added at the input", {"g_modulation": "input"}, False),
    "linear_head": ("G: linear per-token patch head", {"g_patch_head": "linear"}, False),
    "no_fourier": ("G: raw coordinates instead of E_fou", {"g_fourier_features": False}, False),
    "no_diffaug": ("training: no DiffAugment", {"diffaug_policy": ""}, False),
    "bcr": ("training: bCR on (lambda = 10, the paper's)", {"lambda_real": 10.0, "lambda_fake": 10.0}, False),
    "no_ema": ("training: no EMA (samples from G itself)", {"ema_decay": 0.0}, False),
    "small_full": (f"{SUBSET} images, every component on", {}, True),
    "small_no_diffaug": (f"{SUBSET} images, no DiffAugment", {"diffaug_policy": ""}, True),
    "small_bcr": (f"{SUBSET} images, bCR on (lambda = 10)", {"lambda_real": 10.0, "lambda_fake": 10.0}, True),
}


def probe_with(train_reals: torch.Tensor, held_out: torch.Tensor):
    """The extra numbers of every log line: D's Lipschitz proxies, its gap on training images, G's spread."""

    def probe(trainer: Trainer) -> dict:
        z = torch.randn(len(train_reals), trainer.cfg.latent_dim, generator=torch.Generator().manual_seed(11))
        with torch.no_grad():
            fakes = trainer.G(z)  # (M, C, H, W): the same fakes as the held-out separation
        seen = separation(trainer.D, train_reals, fakes)
        return {
            "train_gap": seen["gap"],
            "train_auc": seen["auc"],
            "logit_spread": logit_spread(trainer.D, held_out[:32]),
            "grad_x": input_gradient_norm(trainer.D, held_out[:32]),
            "diversity": sample_diversity(trainer.G_ema, z[:32]),
        }

    return probe


def main(argv: list[str] | None = None) -> int:
    args, names = parse_run_args(argv, RUNS, __doc__, threads=1)
    OUT.mkdir(parents=True, exist_ok=True)
    images, held_out = load_cifar()
    subset = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:SUBSET]]
    for name in names:
        desc, overrides, small = RUNS[name]
        data = subset if small else images
        train_reals = to_float(data[: len(held_out)])  # (200, C, H, W): images D trains on
        print(f"[{name}] {desc}: {args.steps} steps on {len(data)} images", flush=True)
        probe = probe_with(train_reals, held_out)
        result = run(name, overrides, args.steps, data, held_out, out=OUT, probe=probe, log_every=100)
        save_result(OUT, name, {"description": desc, "images": len(data), **result})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
