"""MODEL_SERVICE_* settings: defaults, valid values, and a clear error for each bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

import canarylab_contract as contract
from model_service import settings as s
from model_service.errors import EXIT_USAGE, SettingsError

BASE = {s.ENV_MODEL_DIR: "/srv/model"}


def test_defaults() -> None:
    got = s.from_env(BASE)
    assert got == s.Settings(
        model_dir=Path("/srv/model"),
        threads=contract.DEFAULT_THREADS[contract.STABLE],
        variant=contract.STABLE,
        port=contract.MODEL_SERVICE_PORT,
        metrics_port=contract.MODEL_SERVICE_METRICS_PORT,
        host="127.0.0.1",
        simulated_latency_ms=0.0,
        log_level="INFO",
        cpu_cost_ms=0.0,
        processes=1,
        emulation_distribution="fixed",
    )
    assert got.simulated_latency_seconds == 0.0


def test_valid_values() -> None:
    got = s.from_env(
        {
            **BASE,
            s.ENV_THREADS: "16",
            s.ENV_VARIANT: contract.CANARY,
            s.ENV_PORT: "18082",
            s.ENV_METRICS_PORT: "18084",
            s.ENV_HOST: "0.0.0.0",
            s.ENV_SIMULATED_LATENCY_MS: "12.5",
            s.ENV_LOG_LEVEL: "debug",
            s.ENV_CPU_COST_MS: "40",
            s.ENV_PROCESSES: "4",
            s.ENV_EMULATION_DISTRIBUTION: "Exponential",
            s.ENV_CPU_ITERATIONS_PER_MS: "21853.1",
        }
    )
    assert got.cpu_iterations_per_ms == 21853.1
    assert (got.cpu_cost_ms, got.cpu_cost_seconds, got.processes) == (40.0, 0.04, 4)
    assert got.emulation_distribution == "exponential"
    assert (got.threads, got.variant, got.port, got.host) == (16, contract.CANARY, 18082, "0.0.0.0")
    assert got.metrics_port == 18084
    assert got.simulated_latency_seconds == pytest.approx(0.0125)
    assert got.log_level == "DEBUG"


@pytest.mark.parametrize("host", ["localhost", "model-service.lab.svc", "::", "::1"])
def test_host_names_and_addresses(host: str) -> None:
    assert s.from_env({**BASE, s.ENV_HOST: host}).host == host


def test_settings_are_frozen() -> None:
    got = s.from_env(BASE)
    with pytest.raises(AttributeError):
        got.threads = 8  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (s.ENV_THREADS, "0"),
        (s.ENV_THREADS, "257"),
        (s.ENV_THREADS, "four"),
        (s.ENV_THREADS, "4.5"),
        (s.ENV_THREADS, "-3"),
        (s.ENV_VARIANT, "blue"),
        (s.ENV_VARIANT, "Stable"),
        (s.ENV_PORT, "0"),
        (s.ENV_PORT, "65536"),
        (s.ENV_PORT, "http"),
        (s.ENV_METRICS_PORT, "0"),
        (s.ENV_METRICS_PORT, "65536"),
        (s.ENV_METRICS_PORT, "metrics"),
        (s.ENV_METRICS_PORT, str(contract.MODEL_SERVICE_PORT)),  # the main port's
        (s.ENV_HOST, "not a host"),
        (s.ENV_HOST, "-bad-.example"),
        (s.ENV_SIMULATED_LATENCY_MS, "-1"),
        (s.ENV_SIMULATED_LATENCY_MS, "slow"),
        (s.ENV_SIMULATED_LATENCY_MS, "nan"),
        (s.ENV_SIMULATED_LATENCY_MS, "inf"),
        (s.ENV_SIMULATED_LATENCY_MS, "60001"),
        (s.ENV_LOG_LEVEL, "LOUD"),
        (s.ENV_CPU_COST_MS, "-1"),
        (s.ENV_CPU_COST_MS, "busy"),
        (s.ENV_CPU_COST_MS, "nan"),
        (s.ENV_CPU_COST_MS, "inf"),
        (s.ENV_CPU_COST_MS, "60001"),
        (s.ENV_PROCESSES, "0"),
        (s.ENV_PROCESSES, "65"),
        (s.ENV_PROCESSES, "two"),
        (s.ENV_PROCESSES, "1.5"),
        (s.ENV_EMULATION_DISTRIBUTION, "normal"),
        (s.ENV_EMULATION_DISTRIBUTION, "exp"),
        (s.ENV_CPU_ITERATIONS_PER_MS, "0"),
        (s.ENV_CPU_ITERATIONS_PER_MS, "-5"),
        (s.ENV_CPU_ITERATIONS_PER_MS, "fast"),
        (s.ENV_CPU_ITERATIONS_PER_MS, "inf"),
    ],
)
def test_bad_value_names_variable_value_and_what_is_allowed(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as err:
        s.from_env({**BASE, name: value})
    assert err.value.exit_code == EXIT_USAGE
    assert name in err.value.message
    assert repr(value) in err.value.message
    assert "expected" in err.value.message
    assert err.value.hint


def test_cpu_cost_error_says_what_is_allowed() -> None:
    with pytest.raises(SettingsError) as err:
        s.from_env({**BASE, s.ENV_CPU_COST_MS: "-1"})
    assert err.value.message == (
        f"{s.ENV_CPU_COST_MS}='-1' is not valid: expected milliseconds, a number from 0 to 60000"
    )
    assert err.value.hint == f"fix or unset {s.ENV_CPU_COST_MS}"


def test_missing_model_dir_says_how_to_make_one() -> None:
    with pytest.raises(SettingsError, match=s.ENV_MODEL_DIR) as err:
        s.from_env({})
    assert "model-service train --out DIR" in (err.value.hint or "")


def test_every_bad_value_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as err:
        s.from_env({**BASE, s.ENV_THREADS: "0", s.ENV_VARIANT: "blue"})
    assert s.ENV_THREADS in err.value.message
    assert s.ENV_VARIANT in err.value.message


def test_empty_value_means_default() -> None:
    assert s.from_env({**BASE, s.ENV_THREADS: ""}).threads == s.DEFAULT_THREADS


def test_metrics_port_must_differ_from_the_main_port() -> None:
    # Set equal explicitly ...
    with pytest.raises(SettingsError) as err:
        s.from_env({**BASE, s.ENV_PORT: "18081", s.ENV_METRICS_PORT: "18081"})
    assert f"{s.ENV_METRICS_PORT}='18081' is not valid" in err.value.message
    assert s.ENV_PORT in err.value.message
    assert s.ENV_PORT in (err.value.hint or "")
    # ... or the main port moved onto the metrics port's default.
    clash = str(contract.MODEL_SERVICE_METRICS_PORT)
    with pytest.raises(SettingsError) as err:
        s.from_env({**BASE, s.ENV_PORT: clash})
    assert f"{s.ENV_METRICS_PORT}={clash!r} is not valid" in err.value.message
    # A bad main port is reported once, not also as a clash with its default.
    with pytest.raises(SettingsError) as err:
        s.from_env({**BASE, s.ENV_PORT: "0", s.ENV_METRICS_PORT: str(contract.MODEL_SERVICE_PORT)})
    assert err.value.message.count("is not valid") == 1
