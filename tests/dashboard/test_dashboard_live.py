"""Every panel of the dashboard against a real Prometheus scraping the real services.

The local target (D's LocalTarget: 2 model-services, 2 apps, Prometheus, all on
127.0.0.1, with prometheus/canarylab-rules.yml loaded) gets a short bounded
load from a Python loop; then every panel query, with the dashboard variables
substituted ($namespace -> All, $interval -> 1m), must return series for both
variants and no NaN.  The recording rules must produce their series too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

import canarylab_contract as c
from canarylab import queries, rules
from canarylab.cli import main
from canarylab.dashboard import files
from canarylab.dashboard.build import build
from canarylab.dashboard.promql import variable_values
from canarylab.dashboard.verify import Prometheus, QueryCheck, verify
from canarylab.experiment.targets.local import LocalTarget, VariantConfig

pytestmark = pytest.mark.integration

LOAD_SECONDS = 8.0
WORKERS_PER_VARIANT = 4
#: Every this many requests a worker sends an invalid one (a client error for the error panel).
BAD_EVERY = 10
WINDOW = "1m"


def _load(target: LocalTarget, stop: threading.Event, counts: dict[str, int]) -> list[threading.Thread]:
    lock = threading.Lock()

    def worker(variant: str) -> None:
        endpoint = target.endpoints[variant]
        session = requests.Session()
        n = 0
        while not stop.is_set():
            n += 1
            body = {"review": f"a fine and thoughtful film, number {n}"} if n % BAD_EVERY else {"text": "x"}
            resp = session.post(endpoint.url, json=body, headers=endpoint.headers, timeout=10)
            assert resp.headers.get(c.VARIANT_HEADER) == variant
            with lock:
                counts[f"{variant} {resp.status_code}"] = counts.get(f"{variant} {resp.status_code}", 0) + 1

    threads = [
        threading.Thread(target=worker, args=(v,), daemon=True)
        for v in c.VARIANTS
        for _ in range(WORKERS_PER_VARIANT)
    ]
    for t in threads:
        t.start()
    return threads


@dataclass(frozen=True)
class Loaded:
    target: LocalTarget
    #: "<variant> <HTTP status>" -> responses
    counts: dict[str, int]
    #: every panel check evaluates at this instant, however long the tests take
    at: float

    def verify(self, dashboard: dict[str, Any] | None = None) -> list[QueryCheck]:
        return verify(self.target.prometheus_url, dashboard or build(), variable_values(WINDOW), at=self.at)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, trained_model_dir: Path, root: Path) -> Iterator[Loaded]:
    variants = {v: VariantConfig(v, c.DEFAULT_THREADS[v]) for v in c.VARIANTS}
    workdir = tmp_path_factory.mktemp("local-target")
    with LocalTarget(
        variants,
        workdir,
        scrape_interval="1s",
        rules_file=root / files.LOCAL_RULES,
        model_dir=trained_model_dir,
    ) as target:
        stop = threading.Event()
        counts: dict[str, int] = {}
        threads = _load(target, stop, counts)
        time.sleep(LOAD_SECONDS)
        stop.set()
        for t in threads:
            t.join(30)
        time.sleep(2.5)  # two more scrapes after the last request
        yield Loaded(target, counts, time.time())


def test_every_panel_query_returns_data_without_nan(loaded: Loaded) -> None:
    for v in c.VARIANTS:
        assert loaded.counts.get(f"{v} 200", 0) > 0, loaded.counts
    checks = loaded.verify()
    failed = [f"{ch.query.name}: {ch.problem}\n    {ch.promql}" for ch in checks if not ch.ok]
    assert not failed, "\n".join(failed)
    assert len(checks) == 18

    for ch in checks:
        expected = (
            {ch.query.panel_title.rsplit(": ", 1)[1]}
            if "vs threads" in ch.query.panel_title
            else set(c.VARIANTS)
        )
        if "÷" in ch.query.panel_title:
            continue  # one ratio series, no variant label
        assert ch.label_values(c.LABEL_VARIANT) == expected, f"{ch.query.name}: {ch.series}"


def test_panel_values_are_what_the_services_did(loaded: Loaded) -> None:
    checks = loaded.verify()
    by_title: dict[str, list[QueryCheck]] = {}
    for ch in checks:
        by_title.setdefault(ch.query.panel_title, []).append(ch)

    for v in c.VARIANTS:
        threads = next(
            ch for ch in by_title[f"In-flight requests vs threads: {v}"] if c.MODEL_THREADS in ch.promql
        )
        assert [s.value for s in threads.series] == [c.DEFAULT_THREADS[v]]
    rate = by_title[queries.REQUEST_RATE.title][0]
    assert all(s.value > 0 for s in rate.series)
    errors = by_title[queries.ERROR_RATIO.title][0]
    assert all(0 < s.value < 1 for s in errors.series), errors.series  # every BAD_EVERY-th was invalid
    p50, p90, p95 = by_title["Model-service response time p50 / p90 / p95"]
    for v in c.VARIANTS:
        values = [
            next(s.value for s in ch.series if s.labels[c.LABEL_VARIANT] == v) for ch in (p50, p90, p95)
        ]
        assert 0 < values[0] <= values[1] <= values[2], (v, values)
    mx = by_title[queries.PROCESSING_MAX.title][0]
    assert all(s.value > 0 for s in mx.series)
    # the model-service's own CPU: a few ms of real model per request, and far from a core each
    per_request = by_title[queries.CPU_PER_REQUEST.title][0]
    assert all(0 < s.value < 0.5 for s in per_request.series), per_request.series
    per_process = by_title[queries.CPU_PER_PROCESS.title][0]
    assert all(0 < s.value < 1.5 for s in per_process.series), per_process.series
    busy = by_title[queries.UTILISATION.title][0]
    assert all(0 <= s.value <= 1 for s in busy.series), busy.series


def test_verify_command(loaded: Loaded, capsys: pytest.CaptureFixture[str]) -> None:
    url = loaded.target.prometheus_url
    assert main(["dashboard", "verify", "--prometheus-url", url, "--at", f"{loaded.at:.3f}"]) == 0
    assert "all 18 panel queries returned data" in capsys.readouterr().out


def test_verify_catches_an_empty_panel_and_a_nan(loaded: Loaded) -> None:
    """The same check fails for a misspelt metric and for a 0/0, so its green result means something."""
    dashboard = build()
    panel = next(p for p in dashboard["panels"] if p["type"] == "timeseries")
    panel["targets"] = [
        {
            **panel["targets"][0],
            "refId": "A",
            "expr": 'rate(canarylab_no_such_metric{namespace=~"$namespace"}[$interval])',
        },
        {
            **panel["targets"][0],
            "refId": "B",
            "expr": f"sum(rate({c.APP_REQUESTS_TOTAL}[$interval])) * 0 / 0",
        },
    ]
    checks = loaded.verify(dashboard)
    problems = {ch.query.ref_id: ch.problem for ch in checks if not ch.ok}
    assert problems == {"A": "no series", "B": "NaN for [{}]"}


def test_recording_rules_evaluate_on_the_real_metrics(loaded: Loaded) -> None:
    """Last: it may wait for a rule evaluation."""
    target = loaded.target
    assert target.rules.get("loaded") is True, target.rules
    prom = Prometheus(target.prometheus_url)
    wanted = [
        rules.quantile_record(c.APP_MODEL_RESPONSE_SECONDS, 0.95),
        rules.quantile_record(c.MODEL_PROCESSING_SECONDS, 0.95),
        rules.REQUEST_RATE_RECORD,
        rules.ERROR_RATIO_RECORD,
    ]
    deadline = time.monotonic() + 60  # the groups run every EVALUATION_INTERVAL
    missing = wanted
    while missing and time.monotonic() < deadline:
        missing = [
            name
            for name in wanted
            if {r["metric"].get(c.LABEL_VARIANT) for r in prom.query(f"last_over_time({name}[2m])")}
            != set(c.VARIANTS)
        ]
        time.sleep(1)
    assert not missing, f"no series for both variants from {missing}"
    assert prom.query(f"last_over_time({rules.P95_RATIO_RECORD}[2m])"), "the canary/stable ratio is recorded"
