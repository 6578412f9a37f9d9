"""Physics in the loop: every weight of a network programmed on its own emulated device pair, then aged.

No statistics stand between the device and the network here. A weight ``w`` of a
layer whose largest magnitude is ``w_max`` is a differential pair (the HfOxSy/HfS2
paper's mapping) with targets

    G+ = g_min + max(w, 0) / w_max · (g_max − g_min),   G− = g_min + max(−w, 0) / w_max · (g_max − g_min)

and each device of each pair is the seed's device of its own index (its own
device-to-device parameters from the preset's variation and its own Poisson hop
stream). Two schemes put it there:

``pulse-count``  open loop, the paper's method: the preset's ramp potentiation from reset
                 has a linear range ``G(k) ≈ b + a k`` (``k`` the 0-based pulse index, fitted on
                 the mean curve of a calibration ensemble); a target ``G`` takes
                 ``n = clip(round((G − b)/a) + 1, 0, N)`` ramp pulses, emulated on the device.
``write-verify`` closed loop (:func:`memdrift.emulator.write_verify.program_to_targets`): ISPP
                 SET/RESET with a verify read after each pulse until the read is within the band.

Aging holds every programmed device at zero bias for each time ``t`` at each
temperature ``T`` (the kernel's field-free hopping and dissolution; each
temperature starts from the programmed state, times accumulate), then reads it.

Devices are processed in chunks; every result is a function of the device's
global index and the seed alone, so chunk size and thread count change nothing.
The window ``[g_min, g_max]`` is the fit's linear range (first to last state of it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memdrift.emulator import pulses as pulse_trains
from memdrift.emulator.engine import run_pulses
from memdrift.emulator.params import FilamentParams
from memdrift.emulator.write_verify import WriteVerify, _Ensemble, _segments, age_ensemble, program_to_targets
from memdrift.errors import MemdriftError, check_range
from memdrift.mapping import metrics

SCHEMES = ("pulse-count", "write-verify")
#: devices emulated together (memory ~ a few hundred bytes per device per chunk)
CHUNK_DEVICES = 65_536
#: seed offset of the calibration ensemble of the linear fit, so it is not the network's devices
FIT_SEED_OFFSET = 7_919
FIT_DEVICES = 128


@dataclass(frozen=True)
class LinearFit:
    """The ramp's potentiation from reset: ``G(k) = intercept_s + slope_s_per_pulse · k`` over ``[start, stop)``."""

    slope_s_per_pulse: float
    intercept_s: float
    start: int
    stop: int
    amplitude_v: np.ndarray
    width_s: np.ndarray

    @property
    def g_min_s(self) -> float:
        return self.intercept_s + self.slope_s_per_pulse * self.start

    @property
    def g_max_s(self) -> float:
        return self.intercept_s + self.slope_s_per_pulse * (self.stop - 1)

    def pulses_for(self, target_s: np.ndarray) -> np.ndarray:
        """Ramp pulses from reset the fit says reach ``target_s`` (the fit's inverse, rounded)."""
        k = np.rint((np.asarray(target_s) - self.intercept_s) / self.slope_s_per_pulse)
        return np.clip(k + 1, 0, self.amplitude_v.size).astype(np.int64)


def ramp_linear_fit(params: FilamentParams, *, seed: int = 0, devices: int = FIT_DEVICES, threads: int = 1,
                    noise: bool = True) -> LinearFit:
    """The linear fit of the preset's ramp potentiation from reset (mean over a calibration ensemble)."""
    train = pulse_trains.from_name("ramp")
    ds = run_pulses(params, train, devices=devices, seed=int(seed) + FIT_SEED_OFFSET, threads=threads,
                    noise=noise)
    pot = np.array([b == pulse_trains.POTENTIATION for b in train.branch])
    curve = ds["conductance"].isel(cycle=0).values[:, pot].mean(axis=0)
    start, stop = metrics.linear_range(curve)
    fit = metrics.linear_fit(curve[start:stop], np.arange(start, stop, dtype=float))
    if not fit.slope > 0:
        raise MemdriftError(f"the preset's ramp potentiation has no rising linear range (slope {fit.slope:g} S/pulse)")
    return LinearFit(float(fit.slope), float(fit.intercept), int(start), int(stop),
                     np.asarray(train.amplitude_v)[pot], np.asarray(train.width_s)[pot])


