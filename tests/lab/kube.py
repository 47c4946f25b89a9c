"""kubectl on the lab's controller, for the tests that create workloads (test_traffic.py).

Every command runs on the controller through testinfra (so through Ansible's connection:
ssh for the VMs, ``podman exec`` for the container nodes), as root, with the admin
kubeconfig.  Manifests travel base64-encoded: one token without quotes, braces or
spaces, so neither Ansible's argument parsing nor the shells in between can touch them.
Every wait is bounded: ``kubectl wait --timeout`` or :meth:`Kube.poll` with a deadline.
"""

from __future__ import annotations

import base64
import json
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"

T = TypeVar("T")


@dataclass(frozen=True)
class Kube:
    """kubectl through ``host`` (a testinfra host: the controller)."""

    host: Any

    def run(self, *args: str) -> str:
        """kubectl ``args`` (each one argument, quoted here); its stdout, or AssertionError."""
        return str(self.host.check_output(f"{KUBECTL} {shlex.join(args)}"))

    def attempt(self, *args: str) -> tuple[int, str]:
        """kubectl ``args``, whatever its exit code: (rc, stdout + stderr)."""
        out = self.host.run(f"{KUBECTL} {shlex.join(args)}")
        return int(out.rc), f"{out.stdout}{out.stderr}".strip()

    def get(self, *args: str) -> dict[str, Any]:
        """``kubectl get args -o json``, parsed."""
        found: dict[str, Any] = json.loads(self.run("get", *args, "-o", "json"))
        return found

    def apply(self, manifest: Mapping[str, Any]) -> None:
        encoded = base64.b64encode(json.dumps(manifest).encode()).decode()
        self.host.check_output(f"echo {encoded} | base64 -d | {KUBECTL} apply -f -")

    def poll(self, what: str, probe: Callable[[], T | None], timeout: float, every: float = 1.0) -> T:
        """``probe()`` until it returns something other than None, for at most ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            found = probe()
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout:g} s")
            time.sleep(every)
