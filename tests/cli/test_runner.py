"""run_playbook against real ansible-runner runs of tiny playbooks on inventory/local.yml."""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.errors import LiveError
from rich.live import Live
from rich.text import Text

from canarylab.errors import CanarylabError
from canarylab.procs import ProcessGroup
from canarylab.progress import PlainProgress, RichProgress, make_progress
from canarylab.runner import PlaybookError, failure_message, run_playbook

PB = "tests/cli/playbooks"
SECRET = "canarylab-secret-value-5c1f"


def _all_text(directory: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in directory.rglob("*") if p.is_file())


def test_passing_playbook_returns_result_and_keeps_log(tmp_path: Path, run_kwargs: dict[str, Any]) -> None:
    events: list[Mapping[str, Any]] = []
    marker = tmp_path / "marker.txt"
    result = run_playbook(
        f"{PB}/pass.yml",
        extravars={"greeting": "hello", "marker": str(marker), "unused_token": SECRET},
        label="pass test",
        on_event=events.append,
        show_progress=False,
        **{**run_kwargs, "envvars": {**run_kwargs["envvars"], "CANARYLAB_TEST_TOKEN": SECRET}},
    )
    assert result.ok
    assert result.rc == 0
    assert result.status == "successful"
    assert result.failures == ()
    assert marker.read_text() == "hello\n"
    assert result.stats["localhost"]["ok"] == 2
    assert result.stats["localhost"]["failed"] == 0
    assert result.changed() == 1
    assert [p.name for p in result.phases] == ["Pass play"]
    assert "greeting=hello" in result.log_path.read_text()
    names = [e["event"] for e in events]
    assert names[0] == "playbook_on_start"
    assert "playbook_on_stats" in names
    # the run dir lives where asked, named <UTC timestamp>-<label>
    run_dir = result.artifact_dir.parent.parent
    assert run_dir.parent == tmp_path / "runs"
    assert run_dir.name.endswith("-pass-test")
    # nothing secret is left: no env/ files, no extravars file, environment scrubbed from `command`
    assert not (run_dir / "env").exists() or not any((run_dir / "env").iterdir())
    assert not (run_dir / "extravars.json").exists()
    assert SECRET not in _all_text(run_dir)


def test_failing_playbook_raises_summary_naming_task_host_message(run_kwargs: dict[str, Any]) -> None:
    with pytest.raises(PlaybookError) as info:
        run_playbook(f"{PB}/fail.yml", show_progress=False, **run_kwargs)
    err = info.value
    text = str(err)
    assert "'Break on purpose'" in text
    assert "localhost" in text
    assert "canarylab-test-failure-marker" in text
    assert "{" not in text  # a summary, not a wall of JSON
    assert err.hint is not None
    assert str(err.result.log_path) in err.hint
    assert err.result.log_path.is_file()
    assert isinstance(err, CanarylabError)


def test_failing_playbook_without_check_returns_failures(run_kwargs: dict[str, Any]) -> None:
    result = run_playbook(f"{PB}/fail.yml", show_progress=False, check=False, **run_kwargs)
    assert not result.ok
    assert result.rc != 0
    assert result.status == "failed"
    assert len(result.failures) == 1
    failure = result.failures[0]
    assert (failure.host, failure.task, failure.role) == ("localhost", "Break on purpose", None)
    assert failure.message == "canarylab-test-failure-marker"
    assert result.stats["localhost"]["failed"] == 1


UNREACHABLE_INVENTORY = """
all:
  children:
    canarylab_load:
      hosts:
        ghost:
          ansible_host: 127.0.0.1
          ansible_port: 1
          ansible_connection: ssh
          ansible_user: nobody
"""


