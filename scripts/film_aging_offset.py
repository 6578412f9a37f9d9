"""Is the aged film MLP's collapse a common weight offset? Decompose the aged weight error and re-test.

The film route's weight is one film against a reference, ``w = (G − G_ref) · 2 w_max / (g_max − g_min)``.
Aging moves every film towards its uniform state; against a fixed reference at the window's middle
that moves the weights of a tile by a common amount as well as compressing them. Per tile and aging
point this script fits the aged error ``e = w_aged − w_programmed`` (units of the tile's ``w_max``) as
``e = a + b · w_programmed + rest`` and reports the mean error, ``a``, ``b`` and the rest's rms, then
evaluates the aged network four ways (aihwkit's periphery and global drift compensation as the study):

``as aged``        the route's aged weights;
``mean removed``   every weight of a tile less the tile's mean error;
``offset removed`` every weight less ``a`` (the scale ``b`` left to drift compensation);
``affine removed`` every weight less ``a + b · w_programmed`` (only the rest left: a bound);
and, with ``--reference aged-film``, the route's aged weights against the aged reference film.

    python scripts/film_aging_offset.py RECORD.json [--bits 3,6,9] [--pool 8] [--grid 32] [--epochs 10]
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("record")
    p.add_argument("--network", default="mlp-256-128")
    p.add_argument("--dataset", default="mnist-5k")
    p.add_argument("--bits", default="3,6,9")
    p.add_argument("--pool", type=int, default=8)
    p.add_argument("--realisations", type=int, default=2)
    p.add_argument("--grid", type=int, default=None)
    p.add_argument("--map-pulses", type=int, default=100)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--ages", default="3600,86400")
    p.add_argument("--temperatures", default="300,358")
    p.add_argument("--reference", default="fixed", choices=("fixed", "aged-film"))
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
    ages = [(float(T), float(t)) for T in args.temperatures.split(",") for t in args.ages.split(",")]
    tic = time.perf_counter()
    extra = {} if args.reference == "fixed" else {"reference": True}
    pool = film_pool.build_pool(preset.params, films=args.pool, realisations=args.realisations, seed=args.seed,
                                threads=args.threads, grid=args.grid, map_pulses=args.map_pulses,
                                calibration=dict(preset.calibration), ages=ages, **extra)
    print(f"pool {time.perf_counter() - tic:.0f} s wall (aging {pool.aging.wall_s:.0f} s)", flush=True)
    window = pool.g_max_s - pool.g_min_s
    print(f"window {pool.g_min_s * 1e6:.1f}-{pool.g_max_s * 1e6:.1f} uS, middle {0.5e6 * (pool.g_min_s + pool.g_max_s):.1f}")
    for key in ages:
        d = pool.aging.delta_s[key]
        print(f"  {key[0]:g} K {key[1]:g} s: anchor dG {d.mean(axis=0)[0] * 1e6:+.1f} (HRS) ... "
              f"{d.mean(axis=0)[-1] * 1e6:+.1f} uS (LRS), mean over anchors {d.mean() * 1e6:+.1f} uS "
              f"= {2 * d.mean() / window:+.3f} w_max", flush=True)
    for b in (int(v) for v in args.bits.split(",")):
        cfg = inference_config(record, levels=2 ** b, w_range="tile", hwat_noise=0.0, drift=False,
                               mapping="single", tile="torch")
        phys = evaluate.to_analog(net, cfg)
        targets = physics_tiles.tile_weights(phys)
        prog = film_pool.program_network(pool, targets, b, seed=args.seed, **(
            {} if args.reference == "fixed" else {"reference": "aged-film"}))
        physics_tiles.install(phys, prog)
        physics_tiles.select_age(phys, None)
        base = evaluate.program_and_test(phys, data, t_inference_s=0.0, seed=s.seed + 1000)
        print(f"\n{b} bits: as programmed {100 * base:.2f} %")
        for key in ages:
            fits, variants = [], {"mean removed": [], "offset removed": [], "affine removed": []}
            for layer in range(len(targets)):
                w0 = prog.weights(layer)[None]
                # the weights the tile holds after aging (against the route's reference)
                held = getattr(prog, "aged_weights", None)
                wa = (held(layer, key) if held else prog.weights(layer, prog.aged_s[key][layer]))[None]
                m = prog.w_max[layer]
                e = ((wa - w0) / m).ravel()
                x = (w0 / m).ravel()
                slope, icpt = np.polyfit(x, e, 1)
                rest = e - (icpt + slope * x)
                fits.append((layer, e.mean(), icpt, slope, rest.std()))
                # back to conductances: the tile holds (G − G_ref) · 2 w_max / window
                to_g = window / 2.0
                g = prog.aged_s[key][layer]
                variants["mean removed"].append(g - e.mean() * to_g)
                variants["offset removed"].append(g - icpt * to_g)
                variants["affine removed"].append(g - (icpt + slope * x.reshape(g.shape)) * to_g)
            print(f"  {key[0]:g} K {key[1]:g} s  layer: mean error, offset a, scale b, rest rms (w_max)")
            for layer, mean, icpt, slope, rest in fits:
                print(f"    {layer}: {mean:+.4f} {icpt:+.4f} {slope:+.4f} {rest:.4f}")
            results = {}
            physics_tiles.install(phys, prog)
            physics_tiles.select_age(phys, key[0])
            results["as aged" if args.reference == "fixed" else "aged-film reference"] = evaluate.program_and_test(
                phys, data, t_inference_s=key[1], seed=s.seed + 1000)
            if args.reference == "fixed":
                for name, aged in variants.items():
                    alt = copy.copy(prog)
                    alt.aged_s = {key: aged}
                    physics_tiles.install(phys, alt)
                    physics_tiles.select_age(phys, key[0])
                    results[name] = evaluate.program_and_test(phys, data, t_inference_s=key[1], seed=s.seed + 1000)
            print("    accuracy: " + ", ".join(f"{k} {100 * v:.2f} %" for k, v in results.items()), flush=True)


if __name__ == "__main__":
    main()
