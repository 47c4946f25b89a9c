"""`canarylab up/provision/status/down/destroy` end to end against a fake `vagrant` (and
`VBoxManage`, `kubectl`) on PATH, in a throw-away project dir: the flow, the arguments
Vagrant gets, the real site-playbook run through ansible-runner, and the error paths."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import stat
import sys
import time
from pathlib import Path

import pytest

from canarylab.cli import main
from canarylab.commands import lab as lab_command
from canarylab.procs import ProcessGroup

FAKE_VAGRANT = r"""#!/bin/sh
echo "vagrant $*" >> "$FAKE_LOG"
case "$1" in
  --version) echo "Vagrant 2.3.4" ;;
  plugin) echo "No plugins installed." ;;
  up)
    if [ -n "$FAKE_UP_SLEEP" ]; then sleep "$FAKE_UP_SLEEP"; fi
    cat > inventory/vagrant.yml <<'INV'
all:
  children:
    controller:
      hosts:
        localhost:
          ansible_connection: local
          ansible_python_interpreter: "{{ ansible_playbook_python }}"
INV
    exit "${FAKE_UP_RC:-0}" ;;
  status)
    echo "1700000000,cl-controller,metadata,provider,virtualbox"
    echo "1700000000,cl-controller,provider-name,virtualbox"
    echo "1700000000,cl-controller,state,${FAKE_STATE:-running}"
    echo "1700000000,cl-worker-1,provider-name,virtualbox"
    echo "1700000000,cl-worker-1,state,${FAKE_STATE:-running}"
    echo "1700000000,,ui,info,Current machine states:" ;;
  validate)
    # what the real Vagrantfile writes under CANARYLAB_CONFIG_JSON (the doctor's lab size)
    cat > "$CANARYLAB_CONFIG_JSON" <<'JSON'
{"provider": "virtualbox", "os": "ubuntu", "box": "bento/ubuntu-24.04", "machines": [
 {"name": "cl-controller", "group": "controller", "ip": "192.168.56.10", "cpus": 2, "memory": 3072},
 {"name": "cl-worker-1", "group": "workers", "ip": "192.168.56.11", "cpus": 2, "memory": 4096}]}
JSON
    ;;
  halt|destroy) exit 0 ;;
  *) echo "fake vagrant: unexpected $*" >&2; exit 9 ;;
esac
"""

FAKE_VBOXMANAGE = """#!/bin/sh
echo "7.0.14r161095"
"""

FAKE_KUBECTL = r"""#!/bin/sh
echo "kubectl $*" >> "$FAKE_LOG"
case "$*" in
  *"get nodes"*)
    echo "NAME            STATUS   ROLES           AGE"
    echo "cl-controller   Ready    control-plane   5m" ;;
  *"get pods"*)
    echo "NAME          READY   STATUS    RESTARTS   AGE"
    echo "pod-abc       2/2     Running   0          1m" ;;
esac
exit "${FAKE_KUBECTL_RC:-0}"
"""

SITE = """---
- name: Base
  hosts: all
  gather_facts: false
  tasks:
    - name: Record that the site playbook ran
      ansible.builtin.shell: echo "playbook site" >> "{{ lookup('env', 'FAKE_LOG') }}"
      changed_when: true

- name: Cluster
  hosts: controller
  gather_facts: false
  tasks:
    - name: Fail when asked to
      ansible.builtin.fail:
        msg: provisioning-broke-here
      when: lookup('env', 'FAKE_SITE_FAIL') | length > 0
"""

MESH = """---
canarylab_namespace: canarylab
canarylab_gateway_ip: 192.168.56.200
canarylab_grafana_ip: 192.168.56.201
canarylab_prometheus_ip: 192.168.56.202
"""


def _script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def lab(tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project dir with a tiny site playbook, and fake vagrant/VBoxManage/kubectl first on PATH."""
    project = tmp_path / "project"
    (project / "playbooks").mkdir(parents=True)
    (project / "inventory" / "group_vars" / "all").mkdir(parents=True)
    (project / "roles" / "canarylab" / "defaults").mkdir(parents=True)
    shutil.copy(root / "ansible.cfg", project / "ansible.cfg")
    (project / "playbooks" / "site.yml").write_text(SITE)
    (project / "roles" / "canarylab" / "defaults" / "main.yml").write_text(MESH)
    (project / "lab.yml").write_text("provider: virtualbox\nworkers: 1\n")
    fakebin = tmp_path / "bin"
    fakebin.mkdir()
    _script(fakebin / "vagrant", FAKE_VAGRANT)
    _script(fakebin / "VBoxManage", FAKE_VBOXMANAGE)
    _script(fakebin / "kubectl", FAKE_KUBECTL)
    monkeypatch.setenv("PATH", f"{fakebin}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin")
    monkeypatch.setenv("CANARYLAB_ROOT", str(project))
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "calls.log"))
    monkeypatch.setenv("ANSIBLE_LOCAL_TEMP", str(tmp_path / "ansible-tmp"))
    for var in ("CANARYLAB_PROVIDER", "VAGRANT_DEFAULT_PROVIDER", "CANARYLAB_WORKERS"):
        monkeypatch.delenv(var, raising=False)
    return project


