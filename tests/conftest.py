"""Fixtures shared by the whole suite.  Every test writes under tmp_path, and
every process or container a test starts is stopped when the test ends."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from canarylab.procs import ProcessGroup, console_script, free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def procs() -> Iterator[ProcessGroup]:
    """Start processes through this; all of them are stopped after the test, pass or fail."""
    with ProcessGroup() as group:
        yield group


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real model artifact, trained once per session from the shipped dataset."""
    out = tmp_path_factory.mktemp("model")
    train = [console_script("model-service"), "train", "--out", str(out)]
    subprocess.run(train, check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def base_image() -> str:
    """The systemd Debian 12 image built from debootstrap (cached between runs)."""
    if shutil.which("podman") is None:
        pytest.fail("podman is missing: run `make setup`")
    env = {**os.environ, "CONTAINERS_CONF": str(ROOT / "containers/containers.conf")}
    subprocess.run([str(ROOT / "scripts/build-base-image.sh")], check=True, env=env)
    return env.get("CANARYLAB_BASE_IMAGE", "localhost/canarylab-debian12-systemd:latest")
