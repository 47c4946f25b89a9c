"""The target registry: the kinds, their factories, and the engine run against a stand-in kind.

The stand-in kind is registered only for its test (the engine's ``factories``):
no servers, a fake bombardier that prints a saved bombardier answer, and a fake
Prometheus on 127.0.0.1 that knows no series.  The run must go through every
phase and call every Protocol method the engine needs.
"""

from __future__ import annotations

import json
import stat
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
import yaml

from canarylab.errors import CanarylabError
from canarylab.experiment import VERDICT_EXIT_CODES, engine
from canarylab.experiment import results as res
from canarylab.experiment.__main__ import main as engine_main
from canarylab.experiment.spec import ExperimentSpec, load_spec
from canarylab.experiment.summary import Summary
from canarylab.experiment.targets import TARGETS, Endpoint, ScrapeCheck, TargetRequest, registry
from canarylab.experiment.targets.lab import LabTarget, wait_for_prometheus
from canarylab.experiment.targets.local import LocalTarget
from canarylab.procs import free_port

ROOT = Path(__file__).resolve().parents[2]
SEED_SPEC = ROOT / "experiments" / "threads-4-vs-16.yml"
SAVED_LOAD = ROOT / "tests" / "fixtures" / "experiment" / "run-must-pass" / "load" / "rep1-stable.json"


def test_every_kind_has_a_factory_and_nothing_else() -> None:
    assert TARGETS == ("local", "lab")
    assert tuple(registry.FACTORIES) == TARGETS


def test_an_unknown_kind_names_the_known_ones(tmp_path: Path) -> None:
    request = TargetRequest(spec=load_spec(SEED_SPEC), workdir=tmp_path)
    with pytest.raises(CanarylabError, match="unknown target kind 'nowhere'") as err:
        registry.create("nowhere", request)
    assert "local, lab" in str(err.value)


def test_the_factories_build_their_kind_without_starting_anything(tmp_path: Path) -> None:
    spec = load_spec(SEED_SPEC)
    local = registry.create("local", TargetRequest(spec=spec, workdir=tmp_path / "t", scrape_interval="2s"))
    assert isinstance(local, LocalTarget)
    assert local.scrape_seconds() == 2.0
    assert local.pids() == {}
    assert not (tmp_path / "t").exists()  # nothing started, nothing written
    with pytest.raises(CanarylabError, match="needs a target file"):
        registry.create("lab", TargetRequest(spec=spec, workdir=tmp_path))
    lab_file = tmp_path / "lab-target.yml"
    lab_file.write_text(
        "prometheus_url: http://127.0.0.1:9\nscrape_interval: 7s\nvariants:\n"
        "  stable: {url: 'http://127.0.0.1:9/api/sentiment'}\n"
        "  canary: {url: 'http://127.0.0.1:9/api/sentiment'}\n"
    )
    lab = registry.create("lab", TargetRequest(spec=spec, workdir=tmp_path, target_file=lab_file))
    assert isinstance(lab, LabTarget)
    assert (lab.scrape_seconds(), lab.pids(), lab.scrape_check().timeout) == (7.0, {}, 65.0)


class _EmptyPrometheus(BaseHTTPRequestHandler):
    """Ready, and every query answers "no series"."""

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/-/ready":
            body: dict[str, Any] | str = "Prometheus Server is Ready."
        elif path == "/api/v1/query":
            body = {"status": "success", "data": {"resultType": "vector", "result": []}}
        elif path == "/api/v1/query_range":
            body = {"status": "success", "data": {"resultType": "matrix", "result": []}}
        else:
            self.send_error(404)
            return
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def empty_prometheus() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmptyPrometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class StandInTarget:
    """A target kind of the test's own: it only records what the engine asked of it."""

    kind = "stand-in"
    grafana_url = None

    def __init__(self, prometheus_url: str, variants: Mapping[str, str]) -> None:
        self.prometheus_url = prometheus_url
        self.selector = 'job="stand-in"'
        self.ports = {"prometheus": int(prometheus_url.rsplit(":", 1)[1])}
        self.endpoints = {v: Endpoint(v, url, {"x-canarylab-variant": v}) for v, url in variants.items()}
        self.calls: list[str] = []

    def __enter__(self) -> StandInTarget:
        self.calls.append("enter")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.calls.append("exit")

    def scrape_seconds(self) -> float:
        self.calls.append("scrape_seconds")
        return 1.0

    def scrape_check(self) -> ScrapeCheck:
        self.calls.append("scrape_check")
        return ScrapeCheck(self.selector, 0.2)

    def wait_scraping(self) -> None:
        self.calls.append("wait_scraping")

    def pids(self) -> dict[str, int]:
        self.calls.append("pids")
        return {}

    def problems(self) -> dict[str, list[str]]:
        self.calls.append("problems")
        return {v: [] for v in self.endpoints}

    def deployment_warnings(self, spec: ExperimentSpec) -> list[str]:
        self.calls.append("deployment_warnings")
        return ["stand-in: ran something else"]

    def describe(self) -> dict[str, Any]:
        self.calls.append("describe")
        return {"kind": self.kind, "prometheus_url": self.prometheus_url}

    def clean_up(self) -> None:
        self.calls.append("clean_up")


