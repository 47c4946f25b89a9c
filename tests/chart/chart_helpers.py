"""Helpers of the chart tests: render the chart with helm, and the CRD schemas of
Istio and the prometheus-operator, fetched offline-capable from the Go module proxy
at the versions pinned in inventory/group_vars/all/versions.yml."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "canarylab"
VERSIONS = ROOT / "inventory" / "group_vars" / "all" / "versions.yml"
#: Where the CRD modules are downloaded: the user cache (scripts/env.sh's
#: CANARYLAB_CACHE), shared by every clone, never the clone itself.
GOMODCACHE = (
    Path(
        os.environ.get("CANARYLAB_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "canarylab"
    )
    / "gomod"
)

Doc = dict[str, Any]
Render = Callable[..., list[Doc]]
SchemaKey = tuple[str, str]  # (apiVersion, kind)


def pins() -> dict[str, Any]:
    loaded = yaml.safe_load(VERSIONS.read_text())
    assert isinstance(loaded, dict)
    return loaded


def helm_bin() -> str:
    found = shutil.which("helm")
    if not found:
        pytest.fail("helm is not on PATH: run `make setup` and `. scripts/env.sh`")
    return found


def run_helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([helm_bin(), *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def kube_version() -> str:
    """The Kubernetes version of the lab, as pinned for the cluster (default 1.32)."""
    return str(pins().get("kubernetes_version", "1.32.0"))


def template_args(
    chart: Path,
    values: list[Path] | None = None,
    sets: dict[str, str] | None = None,
    release: str = "canarylab",
    namespace: str = "canarylab",
) -> list[str]:
    args = ["template", release, str(chart), "--namespace", namespace, "--kube-version", kube_version()]
    for path in values or []:
        args += ["--values", str(path)]
    for key, value in (sets or {}).items():
        args += ["--set", f"{key}={value}"]
    return args


def _scratch_dir() -> Path:
    GOMODCACHE.mkdir(parents=True, exist_ok=True)
    return GOMODCACHE.parent


def go_module_dir(module: str, version: str) -> Path:
    """`go mod download` a pinned module into GOMODCACHE and return its directory."""
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        pytest.fail("go is missing: the CRD schemas come from Go modules (install Go >= 1.22)")
    env = {**os.environ, "GOMODCACHE": str(GOMODCACHE), "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    proc = subprocess.run(
        [go, "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        cwd=_scratch_dir(),
    )
    info = json.loads(proc.stdout) if proc.stdout.strip() else {}
    if proc.returncode != 0 or "Error" in info or "Dir" not in info:
        pytest.fail(f"go mod download {module}@{version} failed: {info.get('Error') or proc.stderr}")
    return Path(info["Dir"])


def strict(schema: Any, top: bool = False) -> Any:
    """Like kubeconform -strict: objects with declared properties reject unknown fields,
    unless the CRD lets them through (x-kubernetes-preserve-unknown-fields)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if isinstance(out.get("pattern"), str) and out["pattern"].startswith("^(?i)"):
        # Go's RE2 takes a flag group anywhere; Python only at the very start.
        out["pattern"] = "(?i)^" + out["pattern"][len("^(?i)") :]
    if top:
        props = dict(out.get("properties", {}))
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props.setdefault("metadata", {"type": "object"})
        out["properties"] = props
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


class CRDLoader(yaml.SafeLoader):
    """SafeLoader that reads a bare `=` (YAML 1.1 "value" tag, in some CRD enums) as a string."""


def _value_as_str(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


CRDLoader.add_constructor("tag:yaml.org,2002:value", _value_as_str)


def crd_schemas(paths: list[Path]) -> dict[SchemaKey, Doc]:
    schemas: dict[SchemaKey, Doc] = {}
    for path in paths:
        for doc in yaml.load_all(path.read_text(), Loader=CRDLoader):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group = doc["spec"]["group"]
            kind = doc["spec"]["names"]["kind"]
            for ver in doc["spec"]["versions"]:
                if ver.get("served", True):
                    schema = ver["schema"]["openAPIV3Schema"]
                    schemas[(f"{group}/{ver['name']}", kind)] = strict(schema, top=True)
    return schemas
