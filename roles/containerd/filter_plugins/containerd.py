"""canarylab_containerd_config_version: which config.toml format a containerd reads.

containerd 1.x reads config version 2 (plugin ids like io.containerd.grpc.v1.cri);
containerd 2.x reads version 3 (io.containerd.cri.v1.*).  The input is the output
of `containerd --version`, whose shape differs between builds:

    containerd github.com/containerd/containerd/v2 v2.0.5 fb4c30d4ede3...   (upstream)
    containerd containerd.io 1.7.27 05044ec0a9a7...                         (Docker's package)
    containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1  (Debian)
"""

from __future__ import annotations

import re

_VERSION = re.compile(r"(?:^|\s)v?(\d+)\.(\d+)\.(\d+)")


def containerd_version(version_output: str) -> str:
    """The x.y.z that `containerd --version` reports."""
    match = _VERSION.search(version_output)
    if match is None:
        raise ValueError(f"no containerd version in {version_output!r}")
    return ".".join(match.groups())


def containerd_config_version(version_output: str) -> int:
    major = int(containerd_version(version_output).split(".")[0])
    if major < 1:
        raise ValueError(f"containerd {major}.x is not supported")
    return 3 if major >= 2 else 2


class FilterModule:
    def filters(self) -> dict[str, object]:
        return {
            "canarylab_containerd_version": containerd_version,
            "canarylab_containerd_config_version": containerd_config_version,
        }
