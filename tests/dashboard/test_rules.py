"""The Prometheus rules: generated files in sync, `promtool check rules`, and `promtool test rules`
unit tests with series that must fire the alerts and series that must not."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import canarylab_contract as c
from canarylab import rules
from canarylab.dashboard import files


def _promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        pytest.fail("promtool is missing: run `make setup` (Debian package prometheus)")
    return found


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )


def test_chart_and_local_rules_are_the_same_groups(root: Path) -> None:
    chart = yaml.safe_load((root / files.CHART_RULES).read_text())
    local = yaml.safe_load((root / files.LOCAL_RULES).read_text())
    assert chart == local == {"groups": rules.groups()}


@pytest.mark.parametrize("path", [files.CHART_RULES, files.LOCAL_RULES])
def test_promtool_check_rules(root: Path, path: Path) -> None:
    run = _run("check", "rules", str(path), cwd=root)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS: 13 rules found" in run.stdout


def test_promtool_unit_tests_pass(root: Path) -> None:
    run = _run("test", "rules", files.LOCAL_RULES_TESTS.name, cwd=root / files.LOCAL_RULES_TESTS.parent)
    assert run.returncode == 0, run.stdout + run.stderr


def _mutated_run(tmp_path: Path, root: Path, old: str, new: str) -> subprocess.CompletedProcess[str]:
    text = (root / files.LOCAL_RULES).read_text()
    assert old in text
    (tmp_path / files.LOCAL_RULES.name).write_text(text.replace(old, new))
    shutil.copy(root / files.LOCAL_RULES_TESTS, tmp_path)
    return _run("test", "rules", files.LOCAL_RULES_TESTS.name, cwd=tmp_path)


@pytest.mark.parametrize(
    ("old", "new", "failing_case"),
    [
        # A laxer threshold misses the slow canary.
        (f"> {rules.P95_RATIO_THRESHOLD} and", "> 1.7 and", "a slow canary fires the p95 alert"),
        # A stricter one fires for the 1.2x canary.
        (f"> {rules.P95_RATIO_THRESHOLD} and", "> 1.1 and", "a canary 1.2x slower than stable does not fire"),
        # No hold time: the one-minute spike fires.
        (f"for: {rules.ALERT_FOR}", "for: 0s", "a one-minute latency spike does not fire"),
        # No traffic guard: the near-idle canary fires.
        (f"> {rules.MIN_CANARY_RPS}\n", "> 0\n", "almost no traffic does not fire"),
        # The error alert compared with nothing: errors in both variants fire it.
        (
            f'{{{c.LABEL_VARIANT}="{c.STABLE}"}} + 0.05',
            f'{{{c.LABEL_VARIANT}="{c.STABLE}"}} * 0',
            "errors in both",
        ),
    ],
)
def test_promtool_tests_catch_a_wrong_rule(
    tmp_path: Path, root: Path, old: str, new: str, failing_case: str
) -> None:
    run = _mutated_run(tmp_path, root, old, new)
    assert run.returncode != 0, f"the unit tests did not notice {old!r} -> {new!r}"
    assert failing_case in run.stdout + run.stderr


def test_rules_use_only_contract_metric_names() -> None:
    text = yaml.safe_dump(rules.groups())
    names = set(c.as_dict()["metrics"].values())  # type: ignore[union-attr]
    used = {n for n in names if n in text}
    assert {c.APP_MODEL_RESPONSE_SECONDS, c.MODEL_PROCESSING_SECONDS, c.APP_REQUESTS_TOTAL} <= used


def test_every_alert_has_a_for_severity_and_summary() -> None:
    for alert in rules.alerting_rules():
        assert alert.for_ == rules.ALERT_FOR
        assert alert.labels["severity"] in {"warning", "critical"}
        assert alert.annotations["summary"]
