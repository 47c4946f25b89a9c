"""An experiment as data: load and validate ``experiments/*.yml``.

Loading validates everything at once; each problem names its field
(``load.rate``, ``variants[1].threads``...), so a typo never silently becomes a
default.  See docs/experiment.md for the format.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import yaml

import canarylab_contract as c
from canarylab.errors import CanarylabError
from canarylab.experiment.stats import first_sequential_look
from canarylab.experiment.vocabulary import (
    DECIDING_STATISTICS,
    DEFAULT_DECIDING,
    DEFAULT_METRIC,
    METRICS,
    STATISTICS,
    Metric,
)

T = TypeVar("T")

#: Metrics the seed's criterion may be computed from (each has an exact maximum).
SEED_SOURCES: tuple[str, ...] = ("processing", "client")
GENERATORS: tuple[str, ...] = ("bombardier",)

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class SpecError(CanarylabError):
    """The spec file is wrong; ``problems`` lists every bad field."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"invalid experiment spec {path}:\n{lines}", "fix the fields above (see docs/experiment.md)"
        )


def parse_duration(value: object) -> float:
    """Seconds from ``60``, ``"60s"``, ``"1m30s"``, ``"500ms"``, ``"1.5m"``; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("is a boolean, not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        else:
            parts = _DURATION_PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(f"cannot parse {value!r} as a duration (write e.g. 60s, 1m30s, 500ms)")
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    else:
        raise ValueError(f"cannot parse {value!r} as a duration (write e.g. 60s, 1m30s, 500ms)")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """A Go duration bombardier understands: ``60s``, ``2.5s``."""
    return f"{seconds:g}s"


def parse_fraction(value: object) -> float:
    """``0.05`` or ``"5%"`` -> 0.05."""
    if isinstance(value, bool):
        raise ValueError("is a boolean, not a fraction")
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            number = float(value.strip()[:-1]) / 100
        except ValueError:
            raise ValueError(f"cannot parse {value!r} as a percentage") from None
    elif isinstance(value, int | float):
        number = float(value)
    else:
        raise ValueError(f"cannot parse {value!r} as a fraction (write 0.05 or 5%)")
    if not math.isfinite(number) or not 0 <= number <= 1:
        raise ValueError(f"must be between 0 and 1 (0% and 100%), got {value!r}")
    return number


@dataclass(frozen=True)
class VariantSpec:
    name: str
    threads: int
    #: Extra environment of the model-service (e.g. MODEL_SERVICE_SIMULATED_LATENCY_MS).
    env: dict[str, str] = field(default_factory=dict)
    #: Extra environment of the app in front of it (e.g. APP_THREADS).
    app_env: dict[str, str] = field(default_factory=dict)
    #: Pods of the model-service: a lab setting (the chart's modelService.replicas); the
    #: local target runs one model-service per variant and refuses more.
    replicas: int = 1


@dataclass(frozen=True)
class LoadSpec:
    generator: str = "bombardier"
    #: Requests per second offered to EACH variant.
    rate: int = 10
    duration: float = 60.0
    warmup: float = 10.0
    #: None: enough to hold the rate for a whole timeout (see connections_for).
    connections: int | None = None
    timeout: float = 10.0
    review: str = "The food was delicious and the staff were friendly."

    @property
    def effective_connections(self) -> int:
        return self.connections if self.connections is not None else connections_for(self.rate, self.timeout)


def connections_for(rate: float, timeout: float) -> int:
    """Connections that hold ``rate`` even if every request takes the whole ``timeout``.

    bombardier is closed-loop per connection: a connection waits for its answer
    before it sends again.  With rate x timeout connections it never runs out,
    so the offered rate holds however slow the variant gets (fasthttp only
    opens the connections it needs).
    """
    return max(4, math.ceil(rate * timeout) + 2)


@dataclass(frozen=True)
class SeedCriterion:
    """The original team's criterion: the maximum fell by at least ``min_reduction``."""

    statistic: str = "max"
    #: ``processing``: the exact maximum the model-service records; ``client``: bombardier's.
    source: str = "processing"
    min_reduction: float = 0.05


@dataclass(frozen=True)
class DecideCriterion:
    """PASS needs, for every statistic (never max), the CI of the relative change at or below
    -min_reduction, from 3 or more repetitions (verdict.py)."""

    statistics: tuple[str, ...] = DEFAULT_DECIDING
    min_reduction: float = 0.05
    confidence: float = 0.95
    #: p99 decides too when every repetition of both variants has at least this many
    #: requests (then at least 10 lie above it); 0: only ``statistics``
    p99_from_requests: int = 1000


