"""The app's Prometheus metrics, in a registry of its own (one per app instance, no global state)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest

import canarylab_contract as contract


class ErrorReason(StrEnum):
    """Why a call to the model-service failed (the ``reason`` label of APP_MODEL_ERRORS_TOTAL)."""

    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    BAD_STATUS = "bad_status"


OUTCOMES = (contract.OUTCOME_OK, contract.OUTCOME_CLIENT_ERROR, contract.OUTCOME_SERVER_ERROR)


def outcome_of(status: int) -> str:
    """The contract outcome of an HTTP status the app answered with."""
    if status >= 500:
        return contract.OUTCOME_SERVER_ERROR
    if status >= 400:
        return contract.OUTCOME_CLIENT_ERROR
    return contract.OUTCOME_OK


@dataclass
class AppMetrics:
    """What the experiment reads from the app, all labelled with this app's variant."""

    variant: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.model_response_seconds = Histogram(
            contract.APP_MODEL_RESPONSE_SECONDS,
            "Model-service response time as the app sees it (wall time of the call, queueing included).",
            [contract.LABEL_VARIANT],
            buckets=contract.LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests_total = Counter(
            contract.APP_REQUESTS_TOTAL,
            f"{contract.APP_API_PATH} requests by outcome.",
            [contract.LABEL_VARIANT, contract.LABEL_OUTCOME],
            registry=self.registry,
        )
        self.model_errors_total = Counter(
            contract.APP_MODEL_ERRORS_TOTAL,
            "Failed calls to the model-service, by reason.",
            [contract.LABEL_VARIANT, contract.LABEL_REASON],
            registry=self.registry,
        )
        ProcessCollector(registry=self.registry)
        # Every series exists from the start at 0, so rate() and ratios work before the first error.
        self.model_response_seconds.labels(self.variant)
        for outcome in OUTCOMES:
            self.requests_total.labels(self.variant, outcome)
        for reason in ErrorReason:
            self.model_errors_total.labels(self.variant, reason.value)

    def observe_model_call(self, seconds: float) -> None:
        self.model_response_seconds.labels(self.variant).observe(seconds)

    def count_request(self, status: int) -> None:
        self.requests_total.labels(self.variant, outcome_of(status)).inc()

    def count_model_error(self, reason: ErrorReason) -> None:
        self.model_errors_total.labels(self.variant, reason.value).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
