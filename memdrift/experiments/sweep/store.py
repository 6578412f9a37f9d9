"""The resume store: one JSON part per finished point in ``OUT.nc.parts/``, written atomically and
named by the point's key, under a lock held while a run computes."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from memdrift.experiments.sweep.spec import Point, _is_number


def parts_dir(out_path: str | os.PathLike[str]) -> Path:
    out = Path(out_path)
    return out.with_name(out.name + ".parts")


def _part_path(parts: Path, key: str) -> Path:
    return parts / f"{key}.json"


def load_part(parts: Path, point: Point) -> dict[str, float] | None:
    """A finished point's metrics, or None if absent, unreadable or from a different point."""
    path = _part_path(parts, point.key)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    # a part edited by hand (or cut short) is recomputed, never trusted or a crash
    if not isinstance(record, dict) or record.get("key") != point.key:
        return None
    metrics = record.get("metrics")
    if not isinstance(metrics, dict) or not set(point.task["metrics"]) <= set(metrics):
        return None
    if not all(_is_number(metrics[m]) for m in point.task["metrics"]):
        return None
    return {m: float(metrics[m]) for m in point.task["metrics"]}


@contextlib.contextmanager
def claim_parts(parts: Path) -> Iterator[None]:
    """Hold ``parts/.lock`` while this run computes, so a second run on the same output waits for the
    first and then reuses its parts rather than computing every point again. The lock is the kernel's
    (``flock``): it dies with its process, so a killed run never leaves a stale one. A run that stored
    nothing leaves no ``.parts`` folder behind."""
    import fcntl
    import sys

    created = not parts.exists()
    parts.mkdir(parents=True, exist_ok=True)
    fd = os.open(parts / ".lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another run computing into {str(parts)!r}", file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
        if created and not any(parts.glob("*.json")):
            for leftover in (parts / ".lock", parts / "computed.log"):
                leftover.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                parts.rmdir()


def store_part(parts: Path, point: Point, result: Mapping[str, Any]) -> None:
    from memdrift.data.io import atomic_write_text

    record = {"key": point.key, "coords": point.coords, "seed": point.seed, "metrics": result["metrics"],
              "note": result.get("note", ""), "seconds": result["seconds"], "task": point.task}
    atomic_write_text(_part_path(parts, point.key), json.dumps(record, indent=1, allow_nan=True))
    # One line per computed point, appended by the single client process, so a
    # rerun that recomputed a finished point would show it twice.
    with open(parts / "computed.log", "a") as log:
        log.write(f"{point.key} {os.getpid()} {time.time():.6f}\n")
