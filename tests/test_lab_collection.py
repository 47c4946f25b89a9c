"""tests/lab collects only its own tests (no lab needed: collection only).

pytest collects every module-level function whose name starts with `test`,
imported ones too: a helper named `testinfra_host` imported from conftest was
collected as a test and errored with `fixture 'name' not found`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.static

ROOT = Path(__file__).resolve().parent.parent
LAB = ROOT / "tests" / "lab"


def _collect() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(ROOT),
            "tests/lab",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_tests_lab_collects_without_errors_and_only_its_own_tests() -> None:
    proc = _collect()
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "error" not in out.lower(), out[-3000:]
    items = [line for line in proc.stdout.splitlines() if "::" in line]
    assert items, out[-3000:]
    for item in items:
        file, name = item.split("::", 1)
        name = name.split("[", 1)[0]
        assert not name.startswith("testinfra"), f"a helper is collected as a test: {item}"
        assert name in _defined_tests(ROOT / file), f"{item} is not defined in {file} (an imported helper?)"