@dataclass(frozen=True)
class SloSpec:
    """Absolute limits in the spirit of Iter8's SLOs, checked on each variant (verdict.py): the
    candidate over one FAILs; a baseline over one is reported.  A limit, not a comparison: an
    SLO can make a candidate FAIL, never PASS."""

    #: statistic (p50..p99 or max) -> seconds: the client's statistic, averaged over the
    #: repetitions (max: the largest), must not exceed it
    latency: dict[str, float] = field(default_factory=dict)
    #: errors (5xx, timeouts) the variant may cause, as a share of its requests
    error_ratio: float | None = None

    def to_dict(self) -> dict[str, float]:
        """The spec file's form: ``{p95: 0.5, error_ratio: 0.01}``."""
        return {**self.latency, **({} if self.error_ratio is None else {"error_ratio": self.error_ratio})}


@dataclass(frozen=True)
class CriteriaSpec:
    seed: SeedCriterion = field(default_factory=SeedCriterion)
    decide: DecideCriterion = field(default_factory=DecideCriterion)
    slo: SloSpec = field(default_factory=SloSpec)
    #: A variant with more errors (5xx, timeouts) than this fails.
    max_error_ratio: float = 0.01
    #: INVALID when a variant's achieved rate is below this share of the target.
    min_achieved_rate: float = 0.95
    #: INVALID when the host's CPUs were busier than this in a repetition (host.py).
    max_host_cpu_busy: float = 0.98


@dataclass(frozen=True)
class CalibrationSpec:
    """``--calibrate`` (calibrate.py): the knee where the baseline's p95 reaches ``p95_factor`` x
    unloaded, stationary, both variants loaded; raise the rate x ``growth``, then bisect."""

    unloaded_rate: int = 5
    start_rate: int = 10
    growth: float = 1.5
    max_steps: int = 10
    step_duration: float = 10.0
    p95_factor: float = 2.0


@dataclass(frozen=True)
class ExperimentSpec:
    name: str
    hypothesis: str
    variants: tuple[VariantSpec, ...]
    load: LoadSpec
    baseline: str = c.STABLE
    #: what the deciding interval across repetitions compares (vocabulary.METRICS)
    metric: Metric = DEFAULT_METRIC
    criteria: CriteriaSpec = field(default_factory=CriteriaSpec)
    #: with ``sequential``, the most repetitions: the run stops after the first that decides
    repetitions: int = 1
    calibration: CalibrationSpec = field(default_factory=CalibrationSpec)
    seed: int = 20240601
    #: look at the evidence after every repetition from the third, with an anytime-valid
    #: confidence sequence, and stop as soon as it decides (sequential.py)
    sequential: bool = False

    @property
    def candidate(self) -> str:
        return next(v.name for v in self.variants if v.name != self.baseline)

    def variant(self, name: str) -> VariantSpec:
        return next(v for v in self.variants if v.name == name)

    @property
    def load_seconds(self) -> float:
        """Time under load: the warm-up plus every repetition."""
        return self.load.warmup + self.repetitions * self.load.duration

    def with_overrides(
        self,
        *,
        duration: float | None = None,
        rate: int | None = None,
        repetitions: int | None = None,
        warmup: float | None = None,
    ) -> ExperimentSpec:
        """The spec with command-line overrides, validated like the file."""
        problems: list[str] = []
        if duration is not None and duration <= 0:
            problems.append(f"--duration: must be more than 0 seconds, got {duration:g}")
        if rate is not None and rate <= 0:
            problems.append(f"--rate: must be a positive whole number of requests/s, got {rate}")
        if repetitions is not None and repetitions < 1:
            problems.append(f"--repetitions: must be at least 1, got {repetitions}")
        elif repetitions is not None and self.sequential:
            first = first_sequential_look(self.criteria.decide.confidence)
            if repetitions < first:
                problems.append(
                    f"--repetitions: the spec is sequential, so this is the most repetitions, and "
                    f"a sequential run decides from repetition {first} on: give {first} or more, "
                    f"got {repetitions}"
                )
        if warmup is not None and warmup < 0:
            problems.append(f"--warmup: must not be negative, got {warmup:g}")
        if problems:
            raise SpecError("(command line)", problems)
        load = replace(
            self.load,
            duration=self.load.duration if duration is None else duration,
            rate=self.load.rate if rate is None else rate,
            warmup=self.load.warmup if warmup is None else warmup,
        )
        return replace(self, load=load, repetitions=self.repetitions if repetitions is None else repetitions)

    def to_dict(self) -> dict[str, Any]:
        """Plain data that :func:`spec_from_dict` reads back (the spec as run)."""
        data = asdict(self)
        data["variants"] = [asdict(v) for v in self.variants]
        data["criteria"]["decide"]["statistics"] = list(self.criteria.decide.statistics)
        data["criteria"]["slo"] = self.criteria.slo.to_dict()
        return data


