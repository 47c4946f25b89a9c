"""The model-service's settings, read from the environment and validated once at start.

Every variable is optional except the model directory.  A bad value raises
:class:`SettingsError` naming the variable, the value and what is allowed, so
``model-service serve`` exits with code 2 and one readable line.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

import canarylab_contract as contract
from model_service.emulation import DISTRIBUTIONS, Distribution
from model_service.errors import SettingsError

ENV_THREADS: Final = "MODEL_SERVICE_THREADS"
ENV_VARIANT: Final = "MODEL_SERVICE_VARIANT"
ENV_PORT: Final = "MODEL_SERVICE_PORT"
ENV_METRICS_PORT: Final = "MODEL_SERVICE_METRICS_PORT"
ENV_HOST: Final = "MODEL_SERVICE_HOST"
ENV_MODEL_DIR: Final = "MODEL_SERVICE_MODEL_DIR"
ENV_SIMULATED_LATENCY_MS: Final = "MODEL_SERVICE_SIMULATED_LATENCY_MS"
ENV_CPU_COST_MS: Final = "MODEL_SERVICE_CPU_COST_MS"
ENV_PROCESSES: Final = "MODEL_SERVICE_PROCESSES"
ENV_EMULATION_DISTRIBUTION: Final = "MODEL_SERVICE_EMULATION_DISTRIBUTION"
ENV_CPU_ITERATIONS_PER_MS: Final = "MODEL_SERVICE_CPU_ITERATIONS_PER_MS"
ENV_LOG_LEVEL: Final = "MODEL_SERVICE_LOG_LEVEL"

DEFAULT_THREADS: Final = contract.DEFAULT_THREADS[contract.STABLE]
MIN_THREADS: Final = 1
MAX_THREADS: Final = 256
DEFAULT_HOST: Final = "127.0.0.1"
#: Upper bound of the emulation knob: a minute per request is already absurd.
MAX_SIMULATED_LATENCY_MS: Final = 60_000.0
#: Upper bound of the CPU-cost knob, same reasoning.
MAX_CPU_COST_MS: Final = 60_000.0
MIN_PROCESSES: Final = 1
#: Upper bound of worker processes: far more than a laptop's or a pod's cores.
MAX_PROCESSES: Final = 64
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")

_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """Everything ``model-service serve`` needs; built by :func:`from_env`."""

    model_dir: Path
    threads: int = DEFAULT_THREADS
    variant: str = contract.STABLE
    port: int = contract.MODEL_SERVICE_PORT
    #: Port of the metrics listener (its own thread, outside the request pool).
    metrics_port: int = contract.MODEL_SERVICE_METRICS_PORT
    host: str = DEFAULT_HOST
    simulated_latency_ms: float = 0.0
    log_level: str = "INFO"
    #: Emulation: pure-Python work per prediction that holds the GIL, milliseconds (0 = off).
    cpu_cost_ms: float = 0.0
    #: Worker processes: 1 = one waitress process; more = gunicorn with gthread workers.
    processes: int = 1
    #: How the knobs vary per request: exactly their value, or exponential about it (emulation.py).
    emulation_distribution: Distribution = "fixed"
    #: The CPU knob's calibration, given instead of measured at start (None: measure it), so that
    #: variants started side by side spend the same work (``model-service calibrate-cpu``).
    cpu_iterations_per_ms: float | None = None

    @property
    def simulated_latency_seconds(self) -> float:
        return self.simulated_latency_ms / 1000.0

    @property
    def cpu_cost_seconds(self) -> float:
        return self.cpu_cost_ms / 1000.0

    @property
    def log_level_number(self) -> int:
        return int(logging.getLevelName(self.log_level))


def _bad(name: str, raw: str, allowed: str) -> SettingsError:
    return SettingsError(f"{name}={raw!r} is not valid: expected {allowed}", f"fix or unset {name}")


def _get(env: Mapping[str, str], name: str, default: T, parse: Callable[[str], T]) -> T:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    return parse(raw.strip())


def _int_in(name: str, low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw, 10)
        except ValueError:
            raise _bad(name, raw, f"a whole number from {low} to {high}") from None
        if not low <= value <= high:
            raise _bad(name, raw, f"a whole number from {low} to {high}")
        return value

    return parse


def _milliseconds(name: str, high: float) -> Callable[[str], float]:
    allowed = f"milliseconds, a number from 0 to {high:g}"

    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise _bad(name, raw, allowed) from None
        if not math.isfinite(value) or not 0 <= value <= high:
            raise _bad(name, raw, allowed)
        return value

    return parse


_latency = _milliseconds(ENV_SIMULATED_LATENCY_MS, MAX_SIMULATED_LATENCY_MS)
_cpu_cost = _milliseconds(ENV_CPU_COST_MS, MAX_CPU_COST_MS)


def _variant(raw: str) -> str:
    if raw not in contract.VARIANTS:
        raise _bad(ENV_VARIANT, raw, " or ".join(contract.VARIANTS))
    return raw


def _iterations_per_ms(raw: str) -> float:
    allowed = "iterations per millisecond, a number above 0 (`model-service calibrate-cpu` prints it)"
    try:
        value = float(raw)
    except ValueError:
        raise _bad(ENV_CPU_ITERATIONS_PER_MS, raw, allowed) from None
    if not math.isfinite(value) or value <= 0:
        raise _bad(ENV_CPU_ITERATIONS_PER_MS, raw, allowed)
    return value


_DISTRIBUTION_NAMES: Final[dict[str, Distribution]] = {"fixed": "fixed", "exponential": "exponential"}


def _distribution(raw: str) -> Distribution:
    try:
        return _DISTRIBUTION_NAMES[raw.lower()]
    except KeyError:
        raise _bad(ENV_EMULATION_DISTRIBUTION, raw, " or ".join(DISTRIBUTIONS)) from None


def _host(raw: str) -> str:
    try:
        ipaddress.ip_address(raw)
    except ValueError:
        if not _HOSTNAME.match(raw):
            raise _bad(ENV_HOST, raw, "an IP address (127.0.0.1, 0.0.0.0, ::) or a host name") from None
    return raw


def _log_level(raw: str) -> str:
    if raw.upper() not in LOG_LEVELS:
        raise _bad(ENV_LOG_LEVEL, raw, " or ".join(LOG_LEVELS))
    return raw.upper()


def _model_dir(raw: str) -> Path:
    return Path(raw).expanduser()


def from_env(env: Mapping[str, str]) -> Settings:
    """Parse and validate ``env`` (normally ``os.environ``).

    Every bad value is reported, not only the first, in one SettingsError.
    """
    problems: list[SettingsError] = []

    def field(name: str, default: T, parse: Callable[[str], T]) -> T:
        try:
            return _get(env, name, default, parse)
        except SettingsError as err:
            problems.append(err)
            return default

    threads = field(ENV_THREADS, DEFAULT_THREADS, _int_in(ENV_THREADS, MIN_THREADS, MAX_THREADS))
    variant = field(ENV_VARIANT, contract.STABLE, _variant)
    port = field(ENV_PORT, contract.MODEL_SERVICE_PORT, _int_in(ENV_PORT, 1, 65535))
    metrics_port = field(
        ENV_METRICS_PORT, contract.MODEL_SERVICE_METRICS_PORT, _int_in(ENV_METRICS_PORT, 1, 65535)
    )
    ports_parsed = not any(p.message.startswith((f"{ENV_PORT}=", f"{ENV_METRICS_PORT}=")) for p in problems)
    if ports_parsed and metrics_port == port:
        shown = (env.get(ENV_METRICS_PORT) or "").strip() or str(metrics_port)
        problems.append(
            SettingsError(
                f"{ENV_METRICS_PORT}={shown!r} is not valid: expected a port other than "
                f"{ENV_PORT}={port} (the metrics listener has a port of its own)",
                f"set {ENV_PORT} and {ENV_METRICS_PORT} to two different ports",
            )
        )
    host = field(ENV_HOST, DEFAULT_HOST, _host)
    latency = field(ENV_SIMULATED_LATENCY_MS, 0.0, _latency)
    cpu_cost = field(ENV_CPU_COST_MS, 0.0, _cpu_cost)
    processes = field(ENV_PROCESSES, 1, _int_in(ENV_PROCESSES, MIN_PROCESSES, MAX_PROCESSES))
    distribution: Distribution = field(ENV_EMULATION_DISTRIBUTION, "fixed", _distribution)
    iterations_per_ms: float | None = field(ENV_CPU_ITERATIONS_PER_MS, None, _iterations_per_ms)
    log_level = field(ENV_LOG_LEVEL, "INFO", _log_level)
    model_dir = field(ENV_MODEL_DIR, None, _model_dir)
    if model_dir is None:
        problems.append(
            SettingsError(
                f"{ENV_MODEL_DIR} is not set: the service needs a trained model",
                f"run `model-service train --out DIR` and set {ENV_MODEL_DIR}=DIR",
            )
        )
    if problems:
        if len(problems) == 1:
            raise problems[0]
        hints = dict.fromkeys(p.hint for p in problems if p.hint)
        raise SettingsError("; ".join(p.message for p in problems), "; ".join(hints))
    assert model_dir is not None
    return Settings(
        model_dir=model_dir,
        threads=threads,
        variant=variant,
        port=port,
        metrics_port=metrics_port,
        host=host,
        simulated_latency_ms=latency,
        log_level=log_level,
        cpu_cost_ms=cpu_cost,
        processes=processes,
        emulation_distribution=distribution,
        cpu_iterations_per_ms=iterations_per_ms,
    )
