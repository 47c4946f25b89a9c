"""The metrics port answers while the request pool is saturated.

One waitress thread, 500 ms per prediction and 8 requests in flight: a new
/predict waits for the 8 before it (~4 s), and so does a GET /metrics on the
main port, which shares that queue.  The metrics port has a listener of its
own, so a scrape there answers at once - and reads the queue as it is.  Only
ratios against the saturated pool's own times are asserted.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
import requests
from model_service_support import StartServer
from prometheus_client.parser import text_string_to_metric_families

import canarylab_contract as contract
from canarylab.procs import free_port

pytestmark = pytest.mark.integration

LATENCY_MS = 500
IN_FLIGHT = 8
#: A scrape of the metrics port takes less than this share of one saturated /predict.
MAX_RATIO = 0.1

MODEL_METRICS = (
    contract.MODEL_PROCESSING_SECONDS,
    contract.MODEL_REQUESTS_TOTAL,
    contract.MODEL_IN_FLIGHT,
    contract.MODEL_THREADS,
    contract.MODEL_SIMULATED_LATENCY_SECONDS,
    contract.MODEL_QUEUE_DEPTH,
    contract.MODEL_PROCESSING_WINDOW_MAX_SECONDS,
    contract.MODEL_INFO,
)


def _timed_get(url: str) -> tuple[float, str]:
    started = time.perf_counter()
    resp = requests.get(url, timeout=60)
    elapsed = time.perf_counter() - started
    assert resp.status_code == 200, resp.text
    return elapsed, resp.text


def _timed_predict(url: str) -> float:
    started = time.perf_counter()
    resp = requests.post(url, json={"review": "slow but tasty"}, timeout=60)
    elapsed = time.perf_counter() - started
    assert resp.status_code == 200, resp.text
    return elapsed


def _gauges(text: str) -> dict[str, float]:
    return {
        s.name: float(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get(contract.LABEL_VARIANT) == contract.STABLE
    }


def test_metrics_port_answers_while_the_request_pool_is_saturated(start_server: StartServer) -> None:
    port, metrics_port = free_port(), free_port()
    _, base = start_server(
        port,
        MODEL_SERVICE_METRICS_PORT=str(metrics_port),
        MODEL_SERVICE_THREADS="1",
        MODEL_SERVICE_SIMULATED_LATENCY_MS=str(LATENCY_MS),
    )
    scrape_url = f"http://127.0.0.1:{metrics_port}{contract.METRICS_PATH}"
    predict_url = base + contract.PREDICT_PATH
    _timed_predict(predict_url)  # warm up: first prediction, connection set-up

    with ThreadPoolExecutor(max_workers=IN_FLIGHT + 2) as pool:
        burst = [pool.submit(_timed_predict, predict_url) for _ in range(IN_FLIGHT)]
        # Saturated: one request being handled, the others queued for the one thread.
        deadline = time.monotonic() + 10
        gauges: dict[str, float] = {}
        while time.monotonic() < deadline:
            gauges = _gauges(_timed_get(scrape_url)[1])
            if gauges.get(contract.MODEL_QUEUE_DEPTH, 0) >= IN_FLIGHT // 2:
                break
            time.sleep(0.02)
        else:
            pytest.fail(f"the pool never saturated: {gauges}")

        probe: Future[float] = pool.submit(_timed_predict, predict_url)
        main_scrape = pool.submit(_timed_get, base + contract.METRICS_PATH)
        time.sleep(0.05)  # both are queued behind the burst now
        scrapes: list[float] = []
        texts: list[str] = []
        while not probe.done() and len(scrapes) < 20:  # scrapes while the probe waits
            elapsed, text = _timed_get(scrape_url)
            scrapes.append(elapsed)
            texts.append(text)
            time.sleep(0.05)
        busy = _gauges(texts[0])
        t_predict = probe.result(timeout=60)
        t_main_scrape = main_scrape.result(timeout=60)[0]
        for future in burst:
            future.result(timeout=60)

    worst = max(scrapes)
    print(
        f"saturated pool (1 thread, {LATENCY_MS} ms, {IN_FLIGHT} in flight): one /predict {t_predict:.3f}s, "
        f"/metrics on the main port {t_main_scrape:.3f}s, on the metrics port worst of {len(scrapes)} "
        f"{worst * 1000:.1f} ms (ratio {worst / t_predict:.3f})"
    )
    # The pool really was saturated: a /predict, and a scrape of the main port, waited their turn.
    assert t_predict >= 2 * LATENCY_MS / 1000, t_predict
    assert t_main_scrape >= LATENCY_MS / 1000, t_main_scrape
    # The metrics port did not wait.
    assert worst / t_predict < MAX_RATIO, (scrapes, t_predict)
    # And it saw the saturation as it was: one request handled, the rest queued.
    assert busy[contract.MODEL_THREADS] == 1
    assert busy[contract.MODEL_IN_FLIGHT] == 1
    assert busy[contract.MODEL_QUEUE_DEPTH] >= 2, busy
    for name in MODEL_METRICS:
        assert f"# TYPE {name}" in texts[0], name
