"""Fixtures of the chart tests (helpers in chart_helpers.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_helpers import (
    CHART,
    Doc,
    Render,
    SchemaKey,
    crd_schemas,
    go_module_dir,
    pins,
    run_helm,
    template_args,
)


@pytest.fixture(scope="session")
def contract() -> dict[str, Any]:
    loaded = yaml.safe_load((CHART / "files" / "contract.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="session")
def render() -> Render:
    """render(values=[...], sets={...}, release=..., namespace=..., chart=...) -> the objects."""

    def _render(
        values: list[Path] | None = None,
        sets: dict[str, str] | None = None,
        release: str = "canarylab",
        namespace: str = "canarylab",
        chart: Path = CHART,
    ) -> list[Doc]:
        out = run_helm(*template_args(chart, values, sets, release, namespace)).stdout
        return [d for d in yaml.safe_load_all(out) if d]

    return _render


@pytest.fixture(scope="session")
def crd_schema_map() -> dict[SchemaKey, Doc]:
    """The served CRD versions of Istio (istio.io/api) and the prometheus-operator."""
    p = pins()
    istio = go_module_dir(p["istio_api_module"], p["istio_api_module_version"])
    promop = go_module_dir(p["prometheus_operator_module"], p["prometheus_operator_module_version"])
    files = [istio / "kubernetes" / "customresourcedefinitions.gen.yaml"]
    files += sorted((promop / "example" / "prometheus-operator-crd").glob("*.yaml"))
    schemas = crd_schemas(files)
    for needed in [
        ("networking.istio.io/v1", "VirtualService"),
        ("networking.istio.io/v1", "DestinationRule"),
        ("networking.istio.io/v1", "Gateway"),
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
    ]:
        assert needed in schemas, f"no CRD schema for {needed} in the pinned modules"
    return schemas
