"""Small helpers the notebooks share: environment report, device, seeding, the CI quick switch.

``VITGAN_LITE_QUICK=1`` (set by ``make test`` and CI) shrinks the heavy cells of the lessons (training
runs, image fits, benchmarks) to a few real steps. They still run; their outputs are marked
``# NBVAL_IGNORE_OUTPUT`` so the committed, full-size results stay what a learner sees.
"""

from __future__ import annotations

import os
import platform
import random

import torch

ENV_QUICK = "VITGAN_LITE_QUICK"


def quick_mode() -> bool:
    """True when heavy cells should shrink (CI and ``make test``)."""
    return os.environ.get(ENV_QUICK, "").strip().lower() in ("1", "true", "yes", "on")


def pick(full, quick):
    """``quick`` under the quick switch, else ``full``: ``steps = pick(2000, 5)``."""
    return quick if quick_mode() else full


def pick_device(prefer: str | None = None) -> torch.device:
    """``prefer`` if given, else CUDA, then Apple's MPS, then CPU."""
    if prefer:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, torch (CPU and CUDA) and return a fresh CPU generator with the same seed."""
    random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def describe_environment() -> None:
    """Print the versions and the device a lesson runs with."""
    import torchvision

    import vitgan_lite

    device = pick_device()
    name = (
        torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or platform.machine()
    )
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}, vitgan_lite {vitgan_lite.__version__}"
    )
    print(f"device: {device} ({name}); quick mode: {quick_mode()}")


__all__ = ["ENV_QUICK", "describe_environment", "pick", "pick_device", "quick_mode", "seed_everything"]
