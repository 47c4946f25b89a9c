"""Doctor: every check's branches with fixture inputs, and the real checks on this machine."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from canarylab.cli import main
from canarylab.doctor import checks as c
from canarylab.doctor.box import (
    FAILED,
    NO_VAGRANT,
    TIMEOUT,
    PinnedBox,
    VagrantConfig,
    host_arch,
    load_pins,
    vagrant_config,
)
from canarylab.doctor.facts import HostFacts, parse_plugins, providers_from
from canarylab.doctor.labsize import LabSize, Machine, SizeUnknown, VmSize, lab_size, load_lab_size
from canarylab.doctor.run import lab_checks, lab_environment, local_checks, local_ports, run_doctor
from canarylab.errors import CanarylabError
from canarylab.procs import port_in_use
from canarylab_contract import LOCAL_PORTS


def _machines(workers: int = 2, worker: tuple[int, int] = (2, 4096)) -> list[dict[str, object]]:
    """The Vagrantfile's JSON ``machines`` (defaults: lab.yml's, 1 x 2 CPU/3072 + 2 x 2 CPU/4096)."""
    controller = {"name": "cl-controller", "group": "controller", "ip": "192.168.56.10", "cpus": 2}
    return [{**controller, "memory": 3072}] + [
        {
            "name": f"cl-worker-{i}",
            "group": "workers",
            "ip": f"192.168.56.{10 + i}",
            "cpus": worker[0],
            "memory": worker[1],
        }
        for i in range(1, workers + 1)
    ]


def _sized(provider: str = "virtualbox", workers: int = 2, worker: tuple[int, int] = (2, 4096)) -> LabSize:
    size = lab_size(VagrantConfig(values={"provider": provider, "machines": _machines(workers, worker)}))
    assert isinstance(size, LabSize), size
    return size


LAB = _sized()  # 11264 MB, 6 vCPUs, 3 VMs
BROKEN = SizeUnknown(FAILED, "the Vagrantfile failed: canarylab: workers must be 1 - 9, not 12")


def test_vagrant_missing_old_and_current() -> None:
    missing = c.check_vagrant(None)
    assert missing.status == "fail"
    assert missing.fix is not None
    assert "install Vagrant" in missing.fix
    assert c.check_vagrant("2.2.19").status == "warn"
    ok = c.check_vagrant("2.3.4")
    assert (ok.status, ok.detail) == ("ok", "Vagrant 2.3.4")


def test_providers_none_unusable_and_usable() -> None:
    assert c.check_providers([]).status == "fail"
    plugin_only = providers_from({"vagrant-libvirt": "0.11.2"}, None, None, None, None)
    check = c.check_providers(plugin_only)
    assert check.status == "fail"
    assert check.fix is not None
    assert "virsh is missing" in check.fix
    libvirt = providers_from({"vagrant-libvirt": "0.11.2"}, None, "9.0.0", None, None)
    assert c.check_providers(libvirt).status == "ok"
    assert "virsh 9.0.0" in c.check_providers(libvirt).detail
    vbox = providers_from({}, "7.0.14r161095", None, None, None)
    assert c.check_providers(vbox).status == "ok"
    # the lab's provider (lab.yml / CANARYLAB_PROVIDER) must be the usable one
    wrong = c.check_providers(libvirt, "virtualbox")
    assert wrong.status == "fail"
    assert wrong.fix is not None
    assert "CANARYLAB_PROVIDER=libvirt" in wrong.fix
    assert c.check_providers(libvirt, "libvirt").status == "ok"
    assert c.check_providers(plugin_only, "libvirt").fix == plugin_only[0].problem
    assert "virtualbox" in c.check_providers(plugin_only, "virtualbox").detail
    parallels_no_plugin = providers_from({}, None, None, None, "Parallels Desktop 19.1")
    assert parallels_no_plugin[0].problem == "run `vagrant plugin install vagrant-parallels`"


def test_parse_plugins() -> None:
    text = (
        "vagrant-libvirt (0.11.2, system)\n"
        "vagrant-vmware-desktop (3.0.3, global)\n"
        "  - Version Constraint: > 0\n"
    )
    assert parse_plugins(text) == {"vagrant-libvirt": "0.11.2", "vagrant-vmware-desktop": "3.0.3"}
    assert parse_plugins(None) == {}


@pytest.mark.parametrize(
    ("version", "status"),
    [("6.1.26r145957", "fail"), ("6.1.28", "ok"), ("7.0.14r161095", "ok"), ("garbage", "warn")],
)
def test_virtualbox_version(version: str, status: str) -> None:
    assert c.check_virtualbox_version(version).status == status


def test_vbox_networks_conf() -> None:
    assert c.check_vbox_networks(None).status == "ok"
    assert c.check_vbox_networks("* 192.168.56.0/21\n").status == "ok"
    assert c.check_vbox_networks("* 10.0.0.0/8 192.168.0.0/16\n").status == "ok"
    narrow = c.check_vbox_networks("* 192.168.56.0/24\n# * 192.168.56.0/21\n")
    assert narrow.status == "fail"
    assert narrow.fix is not None
    assert "* 192.168.56.0/21" in narrow.fix
    assert c.check_vbox_networks("* fd00::/8\n").status == "fail"


def test_virtualisation_linux_macos_other() -> None:
    assert c.check_virtualisation("Linux", frozenset({"fpu", "vmx"}), None, True).status == "ok"
    assert c.check_virtualisation("Linux", frozenset({"svm"}), None, None).status == "ok"
    assert c.check_virtualisation("Linux", frozenset({"fpu"}), None, True).status == "fail"
    assert c.check_virtualisation("Linux", frozenset({"vmx"}), None, False).status == "warn"
    assert c.check_virtualisation("Linux", None, None, None).status == "warn"
    assert c.check_virtualisation("Darwin", None, "1\n", None).status == "ok"
    assert c.check_virtualisation("Darwin", None, "0", None).status == "fail"
    assert c.check_virtualisation("Darwin", None, None, None).status == "fail"
    assert c.check_virtualisation("Windows", None, None, None).status == "warn"


def test_memory_cpus_disk_against_lab_size() -> None:
    assert c.check_memory(LAB, 4000).status == "fail"
    assert c.check_memory(LAB, 12000).status == "warn"  # 11264 MB of VMs, < 2048 left
    ok = c.check_memory(LAB, 16000)
    assert ok.status == "ok"
    assert ok.detail == (
        "16000 MB available, the VMs need 11264 MB "
        "(1 controller 2 CPU/3072 MB + 2 workers 2 CPU/4096 MB (the Vagrantfile))"
    )
    assert c.check_memory(LAB, None).status == "warn"
    assert c.check_cpus(LAB, 1).status == "fail"
    assert c.check_cpus(LAB, 4).status == "warn"
    assert c.check_cpus(LAB, 8).status == "ok"
    assert c.check_disk(LAB, 20.0, "/home").status == "fail"
    assert c.check_disk(LAB, 40.0, "/home").status == "warn"
    assert c.check_disk(LAB, 100.0, "/home").status == "ok"
    assert c.check_disk(LAB, None, "/home").status == "warn"
    assert c.check_cpus(LAB, None).status == "warn"
    small = _sized(workers=1, worker=(1, 2048))
    assert c.check_memory(small, 7000).status == "warn"  # 5120 MB of VMs + 2048 for the host
    assert c.check_memory(small, 7200).status == "ok"


def test_a_vm_bigger_than_the_host_fails_the_cpu_check() -> None:
    check = c.check_cpus(_sized(workers=1, worker=(8, 4096)), 4)
    assert (check.status, check.detail) == ("fail", "a VM wants 8 CPUs, the host has 4")


@pytest.mark.parametrize(
    ("unknown", "fix"),
    [
        (NO_VAGRANT, "install Vagrant"),
        (TIMEOUT, "CANARYLAB_CONFIG_JSON=- vagrant validate"),
        (FAILED, "fix lab.yml or the CANARYLAB_* variables"),
    ],
)
def test_size_checks_without_the_vagrantfile_s_answer_say_unknown(unknown: str, fix: str) -> None:
    """No guessing: each size check says the size is unknown, why, and the fix for that reason."""
    lab = SizeUnknown(unknown, "why it is unknown")
    found = [
        c.check_memory(lab, 16000),
        c.check_cpus(lab, 8),
        c.check_disk(lab, 100.0, "/home"),
        c.check_lab_provider(providers_from({}, "7.0.14", None, None, None), lab),
    ]
    for check in found:
        assert check.status == "warn", check
        assert "unknown" in check.detail, check
        assert "why it is unknown" in check.detail, check
        assert check.fix is not None, check
        assert fix in check.fix, check
    assert found[0].detail == "16000 MB available; the lab's size is unknown: why it is unknown"
    assert found[1].detail.startswith("8 host CPUs; ")
    assert found[2].detail.startswith("100 GB free on /home; ")
    assert "usable: virtualbox 7.0.14" in found[3].detail


def test_size_checks_unknown_when_the_host_cannot_be_read_either() -> None:
    assert c.check_memory(BROKEN, None).detail.startswith("cannot read the host's memory; ")
    assert c.check_cpus(BROKEN, None).detail.startswith("cannot count the host's CPUs; ")
    assert c.check_disk(BROKEN, None, "/home").detail.startswith("cannot read free disk space of /home; ")


def test_lab_provider_check_known_and_unknown() -> None:
    libvirt = providers_from({"vagrant-libvirt": "0.11.2"}, None, "9.0.0", None, None)
    assert c.check_lab_provider(libvirt, _sized("libvirt")).status == "ok"
    wrong = c.check_lab_provider(libvirt, _sized("virtualbox"))
    assert wrong == c.check_providers(libvirt, "virtualbox")
    assert wrong.status == "fail"
    # unknown provider, and none usable: that fails whatever the lab wants
    none = c.check_lab_provider([], BROKEN)
    assert none == c.check_providers([])
    assert none.status == "fail"


def test_lab_size_from_the_vagrantfile_s_machines() -> None:
    assert (LAB.vms, LAB.workers, LAB.memory_mb, LAB.cpus, LAB.largest_vm_cpus) == (3, 2, 11264, 6, 2)
    assert (LAB.controller, LAB.worker, LAB.provider) == (VmSize(2, 3072), VmSize(2, 4096), "virtualbox")
    assert LAB.machines[1] == Machine("cl-worker-1", "workers", 2, 4096)
    # machines of one group with different sizes are described apart
    uneven = _machines(workers=2)
    uneven[2] = {**uneven[2], "memory": 8192}
    size = lab_size(VagrantConfig(values={"provider": "libvirt", "machines": uneven}))
    assert isinstance(size, LabSize)
    assert size.describe() == (
        "1 controller 2 CPU/3072 MB + 1 workers 2 CPU/4096 MB + 1 workers 2 CPU/8192 MB (the Vagrantfile)"
    )
    assert LabSize((), "virtualbox").describe() == "no VMs (the Vagrantfile)"
    assert (LabSize((), "virtualbox").controller, LabSize((), "virtualbox").largest_vm_cpus) == (
        VmSize(0, 0),
        0,
    )


def test_lab_size_unknown_without_the_vagrantfile_s_answer() -> None:
    config = VagrantConfig(unknown=NO_VAGRANT, message="vagrant is not installed")
    assert lab_size(config) == SizeUnknown(NO_VAGRANT, "vagrant is not installed")
    assert lab_size(VagrantConfig(unknown=None, message="odd")) == SizeUnknown(FAILED, "odd")


@pytest.mark.parametrize(
    "values",
    [
        {"provider": "virtualbox"},
        {"provider": "virtualbox", "machines": []},
        {"provider": "virtualbox", "machines": "cl-controller"},
        {"machines": _machines()},
        {"provider": "", "machines": _machines()},
        {"provider": "virtualbox", "machines": [{"name": "cl-controller", "group": "controller", "cpus": 2}]},
        {"provider": "virtualbox", "machines": [{**_machines()[0], "memory": "3072"}]},
        {"provider": "virtualbox", "machines": [{**_machines()[0], "cpus": True}]},
        {"provider": "virtualbox", "machines": [{**_machines()[0], "cpus": 0}]},
        {"provider": "virtualbox", "machines": [{**_machines()[0], "name": None}]},
        {"provider": "virtualbox", "machines": [*_machines(), "a worker"]},
    ],
)
def test_lab_size_unknown_when_the_json_lacks_usable_machines(values: dict[str, object]) -> None:
    size = lab_size(VagrantConfig(values=values))
    assert isinstance(size, SizeUnknown), size
    assert size.unknown == FAILED
    assert "no usable provider and machines (name, group, cpus, memory in MB)" in size.message


def _host(**changes: object) -> HostFacts:
    facts: dict[str, object] = {
        "system": "Linux",
        "cpus": 8,
        "memory_mb": 16000,
        "memory_kind": "available",
        "disk_free_gb": 100.0,
        "disk_where": "/home",
        "cpu_flags": frozenset({"vmx"}),
        "hv_support": None,
        "kvm_device": True,
        "vagrant": "2.3.4",
        "providers": providers_from({"vagrant-libvirt": "0.11.2"}, None, "9.0.0", None, None),
        "arch": "amd64",
    }
    return HostFacts(**{**facts, **changes})  # type: ignore[arg-type]


def test_lab_checks_share_one_vagrantfile_answer() -> None:
    """The box and the size checks read the same answer: its provider and its machines."""
    config = _config(provider="libvirt", machines=_machines(workers=1))
    found = {ch.name: ch for ch in lab_checks(_host(), config, PINS)}
    assert found["provider"].detail.startswith("libvirt (the lab's provider) is usable")
    assert "libvirt on amd64" in found["box"].detail
    assert "the VMs need 7168 MB" in found["memory"].detail
    assert found["cpus"].detail == "8 host CPUs for 4 vCPUs"
    assert "needs about 20 GB" in found["disk"].detail
    assert "vbox-networks" not in found  # neither VirtualBox nor the lab's provider
    vbox = lab_checks(_host(), _config(provider="virtualbox", machines=_machines()), PINS)
    assert "vbox-networks" in {ch.name for ch in vbox}


def test_lab_checks_without_the_vagrantfile_s_answer() -> None:
    message = "the Vagrantfile failed: canarylab: os fedora is not one of ubuntu, debian"
    found = {ch.name: ch for ch in lab_checks(_host(), VagrantConfig(unknown=FAILED, message=message), PINS)}
    assert found["box"].status == "fail"
    for name in ("provider", "memory", "cpus", "disk"):
        assert found[name].status == "warn", found[name]
        assert message in found[name].detail, found[name]
    assert "vbox-networks" not in found  # provider unknown, no VirtualBox
    vbox = providers_from({}, "7.0.14", None, None, None)
    names = {ch.name for ch in lab_checks(_host(providers=vbox), VagrantConfig(unknown=NO_VAGRANT), PINS)}
    assert {"virtualbox", "vbox-networks"} <= names


def test_ports_and_tools() -> None:
    ports = {"app stable": 18091, "prometheus": 19090}
    assert c.check_ports(ports, set()).status == "ok"
    busy = c.check_ports(ports, {19090})
    assert busy.status == "fail"
    assert "prometheus 19090" in busy.detail
    assert c.check_tool("bombardier", None, None, "setup").status == "fail"
    assert c.check_tool("bombardier", "/x/bombardier", "v1.2.6", "setup", pinned="v1.2.6").status == "ok"
    assert c.check_tool("bombardier", "/x/bombardier", "v1.2.5", "setup", pinned="v1.2.6").status == "warn"
    assert c.check_tool("bombardier", "/x/bombardier", None, "setup", pinned="v1.2.6").status == "warn"


def test_load_lab_size_asks_the_vagrantfile_or_raises(tmp_path: Path) -> None:
    """For `canarylab up`: the Vagrantfile's size, or an error saying why there is none."""
    with pytest.raises(CanarylabError, match="lab size unknown: vagrant is not installed"):
        load_lab_size(tmp_path, {"PATH": str(tmp_path)})
    written = json.dumps({"box": "b", "provider": "libvirt", "machines": _machines(workers=3)})
    env = _stub_vagrant(tmp_path, f"echo '{written}' > \"$CANARYLAB_CONFIG_JSON\"")
    size = load_lab_size(tmp_path, env)
    assert (size.provider, size.workers, size.memory_mb) == ("libvirt", 3, 3072 + 3 * 4096)