def _calls(lab: Path) -> list[str]:
    log = lab.parent / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_up_runs_vagrant_up_no_provision_then_the_site_playbook(
    lab: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["up", "--no-progress"]) == 0
    calls = _calls(lab)
    assert "vagrant up --no-provision" in calls
    assert calls.index("vagrant up --no-provision") < calls.index("playbook site")
    assert not any(c.startswith("vagrant provision") for c in calls)
    out = capsys.readouterr().out
    assert "provisioning phases:" in out
    records = list((lab / "results").glob("provision-*.json"))
    assert len(records) == 1
    assert records[0].name in out
    record = json.loads(records[0].read_text())
    assert record["ok"] is True
    assert [(p["name"], p["kind"]) for p in record["phases"]] == [
        ("vagrant up", "vagrant"),
        ("Base", "play"),
        ("Cluster", "play"),
    ]
    assert record["total_seconds"] >= sum(p["seconds"] for p in record["phases"]) - 0.01
    assert record["versions"]["vagrant"] == "2.3.4"
    assert record["versions"]["provider virtualbox"] == "7.0.14r161095"
    assert record["host"]["cpus"] == os.cpu_count()
    assert record["lab"]["workers"] == 1
    assert Path(record["log_path"]).is_file()
    assert (lab / ".cache" / "runner").is_dir()  # the run's private data dir, inside the project


@pytest.mark.parametrize("argv", [["up", "--provision", "--no-progress"], ["provision", "--no-progress"]])
def test_provision_only_skips_vagrant_up(lab: Path, argv: list[str]) -> None:
    (lab / "inventory" / "vagrant.yml").write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        '      ansible_python_interpreter: "{{ ansible_playbook_python }}"\n'
    )
    assert main(argv) == 0
    calls = _calls(lab)
    assert "playbook site" in calls
    assert not any(c.startswith("vagrant up") for c in calls)
    assert (
        json.loads(next((lab / "results").glob("provision-*.json")).read_text())["phases"][0]["name"]
        == "Base"
    )


