"""The model-service's Prometheus metrics, in a registry of their own per app.

Names and labels come from the contract; every series carries ``variant``.

Two modes.  One process (waitress): every series lives in this process's
registry, the queue depth and the rolling maximum are read at scrape time, and
prometheus_client's process collector gives ``process_cpu_seconds_total``.
Several processes (gunicorn, ``multiprocess_dir`` set): prometheus_client's
multiprocess mode.  Each worker writes its values to files in that directory,
and :func:`multiprocess_registry` aggregates them at scrape time (in the master
for the metrics port, in a worker for ``GET /metrics``): counters and
histograms are summed, in-flight, queue depth and threads summed over live
workers, the rolling maximum is the maximum over live workers.  Values read
at scrape time in one process cannot be read from another one, so a worker
writes them instead: on every change, and the decaying ones (rolling maximum,
CPU seconds) every :data:`REFRESH_SECONDS` from a thread of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

import canarylab_contract as contract
from model_service.artifact import ArtifactMeta
from model_service.rolling import RollingMax

V = contract.LABEL_VARIANT
OUTCOMES = (contract.OUTCOME_OK, contract.OUTCOME_CLIENT_ERROR, contract.OUTCOME_SERVER_ERROR)
#: How often a worker process writes its rolling maximum and CPU seconds (multiprocess mode).
REFRESH_SECONDS: Final = 0.5


def outcome_for(status: int) -> str:
    if status >= 500:
        return contract.OUTCOME_SERVER_ERROR
    if status >= 400:
        return contract.OUTCOME_CLIENT_ERROR
    return contract.OUTCOME_OK


class StaticCollector(Collector):
    """What is fixed at start: the process count, both emulation knobs, the model's identity."""

    def __init__(
        self,
        variant: str,
        processes: int,
        simulated_latency_seconds: float,
        cpu_cost_seconds: float,
        meta: ArtifactMeta | None,
    ) -> None:
        self._variant = variant
        self._gauges = (
            (contract.MODEL_PROCESSES, "Configured model-service worker processes.", float(processes)),
            (
                contract.MODEL_SIMULATED_LATENCY_SECONDS,
                "Emulation knob: blocking wait added to each prediction, seconds (0 = off).",
                simulated_latency_seconds,
            ),
            (
                contract.MODEL_SIMULATED_CPU_SECONDS,
                "Emulation knob: CPU work holding the GIL added to each prediction, seconds (0 = off).",
                cpu_cost_seconds,
            ),
        )
        self._meta = meta

    def collect(self) -> Iterable[Metric]:
        for name, documentation, value in self._gauges:
            family = GaugeMetricFamily(name, documentation, labels=[V])
            family.add_metric([self._variant], value)
            yield family
        info = InfoMetricFamily(contract.MODEL_INFO, "The model being served.", labels=[V])
        meta = self._meta
        details = (
            {
                "version": meta.version,
                "sha256": meta.model_sha256,
                "dataset_sha256": meta.dataset_sha256,
                "sklearn_version": meta.sklearn_version,
            }
            if meta is not None
            else {}
        )
        info.add_metric([self._variant], details)
        yield info


class VariantProcessCollector(Collector):
    """prometheus_client's process collector (CPU seconds, memory, fds; Linux only), every
    sample labelled with the variant, since the scrape targets carry no variant label."""

    def __init__(self, variant: str) -> None:
        self._variant = variant
        self._inner = ProcessCollector(registry=None)

    def collect(self) -> Iterator[Metric]:
        for family in self._inner.collect():
            for sample in family.samples:
                sample.labels[V] = self._variant
            yield family


class CpuSecondsWriter:
    """Multiprocess mode: adds this process's CPU time (``time.process_time``) to the shared
    ``process_cpu_seconds_total`` counter.  Summed over every process, dead ones included,
    so the total only ever grows, as a counter must."""

    def __init__(self, variant: str) -> None:
        self._counter = Counter(
            contract.MODEL_PROCESS_CPU_SECONDS,
            "CPU seconds (user + system) of the model-service's processes.",
            [V],
            registry=None,
        ).labels(variant)
        self._lock = threading.Lock()
        self._seen = 0.0

    def write(self) -> None:
        with self._lock:
            now = time.process_time()
            self._counter.inc(max(0.0, now - self._seen))
            self._seen = now


class _WithBacklog(Collector):
    """The multiprocess aggregate, with the listening socket's accept queue added to the
    queue depth: requests no worker has taken yet wait there (model_service/prefork_worker.py)."""

    def __init__(self, inner: Collector, backlog: Callable[[], int]) -> None:
        self._inner = inner
        self._backlog = backlog

    def collect(self) -> Iterator[Metric]:
        for family in self._inner.collect():
            if family.name == contract.MODEL_QUEUE_DEPTH:
                waiting = float(self._backlog())
                family.samples = [s._replace(value=s.value + waiting) for s in family.samples]
            yield family


