"""The load generator: bombardier's command line, and a parser for its JSON result.

bombardier (v1.2.6, `-o json -p r`) prints one JSON object::

    {"spec": {"numberOfConnections": 64, "testDurationSeconds": 5, "rate": 25, ...},
     "result": {"timeTakenSeconds": 6.45, "req2xx": 126, "req5xx": 0, "others": 0,
                "errors": [{"description": "timeout", "count": 13}],
                "latency": {"mean": .., "max": .., "percentiles": {"50": .., "99": ..}},
                "rps": {"mean": ..}}}

Latencies are in microseconds; ``latency.percentiles`` appears only with ``-l``.
``errors`` appears only when some requests got no HTTP answer (timeouts,
refused connections); those are counted in ``others``.

In a timed run bombardier sends at the limited rate for the duration, then
waits for every request still in flight, so ``timeTakenSeconds`` includes that
drain and ``rps.mean`` is the rate of *completions*.  The rate the generator
actually *offered* is every request it counted (answered or not) over the
configured duration: that is :attr:`LoadResult.achieved_rps`.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import canarylab_contract as c
from canarylab.errors import CanarylabError
from canarylab.experiment.spec import format_duration
from canarylab.experiment.vocabulary import QUANTILES
from canarylab.procs import ManagedProcess, ProcessGroup, _die_with_parent

#: Substrings of bombardier error descriptions that mean "nobody listening there": the
#: variant could not be reached at all (bombardier/Go dial errors, e.g. "dial tcp
#: 127.0.0.1:54217: connect: connection refused").  Everything else is an error of the
#: variant: a connection reset, a broken pipe, an EOF or fasthttp's "the server closed
#: connection before returning the first response byte" all come from a server that
#: accepted the connection and then dropped it.
_UNREACHABLE = (
    "connection refused",
    "no such host",
    "network is unreachable",
)


def bombardier_argv(
    bombardier: str,
    url: str,
    *,
    rate: int,
    duration: float,
    connections: int,
    timeout: float,
    body: str,
    headers: Mapping[str, str],
) -> list[str]:
    """The exact bombardier command for one variant: rate-limited, pinned, latencies, JSON."""
    argv = [bombardier, "-m", "POST", "-H", "Content-Type: application/json"]
    for key, value in headers.items():
        if key.lower() != "content-type":
            argv += ["-H", f"{key}: {value}"]
    argv += [
        "-b",
        body,
        "-r",
        str(int(rate)),
        "-d",
        format_duration(duration),
        "-c",
        str(int(connections)),
        "-t",
        format_duration(timeout),
        "-l",
        "-o",
        "json",
        "-p",
        "r",
        url,
    ]
    return argv


def review_body(review: str) -> str:
    return json.dumps({"review": review})


def pinned_headers(variant: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {c.VARIANT_HEADER: variant, **(extra or {})}


@dataclass(frozen=True)
class LoadResult:
    """One bombardier run against one variant, in seconds and counts."""

    rate: float  #: the configured rate limit (requests/s)
    duration: float  #: the configured duration (s)
    connections: int
    timeout: float
    time_taken: float  #: wall time incl. the drain of in-flight requests
    req1xx: int
    req2xx: int
    req3xx: int
    req4xx: int
    req5xx: int
    others: int  #: requests with no HTTP answer (see errors)
    errors: dict[str, int] = field(default_factory=dict)  #: description -> count
    latency_mean: float = math.nan
    latency_stddev: float = math.nan
    latency_max: float = math.nan
    percentiles: dict[str, float] = field(default_factory=dict)  #: "50" -> seconds
    rps_mean: float = math.nan  #: completions per second, as bombardier samples them

    @property
    def total(self) -> int:
        """Every request the generator sent and counted, answered or not."""
        return self.req1xx + self.req2xx + self.req3xx + self.req4xx + self.req5xx + self.others

    @property
    def achieved_rps(self) -> float:
        """The offered rate: all counted requests over the configured duration."""
        return self.total / self.duration if self.duration > 0 else math.nan

    @property
    def timeouts(self) -> int:
        return sum(n for d, n in self.errors.items() if "timeout" in d.lower())

    @property
    def unreachable(self) -> int:
        """Requests that found nobody listening: the variant could not be reached."""
        return sum(
            n
            for d, n in self.errors.items()
            if "timeout" not in d.lower() and any(s in d.lower() for s in _UNREACHABLE)
        )

    @property
    def variant_errors(self) -> int:
        """Errors the variant caused: 5xx answers, timeouts and other failed requests
        (connections reset or closed by the server, broken pipes, EOFs).

        Not counted: connections that found nobody listening (refused, no such
        host, network unreachable: the variant could not be reached) and 4xx
        answers; either makes the run INVALID when the baseline shows it and a
        FAIL when the candidate does (verdict.py: the candidate broke).
        """
        return self.req5xx + self.others - self.unreachable

    @property
    def error_ratio(self) -> float:
        """Variant-caused errors over every request sent."""
        return self.variant_errors / self.total if self.total else math.nan

    def quantile(self, q: float) -> float:
        """Client-side percentile in seconds (50, 75, 90, 95, 99), NaN if not reported."""
        return self.percentiles.get(f"{round(q * 100)}", math.nan)

    def stats(self) -> dict[str, float]:
        """p50/p90/p95/p99/max in seconds, exact as bombardier measured them."""
        return {**{name: self.quantile(q) for name, q in QUANTILES.items()}, "max": self.latency_max}


def _num(data: Mapping[str, Any], key: str, where: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CanarylabError(f"bombardier output: {where}.{key} is missing or not a number")
    return float(value)


def parse_bombardier(text: str) -> LoadResult:
    """Parse ``bombardier -l -o json -p r`` output; latencies become seconds."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        snippet = text.strip()[:200] or "(empty)"
        raise CanarylabError(f"bombardier output is not JSON: {err}: {snippet}") from err
    if not isinstance(data, dict) or "result" not in data or "spec" not in data:
        raise CanarylabError("bombardier output has no 'spec' and 'result': was it run with -o json -p r?")
    spec, res = data["spec"], data["result"]
    latency = res.get("latency") or {}
    if "percentiles" not in latency:
        raise CanarylabError("bombardier output has no latency percentiles: run it with -l")
    us = 1e-6
    errors: dict[str, int] = {}
    for item in res.get("errors") or []:
        desc = str(item.get("description", "unknown"))
        errors[desc] = errors.get(desc, 0) + int(item.get("count", 0))
    rate = spec.get("rate")
    return LoadResult(
        rate=float(rate) if isinstance(rate, int | float) else math.nan,
        duration=_num(spec, "testDurationSeconds", "spec"),
        connections=int(_num(spec, "numberOfConnections", "spec")),
        timeout=_num(spec, "timeoutSeconds", "spec"),
        time_taken=_num(res, "timeTakenSeconds", "result"),
        req1xx=int(_num(res, "req1xx", "result")),
        req2xx=int(_num(res, "req2xx", "result")),
        req3xx=int(_num(res, "req3xx", "result")),
        req4xx=int(_num(res, "req4xx", "result")),
        req5xx=int(_num(res, "req5xx", "result")),
        others=int(_num(res, "others", "result")),
        errors=errors,
        latency_mean=_num(latency, "mean", "result.latency") * us,
        latency_stddev=_num(latency, "stddev", "result.latency") * us,
        latency_max=_num(latency, "max", "result.latency") * us,
        percentiles={str(k): float(v) * us for k, v in (latency.get("percentiles") or {}).items()},
        rps_mean=float((res.get("rps") or {}).get("mean", math.nan)),
    )


