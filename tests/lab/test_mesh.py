"""The mesh in a live lab: istiod, the ingress gateway on its fixed address, sidecar injection.

Run when the lab has the `mesh` layer (canarylab_site_layers; every lab but one that stops
after the cluster).  The workload is the traffic tests' own: the etcd image every lab holds,
here in a namespace of the test's own labelled for injection, so it gets Istio's sidecar.  A
Gateway and a VirtualService of the test route a host name of its own, through the gateway's
MetalLB address, to that pod: the request crosses the gateway's Envoy and the sidecar's, which
is where a proxy that rejected its configuration (a vanilla Envoy with istio-proxy's filters
switched on) would show.  Everything lives in that namespace, deleted at the end, pass or fail.
"""

from __future__ import annotations

import ipaddress
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import pool_address, require_layer
from .kube import Kube
from .test_traffic import PORT, SERVER, _etcd_image, _wait_ready, scratch_namespace, server_pod, service

ISTIO_NAMESPACE = "istio-system"
GATEWAY_NAMESPACE = "istio-ingress"
GATEWAY = "istio-ingressgateway"
ROUTE_TIMEOUT = 60


@pytest.fixture(scope="module", autouse=True)
def _mesh_layer(layers: list[str]) -> None:
    require_layer(layers, "mesh")


def _gateway_ip(lab_vars: dict[str, Any]) -> str:
    """The first address of the MetalLB pool, where roles/istio puts the gateway."""
    return str(pool_address(lab_vars, 0))


def request_from_host(url: str, host: str, timeout: float) -> tuple[int, str, int]:
    """GET ``url`` with ``Host: host`` from this machine (never through a proxy), until it
    answers at all or ``timeout`` s pass: (status, body, tries).  Any HTTP status is an answer."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    tries = 0
    while True:
        tries += 1
        try:
            with opener.open(urllib.request.Request(url, headers={"Host": host}), timeout=5) as answer:
                return int(answer.status), answer.read().decode(), tries
        except urllib.error.HTTPError as err:
            return int(err.code), err.read().decode(errors="replace"), tries
        except (urllib.error.URLError, OSError) as err:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{url} (Host {host}) did not answer within {timeout:g} s: {err}"
                ) from err
            time.sleep(1)


def _catch_all_gateway(kube: Kube) -> bool:
    """Whether some Gateway of the lab takes every host ("*"): the app's does."""
    gateways = kube.get("gateways.networking.istio.io", "--all-namespaces")["items"]
    return any("*" in server.get("hosts", []) for g in gateways for server in g["spec"].get("servers", []))


def envoy_updates(kube: Kube, namespace: str, pod: str) -> dict[str, int]:
    """The istio-proxy's xDS update counters (``…update_success``, ``…update_rejected``)."""
    out = kube.run(
        "-n",
        namespace,
        "exec",
        pod,
        "-c",
        "istio-proxy",
        "--",
        "pilot-agent",
        "request",
        "GET",
        "stats?filter=update_",
    )
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\S+\.update_(?:success|rejected)): (\d+)$", out, re.M)}


@pytest.fixture(scope="module")
def mesh_namespace(kube: Kube) -> Iterator[str]:
    """A namespace of the test's own, labelled for sidecar injection."""
    with scratch_namespace(kube, "mesh", {"istio-injection": "enabled"}) as name:
        yield name


@pytest.fixture(scope="module")
def routed_host(kube: Kube, mesh_namespace: str, controller_name: str) -> str:
    """The injected server, its Service, and a Gateway + VirtualService for a host name of the test."""
    host = f"{mesh_namespace}.lab.invalid"
    hostname = kube.get("node", controller_name)["metadata"]["labels"]["kubernetes.io/hostname"]
    started = time.monotonic()
    manifests: list[dict[str, Any]] = [
        server_pod(_etcd_image(kube, controller_name), hostname),
        service(SERVER, "ClusterIP"),
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": {"name": SERVER},
            "spec": {
                "selector": {"istio": "ingressgateway"},
                "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": [host]}],
            },
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": SERVER},
            "spec": {
                "hosts": [host],
                "gateways": [SERVER],
                "http": [{"route": [{"destination": {"host": SERVER, "port": {"number": PORT}}}]}],
            },
        },
    ]
    for manifest in manifests:
        kube.apply({**manifest, "metadata": {**manifest["metadata"], "namespace": mesh_namespace}})
    _wait_ready(kube, mesh_namespace, SERVER)
    print(f"mesh: injected server Ready in {time.monotonic() - started:.1f} s")
    return host


