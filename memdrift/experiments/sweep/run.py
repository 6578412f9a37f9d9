"""Running a sweep: the points not yet stored, computed in process or on Dask workers, then the dataset."""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import xarray as xr

from memdrift.errors import MemdriftError
from memdrift.experiments.sweep.metrics import digital_network
from memdrift.experiments.sweep.points import _resolve_runner, compute_point, enumerate_points
from memdrift.experiments.sweep.results import assemble
from memdrift.experiments.sweep.schemes import default_runner
from memdrift.experiments.sweep.spec import Point, SweepSpec
from memdrift.experiments.sweep.store import claim_parts, load_part, parts_dir, store_part


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class SweepRun:
    """What a sweep did: the dataset, and how the points went (for the CLI and the bench)."""

    dataset: xr.Dataset
    computed: int
    reused: int
    point_seconds: list[float]
    wall_seconds: float  # from the first submission to the last result (cluster start-up excluded)
    startup_seconds: float = 0.0  # starting or reaching the cluster and importing the engine on it


def _warm_worker(runner: str, accuracy: bool = False) -> None:
    _resolve_runner(runner)
    if accuracy:
        importlib.import_module("memdrift.mapping.aihwkit_bridge")
        importlib.import_module("memdrift.experiments.evaluate")


def _iter_serial(todo: list[Point], digital: bytes | None) -> Iterable[tuple[Point, dict[str, Any]]]:
    for point in todo:
        yield point, compute_point(point.task, digital)


def _iter_dask(todo: list[Point], client: Any, digital: bytes | None) -> Iterable[tuple[Point, dict[str, Any]]]:
    from distributed import as_completed

    # One copy of the digital weights per worker, not one per task.
    shared = client.scatter(digital, broadcast=True) if digital is not None else None
    by_key = {}
    futures = []
    for point in todo:
        fut = client.submit(compute_point, point.task, shared, key=f"memdrift-sweep-{point.key}", pure=False)
        by_key[fut.key] = point
        futures.append(fut)
    try:
        for fut, result in as_completed(futures, with_results=True):
            yield by_key[fut.key], result
    finally:
        client.cancel(futures)


def run_sweep(spec: SweepSpec, out_path: str | os.PathLike[str] | None, *, mode: str = "local",
              workers: int | None = None, scheduler: str | None = None, client: Any = None,
              progress: bool = False, runner: str | None = None) -> SweepRun:
    """Compute the points not yet stored under ``OUT.parts/``, then assemble (and write) the dataset.

    ``mode``: ``"local"`` starts a LocalCluster of ``workers`` single-threaded
    processes (default: one a core); ``"scheduler"`` connects to ``scheduler``
    and leaves that cluster as it is; ``"client"`` uses the given ``client``;
    ``"serial"`` computes in this process without Dask. With ``out_path`` None
    nothing is stored (and nothing is resumed). ``runner``: the engine as ``module:function`` (default:
    the scheme's). With an accuracy metric, the digital network is trained once, here, before any point.
    """
    options = dict(mode=mode, workers=workers, scheduler=scheduler, client=client, progress=progress,
                   runner=runner)
    if out_path is None:
        return _run_sweep(spec, None, **options)
    with claim_parts(parts_dir(out_path)):
        return _run_sweep(spec, out_path, **options)


def _run_sweep(spec: SweepSpec, out_path: str | os.PathLike[str] | None, *, mode: str, workers: int | None,
               scheduler: str | None, client: Any, progress: bool, runner: str | None) -> SweepRun:
    if mode not in ("local", "scheduler", "client", "serial"):
        raise MemdriftError(f"mode = {mode!r} is unknown; allowed: local, scheduler, client, serial")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise MemdriftError(f"workers = {workers!r} is out of range; allowed: an integer >= 1")
    runner = runner or default_runner(spec)
    points = enumerate_points(spec, runner=runner)
    parts = parts_dir(out_path) if out_path is not None else None
    results: dict[tuple[int, ...], dict[str, float]] = {}
    todo = []
    for point in points:
        stored = load_part(parts, point) if parts is not None else None
        if stored is None:
            todo.append(point)
        else:
            results[point.index] = stored
    reused = len(results)
    seconds: list[float] = []
    wall = startup = 0.0
    if todo:
        if parts is not None:
            parts.mkdir(parents=True, exist_ok=True)
            # A kill during a part write leaves its temporary file (never a part
            # under its final name); those are the only files safe to sweep away.
            for stale in parts.glob(".*.json.*.part"):
                stale.unlink(missing_ok=True)
        from tqdm.auto import tqdm

        bar = tqdm(total=len(points), initial=reused, unit="point", desc=f"sweep {spec.name}",
                   disable=not progress, dynamic_ncols=True, leave=False)
        cluster = own_client = None
        begin = time.perf_counter()
        try:
            digital = digital_network(spec.accuracy) if spec.accuracy is not None else None
            if mode == "serial":
                _warm_worker(runner, spec.accuracy is not None)
                stream = _iter_serial(todo, digital)
            else:
                if mode == "client":
                    if client is None:
                        raise MemdriftError("client is None; allowed: a distributed.Client with mode = 'client'")
                    use = client
                elif mode == "scheduler":
                    from distributed import Client

                    try:
                        use = own_client = Client(scheduler, timeout="20s")
                    except (OSError, TimeoutError, ValueError) as exc:
                        raise MemdriftError(f"--scheduler = {scheduler!r} could not be reached ({exc}); allowed: "
                                            "the address of a running dask.distributed scheduler, "
                                            "e.g. tcp://host:8786") from None
                else:
                    from distributed import Client, LocalCluster

                    n = workers or default_workers()
                    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
                    use = own_client = Client(cluster)
                # Import the engine on every worker before timing points, so the
                # per-point seconds measure physics, not a worker's first import.
                use.run(_warm_worker, runner, spec.accuracy is not None)
                stream = _iter_dask(todo, use, digital)
            startup = time.perf_counter() - begin
            start = time.perf_counter()
            for point, result in stream:
                if parts is not None:
                    store_part(parts, point, result)
                results[point.index] = {m: float(result["metrics"][m]) for m in spec.metrics}
                seconds.append(float(result["seconds"]))
                bar.update(1)
            wall = time.perf_counter() - start
        finally:
            bar.close()
            if own_client is not None:
                own_client.close()
            if cluster is not None:
                cluster.close()
    ds = assemble(spec, points, results)
    if out_path is not None:
        from memdrift.data.io import write_dataset

        write_dataset(ds, out_path)
    return SweepRun(dataset=ds, computed=len(todo), reused=reused, point_seconds=seconds, wall_seconds=wall,
                    startup_seconds=startup)
