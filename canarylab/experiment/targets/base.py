"""What the engine asks of a target, and the names of the target kinds.

``TargetKind`` is the only spelling of the kinds: the CLI's ``--target``
choices, ``python -m canarylab.experiment``, the engine and the registry read
``TARGETS``; experiment.yml cannot import Python, so a static test checks that
the kinds it names are these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, get_args

from canarylab.experiment.spec import ExperimentSpec

#: ``local``: everything on 127.0.0.1 (targets/local.py); ``lab``: a provisioned
#: cluster, the VM lab or real servers (targets/lab.py).
TargetKind = Literal["local", "lab"]
TARGETS: tuple[TargetKind, ...] = get_args(TargetKind)


@dataclass(frozen=True)
class Endpoint:
    """Where the load goes for one variant: POST ``url`` with ``headers`` (incl. the pinning header)."""

    variant: str
    url: str
    headers: dict[str, str]


@dataclass(frozen=True)
class ScrapeCheck:
    """How to tell that Prometheus scraped every target of a run: label matchers and a time limit."""

    matchers: str
    timeout: float


@dataclass(frozen=True)
class TargetRequest:
    """Everything a target factory may need; each kind takes what it uses."""

    spec: ExperimentSpec
    #: the run's directory for the target's own files (logs, Prometheus config)
    workdir: Path
    #: the lab's target file (written by its preflight)
    target_file: Path | None = None
    scrape_interval: str = "1s"
    prometheus_bin: str | None = None
    rules_file: Path | None = None
    model_cache: Path | None = None
    on_status: Callable[[str], None] | None = None


class Target(Protocol):
    """A place where both variants run and a Prometheus scrapes them.

    ``with target:`` makes it ready (local: starts and awaits every process;
    lab: waits for its Prometheus and endpoints) and, on the way out, stops
    whatever it started.  The data members are read-only for the engine.
    """

    @property
    def kind(self) -> TargetKind: ...
    @property
    def endpoints(self) -> Mapping[str, Endpoint]: ...
    @property
    def prometheus_url(self) -> str: ...
    @property
    def selector(self) -> str:
        """Label matchers added to every query (empty: none)."""
        ...

    @property
    def ports(self) -> Mapping[str, int]: ...
    @property
    def grafana_url(self) -> str | None: ...

    def __enter__(self) -> Target: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def scrape_seconds(self) -> float:
        """The scrape interval of the target's Prometheus, in seconds."""
        ...

    def scrape_check(self) -> ScrapeCheck:
        """Matchers and time limit for "every target was scraped after t"."""
        ...

    def wait_scraping(self) -> None:
        """Readiness before the first measured second: Prometheus scrapes every target."""
        ...

    def pids(self) -> dict[str, int]:
        """The processes this target started, by name (none for a target it does not own)."""
        ...

    def problems(self) -> dict[str, list[str]]:
        """Per variant: what went wrong with its processes since start-up (restarts, exits)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Everything about this target worth recording in the results."""
        ...

    def deployment_warnings(self, spec: ExperimentSpec) -> list[str]:
        """Where the variants that run here are not ``spec``'s (validity warnings)."""
        ...

    def clean_up(self) -> None:
        """After the run, once stopped: delete what is not worth keeping (e.g. a TSDB)."""
        ...


TargetFactory = Callable[[TargetRequest], Target]
