"""summary.json as types: frozen dataclasses with ``to_dict`` and ``from_dict``.

:class:`Summary` is the whole file; the analysis builds its parts
(:class:`VariantFigures`, :class:`Comparison`, :class:`SeedCriterion`,
:class:`Validity`), the engine adds the run's facts, and the report renders
from it.  docs/experiment.md ("summary.json, schema 1") describes every field
and its unit.

Versions: the file carries ``schema`` (:data:`SCHEMA`).  A summary without it
was written before the schema existed; ``from_dict`` reads that format too (a
missing field takes its default), so old results directories still re-render.
A schema newer than this code is an error that says what to do.

Times are in milliseconds (``*_ms``) or seconds (``*_s``, ``*_seconds``),
rates in requests per second, changes and ratios as fractions (-0.12 = 12%
lower).  A number that could not be measured is ``None`` (JSON ``null``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final, Literal, TypeVar, get_args

from canarylab.errors import CanarylabError
from canarylab.experiment.vocabulary import QUANTILES, STATISTICS, VERDICTS, Statistic, VerdictName

#: The version of summary.json this code writes (and the newest it reads).
SCHEMA: Final = 1

#: The percentile statistics (every statistic but the maximum).
QUANTILE_STATISTICS: tuple[Statistic, ...] = tuple(s for s in STATISTICS if s in QUANTILES)

SeedOutcome = Literal["met", "not met", "unknown (scrape gap)", "no data"]
SEED_OUTCOMES: tuple[SeedOutcome, ...] = get_args(SeedOutcome)

_T = TypeVar("_T")

# --- reading JSON values ---------------------------------------------------------------------------


def _num(x: object) -> float | None:
    """A finite number, or None (missing, null, not a number)."""
    if x is None or isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def _int(x: object, default: int = 0) -> int:
    return int(x) if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) else default


def _str(x: object, default: str = "") -> str:
    return default if x is None else str(x)


def _opt_str(x: object) -> str | None:
    return None if x is None else str(x)


def _opt_bool(x: object) -> bool | None:
    return None if x is None else bool(x)


def _map(x: object) -> Mapping[str, Any]:
    return x if isinstance(x, Mapping) else {}


def _strs(x: object) -> tuple[str, ...]:
    return tuple(str(i) for i in x) if isinstance(x, list | tuple) else ()


def as_statistic(x: object) -> Statistic:
    """``x`` as a :data:`~canarylab.experiment.vocabulary.Statistic`; an error names an unknown one."""
    for s in STATISTICS:
        if s == x:
            return s
    raise CanarylabError(f"summary.json: unknown statistic {x!r} (known: {', '.join(STATISTICS)})")


def _by_statistic(x: object, read: Any) -> dict[Statistic, Any]:
    return {as_statistic(k): read(v) for k, v in _map(x).items()}


def _ms_fields(cls: type[_T], data: Mapping[str, Any]) -> _T:
    """A dataclass whose fields are all optional numbers, read from the same keys."""
    return cls(**{f.name: _num(data.get(f.name)) for f in fields(cls)})  # type: ignore[arg-type]


# --- latency figures -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quantiles:
    """Percentiles of a latency distribution, in ms."""

    p50_ms: float | None = None
    p90_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None

    def ms(self, statistic: Statistic) -> float | None:
        """The statistic in ms; None when missing (a Quantiles has no maximum)."""
        value = getattr(self, f"{statistic}_ms", None)
        return None if value is None else float(value)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Quantiles:
        return _ms_fields(cls, data)


@dataclass(frozen=True)
class Latency(Quantiles):
    """Percentiles and the maximum, in ms (the client's, exact: bombardier measured every request)."""

    max_ms: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Latency:
        return _ms_fields(cls, data)


@dataclass(frozen=True)
class ServerFigures:
    """The app's response-time histogram from Prometheus; its maximum is only a bucket bound."""

    metric: str
    source: str
    quantiles: Quantiles
    max_ms: float | None
    requests: int
    max_exact: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "source": self.source,
            **self.quantiles.to_dict(),
            "max_ms": self.max_ms,
            "max_exact": self.max_exact,
            "requests": self.requests,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServerFigures:
        return cls(
            metric=_str(data.get("metric")),
            source=_str(data.get("source")),
            quantiles=Quantiles.from_dict(data),
            max_ms=_num(data.get("max_ms")),
            requests=_int(data.get("requests")),
            max_exact=bool(data.get("max_exact", False)),
        )


@dataclass(frozen=True)
class ProcessingFigures:
    """The model-service's processing time: histogram quantiles, and its exact maximum
    (from the rolling window maximum) unless a scrape gap may hide one."""

    metric: str
    quantiles: Quantiles
    max_ms: float | None
    max_exact: bool
    #: the longest time (s) the gauge went unsampled, when it exceeds the window; else None
    scrape_gap_s: float | None
    max_source: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            **self.quantiles.to_dict(),
            "max_ms": self.max_ms,
            "max_exact": self.max_exact,
            "scrape_gap_s": self.scrape_gap_s,
            "max_source": self.max_source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProcessingFigures:
        return cls(
            metric=_str(data.get("metric")),
            quantiles=Quantiles.from_dict(data),
            max_ms=_num(data.get("max_ms")),
            max_exact=bool(data.get("max_exact", True)),
            scrape_gap_s=_num(data.get("scrape_gap_s")),
            max_source=_str(data.get("max_source")),
        )


@dataclass(frozen=True)
class RepetitionFigures:
    """One variant in one repetition."""

    repetition: int
    achieved_rps: float | None
    requests: int
    errors: int
    client: Latency
    server: Quantiles
    processing_max_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "repetition": self.repetition,
            "achieved_rps": self.achieved_rps,
            "requests": self.requests,
            "errors": self.errors,
            "client": self.client.to_dict(),
            "server": self.server.to_dict(),
            "processing_max_ms": self.processing_max_ms,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RepetitionFigures:
        return cls(
            repetition=_int(data.get("repetition")),
            achieved_rps=_num(data.get("achieved_rps")),
            requests=_int(data.get("requests")),
            errors=_int(data.get("errors")),
            client=Latency.from_dict(_map(data.get("client"))),
            server=Quantiles.from_dict(_map(data.get("server"))),
            processing_max_ms=_num(data.get("processing_max_ms")),
        )


@dataclass(frozen=True)
class Spread:
    """One client-side statistic across repetitions, in ms (``n`` repetitions had a value)."""

    n: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "mean": self.mean, "std": self.std, "min": self.min, "max": self.max}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Spread:
        return cls(
            n=_int(data.get("n")),
            mean=_num(data.get("mean")),
            std=_num(data.get("std")),
            min=_num(data.get("min")),
            max=_num(data.get("max")),
        )


