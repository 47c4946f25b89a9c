"""Structural checks of a Grafana dashboard's JSON (classic model) that Grafana itself would not
make on import: it accepts overlapping panels, duplicate ids and hard-wired data sources silently.

:func:`problems` lists everything wrong; :func:`check` raises with that list.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from canarylab.dashboard.panels import DATASOURCE_VAR
from canarylab.dashboard.promql import referenced_variables
from canarylab.errors import CanarylabError

#: Width of Grafana's dashboard grid.
GRID_WIDTH = 24
#: Grafana 11.0 writes 39; Grafana 11.6 (and grafana-foundation-sdk for it) and 12 write 41.
MIN_SCHEMA_VERSION = 39
MAX_SCHEMA_VERSION = 41
MAX_UID_LENGTH = 40
#: Variables Grafana defines itself (``$__rate_interval`` and friends).
GLOBAL_VARIABLES = frozenset(
    {
        "__interval",
        "__interval_ms",
        "__rate_interval",
        "__rate_interval_ms",
        "__range",
        "__range_s",
        "__range_ms",
        "__from",
        "__to",
        "__dashboard",
        "__org",
        "__user",
        "__all",
        "timeFilter",
    }
)
_DATASOURCE_UIDS = {f"${DATASOURCE_VAR}", f"${{{DATASOURCE_VAR}}}"}


@dataclass(frozen=True)
class Rect:
    panel_id: object
    x: int
    y: int
    w: int
    h: int

    def overlaps(self, other: Rect) -> bool:
        return (
            self.x < other.x + other.w
            and other.x < self.x + self.w
            and self.y < other.y + other.h
            and other.y < self.y + self.h
        )


def _all_panels(dashboard: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for panel in dashboard.get("panels") or []:
        yield panel
        # A collapsed row carries its panels inside it.
        yield from panel.get("panels") or []


def _is_datasource_variable(ref: object) -> bool:
    if isinstance(ref, str):
        return ref in _DATASOURCE_UIDS
    return isinstance(ref, Mapping) and ref.get("uid") in _DATASOURCE_UIDS


def _check_top(dashboard: Mapping[str, Any]) -> list[str]:
    out = []
    version = dashboard.get("schemaVersion")
    if not isinstance(version, int) or isinstance(version, bool):
        out.append("schemaVersion is missing or not an integer")
    elif not MIN_SCHEMA_VERSION <= version <= MAX_SCHEMA_VERSION:
        out.append(
            f"schemaVersion {version} is outside {MIN_SCHEMA_VERSION}..{MAX_SCHEMA_VERSION} (Grafana 11-12)"
        )
    uid = dashboard.get("uid")
    if not isinstance(uid, str) or not uid or len(uid) > MAX_UID_LENGTH:
        out.append(f"uid must be a non-empty string of at most {MAX_UID_LENGTH} characters, got {uid!r}")
    if not dashboard.get("title"):
        out.append("title is missing")
    if dashboard.get("id") is not None:
        out.append("id must be null: a fixed id breaks import into another Grafana")
    if not dashboard.get("panels"):
        out.append("the dashboard has no panels")
    return out


def _check_ids(dashboard: Mapping[str, Any]) -> list[str]:
    seen: dict[object, str] = {}
    out = []
    for panel in _all_panels(dashboard):
        pid = panel.get("id")
        title = panel.get("title", "?")
        if not isinstance(pid, int) or isinstance(pid, bool):
            out.append(f"panel {title!r} has no integer id ({pid!r})")
        elif pid in seen:
            out.append(f"panel id {pid} is used twice: {seen[pid]!r} and {title!r}")
        else:
            seen[pid] = title
    return out


def _rects(panels: Sequence[Mapping[str, Any]], out: list[str]) -> list[Rect]:
    rects = []
    for panel in panels:
        title = panel.get("title", "?")
        pos = panel.get("gridPos")
        if not isinstance(pos, Mapping):
            out.append(f"panel {title!r} has no gridPos")
            continue
        vals = {k: pos.get(k) for k in ("x", "y", "w", "h")}
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in vals.values()):
            out.append(f"panel {title!r}: gridPos needs integer x, y, w, h, got {dict(pos)}")
            continue
        r = Rect(panel.get("id"), **{k: int(v) for k, v in vals.items()})  # type: ignore[arg-type]
        if r.x < 0 or r.y < 0 or r.w <= 0 or r.h <= 0 or r.x + r.w > GRID_WIDTH:
            out.append(f"panel {title!r}: gridPos {dict(pos)} is outside the {GRID_WIDTH}-column grid")
        rects.append(r)
    return rects


def _check_grid(dashboard: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    top = list(dashboard.get("panels") or [])
    groups = [top] + [list(p.get("panels") or []) for p in top if p.get("type") == "row"]
    for group in groups:
        for a, b in itertools.combinations(_rects(group, out), 2):
            if a.overlaps(b):
                out.append(f"panels {a.panel_id} and {b.panel_id} overlap: {a} / {b}")
    return out


def _check_datasources(dashboard: Mapping[str, Any]) -> list[str]:
    out = []
    for panel in _all_panels(dashboard):
        if panel.get("type") == "row":
            continue
        title = panel.get("title", "?")
        if not _is_datasource_variable(panel.get("datasource")):
            out.append(f"panel {title!r}: datasource {panel.get('datasource')!r} is not ${DATASOURCE_VAR}")
        targets = panel.get("targets") or []
        if not targets:
            out.append(f"panel {title!r} has no queries")
        ref_ids = [t.get("refId") for t in targets]
        if len(set(ref_ids)) != len(ref_ids):
            out.append(f"panel {title!r}: refIds repeat: {ref_ids}")
        for t in targets:
            if "datasource" in t and not _is_datasource_variable(t["datasource"]):
                out.append(f"panel {title!r} query {t.get('refId')}: datasource is not ${DATASOURCE_VAR}")
            if not str(t.get("expr", "")).strip():
                out.append(f"panel {title!r} query {t.get('refId')}: empty expr")
    for ann in (dashboard.get("annotations") or {}).get("list") or []:
        ref = ann.get("datasource")
        grafana_store = isinstance(ref, Mapping) and ref.get("type") == "grafana"
        if not grafana_store and not _is_datasource_variable(ref):
            out.append(f"annotation {ann.get('name')!r}: datasource {ref!r} is not ${DATASOURCE_VAR}")
    for var in _variables(dashboard):
        if var.get("type") == "query" and not _is_datasource_variable(var.get("datasource")):
            out.append(f"variable {var.get('name')!r}: datasource is not ${DATASOURCE_VAR}")
    return out


def _variables(dashboard: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((dashboard.get("templating") or {}).get("list") or [])


def _check_variables(dashboard: Mapping[str, Any], required: Sequence[str]) -> list[str]:
    out = []
    variables = {v.get("name"): v for v in _variables(dashboard)}
    ds = variables.get(DATASOURCE_VAR)
    if ds is None or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        out.append(f"variable {DATASOURCE_VAR!r} must be a data source variable of type prometheus")
    out += [f"variable {name!r} is missing" for name in required if name not in variables]
    defined = set(variables) | GLOBAL_VARIABLES
    texts: list[tuple[str, str]] = []
    for panel in _all_panels(dashboard):
        for t in panel.get("targets") or []:
            texts.append((f"panel {panel.get('title')!r} query {t.get('refId')}", str(t.get("expr", ""))))
    for ann in (dashboard.get("annotations") or {}).get("list") or []:
        texts.append((f"annotation {ann.get('name')!r}", str(ann.get("expr", ""))))
    for where, text in texts:
        for name in sorted(referenced_variables(text) - defined):
            out.append(f"{where} uses ${name}, which is not defined")
    return out


def problems(dashboard: Mapping[str, Any], required_variables: Sequence[str] = ()) -> list[str]:
    """Everything structurally wrong with ``dashboard``; empty when it is fine."""
    return [
        *_check_top(dashboard),
        *_check_ids(dashboard),
        *_check_grid(dashboard),
        *_check_datasources(dashboard),
        *_check_variables(dashboard, required_variables),
    ]


def check(
    dashboard: Mapping[str, Any], required_variables: Sequence[str] = (), name: str = "dashboard"
) -> None:
    found = problems(dashboard, required_variables)
    if found:
        listing = "\n".join(f"  - {p}" for p in found)
        raise CanarylabError(
            f"{name} is not a valid dashboard:\n{listing}",
            "fix canarylab/dashboard/build.py, then `canarylab dashboard export`",
        )
