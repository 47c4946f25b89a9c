"""roles/containerd_images decides what to import as containerd shows it, and imports only that.

`ctr -n k8s.io images ls` shows, per reference, the digest of the image's manifest; for a
docker-archive (the offline bundle's images) containerd writes that manifest itself on
import, so the digest is neither the image ID (the config digest, the bundle's image.id)
nor anything in the archive (seen with Debian 12's containerd 1.6.20: pause:3.10 imports
as manifest sha256:2114c1..., config sha256:d5a24f...; and the CRI plugin adds a
reference sha256:<config digest> in k8s.io only).  The role reads the config digest
from that manifest (`ctr content get`).

Here a stand-in `ctr` on this machine keeps containerd's state in a JSON file and answers
`images ls`, `content get` and `images import` as containerd does for a docker-archive.
The role runs on localhost (no become), twice: the second run changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_tasks import json_playbook_env

pytestmark = pytest.mark.static

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"

# The stand-in: an "archive" is JSON {"ref", "config"}; import writes a manifest for it.
FAKE_CTR = r"""#!/usr/bin/env python3
import hashlib, json, sys
STATE = "@STATE@"
with open(STATE) as f:
    state = json.load(f)
with open(STATE + ".calls", "a") as f:
    f.write(" ".join(sys.argv[1:]) + "\n")
args = sys.argv[1:]
assert args[:2] == ["-n", "k8s.io"], args
args = args[2:]
if args[:2] == ["images", "ls"]:
    print("REF TYPE DIGEST SIZE PLATFORMS LABELS")
    for ref, digest in sorted(state["images"].items()):
        print(f"{ref} application/vnd.docker.distribution.manifest.v2+json {digest} 677.7 KiB linux/amd64 -")
elif args[:2] == ["content", "get"]:
    if args[2] not in state["content"]:
        sys.exit(f"ctr: content digest {args[2]}: not found")
    sys.stdout.write(state["content"][args[2]])
elif args[:2] == ["images", "import"]:
    assert args[2] == "--base-name", args
    with open(args[4]) as f:
        archive = json.load(f)
    assert archive["ref"].startswith(args[3] + ":"), (archive, args)
    manifest = json.dumps({"schemaVersion": 2, "config": {"digest": archive["config"]}, "layers": []})
    digest = "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()
    state["content"][digest] = manifest
    state["images"][archive["ref"]] = digest
    with open(STATE, "w") as f:
        json.dump(state, f)
    print(f"unpacking {archive['ref']} ({digest})...done")
else:
    sys.exit(f"stand-in ctr: unexpected {sys.argv[1:]}")
"""

PLAYBOOK = """
- name: Import the archives
  hosts: localhost
  gather_facts: false
  roles:
    - role: containerd_images
