"""The canarylab chart: lint, strict schema validation of every rendered object
(Kubernetes schemas offline via kubernetes-validate; Istio and prometheus-operator
objects against their CRDs' openAPIV3Schema), and assertions on what it renders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from chart_helpers import CHART, Doc, Render, SchemaKey, kube_version, run_helm, template_args

import canarylab_contract as contract
from canarylab.experiment.deployment import chart_defaults, deployment
from canarylab.experiment.spec import load_spec

pytestmark = pytest.mark.static

CUSTOM = Path(__file__).with_name("values-custom.yaml")
CRD_GROUPS = ("networking.istio.io/", "monitoring.coreos.com/")


def by_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    names = [d["metadata"]["name"] for d in by_kind(docs, kind)]
    assert len(found) == 1, f"expected one {kind}/{name}, got {names}"
    return found[0]


def env_of(deploy: Doc) -> dict[str, str]:
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"]}


def validate_all(docs: list[Doc], crds: dict[SchemaKey, Doc]) -> None:
    problems: list[str] = []
    for doc in docs:
        ident = f"{doc['kind']}/{doc['metadata']['name']}"
        try:
            if doc["apiVersion"].startswith(CRD_GROUPS):
                schema = crds.get((doc["apiVersion"], doc["kind"]))
                assert schema is not None, f"{ident}: no CRD schema for {doc['apiVersion']}"
                jsonschema.validate(doc, schema)
                # The CRD schemas leave metadata open: check it as any object's metadata.
                meta_only = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]}
                kubernetes_validate.validate(meta_only, kube_version(), strict=True)
            else:
                kubernetes_validate.validate(doc, kube_version(), strict=True)
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as err:
            problems.append(f"{ident}: {str(err).splitlines()[0]}")
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def default_docs(render: Render) -> list[Doc]:
    docs: list[Doc] = render()
    return docs


@pytest.fixture(scope="module")
def custom_docs(render: Render) -> list[Doc]:
    docs: list[Doc] = render(values=[CUSTOM], release="exp2", namespace="exp2")
    return docs


# --- lint and schema -----------------------------------------------------------


@pytest.mark.parametrize("values", [[], [CUSTOM]], ids=["default", "custom"])
def test_helm_lint_strict(values: list[Path]) -> None:
    args = ["lint", "--strict", str(CHART), "--kube-version", kube_version()]
    for path in values:
        args += ["--values", str(path)]
    proc = run_helm(*args)
    assert "0 chart(s) failed" in proc.stdout


def test_default_render_is_valid(default_docs: list[Doc], crd_schema_map: dict[SchemaKey, Doc]) -> None:
    kinds = sorted({d["kind"] for d in default_docs})
    for kind in ["Deployment", "Service", "ServiceMonitor", "VirtualService", "DestinationRule", "Gateway"]:
        assert kind in kinds
    validate_all(default_docs, crd_schema_map)


def test_custom_render_is_valid(custom_docs: list[Doc], crd_schema_map: dict[SchemaKey, Doc]) -> None:
    validate_all(custom_docs, crd_schema_map)


def test_validation_catches_a_wrong_field(
    default_docs: list[Doc], crd_schema_map: dict[SchemaKey, Doc]
) -> None:
    """The validators are strict: an unknown field in a VirtualService or a Deployment fails."""
    vs = json.loads(json.dumps(by_kind(default_docs, "VirtualService")[0]))
    vs["spec"]["http"][0]["match"][0]["header"] = vs["spec"]["http"][0]["match"][0].pop("headers")
    with pytest.raises(AssertionError, match="VirtualService"):
        validate_all([vs], crd_schema_map)
    deploy = json.loads(json.dumps(by_kind(default_docs, "Deployment")[0]))
    deploy["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(AssertionError, match="Deployment"):
        validate_all([deploy], crd_schema_map)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"variants.stable.weight": "70"}, "add up to 100"),
        ({"image.pullPolicy": "Sometimes"}, "pullPolicy"),
        ({"variants.canary.modelService.threads": "0"}, "threads"),
        ({"variants.canary.modelService.replicas": "0"}, "/variants/canary/modelService/replicas"),
        ({"variants.stable.app.replicas": "0"}, "/variants/stable/app/replicas"),
        ({"variants.stable.modelService.processes": "0"}, "/variants/stable/modelService/processes"),
        ({"variants.stable.modelService.processes": "65"}, "/variants/stable/modelService/processes"),
        ({"variants.canary.modelService.cpuCostMs": "-1"}, "/variants/canary/modelService/cpuCostMs"),
        (
            {"variants.canary.modelService.emulationDistribution": "normal"},
            "/variants/canary/modelService/emulationDistribution",
        ),
        ({"istio.gateway.create": "false"}, "istio.gateway.name is required"),
        ({"unknownKey": "1"}, "unknownKey"),
        (
            {"modelService.servicePort": str(contract.MODEL_SERVICE_METRICS_PORT)},
            "the model-service's metrics port",
        ),
    ],
)
def test_bad_values_are_refused(sets: dict[str, str], message: str) -> None:
    proc = run_helm(*template_args(CHART, sets=sets), check=False)
    assert proc.returncode != 0
    assert message in proc.stderr


# --- the four Deployments -------------------------------------------------------


def test_four_deployments_from_one_template(default_docs: list[Doc], contract: dict[str, Any]) -> None:
    names = sorted(d["metadata"]["name"] for d in by_kind(default_docs, "Deployment"))
    expected = sorted(f"canarylab-{c}-{v}" for c in ("app", "model-service") for v in contract["variants"])
    assert names == expected


def test_model_service_threads_4_vs_16(default_docs: list[Doc], contract: dict[str, Any]) -> None:
    assert contract["default_threads"] == {"stable": 4, "canary": 16}
    for variant, threads in contract["default_threads"].items():
        env = env_of(one(default_docs, "Deployment", f"canarylab-model-service-{variant}"))
        assert env["MODEL_SERVICE_THREADS"] == str(threads)
        assert env["MODEL_SERVICE_VARIANT"] == variant
        assert env["MODEL_SERVICE_PORT"] == str(contract["ports"]["model_service"])
        assert env["MODEL_SERVICE_METRICS_PORT"] == str(contract["ports"]["model_service_metrics"])
        assert env["MODEL_SERVICE_HOST"] == "0.0.0.0"


def test_custom_threads_and_replicas(custom_docs: list[Doc]) -> None:
    stable = one(custom_docs, "Deployment", "exp2-model-service-stable")
    canary = one(custom_docs, "Deployment", "exp2-model-service-canary")
    assert env_of(stable)["MODEL_SERVICE_THREADS"] == "2"
    assert env_of(canary)["MODEL_SERVICE_THREADS"] == "32"
    assert env_of(stable)["MODEL_SERVICE_SIMULATED_LATENCY_MS"] == "5"
    assert env_of(stable)["MODEL_SERVICE_MODEL_DIR"] == "/models/sentiment"
    assert (stable["spec"]["replicas"], canary["spec"]["replicas"]) == (2, 3)


def test_default_replicas_processes_and_knobs_per_variant(
    default_docs: list[Doc], contract: dict[str, Any]
) -> None:
    """Defaults: one pod of each, one waitress process, both emulation knobs off."""
    for variant in contract["variants"]:
        deploy = one(default_docs, "Deployment", f"canarylab-model-service-{variant}")
        assert deploy["spec"]["replicas"] == 1
        env = env_of(deploy)
        assert env["MODEL_SERVICE_PROCESSES"] == "1"
        assert env["MODEL_SERVICE_SIMULATED_LATENCY_MS"] == "0"
        assert env["MODEL_SERVICE_CPU_COST_MS"] == "0"
        assert env["MODEL_SERVICE_EMULATION_DISTRIBUTION"] == "fixed"
        assert one(default_docs, "Deployment", f"canarylab-app-{variant}")["spec"]["replicas"] == 1


def test_custom_replicas_processes_and_knobs_per_variant(custom_docs: list[Doc]) -> None:
    got = {}
    for variant in ("stable", "canary"):
        deploy = one(custom_docs, "Deployment", f"exp2-model-service-{variant}")
        env = env_of(deploy)
        got[variant] = (
            deploy["spec"]["replicas"],
            env["MODEL_SERVICE_PROCESSES"],
            env["MODEL_SERVICE_THREADS"],
            env["MODEL_SERVICE_SIMULATED_LATENCY_MS"],
            env["MODEL_SERVICE_CPU_COST_MS"],
            env["MODEL_SERVICE_EMULATION_DISTRIBUTION"],
        )
    assert got == {
        "stable": (2, "2", "2", "5", "12.5", "exponential"),
        "canary": (3, "4", "32", "0", "40", "fixed"),
    }
    app_replicas = [
        one(custom_docs, "Deployment", f"exp2-app-{v}")["spec"]["replicas"] for v in ("stable", "canary")
    ]
    assert app_replicas == [2, 1]


def test_pods_carry_the_variant(default_docs: list[Doc], contract: dict[str, Any]) -> None:
    label = contract["labels"]["variant"]
    for deploy in by_kind(default_docs, "Deployment"):
        variant = deploy["metadata"]["name"].rsplit("-", 1)[1]
        pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
        assert pod_labels[label] == variant
        assert pod_labels["version"] == variant
        assert deploy["spec"]["selector"]["matchLabels"][label] == variant
        assert deploy["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        assert pod_labels["sidecar.istio.io/inject"] == "true"


def test_app_calls_the_model_service_of_the_release(
    default_docs: list[Doc], contract: dict[str, Any]
) -> None:
    for variant in contract["variants"]:
        env = env_of(one(default_docs, "Deployment", f"canarylab-app-{variant}"))
        assert env["APP_VARIANT"] == variant
        assert env["APP_PORT"] == str(contract["ports"]["app"])
        assert env["APP_MODEL_SERVICE_URL"] == (
            "http://canarylab-model-service.canarylab.svc.cluster.local:8080"
        )


def test_probes_security_and_resources(default_docs: list[Doc], contract: dict[str, Any]) -> None:
    for deploy in by_kind(default_docs, "Deployment"):
        pod = deploy["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["readinessProbe"]["httpGet"] == {"path": contract["paths"]["ready"], "port": "http"}
        if container["name"] == "model-service":
            # /healthz would wait in the saturated request pool: liveness only checks the listener.
            assert container["livenessProbe"]["tcpSocket"] == {"port": "http"}
            assert "httpGet" not in container["livenessProbe"]
        else:
            assert container["livenessProbe"]["httpGet"] == {
                "path": contract["paths"]["health"],
                "port": "http",
            }
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= container["resources"][kind].keys()
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
        assert pod["automountServiceAccountToken"] is False


def test_model_service_probes_tolerate_a_saturated_pool(default_docs: list[Doc]) -> None:
    """/readyz shares the model-service's request pool with /predict: readiness allows 30 s of
    saturation before the pod leaves the endpoints; the app keeps its own probe timing."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for deploy in by_kind(default_docs, "Deployment"):
        (container,) = deploy["spec"]["template"]["spec"]["containers"]
        ready, live = container["readinessProbe"], container["livenessProbe"]
        if container["name"] == "model-service":
            assert (ready["timeoutSeconds"], ready["periodSeconds"], ready["failureThreshold"]) == (5, 5, 6)
            assert ready["periodSeconds"] * ready["failureThreshold"] >= 30
            assert live.items() >= values["probes"]["modelService"]["liveness"].items()
        else:
            assert ready.items() >= values["probes"]["readiness"].items()
            assert live.items() >= values["probes"]["liveness"].items()


