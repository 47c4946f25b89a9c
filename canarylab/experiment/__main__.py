"""``python -m canarylab.experiment``: the engine's entry point (experiment.yml runs it).

Exit codes: 0 PASS, 1 FAIL, 3 INCONCLUSIVE, 4 INVALID, 2 error, 130 interrupted.
The last line on stdout is ``verdict: <VERDICT>: <reason> (results: <dir>)``.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from canarylab.errors import CanarylabError
from canarylab.experiment import events as ev
from canarylab.experiment.engine import EngineOptions, run_experiment
from canarylab.experiment.report import verdict_line
from canarylab.experiment.spec import load_spec, parse_duration
from canarylab.experiment.targets import TARGETS
from canarylab.experiment.vocabulary import EXIT_ERROR, EXIT_INTERRUPTED
from canarylab.paths import project_root
from canarylab.procs import watch_owner


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _optional(text: str) -> str | None:
    """Ansible passes unset overrides as empty strings."""
    return text or None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m canarylab.experiment", description=__doc__.splitlines()[0])
    p.add_argument("spec", type=Path, help="experiment file, e.g. experiments/threads-4-vs-16.yml")
    p.add_argument(
        "--target", choices=TARGETS, default="local", help="where it runs (lab: the provisioned cluster)"
    )
    p.add_argument("--target-file", type=_optional, default=None, help="lab target file (YAML)")
    p.add_argument("--results-dir", type=Path, default=None, help="parent of the run directory (./results)")
    p.add_argument("--progress-file", type=_optional, default=None, help="append events here as JSON lines")
    p.add_argument("--duration", type=_optional, default=None, help="per repetition, e.g. 30s")
    p.add_argument("--warmup", type=_optional, default=None, help="warm-up, e.g. 5s")
    p.add_argument("--rate", type=_optional, default=None, help="requests/s to each variant")
    p.add_argument("--repetitions", type=_optional, default=None)
    p.add_argument("--calibrate", action="store_true", help="find the rate first (see docs/experiment.md)")
    p.add_argument("--bombardier", type=_optional, default=None, help="bombardier binary")
    p.add_argument("--prometheus", type=_optional, default=None, help="prometheus binary (local target)")
    p.add_argument("--rules-file", type=_optional, default=None, help="Prometheus rules to load, if valid")
    p.add_argument("--owner-pid", type=_optional, default=None, help="stop when this process is gone")
    return p


def _int(name: str, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise CanarylabError(f"--{name}: must be a whole number, got {text!r}") from None


def _dur(name: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as err:
        raise CanarylabError(f"--{name}: {err}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    listeners: list[ev.Listener] = []
    writer = None
    running = False
    try:
        root = project_root()
        owner = _int("owner-pid", args.owner_pid)
        watch_owner(owner)
        duration, warmup = _dur("duration", args.duration), _dur("warmup", args.warmup)
        rate, repetitions = _int("rate", args.rate), _int("repetitions", args.repetitions)
        overrides = {"duration": duration, "warmup": warmup, "rate": rate, "repetitions": repetitions}
        spec = load_spec(args.spec).with_overrides(
            duration=duration, warmup=warmup, rate=rate, repetitions=repetitions
        )
        if args.progress_file:
            writer = ev.ProgressFileWriter(Path(args.progress_file))
            listeners.append(writer)
        if sys.stderr.isatty():
            listeners.append(ev.TerminalRenderer())
        default_rules = root / "prometheus" / "canarylab-rules.yml"
        rules = (
            Path(args.rules_file) if args.rules_file else (default_rules if default_rules.exists() else None)
        )
        opts = EngineOptions(
            results_root=(args.results_dir or root / "results").resolve(),
            target=args.target,
            target_file=Path(args.target_file) if args.target_file else None,
            calibrate=args.calibrate,
            bombardier=args.bombardier,
            prometheus=args.prometheus,
            rules_file=rules,
            model_cache=root / ".cache" / "models",
            rate_source="command line" if rate is not None else "spec",
            overrides={k: v for k, v in overrides.items() if v is not None},
        )
        running = True  # from here on the engine reports its own errors as events
        outcome = run_experiment(spec, opts, listeners)
        print(verdict_line(outcome.summary), flush=True)
        return outcome.exit_code
    except CanarylabError as err:
        print(f"canarylab experiment: error: {err}", file=sys.stderr, flush=True)
        if writer is not None and not running:
            writer.on_event(ev.Event(kind=ev.ERROR, message=str(err)))
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("canarylab experiment: interrupted; every process it started was stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:  # a bug must not exit 1, which means FAIL
        traceback.print_exc()
        print("canarylab experiment: internal error (see the traceback above)", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if writer is not None:
            writer.close()


if __name__ == "__main__":
    sys.exit(main())
