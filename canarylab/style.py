"""One colour per variant, the same in the Grafana dashboard and in the report's plots."""

from __future__ import annotations

import canarylab_contract as c

#: Grafana's named colours: stable is always blue, canary always orange.
VARIANT_COLORS: dict[str, str] = {c.STABLE: "blue", c.CANARY: "orange"}

_MATPLOTLIB = {"blue": "tab:blue", "orange": "tab:orange"}


def plot_color(variant: str) -> str:
    """The matplotlib colour of ``variant`` (grey for a variant the lab does not know)."""
    return _MATPLOTLIB.get(VARIANT_COLORS.get(variant, ""), "tab:gray")
