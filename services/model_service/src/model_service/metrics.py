"""The model-service's Prometheus metrics, in a registry of their own per app.

Names and labels come from the contract; every series carries ``variant``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

import canarylab_contract as contract
from model_service.artifact import ArtifactMeta
from model_service.rolling import RollingMax

V = contract.LABEL_VARIANT
OUTCOMES = (contract.OUTCOME_OK, contract.OUTCOME_CLIENT_ERROR, contract.OUTCOME_SERVER_ERROR)


def outcome_for(status: int) -> str:
    if status >= 500:
        return contract.OUTCOME_SERVER_ERROR
    if status >= 400:
        return contract.OUTCOME_CLIENT_ERROR
    return contract.OUTCOME_OK


class ServiceMetrics:
    """All series of one model-service app.  Nothing here touches the global registry."""

    def __init__(
        self,
        variant: str,
        threads: int,
        simulated_latency_seconds: float,
        meta: ArtifactMeta | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = CollectorRegistry()
        self.variant = variant
        self._queue_depth: Callable[[], int] = lambda: 0
        self.window_max = RollingMax(contract.PROCESSING_MAX_WINDOW_SECONDS, clock)
        reg = self.registry
        self.processing = Histogram(
            contract.MODEL_PROCESSING_SECONDS,
            "Time spent in the /predict handler for requests that reached the model, seconds.",
            [V],
            buckets=contract.LATENCY_BUCKETS,
            registry=reg,
        ).labels(variant)
        self._requests = Counter(
            contract.MODEL_REQUESTS_TOTAL,
            "/predict requests by outcome.",
            [V, contract.LABEL_OUTCOME],
            registry=reg,
        )
        for outcome in OUTCOMES:  # every series exists from the first scrape on
            self._requests.labels(variant, outcome)
        self.in_flight = Gauge(
            contract.MODEL_IN_FLIGHT, "/predict requests being handled right now.", [V], registry=reg
        ).labels(variant)
        Gauge(contract.MODEL_THREADS, "Configured waitress worker threads.", [V], registry=reg).labels(
            variant
        ).set(threads)
        Gauge(
            contract.MODEL_SIMULATED_LATENCY_SECONDS,
            "Emulation knob: blocking wait added to each prediction, seconds (0 = off).",
            [V],
            registry=reg,
        ).labels(variant).set(simulated_latency_seconds)
        Gauge(
            contract.MODEL_QUEUE_DEPTH,
            "Requests waiting in waitress's task queue for a free worker thread.",
            [V],
            registry=reg,
        ).labels(variant).set_function(lambda: float(self._queue_depth()))
        Gauge(
            contract.MODEL_PROCESSING_WINDOW_MAX_SECONDS,
            f"Exact longest /predict processing time of the last "
            f"{contract.PROCESSING_MAX_WINDOW_SECONDS:g} s, seconds.",
            [V],
            registry=reg,
        ).labels(variant).set_function(self.window_max.value)
        info = Info(contract.MODEL_INFO, "The model being served.", [V], registry=reg).labels(variant)
        if meta is not None:
            info.info(
                {
                    "version": meta.version,
                    "sha256": meta.model_sha256,
                    "dataset_sha256": meta.dataset_sha256,
                    "sklearn_version": meta.sklearn_version,
                }
            )

    def bind_queue_depth(self, reader: Callable[[], int]) -> None:
        """Read the task-queue depth from ``reader`` at every scrape (the server binds it)."""
        self._queue_depth = reader

    def count(self, outcome: str) -> None:
        self._requests.labels(self.variant, outcome).inc()

    def observe_processing(self, seconds: float) -> None:
        self.processing.observe(seconds)
        self.window_max.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
