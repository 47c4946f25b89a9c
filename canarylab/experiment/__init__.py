"""The experiment engine: spec, load, collection, statistics, verdict and report.

``python -m canarylab.experiment`` is its entry point; ``canarylab experiment run``
and ``ansible-playbook experiment.yml`` both end up there (see docs/experiment.md).
The exit codes and verdict names are defined in :mod:`.vocabulary` (re-exported here).
"""

from __future__ import annotations

from canarylab.experiment.vocabulary import (
    EXIT_ERROR,
    EXIT_FAIL,
    EXIT_INCONCLUSIVE,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_PASS,
    VERDICT_EXIT_CODES,
)

__all__ = [
    "EXIT_ERROR",
    "EXIT_FAIL",
    "EXIT_INCONCLUSIVE",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "EXIT_PASS",
    "VERDICT_EXIT_CODES",
]
