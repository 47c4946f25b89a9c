"""Sequential mode (the anytime-valid confidence sequence, the looks, the spec and the record),
the spec's metric, which both modes compare across repetitions, the host's CPU, and what
"significant load" meant in a run."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

import canarylab_contract as c
from canarylab import queries as q
from canarylab.experiment import sequential as seq
from canarylab.experiment.analysis import analyse, changes_of, load_regime, uncertainty
from canarylab.experiment.collect import APP_RESPONSE, RepetitionCollection
from canarylab.experiment.host import CpuReading, busy_share, cpu_reading
from canarylab.experiment.load import LoadResult
from canarylab.experiment.report import render_markdown
from canarylab.experiment.spec import ExperimentSpec, LoadSpec, SpecError, VariantSpec, spec_from_dict
from canarylab.experiment.stats import (
    SEQUENTIAL_MIXTURE_G,
    Histogram,
    _log_mixture_bf,
    first_sequential_look,
    paired_t_repetitions,
    sequential_t_critical,
    t_quantile,
)
from canarylab.experiment.summary import Sequential, SequentialLook, Summary
from canarylab.experiment.vocabulary import DEFAULT_METRIC

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "experiment" / "run-must-pass"


def spec(repetitions: int = 10, *, sequential: bool = True) -> ExperimentSpec:
    return ExperimentSpec(
        name="s",
        hypothesis="h",
        variants=(VariantSpec("stable", 4), VariantSpec("canary", 16)),
        load=LoadSpec(rate=10, duration=5.0),
        repetitions=repetitions,
        sequential=sequential,
    )


def result(p95: float) -> LoadResult:
    return LoadResult(
        rate=10, duration=5, connections=8, timeout=10, time_taken=5, req1xx=0, req2xx=50, req3xx=0,
        req4xx=0, req5xx=0, others=0, percentiles={"50": p95 / 2, "90": p95 * 0.9, "95": p95, "99": p95},
        latency_max=p95,
    )  # fmt: skip


def client(ratios: list[float], base: float = 0.100) -> dict[str, list[LoadResult]]:
    """Per repetition: the baseline's p95 ``base`` (moving a little), the candidate's ``ratio`` x it."""
    bases = [base * (1 + 0.02 * (i % 3)) for i in range(len(ratios))]
    return {
        "stable": [result(b) for b in bases],
        "canary": [result(b * r) for b, r in zip(bases, ratios, strict=True)],
    }


# --- the confidence sequence -------------------------------------------------------------------


def test_the_critical_value_is_wider_than_the_fixed_t_and_infinite_below_its_first_look() -> None:
    assert sequential_t_critical(1, 0.95) == math.inf
    assert sequential_t_critical(2, 0.95) == math.inf  # 1 + 2g < 20: cannot reach 1/alpha yet
    for n in range(3, 40):
        crit = sequential_t_critical(n, 0.95)
        assert t_quantile(0.975, n - 1) < crit < math.inf, n
        # at the critical value the mixture Bayes factor is exactly 1 / alpha
        assert _log_mixture_bf(crit, n, SEQUENTIAL_MIXTURE_G) == pytest.approx(math.log(20), rel=1e-9)
    widths = [sequential_t_critical(n, 0.95) / math.sqrt(n) for n in range(3, 40)]
    assert widths == sorted(widths, reverse=True)  # narrower with every repetition


def test_the_closed_form_bayes_factor_is_the_integral_it_stands_for() -> None:
    """Rouder et al.'s closed form against the integral over the effect and the scale
    (a N(0, g) prior on mean/sigma, 1/sigma on sigma), by quadrature."""
    from scipy import integrate  # noqa: PLC0415

    x = np.array([0.31, -0.12, 0.55, 0.20, 0.41])
    n, g = len(x), 2.0

    def likelihood(mu: float, sigma: float) -> float:
        return float(np.exp(-np.sum((x - mu) ** 2) / (2 * sigma**2)) / sigma**n)

    def alternative(sigma: float) -> float:
        inner, _ = integrate.quad(
            lambda d: likelihood(d * sigma, sigma) * math.exp(-d * d / (2 * g)) / math.sqrt(2 * math.pi * g),
            -30,
            30,
        )
        return float(inner) / sigma

    h1, _ = integrate.quad(alternative, 1e-3, 20, limit=200)
    h0, _ = integrate.quad(lambda s: likelihood(0.0, s) / s, 1e-3, 20, limit=200)
    t = float(x.mean() / (x.std(ddof=1) / math.sqrt(n)))
    assert _log_mixture_bf(t, n, g) == pytest.approx(math.log(h1 / h0), rel=1e-4)


def test_the_sequence_covers_the_truth_at_every_look_where_the_t_interval_does_not() -> None:
    """Looked at after every repetition from 3 to 20: the confidence sequence misses the true
    mean at some look at most 5% of the time; the fixed t-interval, looked at the same way,
    far more often (the inflation issue #11 measured)."""
    rng = np.random.default_rng(7)
    sims, looks, truth = 3000, 20, -0.2
    data = rng.normal(truth, 0.1, size=(sims, looks))
    missed_seq = np.zeros(sims, dtype=bool)
    missed_fixed = np.zeros(sims, dtype=bool)
    for n in range(3, looks + 1):
        d = data[:, :n]
        t = np.abs(d.mean(axis=1) - truth) / (d.std(axis=1, ddof=1) / math.sqrt(n))
        missed_seq |= t >= sequential_t_critical(n, 0.95)
        missed_fixed |= t >= t_quantile(0.975, n - 1)
    assert missed_seq.mean() <= 0.05
    assert missed_fixed.mean() > 0.15


def test_the_sequential_interval_is_the_t_interval_with_the_wider_critical_value() -> None:
    b, c = [0.100, 0.104, 0.098, 0.101], [0.076, 0.080, 0.073, 0.077]
    fixed = paired_t_repetitions(b, c, "p95")
    wide = paired_t_repetitions(b, c, "p95", sequential=True)
    assert wide.change == fixed.change
    assert wide.ci_low < fixed.ci_low < fixed.change < fixed.ci_high < wide.ci_high
    assert "anytime-valid confidence sequence" in wide.method
    assert "critical |t|" in wide.method
    ratio = math.log1p(wide.ci_high) - math.log1p(wide.change)
    assert ratio / (math.log1p(fixed.ci_high) - math.log1p(fixed.change)) == pytest.approx(
        sequential_t_critical(4, 0.95) / t_quantile(0.975, 3)
    )


# --- the looks ---------------------------------------------------------------------------------


def test_a_clear_25_percent_gain_passes_at_the_first_look() -> None:
    lk = seq.look(spec(), client([0.75, 0.76, 0.74]), [], load_seconds=25.0)
    assert lk.counts
    assert lk.stops
    assert lk.decision == "PASS"
    assert "beats stable" in lk.reason
    assert lk.estimates["p95"].ci_high <= -0.05


def test_a_clearly_slower_candidate_fails_at_the_first_look() -> None:
    lk = seq.look(spec(), client([1.30, 1.32, 1.29]), [], load_seconds=25.0)
    assert lk.decision == "FAIL"
    assert "slower" in lk.reason


def test_identical_variants_stop_as_futile_not_pass() -> None:
    lk = seq.look(spec(), client([1.0, 1.005, 0.995, 1.002]), [], load_seconds=30.0)
    assert lk.decision == "futile"
    assert "reduction is ruled out" in lk.reason


def test_noisy_evidence_goes_on_and_says_so_at_the_last_repetition() -> None:
    noisy = [0.80, 1.10, 0.85]
    assert seq.look(spec(), client(noisy), [], load_seconds=20).decision == "continue"
    last = seq.look(spec(repetitions=3), client(noisy), [], load_seconds=20)
    assert last.decision == "continue"
    assert "the most repetitions (3) ran without a decision" in last.reason


def test_before_the_third_repetition_there_is_no_look() -> None:
    lk = seq.look(spec(), client([0.5, 0.5]), [], load_seconds=12)
    assert not lk.counts
    assert not lk.stops


def test_a_sequential_spec_is_analysed_with_the_sequence() -> None:
    data = client([0.75, 0.76, 0.74, 0.77])
    fixed = uncertainty(spec(sequential=False), data, [], np.random.default_rng(1))
    wide = uncertainty(spec(), data, [], np.random.default_rng(1))
    assert "anytime-valid confidence sequence (sequential)" in wide.decided_by
    assert "paired t-interval" in fixed.decided_by
    assert wide.across["p95"].ci_high > fixed.across["p95"].ci_high


# --- the spec ----------------------------------------------------------------------------------


BASE = {
    "name": "t",
    "hypothesis": "h",
    "variants": [{"name": "stable", "threads": 4}, {"name": "canary", "threads": 16}],
    "load": {"rate": 10, "duration": "5s"},
}


def test_the_spec_reads_sequential_and_refuses_too_few_repetitions() -> None:
    assert spec_from_dict(BASE).sequential is False
    assert spec_from_dict({**BASE, "sequential": True, "repetitions": 8}).sequential is True
    with pytest.raises(SpecError) as info:
        spec_from_dict({**BASE, "sequential": True, "repetitions": 2})
    assert any("decides from repetition 3 on" in p for p in info.value.problems)
    with pytest.raises(SpecError) as info:
        spec_from_dict({**BASE, "sequential": "yes", "repetitions": 8})
    assert any("sequential" in p and "true or false" in p for p in info.value.problems)
    with pytest.raises(SpecError) as info:
        spec_from_dict({**BASE, "sequential": True, "repetitions": 8}).with_overrides(repetitions=2)
    assert any("--repetitions" in p and "sequential" in p for p in info.value.problems)
    assert spec_from_dict({**BASE, "sequential": True, "repetitions": 8}).to_dict()["sequential"] is True


# --- the record ----------------------------------------------------------------------------------


def test_the_record_round_trips_and_the_report_says_when_and_why_it_stopped() -> None:
    s = Summary.from_dict(json.loads((FIXTURE / "summary.json").read_text()))
    looks = [seq.look(spec(), client([0.75, 0.9, 0.74][:n] + [0.75] * (n - 3)), [], load_seconds=5.0 * n + 5)
             for n in (3, 4)]  # fmt: skip
    record = Sequential(
        max_repetitions=10,
        stopped_after=4,
        stopped_early=True,
        why=looks[-1].reason,
        looks=tuple(
            SequentialLook(lk.repetition, lk.load_seconds, changes_of(lk.estimates), lk.decision, lk.reason)
            for lk in looks
        ),
    )
    more = dataclasses.replace(s, sequential=record, repetitions=4)
    d = json.loads(json.dumps(more.to_dict(), allow_nan=False))
    assert Summary.from_dict(d) == more
    assert d["sequential"]["looks"][0]["changes"]["p95"]["ci_high"] is not None
    text = render_markdown(more)
    assert "## Sequential test: when and why it stopped" in text
    assert "stopped after repetition **4 of at most 10**" in text
    assert f"| 3 | 20 | p95 {looks[0].estimates['p95'].change * 100:+.1f}%" in text
    assert looks[-1].reason in text


# --- the spec's metric: what the deciding interval compares ----------------------------------------


def collections(app_ratios: list[float]) -> list[RepetitionCollection]:
    """Per repetition, the app's histograms: the candidate's latencies ``ratio`` x the baseline's."""
    rng = np.random.default_rng(5)
    out = []
    for i, ratio in enumerate(app_ratios, start=1):
        base = 0.100 * np.exp(rng.normal(0, 0.3, 400))
        hists = {
            "stable": Histogram.from_samples(base, c.LATENCY_BUCKETS),
            "canary": Histogram.from_samples(base * ratio, c.LATENCY_BUCKETS),
        }
        out.append(RepetitionCollection(i, 0.0, 10.0, "10s", histograms={APP_RESPONSE: hists}))
    return out


def test_the_metric_selects_what_the_deciding_interval_compares() -> None:
    """The client says 30% slower, the app's histogram 25% faster: each metric decides on its own."""
    data, reps = client([1.3, 1.31, 1.29, 1.3]), collections([0.75, 0.75, 0.75, 0.75])
    on_client = dataclasses.replace(spec(sequential=False), metric="client_latency")
    on_app = dataclasses.replace(on_client, metric="app_response_seconds")
    u_client = uncertainty(on_client, data, reps, np.random.default_rng(1))
    u_app = uncertainty(on_app, data, reps, np.random.default_rng(1))
    assert u_client.across["p95"].ci_low > 0
    assert u_app.across["p95"].ci_high < -0.15
    assert "client-side statistics" in u_client.decided_by
    assert "the app's response-time histogram, per repetition" in u_app.decided_by
    assert (
        seq.look(dataclasses.replace(on_app, sequential=True), data, reps, load_seconds=40).decision == "PASS"
    )


def test_the_spec_reads_the_metric_and_says_what_each_means() -> None:
    assert spec_from_dict(BASE).metric == DEFAULT_METRIC == "client_latency"
    assert spec_from_dict({**BASE, "metric": "app_response_seconds"}).metric == "app_response_seconds"
    with pytest.raises(SpecError) as info:
        spec_from_dict({**BASE, "metric": "processing_seconds"})
    assert any("metric" in p and "client_latency: bombardier's latency" in p for p in info.value.problems)


# --- the host's CPU --------------------------------------------------------------------------------


def test_the_busy_share_counts_what_was_not_idle_nor_waiting_for_io() -> None:
    before, after = CpuReading(available=100.0, total=400.0), CpuReading(available=103.0, total=420.0)
    assert busy_share(before, after) == pytest.approx(0.85)
    assert math.isnan(busy_share(before, before))
    first = cpu_reading()
    assert 0 <= first.available <= first.total
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:  # some CPU time passes on the host
        sum(range(10_000))
    share = busy_share(first, cpu_reading())
    assert 0.0 < share <= 1.0  # this loop kept a CPU busy


def test_the_spec_reads_the_hosts_limit() -> None:
    assert spec_from_dict(BASE).criteria.max_host_cpu_busy == 0.98
    limited = spec_from_dict({**BASE, "criteria": {"max_host_cpu_busy": "90%"}})
    assert limited.criteria.max_host_cpu_busy == 0.9


# --- p99 decides where the run has enough requests ---------------------------------------------------


def test_p99_decides_too_where_every_repetition_has_enough_requests() -> None:
    few = client([0.75, 0.76, 0.74])  # 50 requests a repetition
    many = {v: [dataclasses.replace(r, req2xx=1000) for r in rs] for v, rs in few.items()}
    assert seq.with_deciding(spec(), few).criteria.decide.statistics == ("p95",)
    assert seq.with_deciding(spec(), many).criteria.decide.statistics == ("p95", "p99")
    one_short = {v: [*rs[:-1], few[v][-1]] for v, rs in many.items()}
    assert seq.with_deciding(spec(), one_short).criteria.decide.statistics == ("p95",)
    never = spec()
    never = dataclasses.replace(
        never,
        criteria=dataclasses.replace(
            never.criteria, decide=dataclasses.replace(never.criteria.decide, p99_from_requests=0)
        ),
    )
    assert seq.with_deciding(never, many).criteria.decide.statistics == ("p95",)
    assert set(seq.look(spec(), many, [], load_seconds=20).estimates) == {"p95", "p99"}
    fixed = spec(sequential=False)
    assert analyse(fixed, many, []).comparison.statistics == ("p95", "p99")
    assert analyse(fixed, few, []).comparison.statistics == ("p95",)
    assert (
        spec_from_dict(
            {**BASE, "criteria": {"decide": {"p99_from_requests": 0}}}
        ).criteria.decide.p99_from_requests
        == 0
    )


# --- where the first look is, and a look without data ----------------------------------------------


def test_the_first_look_waits_for_a_finite_sequence_at_a_higher_confidence() -> None:
    assert [first_sequential_look(c) for c in (0.90, 0.95, 0.98, 0.99, 0.999)] == [3, 3, 4, 4, 5]
    strict = spec()
    strict = dataclasses.replace(
        strict,
        criteria=dataclasses.replace(
            strict.criteria, decide=dataclasses.replace(strict.criteria.decide, confidence=0.99)
        ),
    )
    three = seq.look(strict, client([0.5, 0.5, 0.5]), [], load_seconds=20)
    assert not three.counts
    assert "the first look is after repetition 4" in three.reason
    assert seq.look(strict, client([0.5, 0.51, 0.5, 0.49]), [], load_seconds=25).decision == "PASS"
    with pytest.raises(SpecError) as info:
        spec_from_dict(
            {**BASE, "sequential": True, "repetitions": 3, "criteria": {"decide": {"confidence": 0.99}}}
        )
    assert any("decides from repetition 4 on" in p for p in info.value.problems)


def test_a_look_without_data_stops_the_run() -> None:
    data = client([0.75, 0.76, 0.74])
    data["canary"][1] = dataclasses.replace(data["canary"][1], percentiles={})  # its p95 is missing
    lk = seq.look(spec(), data, [], load_seconds=20)
    assert lk.stops
    assert lk.decision == "no data"
    assert lk.reason.startswith("no data to estimate the change of p95")


# --- the load regime: what "significant load" meant ------------------------------------------------


def regime_reps(queue: list[float], in_flight: list[float]) -> list[RepetitionCollection]:
    points = lambda xs: [(float(i), x) for i, x in enumerate(xs)]  # noqa: E731
    series = {
        q.QUEUE_DEPTH.key: {"stable": points(queue), "canary": points([0.0] * len(queue))},
        q.IN_FLIGHT.key: {"stable": points(in_flight), "canary": points([1.0] * len(in_flight))},
    }
    return [RepetitionCollection(1, 0.0, 10.0, "10s", series=series)]


def test_the_load_regime_says_whether_the_baseline_queued_and_what_to_do() -> None:
    four = VariantSpec("canary", 4, env={"MODEL_SERVICE_PROCESSES": "4"})
    s = dataclasses.replace(spec(sequential=False), variants=(VariantSpec("stable", 4), four))
    busy = load_regime(s, regime_reps([2.0, 4.0, 6.0], [4.0, 4.0, 4.0]))
    assert busy.queued is True
    assert busy.statement.startswith("Significant load: at 10 req/s the baseline stable queued, 4.0 requests")
    assert "its 4 threads 100% busy on average" in busy.statement
    assert busy.variants["canary"].processes == 4
    assert busy.variants["canary"].utilisation == pytest.approx(1.0 / 16)
    idle = load_regime(s, regime_reps([0.0, 0.0, 0.1], [0.5, 0.7, 0.6]))
    assert idle.queued is False
    assert idle.statement.startswith("No queueing: at 10 req/s 0.03 requests waited")
    assert "--calibrate" in idle.statement
    unknown = load_regime(s, [RepetitionCollection(1, 0.0, 10.0, "10s")])
    assert unknown.queued is None
    assert "queue was not measured" in unknown.statement
    text = render_markdown(dataclasses.replace(
        Summary.from_dict(json.loads((FIXTURE / "summary.json").read_text())), load_regime=busy))  # fmt: skip
    assert '## The load: what "significant load" meant in this run' in text
    assert "| canary | 1 × 4 × 4 | 1.00 | 6% | 0.00 | 0 | – | – |" in text
    summary = Summary.from_dict(json.loads((FIXTURE / "summary.json").read_text()))
    more = dataclasses.replace(summary, load_regime=busy)
    assert Summary.from_dict(json.loads(json.dumps(more.to_dict()))) == more


def cpu_reps(
    cpu_per_process: float, ms_per_request: float, host_cpus: int | None = 2
) -> list[RepetitionCollection]:
    """The load lasts 5 s (spec()): the 5 s rate window is wholly inside it at t = 5 only.  The points
    before (a rate window reaching back before the load) and after it (the wait after the load,
    which the collection window holds) must not count."""
    reps = regime_reps([2.0, 4.0, 6.0], [4.0, 4.0, 4.0])
    series = reps[0].series
    for key in (q.QUEUE_DEPTH.key, q.IN_FLIGHT.key):
        series[key]["stable"] += [(8.0, 0.0), (9.0, 0.0)]  # after the load: idle
    series[q.CPU_PER_PROCESS.key] = {
        name: [(3.0, 0.0), (5.0, share), (8.0, 0.0)]
        for name, share in (("stable", cpu_per_process), ("canary", cpu_per_process / 4))
    }
    reps[0].window_values = {
        q.CPU_PER_REQUEST.key: {"stable": ms_per_request / 1000, "canary": ms_per_request / 1000},
    }
    reps[0].host_cpus = host_cpus
    return reps


def test_the_load_regime_tells_a_cpu_bound_baseline_from_one_that_waits() -> None:
    four = VariantSpec("canary", 4, env={"MODEL_SERVICE_PROCESSES": "4"})
    s = dataclasses.replace(spec(sequential=False), variants=(VariantSpec("stable", 4), four))
    gil = load_regime(s, cpu_reps(0.85, 61.0))
    assert gil.cpu_bound is True
    assert gil.host_cpus == 2
    assert (
        "Its work was CPU-bound: its process used 85% of one core, 61.0 ms of CPU a request" in gil.statement
    )
    assert "waited for the GIL" in gil.statement
    assert "up to this host's 2 CPUs" in gil.statement
    assert gil.variants["canary"].cpu_per_process == pytest.approx(0.2125)
    assert gil.variants["stable"].cpu_ms_per_request == pytest.approx(61.0)
    waits = load_regime(s, cpu_reps(0.08, 5.3, host_cpus=None))
    assert waits.cpu_bound is False
    assert waits.host_cpus is None
    assert "Not CPU-bound: its process used 8% of one core" in waits.statement
    # not measured (results from before the CPU queries): no claim either way
    assert load_regime(s, regime_reps([2.0], [4.0])).cpu_bound is None
    # Prometheus gives step times in ms: the one step inside a 5 s load can come back a hair early
    early = cpu_reps(0.85, 61.0)
    early[0].series[q.CPU_PER_PROCESS.key] = {
        name: [(3.0, 0.0), (4.9996, 0.85), (8.0, 0.0)] for name in ("stable", "canary")
    }
    assert load_regime(s, early).variants["stable"].cpu_per_process == pytest.approx(0.85)
    summary = Summary.from_dict(json.loads((FIXTURE / "summary.json").read_text()))
    text = render_markdown(dataclasses.replace(summary, load_regime=gil))
    assert "| stable | 1 × 1 × 4 | 4.00 | 100% | 4.00 | 6 | 85% | 61.0 |" in text
    assert "The host has 2 CPUs: CPU-bound work scales by processes up to that." in text
    assert "plots/load-over-time.png" in text
    more = dataclasses.replace(summary, load_regime=gil)
    assert Summary.from_dict(json.loads(json.dumps(more.to_dict()))) == more
