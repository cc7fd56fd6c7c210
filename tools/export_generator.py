"""Ship a trained run's EMA generator with the package, and its metric curve with the docs.

    python tools/export_generator.py RUN_FOLDER NAME [--wall-s SECONDS] [--command "..."]

Writes ``vitgan_lite/assets/<NAME>_generator.pt`` (config, float16 G_ema state dict, and the run's facts:
step, wall-clock, last cFD, command) for ``vitgan_lite.run.pretrained_generator(NAME)``, and
``docs/results/<NAME>/metrics.json`` (the run's metrics log, every record) for the lessons' plots.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vitgan_lite.run.checkpoints import latest_checkpoint, load_checkpoint  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a run folder with ckpt_*.pt and metrics.jsonl")
    p.add_argument("name", help="the asset's name, e.g. cpu-hour")
    p.add_argument("--wall-s", type=float, default=None, help="the run's wall-clock in seconds")
    p.add_argument("--command", default="", help="the command that trained it")
    args = p.parse_args(argv)
    ckpt = latest_checkpoint(args.run)
    if ckpt is None:
        p.error(f"no checkpoint (ckpt_*.pt) in {args.run}")
    state = load_checkpoint(ckpt)
    log = [json.loads(line) for line in (args.run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    log = [r for r in log if r.get("step", 0) <= state["step"]]
    cfds = [r for r in log if "cfd" in r]
    meta = {
        "step": int(state["step"]),
        "wall_s": args.wall_s,
        "cfd": cfds[-1]["cfd"] if cfds else None,
        "cfd_samples": cfds[-1].get("cfd_samples") if cfds else None,
        "command": args.command,
        "torch": str(torch.__version__),
    }
    out = {
        "config": state["config"],
        "G_ema": {k: v.half() if v.is_floating_point() else v for k, v in state["G_ema"].items()},
        "meta": meta,
    }
    stem = args.name.replace("-", "_")
    asset = ROOT / "vitgan_lite" / "assets" / f"{stem}_generator.pt"
    tmp = asset.with_suffix(".tmp")
    torch.save(out, tmp)
    os.replace(tmp, asset)
    results = ROOT / "docs" / "results" / stem
    results.mkdir(parents=True, exist_ok=True)
    keep = ("step", "d_loss", "g_loss", "d_real", "d_fake", "images_per_s", "cfd", "ckid", "cfd_samples")
    slim = [{k: r[k] for k in keep if k in r} for r in log]
    (results / "metrics.json").write_text(json.dumps(slim, indent=0) + "\n")
    print(f"{asset} ({asset.stat().st_size / 1e6:.2f} MB), {results / 'metrics.json'}: {meta}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
