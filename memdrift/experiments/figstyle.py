"""What every memdrift figure shares: the Agg backend, atomic PNG writes, axis labels read from the
data's own ``long_name`` and ``units``, SI prefixes instead of offset text, one branch palette and a
visible mark where an axis does not start at zero.

A label is ``"<long_name> (<units>)"`` with the units the values are drawn in (``µS`` for a
conductance stored in S); a dimensionless quantity (units ``"1"``) shows its long_name alone.
Coordinates that carry no attributes in memory get the ones :func:`memdrift.data.schema.for_file`
writes, so a figure drawn before and after a netCDF round trip has the same labels.
"""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from memdrift.data.io import atomic_path
from memdrift.data.schema import COORDINATES

#: One colour per programming branch, in every figure (colour-blind safe pair of the Okabe-Ito set).
BRANCH_COLOURS: dict[str, str] = {"potentiation": "#D55E00", "depression": "#0072B2"}
#: Colour of the published values drawn over the emulated ones.
PAPER_COLOUR = "black"
#: gid of the artists that mark a truncated axis; tests and readers find the break by it.
AXIS_BREAK_GID = "axis-break"

# units whose SI prefix a label may change (K and dimensionless quantities keep theirs)
_PREFIXABLE = {"S", "ohm", "J", "W", "V", "A", "s", "m", "F"}
_PREFIXES = {-15: "f", -12: "p", -9: "n", -6: "µ", -3: "m", 0: "", 3: "k", 6: "M", 9: "G"}
_SYMBOLS = {"ohm": "Ω"}


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | os.PathLike[str], **savefig: Any) -> Path:
    """Write ``fig`` as PNG under a temporary name, rename it into place and close the figure."""
    options = {"dpi": 120, **savefig}
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", **options)
    finally:
        pyplot().close(fig)
    return Path(path)


def attributes(var: xr.DataArray) -> tuple[str, str | None]:
    """``(long_name, units)`` of a variable or coordinate; units None for a label without units."""
    long_name = var.attrs.get("long_name")
    units = var.attrs.get("units")
    if long_name is None or units is None:
        default_name, default_units = COORDINATES.get(str(var.name), (str(var.name).replace("_", " "), None))
        long_name = default_name if long_name is None else long_name
        if units is None and var.dtype.kind in "fiu":
            units = default_units
    return str(long_name), None if units is None else str(units)


def prefix_exponent(units: str | None, values: Any) -> int:
    """Power of ten (a multiple of 3) that brings the median magnitude of ``values`` into [1, 1000)."""
    if units not in _PREFIXABLE:
        return 0
    x = np.abs(np.asarray(values, dtype=float))
    x = x[np.isfinite(x) & (x > 0)]
    if x.size == 0:
        return 0
    median = float(np.median(x))
    exp = 3 * math.floor(math.log10(median) / 3)
    # log10 rounds just below a power of ten up to it (log10(999999999.9999999) == 9.0)
    if median * 10.0 ** -exp < 1.0:
        exp -= 3
    elif median * 10.0 ** -exp >= 1000.0:
        exp += 3
    return int(min(max(exp, min(_PREFIXES)), max(_PREFIXES)))


def display_units(units: str | None, exponent: int = 0) -> str | None:
    if units is None:
        return None
    return _PREFIXES[exponent] + _SYMBOLS.get(units, units)


#: labels longer than this wrap onto a second line rather than run past the axes
LABEL_WIDTH = 52


def compose(long_name: str, units: str | None, width: int = LABEL_WIDTH) -> str:
    """``"long_name (units)"``, wrapped at ``width`` characters; no units for "1"."""
    text = long_name if units in (None, "", "1") else f"{long_name} ({units})"
    return textwrap.fill(text, width, break_on_hyphens=False)


def label(var: xr.DataArray, exponent: int = 0, width: int = LABEL_WIDTH) -> str:
    """The axis label of ``var`` drawn in units of ``10**exponent`` times its own."""
    long_name, units = attributes(var)
    return compose(long_name, display_units(units, exponent), width)


def scaled(var: xr.DataArray, values: Any = None) -> tuple[np.ndarray, str, float]:
    """``(values in display units, label, factor)``: the values multiplied by ``factor`` carry ``label``.

    ``values`` defaults to the variable's own; pass a selection to scale what is drawn while the
    prefix follows the whole variable (panels of one quantity keep one unit).
    """
    _, units = attributes(var)
    exponent = prefix_exponent(units, var.values)
    factor = 10.0 ** -exponent
    data = np.asarray(var.values if values is None else values, dtype=float) * factor
    return data, label(var, exponent), factor


def colour_bar(fig, mappable, axes, var: xr.DataArray, *, width: int = 36, **options: Any):
    """A colourbar labelled from ``var``, its ticks in SI-prefixed units (or, for a count, in powers of
    a thousand named in the label) and without an offset."""
    from matplotlib.ticker import FuncFormatter

    _, units = attributes(var)
    lo, hi = mappable.norm.vmin, mappable.norm.vmax
    if units in _PREFIXABLE:
        exponent = prefix_exponent(units, [lo, hi])
        text = label(var, exponent, width)
    else:
        top = max(abs(lo), abs(hi))
        exponent = 3 * math.floor(math.log10(top) / 3) if top >= 1e4 else 0
        long_name, _ = attributes(var)
        text = label(var, 0, width) if exponent == 0 else compose(
            long_name, f"10^{exponent}" + ("" if units in (None, "", "1") else f" {display_units(units)}"), width)
    bar = fig.colorbar(mappable, ax=axes, label=text, **options)
    factor = 10.0 ** -exponent
    bar.formatter = FuncFormatter(lambda value, _pos: f"{value * factor:.6g}")
    bar.update_ticks()
    return bar


def plain_ticks(ax, *, axis: str = "both") -> None:
    """Tick labels without an offset or a ``1e-8`` multiplier: the prefix lives in the label."""
    try:
        ax.ticklabel_format(axis=axis, useOffset=False, style="plain")
    except AttributeError:
        pass  # a log axis has no ScalarFormatter to configure


def branch_colour(name: Any) -> str:
    """The palette colour of a branch ("potentiation"/"depression"); grey for anything else."""
    return BRANCH_COLOURS.get(str(name), "0.35")


def mark_axis_break(ax, axis: str = "y") -> None:
    """Draw the ``//`` break symbol at the low end of ``axis``: it does not start at zero."""
    size = 0.015
    kwargs = {"transform": ax.transAxes, "color": "k", "lw": 1.0, "clip_on": False, "gid": AXIS_BREAK_GID}
    for shift in (-0.012, 0.012):
        if axis == "y":
            ax.plot((-size, size), (0.03 + shift - size, 0.03 + shift + size), **kwargs)
        else:
            ax.plot((0.03 + shift - size, 0.03 + shift + size), (-size, size), **kwargs)


def has_axis_break(ax) -> bool:
    return any(line.get_gid() == AXIS_BREAK_GID for line in ax.get_lines())
