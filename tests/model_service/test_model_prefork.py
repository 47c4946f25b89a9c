"""MODEL_SERVICE_PROCESSES=2: the real ``model-service serve`` under gunicorn on 127.0.0.1.

/predict works, the metrics port aggregates every worker's series, a dead worker's
counts stay while its live gauges go, and SIGTERM leaves no process and no files.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from model_service_support import StartServer
from prometheus_client.parser import text_string_to_metric_families

import canarylab_contract as contract
from canarylab.procs import ManagedProcess, console_script, free_port, port_in_use, process_table

pytestmark = pytest.mark.integration

THREADS = 2
PROCESSES = 2
REQUESTS = 12


def _metric(base: str, name: str, **labels: str) -> float:
    text = requests.get(base + contract.METRICS_PATH, timeout=30).text
    found = [
        float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, f"{name}{labels}: {found} in {base}/metrics"
    return found[0]


def _workers(proc: ManagedProcess) -> list[int]:
    return [pid for pid, (ppid, _) in process_table().items() if ppid == proc.pid]


def _wait_for(condition: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def _burst(base: str, count: int) -> list[int]:
    def one(_: int) -> int:
        resp = requests.post(base + contract.PREDICT_PATH, json={"review": "great pizza"}, timeout=60)
        assert resp.headers[contract.VARIANT_HEADER] == contract.CANARY
        return resp.status_code

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def test_two_processes_serve_and_aggregate_their_metrics(
    start_server: StartServer, port: int, tmp_path: Path
) -> None:
    metrics_port = free_port()
    proc, base = start_server(
        port,
        MODEL_SERVICE_PROCESSES=str(PROCESSES),
        MODEL_SERVICE_THREADS=str(THREADS),
        MODEL_SERVICE_METRICS_PORT=str(metrics_port),
        MODEL_SERVICE_VARIANT=contract.CANARY,
        MODEL_SERVICE_CPU_COST_MS="20",
    )
    metrics = f"http://127.0.0.1:{metrics_port}"
    labels = {contract.LABEL_VARIANT: contract.CANARY}
    assert _wait_for(lambda: len(_workers(proc)) == PROCESSES), _workers(proc)
    # Both workers have written their threads gauge: livesum = processes x threads.
    assert _wait_for(lambda: _metric(metrics, contract.MODEL_THREADS, **labels) == PROCESSES * THREADS)
    version = requests.get(base + contract.VERSION_PATH, timeout=10).json()
    assert (version["processes"], version["threads"]) == (PROCESSES, THREADS)
    assert version["emulation"]["cpu_cost_ms"] == 20.0

    assert _burst(base, REQUESTS) == [200] * REQUESTS
    ok = {**labels, "outcome": contract.OUTCOME_OK}
    assert _metric(metrics, contract.MODEL_REQUESTS_TOTAL, **ok) == REQUESTS
    assert _metric(metrics, contract.MODEL_PROCESSING_SECONDS + "_count", **labels) == REQUESTS
    # GET /metrics on the main port, answered by one worker, shows the same aggregate.
    assert _metric(base, contract.MODEL_REQUESTS_TOTAL, **ok) == REQUESTS
    assert _metric(metrics, contract.MODEL_PROCESSES, **labels) == PROCESSES
    assert _metric(metrics, contract.MODEL_SIMULATED_CPU_SECONDS, **labels) == pytest.approx(0.02)
    assert _metric(metrics, contract.MODEL_IN_FLIGHT, **labels) == 0
    assert _metric(metrics, contract.MODEL_QUEUE_DEPTH, **labels) == 0
    assert _metric(metrics, contract.MODEL_PROCESSING_WINDOW_MAX_SECONDS, **labels) >= 0.02
    # 12 x 20 ms of CPU were spent somewhere among the workers (refreshed every 0.5 s).
    assert _wait_for(lambda: _metric(metrics, contract.MODEL_PROCESS_CPU_SECONDS, **labels) >= 0.2)

    # A worker dies: its counts stay in the sums, its live gauges go, gunicorn replaces it.
    victim = _workers(proc)[0]
    os.kill(victim, signal.SIGKILL)
    assert _wait_for(lambda: victim not in _workers(proc) and len(_workers(proc)) == PROCESSES)
    assert _wait_for(lambda: _metric(metrics, contract.MODEL_THREADS, **labels) == PROCESSES * THREADS)
    assert _metric(metrics, contract.MODEL_REQUESTS_TOTAL, **ok) == REQUESTS
    assert _burst(base, 4) == [200] * 4
    assert _metric(metrics, contract.MODEL_REQUESTS_TOTAL, **ok) == REQUESTS + 4

    workers = _workers(proc)
    private = list(tmp_path.glob("canarylab-model-service-*"))
    assert len(private) == 1, private
    assert any((private[0] / "metrics").glob("*.db")), private
    proc.stop(timeout=15)
    assert proc.popen.returncode == 0
    assert _wait_for(lambda: not any(pid in process_table() for pid in workers), timeout=10), workers
    assert not port_in_use(port)
    assert not port_in_use(metrics_port)
    assert not list(tmp_path.glob("canarylab-model-service-*")), "the metrics directory must be removed"
    log = proc.log_path.read_text()
    assert f"processes={PROCESSES} threads={THREADS}" in log
    assert "cpu cost 20 ms" in log
    assert "calibration:" in log
    assert "model_service: stopped" in log
    assert "Traceback" not in log


@pytest.mark.parametrize("which", ["MODEL_SERVICE_PORT", "MODEL_SERVICE_METRICS_PORT"])
def test_port_in_use_stops_the_start_with_our_message(
    trained_model_dir: Path, tmp_path: Path, which: str
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        busy = int(holder.getsockname()[1])
        ports = {"MODEL_SERVICE_PORT": str(free_port()), "MODEL_SERVICE_METRICS_PORT": str(free_port())}
        ports[which] = str(busy)
        done = subprocess.run(
            [console_script("model-service"), "serve"],
            env={
                "PATH": "/usr/bin:/bin",
                "TMPDIR": str(tmp_path),
                "MODEL_SERVICE_MODEL_DIR": str(trained_model_dir),
                "MODEL_SERVICE_PROCESSES": "2",
                **ports,
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{busy}" in done.stderr
    assert "the port is in use" in done.stderr
    assert which in done.stderr
    assert "Traceback" not in done.stderr
    assert not list(tmp_path.glob("canarylab-model-service-*"))