# --- the box: the Vagrantfile's answer, and whether that build is known to exist -------

UBUNTU_PIN = PinnedBox(
    "bento/ubuntu-24.04",
    "202510.26.0",
    {"virtualbox": frozenset({"amd64", "arm64"}), "libvirt": frozenset({"amd64"})},
    "cloud-image/ubuntu-24.04",
)
PINS = {"ubuntu": UBUNTU_PIN}


def _config(**values: object) -> VagrantConfig:
    """What the Vagrantfile writes to CANARYLAB_CONFIG_JSON (defaults: the pin), with ``values``."""
    written: dict[str, object] = {
        "provider": "libvirt",
        "os": "ubuntu",
        "box": UBUNTU_PIN.box,
        "box_version": UBUNTU_PIN.version,
        "box_from": "versions.yml",
        "version_from": "versions.yml",
        "machines": _machines(),
    }
    return VagrantConfig(values={**written, **values})


def test_box_known_build_is_ok() -> None:
    check = c.check_box(_config(), PINS, "amd64")
    assert check.status == "ok"
    assert "bento/ubuntu-24.04 202510.26.0 (pinned in versions.yml), libvirt on amd64" in check.detail


def test_box_without_a_build_for_provider_and_arch_warns_with_the_fallback() -> None:
    check = c.check_box(_config(), PINS, "arm64")
    assert check.status == "warn"
    assert "no libvirt arm64 build of bento/ubuntu-24.04 202510.26.0" in check.detail
    assert check.fix is not None
    assert 'set `box: cloud-image/ubuntu-24.04` and `box_version: ""` in lab.yml' in check.fix
    assert "CANARYLAB_BOX=cloud-image/ubuntu-24.04 CANARYLAB_BOX_VERSION= " in check.fix
    assert "another provider (virtualbox" in check.fix