def test_unreachable_host_is_named_with_the_connection_error(
    tmp_path: Path, run_kwargs: dict[str, Any]
) -> None:
    inventory = tmp_path / "unreachable.yml"
    inventory.write_text(UNREACHABLE_INVENTORY)
    with pytest.raises(PlaybookError) as info:
        run_playbook(f"{PB}/phases.yml", show_progress=False, **{**run_kwargs, "inventory": inventory})
    failure = info.value.result.failures[0]
    assert failure.unreachable
    assert (failure.host, failure.task, failure.role) == ("ghost", "First role sleeps a little", "first")
    assert "port 1" in failure.message
    assert "unreachable on ghost" in str(info.value)
    assert info.value.result.stats["ghost"]["unreachable"] == 1


def test_phases_of_two_plays_and_two_roles_in_order(run_kwargs: dict[str, Any]) -> None:
    result = run_playbook(f"{PB}/phases.yml", show_progress=False, **run_kwargs)
    assert [(p.name, p.kind) for p in result.phases] == [
        ("Warm-up play", "play"),
        ("Roles play", "play"),
        ("first", "role"),
        ("second", "role"),
    ]
    by_name = {p.name: p.seconds for p in result.phases}
    assert by_name["first"] >= 1.0  # the role's task sleeps one second
    assert all(p.seconds >= 0 for p in result.phases)
    assert result.failures == ()  # the ignored error is not a failure
    assert result.stats["localhost"]["ignored"] == 1


def test_plain_progress_without_tty(capsys: pytest.CaptureFixture[str], run_kwargs: dict[str, Any]) -> None:
    run_playbook(f"{PB}/fail.yml", show_progress=True, check=False, **run_kwargs)
    out = capsys.readouterr().out
    assert "PLAY Fail play" in out
    assert "Break on purpose" in out
    assert "FAILED localhost: canarylab-test-failure-marker" in out


def test_no_output_when_progress_is_off(
    capsys: pytest.CaptureFixture[str], run_kwargs: dict[str, Any]
) -> None:
    run_playbook(f"{PB}/pass.yml", show_progress=False, **run_kwargs)
    assert capsys.readouterr().out == ""


def test_syntax_error_before_any_task_shows_ansible_output(
    tmp_path: Path, run_kwargs: dict[str, Any]
) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "- name: Broken\n  hosts: all\n  tasks:\n    - name: Bad module\n      no.such.module: {}\n"
    )
    with pytest.raises(PlaybookError) as info:
        run_playbook(broken, show_progress=False, **run_kwargs)
    assert info.value.result.failures == ()
    assert "no.such.module" in str(info.value)


def test_missing_playbook_and_inventory_say_what_to_do(run_kwargs: dict[str, Any]) -> None:
    with pytest.raises(CanarylabError, match="playbook not found") as info:
        run_playbook(f"{PB}/nope.yml", show_progress=False, **run_kwargs)
    assert info.value.hint
    with pytest.raises(CanarylabError, match="inventory not found") as info:
        run_playbook(
            f"{PB}/pass.yml", show_progress=False, **{**run_kwargs, "inventory": "inventory/nope.yml"}
        )
    assert info.value.hint is not None
    assert "canarylab up" in info.value.hint


def test_broken_on_event_callback_cancels_and_reraises(run_kwargs: dict[str, Any]) -> None:
    def boom(event: Mapping[str, Any]) -> None:
        if event.get("event") == "playbook_on_task_start":
            raise ValueError("callback exploded")

    with pytest.raises(ValueError, match="callback exploded"):
        run_playbook(f"{PB}/pass.yml", show_progress=False, on_event=boom, **run_kwargs)


