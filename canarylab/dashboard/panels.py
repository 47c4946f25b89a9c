"""The dashboard's pieces, made with grafana-foundation-sdk's typed builders (Grafana 11.6's schema).

The SDK writes the JSON (classic model, its ``schemaVersion``) and places panels on the grid;
this module only says what we use. What the pinned SDK's models cannot express (a query
variable's ``definition``, a Prometheus annotation's title, tags and step) is added to the
JSON by :func:`add_fields`. Every query panel and query
variable points at the Prometheus data source through the ``datasource`` variable, never at a
fixed uid.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.prometheus import QueryEditorMode

from canarylab.queries import Query

JSON = dict[str, Any]

#: The schema the SDK writes (Grafana 11.6); Grafana 12 migrates it on load.
SCHEMA_VERSION = 41
DATASOURCE_VAR = "datasource"
#: How panels, targets and query variables name the Prometheus data source.
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VAR}}}")
#: Grafana's own annotation store (the only non-Prometheus data source we use).
GRAFANA_DATASOURCE = dm.DataSourceRef(type_val="grafana", uid="-- Grafana --")


def to_json(builder: db.Dashboard) -> JSON:
    """The dashboard as plain JSON data (what the API, the sidecar and the validator read)."""
    data: JSON = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return data


@dataclass(frozen=True)
class Target:
    """One PromQL query of a panel, already rendered with the dashboard's variables."""

    query: Query
    expr: str
    legend: str | None = None

    def builder(self, ref_id: str) -> prometheus.Dataquery:
        return (
            prometheus.Dataquery()
            .datasource(DATASOURCE)
            .editor_mode(QueryEditorMode.CODE)
            .expr(self.expr)
            .legend_format(self.legend or self.query.legend)
            .range()
            .ref_id(ref_id)
        )


@dataclass(frozen=True)
class Threshold:
    """A dashed line at ``value``, coloured ``color`` above it."""

    value: float
    color: str = "red"


@dataclass(frozen=True)
class Override:
    """Field properties for the series whose display name matches ``regex``."""

    regex: str
    properties: tuple[tuple[str, Any], ...]

    def values(self) -> list[dm.DynamicConfigValue]:
        return [dm.DynamicConfigValue(id_val=k, value=v) for k, v in self.properties]


def fixed_color(color: str) -> tuple[str, Any]:
    return ("color", {"mode": "fixed", "fixedColor": color})


def dashed(dash: Sequence[int] = (10, 10)) -> tuple[str, Any]:
    return ("custom.lineStyle", {"fill": "dash", "dash": list(dash)})


def line_width(width: int) -> tuple[str, Any]:
    return ("custom.lineWidth", width)


@dataclass(frozen=True)
class TimeSeries:
    title: str
    description: str
    targets: tuple[Target, ...]
    unit: str
    overrides: tuple[Override, ...] = ()
    threshold: Threshold | None = None
    min: float | None = 0
    max: float | None = None
    decimals: int | None = None
    legend_calcs: tuple[str, ...] = ("mean", "max", "lastNotNull")

    def builder(self, panel_id: int, width: int, height: int) -> timeseries.Panel:
        """The panel, ``width`` x ``height``; the dashboard builder gives it its place on the grid."""
        steps = [dm.Threshold(value=None, color="green")]
        if self.threshold is not None:
            steps.append(dm.Threshold(value=self.threshold.value, color=self.threshold.color))
        mode = cm.GraphThresholdsStyleMode.DASHED if self.threshold else cm.GraphThresholdsStyleMode.OFF
        panel = (
            timeseries.Panel()
            .id(panel_id)
            .title(self.title)
            .description(self.description)
            .datasource(DATASOURCE)
            .span(width)
            .height(height)
            .unit(self.unit)
            .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.PALETTE_CLASSIC))
            .thresholds(db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(steps))
            .axis_border_show(False)
            .axis_placement(cm.AxisPlacement.AUTO)
            .draw_style(cm.GraphDrawStyle.LINE)
            .fill_opacity(0)
            .line_interpolation(cm.LineInterpolation.LINEAR)
            .line_width(1)
            .point_size(4)
            .show_points(cm.VisibilityMode.NEVER)
            .span_nulls(False)
            .thresholds_style(cb.GraphThresholdsStyleConfig().mode(mode))
            .legend(
                cb.VizLegendOptions()
                .calcs(list(self.legend_calcs))
                .display_mode(cm.LegendDisplayMode.TABLE)
                .placement(cm.LegendPlacement.BOTTOM)
                .show_legend(True)
                .sort_by("Name")
                .sort_desc(False)
            )
            .tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING))
            .targets([t.builder(_ref_id(i)) for i, t in enumerate(self.targets)])
        )
        if self.min is not None:
            panel = panel.min(self.min)
        if self.max is not None:
            panel = panel.max(self.max)
        if self.decimals is not None:
            panel = panel.decimals(self.decimals)
        for o in self.overrides:
            panel = panel.override_by_regexp(o.regex, o.values())
        return panel


