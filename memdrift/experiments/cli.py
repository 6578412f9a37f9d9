"""The ``memdrift`` command line.

Each subcommand lives in its own module exposing ``register(subparsers)``; the
module keeps heavy imports inside its run function so ``memdrift --help`` stays
fast. Bad input ends as one line on stderr and exit status 2, never a traceback,
and never a file under the output name.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import traceback
from collections.abc import Iterator

from memdrift import __version__
from memdrift.errors import MemdriftError, NamedError

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


class UsageError(Exception):
    """A command line argparse rejects; reported as one line rather than the usage block."""


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so ``finally`` blocks remove temporaries as for Ctrl-C."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="memdrift", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"memdrift {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser



@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM ends the run like Ctrl-C does (temporaries removed on the way out), then exit 143."""
    def handler(signum, frame):
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. called from a worker): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _drop_progress_bars() -> None:
    """Close open progress bars without leaving their last line, so an error stays one line."""
    tqdm_module = sys.modules.get("tqdm.std")
    if tqdm_module is None:
        return
    for bar in list(getattr(tqdm_module.tqdm, "_instances", ())):
        bar.leave = False
        bar.close()


def _os_error_line(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else "a file"
    return f"{where}: {exc.strerror or exc} ({type(exc).__name__}); allowed: a readable input and a writable output"


@contextlib.contextmanager
def _envelope_notes():
    """Collect the notes of presets outside the physical envelope (loaded because they say why): a run
    that succeeds ends with one stderr line each (not Python's two-line warning); a failing run's one
    line is its error."""
    import warnings

    from memdrift.emulator.params import PhysicalEnvelopeWarning

    shown: set[str] = set()
    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, PhysicalEnvelopeWarning):
            shown.add(str(message))
            return
        previous(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield shown
    finally:
        warnings.showwarning = previous


@contextlib.contextmanager
def _dask_looked_up_lazily() -> Iterator[None]:
    """While no dask array can exist (``dask.array`` not imported), answer xarray's "is this a dask
    array?" without importing dask.

    xarray imports ``dask`` and ``dask.array`` on the first variable it makes, to learn the dask array
    type: 0.4 CPU-s, a quarter of a 10^5-device ramp run's own kernel time, for commands that make no
    dask array. The stand-in gives the real type (and module, version) as soon as anything imports
    ``dask.array``, so every answer is the one xarray would have given. Without the xarray internals it
    expects, or with dask already imported, nothing is changed.
    """
    try:
        from xarray.namedarray import pycompat
    except ImportError:
        yield
        return
    cache = getattr(pycompat, "_cached_duck_array_modules", None)
    if not isinstance(cache, dict) or "dask" in cache or "dask.array" in sys.modules:
        yield
        return

    class LazyDask:
        """The fields of xarray's ``DuckArrayModule`` for dask, resolved when read."""

        def _real(self):
            return pycompat.DuckArrayModule("dask")

        @property
        def type(self):
            array = getattr(sys.modules.get("dask.array"), "Array", None)
            return () if array is None else (array,)

        @property
        def module(self):
            return self._real().module

        @property
        def version(self):
            return self._real().version

        @property
        def available(self):
            return self._real().available

    stand_in = LazyDask()
    cache["dask"] = stand_in
    try:
        yield
    finally:
        if cache.get("dask") is stand_in:
            del cache["dask"]


#: the flag of each argument that library messages name (:class:`memdrift.errors.NamedError`) where the command
#: that ran has not worded them itself
FLAGS = {"backend": "--backend", "free": "--free", "levels": "--levels", "plot": "--plot"}


def main(argv: list[str] | None = None) -> int:
    """Run one command; every expected failure is one stderr line and exit 2 (130 on SIGINT, 143 on SIGTERM)."""
    command = "memdrift"
    try:
        with _sigterm_raises(), _envelope_notes() as notes, _dask_looked_up_lazily():
            try:
                args = build_parser().parse_args(argv)
            except UsageError as exc:
                print(_one_line(str(exc)), file=sys.stderr)
                return 2
            command = f"memdrift {args.command}"
            result = args.func(args)
            for note in sorted(notes):
                print(f"memdrift: warning: {_one_line(note)}", file=sys.stderr)
    except NamedError as exc:
        # a message the library words with its Python arguments: here each is the flag that sets it
        line = f"{command}: error: {exc.message(lambda name: FLAGS.get(name, name))}"
    except MemdriftError as exc:
        line = f"{command}: error: {exc}"
    except OSError as exc:
        line = f"{command}: error: {_os_error_line(exc)}"
    except UnicodeDecodeError as exc:
        line = f"{command}: error: an input file is not UTF-8 text ({exc.reason} at byte {exc.start})"
    except MemoryError:
        line = (f"{command}: error: out of memory; allowed: a smaller request (fewer devices, cycles or points, "
                "or a chunked run)")
    except KeyboardInterrupt:
        _drop_progress_bars()
        print(f"{command}: interrupted (SIGINT); temporary files removed", file=sys.stderr)
        return 130
    except Terminated:
        _drop_progress_bars()
        print(f"{command}: terminated (SIGTERM); temporary files removed", file=sys.stderr)
        return 143
    except Exception:  # a bug: show it, and ask for the report that lets it be fixed
        _drop_progress_bars()
        traceback.print_exc()
        print(f"{command}: internal error (a bug in memdrift {__version__}); please report it with the command "
              "line and the traceback above", file=sys.stderr)
        return 1
    else:
        return int(result or 0)
    _drop_progress_bars()
    print(_one_line(line), file=sys.stderr)
    return 2


def _one_line(text: str) -> str:
    """``text`` on one line: a value the user typed may hold line breaks, and the contract is one line."""
    return " ".join(text.splitlines())


if __name__ == "__main__":
    sys.exit(main())
