"""Runs every panel query of a dashboard against a real Prometheus: each must return at least one
series, and no NaN.  A panel that shows "No data" in Grafana fails here first."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from canarylab.dashboard.promql import PanelQuery, panel_queries, substitute
from canarylab.errors import CanarylabError


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class QueryCheck:
    query: PanelQuery
    promql: str
    series: tuple[Series, ...] = ()
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def label_values(self, label: str) -> set[str]:
        return {s.labels[label] for s in self.series if label in s.labels}


@dataclass
class Prometheus:
    """Just enough of Prometheus's HTTP API: instant queries."""

    url: str
    timeout: float = 10.0
    session: requests.Session = field(default_factory=requests.Session)

    def query(self, promql: str, at: float | None = None) -> list[dict[str, Any]]:
        params: dict[str, str] = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        endpoint = f"{self.url.rstrip('/')}/api/v1/query"
        try:
            resp = self.session.get(endpoint, params=params, timeout=self.timeout)
        except requests.ConnectionError as err:
            raise CanarylabError(
                f"cannot reach Prometheus at {self.url}", "check --prometheus-url and that it runs"
            ) from err
        try:
            body = resp.json()
        except ValueError as err:
            raise CanarylabError(
                f"{endpoint} answered HTTP {resp.status_code} without JSON: is {self.url} Prometheus?"
            ) from err
        if body.get("status") != "success":
            raise QueryError(f"{body.get('errorType', 'error')}: {body.get('error', resp.text[:200])}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


class QueryError(Exception):
    """Prometheus rejected a query (bad PromQL, timeout)."""


def _series(result: list[dict[str, Any]]) -> tuple[Series, ...]:
    return tuple(Series(dict(r.get("metric", {})), float(r["value"][1])) for r in result)


def check_query(
    prom: Prometheus, query: PanelQuery, values: Mapping[str, str], at: float | None
) -> QueryCheck:
    promql = substitute(query.expr, values)
    try:
        series = _series(prom.query(promql, at))
    except QueryError as err:
        return QueryCheck(query, promql, problem=f"Prometheus rejected it: {err}")
    if not series:
        return QueryCheck(query, promql, series, problem="no series")
    nan = [s.labels for s in series if math.isnan(s.value)]
    if nan:
        return QueryCheck(query, promql, series, problem=f"NaN for {nan}")
    return QueryCheck(query, promql, series)


def verify(
    prometheus_url: str,
    dashboard: Mapping[str, Any],
    values: Mapping[str, str],
    at: float | None = None,
) -> list[QueryCheck]:
    """One :class:`QueryCheck` per panel query, evaluated at ``at`` (default: now)."""
    prom = Prometheus(prometheus_url)
    return [check_query(prom, q, values, at) for q in panel_queries(dashboard)]
