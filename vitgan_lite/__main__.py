"""``python -m vitgan_lite``: the command line of :mod:`vitgan_lite.run.cli` (lesson 12)."""

from vitgan_lite.run.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
