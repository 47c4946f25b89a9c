"""roles/containerd: the config.toml format follows the containerd that is installed.

containerd 1.x reads config version 2, containerd 2.x reads version 3; the role
reads `containerd --version` and renders templates/config.toml.j2 for it.  Both
branches are rendered here and parsed as TOML.

In a container (the container lab's nodes) root lacks CAP_SYS_RESOURCE and may not
lower oom_score_adj; without the CRI's restrict_oom_score_adj runc fails every
container start ("can't get final child's PID from pipe: EOF").  The role turns it
on from the host's facts (containerd_in_container), in both formats."""

from __future__ import annotations

import importlib.util
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

ROLE = Path(__file__).resolve().parent.parent / "roles" / "containerd"
SANDBOX = "registry.k8s.io/pause:3.10"


def _filters() -> Any:
    spec = importlib.util.spec_from_file_location(
        "containerd_filters", ROLE / "filter_plugins" / "containerd.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FILTERS = _filters()


def render_text(
    config_version: int, systemd_cgroup: bool = True, restrict_oom_score_adj: bool = False
) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["bool"] = bool
    return env.from_string((ROLE / "templates" / "config.toml.j2").read_text()).render(
        ansible_managed="Ansible managed",
        containerd_config_version=config_version,
        containerd_sandbox_image=SANDBOX,
        containerd_systemd_cgroup=systemd_cgroup,
        containerd_restrict_oom_score_adj=restrict_oom_score_adj,
    )


def render(
    config_version: int, systemd_cgroup: bool = True, restrict_oom_score_adj: bool = False
) -> dict[str, Any]:
    return tomllib.loads(render_text(config_version, systemd_cgroup, restrict_oom_score_adj))


@pytest.mark.parametrize(
    ("output", "version", "config_version"),
    [
        (
            "containerd github.com/containerd/containerd/v2 v2.0.5 fb4c30d4ede3531652d86197bf3fc9515e5276d9",
            "2.0.5",
            3,
        ),
        (
            "containerd github.com/containerd/containerd v1.7.27 05044ec0a9a75232cad458027ca83437aae3f4da",
            "1.7.27",
            2,
        ),
        ("containerd containerd.io 1.7.27 05044ec0a9a75232cad458027ca83437aae3f4da", "1.7.27", 2),
        ("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1", "1.6.20", 2),
        (
            "containerd github.com/containerd/containerd/v2 v2.1.4 75cb2b7193e4e490e9fbdc236c0e811ccaba3376",
            "2.1.4",
            3,
        ),
    ],
)
def test_config_version_follows_the_installed_containerd(
    output: str, version: str, config_version: int
) -> None:
    assert FILTERS.containerd_version(output) == version
    assert FILTERS.containerd_config_version(output) == config_version


def test_unparseable_version_output_is_an_error() -> None:
    with pytest.raises(ValueError, match="no containerd version"):
        FILTERS.containerd_config_version("containerd: command not found")


def test_filters_are_exported_to_ansible() -> None:
    names = FILTERS.FilterModule().filters()
    assert set(names) == {"canarylab_containerd_version", "canarylab_containerd_config_version"}


def test_version_2_config_for_containerd_1x() -> None:
    config = render(2)
    assert config["version"] == 2
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == SANDBOX
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"]["SystemdCgroup"] is True
    assert not any(key.startswith("io.containerd.cri.v1") for key in config["plugins"])


def test_version_3_config_for_containerd_2x() -> None:
    config = render(3)
    assert config["version"] == 3
    plugins = config["plugins"]
    assert plugins["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == SANDBOX
    runc = plugins["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"]["SystemdCgroup"] is True
    assert "io.containerd.grpc.v1.cri" not in plugins


@pytest.mark.parametrize("config_version", [2, 3])
def test_systemd_cgroup_can_be_turned_off(config_version: int) -> None:
    text = str(render(config_version, systemd_cgroup=False))
    assert "'SystemdCgroup': False" in text


def _cri_runtime(config: dict[str, Any]) -> dict[str, Any]:
    """The table that holds restrict_oom_score_adj: the CRI plugin (v2), its runtime part (v3)."""
    plugins = config["plugins"]
    return (
        plugins["io.containerd.cri.v1.runtime"]
        if config["version"] == 3
        else plugins["io.containerd.grpc.v1.cri"]
    )


@pytest.mark.parametrize("config_version", [2, 3])
def test_restrict_oom_score_adj_in_a_container(config_version: int) -> None:
    config = render(config_version, restrict_oom_score_adj=True)
    assert _cri_runtime(config)["restrict_oom_score_adj"] is True
    # the rest of the config is what it is on a VM
    assert _cri_runtime(config)["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True


@pytest.mark.parametrize("config_version", [2, 3])
def test_a_vm_s_config_does_not_mention_restrict_oom_score_adj(config_version: int) -> None:
    assert "restrict_oom_score_adj" not in render_text(config_version)
    assert "restrict_oom_score_adj" not in _cri_runtime(render(config_version))


def test_restrict_oom_score_adj_follows_the_container_fact() -> None:
    """The role's default is the container fact, which is read from the facts, never the inventory."""
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert defaults["containerd_restrict_oom_score_adj"] == "{{ containerd_in_container }}"
    assert "ansible_facts['virtualization_type']" in defaults["containerd_in_container"]
    assert "ansible_facts['virtualization_role']" in defaults["containerd_in_container"]


def _containerd_2() -> Path:
    """The pinned containerd 2.x, built by scripts/setup.sh into .cache/bin/containerd-<version>."""
    pins = yaml.safe_load((ROLE.parents[1] / "inventory/group_vars/all/versions.yml").read_text())
    binary = ROLE.parents[1] / ".cache" / "bin" / f"containerd-{pins['containerd_version']}"
    if not binary.is_file():
        pytest.fail(f"{binary} is missing: run `make setup` (it builds the pinned containerd)")
    return binary


@pytest.mark.parametrize("restrict", [False, True], ids=["vm", "container"])
def test_containerd_2_reads_the_version_3_config(tmp_path: Path, restrict: bool) -> None:
    """The pinned containerd itself parses the version-3 config: `containerd config dump`
    shows the pinned sandbox image, SystemdCgroup and restrict_oom_score_adj under the v3
    plugin ids."""
    binary = _containerd_2()
    config = tmp_path / "config.toml"
    config.write_text(
        render_text(
            FILTERS.containerd_config_version(
                subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
            ),
            restrict_oom_score_adj=restrict,
        )
    )
    result = subprocess.run(
        [binary, "--config", config, "config", "dump"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "Ignoring unknown key" not in result.stderr
    dump = tomllib.loads(result.stdout)
    assert dump["version"] == 3
    assert dump["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == SANDBOX
    runc = dump["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["runc"]
    assert runc["options"]["SystemdCgroup"] is True
    assert dump["plugins"]["io.containerd.cri.v1.runtime"]["restrict_oom_score_adj"] is restrict
