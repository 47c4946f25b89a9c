"""Orchestration: one experiment run, from the spec to summary.json, report.md and plots.

``run_experiment`` is the only implementation; ``python -m canarylab.experiment``
calls it, ``experiment.yml`` runs that module, and ``canarylab experiment run``
runs ``experiment.yml``.

Order: set up the target (local: start and await everything) -> calibrate
(optional) -> warm up -> repetitions (both variants loaded at the same time) ->
collect each repetition from Prometheus -> stop the target -> analyse ->
write the results and report.  Every process started is stopped on the way
out, also on an error, Ctrl-C or SIGTERM.  summary.json is a
:class:`~canarylab.experiment.summary.Summary`: the analysis's types and the run's facts.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import canarylab_contract as c
from canarylab import queries as q
from canarylab.dashboard.annotations import URL_ENV, GrafanaAnnotator, annotator_from_env
from canarylab.errors import CanarylabError
from canarylab.experiment import events as ev
from canarylab.experiment import host
from canarylab.experiment import results as res
from canarylab.experiment import sequential as seq
from canarylab.experiment.analysis import analyse, changes_of
from canarylab.experiment.calibrate import calibrate
from canarylab.experiment.collect import RepetitionCollection, collect_repetition
from canarylab.experiment.load import (
    LoadResult,
    RunningLoad,
    bombardier_argv,
    bombardier_version,
    review_body,
    start_load,
)
from canarylab.experiment.prometheus import PrometheusClient, PrometheusError, by_label, wait_scraped_after
from canarylab.experiment.report import render_all
from canarylab.experiment.spec import ExperimentSpec, connections_for
from canarylab.experiment.summary import (
    Analysis,
    Calibration,
    Sequential,
    SequentialLook,
    Summary,
    Timing,
)
from canarylab.experiment.targets import Target, TargetFactory, TargetRequest, registry
from canarylab.experiment.verdict import describe_change
from canarylab.experiment.vocabulary import exit_code
from canarylab.procs import ProcessGroup, signals_interrupt

#: How often a progress event is emitted while load runs.
PROGRESS_EVERY = 2.0
#: Extra time a bombardier may take past duration + timeout before it is killed.
LOAD_GRACE = 30.0


@dataclass
class EngineOptions:
    results_root: Path
    #: a kind of ``factories``: one of targets.TARGETS unless a caller adds its own
    target: str = "local"
    #: kind -> factory (the registry's; a test may add a stand-in kind)
    factories: Mapping[str, TargetFactory] = field(default_factory=lambda: registry.FACTORIES)
    target_file: Path | None = None
    calibrate: bool = False
    bombardier: str | None = None
    prometheus: str | None = None
    rules_file: Path | None = None
    scrape_interval: str = "1s"
    #: where the local target's trained model is cached
    model_cache: Path | None = None
    #: how the rate was set: "spec" or "command line" (calibration sets "calibration")
    rate_source: str = "spec"
    #: the command line / playbook overrides, recorded in the environment
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunOutcome:
    run_dir: Path
    summary: Summary

    @property
    def exit_code(self) -> int:
        return exit_code(self.summary.verdict)


class Runner:
    """One run; ``run_experiment`` below is the way to use it."""

    def __init__(self, spec: ExperimentSpec, opts: EngineOptions, bus: ev.EventBus, run_dir: Path) -> None:
        self.spec = spec
        self.opts = opts
        self.bus = bus
        self.run_dir = run_dir
        self.client: PrometheusClient | None = None
        self.bombardier = self._find_bombardier(opts.bombardier)
        self.target = registry.create(
            opts.target,
            TargetRequest(
                spec=spec,
                workdir=run_dir / res.TARGET_DIR,
                target_file=opts.target_file,
                scrape_interval=opts.scrape_interval,
                prometheus_bin=opts.prometheus,
                rules_file=opts.rules_file,
                model_cache=opts.model_cache,
                on_status=self._status,
            ),
            opts.factories,
        )
        self.client_results: dict[str, list[LoadResult]] = {v.name: [] for v in spec.variants}
        self.collections: list[RepetitionCollection] = []
        self.target_restarts: dict[str, list[str]] = {v.name: [] for v in spec.variants}
        self.calibration: dict[str, Any] | None = None
        #: sequential mode: every look so far (sequential.py)
        self.looks: list[seq.Look] = []
        self.load_seconds = 0.0
        #: when the last load (calibration step, warm-up, repetition) ended; None before any
        self.last_load_end: float | None = None
        # Slow, independent look-ups run in the background while the target starts.
        self._bombardier_version = "unknown"
        self._background = [
            threading.Thread(target=self._find_bombardier_version, daemon=True),
            threading.Thread(target=_preload_plotting, daemon=True),
        ]
        for thread in self._background:
            thread.start()

    def _find_bombardier_version(self) -> None:
        self._bombardier_version = bombardier_version(self.bombardier)

    def _status(self, message: str) -> None:
        self.bus.emit(ev.SETUP, message)

    @staticmethod
    def _find_bombardier(explicit: str | None) -> str:
        if explicit:
            found = explicit if Path(explicit).is_file() else shutil.which(explicit)
            if found:
                return found
            raise CanarylabError(
                f"bombardier binary {explicit} does not exist", "the bombardier role installs it"
            )
        found = shutil.which("bombardier")
        if not found:
            raise CanarylabError(
                "bombardier is not installed",
                "run the experiment through `canarylab experiment run` (the bombardier role installs it) "
                "or `make setup-minimal`",
            )
        return found

    # --- load ----------------------------------------------------------------------------

    def _live_rates(self, target: Target) -> dict[str, float]:
        if self.client is None:
            return {}
        try:
            expr = q.REQUEST_RATE.render("5s", target.selector)
            return {k: v for k, v in by_label(self.client.query(expr)).items() if math.isfinite(v)}
        except PrometheusError:
            return {}

    def load_phase(
        self,
        group: ProcessGroup,
        target: Target,
        *,
        phase: str,
        rate: int,
        duration: float,
        variants: Sequence[str],
        files: Mapping[str, str],
        repetition: int | None = None,
        progress_offset: float = 0.0,
        progress_total: float = 0.0,
    ) -> dict[str, LoadResult]:
        """Load ``variants`` at the same time for ``duration`` at ``rate`` each; parse bombardier's JSON."""
        load = self.spec.load
        connections = load.connections or 0
        if not connections:
            connections = connections_for(rate, load.timeout)
        running: list[RunningLoad] = []
        body = review_body(load.review)
        for v in variants:
            ep = target.endpoints[v]
            argv = bombardier_argv(
                self.bombardier,
                ep.url,
                rate=rate,
                duration=duration,
                connections=connections,
                timeout=load.timeout,
                body=body,
                headers=ep.headers,
            )
            running.append(start_load(group, v, argv, self.run_dir / files[v]))
        started = time.time()
        for r in running:
            self.bus.emit(
                ev.LOAD_START,
                f"{phase}: {r.variant} {rate} req/s for {duration:g}s ({connections} connections)",
                time=r.started,
                repetition=repetition,
                variant=r.variant,
                data={
                    "phase": phase,
                    "rate": rate,
                    "duration": duration,
                    "connections": connections,
                    "pid": r.process.pid,
                },
            )
        deadline = started + duration + load.timeout + LOAD_GRACE
        next_tick = started + PROGRESS_EVERY
        ended: dict[str, float] = {}
        while len(ended) < len(running):
            now = time.time()
            for r in running:
                if r.variant not in ended and r.done():
                    ended[r.variant] = now
                    self.bus.emit(
                        ev.LOAD_END,
                        f"{phase}: {r.variant} done",
                        repetition=repetition,
                        variant=r.variant,
                        data={"phase": phase},
                    )
            if now > deadline:
                for r in running:
                    r.process.stop()
                raise CanarylabError(f"{phase}: bombardier did not finish within {deadline - started:.0f}s")
            if now >= next_tick and len(ended) < len(running):
                elapsed = min(now - started, duration)
                self.bus.emit(
                    ev.PROGRESS,
                    phase,
                    repetition=repetition,
                    data={
                        "phase": phase,
                        "elapsed": elapsed,
                        "total": duration,
                        "overall_elapsed": progress_offset + elapsed,
                        "overall_total": progress_total,
                        "rates": self._live_rates(target),
                    },
                )
                next_tick = now + PROGRESS_EVERY
            time.sleep(0.1)
        self.load_seconds += duration
        self.last_load_end = time.time()
        return {r.variant: r.result() for r in running}

    # --- phases ------------------------------------------------------------------------------

    def calibrate(self, group: ProcessGroup, target: Target) -> int:
        """The calibration (calibrate.py): after a warm-up, both variants loaded at once, as the
        experiment will load them; the baseline's latency decides."""
        names = [v.name for v in self.spec.variants]
        cal = self.spec.calibration

        def step(rate: int, step: int, part: str, duration: float) -> LoadResult:
            return self.load_phase(
                group,
                target,
                phase=f"calibration step {step}{f' ({part})' if part in ('a', 'b') else ''} ({rate} req/s)",
                rate=rate,
                duration=duration,
                variants=names,
                files={v: res.load_file("calibration", v, step=step, part=part) for v in names},
            )[self.spec.baseline]

        self.bus.emit(ev.CALIBRATE, "finding significant load: both variants, the baseline's latency decides")
        if self.spec.load.warmup > 0:
            self.load_phase(
                group,
                target,
                phase="calibration warm-up",
                rate=cal.start_rate,
                duration=self.spec.load.warmup,
                variants=names,
                files={v: res.load_file("calibration-warmup", v) for v in names},
            )
        self.calibration = calibrate(cal, step)
        res.write_json(self.run_dir / res.CALIBRATION, self.calibration)
        rate = int(self.calibration["chosen_rate"])
        self.bus.emit(
            ev.CALIBRATE, f"chose {rate} req/s: {self.calibration['reason']}", data=self.calibration
        )
        return rate

    @staticmethod
    def min_block(target: Target) -> float:
        """Time blocks must hold at least one scrape of the target's Prometheus."""
        return target.scrape_seconds()

    def quiet_before(self, target: Target, rep: int) -> None:
        """Before a measured repetition, let the previous load (calibration, warm-up or the
        previous repetition) leave the model-service's rolling processing maximum.

        Each sample of that gauge is the maximum of the PROCESSING_MAX_WINDOW_SECONDS before
        its scrape, so it must not be scraped within that time of the previous load's end
        and then counted in this repetition: wait until the window plus one scrape interval
        has passed since that load ended.  Also makes sure Prometheus scraped every target
        after it (the bucket counters at the repetition's start hold all of it).  Nothing to
        wait for when no load ran before.
        """
        if self.last_load_end is None:
            return
        until = self.last_load_end + c.PROCESSING_MAX_WINDOW_SECONDS + target.scrape_seconds()
        wait = until - time.time()
        if wait > 0:
            self.bus.emit(
                ev.SETUP,
                f"repetition {rep}: waiting {wait:.1f}s so that the previous load leaves the "
                f"processing maximum ({c.PROCESSING_MAX_WINDOW_SECONDS:g}s rolling window + one "
                f"{target.scrape_seconds():g}s scrape)",
                repetition=rep,
                data={"phase": "quiet", "seconds": round(wait, 3), "previous_load_end": self.last_load_end},
            )
            while (left := until - time.time()) > 0:
                time.sleep(min(left, 0.2))
        self.settle(target, self.last_load_end)

    def settle(self, target: Target, load_end: float) -> float:
        """Wait until Prometheus has scraped every target after the load ended; return the window end."""
        if self.client is None:
            return time.time()
        check = target.scrape_check()
        return wait_scraped_after(self.client, check.matchers, load_end, check.timeout) + 0.05

    def run(self) -> Analysis:
        spec = self.spec
        names = [v.name for v in spec.variants]
        self.bus.emit(ev.SETUP, f"{self.opts.target} target: setting up")
        target = self.target
        with ProcessGroup() as loads, target as t:
            self.client = PrometheusClient(t.prometheus_url)
            self.bus.emit(
                ev.READY,
                "all services and Prometheus are ready",
                data={"ports": dict(t.ports), "pids": t.pids()},
            )
            if self.opts.calibrate:
                rate = self.calibrate(loads, t)
                self.spec = spec = spec.with_overrides(rate=rate)
                self.opts.rate_source = "calibration"
            res.write_yaml(self.run_dir / res.SPEC, spec.to_dict())
            total = spec.load_seconds
            if spec.load.warmup > 0:
                self.bus.emit(ev.WARMUP, f"warm-up: {spec.load.warmup:g}s at {spec.load.rate} req/s each")
                self.load_phase(
                    loads,
                    t,
                    phase="warm-up",
                    rate=spec.load.rate,
                    duration=spec.load.warmup,
                    variants=names,
                    files={v: res.load_file("warmup", v) for v in names},
                    progress_total=total,
                )
            t.wait_scraping()  # every target scraped before the first measured second
            self.bus.emit(ev.SETUP, "Prometheus scrapes every target")
            for rep in range(1, spec.repetitions + 1):
                self.quiet_before(t, rep)  # after calibration, warm-up or the previous repetition
                start = time.time()
                cpu_before = host.cpu_reading()
                results = self.load_phase(
                    loads,
                    t,
                    phase=f"repetition {rep}/{spec.repetitions}",
                    rate=spec.load.rate,
                    duration=spec.load.duration,
                    variants=names,
                    files={v: res.load_file("rep", v, repetition=rep) for v in names},
                    repetition=rep,
                    progress_offset=spec.load.warmup + (rep - 1) * spec.load.duration,
                    progress_total=total,
                )
                busy = host.busy_share(cpu_before, host.cpu_reading())
                for v, r in results.items():
                    self.client_results[v].append(r)
                end = self.settle(t, time.time())
                self.bus.emit(ev.COLLECT, f"repetition {rep}: querying Prometheus", repetition=rep)
                coll = collect_repetition(
                    self.client, rep, start, end, t.selector, min_block=self.min_block(t)
                )
                coll.host_cpu_busy = busy if math.isfinite(busy) else None
                coll.host_cpus = host.cpu_count()
                self.collections.append(coll)
                res.write_json(self.run_dir / res.PROM_DIR / f"rep{rep}.json", coll.to_dict())
                for v, problems in t.problems().items():
                    self.target_restarts.setdefault(v, []).extend(f"repetition {rep}: {p}" for p in problems)
                if spec.sequential and self.look(rep).stops:
                    break
            environment = self.environment(t)
            self._write_raw_queries()
        target.clean_up()
        res.write_json(self.run_dir / res.ENVIRONMENT, environment)
        self.bus.emit(ev.ANALYSE, "computing statistics, uncertainty and the verdict")
        return analyse(
            spec,
            self.client_results,
            self.collections,
            target_restarts=self.target_restarts,
            deployment_warnings=environment["deployment_warnings"],
        )

    def look(self, rep: int) -> seq.Look:
        """Sequential mode: the look after repetition ``rep``, announced with its interval."""
        look = seq.look(self.spec, self.client_results, self.collections, load_seconds=self.load_seconds)
        if not look.counts:
            return look
        self.looks.append(look)
        intervals = "; ".join(describe_change(e) for e in look.estimates.values())
        word = "going on" if not look.stops else f"stopping: {look.decision}"
        self.bus.emit(
            ev.LOOK,
            f"after repetition {rep}/{self.spec.repetitions} ({look.load_seconds:.0f}s of load): "
            f"{intervals}; {word}",
            repetition=rep,
            data={"decision": look.decision, "reason": look.reason, "load_seconds": look.load_seconds},
        )
        return look

    def sequential_record(self) -> Sequential | None:
        """What summary.json says of a sequential run: where it stopped, why, and every look."""
        if not self.spec.sequential:
            return None
        looks = tuple(
            SequentialLook(
                repetition=lk.repetition,
                load_seconds=round(lk.load_seconds, 3),
                changes=changes_of(lk.estimates),
                decision=lk.decision,
                reason=lk.reason,
            )
            for lk in self.looks
        )
        last = self.looks[-1] if self.looks else None
        ran = len(self.client_results[self.spec.baseline])
        return Sequential(
            max_repetitions=self.spec.repetitions,
            stopped_after=ran,
            stopped_early=ran < self.spec.repetitions,
            why=last.reason if last else "no repetition reached the first look",
            looks=looks,
        )

    def _write_raw_queries(self) -> None:
        if self.client is None:
            return
        path = self.run_dir / res.RAW_QUERIES
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as f:
            for entry in self.client.log:
                f.write(json.dumps(res.clean(entry)) + "\n")

    def environment(self, target: Target) -> dict[str, Any]:
        spec = self.spec
        self._background[0].join(30)
        return {
            "target": target.describe(),
            "tools": {
                "bombardier": {"path": self.bombardier, "version": self._bombardier_version},
                "python": sys.version.split()[0],
                "engine_pid": os.getpid(),
            },
            "variants": {
                v.name: {"threads": v.threads, "replicas": v.replicas, "env": v.env, "app_env": v.app_env}
                for v in spec.variants
            },
            # where the variants that ran are not the file's (the lab runs what was deployed)
            "deployment_warnings": target.deployment_warnings(spec),
            "knobs": {
                "rate_per_variant": spec.load.rate,
                "rate_source": self.opts.rate_source,
                "duration_s": spec.load.duration,
                "warmup_s": spec.load.warmup,
                "repetitions": spec.repetitions,
                "sequential": spec.sequential,
                "connections": spec.load.effective_connections,
                "timeout_s": spec.load.timeout,
                "scrape_interval": self.opts.scrape_interval,
                "header": c.VARIANT_HEADER,
                "seed": spec.seed,
                "calibrate": self.opts.calibrate,
                "overrides": self.opts.overrides,
            },
            "host": {"uname": " ".join(os.uname()), "cpus": os.cpu_count()},
        }


