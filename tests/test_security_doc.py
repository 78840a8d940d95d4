"""SECURITY.md maps HIPAA 164.312 and ASVS L2 to test names; a mapping that names a test which
was renamed or removed would claim a proof that no longer runs, so every name must resolve."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


def _references(text: str) -> list[tuple[str, str]]:
    return REFERENCE.findall(text)


def _defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def _missing(text: str) -> list[str]:
    missing = []
    for file, name in _references(text):
        path = ROOT / file
        if not path.is_file() or name not in _defined_tests(path):
            missing.append(f"{file}::{name}")
    return missing


def test_every_test_named_in_security_md_exists() -> None:
    text = (ROOT / "SECURITY.md").read_text()
    assert len(_references(text)) >= 40, "SECURITY.md lost its mapping tables"
    assert _missing(text) == []


def test_a_renamed_test_is_caught() -> None:
    text = "`tests/test_auth.py::test_that_was_renamed` and `tests/nowhere.py::test_x`"
    assert _missing(text) == [
        "tests/test_auth.py::test_that_was_renamed",
        "tests/nowhere.py::test_x",
    ]


def test_the_policy_says_how_to_report_and_what_is_out_of_scope() -> None:
    text = (ROOT / "SECURITY.md").read_text()
    for heading in ("## Reporting a problem", "### What it does not defend against", "164.312"):
        assert heading in text
