"""`canarylab experiment run`: run an experiment through experiment.yml, show progress and the verdict.

The one code path: this command runs ``experiment.yml`` (ansible-runner, via
canarylab.runner) with the inventory of the target; the playbook installs the
tools and runs the engine (``python -m canarylab.experiment``) as one task.
This command tails the engine's progress file while it runs, then prints the
verdict table from summary.json.

Exit codes: 0 PASS, 1 FAIL, 3 INCONCLUSIVE, 4 INVALID, 2 error (bad spec, a
failed playbook), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console

from canarylab.errors import CanarylabError
from canarylab.experiment import events as ev
from canarylab.experiment import results as res
from canarylab.experiment.spec import load_spec, parse_duration
from canarylab.experiment.targets import TARGETS
from canarylab.experiment.vocabulary import exit_code
from canarylab.paths import project_root
from canarylab.runner import LAB_INVENTORY, lab_inventory, run_playbook

PLAYBOOK = "experiment.yml"
LOCAL_INVENTORY = "inventory/local.yml"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("experiment", help="run an experiment (stable vs canary) and get a verdict")
    esub = p.add_subparsers(dest="experiment_command", metavar="ACTION", required=True)
    r = esub.add_parser(
        "run",
        help="run an experiment file on the local target or the lab",
        description="Runs experiment.yml (for --target local the same as "
        "`ansible-playbook experiment.yml -i inventory/local.yml`). "
        "Exit code: 0 PASS, 1 FAIL, 3 INCONCLUSIVE, 4 INVALID, 2 error.",
    )
    r.add_argument("spec", type=Path, help="experiment file, e.g. experiments/threads-4-vs-16.yml")
    r.add_argument(
        "--target",
        choices=TARGETS,
        default="local",
        help="where it runs: local (127.0.0.1) or lab (the provisioned cluster); default: local",
    )
    r.add_argument("--duration", help="per repetition, overrides the spec (e.g. 30s, 2m)")
    r.add_argument("--warmup", help="warm-up before the first repetition, overrides the spec (e.g. 5s)")
    r.add_argument("--rate", type=int, help="requests/s to EACH variant, overrides the spec")
    r.add_argument("--repetitions", type=int, help="repetitions, overrides the spec")
    r.add_argument("--results-dir", type=Path, help="where run directories go (default: results/)")
    r.add_argument("--calibrate", action="store_true", help="find the rate first ('significant load')")
    r.add_argument("--target-file", type=Path, help="lab target file (default: .canarylab/lab-target.yml)")
    r.add_argument(
        "--inventory",
        "-i",
        metavar="PATH",
        type=Path,
        help=f"--target lab only: the lab's inventory (default: {LAB_INVENTORY}, written by `vagrant up`); "
        f"--target local always uses {LOCAL_INVENTORY}",
    )
    r.set_defaults(func=_run)


def _check_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Validate the spec and the overrides here, before Ansible starts, with the engine's own rules."""
    durations: dict[str, float | None] = {}
    for name in ("duration", "warmup"):
        text = getattr(args, name)
        try:
            durations[name] = parse_duration(text) if text is not None else None
        except ValueError as err:
            raise CanarylabError(f"--{name}: {err}") from None
    load_spec(args.spec).with_overrides(
        duration=durations["duration"],
        warmup=durations["warmup"],
        rate=args.rate,
        repetitions=args.repetitions,
    )
    return {
        "canarylab_duration": args.duration,
        "canarylab_warmup": args.warmup,
        "canarylab_rate": args.rate,
        "canarylab_repetitions": args.repetitions,
    }


