"""The structural validator finds each kind of mistake (so a green check means something)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from canarylab.dashboard.build import build, rows
from canarylab.dashboard.promql import referenced_variables, substitute, variable_values
from canarylab.dashboard.validate import check, problems
from canarylab.errors import CanarylabError

Mutation = Callable[[dict[str, Any]], None]


def _first_ts(d: dict[str, Any]) -> dict[str, Any]:
    return next(p for p in d["panels"] if p["type"] == "timeseries")


def _second_ts(d: dict[str, Any]) -> dict[str, Any]:
    return [p for p in d["panels"] if p["type"] == "timeseries"][1]


def _no_schema(d: dict[str, Any]) -> None:
    del d["schemaVersion"]


def _old_schema(d: dict[str, Any]) -> None:
    d["schemaVersion"] = 27


def _dup_id(d: dict[str, Any]) -> None:
    _second_ts(d)["id"] = _first_ts(d)["id"]


def _overlap(d: dict[str, Any]) -> None:
    _second_ts(d)["gridPos"] = {**_first_ts(d)["gridPos"], "x": 1}


def _too_wide(d: dict[str, Any]) -> None:
    _first_ts(d)["gridPos"]["w"] = 30


def _fixed_panel_ds(d: dict[str, Any]) -> None:
    _first_ts(d)["datasource"] = {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}


def _fixed_target_ds(d: dict[str, Any]) -> None:
    _first_ts(d)["targets"][0]["datasource"] = {"type": "prometheus", "uid": "prometheus"}


def _fixed_variable_ds(d: dict[str, Any]) -> None:
    next(v for v in d["templating"]["list"] if v["type"] == "query")["datasource"] = {"uid": "x"}


def _undefined_var(d: dict[str, Any]) -> None:
    _first_ts(d)["targets"][0]["expr"] += " * $scale"


def _no_ds_var(d: dict[str, Any]) -> None:
    d["templating"]["list"] = [v for v in d["templating"]["list"] if v["type"] != "datasource"]


def _fixed_id(d: dict[str, Any]) -> None:
    d["id"] = 12


def _dup_ref(d: dict[str, Any]) -> None:
    t = _first_ts(d)["targets"]
    t[1]["refId"] = t[0]["refId"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_no_schema, "schemaVersion is missing"),
        (_old_schema, "schemaVersion 27 is outside"),
        (_dup_id, "is used twice"),
        (_overlap, "overlap"),
        (_too_wide, "outside the 24-column grid"),
        (_fixed_panel_ds, "is not $datasource"),
        (_fixed_target_ds, "query A: datasource is not $datasource"),
        (_fixed_variable_ds, "variable 'namespace': datasource is not $datasource"),
        (_undefined_var, "uses $scale, which is not defined"),
        (_no_ds_var, "must be a data source variable"),
        (_fixed_id, "id must be null"),
        (_dup_ref, "refIds repeat"),
    ],
)
def test_each_mistake_is_found(mutate: Mutation, expected: str) -> None:
    d = copy.deepcopy(build())
    mutate(d)
    found = problems(d, ("datasource", "namespace", "interval"))
    assert any(expected in p for p in found), found
    with pytest.raises(CanarylabError, match="not a valid dashboard"):
        check(d)


def test_missing_required_variable() -> None:
    assert "variable 'team' is missing" in problems(build(), ("team",))


def test_nested_panels_of_a_collapsed_row_are_checked() -> None:
    d = copy.deepcopy(build())
    row = d["panels"][0]
    row["collapsed"] = True
    row["panels"] = [copy.deepcopy(_first_ts(d))]
    assert any("is used twice" in p for p in problems(d))


def test_sdk_lays_rows_out_full_width_and_panels_side_by_side() -> None:
    """grafana-foundation-sdk places the panels: each row full width, its panels left to right below it."""
    expected: list[dict[str, int]] = []
    y = 0
    for spec in rows():
        expected.append({"x": 0, "y": y, "w": 24, "h": 1})
        x, y = 0, y + 1
        for p in spec.panels:
            expected.append({"x": x, "y": y, "w": p.width, "h": p.height})
            x += p.width
        assert x == 24, f"row {spec.title!r} does not fill the grid"
        y += max(p.height for p in spec.panels)
    assert [p["gridPos"] for p in build()["panels"]] == expected
    assert [p["type"] for p in build()["panels"]].count("row") == len(rows())
    assert all(p["panels"] == [] and not p["collapsed"] for p in build()["panels"] if p["type"] == "row")


def test_substitution() -> None:
    values = variable_values("2m", "lab|other")
    expr = 'rate(x{namespace=~"$namespace"}[$interval]) + rate(y[${__rate_interval}]) + z[[[interval]]]'
    assert referenced_variables(expr) == {"namespace", "interval", "__rate_interval"}
    assert substitute(expr, values) == 'rate(x{namespace=~"lab|other"}[2m]) + rate(y[2m]) + z[2m]'
    with pytest.raises(CanarylabError, match=r"no value for \$team"):
        substitute('x{team="$team"}', values)
