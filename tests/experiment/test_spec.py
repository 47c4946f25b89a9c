"""Spec validation: loading an experiment file validates it, and every error names its field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from canarylab.experiment.spec import (
    ExperimentSpec,
    SpecError,
    connections_for,
    load_spec,
    parse_duration,
    parse_fraction,
    spec_from_dict,
)

ROOT = Path(__file__).resolve().parents[2]

VALID: dict[str, Any] = {
    "name": "t",
    "hypothesis": "h",
    "variants": [
        {"name": "stable", "threads": 4},
        {"name": "canary", "threads": 16, "env": {"MODEL_SERVICE_SIMULATED_LATENCY_MS": 200}},
    ],
    "load": {"rate": 10, "duration": "60s"},
}


def with_changes(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(VALID)
    for dotted, value in changes.items():
        node = data
        *path, last = dotted.split("__")
        for key in path:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is ...:
            del node[last]
        else:
            node[last] = value
    return data


def problems(data: Any) -> list[str]:
    with pytest.raises(SpecError) as info:
        spec_from_dict(data)
    return info.value.problems


@pytest.mark.parametrize("path", sorted((ROOT / "experiments").glob("*.yml")), ids=lambda p: p.name)
def test_every_shipped_experiment_loads(path: Path) -> None:
    spec = load_spec(path)
    assert {v.name for v in spec.variants} == {"stable", "canary"}


def test_the_seed_experiment_is_what_the_issue_says() -> None:
    spec = load_spec(ROOT / "experiments/threads-4-vs-16.yml")
    assert spec.variant("stable").threads == 4
    assert spec.variant("canary").threads == 16
    assert spec.load.rate == 10
    assert spec.load.duration == 20  # x 10 repetitions: docs/experiment.md, "Measured"
    assert spec.load.generator == "bombardier"
    assert spec.criteria.seed.statistic == "max"
    # p95 decides, never the max; 10 repetitions (3 is the fewest that may PASS)
    assert spec.criteria.decide.statistics == ("p95",)
    assert spec.repetitions == 10
    assert spec.criteria.seed.min_reduction == pytest.approx(0.05)
    assert spec.criteria.max_error_ratio == pytest.approx(0.01)
    assert spec.criteria.min_achieved_rate == pytest.approx(0.95)
    assert spec.baseline == "stable"
    assert spec.candidate == "canary"


def test_a_valid_spec_round_trips_through_to_dict() -> None:
    spec = spec_from_dict(VALID)
    assert spec_from_dict(spec.to_dict()) == spec
    assert spec.variant("canary").env == {"MODEL_SERVICE_SIMULATED_LATENCY_MS": "200"}


def test_unknown_key_is_named() -> None:
    assert any(p.startswith("bogus: unknown key") for p in problems(with_changes(bogus=1)))
    assert any(p.startswith("load.rps: unknown key") for p in problems(with_changes(load__rps=5)))
    found = problems(with_changes(variants__0__thread=4))
    assert any(p.startswith("variants[0] (stable).thread: unknown key") for p in found), found


def test_negative_rate_is_named() -> None:
    found = problems(with_changes(load__rate=-5))
    assert any(p.startswith("load.rate:") and "-5" in p for p in found), found


def test_unparsable_duration_is_named() -> None:
    found = problems(with_changes(load__duration="sixty seconds"))
    assert any(p.startswith("load.duration:") and "sixty seconds" in p for p in found), found


def test_missing_variant_is_named() -> None:
    data = with_changes()
    data["variants"] = data["variants"][:1]
    found = problems(data)
    assert any(p.startswith("variants:") and "'canary'" in p for p in found), found


def test_missing_required_fields_are_named() -> None:
    found = problems({"variants": VALID["variants"]})
    assert {"name: is required", "hypothesis: is required", "load: is required"} <= set(found), found


def test_every_problem_is_reported_at_once() -> None:
    data = with_changes(load__rate=0, load__duration="x", extra=True, variants__1__threads=-1)
    assert len(problems(data)) >= 4


def test_the_error_message_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(with_changes(load__rate=-1)))
    with pytest.raises(SpecError, match=r"bad\.yml") as info:
        load_spec(path)
    assert "load.rate" in str(info.value)


def test_invalid_yaml_is_a_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(path)


def test_variant_names_come_from_the_contract() -> None:
    found = problems(with_changes(variants__1__name="blue"))
    assert any("variants[1].name" in p and "stable, canary" in p for p in found), found


def test_duplicate_variant() -> None:
    data = with_changes(variants__1__name="stable")
    assert any("appears more than once" in p for p in problems(data))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("60s", 60),
        ("1m", 60),
        ("1m30s", 90),
        ("500ms", 0.5),
        ("1.5m", 90),
        (45, 45),
        ("2h", 7200),
        ("10", 10),
    ],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "60 sec", "1d", "-5s", True, None, [1]])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message is checked via the field tests
        parse_duration(text)


def test_parse_fraction() -> None:
    assert parse_fraction("5%") == pytest.approx(0.05)
    assert parse_fraction(0.05) == pytest.approx(0.05)
    with pytest.raises(ValueError):  # noqa: PT011
        parse_fraction("150%")


def test_overrides_are_validated_like_the_file() -> None:
    spec = spec_from_dict(VALID)
    changed = spec.with_overrides(duration=5, rate=25, repetitions=2, warmup=1)
    assert (changed.load.duration, changed.load.rate, changed.repetitions, changed.load.warmup) == (
        5,
        25,
        2,
        1,
    )
    with pytest.raises(SpecError, match="--rate"):
        spec.with_overrides(rate=-1)
    with pytest.raises(SpecError, match="--repetitions"):
        spec.with_overrides(repetitions=0)


def test_auto_connections_hold_the_rate_for_a_whole_timeout() -> None:
    spec: ExperimentSpec = spec_from_dict(with_changes(load__rate=25, load__timeout="10s"))
    assert spec.load.connections is None
    assert spec.load.effective_connections >= 25 * 10
    assert connections_for(0.5, 1) >= 4
    explicit = spec_from_dict(with_changes(load__connections=7))
    assert explicit.load.effective_connections == 7


def test_the_command_refuses_a_bad_spec_before_ansible_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from canarylab.cli import main  # noqa: PLC0415 - the CLI, as a user runs it

    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump(with_changes(load__rate=-3, load__duration="6x")))
    assert main(["experiment", "run", "--target", "local", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "load.rate" in err
    assert "load.duration" in err
    good = ROOT / "experiments/threads-4-vs-16.yml"
    assert main(["experiment", "run", str(good), "--duration", "soon"]) == 2
    assert "--duration" in capsys.readouterr().err


def test_the_maximum_never_decides() -> None:
    data = with_changes()
    data["criteria"] = {"decide": {"statistics": ["p95", "max"]}}
    [problem] = problems(data)
    assert problem.startswith("criteria.decide.statistics")
    assert "'max' cannot decide" in problem
    assert "criteria.seed" in problem  # where the max is reported instead
    assert spec_from_dict(with_changes()).criteria.decide.statistics == ("p95",)
    data["criteria"] = {"decide": {"statistics": ["p99", "p50"]}}
    assert spec_from_dict(data).criteria.decide.statistics == ("p99", "p50")


def test_calibration_starts_above_its_unloaded_rate() -> None:
    data = with_changes()
    data["calibration"] = {"unloaded_rate": 10, "start_rate": 10}
    assert problems(data) == ["calibration.unloaded_rate: must be below start_rate (10), got 10"]
    defaults = spec_from_dict(with_changes()).calibration
    assert (defaults.unloaded_rate, defaults.start_rate, defaults.max_steps) == (5, 10, 10)


def test_slos_read_round_trip_and_name_a_bad_limit() -> None:
    data = with_changes(criteria={"slo": {"p95": "500ms", "max": "2s", "error_ratio": "0.5%"}})
    spec = spec_from_dict(data)
    assert spec.criteria.slo.latency == {"p95": 0.5, "max": 2.0}
    assert spec.criteria.slo.error_ratio == 0.005
    assert spec_from_dict(spec.to_dict()) == spec
    assert spec_from_dict(VALID).criteria.slo.latency == {}
    assert spec_from_dict(VALID).criteria.slo.error_ratio is None
    assert any("criteria.slo.p95" in p for p in problems(with_changes(criteria={"slo": {"p95": "-1s"}})))
    assert any("criteria.slo.p97" in p for p in problems(with_changes(criteria={"slo": {"p97": "1s"}})))
