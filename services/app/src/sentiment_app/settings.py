"""The app's settings: read from the environment once, validated at start."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import canarylab_contract as contract

T = TypeVar("T")

MAX_THREADS = 512
MAX_TIMEOUT_SECONDS = 600.0


class SettingsError(ValueError):
    """One or more environment variables are missing or wrong; the message lists each of them."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"invalid settings:\n{lines}\nSet these environment variables and start again (see docs/app.md)."
        )


@dataclass(frozen=True)
class Settings:
    """Everything the app needs to know, from ``APP_*`` environment variables."""

    model_service_url: str
    variant: str
    host: str = "127.0.0.1"
    port: int = contract.APP_PORT
    model_timeout_seconds: float = 10.0
    threads: int = 32

    @property
    def predict_url(self) -> str:
        return self.model_service_url + contract.PREDICT_PATH

    @property
    def ready_url(self) -> str:
        return self.model_service_url + contract.READY_PATH

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read and check every ``APP_*`` variable; raise SettingsError naming all bad ones at once."""
        problems: list[str] = []

        def read(name: str, default: T, parse: Callable[[str], T]) -> T:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                return parse(raw)
            except ValueError as err:
                problems.append(f"{name}={raw!r}: {err}")
                return default

        url = read("APP_MODEL_SERVICE_URL", "", _parse_url)
        if not url and not any(p.startswith("APP_MODEL_SERVICE_URL=") for p in problems):
            problems.append(
                "APP_MODEL_SERVICE_URL is required: the model-service base URL, e.g. http://127.0.0.1:8080"
            )
        variant = read("APP_VARIANT", "", _parse_variant)
        if not variant and not any(p.startswith("APP_VARIANT=") for p in problems):
            problems.append(f"APP_VARIANT is required: the variant label of this app, one of {_variants()}")
        settings = cls(
            model_service_url=url,
            variant=variant,
            host=read("APP_HOST", cls.host, str),
            port=read("APP_PORT", cls.port, _int_between(1, 65535)),
            model_timeout_seconds=read("APP_MODEL_TIMEOUT_SECONDS", cls.model_timeout_seconds, _timeout),
            threads=read("APP_THREADS", cls.threads, _int_between(1, MAX_THREADS)),
        )
        if problems:
            raise SettingsError(problems)
        return settings


def _variants() -> str:
    return ", ".join(contract.VARIANTS)


def _parse_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:8080")
    if parts.query or parts.fragment:
        raise ValueError("must be a base URL without ?query or #fragment")
    return raw.rstrip("/")


def _parse_variant(raw: str) -> str:
    if raw not in contract.VARIANTS:
        raise ValueError(f"must be one of {_variants()}")
    return raw


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"must be a whole number between {low} and {high}") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def _timeout(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("must be a number of seconds, e.g. 10 or 2.5") from None
    if not math.isfinite(value) or not 0 < value <= MAX_TIMEOUT_SECONDS:
        raise ValueError(f"must be more than 0 and at most {MAX_TIMEOUT_SECONDS:g} seconds")
    return value
