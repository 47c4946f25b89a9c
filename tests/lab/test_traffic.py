"""Traffic in a live lab: DNS from a pod, a Service and a pod IP across nodes, a LoadBalancer
address from the host.

Nothing is pulled (the container lab has no registry and no internet): the pods run images
every lab already holds, named exactly as the cluster runs them, with imagePullPolicy Never.

- The server: the etcd image of the controller's etcd static pod.  etcd serves plain HTTP on
  its client port (GET /version), so a one-member etcd is the web server; the pod is pinned
  to the controller and tolerates its taint.
- The clients: flannel's image (its DaemonSet runs on every node), pinned to a worker.  It
  has a shell and `getent` (Debian 12 in the bundle, alpine upstream), and python3's urllib
  (the bundle's) or busybox wget (upstream's) for HTTP.

Everything the tests create lives in a namespace of their own, deleted at the end, pass or
fail; every wait is bounded.  Run with -s to see how long each step took.
"""

from __future__ import annotations

import ipaddress
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from .kube import Kube

#: Where kubeadm's cluster names live (the lab keeps kubeadm's default domain).
CLUSTER_DOMAIN = "cluster.local"
CONTROL_PLANE_TAINT = "node-role.kubernetes.io/control-plane"
SERVER = "web"
LOADBALANCER = "web-lb"
#: The Services' port; the server listens on etcd's client port.
PORT = 80
ETCD_PORT = 2379
#: Bounds of every wait, in seconds.
READY_TIMEOUT = 120
POD_TIMEOUT = 120
ADDRESS_TIMEOUT = 90
FETCH_TIMEOUT = 30
DELETE_TIMEOUT = 180

#: A client pod's script: fetch each URL ($@), up to 20 tries 1 s apart (a new Service's
#: rules take a moment to reach every node); one line `ok URL tries=N BODY`, or
#: `failed URL tries=N LAST-ERROR-LINE`.
FETCH_SCRIPT = r"""
get() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c '
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"
  else
    wget -q -T 5 -O - "$1"
  fi
}
fetch() {
  n=1
  while :; do
    if body=$(get "$1" 2>&1); then echo "ok $1 tries=$n $body"; return 0; fi
    if [ "$n" -ge 20 ]; then echo "failed $1 tries=$n $(echo "$body" | tail -n 1)"; return 1; fi
    n=$((n + 1))
    sleep 1
  done
}
rc=0
for url in "$@"; do fetch "$url" || rc=1; done
exit $rc
"""

#: A client pod's script: its nameservers, then each name ($@) as getent resolves it
#: (`IP NAME`), up to 15 tries 1 s apart; `unresolved NAME` when it never does.
DNS_SCRIPT = r"""
grep '^nameserver' /etc/resolv.conf
rc=0
for name in "$@"; do
  n=1
  until getent hosts "$name"; do
    if [ "$n" -ge 15 ]; then echo "unresolved $name"; rc=1; break; fi
    n=$((n + 1))
    sleep 1
  done
done
exit $rc
"""


@dataclass(frozen=True)
class Workload:
    """The test's namespace, its server pod and Services, and where the clients run."""

    namespace: str
    server_node: str
    client_node: str
    client_image: str
    server_pod_ip: str
    service_ip: str
    #: node name -> its pod CIDR (flannel routes each over vxlan)
    pod_cidrs: dict[str, str]
    #: node name -> its kubernetes.io/hostname label (what the pods are pinned with)
    hostnames: dict[str, str]

    @property
    def service_name(self) -> str:
        return f"{SERVER}.{self.namespace}.svc.{CLUSTER_DOMAIN}"


def _pinned(spec: dict[str, Any], hostname: str) -> dict[str, Any]:
    """``spec`` scheduled onto the node labelled ``hostname`` (a controller too)."""
    return {
        **spec,
        "nodeSelector": {"kubernetes.io/hostname": hostname},
        "tolerations": [{"key": CONTROL_PLANE_TAINT, "operator": "Exists", "effect": "NoSchedule"}],
        "terminationGracePeriodSeconds": 0,
        "enableServiceLinks": False,
    }


