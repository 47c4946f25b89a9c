"""The generated dashboard: its structure, its panels, and that it uses the shared queries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import canarylab_contract as c
from canarylab import queries, rules
from canarylab.cli import main
from canarylab.dashboard import files, validate
from canarylab.dashboard.build import (
    INTERVAL_VAR,
    NAMESPACE_VAR,
    SEED_QUANTILES,
    SELECTOR,
    UID,
    WINDOW,
    build,
    rows,
)
from canarylab.dashboard.panels import DATASOURCE_VAR, SCHEMA_VERSION, add_fields
from canarylab.dashboard.promql import panel_queries

REQUIRED = (DATASOURCE_VAR, NAMESPACE_VAR, INTERVAL_VAR)


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return build()


def _panel(dashboard: dict[str, Any], title_part: str) -> dict[str, Any]:
    found = [p for p in dashboard["panels"] if title_part in p.get("title", "")]
    assert len(found) == 1, f"expected one panel titled *{title_part}*, got {[p['title'] for p in found]}"
    return found[0]


def test_structure_is_valid(dashboard: dict[str, Any]) -> None:
    assert validate.problems(dashboard, REQUIRED) == []
    assert dashboard["schemaVersion"] == SCHEMA_VERSION
    assert dashboard["uid"] == UID


def test_committed_json_equals_a_fresh_render(root: Path) -> None:
    assert files.stale(root) == [], "run `canarylab dashboard export` and commit"
    committed = json.loads((root / files.DASHBOARD).read_text())
    assert committed == build()
    assert validate.problems(committed, REQUIRED) == []


def test_render_command_writes_the_same_json(tmp_path: Path, root: Path) -> None:
    out = tmp_path / "d.json"
    assert main(["dashboard", "render", "--out", str(out)]) == 0
    assert out.read_text() == (root / files.DASHBOARD).read_text()


def test_variables(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables[DATASOURCE_VAR]["type"] == "datasource"
    assert variables[DATASOURCE_VAR]["query"] == "prometheus"
    ns = variables[NAMESPACE_VAR]
    assert ns["type"] == "query"
    assert ns["includeAll"]
    assert ns["allValue"] == ".*", "All must also match series without the label"
    assert f"label_values({c.APP_REQUESTS_TOTAL}, namespace)" == ns["definition"]
    interval = variables[INTERVAL_VAR]
    assert interval["type"] == "interval"
    assert interval["current"]["value"] in interval["query"].split(",")


def test_every_panel_query_is_a_shared_query_rendered_with_the_variables(dashboard: dict[str, Any]) -> None:
    """The report renders the same templates with a fixed window: same numbers by construction."""
    shared = [
        *(queries.app_response_quantile(q) for q in queries.PERCENTILES),
        *(queries.processing_quantile(q) for q in queries.PERCENTILES),
        queries.app_response_ratio(rules.P95),
        queries.PROCESSING_MAX,
        queries.REQUEST_RATE,
        queries.ERROR_RATIO,
        queries.IN_FLIGHT,
        queries.THREADS,
        queries.QUEUE_DEPTH,
        queries.UTILISATION,
        queries.CPU_PER_PROCESS,
        queries.CPU_PER_REQUEST,
    ]
    selectors = [SELECTOR] + [f'{SELECTOR},{c.LABEL_VARIANT}="{v}"' for v in c.VARIANTS]
    renderings = {q.render(WINDOW, s) for q in shared for s in selectors}
    for pq in panel_queries(dashboard):
        assert pq.expr in renderings, f"{pq.name} is not one of canarylab.queries: {pq.expr}"


def test_seed_graph_p50_p90_p95_per_variant(dashboard: dict[str, Any]) -> None:
    panel = _panel(dashboard, "response time p50 / p90 / p95")
    exprs = [t["expr"] for t in panel["targets"]]
    assert exprs == [queries.app_response_quantile(q).render(WINDOW, SELECTOR) for q in (0.5, 0.9, 0.95)]
    assert all(f"by (le, {c.LABEL_VARIANT})" in e for e in exprs), "one series per variant"
    assert [t["legendFormat"] for t in panel["targets"]] == [
        "{{variant}} p50",
        "{{variant}} p90",
        "{{variant}} p95",
    ]
    assert panel["fieldConfig"]["defaults"]["unit"] == "s"


def test_required_panels(dashboard: dict[str, Any]) -> None:
    assert (
        c.MODEL_PROCESSING_WINDOW_MAX_SECONDS in _panel(dashboard, "Maximum prediction")["targets"][0]["expr"]
    )
    assert _panel(dashboard, "Request rate")["targets"][0]["expr"] == queries.REQUEST_RATE.render(
        WINDOW, SELECTOR
    )
    assert _panel(dashboard, "Error ratio")["targets"][0]["expr"] == queries.ERROR_RATIO.render(
        WINDOW, SELECTOR
    )
    for variant in c.VARIANTS:
        panel = _panel(dashboard, f"In-flight requests vs threads: {variant}")
        exprs = " ".join(t["expr"] for t in panel["targets"])
        assert c.MODEL_IN_FLIGHT in exprs
        assert c.MODEL_THREADS in exprs
        assert f'{c.LABEL_VARIANT}="{variant}"' in exprs


def test_alert_thresholds_are_drawn_from_the_rules(dashboard: dict[str, Any]) -> None:
    panel = _panel(dashboard, "canary ÷ stable")
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert steps[-1]["value"] == rules.P95_RATIO_THRESHOLD
    assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "dashed"


def test_experiment_and_alert_annotations(dashboard: dict[str, Any]) -> None:
    names = {a["name"]: a for a in dashboard["annotations"]["list"]}
    assert names["Experiment phases"]["target"]["tags"] == ["canarylab"]
    alerts = names["canarylab alerts"]
    assert alerts["datasource"]["uid"] == f"${{{DATASOURCE_VAR}}}"
    assert f'alertname=~"{rules.ALERT_PREFIX}.*"' in alerts["expr"]
    # Fields the SDK does not model, added by panels.add_fields: without them Grafana titles
    # every alert annotation with the whole series and tags none.
    assert alerts["titleFormat"] == "{{alertname}}"
    assert alerts["tagKeys"].split(",") == ["alertname", c.LABEL_VARIANT, rules.NAMESPACE_LABEL]
    assert alerts["step"] == "15s"
    for alert in rules.alerting_rules():
        assert alert.alert.startswith(rules.ALERT_PREFIX)


def test_add_fields_needs_exactly_one_item_of_that_name() -> None:
    items: list[dict[str, Any]] = [{"name": "a"}, {"name": "b"}, {"name": "b"}]
    add_fields(items, "a", {"x": 1})
    assert items[0] == {"name": "a", "x": 1}
    for name in ("b", "missing"):
        with pytest.raises(ValueError, match=f"one item named '{name}'"):
            add_fields(items, name, {"x": 1})


def test_validate_command_accepts_the_committed_file(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard", "validate", str(root / files.DASHBOARD)]) == 0
    assert "ok: 11 panels" in capsys.readouterr().out


def test_queries_command_substitutes_every_variable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard", "queries", "--window", "30s"]) == 0
    out = capsys.readouterr().out
    assert "$" not in out
    assert "[30s]" in out
    assert 'namespace=~".*"' in out


def test_report_plots_and_dashboard_draw_the_same_queries() -> None:
    """The experiment report's latency-over-time plots (D's engine) and the dashboard's seed graph
    render the same query templates; only the window and the selector differ."""
    from canarylab.experiment import collect, plots  # noqa: PLC0415 - D's engine, imported for this check

    plotted = [queries.app_response_quantile(p) for p in plots.PLOTTED]
    collected = {q.key: q for q in collect.RANGE_QUERIES}
    drawn = {t.query.key: t.query for row in rows() for spec in row.panels for t in spec.panel.targets}
    seed = [queries.app_response_quantile(q) for q in SEED_QUANTILES]
    assert [q.key for q in plotted] == [q.key for q in seed]
    for query in seed:
        assert collected[query.key] == query == drawn[query.key]
    for query in (
        queries.PROCESSING_MAX,
        queries.REQUEST_RATE,
        queries.IN_FLIGHT,
        queries.QUEUE_DEPTH,
        queries.UTILISATION,
        queries.CPU_PER_PROCESS,
    ):
        assert collected[query.key] == drawn[query.key]
    # the report's CPU per request (one figure per repetition window) is the dashboard's panel
    windowed = {q.key: q for q in collect.WINDOW_QUERIES}
    for query in (queries.CPU_PER_PROCESS, queries.CPU_PER_REQUEST):
        assert windowed[query.key] == drawn[query.key]
