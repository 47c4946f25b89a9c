"""The one definition of every name that several parts of canarylab share.

The services import these constants, the experiment engine and the dashboard
generator import them, and `canarylab contract export` renders them for Ansible
(`inventory/group_vars/all/contract.yml`) and for the Helm chart
(`charts/canarylab/files/contract.yaml`).  A test fails when those rendered
copies drift from this module, so edit names here and nowhere else.
"""

from __future__ import annotations

import math
from typing import Final

#: HTTP header that pins a request to a variant, and that every response
#: carries with the variant that served it.
VARIANT_HEADER: Final = "x-canarylab-variant"

#: The variants of the first experiment, in report order.
STABLE: Final = "stable"
CANARY: Final = "canary"
VARIANTS: Final = (STABLE, CANARY)

#: Default server threads per variant (the experiment under test).
DEFAULT_THREADS: Final = {STABLE: 4, CANARY: 16}

# --- Prometheus labels ------------------------------------------------------
LABEL_VARIANT: Final = "variant"
LABEL_OUTCOME: Final = "outcome"
LABEL_REASON: Final = "reason"
#: The scrape target's pod: prometheus-operator's ServiceMonitor sets it on the lab, the local
#: target's prometheus.yml to the model-service process it scrapes (per-pod figures).
LABEL_POD: Final = "pod"

# --- model-service metrics (all labelled with `variant`) -----------------------
#: Histogram: time spent in the /predict handler, seconds.
MODEL_PROCESSING_SECONDS: Final = "canarylab_model_prediction_processing_seconds"
#: Counter: /predict requests by outcome (ok, client_error, server_error).
MODEL_REQUESTS_TOTAL: Final = "canarylab_model_requests_total"
#: Gauge: requests being handled right now.
MODEL_IN_FLIGHT: Final = "canarylab_model_in_flight_requests"
#: Gauge: configured waitress worker threads.
MODEL_THREADS: Final = "canarylab_model_server_threads"
#: Gauge: the simulated-latency emulation knob, seconds (0 when off).
MODEL_SIMULATED_LATENCY_SECONDS: Final = "canarylab_model_simulated_latency_seconds"
#: Gauge: the simulated CPU-cost emulation knob (work that holds the GIL), seconds (0 when off).
MODEL_SIMULATED_CPU_SECONDS: Final = "canarylab_model_simulated_cpu_seconds"
#: Gauge: configured model-service worker processes (1 = one waitress process).
MODEL_PROCESSES: Final = "canarylab_model_processes"
#: Counter: CPU seconds of a model-service process (prometheus_client's process
#: collector, Linux only); labelled `variant`, and `pid` with several processes.
MODEL_PROCESS_CPU_SECONDS: Final = "process_cpu_seconds_total"
#: Gauge: requests waiting in waitress's task queue for a free thread.
MODEL_QUEUE_DEPTH: Final = "canarylab_model_task_queue_depth"
#: Gauge: the longest /predict processing time of the last
#: PROCESSING_MAX_WINDOW_SECONDS, exact (not a bucket bound).
#: ``max_over_time`` of it over a window is the exact maximum in that window
#: (plus at most PROCESSING_MAX_WINDOW_SECONDS before it).
MODEL_PROCESSING_WINDOW_MAX_SECONDS: Final = "canarylab_model_prediction_processing_window_max_seconds"
PROCESSING_MAX_WINDOW_SECONDS: Final = 5.0
#: Info: model version and artifact checksum.
MODEL_INFO: Final = "canarylab_model"

# --- app metrics (all labelled with `variant`) --------------------------------
#: Histogram: model-service response time as the app sees it, seconds
#: (includes the wait in the model-service's thread-pool queue).
APP_MODEL_RESPONSE_SECONDS: Final = "canarylab_app_model_response_seconds"
#: Counter: /api/sentiment requests by outcome.
APP_REQUESTS_TOTAL: Final = "canarylab_app_requests_total"
#: Counter: failed calls to the model-service, by reason (timeout, unavailable, bad_status).
APP_MODEL_ERRORS_TOTAL: Final = "canarylab_app_model_errors_total"

#: Request outcomes used in the `outcome` label.
OUTCOME_OK: Final = "ok"
OUTCOME_CLIENT_ERROR: Final = "client_error"
OUTCOME_SERVER_ERROR: Final = "server_error"

# --- HTTP ---------------------------------------------------------------------
PREDICT_PATH: Final = "/predict"
APP_API_PATH: Final = "/api/sentiment"
HEALTH_PATH: Final = "/healthz"
READY_PATH: Final = "/readyz"
VERSION_PATH: Final = "/version"
METRICS_PATH: Final = "/metrics"

