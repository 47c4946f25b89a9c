"""Report rendering from a saved results directory: no Prometheus, no services.

The fixture is the real results directory of a must-PASS run on this machine
(raw bombardier JSON, Prometheus query results, summary.json)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from canarylab.cli import main
from canarylab.dashboard.build import UID as DASHBOARD_UID
from canarylab.errors import CanarylabError
from canarylab.experiment import results as res
from canarylab.experiment.report import grafana_link, reanalyse, render_all, render_markdown

from .helpers import PNG_SIZE, png_size

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "experiment" / "run-must-pass"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    target = tmp_path / "20260101T000000Z-must-pass"
    shutil.copytree(FIXTURE, target)
    return target


def test_canarylab_report_renders_the_report_and_plots_from_saved_data(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(run_dir)]) == 0
    report = (run_dir / res.REPORT).read_text()
    assert report.startswith("# must-pass: **PASS**")
    for needle in ("## Verdict table", "## Comparison and uncertainty", "seed's criterion", "## Validity"):
        assert needle in report
    pngs = sorted(p.name for p in (run_dir / res.PLOTS_DIR).glob("*.png"))
    assert pngs == [
        "latency-distribution.png",
        "latency-over-time-canary.png",
        "latency-over-time-stable.png",
        "latency-over-time.png",
    ]  # no load-over-time.png: these results are from before the load section, which links it
    for png in (run_dir / res.PLOTS_DIR).glob("*.png"):
        assert png_size(png) == PNG_SIZE
        assert png.stat().st_size > 20_000  # drawn, not blank
        assert f"plots/{png.name}" in report
    out = capsys.readouterr().out
    assert "PASS" in out
    assert "report:" in out


def test_reanalysis_reproduces_the_saved_summary(run_dir: Path) -> None:
    saved = json.loads((run_dir / res.SUMMARY).read_text())
    again = reanalyse(run_dir).to_dict()
    # The saved PASS predates two rules: one run never passes (its interval cannot see run-to-run
    # variation), and the max never decides (the fixture's spec.yml now decides on p95 alone).
    # The same intervals, clear of -5% within the run, are now INCONCLUSIVE.
    assert saved["verdict"] == "PASS"
    assert saved["comparison"]["statistics"] == ["p95", "max"]
    assert again["verdict"] == "INCONCLUSIVE"
    assert "within the run" in again["reason"]
    assert "repetitions: 3" in again["reason"]
    assert again["comparison"] == saved["comparison"] | {"statistics": ["p95"]}
    # The saved summary predates the scrape-gap rule: stable's model-service answered 46% of
    # the scrapes, its processing-max gauge went ~8 s without a sample (> its 5 s window), so
    # its maximum is no longer called exact and the seed's criterion is undecidable.
    # Everything else is reproduced exactly.
    for name, v in again["variants"].items():
        old = saved["variants"][name]
        processing = dict(v["processing"])
        gap = processing.pop("scrape_gap_s")
        assert processing == old["processing"] | {"max_exact": name != "stable"}
        assert (gap is not None) == (name == "stable")
        assert {**v, "processing": old["processing"]} == old
    assert again["variants"]["stable"]["processing"]["scrape_gap_s"] > 5
    seed = again["seed_criterion"]
    assert saved["seed_criterion"]["met"] is True  # "met (-5.4%)": partly the warm-up's maximum
    assert (seed["exact"], seed["met"], seed["result"]) == (False, None, "unknown (scrape gap)")
    assert seed["change"] == saved["seed_criterion"]["change"]


def test_report_command_accepts_the_parent_results_dir(run_dir: Path) -> None:
    res.point_latest(run_dir.parent, run_dir)
    assert main(["report", str(run_dir.parent), "--reanalyse"]) == 0
    assert (run_dir / res.REPORT).exists()


def test_report_of_a_non_results_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CanarylabError, match="not a results directory"):
        res.find_run_dir(tmp_path)
    assert main(["report", str(tmp_path)]) == 2


def test_markdown_says_which_maximum_and_shows_the_uncertainty() -> None:
    summary = json.loads((FIXTURE / res.SUMMARY).read_text())
    text = render_markdown(summary, json.loads((FIXTURE / res.ENVIRONMENT).read_text()))
    assert "exact maximum recorded by the model-service" in text
    assert "95% CI" in text
    assert "bombardier" in text
    assert "v1.2.6" in text


def test_render_all_survives_missing_prometheus_data(run_dir: Path) -> None:
    shutil.rmtree(run_dir / res.PROM_DIR)
    render_all(run_dir)
    for png in (run_dir / res.PLOTS_DIR).glob("*.png"):
        assert png_size(png) == PNG_SIZE


def test_lab_report_links_the_grafana_dashboard_for_the_run_window() -> None:
    summary = json.loads((FIXTURE / res.SUMMARY).read_text())
    environment = json.loads((FIXTURE / res.ENVIRONMENT).read_text())
    assert "Grafana dashboard" not in render_markdown(summary, environment)  # local: no Grafana
    summary |= {"started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:01:30+00:00"}
    environment["target"] = {
        "kind": "lab",
        "grafana_url": "http://192.168.56.201/",
        "selector": 'namespace="canarylab"',
    }
    link = grafana_link(summary, environment)
    assert link == (
        f"http://192.168.56.201/d/{DASHBOARD_UID}/?from=1767225600000&to=1767225690000&var-namespace=canarylab"
    )
    assert f"<{link}>" in render_markdown(summary, environment)


def test_a_calibrated_run_reports_its_curve_and_knee(run_dir: Path) -> None:
    from canarylab.experiment.calibrate import calibrate  # noqa: PLC0415
    from canarylab.experiment.spec import CalibrationSpec  # noqa: PLC0415

    from .test_parts import service  # noqa: PLC0415 - the fake service with a knee at 30 req/s

    step, _ = service(knee=30, capacity=60)
    summary = json.loads((run_dir / res.SUMMARY).read_text())
    summary["calibration"] = calibrate(CalibrationSpec(), step)
    (run_dir / res.SUMMARY).write_text(json.dumps(summary))
    assert main(["report", str(run_dir)]) == 0
    report = (run_dir / res.REPORT).read_text()
    assert "## Calibration" in report
    assert "Chose **30 req/s**: the knee" in report
    row = "| 4 | search | 35 | 25.0 | 25.0 | 2.50 | 0 | loaded: p95 25.0 ms >= 20.0 ms, stationary |"
    assert row in report
    assert "plots/calibration.png" in report
    png = run_dir / res.PLOTS_DIR / "calibration.png"
    assert png_size(png) == PNG_SIZE
    assert png.stat().st_size > 20_000
