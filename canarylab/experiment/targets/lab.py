"""The lab target: variants behind the Istio gateway, Prometheus and Grafana in the cluster.

"lab" means the provisioned cluster everywhere: ``canarylab/lab/`` is its host
side (Vagrant, provisioning), ``canarylab/commands/lab.py`` its commands (up,
status, down), and this ``lab`` target the experiment run against it - the VM
lab or any cluster provisioned by the playbooks (``inventory/examples/servers.yml``).

The lab's experiment preflight play writes a *target file* (YAML) that says
where everything is; the engine starts nothing, it only loads and queries::

    prometheus_url: http://192.168.56.10:30090
    grafana_url: http://192.168.56.10:30030        # optional: annotations
    selector: 'namespace="canarylab"'              # label matchers for every query
    scrape_interval: 5s                            # the ServiceMonitor's (default 5s)
    prometheus_wait: 60s                           # optional: how long to retry reaching Prometheus
    deployed:                                      # optional: the variants' chart values
      stable: {modelService: {replicas: 1, ...}}   # experiment.yml deployed (deployment.py)
    variants:
      stable:
        url: http://192.168.56.10:30080/api/sentiment
        headers: {x-canarylab-variant: stable}     # the pinning header (added if missing)
      canary:
        url: http://192.168.56.10:30080/api/sentiment
        headers: {x-canarylab-variant: canary}

Restarts are detected from Prometheus (counter resets in the window), since
the engine does not own the pods.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlsplit

import requests
import yaml

import canarylab_contract as c
from canarylab.errors import CanarylabError
from canarylab.experiment.deployment import chart_defaults, lab_warnings
from canarylab.experiment.spec import ExperimentSpec, parse_duration
from canarylab.experiment.targets.base import Endpoint, ScrapeCheck, TargetKind, TargetRequest

#: The lab's scrape interval is its own (the ServiceMonitor's): up to a minute.
SCRAPED_TIMEOUT = 65.0
#: How long entering the target retries reaching the lab's Prometheus (the target file's
#: ``prometheus_wait`` overrides it): a monitoring stack still starting gets that long.
PROMETHEUS_WAIT = 60.0
PROMETHEUS_POLL = 2.0

_KEYS = {
    "kind",
    "prometheus_url",
    "grafana_url",
    "selector",
    "scrape_interval",
    "prometheus_wait",
    "variants",
    "generated_by",
    "generated_at",
    "deployed",
}


def _url(value: object, field: str, problems: list[str]) -> str:
    if (
        not isinstance(value, str)
        or urlsplit(value).scheme not in ("http", "https")
        or not urlsplit(value).netloc
    ):
        problems.append(f"{field}: must be an http(s) URL, got {value!r}")
        return ""
    return value.rstrip("/")


def _reason(err: requests.RequestException) -> str:
    """The innermost cause, e.g. "[Errno 113] No route to host", else the exception's name."""
    cause: BaseException | None = err
    while cause is not None and (cause.__cause__ or cause.__context__) is not None:
        cause = cause.__cause__ or cause.__context__
    text = str(cause) if cause is not None else ""
    tail = text.rsplit(": ", 1)[-1].strip() if text else ""
    return tail or type(err).__name__


def wait_for_prometheus(url: str, timeout: float, poll: float = PROMETHEUS_POLL) -> None:
    """Retry ``url``'s ``/-/ready`` for up to ``timeout`` seconds; then say what is missing.

    An unreachable Prometheus is an error (the engine exits 2), not an INVALID verdict:
    no load was sent and nothing was measured, so there is no result to judge - the
    environment is not ready, like a missing bombardier.  experiment.yml stops with
    this message.
    """
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            resp = requests.get(f"{url}/-/ready", timeout=min(5.0, max(timeout, 0.5)))
            if resp.ok:
                return
            last = f"HTTP {resp.status_code}"
        except requests.RequestException as err:
            last = _reason(err)
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(poll, left))
    raise CanarylabError(
        f"Prometheus at {url} is not reachable after {timeout:g}s of retries ({last}): "
        "the lab's monitoring stack is not installed or not ready",
        "run `ansible-playbook playbooks/mesh.yml`, then check it with `kubectl -n monitoring get pods`",
    )


