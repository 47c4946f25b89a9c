"""plugins/connection/canarylab_podman.py, the container nodes' connection, against a real container.

Modules run pipelined (one ``podman exec -i`` each, no module file copied in), and the file
transfers (copy, fetch) and become still work.  The container has no network.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.image

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

PLAYBOOK = """\
- name: Through canarylab_podman
  hosts: node
  gather_facts: false
  become: true
  tasks:
    - name: A module
      ansible.builtin.command: cat /etc/os-release
      changed_when: false
      register: os_release
    - name: A file copied in
      ansible.builtin.copy:
        content: "hello from the host\\n"
        dest: /root/copied.txt
        mode: "0600"
    - name: Its checksum, in the container
      ansible.builtin.stat:
        path: /root/copied.txt
        checksum_algorithm: sha256
      register: copied
    - name: The file fetched back
      ansible.builtin.fetch:
        src: /root/copied.txt
        dest: "{{ fetch_dir }}/"
        flat: true
    - name: What the container said
      ansible.builtin.debug:
        msg: "os={{ os_release.stdout_lines[0] }} sha256={{ copied.stat.checksum }}"
"""


@pytest.fixture
def container(base_image: str) -> Iterator[str]:
    name = f"canarylab-conn-test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "CONTAINERS_CONF": str(ROOT / "containers/containers.conf")}
    subprocess.run(
        ["podman", "run", "-d", "--rm", "--network", "none", "--name", name, base_image, "sleep", "600"],
        check=True,
        capture_output=True,
        env=env,
    )
    try:
        yield name
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True, env=env, check=False)


def test_modules_run_pipelined_and_files_still_move(container: str, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        f"all:\n  hosts:\n    node:\n      ansible_host: {container}\n"
        "      ansible_connection: canarylab_podman\n      ansible_python_interpreter: /usr/bin/python3\n"
    )
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_LOG_PATH": str(tmp_path / "ansible.log"),
        "CONTAINERS_CONF": str(ROOT / "containers/containers.conf"),
    }
    argv = [str(BIN / "ansible-playbook"), "-vvv", "-i", str(inventory), "play.yml"]
    run = subprocess.run(
        [*argv, "-e", f"fetch_dir={tmp_path}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    out = run.stdout
    assert "Debian GNU/Linux 12" in out
    assert (tmp_path / "copied.txt").read_text() == "hello from the host\n"
    digest = hashlib.sha256(b"hello from the host\n").hexdigest()
    assert f"sha256={digest}" in out
    # pipelined: each module went to python3 on stdin through `podman exec -i`, and no module
    # (AnsiballZ_*.py) was put into the container; only copy's own file was
    execs = re.findall(r"RUN \[b'[^\]]*podman', b'exec'(?P<rest>[^\]]*)\]", out)
    assert execs, out[-3000:]
    assert any("b'-i'" in e for e in execs), execs
    puts = re.findall(r"PUT (\S+) TO (\S+)", out)
    assert not [p for p in puts if "AnsiballZ" in p[1]], puts
    assert len(puts) == 1, puts
