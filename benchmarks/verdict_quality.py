#!/usr/bin/env python3
"""How often the verdict is right, by simulation with the engine's own statistics (not a test).

    . scripts/env.sh && python benchmarks/verdict_quality.py [--sims 1000] [--designs 3x60 10x20] [--seed 1]

Simulates the seed's experiment (10 req/s to each variant, both at once; by default 1, 3
and 5 repetitions of 60 s, and 10 of 20 s) many times, with what a laptop does to a
measurement, and decides each one with the code the engine uses:
``stats.paired_t_repetitions`` across 3 or more repetitions, ``stats.block_bootstrap``
of the app's fine-bucket histograms within one run (blocks as ``collect.block_plan``
cuts them), and ``verdict.on_intervals`` on the result.

The latency model, per request, on the log scale: a 100 ms median; request noise
(sd 0.5); noise shared by both variants over time (AR(1), phi 0.9, sd 0.10: the
machine); noise of each variant over time (AR(1), phi 0.9, sd 0.05); and an offset
per variant per run (sd 0.05-0.10: two processes differ from run to run).  The
candidate's latencies are the baseline's times (1 + effect), so its p95 changes by
exactly ``effect``: the truth the intervals should cover.

Printed per design (repetitions x seconds), per-run offset and true effect: the share of PASS, FAIL and
INCONCLUSIVE, and the coverage of the 95% interval.  For one run, "clear" is how often
its interval cleared -5%: what the rules before issue #11 called PASS.

Then two lines of one run with no offset between runs: what the block bootstrap's fixed
block length (a repetition's span / 20) covers when only the noise over time is left.

Then, on the same simulated runs of the default design (``--methods-design``, 10 x 20 s),
each method side by side: its share of PASS and its mean load time (the warm-up, the same
for all, left out):
- ``default``: the engine's fixed design, the paired t-interval across all repetitions;
- ``sequential``: the engine's sequential mode (``sequential.look`` after every repetition
  from the third, stopping at the first that decides), on runs of its own design
  (``--sequential-design``, at most 40 x 5 s: the same most load, in shorter repetitions);
- ``seed rule``: the seed's own, one run's (the first repetition's) maximum falls by 5% or more;
- ``kayenta``: as Kayenta's NetflixACAJudge, a Mann-Whitney U test on per-interval
  (5 s) p95 values of every repetition: PASS when the candidate's are lower (one-sided,
  p < 0.05) and their medians differ by 5% or more;
- ``iter8 SLO``: an absolute SLO on the candidate alone, its p95 over the experiment at
  most 95% of the baseline's true p95 (the limit a team would write from its baseline).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy.stats import mannwhitneyu

import canarylab_contract as c
from canarylab.experiment import sequential as seq
from canarylab.experiment.analysis import MIN_REPETITIONS_ACROSS
from canarylab.experiment.collect import block_plan
from canarylab.experiment.load import LoadResult
from canarylab.experiment.spec import CriteriaSpec, ExperimentSpec, LoadSpec, VariantSpec
from canarylab.experiment.stats import ChangeEstimate, Histogram, block_bootstrap, paired_t_repetitions
from canarylab.experiment.verdict import on_intervals

SECONDS = 60
RATE = 10
MEDIAN_S = 0.100
REQUEST_SD = 0.5
SHARED_SD, OWN_SD, PHI = 0.10, 0.05, 0.9
CRITERIA = CriteriaSpec()
EFFECTS = (0.0, -0.05, -0.25)
OFFSETS = (0.05, 0.07, 0.10)
#: Kayenta's interval: the per-interval p95 values its judge compares
KAYENTA_INTERVAL_S = 5
#: the true p95 of the baseline (lognormal request noise only; the other noise moves it little)
TRUE_P95_S = MEDIAN_S * float(np.exp(1.6448536269514722 * REQUEST_SD))
METHODS = ("default", "sequential", "seed rule", "kayenta", "iter8 SLO")


@dataclass(frozen=True)
class Scenario:
    repetitions: int
    offset_sd: float
    effect: float
    seconds: int = SECONDS


def ar1(rng: np.random.Generator, n: int, sd: float) -> np.ndarray:
    """A stationary AR(1) series of ``n`` seconds with marginal sd ``sd``."""
    out = np.empty(n)
    out[0] = rng.normal(0, sd)
    innovation = sd * np.sqrt(1 - PHI**2)
    for i in range(1, n):
        out[i] = PHI * out[i - 1] + rng.normal(0, innovation)
    return out


def one_run(rng: np.random.Generator, s: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """Latencies (seconds) of both variants, shape (s.seconds, RATE): row t is second t."""
    shared = ar1(rng, s.seconds, SHARED_SD)[:, None]
    runs = []
    for factor in (1.0, 1.0 + s.effect):
        own = ar1(rng, s.seconds, OWN_SD)[:, None]
        offset = rng.normal(0, s.offset_sd)
        noise = rng.normal(0, REQUEST_SD, size=(s.seconds, RATE))
        runs.append(MEDIAN_S * factor * np.exp(shared + own + offset + noise))
    return runs[0], runs[1]


def blocks(latencies: np.ndarray) -> list[Histogram]:
    """The run cut into time blocks as the engine cuts it, each a histogram in the app's buckets."""
    count, seconds = block_plan(0.0, float(len(latencies)), 1.0)
    per = max(1, round(seconds))
    return [
        Histogram.from_samples(latencies[i * per : (i + 1) * per].ravel(), c.LATENCY_BUCKETS)
        for i in range(count)
    ]


