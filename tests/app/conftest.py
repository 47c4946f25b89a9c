"""Fixtures of the app's tests: a fake model-service on 127.0.0.1 and apps wired to it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from app_fakes import FakeModelService
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import BaseWSGIServer, make_server

import canarylab_contract as contract
from sentiment_app.settings import Settings
from sentiment_app.web import create_app


@pytest.fixture
def fake_model() -> Iterator[FakeModelService]:
    """A running fake model-service; stopped (and any slow answer released) after the test."""
    fake = FakeModelService()
    server: BaseWSGIServer = make_server("127.0.0.1", 0, fake, threaded=True)
    fake.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def make_settings(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "model_service_url": url,
        "variant": contract.CANARY,
        "model_timeout_seconds": 5.0,
        "threads": 4,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def make_app() -> Iterator[Callable[..., Flask]]:
    """Builds apps for a model-service URL; their HTTP sessions are closed after the test."""
    apps: list[Flask] = []

    def build(url: str, **overrides: Any) -> Flask:
        app = create_app(make_settings(url, **overrides))
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["sentiment_app"].client.close()


@pytest.fixture
def client(make_app: Callable[..., Flask], fake_model: FakeModelService) -> FlaskClient:
    return make_app(fake_model.url).test_client()


@pytest.fixture
def fake_model_url(fake_model: FakeModelService) -> str:
    return fake_model.url
