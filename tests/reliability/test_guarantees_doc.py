"""docs/guarantees.md names only tests that exist."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_test_named_in_guarantees_exists():
    """Each `tests/...py::name` in docs/guarantees.md is a test function of that module."""
    text = (REPO / "docs" / "guarantees.md").read_text()
    refs = set(re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", text))
    assert len(refs) > 20
    missing = []
    for module, name in sorted(refs):
        tree = ast.parse((REPO / module).read_text())
        if name not in {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}:
            missing.append(f"{module}::{name}")
    assert not missing, missing
