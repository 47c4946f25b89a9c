"""The container lab's Grafana stand-in, imported from its image's directory (it is no package)."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPT = (
    Path(__file__).resolve().parent.parent / "bundle" / "images" / "grafana-standin" / "grafana_standin.py"
)


@functools.cache
def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_standin", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["grafana_standin"] = mod  # dataclasses resolve their annotations through it
    spec.loader.exec_module(mod)
    return mod
