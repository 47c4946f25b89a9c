"""Helpers the model-service tests import (conftest modules are not importable by name)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from canarylab.procs import ManagedProcess

StartServer = Callable[..., tuple[ManagedProcess, str]]


def console_script(name: str) -> str:
    """A console script of this virtual environment (same lookup as tests/conftest.py's bin_path)."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: run `make setup`")
    return found