def _pulse_count_chunk(params: FilamentParams, fit: LinearFit, target_s: np.ndarray, *, seed: int,
                       first_device: int, threads: int, noise: bool, ambient_k: float, read: WriteVerify
                       ) -> tuple[dict[str, np.ndarray], _Ensemble]:
    n_pulses = fit.pulses_for(target_s)
    ens = _Ensemble(params, target_s.size, seed, threads, "compiled", noise, first_device)
    ens.set_ambient(ambient_k)
    everyone = np.arange(target_s.size)
    g, _ = ens.round(everyone, _segments(0.0, read))      # the reset state, read before any pulse
    energy_j = np.zeros(target_s.size)
    time_s = np.full(target_s.size, read.read_width_s)
    for k in range(int(n_pulses.max(initial=0))):
        idx = everyone[n_pulses > k]
        seg = _segments(float(fit.amplitude_v[k]), read)
        seg[0, 1] = float(fit.width_s[k])
        g[idx], e = ens.round(idx, seg)
        energy_j[idx] += e
        time_s[idx] += fit.width_s[k] + read.read_gap_s + read.read_width_s
    # open loop: "in band" is reported against the write-verify band for comparison only
    converged = np.abs(g - target_s) <= read.tolerance * target_s
    return {"conductance_s": g, "pulses": n_pulses, "energy_j": energy_j, "time_s": time_s,
            "converged": converged}, ens


@dataclass
class PhysicsProgram:
    """Programmed (and aged) conductances of every layer, with the pulse-by-pulse accounting.

    Per layer ``l`` (shape of that layer's weight array ``(rows, columns)``), arrays over (2, rows, columns),
    index 0 = G+, 1 = G−: ``target_s``, ``conductance_s``, ``pulses``, ``energy_j``, ``time_s``,
    ``converged``; ``aged_s[(T, t)]`` the conductances after aging ``t`` s at ``T`` K.
    """

    scheme: str
    g_min_s: float
    g_max_s: float
    w_max: list[float]
    target_s: list[np.ndarray]
    conductance_s: list[np.ndarray]
    pulses: list[np.ndarray]
    energy_j: list[np.ndarray]
    time_s: list[np.ndarray]
    converged: list[np.ndarray]
    aged_s: dict[tuple[float, float], list[np.ndarray]] = field(default_factory=dict)
    fit: LinearFit | None = None
    wall_s: dict[str, float] = field(default_factory=dict)

    def weights(self, layer: int, conductance_s: np.ndarray | None = None) -> np.ndarray:
        """The weights the layer's pairs hold: ``(G+ − G−) · w_max / (g_max − g_min)``."""
        g = self.conductance_s[layer] if conductance_s is None else conductance_s
        return (g[0] - g[1]) * self.w_max[layer] / (self.g_max_s - self.g_min_s)

    def aged_weights(self, layer: int, key: tuple[float, float]) -> np.ndarray:
        """The weights the layer's devices hold after aging ``key`` = (T, t)."""
        return self.weights(layer, self.aged_s[key][layer])

    def accounting(self) -> dict[str, np.ndarray]:
        """Per layer: devices, pulses, energy (J), serial and row-parallel time (s), devices out of band.

        Serial: one device after another. Row-parallel: all devices of one row of one array (G+ or
        G−) pulsed together, the row taking as long as its slowest device.
        """
        out = {k: [] for k in ("devices", "pulses", "energy_j", "time_serial_s", "time_row_parallel_s",
                               "out_of_band")}
        for layer in range(len(self.pulses)):
            out["devices"].append(self.pulses[layer].size)
            out["pulses"].append(int(self.pulses[layer].sum()))
            out["energy_j"].append(float(self.energy_j[layer].sum()))
            out["time_serial_s"].append(float(self.time_s[layer].sum()))
            out["time_row_parallel_s"].append(float(self.time_s[layer].max(axis=2).sum()))
            out["out_of_band"].append(int((~self.converged[layer]).sum()))
        return {k: np.asarray(v) for k, v in out.items()}

    def pulse_histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """(pulses, devices that took that many) over the whole network."""
        allp = np.concatenate([p.ravel() for p in self.pulses])
        counts = np.bincount(allp)
        return np.arange(counts.size), counts


def _program_chunk(params: FilamentParams, targets_s: np.ndarray, first_device: int, *, scheme: str,
                   fit: LinearFit, verify: WriteVerify, seed: int, threads: int, noise: bool, ambient_k: float,
                   by_temp: dict[float, list[float]]) -> tuple[dict[str, np.ndarray], dict, float, float]:
    """Program and age devices ``first_device ...`` of the network: (results, aged reads by (T, t),
    programming wall s, aging wall s). A function of its arguments alone, so it runs on any worker."""
    import time

    tic = time.perf_counter()
    if scheme == "pulse-count":
        res, ens = _pulse_count_chunk(params, fit, targets_s, seed=seed, first_device=first_device,
                                      threads=threads, noise=noise, ambient_k=ambient_k, read=verify)
    else:
        res = program_to_targets(params, targets_s, verify, seed=seed, first_device=first_device,
                                 threads=threads, noise=noise, ambient_k=ambient_k)
        ens = res.pop("ensemble")
    program_s = time.perf_counter() - tic
    tic = time.perf_counter()
    aged_out: dict[tuple[float, float], np.ndarray] = {}
    for temp_k, times in by_temp.items():
        aged = ens.copy()
        elapsed = 0.0
        for t_s in sorted(set(times)):
            aged_out[(temp_k, t_s)] = age_ensemble(aged, t_s - elapsed, temp_k, verify.read_voltage_v,
                                                   verify.read_width_s)
            elapsed = t_s
    return res, aged_out, program_s, time.perf_counter() - tic


