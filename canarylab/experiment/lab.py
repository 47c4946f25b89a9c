"""Moved to :mod:`canarylab.experiment.targets.lab`; this name stays for older imports.

Kept only for tests outside canarylab/experiment that still import it
(tests/lab_roles/test_lab_preflight.py); delete once they import the new module.
"""

from __future__ import annotations

from canarylab.experiment.targets.lab import LabTarget

__all__ = ["LabTarget"]
