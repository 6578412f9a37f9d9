"""Atomic file output and dataset I/O.

Every file is written under a temporary name in the destination directory and
renamed into place, so an interrupted run never leaves a half-written file under
the final name (rename is atomic within one filesystem).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

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
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, _new_file_mode())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_dataset(ds: xr.Dataset, path: str | os.PathLike[str], *, float32: bool = False) -> Path:
    """Write ``ds`` as netCDF4 atomically, with zlib compression on the data variables and
    CF-1.10 metadata (:func:`memdrift.data.schema.for_file`); ``float32`` stores the reads in
    single precision (attribute ``reads_stored_as``)."""
    from memdrift.data.schema import for_file, netcdf_encoding

    ds = for_file(ds)
    if float32:
        ds.attrs["reads_stored_as"] = "float32"
    encoding = netcdf_encoding(ds, float32=float32)
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
    return Path(path)


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
