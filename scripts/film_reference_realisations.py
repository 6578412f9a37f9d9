"""The aged-film reference's own realisation-to-realisation spread, and what it does to the network.

``--reference aged-film`` gives each input line of a tile a reference film drawn from the pool, programmed
to the window's middle and aged by that film's change held from one state: the stop on its aging branch.
A film programmed again lands in another vacancy map at the same conductance, which ages otherwise. Here
the pool is built with ``age_mode = 'realisations'`` and the reference state: every potentiation trace's
first reading at or above the middle is held too, so each film has ``1 + realisations`` reference states
(its aging branch's and one per realisation). The weights (their levels, draws and aging) stay the same;
only the reference changes:

``branch``      every reference film's aging-branch state (the route's reference);
``real k``      every reference film's realisation-k state;
``draw s``      each reference device its own (film, realisation-or-branch) drawn by a seed s.

For each, the network's accuracy at every age, and the reference's change per film (µS).

    python scripts/film_reference_realisations.py RECORD.json [--bits 6] [--pool 8] [--realisations 4]
        [--ages 300:86400] [--age-mode anchors|realisations] [--draws 4]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("record")
    p.add_argument("--network", default="mlp-256-128")
    p.add_argument("--dataset", default="mnist-5k")
    p.add_argument("--bits", type=int, default=6)
    p.add_argument("--pool", type=int, default=8)
    p.add_argument("--realisations", type=int, default=4)
    p.add_argument("--grid", type=int, default=None)
    p.add_argument("--map-pulses", type=int, default=100)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--ages", default="300:86400", help="T_K:t_s pairs")
    p.add_argument("--age-mode", default="anchors", choices=("anchors", "realisations", "both"))
    p.add_argument("--draws", type=int, default=4)
    p.add_argument("--train-samples", type=int, default=None)
    p.add_argument("--test-samples", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import torch

    from memdrift.emulator.params import load_preset
    from memdrift.experiments import datasets, evaluate
    from memdrift.mapping import film_pool, physics_tiles
    from memdrift.mapping.aihwkit_bridge import inference_config
    from memdrift.mapping.record import load_record

    torch.set_num_threads(args.threads)
    record = load_record(args.record)
    preset = load_preset("tio2x-4t")
    data = datasets.load(args.dataset).subset(args.train_samples, args.test_samples)
    s = evaluate.Settings(epochs=args.epochs, repeats=1, seed=args.seed, progress=False).checked()
    tic = time.perf_counter()
    net = evaluate.train_digital(args.network, data, s)
    print(f"digital {100 * evaluate.accuracy(net, data.x_test, data.y_test):.2f} % "
          f"({time.perf_counter() - tic:.0f} s)", flush=True)
    ages = [(float(a.split(":")[0]), float(a.split(":")[1])) for a in args.ages.split(",")]
    tic = time.perf_counter()
    pool = film_pool.build_pool(preset.params, films=args.pool, realisations=args.realisations, seed=args.seed,
                                threads=args.threads, grid=args.grid, map_pulses=args.map_pulses,
                                calibration=dict(preset.calibration), ages=ages, reference=True,
                                age_mode="realisations", age_bits=(args.bits,))
    a = pool.aging
    print(f"pool {time.perf_counter() - tic:.0f} s wall ({a.realisation_states} realisation states held in "
          f"{a.realisation_wall_s:.0f} s wall)", flush=True)
    films, reals = pool.films, pool.realisations
    f_idx = np.arange(films)[:, None]
    ref_idx = a.realisation_reference_index
    # (films, 1 + realisations) reference changes: the aging branch's state, then each realisation's
    ref_delta = {key: np.concatenate([a.reference_delta_s[key][:, None],
                                      a.realisation_delta_s[key][f_idx, np.arange(reals)[None], ref_idx]], axis=1)
                 for key in ages}
    ref_read = np.concatenate([a.reference_reached_s[:, None],
                               pool.conductance_s[f_idx, np.arange(reals)[None], ref_idx]], axis=1)
    middle = 0.5 * (pool.g_min_s + pool.g_max_s)
    spacing = (pool.g_max_s - pool.g_min_s) / ((1 << args.bits) - 1)
    print(f"window {pool.g_min_s * 1e6:.1f}-{pool.g_max_s * 1e6:.1f} uS, middle {middle * 1e6:.1f} uS, "
          f"{args.bits}-bit spacing {spacing * 1e6:.2f} uS; reference reading - middle (uS): "
          f"{np.round((ref_read - middle) * 1e6, 2).tolist()}")
    for key in ages:
        d = ref_delta[key] * 1e6
        print(f"  {key[0]:g} K {key[1]:g} s reference dG per film (branch, real 0..) uS: "
              f"{np.round(d, 2).tolist()}")
        print(f"    s.d. over a film's reference states: mean {d.std(axis=1).mean():.2f} uS "
              f"(max {d.std(axis=1).max():.2f}) = {d.std(axis=1).mean() / (spacing * 1e6):.3f} spacings; "
              f"over all films' states {d.std():.2f} uS; mean {d.mean():+.2f} uS", flush=True)

    cfg = inference_config(record, levels=2 ** args.bits, w_range="tile", hwat_noise=0.0, drift=False,
                           mapping="single", tile="torch")
    phys = evaluate.to_analog(net, cfg)
    targets = physics_tiles.tile_weights(phys)
    modes = ("anchors", "realisations") if args.age_mode == "both" else (args.age_mode,)
    variants = ["branch"] + [f"real {k}" for k in range(reals)] + [f"draw {k}" for k in range(args.draws)]
    rows: dict[str, dict[str, list[float]]] = {}
    for mode in modes:
        prog = film_pool.program_network(pool, targets, args.bits, seed=args.seed, reference="aged-film",
                                         age_mode=mode)
        physics_tiles.install(phys, prog)
        physics_tiles.select_age(phys, None)
        base = evaluate.program_and_test(phys, data, t_inference_s=0.0, seed=s.seed + 1000)
        print(f"\nweights aged by {mode}: as programmed {100 * base:.2f} %", flush=True)
        for name in variants:
            alt = copy.copy(prog)
            if name.startswith("real"):
                k = 1 + int(name.split()[1])
                alt.reference_aged_s = {key: [middle + ref_delta[key][f, k] for f in prog.reference_film]
                                        for key in ages}
            elif name.startswith("draw"):
                rng = np.random.default_rng([args.seed, 7717, int(name.split()[1])])
                picks = [(rng.integers(0, films, f.size), rng.integers(0, reals + 1, f.size))
                         for f in prog.reference_film]
                alt.reference_aged_s = {key: [middle + ref_delta[key][ff, kk] for ff, kk in picks] for key in ages}
            else:
                # the route's own: equals ref_delta[:, 0] of each film
                alt = dataclasses.replace(prog)
            acc = []
            for key in ages:
                physics_tiles.install(phys, alt)
                physics_tiles.select_age(phys, key[0])
                acc.append(100 * evaluate.program_and_test(phys, data, t_inference_s=key[1], seed=s.seed + 1000))
            rows.setdefault(mode, {})[name] = acc
            print(f"  {name:8s}: " + ", ".join(f"{k[0]:g} K {k[1]:g} s {v:.2f} %" for k, v in zip(ages, acc)),
                  flush=True)
        for i, key in enumerate(ages):
            for group in ("real", "draw"):
                v = np.array([r[i] for n, r in rows[mode].items() if n.startswith(group) or
                              (group == "real" and n == "branch")])
                print(f"  {mode}, {key[0]:g} K {key[1]:g} s, {group}{' + branch' if group == 'real' else ''}: "
                      f"mean {v.mean():.2f} %, population s.d. {v.std():.2f} %, range {v.min():.2f}-{v.max():.2f} %")


if __name__ == "__main__":
    main()
