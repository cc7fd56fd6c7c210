"""A run folder belongs to one trainer at a time, and a used one is never silently overwritten (run layer).

* :class:`RunLock`: ``run.lock`` holds the PID and host of the trainer that owns the folder. A second
  trainer is refused by name; a lock whose process is gone (same host) is stale and taken over.
* :func:`folder_state`: what a folder already holds (checkpoints, a metrics log), so that the command
  line can refuse to start a new run over an old one, and refuse ``--resume`` where there is nothing.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitgan_lite.run.checkpoints import list_checkpoints

LOCK_NAME = "run.lock"


class RunFolderError(RuntimeError):
    """The run folder cannot be used as asked (busy, used, empty or not a folder); the message says why."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


class RunLock:
    """``with RunLock(folder):`` the folder is this process's until the block ends.

    The lock file is created with ``O_EXCL`` (atomic on local file systems). A lock left by a process
    that no longer exists on this host is stale: it is replaced, with a note on stderr.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.held = False

    def _owner(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def acquire(self) -> RunLock:
        if self.folder.exists() and not self.folder.is_dir():
            raise RunFolderError(f"--out {self.folder} is a file, not a folder: choose another --out")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunFolderError(f"cannot create the run folder {self.folder}: {e.strerror}") from None
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                pid, host = owner.get("pid"), owner.get("host")
                if pid == me["pid"] and host == me["host"]:  # this process holds it already (the CLI)
                    return self
                if owner and host == me["host"] and isinstance(pid, int) and not _alive(pid):
                    print(f"note: {self.path} was left by process {pid}, which is gone; taking it over")
                    self.path.unlink(missing_ok=True)
                    continue
                who = (
                    f"process {pid} on {host}, started {owner.get('started')}" if owner else "another process"
                )
                raise RunFolderError(
                    f"{self.folder} is in use by {who}: one run folder, one trainer. Wait for it, stop it, "
                    f"or train into another --out folder (if that process is gone, delete {self.path})"
                ) from None
            except PermissionError as e:
                raise RunFolderError(f"cannot write in the run folder {self.folder}: {e.strerror}") from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise RunFolderError(f"could not take the lock {self.path}")  # pragma: no cover (a race lost twice)

    def check(self) -> None:
        """RunFolderError if another live process holds the folder (without taking it)."""
        if self.path.exists():
            self.acquire()
            self.release()

    def release(self) -> None:
        if self.held:
            with contextlib.suppress(OSError):
                if self._owner().get("pid") == os.getpid():
                    self.path.unlink()
            self.held = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


@dataclass
class FolderState:
    """What a run folder holds: its checkpoints (oldest first) and whether it has a metrics log."""

    folder: Path
    checkpoints: list[Path]
    has_log: bool

    @property
    def used(self) -> bool:
        return bool(self.checkpoints) or self.has_log


def folder_state(folder: str | os.PathLike) -> FolderState:
    folder = Path(folder)
    log = folder / "metrics.jsonl"
    has_log = log.is_file() and log.stat().st_size > 0
    return FolderState(folder, list_checkpoints(folder), has_log)


def nearest_run_folders(folder: str | os.PathLike, limit: int = 3) -> list[str]:
    """Run folders (with a checkpoint) next to ``folder`` whose names are closest to its name."""
    folder = Path(folder)
    parent = folder.parent if folder.parent.is_dir() else Path(".")
    candidates = (
        [p for p in parent.iterdir() if p.is_dir() and list_checkpoints(p)] if parent.is_dir() else []
    )
    by_name = {p.name: p for p in candidates}
    close = difflib.get_close_matches(folder.name, list(by_name), n=limit, cutoff=0.3)
    rest = sorted(n for n in by_name if n not in close)
    return [str(by_name[n]) for n in (close + rest)[:limit]]


__all__ = ["LOCK_NAME", "FolderState", "RunFolderError", "RunLock", "folder_state", "nearest_run_folders"]
