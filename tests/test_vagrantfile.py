"""The real Vagrantfile, evaluated: which box and box_version it hands to Vagrant.

Two ways in, both on a scratch copy of what the Vagrantfile reads (itself, lab.yml,
versions.yml):

- a small Ruby harness loads it with a stand-in ``Vagrant.configure`` that records
  every ``config.vm.<setting> = value`` (no Vagrant, no provider needed), so the
  box_version asserted is the one Vagrant would get, or none; with
  ``CANARYLAB_CONFIG_JSON=-`` the Vagrantfile also prints what it resolved, which must
  say the same and where box and version came from;
- the doctor's own fact gathering (canarylab/doctor/box.py), which runs real
  ``vagrant validate`` with ``CANARYLAB_CONFIG_JSON`` and reads the JSON: the doctor
  never resolves the box, the provider or the lab's size itself (labsize.py reads the
  size from the JSON's ``machines``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from canarylab.doctor import checks
from canarylab.doctor.box import FAILED, load_pins, vagrant_config
from canarylab.doctor.labsize import LabSize, SizeUnknown, VmSize, lab_size

ROOT = Path(__file__).resolve().parent.parent
VERSIONS = Path("inventory/group_vars/all/versions.yml")
PINS = yaml.safe_load((ROOT / VERSIONS).read_text())["vagrant_boxes"]
UBUNTU = PINS["ubuntu"]

pytestmark = pytest.mark.static

RUBY_HARNESS = """
require "json"
# Stands in for Vagrant's config: `config.vm` is the recorder itself, and every
# `x.setting = value` is kept; blocks (define, provider, trigger) are not run.
class Recorder
  attr_reader :settings
  def initialize; @settings = {}; end
  def method_missing(name, *args)
    @settings[name.to_s.chomp("=")] = args.first if name.to_s.end_with?("=")
    self
  end
  def respond_to_missing?(*) = true
end
module Vagrant
  def self.configure(_version)
    config = Recorder.new
    yield config
    settings = config.settings
    puts JSON.generate({"box" => settings["box"], "box_version" => settings["box_version"]})
  end
  module Errors; class VagrantError < StandardError; end; end