@dataclass
class RunningLoad:
    """A bombardier process writing its JSON to ``out_path``."""

    variant: str
    argv: list[str]
    out_path: Path
    err_path: Path
    process: ManagedProcess
    started: float

    def done(self) -> bool:
        return not self.process.running()

    def result(self) -> LoadResult:
        code = self.process.popen.returncode
        text = self.out_path.read_text() if self.out_path.exists() else ""
        if code != 0 or not text.strip():
            err = self.err_path.read_text(errors="replace").strip()[-800:] if self.err_path.exists() else ""
            raise CanarylabError(
                f"bombardier for {self.variant} exited with code {code}: {err or text[:300] or 'no output'}",
                f"the command: {' '.join(self.argv)}",
            )
        with contextlib.suppress(OSError):
            if self.err_path.stat().st_size == 0:
                self.err_path.unlink()  # only kept when bombardier had something to say
        return parse_bombardier(text)


def start_load(group: ProcessGroup, variant: str, argv: list[str], out_path: Path) -> RunningLoad:
    """Start bombardier in its own session (stopped with ``group``), stdout to ``out_path``."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    err_path = out_path.with_suffix(".stderr.txt")
    with out_path.open("wb") as out, err_path.open("wb") as err:
        try:
            popen = subprocess.Popen(
                argv,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only calls prctl
            )
        except FileNotFoundError as e:
            raise CanarylabError(f"bombardier not found: {argv[0]}", "install it: the bombardier role") from e
    proc = ManagedProcess(name=f"bombardier-{variant}", argv=argv, log_path=err_path, popen=popen)
    group.processes.append(proc)
    return RunningLoad(variant, argv, out_path, err_path, proc, time.time())


def bombardier_version(binary: str) -> str:
    """bombardier's module version from the Go build info (its --version says 'unspecified')."""
    go = shutil.which("go")
    if go:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [go, "version", "-m", binary], capture_output=True, text=True, timeout=20, check=False
            )
            for line in out.stdout.splitlines():
                parts = line.split()
                if len(parts) >= 3 and parts[0] == "mod":
                    return f"{parts[1]} {parts[2]}"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=20, check=False)
        return (out.stdout or out.stderr).strip() or "unknown"
    return "unknown"
