"""Prometheus for the experiment: the local target's config and process, and an HTTP API client.

The client speaks the documented HTTP API (``/api/v1/query``,
``/api/v1/query_range``, ``/api/v1/targets``, ``/-/ready``); the same client
queries the lab's Prometheus.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

import canarylab_contract as c
from canarylab.errors import CanarylabError
from canarylab.procs import ManagedProcess, ProcessGroup, wait_http_ok


@dataclass(frozen=True)
class ScrapeTarget:
    job: str  #: e.g. "model-service-stable"
    address: str  #: host:port
    component: str  #: "model-service" or "app"
    variant: str


def find_prometheus(explicit: str | None = None) -> str:
    """The Prometheus binary: ``explicit`` (the prometheus_binary role's fact), else the one on PATH."""
    if explicit:
        path = Path(explicit)
        if path.is_file():
            return str(path)
        found = shutil.which(explicit)
        if found:
            return found
        raise CanarylabError(f"prometheus binary {explicit} does not exist")
    found = shutil.which("prometheus")
    if not found:
        raise CanarylabError(
            "prometheus is not on PATH",
            "run the experiment through `canarylab experiment run` / experiment.yml (the prometheus_binary "
            "role finds or installs it), or run `make setup-minimal` and `. scripts/env.sh`",
        )
    return found


def prometheus_version(binary: str) -> str:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0] if first else "unknown"


def rules_file_ok(rules: Path, promtool: str | None = None) -> tuple[bool, str]:
    """Whether ``rules`` loads (``promtool check rules``); a broken file must not stop the experiment."""
    tool = promtool or shutil.which("promtool")
    if not rules.is_file():
        return False, f"{rules} does not exist"
    if not tool:
        return True, "promtool not found: loaded unchecked"
    out = subprocess.run([tool, "check", "rules", str(rules)], capture_output=True, text=True, check=False)
    return out.returncode == 0, (out.stdout + out.stderr).strip()[-500:]


def render_config(
    targets: Sequence[ScrapeTarget],
    *,
    scrape_interval: str = "1s",
    rule_files: Sequence[Path] = (),
) -> str:
    """prometheus.yml that scrapes every target every ``scrape_interval``.

    Target labels are ``component``, ``job`` and the contract's pod label (the job's name:
    on the local target each process stands for a pod); the ``variant`` label comes
    from the services' own metrics (a target label of the same name would
    rename theirs to ``exported_variant``).
    """
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": scrape_interval,
            "external_labels": {"canarylab_target": "local"},
        },
        "scrape_configs": [
            {
                "job_name": t.job,
                "metrics_path": c.METRICS_PATH,
                "static_configs": [
                    {"targets": [t.address], "labels": {"component": t.component, c.LABEL_POD: t.job}}
                ],
            }
            for t in targets
        ],
    }
    if rule_files:
        config["rule_files"] = [str(p) for p in rule_files]
    return yaml.safe_dump(config, sort_keys=False)


def start_prometheus(
    group: ProcessGroup,
    binary: str,
    workdir: Path,
    config_text: str,
    port: int,
) -> ManagedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(config_text)
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1d",
        "--log.level=warn",
    ]
    return group.start("prometheus", argv, workdir / "prometheus.log")


class PrometheusError(CanarylabError):
    pass


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]


