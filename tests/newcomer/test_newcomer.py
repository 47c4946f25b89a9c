"""A newcomer's first run: the README's `make experiment` on a truly fresh machine.

A clean Debian 12 container (the project's debootstrap base, which has Python)
gets Go (the host's toolchain, mounted read-only) and what `git clone` and
`make` need, clones the repository, and runs the README's first command with a
short duration.  Nothing else is installed beforehand: the set-up must fetch
everything from the registries this kind of machine reaches (Debian, PyPI, the
Go module proxy), and it must not start a system service.  `make experiment`
runs twice, so the test can print how long the set-up and the run took.

The clone is of the working tree as it would be committed (tracked files and
untracked ones that git does not ignore), so the test checks what CI will see.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.newcomer

ROOT = Path(__file__).resolve().parents[2]
VERDICTS = {"PASS", "FAIL", "INCONCLUSIVE", "INVALID"}
#: Host settings a newcomer's machine has too: how it reaches the registries.
PASSED_THROUGH = (
    "GOPROXY",
    "GOSUMDB",
    "GONOSUMDB",
    "GOPRIVATE",
    "GOFLAGS",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_CERT",
    "PIP_DEFAULT_TIMEOUT",
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)
SHORT_RUN = "--duration 8s --warmup 2s --repetitions 3"


def _go_env() -> dict[str, str]:
    go = shutil.which("go") or "/usr/local/go/bin/go"
    if not Path(go).exists():
        pytest.fail("go is missing on the host: install Go >= 1.22")
    out = subprocess.run(
        [go, "env", "GOROOT", "GOPROXY", "GOSUMDB"], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    return {"GOROOT": out[0], "GOPROXY": out[1], "GOSUMDB": out[2]}


def _snapshot_of_the_repository(dest: Path) -> Path:
    """The working tree as it would be committed, as a git repository to clone from."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in files:
        if not raw:
            continue
        rel = Path(os.fsdecode(raw))
        src = ROOT / rel
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree, not yet in the index
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)
    git = ["git", "-c", "user.name=newcomer", "-c", "user.email=newcomer@canarylab.invalid"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=dest, check=True)
    subprocess.run([*git, "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "snapshot"], cwd=dest, check=True)
    return dest


@pytest.fixture
def fresh_machine(base_image: str, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A running Debian 12 container with the repository to clone at /repo (read-only)."""
    repo = _snapshot_of_the_repository(tmp_path / "repo")
    go = _go_env()
    name = f"canarylab-newcomer-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "CONTAINERS_CONF": str(ROOT / "containers/containers.conf")}
    settings = {k: os.environ[k] for k in PASSED_THROUGH if os.environ.get(k)}
    settings.update({"GOPROXY": go["GOPROXY"], "GOSUMDB": go["GOSUMDB"], "DEBIAN_FRONTEND": "noninteractive"})
    run = ["podman", "run", "-d", "--name", name, "--tmpfs", "/tmp:exec"]
    run += ["-v", f"{repo}:/repo:ro", "-v", f"{go['GOROOT']}:/usr/local/go:ro"]
    # HTTPS to the registries goes through a CA in the host's bundle: mounted, never baked in.
    run += ["-v", "/etc/ssl/certs:/etc/ssl/certs:ro"]
    for key, value in settings.items():
        run += ["-e", f"{key}={value}"]
    run += ["-e", "PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    run += [base_image, "sleep", "infinity"]
    subprocess.run(run, check=True, env=env, capture_output=True)
    try:
        yield name, env
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", name], env=env, capture_output=True, check=False)


def _step(machine: tuple[str, dict[str, str]], script: str, timeout: float) -> tuple[str, float]:
    name, env = machine
    started = time.monotonic()
    proc = subprocess.run(
        ["podman", "exec", "-w", "/root", name, "bash", "-c", f"set -euo pipefail\n{script}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    took = time.monotonic() - started
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"`{script.strip()}` exited {proc.returncode}:\n{out[-6000:]}"
    return out, took


def test_make_experiment_on_a_fresh_debian(
    fresh_machine: tuple[str, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    # What the README asks a newcomer to have: git to clone, make to run the commands.
    _, t_prereq = _step(
        fresh_machine, "apt-get update -qq && apt-get install -y -qq git make >/dev/null", 600
    )
    _step(fresh_machine, "git clone -q /repo canarylab", 120)
    # The README's command as it stands: it sets itself up.  Run twice: the first time
    # includes the set-up, the second finds it done, so set-up = first - second.
    command = f"cd canarylab && make experiment EXPERIMENT_ARGS='{SHORT_RUN}'"
    summaries: list[dict[str, object]] = []
    took: list[float] = []
    for _ in range(2):
        out, seconds = _step(fresh_machine, command, 1500)
        took.append(seconds)
        verdict_lines = [line for line in out.splitlines() if line.startswith("verdict: ")]
        assert verdict_lines, f"no verdict line in the output:\n{out[-4000:]}"
        summaries.append(json.loads(_step(fresh_machine, "cat canarylab/results/latest/summary.json", 30)[0]))
    assert all(s["verdict"] in VERDICTS for s in summaries), summaries
    assert summaries[0]["results_dir"] != summaries[1]["results_dir"]
    # The default experiment is significant load (issue #12), and the report opens by saying so.
    regime = summaries[1]["load_regime"]
    assert isinstance(regime, dict)
    assert regime["queued"] is True, regime
    report, _ = _step(fresh_machine, "cat canarylab/results/latest/report.md", 30)
    assert '## The load: what "significant load" meant in this run' in report
    assert regime["statement"] in report
    t_run = took[1]
    t_setup = took[0] - took[1]
    # The set-up must not have installed Debian's prometheus (whose daemon would listen on :9090).
    leftovers, _ = _step(
        fresh_machine,
        "dpkg-query -W -f='${Status}' prometheus 2>/dev/null | grep -c 'install ok' || true;"
        " ls /proc/*/exe -l 2>/dev/null | grep -c '/usr/bin/prometheus' || true",
        30,
    )
    assert leftovers.split() == ["0", "0"], f"a system Prometheus was installed or started: {leftovers}"
    with capsys.disabled():
        print(
            f"\nnewcomer: prerequisites (git, make) {t_prereq:.0f} s, set-up {t_setup:.0f} s, "
            f"make experiment ({SHORT_RUN}) {t_run:.0f} s once set up, verdicts "
            f"{[s['verdict'] for s in summaries]}"
        )
