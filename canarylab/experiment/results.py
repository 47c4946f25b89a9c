"""The results directory of one run, and reading it back.

results/<UTC timestamp>-<experiment name>/
  spec.yml               the spec as run (after overrides and calibration)
  environment.json       tool versions, thread counts, every knob, ports, processes
  calibration.json       --calibrate only: every step and the rate chosen
  load/                  raw bombardier JSON: rep<N>-<variant>.json, warmup-*, calibration-*
  prometheus/rep<N>.json Prometheus query results of repetition N (window values, series, buckets)
  prometheus/raw.jsonl   every query sent to Prometheus and its raw answer
  events.jsonl           the run's phase events
  summary.json           verdict, reason, per-variant statistics, uncertainty, seed criterion
                         (schema 1: the types of canarylab.experiment.summary)
  report.md              the human report (re-rendered by `canarylab report DIR`)
  plots/*.png            latency over time per variant, comparison, distributions
  target/                local target only: process logs and prometheus.yml
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from canarylab.errors import CanarylabError

SPEC = "spec.yml"
ENVIRONMENT = "environment.json"
CALIBRATION = "calibration.json"
LOAD_DIR = "load"
PROM_DIR = "prometheus"
RAW_QUERIES = "prometheus/raw.jsonl"
EVENTS = "events.jsonl"
SUMMARY = "summary.json"
REPORT = "report.md"
PLOTS_DIR = "plots"
TARGET_DIR = "target"
LATEST = "latest"

#: The keys summary.json always has (docs/experiment.md describes them).
SUMMARY_KEYS = (
    "schema",
    "experiment",
    "target",
    "started_at",
    "finished_at",
    "verdict",
    "reason",
    "variants",
)
VARIANT_KEYS = ("achieved_rps", "errors", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "server")


def utc_stamp(t: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}Z"


def make_run_dir(root: Path, name: str, started: float) -> Path:
    """``root/<UTC timestamp>-<name>``, new (a suffix when two runs start in the same second)."""
    root.mkdir(parents=True, exist_ok=True)
    base = f"{utc_stamp(started)}-{name}"
    for i in range(100):
        candidate = root / (base if i == 0 else f"{base}-{i}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise CanarylabError(f"cannot create a results directory under {root}")


def point_latest(root: Path, run_dir: Path) -> None:
    """``results/latest`` -> the newest run (best effort)."""
    link = root / LATEST
    try:
        tmp = root / f".latest.{os.getpid()}"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(run_dir.name)
        tmp.replace(link)
    except OSError:
        pass


def clean(data: Any) -> Any:
    """JSON-safe copy: NaN/inf become null, tuples lists, paths strings."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, Mapping):
        return {str(k): clean(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [clean(v) for v in data]
    if isinstance(data, Path):
        return str(data)
    return data


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(clean(data), indent=2, sort_keys=False, allow_nan=False) + "\n")
    tmp.replace(path)
    return path


def write_yaml(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(clean(data), sort_keys=False))
    return path


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as err:
        raise CanarylabError(f"cannot read {path}: {err.strerror}") from err
    except json.JSONDecodeError as err:
        raise CanarylabError(f"{path} is not valid JSON: {err}") from err


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except OSError as err:
        raise CanarylabError(f"cannot read {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise CanarylabError(f"{path} is not valid YAML: {err}") from err


def load_file(
    kind: str, variant: str, repetition: int | None = None, step: int | None = None, part: str = ""
) -> str:
    """Relative path of a raw bombardier output (``part``: a calibration step's half, or "reference")."""
    if kind == "rep":
        return f"{LOAD_DIR}/rep{repetition}-{variant}.json"
    if kind == "calibration":
        return f"{LOAD_DIR}/calibration-step{step}{f'-{part}' if part else ''}-{variant}.json"
    return f"{LOAD_DIR}/{kind}-{variant}.json"


def find_run_dir(path: Path) -> Path:
    """``path`` itself if it holds a summary.json, else ``path/latest``."""
    if (path / SUMMARY).is_file():
        return path
    if (path / LATEST / SUMMARY).is_file():
        return (path / LATEST).resolve()
    raise CanarylabError(
        f"{path} is not a results directory (no {SUMMARY})",
        "pass a directory like results/20260101T120000Z-threads-4-vs-16",
    )