def _fake_bombardier(path: Path) -> Path:
    """Prints a saved bombardier answer, whatever it is asked to do."""
    path.write_text(f"#!{sys.executable}\nimport sys\nsys.stdout.write(open({str(SAVED_LOAD)!r}).read())\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_the_engine_runs_against_a_registered_stand_in_kind(tmp_path: Path, empty_prometheus: str) -> None:
    made: list[StandInTarget] = []

    def stand_in(request: TargetRequest) -> StandInTarget:
        urls = {v.name: "http://127.0.0.1:9/" for v in request.spec.variants}
        target = StandInTarget(empty_prometheus, urls)
        made.append(target)
        return target

    spec = load_spec(SEED_SPEC).with_overrides(duration=1, warmup=0, rate=5, repetitions=1)
    opts = engine.EngineOptions(
        results_root=tmp_path / "results",
        target="stand-in",
        factories={**registry.FACTORIES, "stand-in": stand_in},
        bombardier=str(_fake_bombardier(tmp_path / "bombardier")),
    )
    outcome = engine.run_experiment(spec, opts)

    (target,) = made
    assert target.calls[0] == "enter"
    assert {"pids", "wait_scraping", "scrape_check", "scrape_seconds", "problems", "describe"} <= set(
        target.calls
    )
    assert target.calls[-2:] == ["exit", "clean_up"]  # cleaned up once stopped
    summary = outcome.summary.to_dict()
    assert summary["target"] == "stand-in"
    # the fake Prometheus has no series: a measurement without server-side data is INVALID
    assert summary["verdict"] == "INVALID", summary["reason"]
    assert outcome.exit_code == 4
    environment = json.loads((outcome.run_dir / res.ENVIRONMENT).read_text())
    assert environment["target"] == {"kind": "stand-in", "prometheus_url": empty_prometheus}
    # what the target says of its variants against the file is recorded and reported
    assert environment["deployment_warnings"] == ["stand-in: ran something else"]
    assert "stand-in: ran something else" in summary["validity"]["warnings"]
    assert (outcome.run_dir / res.SUMMARY).exists()
    # the summary the engine wrote is schema 1 and round-trips through the types
    written = json.loads((outcome.run_dir / res.SUMMARY).read_text())
    assert written["schema"] == 1
    assert Summary.from_dict(written) == outcome.summary
    assert Summary.from_dict(written).to_dict() == written


# --- the lab's Prometheus, unreachable (issue 15) ------------------------------------------------


def _lab_file(path: Path, prometheus_url: str, wait: str) -> Path:
    path.write_text(
        f"prometheus_url: {prometheus_url}\nprometheus_wait: {wait}\nvariants:\n"
        "  stable: {url: 'http://127.0.0.1:9/api/sentiment'}\n"
        "  canary: {url: 'http://127.0.0.1:9/api/sentiment'}\n"
    )
    return path


def test_an_unreachable_prometheus_is_retried_then_named_with_what_to_do(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # closed: nobody listens there
    target = LabTarget.from_file(_lab_file(tmp_path / "lab-target.yml", url, "1s"))
    began = time.monotonic()
    with pytest.raises(CanarylabError) as err, target:
        pass
    took = time.monotonic() - began
    assert 1.0 <= took < 5.0, took  # it retried for the bounded time, then gave up
    text = str(err.value)
    assert f"Prometheus at {url} is not reachable after 1s" in text
    assert "Connection refused" in text  # the cause, not just an exception's name
    assert "monitoring stack is not installed or not ready" in text
    assert "playbooks/mesh.yml" in text
    assert "kubectl -n monitoring get pods" in text


def test_a_prometheus_that_comes_up_during_the_retries_is_used(tmp_path: Path) -> None:
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), _EmptyPrometheus, bind_and_activate=False)
    server.allow_reuse_address = True

    def come_up() -> None:
        server.server_bind()
        server.server_activate()
        server.serve_forever()

    threading.Timer(0.5, come_up).start()
    try:
        began = time.monotonic()
        wait_for_prometheus(f"http://127.0.0.1:{port}", timeout=10.0, poll=0.1)
        assert 0.4 <= time.monotonic() - began < 5.0
    finally:
        server.shutdown()
        server.server_close()