@dataclass(frozen=True)
class VariantFigures:
    """Everything measured about one variant over all repetitions."""

    threads: int
    env: Mapping[str, str]
    app_env: Mapping[str, str]
    target_rps: float
    #: mean over the repetitions of the offered rate
    achieved_rps: float | None
    #: the lowest of any repetition (what validity checks)
    achieved_rps_min: float | None
    requests: int
    errors: int
    error_ratio: float | None
    timeouts: int
    http_5xx: int
    http_4xx: int
    unreachable: int
    restarts: tuple[str, ...]
    #: client side: percentiles averaged over the repetitions, max the largest
    client: Latency
    server: ServerFigures
    processing: ProcessingFigures
    repetitions: tuple[RepetitionFigures, ...]
    #: per statistic (2 or more repetitions), else None
    spread: Mapping[Statistic, Spread] | None = None
    error_budget_ok: bool = False
    client_max_exact: bool = True

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "threads": self.threads,
            "env": dict(self.env),
            "app_env": dict(self.app_env),
            "target_rps": self.target_rps,
            "achieved_rps": self.achieved_rps,
            "achieved_rps_min": self.achieved_rps_min,
            "requests": self.requests,
            "errors": self.errors,
            "error_ratio": self.error_ratio,
            "timeouts": self.timeouts,
            "http_5xx": self.http_5xx,
            "http_4xx": self.http_4xx,
            "unreachable": self.unreachable,
            "restarts": list(self.restarts),
            **self.client.to_dict(),
            "client_max_exact": self.client_max_exact,
            "server": self.server.to_dict(),
            "processing": self.processing.to_dict(),
            "repetitions": [r.to_dict() for r in self.repetitions],
        }
        if self.spread is not None:
            out["spread"] = {f"{s}_ms": sp.to_dict() for s, sp in self.spread.items()}
        out["error_budget_ok"] = self.error_budget_ok
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VariantFigures:
        spread = data.get("spread")
        return cls(
            threads=_int(data.get("threads")),
            env={str(k): str(v) for k, v in _map(data.get("env")).items()},
            app_env={str(k): str(v) for k, v in _map(data.get("app_env")).items()},
            target_rps=_num(data.get("target_rps")) or 0.0,
            achieved_rps=_num(data.get("achieved_rps")),
            achieved_rps_min=_num(data.get("achieved_rps_min", data.get("achieved_rps"))),
            requests=_int(data.get("requests")),
            errors=_int(data.get("errors")),
            error_ratio=_num(data.get("error_ratio")),
            timeouts=_int(data.get("timeouts")),
            http_5xx=_int(data.get("http_5xx")),
            http_4xx=_int(data.get("http_4xx")),
            unreachable=_int(data.get("unreachable")),
            restarts=_strs(data.get("restarts")),
            client=Latency.from_dict(data),
            server=ServerFigures.from_dict(_map(data.get("server"))),
            processing=ProcessingFigures.from_dict(_map(data.get("processing"))),
            repetitions=tuple(RepetitionFigures.from_dict(_map(r)) for r in data.get("repetitions") or ()),
            spread=None
            if spread is None
            else {
                as_statistic(str(k).removesuffix("_ms")): Spread.from_dict(_map(v))
                for k, v in _map(spread).items()
            },
            error_budget_ok=bool(data.get("error_budget_ok", False)),
            client_max_exact=bool(data.get("client_max_exact", True)),
        )