def _float(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


class PrometheusClient:
    """A thin client of the Prometheus HTTP API that keeps the raw answers it received."""

    def __init__(self, url: str, *, timeout: float = 10.0, session: requests.Session | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        #: every query and its raw JSON answer, for the results directory
        self.log: list[dict[str, Any]] = []
        #: validity warnings not yet recorded in a collection (:func:`wait_scraped_after` timeouts)
        self.warnings: list[str] = []

    def _get(self, path: str, params: Mapping[str, str | float]) -> Any:
        try:
            resp = self.session.get(f"{self.url}{path}", params=dict(params), timeout=self.timeout)
        except requests.RequestException as err:
            raise PrometheusError(f"Prometheus at {self.url} did not answer: {type(err).__name__}") from err
        try:
            body = resp.json()
        except ValueError:
            raise PrometheusError(f"Prometheus {path}: HTTP {resp.status_code}, not JSON") from None
        if resp.status_code != 200 or body.get("status") != "success":
            raise PrometheusError(
                f"Prometheus {path} failed ({resp.status_code}): {body.get('errorType')}: {body.get('error')}"
                f"\n  query: {params.get('query', '')}"
            )
        return body

    def ready(self) -> bool:
        try:
            return self.session.get(f"{self.url}/-/ready", timeout=2).ok
        except requests.RequestException:
            return False

    def query(self, expr: str, at: float | None = None, *, key: str | None = None) -> list[Sample]:
        params: dict[str, str | float] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        body = self._get("/api/v1/query", params)
        self.log.append({"key": key, "kind": "instant", "query": expr, "time": at, "response": body})
        data = body["data"]
        if data["resultType"] == "scalar":
            return [Sample({}, _float(data["result"][1]))]
        if data["resultType"] != "vector":
            raise PrometheusError(f"unexpected result type {data['resultType']} for {expr}")
        return [Sample(dict(r["metric"]), _float(r["value"][1])) for r in data["result"]]

    def query_range(
        self, expr: str, start: float, end: float, step: float, *, key: str | None = None
    ) -> list[Series]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        body = self._get("/api/v1/query_range", params)
        self.log.append(
            {"key": key, "kind": "range", "query": expr, "start": start, "end": end, "step": step}
            | {"response": body}
        )
        return [
            Series(dict(r["metric"]), [(float(t), _float(v)) for t, v in r["values"]])
            for r in body["data"]["result"]
        ]

    def targets(self) -> list[dict[str, Any]]:
        body = self._get("/api/v1/targets", {"state": "active"})
        return list(body["data"]["activeTargets"])

    def wait_targets_up(
        self, jobs: Sequence[str], timeout: float, process: ManagedProcess | None = None
    ) -> None:
        """Wait until /-/ready and every job's target has been scraped successfully."""
        wait_http_ok(f"{self.url}/-/ready", timeout, process)
        deadline = time.monotonic() + timeout
        last: dict[str, str] = {}
        while time.monotonic() < deadline:
            if process is not None and not process.running():
                raise CanarylabError(f"prometheus exited:\n{process.log_tail()}")
            try:
                active = self.targets()
            except PrometheusError:
                active = []
            last = {
                t["labels"].get("job", "?"): f"{t['health']} {t.get('lastError', '')}".strip() for t in active
            }
            if all(last.get(job, "").startswith("up") for job in jobs):
                return
            time.sleep(0.2)
        down = {j: last.get(j, "not scraped yet") for j in jobs if not last.get(j, "").startswith("up")}
        raise CanarylabError(f"Prometheus targets not up after {timeout:.0f}s: {down}")


def scraped_after_query(matchers: str, after: float) -> str:
    """PromQL that returns a sample only when every target matching ``matchers`` has, as its latest
    scrape, a *successful* one (``up == 1``) that started after ``after``.

    ``timestamp(up)`` alone advances on failed scrapes too (``up`` is written
    as 0 and the target's other series go stale), so it is not enough.
    """
    sel = f"up{{{matchers}}}"
    return f"count({sel} == 1 and timestamp({sel}) > {after:.3f}) == count({sel})"


def wait_scraped_after(
    client: PrometheusClient, matchers: str, after: float, timeout: float, poll: float = 0.1
) -> float:
    """Wait until every target matching ``matchers`` has a successful scrape that *started* after ``after``.

    Samples carry their scrape's start time, so such a scrape holds everything
    that completed before ``after``; the latest scrape must have succeeded, else
    the target's series are stale at the returned time.  Returns the time it was
    seen.  After ``timeout`` it returns anyway and adds a validity warning to
    ``client.warnings`` (the next collection records it in the results).
    """
    expr = scraped_after_query(matchers, after)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            samples = client.query(expr)
        except PrometheusError:
            samples = []
        if samples and samples[0].value > 0:
            return time.time()
        time.sleep(poll)
    stamp = time.strftime("%H:%M:%S", time.gmtime(after))
    client.warnings.append(
        f"Prometheus had no successful scrape (up == 1) of every target ({matchers}) started after "
        f"{stamp} UTC within {timeout:g} s; the window ends without it, so the server-side statistics "
        "may miss the last requests"
    )
    return time.time()


def by_label(samples: Sequence[Sample], label: str = c.LABEL_VARIANT) -> dict[str, float]:
    """``{variant: value}`` of an instant query result."""
    return {s.labels.get(label, ""): s.value for s in samples}
