"""Test modules import shared helpers from tests/support, never from a conftest.py: a second
conftest.py in a test folder shadows the root one for ``from conftest import``, and one test
module importing another couples their collection."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_test_imports_conftest_or_another_test_module() -> None:
    bad = []
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name == "conftest" or name.startswith("test_"):
                    bad.append(f"{path.relative_to(TESTS)}:{node.lineno}: imports {name}")
    assert bad == []
