"""The bulk four-terminal film's protocols (``dr-map``, ``ffp-segmentation``, ``retention``), delegated to
:mod:`memdrift.emulator.bulk4t_schemes` and computed whole in memory."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from memdrift.emulator.params import Preset
from memdrift.emulator.protocols.options import (BULK4T_PROTOCOLS, BULK4T_UNUSED, TEN_YEARS_S, Options,
                                                 UnusedOption, _check_options, _int_option)
from memdrift.errors import check_range


def characterise_bulk4t(p: Preset, protocol: str, opts: Options) -> xr.Dataset:
    """A bulk four-terminal protocol (the film model's :meth:`~memdrift.models.DeviceModel.characterise`)."""
    _check_options(protocol, opts, tuple(BULK4T_PROTOCOLS), f"the bulk4t preset {p.name!r}")
    return _bulk4t(p, protocol, opts)


def _bulk4t(p: Preset, protocol: str, opts: Options) -> xr.Dataset:
    from memdrift.emulator import bulk4t_schemes

    for name in BULK4T_UNUSED:
        if getattr(opts, name) is not None:
            raise UnusedOption(name, protocol, note="on a bulk4t preset (the film is initialised to LRS by +6 V)")
    kw: dict[str, Any] = {"deterministic": not opts.noise}
    if protocol == "dr-map":
        if opts.amplitudes_v is not None:
            # the scheme runs every amplitude in both polarities: magnitudes, each once
            kw["amplitudes_v"] = tuple(sorted({abs(a) for a in opts.amplitudes_v}))
        if opts.pulses is not None:
            kw["pulses"] = opts.pulses
        if opts.width_s is not None:
            kw["width_s"] = opts.width_s
    elif protocol == "ffp-segmentation":
        if opts.levels is not None:
            kw["levels"] = tuple(opts.levels)
    else:
        if opts.temperatures_k is not None:
            kw["temperatures_k"] = tuple(opts.temperatures_k)
        # Without time options the scheme's own reads (1 s … 1e5 s) are kept: the film's zero-bias
        # relaxation costs minutes per device and temperature to reach 10 years.
        if (opts.time_min_s, opts.time_max_s, opts.times) != (None, None, None):
            t_min = 1.0 if opts.time_min_s is None else opts.time_min_s
            t_max = TEN_YEARS_S if opts.time_max_s is None else opts.time_max_s
            check_range("time_min_s", t_min, 1e-4, None, unit="s")
            check_range("time_max_s", t_max, t_min, None, low_open=True, unit=f"s (> time_min_s = {t_min:g})")
            n = _int_option("times", opts.times, 21, 2, 100_000)
            kw["times_s"] = np.logspace(np.log10(t_min), np.log10(t_max), n)
    kw.update(opts.extra)
    ds = bulk4t_schemes.simulate_scheme(p, BULK4T_PROTOCOLS[protocol], devices=opts.devices, seed=opts.seed,
                                        threads=opts.threads, progress=True, **kw)
    ds.attrs.update(protocol=protocol, title=f"memdrift characterisation: {protocol} on {p.name}",
                    source="memdrift characterise (emulated)")
    for name in ("time", "temperature"):
        if name in ds.coords:
            ds[name].attrs.setdefault("units", "s" if name == "time" else "K")
    return ds
