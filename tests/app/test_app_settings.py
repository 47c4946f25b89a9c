"""The app's settings come from APP_* variables and every bad value is named at start."""

from __future__ import annotations

import pytest

import canarylab_contract as contract
from sentiment_app.readiness import CachedReadiness
from sentiment_app.settings import Settings, SettingsError
from sentiment_app.validation import MAX_BODY_BYTES, MAX_REVIEW_CHARS, InvalidRequestError, parse_review

REQUIRED = {"APP_MODEL_SERVICE_URL": "http://127.0.0.1:8080/", "APP_VARIANT": contract.STABLE}


def test_defaults_apply_when_only_the_required_variables_are_set() -> None:
    s = Settings.from_env(REQUIRED)
    assert s.model_service_url == "http://127.0.0.1:8080"
    assert s.predict_url == "http://127.0.0.1:8080" + contract.PREDICT_PATH
    assert s.variant == contract.STABLE
    assert (s.host, s.port) == ("127.0.0.1", contract.APP_PORT)
    assert s.threads >= contract.DEFAULT_THREADS[contract.CANARY]
    assert s.model_timeout_seconds > 0


def test_every_variable_is_read() -> None:
    s = Settings.from_env(
        {
            **REQUIRED,
            "APP_VARIANT": contract.CANARY,
            "APP_HOST": "0.0.0.0",
            "APP_PORT": "18092",
            "APP_MODEL_TIMEOUT_SECONDS": "2.5",
            "APP_THREADS": "8",
        }
    )
    assert (s.variant, s.host, s.port, s.model_timeout_seconds, s.threads) == (
        contract.CANARY,
        "0.0.0.0",
        18092,
        2.5,
        8,
    )


def test_missing_required_variables_are_all_named() -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({})
    text = str(err.value)
    assert "APP_MODEL_SERVICE_URL is required" in text
    assert "APP_VARIANT is required" in text
    assert "docs/app.md" in text


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("APP_MODEL_SERVICE_URL", "localhost:8080", "http:// or https://"),
        ("APP_MODEL_SERVICE_URL", "http://host/?a=1", "without ?query"),
        ("APP_VARIANT", "blue", "one of stable, canary"),
        ("APP_PORT", "http", "whole number"),
        ("APP_PORT", "70000", "between 1 and 65535"),
        ("APP_THREADS", "0", "between 1 and"),
        ("APP_MODEL_TIMEOUT_SECONDS", "-1", "more than 0"),
        ("APP_MODEL_TIMEOUT_SECONDS", "soon", "number of seconds"),
    ],
)
def test_bad_values_are_named_with_what_to_fix(name: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({**REQUIRED, name: value})
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith(f"{name}={value!r}: ")
    assert expected in err.value.problems[0]


def test_settings_are_frozen() -> None:
    s = Settings.from_env(REQUIRED)
    with pytest.raises(AttributeError):
        s.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", "must be JSON"),
        (b"{not json", "must be JSON"),
        (b"\xff\xfe", "must be JSON"),
        (b'["a list"]', "JSON object"),
        (b"[" * 30_000 + b"]" * 30_000, "nested too deeply"),
        (b"{}", "missing"),
        (b'{"review": 5}', "must be a string"),
        (b'{"review": "   "}', "is empty"),
        (('{"review": "' + "a" * (MAX_REVIEW_CHARS + 1) + '"}').encode(), "longer than"),
    ],
)
def test_bad_reviews_are_rejected_with_a_reason(body: bytes, expected: str) -> None:
    with pytest.raises(InvalidRequestError) as err:
        parse_review(body)
    assert err.value.status == 400
    assert expected in err.value.message


def test_oversized_body_is_413_and_limits_are_inclusive() -> None:
    with pytest.raises(InvalidRequestError) as err:
        parse_review(b" " * (MAX_BODY_BYTES + 1))
    assert err.value.status == 413
    longest = "é" * MAX_REVIEW_CHARS
    assert parse_review(('{"review": "' + longest + '"}').encode()) == longest


def test_readiness_is_cached_for_its_ttl() -> None:
    now = [100.0]
    calls: list[float] = []

    def check() -> tuple[bool, str]:
        calls.append(now[0])
        return len(calls) > 1, f"call {len(calls)}"

    cache = CachedReadiness(check, ttl_seconds=1.0, clock=lambda: now[0])
    assert cache.get().ready is False
    now[0] += 0.5
    assert cache.get().detail == "call 1"
    now[0] += 0.6
    assert cache.get().ready is True
    assert len(calls) == 2
