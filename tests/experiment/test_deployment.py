"""An experiment file's variants on the lab: chart values (deployment.py), the lab target's
warnings when the variants that ran are not the file's, and the per-pod figures."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from canarylab import queries as q
from canarylab.errors import CanarylabError
from canarylab.experiment.analysis import load_regime, pod_figures, pod_warnings
from canarylab.experiment.collect import RepetitionCollection
from canarylab.experiment.deployment import chart_defaults, deployment, lab_warnings, main, mismatches
from canarylab.experiment.report import render_markdown
from canarylab.experiment.spec import (
    ExperimentSpec,
    LoadSpec,
    SpecError,
    VariantSpec,
    load_spec,
    spec_from_dict,
)
from canarylab.experiment.summary import LoadRegime, Summary
from canarylab.experiment.targets.base import TargetRequest
from canarylab.experiment.targets.lab import LabTarget
from canarylab.experiment.targets.local import create as create_local

ROOT = Path(__file__).resolve().parents[2]
REPLICAS = ROOT / "experiments" / "replicas-1-vs-3.yml"
FIXTURE = ROOT / "tests" / "fixtures" / "experiment" / "run-must-pass"


def two(stable: VariantSpec, canary: VariantSpec) -> ExperimentSpec:
    return ExperimentSpec(name="d", hypothesis="h", variants=(stable, canary), load=LoadSpec(rate=10))


def test_the_replicas_file_deploys_one_pod_against_three_and_its_service_time() -> None:
    found = deployment(load_spec(REPLICAS), chart_defaults(ROOT))
    stable, canary = (found.values["variants"][v]["modelService"] for v in ("stable", "canary"))
    assert (stable["replicas"], canary["replicas"]) == (1, 3)
    assert stable["threads"] == canary["threads"] == 4
    for ms in (stable, canary):
        assert ms["simulatedLatencyMs"] == 200
        assert ms["emulationDistribution"] == "exponential"
        # left out by the file: the chart's default, so a knob an earlier file set does not linger
        assert ms["cpuCostMs"] == 0
        assert ms["processes"] == 1
    assert found.not_applied == {}


def test_env_the_chart_has_no_value_for_is_named_and_a_bad_value_stops() -> None:
    odd = VariantSpec("stable", 4, env={"MODEL_SERVICE_LOG_LEVEL": "debug"}, app_env={"APP_THREADS": "8"})
    found = deployment(two(odd, VariantSpec("canary", 16)), chart_defaults(ROOT))
    assert found.not_applied == {"stable": ["MODEL_SERVICE_LOG_LEVEL"]}
    assert found.values["variants"]["stable"]["app"]["threads"] == 8
    half = VariantSpec("stable", 4, env={"MODEL_SERVICE_SIMULATED_LATENCY_MS": "2.5"})
    with pytest.raises(CanarylabError, match=r"MODEL_SERVICE_SIMULATED_LATENCY_MS='2.5' cannot be a chart"):
        deployment(two(half, VariantSpec("canary", 16)), chart_defaults(ROOT))


def test_the_command_prints_the_values_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(REPLICAS)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["values"]["variants"]["canary"]["modelService"]["replicas"] == 3
    assert main([str(ROOT / "no-such-file.yml")]) == 2
    assert "cannot read experiment spec" in capsys.readouterr().err


def test_a_lab_run_warns_when_its_variants_are_not_the_files() -> None:
    spec = load_spec(REPLICAS)
    defaults = chart_defaults(ROOT)
    deployed = deployment(spec, defaults).values["variants"]
    assert lab_warnings(spec, deployed, defaults) == []
    assert mismatches(spec, deployed, defaults) == []
    fewer = json.loads(json.dumps(deployed))
    fewer["canary"]["modelService"]["replicas"] = 1
    assert lab_warnings(spec, fewer, defaults) == [
        "deployed variant canary.modelService.replicas: the file says 3, the lab runs 1"
    ]
    # run without experiment.yml: nothing says what the lab runs
    (direct,) = lab_warnings(spec, None, defaults)
    assert "were not applied: run it through experiment.yml" in direct
    target = LabTarget.from_dict(
        {
            "prometheus_url": "http://127.0.0.1:9",
            "deployed": fewer,
            "variants": {v: {"url": "http://127.0.0.1:9/api"} for v in ("stable", "canary")},
        }
    )
    assert target.deployment_warnings(spec) == lab_warnings(spec, fewer, defaults)
    assert target.to_dict()["deployed"] == fewer
    with pytest.raises(CanarylabError, match="deployed: must map each variant"):
        LabTarget.from_dict({**target.to_dict(), "deployed": ["stable"]})


def test_replicas_are_a_positive_number_and_the_local_target_refuses_more_than_one(tmp_path: Path) -> None:
    spec = load_spec(REPLICAS)
    assert [v.replicas for v in spec.variants] == [1, 3]
    data = {
        "name": "r",
        "hypothesis": "h",
        "variants": [{"name": "stable", "threads": 4, "replicas": 0}, {"name": "canary", "threads": 4}],
    }
    with pytest.raises(SpecError, match=r"variants\[0\] \(stable\)\.replicas"):
        spec_from_dict(data)
    with pytest.raises(CanarylabError, match=r"only the lab target runs: canary \(3\)") as err:
        create_local(TargetRequest(spec=spec, workdir=tmp_path))
    assert "MODEL_SERVICE_PROCESSES" in str(err.value)


def pod_reps() -> list[RepetitionCollection]:
    """Two repetitions: canary's 3 pods, one of which answered nothing in the second."""
    out = []
    for rep, third in ((1, 30.0), (2, 0.0)):
        r = RepetitionCollection(rep, 0.0, 10.0, "10s")
        r.pods = {
            q.POD_REQUESTS.key: {
                "stable": {"ms-stable-a": 170.0},
                "canary": {"ms-canary-a": 70.0, "ms-canary-b": 70.0, "ms-canary-c": third},
            },
            q.POD_PROCESSING_P95.key: {
                "stable": {"ms-stable-a": 0.6},
                "canary": {"ms-canary-a": 0.2 * rep, "ms-canary-b": 0.3, "ms-canary-c": float("nan")},
            },
            q.POD_CPU_PER_REQUEST.key: {"stable": {"ms-stable-a": 0.004}},
        }
        out.append(r)
    return out


