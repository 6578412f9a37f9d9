"""How well does a film's anchor aging stand for each realisation's own? Age every level state and compare.

The film route (``--scheme ffp-levels --age``) gives a weight on film f at level j its programmed reading
plus film f's change interpolated at target j from anchor states on one extra FFP branch (``age_mode =
'anchors'``). Here the pool is built with ``age_mode = 'realisations'``: every realisation's own state at
every level of the asked depths (the vacancy map after the event the segmentation picked) is held on its
own, with the film's parameters and a hop stream of its own. Per (film, level), over the realisations,
the script reports the spread of those changes and their distance from the anchors' value, in µS and in
level spacings. A second build holds the same states on other hop streams (the states and anchors are
the same bit for bit), so the hold's own hop noise is measured too: the rms difference of the two holds
over √2.

    python scripts/film_realisation_aging.py [--films 2] [--realisations 4] [--bits 3,4] [--grid 32]
        [--ages 300:86400,358:3600] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--films", type=int, default=2)
    p.add_argument("--realisations", type=int, default=4)
    p.add_argument("--bits", default="3,4")
    p.add_argument("--grid", type=int, default=None)
    p.add_argument("--map-pulses", type=int, default=100)
    p.add_argument("--age-levels", type=int, default=8)
    p.add_argument("--ages", default="300:86400,358:3600", help="T_K:t_s pairs")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-noise-check", action="store_true", help="skip the second build on other hop streams")
    p.add_argument("--json", default=None)
    args = p.parse_args()

    from memdrift.emulator.params import load_preset
    from memdrift.mapping import film_pool

    preset = load_preset("tio2x-4t")
    bits = [int(b) for b in args.bits.split(",")]
    ages = [(float(a.split(":")[0]), float(a.split(":")[1])) for a in args.ages.split(",")]
    kw = dict(films=args.films, realisations=args.realisations, seed=args.seed, threads=args.threads,
              grid=args.grid, map_pulses=args.map_pulses, calibration=dict(preset.calibration), ages=ages,
              age_levels=args.age_levels, age_mode="realisations", age_bits=bits)
    wall, cpu = time.perf_counter(), time.process_time()
    pool = film_pool.build_pool(preset.params, **kw)
    print(f"pool: {pool.films} films x {pool.realisations} realisations, grid {pool.grid}, "
          f"{pool.aging.realisation_states} states held in {pool.aging.realisation_wall_s:.1f} s wall / "
          f"{pool.aging.realisation_cpu_s:.1f} s CPU; whole build {time.perf_counter() - wall:.1f} s wall, "
          f"{time.process_time() - cpu:.1f} s CPU")
    other = None
    if not args.no_noise_check:
        keys = film_pool._hold_keys
        # the same states on other hop streams: only the holds' own noise differs
        film_pool._hold_keys = lambda seed, ids: keys(seed + 0x5BD1E995, ids)
        try:
            other = film_pool.build_pool(preset.params, **kw)
        finally:
            film_pool._hold_keys = keys
        np.testing.assert_array_equal(other.conductance_s, pool.conductance_s)
    a = pool.aging
    out: dict = {"films": pool.films, "realisations": pool.realisations, "grid": list(pool.grid),
                 "window_uS": [pool.g_min_s * 1e6, pool.g_max_s * 1e6], "rows": []}
    for b in bits:
        lv = pool.levels(b)
        n = 1 << b
        spacing = (pool.g_max_s - pool.g_min_s) / (n - 1)
        f_, c_ = np.meshgrid(np.arange(pool.films), np.arange(pool.realisations), indexing="ij")
        for key in ages:
            own = a.realisation_delta_s[key][f_[..., None], c_[..., None], lv.index]   # (films, reals, levels)
            interp = a.level_delta_s(key, lv.targets_s)[:, None, :]                  # (films, 1, levels)
            # the interpolation evaluated at each realisation's own reading, not the target: what a level's
            # offset from its target alone would explain
            at_reading = np.stack([[np.interp(lv.conductance_s[f, c], a.anchors_s, a.delta_s[key][f])
                                    for c in range(pool.realisations)] for f in range(pool.films)])
            sd = own.std(axis=1)                                    # spread over realisations, per (film, level)
            dev = own - interp
            row = {"bits": b, "temperature_k": key[0], "time_s": key[1], "spacing_uS": spacing * 1e6,
                   "mean_abs_change_uS": float(np.abs(own).mean() * 1e6),
                   "spread_sd_uS_mean": float(sd.mean() * 1e6), "spread_sd_uS_max": float(sd.max() * 1e6),
                   "spread_range_uS_max": float(np.ptp(own, axis=1).max() * 1e6),
                   "bias_uS_mean": float(dev.mean() * 1e6),
                   "dev_rms_uS": float(np.sqrt((dev ** 2).mean()) * 1e6),
                   "dev_abs_max_uS": float(np.abs(dev).max() * 1e6),
                   "dev_rms_uS_at_reading": float(np.sqrt(((own - at_reading) ** 2).mean()) * 1e6),
                   "per_level_sd_uS": (sd.mean(axis=0) * 1e6).round(3).tolist(),
                   "per_level_bias_uS": (dev.mean(axis=(0, 1)) * 1e6).round(3).tolist()}
            if other is not None:
                again = other.aging.realisation_delta_s[key][f_[..., None], c_[..., None], lv.index]
                row["hold_noise_uS"] = float(np.sqrt(((again - own) ** 2).mean() / 2.0) * 1e6)
            for name in ("spread_sd_uS_mean", "spread_sd_uS_max", "dev_rms_uS", "dev_abs_max_uS"):
                row[name.replace("uS", "spacings")] = row[name] / row["spacing_uS"]
            out["rows"].append(row)
            print(f"{b} bits, {key[0]:g} K {key[1]:g} s: spacing {spacing * 1e6:.2f} uS, mean |dG| "
                  f"{row['mean_abs_change_uS']:.1f} uS; spread over realisations s.d. {row['spread_sd_uS_mean']:.2f} "
                  f"(max {row['spread_sd_uS_max']:.2f}, range max {row['spread_range_uS_max']:.2f}) uS = "
                  f"{row['spread_sd_spacings_mean']:.3f} (max {row['spread_sd_spacings_max']:.3f}) spacings; "
                  f"own - interpolated: mean {row['bias_uS_mean']:+.2f}, rms {row['dev_rms_uS']:.2f}, max "
                  f"{row['dev_abs_max_uS']:.2f} uS = rms {row['dev_rms_spacings']:.3f}, max "
                  f"{row['dev_abs_max_spacings']:.3f} spacings (rms {row['dev_rms_uS_at_reading']:.2f} uS against "
                  f"the line at each reading)"
                  + (f"; hold hop noise {row['hold_noise_uS']:.2f} uS" if other is not None else ""))
            print("   per level s.d. (uS):", row["per_level_sd_uS"])
            print("   per level bias (uS):", row["per_level_bias_uS"])
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
