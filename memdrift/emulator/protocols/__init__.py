"""Characterisation protocols: the emulator as a virtual probe station.

:func:`characterise` runs a named protocol on a preset and returns a labelled
``xarray.Dataset`` (DESIGN.md, "Datasets"). Filament protocols:

==================  ==========================================================
protocol            what is measured
==================  ==========================================================
``pd-cycling``      the preset's pulse scheme (the 20 + 20 ramp) repeated for
                    ``cycles``: ``conductance`` (device, cycle, pulse)
``dr-map``          identical-pulse families, one per signed amplitude, each
                    after a reset by the ramp's opposite branch; ΔG per pulse
                    and its ensemble mean per family
``retention``       programmed by the first ``program_pulses`` ramp pulses at
                    the ambient temperature, then a zero-bias bake at each
                    temperature with reads at log-spaced times:
                    ``conductance`` (device, temperature, time)
``iv``              quasi-static triangular loops 0 → +V → −V → 0 in steps of
                    ``dwell_s``: ``current`` (device, cycle, sweep, voltage)
``endurance``       ``cycles`` ramp cycles, kept at log-spaced cycles only:
                    on/off conductances and their ratio per kept cycle
==================  ==========================================================

Bulk four-terminal presets delegate to :mod:`memdrift.emulator.bulk4t_schemes`
(``dr-map``, ``ffp-segmentation``, ``retention``), computed whole in memory:
that model's device streams depend on the ensemble size, so it cannot be
split into device chunks.

Filament ensembles are split into device chunks (``first_device=`` keeps each
device's random stream whatever the split) and the dataset is dask-backed: a
chunk is computed when the dataset is written or computed, so
:func:`write_characterisation` holds one chunk in memory at a time.

The modules: :mod:`~memdrift.emulator.protocols.options` (:class:`Options` and which protocol
reads which), :mod:`~memdrift.emulator.protocols.chunks` (device chunks and the writer),
:mod:`~memdrift.emulator.protocols.filament` and :mod:`~memdrift.emulator.protocols.film`.
"""

from __future__ import annotations

import xarray as xr

from memdrift.emulator.params import Preset, load_preset
from memdrift.emulator.protocols.chunks import CHUNK_BYTES, CHUNK_KEY, write_characterisation
from memdrift.emulator.protocols.filament import characterise_filament
from memdrift.emulator.protocols.film import characterise_bulk4t
from memdrift.emulator.protocols.options import (BULK4T_PROTOCOLS, BULK4T_UNUSED, DEFAULT_DR_AMPLITUDES_V,
                                                 DEFAULT_TEMPERATURES_K, FILAMENT_PROTOCOLS, PROTOCOL_OPTIONS,
                                                 PROTOCOL_SPECIFIC, PROTOCOLS, TEN_YEARS_S, Options, UnusedOption)
from memdrift.errors import MemdriftError


def characterise(preset: str | Preset, protocol: str, options: Options | None = None) -> xr.Dataset:
    """Run ``protocol`` on ``preset`` (name, path or :class:`Preset`); see the module docstring.

    Filament results are dask-backed (one chunk per group of devices); bulk
    four-terminal results are in memory.
    """
    opts = options or Options()
    if protocol not in PROTOCOLS:
        raise MemdriftError(f"protocol = {protocol!r} is unknown; allowed: {', '.join(PROTOCOLS)}")
    p = preset if isinstance(preset, Preset) else load_preset(preset)
    from memdrift.models import MODELS

    return MODELS.get(p.model).characterise(p, protocol, opts)


__all__ = ["BULK4T_PROTOCOLS", "BULK4T_UNUSED", "CHUNK_BYTES", "CHUNK_KEY", "DEFAULT_DR_AMPLITUDES_V",
           "DEFAULT_TEMPERATURES_K", "FILAMENT_PROTOCOLS", "PROTOCOLS", "PROTOCOL_OPTIONS", "PROTOCOL_SPECIFIC",
           "TEN_YEARS_S", "Options", "UnusedOption", "characterise", "characterise_bulk4t", "characterise_filament",
           "write_characterisation"]
