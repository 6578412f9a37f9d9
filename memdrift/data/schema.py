"""The dataset contract (DESIGN.md, "Datasets"): names, dimensions, units.

Every producer and consumer of datasets uses these names, so a lab's own file
with the same names goes through the same extraction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

DEVICE, CYCLE, PULSE, TIME, LEVEL, VOLTAGE = "device", "cycle", "pulse", "time", "level", "voltage"

#: name -> (dims, units, long_name, CF standard_name or None)
VARIABLES: dict[str, tuple[tuple[str, ...], str, str, str | None]] = {
    "conductance": ((DEVICE, CYCLE, PULSE), "S", "conductance read after the pulse", "electrical_conductance"),
    "resistance": ((DEVICE, CYCLE, PULSE), "ohm", "resistance read after the pulse", "electrical_resistance"),
    "temperature_peak": ((DEVICE, CYCLE, PULSE), "K", "peak filament temperature during the pulse", None),
    "energy": ((DEVICE, CYCLE, PULSE), "J", "electrical energy delivered by the pulse", None),
    "gap": ((DEVICE, CYCLE, PULSE), "m", "filament-electrode gap after the pulse", None),
    "amplitude": ((PULSE,), "V", "pulse amplitude", None),
    "width": ((PULSE,), "s", "pulse width", None),
}

#: Coordinate holding "potentiation"/"depression" per pulse.
BRANCH = "branch"


def annotate(ds: xr.Dataset) -> xr.Dataset:
    """Attach CF ``units``/``long_name``/``standard_name`` to the contract variables present."""
    for name, (_dims, units, long_name, standard_name) in VARIABLES.items():
        if name in ds.variables:
            ds[name].attrs.update(units=units, long_name=long_name)
            if standard_name:
                ds[name].attrs["standard_name"] = standard_name
    ds.attrs.setdefault("Conventions", "CF-1.10")
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
