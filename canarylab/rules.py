"""Prometheus recording and alerting rules for canarylab, written once.

The same groups go to two places (see :mod:`canarylab.dashboard.files`):

- ``prometheus/canarylab-rules.yml``: a plain rules file the local target's
  Prometheus loads through ``rule_files``;
- ``charts/canarylab/files/rules.yaml``: the groups the chart's PrometheusRule
  carries in the lab.

Every aggregation keeps ``namespace`` and ``variant``.  In the lab a
ServiceMonitor adds ``namespace``; on the local target it is absent, and
``by (namespace, ...)`` then simply yields series without it, so one
expression serves both.

Alert thresholds live here and nowhere else: the dashboard draws them as
threshold lines on the panels the alerts watch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import canarylab_contract as c
from canarylab.queries import PERCENTILES

#: The label the lab's ServiceMonitors add (absent on the local target).
NAMESPACE_LABEL = "namespace"
#: Range of every recorded rate and quantile.
RULE_WINDOW = "1m"
#: How often the groups are evaluated (both targets' global default is coarser).
EVALUATION_INTERVAL = "15s"
GROUP_NAME = "canarylab.rules"
ALERT_GROUP_NAME = "canarylab.alerts"

#: The canary's p95 may be this many times the stable p95 before the alert fires...
P95_RATIO_THRESHOLD = 1.5
#: ...for this long.
ALERT_FOR = "2m"
#: The canary's error ratio may exceed stable's by this much (absolute) before its alert fires.
ERROR_RATIO_MARGIN = 0.05
#: Below this canary request rate (req/s) quantiles are noise: no latency or error alert.
MIN_CANARY_RPS = 0.5

P95 = 0.95
_BY = f"{NAMESPACE_LABEL}, {c.LABEL_VARIANT}"


def _pct(q: float) -> str:
    return f"p{round(q * 100)}"


def _base(metric: str) -> str:
    """A counter's name without ``_total``, as the recording-rule convention asks."""
    return metric.removesuffix("_total")


def quantile_record(metric: str, q: float) -> str:
    """``namespace_variant:<histogram>:p95_1m``: level, metric, operation."""
    return f"namespace_variant:{metric}:{_pct(q)}_{RULE_WINDOW}"


def ratio_record(metric: str, q: float) -> str:
    return f"namespace:{metric}:{_pct(q)}_{c.CANARY}_over_{c.STABLE}_{RULE_WINDOW}"


REQUEST_RATE_RECORD = f"namespace_variant:{_base(c.APP_REQUESTS_TOTAL)}:rate{RULE_WINDOW}"
ERROR_RATIO_RECORD = f"namespace_variant:{_base(c.APP_REQUESTS_TOTAL)}:error_ratio_{RULE_WINDOW}"
P95_RATIO_RECORD = ratio_record(c.APP_MODEL_RESPONSE_SECONDS, P95)

ALERT_P95 = "CanarylabCanaryP95Regression"
ALERT_ERRORS = "CanarylabCanaryErrorRatio"
#: Every alert name starts with this (the dashboard's alert annotations match it).
ALERT_PREFIX = "Canarylab"


@dataclass(frozen=True)
class Record:
    record: str
    expr: str

    def as_dict(self) -> dict[str, Any]:
        return {"record": self.record, "expr": self.expr}


@dataclass(frozen=True)
class Alert:
    alert: str
    expr: str
    for_: str
    labels: dict[str, str]
    annotations: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "alert": self.alert,
            "expr": self.expr,
            "for": self.for_,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
        }


@dataclass(frozen=True)
class Group:
    name: str
    rules: tuple[Record | Alert, ...]
    interval: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.interval:
            out["interval"] = self.interval
        out["rules"] = [r.as_dict() for r in self.rules]
        return out


def _quantile_expr(metric: str, q: float) -> str:
    return f"histogram_quantile({q}, sum by (le, {_BY}) (rate({metric}_bucket[{RULE_WINDOW}])))"


def recording_rules() -> tuple[Record, ...]:
    records = [
        Record(quantile_record(metric, q), _quantile_expr(metric, q))
        for metric in (c.APP_MODEL_RESPONSE_SECONDS, c.MODEL_PROCESSING_SECONDS)
        for q in PERCENTILES
    ]
    p95 = quantile_record(c.APP_MODEL_RESPONSE_SECONDS, P95)
    v = c.LABEL_VARIANT
    records += [
        # Canary over stable, per namespace: 1 means equal; the p95 alert watches it.
        Record(
            P95_RATIO_RECORD,
            f'{p95}{{{v}="{c.CANARY}"}} / ignoring({v}) {p95}{{{v}="{c.STABLE}"}}',
        ),
        Record(REQUEST_RATE_RECORD, f"sum by ({_BY}) (rate({c.APP_REQUESTS_TOTAL}[{RULE_WINDOW}]))"),
        # Failed requests over all requests; 0 (not "no data") while nothing fails.
        Record(
            ERROR_RATIO_RECORD,
            f"(sum by ({_BY}) "
            f'(rate({c.APP_REQUESTS_TOTAL}{{{c.LABEL_OUTCOME}!="{c.OUTCOME_OK}"}}[{RULE_WINDOW}]))'
            f" or {REQUEST_RATE_RECORD} * 0) / {REQUEST_RATE_RECORD}",
        ),
    ]
    return tuple(records)


