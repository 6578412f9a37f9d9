"""The dataset contract (DESIGN.md, "Datasets"): names, dimensions, units.

Every producer and consumer of datasets uses these names, so a lab's own file
with the same names goes through the same extraction.

In memory, grouped global attributes are dotted (``param.gap_min_m``,
``scheme.read_width_s``). CF-1.10 (§2.3) allows only letters, digits and
underscores in attribute names, so on disk the dot is written as
:data:`ATTR_SEPARATOR`; :func:`to_file_attrs` and :func:`from_file_attrs` map
one form to the other, and files written with dotted names still read.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

import numpy as np
import xarray as xr

DEVICE, CYCLE, PULSE, TIME, LEVEL, VOLTAGE = "device", "cycle", "pulse", "time", "level", "voltage"

#: name -> (dims, units, long_name, CF standard_name or None). The CF standard-name
#: table has no electrical conductance or resistance of a device, so none is given.
VARIABLES: dict[str, tuple[tuple[str, ...], str, str, str | None]] = {
    "conductance": ((DEVICE, CYCLE, PULSE), "S", "conductance read after the pulse", None),
    "resistance": ((DEVICE, CYCLE, PULSE), "ohm", "resistance read after the pulse", None),
    "temperature_peak": ((DEVICE, CYCLE, PULSE), "K", "peak filament temperature during the pulse", None),
    "energy": ((DEVICE, CYCLE, PULSE), "J", "electrical energy delivered by the pulse", None),
    "gap": ((DEVICE, CYCLE, PULSE), "m", "filament-electrode gap after the pulse", None),
    "amplitude": ((PULSE,), "V", "pulse amplitude", None),
    "width": ((PULSE,), "s", "pulse width", None),
}

#: long_names of other variables whose producer gives none (applied only where missing)
LONG_NAMES: dict[str, str] = {
    "resistance_start": "resistance read before the branch's first FFP event",
}

#: long_name where a model's variable means something else than the filament's.
MODEL_LONG_NAMES: dict[tuple[str, str], str] = {
    ("bulk4t", "temperature_peak"): "peak film temperature (hottest cell) during the pulse",
}

#: Coordinate holding "potentiation"/"depression" per pulse.
BRANCH = "branch"

#: coordinate -> (long_name, units or None for labels). Producers may give their own long_name.
COORDINATES: dict[str, tuple[str, str | None]] = {
    DEVICE: ("device index in the ensemble", "1"),
    CYCLE: ("programming cycle index", "1"),
    PULSE: ("pulse index within the cycle", "1"),
    LEVEL: ("level index", "1"),
    TIME: ("time since the end of programming", "s"),
    VOLTAGE: ("applied voltage", "V"),
    "temperature": ("ambient temperature", "K"),
    BRANCH: ("programming branch of the pulse", None),
    "mode": ("evaluation mode (digital or analog variant)", None),
    "repeat": ("analog programming repeat", "1"),
    "map_resistance": ("resistance R13 the dR map is measured at", "ohm"),
    "map_amplitude": ("write amplitude of the dR map", "V"),
    "map_branch": ("programming branch of the dR map", None),
    "snapshot": ("FFP event index of the map snapshot", "1"),
}

#: what a dotted attribute group separator becomes in a file
ATTR_SEPARATOR = "__"

#: CF coordinate variables are numeric and monotonic (§1.3, §5); a dimension labelled by
#: strings (``mode``, the I-V ``sweep``) is written as an auxiliary coordinate of this suffix.
LABEL_SUFFIX = "_label"

CONVENTIONS = "CF-1.10"


def annotate(ds: xr.Dataset) -> xr.Dataset:
    """Attach CF ``units``/``long_name``/``standard_name`` to the contract variables present.

    A producer's own ``long_name`` is kept: the retention bake's conductance is not a read
    after a pulse.
    """
    model = str(ds.attrs.get("model", ""))
    for name, (_dims, units, long_name, standard_name) in VARIABLES.items():
        if name in ds.variables:
            ds[name].attrs["units"] = units
            ds[name].attrs.setdefault("long_name", MODEL_LONG_NAMES.get((model, name), long_name))
            if standard_name:
                ds[name].attrs["standard_name"] = standard_name
    for name, long_name in LONG_NAMES.items():
        if name in ds.variables:
            ds[name].attrs.setdefault("long_name", long_name)
    ds.attrs.setdefault("Conventions", CONVENTIONS)
    return ds


def netcdf_attrs(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a mapping into netCDF-safe global attributes (numbers, strings)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(netcdf_attrs(value, f"{name}."))
        elif isinstance(value, bool):
            out[name] = int(value)
        elif isinstance(value, (int, float, np.integer, np.floating, str)):
            out[name] = value
        else:
            out[name] = str(value)
    return out


def to_file_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """Global attributes with CF-legal names (``param.gap_min_m`` -> ``param__gap_min_m``)."""
    return {key.replace(".", ATTR_SEPARATOR): value for key, value in attrs.items()}


def from_file_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """The in-memory (dotted) names of a file's global attributes; dotted names pass through."""
    return {key.replace(ATTR_SEPARATOR, "."): value for key, value in attrs.items()}