def estimate(rng: np.random.Generator, s: Scenario, n_boot: int) -> ChangeEstimate:
    runs = [one_run(rng, s) for _ in range(s.repetitions)]
    if s.repetitions >= MIN_REPETITIONS_ACROSS:
        p95 = [(float(np.quantile(b, 0.95)), float(np.quantile(cn, 0.95))) for b, cn in runs]
        return paired_t_repetitions([b for b, _ in p95], [cn for _, cn in p95], "p95")
    hb = [h for b, _ in runs for h in blocks(b)]
    hc = [h for _, cn in runs for h in blocks(cn)]
    block_seconds = float(s.seconds * s.repetitions) / len(hb)
    return block_bootstrap(hb, hc, "p95", rng, n_boot=n_boot, block_seconds=block_seconds)


def simulate(rng: np.random.Generator, s: Scenario, sims: int, n_boot: int) -> dict[str, float]:
    verdicts: Counter[str] = Counter()
    covered = cleared = 0
    for _ in range(sims):
        est = estimate(rng, s, n_boot)
        verdict, _ = on_intervals(
            "stable", "canary", [est], CRITERIA, run_to_run=s.repetitions >= MIN_REPETITIONS_ACROSS
        )
        verdicts[verdict] += 1
        covered += est.ci_low <= s.effect <= est.ci_high
        cleared += est.ci_high <= -CRITERIA.decide.min_reduction
    share = {v: 100.0 * verdicts[v] / sims for v in ("PASS", "FAIL", "INCONCLUSIVE")}
    return {**share, "coverage": 100.0 * covered / sims, "clear": 100.0 * cleared / sims}


def _result(latencies: np.ndarray, seconds: int) -> LoadResult:
    """One simulated repetition of one variant, as the engine's sequential look reads it."""
    q = {k: float(np.quantile(latencies, int(k) / 100)) for k in ("50", "90", "95", "99")}
    n = int(latencies.size)
    return LoadResult(
        rate=RATE, duration=seconds, connections=1, timeout=10, time_taken=seconds, req1xx=0, req2xx=n,
        req3xx=0, req4xx=0, req5xx=0, others=0, percentiles=q, latency_max=float(latencies.max()),
    )  # fmt: skip


def sequential_run(runs: list[tuple[np.ndarray, np.ndarray]], seconds: int) -> tuple[str, float]:
    """The engine's sequential mode on ``runs`` (its most repetitions): the verdict and the load time."""
    spec = ExperimentSpec(
        name="bench",
        hypothesis="",
        variants=(VariantSpec("stable", 4), VariantSpec("canary", 16)),
        load=LoadSpec(rate=RATE, duration=seconds, warmup=0),
        repetitions=len(runs),
        sequential=True,
    )
    client: dict[str, list[LoadResult]] = {"stable": [], "canary": []}
    for i, (b, cn) in enumerate(runs, start=1):
        client["stable"].append(_result(b, seconds))
        client["canary"].append(_result(cn, seconds))
        look = seq.look(spec, client, [], load_seconds=i * seconds)
        if look.stops or i == len(runs):
            return look.decision if look.decision in ("PASS", "FAIL") else "INCONCLUSIVE", float(i * seconds)
    raise AssertionError("unreachable: the last repetition always returns")


def _interval_p95(x: np.ndarray) -> np.ndarray:
    step = KAYENTA_INTERVAL_S
    return np.array([np.quantile(x[i : i + step], 0.95) for i in range(0, len(x), step)])


def kayenta_pass(runs: list[tuple[np.ndarray, np.ndarray]]) -> bool:
    """Mann-Whitney U on per-interval p95 values (module docstring)."""
    b = np.concatenate([_interval_p95(r[0]) for r in runs])
    cn = np.concatenate([_interval_p95(r[1]) for r in runs])
    p = float(mannwhitneyu(cn, b, alternative="less").pvalue)
    return p < 0.05 and float(np.median(cn)) <= (1 - CRITERIA.decide.min_reduction) * float(np.median(b))


