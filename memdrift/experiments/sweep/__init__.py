"""Design-space sweeps of pulse schemes: a TOML spec's grid of scheme options, device parameters and
device-to-device spreads, one emulated ensemble a point, one ``xarray.Dataset`` of metrics with the
axes as dimensions. The manual (spec format, schemes, metrics, reproducibility, resume) is
``docs/sweeps.md``.

The modules, each depending only on those above it:

- :mod:`~memdrift.experiments.sweep.spec`: the spec's types and what it may name (options, metrics, limits)
- :mod:`~memdrift.experiments.sweep.metrics`: extraction, cost, ffp and accuracy metrics of one point
- :mod:`~memdrift.experiments.sweep.schemes`: what a sweep needs of each scheme (``SWEEP_SCHEMES``)
- :mod:`~memdrift.experiments.sweep.points`: the grid's points, their seeds and keys, one point's run
- :mod:`~memdrift.experiments.sweep.parse`: TOML text or a spec file into a checked ``SweepSpec``
- :mod:`~memdrift.experiments.sweep.store`: the resume store of part files
- :mod:`~memdrift.experiments.sweep.results`: the dataset, the Pareto front, the table and the plot
- :mod:`~memdrift.experiments.sweep.run`: :func:`run_sweep`, in process or on Dask workers
"""

from __future__ import annotations

from memdrift.experiments.sweep.metrics import (accuracy_metrics, cost_metrics, digital_network, extract_metrics,
                                                ffp_cost_metrics, ffp_metrics, write_verify_cost_metrics)
from memdrift.experiments.sweep.parse import load_spec, parse_spec, shipped_specs
from memdrift.experiments.sweep.points import build_point, compute_point, enumerate_points, point_memory_bytes, point_seed
from memdrift.experiments.sweep.results import (COLOUR_MIN_SPAN, LABEL_ALL_POINTS, assemble, best_table,
                                                pareto_front, plot_pareto)
from memdrift.experiments.sweep.run import SweepRun, default_workers, run_sweep
from memdrift.experiments.sweep.schemes import (SCHEMES, SWEEP_SCHEMES, PointFailed, SweepScheme, default_runner,
                                                ffp_options, write_verify_scheme)
from memdrift.experiments.sweep.spec import (ACCURACY_DATASETS, ACCURACY_METRICS, ACCURACY_SETTINGS, BYTES_PER_PULSE,
                                             COST_METRICS, DEFAULT_MINIMISE, DEFAULT_POINT_MEMORY_BYTES,
                                             DEFAULT_RUNNER, EXTRACTION_METRICS, FFP_METRICS, FFP_OPTIONS,
                                             FFP_POSTPROCESS, LEVEL_METRICS, MAX_AXIS_VALUES, MAX_COUNT_OPTION,
                                             MAX_POINTS, MAX_WIDTH_S, REGISTRY_RUNNER, WV_OPTIONS, WV_TARGET_OPTIONS,
                                             Axis, Point, SweepSpec, metric_meta)
from memdrift.experiments.sweep.store import claim_parts, load_part, parts_dir, store_part

__all__ = [
    "ACCURACY_DATASETS", "ACCURACY_METRICS", "ACCURACY_SETTINGS", "BYTES_PER_PULSE", "COLOUR_MIN_SPAN",
    "COST_METRICS", "DEFAULT_MINIMISE", "DEFAULT_POINT_MEMORY_BYTES", "DEFAULT_RUNNER", "EXTRACTION_METRICS",
    "FFP_METRICS", "FFP_OPTIONS", "FFP_POSTPROCESS", "LABEL_ALL_POINTS", "LEVEL_METRICS", "MAX_AXIS_VALUES",
    "MAX_COUNT_OPTION", "MAX_POINTS", "MAX_WIDTH_S", "REGISTRY_RUNNER", "SCHEMES", "SWEEP_SCHEMES", "WV_OPTIONS",
    "WV_TARGET_OPTIONS", "Axis", "Point", "PointFailed", "SweepRun", "SweepScheme", "SweepSpec",
    "accuracy_metrics", "assemble", "best_table", "build_point", "claim_parts", "compute_point", "cost_metrics",
    "default_runner", "default_workers", "digital_network", "enumerate_points", "extract_metrics",
    "ffp_cost_metrics", "ffp_metrics", "ffp_options", "load_part", "load_spec", "metric_meta", "pareto_front",
    "parse_spec", "parts_dir", "plot_pareto", "point_memory_bytes", "point_seed", "run_sweep", "shipped_specs",
    "store_part", "write_verify_cost_metrics", "write_verify_scheme",
]
