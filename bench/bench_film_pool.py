"""The film-level pool of ``memdrift evaluate --program physics --scheme ffp-levels``: what it costs.

Builds a pool of ``--films`` tio2x-4t films (conditioning, ΔR map, ``--realisations`` FFP cycles each)
on the compiled kernel and on its SciPy twin, on a ``--grid`` square grid, and prints wall and CPU
seconds per film and the ratio; then programs the weights of an MLP 784-256-128-10 (random weights of
the trained network's shapes: programming does not depend on their values' origin) onto the compiled
pool at 3-9 bits and prints weights per second.

Each pool is also aged (``--age-levels`` anchors per film and the aged-film reference's middle state,
held at each ``--age`` T:t): the aging's wall and CPU seconds are printed apart from the pool's, with
anchor states aged per second (one anchor held through every time of one temperature), relaxation
steps per second, and the reference / compiled ratio; the aged conductance changes of the two
backends are compared (mean |ΔG| per age: their Poisson streams differ, so not bit for bit).

    OMP_NUM_THREADS=1 python bench/bench_film_pool.py [--films 2] [--realisations 1] [--grid 16]
        [--age-levels 4] [--age 300:86400 --age 358:86400]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from memdrift.emulator.params import load_preset
from memdrift.mapping.film_pool import build_pool, program_network


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--films", type=int, default=2)
    ap.add_argument("--realisations", type=int, default=1)
    ap.add_argument("--grid", type=int, default=16)
    ap.add_argument("--map-pulses", type=int, default=20)
    ap.add_argument("--age-levels", type=int, default=4)
    ap.add_argument("--age", action="append", default=None, metavar="T:t",
                    help="aging temperature K and time s, repeatable (default 300:86400 and 358:86400)")
    args = ap.parse_args()
    preset = load_preset("tio2x-4t")
    ages = [tuple(float(v) for v in a.split(":")) for a in (args.age or ["300:86400", "358:86400"])]
    kw = dict(films=args.films, realisations=args.realisations, seed=0, grid=args.grid,
              map_pulses=args.map_pulses, calibration=preset.calibration, ages=ages, age_levels=args.age_levels,
              reference=True)
    temps = sorted({t for t, _ in ages})
    # anchor states held (each through every time of its temperature), the reference's middle state included
    held = args.films * (args.age_levels + 1) * len(temps)
    rows = {}
    for backend in ("compiled", "reference"):
        pool, wall, cpu = timed(lambda: build_pool(preset.params, backend=backend, **kw))
        a = pool.aging
        wall, cpu = wall - a.wall_s, cpu - a.cpu_s
        last = {t: max(s for tt, s in ages if tt == t) for t in temps}
        steps = sum(int(a.steps[(t, last[t])].sum() + a.reference_steps[(t, last[t])].sum()) for t in temps)
        rows[backend] = (pool, wall, cpu, a.wall_s, a.cpu_s, steps)
        events = int(pool.events.sum())
        print(f"pool {backend:9s}: {args.films} films x {args.realisations} at {args.grid}^2: {wall:7.2f} s wall, "
              f"{cpu:7.2f} s CPU ({wall / args.films:.2f} s wall per film, {events} FFP events)")
        print(f"aging {backend:9s}: {held} anchor states held ({args.films} films x ({args.age_levels} anchors + "
              f"the reference) x {len(temps)} temperatures), {steps} relaxation steps: {a.wall_s:7.2f} s wall, "
              f"{a.cpu_s:7.2f} s CPU ({held / a.wall_s:.3g} anchors/s, {steps / a.wall_s:.3g} steps/s wall)")
    c, r = rows["compiled"], rows["reference"]
    print(f"ratio reference / compiled: pool {r[1] / c[1]:.1f}x wall, {r[2] / c[2]:.1f}x CPU; "
          f"aging {r[3] / c[3]:.1f}x wall, {r[4] / c[4]:.1f}x CPU; steps per second {c[5] / c[3] / (r[5] / r[3]):.1f}x")
    for key in ages:
        dc, dr = (np.abs(x[0].aging.delta_s[key]).mean() * 1e6 for x in (c, r))
        print(f"  mean |dG| over films and anchors, {key[0]:g} K {key[1]:g} s: compiled {dc:.2f} uS, reference {dr:.2f} uS")
    rng = np.random.default_rng(0)
    weights = [rng.normal(0.0, 0.05, (256, 784)), rng.normal(0.0, 0.05, (128, 256)), rng.normal(0.0, 0.1, (10, 128))]
    n = sum(w.size for w in weights)
    pool = rows["compiled"][0]
    for bits in range(3, 10):
        prog, wall, cpu = timed(lambda: program_network(pool, weights, bits, seed=0))
        print(f"program {n} weights at {bits} bits: {wall:.2f} s wall, {cpu:.2f} s CPU, {n / wall:.3g} weights/s")


if __name__ == "__main__":
    main()