class _Reader:
    """Reads one mapping, collecting problems with dotted field names."""

    def __init__(self, data: object, where: str, problems: list[str]) -> None:
        self.where = where
        self.problems = problems
        self.data: Mapping[str, Any]
        if data is None:
            self.data = {}
        elif isinstance(data, Mapping):
            self.data = data
        else:
            self.problems.append(f"{where or 'the file'}: must be a mapping, got {type(data).__name__}")
            self.data = {}
        self.seen: set[str] = set()

    def name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, default: T, parse: Callable[[object], T], required: bool = False) -> T:
        self.seen.add(key)
        if key not in self.data:
            if required:
                self.problems.append(f"{self.name(key)}: is required")
            return default
        try:
            return parse(self.data[key])
        except (ValueError, TypeError) as err:
            self.problems.append(f"{self.name(key)}: {err}")
            return default

    def sub(self, key: str) -> _Reader:
        self.seen.add(key)
        return _Reader(self.data.get(key), self.name(key), self.problems)

    def finish(self) -> None:
        for key in self.data:
            if key not in self.seen:
                known = ", ".join(sorted(self.seen))
                self.problems.append(f"{self.name(str(key))}: unknown key (known here: {known})")


def _str(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


def _name(value: object) -> str:
    text = _str(value)
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", text):
        raise ValueError(f"{text!r} must be lowercase letters, digits, '.', '_' or '-'")
    return text


def _positive_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ValueError(f"must be a whole number, got {value!r}")
    if value <= 0:
        raise ValueError(f"must be more than 0, got {value}")
    return value


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"must be a whole number, 0 or more, got {value!r}")
    return value


def _positive_float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be more than 0, got {value!r}")
    return float(value)


def _positive_duration(value: object) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"must be longer than 0, got {value!r}")
    return seconds


def _env(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError("must be a mapping of environment variables")
    env: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
            raise ValueError(f"{k!r} is not an environment variable name")
        if isinstance(v, Mapping | list) or v is None:
            raise ValueError(f"{k}: must be a string or a number")
        env[k] = str(v).lower() if isinstance(v, bool) else str(v)
    return env


def _one_of(choices: tuple[str, ...]) -> Callable[[object], str]:
    def parse(value: object) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return parse


def _metric(value: object) -> Metric:
    for m in METRICS:
        if m == value:
            return m
    raise ValueError(
        f"must be one of {', '.join(METRICS)}, got {value!r} (client_latency: bombardier's latency, "
        "which includes every queue; app_response_seconds: the app's histogram, the seed's Grafana metric)"
    )


def _statistics(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"must be a non-empty list of {', '.join(DECIDING_STATISTICS)}")
    for item in value:
        if item == "max":
            raise ValueError(
                "'max' cannot decide: one extreme value is quantised by the histogram's buckets and "
                "has no sound interval; decide on p95 (or p99), the seed's max criterion is "
                "reported beside the verdict (criteria.seed)"
            )
        if item not in DECIDING_STATISTICS:
            raise ValueError(f"{item!r} is not one of {', '.join(DECIDING_STATISTICS)}")
    return tuple(str(v) for v in value)


def _confidence(value: object) -> float:
    number = parse_fraction(value)
    if not 0.5 <= number < 1:
        raise ValueError(f"must be at least 0.5 and below 1, got {value!r}")
    return number


def _connections(value: object) -> int | None:
    if value in (None, "auto"):
        return None
    return _positive_int(value)


def _variants(value: object, problems: list[str]) -> tuple[VariantSpec, ...]:
    if not isinstance(value, list):
        problems.append("variants: must be a list of {name, threads, env, app_env, replicas}")
        return ()
    variants: list[VariantSpec] = []
    for i, item in enumerate(value):
        r = _Reader(item, f"variants[{i}]", problems)
        name = r.get("name", "", _one_of(c.VARIANTS), required=True)
        if name:
            r.where = f"variants[{i}] ({name})"
        threads = r.get("threads", c.DEFAULT_THREADS.get(name, 4), _positive_int, required=True)
        no_env: dict[str, str] = {}
        env = r.get("env", no_env, _env)
        app_env = r.get("app_env", no_env, _env)
        replicas = r.get("replicas", 1, _positive_int)
        r.finish()
        if name:
            variants.append(
                VariantSpec(name=name, threads=threads, env=env, app_env=app_env, replicas=replicas)
            )
    names = [v.name for v in variants]
    for variant in c.VARIANTS:
        if variant not in names and not any(p.startswith("variants[") and "name" in p for p in problems):
            problems.append(
                f"variants: the {variant!r} variant is missing (need exactly: {', '.join(c.VARIANTS)})"
            )
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"variants: {dup!r} appears more than once")
    return tuple(variants)


