"""Failed scrapes: time blocks stay paired, and the wait for the last scrape needs a successful one.

No Prometheus: synthetic range-query results and a scripted client (a :class:`PrometheusClient`
whose ``query`` answers from scripted scrapes); the PromQL itself is checked with promtool's
unit tests when promtool is installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from canarylab.experiment import results as res
from canarylab.experiment.analysis import paired_blocks, unpaired_repetitions
from canarylab.experiment.collect import (
    RepetitionCollection,
    blocks_on_shared_grid,
    collect_repetition,
    histograms_over_time,
)
from canarylab.experiment.prometheus import (
    PrometheusClient,
    Sample,
    Series,
    scraped_after_query,
    wait_scraped_after,
)
from canarylab.experiment.report import reanalyse

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "experiment" / "run-must-pass"


def counters(variant: str, rate: float, times: list[int]) -> list[Series]:
    """Cumulative bucket counters of ``variant`` at 100 + ``times``: ``rate`` requests a second,
    three quarters of them at or below 0.1 s."""
    return [
        Series({"le": "0.1", "variant": variant}, [(100.0 + t, 0.75 * rate * t) for t in times]),
        Series({"le": "+Inf", "variant": variant}, [(100.0 + t, rate * t) for t in times]),
    ]


# --- time blocks on a grid shared by both variants --------------------------------------------


def test_a_scrape_gap_in_one_variant_gives_both_variants_the_same_blocks() -> None:
    """The reviewer's case: stable's scrapes at t=3,4,5 failed, so its series have no points there.
    Before, stable got blocks [10, 10, 40, 10, 10] against canary's 8 blocks of 10, and stable's
    t=6-7 block was paired with canary's t=3-4."""
    everything = list(range(9))
    gap = [t for t in everything if t not in (3, 4, 5)]
    series = counters("stable", 10.0, gap) + counters("canary", 20.0, everything)
    grid, blocks = blocks_on_shared_grid(series)
    assert grid == [100.0, 101.0, 102.0, 106.0, 107.0, 108.0]  # t=3,4,5 dropped for both
    assert [b.total for b in blocks["stable"]] == [10, 10, 40, 10, 10]
    assert [b.total for b in blocks["canary"]] == [20, 20, 80, 20, 20]  # the same seconds: 2x stable
    assert blocks["canary"][2].counts == (60, 20)
    assert histograms_over_time(series) == blocks
    b, c = paired_blocks([RepetitionCollection(1, 100.0, 108.0, "8s", blocks=blocks)], "stable", "canary")
    assert len(b) == len(c) == 5
    assert [h.total for h in c] == [2 * h.total for h in b]  # every pair: the same interval


def test_a_snapshot_missing_one_bucket_drops_that_time_for_both() -> None:
    everything = list(range(9))
    series = [
        *counters("stable", 10.0, everything),
        Series({"le": "0.1", "variant": "canary"}, [(100.0 + t, 15.0 * t) for t in everything if t != 7]),
        Series({"le": "+Inf", "variant": "canary"}, [(100.0 + t, 20.0 * t) for t in everything]),
    ]
    grid, blocks = blocks_on_shared_grid(series)
    assert 107.0 not in grid
    assert len(grid) == 8
    assert [h.total for h in blocks["stable"]] == [10] * 6 + [20]
    assert [h.total for h in blocks["canary"]] == [20] * 6 + [40]


def test_unequal_block_counts_are_left_out_not_truncated() -> None:
    """Data collected before the shared grid: pairing by index would compare different seconds."""
    old = histograms_over_time(counters("stable", 10.0, [0, 1, 2, 6, 7, 8]))["stable"]
    new = histograms_over_time(counters("canary", 10.0, list(range(9))))["canary"]
    good = histograms_over_time(counters("stable", 1.0, [0, 1, 2]) + counters("canary", 1.0, [0, 1, 2]))
    reps = [
        RepetitionCollection(1, 0.0, 8.0, "8s", blocks={"stable": old, "canary": new}),
        RepetitionCollection(2, 0.0, 2.0, "2s", blocks=good),
    ]
    b, c = paired_blocks(reps, "stable", "canary")
    assert b == good["stable"]
    assert c == good["canary"]
    assert unpaired_repetitions(reps, "stable", "canary") == [1]


def test_block_edges_and_warnings_round_trip_through_json() -> None:
    grid, blocks = blocks_on_shared_grid(counters("stable", 1.0, [0, 1]) + counters("canary", 1.0, [0, 1]))
    coll = RepetitionCollection(
        1, 100.0, 101.0, "1s", blocks=blocks, block_seconds=1.0, block_edges=grid, warnings=["a warning"]
    )
    again = RepetitionCollection.from_dict(json.loads(json.dumps(coll.to_dict())))
    assert again.block_edges == [100.0, 101.0]
    assert again.warnings == ["a warning"]
    old = coll.to_dict()
    del old["warnings"], old["blocks"]["edges"]  # results saved before these existed
    assert RepetitionCollection.from_dict(old).warnings == []
    assert RepetitionCollection.from_dict(old).block_edges == []


# --- waiting for the scrape after the load ---------------------------------------------------------


