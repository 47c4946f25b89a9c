"""/api/sentiment against a fake model-service: pass-through, header pinning, and every failure mode."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from app_fakes import FakeModelService
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

import canarylab_contract as contract
from canarylab.procs import free_port
from sentiment_app.validation import MAX_BODY_BYTES

API = contract.APP_API_PATH


def samples(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, keyed by (name, sorted labels)."""
    text = client.get(contract.METRICS_PATH).get_data(as_text=True)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def requests_total(client: FlaskClient, outcome: str) -> float:
    key = (
        contract.APP_REQUESTS_TOTAL,
        ((contract.LABEL_OUTCOME, outcome), (contract.LABEL_VARIANT, contract.CANARY)),
    )
    return samples(client)[key]


def model_errors(client: FlaskClient, reason: str) -> float:
    key = (
        contract.APP_MODEL_ERRORS_TOTAL,
        ((contract.LABEL_REASON, reason), (contract.LABEL_VARIANT, contract.CANARY)),
    )
    return samples(client)[key]


def response_count(client: FlaskClient) -> float:
    key = (contract.APP_MODEL_RESPONSE_SECONDS + "_count", ((contract.LABEL_VARIANT, contract.CANARY),))
    return samples(client)[key]


def response_sum(client: FlaskClient) -> float:
    key = (contract.APP_MODEL_RESPONSE_SECONDS + "_sum", ((contract.LABEL_VARIANT, contract.CANARY),))
    return samples(client)[key]


def test_answer_is_the_model_json_with_the_variant_header(
    client: FlaskClient, fake_model: FakeModelService
) -> None:
    fake_model.body = (
        b'{"sentiment": "negative", "confidence": 0.75, "variant": "stable", "model_version": "v9"}'
    )
    resp = client.post(API, json={"review": "Broke after a day."})
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    assert resp.get_data() == fake_model.body
    assert resp.headers[contract.VARIANT_HEADER] == contract.CANARY
    assert fake_model.requests[0]["json"] == {"review": "Broke after a day."}
    assert requests_total(client, contract.OUTCOME_OK) == 1
    assert response_count(client) == 1


def test_pinning_header_is_forwarded_only_when_present(
    client: FlaskClient, fake_model: FakeModelService
) -> None:
    client.post(API, json={"review": "fine"}, headers={contract.VARIANT_HEADER: contract.STABLE})
    client.post(API, json={"review": "fine"}, headers={"x-request-id": "abc-123"})
    pinned, unpinned = fake_model.requests
    assert pinned["headers"][contract.VARIANT_HEADER] == contract.STABLE
    assert contract.VARIANT_HEADER not in unpinned["headers"]
    assert unpinned["headers"]["x-request-id"] == "abc-123"


def test_latency_of_the_call_is_recorded(client: FlaskClient, fake_model: FakeModelService) -> None:
    fake_model.delay = 0.3
    assert client.post(API, json={"review": "slowish"}).status_code == 200
    assert response_count(client) == 1
    assert response_sum(client) >= 0.3


def test_model_service_down_is_503_json(make_app: Callable[..., Flask]) -> None:
    client = make_app(f"http://127.0.0.1:{free_port()}").test_client()
    resp = client.post(API, json={"review": "anyone there?"})
    assert resp.status_code == 503
    assert resp.get_json()["error"] == "model_service_unavailable"
    assert "unavailable" in resp.get_json()["message"]
    assert resp.headers[contract.VARIANT_HEADER] == contract.CANARY
    assert model_errors(client, "unavailable") == 1
    assert requests_total(client, contract.OUTCOME_SERVER_ERROR) == 1
    assert response_count(client) == 1, "failed calls are latencies too"


def test_slow_model_service_is_504_after_the_timeout_not_a_hang(
    make_app: Callable[..., Flask], fake_model: FakeModelService
) -> None:
    fake_model.delay = 5.0
    client = make_app(fake_model.url, model_timeout_seconds=0.5).test_client()
    started = time.monotonic()
    resp = client.post(API, json={"review": "tick tock"})
    elapsed = time.monotonic() - started
    assert resp.status_code == 504
    assert resp.get_json()["error"] == "model_service_timeout"
    assert "0.5 s" in resp.get_json()["message"]
    assert elapsed < fake_model.delay
    assert model_errors(client, "timeout") == 1
    assert response_sum(client) >= 0.5


@pytest.mark.parametrize("status", [500, 503])
def test_model_service_5xx_is_502_json(
    client: FlaskClient, fake_model: FakeModelService, status: int
) -> None:
    fake_model.status = status
    fake_model.body = b'{"error": "boom"}'
    resp = client.post(API, json={"review": "x"})
    assert resp.status_code == 502
    assert resp.get_json() == {
        "error": "model_service_bad_status",
        "message": f"the model-service answered HTTP {status}",
    }
    assert model_errors(client, "bad_status") == 1


