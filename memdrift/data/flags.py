"""Per-pulse quality flags: one bit mask the models and the envelope check share.

A pulse whose numbers cannot be trusted is never silent: the kernel (or the
envelope check on its output) sets a bit in the dataset variable ``pulse_flag``
(dims as ``conductance``), and the CLI warns on stderr with the count. The
variable carries CF ``flag_masks``/``flag_meanings`` so a file explains itself.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

#: the cell (or film) solve did not converge: current and voltage are not a solution
SOLVE_NOT_CONVERGED = 1
#: the temperature reached the model's thermal ceiling (melting / breakdown); the pulse was ended there
THERMAL_CEILING = 2
#: the step control ran out of its budget before the segment ended
STEP_BUDGET = 4
#: an output lies outside the model's documented physical envelope (temperature, current, field)
OUTSIDE_ENVELOPE = 8
#: a rate of the model left double range (a field or temperature far outside what its law describes); the
#: pulse was ended there
RATE_OVERFLOW = 16

MEANINGS = {
    SOLVE_NOT_CONVERGED: "solve_not_converged",
    THERMAL_CEILING: "thermal_ceiling",
    STEP_BUDGET: "step_budget_exhausted",
    OUTSIDE_ENVELOPE: "outside_physical_envelope",
    RATE_OVERFLOW: "rate_overflow",
}
VARIABLE = "pulse_flag"


def flag_attrs() -> dict[str, object]:
    """CF attributes of the flag variable."""
    masks = sorted(MEANINGS)
    return {
        "long_name": "pulse quality flag (0: trusted)",
        "flag_masks": np.array(masks, dtype=np.uint8),
        "flag_meanings": " ".join(MEANINGS[m] for m in masks),
    }


def describe(flags: np.ndarray) -> list[str]:
    """One phrase per set bit with its count, e.g. ``['3 pulses thermal_ceiling']``."""
    flags = np.asarray(flags)
    out = []
    for mask in sorted(MEANINGS):
        count = int(np.count_nonzero(flags & mask))
        if count:
            out.append(f"{count} pulse{'s' if count != 1 else ''} {MEANINGS[mask]}")
    return out


def attach(ds: xr.Dataset, flags: np.ndarray, dims: tuple[str, ...]) -> xr.Dataset:
    """Store ``flags`` (OR-ed into any present) as ``pulse_flag`` with its CF attributes."""
    flags = np.asarray(flags, dtype=np.uint8)
    if VARIABLE in ds:
        flags = flags | ds[VARIABLE].values.astype(np.uint8)
    ds[VARIABLE] = (dims, flags)
    ds[VARIABLE].attrs.update(flag_attrs())
    return ds
