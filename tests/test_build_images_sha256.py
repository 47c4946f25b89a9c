"""scripts/build-images.sh --print-tag without `sha256sum` (macOS has `shasum -a 256` only).

The script runs with a PATH that holds every command of this machine except
sha256sum, plus a `shasum` stand-in that accepts only `-a 256` (as macOS's does
for SHA-256).  The tag must be the one sha256sum gives: one tag on every host.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.static

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "build-images.sh"


def _print_tag(path: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": path,
        "HOME": os.environ.get("HOME", "/root"),
        # buildah is absent here or not: the base image id is empty either way for this name
        "CANARYLAB_IMAGE_BUILDER": "buildah",
    }
    return subprocess.run(
        ["bash", str(SCRIPT), "--print-tag", "--base-image", "localhost/canarylab-no-such-base:1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _path_without(tmp_path: Path, missing: str) -> Path:
    """A directory with a link to every command on this PATH except `missing`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        d = Path(directory)
        if not d.is_dir():
            continue
        for command in d.iterdir():
            target = bin_dir / command.name
            if command.name in (missing, "shasum") or target.exists() or not os.access(command, os.X_OK):
                continue
            target.symlink_to(command.resolve())
    return bin_dir


def test_print_tag_falls_back_to_shasum(tmp_path: Path) -> None:
    sha256sum = shutil.which("sha256sum")
    assert sha256sum, "this machine has sha256sum (coreutils)"
    expected = _print_tag(os.environ["PATH"])
    assert expected.returncode == 0, expected.stderr
    assert expected.stdout.strip().startswith("src-")

    bin_dir = _path_without(tmp_path, "sha256sum")
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    shim = shim_dir / "shasum"
    shim.write_text(
        "#!/bin/sh\n"
        "# macOS's shasum, for SHA-256: `shasum -a 256 [FILE...]`\n"
        '[ "$1" = "-a" ] && [ "$2" = "256" ] || { echo "shasum stand-in: want -a 256" >&2; exit 2; }\n'
        "shift 2\n"
        f'exec {sha256sum} "$@"\n'
    )
    shim.chmod(0o755)
    path = os.pathsep.join([str(bin_dir), str(shim_dir)])
    assert (
        subprocess.run(["sh", "-c", "command -v sha256sum"], env={"PATH": path}, check=False).returncode != 0
    )

    fallback = _print_tag(path)
    assert fallback.returncode == 0, fallback.stderr
    assert fallback.stdout.strip() == expected.stdout.strip()


def test_print_tag_says_what_is_missing_without_either(tmp_path: Path) -> None:
    bin_dir = _path_without(tmp_path, "sha256sum")
    proc = _print_tag(str(bin_dir))
    assert proc.returncode != 0
    assert "sha256sum" in proc.stderr
    assert "shasum" in proc.stderr