def test_chart_digest_label_is_on_the_objects_not_the_pods(
    render: Render, default_docs: list[Doc], tmp_path: Path, crd_schema_map: dict[SchemaKey, Doc]
) -> None:
    """roles/canarylab_app passes a digest of the chart's files as a label, so a template edit
    upgrades the release; the pod templates stay the same, so no pod restarts for it."""
    label = "canarylab.io/chart-digest"
    values = tmp_path / "digest.yaml"
    values.write_text(yaml.safe_dump({"commonLabels": {label: "0123456789ab"}}))
    docs = render(values=[values])
    validate_all(docs, crd_schema_map)
    for doc in docs:
        assert doc["metadata"]["labels"][label] == "0123456789ab", doc["metadata"]["name"]
    for deploy in by_kind(docs, "Deployment"):
        assert label not in json.dumps(deploy["spec"])
    # Byte for byte the same pods as without the label.
    assert [d["spec"]["template"] for d in by_kind(docs, "Deployment")] == [
        d["spec"]["template"] for d in by_kind(default_docs, "Deployment")
    ]


def test_variants_get_equal_resources(default_docs: list[Doc]) -> None:
    """Only the threads differ between the variants: a fair experiment."""
    for component in ("app", "model-service"):
        res = [
            one(default_docs, "Deployment", f"canarylab-{component}-{v}")["spec"]["template"]["spec"][
                "containers"
            ][0]["resources"]
            for v in ("stable", "canary")
        ]
        assert res[0] == res[1]