_CANCEL_SCRIPT = """
import sys
from pathlib import Path
from canarylab.runner import run_playbook
try:
    run_playbook("tests/cli/playbooks/slow.yml", root=Path(sys.argv[1]), inventory="inventory/local.yml",
                 data_dir=Path(sys.argv[2]), extravars={"pidfile": sys.argv[3]}, show_progress=False)
except KeyboardInterrupt:
    print("interrupted-cleanly", flush=True)
    sys.exit(42)
sys.exit(0)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def test_ctrl_c_cancels_the_playbook_and_reraises(tmp_path: Path, root: Path, procs: ProcessGroup) -> None:
    pidfile = tmp_path / "sleep.pid"
    script = tmp_path / "cancel.py"
    script.write_text(_CANCEL_SCRIPT)
    proc = procs.start(
        "cancel-test",
        [sys.executable, str(script), str(root), str(tmp_path / "runs"), str(pidfile)],
        tmp_path / "cancel.log",
        env={"ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp")},
    )
    deadline = time.monotonic() + 120
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        assert proc.running(), proc.log_tail()
        time.sleep(0.2)
    sleep_pid = int(pidfile.read_text())
    assert _alive(sleep_pid)
    os.kill(proc.pid, 2)  # what Ctrl-C sends
    assert proc.popen.wait(60) == 42, proc.log_tail()
    assert "interrupted-cleanly" in proc.log_tail()
    deadline = time.monotonic() + 10
    while _alive(sleep_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(sleep_pid), "the playbook's process survived the cancel"


# --- pure helpers -------------------------------------------------------------------


def test_failure_message_prefers_msg_then_failed_item_then_stderr() -> None:
    assert failure_message({"msg": "boom", "stderr": "line1\nline2"}) == "boom; stderr: line1 | line2"
    assert failure_message({"msg": "same text", "stderr": "same text"}) == "same text"
    looped = {
        "msg": "One or more items failed",
        "results": [{"item": "a", "failed": False}, {"item": "b", "failed": True, "msg": "bad b"}],
    }
    assert failure_message(looped) == "item 'b': bad b"
    assert failure_message({"rc": 3}) == "exit code 3"
    assert failure_message(None) == "no result"
    assert failure_message({"msg": "x" * 1000}, limit=50).endswith("...")


def _fake_events() -> list[dict[str, Any]]:
    return [
        {"event": "playbook_on_play_start", "event_data": {"play": "P"}},
        {"event": "playbook_on_task_start", "event_data": {"task": "T", "role": "r"}},
        {"event": "runner_on_start", "event_data": {"host": "h1"}},
        {"event": "runner_on_ok", "event_data": {"host": "h1", "res": {"changed": True}}},
        {"event": "runner_on_failed", "event_data": {"host": "h2", "res": {"msg": "went wrong"}}},
        {"event": "playbook_on_stats", "event_data": {}},
    ]


def test_rich_progress_renders_on_a_terminal() -> None:
    buf = io.StringIO()
    view = RichProgress(console=Console(file=buf, force_terminal=True, width=100), title="t")
    for event in _fake_events():
        view.handle(event)
    view.close()
    out = buf.getvalue()
    assert "PLAY P" in out
    assert "FAILED h2: went wrong" in out
    assert "ok=1" in out
    assert "changed=1" in out
    assert "failed=1" in out


def test_rich_progress_inside_another_live_display(monkeypatch: pytest.MonkeyPatch) -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100)
    with Live(Text("caller's own display"), console=console):  # rich >= 14 nests live displays
        view = RichProgress(console=console, title="t")
        for event in _fake_events():
            view.handle(event)
        view.close()
    assert "FAILED h2: went wrong" in buf.getvalue()

    def refuse(self: Live) -> None:  # older rich: "Only one live display may be active at once"
        raise LiveError("Only one live display may be active at once")

    monkeypatch.setattr(Live, "start", refuse)
    buf = io.StringIO()
    view = RichProgress(console=Console(file=buf, force_terminal=True, width=100), title="t")
    for event in _fake_events():
        view.handle(event)
    view.close()
    out = buf.getvalue()
    assert "r / T" in out  # one line per task instead of the live block
    assert "FAILED h2: went wrong" in out


def test_make_progress_picks_view_by_tty() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(make_progress(True, "t", io.StringIO()), PlainProgress)
    assert isinstance(make_progress(True, "t", Tty()), RichProgress)
    assert type(make_progress(False, "t", Tty())).__name__ == "NullProgress"