# --- the comparison ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """The relative change candidate / baseline − 1 of one statistic with its confidence interval;
    ``baseline`` and ``candidate`` are the statistic in **seconds**."""

    statistic: Statistic
    baseline: float | None
    candidate: float | None
    change: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float
    method: str
    n_boot: int

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Change:
        return cls(
            statistic=as_statistic(data.get("statistic")),
            baseline=_num(data.get("baseline")),
            candidate=_num(data.get("candidate")),
            change=_num(data.get("change")),
            ci_low=_num(data.get("ci_low")),
            ci_high=_num(data.get("ci_high")),
            confidence=_num(data.get("confidence")) or 0.95,
            method=_str(data.get("method")),
            n_boot=_int(data.get("n_boot")),
        )


def _changes_to_dict(changes: Mapping[Statistic, Change]) -> dict[str, Any]:
    return {s: e.to_dict() for s, e in changes.items()}


def _changes(x: object) -> dict[Statistic, Change]:
    return _by_statistic(x, lambda v: Change.from_dict(_map(v)))


@dataclass(frozen=True)
class Comparison:
    """The candidate against the baseline: the deciding intervals and the others, for comparison."""

    decided_by: str
    #: the statistics that decide (the spec's ``criteria.decide.statistics``)
    statistics: tuple[Statistic, ...]
    min_reduction: float
    confidence: float
    #: the deciding estimates: across repetitions when there are 3 or more, else within the run
    changes: Mapping[Statistic, Change]
    within_run: Mapping[Statistic, Change]
    request_level: Mapping[Statistic, Change]
    #: None with fewer than 3 repetitions
    across_repetitions: Mapping[Statistic, Change] | None
    #: the change of the client-side (bombardier) statistics, no interval
    client_change: Mapping[Statistic, float | None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "decided_by": self.decided_by,
            "statistics": list(self.statistics),
            "min_reduction": self.min_reduction,
            "confidence": self.confidence,
            "changes": _changes_to_dict(self.changes),
            "within_run": _changes_to_dict(self.within_run),
            "request_level": _changes_to_dict(self.request_level),
            "across_repetitions": None
            if self.across_repetitions is None
            else _changes_to_dict(self.across_repetitions),
            "client_change": dict(self.client_change),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        across = data.get("across_repetitions")
        return cls(
            decided_by=_str(data.get("decided_by")),
            statistics=tuple(as_statistic(s) for s in data.get("statistics") or ()),
            min_reduction=_num(data.get("min_reduction")) or 0.0,
            confidence=_num(data.get("confidence")) or 0.95,
            changes=_changes(data.get("changes")),
            within_run=_changes(data.get("within_run")),
            request_level=_changes(data.get("request_level")),
            across_repetitions=_changes(across) if across else None,
            client_change=_by_statistic(data.get("client_change"), _num),
        )


# --- the seed's criterion -------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedOnClient:
    """The seed's criterion on the client's (bombardier's) exact maximum."""

    baseline_max_ms: float | None
    candidate_max_ms: float | None
    change: float | None
    met: bool | None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SeedOnClient:
        return cls(
            baseline_max_ms=_num(data.get("baseline_max_ms")),
            candidate_max_ms=_num(data.get("candidate_max_ms")),
            change=_num(data.get("change")),
            met=_opt_bool(data.get("met")),
        )


def seed_outcome(met: bool | None, result: object = None) -> SeedOutcome:
    """The criterion's outcome; summaries before ``result`` existed derive it from ``met``."""
    for outcome in SEED_OUTCOMES:
        if outcome == result:
            return outcome
    return "met" if met else "not met" if met is not None else "no data"


@dataclass(frozen=True)
class SeedCriterion:
    """The seed's "max falls by at least 5%", reported beside the verdict, never deciding it."""

    statement: str
    #: which exact maximum: "processing" (the model-service's) or "client" (bombardier's)
    source: str
    exact: bool
    which_maximum: str
    baseline_max_ms: float | None
    candidate_max_ms: float | None
    change: float | None
    #: None when unknown (no data, or a scrape gap)
    met: bool | None
    result: SeedOutcome
    client: SeedOnClient
    deciding: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "statement": self.statement,
            "source": self.source,
            "exact": self.exact,
            "which_maximum": self.which_maximum,
            "baseline_max_ms": self.baseline_max_ms,
            "candidate_max_ms": self.candidate_max_ms,
            "change": self.change,
            "met": self.met,
            "result": self.result,
            "deciding": self.deciding,
            "client": self.client.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SeedCriterion:
        met = _opt_bool(data.get("met"))
        return cls(
            statement=_str(data.get("statement")),
            source=_str(data.get("source"), "processing"),
            exact=bool(data.get("exact", True)),
            which_maximum=_str(data.get("which_maximum")),
            baseline_max_ms=_num(data.get("baseline_max_ms")),
            candidate_max_ms=_num(data.get("candidate_max_ms")),
            change=_num(data.get("change")),
            met=met,
            result=seed_outcome(met, data.get("result")),
            client=SeedOnClient.from_dict(_map(data.get("client"))),
            deciding=bool(data.get("deciding", False)),
        )


# --- validity, calibration, timing ----------------------------------------------------------------


@dataclass(frozen=True)
class Validity:
    valid: bool
    #: below this share of the target rate (either variant, any repetition) the run is INVALID
    min_achieved_rate: float
    achieved_rate_definition: str
    warnings: tuple[str, ...] = ()
    #: per repetition, the share of the host's CPU time that was busy (None: not measured)
    host_cpu_busy: tuple[float | None, ...] = ()
    #: above this share in any repetition the run is INVALID (the host was saturated)
    max_host_cpu_busy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "min_achieved_rate": self.min_achieved_rate,
            "achieved_rate_definition": self.achieved_rate_definition,
            "warnings": list(self.warnings),
            "host_cpu_busy": list(self.host_cpu_busy),
            "max_host_cpu_busy": self.max_host_cpu_busy,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Validity:
        return cls(
            valid=bool(data.get("valid", False)),
            min_achieved_rate=_num(data.get("min_achieved_rate")) or 0.95,
            achieved_rate_definition=_str(data.get("achieved_rate_definition")),
            warnings=_strs(data.get("warnings")),
            host_cpu_busy=tuple(_num(x) for x in data.get("host_cpu_busy") or ()),
            max_host_cpu_busy=_num(data.get("max_host_cpu_busy")),
        )


@dataclass(frozen=True)
class CalibrationStep:
    step: int
    rate: int
    #: "unloaded" (step 0), "search" (raising the rate) or "bisect"
    role: str
    #: the baseline's p95: the step's second half (the unloaded step: all of it)
    p95_ms: float | None
    errors: int
    achieved_rps: float | None
    #: p95 / the unloaded p95 (None for the unloaded step)
    p95_vs_unloaded: float | None = None
    #: the first half's p95: the stationarity check compares the halves
    first_half_p95_ms: float | None = None
    #: "light", "loaded" or "too far" (calibrate.py), and why
    kind: str = ""
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "rate": self.rate,
            "role": self.role,
            "p95_ms": self.p95_ms,
            "first_half_p95_ms": self.first_half_p95_ms,
            "p95_vs_unloaded": self.p95_vs_unloaded,
            "errors": self.errors,
            "achieved_rps": self.achieved_rps,
            "kind": self.kind,
            "why": self.why,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CalibrationStep:
        return cls(
            step=_int(data.get("step")),
            rate=_int(data.get("rate")),
            role=_str(data.get("role")),
            p95_ms=_num(data.get("p95_ms")),
            errors=_int(data.get("errors")),
            achieved_rps=_num(data.get("achieved_rps")),
            p95_vs_unloaded=_num(data.get("p95_vs_unloaded")),
            first_half_p95_ms=_num(data.get("first_half_p95_ms")),
            kind=_str(data.get("kind")),
            why=_str(data.get("why")),
        )


@dataclass(frozen=True)
class Calibration:
    """``--calibrate``: the rate chosen and every step (calibration.json holds the same)."""

    chosen_rate: int
    reason: str
    unloaded_p95_ms: float | None
    p95_factor: float
    steps: tuple[CalibrationStep, ...]
    seconds: float
    bound_seconds: float
    #: a loaded step is stationary when its second half's p95 is at most this x the first's
    stationary_factor: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen_rate": self.chosen_rate,
            "reason": self.reason,
            "unloaded_p95_ms": self.unloaded_p95_ms,
            "p95_factor": self.p95_factor,
            "stationary_factor": self.stationary_factor,
            "steps": [s.to_dict() for s in self.steps],
            "seconds": self.seconds,
            "bound_seconds": self.bound_seconds,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        return cls(
            chosen_rate=_int(data.get("chosen_rate")),
            reason=_str(data.get("reason")),
            unloaded_p95_ms=_num(data.get("unloaded_p95_ms")),
            p95_factor=_num(data.get("p95_factor")) or 0.0,
            steps=tuple(CalibrationStep.from_dict(_map(s)) for s in data.get("steps") or ()),
            seconds=_num(data.get("seconds")) or 0.0,
            bound_seconds=_num(data.get("bound_seconds")) or 0.0,
            stationary_factor=_num(data.get("stationary_factor")),
        )


@dataclass(frozen=True)
class VariantLoad:
    """How loaded one variant's model-service was over the repetitions (from Prometheus)."""

    threads: int
    processes: int
    #: requests holding a thread, on average (None: not measured)
    mean_in_flight: float | None
    #: mean_in_flight / (threads x processes)
    utilisation: float | None
    #: requests waiting for a free thread, on average and at the most
    mean_queue: float | None
    max_queue: float | None
    #: the model-service's CPU per process as a share of one core, mean over the repetitions
    #: (near 1: CPU-bound, its GIL held all the time; None: not measured)
    cpu_per_process: float | None = None
    #: CPU milliseconds the model-service spent per request, mean over the repetitions
    cpu_ms_per_request: float | None = None
    #: model-service pods (the lab's replicas; 1 on the local target)
    replicas: int = 1

    @property
    def capacity(self) -> int:
        """Threads that can hold a request at once: threads x processes x pods."""
        return self.threads * self.processes * self.replicas

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VariantLoad:
        return cls(
            threads=_int(data.get("threads")),
            processes=_int(data.get("processes"), 1),
            mean_in_flight=_num(data.get("mean_in_flight")),
            utilisation=_num(data.get("utilisation")),
            mean_queue=_num(data.get("mean_queue")),
            max_queue=_num(data.get("max_queue")),
            cpu_per_process=_num(data.get("cpu_per_process")),
            cpu_ms_per_request=_num(data.get("cpu_ms_per_request")),
            replicas=_int(data.get("replicas"), 1),
        )


@dataclass(frozen=True)
class PodFigures:
    """How one model-service pod of a variant served its share of the load (from Prometheus)."""

    variant: str
    pod: str
    #: requests it answered over the repetitions
    requests: float
    #: its share of the variant's requests (None: the variant answered none)
    share: float | None
    #: its processing-time p95, ms, the median over the repetitions (None: no requests)
    processing_p95_ms: float | None
    #: CPU milliseconds per request, the mean over the repetitions
    cpu_ms_per_request: float | None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PodFigures:
        return cls(
            variant=_str(data.get("variant")),
            pod=_str(data.get("pod")),
            requests=_num(data.get("requests")) or 0.0,
            share=_num(data.get("share")),
            processing_p95_ms=_num(data.get("processing_p95_ms")),
            cpu_ms_per_request=_num(data.get("cpu_ms_per_request")),
        )


@dataclass(frozen=True)
class LoadRegime:
    """What "significant load" meant in this run: the rate, and the baseline's queueing."""

    rate_per_variant: int
    variants: Mapping[str, VariantLoad]
    #: did the baseline queue (None: its queue was not measured)
    queued: bool | None
    #: the plain statement the report opens with
    statement: str
    #: was the baseline CPU-bound, its processes near one core each (None: not measured)
    cpu_bound: bool | None = None
    #: the host's logical CPUs: as far as processes can scale CPU-bound work (None: not recorded)
    host_cpus: int | None = None
    #: each model-service pod's figures, variant by variant
    pods: tuple[PodFigures, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "rate_per_variant": self.rate_per_variant,
            "variants": {name: v.to_dict() for name, v in self.variants.items()},
            "queued": self.queued,
            "statement": self.statement,
            "cpu_bound": self.cpu_bound,
            "host_cpus": self.host_cpus,
            "pods": [p.to_dict() for p in self.pods],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LoadRegime:
        return cls(
            rate_per_variant=_int(data.get("rate_per_variant")),
            variants={str(k): VariantLoad.from_dict(_map(v)) for k, v in _map(data.get("variants")).items()},
            queued=_opt_bool(data.get("queued")),
            statement=_str(data.get("statement")),
            cpu_bound=_opt_bool(data.get("cpu_bound")),
            host_cpus=None if data.get("host_cpus") is None else _int(data.get("host_cpus")),
            pods=tuple(PodFigures.from_dict(_map(p)) for p in data.get("pods") or ()),
        )


@dataclass(frozen=True)
class SequentialLook:
    """One look of a sequential run (sequential.py): the deciding intervals after ``repetition``."""

    repetition: int
    #: seconds of load up to this look, the warm-up (and any calibration) included
    load_seconds: float
    changes: Mapping[Statistic, Change]
    #: "continue", "PASS", "FAIL" or "futile" (a min_reduction improvement ruled out)
    decision: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "repetition": self.repetition,
            "load_seconds": self.load_seconds,
            "changes": _changes_to_dict(self.changes),
            "decision": self.decision,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SequentialLook:
        return cls(
            repetition=_int(data.get("repetition")),
            load_seconds=_num(data.get("load_seconds")) or 0.0,
            changes=_changes(data.get("changes")),
            decision=_str(data.get("decision"), "continue"),
            reason=_str(data.get("reason")),
        )


@dataclass(frozen=True)
class Sequential:
    """``sequential: true``: when the run stopped and why, and every look on the way."""

    max_repetitions: int
    stopped_after: int
    #: True when a look decided before the most repetitions
    stopped_early: bool
    why: str
    looks: tuple[SequentialLook, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_repetitions": self.max_repetitions,
            "stopped_after": self.stopped_after,
            "stopped_early": self.stopped_early,
            "why": self.why,
            "looks": [look.to_dict() for look in self.looks],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Sequential:
        return cls(
            max_repetitions=_int(data.get("max_repetitions")),
            stopped_after=_int(data.get("stopped_after")),
            stopped_early=bool(data.get("stopped_early", False)),
            why=_str(data.get("why")),
            looks=tuple(SequentialLook.from_dict(_map(x)) for x in data.get("looks") or ()),
        )


@dataclass(frozen=True)
class Timing:
    """Seconds under load, in all, and the difference."""

    load_seconds: float
    total_seconds: float
    overhead_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Timing:
        return cls(
            load_seconds=_num(data.get("load_seconds")) or 0.0,
            total_seconds=_num(data.get("total_seconds")) or 0.0,
            overhead_seconds=_num(data.get("overhead_seconds")) or 0.0,
        )


# --- the analysis and the whole summary ------------------------------------------------------------


@dataclass(frozen=True)
class Analysis:
    """What the analysis computes from the measurements (the part of summary.json that
    ``canarylab report --reanalyse`` recomputes)."""

    verdict: VerdictName
    reason: str
    details: tuple[str, ...]
    baseline: str
    candidate: str
    variants: Mapping[str, VariantFigures]
    #: problems the target reported per variant (restarts seen by the local target)
    target_restarts: Mapping[str, tuple[str, ...]]
    comparison: Comparison
    seed_criterion: SeedCriterion
    validity: Validity
    load_regime: LoadRegime | None = None


def _verdict(x: object) -> VerdictName:
    for v in VERDICTS:
        if v == x:
            return v
    raise CanarylabError(f"summary.json: unknown verdict {x!r} (known: {', '.join(VERDICTS)})")


def _schema(data: Mapping[str, Any]) -> int:
    schema = data.get("schema", 0)
    if isinstance(schema, bool) or not isinstance(schema, int) or schema < 0:
        raise CanarylabError(
            f"summary.json: schema {schema!r} is not a version number",
            "the file was edited or damaged; run the experiment again",
        )
    if schema > SCHEMA:
        raise CanarylabError(
            f"summary.json has schema {schema}, newer than this canarylab reads (schema {SCHEMA} and older)",
            "upgrade canarylab (pull and `make setup-minimal`) to read it, "
            "or render it with the canarylab version that wrote it",
        )
    return schema


@dataclass(frozen=True)
class Summary:
    """summary.json: the run's facts (engine) and the analysis (analysis.py)."""

    experiment: str
    hypothesis: str
    target: str
    started_at: str
    finished_at: str
    verdict: VerdictName
    reason: str
    #: requests/s to each variant, and where that rate came from (spec, command line, calibration)
    rate_per_variant: int
    rate_source: str
    duration_s: float
    warmup_s: float
    repetitions: int
    connections: int
    timeout_s: float
    timing: Timing | None
    details: tuple[str, ...]
    baseline: str
    candidate: str
    variants: Mapping[str, VariantFigures]
    target_restarts: Mapping[str, tuple[str, ...]]
    comparison: Comparison
    seed_criterion: SeedCriterion
    validity: Validity
    calibration: Calibration | None = None
    results_dir: str | None = None
    #: None unless the spec is sequential
    sequential: Sequential | None = None
    #: None in results written before it existed
    load_regime: LoadRegime | None = None

    def with_analysis(self, analysis: Analysis) -> Summary:
        """This run with a new analysis (``canarylab report --reanalyse``), written as the current schema."""
        return replace(
            self,
            verdict=analysis.verdict,
            reason=analysis.reason,
            details=analysis.details,
            baseline=analysis.baseline,
            candidate=analysis.candidate,
            variants=analysis.variants,
            target_restarts=analysis.target_restarts,
            comparison=analysis.comparison,
            seed_criterion=analysis.seed_criterion,
            validity=analysis.validity,
            load_regime=analysis.load_regime,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the current schema (``schema`` first)."""
        return {
            "schema": SCHEMA,
            "experiment": self.experiment,
            "hypothesis": self.hypothesis,
            "target": self.target,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "verdict": self.verdict,
            "reason": self.reason,
            "rate_per_variant": self.rate_per_variant,
            "rate_source": self.rate_source,
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "repetitions": self.repetitions,
            "connections": self.connections,
            "timeout_s": self.timeout_s,
            "timing": None if self.timing is None else self.timing.to_dict(),
            "details": list(self.details),
            "baseline": self.baseline,
            "candidate": self.candidate,
            "variants": {name: v.to_dict() for name, v in self.variants.items()},
            "target_restarts": {name: list(r) for name, r in self.target_restarts.items()},
            "comparison": self.comparison.to_dict(),
            "seed_criterion": self.seed_criterion.to_dict(),
            "validity": self.validity.to_dict(),
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "results_dir": self.results_dir,
            "sequential": None if self.sequential is None else self.sequential.to_dict(),
            "load_regime": None if self.load_regime is None else self.load_regime.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Summary:
        """Read summary.json of schema :data:`SCHEMA` or older.

        A summary without ``schema`` is the pre-schema format (written before schema 1):
        it is read as such, each field it lacks taking its default (e.g. the seed
        criterion's ``result`` derived from ``met``, ``scrape_gap_s`` None), and it is
        returned as schema 1 (``to_dict`` writes ``schema: 1``).  A newer schema
        raises :class:`~canarylab.errors.CanarylabError` saying to upgrade canarylab.
        """
        _schema(data)
        variants = {str(k): VariantFigures.from_dict(_map(v)) for k, v in _map(data.get("variants")).items()}
        names = list(variants)
        timing, calibration, seq = data.get("timing"), data.get("calibration"), data.get("sequential")
        results_dir = data.get("results_dir")
        return cls(
            experiment=_str(data.get("experiment")),
            hypothesis=_str(data.get("hypothesis")),
            target=_str(data.get("target")),
            started_at=_str(data.get("started_at")),
            finished_at=_str(data.get("finished_at")),
            verdict=_verdict(data.get("verdict")),
            reason=_str(data.get("reason")),
            rate_per_variant=_int(data.get("rate_per_variant")),
            rate_source=_str(data.get("rate_source"), "spec"),
            duration_s=_num(data.get("duration_s")) or 0.0,
            warmup_s=_num(data.get("warmup_s")) or 0.0,
            repetitions=_int(data.get("repetitions"), 1),
            connections=_int(data.get("connections")),
            timeout_s=_num(data.get("timeout_s")) or 0.0,
            timing=Timing.from_dict(_map(timing)) if timing else None,
            details=_strs(data.get("details")),
            baseline=_str(data.get("baseline"), names[0] if names else "stable"),
            candidate=_str(data.get("candidate"), names[-1] if names else "canary"),
            variants=variants,
            target_restarts={str(k): _strs(v) for k, v in _map(data.get("target_restarts")).items()},
            comparison=Comparison.from_dict(_map(data.get("comparison"))),
            seed_criterion=SeedCriterion.from_dict(_map(data.get("seed_criterion"))),
            validity=Validity.from_dict(_map(data.get("validity"))),
            calibration=Calibration.from_dict(_map(calibration)) if calibration else None,
            results_dir=_opt_str(results_dir),
            sequential=Sequential.from_dict(_map(seq)) if seq else None,
            load_regime=LoadRegime.from_dict(_map(regime)) if (regime := data.get("load_regime")) else None,
        )


def as_summary(summary: Summary | Mapping[str, Any]) -> Summary:
    """``summary`` as a :class:`Summary` (a mapping is read with :meth:`Summary.from_dict`)."""
    return summary if isinstance(summary, Summary) else Summary.from_dict(summary)


# --- environment.json, as far as the report shows it ------------------------------------------------


@dataclass(frozen=True)
class RunEnvironment:
    """What the report shows of environment.json (the file itself holds much more, and is
    written by the engine as it is)."""

    bombardier_version: str | None = None
    bombardier_path: str | None = None
    #: the target's tool versions (name -> version)
    versions: Mapping[str, str] = field(default_factory=dict)
    ports: Mapping[str, int] = field(default_factory=dict)
    rules_file: str | None = None
    rules_loaded: bool = False
    rules_detail: str = ""
    grafana_url: str | None = None
    selector: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunEnvironment:
        target, tools = _map(data.get("target")), _map(data.get("tools"))
        bombardier, rules = _map(tools.get("bombardier")), _map(target.get("rules"))
        return cls(
            bombardier_version=_opt_str(bombardier.get("version")),
            bombardier_path=_opt_str(bombardier.get("path")),
            versions={str(k): str(v) for k, v in _map(target.get("versions")).items()},
            ports={str(k): _int(v) for k, v in _map(target.get("ports")).items()},
            rules_file=_opt_str(rules.get("file")) or None,
            rules_loaded=bool(rules.get("loaded")),
            rules_detail=_str(rules.get("detail")),
            grafana_url=_opt_str(target.get("grafana_url")) or None,
            selector=_str(target.get("selector")),
        )


def as_environment(environment: RunEnvironment | Mapping[str, Any] | None) -> RunEnvironment:
    if environment is None:
        return RunEnvironment()
    return environment if isinstance(environment, RunEnvironment) else RunEnvironment.from_dict(environment)