def test_local_images_by_default_and_registry_when_set(
    default_docs: list[Doc], custom_docs: list[Doc]
) -> None:
    for deploy in by_kind(default_docs, "Deployment"):
        container = deploy["spec"]["template"]["spec"]["containers"][0]
        assert container["image"].startswith("localhost/canarylab/")
        assert container["imagePullPolicy"] == "IfNotPresent"
    images = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["image"]
        for d in by_kind(custom_docs, "Deployment")
    }
    assert images["exp2-app-stable"] == "registry.example.test/canarylab/app:0123abcd"
    assert images["exp2-model-service-canary"] == "registry.example.test/canarylab/model-service:0123abcd"
    pod = by_kind(custom_docs, "Deployment")[0]["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]


def test_image_tag_from_values(render: Render) -> None:
    docs = render(sets={"image.tag": "abc123"})
    for deploy in by_kind(docs, "Deployment"):
        assert deploy["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":abc123")


# --- Istio routing -----------------------------------------------------------------


def test_destination_rule_subsets(default_docs: list[Doc], contract: dict[str, Any]) -> None:
    label = contract["labels"]["variant"]
    for component in ("app", "model-service"):
        dr = one(default_docs, "DestinationRule", f"canarylab-{component}")
        assert dr["spec"]["host"] == f"canarylab-{component}.canarylab.svc.cluster.local"
        assert dr["spec"]["subsets"] == [{"name": v, "labels": {label: v}} for v in contract["variants"]]


def test_gateway_virtual_service_pins_by_header_then_splits(
    default_docs: list[Doc], contract: dict[str, Any]
) -> None:
    vs = one(default_docs, "VirtualService", "canarylab-app")
    assert vs["spec"]["gateways"] == ["canarylab"]
    gateway = one(default_docs, "Gateway", "canarylab")
    assert gateway["spec"]["selector"] == {"istio": "ingressgateway"}
    assert gateway["spec"]["servers"][0]["hosts"] == vs["spec"]["hosts"] == ["*"]
    routes = vs["spec"]["http"]
    header = contract["variant_header"]
    for route, variant in zip(routes, contract["variants"], strict=False):
        assert route["match"] == [{"headers": {header: {"exact": variant}}}]
        assert [d["destination"]["subset"] for d in route["route"]] == [variant]
    last = routes[-1]
    assert "match" not in last, "the weighted split must be the catch-all, after the pinned routes"
    assert {d["destination"]["subset"]: d["weight"] for d in last["route"]} == {"stable": 50, "canary": 50}
    host = "canarylab-app.canarylab.svc.cluster.local"
    assert all(d["destination"]["host"] == host for r in routes for d in r["route"])
    assert all(r["retries"] == {"attempts": 0} for r in routes)


def test_model_service_routing_keeps_the_variant(default_docs: list[Doc], contract: dict[str, Any]) -> None:
    """App stable pods reach model-service stable, app canary pods model-service canary."""
    vs = one(default_docs, "VirtualService", "canarylab-model-service")
    assert vs["spec"]["hosts"] == ["canarylab-model-service.canarylab.svc.cluster.local"]
    assert "gateways" not in vs["spec"], "in-mesh routing (the implicit mesh gateway)"
    app_deploys = {v: one(default_docs, "Deployment", f"canarylab-app-{v}") for v in contract["variants"]}
    first_match: dict[str, str] = {}
    for variant, deploy in app_deploys.items():
        pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
        for route in vs["spec"]["http"]:
            matches = route.get("match")
            if not matches or any(
                "sourceLabels" in m and m["sourceLabels"].items() <= pod_labels.items() for m in matches
            ):
                first_match[variant] = route["route"][0]["destination"]["subset"]
                assert len(route["route"]) == 1
                break
    assert first_match == {v: v for v in contract["variants"]}
    header = contract["variant_header"]
    pinned = [r for r in vs["spec"]["http"] if r.get("match") and "headers" in r["match"][0]]
    pairs = [
        (r["match"][0]["headers"][header]["exact"], r["route"][0]["destination"]["subset"]) for r in pinned
    ]
    assert pairs == [(v, v) for v in contract["variants"]]


def test_custom_weights_gateway_and_retries(custom_docs: list[Doc]) -> None:
    assert by_kind(custom_docs, "Gateway") == []
    vs = one(custom_docs, "VirtualService", "exp2-app")
    assert vs["spec"]["gateways"] == ["istio-ingress/shared-gateway"]
    assert vs["spec"]["hosts"] == ["exp2.canarylab.test"]
    split = vs["spec"]["http"][-1]["route"]
    assert {d["destination"]["subset"]: d["weight"] for d in split} == {"stable": 80, "canary": 20}
    assert vs["spec"]["http"][0]["retries"]["attempts"] == 2
    model_vs = one(custom_docs, "VirtualService", "exp2-model-service")
    assert {r["route"][0]["destination"]["port"]["number"] for r in model_vs["spec"]["http"]} == {9090}


def test_istio_can_be_disabled(render: Render) -> None:
    docs = render(sets={"istio.enabled": "false"})
    assert not [d for d in docs if d["apiVersion"].startswith("networking.istio.io/")]
    for deploy in by_kind(docs, "Deployment"):
        assert "sidecar.istio.io/inject" not in deploy["spec"]["template"]["metadata"]["labels"]


# --- Services and monitoring -------------------------------------------------------


def test_container_ports(default_docs: list[Doc], contract: dict[str, Any]) -> None:
    ports = contract["ports"]
    for variant in contract["variants"]:
        (app,) = one(default_docs, "Deployment", f"canarylab-app-{variant}")["spec"]["template"]["spec"][
            "containers"
        ]
        assert app["ports"] == [{"name": "http", "containerPort": ports["app"], "protocol": "TCP"}]
        (model,) = one(default_docs, "Deployment", f"canarylab-model-service-{variant}")["spec"]["template"][
            "spec"
        ]["containers"]
        assert model["ports"] == [
            {"name": "http", "containerPort": ports["model_service"], "protocol": "TCP"},
            {"name": "metrics", "containerPort": ports["model_service_metrics"], "protocol": "TCP"},
        ]


def test_services_select_both_variants(default_docs: list[Doc], contract: dict[str, Any]) -> None:
    label = contract["labels"]["variant"]
    for component in ("app", "model-service"):
        svc = one(default_docs, "Service", f"canarylab-{component}")
        assert label not in svc["spec"]["selector"]
        assert svc["spec"]["ports"][0]["name"] == "http"
        assert svc["spec"]["ports"][0]["appProtocol"] == "http"
        names = [p["name"] for p in svc["spec"]["ports"]]
        assert names == (["http", "metrics"] if component == "model-service" else ["http"])
        for variant in contract["variants"]:
            pods = one(default_docs, "Deployment", f"canarylab-{component}-{variant}")["spec"]["template"]
            assert svc["spec"]["selector"].items() <= pods["metadata"]["labels"].items()


def test_a_service_monitor_for_each(default_docs: list[Doc], contract: dict[str, Any]) -> None:
    for component in ("app", "model-service"):
        sm = one(default_docs, "ServiceMonitor", f"canarylab-{component}")
        svc = one(default_docs, "Service", f"canarylab-{component}")
        assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
        assert sm["spec"]["namespaceSelector"] == {"matchNames": ["canarylab"]}
        (endpoint,) = sm["spec"]["endpoints"]
        # The model-service on its metrics listener (outside the request pool), the app on its port.
        expected = "metrics" if component == "model-service" else "http"
        assert endpoint["port"] == expected
        (svc_port,) = [p for p in svc["spec"]["ports"] if p["name"] == expected]
        assert endpoint["path"] == contract["paths"]["metrics"]
        if component == "model-service":
            assert svc_port["port"] == contract["ports"]["model_service_metrics"]
            assert svc_port["targetPort"] == "metrics"


def test_custom_monitoring_labels(custom_docs: list[Doc]) -> None:
    for sm in by_kind(custom_docs, "ServiceMonitor"):
        assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert sm["metadata"]["labels"]["team"] == "experiments"
        assert sm["spec"]["endpoints"][0]["interval"] == "15s"


# --- two releases side by side -------------------------------------------------------


def test_installable_twice_in_two_namespaces(render: Render) -> None:
    first = render(release="canarylab", namespace="team-a")
    second = render(release="canarylab", namespace="team-b")
    for docs, namespace in ((first, "team-a"), (second, "team-b")):
        # Only namespaced objects, all in the release namespace: nothing can clash across namespaces.
        assert all(d["metadata"]["namespace"] == namespace for d in docs)
        hosts = {dr["spec"]["host"] for dr in by_kind(docs, "DestinationRule")}
        assert all(h.endswith(f".{namespace}.svc.cluster.local") for h in hosts)
    kinds = {d["kind"] for d in first}
    assert not kinds & {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}
    # And twice in one namespace under two release names: no name is shared.
    other = render(release="exp2", namespace="team-a")
    names_a = {(d["kind"], d["metadata"]["name"]) for d in first}
    names_b = {(d["kind"], d["metadata"]["name"]) for d in other}
    assert not names_a & names_b


# --- the dashboard and the rules (generated by `canarylab dashboard render`) ---------


def _copy_chart(tmp_path: Path) -> Path:
    dest = tmp_path / "canarylab"
    shutil.copytree(CHART, dest)
    return dest


def test_dashboard_and_rules_follow_the_generated_files(default_docs: list[Doc]) -> None:
    """Once the generated files exist, the default render carries them."""
    dashboards = sorted((CHART / "dashboards").glob("*.json"))
    configmaps = [
        d for d in by_kind(default_docs, "ConfigMap") if d["metadata"]["name"] == "canarylab-dashboards"
    ]
    if dashboards:
        (cm,) = configmaps
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        for path in dashboards:
            assert json.loads(cm["data"][path.name]) == json.loads(path.read_text())
    else:
        assert configmaps == []
    rules = CHART / "files" / "rules.yaml"
    prom_rules = by_kind(default_docs, "PrometheusRule")
    if rules.exists():
        (rule,) = prom_rules
        loaded = yaml.safe_load(rules.read_text())
        groups = loaded["groups"] if isinstance(loaded, dict) else loaded
        assert rule["spec"]["groups"] == groups
    else:
        assert prom_rules == []


@pytest.mark.parametrize("rules_as", ["mapping", "list"])
def test_dashboard_configmap_and_prometheus_rule_templates(
    tmp_path: Path, render: Render, crd_schema_map: dict[SchemaKey, Doc], rules_as: str
) -> None:
    """The wrapping templates, with stand-in generated files in a copy of the chart."""
    chart = _copy_chart(tmp_path)
    dashboard = {"title": "canarylab test", "panels": [{"type": "timeseries", "title": "p99"}]}
    (chart / "dashboards").mkdir(exist_ok=True)
    (chart / "dashboards" / "test-dashboard.json").write_text(json.dumps(dashboard))
    groups = [
        {
            "name": "canarylab.test",
            "rules": [
                {"record": "canarylab:test:rate5m", "expr": "sum(rate(canarylab_model_requests_total[5m]))"},
                {"alert": "CanarylabTest", "expr": "vector(1) > 2", "for": "1m"},
            ],
        }
    ]
    body = {"groups": groups} if rules_as == "mapping" else groups
    (chart / "files" / "rules.yaml").write_text(yaml.safe_dump(body))
    docs = render(chart=chart, sets={"dashboard.folder": "lab"})
    cm = one(docs, "ConfigMap", "canarylab-dashboards")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"]["grafana_folder"] == "lab"
    assert json.loads(cm["data"]["test-dashboard.json"]) == dashboard
    rule = one(docs, "PrometheusRule", "canarylab")
    assert rule["spec"]["groups"] == groups
    validate_all([cm, rule], crd_schema_map)
    off = render(chart=chart, sets={"dashboard.enabled": "false", "prometheusRule.enabled": "false"})
    assert not by_kind(off, "ConfigMap")
    assert not by_kind(off, "PrometheusRule")


@pytest.mark.parametrize(
    "experiment", sorted((CHART.parents[1] / "experiments").glob("*.yml")), ids=lambda p: p.stem
)
def test_an_experiment_files_variants_render_as_the_file_says(
    experiment: Path, render: Render, tmp_path: Path
) -> None:
    """What experiment.yml deploys on the lab (canarylab/experiment/deployment.py): through helm
    and the chart's schema, each model-service Deployment has the file's replicas, threads and
    every knob the chart takes, as the local target would set them."""
    spec = load_spec(experiment)
    found = deployment(spec, chart_defaults(CHART.parents[1]))
    assert found.not_applied == {}, "every shipped file's env is a chart value"
    values = tmp_path / "variants.yaml"
    values.write_text(yaml.safe_dump(found.values))
    docs = render(values=[values])
    for v in spec.variants:
        deploy = one(docs, "Deployment", f"canarylab-model-service-{v.name}")
        env = env_of(deploy)
        assert deploy["spec"]["replicas"] == v.replicas
        assert env["MODEL_SERVICE_THREADS"] == str(v.threads)
        for name, text in v.env.items():
            assert float(env[name]) == float(text) if name.endswith("_MS") else env[name] == text, name
        knobs_off = {"MODEL_SERVICE_CPU_COST_MS": "0", "MODEL_SERVICE_SIMULATED_LATENCY_MS": "0"}
        for name, off in knobs_off.items():
            if name not in v.env:  # a knob the file leaves out is off, whatever ran before
                assert env[name] == off, name
