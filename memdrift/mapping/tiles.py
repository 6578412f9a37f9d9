"""Which aihwkit simulator tile a study runs on (no aihwkit import, so settings can be checked without it).

``torch`` draws every random number from torch's seeded generator (same seed, same accuracy); ``cpp`` is
the C++ tile, which seeds itself from outside the process (every run differs) and alone implements IR
drop in aihwkit 1.2.0; ``auto`` takes torch unless IR drop is on.
"""

from __future__ import annotations

from memdrift.errors import MemdriftError

TILES = ("auto", "torch", "cpp")


def resolve_tile(tile: str, ir_drop: float = 0.0) -> str:
    """The tile ``tile`` stands for (``torch`` or ``cpp``) with IR drop ``ir_drop``."""
    if tile not in TILES:
        raise MemdriftError(f"tile = {tile!r} is unknown; allowed: {', '.join(TILES)}")
    if tile == "auto":
        return "cpp" if ir_drop > 0 else "torch"
    if tile == "torch" and ir_drop > 0:
        raise MemdriftError(f"tile = 'torch' with ir_drop = {ir_drop!r}: aihwkit's torch tile has no IR drop; "
                            "allowed: tile 'cpp' (or 'auto') with ir_drop > 0, or ir_drop = 0")
    return tile
