"""Real experiments on the local target, through the real path:

    canarylab experiment run --target local
      -> ansible-runner -> experiment.yml -> python -m canarylab.experiment

with the real bombardier, the real model-service and app, and a real Prometheus.
Short durations keep the whole module within a few minutes; the overrides of
the experiment (knobs, rates) live in spec files under tmp_path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from canarylab.experiment import VERDICT_EXIT_CODES, engine
from canarylab.experiment import results as res
from canarylab.experiment.spec import load_spec
from canarylab.experiment.summary import Summary
from canarylab.experiment.targets.local import LocalTarget, VariantConfig
from canarylab.procs import console_script, port_in_use

from .helpers import PNG_SIZE, png_size

pytestmark = pytest.mark.experiment

ROOT = Path(__file__).resolve().parents[2]
SEED_SPEC = ROOT / "experiments" / "threads-4-vs-16.yml"
#: generous: the whole CLI run on a busy 2-core machine
RUN_TIMEOUT = 300


def write_spec(tmp_path: Path, name: str, **changes: Any) -> Path:
    """A test-only spec: the seed experiment with ``changes`` (top-level keys) applied."""
    data = yaml.safe_load(SEED_SPEC.read_text())
    data.update(name=name, **changes)
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def same_work(*, latency_ms: int, canary_threads: int) -> list[dict[str, Any]]:
    """Both variants with the same I/O knob; stable has 4 threads, canary ``canary_threads``."""
    knob = {"MODEL_SERVICE_SIMULATED_LATENCY_MS": latency_ms}
    return [
        {"name": "stable", "threads": 4, "env": knob},
        {"name": "canary", "threads": canary_threads, "env": knob},
    ]


def env() -> dict[str, str]:
    path = os.pathsep.join(
        [str(ROOT / ".venv" / "bin"), str(ROOT / ".cache" / "bin"), os.environ.get("PATH", "")]
    )
    return {**os.environ, "PATH": path, "CANARYLAB_ROOT": str(ROOT), "COLUMNS": "160"}


def cli_argv(spec: Path, results: Path, *extra: str) -> list[str]:
    """``canarylab experiment run --target local SPEC --results-dir RESULTS EXTRA...``"""
    return [console_script("canarylab"), "experiment", "run", "--target", "local", str(spec), "--results-dir",
            str(results), *extra]  # fmt: skip


def run_experiment(spec: Path, results: Path, *extra: str) -> tuple[int, str, dict[str, Any], Path]:
    proc = subprocess.run(
        cli_argv(spec, results, *extra),
        cwd=ROOT,
        env=env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    output = proc.stdout + proc.stderr
    runs = [p for p in results.iterdir() if p.is_dir() and not p.is_symlink()] if results.exists() else []
    assert len(runs) == 1, f"expected one run directory in {results}:\n{output}"
    summary_path = runs[0] / res.SUMMARY
    assert summary_path.exists(), f"no summary.json (exit {proc.returncode}):\n{output}"
    return proc.returncode, output, json.loads(summary_path.read_text()), runs[0]


def explain(summary: dict[str, Any]) -> str:
    return json.dumps(
        {k: summary.get(k) for k in ("verdict", "reason", "details", "validity", "comparison")}, indent=1
    )[:4000]


def test_short_real_run_writes_every_result(tmp_path: Path) -> None:
    """2 repetitions x 5 s at 10 req/s: summary.json, raw data, plots, verdict table."""
    rc, output, summary, run_dir = run_experiment(
        SEED_SPEC,
        tmp_path / "results",
        "--duration",
        "5s",
        "--repetitions",
        "2",
        "--rate",
        "10",
        "--warmup",
        "1s",
    )
    # exit code = verdict; the verdict table is printed
    assert rc == VERDICT_EXIT_CODES[summary["verdict"]], output
    assert summary["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE"), explain(summary)
    assert summary["reason"]
    assert "canary vs stable" in output
    assert f"verdict: {summary['verdict']}" in output
    assert "repetition 2/2" in output  # live progress from the engine's events

    for key in res.SUMMARY_KEYS:
        assert key in summary, key
    assert summary["experiment"] == "threads-4-vs-16"
    assert summary["target"] == "local"
    assert summary["started_at"] < summary["finished_at"]
    assert summary["repetitions"] == 2
    assert summary["rate_per_variant"] == 10
    assert summary["seed_criterion"]["deciding"] is False
    assert summary["seed_criterion"]["exact"] is True
    assert summary["comparison"]["changes"]["p95"]["ci_low"] is not None
    # written as schema 1, the summary round-trips through the types (spread: 2 repetitions)
    assert summary["schema"] == 1
    typed = Summary.from_dict(summary)
    assert typed.to_dict() == summary
    assert Summary.from_dict(typed.to_dict()) == typed
    assert typed.variants["stable"].spread is not None

    for name, threads in (("stable", 4), ("canary", 16)):
        v = summary["variants"][name]
        for key in res.VARIANT_KEYS:
            assert key in v, (name, key)
        assert v["threads"] == threads
        assert v["achieved_rps"] >= 9.5
        assert 95 <= v["requests"] <= 106  # 2 x 5 s x 10 req/s (+1 per run)
        assert v["errors"] == 0
        assert 0 < v["p50_ms"] <= v["p90_ms"] <= v["p95_ms"] <= v["p99_ms"] <= v["max_ms"]
        assert v["server"]["p95_ms"] > 0
        assert v["server"]["max_exact"] is False
        assert v["processing"]["max_exact"] is True
        assert v["processing"]["max_ms"] > 0
        assert len(v["repetitions"]) == 2
        for rep in (1, 2):
            raw = json.loads((run_dir / res.load_file("rep", name, repetition=rep)).read_text())
            assert raw["spec"]["rate"] == 10  # the raw bombardier JSON, as printed

    for rep in (1, 2):
        coll = json.loads((run_dir / res.PROM_DIR / f"rep{rep}.json").read_text())
        assert coll["series"]["app_response_p95"]["stable"]
        assert sum(coll["histograms"]["app_response"]["canary"]["counts"]) > 0
    assert (run_dir / res.RAW_QUERIES).stat().st_size > 0

    spec_as_run = yaml.safe_load((run_dir / res.SPEC).read_text())
    assert spec_as_run["load"]["duration"] == 5
    busy = summary["validity"]["host_cpu_busy"]
    assert len(busy) == 2
    assert all(0.0 <= b <= 0.98 for b in busy), busy  # measured per repetition, and not saturated
    environment = json.loads((run_dir / res.ENVIRONMENT).read_text())
    assert environment["knobs"]["repetitions"] == 2
    assert "v1.2.6" in environment["tools"]["bombardier"]["version"]
    assert environment["target"]["versions"]["prometheus"].startswith("prometheus")
    ports = environment["target"]["ports"]
    assert set(ports) == {
        "prometheus", "model-service-stable", "model-service-canary", "app-stable", "app-canary",
        "model-service-metrics-stable", "model-service-metrics-canary",
    }  # fmt: skip
    ms_env = environment["target"]["processes"]["model-service-canary"]["env"]
    assert ms_env["MODEL_SERVICE_THREADS"] == "16"
    assert ms_env["MODEL_SERVICE_EMULATION_DISTRIBUTION"] == "exponential"  # the seed's service-time model
    regime = summary["load_regime"]
    assert regime["host_cpus"] == os.cpu_count()
    for name in ("stable", "canary"):
        load = regime["variants"][name]
        # the knobs' 20 ms of CPU and the model's few: measured from process_cpu_seconds_total
        assert None not in (load["cpu_ms_per_request"], load["cpu_per_process"]), (name, load)
        assert 10 < load["cpu_ms_per_request"] < 200, load
        assert 0 < load["cpu_per_process"] < 1.2, load
    assert ms_env["MODEL_SERVICE_METRICS_PORT"] == str(ports["model-service-metrics-canary"])

    report = (run_dir / res.REPORT).read_text()
    assert summary["verdict"] in report
    pngs = {p.name: p for p in (run_dir / res.PLOTS_DIR).glob("*.png")}
    assert {
        "latency-over-time-stable.png",
        "latency-over-time-canary.png",
        "latency-distribution.png",
        "load-over-time.png",
    } <= set(pngs)
    for png in pngs.values():
        assert png_size(png) == PNG_SIZE
        assert png.stat().st_size > 20_000


#: The CI's short form of a shipped file's design: its knobs and rate, fewer and shorter repetitions.
SHIPPED_SHORT = ("--duration", "6s", "--warmup", "2s", "--repetitions", "5")


def _shipped(tmp_path: Path, name: str) -> tuple[int, str, dict[str, Any], Path]:
    return run_experiment(ROOT / "experiments" / f"{name}.yml", tmp_path / name, *SHIPPED_SHORT)


def test_the_io_bound_file_passes_as_its_header_says(tmp_path: Path) -> None:
    """Threads that wait for I/O hold no GIL: 16 serve more at once than 4, PASS."""
    rc, output, summary, run_dir = _shipped(tmp_path, "threads-4-vs-16-io-bound")
    assert summary["verdict"] == "PASS", explain(summary)
    assert rc == 0, output
    regime = summary["load_regime"]
    assert regime["queued"] is True, regime
    assert regime["cpu_bound"] is False, regime
    assert regime["variants"]["stable"]["mean_queue"] > regime["variants"]["canary"]["mean_queue"]
    assert "Not CPU-bound" in (run_dir / res.REPORT).read_text()


def test_threads_cannot_help_the_cpu_bound_file_where_processes_do(tmp_path: Path) -> None:
    """The same CPU-bound service (50 ms of GIL-held CPU a request, 14 req/s): 16 threads instead
    of 4 do not PASS, and the report says why; 4 processes instead of 1 PASS."""
    rc, output, threads, run_dir = _shipped(tmp_path, "threads-4-vs-16-cpu-bound")
    assert threads["verdict"] in ("INCONCLUSIVE", "FAIL"), explain(threads)
    assert rc == VERDICT_EXIT_CODES[threads["verdict"]], output
    regime = threads["load_regime"]
    assert regime["cpu_bound"] is True, regime  # the baseline's process near a core: the GIL
    assert regime["variants"]["stable"]["cpu_per_process"] >= 0.5, regime
    report = (run_dir / res.REPORT).read_text()
    assert "Its work was CPU-bound" in report
    assert "waited for the GIL" in report
    assert f"The host has {os.cpu_count()} CPUs" in report

    rc, output, processes, run_dir = _shipped(tmp_path, "processes-1-vs-4")
    assert processes["verdict"] == "PASS", explain(processes)
    assert rc == 0, output
    regime = processes["load_regime"]
    assert regime["cpu_bound"] is True, regime
    canary = regime["variants"]["canary"]
    assert canary["processes"] == 4
    assert canary["cpu_per_process"] < 0.5, regime  # the work spread over the processes
    assert f"The host has {os.cpu_count()} CPUs" in (run_dir / res.REPORT).read_text()


def test_threads_matter_when_the_work_holds_a_thread_must_pass(tmp_path: Path) -> None:
    """Same 200 ms knob on both; 25 req/s saturates 4 threads (~20/s) but not 16 (~80/s)."""
    spec = write_spec(
        tmp_path,
        "must-pass",
        variants=same_work(latency_ms=200, canary_threads=16),
        load={"rate": 25, "duration": "8s", "warmup": "2s", "timeout": "10s"},
        repetitions=3,  # the fewest that may PASS: the interval across them sees run-to-run variation
    )
    rc, output, summary, _ = run_experiment(spec, tmp_path / "results")
    assert summary["verdict"] == "PASS", explain(summary)
    assert "across repetitions (3)" in summary["comparison"]["decided_by"]
    assert rc == 0, output
    # the generator held the offered rate although stable's answers lagged behind it
    assert summary["variants"]["stable"]["achieved_rps"] >= 0.95 * 25
    assert summary["variants"]["stable"]["p95_ms"] > 2 * summary["variants"]["canary"]["p95_ms"]
    regime = summary["load_regime"]  # the report opens with it: stable queued, canary did not
    assert regime["queued"] is True, regime
    assert regime["variants"]["stable"]["mean_queue"] > regime["variants"]["canary"]["mean_queue"]


def test_sequential_mode_passes_a_seed_sized_gain_within_30_s_of_load(tmp_path: Path) -> None:
    """A 25% faster canary (75 ms against 100 ms a request, like the seed's 8 s -> 6 s), looked at
    after every repetition: it stops at the first look that decides, and says when and why."""
    spec = write_spec(
        tmp_path,
        "sequential",
        variants=[
            {"name": "stable", "threads": 4, "env": {"MODEL_SERVICE_SIMULATED_LATENCY_MS": 100}},
            {"name": "canary", "threads": 4, "env": {"MODEL_SERVICE_SIMULATED_LATENCY_MS": 75}},
        ],
        load={"rate": 10, "duration": "4s", "warmup": "2s", "timeout": "10s"},
        repetitions=7,  # at most 2 + 7 x 4 = 30 s of load
        sequential=True,
    )
    rc, output, summary, run_dir = run_experiment(spec, tmp_path / "results")
    assert summary["verdict"] == "PASS", explain(summary)
    assert rc == 0, output
    assert summary["timing"]["load_seconds"] <= 30
    seq = summary["sequential"]
    assert seq["looks"][-1]["decision"] == "PASS"
    assert seq["stopped_after"] == summary["repetitions"] == len(seq["looks"]) + 2
    assert "confidence sequence" in summary["comparison"]["decided_by"]
    assert "(CI " in seq["why"]
    assert f"after repetition {seq['stopped_after']}/7" in output  # the interval, as it narrowed
    assert "stopping: PASS" in output
    report = (run_dir / res.REPORT).read_text()
    assert "## Sequential test: when and why it stopped" in report
    assert seq["why"] in report
    assert summary["load_regime"]["queued"] is False  # a per-request gain: no queue at 10 req/s
    assert summary["load_regime"]["statement"] in report


def test_identical_variants_must_not_pass(tmp_path: Path) -> None:
    """Three repetitions, so that a PASS is possible (one run can never PASS): identical variants
    must not get it (by the benchmark, at most 1% of the time)."""
    spec = write_spec(
        tmp_path,
        "identical",
        variants=same_work(latency_ms=50, canary_threads=4),
        load={"rate": 20, "duration": "5s", "warmup": "1s", "timeout": "10s"},
        repetitions=3,
    )
    rc, output, summary, _ = run_experiment(spec, tmp_path / "results")
    assert "across repetitions (3)" in summary["comparison"]["decided_by"]
    assert summary["verdict"] != "PASS", explain(summary)
    assert rc != 0, output


def test_calibration_finds_the_rate_with_both_variants_loaded(tmp_path: Path) -> None:
    """--calibrate for real: warm-up, the reference, halves per step, the curve, and the run at its rate."""
    spec = write_spec(
        tmp_path,
        "calibrated",
        variants=same_work(latency_ms=100, canary_threads=16),
        load={"rate": 10, "duration": "4s", "warmup": "1s", "timeout": "10s"},
        repetitions=1,
        calibration={"start_rate": 10, "growth": 2, "max_steps": 3, "step_duration": "4s"},
    )
    rc, output, summary, run_dir = run_experiment(spec, tmp_path / "results", "--calibrate")
    assert summary["verdict"] in ("FAIL", "INCONCLUSIVE"), explain(summary)  # one run: no PASS
    cal = json.loads((run_dir / res.CALIBRATION).read_text())
    steps = cal["steps"]
    assert steps[0]["role"] == "unloaded"
    assert steps[0]["rate"] == 5
    assert 95 <= int(steps[0]["why"].split()[0]) <= 106  # the reference: 100 requests, 20 s
    assert 2 <= len(steps) <= 1 + 3
    assert {s["kind"] for s in steps[1:]} <= {"light", "loaded", "too far"}
    assert cal["chosen_rate"] in {s["rate"] for s in steps}
    assert summary["rate_per_variant"] == cal["chosen_rate"]
    for s in steps[1:]:
        assert s["first_half_p95_ms"] is not None
        for part in ("a", "b"):
            for variant in ("stable", "canary"):  # both variants loaded at every step
                assert (run_dir / res.load_file("calibration", variant, step=s["step"], part=part)).is_file()
    assert (run_dir / res.load_file("calibration-warmup", "canary")).is_file()
    assert png_size(run_dir / res.PLOTS_DIR / "calibration.png") == PNG_SIZE
    assert "## Calibration" in (run_dir / res.REPORT).read_text()
    assert rc in (1, 3), output


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


def _events(results: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in results.glob(f"*/{res.EVENTS}"):
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line being written
    return out


def _start_cli(spec: Path, results: Path) -> subprocess.Popen[str]:
    """``canarylab experiment run`` in its own process group, output in a pipe."""
    return subprocess.Popen(
        cli_argv(spec, results),
        cwd=ROOT,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _wait_for_load(cli: subprocess.Popen[str], results: Path, *, repetition: int) -> None:
    """Until the load of ``repetition`` has started (a ``load_start`` event)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and cli.poll() is None:
        if any(e["kind"] == "load_start" and e.get("repetition") == repetition for e in _events(results)):
            return
        time.sleep(0.3)
    out = cli.communicate(timeout=10)[0] if cli.poll() is not None else ""
    pytest.fail(f"repetition {repetition}'s load never started (exit {cli.poll()}):\n{out}")


def test_a_killed_canary_fails_with_its_reason_and_keeps_the_raw_data(tmp_path: Path) -> None:
    """The canary's model-service is killed during repetition 2 of 3: the candidate broke, so FAIL,
    and what was measured stays on disk."""
    results = tmp_path / "results"
    spec = write_spec(
        tmp_path,
        "killed",
        variants=same_work(latency_ms=50, canary_threads=16),
        load={"rate": 10, "duration": "6s", "warmup": "1s", "timeout": "5s"},
        repetitions=3,
    )
    cli = _start_cli(spec, results)
    try:
        _wait_for_load(cli, results, repetition=2)
        time.sleep(2)
        ready = next(e for e in _events(results) if e["kind"] == "ready")
        os.kill(ready["data"]["pids"]["model-service-canary"], signal.SIGKILL)
        out = cli.communicate(timeout=RUN_TIMEOUT)[0]
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
            cli.wait()
    run_dir = next(p for p in results.iterdir() if p.is_dir() and not p.is_symlink())
    summary = json.loads((run_dir / res.SUMMARY).read_text())
    assert summary["verdict"] == "FAIL", explain(summary)
    assert cli.returncode == VERDICT_EXIT_CODES["FAIL"], out
    reason = summary["reason"]
    assert reason.startswith("canary broke: canary exited or restarted during the run: "), reason
    assert "repetition 2: model-service-canary exited" in reason
    for rep in (1, 2, 3):
        for variant in ("stable", "canary"):
            assert (run_dir / res.load_file("rep", variant, repetition=rep)).stat().st_size > 0
        assert (run_dir / res.PROM_DIR / f"rep{rep}.json").exists()
    assert (run_dir / res.RAW_QUERIES).stat().st_size > 0


def test_interrupting_a_run_leaves_no_process_and_frees_the_ports(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the command's process group) and SIGTERM to the engine, mid-load."""
    results = tmp_path / "results"
    spec = write_spec(
        tmp_path, "interrupted", load={"rate": 10, "duration": "60s", "warmup": "1s"}, repetitions=1
    )
    cli = _start_cli(spec, results)
    try:
        _wait_for_load(cli, results, repetition=1)
        time.sleep(2)  # well inside the load
        events = _events(results)
        engine = next(e["data"]["pid"] for e in events if e["kind"] == "engine")
        ready = next(e for e in events if e["kind"] == "ready")
        pids = {engine, *ready["data"]["pids"].values()}
        pids |= {e["data"]["pid"] for e in events if e["kind"] == "load_start" and e.get("repetition") == 1}
        ports = list(ready["data"]["ports"].values())
        assert all(_alive(p) for p in pids), "everything runs mid-load"

        os.killpg(cli.pid, signal.SIGINT)
        os.kill(engine, signal.SIGTERM)
        out = cli.communicate(timeout=60)[0]
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
            cli.wait()
    assert cli.returncode == 130, out

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (
        any(_alive(p) for p in pids) or any(port_in_use(p) for p in ports)
    ):
        time.sleep(0.2)
    assert [p for p in pids if _alive(p)] == [], "processes left behind"
    assert [p for p in ports if port_in_use(p)] == [], "ports still taken"
    run_dir = next(p for p in results.iterdir() if p.is_dir() and not p.is_symlink())
    assert (run_dir / "INTERRUPTED").exists()
    assert not (run_dir / res.SUMMARY).exists()


def test_the_lab_code_path_against_a_stand_in_lab(tmp_path: Path) -> None:
    """--target lab: the engine reads a target file, starts nothing and stops nothing.
    The local services stand in for the lab (their Prometheus, their apps, a selector)."""
    variants = {v: VariantConfig(v, threads) for v, threads in (("stable", 4), ("canary", 16))}
    with LocalTarget(variants, tmp_path / "stand-in", model_cache=ROOT / ".cache" / "models") as lab:
        target_file = tmp_path / "lab-target.yml"
        target_file.write_text(
            yaml.safe_dump(
                {
                    "prometheus_url": lab.prometheus_url,
                    "selector": 'component=~"app|model-service"',
                    "scrape_interval": "1s",
                    "variants": {v: {"url": e.url} for v, e in lab.endpoints.items()},
                }
            )
        )
        spec = load_spec(SEED_SPEC).with_overrides(duration=4, warmup=1, rate=10, repetitions=1)
        opts = engine.EngineOptions(results_root=tmp_path / "results", target="lab", target_file=target_file)
        outcome = engine.run_experiment(spec, opts)
        assert all(p.running() for p in lab.processes.values()), (
            "the lab engine stopped processes it does not own"
        )
    summary = outcome.summary.to_dict()
    assert summary["target"] == "lab"
    assert summary["verdict"] != "INVALID", explain(summary)
    assert summary["variants"]["stable"]["achieved_rps"] >= 9.5
    assert summary["variants"]["canary"]["server"]["requests"] > 0
    environment = json.loads((outcome.run_dir / res.ENVIRONMENT).read_text())
    assert environment["target"]["kind"] == "lab"
    assert environment["target"]["selector"] == 'component=~"app|model-service"'
