"""The import rule of docs/architecture.md, checked on the code: every import of a distrokit
module, at the top of a file or inside a function, points to the importing module's own unit or
to a unit on a lower line of the ``layers`` block in that document."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "distrokit"
DOC = ROOT / "docs" / "architecture.md"


def layers(text: str | None = None) -> dict[str, int]:
    """Unit -> rank (0 is the bottom line), read from the fenced ``layers`` block."""
    match = re.search(r"```layers\n(.*?)```", DOC.read_text() if text is None else text, re.S)
    assert match, "docs/architecture.md has no ```layers block"
    lines = [line.split("#")[0].split() for line in match.group(1).splitlines()]
    ranks: dict[str, int] = {}
    for rank, units in enumerate(reversed([line for line in lines if line])):
        for unit in units:
            assert unit not in ranks, f"{unit} is on two lines"
            ranks[unit] = rank
    return ranks


def unit_of_file(path: Path) -> str:
    """src/distrokit/formats/iso.py -> formats; src/distrokit/host.py -> host."""
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def unit_of_module(module: str) -> str:
    """distrokit.formats.iso -> formats; distrokit.host -> host; distrokit -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, module) of every distrokit import in `path`; `package` resolves relative ones."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("distrokit")]
        elif isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join([*base, *([node.module] if node.module else [])])
            if name == "distrokit" or name.startswith("distrokit."):
                found.append((node.lineno, name))
    return found


def violations(ranks: dict[str, int]) -> list[str]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        here = unit_of_file(path)
        assert here in ranks, f"{path.relative_to(ROOT)}: unit {here!r} has no layer"
        package = ".".join(("distrokit", *path.relative_to(SRC).parent.parts))
        for line, module in imports(path, package):
            there = unit_of_module(module)
            assert there in ranks, f"{path.relative_to(ROOT)}:{line}: {there!r} has no layer"
            if there != here and ranks[there] >= ranks[here]:
                out.append(f"{path.relative_to(ROOT)}:{line}: {here} imports {module}")
    return out


def test_every_import_points_down_the_layers() -> None:
    assert violations(layers()) == []


def test_every_unit_of_the_code_has_a_layer_and_every_layer_a_unit() -> None:
    units = {unit_of_file(p) for p in SRC.rglob("*.py")}
    assert set(layers()) == units


def test_an_upward_import_inside_a_function_is_reported(tmp_path: Path) -> None:
    ranks = layers()
    assert ranks["cli"] > ranks["formats"] > ranks["system"] > ranks["oci"] > ranks["config"]
    # The same code with the layers of oci and formats swapped breaks the rule.
    swapped = dict(ranks, oci=ranks["formats"], formats=ranks["oci"])
    assert any(" formats imports distrokit.system" in v for v in violations(swapped))
    # Imports inside functions and relative imports count too.
    source = tmp_path / "late.py"
    source.write_text("def f():\n    import distrokit.cli\n    from ..oci import cache\n")
    found = imports(source, "distrokit.formats")
    assert found == [(2, "distrokit.cli"), (3, "distrokit.oci")]