"""


def _archive(directory: Path, ref: str, config: str) -> dict[str, Any]:
    """An "archive" for the stand-in, in a directory of its own, named image.tar as in the bundle."""
    path = directory / ref.replace("/", "_").replace(":", "_") / "image.tar"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"ref": ref, "config": config}))
    return {"name": ref, "src": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def _id(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


class Node:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.state = tmp_path / "containerd.json"
        self.state.write_text(json.dumps({"images": {}, "content": {}}))
        self.ctr = tmp_path / "ctr"
        self.ctr.write_text(FAKE_CTR.replace("@STATE@", str(self.state)))
        self.ctr.chmod(0o755)
        self.node_dir = tmp_path / "node" / "images"

    @property
    def calls(self) -> list[str]:
        path = Path(f"{self.state}.calls")
        return path.read_text().splitlines() if path.exists() else []

    def images(self) -> dict[str, str]:
        """Reference -> config digest, as containerd holds them."""
        state = json.loads(self.state.read_text())
        return {
            ref: json.loads(state["content"][d])["config"]["digest"] for ref, d in state["images"].items()
        }

    def run(self, archives: list[dict[str, Any]]) -> tuple[int, dict[str, int], str]:
        variables = self.tmp_path / "vars.json"
        variables.write_text(
            json.dumps(
                {
                    "containerd_images_archives": archives,
                    "containerd_images_ctr": str(self.ctr),
                    "containerd_images_node_dir": str(self.node_dir),
                    "ansible_python_interpreter": str(BIN / "python"),
                }
            )
        )
        playbook = self.tmp_path / "play.yml"
        playbook.write_text(PLAYBOOK)
        env = json_playbook_env(self.tmp_path)
        proc = subprocess.run(
            [
                str(BIN / "ansible-playbook"),
                "-i",
                "localhost,",
                "-c",
                "local",
                str(playbook),
                "-e",
                f"@{variables}",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        start = proc.stdout.find("{")
        stats = json.loads(proc.stdout[start:])["stats"]["localhost"] if start >= 0 else {}
        return proc.returncode, stats, proc.stdout + proc.stderr


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def test_imports_what_is_missing_or_changed_once(node: Node, tmp_path: Path) -> None:
    """Three runs on one node: a first import, a second run that changes nothing, then a new
    build of one image (another image ID) next to an archive without an id (canarylab_images'
    kind, where the reference is enough)."""
    pause = {**_archive(tmp_path / "1", "registry.k8s.io/pause:3.10", _id("pause")), "id": _id("pause")}
    flannel = {**_archive(tmp_path / "1", "ghcr.io/flannel-io/flannel:v0.26.7", _id("old")), "id": _id("old")}
    app = _archive(tmp_path / "1", "localhost/canarylab/app:abc", _id("app"))
    del app["sha256"]
    rc, _, out = node.run([pause, flannel, app])
    assert rc == 0, out[-3000:]
    assert node.images() == {
        pause["name"]: _id("pause"),
        flannel["name"]: _id("old"),
        app["name"]: _id("app"),
    }
    imports = [c for c in node.calls if " import " in c]
    assert len(imports) == 3
    # every bundle archive is called image.tar: each copy on the node is named after its reference
    assert len({c.split()[-1] for c in imports}) == 3
    assert not list(node.node_dir.iterdir()), "the copies are removed after the import"

    calls = len(node.calls)
    rc, stats, out = node.run([pause, flannel, app])
    assert rc == 0, out[-3000:]
    assert stats["changed"] == 0, out[-3000:]
    assert not [c for c in node.calls[calls:] if " import " in c]

    rebuilt = {**_archive(tmp_path / "2", flannel["name"], _id("new")), "id": _id("new")}
    app_again = _archive(tmp_path / "2", app["name"], _id("app, other content"))
    del app_again["sha256"]
    calls = len(node.calls)
    rc, stats, out = node.run([pause, rebuilt, app_again])
    assert rc == 0, out[-3000:]
    assert [c.split()[-1] for c in node.calls[calls:] if " import " in c] == [
        f"{node.node_dir}/ghcr.io_flannel-io_flannel_v0.26.7.tar"
    ]
    assert node.images() == {
        pause["name"]: _id("pause"),
        flannel["name"]: _id("new"),
        app["name"]: _id("app"),
    }


def test_a_copy_whose_sha256_differs_is_refused_and_removed(node: Node, tmp_path: Path) -> None:
    archive = {
        **_archive(tmp_path / "bundle", "registry.k8s.io/pause:3.10", _id("pause")),
        "sha256": "0" * 64,
    }
    rc, _, out = node.run([archive])
    assert rc != 0
    assert "not imported" in out
    assert not [c for c in node.calls if " import " in c]
    assert node.images() == {}
    assert not list(node.node_dir.iterdir())


def test_an_archive_under_another_name_fails_the_final_check(node: Node, tmp_path: Path) -> None:
    """The archive's own name must be the reference given (the import cannot rename it)."""
    archive = _archive(tmp_path / "bundle", "registry.k8s.io/pause:3.10", _id("pause"))
    archive["name"] = "registry.k8s.io/pause:3.9"
    rc, _, out = node.run([archive])
    assert rc != 0
    assert "still lacks" in out


def test_canarylab_images_imports_through_this_role() -> None:
    """One implementation: canarylab_images' import entry point runs containerd_images with its variables."""
    tasks = yaml.safe_load((ROOT / "roles/canarylab_images/tasks/import.yml").read_text())
    assert len(tasks) == 1
    include = tasks[0]["ansible.builtin.include_role"]
    assert include == {"name": "containerd_images"}
    assert tasks[0]["vars"] == {
        "containerd_images_archives": "{{ canarylab_images_archives }}",
        "containerd_images_node_dir": "{{ canarylab_images_node_dir }}",
        "containerd_images_namespace": "{{ canarylab_images_containerd_namespace }}",
        "containerd_images_ctr": "{{ canarylab_images_ctr }}",
    }
    imports = [
        p.relative_to(ROOT).as_posix()
        for p in ROOT.glob("roles/*/tasks/*.yml")
        if "images import" in p.read_text() or "- import\n" in p.read_text()
    ]
    assert imports == ["roles/containerd_images/tasks/import.yml"]
