"""The HTTP API (Flask): /predict, /healthz, /readyz, /version, /metrics.

Every response, errors and 404s included, carries the contract's variant
header.  Bad input gets a 4xx JSON ``{"error": ...}``; nothing gets a stack trace.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Final

from flask import Flask, Response, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.exceptions import HTTPException, MethodNotAllowed

import canarylab_contract as contract
from model_service import __version__
from model_service.cpu import CpuCost
from model_service.emulation import Draws
from model_service.metrics import ServiceMetrics, outcome_for
from model_service.model import SentimentModel
from model_service.settings import Settings

#: Largest accepted request body; larger ones get 413 (the contract's, shared with the app).
MAX_BODY_BYTES: Final = contract.MAX_BODY_BYTES
#: Longest accepted review, in characters (the contract's, shared with the app).
MAX_REVIEW_CHARS: Final = contract.MAX_REVIEW_CHARS

log = logging.getLogger("model_service.access")
errors_log = logging.getLogger("model_service.errors")


class ClientError(Exception):
    """A request the client must fix: answered with ``status`` and the message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ServiceState:
    settings: Settings
    metrics: ServiceMetrics
    model: SentimentModel | None
    #: The CPU-cost knob, calibrated at start (off unless the settings turn it on).
    cpu: CpuCost = field(default_factory=lambda: CpuCost(0.0, None))
    #: Each request's draw of the knobs (emulation.py); made per process, after any fork.
    draws: Draws | None = None


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify(error=message), status


def _parse_review() -> str:
    if not request.is_json:
        raise ClientError(415, "send the review as JSON with Content-Type: application/json")
    raw = request.get_data(cache=True)  # over MAX_CONTENT_LENGTH: werkzeug raises 413
    try:
        body: Any = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: absurd nesting
        raise ClientError(400, 'the body is not valid JSON; send {"review": "..."}') from None
    if not isinstance(body, dict):
        raise ClientError(400, 'the body must be a JSON object: {"review": "..."}')
    if "review" not in body:
        raise ClientError(400, 'missing field "review"')
    review = body["review"]
    if not isinstance(review, str):
        raise ClientError(400, 'field "review" must be a string')
    if not review.strip():
        raise ClientError(400, 'field "review" is empty')
    if len(review) > MAX_REVIEW_CHARS:
        raise ClientError(400, f'field "review" is longer than {MAX_REVIEW_CHARS} characters')
    return review


def create_app(state: ServiceState) -> Flask:
    """A Flask app serving ``state``; several can live in one process (no global state)."""
    app = Flask("model_service")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    _register_hooks(app, state)
    _register_error_handlers(app)
    _register_routes(app, state)
    return app


def _register_hooks(app: Flask, state: ServiceState) -> None:
    settings, metrics = state.settings, state.metrics

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        if request.path == contract.PREDICT_PATH:
            metrics.in_flight.inc()
            g.in_flight = True

    @app.after_request
    def _finish(response: Response) -> Response:
        response.headers[contract.VARIANT_HEADER] = settings.variant
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        if request.path == contract.PREDICT_PATH:
            outcome = outcome_for(response.status_code)
            metrics.count(outcome)
            if outcome != contract.OUTCOME_CLIENT_ERROR:
                metrics.observe_processing(elapsed)
        level = logging.WARNING if response.status_code >= 500 else logging.DEBUG
        if log.isEnabledFor(level):
            log.log(
                level,
                "method=%s path=%s status=%d ms=%.1f",
                request.method,
                request.path,
                response.status_code,
                elapsed * 1000,
            )
        return response

    @app.teardown_request
    def _teardown(_exc: BaseException | None) -> None:
        if g.pop("in_flight", False):
            metrics.in_flight.dec()


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ClientError)
    def _client_error(err: ClientError) -> tuple[Response, int]:
        return _error(err.status, err.message)

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Response:
        status = err.code or 500
        if isinstance(err, MethodNotAllowed):
            allowed = sorted(m for m in err.valid_methods or () if m not in {"HEAD", "OPTIONS"})
            message = f"method {request.method} is not allowed on {request.path}; use {', '.join(allowed)}"
        elif status == 404:
            message = f"no such path: {request.path}"
        elif status == 413:
            message = f"request body is larger than {MAX_BODY_BYTES} bytes"
        else:
            message = err.description or err.name
        response = jsonify(error=message)
        response.status_code = status
        for name in ("Allow", "Retry-After"):
            value = err.get_response().headers.get(name)
            if value:
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _server_error(err: Exception) -> tuple[Response, int]:
        errors_log.error("unhandled error on %s %s", request.method, request.path, exc_info=err)
        return _error(500, "internal error; see the model-service log")


def _register_routes(app: Flask, state: ServiceState) -> None:
    settings, metrics = state.settings, state.metrics
    draws = state.draws or Draws(settings.emulation_distribution)

    @app.post(contract.PREDICT_PATH)
    def predict() -> Response | tuple[Response, int]:
        review = _parse_review()
        if state.model is None:
            return _error(503, "the model is not loaded yet")
        if settings.simulated_latency_ms > 0:
            # Emulation: an I/O-like wait that holds this server thread (see docs/model-service.md).
            time.sleep(settings.simulated_latency_seconds * draws.factor())
        # Emulation: CPU work that holds the GIL, like CPU-bound inference (model_service/cpu.py).
        state.cpu.spend(draws.factor() if state.cpu.iterations else 1.0)
        result = state.model.predict(review)
        return jsonify(
            sentiment=result.sentiment,
            confidence=result.confidence,
            variant=settings.variant,
            model_version=state.model.version,
        )

    @app.get(contract.HEALTH_PATH)
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.get(contract.READY_PATH)
    def readyz() -> Response | tuple[Response, int]:
        if state.model is None:
            return jsonify(status="not ready", reason="the model is not loaded"), 503
        return jsonify(status="ready", model_version=state.model.version)

    @app.get(contract.VERSION_PATH)
    def version() -> Response:
        meta = state.model.meta if state.model else None
        calibration = state.cpu.calibration
        return jsonify(
            service="canarylab-model-service",
            service_version=__version__,
            variant=settings.variant,
            threads=settings.threads,
            processes=settings.processes,
            model_version=meta.version if meta else None,
            model_sha256=meta.model_sha256 if meta else None,
            model_accuracy=meta.accuracy if meta else None,
            dataset_sha256=meta.dataset_sha256 if meta else None,
            emulation={
                "simulated_latency_ms": settings.simulated_latency_ms,
                "cpu_cost_ms": settings.cpu_cost_ms,
                "cpu_iterations_per_ms": calibration.iterations_per_ms if calibration else None,
                "distribution": settings.emulation_distribution,
            },
        )

    @app.get(contract.METRICS_PATH)
    def metrics_endpoint() -> Response:
        return Response(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