end
ARGV.replace(["status"])
load "Vagrantfile"
"""


def _lab(tmp_path: Path, lab_yml_extra: str = "") -> Path:
    """A scratch copy of the lab: the real Vagrantfile, lab.yml (plus extra keys) and versions.yml."""
    lab = tmp_path / "lab"
    (lab / VERSIONS.parent).mkdir(parents=True)
    shutil.copy(ROOT / "Vagrantfile", lab)
    shutil.copy(ROOT / VERSIONS, lab / VERSIONS)
    (lab / "lab.yml").write_text((ROOT / "lab.yml").read_text() + lab_yml_extra)
    return lab


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CANARYLAB_", "VAGRANT_"))}
    return {**env, **extra}


def _ruby() -> str:
    found = shutil.which("ruby")
    if found is None:
        pytest.fail("ruby is missing (Debian's vagrant package brings it): run `make setup`")
    return found


def _evaluate(lab: Path, env: dict[str, str]) -> tuple[dict[str, object], dict[str, object]]:
    """(what the harness recorded of config.vm, what the Vagrantfile printed as its config)."""
    result = subprocess.run(
        [_ruby(), "-e", RUBY_HARNESS],
        cwd=lab,
        env=_env({**env, "CANARYLAB_CONFIG_JSON": "-"}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    printed, recorded = result.stdout.strip().splitlines()[-2:]
    config: dict[str, object] = json.loads(printed)
    settings: dict[str, object] = json.loads(recorded)
    return settings, config


LAB_BOX = "\nbox: generic/debian12\nbox_version: ''\n"
LAB_BOX_PINNED = "\nbox: generic/debian12\nbox_version: '4.3.12'\n"

ENV, LAB, PIN = "environment", "lab.yml", "versions.yml"

# (name, extra lab.yml text, environment, expected box, expected box_version (None = no
# constraint), where the Vagrantfile says the box and the version came from)
CASES = [
    ("defaults", "", {}, UBUNTU["box"], UBUNTU["version"], PIN, PIN),
    ("os debian", "", {"CANARYLAB_OS": "debian"}, PINS["debian"]["box"], PINS["debian"]["version"], PIN, PIN),
    (
        "env box, empty env version",
        "",
        {"CANARYLAB_BOX": "generic/debian12", "CANARYLAB_BOX_VERSION": ""},
        "generic/debian12",
        None,
        ENV,
        ENV,
    ),
    (
        "env box alone: the pin is not for it",
        "",
        {"CANARYLAB_BOX": "generic/debian12"},
        "generic/debian12",
        None,
        ENV,
        None,
    ),
    ("empty env version, pinned box", "", {"CANARYLAB_BOX_VERSION": ""}, UBUNTU["box"], None, PIN, ENV),
    (
        "env version, pinned box",
        "",
        {"CANARYLAB_BOX_VERSION": "202404.26.0"},
        UBUNTU["box"],
        "202404.26.0",
        PIN,
        ENV,
    ),
    ("lab.yml box, empty version", LAB_BOX, {}, "generic/debian12", None, LAB, LAB),
    ("lab.yml box and version", LAB_BOX_PINNED, {}, "generic/debian12", "4.3.12", LAB, LAB),
    ("lab.yml null version", "\nbox_version:\n", {}, UBUNTU["box"], None, PIN, LAB),
    ("lab.yml empty box: the pin", "\nbox: ''\n", {}, UBUNTU["box"], UBUNTU["version"], PIN, PIN),
    (
        "env overrides lab.yml",
        LAB_BOX_PINNED,
        {"CANARYLAB_BOX": "cloud-image/ubuntu-24.04", "CANARYLAB_BOX_VERSION": ""},
        "cloud-image/ubuntu-24.04",
        None,
        ENV,
        ENV,
    ),
    (
        "env version overrides lab.yml version",
        LAB_BOX_PINNED,
        {"CANARYLAB_BOX_VERSION": "4.3.16"},
        "generic/debian12",
        "4.3.16",
        LAB,
        ENV,
    ),
    (
        "env box over lab.yml box: lab.yml's version was for its own box",
        LAB_BOX_PINNED,
        {"CANARYLAB_BOX": "cloud-image/ubuntu-24.04"},
        "cloud-image/ubuntu-24.04",
        None,
        ENV,
        None,
    ),
]
IDS = [case[0] for case in CASES]


@pytest.mark.parametrize(
    ("name", "lab_yml", "env", "box", "version", "box_from", "version_from"), CASES, ids=IDS
)
def test_vagrantfile_resolves_box_and_version(
    tmp_path: Path,
    name: str,
    lab_yml: str,
    env: dict[str, str],
    box: str,
    version: str | None,
    box_from: str,
    version_from: str | None,
) -> None:
    settings, config = _evaluate(_lab(tmp_path, lab_yml), env)
    assert settings == {"box": box, "box_version": version}, name
    # what the doctor reads (CANARYLAB_CONFIG_JSON) is what Vagrant gets, and says where from
    assert (config["box"], config["box_version"]) == (box, version), name
    assert (config["box_from"], config["version_from"]) == (box_from, version_from), name


DOCTOR_CASES = {
    "defaults": ({}, (UBUNTU["box"], UBUNTU["version"], PIN, PIN, "virtualbox"), "ok"),
    "env box, empty env version": (
        {
            "CANARYLAB_BOX": "generic/debian12",
            "CANARYLAB_BOX_VERSION": "",
            "VAGRANT_DEFAULT_PROVIDER": "libvirt",
        },
        ("generic/debian12", None, ENV, ENV, "libvirt"),
        "warn",
    ),
    # no vagrant-parallels here: `vagrant validate` exits 1 after the Vagrantfile wrote its JSON
    "provider without its plugin": (
        {"CANARYLAB_PROVIDER": "parallels"},
        (UBUNTU["box"], UBUNTU["version"], PIN, PIN, "parallels"),
        "ok",
    ),
}


@pytest.mark.parametrize("case", list(DOCTOR_CASES))
def test_doctor_asks_the_real_vagrantfile(tmp_path: Path, case: str) -> None:
    """The doctor's fact gathering runs real `vagrant validate`; nothing lands in the lab."""
    env, expected, status = DOCTOR_CASES[case]
    if shutil.which("vagrant") is None:
        pytest.fail("vagrant is missing: run `make setup` (apt: vagrant, vagrant-libvirt)")
    lab = _lab(tmp_path)
    before = sorted(str(p.relative_to(lab)) for p in lab.rglob("*"))
    config = vagrant_config(lab, _env({**env, "VAGRANT_HOME": str(tmp_path / "vagrant.d")}))
    assert config.values is not None, config.message
    values = config.values
    assert (
        tuple(values[k] for k in ("box", "box_version", "box_from", "version_from", "provider")) == expected
    )
    machines = values["machines"]
    assert isinstance(machines, list)
    assert [m["name"] for m in machines] == ["cl-controller", "cl-worker-1", "cl-worker-2"]
    # nothing written beside the Vagrantfile: no .vagrant/, no inventory/vagrant.yml
    assert sorted(str(p.relative_to(lab)) for p in lab.rglob("*")) == before
    check = checks.check_box(config, load_pins(lab), "amd64")
    assert (check.status, check.detail.split(" (")[0]) == (
        status,
        f"{expected[0]} {expected[1] or ''}".strip(),
    ), check


