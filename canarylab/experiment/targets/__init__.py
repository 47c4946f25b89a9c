"""Where an experiment runs: one module per target kind, and a registry (``registry.py``).

- ``local`` (:mod:`.local`): both variants, their apps and a Prometheus on 127.0.0.1;
- ``lab`` (:mod:`.lab`): a provisioned cluster - "lab" means that cluster everywhere:
  ``canarylab/lab/`` is its host side, ``canarylab/commands/lab.py`` its commands,
  and the ``lab`` target the experiment against it.

:mod:`.base` holds what every kind shares: ``TargetKind``/``TARGETS``, the
``Target`` Protocol the engine uses, ``Endpoint`` and ``TargetRequest``.
"""

from __future__ import annotations

from canarylab.experiment.targets.base import (
    TARGETS,
    Endpoint,
    ScrapeCheck,
    Target,
    TargetFactory,
    TargetKind,
    TargetRequest,
)

__all__ = ["TARGETS", "Endpoint", "ScrapeCheck", "Target", "TargetFactory", "TargetKind", "TargetRequest"]
