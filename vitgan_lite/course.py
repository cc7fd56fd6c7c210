"""Small helpers the notebooks share: environment report, the device rule, seeding, the CI quick switch.

``VITGAN_LITE_QUICK=1`` (set by ``make test`` and CI) shrinks the heavy cells of the lessons (training
runs, image fits, benchmarks) to a few real steps. They still run; their outputs are marked
``# NBVAL_IGNORE_OUTPUT`` so the committed, full-size results stay what a learner sees.
"""

from __future__ import annotations

import os
import platform
import random

import torch

from vitgan_lite.config import ConfigError

ENV_QUICK = "VITGAN_LITE_QUICK"


def quick_mode() -> bool:
    """True when heavy cells should shrink (CI and ``make test``)."""
    return os.environ.get(ENV_QUICK, "").strip().lower() in ("1", "true", "yes", "on")


def pick(full, quick):
    """``quick`` under the quick switch, else ``full``: ``steps = pick(2000, 5)``."""
    return quick if quick_mode() else full


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The one rule for choosing a device: ``None`` gives CUDA when available, else the CPU; a device that
    was asked for by name (``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"cpu"``) is checked to exist."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is available: use --device cpu")
    mps = getattr(torch.backends, "mps", None)
    if device.type == "mps" and not (mps is not None and mps.is_available()):
        raise ConfigError("device 'mps' was asked for but Apple's MPS is not available: use --device cpu")
    return device


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, torch (CPU and CUDA) and return a fresh CPU generator with the same seed."""
    random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def describe_environment() -> None:
    """Print the versions and the device a lesson runs with."""
    import torchvision

    import vitgan_lite

    device = resolve_device()
    name = (
        torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or platform.machine()
    )
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}, vitgan_lite {vitgan_lite.__version__}"
    )
    print(f"device: {device} ({name}); quick mode: {quick_mode()}")


__all__ = ["ENV_QUICK", "describe_environment", "pick", "quick_mode", "resolve_device", "seed_everything"]
