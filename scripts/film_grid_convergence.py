"""Grid convergence of the four-terminal film (tio2x-4t): R13 after a +6 V, 500 s write, and FFP figures.

R13: one device from the uniform film, deterministic (expected hop counts), +6 V on T2 and T4 for 500 s,
read at 0.1 V; per grid, upwind and Scharfetter-Gummel fluxes, Joule heating off and on. FFP (``--ffp``):
the preset's ffp-segmentation (its own dR map on each grid, Poisson hops, seed 0): events per branch and
skipped levels at n = 512. ``--ends S``: where the change of R13 after a +6 V write of S seconds (heating off)
sits: R13 read with the written vacancy map kept only within 0.5 / 1 / 2 um of the eight electrode segment ends
(the uniform film elsewhere; with the first of ``--contacts`` when given). ``--contacts RHO,...``: the same
write with Pt contacts of specific contact resistivity RHO (ohm m2, ``contact_overlap_m`` from ``--overlap``),
upwind, on the local sink (heating off and on) and on the substrate path (grids up to 64^2): R13 before and
after, its change, and the flags; ``--ffp`` then runs with the first of them. Prints the tables of
docs/physics-film.md.

    python scripts/film_grid_convergence.py [--grids 16,32,64,128] [--ffp 32,64] [--ends 50] [--seed 0]
                                            [--contacts 1e-9,1e-8] [--overlap 1e-6] [--skip-ideal]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    from memdrift.emulator.bulk4t_schemes import Bulk4TDevices, simulate_scheme
    from memdrift.emulator.params import load_preset

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grids", default="16,32,64,128")
    ap.add_argument("--ffp", default="", help="grids for the FFP figures (slow: ~3 s at 32, ~20 s at 64)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ends", type=float, default=0.0, help="write length (s) of the segment-end breakdown")
    ap.add_argument("--contacts", default="", help="specific contact resistivities (ohm m2) of the contact table")
    ap.add_argument("--overlap", type=float, default=1e-6, help="contact_overlap_m of the contact table (m)")
    ap.add_argument("--skip-ideal", action="store_true", help="leave out the ideal-contact R13 table")
    args = ap.parse_args()
    preset = load_preset("tio2x-4t")
    grids = [int(g) for g in args.grids.split(",") if g]
    rhos = [float(r) for r in args.contacts.split(",") if r]
    if rhos:
        contact_table(preset.params, grids, rhos, args.overlap, args.seed)
    contact = dict(contact_resistivity_ohm_m2=rhos[0], contact_overlap_m=args.overlap) if rhos else {}
    grids_ideal = [] if args.skip_ideal else grids
    if grids_ideal:
        print("R13 (ohm) after +6 V, 500 s from the uniform film | " + " | ".join(f"{g}^2" for g in grids))
    for heat in (0.0, 1.0) if grids_ideal else ():
        for sg in (0.0, 1.0):
            cells = []
            for g in grids_ideal:
                p = preset.params.replace(grid_x=float(g), grid_y=float(g), scharfetter_gummel=sg, joule_heating=heat)
                dev = Bulk4TDevices(p, 1, seed=args.seed, deterministic=True)
                rec = dev.write(6.0, 500.0)
                cells.append(f"{dev.read()[0]:.2f}" + (" (flagged)" if rec.flag[0] else ""))
            print(f"{'SG' if sg else 'upwind'}, heating {'on' if heat else 'off'} | " + " | ".join(cells), flush=True)
    for g in [int(x) for x in args.ffp.split(",") if x]:
        for sg in (0.0, 1.0):
            t = time.perf_counter()
            p = preset.params.replace(grid_x=float(g), grid_y=float(g), scharfetter_gummel=sg, **contact)
            ds = simulate_scheme(p, "ffp-segmentation", seed=args.seed, hrs_ohm=preset.calibration["hrs_ohm"],
                                 lrs_ohm=preset.calibration["lrs_ohm"])
            ev, sk = ds.events.values[0], ds.skipped_n512.values
            print(f"FFP {g}^2 {'SG' if sg else 'upwind'}: events {ev[0]}/{ev[1]}, skipped n512 {sk[0]}/{sk[1]}, "
                  f"n32 {ds.skipped_n32.values.tolist()}, peak {float(ds.temperature_peak.max()):.1f} K, "
                  f"flagged pulses {int((ds.pulse_flag > 0).sum())} ({time.perf_counter() - t:.0f} s)", flush=True)


    if args.ends > 0:
        segment_ends(preset.params.replace(**contact), grids, args.ends, args.seed)


def contact_table(params, grids: list[int], rhos: list[float], overlap_m: float, seed: int) -> None:
    from memdrift.emulator import bulk4t as b
    from memdrift.emulator.bulk4t_schemes import Bulk4TDevices

    print(f"Pt contacts, overlap {overlap_m * 1e6:g} um, +6 V, 500 s from the uniform film, upwind: "
          "R13 before -> after (change) per grid")
    for rho in rhos:
        for label, changes in (("local sink, heating off", dict(joule_heating=0.0)),
                               ("local sink, heating on", dict(joule_heating=1.0)),
                               ("substrate, heating on", dict(joule_heating=1.0, thermal_model=1.0))):
            cells = []
            for g in grids:
                if changes.get("thermal_model") and g * g > b.MAX_SUBSTRATE_CELLS:
                    continue
                t, c = time.perf_counter(), time.process_time()
                p = params.replace(grid_x=float(g), grid_y=float(g), contact_resistivity_ohm_m2=rho,
                                   contact_overlap_m=overlap_m, **changes)
                dev = Bulk4TDevices(p, 1, seed=seed, deterministic=True)
                r0 = dev.read()[0]
                rec = dev.write(6.0, 500.0)
                r1 = dev.read()[0]
                flag = f", flag {int(rec.flag[0])}" if rec.flag[0] else ""
                cells.append(f"{g}^2 {r0:.2f} -> {r1:.2f} ({r1 - r0:+.3f}; peak {rec.temperature_peak[0]:.1f} K, "
                             f"{rec.steps[0]} steps{flag}; {time.perf_counter() - t:.1f} s wall, "
                             f"{time.process_time() - c:.1f} s CPU)")
            print(f"rho_c {rho:g} ohm m2, {label}: " + " | ".join(cells), flush=True)


def segment_ends(params, grids: list[int], width_s: float, seed: int) -> None:
    from memdrift.emulator import bulk4t as b
    from memdrift.emulator.bulk4t_schemes import Bulk4TDevices

    side = params.side_length_m
    radii_m = (0.5e-6, 1e-6, 2e-6)
    print(f"contact_resistivity_ohm_m2 = {params.contact_resistivity_ohm_m2:g}: "
          f"dR13 (ohm) after +6 V, {width_s:g} s, heating off: total | kept within "
          + " | ".join(f"{r * 1e6:g} um" for r in radii_m) + " of the segment ends | the rest (total - 0.5 um)")
    for g in grids:
        p = params.replace(grid_x=float(g), grid_y=float(g), joule_heating=0.0)
        dev = Bulk4TDevices(p, 1, seed=seed, deterministic=True)
        uniform, r0 = dev.n.copy(), dev.read()[0]
        dev.write(6.0, width_s)
        written, total = dev.n.copy(), dev.read()[0] - r0
        h = side / g
        centres = (np.arange(g) + 0.5) * h
        x, y = np.meshgrid(centres, centres, indexing="ij")
        s = b._segment_start(g, p.electrode_fraction) * h
        ends = [(0, s), (0, side - s), (side, s), (side, side - s), (s, 0), (side - s, 0), (s, side), (side - s, side)]
        dist = np.min([np.hypot(x - ex, y - ey) for ex, ey in ends], axis=0)
        kept = []
        for r in radii_m:
            dev.n = np.where((dist < r)[None], written, uniform)
            kept.append(dev.read()[0] - r0)
        print(f"{g}^2 | {total:+.2f} | " + " | ".join(f"{k:+.2f}" for k in kept) + f" | {total - kept[0]:+.2f}",
              flush=True)


if __name__ == "__main__":
    main()
