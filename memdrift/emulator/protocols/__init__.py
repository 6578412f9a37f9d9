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

Each protocol takes its own frozen dataclass of settings (SI, the unit in each name, defaults and
ranges in the field metadata, checked when made): on a filament preset :class:`PdCyclingOptions`,
:class:`DrMapOptions`, :class:`RetentionOptions`, :class:`IvOptions`, :class:`EnduranceOptions`; on a
bulk four-terminal preset :class:`FilmDrMapOptions`, :class:`FilmSegmentationOptions`,
:class:`FilmRetentionOptions`. :func:`options_type` gives the class of a preset and protocol. The
:class:`Options` bag of every protocol's fields is still taken: it becomes the protocol's class, and
a field set that the protocol does not read is refused (:class:`UnusedOption`)::

    characterise("hfoxsy-hfs2", "iv", IvOptions(devices=2, steps=4, dwell_s=1e-4))
    characterise("hfoxsy-hfs2", "iv", Options(devices=2, steps=4, dwell_s=1e-4))  # the same dataset

``pd-cycling``, ``dr-map`` and ``iv`` also run on the NumPy reference (``backend="reference"``, the
ensemble in one chunk) and there take a conduction law of your own (``conduction``; docs/policies.md)::

    characterise("hfoxsy-hfs2", "pd-cycling", PdCyclingOptions(devices=2, cycles=1, backend="reference",
                                                               conduction="my_law.py:ohmic"))

Bulk four-terminal presets delegate to :mod:`memdrift.emulator.bulk4t_schemes`
(``dr-map``, ``ffp-segmentation``, ``retention``), computed whole in memory:
that model's device streams depend on the ensemble size, so it cannot be
split into device chunks.

Filament ensembles are split into device chunks (``first_device=`` keeps each
device's random stream whatever the split) and the dataset is dask-backed: a
chunk is computed when the dataset is written or computed, so
:func:`write_characterisation` holds one chunk in memory at a time.

The modules: :mod:`~memdrift.emulator.protocols.options` (the settings classes, :class:`Options` and
their checks), :mod:`~memdrift.emulator.protocols.chunks` (device chunks and the writer),
:mod:`~memdrift.emulator.protocols.filament` and :mod:`~memdrift.emulator.protocols.film`.
"""

from __future__ import annotations

import xarray as xr

from memdrift.emulator.params import Preset, load_preset
from memdrift.emulator.protocols.chunks import CHUNK_BYTES, CHUNK_KEY, write_characterisation
from memdrift.emulator.protocols.filament import characterise_filament
from memdrift.emulator.protocols.film import characterise_bulk4t
from memdrift.emulator.protocols.options import (BULK4T_PROTOCOLS, BULK4T_UNUSED, DEFAULT_DR_AMPLITUDES_V,
                                                 DEFAULT_TEMPERATURES_K, FILAMENT_OPTIONS, FILAMENT_PROTOCOLS,
                                                 FILM_OPTIONS, PROTOCOL_OPTIONS, PROTOCOL_SPECIFIC, PROTOCOLS,
                                                 TEN_YEARS_S, DrMapOptions, EnduranceOptions, FilamentOptions,
                                                 FilmDrMapOptions, FilmOptions, FilmRetentionOptions,
                                                 FilmSegmentationOptions, IvOptions, Options, PdCyclingOptions,
                                                 ProtocolOptions, RetentionOptions, UnusedOption, build_options,
                                                 check_protocol)
from memdrift.errors import MemdriftError


def _check_known(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise MemdriftError(f"protocol = {protocol!r} is unknown; allowed: {', '.join(PROTOCOLS)}")


def options_type(preset: str | Preset, protocol: str) -> type[ProtocolOptions]:
    """The settings class of ``protocol`` on ``preset`` (name, path or :class:`Preset`)."""
    _check_known(protocol)
    p = preset if isinstance(preset, Preset) else load_preset(preset)
    from memdrift.models import MODELS

    model = MODELS.get(p.model)
    check_protocol(protocol, model.protocols, f"the {p.model} preset {p.name!r}")
    cls: type[ProtocolOptions] = model.options_type(protocol)
    return cls


def characterise(preset: str | Preset, protocol: str, options: ProtocolOptions | Options | None = None
                 ) -> xr.Dataset:
    """Run ``protocol`` on ``preset`` (name, path or :class:`Preset`) with ``options``: an instance of the
    protocol's class (:func:`options_type`), an :class:`Options` bag, or None for the defaults; see the
    module docstring.

    Filament results are dask-backed (one chunk per group of devices); bulk
    four-terminal results are in memory.
    """
    _check_known(protocol)
    p = preset if isinstance(preset, Preset) else load_preset(preset)
    from memdrift.models import MODELS

    return MODELS.get(p.model).characterise(p, protocol, options)


__all__ = ["BULK4T_PROTOCOLS", "BULK4T_UNUSED", "CHUNK_BYTES", "CHUNK_KEY", "DEFAULT_DR_AMPLITUDES_V",
           "DEFAULT_TEMPERATURES_K", "FILAMENT_OPTIONS", "FILAMENT_PROTOCOLS", "FILM_OPTIONS", "PROTOCOLS",
           "PROTOCOL_OPTIONS", "PROTOCOL_SPECIFIC", "TEN_YEARS_S", "DrMapOptions", "EnduranceOptions",
           "FilamentOptions", "FilmDrMapOptions", "FilmOptions", "FilmRetentionOptions", "FilmSegmentationOptions",
           "IvOptions", "Options", "PdCyclingOptions", "ProtocolOptions", "RetentionOptions", "UnusedOption",
           "build_options", "characterise", "characterise_bulk4t", "characterise_filament", "options_type",
           "write_characterisation"]
