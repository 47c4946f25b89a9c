"""The canarylab dashboard: stable against canary, every panel a query of :mod:`canarylab.queries`.

Panels render the shared query templates with the dashboard's variables
(``$namespace`` in the selector, ``$interval`` as the range), so the
experiment report, which renders the same templates with a fixed window,
shows the same numbers.  Alert thresholds come from :mod:`canarylab.rules`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import canarylab_contract as c
from canarylab import queries, rules
from canarylab.dashboard.layout import GridPos, Layout
from canarylab.dashboard.panels import (
    SCHEMA_VERSION,
    IntervalVariable,
    Override,
    PromAnnotation,
    Target,
    Threshold,
    TimeSeries,
    builtin_annotations,
    dashed,
    datasource_variable,
    fixed_color,
    label_values_variable,
    line_width,
    row,
    tag_annotations,
)
from canarylab.style import VARIANT_COLORS

UID = "canarylab-latency"
TITLE = "canarylab: stable vs canary"
#: Tag on the dashboard and on every annotation the experiment engine posts.
TAG = "canarylab"
NAMESPACE_VAR = "namespace"
INTERVAL_VAR = "interval"
#: Range choices for rate() and the quantiles; the default suits a 1-15 s scrape interval.
INTERVAL_CHOICES = ("30s", "1m", "2m", "5m", "10m")
INTERVAL_DEFAULT = "1m"
#: The response-time quantiles of the seed's graph.
SEED_QUANTILES = (0.5, 0.9, 0.95)
#: One colour per variant on every panel.

SELECTOR = f'{rules.NAMESPACE_LABEL}=~"${NAMESPACE_VAR}"'
WINDOW = f"${INTERVAL_VAR}"


def _target(query: queries.Query, extra_matchers: str = "", legend: str | None = None) -> Target:
    selector = f"{SELECTOR},{extra_matchers}" if extra_matchers else SELECTOR
    return Target(query=query, expr=query.render(WINDOW, selector), legend=legend)


def _variant_colors() -> tuple[Override, ...]:
    return tuple(Override(f"/^{v}\\b/", (fixed_color(color),)) for v, color in VARIANT_COLORS.items())


def _quantile_styles(qs: Sequence[float]) -> tuple[Override, ...]:
    """The highest quantile solid and bold, p50 dashed, the others dotted: colour stays the variant."""
    names = [f"p{round(q * 100)}" for q in qs]
    styles: list[Override] = []
    for name in names:
        if name == names[-1]:
            props: tuple[tuple[str, Any], ...] = (line_width(2),)
        elif name == "p50":
            props = (dashed((10, 6)),)
        else:
            props = (dashed((2, 4)),)
        styles.append(Override(f"/ {name}$/", props))
    return tuple(styles)


@dataclass(frozen=True)
class PanelSpec:
    width: int
    height: int
    panel: TimeSeries


@dataclass(frozen=True)
class RowSpec:
    title: str
    panels: tuple[PanelSpec, ...]


def _response_time() -> TimeSeries:
    return TimeSeries(
        title="Model-service response time p50 / p90 / p95",
        description=(
            "How long the app waited for the model-service, per variant: p50 dashed, p90 dotted, "
            "p95 bold. Includes the time a request queues for a free server thread. "
            f"histogram_quantile over rate(...[${INTERVAL_VAR}]); buckets are at most 10% apart, "
            "so a quantile is within 10% of the truth."
        ),
        targets=tuple(_target(queries.app_response_quantile(q)) for q in SEED_QUANTILES),
        unit="s",
        overrides=(*_variant_colors(), *_quantile_styles(SEED_QUANTILES)),
    )


def _p95_ratio() -> TimeSeries:
    q = queries.app_response_ratio(rules.P95)
    return TimeSeries(
        title=q.title,
        description=(
            f"{c.CANARY} p95 over {c.STABLE} p95 (1 = equal). The dashed line is the alert "
            f"threshold: {rules.ALERT_P95} fires when this stays above {rules.P95_RATIO_THRESHOLD} "
            f"for {rules.ALERT_FOR} (evaluated by Prometheus over {rules.RULE_WINDOW})."
        ),
        targets=(_target(q),),
        unit=q.unit,
        threshold=Threshold(rules.P95_RATIO_THRESHOLD),
        decimals=2,
        legend_calcs=("mean", "max", "lastNotNull"),
    )


def _processing_max() -> TimeSeries:
    q = queries.PROCESSING_MAX
    return TimeSeries(
        title=q.title,
        description=(
            "The longest time any single prediction took inside the model-service's /predict "
            f"handler in the last ${INTERVAL_VAR}, per variant. Exact, not a bucket bound: the "
            f"service reports the maximum of each {c.PROCESSING_MAX_WINDOW_SECONDS:g} s. "
            "This is the experiment's success metric."
        ),
        targets=(_target(q),),
        unit=q.unit,
        overrides=_variant_colors(),
    )


def _processing_quantiles() -> TimeSeries:
    qs = (0.5, 0.95)
    return TimeSeries(
        title="Prediction processing time p50 / p95",
        description=(
            "Time inside the /predict handler only (no queueing). When response time rises but "
            "this does not, requests are waiting for a thread."
        ),
        targets=tuple(_target(queries.processing_quantile(q)) for q in qs),
        unit="s",
        overrides=(*_variant_colors(), *_quantile_styles(qs)),
    )


def _request_rate() -> TimeSeries:
    q = queries.REQUEST_RATE
    return TimeSeries(
        title=q.title,
        description="Requests per second the app answered, per variant, all outcomes.",
        targets=(_target(q),),
        unit=q.unit,
        overrides=_variant_colors(),
    )


def _error_ratio() -> TimeSeries:
    q = queries.ERROR_RATIO
    return TimeSeries(
        title=q.title,
        description=(
            f'Share of app requests whose outcome is not "{c.OUTCOME_OK}" (client and server errors). '
            f"{rules.ALERT_ERRORS} fires when {c.CANARY}'s is more than "
            f"{rules.ERROR_RATIO_MARGIN:.0%} above {c.STABLE}'s for {rules.ALERT_FOR}."
        ),
        targets=(_target(q),),
        unit=q.unit,
        max=1,
        overrides=_variant_colors(),
    )


def _saturation(variant: str) -> TimeSeries:
    matcher = f'{c.LABEL_VARIANT}="{variant}"'
    return TimeSeries(
        title=f"In-flight requests vs threads: {variant}",
        description=(
            f"Requests the {variant} model-service is handling now, against its configured "
            "waitress threads (dashed). In flight at the thread count means every thread is busy; "
            "what arrives then waits in the queue."
        ),
        targets=(
            _target(queries.IN_FLIGHT, matcher),
            _target(queries.THREADS, matcher),
            _target(queries.QUEUE_DEPTH, matcher),
        ),
        unit=queries.IN_FLIGHT.unit,
        decimals=0,
        legend_calcs=("mean", "max"),
        overrides=(
            Override("/ in flight$/", (fixed_color(VARIANT_COLORS[variant]), line_width(2))),
            Override("/ threads$/", (fixed_color("text"), dashed())),
            Override("/ queued$/", (fixed_color("red"),)),
        ),
    )


def rows() -> tuple[RowSpec, ...]:
    return (
        RowSpec(
            "Latency",
            (PanelSpec(16, 10, _response_time()), PanelSpec(8, 10, _p95_ratio())),
        ),
        RowSpec(
            "Prediction processing",
            (PanelSpec(12, 8, _processing_max()), PanelSpec(12, 8, _processing_quantiles())),
        ),
        RowSpec(
            "Traffic",
            (PanelSpec(12, 7, _request_rate()), PanelSpec(12, 7, _error_ratio())),
        ),
        RowSpec(
            "Saturation",
            tuple(PanelSpec(12, 8, _saturation(v)) for v in c.VARIANTS),
        ),
    )


def _variables() -> list[dict[str, Any]]:
    return [
        datasource_variable(),
        label_values_variable(
            NAMESPACE_VAR,
            "Namespace",
            c.APP_REQUESTS_TOTAL,
            "Kubernetes namespace of the experiment (lab). The local target has none: keep All.",
        ),
        IntervalVariable(
            INTERVAL_VAR,
            "Window",
            "Range of rate() and of the quantiles. At least 4x the scrape interval.",
            INTERVAL_CHOICES,
            INTERVAL_DEFAULT,
        ).as_dict(),
    ]


def _annotations() -> list[dict[str, Any]]:
    return [
        builtin_annotations(),
        tag_annotations("Experiment phases", [TAG], "purple"),
        PromAnnotation(
            name="canarylab alerts",
            expr=f'ALERTS{{alertname=~"{rules.ALERT_PREFIX}.*", alertstate="firing", {SELECTOR}}}',
            title="{{alertname}}",
            tag_keys=("alertname", c.LABEL_VARIANT, rules.NAMESPACE_LABEL),
            color="red",
        ).as_dict(),
    ]


def _panels(layout_rows: Sequence[RowSpec], next_id: Callable[[], int]) -> list[dict[str, Any]]:
    layout = Layout()
    out: list[dict[str, Any]] = []
    for spec in layout_rows:
        out.append(row(next_id(), spec.title, layout.row()))
        for p in spec.panels:
            pos: GridPos = layout.place(p.width, p.height)
            out.append(p.panel.as_dict(next_id(), pos))
    return out


def build() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (classic), ready for the API or the sidecar."""
    counter = iter(range(1, 1000))
    return {
        "annotations": {"list": _annotations()},
        "description": (
            "Stable vs canary model-service, under the same load. Generated by `canarylab dashboard "
            "render` from canarylab/dashboard: edit the Python, not this JSON."
        ),
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "panels": _panels(rows(), lambda: next(counter)),
        "refresh": "10s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": [TAG],
        "templating": {"list": _variables()},
        "time": {"from": "now-30m", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": TITLE,
        "uid": UID,
        "version": 1,
        "weekStart": "",
    }