def test_istiod_and_the_gateway_are_ready_on_the_fixed_address(kube: Kube, lab_vars: dict[str, Any]) -> None:
    for namespace, name in ((ISTIO_NAMESPACE, "istiod"), (GATEWAY_NAMESPACE, GATEWAY)):
        found = kube.get("-n", namespace, "deployment", name)
        assert found["status"].get("readyReplicas", 0) >= 1, f"{namespace}/{name}: {found['status']}"
    gateway = kube.get("-n", GATEWAY_NAMESPACE, "service", GATEWAY)
    ingress = [i.get("ip") for i in gateway["status"].get("loadBalancer", {}).get("ingress") or []]
    assert ingress == [_gateway_ip(lab_vars)]


def test_a_pod_in_an_injected_namespace_gets_a_sidecar_that_took_its_config(
    kube: Kube, mesh_namespace: str, routed_host: str
) -> None:
    pod = kube.get("-n", mesh_namespace, "pod", SERVER)
    names = [c["name"] for c in pod["spec"]["containers"]] + [
        c["name"] for c in pod["spec"].get("initContainers", [])
    ]
    assert "istio-proxy" in names, f"no sidecar injected: {names}"
    statuses = {
        c["name"]: c
        for c in pod["status"]["containerStatuses"] + pod["status"].get("initContainerStatuses", [])
    }
    assert statuses["istio-proxy"].get("ready"), statuses["istio-proxy"]
    updates = envoy_updates(kube, mesh_namespace, SERVER)
    print(f"mesh: the sidecar's xDS updates: {updates}")
    rejected = {k: v for k, v in updates.items() if k.endswith("update_rejected") and v}
    assert not rejected, f"the sidecar's Envoy rejected configuration: {rejected}"
    assert updates.get("listener_manager.lds.update_success", 0) >= 1, updates


def test_the_gateway_routes_a_host_from_the_host_through_the_sidecar(
    kube: Kube, lab_vars: dict[str, Any], mesh_namespace: str, routed_host: str
) -> None:
    ip = _gateway_ip(lab_vars)
    assert ipaddress.IPv4Address(ip) in ipaddress.ip_network(lab_vars["cluster_private_network"])
    url = f"http://{ip}:{PORT}/version"
    started = time.monotonic()
    # istiod pushes the new route to the gateway within seconds; until then the host is unknown (404)
    deadline = started + ROUTE_TIMEOUT
    while True:
        status, body, _ = request_from_host(url, routed_host, ROUTE_TIMEOUT)
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(1)
    print(f"mesh: {routed_host} via {ip}: {status} after {time.monotonic() - started:.1f} s: {body.strip()}")
    assert status == 200, f"{url} (Host {routed_host}): {status} {body}"
    assert '"etcdserver"' in body
    # another host never reaches the test's server: Envoy's 404 when nothing else routes it, or
    # whatever a catch-all host of the lab routes it to (the app's Gateway takes "*")
    status, body, _ = request_from_host(url, f"unknown-{routed_host}", ROUTE_TIMEOUT)
    print(f"mesh: unknown-{routed_host}: {status} {body.strip()[:120]}")
    assert '"etcdserver"' not in body, (
        f"a host the test's VirtualService does not name reached its server: {body}"
    )
    assert status == 404 or _catch_all_gateway(kube), f"a host no VirtualService names: {status} {body}"
    for pod in kube.get("-n", GATEWAY_NAMESPACE, "pods", "-l", "istio=ingressgateway")["items"]:
        updates = envoy_updates(kube, GATEWAY_NAMESPACE, pod["metadata"]["name"])
        assert not {k: v for k, v in updates.items() if k.endswith("update_rejected") and v}, updates