def row(panel_id: int, title: str) -> db.Row:
    """An expanded row: its panels follow it in the dashboard (Grafana drops panels nested in one)."""
    return db.Row(title).id(panel_id)


def _ref_id(index: int) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return letters[index] if index < len(letters) else f"Q{index}"


# --- variables -------------------------------------------------------------------


def datasource_variable() -> db.DatasourceVariable:
    return (
        db.DatasourceVariable(DATASOURCE_VAR)
        .label("Data source")
        .type("prometheus")
        .hide(dm.VariableHide.DONT_HIDE)
        .multi(False)
        .include_all(False)
        .regex("")
    )


def label_values_query(metric: str, label: str) -> str:
    return f"label_values({metric}, {label})"


def label_values_variable(name: str, label: str, metric: str, description: str) -> db.QueryVariable:
    """Values of ``label`` on ``metric``; "All" matches every value, and series without the label.

    Its ``definition`` (the SDK has no field for it) is added by :func:`add_fields`.
    """
    return (
        db.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(DATASOURCE)
        .hide(dm.VariableHide.DONT_HIDE)
        # The plain-string form: every Grafana since 7 reads it (and migrates it for its editor).
        .query(label_values_query(metric, name))
        .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .options([])
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .regex("")
    )


def interval_variable(
    name: str, label: str, description: str, choices: Sequence[str], default: str
) -> db.IntervalVariable:
    if default not in choices:
        raise ValueError(f"default {default!r} is not one of {tuple(choices)}")
    return (
        db.IntervalVariable(name)
        .label(label)
        .description(description)
        .hide(dm.VariableHide.DONT_HIDE)
        .values(",".join(choices))
        .current(dm.VariableOption(selected=True, text=default, value=default))
        .options([dm.VariableOption(selected=c == default, text=c, value=c) for c in choices])
        .auto(False)
    )


# --- annotations -----------------------------------------------------------------


def builtin_annotations() -> db.AnnotationQuery:
    return (
        db.AnnotationQuery()
        .name("Annotations & Alerts")
        .datasource(GRAFANA_DATASOURCE)
        .built_in(1)
        .enable(True)
        .hide(True)
        .icon_color("rgba(0, 211, 255, 1)")
        .type("dashboard")
    )


def tag_annotations(name: str, tags: Sequence[str], color: str) -> db.AnnotationQuery:
    """Annotations in Grafana's store that carry all of ``tags`` (posted by the experiment engine)."""
    return (
        db.AnnotationQuery()
        .name(name)
        .datasource(GRAFANA_DATASOURCE)
        .enable(True)
        .icon_color(color)
        .target(db.AnnotationTarget().limit(200).match_any(False).tags(list(tags)).type("tags"))
    )


@dataclass(frozen=True)
class PromAnnotation:
    """An annotation for every series of ``expr`` (e.g. firing alerts)."""

    name: str
    expr: str
    title: str
    tag_keys: tuple[str, ...]
    color: str
    step: str = "15s"

    def builder(self) -> db.AnnotationQuery:
        return (
            db.AnnotationQuery()
            .name(self.name)
            .datasource(DATASOURCE)
            .enable(True)
            .icon_color(self.color)
            .expr(self.expr)
        )

    def fields(self) -> JSON:
        """The Prometheus annotation's own fields, which the SDK's AnnotationQuery does not model."""
        return {
            "step": self.step,
            "tagKeys": ",".join(self.tag_keys),
            "textFormat": "",
            "titleFormat": self.title,
            "useValueForTime": False,
        }


def add_fields(items: list[JSON], name: str, fields: JSON) -> None:
    """Add ``fields`` to the item called ``name`` of a variable or annotation list (JSON)."""
    found = [item for item in items if item.get("name") == name]
    if len(found) != 1:
        raise ValueError(f"expected one item named {name!r}, found {len(found)}")
    found[0].update(fields)
