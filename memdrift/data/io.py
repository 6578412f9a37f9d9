"""Atomic file output and dataset I/O.

Every file is written under a temporary name in the destination directory and
renamed into place, so an interrupted run never leaves a half-written file under
the final name (rename is atomic within one filesystem).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import queue
import shutil
import signal
import socket
import tempfile
import threading
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import xarray as xr

from memdrift.errors import MemdriftError


def _new_file_mode() -> int:
    """The mode ``open()`` would give a new file: 0o666 less the process umask."""
    # mkstemp creates its file 0600, and the rename would carry that mode to the
    # result, leaving datasets unreadable to the rest of a lab's group. Linux
    # reports the umask without changing it; elsewhere set-and-restore.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``."""
    final = Path(path)
    created = _missing_parents(final)
    ok = False
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(final)
        fd, tmp_name = tempfile.mkstemp(prefix=f"{_temporary_prefix(final)}{os.getpid()}.", suffix=".part",
                                        dir=final.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            yield tmp
            os.chmod(tmp, _new_file_mode())
            os.replace(tmp, final)
            ok = True
        finally:
            if tmp.exists():
                tmp.unlink()
    finally:
        if not ok:
            # a failed write leaves no empty folder it made behind
            remove_empty_dirs(created)


def _temporary_prefix(final: Path) -> str:
    # The host and the process id in the name let a later run tell a killed writer's leftover from a
    # live writer's file (on this host); a process id is only trusted on the host that made it.
    return f".{final.name}.{socket.gethostname().replace('.', '_')}."


def remove_stale_temporaries(final: Path) -> list[Path]:
    """Remove the temporaries beside ``final`` that a writer on this host left when it was killed (its
    process is gone); those of live writers, of other hosts and of other names are left alone."""
    prefix = _temporary_prefix(final)
    removed = []
    for tmp in final.parent.glob(f"{glob.escape(prefix)}*.part"):
        pid_text = tmp.name[len(prefix):].split(".", 1)[0]
        if not pid_text.isdigit() or _process_alive(int(pid_text)):
            continue
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    except OverflowError:
        return False
    return True


def _missing_parents(path: Path) -> list[Path]:
    """The folders above ``path`` that do not exist yet, deepest first."""
    missing = []
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    return missing


def remove_empty_dirs(dirs: list[Path]) -> None:
    """Remove each folder of ``dirs`` (deepest first) that is empty; leave the rest."""
    for d in dirs:
        try:
            d.rmdir()
        except OSError:
            break


def check_output_path(path: str | os.PathLike[str], suffix: str, field: str = "output") -> Path:
    """Refuse an output path before any work: wrong suffix, a folder, or a place no file can be made.

    The nearest existing folder above ``path`` is probed by creating (and removing)
    a temporary file there, which is the one test that sees read-only mounts,
    ``/proc`` and permissions alike.
    """
    p = Path(path)
    if p.suffix.lower() != suffix:
        raise MemdriftError(f"{field} = {str(p)!r} is not allowed; allowed: a path ending in {suffix}")
    if p.is_dir():
        raise MemdriftError(f"{field} = {str(p)!r} is a directory; allowed: a file path ending in {suffix}")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise MemdriftError(f"{field} = {str(p)!r} lies under {str(parent)!r}, which is not a directory; "
                            "allowed: a path in a writable directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".memdrift-probe.", suffix=".part", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise MemdriftError(f"{field} = {str(p)!r} cannot be written ({exc.strerror or exc} in {str(parent)!r}); "
                            "allowed: a path in a writable directory") from None
    return p


def write_error(path: str | os.PathLike[str], exc: BaseException) -> MemdriftError:
    """A write that failed (netCDF reports a full disk as an HDF error): the path, the cause, the free space."""
    p = Path(path)
    where = p.parent if p.parent.exists() else Path(".")
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        free = None
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        reason = "no space left on the device"
    else:
        reason = str(getattr(exc, "strerror", None) or exc)
    room = "" if free is None else f"; {free / 2**20:.1f} MiB free there"
    return MemdriftError(f"could not write {str(p)!r} ({reason}{room}); allowed: a path with room for the file")


def read_text_file(path: Path, label: str, allowed: str) -> str:
    """The UTF-8 text of ``path``; an undecodable or unreadable file is a :class:`MemdriftError`
    that begins with ``label`` (how the caller names the file) and offers ``allowed``."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise MemdriftError(f"{label} is not UTF-8 text (byte {exc.start}); allowed: {allowed}") from None
    except OSError as exc:
        raise MemdriftError(f"{label} cannot be read ({exc.strerror or exc})") from None


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


#: Open :func:`signals_deferred` blocks, innermost last: the signals each holds and the handlers
#: in force before it.
_DEFERRED: list[tuple[list[int], dict[int, object]]] = []


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM inside the block; act on them, as the handlers in force before it
    would have, at the next :func:`check_signals` or when the block ends.

    xarray's netCDF writer takes a non-reentrant lock around each file operation and takes it
    again to close the file on the way out of an error: an exception raised by a signal handler
    between the two leaves the process waiting on itself forever. Held, the signal is acted on
    where memdrift's own code asks (at the start of each computed chunk, outside any lock) or
    when the write is done, and the temporary file is removed as on any other error. Only the
    main thread may set handlers; elsewhere the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum, frame):
        pending.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    _DEFERRED.append((pending, previous))
    try:
        yield
    finally:
        _DEFERRED.remove((pending, previous))
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _act_on(pending, previous)


def check_signals() -> None:
    """Act now on a signal held by the innermost :func:`signals_deferred` block, if one came.

    Call it only where no library lock is held (between chunks of a computation)."""
    if _DEFERRED and _DEFERRED[-1][0]:
        _act_on(*_DEFERRED[-1])


def _act_on(pending: list[int], previous: dict[int, object]) -> None:
    if not pending:
        return
    signum = pending[0]
    pending.clear()
    handler = previous[signum]
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)


def write_dataset(ds: xr.Dataset, path: str | os.PathLike[str], *, float32: bool = False) -> Path:
    """Write ``ds`` as netCDF4 atomically, with zlib compression on the data variables and
    CF-1.10 metadata (:func:`memdrift.data.schema.for_file`); ``float32`` stores the reads in
    single precision (attribute ``reads_stored_as``)."""
    from memdrift.data.schema import for_file, netcdf_encoding

    ds = for_file(ds)
    if float32:
        ds.attrs["reads_stored_as"] = "float32"
    encoding = netcdf_encoding(ds, float32=float32)
    try:
        with atomic_path(path) as tmp, signals_deferred():
            ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
    except (OSError, RuntimeError) as exc:
        raise write_error(path, exc) from None
    return Path(path)


#: A variable is stored zlib-compressed (level 1) only when a sample of it shrinks to this fraction or less:
#: the float64 reads of an ensemble are nearly full-entropy (level 1 saves 5-25 % at 10-30x the write
#: time, docs/performance.md), while the gap and the flag bits compress several-fold for little time.
COMPRESS_KEEP_FRACTION = 0.7
#: items of a variable sampled to choose its compression
COMPRESS_SAMPLE_ITEMS = 1 << 13


def measured_compression(values: np.ndarray, dtype: np.dtype | str | None = None) -> dict[str, object]:
    """netCDF4 filter settings for ``values`` (as stored in ``dtype``): zlib level 1, with the byte shuffle
    when it helps, if a sample compresses to :data:`COMPRESS_KEEP_FRACTION` or less; else no filter."""
    sample = np.ascontiguousarray(np.asarray(values).reshape(-1)[:COMPRESS_SAMPLE_ITEMS])
    if dtype is not None:
        sample = sample.astype(dtype)
    raw = sample.tobytes()
    if not raw:
        return {"zlib": False, "shuffle": False}
    plain = len(zlib.compress(raw, 1))
    shuffled = len(zlib.compress(sample.view(np.uint8).reshape(-1, sample.itemsize).T.tobytes(), 1))
    if min(plain, shuffled) > COMPRESS_KEEP_FRACTION * len(raw):
        return {"zlib": False, "shuffle": False}
    return {"zlib": True, "complevel": 1, "shuffle": shuffled < plain}


def write_dataset_stream(chunks: Iterable[xr.Dataset], path: str | os.PathLike[str], *, dim: str,
                         float32: bool = False) -> Path:
    """Write the concatenation along ``dim`` of the datasets ``chunks`` yields, atomically, as
    :func:`write_dataset` writes one dataset (CF-1.10 metadata, ``float32`` reads), with ``dim`` an
    unlimited dimension and each variable's compression chosen by :func:`measured_compression` on the
    first chunk. A writer thread stores one chunk while the caller's iterator computes the next (the
    kernels and the HDF5 filters both run without the GIL); at most one chunk waits between them.

    Every chunk must hold the same variables; the first one's attributes are the file's.
    """
    pending: queue.Queue = queue.Queue(maxsize=1)
    failures: list[BaseException] = []
    stop = threading.Event()
    done = object()
    written = [0]

    def writer(tmp: Path) -> None:
        import netCDF4

        from memdrift.data.schema import for_file, netcdf_encoding

        nc = None
        offset = 0
        try:
            while (item := pending.get()) is not done:
                if stop.is_set():
                    continue
                ds = for_file(item)
                n = int(ds.sizes[dim])
                if nc is None:
                    if float32:
                        ds.attrs["reads_stored_as"] = "float32"
                    encoding = netcdf_encoding(ds, float32=float32)
                    along = [str(name) for name, var in ds.variables.items() if dim in var.dims]
                    for name in along:
                        var = ds[name]
                        enc = encoding.setdefault(name, {})
                        enc["chunksizes"] = tuple(max(1, n) if d == dim else int(var.sizes[d]) for d in var.dims)
                        if name in ds.data_vars and var.dtype.kind in "fiu":
                            for key in ("zlib", "complevel", "shuffle"):
                                enc.pop(key, None)
                            enc.update(measured_compression(var.values, enc.get("dtype")))
                    # the store to_netcdf writes through, under xarray's own netCDF/HDF5 lock, without
                    # to_netcdf's question to dask about its scheduler (an import of dask.distributed,
                    # 0.1 CPU-s): only this thread writes the file, and the data are NumPy arrays
                    store = xr.backends.NetCDF4DataStore.open(tmp, mode="w", format="NETCDF4",
                                                              lock=_netcdf4_lock())
                    try:
                        ds.dump_to_store(store, encoding=encoding, unlimited_dims=[dim])
                    finally:
                        store.close()
                    nc = netCDF4.Dataset(tmp, "a")
                    nc.set_auto_maskandscale(False)
                    # no chunk cache: netCDF's 64 MiB per variable would hold a 10^5-device run whole
                    # and compress and write it all at close, after the kernel is done; without it each
                    # chunk is filtered and written here, while the kernel computes the next
                    for name in along:
                        nc.variables[name].set_var_chunk_cache(size=0)
                else:
                    for name in along:
                        var = ds[name]
                        where = tuple(slice(offset, offset + n) if d == dim else slice(None) for d in var.dims)
                        nc.variables[name][where] = var.values
                offset += n
                written[0] = offset
        except BaseException as exc:  # handed to the caller's thread, which raises it
            failures.append(exc)
            stop.set()
            while pending.get() is not done:  # let the producer finish its put
                pass
        finally:
            if nc is not None:
                nc.close()

    def put(item: object) -> None:
        while True:
            try:
                pending.put(item, timeout=0.05)
                return
            except queue.Full:
                if not thread.is_alive():
                    return

    try:
        with atomic_path(path) as tmp:
            thread = threading.Thread(target=writer, args=(tmp,), name="memdrift-writer", daemon=True)
            thread.start()
            try:
                for chunk in chunks:
                    if stop.is_set():
                        break
                    put(chunk)
            except BaseException:
                stop.set()
                raise
            finally:
                put(done)
                thread.join()
            if failures:
                raise failures[0]
            if not written[0]:
                raise MemdriftError(f"output {str(path)!r}: no data to write (an empty ensemble)")
    except (OSError, RuntimeError) as exc:
        raise write_error(path, exc) from None
    return Path(path)


def _netcdf4_lock():
    """xarray's process-wide lock around the netCDF-C and HDF5 libraries (None, xarray's default choice,
    where this xarray has none by that name)."""
    from xarray.backends import netCDF4_

    return getattr(netCDF4_, "NETCDF4_PYTHON_LOCK", None)


def open_dataset(path: str | os.PathLike[str], *, chunks: dict | None = None) -> xr.Dataset:
    """Open a netCDF written by memdrift (or by a lab, with the contract names)."""
    p = Path(path)
    if not p.exists():
        raise MemdriftError(f"input file {str(p)!r} does not exist")
    try:
        ds = xr.open_dataset(p, engine="netcdf4", chunks=chunks)
    except (OSError, ValueError) as exc:
        raise MemdriftError(f"input file {str(p)!r} is not a readable netCDF file ({exc})") from None
    from memdrift.data.schema import from_file

    return from_file(ds)
