"""Helpers shared by the experiment tests."""

from __future__ import annotations

import struct
from pathlib import Path

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
