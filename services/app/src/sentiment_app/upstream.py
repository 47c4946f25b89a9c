"""Calls to the model-service: one pooled HTTP session, a timeout, and failures sorted by cause."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter

import canarylab_contract as contract
from sentiment_app.metrics import ErrorReason

#: Headers copied from the incoming request to the model-service call: the variant pin (so the
#: mesh keeps the call on-variant) and the trace headers Istio's Envoy proxies need to join spans.
FORWARDED_HEADERS = (
    contract.VARIANT_HEADER,
    "x-request-id",
    "traceparent",
    "tracestate",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
)


@dataclass(frozen=True)
class ModelAnswer:
    """A JSON answer of the model-service (2xx or 4xx), passed on as it came."""

    status: int
    body: bytes
    seconds: float


@dataclass(frozen=True)
class ModelFailure:
    """The model-service could not give a usable answer; ``status`` is what the app answers with."""

    reason: ErrorReason
    status: int
    message: str
    seconds: float


class ModelServiceClient:
    """Thread-safe enough for waitress's pool: one ``requests.Session`` with a pool as big as the threads."""

    def __init__(self, base_url: str, timeout_seconds: float, pool_size: int) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.session = requests.Session()
        # No retries: every call is measured once, as the client saw it.
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.trust_env = False

    def close(self) -> None:
        self.session.close()

    def predict(self, review: str, incoming: Mapping[str, str]) -> ModelAnswer | ModelFailure:
        """POST the review to /predict; never raises for network trouble, never waits past the timeout."""
        headers = {name: incoming[name] for name in FORWARDED_HEADERS if name in incoming}
        url = self.base_url + contract.PREDICT_PATH
        started = time.perf_counter()
        try:
            resp = self.session.post(
                url,
                json={"review": review},
                headers=headers,
                timeout=self.timeout_seconds,
                allow_redirects=False,
            )
        except requests.Timeout:
            return ModelFailure(
                ErrorReason.TIMEOUT,
                504,
                f"the model-service did not answer within {self.timeout_seconds:g} s",
                time.perf_counter() - started,
            )
        except requests.RequestException as err:
            return ModelFailure(
                ErrorReason.UNAVAILABLE,
                503,
                f"the model-service at {self.base_url} is unavailable ({type(err).__name__})",
                time.perf_counter() - started,
            )
        seconds = time.perf_counter() - started
        status = resp.status_code
        if status >= 500:
            return _bad_status(f"the model-service answered HTTP {status}", seconds)
        if not (200 <= status < 300 or 400 <= status < 500):
            return _bad_status(f"the model-service answered an unexpected HTTP {status}", seconds)
        if not _is_json_object(resp.content):
            return _bad_status(f"the model-service answered HTTP {status} without a JSON object", seconds)
        return ModelAnswer(status, resp.content, seconds)

    def ready(self, timeout_seconds: float) -> tuple[bool, str]:
        """Whether the model-service's readiness endpoint answers 200, and why not."""
        try:
            resp = self.session.get(
                self.base_url + contract.READY_PATH, timeout=timeout_seconds, allow_redirects=False
            )
        except requests.RequestException as err:
            return False, f"model-service unreachable ({type(err).__name__})"
        if resp.status_code != 200:
            return False, f"model-service {contract.READY_PATH} answered HTTP {resp.status_code}"
        return True, "model-service ready"


def _is_json_object(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body), dict)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False


def _bad_status(message: str, seconds: float) -> ModelFailure:
    return ModelFailure(ErrorReason.BAD_STATUS, 502, message, seconds)
