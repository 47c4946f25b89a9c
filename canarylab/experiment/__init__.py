"""The experiment engine: spec, load, collection, statistics, verdict and report.

``python -m canarylab.experiment`` is its entry point; ``canarylab experiment run``
and ``ansible-playbook experiment.yml`` both end up there (see docs/experiment.md).
"""

from __future__ import annotations

#: Exit codes of the engine and of ``canarylab experiment run``.
EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_ERROR = 2
EXIT_INCONCLUSIVE = 3
EXIT_INVALID = 4
EXIT_INTERRUPTED = 130

VERDICT_EXIT_CODES: dict[str, int] = {
    "PASS": EXIT_PASS,
    "FAIL": EXIT_FAIL,
    "INCONCLUSIVE": EXIT_INCONCLUSIVE,
    "INVALID": EXIT_INVALID,
}
