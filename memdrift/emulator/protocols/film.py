"""The bulk four-terminal film's protocols (``dr-map``, ``ffp-segmentation``, ``retention``), delegated to
:mod:`memdrift.emulator.bulk4t_schemes` and computed whole in memory."""

from __future__ import annotations

from typing import Any

import xarray as xr

from memdrift.emulator.params import Preset
from memdrift.emulator.protocols.options import (BULK4T_PROTOCOLS, FILM_OPTIONS, FilmDrMapOptions, FilmOptions,
                                                 FilmRetentionOptions, FilmSegmentationOptions, Options,
                                                 check_protocol, protocol_options)


def characterise_bulk4t(p: Preset, protocol: str, options: FilmOptions | Options | None) -> xr.Dataset:
    """A bulk four-terminal protocol (the film model's :meth:`~memdrift.models.DeviceModel.characterise`);
    ``options`` an instance of the protocol's class in :data:`FILM_OPTIONS` (or an :class:`Options`)."""
    check_protocol(protocol, tuple(BULK4T_PROTOCOLS), f"the bulk4t preset {p.name!r}")
    return _bulk4t(p, protocol, protocol_options(FILM_OPTIONS[protocol], options))


def _bulk4t(p: Preset, protocol: str, opts: FilmOptions) -> xr.Dataset:
    from memdrift.emulator import bulk4t_schemes

    kw: dict[str, Any] = {"deterministic": not opts.noise}
    if isinstance(opts, FilmDrMapOptions):
        if opts.amplitudes_v is not None:
            # the scheme runs every amplitude in both polarities: magnitudes, each once
            kw["amplitudes_v"] = tuple(sorted({abs(a) for a in opts.amplitudes_v}))
        if opts.pulses is not None:
            kw["pulses"] = opts.pulses
        if opts.width_s is not None:
            kw["width_s"] = opts.width_s
    elif isinstance(opts, FilmSegmentationOptions):
        if opts.levels is not None:
            kw["levels"] = tuple(opts.levels)
    elif isinstance(opts, FilmRetentionOptions):
        if opts.temperatures_k is not None:
            kw["temperatures_k"] = tuple(opts.temperatures_k)
        times = opts.times_s()
        if times is not None:
            kw["times_s"] = times
    kw.update(opts.scheme_options)
    ds = bulk4t_schemes.simulate_scheme(p, BULK4T_PROTOCOLS[protocol], devices=opts.devices, seed=opts.seed,
                                        threads=opts.threads, progress=True, **kw)
    ds.attrs.update(protocol=protocol, title=f"memdrift characterisation: {protocol} on {p.name}",
                    source="memdrift characterise (emulated)")
    for name in ("time", "temperature"):
        if name in ds.coords:
            ds[name].attrs.setdefault("units", "s" if name == "time" else "K")
    return ds
