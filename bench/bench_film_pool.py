"""The film-level pool of ``memdrift evaluate --program physics --scheme ffp-levels``: what it costs.

Builds a pool of ``--films`` tio2x-4t films (conditioning, ΔR map, ``--realisations`` FFP cycles each)
on the compiled kernel and on its SciPy twin, on a ``--grid`` square grid, and prints wall and CPU
seconds per film and the ratio; then programs the weights of an MLP 784-256-128-10 (random weights of
the trained network's shapes: programming does not depend on their values' origin) onto the compiled
pool at 3-9 bits and prints weights per second.

    OMP_NUM_THREADS=1 python bench/bench_film_pool.py [--films 2] [--realisations 1] [--grid 16]
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
    args = ap.parse_args()
    preset = load_preset("tio2x-4t")
    kw = dict(films=args.films, realisations=args.realisations, seed=0, grid=args.grid,
              map_pulses=args.map_pulses, calibration=preset.calibration)
    rows = {}
    for backend in ("compiled", "reference"):
        pool, wall, cpu = timed(lambda: build_pool(preset.params, backend=backend, **kw))
        rows[backend] = (pool, wall, cpu)
        events = int(pool.events.sum())
        print(f"pool {backend:9s}: {args.films} films x {args.realisations} at {args.grid}^2: {wall:7.2f} s wall, "
              f"{cpu:7.2f} s CPU ({wall / args.films:.2f} s wall per film, {events} FFP events)")
    ratio_wall = rows["reference"][1] / rows["compiled"][1]
    ratio_cpu = rows["reference"][2] / rows["compiled"][2]
    print(f"ratio reference / compiled: {ratio_wall:.1f}x wall, {ratio_cpu:.1f}x CPU")
    rng = np.random.default_rng(0)
    weights = [rng.normal(0.0, 0.05, (256, 784)), rng.normal(0.0, 0.05, (128, 256)), rng.normal(0.0, 0.1, (10, 128))]
    n = sum(w.size for w in weights)
    pool = rows["compiled"][0]
    for bits in range(3, 10):
        prog, wall, cpu = timed(lambda: program_network(pool, weights, bits, seed=0))
        print(f"program {n} weights at {bits} bits: {wall:.2f} s wall, {cpu:.2f} s CPU, {n / wall:.3g} weights/s")


if __name__ == "__main__":
    main()
