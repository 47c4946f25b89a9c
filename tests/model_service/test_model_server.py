"""The real ``model-service serve`` on 127.0.0.1: endpoints, header, errors, metrics,
start-up failures, shutdown, and the silenced waitress queue log."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from model_service_support import StartServer
from prometheus_client.parser import text_string_to_metric_families

import canarylab_contract as contract
from canarylab.procs import console_script, free_port, port_in_use
from model_service.api import MAX_BODY_BYTES, MAX_REVIEW_CHARS

pytestmark = pytest.mark.integration


def _metric(base: str, name: str, **labels: str) -> float:
    text = requests.get(base + contract.METRICS_PATH, timeout=30).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    raise AssertionError(f"{name}{labels} not in /metrics")


def _chunked_oversized_body() -> Iterator[bytes]:
    """A body without Content-Length (chunked): the limit must hold while reading it."""
    yield b'{"review": "'
    for _ in range(MAX_BODY_BYTES // 1000 + 10):
        yield b"a" * 1000
    yield b'"}'


def test_every_endpoint_over_http(start_server: StartServer, port: int) -> None:
    metrics_port = free_port()
    _, base = start_server(
        port,
        MODEL_SERVICE_METRICS_PORT=str(metrics_port),
        MODEL_SERVICE_VARIANT=contract.CANARY,
        MODEL_SERVICE_THREADS="16",
        MODEL_SERVICE_SIMULATED_LATENCY_MS="5",
    )
    with requests.Session() as http:
        ok = http.post(
            base + contract.PREDICT_PATH, json={"review": "Lovely dinner, great service."}, timeout=10
        )
        assert ok.status_code == 200
        assert ok.headers[contract.VARIANT_HEADER] == contract.CANARY
        body = ok.json()
        assert body["sentiment"] == "positive"
        assert body["variant"] == contract.CANARY

        version = http.get(base + contract.VERSION_PATH, timeout=10)
        assert version.json()["threads"] == 16
        assert version.json()["model_version"] == body["model_version"]
        assert version.json()["emulation"] == {
            "simulated_latency_ms": 5.0,
            "cpu_cost_ms": 0.0,
            "cpu_iterations_per_ms": None,
            "distribution": "fixed",
        }
        assert version.json()["processes"] == 1
        for path in (contract.HEALTH_PATH, contract.READY_PATH, contract.VERSION_PATH, contract.METRICS_PATH):
            resp = http.get(base + path, timeout=10)
            assert resp.status_code == 200, path
            assert resp.headers[contract.VARIANT_HEADER] == contract.CANARY, path
        assert http.get(base + contract.READY_PATH, timeout=10).json()["status"] == "ready"

        predict = base + contract.PREDICT_PATH
        as_json, as_text = {"Content-Type": "application/json"}, {"Content-Type": "text/plain"}
        bad = [
            (http.post(predict, data="{oops", headers=as_json, timeout=10), 400),
            (http.post(predict, data='{"review": "x"}', headers=as_text, timeout=10), 415),
            (http.post(predict, json={}, timeout=10), 400),
            (http.post(predict, json={"review": 42}, timeout=10), 400),
            (http.post(predict, json={"review": "   "}, timeout=10), 400),
            (http.post(predict, json={"review": "a" * (MAX_REVIEW_CHARS + 1)}, timeout=10), 400),
            (http.post(predict, json={"review": "a" * (MAX_BODY_BYTES + 1000)}, timeout=10), 413),
            (http.post(predict, data=_chunked_oversized_body(), headers=as_json, timeout=10), 413),
            (http.get(base + "/no/such/route", timeout=10), 404),
            (http.get(predict, timeout=10), 405),
            (http.put(base + contract.VERSION_PATH, timeout=10), 405),
        ]
        for resp, status in bad:
            assert resp.status_code == status, (resp.request.method, resp.request.url, resp.text)
            assert resp.headers[contract.VARIANT_HEADER] == contract.CANARY
            assert set(resp.json()) == {"error"}
            assert "Traceback" not in resp.text

    labels = {contract.LABEL_VARIANT: contract.CANARY}
    assert _metric(base, contract.MODEL_REQUESTS_TOTAL, outcome=contract.OUTCOME_OK, **labels) == 1
    # Every bad /predict above; the 404 and the PUT /version are not /predict requests.
    assert _metric(base, contract.MODEL_REQUESTS_TOTAL, outcome=contract.OUTCOME_CLIENT_ERROR, **labels) == 9
    assert _metric(base, contract.MODEL_PROCESSING_SECONDS + "_count", **labels) == 1
    assert _metric(base, contract.MODEL_THREADS, **labels) == 16
    assert _metric(base, contract.MODEL_SIMULATED_LATENCY_SECONDS, **labels) == pytest.approx(0.005)
    assert _metric(base, contract.MODEL_PROCESSING_WINDOW_MAX_SECONDS, **labels) >= 0.005
    assert _metric(base, contract.MODEL_INFO + "_info", version=body["model_version"], **labels) == 1
    # The metrics port serves the same registry.
    metrics_base = f"http://127.0.0.1:{metrics_port}"
    assert _metric(metrics_base, contract.MODEL_REQUESTS_TOTAL, outcome=contract.OUTCOME_OK, **labels) == 1
    assert _metric(metrics_base, contract.MODEL_THREADS, **labels) == 16


def _run_serve(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [console_script("model-service"), "serve"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MODEL_SERVICE_THREADS", "lots"),
        ("MODEL_SERVICE_THREADS", "0"),
        ("MODEL_SERVICE_VARIANT", "green"),
        ("MODEL_SERVICE_PORT", "99999"),
        ("MODEL_SERVICE_METRICS_PORT", "0"),
        ("MODEL_SERVICE_SIMULATED_LATENCY_MS", "-5"),
        ("MODEL_SERVICE_HOST", "bad host"),
        ("MODEL_SERVICE_CPU_COST_MS", "lots"),
        ("MODEL_SERVICE_PROCESSES", "0"),
    ],
)
def test_bad_setting_exits_2_with_a_message_and_no_traceback(
    trained_model_dir: Path, port: int, name: str, value: str
) -> None:
    env = {"MODEL_SERVICE_MODEL_DIR": str(trained_model_dir), "MODEL_SERVICE_PORT": str(port), name: value}
    done = _run_serve(env)
    assert done.returncode == 2, done.stderr
    assert f"{name}={value!r} is not valid" in done.stderr
    assert "->" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_missing_model_dir_exits_2_naming_the_train_command() -> None:
    done = _run_serve({})
    assert done.returncode == 2
    assert "MODEL_SERVICE_MODEL_DIR" in done.stderr
    assert "model-service train --out DIR" in done.stderr
    assert "Traceback" not in done.stderr


def test_corrupt_artifact_stops_the_start(trained_model_dir: Path, tmp_path: Path, port: int) -> None:
    broken = tmp_path / "model"
    shutil.copytree(trained_model_dir, broken)
    with (broken / "model.joblib").open("r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00garbage\x00")
    done = _run_serve({"MODEL_SERVICE_MODEL_DIR": str(broken), "MODEL_SERVICE_PORT": str(port)})
    assert done.returncode != 0
    assert "sha256" in done.stderr
    assert f"model-service train --out {broken}" in done.stderr
    assert "Traceback" not in done.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    done = _run_serve({"MODEL_SERVICE_MODEL_DIR": str(empty), "MODEL_SERVICE_PORT": str(port)})
    assert done.returncode != 0
    assert f"model-service train --out {empty}" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def test_port_in_use_is_reported(trained_model_dir: Path, busy_port: int) -> None:
    done = _run_serve(
        {"MODEL_SERVICE_MODEL_DIR": str(trained_model_dir), "MODEL_SERVICE_PORT": str(busy_port)}
    )
    assert done.returncode != 0
    assert "in use" in done.stderr
    assert "Traceback" not in done.stderr


def test_metrics_port_in_use_is_reported(trained_model_dir: Path, busy_port: int, port: int) -> None:
    done = _run_serve(
        {
            "MODEL_SERVICE_MODEL_DIR": str(trained_model_dir),
            "MODEL_SERVICE_PORT": str(port),
            "MODEL_SERVICE_METRICS_PORT": str(busy_port),
        }
    )
    assert done.returncode != 0
    assert f"cannot listen on 127.0.0.1:{busy_port} for the metrics: the port is in use" in done.stderr
    assert "MODEL_SERVICE_METRICS_PORT" in done.stderr
    assert "Traceback" not in done.stderr
    assert not port_in_use(port)  # nothing is left listening


def test_sigterm_stops_cleanly(start_server: StartServer, port: int) -> None:
    metrics_port = free_port()
    proc, _ = start_server(port, MODEL_SERVICE_METRICS_PORT=str(metrics_port))
    assert port_in_use(metrics_port)
    proc.stop(timeout=10)
    assert proc.popen.returncode == 0
    log = proc.log_path.read_text()
    assert f"metrics on http://127.0.0.1:{metrics_port}{contract.METRICS_PATH}" in log
    assert "model_service: stopped" in log
    assert "Traceback" not in log
    assert not port_in_use(port)
    assert not port_in_use(metrics_port)


def test_saturating_burst_shows_queue_depth_not_queue_log(start_server: StartServer, port: int) -> None:
    """2 threads, 100 ms per request, 24 clients: most requests wait for a thread.

    waitress would log "Task queue depth is N" for each of them; the log must stay quiet
    while the gauge shows the queue.
    """
    proc, base = start_server(port, MODEL_SERVICE_THREADS="2", MODEL_SERVICE_SIMULATED_LATENCY_MS="100")
    stop = threading.Event()
    depths: list[float] = []
    sent = 0
    lock = threading.Lock()

    def client() -> None:
        nonlocal sent
        with requests.Session() as http:
            while not stop.is_set():
                resp = http.post(base + contract.PREDICT_PATH, json={"review": "good food"}, timeout=60)
                assert resp.status_code == 200
                with lock:
                    sent += 1

    with ThreadPoolExecutor(max_workers=24) as pool:
        futures = [pool.submit(client) for _ in range(24)]
        deadline = time.monotonic() + 20
        # A scrape waits in the same queue; when it is served the other clients have re-queued.
        while time.monotonic() < deadline and len(depths) < 3:
            depths.append(_metric(base, contract.MODEL_QUEUE_DEPTH, variant=contract.STABLE))
        stop.set()
        for future in futures:
            future.result(timeout=120)

    assert max(depths) > 0, depths
    log = proc.log_path.read_text()
    assert "Task queue depth" not in log
    assert sent >= 24
    # No per-request lines at INFO: a few start-up lines for all those requests.
    assert len(log.splitlines()) < 10, log
    assert _metric(base, contract.MODEL_QUEUE_DEPTH, variant=contract.STABLE) == 0
    assert json.loads(requests.get(base + contract.VERSION_PATH, timeout=10).text)["threads"] == 2
