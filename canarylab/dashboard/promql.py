"""Every panel query of a dashboard, with Grafana's variables replaced by concrete values, so the
PromQL can run against Prometheus's own HTTP API (in CI, and with ``canarylab dashboard verify``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from canarylab.errors import CanarylabError

#: ``$name``, ``${name}``, ``${name:format}`` and the deprecated ``[[name]]``.
_VAR_RE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")


def referenced_variables(text: str) -> set[str]:
    """Names of the Grafana variables ``text`` uses."""
    return {next(g for g in m.groups() if g) for m in _VAR_RE.finditer(text)}


@dataclass(frozen=True)
class PanelQuery:
    panel_id: int
    panel_title: str
    ref_id: str
    expr: str
    legend: str

    @property
    def name(self) -> str:
        return f"panel {self.panel_id} {self.panel_title!r} query {self.ref_id}"


def panel_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    """The PromQL of every query of every panel (rows' nested panels included), in panel order."""
    out = []
    for panel in dashboard.get("panels") or []:
        for p in [panel, *(panel.get("panels") or [])]:
            for t in p.get("targets") or []:
                if "expr" in t:
                    out.append(
                        PanelQuery(
                            panel_id=int(p["id"]),
                            panel_title=str(p.get("title", "")),
                            ref_id=str(t.get("refId", "")),
                            expr=str(t["expr"]),
                            legend=str(t.get("legendFormat", "")),
                        )
                    )
    return out


def variable_values(window: str, namespace: str = ".*") -> dict[str, str]:
    """Values for the canarylab dashboard's variables and Grafana's interval macros.

    ``namespace`` is a regex (the variable's "All" is ``.*``, which also matches series
    without the label, as on the local target); ``window`` a Prometheus duration.
    """
    return {
        "namespace": namespace,
        "interval": window,
        "__rate_interval": window,
        "__interval": window,
        "__range": window,
    }


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """``expr`` with every ``$name``, ``${name}``, ``${name:format}`` and ``[[name]]`` replaced."""

    def repl(m: re.Match[str]) -> str:
        name = next(g for g in m.groups() if g)
        if name not in values:
            raise CanarylabError(
                f"no value for ${name} in {expr!r}",
                f"give it a value (known: {', '.join(sorted(values))})",
            )
        return values[name]

    return _VAR_RE.sub(repl, expr)
