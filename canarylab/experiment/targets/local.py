"""The local target: both variants, their apps and a Prometheus, on loopback, without root.

``LocalTarget`` is a context manager.  Entering it starts, all at once:

- a model-service per variant (``model-service serve``; threads, variant,
  simulated latency and any other environment of the spec), on the contract's
  ``LOCAL_PORTS`` when free, else on free ports - two each: the API port and
  the metrics port (``MODEL_SERVICE_METRICS_PORT``, a listener outside the
  request pool, so that a saturated variant is still scraped on time);
- an app per variant in front of it (``sentiment-app``: APP_VARIANT,
  APP_MODEL_SERVICE_URL);
- a Prometheus scraping all four every ``scrape_interval`` (the model-services
  on their metrics ports; config and TSDB in ``workdir``), loading
  ``rules_file`` when it exists and ``promtool`` accepts it;

then waits until every one is ready (model-service and app ``/readyz``,
Prometheus ``/-/ready`` and its four targets up).  Leaving it - normally, on an
exception, on Ctrl-C or on SIGTERM - stops every process it started
(:class:`canarylab.procs.ProcessGroup`; the children also die with the engine).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import requests

import canarylab_contract as c
from canarylab.errors import CanarylabError
from canarylab.experiment.prometheus import (
    PrometheusClient,
    ScrapeTarget,
    find_prometheus,
    prometheus_version,
    render_config,
    rules_file_ok,
    start_prometheus,
)
from canarylab.experiment.spec import ExperimentSpec, parse_duration
from canarylab.experiment.targets.base import Endpoint, ScrapeCheck, TargetKind, TargetRequest
from canarylab.procs import ManagedProcess, ProcessGroup, console_script, free_port, wait_http_ok

#: Default APP_THREADS of the local target: enough that requests queue in the
#: model-service (the thing under test), not in the app in front of it.
LOCAL_APP_THREADS = 64
#: The model-service's CPU knob and its calibration (model_service.settings; a test holds them equal).
CPU_COST = "MODEL_SERVICE_CPU_COST_MS"
CPU_CALIBRATION = "MODEL_SERVICE_CPU_ITERATIONS_PER_MS"
READY_TIMEOUT = 90.0
_PORT_TRIES = 3


def _cpu_knob_on(env: Mapping[str, str]) -> bool:
    try:
        return float(env.get(CPU_COST, "0") or 0) > 0
    except ValueError:
        return False  # the model-service reports the bad value itself, at its start


@dataclass(frozen=True)
class VariantConfig:
    name: str
    threads: int
    #: extra model-service environment (e.g. MODEL_SERVICE_SIMULATED_LATENCY_MS)
    env: dict[str, str] = field(default_factory=dict)
    #: extra app environment (e.g. APP_THREADS)
    app_env: dict[str, str] = field(default_factory=dict)


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # like the servers: TIME_WAIT is fine
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def owns_port(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` is the one listening on ``port`` (Linux /proc); None when unknown.

    A port that looked free can be taken by someone else a moment later; then
    *their* server answers our readiness probe while ours exits "port in use".
    """
    if not Path("/proc/net/tcp").exists():
        return None
    inodes = _listening_inodes(port)
    if not inodes:
        return False
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    for fd in fds:
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return True
    return False


def metrics_key(variant: str) -> str:
    """Key in ``LocalTarget.ports`` of a variant's model-service metrics port."""
    return f"model-service-metrics-{variant}"


def pick_port(preferred: int, taken: set[int]) -> int:
    """``preferred`` when nobody holds it, else a free port; never one in ``taken``."""
    port = preferred
    if port in taken or not _bindable(port):
        port = free_port()
        while port in taken:
            port = free_port()
    taken.add(port)
    return port


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def ensure_model(cache_root: Path) -> Path:
    """A trained model for the local target, trained once per model-service/scikit-learn version."""
    key = f"model-service-{_dist_version('canarylab-model-service')}-sklearn-{_dist_version('scikit-learn')}"
    out = cache_root / key
    if (out / "model.json").exists():
        return out
    cache_root.mkdir(parents=True, exist_ok=True)
    with (cache_root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "model.json").exists():
            tmp = cache_root / f".{key}.{os.getpid()}"
            _model_service("training the model", ["train", "--out", str(tmp)], timeout=600)
            tmp.rename(out)
    return out