def _preload_plotting() -> None:
    """Import matplotlib while the load runs, so the report does not wait for it."""
    with contextlib.suppress(Exception):
        import canarylab.experiment.plots  # noqa: F401, PLC0415 - matplotlib is slow: off the main thread


def run_experiment(
    spec: ExperimentSpec,
    opts: EngineOptions,
    listeners: Sequence[ev.Listener] = (),
    *,
    on_run_dir: Callable[[Path], None] | None = None,
) -> RunOutcome:
    """Run ``spec`` end to end and write its results; see the module docstring."""
    started = time.time()
    run_dir = res.make_run_dir(opts.results_root, spec.name, started)
    if on_run_dir:
        on_run_dir(run_dir)
    events_writer = ev.ProgressFileWriter(run_dir / res.EVENTS)
    bus = ev.EventBus([*listeners, events_writer])
    annotator: GrafanaAnnotator | None = None
    bus.emit(ev.ENGINE, "engine started", data={"pid": os.getpid(), "run_dir": str(run_dir)})
    res.write_yaml(run_dir / res.SPEC, spec.to_dict())
    try:
        with signals_interrupt():
            runner = Runner(spec, opts, bus, run_dir)
            annotator = _annotator(run_dir.name, runner.target.grafana_url)
            if annotator is not None:
                bus.add(annotator)
            analysis = runner.run()
            finished = time.time()
            summary = Summary(
                experiment=runner.spec.name,
                hypothesis=runner.spec.hypothesis,
                target=opts.target,
                started_at=res.iso(started),
                finished_at=res.iso(finished),
                verdict=analysis.verdict,
                reason=analysis.reason,
                rate_per_variant=runner.spec.load.rate,
                rate_source=opts.rate_source,
                duration_s=runner.spec.load.duration,
                warmup_s=runner.spec.load.warmup,
                repetitions=len(runner.client_results[runner.spec.baseline]),
                connections=runner.spec.load.effective_connections,
                timeout_s=runner.spec.load.timeout,
                timing=Timing(
                    load_seconds=round(runner.load_seconds, 3),
                    total_seconds=round(finished - started, 3),
                    overhead_seconds=round(finished - started - runner.load_seconds, 3),
                ),
                details=analysis.details,
                baseline=analysis.baseline,
                candidate=analysis.candidate,
                variants=analysis.variants,
                target_restarts=analysis.target_restarts,
                comparison=analysis.comparison,
                seed_criterion=analysis.seed_criterion,
                validity=analysis.validity,
                calibration=None if runner.calibration is None else Calibration.from_dict(runner.calibration),
                results_dir=str(run_dir),
                sequential=runner.sequential_record(),
                load_regime=analysis.load_regime,
            )
            res.write_json(run_dir / res.SUMMARY, summary.to_dict())
            bus.emit(
                ev.VERDICT,
                f"{summary.verdict}: {summary.reason}",
                data={
                    "verdict": summary.verdict,
                    "run_dir": str(run_dir),
                    "summary": str(run_dir / res.SUMMARY),
                },
            )
            bus.emit(ev.REPORT, "writing report.md and plots")
            render_all(run_dir)
            res.point_latest(opts.results_root, run_dir)
            bus.emit(
                ev.DONE,
                f"{summary.verdict}: {summary.reason}",
                data={"verdict": summary.verdict, "run_dir": str(run_dir)},
            )
            return RunOutcome(run_dir, summary)
    except KeyboardInterrupt:
        (run_dir / "INTERRUPTED").write_text(
            "the run was interrupted; every process it started was stopped\n"
        )
        bus.emit(ev.ERROR, "interrupted: every process was stopped", data={"run_dir": str(run_dir)})
        raise
    except Exception as err:
        (run_dir / "ERROR").write_text(f"{err}\n")
        bus.emit(ev.ERROR, str(err) or type(err).__name__, data={"run_dir": str(run_dir)})
        raise
    finally:
        if annotator is not None:
            with contextlib.suppress(Exception):
                annotator.close()
        events_writer.close()


def _annotator(run: str, grafana_url: str | None) -> GrafanaAnnotator | None:
    """The Grafana annotator, when Grafana is known: CANARYLAB_GRAFANA_URL, else the target's."""
    env = dict(os.environ)
    if grafana_url and URL_ENV not in env:
        env[URL_ENV] = grafana_url
    try:
        return annotator_from_env(run, env)
    except CanarylabError as err:
        print(f"canarylab: Grafana annotations off: {err}", file=sys.stderr)
        return None
