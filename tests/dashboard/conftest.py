"""Fixtures of the dashboard tests: a fake Grafana (see fake_grafana.py) and a state dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_grafana import FakeGrafana

from canarylab.grafana import PASSWORD_FILE


@pytest.fixture
def fake_grafana() -> Iterator[FakeGrafana]:
    with FakeGrafana() as g:
        yield g


@pytest.fixture
def state(tmp_path: Path, fake_grafana: FakeGrafana) -> Path:
    """A `.canarylab/` holding the fake Grafana's admin password, as the lab stores it."""
    d = tmp_path / ".canarylab"
    d.mkdir()
    (d / PASSWORD_FILE).write_text(fake_grafana.state.password + "\n")
    return d
