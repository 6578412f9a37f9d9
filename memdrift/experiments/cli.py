"""The ``memdrift`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``; the
module keeps heavy imports inside its run function so ``memdrift --help`` stays
fast. Bad input ends as one line on stderr and exit status 2, never a traceback,
and never a file under the output name.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from memdrift import __version__
from memdrift.errors import MemdriftError

# Subcommand modules, in the order `memdrift --help` lists them.
COMMAND_MODULES = (
    "memdrift.experiments.cmd_pulse",
    "memdrift.experiments.cmd_presets",
    "memdrift.experiments.cmd_sweep",
    "memdrift.experiments.cmd_evaluate",
    "memdrift.experiments.cmd_extract",
    "memdrift.experiments.cmd_export",
    "memdrift.experiments.cmd_characterise",
    "memdrift.experiments.cmd_calibrate",
    "memdrift.experiments.cmd_reproduce",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="memdrift", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"memdrift {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser



def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except MemdriftError as exc:
        print(f"memdrift {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"memdrift {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
