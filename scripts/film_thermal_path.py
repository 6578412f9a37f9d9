"""The four-terminal film's temperature at the paper's write powers, local sink against substrate half-space.

One device of tio2x-4t, deterministic, conditioned and initialised on the preset (local sink) to HRS (the
start of potentiation) and to LRS (the start of depression). Each film is then driven, with either heat path,
at the write amplitude that draws the paper's mean power of that branch (240.7 mW potentiation, +V on T2/T4;
114.6 mW depression, -V): the peak and mean film temperature of the field solve, the heating per watt, and
what one 0.8 s FFP-width pulse at that amplitude does to R13 (steps, flags). ``--ffp``: the preset's
ffp-segmentation (seed 0, Poisson hops; its Vw table mapped on the local-sink film) and the same Vw table
replayed from the same HRS / LRS films on the substrate path: events per branch, mean write power per branch
(energy / 0.8 s), peak temperature, skipped levels at n = 512, flagged events. Prints the tables of
docs/physics-film.md.

    python scripts/film_thermal_path.py [--grids 16,32,64] [--ffp]
"""

from __future__ import annotations

import argparse

import numpy as np

#: branch, sign of the write, paper's mean write power (W), the end state the branch starts from
BRANCHES = (("potentiation", +1.0, 0.2407, "hrs_ohm"), ("depression", -1.0, 0.1146, "lrs_ohm"))


def main() -> None:
    from memdrift.emulator.bulk4t_schemes import Bulk4TDevices
    from memdrift.emulator.params import load_preset

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grids", default="16,32,64")
    ap.add_argument("--ffp", action="store_true", help="also the FFP figures at the preset's grid (~1 min)")
    args = ap.parse_args()
    preset = load_preset("tio2x-4t")
    print("grid | branch | heat path | amplitude (V) | power (W) | peak T (K) | mean T (K) | peak / mean rise "
          "per W (K/W) | 0.8 s pulse: dR13 (ohm), steps, flag")
    for g in [int(x) for x in args.grids.split(",") if x]:
        local = preset.params.replace(grid_x=float(g), grid_y=float(g))
        for branch, sign, watts, start in BRANCHES:
            film = Bulk4TDevices(local, 1, seed=0, deterministic=True)
            film.condition()
            film.approach(preset.calibration[start], -sign, reset_ohm=preset.calibration[
                "lrs_ohm" if start == "hrs_ohm" else "hrs_ohm"])
            for model in (0.0, 1.0):
                dev = Bulk4TDevices(local.replace(thermal_model=model), 1, seed=0, deterministic=True)
                # sigma does not depend on T in the preset (E_sigma = 0): the power is quadratic in the amplitude
                dev.n = film.n.copy()
                probe = dev.write(sign * 1.0, 1e-9)
                amp = sign * np.sqrt(watts / (probe.energy[0] / 1e-9))
                dev.n = film.n.copy()
                hot = dev.write(amp, 1e-9)
                p = hot.energy[0] / 1e-9
                dev.n = film.n.copy()
                r0 = dev.read()[0]
                rec = dev.write(amp, 0.8)
                print(f"{g}^2 | {branch} | {'substrate' if model else 'local sink'} | {amp:+.3f} | {p:.4f} | "
                      f"{hot.temperature_peak[0]:.1f} | {hot.temperature_mean[0]:.1f} | "
                      f"{(hot.temperature_peak[0] - 300) / p:.0f} / {(hot.temperature_mean[0] - 300) / p:.0f} | "
                      f"{dev.read()[0] - r0:+.4g}, {rec.steps[0]}, {int(rec.flag[0])} "
                      f"(ran {rec.elapsed_s[0]:.3g} s, R0 {r0:.2f})", flush=True)
    if args.ffp:
        ffp_replay(preset)


def ffp_replay(preset) -> None:
    from memdrift.emulator.bulk4t_schemes import Bulk4TDevices, _segmentation_vars, run_ffp, simulate_scheme

    hrs, lrs = preset.calibration["hrs_ohm"], preset.calibration["lrs_ohm"]
    ds = simulate_scheme(preset, "ffp-segmentation", seed=0, levels=(512,))
    local = {k: ds[k].values for k in ("resistance", "energy", "temperature_peak", "pulse_flag")}
    local["events"] = ds.events.values
    vw, r_grid = np.array(ds.vw_table.values), np.array(ds.map_resistance.values)
    hot = {k: np.full((1, 2, 2000), np.nan) for k in ("resistance", "energy", "temperature_peak", "pulse_flag")}
    hot["events"] = np.zeros((1, 2), dtype=int)
    for c, (sign, start) in enumerate(((+1.0, hrs), (-1.0, lrs))):
        # the film brought to the branch's start on the preset: 6 V on the substrate path is past the thermal
        # ceiling, so the preset's initialisation cannot run there
        film = Bulk4TDevices(preset.params, 1, seed=0)
        film.condition()
        film.approach(start, -sign, reset_ohm=lrs if sign > 0 else hrs)
        dev = Bulk4TDevices(preset.params.replace(thermal_model=1.0), 1, seed=0)
        dev.n = film.n.copy()
        out = run_ffp(dev, vw, r_grid, hrs_ohm=hrs, lrs_ohm=lrs, branches=(sign,), initialise=False,
                      max_events=2000)
        e = int(out["events"][0, 0])
        for k in ("resistance", "energy", "temperature_peak", "pulse_flag"):
            hot[k][0, c, :e] = out[k][0, 0, :e]
        hot["events"][0, c] = e
    for name, res in (("local sink", local), ("substrate, the local sink's Vw", hot)):
        skipped = _segmentation_vars(res["resistance"], (512,))["skipped_n512"].values
        cells = []
        for c, branch in enumerate(("potentiation", "depression")):
            e = int(res["events"][0, c])
            r = res["resistance"][0, c, :e]
            cells.append(f"{branch}: {e} events, write power {np.nanmean(res['energy'][0, c, :e]) / 0.8 * 1e3:.1f} "
                         f"mW, peak {np.nanmax(res['temperature_peak'][0, c, :e]):.0f} K, skipped n512 "
                         f"{skipped[c]}, flagged {int((res['pulse_flag'][0, c, :e] > 0).sum())}, "
                         f"R {r[0]:.2f} -> {r[-1]:.2f} ohm")
        print(f"FFP seed 0, {name}: " + "; ".join(cells), flush=True)


if __name__ == "__main__":
    main()
