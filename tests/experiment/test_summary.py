"""summary.json as types: round trips, schema 1, and old (pre-schema) results still rendering.

The fixture (tests/fixtures/experiment/run-must-pass/) is a real run's results directory
written before ``schema: 1``; it stays as it was, and these tests read copies of it.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import yaml

from canarylab.cli import main
from canarylab.errors import CanarylabError
from canarylab.experiment import results as res
from canarylab.experiment.calibrate import calibrate
from canarylab.experiment.load import LoadResult
from canarylab.experiment.report import reanalyse, render_markdown
from canarylab.experiment.spec import CalibrationSpec
from canarylab.experiment.summary import (
    SCHEMA,
    Calibration,
    Spread,
    Summary,
    VariantFigures,
)
from canarylab.experiment.vocabulary import STATISTICS

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "experiment" / "run-must-pass"


def fixture_dict() -> dict[str, object]:
    data = json.loads((FIXTURE / res.SUMMARY).read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    target = tmp_path / "20260101T000000Z-must-pass"
    shutil.copytree(FIXTURE, target)
    return target


def json_round(data: dict[str, object]) -> dict[str, object]:
    """Through JSON text, as summary.json is written and read."""
    out = json.loads(json.dumps(data, allow_nan=False))
    assert isinstance(out, dict)
    return out


# --- round trips -----------------------------------------------------------------------------------


def test_the_fixture_is_a_pre_schema_summary() -> None:
    assert "schema" not in fixture_dict()  # keep it so: it is the old-results case


def test_an_old_summary_reads_as_the_pre_schema_format_and_writes_schema_1() -> None:
    s = Summary.from_dict(fixture_dict())
    assert Summary.from_dict(s.to_dict()) == s
    assert Summary.from_dict(json_round(s.to_dict())) == s
    d = s.to_dict()
    assert d["schema"] == SCHEMA == 1
    assert next(iter(d)) == "schema"
    # fields the old format lacks take their defaults
    assert s.seed_criterion.result == "met"  # derived from "met": true
    assert d["seed_criterion"]["result"] == "met"
    assert s.variants["stable"].processing.scrape_gap_s is None
    # and everything it has is kept as it was
    old = fixture_dict()
    assert d["comparison"] == old["comparison"]
    assert d["validity"] == old["validity"] | {"host_cpu_busy": [], "max_host_cpu_busy": None}  # type: ignore[operator]
    for name, v in d["variants"].items():
        was = old["variants"][name]  # type: ignore[index]
        assert v["processing"] == was["processing"] | {"scrape_gap_s": None}
        assert {**v, "processing": was["processing"]} == was
    assert d["seed_criterion"] == old["seed_criterion"] | {"result": "met"}  # type: ignore[operator]
    assert d["sequential"] is None  # not a sequential run
    assert d["load_regime"] is None  # written before it existed
    same = ("schema", "seed_criterion", "variants", "sequential", "validity", "load_regime")
    assert {k: v for k, v in d.items() if k not in same} == {k: v for k, v in old.items() if k not in same}


def test_the_current_schema_round_trips_exactly() -> None:
    d = json_round(Summary.from_dict(fixture_dict()).to_dict())
    assert Summary.from_dict(d).to_dict() == d


def test_a_summary_written_by_reanalysis_round_trips(run_dir: Path) -> None:
    written = reanalyse(run_dir)
    d = json.loads((run_dir / res.SUMMARY).read_text())
    assert d["schema"] == 1
    assert Summary.from_dict(d) == written
    assert Summary.from_dict(d).to_dict() == d
    assert Summary.from_dict(written.to_dict()) == written
    # the re-analysis knows the scrape gap the old file did not
    assert written.seed_criterion.result == "unknown (scrape gap)"
    assert d["variants"]["stable"]["processing"]["scrape_gap_s"] > 5


def test_spread_across_repetitions_and_calibration_round_trip() -> None:
    s = Summary.from_dict(fixture_dict())
    spread = {st: Spread(n=3, mean=10.0 + i, std=1.5, min=9.0, max=12.0) for i, st in enumerate(STATISTICS)}
    variants = {name: dataclasses.replace(v, spread=spread) for name, v in s.variants.items()}
    comparison = dataclasses.replace(s.comparison, across_repetitions=s.comparison.within_run)
    cal = Calibration.from_dict(calibrate(CalibrationSpec(start_rate=5, growth=2, max_steps=3), _step))
    validity = dataclasses.replace(s.validity, host_cpu_busy=(0.42, None, 0.97), max_host_cpu_busy=0.98)
    more = dataclasses.replace(
        s, variants=variants, comparison=comparison, calibration=cal, validity=validity
    )
    d = json_round(more.to_dict())
    assert Summary.from_dict(d) == more
    assert Summary.from_dict(d).to_dict() == d
    assert d["variants"]["canary"]["spread"]["p95_ms"]["mean"] == 12.0
    assert d["calibration"]["steps"][0]["role"] == "unloaded"
    text = render_markdown(more)
    assert "## Calibration" in text
    assert "Spread across repetitions" in text
    assert "12.0 ± 1.5 [9.0 .. 12.0]" in text
    assert "The host's CPUs were 42%, 97% busy in the repetitions (INVALID above 98%" in text


def test_calibration_json_round_trips() -> None:
    out = json_round(calibrate(CalibrationSpec(start_rate=5, growth=2, max_steps=3), _step))
    assert Calibration.from_dict(out).to_dict() == out


def _step(rate: int, _n: int, _part: str, _duration: float) -> LoadResult:
    p95 = 0.010 if rate < 10 else 0.030
    return LoadResult(
        rate=rate, duration=10, connections=8, timeout=10, time_taken=10, req1xx=0, req2xx=rate * 10,
        req3xx=0, req4xx=0, req5xx=0, others=0, percentiles={"95": p95}, latency_max=p95,
    )  # fmt: skip


def test_a_changed_field_does_not_round_trip_as_the_same_summary() -> None:
    """The round trips compare every field: a changed one is seen."""
    s = Summary.from_dict(fixture_dict())
    stable = s.variants["stable"]
    changed = dataclasses.replace(
        s, variants={**s.variants, "stable": dataclasses.replace(stable, timeouts=stable.timeouts + 1)}
    )
    assert Summary.from_dict(changed.to_dict()) == changed
    assert changed != s
    assert changed.to_dict() != s.to_dict()


def _perturbed(x: object) -> object:
    """Every boolean flipped and every number moved: no field can be a constant in to_dict."""
    if isinstance(x, bool):
        return not x
    if isinstance(x, int | float):
        return x + 1
    if isinstance(x, dict):
        return {k: v if k == "schema" else _perturbed(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_perturbed(v) for v in x]
    return x


def test_every_number_and_flag_survives_the_round_trip() -> None:
    s = Summary.from_dict(fixture_dict())
    spread = {st: Spread(n=2, mean=1.0, std=2.0, min=0.5, max=3.0) for st in STATISTICS}
    cal = Calibration.from_dict(calibrate(CalibrationSpec(start_rate=5, growth=2, max_steps=3), _step))
    variants = {name: dataclasses.replace(v, spread=spread) for name, v in s.variants.items()}
    full = dataclasses.replace(s, variants=variants, calibration=cal).to_dict()
    d = json_round(_perturbed(full))  # type: ignore[arg-type]
    assert d != full
    assert Summary.from_dict(d).to_dict() == d


def test_the_types_are_frozen() -> None:
    s = Summary.from_dict(fixture_dict())
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.verdict = "FAIL"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.variants["stable"].requests = 0  # type: ignore[misc]
    assert isinstance(s.variants["stable"], VariantFigures)


# --- versions --------------------------------------------------------------------------------------


def test_a_future_schema_is_an_error_that_says_what_to_do(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    future = fixture_dict() | {"schema": SCHEMA + 1}
    with pytest.raises(CanarylabError, match=f"schema {SCHEMA + 1}, newer") as err:
        Summary.from_dict(future)
    assert err.value.hint is not None
    assert "upgrade canarylab" in err.value.hint
    (run_dir / res.SUMMARY).write_text(json.dumps(future))
    assert main(["report", str(run_dir)]) == 2
    stderr = capsys.readouterr().err
    assert "summary.json has schema 2" in stderr
    assert "upgrade canarylab" in stderr


@pytest.mark.parametrize("schema", ["1", -1, True, 1.5])
def test_a_schema_that_is_not_a_version_is_an_error(schema: object) -> None:
    with pytest.raises(CanarylabError, match="not a version number"):
        Summary.from_dict(fixture_dict() | {"schema": schema})


def test_an_unknown_verdict_or_statistic_is_an_error() -> None:
    with pytest.raises(CanarylabError, match="unknown verdict 'MAYBE'"):
        Summary.from_dict(fixture_dict() | {"verdict": "MAYBE"})
    bad = fixture_dict()
    bad["comparison"] = {"changes": {"p42": {}}}
    with pytest.raises(CanarylabError, match="unknown statistic 'p42'"):
        Summary.from_dict(bad)


# --- old results through `canarylab report` -------------------------------------------------------


def test_canarylab_report_re_renders_an_old_result_with_the_same_verdict_and_figures(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = (run_dir / res.SUMMARY).read_bytes()
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / res.SUMMARY).read_bytes() == saved  # rendering does not rewrite the summary
    report = (run_dir / res.REPORT).read_text()
    old = fixture_dict()
    assert report.startswith(f"# must-pass: **{old['verdict']}**")
    assert f"> {old['reason']}" in report
    # the client-side table: the old file's figures, as they were
    assert "| 2755.8 | 2857.7 | 2895.8 |" in report  # stable p95, p99, max (ms)
    assert "| 239.8 | 252.5 | 276.4 |" in report  # canary
    # the deciding intervals and the seed's criterion, from the old file
    assert "| p95 | 2788.3 | 241.3 | -91.3% | -92.1% .. -89.2% | yes | -91.3% |" in report
    assert "| max | 2979.6 | 264.2 | -91.1% | -91.8% .. -89.1% | yes | -90.5% |" in report
    assert "249.6 ms → 236.0 ms (-5.4%): **met**" in report
    out = capsys.readouterr().out
    assert "verdict: PASS" in out
    assert "-91.3%" in out


def test_reanalysis_reads_a_spec_from_before_the_metric_as_it_was_meant(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Saved specs without ``sequential`` said ``metric: app_response_seconds``, the only value
    there was, while bombardier's p95 alone decided: re-analysed, they decide as they did."""
    import canarylab.experiment.report as report  # noqa: PLC0415

    seen: list[object] = []
    real = report.analyse

    def spy(spec: object, *args: object, **kw: object) -> object:
        seen.append(spec)
        return real(spec, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(report, "analyse", spy)
    saved = yaml.safe_load((run_dir / res.SPEC).read_text())
    assert saved["metric"] == "app_response_seconds"
    assert "sequential" not in saved
    reanalyse(run_dir)
    legacy = seen[-1]
    assert legacy.metric == "client_latency"  # type: ignore[attr-defined]
    assert legacy.criteria.decide.p99_from_requests == 0  # type: ignore[attr-defined]
    (run_dir / res.SPEC).write_text(yaml.safe_dump({**saved, "sequential": False}))
    reanalyse(run_dir)
    assert seen[-1].metric == "app_response_seconds"  # type: ignore[attr-defined]