def split_layers(flat: np.ndarray, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    """The per-device values ``flat`` of all layers back into one array of each layer's shape."""
    out, at = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(flat[at:at + size].reshape(shape))
        at += size
    return out


def pair_targets(w: np.ndarray, g_min_s: float, g_max_s: float) -> tuple[np.ndarray, float]:
    """(2, rows, cols) targets G+, G− of weight array ``w`` and its largest |w|."""
    w = np.asarray(w, dtype=np.float64)
    w_max = max(float(np.abs(w).max(initial=0.0)), 1e-30)
    span = (g_max_s - g_min_s) / w_max
    return np.stack([g_min_s + np.maximum(w, 0.0) * span, g_min_s + np.maximum(-w, 0.0) * span]), w_max


def program_network(params: FilamentParams, weights: Sequence[np.ndarray], *, scheme: str = "pulse-count",
                    seed: int = 0, threads: int = 1, chunk_devices: int = CHUNK_DEVICES, noise: bool = True,
                    ambient_k: float = 300.0, ages: Sequence[tuple[float, float]] = (),
                    fit: LinearFit | None = None, verify: WriteVerify | None = None,
                    progress: bool = False, client: Any = None) -> PhysicsProgram:
    """Program every weight of ``weights`` (one 2-D array per analog layer) by ``scheme``, then age.

    ``ages``: (temperature K, time s) pairs; for each temperature the times are reached in increasing
    order from the programmed state. The window is the ramp fit's linear range for both schemes.
    ``client``: a ``distributed.Client`` whose workers program the chunks (the result is the serial
    one, bit for bit); None programs them here.
    """
    import time

    from tqdm.auto import tqdm

    if scheme not in SCHEMES:
        raise MemdriftError(f"scheme = {scheme!r} is unknown; allowed: {', '.join(SCHEMES)}")
    check_range("chunk_devices", chunk_devices, 1, 1 << 30)
    check_range("ambient_k", ambient_k, 1.0, 2000.0, unit="K")
    for temp_k, t_s in ages:
        check_range("age temperature", temp_k, 1.0, 2000.0, unit="K")
        check_range("age time", t_s, 0.0, 1e10, unit="s")
    clock = {"fit": time.perf_counter()}
    fit = fit or ramp_linear_fit(params, seed=seed, threads=threads, noise=noise)
    clock["fit"] = time.perf_counter() - clock["fit"]
    g_min_s, g_max_s = fit.g_min_s, fit.g_max_s
    verify = (verify or WriteVerify()).checked()
    shapes, targets, w_max = [], [], []
    for w in weights:
        w2 = np.asarray(w, dtype=np.float64).reshape(np.shape(w)[0], -1)
        t, m = pair_targets(w2, g_min_s, g_max_s)
        targets.append(t)
        w_max.append(m)
        shapes.append(t.shape)
    flat = np.concatenate([t.ravel() for t in targets]) if targets else np.zeros(0)
    n = flat.size
    results = {k: np.empty(n, dtype=dt) for k, dt in (("conductance_s", float), ("pulses", np.int64),
                                                      ("energy_j", float), ("time_s", float), ("converged", bool))}
    by_temp: dict[float, list[float]] = {}
    for temp_k, t_s in ages:
        by_temp.setdefault(float(temp_k), []).append(float(t_s))
    aged_flat = {(tk, ts): np.empty(n) for tk, times in by_temp.items() for ts in times}
    clock["program"] = clock["age"] = 0.0
    starts = list(range(0, n, int(chunk_devices)))
    jobs = [(start, min(start + int(chunk_devices), n)) for start in starts]
    common = dict(scheme=scheme, fit=fit, verify=verify, seed=seed, threads=threads, noise=noise,
                  ambient_k=ambient_k, by_temp=by_temp)
    if client is None:
        done = (_program_chunk(params, flat[a:b], a, **common) for a, b in jobs)
    else:
        # every chunk is a function of its devices' global indices and the seed alone, so the workers'
        # results are those of the serial loop; gathered in submission order
        futures = [client.submit(_program_chunk, params, flat[a:b], a, pure=False, **common) for a, b in jobs]
        done = (f.result() for f in futures)
    for (start, stop), (res, aged, program_s, age_s) in zip(
            jobs, tqdm(done, total=len(jobs), disable=not progress, desc="devices", unit="chunk", leave=False)):
        for k, v in res.items():
            results[k][start:stop] = v
        for key, v in aged.items():
            aged_flat[key][start:stop] = v
        clock["program"] += program_s
        clock["age"] += age_s

    def split(a: np.ndarray) -> list[np.ndarray]:
        return split_layers(a, shapes)

    return PhysicsProgram(scheme, g_min_s, g_max_s, w_max, targets, *(split(results[k]) for k in
                          ("conductance_s", "pulses", "energy_j", "time_s", "converged")),
                          aged_s={key: split(v) for key, v in aged_flat.items()}, fit=fit, wall_s=clock)