class _ProgressPrinter:
    """Renders the engine's events (tailed from its progress file) on the terminal."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.run_dir: Path | None = None
        self.verdict: str | None = None
        self.engine_pid: int | None = None
        self.error: str | None = None

    def on_event(self, event: ev.Event) -> None:
        if event.kind == ev.ENGINE:
            self.engine_pid = event.data.get("pid")
        if event.data.get("run_dir"):
            self.run_dir = Path(str(event.data["run_dir"]))
        if event.kind == ev.VERDICT:
            self.verdict = str(event.data.get("verdict"))
        if event.kind == ev.ERROR:
            self.error = event.message
        line = ev.format_event(event)
        if line is None:
            return
        style = {ev.ERROR: "bold red", ev.VERDICT: "bold", ev.PROGRESS: "dim"}.get(event.kind, "")
        self.console.print(line, style=style, highlight=False, markup=False)


def _tail(path: Path, printer: _ProgressPrinter, stop: threading.Event) -> None:
    for event in ev.tail_events(path, stop):
        printer.on_event(event)


_TASK_DONE = {"runner_on_ok": "ok", "runner_on_failed": "failed", "runner_on_unreachable": "unreachable"}


def _ansible_printer(console: Console) -> Any:
    """One line per task that ran (skipped ones, e.g. the lab's preflight on the local target, stay quiet)."""

    def on_event(event: Mapping[str, Any]) -> None:
        outcome = _TASK_DONE.get(str(event.get("event")))
        data = event.get("event_data") or {}
        task = data.get("task", "")
        if outcome and task:
            if outcome == "ok" and (data.get("res") or {}).get("changed"):
                outcome = "changed"
            console.print(f"  ansible: {task} ({outcome})", style="dim", highlight=False, markup=False)

    return on_event


def _run(args: argparse.Namespace) -> int:
    # numpy, rich tables and the analysis, only when a run needs them (not for `canarylab --help`)
    from canarylab.experiment.report import verdict_table  # noqa: PLC0415

    root = project_root()
    args.spec = args.spec.resolve()
    extravars: dict[str, Any] = {k: v for k, v in _check_overrides(args).items() if v is not None}
    inventory: Path
    if args.target == "local":
        if args.inventory is not None:
            raise CanarylabError(
                f"--inventory is for --target lab: the local target always runs on {LOCAL_INVENTORY}",
                "drop --inventory, or add --target lab",
            )
        inventory = root / LOCAL_INVENTORY
    elif args.inventory is None and not (root / LAB_INVENTORY).exists():
        raise CanarylabError(
            f"the lab has no inventory ({LAB_INVENTORY})",
            "run `vagrant up` (or `canarylab up`) first, or pass --inventory PATH for another lab",
        )
    else:
        inventory = lab_inventory(root, args.inventory)
    results_root = (args.results_dir or root / "results").resolve()
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
    with tempfile.TemporaryDirectory(prefix="canarylab-experiment-") as tmp:
        progress = Path(tmp) / "progress.jsonl"
        progress.touch()
        extravars.update(
            {
                "canarylab_experiment": str(args.spec),
                "canarylab_results_dir": str(results_root),
                "canarylab_progress_file": str(progress),
                "canarylab_owner_pid": os.getpid(),
                "canarylab_calibrate": bool(args.calibrate),
            }
        )
        extravars["canarylab_target"] = args.target
        if args.target == "lab" and args.target_file:
            extravars["canarylab_target_file"] = str(args.target_file.resolve())
        printer = _ProgressPrinter(console)
        stop = threading.Event()
        tail = threading.Thread(target=_tail, args=(progress, printer, stop), name="progress", daemon=True)
        tail.start()
        console.print(
            f"experiment {args.spec.name} on the {args.target} target (experiment.yml)", style="bold"
        )
        try:
            run_playbook(
                PLAYBOOK,
                inventory=inventory,
                extravars=extravars,
                label="experiment",
                on_event=_ansible_printer(console),
                show_progress=False,
                check=True,
                root=root,
            )
        except CanarylabError:
            stop.set()
            tail.join(5)
            if printer.error:
                raise CanarylabError(f"the experiment failed: {printer.error}") from None
            raise
        finally:
            stop.set()
            tail.join(5)
    if printer.run_dir is None or not (printer.run_dir / res.SUMMARY).exists():
        raise CanarylabError("the experiment finished without a summary.json", "see the Ansible log above")
    summary = res.read_json(printer.run_dir / res.SUMMARY)
    console.print()
    console.print(verdict_table(summary))
    console.print(f"report: {printer.run_dir / res.REPORT}")
    return exit_code(summary.get("verdict"))
