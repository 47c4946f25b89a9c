"""Files that are rendered from Python and committed, so that Ansible, Helm and promtool need no Python.

Each exporter (the contract, the dashboard and rules) renders a list of `Rendered`; `stale` says which
committed copies differ from a fresh render (a test fails on any), and `write` brings them up to date.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Rendered:
    path: Path
    text: str

    def current(self) -> bool:
        return self.path.exists() and self.path.read_text() == self.text


def stale(rendered: Iterable[Rendered]) -> list[Path]:
    """The files that are missing or differ from their fresh render."""
    return [r.path for r in rendered if not r.current()]


def write(rendered: Iterable[Rendered]) -> list[Path]:
    """Write the files that are not current; return their paths."""
    written = []
    for r in rendered:
        if not r.current():
            r.path.parent.mkdir(parents=True, exist_ok=True)
            r.path.write_text(r.text)
            written.append(r.path)
    return written
