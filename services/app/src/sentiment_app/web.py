"""The Flask application: the review page, the JSON API, probes and metrics."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from flask import Flask, Response, render_template, request
from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

import canarylab_contract as contract
from sentiment_app import __version__
from sentiment_app.metrics import AppMetrics
from sentiment_app.readiness import CachedReadiness
from sentiment_app.settings import Settings
from sentiment_app.upstream import ModelFailure, ModelServiceClient
from sentiment_app.validation import MAX_BODY_BYTES, MAX_REVIEW_CHARS, InvalidRequestError, parse_review

log = logging.getLogger(__name__)

#: How long /readyz waits for the model-service's /readyz, and how long its answer is reused.
READY_TIMEOUT_SECONDS = 0.5
READY_CACHE_SECONDS = 1.0
STATE_KEY = "sentiment_app"


@dataclass
class AppState:
    """The per-app parts the views share; kept in ``app.extensions``, never in module globals."""

    settings: Settings
    metrics: AppMetrics
    client: ModelServiceClient
    readiness: CachedReadiness


def json_response(payload: object, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")


def error_response(status: int, error: str, message: str) -> Response:
    return json_response({"error": error, "message": message}, status)


def create_app(settings: Settings) -> Flask:
    """A new, independent app (its own metrics registry and HTTP session) for ``settings``."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    client = ModelServiceClient(
        settings.model_service_url, settings.model_timeout_seconds, pool_size=settings.threads + 1
    )
    state = AppState(
        settings=settings,
        metrics=AppMetrics(settings.variant),
        client=client,
        readiness=CachedReadiness(lambda: client.ready(READY_TIMEOUT_SECONDS), READY_CACHE_SECONDS),
    )
    app.extensions[STATE_KEY] = state
    _add_routes(app, state)
    _add_error_handlers(app)

    @app.after_request
    def tag_variant(response: Response) -> Response:
        response.headers[contract.VARIANT_HEADER] = settings.variant
        return response

    return app


def _add_routes(app: Flask, state: AppState) -> None:
    settings, metrics = state.settings, state.metrics

    @app.get("/")
    def page() -> str:
        return render_template(
            "index.html",
            api_path=contract.APP_API_PATH,
            variant=settings.variant,
            max_chars=MAX_REVIEW_CHARS,
        )

    @app.post(contract.APP_API_PATH)
    def sentiment() -> Response:
        response = _answer_review(state)
        metrics.count_request(response.status_code)
        return response

    @app.get(contract.HEALTH_PATH)
    def healthz() -> Response:
        return json_response({"status": "ok", "variant": settings.variant})

    @app.get(contract.READY_PATH)
    def readyz() -> Response:
        ready = state.readiness.get()
        return json_response({"ready": ready.ready, "detail": ready.detail}, 200 if ready.ready else 503)

    @app.get(contract.VERSION_PATH)
    def version() -> Response:
        return json_response({"app_version": __version__, "variant": settings.variant})

    @app.get(contract.METRICS_PATH)
    def metrics_endpoint() -> Response:
        return Response(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)


def _answer_review(state: AppState) -> Response:
    if not request.is_json:
        return error_response(
            415, "unsupported_media_type", "send the review as JSON with Content-Type: application/json"
        )
    try:
        review = parse_review(request.get_data(cache=False))
    except RequestEntityTooLarge:
        return error_response(413, "payload_too_large", f"request body is larger than {MAX_BODY_BYTES} bytes")
    except InvalidRequestError as err:
        return error_response(err.status, "invalid_request", err.message)
    result = state.client.predict(review, {k.lower(): v for k, v in request.headers.items()})
    state.metrics.observe_model_call(result.seconds)
    if isinstance(result, ModelFailure):
        state.metrics.count_model_error(result.reason)
        log.warning("model-service call failed: %s", result.message)
        return error_response(result.status, f"model_service_{result.reason.value}", result.message)
    return Response(result.body, status=result.status, mimetype="application/json")


def _add_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> Response:
        status = err.code or 500
        response = error_response(status, _snake(err.name), err.description or err.name)
        if isinstance(err, MethodNotAllowed) and err.valid_methods:
            response.headers["Allow"] = ", ".join(err.valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected_error(err: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "the app failed unexpectedly; see its log")


def _snake(name: str) -> str:
    return name.lower().replace(" ", "_")
