"""Checkpoints: plain dicts, written atomically, read with ``weights_only=True`` (run layer).

A checkpoint holds ``G``, ``D``, ``G_ema``, ``opt_g``, ``opt_d`` (state dicts), ``step``, ``config``
(``Config.to_dict()``), ``rng`` (every random stream's state) and ``version``. It resumes only into the
same architecture: the config fields marked ``arch`` in :mod:`vitgan_lite.config` must agree.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from vitgan_lite.config import ARCH_FIELDS, Config
from vitgan_lite.generator import ViTGenerator

CHECKPOINT_VERSION = 1
CKPT_RE = re.compile(r"^ckpt_(\d{7})\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, corrupt or of another architecture; the message says which."""


def checkpoint_path(out_dir: str | os.PathLike, step: int) -> Path:
    """``out_dir/ckpt_XXXXXXX.pt`` for ``step``."""
    return Path(out_dir) / f"ckpt_{step:07d}.pt"


def list_checkpoints(out_dir: str | os.PathLike) -> list[Path]:
    """The checkpoints in ``out_dir``, oldest first (by step); temporary files are ignored."""
    folder = Path(out_dir)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CKPT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The newest checkpoint in ``out_dir``, or None."""
    ckpts = list_checkpoints(out_dir)
    return ckpts[-1] if ckpts else None


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, flush + fsync, then ``os.replace``.

    A crash at any moment leaves either the old file or the complete new one, never half a file
    (the rename is atomic on POSIX and Windows within one file system).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch.save reports a failed write as RuntimeError
        full = getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(e)
        why = "the disk is full" if full else f"{type(e).__name__}: {getattr(e, 'strerror', None) or e}"
        newest = latest_checkpoint(path.parent)
        kept = f"the newest complete checkpoint is still {newest}" if newest else "no checkpoint was kept"
        fix = "free some space" if full else "fix the folder"
        raise CheckpointError(
            f"could not write checkpoint {path}: {why}; {kept}. {fix.capitalize()}, then resume with --resume"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # make the rename itself durable (not possible on every OS)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``; CheckpointError if it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if re.search(r"GLOBAL|Unsupported global", str(e)):  # a pickled function or class: never ours
            raise CheckpointError(
                f"{path} was refused: it holds Python objects that a checkpoint never contains (loading "
                "them could run code), so it was not loaded. Use a checkpoint written by vitgan-lite"
            ) from None
        raise CheckpointError(_corrupt(path, e)) from None
    except MemoryError:
        raise CheckpointError(_corrupt(path, "it claims more memory than exists")) from None
    except Exception as e:  # noqa: BLE001  random bytes fail anywhere inside the unpickler
        raise CheckpointError(_corrupt(path, e)) from None
    keys = ("G", "D", "G_ema", "opt_g", "opt_d", "step", "config", "rng", "version")
    if not isinstance(state, dict) or any(k not in state for k in keys):
        raise CheckpointError(
            f"{path} is not a vitgan-lite checkpoint: expected a dict with keys {', '.join(keys)}"
        )
    if state["version"] > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has version {state['version']}, newer than this vitgan-lite "
            f"({CHECKPOINT_VERSION}): update the package"
        )
    return state


def _corrupt(path: Path, e: BaseException | str) -> str:
    what = e if isinstance(e, str) else type(e).__name__
    return (
        f"checkpoint {path} is truncated or corrupt ({what}): delete it and resume from an earlier "
        "checkpoint in the same folder"
    )


def load_state(module: torch.nn.Module, state: dict[str, Any], path: str | os.PathLike, what: str) -> None:
    """``module.load_state_dict(state)``; a mismatch (an edited checkpoint, another version) is a
    CheckpointError that names the file and the first differing tensors."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, AttributeError) as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()][1:4]
        detail = "; ".join(lines)[:300] or type(e).__name__
        raise CheckpointError(
            f"checkpoint {path} does not fit this version's {what} ({detail}): it was edited or written by "
            "another version of vitgan-lite; use a checkpoint of this version"
        ) from None


def architecture_mismatch(a: Config | dict[str, Any], b: Config | dict[str, Any]) -> list[str]:
    """``["g_dim: 64 vs 128", ...]``: the architecture fields in which two configs differ.

    A dict is read as a checkpoint's saved config (:meth:`Config.from_dict`: old field names are renamed).
    """
    a = (a if isinstance(a, Config) else Config.from_dict(a)).to_dict()
    b = (b if isinstance(b, Config) else Config.from_dict(b)).to_dict()
    return [f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in ARCH_FIELDS if a.get(k) != b.get(k)]


def require_same_architecture(saved: dict[str, Any], cfg: Config, path: str | os.PathLike, fix: str) -> None:
    """CheckpointError naming every differing field, unless ``saved`` (a checkpoint's config) fits ``cfg``."""
    diff = architecture_mismatch(saved, cfg)
    if diff:
        raise CheckpointError(
            f"checkpoint {path} has another architecture ({'; '.join(diff)}; checkpoint vs this run): {fix}"
        )


def find_checkpoint(path: str | os.PathLike) -> Path:
    """``path`` itself if it is a file, else the newest checkpoint in the run folder ``path``."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist: no checkpoint to resume from")
    if path.is_dir():
        newest = latest_checkpoint(path)
        if newest is None:
            raise CheckpointError(f"no checkpoint (ckpt_*.pt) in {path} to resume from")
        return newest
    return path


def generator_from_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[ViTGenerator, Config]:
    """The EMA generator of a checkpoint (eval mode) and its config, without loading any data."""
    state = load_checkpoint(path)
    cfg = Config.from_dict(state["config"])
    with torch.random.fork_rng(devices=[]):
        G = ViTGenerator.from_config(cfg)
    load_state(G, state["G_ema"], path, "generator")
    return G.to(device).eval().requires_grad_(False), cfg


def pretrained_generator(
    name: str = "cpu-hour", device: str | torch.device = "cpu", path: str | os.PathLike | None = None
) -> tuple[ViTGenerator, Config, dict[str, Any]]:
    """A generator the course trained and ships: ``vitgan_lite/assets/<name>_generator.pt`` (or ``path``).

    Returns the EMA generator (eval mode, float32), its config, and the run's facts (``step``,
    ``wall_s``, ``cfd``, ``command``). Written by ``tools/export_generator.py`` from a run's checkpoint.
    """
    default = Path(__file__).resolve().parent.parent / "assets" / f"{name.replace('-', '_')}_generator.pt"
    path = default if path is None else Path(path)
    if not path.is_file():
        shipped = sorted(p.name for p in path.parent.glob("*_generator.pt"))
        raise CheckpointError(f"no shipped generator {path.name}; the package has {shipped or 'none'}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        cfg = Config.from_dict(state["config"])
    except Exception as e:  # noqa: BLE001  any failure to read it
        raise CheckpointError(
            f"{path} is truncated or corrupt ({type(e).__name__}): re-export it with "
            "tools/export_generator.py"
        ) from None
    with torch.random.fork_rng(devices=[]):
        G = ViTGenerator.from_config(cfg)
    G.load_state_dict({k: v.float() for k, v in state["G_ema"].items()})
    return G.to(device).eval().requires_grad_(False), cfg, dict(state["meta"])


__all__ = [
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "architecture_mismatch",
    "checkpoint_path",
    "find_checkpoint",
    "generator_from_checkpoint",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_state",
    "pretrained_generator",
    "require_same_architecture",
    "save_checkpoint",
]
