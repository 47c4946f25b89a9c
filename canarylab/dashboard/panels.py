"""Grafana dashboard JSON (the classic model, schemaVersion 39: Grafana 11 and 12) for what we use.

Only the fields we set are written; Grafana fills in its defaults on load.
Every query panel and query variable points at the Prometheus data source
through the ``datasource`` variable, never at a fixed uid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from canarylab.dashboard.layout import GridPos
from canarylab.queries import Query

JSON = dict[str, Any]

#: Grafana 11.0's dashboard schema; Grafana 11.x and 12.x migrate it on load.
SCHEMA_VERSION = 39
DATASOURCE_VAR = "datasource"
#: How panels, targets and query variables name the Prometheus data source.
DATASOURCE_REF: JSON = {"type": "prometheus", "uid": f"${{{DATASOURCE_VAR}}}"}
#: Grafana's own annotation store (the only non-Prometheus data source we use).
GRAFANA_DATASOURCE_REF: JSON = {"type": "grafana", "uid": "-- Grafana --"}


@dataclass(frozen=True)
class Target:
    """One PromQL query of a panel, already rendered with the dashboard's variables."""

    query: Query
    expr: str
    legend: str | None = None

    def as_dict(self, ref_id: str) -> JSON:
        return {
            "datasource": dict(DATASOURCE_REF),
            "editorMode": "code",
            "expr": self.expr,
            "legendFormat": self.legend or self.query.legend,
            "range": True,
            "refId": ref_id,
        }


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

    def as_dict(self) -> JSON:
        return {
            "matcher": {"id": "byRegexp", "options": self.regex},
            "properties": [{"id": k, "value": v} for k, v in self.properties],
        }


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

    def as_dict(self, panel_id: int, pos: GridPos) -> JSON:
        steps: list[JSON] = [{"color": "green", "value": None}]
        if self.threshold is not None:
            steps.append({"color": self.threshold.color, "value": self.threshold.value})
        defaults: JSON = {
            "color": {"mode": "palette-classic"},
            "custom": {
                "axisBorderShow": False,
                "axisPlacement": "auto",
                "drawStyle": "line",
                "fillOpacity": 0,
                "lineInterpolation": "linear",
                "lineWidth": 1,
                "pointSize": 4,
                "showPoints": "never",
                "spanNulls": False,
                "thresholdsStyle": {"mode": "dashed" if self.threshold else "off"},
            },
            "thresholds": {"mode": "absolute", "steps": steps},
            "unit": self.unit,
        }
        for key in ("min", "max", "decimals"):
            value = getattr(self, key)
            if value is not None:
                defaults[key] = value
        return {
            "datasource": dict(DATASOURCE_REF),
            "description": self.description,
            "fieldConfig": {"defaults": defaults, "overrides": [o.as_dict() for o in self.overrides]},
            "gridPos": pos.as_dict(),
            "id": panel_id,
            "options": {
                "legend": {
                    "calcs": list(self.legend_calcs),
                    "displayMode": "table",
                    "placement": "bottom",
                    "showLegend": True,
                    "sortBy": "Name",
                    "sortDesc": False,
                },
                "tooltip": {"mode": "multi", "sort": "desc"},
            },
            "targets": [t.as_dict(_ref_id(i)) for i, t in enumerate(self.targets)],
            "title": self.title,
            "type": "timeseries",
        }


def row(panel_id: int, title: str, pos: GridPos) -> JSON:
    return {
        "collapsed": False,
        "gridPos": pos.as_dict(),
        "id": panel_id,
        "panels": [],
        "title": title,
        "type": "row",
    }


def _ref_id(index: int) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return letters[index] if index < len(letters) else f"Q{index}"


# --- variables -------------------------------------------------------------------


def datasource_variable() -> JSON:
    return {
        "current": {},
        "hide": 0,
        "includeAll": False,
        "label": "Data source",
        "multi": False,
        "name": DATASOURCE_VAR,
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
        "type": "datasource",
    }


def label_values_variable(name: str, label: str, metric: str, description: str) -> JSON:
    """Values of ``label`` on ``metric``; "All" matches every value, and series without the label."""
    query = f"label_values({metric}, {name})"
    return {
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "datasource": dict(DATASOURCE_REF),
        "definition": query,
        "description": description,
        "hide": 0,
        "includeAll": True,
        "label": label,
        "multi": True,
        "name": name,
        "options": [],
        # The plain-string form: every Grafana since 7 reads it (and migrates it for its editor).
        "query": query,
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }


@dataclass(frozen=True)
class IntervalVariable:
    name: str
    label: str
    description: str
    choices: tuple[str, ...]
    default: str

    def as_dict(self) -> JSON:
        if self.default not in self.choices:
            raise ValueError(f"default {self.default!r} is not one of {self.choices}")
        return {
            "auto": False,
            "auto_count": 30,
            "auto_min": "10s",
            "current": {"selected": True, "text": self.default, "value": self.default},
            "description": self.description,
            "hide": 0,
            "label": self.label,
            "name": self.name,
            "options": [{"selected": c == self.default, "text": c, "value": c} for c in self.choices],
            "query": ",".join(self.choices),
            "refresh": 2,
            "skipUrlSync": False,
            "type": "interval",
        }


# --- annotations -----------------------------------------------------------------


def builtin_annotations() -> JSON:
    return {
        "builtIn": 1,
        "datasource": dict(GRAFANA_DATASOURCE_REF),
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    }


def tag_annotations(name: str, tags: Sequence[str], color: str) -> JSON:
    """Annotations in Grafana's store that carry all of ``tags`` (posted by the experiment engine)."""
    return {
        "datasource": dict(GRAFANA_DATASOURCE_REF),
        "enable": True,
        "iconColor": color,
        "name": name,
        "target": {"limit": 200, "matchAny": False, "tags": list(tags), "type": "tags"},
    }


@dataclass(frozen=True)
class PromAnnotation:
    """An annotation for every series of ``expr`` (e.g. firing alerts)."""

    name: str
    expr: str
    title: str
    tag_keys: tuple[str, ...]
    color: str
    step: str = "15s"

    def as_dict(self) -> JSON:
        return {
            "datasource": dict(DATASOURCE_REF),
            "enable": True,
            "expr": self.expr,
            "iconColor": self.color,
            "name": self.name,
            "step": self.step,
            "tagKeys": ",".join(self.tag_keys),
            "textFormat": "",
            "titleFormat": self.title,
            "useValueForTime": False,
        }
