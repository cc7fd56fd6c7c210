"""Publish the scale of cFD / cKID: what real, degraded and noise images score against the reference.

    VITGAN_LITE_DATA=/path/to/cifar10 python tools/quality_scale.py       # a few minutes, 1 CPU thread

Reference: a fixed 10,000-image subset of the CIFAR-10 training set,
``vitgan_lite.quality.reference_indices(50_000)`` (the first 10,000 of ``torch.randperm(50_000)`` under
seed 0). Each row scores a version of the 10,000 CIFAR-10 test images against it:

    real_test       the test images as they are (the floor: two samples of the real distribution)
    blur3 / blur5   a 3x3 / 5x5 box filter (mean over the window, edge pixels average what lies inside)
    down16 / down8  bilinear (anti-aliased) downsampling to 16x16 / 8x8 and bilinear upsampling back
    noise           uniform noise in [-1, 1] (seeded), the ceiling of a generator that learned nothing

cFD is biased by the sample count (it grows as N shrinks), so the main rows use 10k vs 10k, and the
``@2000`` rows use the first 2,000 of the same (shuffled, seeded) test images against the same 10k
reference, which is what a trainer's periodic evaluation with N = 2,000 samples sees. Compare a run
only with rows at its own N. cKID is unbiased: its rows agree across N up to noise.

Writes ``vitgan_lite/assets/quality_scale.json`` and prints a markdown table. cFD is NOT comparable with
Inception FID: these numbers only place course runs against each other.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from vitgan_lite.data import default_source, load_images, to_float  # noqa: E402
from vitgan_lite.metrics import feature_statistics, frechet_distance  # noqa: E402
from vitgan_lite.quality import (  # noqa: E402
    REFERENCE_SEED,
    REFERENCE_SIZE,
    SCALE_FILE,
    features,
    kid,
    load_feature_net,
    reference_indices,
)

SMALL_N = 2000


def box_blur(x: torch.Tensor, k: int) -> torch.Tensor:
    """Mean over a k x k window, ``x (N, 3, 32, 32)`` in [-1, 1]; edges average the pixels inside."""
    return F.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=False)  # (N, 3, 32, 32)


def down_up(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear downsampling (anti-aliased) to ``size`` and bilinear upsampling back to 32x32."""
    small = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)  # (N, 3, s, s)
    return F.interpolate(small, size=x.shape[-1], mode="bilinear", align_corners=False)  # (N, 3, 32, 32)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", default=None, help="CIFAR-10 source (default: $VITGAN_LITE_DATA or 'cifar10')")
    p.add_argument("--out", default=str(SCALE_FILE))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--kid-subsets", type=int, default=100)
    p.add_argument("--kid-subset-size", type=int, default=1000)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    source = args.source or default_source()
    net = load_feature_net()

    train = load_images(source, "train", 32)
    test = load_images(source, "test", 32)
    ref_idx = reference_indices(len(train))  # (10000,)
    f_ref = features(train.images[ref_idx], net)  # (10000, d)
    mu_ref, sigma_ref = feature_statistics(f_ref)
    print(
        f"reference: {len(ref_idx)} of {len(train)} train images, features {tuple(f_ref.shape)}", flush=True
    )

    order = torch.randperm(len(test), generator=torch.Generator().manual_seed(1))  # @2000 rows: a random 2k
    real = to_float(test.images[order])  # (10000, 3, 32, 32), shuffled test set
    g = torch.Generator().manual_seed(2)
    variants = {
        "real_test": lambda: real,
        "blur3": lambda: box_blur(real, 3),
        "blur5": lambda: box_blur(real, 5),
        "down16": lambda: down_up(real, 16),
        "down8": lambda: down_up(real, 8),
        "noise": lambda: torch.rand(real.shape, generator=g) * 2 - 1,
    }
    rows: dict[str, dict[str, float]] = {}
    for name, make in variants.items():
        f = features(make(), net)  # (10000, d)
        for key, ff in ((name, f), (f"{name}@{SMALL_N}", f[:SMALL_N])):
            k_mean, k_std = kid(ff, f_ref, subsets=args.kid_subsets, subset_size=args.kid_subset_size, seed=0)
            rows[key] = {
                "cfd": frechet_distance(*feature_statistics(ff), mu_ref, sigma_ref),
                "kid": k_mean,
                "kid_std": k_std,
                "num_samples": ff.shape[0],
                "num_reference": f_ref.shape[0],
            }
        print(f"{name}: cFD {rows[name]['cfd']:.3f} ({time.time() - t0:.0f}s)", flush=True)

    meta = net.meta
    result = {
        "about": (
            "cFD / cKID (vitgan_lite.quality) of degraded CIFAR-10 test images against a fixed 10k subset of "
            "the train set. NOT comparable with Inception FID; compare course runs with each other, at the "
            "same sample count (cFD grows as N shrinks; cKID is unbiased)."
        ),
        "reference": {
            "split": "train",
            "size": REFERENCE_SIZE,
            "seed": REFERENCE_SEED,
            "indices": "vitgan_lite.quality.reference_indices(50000)",
        },
        "test_order_seed": 1,
        "kid": {"subsets": args.kid_subsets, "subset_size": args.kid_subset_size, "seed": 0},
        "feature_net": {k: meta[k] for k in ("test_accuracy", "epochs", "seed", "feature_dim", "torch")},
        "source": Path(str(source)).name,
        "rows": rows,
    }
    out = Path(args.out)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    os.replace(tmp, out)

    print("\n| images vs 10k train reference | N | cFD | cKID (x 1e3) |\n|---|---|---|---|")
    for key, r in rows.items():
        print(
            f"| {key} | {r['num_samples']} | {r['cfd']:.3f} | "
            f"{1e3 * r['kid']:.3f} +- {1e3 * r['kid_std']:.3f} |"
        )
    print(f"\nwrote {out} in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