class LabTarget:
    """A cluster the engine only loads and queries: it starts and stops nothing."""

    kind: Final[TargetKind] = "lab"

    def __init__(
        self,
        endpoints: Mapping[str, Endpoint],
        prometheus_url: str,
        *,
        selector: str = "",
        grafana_url: str | None = None,
        source: Path | None = None,
        scrape_seconds: float = 5.0,
        prometheus_wait: float = PROMETHEUS_WAIT,
        deployed: Mapping[str, Any] | None = None,
    ) -> None:
        self.deployed = None if deployed is None else dict(deployed)
        self._scrape_seconds = scrape_seconds
        self.prometheus_wait = prometheus_wait
        self.endpoints = dict(endpoints)
        self.prometheus_url = prometheus_url
        self.selector = selector
        self.grafana_url = grafana_url
        self.source = source
        self.ports: dict[str, int] = {}

    @classmethod
    def from_file(cls, path: Path | str) -> LabTarget:
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text())
        except OSError as err:
            raise CanarylabError(
                f"cannot read the lab target file {p}: {err.strerror}",
                "run `ansible-playbook experiment.yml` (its lab preflight writes it) or pass --target-file",
            ) from err
        except yaml.YAMLError as err:
            raise CanarylabError(f"the lab target file {p} is not valid YAML: {err}") from err
        return cls.from_dict(data, p)

    @classmethod
    def from_dict(cls, data: object, source: Path | None = None) -> LabTarget:
        where = str(source or "target file")
        if not isinstance(data, Mapping):
            raise CanarylabError(f"{where}: must be a mapping")
        problems = [f"{k}: unknown key" for k in data if k not in _KEYS]
        prom = _url(data.get("prometheus_url"), "prometheus_url", problems)
        grafana = data.get("grafana_url")
        grafana_url = _url(grafana, "grafana_url", problems) if grafana else None
        selector = data.get("selector", "") or ""
        if not isinstance(selector, str):
            problems.append('selector: must be a string of label matchers, e.g. namespace="canarylab"')
            selector = ""
        endpoints: dict[str, Endpoint] = {}
        variants = data.get("variants")
        if not isinstance(variants, Mapping):
            problems.append(f"variants: must map {', '.join(c.VARIANTS)} to {{url, headers}}")
            variants = {}
        for name in c.VARIANTS:
            item = variants.get(name)
            if not isinstance(item, Mapping):
                problems.append(f"variants.{name}: is missing")
                continue
            url = _url(item.get("url"), f"variants.{name}.url", problems)
            headers = item.get("headers") or {}
            if not isinstance(headers, Mapping):
                problems.append(f"variants.{name}.headers: must be a mapping")
                headers = {}
            hdrs = {str(k): str(v) for k, v in headers.items()}
            hdrs.setdefault(c.VARIANT_HEADER, name)
            if hdrs[c.VARIANT_HEADER] != name:
                problems.append(f"variants.{name}.headers: {c.VARIANT_HEADER} must be {name!r}")
            endpoints[name] = Endpoint(variant=name, url=url, headers=hdrs)
        scrape = 5.0
        try:
            scrape = parse_duration(data.get("scrape_interval", "5s"))
        except ValueError as err:
            problems.append(f"scrape_interval: {err}")
        wait = PROMETHEUS_WAIT
        try:
            wait = parse_duration(data.get("prometheus_wait", PROMETHEUS_WAIT))
        except ValueError as err:
            problems.append(f"prometheus_wait: {err}")
        deployed = data.get("deployed")
        if deployed is not None and not isinstance(deployed, Mapping):
            problems.append("deployed: must map each variant to its chart values")
            deployed = None
        if problems:
            raise CanarylabError(
                f"invalid lab target file {where}:\n" + "\n".join(f"  - {p}" for p in problems)
            )
        return cls(
            endpoints,
            prom,
            selector=selector,
            grafana_url=grafana_url,
            source=source,
            scrape_seconds=scrape,
            prometheus_wait=wait,
            deployed=deployed,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "prometheus_url": self.prometheus_url,
            "grafana_url": self.grafana_url,
            "selector": self.selector,
            "scrape_interval": f"{self._scrape_seconds:g}s",
            "prometheus_wait": f"{self.prometheus_wait:g}s",
            "variants": {k: {"url": e.url, "headers": e.headers} for k, e in self.endpoints.items()},
            **({} if self.deployed is None else {"deployed": self.deployed}),
        }

    def __enter__(self) -> LabTarget:
        wait_for_prometheus(self.prometheus_url, self.prometheus_wait)
        for name, ep in self.endpoints.items():
            try:
                resp = requests.post(ep.url, json={"review": "ready?"}, headers=ep.headers, timeout=10)
            except requests.RequestException as err:
                raise CanarylabError(
                    f"{name} at {ep.url} could not be reached: {type(err).__name__}"
                ) from err
            if resp.status_code >= 500:
                raise CanarylabError(f"{name} at {ep.url} answered HTTP {resp.status_code}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def scrape_seconds(self) -> float:
        return self._scrape_seconds

    def scrape_check(self) -> ScrapeCheck:
        return ScrapeCheck(self.selector, SCRAPED_TIMEOUT)

    def wait_scraping(self) -> None:
        """Nothing to wait for: the cluster's Prometheus scraped the pods long before the run."""

    def pids(self) -> dict[str, int]:
        return {}

    def clean_up(self) -> None:
        """Nothing to delete: the cluster's data is not the engine's."""

    def deployment_warnings(self, spec: ExperimentSpec) -> list[str]:
        """The lab runs what the chart deployed: where that is not ``spec``'s variants."""
        return lab_warnings(spec, self.deployed, chart_defaults())

    def problems(self) -> dict[str, list[str]]:
        """Restarts in the lab show up as counter resets in Prometheus (see collect)."""
        return {name: [] for name in self.endpoints}

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": str(self.source) if self.source else None, **self.to_dict()}


def create(request: TargetRequest) -> LabTarget:
    """The registry's factory: the target file the lab preflight wrote."""
    if request.target_file is None:
        raise CanarylabError(
            "the lab target needs a target file", "pass --target-file (the lab preflight writes it)"
        )
    return LabTarget.from_file(request.target_file)