def _vagrant() -> None:
    if shutil.which("vagrant") is None:
        pytest.fail("vagrant is missing: run `make setup` (apt: vagrant, vagrant-libvirt)")


def test_doctor_sizes_are_lab_yml_s_through_the_real_vagrantfile(tmp_path: Path) -> None:
    """What the doctor checks memory, CPUs and disk against is lab.yml's size, via the Vagrantfile."""
    _vagrant()
    lab_yml = yaml.safe_load((ROOT / "lab.yml").read_text())
    config = vagrant_config(_lab(tmp_path), _env({"VAGRANT_HOME": str(tmp_path / "vagrant.d")}))
    size = lab_size(config)
    assert isinstance(size, LabSize), size
    controller, worker = lab_yml["controller"], lab_yml["worker"]
    assert (size.provider, size.workers) == (lab_yml["provider"], lab_yml["workers"])
    assert size.controller == VmSize(controller["cpus"], controller["memory"])
    assert size.worker == VmSize(worker["cpus"], worker["memory"])
    assert [m.size for m in size.machines[1:]] == [size.worker] * lab_yml["workers"]
    need = controller["memory"] + lab_yml["workers"] * worker["memory"]
    assert checks.check_memory(size, need + 4096).detail.startswith(
        f"{need + 4096} MB available, the VMs need {need} MB "
    )
    assert checks.check_disk(size, 500.0, "/x").detail.endswith(
        f"needs about {(1 + lab_yml['workers']) * checks.DISK_PER_VM_GB} GB"
    )


def test_doctor_sizes_follow_the_environment_through_the_real_vagrantfile(tmp_path: Path) -> None:
    _vagrant()
    env = {
        "CANARYLAB_WORKERS": "1",
        "CANARYLAB_WORKER_MEMORY": "2048",
        "CANARYLAB_CONTROLLER_CPUS": "3",
        "CANARYLAB_PROVIDER": "libvirt",
    }
    config = vagrant_config(_lab(tmp_path), _env({**env, "VAGRANT_HOME": str(tmp_path / "vagrant.d")}))
    size = lab_size(config)
    assert isinstance(size, LabSize), size
    assert (size.provider, size.workers) == ("libvirt", 1)
    assert (size.controller.cpus, size.worker.memory_mb) == (3, 2048)


def test_doctor_size_is_unknown_when_the_real_vagrantfile_stops(tmp_path: Path) -> None:
    _vagrant()
    env = {"CANARYLAB_WORKERS": "12", "VAGRANT_HOME": str(tmp_path / "vagrant.d")}
    size = lab_size(vagrant_config(_lab(tmp_path), _env(env)))
    assert size == SizeUnknown(FAILED, "the Vagrantfile failed: canarylab: workers must be 1 - 9, not 12")
    check = checks.check_memory(size, 16000)
    assert (check.status, check.detail) == (
        "warn",
        "16000 MB available; the lab's size is unknown: "
        "the Vagrantfile failed: canarylab: workers must be 1 - 9, not 12",
    )


def test_without_the_variable_nothing_is_written(tmp_path: Path) -> None:
    """CANARYLAB_CONFIG_JSON unset: the Vagrantfile prints nothing beyond the harness's line."""
    lab = _lab(tmp_path)
    result = subprocess.run(
        [_ruby(), "-e", RUBY_HARNESS],
        cwd=lab,
        env=_env({}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1
    assert sorted(p.name for p in lab.iterdir()) == ["Vagrantfile", "inventory", "lab.yml"]
