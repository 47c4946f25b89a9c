"""Grafana's 24-column grid, filled left to right, top to bottom, so panels never overlap."""

from __future__ import annotations

from dataclasses import dataclass

#: Width of Grafana's dashboard grid.
GRID_WIDTH = 24
ROW_HEIGHT = 1


@dataclass(frozen=True)
class GridPos:
    x: int
    y: int
    w: int
    h: int

    def as_dict(self) -> dict[str, int]:
        return {"h": self.h, "w": self.w, "x": self.x, "y": self.y}


@dataclass
class Layout:
    """Hands out grid positions: ``row()`` starts a full-width row, ``place()`` the next panel."""

    _x: int = 0
    _y: int = 0
    _line_height: int = 0

    def _new_line(self) -> None:
        self._y += self._line_height
        self._x = 0
        self._line_height = 0

    def row(self) -> GridPos:
        if self._x:
            self._new_line()
        pos = GridPos(0, self._y, GRID_WIDTH, ROW_HEIGHT)
        self._y += ROW_HEIGHT
        return pos

    def place(self, w: int, h: int) -> GridPos:
        if not 0 < w <= GRID_WIDTH or h <= 0:
            raise ValueError(f"panel size {w}x{h} does not fit a {GRID_WIDTH}-column grid")
        if self._x + w > GRID_WIDTH:
            self._new_line()
        pos = GridPos(self._x, self._y, w, h)
        self._x += w
        self._line_height = max(self._line_height, h)
        return pos
