"""``memdrift export DEVICE.json --aihwkit CFG.pt``: the record's aihwkit configurations in one file."""

from __future__ import annotations

import argparse
from pathlib import Path

from memdrift.errors import MemdriftError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a record's aihwkit configurations (inference + training)",
                       description="Write the aihwkit InferenceRPUConfig (for convert_to_analog and "
                                   "drift_analog_weights) and the training RPUConfig (for AnalogSGD) of an "
                                   "extraction record with torch.save; load them with "
                                   "torch.load(CFG.pt, weights_only=False).")
    p.add_argument("record", type=Path, metavar="DEVICE.json", help="extraction record (memdrift extract)")
    p.add_argument("--aihwkit", required=True, type=Path, metavar="CFG.pt", help="file to write")
    p.add_argument("--tile", default="torch", choices=("torch", "cpp"),
                   help="inference tile: torch (same torch seed, same result; default) or cpp (aihwkit's C++)")
    p.add_argument("--levels", type=int, default=None,
                   help="levels per device for inference (default: the record's states)")
    p.add_argument("--dtod", type=float, default=0.0,
                   help="device-to-device variation of the window for inference (0-1, default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.aihwkit.suffix != ".pt":
        raise MemdriftError(f"aihwkit = {str(args.aihwkit)!r} is not allowed; allowed: a path ending in .pt")
    from memdrift.mapping.record import load_record

    record = load_record(args.record)
    try:
        from memdrift.mapping import aihwkit_bridge
    except ImportError as exc:
        raise MemdriftError(f"memdrift export needs torch and aihwkit ({exc}); install them with "
                            "bash scripts/install-aihwkit.sh") from None
    configs = aihwkit_bridge.export_configs(record, tile=args.tile, levels=args.levels, dtod=args.dtod)
    aihwkit_bridge.save_configs(configs, args.aihwkit)
    noise = configs["inference"].noise_model
    print(f"inference: {type(configs['inference']).__name__}, {noise.levels} levels in "
          f"[{noise.g_min:.1f}, {noise.g_max:.1f}] µS, Student-t program error, drift ν {noise.nu:.3g}")
    print(f"training: {type(configs['training']).__name__} with {type(configs['training'].device).__name__}")
    print(f"wrote {args.aihwkit}")
    return 0
