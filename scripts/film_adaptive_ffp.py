"""A self-correcting feedforward on a film the paper's table cannot drive (an exploration, not a scheme).

The paper's FFP looks its write amplitude up in a table of R measured once; on the stack candidate
(examples/presets/tio2x-4t-stack-candidate.toml) that table stalls (docs/physics-film.md). Here each event
instead corrects the amplitude from the change the last one made, V <- V (target / |dR|)^0.1 (the factor
clipped to [0.5, 2], V to [0.3, 7] V), from 4 V: one film, Poisson hops, HRS -> LRS -> HRS, then the events,
mean write power, peak temperature and skipped levels (n = 32, 512) per branch.

    python scripts/film_adaptive_ffp.py [--preset PATH] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

CANDIDATE = Path(__file__).resolve().parents[1] / "examples" / "presets" / "tio2x-4t-stack-candidate.toml"


def main() -> None:
    from memdrift.emulator.bulk4t_schemes import Bulk4TDevices
    from memdrift.emulator.params import load_preset
    from memdrift.emulator.segmentation import segment_processes, skipped_mask

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default=str(CANDIDATE))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    pre = load_preset(args.preset)
    hrs, lrs = pre.calibration.get("hrs_ohm", 880.0), pre.calibration.get("lrs_ohm", 740.0)
    dev = Bulk4TDevices(pre.params, 1, seed=args.seed)
    dev.init_first_pulse_s = pre.calibration.get("init_first_pulse_s", dev.init_first_pulse_s)
    cpu = time.process_time()
    dev.condition()
    target_ohm, width_s = 0.28, 0.8
    print("branch | start -> end R (ohm) | events | mean power (mW) | peak T (K) | |dR| mean +- sd (ohm) | "
          "skipped n = 32 / 512")
    for sign, goal in ((+1.0, lrs), (-1.0, hrs)):
        r = dev.approach(hrs, -1.0, reset_ohm=lrs)[0] if sign > 0 else dev.read()[0]
        v, trace, power, peak = 4.0, [r], [], 0.0
        for _ in range(2000):
            if (r <= goal) if sign > 0 else (r >= goal):
                break
            rec = dev.write(sign * v, width_s)
            r_new = dev.read()[0]
            power.append(rec.energy[0] / width_s)
            peak = max(peak, float(rec.temperature_peak[0]))
            progress = (r - r_new) * sign
            # the response rises steeply with V (heating activates the hops): a gentle power-law correction
            ratio = target_ohm / progress if progress > 1e-4 else 10.0
            v = float(np.clip(v * np.clip(ratio, 0.5, 2.0) ** 0.1, 0.3, 7.0))
            r = r_new
            trace.append(r)
        tr = np.array(trace)
        skips = []
        for n in (32, 512):
            seg = segment_processes(tr[None], n)[0]
            skips.append(int(skipped_mask(seg.offset[None]).sum()) if seg is not None else -1)
        d = np.abs(np.diff(tr))
        print(f"{'potentiation' if sign > 0 else 'depression'} | {tr[0]:.1f} -> {tr[-1]:.1f} | {tr.size - 1} | "
              f"{np.mean(power) * 1e3:.1f} | {peak:.0f} | {d.mean():.3f} +- {d.std():.3f} | {skips[0]} / {skips[1]}",
              flush=True)
    print(f"cpu {time.process_time() - cpu:.0f} s")


if __name__ == "__main__":
    main()