def from_file(ds: xr.Dataset) -> xr.Dataset:
    """Undo :func:`for_file`'s renamings: dotted names, string labels as the index."""
    ds.attrs = from_file_attrs(ds.attrs)
    dotted = {name: str(name).replace(ATTR_SEPARATOR, ".") for name in (*ds.variables, *ds.dims)
              if ATTR_SEPARATOR in str(name)}
    if dotted:
        ds = ds.rename(dotted)
    for name in list(ds.coords):
        base = str(name)[: -len(LABEL_SUFFIX)]
        if str(name).endswith(LABEL_SUFFIX) and ds[name].dims == (base,) and base not in ds.variables:
            ds = ds.rename_vars({name: base}).set_xindex(base)
    return ds


def package_versions() -> dict[str, str]:
    """memdrift, aihwkit and torch versions ("not installed" where absent), for provenance."""
    out = {}
    for name in ("memdrift", "aihwkit", "torch"):
        try:
            out[f"{name}_version"] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[f"{name}_version"] = "not installed"
    return out


def for_file(ds: xr.Dataset) -> xr.Dataset:
    """A shallow copy of ``ds`` as memdrift writes it: CF-1.10 metadata on every coordinate,
    CF-legal global attribute names, Conventions, title, history and package versions."""
    labels = {name: f"{name}{LABEL_SUFFIX}" for name in ds.dims
              if name in ds.coords and ds[name].dtype.kind in "OSU"}
    out = ds.rename_vars(labels) if labels else ds.copy(deep=False)
    # A sweep axis named after a parameter (``variation.activation_energy_ev``) is a dimension
    # and a variable: CF names have no dots either.
    dotted = {name: str(name).replace(".", ATTR_SEPARATOR) for name in (*out.variables, *out.dims) if "." in str(name)}
    if dotted:
        out = out.rename(dotted)
    for name in out.coords:
        long_name, units = COORDINATES.get(str(name), (str(name).replace("_", " "), None))
        attrs = out[name].attrs
        attrs.setdefault("long_name", long_name)
        if units is not None and out[name].dtype.kind in "fiu":
            attrs.setdefault("units", units)
    attrs = dict(out.attrs)
    attrs.setdefault("Conventions", CONVENTIONS)
    attrs.setdefault("title", f"memdrift {attrs.get('model') or attrs.get('study') or 'dataset'}")
    for key, version in package_versions().items():
        attrs.setdefault(key, version)
    # No date in it: a file regenerated from itself is the same file.
    attrs.setdefault("history", f"written by memdrift {attrs['memdrift_version']}")
    out.attrs = to_file_attrs(attrs)
    return out


#: the variables ``float32=True`` stores in single precision (7 significant digits: far below the
#: cycle-to-cycle spread of any read)
FLOAT32_VARIABLES = ("conductance", "resistance")


def netcdf_encoding(ds: xr.Dataset, *, float32: bool = False) -> dict[str, dict[str, Any]]:
    """zlib on numeric data variables; no ``_FillValue`` on coordinates (CF §2.5.1); with
    ``float32``, the reads (:data:`FLOAT32_VARIABLES`) in single precision."""
    encoding: dict[str, dict[str, Any]] = {name: {"zlib": True, "complevel": 4} for name, var in ds.data_vars.items()
                                           if var.dtype.kind in "fiu"}
    if float32:
        for name in FLOAT32_VARIABLES:
            if name in encoding and ds[name].dtype.kind == "f":
                encoding[name]["dtype"] = "float32"
    for name, enc in encoding.items():
        var = ds[name]
        # HDF5 refuses chunks of 4 GiB or more: such a block is left to netCDF's own chunking
        if var.chunks and var.ndim and np.prod([c[0] for c in var.chunks]) * var.dtype.itemsize < 2**31:
            # one HDF5 chunk per computed block: each block is compressed once and leaves the
            # chunk cache as it is written, so an interrupted write has nothing left to flush
            enc["chunksizes"] = tuple(int(c[0]) for c in var.chunks)
    for name in ds.coords:
        encoding.setdefault(str(name), {})["_FillValue"] = None
    return encoding