def test_model_service_non_json_answer_is_502(client: FlaskClient, fake_model: FakeModelService) -> None:
    fake_model.body = b"<html>proxy page</html>"
    fake_model.content_type = "text/html"
    resp = client.post(API, json={"review": "x"})
    assert resp.status_code == 502
    assert "without a JSON object" in resp.get_json()["message"]


def test_model_service_absurd_json_is_502(client: FlaskClient, fake_model: FakeModelService) -> None:
    fake_model.body = b"[" * 100_000 + b"]" * 100_000
    resp = client.post(API, json={"review": "x"})
    assert resp.status_code == 502
    assert model_errors(client, "bad_status") == 1


def test_model_service_4xx_passes_through(client: FlaskClient, fake_model: FakeModelService) -> None:
    fake_model.status = 422
    fake_model.body = b'{"error": "invalid_request", "message": "review too odd"}'
    resp = client.post(API, json={"review": "x"})
    assert resp.status_code == 422
    assert resp.get_data() == fake_model.body
    assert requests_total(client, contract.OUTCOME_CLIENT_ERROR) == 1
    assert all(model_errors(client, r) == 0 for r in ("timeout", "unavailable", "bad_status"))


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b'{"text": "wrong field"}', b'{"review": ""}', b'{"review": null}'],
)
def test_bad_input_is_400_json_and_never_forwarded(
    client: FlaskClient, fake_model: FakeModelService, body: bytes
) -> None:
    resp = client.post(API, data=body, content_type="application/json")
    assert resp.status_code == 400
    assert resp.get_json()["error"] == "invalid_request"
    assert fake_model.requests == []
    assert requests_total(client, contract.OUTCOME_CLIENT_ERROR) == 1
    assert response_count(client) == 0


def test_body_that_is_not_declared_json_is_415(client: FlaskClient, fake_model: FakeModelService) -> None:
    resp = client.post(API, data='{"review": "fine"}', content_type="text/plain")
    assert resp.status_code == 415
    assert "Content-Type: application/json" in resp.get_json()["message"]
    assert fake_model.requests == []
    assert requests_total(client, contract.OUTCOME_CLIENT_ERROR) == 1


def test_oversized_body_is_413_json(client: FlaskClient, fake_model: FakeModelService) -> None:
    body = json.dumps({"review": "a" * (MAX_BODY_BYTES + 10)})
    resp = client.post(API, data=body, content_type="application/json")
    assert resp.status_code == 413
    assert resp.get_json()["error"] == "payload_too_large"
    assert fake_model.requests == []


def test_unknown_route_and_wrong_method_are_json(client: FlaskClient) -> None:
    missing = client.get("/no/such/page")
    assert missing.status_code == 404
    assert missing.get_json()["error"] == "not_found"
    assert missing.headers[contract.VARIANT_HEADER] == contract.CANARY
    wrong = client.get(API)
    assert wrong.status_code == 405
    assert wrong.get_json()["error"] == "method_not_allowed"
    assert "POST" in wrong.headers["Allow"]
    assert wrong.headers[contract.VARIANT_HEADER] == contract.CANARY


def test_unexpected_error_is_500_json_without_traceback(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = client.application.extensions["sentiment_app"]

    def explode(*_args: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(state.client, "predict", explode)
    resp = client.post(API, json={"review": "x"})
    assert resp.status_code == 500
    assert resp.get_json()["error"] == "internal_error"
    text = resp.get_data(as_text=True)
    assert "Traceback" not in text
    assert "secret internals" not in text
    assert resp.headers[contract.VARIANT_HEADER] == contract.CANARY


def test_health_and_readiness_follow_the_model_service(
    client: FlaskClient, fake_model: FakeModelService, make_app: Callable[..., Flask]
) -> None:
    assert client.get(contract.HEALTH_PATH).status_code == 200
    client.application.extensions["sentiment_app"].readiness.clock = lambda: 0.0  # time stands still
    ready = client.get(contract.READY_PATH)
    assert ready.status_code == 200
    assert ready.get_json()["ready"] is True
    client.get(contract.READY_PATH)
    assert fake_model.ready_calls == 1, "readiness is cached"

    fake_model.ready_status = 503
    not_ready_app = make_app(fake_model.url).test_client()
    resp = not_ready_app.get(contract.READY_PATH)
    assert resp.status_code == 503
    assert "HTTP 503" in resp.get_json()["detail"]
    down = make_app(f"http://127.0.0.1:{free_port()}").test_client()
    assert down.get(contract.READY_PATH).status_code == 503
    assert down.get(contract.HEALTH_PATH).status_code == 200, "the process itself is fine"
