"""The real ``sentiment-app`` command on 127.0.0.1, against a fake and against the real model-service."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from app_fakes import FakeModelService

import canarylab_contract as contract
from canarylab.procs import ManagedProcess, ProcessGroup, console_script, free_port, wait_http_ok

pytestmark = pytest.mark.integration
StartApp = Callable[..., tuple[ManagedProcess, str]]


@pytest.fixture
def start_app(procs: ProcessGroup, tmp_path: Path, port: int) -> StartApp:
    def start(model_url: str, **env: str) -> tuple[ManagedProcess, str]:
        full_env = {
            "APP_MODEL_SERVICE_URL": model_url,
            "APP_VARIANT": contract.CANARY,
            "APP_HOST": "127.0.0.1",
            "APP_PORT": str(port),
            **env,
        }
        proc = procs.start(
            "sentiment-app", [console_script("sentiment-app")], tmp_path / "app.log", env=full_env
        )
        url = f"http://127.0.0.1:{port}"
        wait_http_ok(url + contract.HEALTH_PATH, timeout=30, process=proc)
        return proc, url

    return start


def test_console_script_serves_the_page_and_the_api(
    start_app: StartApp, fake_model: FakeModelService
) -> None:
    _, url = start_app(fake_model.url)
    page = requests.get(url + "/", timeout=5)
    assert page.status_code == 200
    assert 'id="review-form"' in page.text
    resp = requests.post(
        url + contract.APP_API_PATH,
        json={"review": "Lovely"},
        headers={contract.VARIANT_HEADER: contract.CANARY},
        timeout=5,
    )
    assert resp.status_code == 200
    assert resp.json()["sentiment"] == "positive"
    assert resp.headers[contract.VARIANT_HEADER] == contract.CANARY
    assert fake_model.requests[0]["headers"][contract.VARIANT_HEADER] == contract.CANARY
    metrics = requests.get(url + contract.METRICS_PATH, timeout=5).text
    assert f'{contract.APP_REQUESTS_TOTAL}{{outcome="ok",variant="canary"}} 1.0' in metrics
    assert requests.get(url + contract.READY_PATH, timeout=5).status_code == 200


def test_app_calls_the_model_service_concurrently(start_app: StartApp, fake_model: FakeModelService) -> None:
    """The app is not the bottleneck: with enough threads, slow calls overlap instead of queueing."""
    fake_model.delay = 0.5
    calls = 8
    _, url = start_app(fake_model.url, APP_THREADS=str(calls))

    def one(_: int) -> int:
        return requests.post(url + contract.APP_API_PATH, json={"review": "hmm"}, timeout=30).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(calls) as pool:
        statuses = list(pool.map(one, range(calls)))
    elapsed = time.monotonic() - started
    assert statuses == [200] * calls
    serial = calls * fake_model.delay
    assert elapsed < serial / 2, (
        f"{calls} calls of {fake_model.delay}s took {elapsed:.2f}s: they did not overlap"
    )


def test_bad_settings_exit_2_with_what_to_set(tmp_path: Path) -> None:
    result = subprocess.run(
        [console_script("sentiment-app")],
        env={"PATH": "/usr/bin:/bin", "APP_PORT": "nope"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2
    assert "APP_MODEL_SERVICE_URL is required" in result.stderr
    assert "APP_PORT='nope'" in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_a_clear_error(start_app: StartApp, fake_model: FakeModelService, port: int) -> None:
    start_app(fake_model.url)
    result = subprocess.run(
        [console_script("sentiment-app")],
        env={
            "PATH": "/usr/bin:/bin",
            "APP_MODEL_SERVICE_URL": fake_model.url,
            "APP_VARIANT": contract.STABLE,
            "APP_PORT": str(port),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_sigterm_stops_the_app_cleanly(start_app: StartApp, fake_model: FakeModelService) -> None:
    """A container stops its PID 1 with SIGTERM, which only a handler turns into a clean exit."""
    proc, _ = start_app(fake_model.url)
    proc.popen.send_signal(signal.SIGTERM)
    assert proc.popen.wait(timeout=30) == 0


def test_app_against_the_real_model_service(
    procs: ProcessGroup, tmp_path: Path, trained_model_dir: Path, start_app: StartApp
) -> None:
    model_port = free_port()
    model = procs.start(
        "model-service",
        [console_script("model-service"), "serve"],
        tmp_path / "model-service.log",
        env={
            "MODEL_SERVICE_MODEL_DIR": str(trained_model_dir),
            "MODEL_SERVICE_HOST": "127.0.0.1",
            "MODEL_SERVICE_PORT": str(model_port),
            "MODEL_SERVICE_METRICS_PORT": str(free_port()),
            "MODEL_SERVICE_VARIANT": contract.CANARY,
            "MODEL_SERVICE_THREADS": "2",
        },
    )
    model_url = f"http://127.0.0.1:{model_port}"
    wait_http_ok(model_url + contract.READY_PATH, timeout=60, process=model)
    _, url = start_app(model_url)

    examples = (("Wonderful food, friendly staff.", "positive"), ("Awful, cold and rude.", "negative"))
    for review, expected in examples:
        resp = requests.post(
            url + contract.APP_API_PATH,
            json={"review": review},
            headers={contract.VARIANT_HEADER: contract.CANARY},
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        answer = resp.json()
        assert set(answer) == {"sentiment", "confidence", "variant", "model_version"}
        assert answer["sentiment"] == expected
        assert answer["variant"] == contract.CANARY
        assert resp.headers[contract.VARIANT_HEADER] == contract.CANARY
    assert requests.get(url + contract.READY_PATH, timeout=5).status_code == 200

    # The app rejects what the model-service rejects, with the same status, before forwarding.
    for bad in ({"review": "x" * 5001}, {"review": ""}, {"review": 3}, {"text": "x"}, ["x"]):
        direct = requests.post(model_url + contract.PREDICT_PATH, json=bad, timeout=30)
        via_app = requests.post(url + contract.APP_API_PATH, json=bad, timeout=30)
        assert via_app.status_code == direct.status_code, (bad, direct.text, via_app.text)
    oversized = b'{"review": "' + b"x" * (64 * 1024) + b'"}'
    for body, content_type, status in (
        (oversized, "application/json", 413),
        (b'{"review": "x"}', "text/plain", 415),
    ):
        headers = {"Content-Type": content_type}
        direct = requests.post(model_url + contract.PREDICT_PATH, data=body, headers=headers, timeout=30)
        via_app = requests.post(url + contract.APP_API_PATH, data=body, headers=headers, timeout=30)
        assert via_app.status_code == direct.status_code == status

    model.stop()
    down = requests.post(url + contract.APP_API_PATH, json={"review": "still there?"}, timeout=30)
    assert down.status_code == 503
    metrics = requests.get(url + contract.METRICS_PATH, timeout=5).text
    assert f'{contract.APP_MODEL_RESPONSE_SECONDS}_count{{variant="{contract.CANARY}"}} 3.0' in metrics
    unavailable = f'{contract.APP_MODEL_ERRORS_TOTAL}{{reason="unavailable",variant="{contract.CANARY}"}} 1.0'
    assert unavailable in metrics


def test_chunked_oversized_body_is_413(start_app: StartApp, fake_model: FakeModelService) -> None:
    _, url = start_app(fake_model.url)

    def body() -> Iterator[bytes]:
        yield b'{"review": "'
        for _ in range(80):
            yield b"x" * 1024
        yield b'"}'

    resp = requests.post(
        url + contract.APP_API_PATH, data=body(), headers={"Content-Type": "application/json"}, timeout=30
    )
    assert resp.status_code == 413
    assert resp.json()["error"] == "payload_too_large"
    assert fake_model.requests == []
