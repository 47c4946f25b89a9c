"""``MODEL_SERVICE_PROCESSES`` > 1: the API under gunicorn, N ``gthread`` worker processes
of ``MODEL_SERVICE_THREADS`` threads each (docs/model-service.md says why gunicorn).

The master loads and checks the model and calibrates the CPU knob once, then
forks the workers, so they share both (copy-on-write) and a bad artifact stops
the start before any worker exists.  Metrics use prometheus_client's
multiprocess mode in a private temporary directory that the master creates
and removes; the master serves the aggregate on the metrics port (a thread of
its own, started in ``when_ready``), ``child_exit`` marks a dead worker's live
gauges as gone, and ``GET /metrics`` in a worker answers the same aggregate.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]
from prometheus_client import values
from prometheus_client.multiprocess import mark_process_dead

from model_service.api import ServiceState, create_app
from model_service.cpu import CpuCost
from model_service.errors import ModelServiceError
from model_service.metrics import (
    CpuSecondsWriter,
    ServiceMetrics,
    StaticCollector,
    multiprocess_registry,
    start_refresher,
)
from model_service.model import SentimentModel
from model_service.prefork_worker import CountingThreadPool, CountingThreadWorker, accept_backlog
from model_service.server import (
    CONNECTION_LIMIT,
    METRICS_PATH,
    MetricsListener,
    calibrated_cpu_cost,
    configure_logging,
    listen_error,
    start_metrics_listener,
)
from model_service.settings import ENV_METRICS_PORT, ENV_PORT, Settings

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
#: Seconds a stopping worker finishes its requests before the master kills it (waitress: 5).
GRACEFUL_TIMEOUT: Final = 5
PROC_NAME: Final = "canarylab-model-service"

log = logging.getLogger("model_service")


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_port_free(host: str, port: int, env_port: str, what: str = "") -> None:
    """Fail with our message, before gunicorn starts, when ``host:port`` cannot be bound
    (gunicorn would retry five times and then log its own error)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    where = f"{host}:{port}"
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise listen_error(err, where, env_port, what) from err


@dataclass
class MasterState:
    """What the master keeps between gunicorn's hooks."""

    listener: MetricsListener | None = None
    stop_refresh: threading.Event | None = None
    master_pid: int = field(default_factory=os.getpid)


