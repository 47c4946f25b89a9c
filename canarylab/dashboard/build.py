"""The canarylab dashboard: stable against canary, every panel a query of :mod:`canarylab.queries`.

Panels render the shared query templates with the dashboard's variables
(``$namespace`` in the selector, ``$interval`` as the range), so the
experiment report, which renders the same templates with a fixed window,
shows the same numbers.  Alert thresholds come from :mod:`canarylab.rules`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as dm

import canarylab_contract as c
from canarylab import queries, rules
from canarylab.dashboard.panels import (
    Override,
    PromAnnotation,
    Target,
    Threshold,
    TimeSeries,
    add_fields,
    builtin_annotations,
    dashed,
    datasource_variable,
    fixed_color,
    interval_variable,
    label_values_query,
    label_values_variable,
    line_width,
    row,
    tag_annotations,
    to_json,
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


def _per_variant(q: queries.Query, description: str) -> TimeSeries:
    """One series per variant in its colour, titled and scaled by the shared query."""
    return TimeSeries(
        title=q.title,
        description=description,
        targets=(_target(q),),
        unit=q.unit,
        overrides=_variant_colors(),
    )


def _request_rate() -> TimeSeries:
    return _per_variant(
        queries.REQUEST_RATE,
        "Requests per second the app answered, per variant, all outcomes.",
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


def _utilisation() -> TimeSeries:
    return _per_variant(
        queries.UTILISATION,
        (
            "In-flight requests over configured threads (processes × threads), per variant. At 100% "
            "every thread is busy and what arrives waits in the queue (the Saturation row)."
        ),
    )


def _cpu_per_process() -> TimeSeries:
    return _per_variant(
        queries.CPU_PER_PROCESS,
        (
            "The model-service's CPU per worker process, 100% = one core. Python code holds the "
            "GIL, so a process near 100% is CPU-bound: its requests wait for the GIL and more "
            "threads cannot help; more processes (or pods) can. A queue with low CPU here is "
            "threads waiting for I/O, which more threads do help."
        ),
    )


def _cpu_per_request() -> TimeSeries:
    return _per_variant(
        queries.CPU_PER_REQUEST,
        (
            "CPU seconds the model-service spent per request it answered: the work itself. When "
            "response time rises while this stays flat, the time went to waiting, not to work."
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
        RowSpec(
            "Work: threads busy and CPU",
            (
                PanelSpec(8, 8, _utilisation()),
                PanelSpec(8, 8, _cpu_per_process()),
                PanelSpec(8, 8, _cpu_per_request()),
            ),
        ),
    )


ALERTS = PromAnnotation(
    name="canarylab alerts",
    expr=f'ALERTS{{alertname=~"{rules.ALERT_PREFIX}.*", alertstate="firing", {SELECTOR}}}',
    title="{{alertname}}",
    tag_keys=("alertname", c.LABEL_VARIANT, rules.NAMESPACE_LABEL),
    color="red",
)


def _variables() -> list[Builder[dm.VariableModel]]:
    return [
        datasource_variable(),
        label_values_variable(
            NAMESPACE_VAR,
            "Namespace",
            c.APP_REQUESTS_TOTAL,
            "Kubernetes namespace of the experiment (lab). The local target has none: keep All.",
        ),
        interval_variable(
            INTERVAL_VAR,
            "Window",
            "Range of rate() and of the quantiles. At least 4x the scrape interval.",
            INTERVAL_CHOICES,
            INTERVAL_DEFAULT,
        ),
    ]


def _annotations() -> list[Builder[dm.AnnotationQuery]]:
    return [
        builtin_annotations(),
        tag_annotations("Experiment phases", [TAG], "purple"),
        ALERTS.builder(),
    ]


def _with_panels(dashboard: db.Dashboard, layout_rows: Sequence[RowSpec]) -> db.Dashboard:
    """Rows and panels in order, ids from 1; the SDK lays them out left to right, row by row."""
    next_id = iter(range(1, 1000)).__next__
    for spec in layout_rows:
        dashboard = dashboard.with_row(row(next_id(), spec.title))
        for p in spec.panels:
            dashboard = dashboard.with_panel(p.panel.builder(next_id(), p.width, p.height))
    return dashboard


def build() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (classic), ready for the API or the sidecar."""
    dashboard = (
        db.Dashboard(TITLE)
        .uid(UID)
        .description(
            "Stable vs canary model-service, under the same load. Generated by `canarylab dashboard "
            "render` from canarylab/dashboard: edit the Python, not this JSON."
        )
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .refresh("10s")
        .tags([TAG])
        .time("now-30m", "now")
        .timezone("browser")
        .fiscal_year_start_month(0)
        .week_start("")
        .version(1)
        .variables(_variables())
        .annotations(_annotations())
    )
    out = to_json(_with_panels(dashboard, rows()))
    # The fields the SDK's models lack, added by name.
    definition = label_values_query(c.APP_REQUESTS_TOTAL, NAMESPACE_VAR)
    add_fields(out["templating"]["list"], NAMESPACE_VAR, {"definition": definition})
    add_fields(out["annotations"]["list"], ALERTS.name, ALERTS.fields())
    return {"id": None, "links": [], **out}
