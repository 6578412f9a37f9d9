"""Filament datasets in device chunks: the dask-backed assembly of a protocol's plan, and the writer that
computes one chunk at a time under a progress bar."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from memdrift.emulator.protocols.options import FilamentOptions


# A chunk this large (bytes of float64 output) keeps memory flat for any ensemble size.
CHUNK_BYTES = 64 * 2**20
CHUNK_KEY = "memdrift-chunk"


def write_characterisation(ds: xr.Dataset, path: str | os.PathLike[str], *, progress: bool = True,
                           float32: bool = False) -> Path:
    """Write ``ds`` atomically, computing its device chunks one at a time (tqdm bar per device)."""
    import dask

    from memdrift.data.io import write_dataset

    total = int(ds.sizes.get("device", 0))
    with dask.config.set(scheduler="synchronous"), _ChunkProgress(total, progress and bool(ds.chunks)):
        written = write_dataset(ds, path, float32=float32)
    return written


class _ChunkProgress:
    """A tqdm bar in devices, advanced by the chunks as they compute (and within long chunks)."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled = total, enabled

    def __enter__(self) -> "_ChunkProgress":
        if self.enabled:
            from tqdm.auto import tqdm

            _BARS.append(tqdm(total=self.total, unit="device", desc="characterise", leave=False,
                               bar_format="{l_bar}{bar}| {n:.0f}/{total} devices [{elapsed}<{remaining}]"))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            _BARS.pop().close()


# The active bar; chunks compute in the writing thread (synchronous scheduler), so a plain list will do.
_BARS: list[Any] = []


def _advance(devices: float) -> None:
    if _BARS:
        _BARS[-1].update(devices)


def _run_chunk(compute: Callable[[int, int], dict[str, np.ndarray]], first: int, n: int) -> dict[str, np.ndarray]:
    """``compute(first, n)``, then the bar topped up to ``n`` devices (long protocols advance it inside)."""
    from memdrift.data.io import check_signals

    # a Ctrl-C or SIGTERM held during the write ends the run here, between chunks, not inside
    # the writer's file lock
    check_signals()
    before = _BARS[-1].n if _BARS else 0.0
    out = compute(first, n)
    if _BARS:
        _BARS[-1].update(n - (_BARS[-1].n - before))
    return out


@dataclass
class _Var:
    dims: tuple[str, ...]  # first dim is always "device"
    shape: tuple[int, ...]  # without the device axis
    units: str
    long_name: str


@dataclass
class _Plan:
    """What one protocol produces: per-device variables from ``compute(first, n)``, and the rest."""

    variables: dict[str, _Var]
    compute: Callable[[int, int], dict[str, np.ndarray]]
    coords: dict[str, Any]
    static: dict[str, Any] = field(default_factory=dict)  # variables not over device
    attrs: dict[str, Any] = field(default_factory=dict)
    bytes_per_device: int = 0
    derived: Callable[[xr.Dataset], xr.Dataset] | None = None
    #: the one train a protocol runs through ``run_pulses`` (a conduction law is checked over its voltages)
    train: Any = None


def _assemble(plan: _Plan, opts: FilamentOptions, token: str) -> xr.Dataset:
    import dask
    import dask.array as da

    devices = int(opts.devices)
    per_device = max(plan.bytes_per_device, 8 * sum(math.prod(v.shape) for v in plan.variables.values()))
    size = opts.chunk_devices or max(1, min(devices, CHUNK_BYTES // max(per_device, 1)))
    blocks: dict[str, list] = {name: [] for name in plan.variables}
    for first in range(0, devices, size):
        n = min(size, devices - first)
        part = dask.delayed(_run_chunk, pure=True)(plan.compute, first, n,
                                                   dask_key_name=f"{CHUNK_KEY}-{token}-{first}-{n}")
        for name, var in plan.variables.items():
            blocks[name].append(da.from_delayed(part[name], shape=(n, *var.shape), dtype=np.float64))
    data = {name: ((*var.dims,), da.concatenate(blocks[name], axis=0),
                   {"units": var.units, "long_name": var.long_name}) for name, var in plan.variables.items()}
    ds = xr.Dataset(data | plan.static, coords={"device": ("device", np.arange(devices))} | plan.coords)
    if plan.derived is not None:
        ds = plan.derived(ds).unify_chunks()
    return ds