class PreforkApplication(BaseApplication):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn's programmatic entry point: our settings, our hooks, no command line."""

    def __init__(
        self, settings: Settings, model: SentimentModel, cpu: CpuCost, metrics_dir: Path, scratch: Path
    ) -> None:
        self.settings = settings
        self.model = model
        self.cpu = cpu
        self.metrics_dir = metrics_dir
        self.scratch = scratch
        self.master = MasterState()
        self.worker_metrics: ServiceMetrics | None = None
        #: The listening sockets (the master's, then each worker's inherited copy).
        self.listeners: list[Any] = []
        super().__init__()

    def backlog(self) -> int:
        """Connections waiting in the kernel for a worker with a free thread."""
        return sum(accept_backlog(getattr(listener, "sock", listener)) for listener in self.listeners)

    def static(self) -> StaticCollector:
        s = self.settings
        return StaticCollector(
            s.variant, s.processes, s.simulated_latency_seconds, s.cpu_cost_seconds, self.model.meta
        )

    def load_config(self) -> None:
        s = self.settings
        options: dict[str, Any] = {
            "bind": [_address(s.host, s.port)],
            "workers": s.processes,
            "worker_class": CountingThreadWorker,
            "threads": s.threads,
            "worker_connections": CONNECTION_LIMIT,
            "graceful_timeout": GRACEFUL_TIMEOUT,
            "worker_tmp_dir": str(self.scratch),
            "proc_name": PROC_NAME,
            "loglevel": s.log_level.lower(),
            "errorlog": "-",
            "accesslog": None,
            # gunicorn 27 opens a control socket in $HOME or $XDG_RUNTIME_DIR, shared by
            # every gunicorn of the user (and the image's root is read-only): not wanted.
            "control_socket_disable": True,
            "preload_app": False,
            "when_ready": self.when_ready,
            "post_fork": self.post_fork,
            "post_worker_init": self.post_worker_init,
            "child_exit": self.child_exit,
            "on_exit": self.on_exit,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    # --- the master ---------------------------------------------------------------

    def when_ready(self, arbiter: Any) -> None:
        s = self.settings
        self.listeners = list(arbiter.LISTENERS)
        registry = multiprocess_registry(self.static(), self.metrics_dir, self.backlog)
        self.master.listener = start_metrics_listener(s, registry)
        cpu = CpuSecondsWriter(s.variant)
        cpu.write()
        self.master.stop_refresh = start_refresher(cpu.write)
        log.info(
            "serving model %s variant=%s processes=%d threads=%d simulated_latency_ms=%g cpu_cost_ms=%g "
            "(%s) on http://%s, metrics on %s%s",
            self.model.version,
            s.variant,
            s.processes,
            s.threads,
            s.simulated_latency_ms,
            s.cpu_cost_ms,
            s.emulation_distribution,
            _address(s.host, s.port),
            self.master.listener.url,
            METRICS_PATH,
        )

    def child_exit(self, _arbiter: Any, worker: Any) -> None:
        mark_process_dead(worker.pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]

    def on_exit(self, _arbiter: Any) -> None:
        if self.master.stop_refresh is not None:
            self.master.stop_refresh.set()
        if self.master.listener is not None:
            self.master.listener.stop()

    # --- a worker -----------------------------------------------------------------

    def post_fork(self, _arbiter: Any, _worker: Any) -> None:
        """In the new worker: the master's metrics listener and refresher are not ours."""
        self.master.stop_refresh = None
        listener, self.master.listener = self.master.listener, None
        if listener is not None:
            listener.server.socket.close()

    def load(self) -> Any:
        """In each worker, after the fork: this worker's metrics and app, on the master's model."""
        s = self.settings
        metrics = ServiceMetrics(
            variant=s.variant,
            threads=s.threads,
            simulated_latency_seconds=s.simulated_latency_seconds,
            meta=self.model.meta,
            cpu_cost_seconds=s.cpu_cost_seconds,
            processes=s.processes,
            multiprocess_dir=self.metrics_dir,
            backlog=self.backlog,
        )
        metrics.start_refreshing()
        self.worker_metrics = metrics
        return create_app(ServiceState(settings=s, metrics=metrics, model=self.model, cpu=self.cpu))

    def post_worker_init(self, worker: Any) -> None:
        self.listeners = list(worker.sockets)
        pool = worker.tpool
        if isinstance(pool, CountingThreadPool) and self.worker_metrics is not None:
            pool.on_change = self.worker_metrics.queue_changed


@contextlib.contextmanager
def _multiprocess_dir() -> Any:
    """A private directory for the metric files, in the environment of this process and its
    workers; removed by the master only (a worker leaving this block must not remove it)."""
    owner = os.getpid()
    root = Path(tempfile.mkdtemp(prefix="canarylab-model-service-"))
    metrics_dir, scratch = root / "metrics", root / "worker-tmp"
    metrics_dir.mkdir()
    scratch.mkdir()
    previous_env, previous_class = os.environ.get(MULTIPROC_ENV), values.ValueClass
    os.environ[MULTIPROC_ENV] = str(metrics_dir)
    # prometheus_client picks its value class when it is imported; pick again now.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    try:
        yield metrics_dir, scratch
    finally:
        if os.getpid() == owner:
            values.ValueClass = previous_class
            if previous_env is None:
                os.environ.pop(MULTIPROC_ENV, None)
            else:
                os.environ[MULTIPROC_ENV] = previous_env
            shutil.rmtree(root, ignore_errors=True)


def serve(settings: Settings) -> None:
    """Serve with ``settings.processes`` gunicorn workers until SIGTERM or Ctrl-C."""
    configure_logging(settings.log_level_number)
    check_port_free(settings.host, settings.port, ENV_PORT)
    check_port_free(settings.host, settings.metrics_port, ENV_METRICS_PORT, " for the metrics")
    model = SentimentModel.load(settings.model_dir)
    cpu = calibrated_cpu_cost(settings)
    with _multiprocess_dir() as (metrics_dir, scratch):
        app = PreforkApplication(settings, model, cpu, metrics_dir, scratch)
        # gunicorn's master turns SIGTERM and SIGINT into a graceful stop of every worker
        # and exits with SystemExit(0); a worker's SystemExit leaves through here as well.
        try:
            app.run()
        except SystemExit as done:
            if os.getpid() != app.master.master_pid:
                raise
            if done.code not in (None, 0):
                raise ModelServiceError(
                    f"gunicorn stopped with exit status {done.code}", "see the lines above in the log"
                ) from None
    log.info("stopped")