def multiprocess_registry(
    static: StaticCollector, directory: Path, backlog: Callable[[], int] = lambda: 0
) -> CollectorRegistry:
    """A registry that aggregates every process's files in ``directory``, plus ``static``;
    ``backlog`` (connections no worker has accepted yet) is added to the queue depth."""
    registry = CollectorRegistry()
    files = MultiProcessCollector(None, path=str(directory))  # type: ignore[no-untyped-call]
    registry.register(_WithBacklog(files, backlog))
    registry.register(static)
    return registry


def start_refresher(refresh: Callable[[], None], interval: float = REFRESH_SECONDS) -> threading.Event:
    """Call ``refresh`` every ``interval`` seconds in a daemon thread until the event is set."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            refresh()

    threading.Thread(target=loop, name="metrics-refresh", daemon=True).start()
    return stop


class ServiceMetrics:
    """All series of one model-service app.  Nothing here touches the global registry.

    With ``multiprocess_dir``, this is one worker's share (see the module docstring):
    call :meth:`refresh` periodically (:meth:`start_refreshing`), and report the
    queue through :meth:`queue_changed`.
    """

    def __init__(
        self,
        variant: str,
        threads: int,
        simulated_latency_seconds: float,
        meta: ArtifactMeta | None,
        clock: Callable[[], float] = time.monotonic,
        *,
        cpu_cost_seconds: float = 0.0,
        processes: int = 1,
        multiprocess_dir: Path | None = None,
        backlog: Callable[[], int] = lambda: 0,
    ) -> None:
        self.variant = variant
        self.multiprocess = multiprocess_dir is not None
        static = StaticCollector(variant, processes, simulated_latency_seconds, cpu_cost_seconds, meta)
        if multiprocess_dir is not None:
            self.registry = multiprocess_registry(static, multiprocess_dir, backlog)
            values: CollectorRegistry | None = None  # the files are the values
        else:
            self.registry = CollectorRegistry()
            self.registry.register(static)
            self.registry.register(VariantProcessCollector(variant))
            values = self.registry
        self._queue_depth: Callable[[], int] = lambda: 0
        self.window_max = RollingMax(contract.PROCESSING_MAX_WINDOW_SECONDS, clock)
        self.processing = Histogram(
            contract.MODEL_PROCESSING_SECONDS,
            "Time spent in the /predict handler for requests that reached the model, seconds.",
            [V],
            buckets=contract.LATENCY_BUCKETS,
            registry=values,
        ).labels(variant)
        self._requests = Counter(
            contract.MODEL_REQUESTS_TOTAL,
            "/predict requests by outcome.",
            [V, contract.LABEL_OUTCOME],
            registry=values,
        )
        for outcome in OUTCOMES:  # every series exists from the first scrape on
            self._requests.labels(variant, outcome)
        self.in_flight = Gauge(
            contract.MODEL_IN_FLIGHT,
            "/predict requests being handled right now.",
            [V],
            registry=values,
            multiprocess_mode="livesum",
        ).labels(variant)
        Gauge(
            contract.MODEL_THREADS,
            "Configured server worker threads (with several processes: summed over the live ones).",
            [V],
            registry=values,
            multiprocess_mode="livesum",
        ).labels(variant).set(threads)
        queue = Gauge(
            contract.MODEL_QUEUE_DEPTH,
            "Requests waiting in the server's task queue for a free worker thread.",
            [V],
            registry=values,
            multiprocess_mode="livesum",
        ).labels(variant)
        window = Gauge(
            contract.MODEL_PROCESSING_WINDOW_MAX_SECONDS,
            f"Exact longest /predict processing time of the last "
            f"{contract.PROCESSING_MAX_WINDOW_SECONDS:g} s, seconds.",
            [V],
            registry=values,
            multiprocess_mode="livemax",
        ).labels(variant)
        self._queue = queue
        self._window = window
        self._cpu: CpuSecondsWriter | None = None
        if self.multiprocess:
            self._cpu = CpuSecondsWriter(variant)
        else:
            queue.set_function(lambda: float(self._queue_depth()))
            window.set_function(self.window_max.value)

    def bind_queue_depth(self, reader: Callable[[], int]) -> None:
        """Read the task-queue depth from ``reader`` at every scrape (one process: waitress binds it)."""
        self._queue_depth = reader

    def queue_changed(self, delta: int) -> None:
        """Multiprocess mode: a request entered (+1) or left (-1) this worker's task queue."""
        self._queue.inc(delta)

    def count(self, outcome: str) -> None:
        self._requests.labels(self.variant, outcome).inc()

    def observe_processing(self, seconds: float) -> None:
        self.processing.observe(seconds)
        self.window_max.observe(seconds)
        if self.multiprocess:
            self._window.set(self.window_max.value())

    def refresh(self) -> None:
        """Multiprocess mode: write the values that change without a request."""
        if self._cpu is not None:
            self._window.set(self.window_max.value())
            self._cpu.write()

    def start_refreshing(self, interval: float = REFRESH_SECONDS) -> threading.Event:
        self.refresh()
        return start_refresher(self.refresh, interval)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