def _model_service(doing: str, args: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    """``model-service ARGS``, its output captured; a failure raises with the tail of its stderr."""
    run = subprocess.run(
        [console_script("model-service"), *args], capture_output=True, text=True, check=False, timeout=timeout
    )
    if run.returncode != 0:
        raise CanarylabError(f"{doing} failed:\n{run.stderr.strip()[-1500:]}")
    return run


class LocalTarget:
    """Two variants + their apps + Prometheus on 127.0.0.1; see the module docstring."""

    kind: Final[TargetKind] = "local"
    #: no Grafana on the local target (annotations off unless CANARYLAB_GRAFANA_URL is set)
    grafana_url: Final[str | None] = None

    def __init__(
        self,
        variants: Mapping[str, VariantConfig],
        workdir: Path,
        *,
        scrape_interval: str = "1s",
        prometheus_bin: str | None = None,
        rules_file: Path | None = None,
        model_dir: Path | None = None,
        model_cache: Path | None = None,
        ready_timeout: float = READY_TIMEOUT,
        on_status: Callable[[str], None] | None = None,
        wait_for_scrapes: bool = True,
    ) -> None:
        missing = [v for v in c.VARIANTS if v not in variants]
        if missing:
            raise CanarylabError(f"the local target needs the variants {', '.join(missing)}")
        self.variants = dict(variants)
        self.workdir = workdir
        self.scrape_interval = scrape_interval
        self.prometheus_bin = prometheus_bin
        self.rules_file = rules_file
        self.model_dir = model_dir
        self.model_cache = model_cache
        self.ready_timeout = ready_timeout
        self.wait_for_scrapes = wait_for_scrapes
        self._scraping = False
        self._status = on_status or (lambda _msg: None)
        self.group = ProcessGroup()
        self.ports: dict[str, int] = {}
        self.processes: dict[str, ManagedProcess] = {}
        self._pids: dict[str, int] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.prometheus_url = ""
        self.selector = ""
        self.rules: dict[str, Any] = {"file": str(rules_file) if rules_file else None, "loaded": False}
        self.versions: dict[str, str] = {}
        self._env_used: dict[str, dict[str, str]] = {}
        self._argv: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._versions_thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------

    def __enter__(self) -> LocalTarget:
        self.group.__enter__()
        try:
            self._start_all()
        except BaseException:
            self.group.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.group.__exit__(exc_type, exc, tb)

    def stop(self) -> None:
        """Stop every process: the group's stop (SIGTERM to all at once, one shared deadline,
        then SIGKILL; a second Ctrl-C or SIGTERM meanwhile does not interrupt it)."""
        self.group.__exit__(None, None, None)

    @contextlib.contextmanager
    def running(self) -> Iterator[LocalTarget]:
        with self:
            yield self

    # --- start-up ------------------------------------------------------------------

    def _start(self, name: str, argv: list[str], env: dict[str, str], port_key: str) -> ManagedProcess:
        log = self.workdir / "logs" / f"{name}.log"
        proc = self.group.start(name, argv, log, env=env)
        with self._lock:
            self.processes[name] = proc
            self._pids[name] = proc.pid
            self._env_used[name] = env
            self._argv[name] = argv
        return proc

    def _model_service_env(
        self, v: VariantConfig, port: int, metrics_port: int, model_dir: Path
    ) -> dict[str, str]:
        return {
            "MODEL_SERVICE_MODEL_DIR": str(model_dir),
            "MODEL_SERVICE_HOST": "127.0.0.1",
            **v.env,
            "MODEL_SERVICE_THREADS": str(v.threads),
            "MODEL_SERVICE_VARIANT": v.name,
            "MODEL_SERVICE_PORT": str(port),
            "MODEL_SERVICE_METRICS_PORT": str(metrics_port),
        }

    def _app_env(self, v: VariantConfig, port: int, ms_port: int) -> dict[str, str]:
        return {
            "APP_THREADS": str(LOCAL_APP_THREADS),
            "APP_HOST": "127.0.0.1",
            **v.app_env,
            "APP_VARIANT": v.name,
            "APP_MODEL_SERVICE_URL": f"http://127.0.0.1:{ms_port}",
            "APP_PORT": str(port),
        }

    def _launch(self, name: str, model_dir: Path) -> ManagedProcess:
        """Start one process of the target on its current port (from the main thread: the
        children's PDEATHSIG is tied to the thread that starts them)."""
        if name.startswith("model-service-"):
            v = self.variants[name.removeprefix("model-service-")]
            env = self._model_service_env(v, self.ports[name], self.ports[metrics_key(v.name)], model_dir)
            return self._start(name, [console_script("model-service"), "serve"], env, name)
        v = self.variants[name.removeprefix("app-")]
        env = self._app_env(v, self.ports[name], self.ports[f"model-service-{v.name}"])
        return self._start(name, [console_script("sentiment-app")], env, name)

    def _await(self, name: str, path: str) -> None:
        """Wait until ``name`` answers ``path`` on its port and it is really *our* process listening."""
        proc, port = self.processes[name], self.ports[name]

        def ours(resp: requests.Response) -> bool:
            return resp.ok and owns_port(proc.pid, port) is not False

        wait_http_ok(f"http://127.0.0.1:{port}{path}", self.ready_timeout, proc, accept=ours)

    def _port_lost(self, name: str) -> bool:
        """``name`` exited because its port was taken meanwhile."""
        proc = self.processes[name]
        if proc.running():
            return False
        with contextlib.suppress(Exception):
            proc.popen.wait(1)
        return "in use" in proc.log_tail(40).lower()

    def _wait_ready(self, name: str, model_dir: Path, taken: set[int]) -> None:
        """Wait for ``name``'s /readyz; when it died because its port was taken, move it to a free one."""
        for attempt in range(_PORT_TRIES):
            try:
                self._await(name, c.READY_PATH)
                return
            except CanarylabError:
                if attempt + 1 < _PORT_TRIES and self._port_lost(name):
                    self.ports[name] = pick_port(free_port(), taken)
                    moved = str(self.ports[name])
                    if name.startswith("model-service-"):  # the API or the metrics port: move both
                        mkey = metrics_key(name.removeprefix("model-service-"))
                        self.ports[mkey] = pick_port(free_port(), taken)
                        moved += f" (metrics {self.ports[mkey]})"
                    self._status(f"{name}: its port was taken meanwhile, moving it to {moved}")
                    self._launch(name, model_dir)
                    if name.startswith("model-service-"):  # its app must follow it to the new port
                        app = name.replace("model-service-", "app-", 1)
                        self.processes[app].stop()
                        self._launch(app, model_dir)
                    continue
                raise

    def _wait_prometheus(self, binary: str, taken: set[int]) -> ManagedProcess:
        for attempt in range(_PORT_TRIES):
            try:
                self._await("prometheus", "/-/ready")
                return self.processes["prometheus"]
            except CanarylabError:
                if attempt + 1 < _PORT_TRIES and self._port_lost("prometheus"):
                    self.ports["prometheus"] = pick_port(free_port(), taken)
                    self._status(
                        f"prometheus: its port was taken meanwhile, moving it to {self.ports['prometheus']}"
                    )
                    self._start_prometheus(binary)
                    continue
                raise
        raise CanarylabError("prometheus could not find a free port")  # pragma: no cover

    def _pin_cpu_calibration(self) -> None:
        """One calibration of the CPU knob for every variant, measured here before any starts.

        Each model-service would otherwise time the knob's loop at its own start, while the
        other starts beside it: the two calibrations differed by up to a factor 2 here, so
        "40 ms" was different work in each variant, a difference the experiment would measure.
        """
        wants = [v for v in self.variants.values() if _cpu_knob_on(v.env) and CPU_CALIBRATION not in v.env]
        if not wants:
            return
        run = _model_service("calibrating the CPU knob", ["calibrate-cpu"], timeout=120)
        value = run.stdout.strip()
        self._status(f"CPU knob: {run.stderr.strip()}; every variant gets {CPU_CALIBRATION}={value}")
        for v in wants:
            self.variants[v.name] = replace(v, env={**v.env, CPU_CALIBRATION: value})

    def _start_all(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        taken: set[int] = set()
        lp: Mapping[str, Any] = c.LOCAL_PORTS
        ms_pref: dict[str, int] = dict(lp["model_service"])
        ms_metrics_pref: dict[str, int] = dict(lp["model_service_metrics"])
        app_pref: dict[str, int] = dict(lp["app"])
        self.ports["prometheus"] = pick_port(int(lp["prometheus"]), taken)
        for name in self.variants:
            self.ports[f"model-service-{name}"] = pick_port(ms_pref.get(name, free_port()), taken)
            self.ports[metrics_key(name)] = pick_port(ms_metrics_pref.get(name, free_port()), taken)
            self.ports[f"app-{name}"] = pick_port(app_pref.get(name, free_port()), taken)

        prometheus = find_prometheus(self.prometheus_bin)
        cache = self.model_cache or Path.home() / ".cache/canarylab/models"
        model_dir = self.model_dir or ensure_model(cache)
        self.model_dir = model_dir
        self._pin_cpu_calibration()
        self._status(f"starting 2 model-services, 2 apps and Prometheus (logs in {self.workdir / 'logs'})")
        # Everything starts at once; then each is awaited in turn.
        for name in self.variants:
            self._launch(f"model-service-{name}", model_dir)
        for name in self.variants:
            self._launch(f"app-{name}", model_dir)
        self._start_prometheus(prometheus)
        for name in self.variants:
            self._wait_ready(f"model-service-{name}", model_dir, taken)
        for name in self.variants:
            self._wait_ready(f"app-{name}", model_dir, taken)
        prom_proc = self._wait_prometheus(prometheus, taken)
        self.prometheus_url = f"http://127.0.0.1:{self.ports['prometheus']}"
        self._write_prometheus_config(reload_proc=prom_proc)
        if self.wait_for_scrapes:
            self.wait_scraping()
        for name in self.variants:
            self.endpoints[name] = Endpoint(
                variant=name,
                url=f"http://127.0.0.1:{self.ports[f'app-{name}']}{c.APP_API_PATH}",
                headers={c.VARIANT_HEADER: name},
            )
        self._versions_thread = threading.Thread(target=self._fill_versions, args=(prometheus,), daemon=True)
        self._versions_thread.start()

    def wait_scraping(self, timeout: float | None = None) -> None:
        """Wait until Prometheus has scraped all four targets successfully.

        Prometheus hands new targets to its scrapers only every 5 s, so this
        can take that long after start-up; the engine overlaps it with the
        warm-up (``wait_for_scrapes=False``, then this before measuring).
        """
        if self._scraping:
            return
        client = PrometheusClient(self.prometheus_url)
        jobs = [t.job for t in self.scrape_targets()]
        client.wait_targets_up(jobs, timeout or self.ready_timeout, self.processes.get("prometheus"))
        self._scraping = True

    def scrape_targets(self) -> list[ScrapeTarget]:
        """The model-services on their metrics ports (outside the request pool), the apps on theirs."""
        out: list[ScrapeTarget] = []
        for name in self.variants:
            for component in ("model-service", "app"):
                job = f"{component}-{name}"
                port = self.ports[metrics_key(name) if component == "model-service" else job]
                out.append(ScrapeTarget(job, f"127.0.0.1:{port}", component, name))
        return out

    def _config_text(self) -> str:
        rule_files: list[Path] = []
        if self.rules_file is not None:
            ok, detail = rules_file_ok(self.rules_file)
            self.rules = {"file": str(self.rules_file), "loaded": ok, "detail": detail}
            if ok:
                rule_files.append(self.rules_file)
        return render_config(
            self.scrape_targets(), scrape_interval=self.scrape_interval, rule_files=rule_files
        )

    def _start_prometheus(self, binary: str) -> ManagedProcess:
        # Ports of the services may still move (port-in-use retry): the config is
        # rewritten and reloaded with SIGHUP once they are all known.
        text = self._config_text()
        port = self.ports["prometheus"]
        proc = start_prometheus(self.group, binary, self.workdir / "prometheus", text, port)
        with self._lock:
            self.processes["prometheus"] = proc
            self._pids["prometheus"] = proc.pid
            self._argv["prometheus"] = proc.argv
        return proc

    def _write_prometheus_config(self, reload_proc: ManagedProcess) -> None:
        config = self.workdir / "prometheus" / "prometheus.yml"
        text = render_config(
            self.scrape_targets(),
            scrape_interval=self.scrape_interval,
            rule_files=[self.rules_file] if self.rules.get("loaded") and self.rules_file else [],
        )
        if config.read_text() != text:
            config.write_text(text)
            os.kill(reload_proc.pid, signal.SIGHUP)  # reload the config

    def _fill_versions(self, prometheus: str) -> None:
        """Tool versions for the results, found in the background while the load runs."""
        self.versions = self._versions(prometheus)

    def _versions(self, prometheus: str) -> dict[str, str]:
        versions = {
            "python": sys.version.split()[0],
            "prometheus": prometheus_version(prometheus),
            "canarylab": _dist_version("canarylab"),
            "canarylab-model-service": _dist_version("canarylab-model-service"),
            "canarylab-app": _dist_version("canarylab-app"),
            "scikit-learn": _dist_version("scikit-learn"),
            "waitress": _dist_version("waitress"),
        }
        for name in self.variants:
            with contextlib.suppress(requests.RequestException, ValueError):
                url = f"http://127.0.0.1:{self.ports[f'model-service-{name}']}{c.VERSION_PATH}"
                versions[f"model-service-{name} /version"] = requests.get(url, timeout=2).text.strip()[:500]
        return versions

    # --- during and after the run ------------------------------------------------------

    def scrape_seconds(self) -> float:
        return parse_duration(self.scrape_interval)

    def scrape_check(self) -> ScrapeCheck:
        """Our own four jobs, within a few scrape intervals."""
        jobs = "|".join(t.job for t in self.scrape_targets())
        return ScrapeCheck(f'job=~"{jobs}"', 3 * self.scrape_seconds() + 5)

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.processes.items()}

    def clean_up(self) -> None:
        """The TSDB is only needed while the run queries it; the saved answers stay in the results."""
        shutil.rmtree(self.workdir / "prometheus" / "tsdb", ignore_errors=True)

    def deployment_warnings(self, spec: ExperimentSpec) -> list[str]:
        """None: this target starts the file's own variants."""
        return []

    def problems(self) -> dict[str, list[str]]:
        """Per variant: its processes that exited or changed since start-up (a restart)."""
        out: dict[str, list[str]] = {name: [] for name in self.variants}
        for pname, proc in self.processes.items():
            variant = next((v for v in self.variants if pname.endswith(f"-{v}")), None)
            if variant is None:
                continue
            if not proc.running():
                out[variant].append(f"{pname} exited with code {proc.popen.returncode}")
            elif proc.pid != self._pids.get(pname):
                out[variant].append(f"{pname} has a new pid")
        return out

    def prometheus_alive(self) -> bool:
        proc = self.processes.get("prometheus")
        return proc is not None and proc.running()

    def describe(self) -> dict[str, Any]:
        """Everything about this target worth recording in the results."""
        if self._versions_thread is not None:
            self._versions_thread.join(30)
        return {
            "kind": self.kind,
            "ports": dict(self.ports),
            "prometheus_url": self.prometheus_url,
            "selector": self.selector,
            "scrape_interval": self.scrape_interval,
            "rules": self.rules,
            "model_dir": str(self.model_dir) if self.model_dir else None,
            "endpoints": {k: {"url": e.url, "headers": e.headers} for k, e in self.endpoints.items()},
            "variants": {
                name: {"threads": v.threads, "env": v.env, "app_env": v.app_env}
                for name, v in self.variants.items()
            },
            "processes": {
                name: {
                    "pid": proc.pid,
                    "argv": self._argv.get(name, proc.argv),
                    "env": self._env_used.get(name, {}),
                    "log": str(proc.log_path),
                }
                for name, proc in self.processes.items()
            },
            "versions": self.versions,
            "started": time.time(),
        }


def create(request: TargetRequest) -> LocalTarget:
    """The registry's factory: the spec's variants, started in ``request.workdir``."""
    # Pods exist only on a cluster: here each variant is one model-service on loopback.
    several = [f"{v.name} ({v.replicas})" for v in request.spec.variants if v.replicas != 1]
    if several:
        raise CanarylabError(
            f"replicas are model-service pods, which only the lab target runs: {', '.join(several)}",
            "run this file with --target lab, or scale on this machine by processes "
            "(env MODEL_SERVICE_PROCESSES, experiments/processes-1-vs-4.yml)",
        )
    variants = {
        v.name: VariantConfig(name=v.name, threads=v.threads, env=dict(v.env), app_env=dict(v.app_env))
        for v in request.spec.variants
    }
    return LocalTarget(
        variants,
        request.workdir,
        scrape_interval=request.scrape_interval,
        prometheus_bin=request.prometheus_bin,
        rules_file=request.rules_file,
        model_cache=request.model_cache,
        on_status=request.on_status,
        wait_for_scrapes=False,  # the engine overlaps it with the warm-up (wait_scraping)
    )
