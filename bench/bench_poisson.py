"""Throughput of the film's hop-count sampler: the lane sampler against the scalar stream sampler.

The bulk film draws one Poisson count per face direction each step (3,968 on 32 x 32), with means
mostly 1-10 and 10-80. The lane sampler (memdrift/ext/_poisson_lanes.h) gives every draw its own
block of counters, so draws are independent and run in SIMD lanes; the scalar sampler
(_streams.pxd, which the filament kernel still uses) draws them one after another from one counter.
Prints ns per draw for each, and their ratio, on one core, for the film's mix and for fixed means.

    python bench/bench_poisson.py [--count 3968] [--calls 400] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    from memdrift.ext import _bulk4t

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=3968, help="draws per call (one film step on 32 x 32)")
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=5, help="best of")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    small = rng.random(args.count) < 0.6
    cases = {
        "film mix (60 % in [1, 10), 40 % in [10, 80])": np.where(small, rng.uniform(1.0, 10.0, args.count),
                                                                 rng.uniform(10.0, 80.0, args.count)),
        "mean 5": np.full(args.count, 5.0),
        "mean 30": np.full(args.count, 30.0),
    }
    step = args.count << _bulk4t.draw_bits()

    def best_ns(draw, lam: np.ndarray) -> float:
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            for call in range(args.calls):
                draw(lam, call)
            times.append(time.perf_counter() - t)
        return 1e9 * min(times) / (args.calls * lam.size)

    print(f"{args.count} draws a call, {args.calls} calls, best of {args.repeats}; ns per draw")
    for name, lam in cases.items():
        lanes = best_ns(lambda x, c: _bulk4t.poisson_lanes(x, 7, c * step), lam)
        scalar = best_ns(lambda x, c: _bulk4t.poisson_sequence(x, 7, c * 4 * x.size), lam)
        print(f"  {name:48s} lanes {lanes:6.2f}   scalar {scalar:6.2f}   ratio {scalar / lanes:5.2f} x")


if __name__ == "__main__":
    main()
