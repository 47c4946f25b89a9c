"""The target kinds and their factories: adding a kind is its module and one line here."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from canarylab.errors import CanarylabError
from canarylab.experiment.targets import lab, local
from canarylab.experiment.targets.base import Target, TargetFactory, TargetRequest

#: kind -> factory, one line per kind; read-only (a caller with a kind of its own passes its
#: own mapping to ``create``).
FACTORIES: Mapping[str, TargetFactory] = MappingProxyType(
    {
        local.LocalTarget.kind: local.create,
        lab.LabTarget.kind: lab.create,
    }
)


def create(kind: str, request: TargetRequest, factories: Mapping[str, TargetFactory] = FACTORIES) -> Target:
    """The target of ``kind``, not started yet (``with target:`` starts it)."""
    factory = factories.get(kind)
    if factory is None:
        raise CanarylabError(f"unknown target kind {kind!r}", f"use one of: {', '.join(factories)}")
    return factory(request)
