"""Run notebooks top to bottom in a fresh kernel and save them with their outputs (for committing).

    python tools/execute_notebooks.py notebooks/01_patches.ipynb solutions/01_patches.ipynb

Use it after editing a lesson or a solution, then ``python tools/make_exercises.py``. Run it in the
same setting as CI (``VITGAN_LITE_DATA`` pointing at the local CIFAR-10 folder, quick mode OFF) so that
the committed outputs are the full-size ones a learner should see.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

KEEP_METADATA = ("kernelspec", "language_info", "colab", "accelerator")


def execute(path: Path, timeout: int = 1200) -> float:
    nb = nbformat.read(path, as_version=4)
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in KEEP_METADATA}
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    start = time.perf_counter()
    NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,
    ).execute()
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per cell")
    args = parser.parse_args(argv)
    for p in args.paths:
        print(f"{p}: {execute(p, args.timeout):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
