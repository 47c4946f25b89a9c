"""The HTTP API in-process (Flask test client): answers, errors, header, metrics."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

import canarylab_contract as contract
from model_service.api import MAX_BODY_BYTES, MAX_REVIEW_CHARS
from model_service.metrics import ServiceMetrics
from model_service.model import Prediction, SentimentModel
from model_service.server import queue_depth_reader

MakeApp = Callable[..., tuple[Flask, ServiceMetrics]]
JSON = "application/json"


def _predict(app: Flask, body: Any, content_type: str = JSON) -> Any:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return app.test_client().post(contract.PREDICT_PATH, data=data, content_type=content_type)


def _samples(app: Flask) -> dict[str, list[Any]]:
    text = app.test_client().get(contract.METRICS_PATH).get_data(as_text=True)
    families: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            families.setdefault(sample.name, []).append(sample)
    return families


def _value(app: Flask, name: str, **labels: str) -> float:
    matches = [s.value for s in _samples(app)[name] if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(matches) == 1, (name, labels, matches)
    return float(matches[0])


def test_predict_answers_sentiment_confidence_variant_and_version(
    make_app: MakeApp, model: SentimentModel
) -> None:
    app, _ = make_app(variant=contract.CANARY)
    resp = _predict(app, {"review": "Delicious pasta and a friendly, attentive waiter. We loved it."})
    assert resp.status_code == 200
    assert resp.headers[contract.VARIANT_HEADER] == contract.CANARY
    body = resp.get_json()
    assert set(body) == {"sentiment", "confidence", "variant", "model_version"}
    assert (body["sentiment"], body["variant"], body["model_version"]) == (
        "positive",
        contract.CANARY,
        model.version,
    )
    assert 0.5 <= body["confidence"] <= 1.0
    neg = _predict(app, {"review": "Rude staff, cold food and a filthy table."}).get_json()
    assert neg["sentiment"] == "negative"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        ("this is not json", JSON, 400, "not valid JSON"),
        (b"\xff\xfe\x00garbage", JSON, 400, "not valid JSON"),
        ("[" * 60000, JSON, 400, "not valid JSON"),
        ('{"review": "great"}', "text/plain", 415, "Content-Type: application/json"),
        ("review=great", "application/x-www-form-urlencoded", 415, "Content-Type"),
        ({"text": "great"}, JSON, 400, 'missing field "review"'),
        ({"review": 5}, JSON, 400, "must be a string"),
        ({"review": None}, JSON, 400, "must be a string"),
        ({"review": ["great"]}, JSON, 400, "must be a string"),
        ({"review": ""}, JSON, 400, "is empty"),
        ({"review": " \t\n "}, JSON, 400, "is empty"),
        ({"review": "x" * (MAX_REVIEW_CHARS + 1)}, JSON, 400, f"longer than {MAX_REVIEW_CHARS}"),
        (["great"], JSON, 400, "JSON object"),
        ({"review": "y" * (MAX_BODY_BYTES + 10)}, JSON, 413, f"larger than {MAX_BODY_BYTES}"),
    ],
    ids=[
        "not-json",
        "binary",
        "deep-nesting",
        "text-plain",
        "form",
        "no-review",
        "number",
        "null",
        "list",
        "empty",
        "whitespace",
        "too-long",
        "array-body",
        "body-over-64k",
    ],
)
def test_bad_input_gets_4xx_json_error(
    make_app: MakeApp, body: Any, content_type: str, status: int, message: str
) -> None:
    app, _ = make_app()
    resp = _predict(app, body, content_type)
    assert resp.status_code == status
    assert resp.headers[contract.VARIANT_HEADER] == contract.STABLE
    assert resp.is_json
    assert message in resp.get_json()["error"]
    assert "Traceback" not in resp.get_data(as_text=True)


def test_review_of_exactly_the_limit_is_accepted(make_app: MakeApp) -> None:
    app, _ = make_app()
    assert _predict(app, {"review": "good " * (MAX_REVIEW_CHARS // 5)}).status_code == 200


def test_unknown_route_and_method(make_app: MakeApp) -> None:
    app, _ = make_app(variant=contract.CANARY)
    client = app.test_client()
    missing = client.get("/nope")
    assert missing.status_code == 404
    assert missing.get_json() == {"error": "no such path: /nope"}
    assert missing.headers[contract.VARIANT_HEADER] == contract.CANARY
    wrong = client.get(contract.PREDICT_PATH)
    assert wrong.status_code == 405
    assert "POST" in wrong.get_json()["error"]
    assert "POST" in wrong.headers["Allow"]
    assert wrong.headers[contract.VARIANT_HEADER] == contract.CANARY
    assert client.delete(contract.HEALTH_PATH).status_code == 405


def test_unexpected_failure_is_a_500_json_without_traceback(make_app: MakeApp, model: SentimentModel) -> None:
    def explode(_review: str) -> Prediction:
        raise RuntimeError("secret internals")

    broken = SimpleNamespace(meta=model.meta, version=model.version, predict=explode)
    app, _ = make_app(served=broken)
    resp = _predict(app, {"review": "fine"})
    assert resp.status_code == 500
    assert resp.headers[contract.VARIANT_HEADER] == contract.STABLE
    assert resp.get_json() == {"error": "internal error; see the model-service log"}
    assert _value(app, contract.MODEL_REQUESTS_TOTAL, outcome=contract.OUTCOME_SERVER_ERROR) == 1


def test_health_ready_version(make_app: MakeApp, model: SentimentModel) -> None:
    app, _ = make_app(variant=contract.CANARY, threads=16, simulated_latency_ms=25.0)
    client = app.test_client()
    assert client.get(contract.HEALTH_PATH).get_json() == {"status": "ok"}
    ready = client.get(contract.READY_PATH)
    assert ready.status_code == 200
    assert ready.get_json()["model_version"] == model.version
    version = client.get(contract.VERSION_PATH).get_json()
    assert version["variant"] == contract.CANARY
    assert version["threads"] == 16
    assert version["model_version"] == model.version
    assert version["model_sha256"] == model.meta.model_sha256
    assert version["processes"] == 1
    assert version["emulation"] == {
        "simulated_latency_ms": 25.0,
        "cpu_cost_ms": 0.0,
        "cpu_iterations_per_ms": None,
        "distribution": "fixed",
    }

    for path in (contract.HEALTH_PATH, contract.READY_PATH, contract.VERSION_PATH, contract.METRICS_PATH):
        assert client.get(path).headers[contract.VARIANT_HEADER] == contract.CANARY


def test_version_reports_the_cpu_knob_and_its_calibration(make_app: MakeApp) -> None:
    app, _ = make_app(cpu_cost_ms=3.0)
    emulation = app.test_client().get(contract.VERSION_PATH).get_json()["emulation"]
    assert emulation["cpu_cost_ms"] == 3.0
    assert emulation["cpu_iterations_per_ms"] > 0


def test_not_ready_without_a_model(make_app: MakeApp) -> None:
    app, _ = make_app(served=None)
    client = app.test_client()
    assert client.get(contract.HEALTH_PATH).status_code == 200
    assert client.get(contract.READY_PATH).status_code == 503
    resp = _predict(app, {"review": "good"})
    assert resp.status_code == 503
    assert resp.headers[contract.VARIANT_HEADER] == contract.STABLE


def test_metrics_names_labels_and_values(make_app: MakeApp, model: SentimentModel) -> None:
    app, _ = make_app(variant=contract.CANARY, threads=16, simulated_latency_ms=20.0, cpu_cost_ms=2.0)
    resp = app.test_client().get(contract.METRICS_PATH)
    assert resp.status_code == 200
    assert resp.content_type.startswith("text/plain")
    assert _predict(app, {"review": "Lovely!"}).status_code == 200
    assert _predict(app, {"review": ""}).status_code == 400
    samples = _samples(app)
    names = [
        contract.MODEL_PROCESSING_SECONDS + "_bucket",
        contract.MODEL_REQUESTS_TOTAL,
        contract.MODEL_IN_FLIGHT,
        contract.MODEL_THREADS,
        contract.MODEL_SIMULATED_LATENCY_SECONDS,
        contract.MODEL_SIMULATED_CPU_SECONDS,
        contract.MODEL_PROCESSES,
        contract.MODEL_QUEUE_DEPTH,
        contract.MODEL_PROCESSING_WINDOW_MAX_SECONDS,
        contract.MODEL_INFO + "_info",
    ]
    for name in names:
        assert name in samples, f"{name} missing from /metrics"
        assert all(s.labels[contract.LABEL_VARIANT] == contract.CANARY for s in samples[name]), name

    bounds = [float(s.labels["le"]) for s in samples[contract.MODEL_PROCESSING_SECONDS + "_bucket"]]
    assert bounds == [*contract.LATENCY_BUCKETS, float("inf")]
    outcomes = {s.labels[contract.LABEL_OUTCOME]: s.value for s in samples[contract.MODEL_REQUESTS_TOTAL]}
    assert outcomes == {
        contract.OUTCOME_OK: 1,
        contract.OUTCOME_CLIENT_ERROR: 1,
        contract.OUTCOME_SERVER_ERROR: 0,
    }
    # Only the request that reached the model is a processing-time observation.
    assert _value(app, contract.MODEL_PROCESSING_SECONDS + "_count") == 1
    processing = _value(app, contract.MODEL_PROCESSING_SECONDS + "_sum")
    assert processing >= 0.020  # the simulated wait is part of the handler's time
    assert _value(app, contract.MODEL_PROCESSING_WINDOW_MAX_SECONDS) == pytest.approx(processing)
    assert _value(app, contract.MODEL_THREADS) == 16
    assert _value(app, contract.MODEL_SIMULATED_LATENCY_SECONDS) == pytest.approx(0.020)
    assert _value(app, contract.MODEL_SIMULATED_CPU_SECONDS) == pytest.approx(0.002)
    assert _value(app, contract.MODEL_PROCESSES) == 1
    assert _value(app, contract.MODEL_IN_FLIGHT) == 0
    assert _value(app, contract.MODEL_QUEUE_DEPTH) == 0
    info = samples[contract.MODEL_INFO + "_info"][0].labels
    assert (info["version"], info["sha256"]) == (model.version, model.meta.model_sha256)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="the process collector reads /proc (Linux)")
def test_process_cpu_seconds_are_exported_per_variant(make_app: MakeApp) -> None:
    """prometheus_client's process collector, in the app's own registry, labelled with the variant."""
    app, _ = make_app(variant=contract.CANARY, cpu_cost_ms=30.0)
    before = _value(app, contract.MODEL_PROCESS_CPU_SECONDS, variant=contract.CANARY)
    for _ in range(5):
        assert _predict(app, {"review": "fine"}).status_code == 200
    after = _value(app, contract.MODEL_PROCESS_CPU_SECONDS, variant=contract.CANARY)
    # 5 x 30 ms of calibrated CPU; the clock ticks in 10 ms, so ask for well under 150 ms.
    assert after - before >= 0.08, (before, after)
    assert "process_resident_memory_bytes" in _samples(app)


def test_in_flight_counts_the_request_being_handled(make_app: MakeApp, model: SentimentModel) -> None:
    seen: list[float] = []
    holder: dict[str, ServiceMetrics] = {}

    def predict(review: str) -> Prediction:
        seen.append(
            holder["metrics"].registry.get_sample_value(contract.MODEL_IN_FLIGHT, {"variant": "stable"})
        )
        return model.predict(review)

    spy = SimpleNamespace(meta=model.meta, version=model.version, predict=predict)
    app, metrics = make_app(served=spy)
    holder["metrics"] = metrics
    assert _predict(app, {"review": "nice"}).status_code == 200
    assert seen == [1.0]
    assert _value(app, contract.MODEL_IN_FLIGHT) == 0


def test_window_max_uses_the_injected_clock(make_app: MakeApp) -> None:
    now = [100.0]
    app, _ = make_app(clock=lambda: now[0])
    assert _predict(app, {"review": "tasty"}).status_code == 200
    assert _value(app, contract.MODEL_PROCESSING_WINDOW_MAX_SECONDS) > 0
    now[0] += contract.PROCESSING_MAX_WINDOW_SECONDS
    assert _value(app, contract.MODEL_PROCESSING_WINDOW_MAX_SECONDS) == 0


def test_two_apps_in_one_process_keep_separate_metrics(make_app: MakeApp) -> None:
    stable, _ = make_app(variant=contract.STABLE, threads=4)
    canary, _ = make_app(variant=contract.CANARY, threads=16)
    for _ in range(3):
        assert _predict(canary, {"review": "good"}).status_code == 200
    assert _value(stable, contract.MODEL_REQUESTS_TOTAL, outcome="ok") == 0
    assert _value(canary, contract.MODEL_REQUESTS_TOTAL, outcome="ok") == 3
    assert _value(stable, contract.MODEL_THREADS) == 4
    assert _value(canary, contract.MODEL_THREADS) == 16


def test_queue_depth_gauge_reads_the_bound_dispatcher(make_app: MakeApp) -> None:
    dispatcher = SimpleNamespace(
        lock=threading.Lock(), queue=deque(range(7)), threads={0, 1, 2, 3}, stop_count=0, active_count=4
    )
    app, metrics = make_app()
    metrics.bind_queue_depth(queue_depth_reader(dispatcher))
    assert _value(app, contract.MODEL_QUEUE_DEPTH) == 7
    dispatcher.active_count = 1  # three idle threads are about to take three of the tasks
    assert _value(app, contract.MODEL_QUEUE_DEPTH) == 4
    dispatcher.queue.clear()
    assert _value(app, contract.MODEL_QUEUE_DEPTH) == 0
