"""Physics in the loop on MLP 784-500-10 (MNIST-5k): every weight on its own emulated hfoxsy-hfs2 pair.

795,020 devices (784·500 + 500·10 weights, two devices each) programmed by pulse-count and
by write-verify, aged to 1 day and 1 year at 300 K and 358 K, and evaluated in aihwkit
(torch tile, 8-bit DAC/ADC, global drift compensation) beside the statistical record route
on the same HWAT network and seed. Prints per-phase CPU and wall time; the acceptance asks
programming + aging + inference ≤ 60 s on 2 cores.

The network is trained here (digital Adam, then HWAT on the record), not random: the
training is timed and reported apart, as it is not part of the route.

    OMP_NUM_THREADS=1 python bench/bench_physics_loop.py [--threads 2] [--epochs 10] [--record paper|extract|FILE]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

AGES = [(t_k, t_s) for t_k in (300.0, 358.0) for t_s in (86400.0, 3.1536e7)]


class Phase:
    """Wall and CPU (process) seconds of a block."""

    def __init__(self, log: dict, name: str):
        self.log, self.name = log, name

    def __enter__(self):
        self.w, self.c = time.perf_counter(), time.process_time()

    def __exit__(self, *exc):
        w, c = self.log.get(self.name, (0.0, 0.0))
        self.log[self.name] = (w + time.perf_counter() - self.w, c + time.process_time() - self.c)


def main() -> None:
    import torch

    from bench_aihwkit import extracted_record, paper_record
    from memdrift.emulator.params import load_preset
    from memdrift.experiments import datasets, evaluate
    from memdrift.mapping import physics_program, physics_tiles
    from memdrift.mapping.aihwkit_bridge import inference_config

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="emulator kernel threads and torch threads")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--hwat-epochs", type=int, default=1)
    ap.add_argument("--record", default="extract")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    log: dict[str, tuple[float, float]] = {}
    with Phase(log, "record"):
        if args.record == "extract":
            record, source = extracted_record(), "extracted from 200 x 100 emulated hfoxsy-hfs2 ramp cycles"
        elif args.record == "paper":
            record, source = paper_record(), "HfOxSy/HfS2 paper numbers"
        else:
            record, source = json.loads(Path(args.record).read_text()), args.record
    data = datasets.load("mnist-5k")
    s = evaluate.Settings(epochs=args.epochs, hwat_epochs=args.hwat_epochs, repeats=1, seed=args.seed).checked()
    with Phase(log, "training (digital + HWAT)"):
        net = evaluate.train_digital("mlp", data, s)
        digital = evaluate.accuracy(net, data.x_test, data.y_test)
        hw = evaluate.hardware_aware_train(evaluate.to_analog(net, inference_config(record, tile="torch")), data, s)
    phys_net = copy.deepcopy(hw)
    targets = physics_tiles.tile_weights(phys_net)
    print(f"record: {source}; devices {2 * sum(t.size for t in targets):,}; digital {100 * digital:.2f} %")
    points = [(300.0, 0.0)] + AGES
    acc = {}
    with Phase(log, "statistical inference (5 points)"):
        for t_k, t_s in points:
            evaluate.set_noise(hw, temperature_k=t_k)
            acc[("statistical", t_k, t_s)] = evaluate.program_and_test(hw, data, t_inference_s=t_s, seed=1000)
    params = load_preset("hfoxsy-hfs2").params
    fit = None
    summary = {}
    for scheme in physics_program.SCHEMES:
        with Phase(log, f"{scheme}: fit + program + age"):
            prog = physics_program.program_network(params, targets, scheme=scheme, seed=args.seed,
                                                   threads=args.threads, ages=AGES, fit=fit)
        fit = prog.fit
        for key in ("fit", "program", "age"):
            print(f"  {scheme} {key}: {prog.wall_s[key]:.2f} s wall")
        with Phase(log, f"{scheme}: inference (5 points)"):
            physics_tiles.install(phys_net, prog)
            for t_k, t_s in points:
                physics_tiles.select_age(phys_net, t_k)
                acc[(scheme, t_k, t_s)] = evaluate.program_and_test(phys_net, data, t_inference_s=t_s, seed=1000)
        a = prog.accounting()
        n_p, dev = prog.pulse_histogram()
        mean_p = float((n_p * dev).sum() / dev.sum())
        summary[scheme] = (a, mean_p, np.percentile(np.repeat(n_p, dev), [50, 90, 99]).tolist(),
                           int(n_p.max()))
    print(f"\n{'phase':<42} {'wall s':>8} {'CPU s':>8}")
    for name, (w, c) in log.items():
        print(f"{name:<42} {w:8.2f} {c:8.2f}")
    for scheme in physics_program.SCHEMES:
        route = [v for k, v in log.items() if k.startswith(scheme)]
        print(f"{scheme}: programming + aging + inference {sum(w for w, _ in route):.2f} s wall, "
              f"{sum(c for _, c in route):.2f} s CPU")
    print(f"\n{'T K':>5} {'t s':>10} {'statistical':>12} {'pulse-count':>12} {'write-verify':>12}")
    for t_k, t_s in points:
        print(f"{t_k:5g} {t_s:10g} " + " ".join(f"{100 * acc[(m, t_k, t_s)]:11.2f}%"
                                             for m in ("statistical", "pulse-count", "write-verify")))
    stat = evaluate._cost(__import__("xarray").Dataset(), record, net)
    for scheme, (a, mean_p, pct, pmax) in summary.items():
        print(f"{scheme}: devices {a['devices'].sum():,}, pulses {a['pulses'].sum():,} (mean {mean_p:.2f}/device, "
              f"p50/p90/p99 {pct}, max {pmax}), energy {a['energy_j'].sum():.4g} J, time serial "
              f"{a['time_serial_s'].sum():.4g} s, row-parallel {a['time_row_parallel_s'].sum():.4g} s, "
              f"out of band {a['out_of_band'].sum():,}; per layer energy {a['energy_j'].tolist()} J")
    if "programming_energy" in stat:
        print(f"statistical record estimate: pulses {float(stat['programming_pulses']):.4g}, energy "
              f"{float(stat['programming_energy']):.4g} J, time serial {float(stat['programming_time_serial']):.4g} s, "
              f"row-parallel {float(stat['programming_time_row_parallel']):.4g} s")


if __name__ == "__main__":
    main()