def server_pod(image: str, hostname: str) -> dict[str, Any]:
    """A one-member etcd answering HTTP on 0.0.0.0:2379 (peers on loopback only)."""
    peer = "http://127.0.0.1:2380"
    command = [
        "etcd",
        f"--name={SERVER}",
        "--data-dir=/var/lib/etcd/data",
        f"--listen-client-urls=http://0.0.0.0:{ETCD_PORT}",
        f"--advertise-client-urls=http://127.0.0.1:{ETCD_PORT}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster={SERVER}={peer}",
    ]
    container = {
        "name": "etcd",
        "image": image,
        "imagePullPolicy": "Never",
        "command": command,
        "ports": [{"name": "http", "containerPort": ETCD_PORT}],
        "readinessProbe": {"httpGet": {"path": "/version", "port": ETCD_PORT}, "periodSeconds": 2},
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/etcd"}],
    }
    spec = {"containers": [container], "volumes": [{"name": "data", "emptyDir": {}}]}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": SERVER, "labels": {"app": SERVER}},
        "spec": _pinned(spec, hostname),
    }


def service(name: str, kind: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "type": kind,
            "selector": {"app": SERVER},
            "ports": [{"name": "http", "port": PORT, "targetPort": "http"}],
        },
    }


def client_pod(name: str, image: str, hostname: str, script: str, args: list[str]) -> dict[str, Any]:
    """A pod that runs ``script`` with ``args`` once and stops (at most POD_TIMEOUT s)."""
    container = {
        "name": "client",
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["/bin/sh", "-c", script, name, *args],
    }
    spec = {"containers": [container], "restartPolicy": "Never", "activeDeadlineSeconds": POD_TIMEOUT}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": _pinned(spec, hostname)}


def _image(kube: Kube, namespace: str, kind: str, name: str) -> str:
    found = kube.get("-n", namespace, kind, name)
    return str(found["spec"]["template"]["spec"]["containers"][0]["image"])


def _etcd_image(kube: Kube, node: str) -> str:
    pods = kube.get("-n", "kube-system", "pods", "-l", "component=etcd")["items"]
    on_node = [p for p in pods if p["spec"].get("nodeName") == node] or pods
    assert on_node, "no etcd static pod in kube-system (label component=etcd)"
    return str(on_node[0]["spec"]["containers"][0]["image"])


def _delete_namespace(kube: Kube, namespace: str) -> None:
    started = time.monotonic()
    rc, out = kube.attempt(
        "delete", "namespace", namespace, "--ignore-not-found", "--wait=true", f"--timeout={DELETE_TIMEOUT}s"
    )
    print(f"lab: namespace {namespace} deleted in {time.monotonic() - started:.1f} s (rc {rc})")
    assert rc == 0, f"could not delete namespace {namespace}: {out}"


def _wait_ready(kube: Kube, namespace: str, pod: str) -> None:
    rc, out = kube.attempt(
        "-n", namespace, "wait", "--for=condition=Ready", f"pod/{pod}", f"--timeout={READY_TIMEOUT}s"
    )
    if rc != 0:
        _, described = kube.attempt("-n", namespace, "describe", "pod", pod)
        pytest.fail(f"pod {pod} not Ready within {READY_TIMEOUT} s: {out}\n{described}")


@contextmanager
def scratch_namespace(kube: Kube, purpose: str, labels: dict[str, str] | None = None) -> Iterator[str]:
    """A fresh namespace ``canarylab-lab-<purpose>-<hex>``, deleted after it whatever happened."""
    name = f"canarylab-lab-{purpose}-{secrets.token_hex(3)}"
    metadata = {"name": name, "labels": {"canarylab.io/lab-test": purpose, **(labels or {})}}
    try:
        kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})
        yield name
    finally:
        _delete_namespace(kube, name)


@pytest.fixture(scope="module")
def namespace(kube: Kube) -> Iterator[str]:
    """A fresh namespace for the module's tests, deleted after them whatever happened."""
    with scratch_namespace(kube, "traffic") as name:
        yield name


