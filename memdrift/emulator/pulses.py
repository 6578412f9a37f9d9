"""Pulse schemes as data.

A :class:`PulseTrain` is one programming cycle: per pulse an amplitude (V) and a
width (s), each followed by a read (voltage, width) after a zero-bias gap. A
cycle is repeated ``cycles`` times by the engine with the device state carried
over, as on a probe station.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memdrift.constants import BRANCHES, DEPRESSION, POTENTIATION, RETENTION
from memdrift.errors import MemdriftError, check_range


SCHEMES = ("identical", "ramp")

# The HfOxSy/HfS2 paper's tailored scheme (Fig. 2c): both branches ramp amplitude
# and width up with pulse number; depression uses negative polarity.
PAPER_RAMP = {
    "pulses_per_branch": 20,
    "amplitude_start_v": 0.7,
    "amplitude_end_v": 0.995,
    "width_start_s": 160e-9,
    "width_end_s": 350e-9,
    "read_voltage_v": -0.1,
    "read_width_s": 30e-6,
    "read_gap_s": 20e-6,
}


@dataclass(frozen=True)
class PulseTrain:
    """One programming cycle. All arrays have one entry per pulse."""

    amplitude_v: np.ndarray
    width_s: np.ndarray
    read_voltage_v: float = -0.1
    read_width_s: float = 30e-6
    read_gap_s: float = 20e-6
    branch: tuple[str, ...] = field(default=())
    name: str = "custom"

    def __post_init__(self) -> None:
        amp = np.ascontiguousarray(self.amplitude_v, dtype=np.float64).reshape(-1)
        wid = np.ascontiguousarray(self.width_s, dtype=np.float64).reshape(-1)
        if amp.size == 0:
            raise MemdriftError("amplitude_v is empty; allowed: at least one pulse")
        if amp.shape != wid.shape:
            raise MemdriftError(
                f"width_s has {wid.size} entries but amplitude_v has {amp.size}; allowed: one width per pulse")
        bad = np.flatnonzero(~np.isfinite(amp))
        if bad.size:
            raise MemdriftError(f"amplitude_v[{bad[0]}] = {amp[bad[0]]!r} is out of range; allowed: a finite voltage (V)")
        bad = np.flatnonzero(~(np.isfinite(wid) & (wid > 0)))
        if bad.size:
            raise MemdriftError(f"width_s[{bad[0]}] = {wid[bad[0]]!r} is out of range; allowed: (0, inf) s")
        check_range("read_voltage_v", self.read_voltage_v, -10.0, 10.0, unit="V")
        if self.read_voltage_v == 0:
            raise MemdriftError("read_voltage_v = 0.0 is out of range; allowed: non-zero, [-10, 10] V")
        check_range("read_width_s", self.read_width_s, 0.0, None, low_open=True, unit="s")
        check_range("read_gap_s", self.read_gap_s, 0.0, None, unit="s")
        branch = tuple(self.branch) or tuple(POTENTIATION if a >= 0 else DEPRESSION for a in amp)
        if len(branch) != amp.size:
            raise MemdriftError(f"branch has {len(branch)} entries; allowed: one per pulse ({amp.size})")
        unknown = sorted(set(branch) - set(BRANCHES))
        if unknown:
            raise MemdriftError(f"branch = {unknown[0]!r}; allowed: {', '.join(map(repr, BRANCHES))}")
        amp.setflags(write=False)
        wid.setflags(write=False)
        object.__setattr__(self, "amplitude_v", amp)
        object.__setattr__(self, "width_s", wid)
        object.__setattr__(self, "branch", branch)

    @property
    def n_pulses(self) -> int:
        return int(self.amplitude_v.size)

    def describe(self) -> dict[str, Any]:
        """Plain attributes for a dataset header, enough to rebuild the train."""
        return {
            "scheme": self.name,
            "read_voltage_v": float(self.read_voltage_v),
            "read_width_s": float(self.read_width_s),
            "read_gap_s": float(self.read_gap_s),
        }


def identical(amplitude_v: float = 1.0, width_s: float = 200e-9, n_pulses: int = 20, *,
              depression_amplitude_v: float | None = None,
              read_voltage_v: float = -0.1, read_width_s: float = 30e-6, read_gap_s: float = 20e-6) -> PulseTrain:
    """``n_pulses`` identical pulses; with ``depression_amplitude_v`` as many again of that amplitude."""
    n = int(n_pulses)
    if n < 1:
        raise MemdriftError(f"n_pulses = {n_pulses!r} is out of range; allowed: >= 1")
    check_range("amplitude_v", amplitude_v, unit="V")
    check_range("width_s", width_s, 0.0, None, low_open=True, unit="s")
    amps = [float(amplitude_v)] * n
    branch = [POTENTIATION if amplitude_v >= 0 else DEPRESSION] * n
    if depression_amplitude_v is not None:
        check_range("depression_amplitude_v", depression_amplitude_v, unit="V")
        amps += [float(depression_amplitude_v)] * n
        branch += [DEPRESSION] * n
    return PulseTrain(np.array(amps), np.full(len(amps), float(width_s)), read_voltage_v, read_width_s,
                      read_gap_s, tuple(branch), name="identical")


def ramp(pulses_per_branch: int = 20, amplitude_start_v: float = 0.7, amplitude_end_v: float = 0.995,
         width_start_s: float = 160e-9, width_end_s: float = 350e-9, *,
         depression_amplitude_start_v: float | None = None, depression_amplitude_end_v: float | None = None,
         read_voltage_v: float = -0.1, read_width_s: float = 30e-6, read_gap_s: float = 20e-6) -> PulseTrain:
    """Amplitude- and width-ramped potentiation then depression (the paper's 20 + 20).

    Depression mirrors potentiation with negative polarity unless its own
    amplitudes are given (as magnitudes or signed; the sign is forced negative).
    """
    n = int(pulses_per_branch)
    if n < 1:
        raise MemdriftError(f"pulses_per_branch = {pulses_per_branch!r} is out of range; allowed: >= 1")
    for name, value in (("amplitude_start_v", amplitude_start_v), ("amplitude_end_v", amplitude_end_v)):
        check_range(name, value, 0.0, None, low_open=True, unit="V")
    for name, value in (("width_start_s", width_start_s), ("width_end_s", width_end_s)):
        check_range(name, value, 0.0, None, low_open=True, unit="s")
    d_start = abs(amplitude_start_v if depression_amplitude_start_v is None else depression_amplitude_start_v)
    d_end = abs(amplitude_end_v if depression_amplitude_end_v is None else depression_amplitude_end_v)
    check_range("depression_amplitude_start_v", d_start, 0.0, None, low_open=True, unit="V")
    check_range("depression_amplitude_end_v", d_end, 0.0, None, low_open=True, unit="V")
    amp_p = np.linspace(amplitude_start_v, amplitude_end_v, n)
    amp_d = -np.linspace(d_start, d_end, n)
    width = np.linspace(width_start_s, width_end_s, n)
    return PulseTrain(np.concatenate([amp_p, amp_d]), np.concatenate([width, width]), read_voltage_v,
                      read_width_s, read_gap_s, (POTENTIATION,) * n + (DEPRESSION,) * n, name="ramp")


def retention(times_s: np.ndarray, *, read_voltage_v: float = -0.1, read_width_s: float = 1e-6) -> PulseTrain:
    """Zero-bias bake with a read at each of the (increasing) times ``times_s`` after programming.

    Each "pulse" is the 0 V interval up to the next read, so the engine's zero-bias
    physics (symmetric hops + dissolution) is what moves the state.
    """
    times = np.asarray(times_s, dtype=np.float64).reshape(-1)
    if times.size == 0 or not np.all(np.isfinite(times)) or times[0] <= read_width_s \
            or np.any(np.diff(times) <= read_width_s):
        raise MemdriftError("times_s must be finite and increase by more than read_width_s; "
                            f"allowed: first > {read_width_s:g} s, strictly increasing")
    waits = np.diff(np.concatenate([[0.0], times])) - read_width_s
    return PulseTrain(np.zeros(times.size), waits, read_voltage_v, read_width_s, 0.0,
                      (RETENTION,) * times.size, name="retention")


def from_name(scheme: str, **options: Any) -> PulseTrain:
    """Build a shipped scheme by name; options are the constructor's keyword arguments."""
    if scheme == "ramp":
        return ramp(**{**PAPER_RAMP, **options})
    if scheme == "identical":
        return identical(**options)
    raise MemdriftError(f"scheme = {scheme!r} is unknown; allowed: {', '.join(SCHEMES)}")
