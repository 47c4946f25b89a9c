"""The engine's smaller parts: events, calibration, Prometheus config, ports, the lab target file."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from canarylab.errors import CanarylabError
from canarylab.experiment import events as ev
from canarylab.experiment.calibrate import Step, calibrate, classify, next_rate, reference_seconds
from canarylab.experiment.collect import (
    RepetitionCollection,
    block_plan,
    histograms_from_counters,
    histograms_over_time,
    longest_sample_gaps,
    window_range,
)
from canarylab.experiment.load import LoadResult
from canarylab.experiment.prometheus import Sample, ScrapeTarget, Series, render_config
from canarylab.experiment.spec import CalibrationSpec
from canarylab.experiment.targets.lab import LabTarget
from canarylab.experiment.targets.local import LocalTarget, VariantConfig, metrics_key, owns_port, pick_port
from canarylab_contract import DEFAULT_THREADS, LATENCY_BUCKETS, VARIANT_HEADER

# --- events -------------------------------------------------------------------------------------


def test_progress_file_is_json_lines_a_tail_can_follow(tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    writer = ev.ProgressFileWriter(path)
    recorder = ev.Recorder()
    bus = ev.EventBus([writer, recorder])
    stop = threading.Event()
    seen: list[ev.Event] = []
    tail = threading.Thread(target=lambda: seen.extend(ev.tail_events(path, stop, poll=0.02)))
    tail.start()
    bus.emit(ev.LOAD_START, "rep 1: stable", repetition=1, variant="stable", data={"rate": 10})
    bus.emit(ev.DONE, "PASS", data={"verdict": "PASS"})
    time.sleep(0.1)
    stop.set()
    tail.join(5)
    writer.close()
    assert [e.kind for e in seen] == [ev.LOAD_START, ev.DONE]
    assert seen[0].variant == "stable"
    assert seen[0].repetition == 1
    assert seen[0].data == {"rate": 10}
    assert recorder.events[0].time == seen[0].time
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_a_failing_listener_is_dropped_and_never_breaks_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    class Broken:
        def on_event(self, event: ev.Event) -> None:
            raise RuntimeError("grafana is down")

    recorder = ev.Recorder()
    bus = ev.EventBus([Broken(), recorder])
    bus.emit(ev.SETUP, "one")
    bus.emit(ev.SETUP, "two")
    assert len(recorder.events) == 2
    assert len(bus.listeners) == 1
    assert "grafana is down" in capsys.readouterr().err


def test_listeners_satisfy_the_protocol() -> None:
    assert isinstance(ev.Recorder(), ev.Listener)
    assert isinstance(ev.TerminalRenderer(), ev.Listener)


def test_progress_events_format_as_one_line() -> None:
    event = ev.Event(ev.PROGRESS, "rep", data={"phase": "repetition 1/2", "elapsed": 3, "total": 5,
                                                 "rates": {"stable": 9.8}})  # fmt: skip
    line = ev.format_event(event)
    assert line is not None
    assert "repetition 1/2 3/5s" in line
    assert "stable 9.8 req/s" in line


# --- calibration ---------------------------------------------------------------------------------


def fake_result(rate: int, p95: float, errors: int = 0, duration: float = 10.0) -> LoadResult:
    sent = round(rate * duration)
    return LoadResult(
        rate=rate, duration=duration, connections=8, timeout=10, time_taken=duration, req1xx=0,
        req2xx=sent - errors, req3xx=0, req4xx=0, req5xx=errors, others=0, percentiles={"95": p95},
        latency_max=p95,
    )  # fmt: skip


def service(knee: int, capacity: int, error_rate: int | None = None) -> tuple[Step, list[tuple[int, str]]]:
    """A fake service: 10 ms p95 below ``knee``, a stationary 25 ms from ``knee`` to ``capacity``,
    above it a queue that keeps growing (30 ms in a step's first half, 80 ms in its second);
    errors from ``error_rate``.  Also the calls, (rate, part)."""
    calls: list[tuple[int, str]] = []

    def step(rate: int, _n: int, part: str, duration: float) -> LoadResult:
        calls.append((rate, part))
        if rate < knee:
            p95 = 0.010
        elif rate < capacity:
            p95 = 0.025
        else:
            p95 = 0.030 if part == "a" else 0.080
        errors = 3 if error_rate is not None and rate >= error_rate else 0
        return fake_result(rate, p95, errors, duration)

    return step, calls


CAL = CalibrationSpec(unloaded_rate=5, start_rate=10, growth=1.5, max_steps=10, step_duration=10)


def test_calibration_bisects_to_the_knee() -> None:
    step, calls = service(knee=30, capacity=60)
    out = calibrate(CAL, step)
    rates = [s["rate"] for s in out["steps"]]
    # the reference, x1.5 until a step is loaded (35), then the bisection from 23 .. 35
    assert rates == [5, 10, 15, 23, 35, 29, 32, 30]
    assert [s["kind"] for s in out["steps"][1:]] == ["light"] * 3 + ["loaded", "light", "loaded", "loaded"]
    assert [s["role"] for s in out["steps"]] == ["unloaded"] + ["search"] * 4 + ["bisect"] * 3
    assert out["chosen_rate"] == 30
    assert "knee" in out["reason"]
    assert "29 req/s was light" in out["reason"]
    # every search step is two halves of half the step's duration
    assert calls.count((30, "a")) == calls.count((30, "b")) == 1


def test_calibration_never_chooses_a_rate_where_the_queue_keeps_growing() -> None:
    """The 1.5x steps of the old search chose 41 req/s for a 40 req/s service; here 53 is too far."""
    step, _ = service(knee=36, capacity=40)
    out = calibrate(CAL, step)
    kinds = {s["rate"]: s["kind"] for s in out["steps"][1:]}
    assert kinds[53] == "too far"
    assert "not stationary" in next(s["why"] for s in out["steps"] if s["rate"] == 53)
    assert 36 <= out["chosen_rate"] < 40
    assert kinds[out["chosen_rate"]] == "loaded"


def test_calibration_takes_errors_as_too_far() -> None:
    step, _ = service(knee=1000, capacity=1000, error_rate=20)
    out = calibrate(CAL, step)
    assert out["chosen_rate"] == 19  # the highest light rate, bisected up to the first erring one
    assert "no stationary loaded rate" in out["reason"]
    assert "errors" in out["reason"]


def test_calibration_bisects_below_a_start_rate_that_is_already_too_far() -> None:
    step, _ = service(knee=7, capacity=9)
    out = calibrate(CAL, step)
    assert [s["rate"] for s in out["steps"]][:3] == [5, 10, 7]
    assert out["chosen_rate"] == 7


def test_the_unloaded_reference_holds_at_least_100_requests() -> None:
    seen: list[tuple[int, str, float]] = []

    def step(rate: int, n: int, part: str, duration: float) -> LoadResult:
        seen.append((rate, part, duration))
        return fake_result(rate, 0.010, duration=duration)

    calibrate(replace(CAL, unloaded_rate=2, max_steps=1), step)
    assert seen[0] == (2, "reference", 50)  # 100 requests at 2 req/s
    assert seen[1:] == [(10, "a", 5.0), (10, "b", 5.0)]
    assert reference_seconds(CAL) == 20
    assert reference_seconds(replace(CAL, unloaded_rate=50)) == 10  # the step's own duration


def test_calibration_is_bounded() -> None:
    step, calls = service(knee=10_000, capacity=10_000)
    out = calibrate(replace(CAL, max_steps=4), step)
    assert len(calls) == 1 + 2 * 4
    assert out["chosen_rate"] == calls[-1][0]
    assert out["bound_seconds"] == 20 + 4 * 10
    assert "highest rate tried" in out["reason"]
    assert next_rate(1, 1.1) == 2


def test_a_step_is_classified_by_its_halves() -> None:
    light, loaded = fake_result(20, 0.010), fake_result(20, 0.025)
    assert classify(20, light, light, 0.020)[0] == "light"
    assert classify(20, loaded, loaded, 0.020)[0] == "loaded"
    assert classify(20, loaded, fake_result(20, 0.040), 0.020) == (
        "too far",
        "not stationary: p95 grew from 25.0 ms to 40.0 ms within the step (more than x1.5): "
        "a queue that keeps growing",
    )
    assert classify(20, light, fake_result(20, 0.010, errors=1), 0.020)[0] == "too far"
    short = fake_result(20, 0.010, duration=10)
    starved = replace(short, req2xx=150)  # 15 of 20 req/s
    assert classify(20, starved, light, 0.020) == ("too far", "the generator achieved 15.0 of 20 req/s")


# --- collection helpers -----------------------------------------------------------------------------


def test_bucket_counter_increase_is_the_windows_histogram() -> None:
    def snap(counts: dict[str, float], variant: str = "stable") -> list[Sample]:
        return [Sample({"le": le, "variant": variant}, n) for le, n in counts.items()]

    before = snap({"0.1": 5, "0.2": 8, "+Inf": 8})
    after = snap({"0.1": 15, "0.2": 20, "+Inf": 21})
    hists, resets = histograms_from_counters(before, after)
    assert resets == []
    assert hists["stable"].counts == (10, 2, 1)
    assert hists["stable"].bounds[-1] == math.inf
    restarted, resets = histograms_from_counters(after, before)
    assert resets == ["stable"]
    assert restarted["stable"].total == 8


def test_the_window_range_reaches_back_no_further_than_the_start() -> None:
    """Instant queries run at ``end`` with range d take the samples in (end-d, end] (2.x: [end-d, end]):
    d must not reach the scrape just before ``start`` (whole seconds rounded up did)."""
    for start, end in ((100.0, 160.2), (1795886559.6489818, 1795886571.665821), (7.0, 19.0)):
        text = window_range(start, end)
        assert text.endswith("ms")
        d = int(text.removesuffix("ms")) / 1000
        assert end - 0.002 <= start + d < end  # covers all but the first ms, nothing before start
        assert round(end, 3) - d > start  # also with the evaluation time as sent (ms precision)
    assert window_range(5.0, 5.0) == "1ms"


def test_longest_gap_between_samples_of_the_processing_max() -> None:
    """Values of timestamp(gauge) over time: the times of the successful scrapes."""
    stable = Series(
        {"variant": "stable"}, [(t, float(int(t))) for t in (100.5, 101, 102, 103, 109, 110, 111)]
    )
    canary = Series({"variant": "canary"}, [(t, t - 0.3) for t in range(100, 112)])
    gaps = longest_sample_gaps([stable, canary], 100.0, 111.0)
    assert gaps["stable"] == pytest.approx(6.0)  # 103 -> 109
    assert gaps["canary"] == pytest.approx(1.0)
    # a late first sample counts from the window's start
    assert longest_sample_gaps([Series({"variant": "x"}, [(107, 107.0)])], 100.0, 108.0) == {"x": 7.0}


def test_processing_gap_of_older_results_is_estimated_from_the_over_time_max() -> None:
    """The saved must-pass run (before processing_gaps was collected): stable's over-time processing
    max has no value at seconds 8-10 (its model-service answered 46% of scrapes)."""
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "experiment" / "run-must-pass"
    coll = RepetitionCollection.from_dict(json.loads((fixture / "prometheus" / "rep1.json").read_text()))
    assert coll.processing_gaps == {}
    assert coll.processing_gap("stable") == pytest.approx(8.0)  # > 5 s: a maximum may be missed
    assert coll.processing_gap("canary") is None
    coll.processing_gaps = {"stable": 1.0}
    assert coll.processing_gap("stable") == 1.0  # measured: wins


def test_time_blocks_from_a_range_query_of_bucket_counters() -> None:
    def series(le: str, values: list[float], variant: str = "stable") -> Series:
        return Series({"le": le, "variant": variant}, [(100.0 + i, v) for i, v in enumerate(values)])

    blocks = histograms_over_time([series("0.1", [0, 3, 5, 5]), series("+Inf", [0, 4, 7, 9])])
    assert [b.counts for b in blocks["stable"]] == [(3, 1), (2, 1), (0, 2)]
    assert block_plan(0, 60, 1.0) == (20, 3.0)
    assert block_plan(0, 6.5, 1.0) == (6, 6.5 / 6)
    assert block_plan(0, 60, 5.0) == (12, 5.0)


def test_collections_round_trip_through_json() -> None:
    blocks = histograms_over_time(
        [Series({"le": le, "variant": v}, [(0, 0), (1, n)]) for v in ("stable", "canary") for le, n in
         (("0.1", 2), ("+Inf", 3))]
    )  # fmt: skip
    coll = RepetitionCollection(1, 0.0, 10.0, "10s", blocks=blocks, block_seconds=1.0,
                                window_values={"processing_max": {"stable": 0.2}},
                                host_cpu_busy=0.37)  # fmt: skip
    again = RepetitionCollection.from_dict(json.loads(json.dumps(coll.to_dict())))
    assert again.blocks == coll.blocks
    assert again.window_values == coll.window_values
    assert again.block_seconds == 1.0
    assert again.host_cpu_busy == 0.37
    old = {k: v for k, v in coll.to_dict().items() if k != "host_cpu_busy"}  # saved before it existed
    assert RepetitionCollection.from_dict(old).host_cpu_busy is None


# --- Prometheus config and ports -------------------------------------------------------------------------


def test_prometheus_config_scrapes_all_four_every_second(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    targets = [
        ScrapeTarget(f"{c}-{v}", f"127.0.0.1:{p}", c, v)
        for p, (c, v) in enumerate(
            [(c, v) for c in ("model-service", "app") for v in ("stable", "canary")], 9000
        )
    ]
    config = yaml.safe_load(render_config(targets, scrape_interval="1s", rule_files=[rules]))
    assert config["global"]["scrape_interval"] == "1s"
    assert config["rule_files"] == [str(rules)]
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert set(jobs) == {"model-service-stable", "model-service-canary", "app-stable", "app-canary"}
    for job in jobs.values():
        labels = job["static_configs"][0]["labels"]
        assert "variant" not in labels  # the services' own variant label must survive
        assert job["metrics_path"] == "/metrics"


def test_local_target_scrapes_the_model_services_on_their_metrics_ports(tmp_path: Path) -> None:
    target = LocalTarget({v: VariantConfig(v, t) for v, t in DEFAULT_THREADS.items()}, tmp_path)
    for i, v in enumerate(DEFAULT_THREADS):
        target.ports |= {f"model-service-{v}": 100 + i, metrics_key(v): 200 + i, f"app-{v}": 300 + i}
    by_job = {t.job: t for t in target.scrape_targets()}
    assert set(by_job) == {"model-service-stable", "model-service-canary", "app-stable", "app-canary"}
    for i, v in enumerate(DEFAULT_THREADS):
        assert by_job[f"model-service-{v}"].address == f"127.0.0.1:{200 + i}"  # not the API port
        assert by_job[f"app-{v}"].address == f"127.0.0.1:{300 + i}"
    env = target._model_service_env(VariantConfig("canary", 16), 100, 200, tmp_path)
    assert (env["MODEL_SERVICE_PORT"], env["MODEL_SERVICE_METRICS_PORT"]) == ("100", "200")


def test_a_taken_port_is_replaced_by_a_free_one() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken_port = holder.getsockname()[1]
        taken: set[int] = set()
        chosen = pick_port(taken_port, taken)
        assert chosen != taken_port
        assert chosen in taken
        assert pick_port(chosen, taken) != chosen  # never hands out the same port twice


def test_owns_port_tells_our_listener_from_someone_elses() -> None:
    with socket.socket() as mine:
        mine.bind(("127.0.0.1", 0))
        mine.listen()
        port = mine.getsockname()[1]
        if owns_port(os.getpid(), port) is None:
            pytest.skip("no /proc on this system")
        assert owns_port(os.getpid(), port) is True
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            assert owns_port(other.pid, port) is False
        finally:
            other.kill()
            other.wait()


# --- lab target file ---------------------------------------------------------------------------------


LAB = {
    "prometheus_url": "http://192.168.56.10:30090",
    "grafana_url": "http://192.168.56.10:30030",
    "selector": 'namespace="canarylab"',
    "variants": {
        "stable": {"url": "http://192.168.56.10:30080/api/sentiment"},
        "canary": {"url": "http://192.168.56.10:30080/api/sentiment", "headers": {VARIANT_HEADER: "canary"}},
    },
}


def test_lab_target_file(tmp_path: Path) -> None:
    path = tmp_path / "lab-target.yml"
    path.write_text(yaml.safe_dump(LAB))
    target = LabTarget.from_file(path)
    assert target.selector == 'namespace="canarylab"'
    assert target.endpoints["stable"].headers == {VARIANT_HEADER: "stable"}  # pinning header added
    assert target.endpoints["canary"].url.endswith("/api/sentiment")
    assert target.describe()["prometheus_url"] == LAB["prometheus_url"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"prometheus_url": "not a url"}, "prometheus_url"),
        ({"variants": {"stable": LAB["variants"]["stable"]}}, "variants.canary: is missing"),
        ({"bogus": 1}, "bogus: unknown key"),
        ({"variants": {**LAB["variants"],
                       "canary": {"url": "http://x/", "headers": {VARIANT_HEADER: "stable"}}}},
         "must be 'canary'"),
    ],
)  # fmt: skip
def test_lab_target_file_errors_name_the_field(change: dict[str, object], message: str) -> None:
    with pytest.raises(CanarylabError, match=message):
        LabTarget.from_dict({**LAB, **change})


def test_missing_lab_target_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(CanarylabError, match=r"experiment\.yml"):
        LabTarget.from_file(tmp_path / "none.yml")


def test_histogram_buckets_come_from_the_contract() -> None:
    assert LATENCY_BUCKETS[0] == pytest.approx(0.001)
    assert LATENCY_BUCKETS[-1] >= 60


# --- clean-up: a second signal must not stop it ----------------------------------------------

_CHILD = """
import signal, sys, time
mode = sys.argv[1]
if mode == "slow":  # takes a while to honour SIGTERM
    signal.signal(signal.SIGTERM, lambda *_: (time.sleep(1.5), sys.exit(0)))
elif mode == "deaf":  # never honours it: needs SIGKILL
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(120)
"""


def test_a_second_sigterm_during_cleanup_still_stops_every_child(tmp_path: Path) -> None:
    """3 children (one slow to stop, one ignoring SIGTERM): the first SIGTERM starts the clean-up,
    a second one arrives in the middle of it; every child is still gone, within the shared
    deadline + the kill."""
    from canarylab.procs import KILL_WAIT, ManagedProcess, ProcessGroup  # noqa: PLC0415

    stop_timeout = 2.0
    group = ProcessGroup(stop_timeout=stop_timeout)
    procs: list[ManagedProcess] = []
    cleanup_started: list[float] = []

    def run_until_signalled() -> None:
        with group:
            procs.extend(
                group.start(mode, [sys.executable, "-c", _CHILD, mode], tmp_path / f"{mode}.log")
                for mode in ("slow", "deaf", "plain")
            )
            deadline = time.monotonic() + 20
            while not all("ready" in (tmp_path / f"{m}.log").read_text() for m in ("slow", "deaf", "plain")):
                assert time.monotonic() < deadline, "children did not start"
                time.sleep(0.05)
            # the second signal, 0.5 s into the clean-up
            threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
            cleanup_started.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGTERM)  # the first: the group's handler -> KeyboardInterrupt
            time.sleep(5)  # not reached

    with pytest.raises(KeyboardInterrupt):
        run_until_signalled()
    took = time.monotonic() - cleanup_started[0]
    assert signal.SIGTERM in group.held_signals  # the second signal did arrive during the clean-up
    assert [p.name for p in procs if p.running()] == []
    for p in procs:
        with pytest.raises(ProcessLookupError):
            os.killpg(p.pid, 0)  # nothing left in their process groups either
    assert took < stop_timeout + KILL_WAIT
    assert signal.getsignal(signal.SIGTERM) is not group._on_sigterm  # the old handler is back


def test_stop_all_sends_sigterm_to_all_at_once(tmp_path: Path) -> None:
    """Three children that each take 1.5 s to stop: one shared deadline, not 3 x 1.5 s."""
    from canarylab.procs import ProcessGroup  # noqa: PLC0415

    group = ProcessGroup(stop_timeout=4.0)
    with group:
        for i in range(3):
            group.start(f"slow{i}", [sys.executable, "-c", _CHILD, "slow"], tmp_path / f"slow{i}.log")
        deadline = time.monotonic() + 20
        while not all("ready" in (tmp_path / f"slow{i}.log").read_text() for i in range(3)):
            assert time.monotonic() < deadline, "children did not start"
            time.sleep(0.05)
        started = time.monotonic()
    assert time.monotonic() - started < 3.5
    assert not any(p.running() for p in group.processes)


def test_a_repetition_waits_until_the_previous_load_left_the_processing_max() -> None:
    """The gauge is the max of the last 5 s: a repetition starts only once 5 s + one scrape interval
    (the local 1 s, the lab file's 5 s) have passed since the previous load ended; visibly."""
    from canarylab.experiment.engine import Runner  # noqa: PLC0415

    rec = ev.Recorder()
    runner = Runner.__new__(Runner)
    runner.bus, runner.client, runner.scrape_s = ev.EventBus([rec]), None, 1.0
    lab = LabTarget({}, "http://prometheus", scrape_seconds=5.0)
    local = LocalTarget({v: VariantConfig(v, t) for v, t in DEFAULT_THREADS.items()}, Path("unused"))

    runner.last_load_end = None  # nothing ran before: no wait
    runner.quiet_before(lab, 1)
    assert rec.events == []

    for target, interval in ((lab, 5.0), (local, 1.0)):
        rec.events.clear()
        runner.last_load_end = time.time() - (5.0 + interval - 0.4)
        began = time.time()
        runner.quiet_before(target, 2)
        assert time.time() - runner.last_load_end >= 5.0 + interval
        assert 0.3 <= time.time() - began < 2.0
        (event,) = rec.events
        assert event.repetition == 2
        assert event.data["phase"] == "quiet"
        assert 0.3 <= event.data["seconds"] <= 0.4
        assert "waiting" in event.message
