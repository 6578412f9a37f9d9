"""``memdrift presets``: list the shipped device presets, pulse schemes, protocols and experiments."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("presets", help="list shipped device presets and pulse schemes")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from memdrift.emulator.params import list_presets, load_preset
    from memdrift.emulator.pulses import SCHEMES

    print("presets:")
    for name in list_presets():
        preset = load_preset(name)
        print(f"  {name:<14} {preset.model:<9} default scheme {preset.scheme:<9} {preset.description}")
    print("schemes:")
    print(f"  filament: {', '.join(SCHEMES)}, write-verify (ISPP to --targets)")
    from memdrift.emulator import bulk4t_schemes, protocols
    from memdrift.experiments.reproduce import EXPERIMENTS

    print(f"  bulk4t:   {', '.join(bulk4t_schemes.SCHEMES)}")
    print("protocols (memdrift characterise):")
    print(f"  filament: {', '.join(protocols.FILAMENT_PROTOCOLS)}")
    print(f"  bulk4t:   {', '.join(protocols.BULK4T_PROTOCOLS)}")
    print(f"experiments (memdrift reproduce): {', '.join(EXPERIMENTS)}")
    return 0
