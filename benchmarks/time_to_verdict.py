#!/usr/bin/env python3
"""Time from command to verdict on the local target (not a test: run it by hand).

    . scripts/env.sh && python benchmarks/time_to_verdict.py [--duration 20s] [--warmup 2s] [SPEC]

Runs ``canarylab experiment run --target local`` (the real path: ansible-runner,
experiment.yml, the engine) and prints the load time, the time to the verdict,
the total time and the overhead, with a breakdown from the engine's events.
Target: overhead (time to verdict minus load time) <= 15 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_OVERHEAD_S = 15.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("spec", nargs="?", default=str(ROOT / "experiments" / "threads-4-vs-16.yml"))
    p.add_argument("--duration", default="20s", help="per repetition (default 20s)")
    p.add_argument("--warmup", default="2s")
    p.add_argument("--repetitions", default="1")
    p.add_argument("--rate", default=None)
    p.add_argument("--keep", action="store_true", help="keep the results directory")
    args = p.parse_args()

    results = Path(tempfile.mkdtemp(prefix="canarylab-bench-"))
    canarylab = Path(sys.executable).parent / "canarylab"
    argv = [str(canarylab if canarylab.exists() else "canarylab"), "experiment", "run", "--target", "local",
            args.spec, "--results-dir", str(results), "--duration", args.duration, "--warmup", args.warmup,
            "--repetitions", args.repetitions]  # fmt: skip
    if args.rate:
        argv += ["--rate", args.rate]
    env = {**os.environ, "CANARYLAB_ROOT": str(ROOT)}
    print("running:", " ".join(argv), flush=True)
    started = time.time()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    ended = time.time()
    runs = [d for d in results.iterdir() if d.is_dir() and not d.is_symlink()]
    if not runs or not (runs[0] / "summary.json").exists():
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n")
        print("the run wrote no summary.json", file=sys.stderr)
        return 2
    run = runs[0]
    summary = json.loads((run / "summary.json").read_text())
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines() if line.strip()]

    def first(kind: str) -> float:
        return next(e["time"] for e in events if e["kind"] == kind)

    load = float(summary["timing"]["load_seconds"])
    verdict_at = first("verdict") - started
    total = ended - started
    starts = [e["time"] for e in events if e["kind"] == "load_start"]
    ends = [e["time"] for e in events if e["kind"] == "load_end"]
    rows = [
        ("load time (warm-up + repetitions, configured)", load),
        ("time to verdict (command start -> verdict known)", verdict_at),
        ("total time (command start -> command exit)", total),
        ("overhead to verdict", verdict_at - load),
        ("overhead to exit (incl. report and plots)", total - load),
        ("  command + ansible until the engine started", first("engine") - started),
        ("  engine: target start-up until ready", first("ready") - first("engine")),
        ("  under load incl. drain and scrapes", max(ends) - min(starts)),
        ("  collect, stop, analyse until the verdict", first("verdict") - max(ends)),
        ("  report and plots", first("done") - first("verdict")),
        ("  after the engine: ansible and the verdict table", ended - first("done")),
    ]
    print(f"\nverdict: {summary['verdict']}: {summary['reason']}\n")
    for label, seconds in rows:
        print(f"{label:<52} {seconds:7.1f} s")
    ok = verdict_at - load <= TARGET_OVERHEAD_S
    print(f"\noverhead to verdict {'<=' if ok else '>'} {TARGET_OVERHEAD_S:g} s: {'OK' if ok else 'OVER'}")
    print(f"load average now: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    if args.keep:
        print(f"results: {run}")
    else:
        import shutil  # noqa: PLC0415

        shutil.rmtree(results, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