#: Largest request body the services accept, bytes; larger ones get 413.
MAX_BODY_BYTES: Final = 64 * 1024
#: Longest review the services accept, characters; longer ones get 400.
MAX_REVIEW_CHARS: Final = 5000

#: Ports inside a container / pod.
MODEL_SERVICE_PORT: Final = 8080
#: The model-service's metrics listener: its own port and thread, outside the
#: request pool, so that a saturated variant is still scraped on time.  A port
#: that nothing well known uses (not in IANA's /etc/services, outside the
#: 9100-9999 range of Prometheus exporters' default ports, where node_exporter
#: has 9100, and clear of VXLAN's 8472).  Two model-services run by hand on one
#: host still need a port each: set MODEL_SERVICE_METRICS_PORT.
MODEL_SERVICE_METRICS_PORT: Final = 8480
APP_PORT: Final = 8000

#: Loopback ports of the local target, per variant.
LOCAL_PORTS: Final = {
    "model_service": {STABLE: 18081, CANARY: 18082},
    "model_service_metrics": {STABLE: 18083, CANARY: 18084},
    "app": {STABLE: 18091, CANARY: 18092},
    "prometheus": 19090,
}

# --- histogram buckets --------------------------------------------------------
#: Consecutive bucket bounds grow by this factor at most. Linear interpolation
#: inside a bucket is then off by less than (factor - 1), so
#: ``histogram_quantile`` stays within 10% anywhere in the covered range.
BUCKET_GROWTH: Final = 1.1
BUCKET_MIN_SECONDS: Final = 0.001
BUCKET_MAX_SECONDS: Final = 60.0


def latency_buckets(
    lowest: float = BUCKET_MIN_SECONDS,
    highest: float = BUCKET_MAX_SECONDS,
    growth: float = BUCKET_GROWTH,
) -> tuple[float, ...]:
    """Geometric bucket bounds from ``lowest`` to at least ``highest``, rounded to 6 digits."""
    if lowest <= 0 or highest <= lowest or growth <= 1:
        raise ValueError("need 0 < lowest < highest and growth > 1")
    count = math.ceil(math.log(highest / lowest) / math.log(growth))
    return tuple(float(f"{lowest * growth**i:.6g}") for i in range(count + 1))


LATENCY_BUCKETS: Final = latency_buckets()


def as_dict() -> dict[str, object]:
    """Every shared name as plain data, for rendering into Ansible and Helm."""
    return {
        "variant_header": VARIANT_HEADER,
        "variants": list(VARIANTS),
        "default_threads": dict(DEFAULT_THREADS),
        "labels": {
            "variant": LABEL_VARIANT,
            "outcome": LABEL_OUTCOME,
            "reason": LABEL_REASON,
            "pod": LABEL_POD,
        },
        "metrics": {
            "model_processing_seconds": MODEL_PROCESSING_SECONDS,
            "model_requests_total": MODEL_REQUESTS_TOTAL,
            "model_in_flight": MODEL_IN_FLIGHT,
            "model_threads": MODEL_THREADS,
            "model_simulated_latency_seconds": MODEL_SIMULATED_LATENCY_SECONDS,
            "model_simulated_cpu_seconds": MODEL_SIMULATED_CPU_SECONDS,
            "model_processes": MODEL_PROCESSES,
            "model_process_cpu_seconds": MODEL_PROCESS_CPU_SECONDS,
            "model_queue_depth": MODEL_QUEUE_DEPTH,
            "model_processing_window_max_seconds": MODEL_PROCESSING_WINDOW_MAX_SECONDS,
            "model_info": MODEL_INFO,
            "app_model_response_seconds": APP_MODEL_RESPONSE_SECONDS,
            "app_requests_total": APP_REQUESTS_TOTAL,
            "app_model_errors_total": APP_MODEL_ERRORS_TOTAL,
        },
        "paths": {
            "predict": PREDICT_PATH,
            "app_api": APP_API_PATH,
            "health": HEALTH_PATH,
            "ready": READY_PATH,
            "version": VERSION_PATH,
            "metrics": METRICS_PATH,
        },
        "limits": {"max_body_bytes": MAX_BODY_BYTES, "max_review_chars": MAX_REVIEW_CHARS},
        "processing_max_window_seconds": PROCESSING_MAX_WINDOW_SECONDS,
        "ports": {
            "model_service": MODEL_SERVICE_PORT,
            "model_service_metrics": MODEL_SERVICE_METRICS_PORT,
            "app": APP_PORT,
            "local": {k: (dict(v) if isinstance(v, dict) else v) for k, v in LOCAL_PORTS.items()},
        },
    }