def test_provision_without_inventory_says_to_run_up(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["provision", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "inventory/vagrant.yml is missing" in err
    assert "run `canarylab up`" in err
    assert "--inventory PATH" in err


def _runner_command(record: dict[str, object]) -> list[str]:
    """The ansible-playbook command line ansible-runner ran (artifacts/<ident>/command)."""
    command = Path(str(record["log_path"])).parent / "command"
    return list(json.loads(command.read_text())["command"])


@pytest.mark.parametrize("argv", [["provision"], ["up", "--provision"]])
def test_provision_with_inventory_runs_the_site_playbook_on_it(
    lab: Path, tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """--inventory PATH goes to ansible-runner as the inventory; no inventory/vagrant.yml needed."""
    servers = tmp_path / "elsewhere" / "servers.yml"
    servers.parent.mkdir()
    servers.write_text(
        "all:\n  children:\n    controller:\n      hosts:\n        localhost:\n"
        "          ansible_connection: local\n"
        '          ansible_python_interpreter: "{{ ansible_playbook_python }}"\n'
    )
    assert not (lab / "inventory" / "vagrant.yml").exists()
    assert main([*argv, "--no-progress", "--inventory", str(servers)]) == 0
    assert "playbook site" in _calls(lab)
    # hosts of one's own: no VM is started, and Vagrant is not asked for the lab size
    assert not any(c.startswith(("vagrant up", "vagrant validate")) for c in _calls(lab))
    assert f"(inventory {servers})" in capsys.readouterr().out
    record = json.loads(next((lab / "results").glob("provision-*.json")).read_text())
    assert record["lab"] == {"inventory": str(servers)}
    command = _runner_command(record)
    assert command[command.index("-i") + 1] == str(servers)


def test_up_with_an_inventory_but_without_provision_is_refused(
    lab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    servers = tmp_path / "servers.yml"
    servers.write_text("all:\n  hosts:\n    localhost:\n")
    assert main(["up", "--no-progress", "--inventory", str(servers)]) == 2
    assert "canarylab provision --inventory PATH" in capsys.readouterr().err
    assert not any(c.startswith(("vagrant up", "vagrant validate")) for c in _calls(lab))


def test_provision_with_a_missing_inventory_fails_before_anything_runs(
    lab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["up", "--no-progress", "--inventory", str(tmp_path / "nope.yml")]) == 2
    err = capsys.readouterr().err
    assert f"inventory not found: {tmp_path / 'nope.yml'}" in err
    assert "--inventory" in err
    assert _calls(lab) == []  # neither vagrant nor the playbook ran


def test_provision_defaults_to_the_vagrant_inventory(lab: Path) -> None:
    (lab / "inventory" / "vagrant.yml").write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        '      ansible_python_interpreter: "{{ ansible_playbook_python }}"\n'
    )
    assert main(["provision", "--no-progress"]) == 0
    record = json.loads(next((lab / "results").glob("provision-*.json")).read_text())
    command = _runner_command(record)
    assert command[command.index("-i") + 1] == str((lab / "inventory" / "vagrant.yml").resolve())


def test_up_when_vagrant_up_fails(
    lab: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FAKE_UP_RC", "1")
    assert main(["up", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "`vagrant up --no-provision` failed (exit 1)" in err
    assert "canarylab doctor" in err
    assert "playbook site" not in _calls(lab)


def test_up_when_the_site_playbook_fails_still_saves_timings(
    lab: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FAKE_SITE_FAIL", "yes")
    assert main(["up", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "task 'Fail when asked to' failed on localhost: provisioning-broke-here" in err
    assert "full Ansible output:" in err
    record = json.loads(next((lab / "results").glob("provision-*.json")).read_text())
    assert record["ok"] is False
    assert "provisioning-broke-here" in record["failure"]


def test_up_without_vagrant_points_at_doctor(
    lab: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert main(["up", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "vagrant is not installed" in err
    assert "canarylab doctor" in err


def test_up_without_the_provider_points_at_doctor(
    lab: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bin" / "VBoxManage").unlink()
    assert main(["up", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "the lab's provider virtualbox is not usable" in err
    assert "canarylab doctor" in err
    assert not any(c.startswith("vagrant up") for c in _calls(lab))


def test_ctrl_c_during_vagrant_up_stops_cleanly(
    lab: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, procs: ProcessGroup
) -> None:
    monkeypatch.setenv("FAKE_UP_SLEEP", "300")
    proc = procs.start(
        "canarylab-up", [sys.executable, "-m", "canarylab", "up", "--no-progress"], tmp_path / "up.log"
    )
    deadline = time.monotonic() + 60
    while "vagrant up --no-provision" not in _calls(lab):
        assert proc.running(), proc.log_tail()
        assert time.monotonic() < deadline, "vagrant up was never called"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    assert proc.popen.wait(60) == 130, proc.log_tail()
    assert "interrupted" in proc.log_tail()
    assert "playbook site" not in _calls(lab)
    assert not list((lab / "results").glob("provision-*.json"))


# --- status -------------------------------------------------------------------------------


def test_status_without_a_lab(
    lab: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FAKE_STATE", "not_created")
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert "no lab here" in err
    assert "run `canarylab up`" in err


def test_status_with_stopped_vms(
    lab: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FAKE_STATE", "poweroff")
    assert main(["status"]) == 2
    assert "not running" in capsys.readouterr().err


def test_status_running_but_not_provisioned(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status"]) == 1
    out = capsys.readouterr().out
    assert "cl-controller" in out
    assert "running" in out
    assert "canarylab up --provision" in out
    assert "http://192.168.56.201" in out  # configured Grafana address, not yet confirmed
    assert "not confirmed" in out
    assert str(lab / ".canarylab" / "grafana-admin-password") in out


def test_status_of_a_provisioned_lab(lab: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = lab / ".canarylab"
    state.mkdir()
    (state / "kubeconfig").write_text("apiVersion: v1\n")
    (state / "grafana-admin-password").write_text("x\n")
    (state / "endpoints.yml").write_text("grafana: http://192.168.56.201\napp: http://192.168.56.200\n")
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "cl-controller   Ready" in out
    assert "pod-abc" in out
    assert "URLs:\n" in out
    assert "app         http://192.168.56.200" in out
    kubectl_calls = [c for c in _calls(lab) if c.startswith("kubectl")]
    assert all(f"--kubeconfig={state / 'kubeconfig'}" in c for c in kubectl_calls)
    assert any("get pods -n canarylab" in c for c in kubectl_calls)
    assert any("get pods -n istio-system" in c for c in kubectl_calls)


def test_status_when_the_api_server_does_not_answer(
    lab: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (lab / ".canarylab").mkdir()
    (lab / ".canarylab" / "kubeconfig").write_text("apiVersion: v1\n")
    monkeypatch.setenv("FAKE_KUBECTL_RC", "1")
    assert main(["status"]) == 1
    assert "did not answer" in capsys.readouterr().out


# --- down / destroy -----------------------------------------------------------------------


def test_down_halts(lab: Path) -> None:
    assert main(["down"]) == 0
    assert _calls(lab) == ["vagrant halt"]


def test_destroy_with_yes_removes_vms_and_stale_state(lab: Path) -> None:
    state = lab / ".canarylab"
    state.mkdir()
    (state / "kubeconfig").write_text("x")
    (state / "grafana-admin-password").write_text("x")
    assert main(["destroy", "--yes"]) == 0
    assert _calls(lab) == ["vagrant destroy -f"]
    assert not (state / "kubeconfig").exists()
    assert (state / "grafana-admin-password").exists()


def test_destroy_without_a_terminal_needs_yes(
    lab: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["destroy"]) == 2
    assert "add --yes" in capsys.readouterr().err
    assert _calls(lab) == []


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "code", "destroyed"), [("n\n", 1, False), ("yes\n", 0, True)])
def test_destroy_asks_first(
    lab: Path, monkeypatch: pytest.MonkeyPatch, answer: str, code: int, destroyed: bool
) -> None:
    monkeypatch.setattr(sys, "stdin", _Terminal(answer))
    assert main(["destroy"]) == code
    assert (_calls(lab) == ["vagrant destroy -f"]) is destroyed


CONTAINERS_JSON = r"""
if [ "$CANARYLAB_NODES" = containers ]; then
  cat > "$CANARYLAB_CONFIG_JSON" <<'JSON'
{"nodes": "containers", "provider": "docker", "os": "ubuntu", "box": "bento/ubuntu-24.04", "machines": [
 {"name": "cl-controller", "group": "controller", "ip": "192.168.56.10", "cpus": 2, "memory": 3072},
 {"name": "cl-worker-1", "group": "workers", "ip": "192.168.56.11", "cpus": 2, "memory": 4096}]}
JSON
  exit 0
fi
"""


def test_up_with_container_nodes_builds_bundle_and_image_first(
    lab: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--nodes containers: bundle, node image, then `vagrant up` told the kind; no VM provider needed."""
    fake = (tmp_path / "bin" / "vagrant").read_text()
    fake = fake.replace("  validate)\n", "  validate)\n" + CONTAINERS_JSON, 1)
    fake = fake.replace(
        'echo "vagrant $*" >> "$FAKE_LOG"', 'echo "vagrant $* nodes=${CANARYLAB_NODES:-}" >> "$FAKE_LOG"'
    )
    _script(tmp_path / "bin" / "vagrant", fake)
    (tmp_path / "bin" / "VBoxManage").unlink()  # no VM provider on this host
    (lab / "scripts").mkdir()
    _script(
        lab / "scripts" / "build-node-image.sh",
        '#!/bin/sh\necho "node-image" >> "$FAKE_LOG"\necho localhost/canarylab-node:0123\n',
    )

    def fake_bundle(root: Path, env: object = None) -> None:
        with open(os.environ["FAKE_LOG"], "a") as log:
            log.write("bundle build\n")

    monkeypatch.setattr(lab_command, "_bundle_build", fake_bundle)
    assert main(["up", "--nodes", "containers", "--no-progress"]) == 0
    calls = _calls(lab)
    up = "vagrant up --no-provision nodes=containers"
    assert up in calls
    assert (
        calls.index("bundle build")
        < calls.index("node-image")
        < calls.index(up)
        < calls.index("playbook site")
    )
    out = capsys.readouterr().out
    assert "canarylab: node image localhost/canarylab-node:0123" in out
    assert "peak memory of the nodes" in out
    record = json.loads(next((lab / "results").glob("provision-*.json")).read_text())
    assert [p["name"] for p in record["phases"]][:3] == ["offline bundle", "node image", "vagrant up"]
    assert record["lab"]["nodes"] == "containers"
    assert record["lab"]["provider"] == "docker"
    assert "node_memory_peak_mb" in record
