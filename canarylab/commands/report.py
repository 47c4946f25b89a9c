"""`canarylab report RESULTS_DIR`: render report.md and the plots again from a run's saved data.

Needs no cluster and no Prometheus: summary.json, environment.json and the
saved Prometheus query results (prometheus/rep*.json) are enough.  Results
written before summary.json had a ``schema`` render too; a newer schema than
this canarylab reads is an error saying to upgrade.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from canarylab.experiment import results as res


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report",
        help="re-render an experiment's report.md and plots from its results directory",
        description="Re-renders report.md and plots/*.png of a run from its saved files (no cluster needed). "
        "RESULTS_DIR is a run directory, or a results/ directory (its latest run).",
    )
    p.add_argument("results_dir", type=Path, metavar="RESULTS_DIR", help="e.g. results/latest")
    p.add_argument(
        "--reanalyse",
        action="store_true",
        help="also recompute summary.json from the raw data (same seed, same numbers)",
    )
    p.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    # numpy, rich tables and the analysis, only when a report is rendered (not for `canarylab --help`)
    from canarylab.experiment.report import reanalyse, render_all, verdict_table  # noqa: PLC0415

    run_dir = res.find_run_dir(args.results_dir)
    if args.reanalyse:
        reanalyse(run_dir)
    summary = render_all(run_dir)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
    console.print(verdict_table(summary))
    console.print(f"report: {run_dir / res.REPORT}")
    for png in sorted((run_dir / res.PLOTS_DIR).glob("*.png")):
        console.print(f"plot:   {png}")
    return 0