def _enough_canary_traffic() -> str:
    return f'on({NAMESPACE_LABEL}) {REQUEST_RATE_RECORD}{{{c.LABEL_VARIANT}="{c.CANARY}"}} > {MIN_CANARY_RPS}'


def alerting_rules() -> tuple[Alert, ...]:
    v = c.LABEL_VARIANT
    where = f"{{{{ with $labels.{NAMESPACE_LABEL} }}}} in namespace {{{{ . }}}}{{{{ end }}}}"
    return (
        Alert(
            alert=ALERT_P95,
            expr=f"{P95_RATIO_RECORD} > {P95_RATIO_THRESHOLD} and {_enough_canary_traffic()}",
            for_=ALERT_FOR,
            labels={"severity": "warning", v: c.CANARY},
            annotations={
                "summary": f"The canary's p95 response time is over {P95_RATIO_THRESHOLD}x the stable one.",
                "description": (
                    f"Model-service response time p95 (as the app sees it, over {RULE_WINDOW}): "
                    f'{c.CANARY} is {{{{ $value | printf "%.2f" }}}}x {c.STABLE}{where}, '
                    f"above {P95_RATIO_THRESHOLD}x for {ALERT_FOR}."
                ),
            },
        ),
        Alert(
            alert=ALERT_ERRORS,
            expr=(
                f'{ERROR_RATIO_RECORD}{{{v}="{c.CANARY}"}} > ignoring({v}) '
                f'({ERROR_RATIO_RECORD}{{{v}="{c.STABLE}"}} + {ERROR_RATIO_MARGIN}) '
                f"and {_enough_canary_traffic()}"
            ),
            for_=ALERT_FOR,
            labels={"severity": "warning", v: c.CANARY},
            annotations={
                "summary": (
                    f"The canary fails more than {ERROR_RATIO_MARGIN:.0%} more of its requests than stable."
                ),
                "description": (
                    f"{c.CANARY} error ratio over {RULE_WINDOW} is "
                    f"{{{{ $value | humanizePercentage }}}}{where}, more than "
                    f"{ERROR_RATIO_MARGIN:.0%} above {c.STABLE}'s for {ALERT_FOR}."
                ),
            },
        ),
    )


def groups() -> list[dict[str, Any]]:
    """The rule groups, as Prometheus's rule-file ``groups:`` list."""
    return [
        Group(GROUP_NAME, recording_rules(), EVALUATION_INTERVAL).as_dict(),
        Group(ALERT_GROUP_NAME, alerting_rules(), EVALUATION_INTERVAL).as_dict(),
    ]


# --- promtool unit tests ---------------------------------------------------------
# Input series are built from the contract's names; the expected values and alerts
# below are worked out by hand (see each case), so a wrong rule fails the test.

TEST_SCRAPE = "15s"
_STEPS = 40  # 10 minutes of 15 s samples

#: Histogram bucket bounds of the test series (any subset of buckets is a valid histogram).
TEST_BUCKETS: tuple[str, ...] = ("0.1", "0.2", "0.25", "0.3", "0.4", "+Inf")


def counter(*segments: tuple[float, int]) -> str:
    """promtool's expanding notation for a counter growing by ``inc`` per sample for ``n`` samples."""
    parts = ["0"]
    total = 0.0
    for inc, n in segments:
        parts.append(f"{_num(total + inc)}+{_num(inc)}x{n - 1}")
        total += inc * n
    return " ".join(parts)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in labels.items())


def histogram(
    metric: str, labels: dict[str, str], segments: list[tuple[str, float, int]]
) -> list[dict[str, str]]:
    """Bucket series where, for each (bucket, per_sample, samples) segment, every observation
    falls in ``bucket`` (so every ``le`` at or above it grows)."""
    out = []
    for le in TEST_BUCKETS:
        segs = [(per if _le(le) >= _le(b) else 0.0, n) for b, per, n in segments]
        out.append(
            {"series": f"{metric}_bucket{{{_labels({**labels, 'le': le})}}}", "values": counter(*segs)}
        )
    return out