def test_per_pod_figures_give_each_replicas_share_and_say_when_one_served_nothing() -> None:
    spec = load_spec(REPLICAS)
    pods = {(p.variant, p.pod): p for p in pod_figures(spec, pod_reps())}
    assert pods["stable", "ms-stable-a"].requests == 340
    assert pods["stable", "ms-stable-a"].share == 1.0
    assert pods["stable", "ms-stable-a"].processing_p95_ms == pytest.approx(600.0)
    assert pods["stable", "ms-stable-a"].cpu_ms_per_request == pytest.approx(4.0)
    assert pods["canary", "ms-canary-a"].share == pytest.approx(140 / 310)
    assert pods["canary", "ms-canary-a"].processing_p95_ms == pytest.approx(300.0)  # median of 200, 400
    assert pods["canary", "ms-canary-c"].processing_p95_ms is None  # no finite value
    assert pod_warnings(spec, list(pods.values())) == []
    idle = pod_reps()[1:]
    assert pod_warnings(spec, pod_figures(spec, idle)) == [
        "canary: 2 of its 3 model-service pods answered requests; the load did not reach every replica "
        "(check the pods: kubectl -n canarylab get pods)"
    ]
    # results from before per-pod figures: no claim
    assert pod_warnings(spec, pod_figures(spec, [RepetitionCollection(1, 0.0, 1.0, "1s")])) == []


def test_the_report_shows_each_pod_and_counts_every_pods_threads() -> None:
    spec = load_spec(REPLICAS)
    reps = pod_reps()
    for r in reps:
        r.series = {
            q.IN_FLIGHT.key: {"stable": [(1.0, 3.0)], "canary": [(1.0, 3.0)]},
            q.QUEUE_DEPTH.key: {"stable": [(1.0, 2.0)], "canary": [(1.0, 0.0)]},
        }
    regime = load_regime(spec, reps)
    assert regime.variants["canary"].replicas == 3
    assert regime.variants["canary"].capacity == 12
    assert regime.variants["canary"].utilisation == pytest.approx(3 / 12)
    assert "its 4 threads 75% busy" in regime.statement
    summary = Summary.from_dict(json.loads((FIXTURE / "summary.json").read_text()))
    text = render_markdown(dataclasses.replace(summary, load_regime=regime))
    assert "| canary | 3 × 1 × 4 | 3.00 | 25% |" in text
    assert "### Per pod" in text
    assert "| canary | ms-canary-a | 140 | 45% | 300.0 | – |" in text
    assert "| stable | ms-stable-a | 340 | 100% | 600.0 | 4.0 |" in text
    assert LoadRegime.from_dict(json.loads(json.dumps(regime.to_dict()))) == regime
    again = RepetitionCollection.from_dict(json.loads(json.dumps(reps[0].to_dict())))
    assert again.pods[q.POD_REQUESTS.key] == reps[0].pods[q.POD_REQUESTS.key]
