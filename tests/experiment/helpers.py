"""Helpers shared by the experiment tests."""

from __future__ import annotations

import shutil
import struct
import sys
from pathlib import Path

import pytest

from canarylab.experiment.plots import DPI, FIGSIZE

#: Every plot's size in pixels.
PNG_SIZE = (round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * DPI))


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG header; fails if it is not a PNG."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert head[12:16] == b"IHDR"
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def console_script(name: str) -> str:
    """A console script of this virtual environment (canarylab), else from PATH."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: run `make setup`")
    return found
