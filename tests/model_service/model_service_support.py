"""Helpers the model-service tests import (conftest modules are not importable by name)."""

from __future__ import annotations

from collections.abc import Callable

from canarylab.procs import ManagedProcess

StartServer = Callable[..., tuple[ManagedProcess, str]]
