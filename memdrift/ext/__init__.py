"""Compiled kernels (Cython, built by meson): hot loops over plain arrays only."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType

from memdrift.errors import MemdriftError, NamedError, literal

KERNELS = ("_filament", "_bulk4t")


def load(name: str, columns: Sequence[str] | None = None) -> ModuleType:
    """The compiled kernel ``name``; a missing or broken build is a memdrift error pointing at the
    NumPy twin (``backend="reference"``) and at the rebuild, not a bare ImportError from deep inside
    a run. Both messages are :class:`~memdrift.errors.NamedError`: they name the argument ``backend``,
    and the command line words it as its flag.

    ``columns``: the NumPy twin's names of the per-device table's columns, in order. The kernel
    exports its own (``COLUMNS``, from the enum that indexes the table); they must agree name by
    name, or the kernel would read one parameter as another.
    """
    if name not in KERNELS:
        raise MemdriftError(f"compiled kernel = {name!r} is unknown; allowed: {', '.join(KERNELS)}")
    try:
        module = importlib.import_module(f"memdrift.ext.{name}")
    except ImportError as exc:
        raise NamedError(
            f"compiled kernel memdrift.ext.{name} cannot be imported ({_braces(str(exc))}); allowed: "
            "{backend} 'reference' (the NumPy twin), or rebuild the core with bash scripts/setup.sh") from exc
    if columns is not None:
        check_columns(name, tuple(getattr(module, "COLUMNS", ())), tuple(columns))
    return module


def _braces(text: str) -> str:
    """``text`` for a :class:`NamedError` template, its braces doubled."""
    return text.replace("{", "{{").replace("}", "}}")


def check_columns(name: str, kernel: tuple[str, ...], twin: tuple[str, ...]) -> None:
    """Refuse a kernel whose table layout is not the twin's, naming the first column that differs."""
    if kernel != twin:
        at = next((i for i, (k, t) in enumerate(zip(kernel, twin)) if k != t), min(len(kernel), len(twin)))
        held = kernel[at] if at < len(kernel) else "nothing"
        wanted = twin[at] if at < len(twin) else "nothing"
        raise NamedError(
            f"compiled kernel memdrift.ext.{name} holds {literal(held)} in column {at} of its parameter table where "
            f"the NumPy twin holds {literal(wanted)} ({len(kernel)} columns against {len(twin)}); allowed: the same "
            "columns in the same order on both sides: change the enum and the twin's list together and "
            "rebuild (bash scripts/setup.sh), or run on {backend} 'reference' (the NumPy twin)")
