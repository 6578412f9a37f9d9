"""The physical envelope of each model: the safety net on whatever the kernels output.

A pulse whose output lies beyond what the modelled device could survive (or
beyond what the model's equations describe) is not a result: its
``OUTSIDE_ENVELOPE`` bit is set in ``pulse_flag`` and the CLI warns on stderr
with the count. The kernels flag what they can see while they run (a solve
that did not converge, the thermal ceiling); this check needs nothing but the
dataset, so it also catches what they do not.

One table per model, each limit with its reason. Temperatures in K, power
(pulse energy over pulse width) in W.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import xarray as xr

from memdrift.data import flags


@dataclass(frozen=True)
class Envelope:
    model: str
    #: hottest a cell may get before its material melts (the model has no liquid phase)
    temperature_max_k: float
    #: largest mean power in one pulse that the device's geometry can carry
    power_max_w: float
    #: coolest physical temperature (0 K is a numerical failure, not a cryostat)
    temperature_min_k: float = 1.0


ENVELOPES = {
    # HfO2 (the HfOxSy switching layer) melts at 3,031 K (2,758 °C); a filament hotter than
    # that is molten oxide, which the vacancy-hopping equations do not describe.
    # A nanometre filament above 1 W: with the ~1e5-1e6 K/W thermal resistance of such
    # cells that is 1e5 K or more, i.e. a numerical runaway rather than a device.
    "filament": Envelope("filament", temperature_max_k=3031.0, power_max_w=1.0),
    # Rutile TiO2 melts at 2,116 K (1,843 °C); a film above it is no longer a vacancy-drift film.
    # 100 W on a micrometre-scale four-terminal film is far above the watts it can shed
    # to its substrate: beyond it the film would be destroyed, whatever its temperature map says.
    "bulk4t": Envelope("bulk4t", temperature_max_k=2116.0, power_max_w=100.0),
}


def outside(ds: xr.Dataset, model: str) -> xr.DataArray | None:
    """A boolean mask (dims of the per-pulse temperature) of pulses beyond ``model``'s envelope.

    None when the dataset has no per-pulse temperature (nothing to check). A
    non-finite temperature or energy is outside too: NaN is never a silent result.
    """
    if model not in ENVELOPES or "temperature_peak" not in ds:
        return None
    env = ENVELOPES[model]
    temp = ds["temperature_peak"]
    bad = ~((temp >= env.temperature_min_k) & (temp <= env.temperature_max_k))
    if "energy" in ds and "width" in ds:
        power = ds["energy"] / ds["width"]
        bad = bad | ~(abs(power) <= env.power_max_w)
    return bad.transpose(*temp.dims)


def apply(ds: xr.Dataset, model: str) -> int:
    """Set ``OUTSIDE_ENVELOPE`` in ``pulse_flag`` for pulses beyond the envelope; return their count."""
    mask = outside(ds, model)
    if mask is None:
        return 0
    values = np.asarray(mask.values, dtype=bool)
    flags.attach(ds, np.where(values, flags.OUTSIDE_ENVELOPE, 0).astype(np.uint8), mask.dims)
    return int(values.sum())


def warn(ds: xr.Dataset, model: str, where: str) -> int:
    """:func:`apply`, then one stderr line naming the count and the limits when any pulse is outside."""
    count = apply(ds, model)
    report(count, model, where)
    return count


def report(count: int, model: str, where: str) -> None:
    """The stderr line of :func:`warn` for ``count`` pulses outside (none when zero)."""
    if count:
        env = ENVELOPES[model]
        print(f"warning: {where}: {count} pulse{'s' if count != 1 else ''} outside the {model} physical envelope "
              f"(temperature {env.temperature_min_k:g}..{env.temperature_max_k:g} K, power <= {env.power_max_w:g} W); "
              f"flagged {flags.MEANINGS[flags.OUTSIDE_ENVELOPE]} in {flags.VARIABLE}", file=sys.stderr)
