"""The layout holds: what may import what, the code anchors of docs/ARCHITECTURE.md, config metadata."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest
import torch
from helpers import tiny_config

from vitgan_lite.config import ARCH_FIELDS, Config, field_sources
from vitgan_lite.discriminator import ViTDiscriminator
from vitgan_lite.generator import ViTGenerator

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "vitgan_lite"
CORE = sorted(p for p in PACKAGE.glob("*.py") if p.name != "__main__.py")  # __main__: the CLI entry point
RUN = sorted((PACKAGE / "run").glob("*.py"))
CHECKS = sorted((PACKAGE / "checks").glob("*.py"))


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize(
    "files,forbidden",
    [
        (CORE, ("vitgan_lite.run", "vitgan_lite.checks", "torch_fidelity")),
        (RUN, ("vitgan_lite.checks",)),
        (CHECKS, ("vitgan_lite.run",)),
    ],
    ids=["core", "run", "checks"],
)
def test_layers_import_only_downwards(files, forbidden):
    assert files, "no modules found"
    bad = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files
        for name in sorted(imported_modules(path))
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]
    rule = "a layer imports upwards (docs/ARCHITECTURE.md, 'What may import what'):\n"
    assert not bad, rule + "\n".join(bad)


def test_architecture_anchors_point_at_their_definitions():
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    anchors = re.findall(r"`(vitgan_lite/[\w/]+\.py):(\d+)` `(\w+)`", doc)
    assert len(anchors) >= 25, "the equation -> code table lost its rows"
    for path, line, name in anchors:
        lines = (ROOT / path).read_text().splitlines()
        defines = [i + 1 for i, text in enumerate(lines) if re.match(rf"(def|class) {name}\b", text)]
        where = defines[0] if defines else None
        assert where is not None, f"{path} no longer defines {name}: update docs/ARCHITECTURE.md"
        assert where == int(line), (
            f"docs/ARCHITECTURE.md: {name} is now at {path}:{where}, not :{line}; "
            "run python tools/architecture_anchors.py"
        )


def test_every_config_field_says_where_its_default_comes_from():
    sources = field_sources()
    assert sources.keys() == {f.name for f in dataclasses.fields(Config)}
    assert all(isinstance(s, str) and s.strip() for s in sources.values()), sources


def _signature(cfg: Config) -> dict[str, tuple[int, ...]]:
    with torch.random.fork_rng(devices=[]):
        G, D = ViTGenerator.from_config(cfg), ViTDiscriminator.from_config(cfg)
    return {
        **{f"G.{k}": tuple(v.shape) for k, v in G.state_dict().items()},
        **{f"D.{k}": tuple(v.shape) for k, v in D.state_dict().items()},
    }


def _another_value(name: str, value):
    if name == "d_attn_init":
        return "xavier"
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value * 2
    if isinstance(value, float):
        return value * 2 + 1
    return None  # other strings: data paths, policies, amp modes


def test_fields_not_marked_arch_leave_the_parameters_alone():
    # ARCH_FIELDS comes from each field's `arch` metadata; a field that reshapes G or D must carry it,
    # or a checkpoint of another architecture would be taken for this one.
    base = tiny_config()
    reference = _signature(base)
    for f in dataclasses.fields(Config):
        other = _another_value(f.name, getattr(base, f.name))
        if f.name in ARCH_FIELDS or other is None:
            continue
        assert _signature(base.replace(**{f.name: other})) == reference, (
            f"{f.name} changes the networks' parameters: declare it with arch(...) in config.py"
        )
    for name in ("g_dim", "d_depth", "d_spectral_norm", "channels"):
        assert name in ARCH_FIELDS
    assert _signature(base.replace(d_spectral_norm="none")) != reference