def test_box_provider_with_no_builds_at_all_warns() -> None:
    check = c.check_box(_config(provider="parallels"), PINS, "amd64")
    assert check.status == "warn"
    assert check.fix is not None
    assert "(libvirt, virtualbox" in check.fix


def test_box_of_another_name_is_not_confirmed() -> None:
    config = _config(box="generic/debian12", box_version=None, box_from="environment", version_from=None)
    check = c.check_box(config, PINS, "arm64")
    assert check.status == "warn"
    assert "generic/debian12 (no version constraint" in check.detail
    assert "(from the environment; no version set" in check.detail
    assert "not confirmed" in check.detail
    assert check.fix is not None
    assert "portal.cloud.hashicorp.com/vagrant/discover/generic/debian12" in check.fix


def test_box_pinned_name_at_another_version_is_not_confirmed() -> None:
    check = c.check_box(_config(box_version="202404.26.0", version_from="lab.yml"), PINS, "amd64")
    assert check.status == "warn"
    assert "202404.26.0 (box from versions.yml, version from lab.yml)" in check.detail
    assert "not confirmed" in check.detail


def test_box_on_an_unknown_architecture_warns() -> None:
    check = c.check_box(_config(provider="virtualbox"), PINS, None)
    assert check.status == "warn"
    assert "cannot tell this host's architecture" in check.detail


