"""The public Python interface: load a preset, run it, characterise it, extract its record, hand the
record to aihwkit and sweep a scheme, without reaching into memdrift's modules.

Every function takes presets by name, path or object and datasets or their files, and raises
:class:`memdrift.errors.MemdriftError` naming the argument at fault.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import xarray as xr

    from memdrift.emulator.params import Preset
    from memdrift.experiments.sweep import SweepRun
    from memdrift.mapping.record import DeviceRecord

def load_preset(name_or_path: str | os.PathLike[str]) -> Preset:
    """A shipped preset by name, or a preset TOML file by path.

    >>> import memdrift
    >>> preset = memdrift.load_preset("hfoxsy-hfs2")
    >>> preset.model, preset.scheme
    ('filament', 'ramp')
    """
    from memdrift.emulator.params import load_preset as load

    return load(name_or_path)


def _preset(preset: str | os.PathLike[str] | Preset) -> Preset:
    from memdrift.emulator.params import Preset

    return preset if isinstance(preset, Preset) else load_preset(preset)


def simulate(preset: str | os.PathLike[str] | Preset, scheme: str | None = None, *, devices: int = 1,
             cycles: int | None = None, seed: int = 0, threads: int = 1, backend: str = "compiled",
             noise: bool = True, progress: bool = False,
             policy: Callable[..., float] | str | os.PathLike[str] | None = None,
             conduction: Callable[..., float] | str | os.PathLike[str] | None = None, **options: Any) -> xr.Dataset:
    """Run ``scheme`` (default: the preset's) on ``devices`` devices of ``preset``.

    The preset's model (:data:`memdrift.models.MODELS`) runs it; ``options`` are the scheme's own
    (write-verify: ``targets_s``, ``tolerance``, ``max_pulses``; film schemes: those of
    :func:`memdrift.emulator.bulk4t_schemes.simulate_scheme`). ``policy``: the film's FFP schemes
    write with ``policy(r_ohm, sign, r_grid_ohm, vw_table_v) -> amplitude_v`` (a function, or
    ``"path/to/file.py:function"``), compiled with Numba, instead of the built-in table look-up
    (docs/policies.md). ``conduction``: filament ramp/identical/write-verify runs on ``backend="reference"`` solve the
    cell with ``conduction(cell_v, gap_m, i0_a, g0_m, v0_v) -> current_a`` (a function, or
    ``"path/to/file.py:function"``), compiled with Numba, instead of the built-in sinh law
    (docs/policies.md, "Conduction laws of your own").

    >>> import memdrift
    >>> ds = memdrift.simulate("hfoxsy-hfs2", "ramp", devices=2, cycles=2)
    >>> dict(ds.sizes)
    {'device': 2, 'cycle': 2, 'pulse': 40}
    >>> str(ds["conductance"].attrs["units"])
    'S'
    """
    from memdrift.models import MODELS

    p = _preset(preset)
    if policy is not None:
        options["policy"] = policy
    if conduction is not None:
        options["conduction"] = conduction
    return MODELS.get(p.model).run(p, scheme or p.scheme, devices=devices, cycles=cycles, seed=seed,
                                   threads=threads, backend=backend, noise=noise, progress=progress,
                                   preset=p.name, **options)


def characterise(preset: str | os.PathLike[str] | Preset, protocol: str, **options: Any) -> xr.Dataset:
    """Run a characterisation ``protocol`` (retention, pd-cycling, dr-map, iv, endurance, ffp-segmentation);
    ``options`` are the fields of the protocol's settings class on that preset
    (:func:`memdrift.emulator.protocols.options_type`: ``RetentionOptions``, ``IvOptions``, ... on a
    filament preset, ``FilmRetentionOptions``, ... on the film; each field's unit, default and range are
    in its metadata). A field the protocol does not read is refused, naming the ones it does. The
    filament's ``pd-cycling``, ``dr-map`` and ``iv`` also take ``backend="reference"`` and, there,
    ``conduction``: a conduction law of your own, as :func:`simulate` takes it (docs/policies.md).

    >>> import memdrift
    >>> ds = memdrift.characterise("hfoxsy-hfs2", "retention", devices=2, temperatures_k=(300.0,), times=4)
    >>> ds.attrs["protocol"]
    'retention'
    >>> memdrift.characterise("hfoxsy-hfs2", "iv", temperatures_k=(300.0,))
    Traceback (most recent call last):
    ...
    memdrift.emulator.protocols.options.UnusedOption: temperatures_k is not used by protocol 'iv'; allowed options: ...
    """
    from memdrift.emulator.protocols import build_options, options_type
    from memdrift.emulator.protocols import characterise as run

    p = _preset(preset)
    if "extra" in options:
        # the film's scheme options under the name the Options bag gives them
        options["scheme_options"] = options.pop("extra")
    return run(p, protocol, build_options(options_type(p, protocol), options))


def extract(data: xr.Dataset | str | os.PathLike[str], *, levels: Sequence[int] = (32, 128, 512)) -> DeviceRecord:
    """The extraction record of a dataset or netCDF file: a :class:`memdrift.mapping.record.DeviceRecord`
    (typed fields with their units; it reads as a mapping of the JSON's keys, ``to_json`` gives the file).

    >>> import memdrift
    >>> record = memdrift.extract(memdrift.simulate("hfoxsy-hfs2", devices=4, cycles=3), levels=(32,))
    >>> record["source"]["model"], record.states > 0
    ('filament', True)
    """
    import xarray as xr

    from memdrift.mapping.extract import extract_record

    if isinstance(data, xr.Dataset):
        return extract_record(data, levels=tuple(levels))
    from memdrift.data.io import open_dataset

    with open_dataset(Path(data)) as ds:
        return extract_record(ds.load(), levels=tuple(levels))


def to_aihwkit(record: Mapping[str, Any] | str | os.PathLike[str], *, tile: str = "torch",
               levels: int | None = None, dtod: float = 0.0) -> dict[str, Any]:
    """aihwkit configurations of a record (or its JSON file): ``inference`` (an ``InferenceRPUConfig``),
    ``training`` (a ``SingleRPUConfig``), and the record and versions they came from. Needs aihwkit.

    >>> import memdrift
    >>> record = memdrift.extract(memdrift.simulate("hfoxsy-hfs2", devices=4, cycles=3), levels=(32,))
    >>> configs = memdrift.to_aihwkit(record, levels=32)   # doctest: +SKIP
    >>> type(configs["inference"]).__name__                # doctest: +SKIP
    'TorchInferenceRPUConfig'
    """
    from memdrift.mapping.aihwkit_bridge import export_configs
    from memdrift.mapping.record import load_record

    rec = load_record(record) if isinstance(record, (str, os.PathLike)) else record
    return export_configs(rec, tile=tile, levels=levels, dtod=dtod)


def sweep(spec: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *, mode: str = "serial",
          workers: int | None = None, progress: bool = False) -> SweepRun:
    """Run a sweep spec (a TOML file, or its text when it holds a newline); ``mode`` as
    :func:`memdrift.experiments.sweep.run_sweep` (``serial`` in process, ``local`` on a Dask cluster).

    >>> import memdrift
    >>> result = memdrift.sweep('''
    ... [sweep]
    ... name = "doc"
    ... devices = 2
    ... cycles = 2
    ... [scheme]
    ... base = "ramp"
    ... [device]
    ... preset = "hfoxsy-hfs2"
    ... [axes]
    ... pulses_per_branch = [10, 20]
    ... ''')
    >>> result.computed, dict(result.dataset.sizes)
    (2, {'pulses_per_branch': 2})
    """
    from memdrift.experiments import sweep as sweeps

    text = str(spec)
    parsed = sweeps.parse_spec(text) if "\n" in text else sweeps.load_spec(spec)
    return sweeps.run_sweep(parsed, out, mode=mode, workers=workers, progress=progress)


__all__ = ["characterise", "extract", "load_preset", "simulate", "sweep", "to_aihwkit"]
