"""The bombardier parser, on real output captured from the pinned tool
(tests/fixtures/bombardier/capture.py made the fixtures), and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from canarylab.errors import CanarylabError
from canarylab.experiment.load import bombardier_argv, parse_bombardier, pinned_headers, review_body

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bombardier"


def fixture(name: str) -> str:
    return (FIXTURES / f"{name}.json").read_text()


def test_ok_run_latencies_are_microseconds_turned_into_seconds() -> None:
    raw = json.loads(fixture("ok-10rps-5s"))
    r = parse_bombardier(fixture("ok-10rps-5s"))
    assert r.latency_max == pytest.approx(raw["result"]["latency"]["max"] / 1e6)
    assert r.quantile(0.95) == pytest.approx(raw["result"]["latency"]["percentiles"]["95"] / 1e6)
    # the captured server slept 10 ms per request
    assert 0.010 <= r.quantile(0.5) < 0.1
    assert r.stats()["p50"] <= r.stats()["p90"] <= r.stats()["p95"] <= r.stats()["p99"] <= r.stats()["max"]
    assert (r.rate, r.duration, r.connections, r.timeout) == (10, 5, 8, 10)
    assert r.total == r.req2xx == 51
    assert r.variant_errors == 0
    assert r.error_ratio == 0
    assert r.achieved_rps == pytest.approx(51 / 5)


def test_saturated_server_the_generator_still_holds_the_offered_rate() -> None:
    """25 req/s into 4 threads x 200 ms: completions lag (rps.mean ~ 20/s, time taken > duration),
    but every request was sent on schedule: achieved (offered) rate = all requests / duration."""
    r = parse_bombardier(fixture("saturated-25rps-4threads-200ms"))
    assert r.rps_mean < 0.9 * 25  # completions, as bombardier samples them
    assert r.time_taken > r.duration  # it waited for the queue to drain
    assert r.achieved_rps >= 0.95 * 25
    assert r.quantile(0.5) > 0.4  # the queueing shows in the latency


def test_starved_generator_falls_below_the_rate() -> None:
    """2 connections x 200 ms answers hold only ~10 req/s: bombardier silently sends less,
    and its latencies hide the wait (coordinated omission).  The achieved rate shows it."""
    r = parse_bombardier(fixture("starved-c2-25rps-200ms"))
    assert r.achieved_rps < 0.6 * 25
    assert r.quantile(0.99) < 0.25  # looks fast, because requests were never sent


def test_5xx_answers_are_variant_errors() -> None:
    r = parse_bombardier(fixture("errors-20rps"))
    assert r.req5xx == 3
    assert r.variant_errors == 3
    assert r.error_ratio == pytest.approx(3 / 60)
    assert r.unreachable == 0


def test_timeouts_are_variant_errors() -> None:
    r = parse_bombardier(fixture("timeouts-1s"))
    assert r.others == r.timeouts == 13
    assert r.errors == {"timeout": 13}
    assert r.variant_errors == 13
    assert r.unreachable == 0
    assert r.latency_max == pytest.approx(1.003, abs=0.01)


def test_refused_connections_mean_unreachable_not_variant_errors() -> None:
    r = parse_bombardier(fixture("refused"))
    assert r.unreachable == r.others == 21
    assert r.variant_errors == 0
    assert any("connection refused" in d for d in r.errors)


def test_output_without_latencies_is_refused() -> None:
    data = json.loads(fixture("ok-10rps-5s"))
    del data["result"]["latency"]["percentiles"]
    with pytest.raises(CanarylabError, match="-l"):
        parse_bombardier(json.dumps(data))


@pytest.mark.parametrize("text", ["", "not json", "[]", '{"spec": {}}'])
def test_garbage_is_a_clear_error(text: str) -> None:
    with pytest.raises(CanarylabError, match="bombardier output"):
        parse_bombardier(text)


def test_the_command_line_matches_the_captured_runs() -> None:
    argv = bombardier_argv(
        "bombardier",
        "http://127.0.0.1:1/api/sentiment",
        rate=25,
        duration=5,
        connections=64,
        timeout=10,
        body='{"review": "a fine film"}',
        headers=pinned_headers("stable"),
    )
    captured = json.loads((FIXTURES / "saturated-25rps-4threads-200ms.argv.json").read_text())
    assert argv[1:-1] == captured[:-1]
    assert argv[-1] == "http://127.0.0.1:1/api/sentiment"


def test_command_line_has_rate_pinning_and_json() -> None:
    argv = bombardier_argv(
        "/b",
        "http://x/api",
        rate=10,
        duration=60,
        connections=102,
        timeout=10,
        body=review_body("good"),
        headers={"x-canarylab-variant": "canary"},
    )
    joined = " ".join(argv)
    for part in ("-r 10", "-d 60s", "-c 102", "-t 10s", "-l -o json -p r", "-m POST"):
        assert part in joined
    assert "x-canarylab-variant: canary" in argv
    assert json.loads(argv[argv.index("-b") + 1]) == {"review": "good"}


def _with_errors(errors: dict[str, int]) -> str:
    """The captured ok run with ``errors`` added as bombardier reports them (counted in ``others``)."""
    data = json.loads(fixture("ok-10rps-5s"))
    data["result"]["errors"] = [{"description": d, "count": n} for d, n in errors.items()]
    data["result"]["others"] = sum(errors.values())
    return json.dumps(data)


@pytest.mark.parametrize(
    "description",
    [
        # fasthttp, when a listening server drops a keep-alive connection
        "the server closed connection before returning the first response byte. "
        "Make sure the server returns 'Connection: close' response header before closing the connection",
        "read tcp 127.0.0.1:40112->127.0.0.1:18091: read: connection reset by peer",
        "write tcp 127.0.0.1:40112->127.0.0.1:18091: write: broken pipe",
        "EOF",
        "unexpected EOF",
    ],
)
def test_connections_a_listening_server_drops_are_errors_of_the_variant(description: str) -> None:
    r = parse_bombardier(_with_errors({description: 4}))
    assert r.unreachable == 0
    assert r.variant_errors == 4
    assert r.error_ratio == pytest.approx(4 / r.total)


@pytest.mark.parametrize(
    "description",
    [
        "dial tcp 127.0.0.1:54217: connect: connection refused",  # as captured in refused.json
        "dial tcp: lookup nowhere.invalid: no such host",
        "dial tcp 10.255.0.1:80: connect: network is unreachable",
    ],
)
def test_nobody_listening_is_unreachable(description: str) -> None:
    r = parse_bombardier(_with_errors({description: 3, "timeout": 2}))
    assert r.unreachable == 3
    assert r.variant_errors == 2  # the timeouts