def test_box_for_an_os_without_recorded_builds_is_not_confirmed() -> None:
    check = c.check_box(_config(os="debian"), PINS, "amd64")
    assert check.status == "warn"
    assert "records no builds for os 'debian'" in check.detail


def test_box_unknown_without_vagrant_warns() -> None:
    check = c.check_box(VagrantConfig(unknown=NO_VAGRANT, message="vagrant is not installed"), PINS, "amd64")
    assert (check.status, check.detail) == ("warn", "unknown: vagrant is not installed")
    assert check.fix is not None
    assert "install Vagrant" in check.fix


def test_box_unknown_when_vagrant_hangs_warns() -> None:
    check = c.check_box(VagrantConfig(unknown=TIMEOUT, message="did not finish"), PINS, "amd64")
    assert check.status == "warn"
    assert check.fix is not None
    assert "CANARYLAB_CONFIG_JSON=- vagrant validate" in check.fix


def test_box_unknown_when_the_vagrantfile_fails() -> None:
    message = "the Vagrantfile failed: canarylab: os fedora is not one of ubuntu, debian"
    check = c.check_box(VagrantConfig(unknown=FAILED, message=message), PINS, "amd64")
    assert (check.status, check.detail) == ("fail", f"unknown: {message}")
    assert check.fix is not None
    assert "lab.yml" in check.fix


