#!/bin/sh
# The node's PID 1: fixes one mount, then becomes systemd.
#
# On a cgroup v1 (hybrid) host, podman mounts a privileged container's
# name=systemd hierarchy at the host's root, even with --cgroupns=private (the
# controllers are mounted at the container's own cgroup).  The node's systemd
# would then move itself to the host's /init.scope and create its units' cgroups
# beside every other container's, so one node's systemd could act on another's
# processes, and the container's own cgroup, left empty, is removed under
# podman (`podman exec` then fails: "error adding pid ... to cgroups").  A fresh
# mount made here, inside the container's cgroup namespace, is rooted at the
# container's own cgroup.  Hosts with cgroup v2 only have no such hierarchy.
set -eu
if grep -q ' /sys/fs/cgroup/systemd cgroup ' /proc/mounts; then
  while grep -q ' /sys/fs/cgroup/systemd cgroup ' /proc/mounts; do
    umount -l /sys/fs/cgroup/systemd
  done
  mount -t cgroup -o rw,nosuid,nodev,noexec,relatime,none,name=systemd cgroup /sys/fs/cgroup/systemd
fi
exec /sbin/init "$@"
