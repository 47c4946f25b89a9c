"""Moved to :mod:`canarylab.experiment.targets.local`; this name stays for older imports.

Kept only for tests outside canarylab/experiment that still import it
(tests/dashboard/test_dashboard_live.py); delete once they import the new module.
"""

from __future__ import annotations

from canarylab.experiment.targets.base import Endpoint
from canarylab.experiment.targets.local import LocalTarget, VariantConfig, metrics_key, owns_port, pick_port

__all__ = ["Endpoint", "LocalTarget", "VariantConfig", "metrics_key", "owns_port", "pick_port"]
