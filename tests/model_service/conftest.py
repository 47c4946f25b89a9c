"""Fixtures of the model-service's tests: the session's trained model, in-process apps,
a local HTTP file server for dataset URLs, and the real ``model-service serve``."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from model_service_support import StartServer

import canarylab_contract as contract
from canarylab.procs import ManagedProcess, ProcessGroup, console_script, free_port, wait_http_ok
from model_service.api import ServiceState, create_app
from model_service.cpu import CpuCost
from model_service.metrics import ServiceMetrics
from model_service.model import SentimentModel
from model_service.settings import Settings


@pytest.fixture(scope="session")
def model(trained_model_dir: Path) -> SentimentModel:
    return SentimentModel.load(trained_model_dir)


@pytest.fixture
def make_app(trained_model_dir: Path, model: SentimentModel) -> Callable[..., tuple[Flask, ServiceMetrics]]:
    """Builds an in-process app with a registry of its own.

    ``served``: the model object (default: the session's trained model; None: not loaded).
    Other keyword arguments override Settings fields.
    """

    def build(
        served: Any = model, clock: Callable[[], float] | None = None, **settings_fields: Any
    ) -> tuple[Flask, ServiceMetrics]:
        settings = Settings(model_dir=trained_model_dir, **settings_fields)
        metrics = ServiceMetrics(
            variant=settings.variant,
            threads=settings.threads,
            simulated_latency_seconds=settings.simulated_latency_seconds,
            meta=served.meta if served is not None else None,
            **({"clock": clock} if clock else {}),
            cpu_cost_seconds=settings.cpu_cost_seconds,
            processes=settings.processes,
        )
        cpu = CpuCost.calibrated(settings.cpu_cost_ms)
        app = create_app(ServiceState(settings=settings, metrics=metrics, model=served, cpu=cpu))
        return app, metrics

    return build


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on 127.0.0.1: (directory, base URL); stopped after the test."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def start_server(procs: ProcessGroup, tmp_path: Path, trained_model_dir: Path) -> StartServer:
    """Starts the real ``model-service serve`` on 127.0.0.1 and waits until /readyz answers 200.

    Returns the process and its base URL.  The metrics listener gets a free port
    unless ``MODEL_SERVICE_METRICS_PORT`` is given.  The ``procs`` fixture stops it after the test.
    """

    def start(port: int, name: str = "model-service", **env: str) -> tuple[ManagedProcess, str]:
        metrics_port = free_port()
        while metrics_port == port:
            metrics_port = free_port()
        full_env = {
            "MODEL_SERVICE_MODEL_DIR": str(trained_model_dir),
            "MODEL_SERVICE_HOST": "127.0.0.1",
            "MODEL_SERVICE_PORT": str(port),
            "MODEL_SERVICE_METRICS_PORT": str(metrics_port),
            "MODEL_SERVICE_VARIANT": contract.STABLE,
            "MODEL_SERVICE_THREADS": "4",
            "MODEL_SERVICE_SIMULATED_LATENCY_MS": "0",
            "MODEL_SERVICE_CPU_COST_MS": "0",
            "MODEL_SERVICE_PROCESSES": "1",
            # gunicorn's private metrics directory goes under the test's tmp_path.
            "TMPDIR": str(tmp_path),
            "MODEL_SERVICE_LOG_LEVEL": "INFO",
            **env,
        }
        argv = [console_script("model-service"), "serve"]
        proc = procs.start(name, argv, tmp_path / f"{name}.log", env=full_env)
        url = f"http://127.0.0.1:{port}"
        wait_http_ok(url + contract.READY_PATH, timeout=60, process=proc)
        return proc, url

    return start