@pytest.fixture(scope="module")
def workload(kube: Kube, namespace: str, controller_name: str, worker_names: list[str]) -> Workload:
    """The server on the controller, a ClusterIP and a LoadBalancer Service in front of it."""
    assert worker_names, "the lab has no worker: the cross-node checks need one (workers: 1 or more)"
    started = time.monotonic()
    nodes = {n["metadata"]["name"]: n for n in kube.get("nodes")["items"]}
    server_node, client_node = controller_name, worker_names[0]
    assert {server_node, client_node} <= set(nodes), f"nodes {sorted(nodes)}"
    hostnames = {name: n["metadata"]["labels"]["kubernetes.io/hostname"] for name, n in nodes.items()}
    client_image = _image(kube, "kube-flannel", "daemonset", "kube-flannel-ds")
    server_image = _etcd_image(kube, server_node)
    for manifest in (
        server_pod(server_image, hostnames[server_node]),
        service(SERVER, "ClusterIP"),
        service(LOADBALANCER, "LoadBalancer"),
    ):
        kube.apply({**manifest, "metadata": {**manifest["metadata"], "namespace": namespace}})
    _wait_ready(kube, namespace, SERVER)
    pod = kube.get("-n", namespace, "pod", SERVER)
    assert pod["spec"]["nodeName"] == server_node
    found = Workload(
        namespace=namespace,
        server_node=server_node,
        client_node=client_node,
        client_image=client_image,
        server_pod_ip=pod["status"]["podIP"],
        service_ip=kube.get("-n", namespace, "service", SERVER)["spec"]["clusterIP"],
        pod_cidrs={name: n["spec"].get("podCIDR", "") for name, n in nodes.items()},
        hostnames=hostnames,
    )
    print(
        f"traffic: server ({server_image}) Ready on {server_node} at {found.server_pod_ip} "
        f"in {time.monotonic() - started:.1f} s; clients run {client_image} on {client_node}"
    )
    return found


@dataclass(frozen=True)
class ClientRun:
    logs: str
    pod_ip: str
    seconds: float