def test_the_engine_exits_2_with_the_message_when_the_labs_prometheus_is_unreachable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An error, not INVALID: nothing was measured.  experiment.yml fails with this message."""
    url = f"http://127.0.0.1:{free_port()}"
    target_file = _lab_file(tmp_path / "lab-target.yml", url, "0.5s")
    results = tmp_path / "results"
    code = engine_main(
        [str(SEED_SPEC), "--target", "lab", "--target-file", str(target_file), "--results-dir", str(results),
         "--bombardier", str(_fake_bombardier(tmp_path / "bombardier")), "--duration", "1s", "--warmup", "0s"]
    )  # fmt: skip
    assert code == 2
    stderr = capsys.readouterr().err
    assert f"canarylab experiment: error: Prometheus at {url} is not reachable" in stderr
    assert "kubectl -n monitoring get pods" in stderr
    (run_dir,) = [p for p in results.iterdir() if p.is_dir() and not p.is_symlink()]
    assert "not reachable" in (run_dir / "ERROR").read_text()
    assert not (run_dir / res.SUMMARY).exists()  # no verdict: nothing was measured


def test_experiment_yml_stops_with_the_engines_message_when_there_is_no_verdict() -> None:
    plays = yaml.safe_load((ROOT / "experiment.yml").read_text())
    tasks = {t["name"]: t for play in plays for t in play.get("tasks", [])}
    engine_task = next(t for name, t in tasks.items() if name.startswith("Run the experiment engine"))
    stop = tasks["Stop when the engine reached no verdict"]
    assert engine_task["failed_when"] is False
    assert stop["when"] == "canarylab_engine.rc not in [0, 1, 3, 4]"
    assert sorted(VERDICT_EXIT_CODES.values()) == [0, 1, 3, 4]
    assert "canarylab experiment: " in stop["ansible.builtin.fail"]["msg"]


def test_the_local_target_gives_every_variant_one_cpu_calibration(tmp_path: Path) -> None:
    """Calibrated at each start, side by side, "40 ms" was up to twice the work in one variant;
    measured once before the start, it is the same number of iterations in both."""
    from canarylab.experiment.targets import local  # noqa: PLC0415
    from model_service import settings  # noqa: PLC0415 - the model-service's own names

    assert (local.CPU_COST, local.CPU_CALIBRATION) == (
        settings.ENV_CPU_COST_MS,
        settings.ENV_CPU_ITERATIONS_PER_MS,
    )
    knob = {local.CPU_COST: "50"}
    target = LocalTarget(
        {
            "stable": local.VariantConfig("stable", 4, dict(knob)),
            "canary": local.VariantConfig("canary", 16, dict(knob)),
        },
        tmp_path,
    )
    target._pin_cpu_calibration()
    given = {v.env[local.CPU_CALIBRATION] for v in target.variants.values()}
    assert len(given) == 1
    assert float(given.pop()) > 0
    assert target.variants["canary"].env[local.CPU_COST] == "50"
    # no CPU knob, or a calibration the experiment file gives: nothing is measured or changed
    off = LocalTarget({v: local.VariantConfig(v, 4) for v in ("stable", "canary")}, tmp_path)
    off._pin_cpu_calibration()
    assert all(local.CPU_CALIBRATION not in v.env for v in off.variants.values())
    fixed = {local.CPU_COST: "50", local.CPU_CALIBRATION: "1234"}
    pinned = LocalTarget({v: local.VariantConfig(v, 4, dict(fixed)) for v in ("stable", "canary")}, tmp_path)
    pinned._pin_cpu_calibration()
    assert {v.env[local.CPU_CALIBRATION] for v in pinned.variants.values()} == {"1234"}
