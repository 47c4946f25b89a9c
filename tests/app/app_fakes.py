"""A fake model-service for the app's tests: it answers as told and records what it got."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import canarylab_contract as contract

StartResponse = Callable[..., object]


@dataclass
class FakeModelService:
    """Answers /predict with ``status``/``body`` after ``delay`` seconds; /readyz with ``ready_status``."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    delay: float = 0.0
    ready_status: int = 200
    variant: str = contract.STABLE
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    ready_calls: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, review: str) -> bytes:
        return json.dumps(
            {"sentiment": "positive", "confidence": 0.9, "variant": self.variant, "model_version": "fake-1"}
        ).encode()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        if path == contract.READY_PATH:
            with self.lock:
                self.ready_calls += 1
            start_response(f"{self.ready_status} X", [("Content-Type", "application/json")])
            return [b"{}"]
        if path != contract.PREDICT_PATH:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error": "not_found"}']
        length = int(environ.get("CONTENT_LENGTH") or 0)
        payload = json.loads(environ["wsgi.input"].read(length) or b"{}")
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        with self.lock:
            self.requests.append({"json": payload, "headers": headers})
        if self.delay:
            self.release.wait(self.delay)
        body = self.body or self.answer(payload.get("review", ""))
        start_response(
            f"{self.status} X",
            [("Content-Type", self.content_type), (contract.VARIANT_HEADER, self.variant)],
        )
        return [body]
