"""The filament cell as a :class:`memdrift.models.DeviceModel`: pulse trains on the compiled engine
(or its NumPy twin), closed-loop write-verify, and the filament characterisation protocols."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import xarray as xr

from memdrift.emulator.params import FilamentParams
from memdrift.errors import MemdriftError, NamedError, literal
from memdrift.models import LAYOUT_PULSE, LAYOUT_WRITE_VERIFY, DeviceModel, register

#: write-verify options of ``run`` and the ``WriteVerify`` fields they set
WRITE_VERIFY_OPTIONS = ("targets_s", "tolerance", "max_pulses")


class FilamentModel(DeviceModel):
    name = "filament"
    params_type = FilamentParams
    schemes = ("ramp", "identical", "write-verify")
    protocols = ("pd-cycling", "dr-map", "retention", "iv", "endurance")
    sweep_schemes = ("ramp", "identical", "write-verify")
    backends = ("compiled", "reference")
    layouts = {"write-verify": LAYOUT_WRITE_VERIFY}
    sweep_runner = "memdrift.emulator.engine:run_pulses"
    sweep_store = ("differential_bins", "states", "state_sigma", "bin_width")
    sweep_maximise = "differential_bins"
    calibration_start = "hfoxsy-hfs2"
    # field_enhancement is nearly degenerate with activation_energy_ev on a ramp (both set the
    # field-lowered barrier); free it only with data at several amplitudes.
    calibration_free = ("activation_energy_ev", "tunnel_current_a", "series_resistance_ohm", "site_population")

    def run(self, params: Any, scheme: Any, *, devices: int, cycles: int | None = None, seed: int = 0,
            threads: int = 1, backend: str = "compiled", noise: bool = True, progress: bool = False,
            preset: str = "custom", memory_limit_bytes: float | None = None, plot: bool = False,
            **options: Any) -> xr.Dataset:
        """``params``: parameters or a preset; ``scheme``: ``ramp``/``identical`` (or a ``PulseTrain``),
        or ``write-verify`` (or a ``WriteVerify``; ``targets_s``/``tolerance``/``max_pulses`` options
        change the default one). ``conduction`` (reference backend): a conduction law of your own in place
        of the built-in sinh law (:mod:`memdrift.emulator.conduction`)."""
        from memdrift.emulator.params import Preset
        from memdrift.emulator.write_verify import WriteVerify, run_write_verify

        if isinstance(params, Preset):
            params = params.params

        conduction = options.pop("conduction", None)
        if isinstance(scheme, WriteVerify) or scheme == "write-verify":
            if cycles is not None:
                raise NamedError(f"cycles = {literal(cycles)} is not used by write-verify; allowed: omit {{cycles}} "
                                 "(each device is programmed to every target once)")
            _refuse_unknown(options, WRITE_VERIFY_OPTIONS)
            wv = scheme if isinstance(scheme, WriteVerify) else WriteVerify(**options).checked()
            ds = run_write_verify(params, wv, devices=devices, seed=seed, threads=threads, backend=backend,
                                  noise=noise, preset=preset, conduction=conduction)
            return _with_layout(ds, LAYOUT_WRITE_VERIFY)
        if any(k in WRITE_VERIFY_OPTIONS for k in options):
            raise NamedError("{targets_s}/{tolerance}/{max_pulses} are write-verify options; scheme = "
                             f"{literal(_name(scheme))} does not use them; allowed: scheme = 'write-verify'")
        _refuse_unknown(options, ())
        from memdrift.emulator.engine import run_pulses

        train = self._train(scheme)
        n_cycles = default_cycles(train.name) if cycles is None else cycles
        if memory_limit_bytes is not None:
            from memdrift.errors import check_memory

            check_memory(f"{devices} devices x {n_cycles} cycles ({train.n_pulses} pulses a cycle)",
                         float(devices) * n_cycles * train.n_pulses * BYTES_PER_PULSE, memory_limit_bytes)
        ds = run_pulses(params, train, devices=devices, cycles=n_cycles, seed=seed, threads=threads,
                        backend=backend, noise=noise, progress=progress, preset=preset, conduction=conduction)
        return _with_layout(ds, LAYOUT_PULSE)

    @staticmethod
    def _train(scheme: Any) -> Any:
        from memdrift.emulator.pulses import PulseTrain, from_name

        return scheme if isinstance(scheme, PulseTrain) else from_name(scheme)

    def streams(self, scheme: str, backend: str) -> bool:
        return scheme != "write-verify" and backend == "compiled"

    def run_chunks(self, params: Any, scheme: str, *, devices: int, chunk_devices: int, cycles: int = 1,
                   seed: int = 0, threads: int = 1, backend: str = "compiled", noise: bool = True,
                   preset: str = "custom") -> Iterator[xr.Dataset]:
        """The chunks of :func:`~memdrift.emulator.engine.run_pulses`, the kernel one chunk ahead.

        A worker thread computes chunk k+1 while this thread makes chunk k's dataset and the caller
        uses it (``memdrift pulse`` writes it from a third thread): the compiled kernel releases the
        GIL, so it runs back to back instead of waiting on the dataset assembly between chunks.
        """
        from concurrent.futures import ThreadPoolExecutor

        from memdrift.emulator import engine

        train = self._train(scheme)
        starts = list(range(0, devices, chunk_devices))

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="memdrift-kernel") as pool:
            def compute(first: int):
                return pool.submit(engine.pulse_arrays, params, train, devices=min(chunk_devices, devices - first),
                                   cycles=cycles, seed=seed, threads=threads, backend=backend, noise=noise,
                                   first_device=first)

            ahead = compute(starts[0]) if starts else None
            try:
                for i, first in enumerate(starts):
                    assert ahead is not None
                    arrays = ahead.result()
                    ahead = compute(starts[i + 1]) if i + 1 < len(starts) else None
                    ds = engine.pulse_dataset(arrays, params, train, seed=seed, noise=noise, preset=preset,
                                              backend=backend, first_device=first)
                    yield _with_layout(ds, LAYOUT_PULSE)
            finally:
                # an interrupted caller waits for the chunk in the kernel (it cannot be stopped), not the rest
                if ahead is not None:
                    ahead.cancel()

    def options_type(self, protocol: str) -> type:
        from memdrift.emulator.protocols.options import FILAMENT_OPTIONS

        return FILAMENT_OPTIONS[protocol]

    def characterise(self, preset: Any, protocol: str, options: Any) -> xr.Dataset:
        from memdrift.emulator.protocols import characterise_filament

        return characterise_filament(preset, protocol, options)

    def plot(self, ds: xr.Dataset, preset: Any, scheme: str, path: Path) -> None:
        from memdrift.experiments.plots import plot_pulse_summary, plot_write_verify

        if scheme == "write-verify":
            plot_write_verify(ds, path)
        else:
            plot_pulse_summary(ds, preset.params, path)

    def calibrate(self, ds: xr.Dataset, start: Any, names: tuple[str, ...], *, fit_cycles: int, span: float,
                  read: dict[str, float | None] | None, rounds: int, progress: bool) -> tuple[Any, str]:
        from memdrift.mapping.calibrate import calibrate_filament

        result = calibrate_filament(ds, start.params, names, fit_cycles=fit_cycles, span=span, read=read,
                                    rounds=rounds, progress=progress)
        method = ("scipy.optimize.least_squares (trf, log-scaled bounded parameters) on the ensemble-mean "
                  "conductance per pulse of the first cycles: nominal device without noise plus a noise correction "
                  "from a noisy ensemble; site_population by secant steps on log sigma vs log M to the "
                  "cycle-to-cycle sigma")
        return result, method


#: float64 outputs the engine keeps per pulse (conductance, temperature, energy, gap)
BYTES_PER_PULSE = 4 * 8


def default_cycles(scheme: str) -> int:
    """Cycles of a run that names none: the paper's 100 ramp cycles; one of anything else."""
    return 100 if scheme == "ramp" else 1


def _name(scheme: Any) -> str:
    return str(getattr(scheme, "name", scheme))


def _refuse_unknown(options: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise MemdriftError(f"option {unknown[0]!r} is unknown for the filament; allowed: "
                            f"{', '.join(allowed) or 'none'}")


def _with_layout(ds: xr.Dataset, layout: str) -> xr.Dataset:
    ds.attrs["layout"] = layout
    return ds


register(FilamentModel)
