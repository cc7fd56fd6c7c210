"""Re-point docs/ARCHITECTURE.md's ``path:line`` anchors at the lines that define each name today.

The equation -> code table writes each definition as `` `vitgan_lite/x.py:123` `name` ``;
tests/test_architecture.py fails when an edit moves a definition. Run this after such an edit::

    python tools/architecture_anchors.py          # rewrite the anchors, list what moved
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
ANCHOR = re.compile(r"`(vitgan_lite/[\w/]+\.py):(\d+)` `(\w+)`")


def main() -> int:
    text = DOC.read_text()
    moved, missing = [], []

    def repoint(m: re.Match) -> str:
        path, line, name = m.group(1), int(m.group(2)), m.group(3)
        lines = (ROOT / path).read_text().splitlines()
        found = [i + 1 for i, src in enumerate(lines) if re.match(rf"(def|class) {name}\b", src)]
        if not found:
            missing.append(f"{path} no longer defines {name}")
            return m.group(0)
        if found[0] != line:
            moved.append(f"{name}: {path}:{line} -> :{found[0]}")
        return f"`{path}:{found[0]}` `{name}`"

    DOC.write_text(ANCHOR.sub(repoint, text))
    print("\n".join(moved) or "no anchor moved")
    for m in missing:
        print(f"error: {m}: edit docs/ARCHITECTURE.md by hand", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
