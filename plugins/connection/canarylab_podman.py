"""containers.podman.podman with pipelining: how Ansible reaches the container nodes.

The container lab's nodes are podman containers with no sshd, so Ansible reaches them by
`podman exec` where it reaches the VMs by SSH.  The collection's plugin runs
each module in three or four podman commands (mount, mkdir of a temporary directory, the copy,
the run), about half a second each on 2 busy cores, and a provision runs hundreds of tasks,
many of them loops.  With pipelining (what ansible.cfg turns on for SSH), a module is one
``podman exec -i`` that reads it on stdin, and the container's file system is mounted only
when a file is copied.  The collection's plugin declares that pipelining does not work; it
works once stdin reaches the container, which its ``podman exec`` (no ``-i``) does not do.
tests/test_connection_plugin.py checks both the pipelining and the file transfers.
"""

from __future__ import annotations

DOCUMENTATION = """
    name: canarylab_podman
    short_description: containers.podman.podman, with pipelining
    description:
        - Run commands in, or copy files to and from, an existing podman container
          (containers.podman.podman), with a module sent on stdin when pipelining is on.
    options:
      remote_addr:
        description: The name or ID of the container.
        default: inventory_hostname
        vars:
          - name: ansible_host
          - name: inventory_hostname
          - name: ansible_podman_host
      remote_user:
        description: The user the commands run as inside the container.
        ini:
          - section: defaults
            key: remote_user
        env:
          - name: ANSIBLE_REMOTE_USER
        vars:
          - name: ansible_user
      podman_extra_args:
        description: Extra arguments to the podman command line.
        default: ''
        ini:
          - section: defaults
            key: podman_extra_args
        vars:
          - name: ansible_podman_extra_args
        env:
          - name: ANSIBLE_PODMAN_EXTRA_ARGS
      podman_executable:
        description: The podman executable.
        default: podman
        vars:
          - name: ansible_podman_executable
        env:
          - name: ANSIBLE_PODMAN_EXECUTABLE
      pipelining:
        description: Send a module on stdin instead of copying it into the container first.
        type: boolean
        default: true
        ini:
          - section: connection
            key: pipelining
        env:
          - name: ANSIBLE_PIPELINING
        vars:
          - name: ansible_pipelining
"""

import shlex
from typing import Any

from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.connection import ensure_connect
from ansible_collections.containers.podman.plugins.connection.podman import (
    Connection as PodmanConnection,
)


class Connection(PodmanConnection):  # type: ignore[misc]
    transport = "canarylab_podman"
    has_pipelining = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._mount_tried = False

    def _connect(self) -> Connection:
        # The parent mounts the container's file system here, for every task; only a copy needs it.
        self._connected = True
        return self

    def _mount(self) -> None:
        if not self._mount_tried:
            self._mount_tried = True
            super()._connect()  # `podman mount`; without a mount point the parent uses `podman cp`

    @ensure_connect  # type: ignore[untyped-decorator]
    def exec_command(self, cmd: str, in_data: bytes | None = None, sudoable: bool = False) -> Any:
        # ConnectionBase's bookkeeping only; the parent's own exec_command has no -i
        super(PodmanConnection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
        args = ["exec"]
        if in_data is not None:
            args.append("-i")  # a pipelined module comes on stdin
        if self.user:
            args += ["--user", self.user]
        return self._podman(args, shlex.split(to_native(cmd, errors="surrogate_or_strict")), in_data)

    def put_file(self, in_path: str, out_path: str) -> None:
        self._mount()
        super().put_file(in_path, out_path)

    def fetch_file(self, in_path: str, out_path: str) -> None:
        self._mount()
        super().fetch_file(in_path, out_path)
