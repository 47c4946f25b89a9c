"""Run the API under waitress, with the settings' thread count.

waitress logs ``Task queue depth is N`` (logger ``waitress.queue``) for every
request that has to wait for a thread, which floods the log exactly when the
service is saturated.  We silence that logger and publish the same number as
the queue-depth gauge, read from the server's task dispatcher at each scrape.

The metrics are served on a port of their own (``MODEL_SERVICE_METRICS_PORT``)
by prometheus_client's small HTTP server, in threads of its own: a scrape never
waits in waitress's task queue behind the requests it is measuring.  ``/metrics``
on the main port stays, for people and probes.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any, Final

import prometheus_client
import waitress

import canarylab_contract as contract
from model_service.api import ServiceState, create_app
from model_service.cpu import CpuCost
from model_service.errors import ModelServiceError
from model_service.metrics import ServiceMetrics
from model_service.model import SentimentModel
from model_service.settings import ENV_HOST, ENV_METRICS_PORT, ENV_PORT, Settings

METRICS_PATH: Final = contract.METRICS_PATH
QUEUE_LOGGER: Final = "waitress.queue"
#: Open connections waitress accepts before leaving new ones in the kernel backlog.
#: High, so that waiting happens in the task queue, where the gauge can see it.
CONNECTION_LIMIT: Final = 1000

log = logging.getLogger("model_service")


def configure_logging(level: int) -> None:
    """Short one-line records on stderr; waitress's per-request queue warnings off."""
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.getLogger(QUEUE_LOGGER).setLevel(logging.ERROR)


def queue_depth_reader(dispatcher: Any) -> Callable[[], int]:
    """How many tasks wait for a thread: waitress's own "Task queue depth" computation
    (queued tasks minus idle threads), read under the dispatcher's lock."""

    def depth() -> int:
        with dispatcher.lock:
            queued: int = len(dispatcher.queue)
            idle: int = len(dispatcher.threads) - dispatcher.stop_count - dispatcher.active_count
        return max(0, queued - idle)

    return depth


@dataclass(frozen=True)
class Service:
    server: Any
    metrics: ServiceMetrics
    model: SentimentModel
    cpu: CpuCost


def calibrated_cpu_cost(settings: Settings) -> CpuCost:
    """The CPU-cost knob, calibrated on this host when it is on (and logged)."""
    cpu = CpuCost.calibrated(settings.cpu_cost_ms, settings.cpu_iterations_per_ms)
    if cpu.calibration is not None:
        log.info(
            "cpu cost %g ms = %d iterations; calibration: %s",
            settings.cpu_cost_ms,
            cpu.iterations,
            cpu.calibration.describe(),
        )
    return cpu


def build(settings: Settings) -> Service:
    """Load the model, then create (but do not run) the waitress server."""
    model = SentimentModel.load(settings.model_dir)
    cpu = calibrated_cpu_cost(settings)
    metrics = ServiceMetrics(
        variant=settings.variant,
        threads=settings.threads,
        simulated_latency_seconds=settings.simulated_latency_seconds,
        meta=model.meta,
        cpu_cost_seconds=settings.cpu_cost_seconds,
    )
    app = create_app(ServiceState(settings=settings, metrics=metrics, model=model, cpu=cpu))
    try:
        server = waitress.create_server(
            app,
            host=settings.host,
            port=settings.port,
            threads=settings.threads,
            connection_limit=CONNECTION_LIMIT,
            asyncore_use_poll=True,
            ident="canarylab-model-service",
        )
    except OSError as err:
        raise listen_error(err, f"{settings.host}:{settings.port}", ENV_PORT) from err
    metrics.bind_queue_depth(queue_depth_reader(server.task_dispatcher))
    return Service(server=server, metrics=metrics, model=model, cpu=cpu)


def listen_error(err: OSError, where: str, env_port: str, what: str = "") -> ModelServiceError:
    """Our message for a listener that cannot bind ``where``: a port in use (stop the other
    process or set ``env_port``) or anything else (check the host and ``env_port``)."""
    if err.errno == errno.EADDRINUSE:
        return ModelServiceError(
            f"cannot listen on {where}{what}: the port is in use",
            f"stop the other process or set {env_port} to a free port",
        )
    return ModelServiceError(
        f"cannot listen on {where}{what}: {err.strerror or err}", f"check {ENV_HOST} and {env_port}"
    )


@dataclass
class MetricsListener:
    """The metrics port's HTTP server and its accept thread (each scrape gets a thread of its own)."""

    server: Any
    thread: Any

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in str(host) else f"http://{host}:{port}"

    def stop(self, timeout: float = 5) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout)


def start_metrics_listener(
    settings: Settings, registry: prometheus_client.CollectorRegistry
) -> MetricsListener:
    """Serve ``registry`` on MODEL_SERVICE_HOST:MODEL_SERVICE_METRICS_PORT, independent of
    the request threads, from now until :meth:`MetricsListener.stop`."""
    try:
        server, thread = prometheus_client.start_http_server(
            settings.metrics_port, addr=settings.host, registry=registry
        )
    except OSError as err:
        where = f"{settings.host}:{settings.metrics_port}"
        raise listen_error(err, where, ENV_METRICS_PORT, " for the metrics") from err
    return MetricsListener(server=server, thread=thread)


def listen_urls(server: Any) -> list[str]:
    """Where ``server`` listens; a host name may resolve to several sockets (MultiSocketServer)."""
    listen = getattr(server, "effective_listen", None) or [(server.effective_host, server.effective_port)]
    return [f"http://[{h}]:{p}" if ":" in str(h) else f"http://{h}:{p}" for h, p in listen]


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[None]:
    def stop(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve(settings: Settings) -> None:
    """Serve until SIGTERM or Ctrl-C."""
    configure_logging(settings.log_level_number)
    service = build(settings)
    server = service.server
    try:
        metrics_listener = start_metrics_listener(settings, service.metrics.registry)
    except ModelServiceError:
        server.close()
        raise
    log.info(
        "serving model %s variant=%s threads=%d simulated_latency_ms=%g cpu_cost_ms=%g (%s) on %s, "
        "metrics on %s%s",
        service.model.version,
        settings.variant,
        settings.threads,
        settings.simulated_latency_ms,
        settings.cpu_cost_ms,
        settings.emulation_distribution,
        " ".join(listen_urls(server)),
        metrics_listener.url,
        METRICS_PATH,
    )
    # waitress's run() itself catches the KeyboardInterrupt (ours on SIGTERM, or
    # Ctrl-C) and shuts its worker threads down; the suppress covers a signal that
    # arrives outside its loop.
    with _sigterm_stops(), contextlib.suppress(KeyboardInterrupt):
        try:
            server.run()
        finally:
            server.close()
            server.task_dispatcher.shutdown(timeout=5)
            metrics_listener.stop()
    log.info("stopped")