def spec_from_dict(data: object, path: str = "<spec>") -> ExperimentSpec:
    problems: list[str] = []
    top = _Reader(data, "", problems)
    name = top.get("name", "", _name, required=True)
    hypothesis = top.get("hypothesis", "", _str, required=True)
    top.seen.add("variants")
    variants = _variants(top.data.get("variants"), problems) if "variants" in top.data else ()
    if "variants" not in top.data:
        problems.append("variants: is required (a list with the stable and the canary variant)")
    baseline = top.get("baseline", c.STABLE, _one_of(c.VARIANTS))
    metric = top.get("metric", DEFAULT_METRIC, _metric)
    repetitions = top.get("repetitions", 1, _positive_int)
    seed = top.get("seed", 20240601, _positive_int)
    sequential = top.get("sequential", False, _bool)

    lr = top.sub("load")
    if "load" not in top.data:
        problems.append("load: is required")
    load = LoadSpec(
        generator=lr.get("generator", "bombardier", _one_of(GENERATORS)),
        rate=lr.get("rate", 10, _positive_int, required=True),
        duration=lr.get("duration", 60.0, _positive_duration, required=True),
        warmup=lr.get("warmup", 10.0, parse_duration),
        connections=lr.get("connections", None, _connections),
        timeout=lr.get("timeout", 10.0, _positive_duration),
        review=lr.get("review", LoadSpec.review, _str),
    )
    lr.finish()

    cr = top.sub("criteria")
    sr = cr.sub("seed")
    seed_criterion = SeedCriterion(
        statistic=sr.get("statistic", "max", _one_of(("max",))),
        source=sr.get("source", "processing", _one_of(SEED_SOURCES)),
        min_reduction=sr.get("min_reduction", 0.05, parse_fraction),
    )
    sr.finish()
    dr = cr.sub("decide")
    decide = DecideCriterion(
        statistics=dr.get("statistics", DEFAULT_DECIDING, _statistics),
        min_reduction=dr.get("min_reduction", 0.05, parse_fraction),
        confidence=dr.get("confidence", 0.95, _confidence),
        p99_from_requests=dr.get("p99_from_requests", DecideCriterion.p99_from_requests, _count),
    )
    dr.finish()
    lr_slo = cr.sub("slo")
    slo = SloSpec(
        latency={s: lr_slo.get(s, 0.0, _positive_duration) for s in STATISTICS if s in lr_slo.data},
        error_ratio=lr_slo.get("error_ratio", None, parse_fraction),
    )
    lr_slo.finish()
    criteria = CriteriaSpec(
        seed=seed_criterion,
        decide=decide,
        slo=slo,
        max_error_ratio=cr.get("max_error_ratio", 0.01, parse_fraction),
        min_achieved_rate=cr.get("min_achieved_rate", 0.95, parse_fraction),
        max_host_cpu_busy=cr.get("max_host_cpu_busy", CriteriaSpec.max_host_cpu_busy, parse_fraction),
    )
    cr.finish()
    first = first_sequential_look(decide.confidence)
    if sequential and repetitions < first:
        problems.append(
            f"repetitions: with sequential: true it is the most repetitions, and at confidence "
            f"{decide.confidence:g} a sequential run decides from repetition {first} on: set it to "
            f"{first} or more (40 suits a 5 s repetition), got {repetitions}"
        )

    kr = top.sub("calibration")
    calibration = CalibrationSpec(
        unloaded_rate=kr.get("unloaded_rate", CalibrationSpec.unloaded_rate, _positive_int),
        start_rate=kr.get("start_rate", CalibrationSpec.start_rate, _positive_int),
        growth=kr.get("growth", CalibrationSpec.growth, _positive_float),
        max_steps=kr.get("max_steps", CalibrationSpec.max_steps, _positive_int),
        step_duration=kr.get("step_duration", CalibrationSpec.step_duration, _positive_duration),
        p95_factor=kr.get("p95_factor", CalibrationSpec.p95_factor, _positive_float),
    )
    kr.finish()
    if calibration.growth <= 1:
        problems.append(f"calibration.growth: must be more than 1, got {calibration.growth:g}")
    if calibration.unloaded_rate >= calibration.start_rate:
        problems.append(
            f"calibration.unloaded_rate: must be below start_rate ({calibration.start_rate}), "
            f"got {calibration.unloaded_rate}"
        )
    top.finish()

    if problems:
        raise SpecError(path, problems)
    return ExperimentSpec(
        name=name,
        hypothesis=hypothesis,
        variants=variants,
        load=load,
        baseline=baseline,
        metric=metric,
        criteria=criteria,
        repetitions=repetitions,
        calibration=calibration,
        seed=seed,
        sequential=sequential,
    )


def load_spec(path: Path | str) -> ExperimentSpec:
    """Read and validate an experiment file; raise SpecError naming every bad field."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as err:
        raise CanarylabError(f"cannot read experiment spec {p}: {err.strerror}") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SpecError(str(p), [f"not valid YAML: {err}"]) from err
    return spec_from_dict(data, str(p))
