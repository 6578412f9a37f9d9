"""The bulk four-terminal film as a :class:`memdrift.models.DeviceModel`: its schemes run by
:func:`memdrift.emulator.bulk4t_schemes.simulate_scheme`, its protocols by the characterisation module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import xarray as xr

from memdrift.emulator.bulk4t import Bulk4TParams
from memdrift.errors import NamedError, literal
from memdrift.models import DeviceModel, layout_of, register

#: 0-based FFP events whose vacancy and temperature maps a plot shows (the start, and points along a
#: ~500-event branch; events a branch does not reach are marked so on the figure)
PLOT_SNAPSHOT_EVENTS = (0, 99, 249, 449)


class Bulk4TModel(DeviceModel):
    name = "bulk4t"
    params_type = Bulk4TParams
    schemes = ("identical", "dr-map", "ffp", "ffp-segmentation", "retention")
    protocols = ("dr-map", "ffp-segmentation", "retention")
    sweep_schemes = ("ffp",)
    backends = ("compiled", "reference")
    sweep_runner = "memdrift.emulator.bulk4t_schemes:simulate_scheme"
    sweep_store = ("ffp_events_potentiation", "ffp_events_depression", "reachable_levels_n",
                   "skipped_levels_n_potentiation", "skipped_levels_n_depression", "nu_n_p", "nu_n_d")
    sweep_maximise = "reachable_levels_n"
    calibration_start = "tio2x-4t"
    calibration_free = ("conductivity_base_s_per_m", "conductivity_vacancy_s_per_m")

    def run(self, params: Any, scheme: Any, *, devices: int, cycles: int | None = None, seed: int = 0,
            threads: int = 1, backend: str = "compiled", noise: bool = True, progress: bool = False,
            preset: str = "custom", memory_limit_bytes: float | None = None, plot: bool = False,
            **options: Any) -> xr.Dataset:
        """``params``: a bulk4t preset (whose calibration sets the initialisation targets) or its parameters;
        ``plot``: capture the maps a plot of an FFP run
        shows; other options go to ``simulate_scheme``."""
        from memdrift.emulator import bulk4t_schemes

        if cycles is not None:
            raise NamedError(f"cycles = {literal(cycles)} is not used by bulk4t schemes; allowed: omit "
                             "{cycles} (FFP runs HRS->LRS->HRS once per device)")
        if not noise:
            options["deterministic"] = True
        if plot and scheme in ("ffp", "ffp-segmentation"):
            # the maps the plot shows must be captured while the run is under way
            options["snapshot_events"] = PLOT_SNAPSHOT_EVENTS
        ds = bulk4t_schemes.simulate_scheme(params, scheme, devices=devices, seed=seed, threads=threads,
                                            backend=backend, progress=progress, **options)
        ds.attrs["layout"] = layout_of(ds)
        return ds

    def options_type(self, protocol: str) -> type:
        from memdrift.emulator.protocols.options import FILM_OPTIONS

        return FILM_OPTIONS[protocol]

    def characterise(self, preset: Any, protocol: str, options: Any) -> xr.Dataset:
        from memdrift.emulator.protocols import characterise_bulk4t

        return characterise_bulk4t(preset, protocol, options)

    def plot(self, ds: xr.Dataset, preset: Any, scheme: str, path: Path) -> None:
        from memdrift.experiments.plots_bulk4t import plot_scheme

        plot_scheme(ds, path)

    def calibrate(self, ds: xr.Dataset, start: Any, names: tuple[str, ...], *, fit_cycles: int, span: float,
                  read: dict[str, float | None] | None, rounds: int, progress: bool) -> tuple[Any, str]:
        from memdrift.mapping.calibrate import calibrate_bulk4t

        result = calibrate_bulk4t(ds, start.params, names, span=span, progress=progress)
        method = ("scipy.optimize.least_squares (trf, log-scaled bounded parameters) on HRS/LRS after the "
                  "+-6 V conditioning, deterministic hops")
        return result, method


register(Bulk4TModel)
