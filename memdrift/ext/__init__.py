"""Compiled kernels (Cython, built by meson): hot loops over plain arrays only."""

from __future__ import annotations

import importlib
from types import ModuleType

from memdrift.errors import MemdriftError

KERNELS = ("_filament", "_bulk4t")


def load(name: str) -> ModuleType:
    """The compiled kernel ``name``; a missing or broken build is a memdrift error pointing at the
    NumPy twin (``--backend reference``) and at the rebuild, not a bare ImportError from deep inside
    a run."""
    if name not in KERNELS:
        raise MemdriftError(f"compiled kernel = {name!r} is unknown; allowed: {', '.join(KERNELS)}")
    try:
        return importlib.import_module(f"memdrift.ext.{name}")
    except ImportError as exc:
        raise MemdriftError(
            f"compiled kernel memdrift.ext.{name} cannot be imported ({exc}); allowed: --backend reference "
            "(backend='reference' in Python), or rebuild the core with bash scripts/setup.sh") from exc