def _le(bound: str) -> float:
    return float("inf") if bound == "+Inf" else float(bound)


def _requests(labels: dict[str, str], ok: float, failed: float = 0.0) -> list[dict[str, str]]:
    out = [
        {
            "series": f"{c.APP_REQUESTS_TOTAL}{{{_labels({**labels, c.LABEL_OUTCOME: c.OUTCOME_OK})}}}",
            "values": counter((ok, _STEPS)),
        }
    ]
    if failed:
        out.append(
            {
                "series": (
                    f"{c.APP_REQUESTS_TOTAL}"
                    f"{{{_labels({**labels, c.LABEL_OUTCOME: c.OUTCOME_SERVER_ERROR})}}}"
                ),
                "values": counter((failed, _STEPS)),
            }
        )
    return out


def _traffic(
    ns: dict[str, str],
    stable_bucket: str,
    canary: list[tuple[str, float, int]],
    *,
    canary_rps: float = 1.0,
    stable_errors: float = 0.0,
    canary_errors: float = 0.0,
) -> list[dict[str, str]]:
    """Both variants' series: stable always answers within ``stable_bucket``, at 1 req/s."""
    per = 15.0  # 1 req/s at a 15 s scrape
    m = c.APP_MODEL_RESPONSE_SECONDS
    v = c.LABEL_VARIANT
    return [
        *histogram(m, {**ns, v: c.STABLE}, [(stable_bucket, per, _STEPS)]),
        *histogram(m, {**ns, v: c.CANARY}, canary),
        *_requests({**ns, v: c.STABLE}, per * (1 - stable_errors), per * stable_errors),
        *_requests(
            {**ns, v: c.CANARY}, canary_rps * per * (1 - canary_errors), canary_rps * per * canary_errors
        ),
    ]


def _p95_alert(ns: dict[str, str], ratio: str) -> dict[str, Any]:
    rule = alerting_rules()[0]
    where = f" in namespace {ns[NAMESPACE_LABEL]}" if ns else ""
    return {
        "exp_labels": {**ns, **rule.labels},
        "exp_annotations": {
            "summary": rule.annotations["summary"],
            "description": (
                f"Model-service response time p95 (as the app sees it, over {RULE_WINDOW}): "
                f"{c.CANARY} is {ratio}x {c.STABLE}{where}, above {P95_RATIO_THRESHOLD}x for {ALERT_FOR}."
            ),
        },
    }


def _error_alert(ns: dict[str, str], percent: str) -> dict[str, Any]:
    rule = alerting_rules()[1]
    where = f" in namespace {ns[NAMESPACE_LABEL]}" if ns else ""
    return {
        "exp_labels": {**ns, **rule.labels},
        "exp_annotations": {
            "summary": rule.annotations["summary"],
            "description": (
                f"{c.CANARY} error ratio over {RULE_WINDOW} is {percent}{where}, more than "
                f"{ERROR_RATIO_MARGIN:.0%} above {c.STABLE}'s for {ALERT_FOR}."
            ),
        },
    }


def _alerts(name: str, at: str, alerts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"eval_time": at, "alertname": name, "exp_alerts": alerts}


