"""Multilevel segmentation of programming traces and the level-skip count (TiO2-x paper).

One implementation for the two places that need it: the ``ffp-segmentation``
scheme, which stores the segmented levels and skip counts in its dataset, and
the extraction record (:mod:`memdrift.mapping.extract`), which counts skips on
any dataset, measured ones included. Before they were one, the two gave 11 / 0
and 0 / 0 skipped levels for the same trace.

The paper's method ("Multilevel resistance segmentation method"): targets
``r_i,1 … r_i,n`` evenly spaced over the trace's range, ``m_j = argmin |R_FF −
r_i,j|``, ``r_a,j = R_FF[m_j]``; the events between ``m_j`` and ``m_j+1`` form
one grouped pulse; "if it is insufficient to separate enough resistance levels
in R_FF, the states … remain unoccupied".

Skips. The paper counts levels whose "normalised resistance level" (0 the
current level, 1 the next) exceeds 1 at CPD = 80 % over repeated processes, and
does not say which reading it normalises. On an argmin segmentation the reading
nearest a level can only lie beyond the next level when one event jumps more
than two spacings, so taken literally the count misses the common way a level
is lost: one event carries the device across that level's whole window (a jump
of one to two spacings), leaving it unoccupied. The count used here is that
occupancy: level j is skipped in a process when no reading lies within half a
spacing of it, ``|r_a,j − r_i,j| > spacing / 2``, and "prone to be skipped" when
that happens in more than 1 − ``cpd`` of the processes (the CPD of |offset| read
at ``cpd`` exceeds 1/2). A trace that jumps from level 25 to level 30 loses
levels 26-29 (four), where the literal reading counts one.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from memdrift.errors import MemdriftError, field_error

#: |offset| (level spacings) beyond which a level is unoccupied: its nearest reading is nearer a neighbour.
SKIP_OFFSET = 0.5


@dataclass(frozen=True)
class Segmentation:
    """One trace segmented into n levels.

    ``targets``: ``r_i,j`` in the direction of travel; ``index``: ``m_j`` (non-decreasing);
    ``actual``: ``r_a,j = R_FF[m_j]``; ``events``: pulse events grouped into the step j → j+1
    (``m_j+1 − m_j``, 0 when level j+1 is unoccupied); ``offset``: ``(r_a,j − r_i,j) / spacing``,
    positive beyond the target in the direction of travel.
    """

    targets: np.ndarray
    index: np.ndarray
    actual: np.ndarray
    events: np.ndarray
    offset: np.ndarray

    @property
    def occupied(self) -> int:
        """Distinct readings the levels landed on."""
        return int(np.unique(self.index).size)

    @property
    def unoccupied(self) -> np.ndarray:
        """Per level: no reading within half a spacing of it (skipped in this process)."""
        return np.abs(self.offset) > SKIP_OFFSET


def _trace(name: str, values, min_size: int = 2) -> np.ndarray:
    r = np.asarray(values, dtype=np.float64).ravel()
    r = r[np.isfinite(r)]
    if r.size < min_size:
        raise MemdriftError(f"{name} has {r.size} finite values; allowed: a trace of at least {min_size}")
    return r


def segment_levels(trace, n_levels: int, *, r_start: float | None = None,
                   r_end: float | None = None) -> Segmentation:
    """Segment a programming trace (resistance after each pulse event, in write order) into ``n_levels``.

    Targets run from the end of the range the trace starts at to the other end (its min and max,
    "R_FF normalised to 0 … 1"); pass ``r_start`` / ``r_end`` to give several processes the same
    targets (the CPD over processes compares the same levels). NaN readings (a device that had
    stopped) are dropped. The index is made non-decreasing: a trace is written one way, and a
    level cannot be reached before the one preceding it.
    """
    r = _trace("trace", trace)
    n_levels = int(n_levels)
    if n_levels < 2:
        raise field_error("n_levels", n_levels, ">= 2")
    rising = r[-1] >= r[0]
    lo, hi = float(r.min()), float(r.max())
    start = (lo if rising else hi) if r_start is None else float(r_start)
    end = (hi if rising else lo) if r_end is None else float(r_end)
    if start == end:
        raise MemdriftError("trace does not move (r_start == r_end); allowed: a trace between two distinct levels")
    targets = np.linspace(start, end, n_levels)
    # ties go to the earliest event (argmin's first hit)
    index = np.maximum.accumulate(np.abs(r[None, :] - targets[:, None]).argmin(axis=1))
    actual = r[index]
    return Segmentation(targets=targets, index=index, actual=actual, events=np.diff(index),
                        offset=level_offsets(actual, targets))


def level_offsets(actual, targets) -> np.ndarray:
    """``(r_a,j − r_i,j) / spacing`` per level, signed along the direction of travel."""
    a = _trace("actual", actual)
    t = _trace("targets", targets)
    if a.size != t.size:
        raise MemdriftError(f"actual has {a.size} values but targets has {t.size}; allowed: one per level")
    step = (t[-1] - t[0]) / (t.size - 1)
    if step == 0:
        raise MemdriftError("targets do not move; allowed: distinct target levels")
    return (a - t) / step


def segment_processes(traces, n_levels: int) -> list[Segmentation | None]:
    """Segment several processes of one branch (a NaN-padded 2-D array, or a list of 1-D traces) on common targets.

    The targets span the median start and end of the processes, so level j is the same
    resistance in every process and the CPD over processes is read per level. One entry per
    process, in order; ``None`` for a process with fewer than two finite readings or that does
    not move.
    """
    rows = traces if isinstance(traces, (list, tuple)) else np.atleast_2d(np.asarray(traces, dtype=np.float64))
    finite = [t[np.isfinite(t)] for t in (np.asarray(row, dtype=np.float64).ravel() for row in rows)]
    usable = [t if t.size >= 2 and np.ptp(t) > 0 else None for t in finite]
    clean = [t for t in usable if t is not None]
    if not clean:
        return [None] * len(usable)
    falling = np.median([t[-1] - t[0] for t in clean]) < 0
    start = float(np.median([t.max() if falling else t.min() for t in clean]))
    end = float(np.median([t.min() if falling else t.max() for t in clean]))
    return [None if t is None else segment_levels(t, n_levels, r_start=start, r_end=end) for t in usable]


def skipped_mask(offsets, cpd: float = 0.8) -> np.ndarray:
    """Per level: prone to be skipped, i.e. the CPD of |offset| over processes (rows) at ``cpd`` is beyond 1/2.

    A level counts when more than 1 − ``cpd`` of the processes left it unoccupied. All-NaN levels
    (no process) are not counted.
    """
    if not 0 < cpd < 1:
        raise field_error("cpd", cpd, "(0, 1)")
    x = np.abs(np.atleast_2d(np.asarray(offsets, dtype=np.float64)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN level: no sample, not skipped
        q = np.nanquantile(x, cpd, axis=0)
    return q > SKIP_OFFSET


def skipped_levels(offsets, cpd: float = 0.8) -> int:
    """Number of levels prone to be skipped (:func:`skipped_mask`); ``offsets`` is (process, level) or 1-D."""
    return int(np.sum(skipped_mask(offsets, cpd)))