def methods(
    rng: np.random.Generator, s: Scenario, sequential: Scenario, sims: int
) -> dict[str, tuple[float, float]]:
    """Each method's share of PASS (%) and mean load seconds; all but sequential mode on the same
    simulated runs of ``s``, sequential mode on runs of its own design ``sequential``."""
    passed: Counter[str] = Counter()
    load: dict[str, float] = dict.fromkeys(METHODS, 0.0)
    thr = CRITERIA.decide.min_reduction
    for _ in range(sims):
        runs = [one_run(rng, s) for _ in range(s.repetitions)]
        full = s.repetitions * s.seconds
        p95 = [(float(np.quantile(b, 0.95)), float(np.quantile(cn, 0.95))) for b, cn in runs]
        est = paired_t_repetitions([b for b, _ in p95], [cn for _, cn in p95], "p95")
        passed["default"] += on_intervals("stable", "canary", [est], CRITERIA, run_to_run=True)[0] == "PASS"
        first_b, first_c = runs[0]
        passed["seed rule"] += float(first_c.max()) <= (1 - thr) * float(first_b.max())
        load["seed rule"] += s.seconds
        passed["kayenta"] += kayenta_pass(runs)
        everything = np.concatenate([cn.ravel() for _, cn in runs])
        passed["iter8 SLO"] += float(np.quantile(everything, 0.95)) <= (1 - thr) * TRUE_P95_S
        for m in ("default", "kayenta", "iter8 SLO"):
            load[m] += full
        verdict, seconds = sequential_run(
            [one_run(rng, sequential) for _ in range(sequential.repetitions)], sequential.seconds
        )
        passed["sequential"] += verdict == "PASS"
        load["sequential"] += seconds
    return {m: (100.0 * passed[m] / sims, load[m] / sims) for m in METHODS}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sims", type=int, default=1000, help="simulated experiments per line (default 1000)")
    p.add_argument("--one-run-sims", type=int, default=200, help="per line for one run (bootstrap; 200)")
    p.add_argument("--n-boot", type=int, default=500, help="bootstrap resamples for one run (500)")
    p.add_argument(
        "--designs",
        nargs="+",
        default=["1x60", "3x60", "5x60", "10x20"],
        help="repetitions x seconds each (default 1x60 3x60 5x60 10x20)",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--methods-design", default="10x20", help="the methods table's design (default 10x20)")
    p.add_argument(
        "--sequential-design",
        default="40x5",
        help="sequential mode's most repetitions x seconds, the same most load (default 40x5)",
    )
    p.add_argument("--methods-sims", type=int, default=1000, help="per line of the methods table (1000)")
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    print(
        f"{RATE} req/s per variant; p95 decides at -5%, 95% confidence; "
        f"shared AR(1) sd {SHARED_SD}, own sd {OWN_SD}, request sd {REQUEST_SD}\n"
    )
    header = f"{'design':<16}{'offset sd':>10}{'effect':>8}{'PASS%':>8}{'FAIL%':>8}{'INCONC%':>9}"
    print(header + f"{'cover%':>8}{'clear%':>8}{'sims':>6}{'s':>6}")
    for design in args.designs:
        reps, seconds = (int(x) for x in design.split("x"))
        sims = args.sims if reps >= MIN_REPETITIONS_ACROSS else args.one_run_sims
        for offset in OFFSETS:
            for effect in EFFECTS:
                began = time.monotonic()
                r = simulate(rng, Scenario(reps, offset, effect, seconds), sims, args.n_boot)
                print(
                    f"{f'{reps} x {seconds} s':<16}{offset:>10.2f}{effect:>+8.0%}{r['PASS']:>8.1f}"
                    f"{r['FAIL']:>8.1f}{r['INCONCLUSIVE']:>9.1f}{r['coverage']:>8.1f}{r['clear']:>8.1f}"
                    f"{sims:>6}{time.monotonic() - began:>6.0f}",
                    flush=True,
                )
    # The block length's own coverage: one run with no offset between runs, so only the noise
    # over time is left for the blocks to capture (its own generator: the lines above stay put).
    blocks_rng = np.random.default_rng(args.seed + 1)
    for effect in (0.0, -0.25):
        r = simulate(blocks_rng, Scenario(1, 0.0, effect, SECONDS), args.one_run_sims, args.n_boot)
        print(
            f"{f'1 x {SECONDS} s':<16}{0.0:>10.2f}{effect:>+8.0%}{r['PASS']:>8.1f}{r['FAIL']:>8.1f}"
            f"{r['INCONCLUSIVE']:>9.1f}{r['coverage']:>8.1f}{r['clear']:>8.1f}{args.one_run_sims:>6}"
            "   (no run-to-run offset: the blocks' own coverage)",
            flush=True,
        )
    reps, seconds = (int(x) for x in args.methods_design.split("x"))
    seq_reps, seq_seconds = (int(x) for x in args.sequential_design.split("x"))
    print(
        f"\nmethods on the same simulated runs, {reps} x {seconds} s (sequential mode: at most "
        f"{seq_reps} x {seq_seconds} s); PASS% and mean load s per true effect"
    )
    effects = "".join(f"{f'PASS% {e:+.0%}':>13}{'load s':>8}" for e in EFFECTS)
    print(f"{'method':<12}{'offset sd':>10}{effects}")
    for offset in OFFSETS:
        rows = {
            e: methods(
                rng,
                Scenario(reps, offset, e, seconds),
                Scenario(seq_reps, offset, e, seq_seconds),
                args.methods_sims,
            )
            for e in EFFECTS
        }
        for m in METHODS:
            cells = "".join(f"{rows[e][m][0]:>13.1f}{rows[e][m][1]:>8.0f}" for e in EFFECTS)
            print(f"{m:<12}{offset:>10.2f}{cells}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
