"""``memdrift presets``: list the shipped device presets and pulse schemes."""

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
    print(f"  filament: {', '.join(SCHEMES)}")
    try:
        from memdrift.emulator import bulk4t_schemes

        print(f"  bulk4t:   {', '.join(bulk4t_schemes.SCHEMES)}")
    except (ImportError, AttributeError):
        pass
    return 0