def unit_tests(rule_file: str) -> dict[str, Any]:
    """A ``promtool test rules`` document for ``rule_file`` (a path relative to the test file)."""
    lab = {NAMESPACE_LABEL: "lab"}
    local: dict[str, str] = {}
    v = c.LABEL_VARIANT
    slow = [("0.4", 15.0, _STEPS)]  # every canary answer in (0.3, 0.4]: p95 = 0.3 + 0.1 * 0.95 = 0.395
    p95 = quantile_record(c.APP_MODEL_RESPONSE_SECONDS, P95)
    p50 = quantile_record(c.APP_MODEL_RESPONSE_SECONDS, 0.5)
    tests: list[dict[str, Any]] = [
        {
            # Stable in (0.2, 0.25]: p95 = 0.2475; canary p95 = 0.395, 1.60x: above 1.5x.
            # The ratio exists from 15 s on (two samples), so it fires once 2m have passed: at 2m15s.
            "name": "a slow canary fires the p95 alert after 2 minutes (lab, with namespace)",
            "interval": TEST_SCRAPE,
            "input_series": _traffic(lab, "0.25", slow),
            "promql_expr_test": [
                {
                    "expr": p50,
                    "eval_time": "3m",
                    "exp_samples": [
                        {"labels": f"{p50}{{{_labels({**lab, v: c.CANARY})}}}", "value": 0.35},
                        {"labels": f"{p50}{{{_labels({**lab, v: c.STABLE})}}}", "value": 0.225},
                    ],
                },
                {
                    "expr": f"round({P95_RATIO_RECORD}, 0.001)",
                    "eval_time": "3m",
                    "exp_samples": [{"labels": f"{{{_labels(lab)}}}", "value": 1.596}],
                },
                {
                    "expr": f"round({p95}, 0.0001)",
                    "eval_time": "3m",
                    "exp_samples": [
                        {"labels": f"{{{_labels({**lab, v: c.CANARY})}}}", "value": 0.395},
                        {"labels": f"{{{_labels({**lab, v: c.STABLE})}}}", "value": 0.2475},
                    ],
                },
                {
                    "expr": REQUEST_RATE_RECORD,
                    "eval_time": "3m",
                    "exp_samples": [
                        {"labels": f"{REQUEST_RATE_RECORD}{{{_labels({**lab, v: c.CANARY})}}}", "value": 1},
                        {"labels": f"{REQUEST_RATE_RECORD}{{{_labels({**lab, v: c.STABLE})}}}", "value": 1},
                    ],
                },
            ],
            "alert_rule_test": [
                _alerts(ALERT_P95, "1m", []),
                _alerts(ALERT_P95, "2m", []),
                _alerts(ALERT_P95, "3m", [_p95_alert(lab, "1.60")]),
                _alerts(ALERT_ERRORS, "3m", []),
            ],
        },
        {
            "name": "a slow canary fires on the local target too (no namespace label)",
            "interval": TEST_SCRAPE,
            "input_series": _traffic(local, "0.25", slow),
            "alert_rule_test": [_alerts(ALERT_P95, "5m", [_p95_alert(local, "1.60")])],
        },
        {
            # Canary in (0.25, 0.3]: p95 = 0.2975, 1.20x stable: under 1.5x.
            "name": "a canary 1.2x slower than stable does not fire",
            "interval": TEST_SCRAPE,
            "input_series": _traffic(lab, "0.25", [("0.3", 15.0, _STEPS)]),
            "alert_rule_test": [_alerts(ALERT_P95, "5m", []), _alerts(ALERT_P95, "9m", [])],
        },
        {
            "name": "a canary as fast as stable does not fire",
            "interval": TEST_SCRAPE,
            "input_series": _traffic(lab, "0.25", [("0.25", 15.0, _STEPS)]),
            "alert_rule_test": [_alerts(ALERT_P95, "9m", [])],
        },
        {
            # Slow for the first minute only, then as fast as stable: pending, never firing.
            "name": "a one-minute latency spike does not fire",
            "interval": TEST_SCRAPE,
            "input_series": _traffic(lab, "0.25", [("0.4", 15.0, 4), ("0.25", 15.0, _STEPS - 4)]),
            "alert_rule_test": [_alerts(ALERT_P95, t, []) for t in ("1m", "2m", "3m", "6m")],
        },
        {
            # 0.1 req/s: too little traffic for a p95 to mean anything.
            "name": "a slow canary with almost no traffic does not fire",
            "interval": TEST_SCRAPE,
            "input_series": _traffic(lab, "0.25", [("0.4", 1.5, _STEPS)], canary_rps=0.1),
            "alert_rule_test": [_alerts(ALERT_P95, "5m", [])],
        },
        {
            # Canary fails 20% of its requests, stable none.
            "name": "a canary failing 20% of its requests fires the error alert",
            "interval": TEST_SCRAPE,
            "input_series": _traffic(lab, "0.25", [("0.25", 15.0, _STEPS)], canary_errors=0.2),
            "promql_expr_test": [
                {
                    "expr": f"round({ERROR_RATIO_RECORD}, 0.001)",
                    "eval_time": "3m",
                    "exp_samples": [
                        {"labels": f"{{{_labels({**lab, v: c.CANARY})}}}", "value": 0.2},
                        {"labels": f"{{{_labels({**lab, v: c.STABLE})}}}", "value": 0},
                    ],
                },
            ],
            "alert_rule_test": [
                _alerts(ALERT_ERRORS, "2m", []),
                _alerts(ALERT_ERRORS, "3m", [_error_alert(lab, "20%")]),
                _alerts(ALERT_P95, "3m", []),
            ],
        },
        {
            # Both variants fail 20%: the canary is no worse, so no canary alert.
            "name": "errors in both variants do not fire the canary error alert",
            "interval": TEST_SCRAPE,
            "input_series": _traffic(
                lab, "0.25", [("0.25", 15.0, _STEPS)], stable_errors=0.2, canary_errors=0.2
            ),
            "alert_rule_test": [_alerts(ALERT_ERRORS, "5m", [])],
        },
    ]
    return {"rule_files": [rule_file], "evaluation_interval": EVALUATION_INTERVAL, "tests": tests}