def _finished(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    pod = kube.get("-n", namespace, "pod", name)
    return pod if pod.get("status", {}).get("phase") in ("Succeeded", "Failed") else None


def run_client(workload: Workload, kube: Kube, name: str, script: str, args: list[str]) -> ClientRun:
    """Run a client pod on the client node to its end; its logs (it must succeed there)."""
    node = workload.client_node
    manifest = client_pod(name, workload.client_image, workload.hostnames[node], script, args)
    started = time.monotonic()
    kube.apply({**manifest, "metadata": {**manifest["metadata"], "namespace": workload.namespace}})
    try:
        pod = kube.poll(
            f"pod {name} to finish", lambda: _finished(kube, workload.namespace, name), POD_TIMEOUT
        )
    except AssertionError as err:
        _, described = kube.attempt("-n", workload.namespace, "describe", "pod", name)
        pytest.fail(f"{err}\n{described}")
    seconds = time.monotonic() - started
    _, logs = kube.attempt("-n", workload.namespace, "logs", name)
    phase = pod["status"]["phase"]
    print(f"traffic: {name} on {pod['spec']['nodeName']}: {phase} in {seconds:.1f} s\n{logs}")
    assert pod["spec"]["nodeName"] == node
    assert phase == "Succeeded", f"{name} on {node}: {phase}\n{logs}"
    return ClientRun(logs, pod["status"].get("podIP", ""), seconds)


def _fetched(logs: str, url: str) -> str:
    """The body the client printed for ``url`` (``ok URL tries=N BODY``), or AssertionError."""
    for line in logs.splitlines():
        if line.startswith(f"ok {url} "):
            return line
    raise AssertionError(f"{url} was not fetched:\n{logs}")


def test_a_pod_resolves_names_through_coredns(kube: Kube, workload: Workload) -> None:
    kubernetes = f"kubernetes.default.svc.{CLUSTER_DOMAIN}"
    names = [kubernetes, workload.service_name]
    run = run_client(workload, kube, "dns", DNS_SCRIPT, names)
    nameservers = [line.split()[1] for line in run.logs.splitlines() if line.startswith("nameserver ")]
    resolved = {
        words[1]: words[0] for words in (line.split() for line in run.logs.splitlines()) if len(words) >= 2
    }
    # The pod asks CoreDNS alone: the kube-dns Service is its only nameserver.
    assert nameservers == [kube.get("-n", "kube-system", "service", "kube-dns")["spec"]["clusterIP"]]
    assert resolved.get(kubernetes) == kube.get("-n", "default", "service", "kubernetes")["spec"]["clusterIP"]
    assert resolved.get(workload.service_name) == workload.service_ip


def test_a_pod_on_another_node_reaches_a_cluster_ip_service(kube: Kube, workload: Workload) -> None:
    assert workload.client_node != workload.server_node
    urls = [f"http://{workload.service_ip}:{PORT}/version", f"http://{workload.service_name}:{PORT}/version"]
    run = run_client(workload, kube, "service", FETCH_SCRIPT, urls)
    for url in urls:
        assert '"etcdserver"' in _fetched(run.logs, url)


def test_a_pod_on_another_node_reaches_a_pod_ip_over_vxlan(kube: Kube, workload: Workload) -> None:
    url = f"http://{workload.server_pod_ip}:{ETCD_PORT}/version"
    run = run_client(workload, kube, "pod-ip", FETCH_SCRIPT, [url])
    assert '"etcdserver"' in _fetched(run.logs, url)
    # Each pod has an address of its own node's pod CIDR: the packets crossed flannel's vxlan.
    for node in (workload.server_node, workload.client_node):
        assert workload.pod_cidrs[node], f"node {node} has no spec.podCIDR"
    server_cidr = ipaddress.ip_network(workload.pod_cidrs[workload.server_node])
    client_cidr = ipaddress.ip_network(workload.pod_cidrs[workload.client_node])
    assert server_cidr != client_cidr
    assert ipaddress.ip_address(workload.server_pod_ip) in server_cidr
    assert ipaddress.ip_address(run.pod_ip) in client_cidr


def _ingress_ip(kube: Kube, namespace: str) -> str | None:
    found = kube.get("-n", namespace, "service", LOADBALANCER)
    ingress = found.get("status", {}).get("loadBalancer", {}).get("ingress") or []
    return str(ingress[0]["ip"]) if ingress and ingress[0].get("ip") else None


def fetch_from_host(url: str, timeout: float) -> tuple[str, int]:
    """GET ``url`` from this machine, straight (never through a proxy of the environment),
    trying for up to ``timeout`` s (MetalLB's ARP announcement takes a moment): (body, tries)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    tries = 0
    while True:
        tries += 1
        try:
            with opener.open(url, timeout=5) as answer:
                return answer.read().decode(), tries
        except (urllib.error.URLError, OSError) as err:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{url} did not answer within {timeout:g} s ({tries} tries): {err}"
                ) from err
            time.sleep(1)


def test_a_loadbalancer_address_answers_from_the_host(
    kube: Kube, workload: Workload, lab_vars: dict[str, Any]
) -> None:
    started = time.monotonic()
    address = kube.poll(
        f"MetalLB to give {LOADBALANCER} an address",
        lambda: _ingress_ip(kube, workload.namespace),
        ADDRESS_TIMEOUT,
    )
    assigned = time.monotonic() - started
    ip = ipaddress.IPv4Address(address)
    first, last = (ipaddress.IPv4Address(a) for a in lab_vars["cluster_loadbalancer_range"].split("-"))
    assert first <= ip <= last, f"{ip} is outside {lab_vars['cluster_loadbalancer_range']}"
    # The lab's own network: the only place (besides loopback) this suite sends traffic to.
    assert ip in ipaddress.ip_network(lab_vars["cluster_private_network"])
    body, tries = fetch_from_host(f"http://{ip}:{PORT}/version", FETCH_TIMEOUT)
    print(
        f"traffic: {LOADBALANCER} got {ip} in {assigned:.1f} s; it answered the host after "
        f"{tries} tries, {time.monotonic() - started:.1f} s in all: {body.strip()}"
    )
    assert '"etcdserver"' in body