@pytest.mark.parametrize(
    ("machine", "arch"),
    [("x86_64", "amd64"), ("AMD64", "amd64"), ("arm64", "arm64"), ("aarch64", "arm64"), ("riscv64", None)],
)
def test_host_arch(machine: str, arch: str | None) -> None:
    assert host_arch(machine) == arch


# --- asking the Vagrantfile, with a stand-in `vagrant` (the real one: tests/test_vagrantfile.py)


def _stub_vagrant(tmp_path: Path, script: str) -> dict[str, str]:
    """An environment whose only `vagrant` runs ``script`` (sh); the lab is tmp_path."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "vagrant").write_text(f"#!/bin/sh\n{script}\n")
    (bin_dir / "vagrant").chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


def test_vagrant_config_without_vagrant(tmp_path: Path) -> None:
    config = vagrant_config(tmp_path, {"PATH": str(tmp_path)})
    assert (config.values, config.unknown, config.message) == (None, NO_VAGRANT, "vagrant is not installed")


def test_vagrant_config_reads_the_json_even_when_validate_fails(tmp_path: Path) -> None:
    """A provider whose plugin is missing: validate exits 1 after the Vagrantfile wrote the JSON."""
    script = (
        'echo \'{"box": "bento/ubuntu-24.04", "provider": "parallels"}\' > "$CANARYLAB_CONFIG_JSON"; exit 1'
    )
    config = vagrant_config(tmp_path, _stub_vagrant(tmp_path, script))
    assert config.values == {"box": "bento/ubuntu-24.04", "provider": "parallels"}


def test_vagrant_config_passes_the_vagrantfile_s_message(tmp_path: Path) -> None:
    script = (
        'echo "Vagrant failed to initialize at a very early stage:" >&2; echo >&2; '
        'echo "canarylab: workers must be 1 - 9, not 12" >&2; exit 1'
    )
    config = vagrant_config(tmp_path, _stub_vagrant(tmp_path, script))
    assert (config.unknown, config.message) == (
        FAILED,
        "the Vagrantfile failed: canarylab: workers must be 1 - 9, not 12",
    )


def test_vagrant_config_without_json_or_with_bad_json(tmp_path: Path) -> None:
    silent = vagrant_config(tmp_path, _stub_vagrant(tmp_path, "exit 0"))
    assert silent.unknown == FAILED
    assert "wrote no CANARYLAB_CONFIG_JSON" in silent.message
    (tmp_path / "bin/vagrant").write_text('#!/bin/sh\necho "{" > "$CANARYLAB_CONFIG_JSON"\n')
    broken = vagrant_config(tmp_path, {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"})
    assert broken.unknown == FAILED
    assert "invalid JSON" in broken.message


def test_vagrant_config_gives_up_after_the_timeout(tmp_path: Path) -> None:
    config = vagrant_config(tmp_path, _stub_vagrant(tmp_path, "exec sleep 30"), timeout=0.5)
    assert config.unknown == TIMEOUT
    assert "0.5 s" in config.message


def test_vagrant_config_runs_validate_in_the_project_with_a_scratch_dotfile(tmp_path: Path) -> None:
    """cwd and VAGRANT_CWD are the project; .vagrant/ goes to a temporary directory."""
    script = (
        'printf \'{"box": "b", "argv": "%s", "cwd": "%s", "vagrant_cwd": "%s", "dotfile": "%s"}\' '
        '"$*" "$PWD" "$VAGRANT_CWD" "$VAGRANT_DOTFILE_PATH" > "$CANARYLAB_CONFIG_JSON"'
    )
    config = vagrant_config(tmp_path, _stub_vagrant(tmp_path, script))
    assert config.values is not None
    assert config.values["argv"] == "validate --ignore-provider --no-color"
    assert config.values["cwd"] == config.values["vagrant_cwd"] == str(tmp_path)
    assert not str(config.values["dotfile"]).startswith(str(tmp_path))


def test_every_pinned_box_records_its_builds(root: Path) -> None:
    """Each pin says, per provider the Vagrantfile accepts, which architectures are known built."""
    providers = {"virtualbox", "libvirt", "vmware_desktop", "parallels"}
    pins = load_pins(root)
    assert set(pins) == {"ubuntu", "debian"}
    for os_name, pinned in pins.items():
        assert set(pinned.builds) == providers, os_name
        assert all(archs <= {"amd64", "arm64"} for archs in pinned.builds.values())
        assert pinned.fallback
    # what upstream says (versions.yml's comment): bento builds no arm64 libvirt box (chef/bento#1660)
    assert "arm64" not in pins["ubuntu"].builds["libvirt"]
    assert load_pins(root / "nowhere") == {}


# --- the real checks on this machine ------------------------------------------------


def test_local_ports_cover_the_contract() -> None:
    expected = {LOCAL_PORTS["prometheus"]}
    for name in ("model_service", "model_service_metrics", "app"):
        ports = LOCAL_PORTS[name]
        assert isinstance(ports, Mapping), name
        expected |= set(ports.values())
    assert set(local_ports().values()) == expected


@pytest.fixture
def busy_port() -> Iterator[int]:
    """The local target's Prometheus port, made busy for the test (or already busy: other work
    on this machine may run a local target, and that must be reported the same way)."""
    port = int(str(LOCAL_PORTS["prometheus"]))
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: ignore TIME_WAIT
        for _ in range(50):
            try:
                s.bind(("127.0.0.1", port))
                s.listen()
                break
            except OSError:
                if port_in_use(port):
                    break
                time.sleep(0.1)
        else:
            pytest.fail(f"port {port} can neither be bound nor connected to")
        yield port


def test_real_local_checks_see_a_busy_port(root: Path, busy_port: int) -> None:
    found = {ch.name: ch for ch in local_checks(root, {busy_port})}
    assert found["ports"].status == "fail"
    assert str(busy_port) in found["ports"].detail
    real = {ch.name: ch for ch in run_doctor(root, "local")}
    assert real["ports"].status == "fail"  # gathered for real: the fixture listens there
    assert real["bombardier"].status in ("ok", "warn")
    assert real["prometheus"].status == "ok"
    assert "2." in (real["prometheus"].detail or "")


def test_real_lab_checks_on_this_machine(root: Path) -> None:
    """Everything is gathered for real; the outcome must agree with what the OS says."""
    found = {ch.name: ch for ch in run_doctor(root, "lab", environ={})}
    assert {"ansible", "vagrant", "provider", "box", "virtualisation", "memory", "cpus", "disk"} <= set(found)
    version = subprocess.run(["vagrant", "--version"], capture_output=True, text=True, check=False)
    if version.returncode == 0:
        assert found["vagrant"].detail in version.stdout
    else:
        assert found["vagrant"].status == "fail"
    flags = Path("/proc/cpuinfo").read_text()
    has_virt = " vmx" in flags or " svm" in flags
    assert (found["virtualisation"].status != "fail") == has_virt
    lab = lab_size(vagrant_config(root, lab_environment({})))
    if isinstance(lab, LabSize):
        assert lab.describe() in found["memory"].detail
        arch = host_arch()
        assert f"{lab.provider} on {arch or 'an unknown architecture'}" in found["box"].detail
    else:
        assert lab.message in found["memory"].detail
        assert found["memory"].status == "warn"


def test_cli_doctor_json_and_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", "--target", "lab", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["target"] == "lab"
    assert code == (0 if out["ok"] else 1)
    assert out["ok"] == all(ch["status"] != "fail" for ch in out["checks"])
    statuses = {ch["status"] for ch in out["checks"]}
    assert statuses <= {"ok", "warn", "fail"}


def test_cli_doctor_text_names_fixes(capsys: pytest.CaptureFixture[str], busy_port: int) -> None:
    code = main(["doctor", "--target", "local"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL  ports" in out
    assert "fix: stop what listens there" in out
    assert out.rstrip().endswith("local: not ready: fix the FAIL lines above")
