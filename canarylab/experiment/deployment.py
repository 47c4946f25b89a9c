"""An experiment file's variants as the chart's values: what the lab deploys before a run.

The local target starts each variant from the file itself.  The lab runs what the
chart deployed, so ``experiment.yml`` upgrades the release with these values first
(``roles/canarylab_app/tasks/variants.yml``, ``helm upgrade --reuse-values``) and the
preflight records them in the target file; the engine compares them with its own file
(:func:`mismatches`), so a lab run says when it ran something else.

Every setting the file governs is given, the chart's defaults (``values.yaml``)
filling what the file leaves out: with ``--reuse-values`` a knob an earlier file set
would otherwise stay on.  Environment the chart has no value for is returned as not
applied, and the report says so.

    python -m canarylab.experiment.deployment experiments/replicas-1-vs-3.yml

prints ``{"values": {...}, "not_applied": {...}}`` as JSON.
"""

from __future__ import annotations

import copy
import json
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from canarylab.errors import CanarylabError
from canarylab.experiment.spec import ExperimentSpec, VariantSpec, load_spec
from canarylab.paths import project_root


def _int(text: str) -> int:
    number = float(text)
    if not number.is_integer():
        raise ValueError(f"the chart takes whole numbers here, got {text!r}")
    return int(number)


def _float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"must be a finite number, got {text!r}")
    return number


@dataclass(frozen=True)
class ChartKnob:
    """An environment variable the chart sets from a value of its own (templates/deployment.yaml)."""

    env: str
    #: the value's path under ``variants.<name>``
    path: tuple[str, ...]
    parse: Callable[[str], object]


#: The model-service's environment the chart takes as values (charts/canarylab/values.yaml).
MODEL_SERVICE_KNOBS: tuple[ChartKnob, ...] = (
    ChartKnob("MODEL_SERVICE_PROCESSES", ("modelService", "processes"), _int),
    ChartKnob("MODEL_SERVICE_SIMULATED_LATENCY_MS", ("modelService", "simulatedLatencyMs"), _int),
    ChartKnob("MODEL_SERVICE_CPU_COST_MS", ("modelService", "cpuCostMs"), _float),
    ChartKnob("MODEL_SERVICE_EMULATION_DISTRIBUTION", ("modelService", "emulationDistribution"), str),
)
#: The app's environment the chart takes as values.
APP_KNOBS: tuple[ChartKnob, ...] = (ChartKnob("APP_THREADS", ("app", "threads"), _int),)


@dataclass(frozen=True)
class Deployment:
    """The chart values of a file's variants, and the environment the chart cannot take."""

    values: dict[str, Any]
    #: variant -> env names (model-service and app) the chart has no value for
    not_applied: dict[str, list[str]]

    def to_dict(self) -> dict[str, Any]:
        return {"values": self.values, "not_applied": self.not_applied}


def chart_defaults(root: Path | None = None) -> dict[str, Any]:
    """The chart's ``values.yaml``."""
    path = (root or project_root()) / "charts" / "canarylab" / "values.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise CanarylabError(f"cannot read the chart's values {path}: {err.strerror}") from err
    if not isinstance(data, dict) or not isinstance(data.get("variants"), dict):
        raise CanarylabError(f"{path}: has no variants mapping")
    return data


def _put(tree: dict[str, Any], path: tuple[str, ...], value: object) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _variant(v: VariantSpec, defaults: Mapping[str, Any], where: str) -> tuple[dict[str, Any], list[str]]:
    values = copy.deepcopy(dict(defaults))
    _put(values, ("modelService", "replicas"), v.replicas)
    _put(values, ("modelService", "threads"), v.threads)
    skipped: list[str] = []
    for env, knobs in ((v.env, MODEL_SERVICE_KNOBS), (v.app_env, APP_KNOBS)):
        by_name = {k.env: k for k in knobs}
        for name, text in env.items():
            knob = by_name.get(name)
            if knob is None:
                skipped.append(name)
                continue
            try:
                _put(values, knob.path, knob.parse(text))
            except ValueError as err:
                raise CanarylabError(
                    f"{where}: {name}={text!r} cannot be a chart value: {err}",
                    "fix the experiment file (charts/canarylab/values.schema.json gives each value's type)",
                ) from err
    return values, sorted(skipped)


def deployment(spec: ExperimentSpec, defaults: Mapping[str, Any]) -> Deployment:
    """The chart values that deploy ``spec``'s variants (``defaults``: the chart's values.yaml)."""
    variants: dict[str, Any] = {}
    not_applied: dict[str, list[str]] = {}
    for v in spec.variants:
        base = defaults["variants"].get(v.name)
        if not isinstance(base, Mapping):
            raise CanarylabError(f"the chart's values have no variant {v.name!r}")
        variants[v.name], skipped = _variant(v, base, f"{spec.name}: variant {v.name}")
        if skipped:
            not_applied[v.name] = skipped
    return Deployment(values={"variants": variants}, not_applied=not_applied)


def mismatches(spec: ExperimentSpec, deployed: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[str]:
    """Where the ``variants`` values a lab was deployed with differ from ``spec``'s, one line each."""
    wanted = deployment(spec, defaults).values["variants"]
    out: list[str] = []

    def walk(want: object, have: object, path: str) -> None:
        if isinstance(want, Mapping):
            have_map = have if isinstance(have, Mapping) else {}
            for key in want:
                walk(want[key], have_map.get(key), f"{path}.{key}")
        elif want != have:
            out.append(f"{path[1:]}: the file says {want!r}, the lab runs {have!r}")

    walk(wanted, deployed, "")
    return out


def lab_warnings(
    spec: ExperimentSpec, deployed: Mapping[str, Any] | None, defaults: Mapping[str, Any]
) -> list[str]:
    """What a lab run should warn of: the file's variants not deployed as it says.

    ``deployed`` is the target file's record of the values experiment.yml deployed
    (None: the target file has none, the engine was run against a lab directly).
    """
    if deployed is None:
        return [
            "the lab runs the variants as they were deployed; this file's variants (threads, replicas, "
            "env) were not applied: run it through experiment.yml, which deploys them first"
        ]
    found = deployment(spec, defaults)
    return [f"deployed variant {m}" for m in mismatches(spec, deployed, defaults)] + [
        f"{name}: the chart has no value for {', '.join(envs)}, so the lab did not apply it"
        for name, envs in sorted(found.not_applied.items())
    ]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m canarylab.experiment.deployment EXPERIMENT_FILE", file=sys.stderr)
        return 2
    try:
        found = deployment(load_spec(Path(args[0])), chart_defaults())
    except CanarylabError as err:
        print(f"canarylab experiment: {err}", file=sys.stderr)
        return 2
    print(json.dumps(found.to_dict(), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