class ScriptedPrometheus(PrometheusClient):
    """Answers :func:`scraped_after_query` from scripted scrapes: query k sees scrape k of every job.

    The answer is what the PromQL ``count(up == 1 and timestamp(up) > T) == count(up)`` gives:
    one sample when every job's latest scrape started after T and succeeded, else nothing
    (promtool checks that in :func:`test_the_wait_query_in_prometheus_itself`).
    """

    def __init__(self, matchers: str, after: float, scrapes: dict[str, list[tuple[float, int]]]) -> None:
        super().__init__("http://prometheus.invalid")
        self.expected = scraped_after_query(matchers, after)
        self.after, self.scrapes, self.calls = after, scrapes, 0

    def query(self, expr: str, at: float | None = None, *, key: str | None = None) -> list[Sample]:
        assert expr == self.expected
        latest = {job: s[min(self.calls, len(s) - 1)] for job, s in self.scrapes.items()}
        self.calls += 1
        ok = sum(1 for t, up in latest.values() if up == 1 and t > self.after)
        return [Sample({}, float(ok))] if ok == len(latest) else []


SEL = 'job=~"app-stable|app-canary"'


def test_waiting_for_a_scrape_after_the_load_ignores_failed_scrapes() -> None:
    """A failed scrape (up == 0) after the load advances timestamp(up) but holds no data."""
    scrapes = {
        "app-stable": [(9.0, 1), (10.0, 1), (11.0, 1), (12.0, 1)],
        "app-canary": [(9.0, 1), (10.0, 1), (11.0, 0), (12.0, 1)],  # its first scrape after 10.5 failed
    }
    fake = ScriptedPrometheus(SEL, 10.5, scrapes)
    wait_scraped_after(fake, SEL, 10.5, timeout=5.0, poll=0.001)
    assert fake.calls == 4  # not 3: the failed scrape at 11 did not count
    assert fake.warnings == []


def test_a_timed_out_wait_leaves_a_warning_that_the_next_collection_records() -> None:
    fake = ScriptedPrometheus(SEL, 10.5, {"app-stable": [(11.0, 1)], "app-canary": [(11.0, 0)]})
    wait_scraped_after(fake, SEL, 10.5, timeout=0.05, poll=0.001)
    assert len(fake.warnings) == 1
    assert "no successful scrape" in fake.warnings[0]
    assert SEL in fake.warnings[0]

    class Empty(PrometheusClient):
        def query(self, expr: str, at: float | None = None, *, key: str | None = None) -> list[Sample]:
            return []

        def query_range(
            self, expr: str, start: float, end: float, step: float, *, key: str | None = None
        ) -> list[Series]:
            return []

    client = Empty("http://prometheus.invalid")
    client.warnings = list(fake.warnings)
    coll = collect_repetition(client, 1, 0.0, 10.0)
    assert coll.warnings == fake.warnings
    assert client.warnings == []  # recorded once


def test_the_wait_query_in_prometheus_itself(tmp_path: Path) -> None:
    """promtool evaluates the query: stable's scrapes at t=2 and t=3 failed (up 0), so the wait
    goes on at t=2 and t=3; at t=4 both targets' latest scrapes started after T=1.5 and succeeded.
    The old query, min(timestamp(up)) > T, already said yes at t=2."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed")
    expr = scraped_after_query(SEL, 1.5)
    test = {
        "rule_files": [],
        "evaluation_interval": "1s",
        "tests": [
            {
                "interval": "1s",
                "input_series": [
                    {"series": 'up{job="app-stable"}', "values": "1 1 0 0 1"},
                    {"series": 'up{job="app-canary"}', "values": "1 1 1 1 1"},
                ],
                "promql_expr_test": [
                    {"expr": expr, "eval_time": "2s", "exp_samples": []},
                    {"expr": expr, "eval_time": "3s", "exp_samples": []},
                    {"expr": expr, "eval_time": "4s", "exp_samples": [{"labels": "{}", "value": 2}]},
                    {
                        "expr": f"min(timestamp(up{{{SEL}}})) > 1.5",
                        "eval_time": "2s",
                        "exp_samples": [{"labels": "{}", "value": 2}],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "wait_test.yml"
    path.write_text(json.dumps(test))  # JSON is YAML
    out = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


# --- into summary.json -------------------------------------------------------------------------------


def _fixture_copy(tmp_path: Path) -> tuple[Path, Path]:
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE, run_dir)
    return run_dir, run_dir / res.PROM_DIR / "rep1.json"


def test_collection_warnings_reach_summary_validity_without_invalidating(tmp_path: Path) -> None:
    run_dir, rep = _fixture_copy(tmp_path)
    data = json.loads(rep.read_text())
    data["warnings"] = ["Prometheus had no successful scrape (up == 1) of every target"]
    rep.write_text(json.dumps(data))
    summary = reanalyse(run_dir).to_dict()
    assert summary["verdict"] == "INCONCLUSIVE"  # clear of -5%, but from one run: not INVALID
    assert summary["validity"]["valid"] is True
    warning = "repetition 1: Prometheus had no successful scrape (up == 1) of every target"
    assert warning in summary["validity"]["warnings"]


def test_saved_blocks_that_cannot_be_paired_are_not_used(tmp_path: Path) -> None:
    run_dir, rep = _fixture_copy(tmp_path)
    data = json.loads(rep.read_text())
    data["blocks"]["variants"]["stable"].pop()
    rep.write_text(json.dumps(data))
    summary = reanalyse(run_dir).to_dict()
    assert "request-level" in summary["comparison"]["decided_by"]  # no paired blocks left: too few
    assert any("cannot be paired" in w for w in summary["validity"]["warnings"])
