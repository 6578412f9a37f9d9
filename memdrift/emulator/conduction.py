"""Conduction laws I(V_cell, g) of the filament cell of your own, compiled with Numba.

The filament's built-in law is ``I = I0 exp(-g/g0) sinh(V_cell/V0)`` (:func:`sinh_law`, solved with
the series resistance by :func:`memdrift.emulator.filament.cell_solve`). A law of your own is a function

    law(cell_v, gap_m, i0_a, g0_m, v0_v) -> current_a

``cell_v``: the voltage across the cell (V, the series resistance's share taken off); ``gap_m``: the
filament's tunnelling gap (m); ``i0_a``, ``g0_m``, ``v0_v``: this device's ``tunnel_current_a``,
``tunnel_length_m`` and ``tunnel_voltage_v`` (the ensemble's device-to-device variation is in them), all
float64 scalars. It returns the current through the cell (A). It must be odd in ``cell_v`` and must not
decrease as ``cell_v`` rises, so that ``V = V_cell + I R_s`` has one root in ``[0, |V|]``; both are
checked on a grid of the run's voltages and gaps before any device runs.

The law is compiled by ``numba.njit`` for five float64 arguments before the run starts, so a function
Numba cannot compile fails before any device is simulated. It then runs inside the reference backend's
sub-step loop, wherever the reference solves the cell (the write segments, the reads, the F_min
crossing's secant), through :func:`CompiledConduction.cell_solve`: a safeguarded Newton on V_cell in
``[0, |V|]`` per device (bisection where a step leaves the bracket or fails to halve, as in rtsafe) with
the derivative by a forward difference, all in one Numba loop over the devices. It stops once the last
step, or the bracket, is within ``SOLVE_RTOL |V|``; the current is then taken from whichever side of
``V = V_cell + I R_s`` is better conditioned (the law where the cell takes the bias, ``(|V| - V_cell)/R_s``
where the resistor does), so it is good to a few units of 1e-16 relative however steep the law.
A device whose solve does not converge, or meets a current that is not finite, is flagged
``SOLVE_NOT_CONVERGED`` like the built-in solve's. The compiled backend runs only the built-in law.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from memdrift.errors import MemdriftError

#: the law's parameters, in order, as the errors and docs name them
PARAMETERS = ("cell_v", "gap_m", "i0_a", "g0_m", "v0_v")
#: the relative step (of |V|) or bracket below which the solve of a user law stops
SOLVE_RTOL = 1e-15
#: iterations allowed a solve: bisection alone narrows [0, |V|] to SOLVE_RTOL in about 50
SOLVE_MAX_ITER = 200
#: relative step of the forward differences that give the law's slopes in V_cell and in g
DIFF_STEP = 1e-7
#: points of the grid in V_cell (from -V_max to V_max) and in the gap on which a law is checked
CHECK_VOLTAGES = 257
CHECK_GAPS = 9
#: how far from odd a law may be, relative to its current: law(-v) + law(v) within this of |law(v)|
ODD_RTOL = 1e-12


def sinh_law(cell_v: float, gap_m: float, i0_a: float, g0_m: float, v0_v: float) -> float:
    """The built-in law ``I0 exp(-g/g0) sinh(V_cell/V0)``, written as a user would write it."""
    return i0_a * np.exp(-gap_m / g0_m) * np.sinh(cell_v / v0_v)


def _name(fn: Any) -> str:
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{module}:{qualname}" if module else str(qualname)


def describe(conduction: Any) -> str:
    """How errors name a law not yet compiled: its text, its name, or ``module:qualname``."""
    if isinstance(conduction, (str, Path)):
        return str(conduction)
    if isinstance(conduction, CompiledConduction):
        return conduction.name
    return _name(getattr(conduction, "py_func", conduction))


@dataclass(frozen=True)
class CompiledConduction:
    """A user conduction law compiled by Numba, with the cell solve over devices that calls it."""

    name: str
    function: Callable[..., float]
    _solve: Callable[..., None]
    _grid: Callable[..., None]

    def cell_solve(self, voltage_v: np.ndarray, gap_m: np.ndarray, table: np.ndarray, share: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:func:`memdrift.emulator.filament.cell_solve` with this law: (V_cell, I, the solution's share
        ``ln(I R_s/|V|)``, its slope in the gap, failed) per device; ``share`` warm-starts the solve."""
        from memdrift.emulator.filament import COL

        n = np.size(gap_m)
        volts = np.ascontiguousarray(np.broadcast_to(np.asarray(voltage_v, dtype=np.float64), (n,)))
        gap = np.ascontiguousarray(gap_m, dtype=np.float64)
        columns = [np.ascontiguousarray(table[:, COL[name]]) for name in
                   ("tunnel_current_a", "tunnel_length_m", "tunnel_voltage_v", "series_resistance_ohm")]
        start = np.ascontiguousarray(share, dtype=np.float64)
        vc, current, new_share, slope = (np.empty(n) for _ in range(4))
        failed = np.zeros(n, dtype=np.bool_)
        self._solve(volts, gap, *columns, start, vc, current, new_share, slope, failed)
        return vc, current, new_share, slope, failed

    def check(self, max_voltage_v: float, gap_min_m: float, gap_max_m: float, devices: np.ndarray) -> None:
        """Refuse, naming the check and where it failed, a law that is not finite, not odd in ``cell_v``
        or decreasing in it, on a grid of ``|cell_v| <= max_voltage_v`` and gaps in ``[gap_min_m,
        gap_max_m]``, for each row (i0_a, g0_m, v0_v) of ``devices``."""
        voltages = np.linspace(0.0, float(max_voltage_v), CHECK_VOLTAGES)
        gaps = np.linspace(float(gap_min_m), float(gap_max_m), CHECK_GAPS)
        where = (f"over the run's range |cell_v| <= {float(max_voltage_v):g} V, gap_m in "
                 f"[{float(gap_min_m):g}, {float(gap_max_m):g}] m")
        for i0, g0, v0 in np.asarray(devices, dtype=np.float64).reshape(-1, 3):
            up, down = np.empty((gaps.size, voltages.size)), np.empty((gaps.size, voltages.size))
            self._grid(voltages, gaps, float(i0), float(g0), float(v0), up, down)
            at = f"(i0_a = {i0:g}, g0_m = {g0:g}, v0_v = {v0:g})"
            bad = ~(np.isfinite(up) & np.isfinite(down))
            if bad.any():
                k, j = np.argwhere(bad)[0]
                value = up[k, j] if not np.isfinite(up[k, j]) else down[k, j]
                sign = "" if not np.isfinite(up[k, j]) else "-"
                raise MemdriftError(
                    f"conduction law {self.name} is not finite: current_a = {float(value)!r} at cell_v = "
                    f"{sign}{voltages[j]:g} V, gap_m = {gaps[k]:g} m {at}; allowed: a finite current {where}")
            odd = np.abs(up + down) <= ODD_RTOL * np.maximum(np.abs(up), np.abs(down))
            if not odd.all():
                k, j = np.argwhere(~odd)[0]
                raise MemdriftError(
                    f"conduction law {self.name} is not odd in cell_v: current_a = {float(up[k, j])!r} at cell_v = "
                    f"{voltages[j]:g} V and {float(down[k, j])!r} at {-voltages[j]:g} V (gap_m = {gaps[k]:g} m {at}); "
                    f"allowed: law(-cell_v, ...) = -law(cell_v, ...) to {ODD_RTOL:g} relative {where}")
            falls = np.diff(up, axis=1) < 0.0
            if falls.any():
                k, j = np.argwhere(falls)[0]
                raise MemdriftError(
                    f"conduction law {self.name} is not increasing in cell_v: current_a falls from "
                    f"{float(up[k, j])!r} at cell_v = {voltages[j]:g} V to {float(up[k, j + 1])!r} at {voltages[j + 1]:g} V "
                    f"(gap_m = {gaps[k]:g} m {at}); allowed: a current that does not fall as cell_v rises "
                    f"{where}")


def compile_conduction(fn: Any, name: str | None = None) -> CompiledConduction:
    """Compile ``fn`` (a plain Python function, or one already decorated with ``numba.njit``) as a law.

    Refuses, naming the law: something not callable, a function that cannot be called as
    ``fn(cell_v, gap_m, i0_a, g0_m, v0_v)``, one Numba cannot compile in nopython mode for five float64
    arguments (with Numba's reason), and one that returns anything but a number. ``name``: how errors and
    the dataset's attributes name it (default ``module:qualname``).
    """
    from numba import types

    from memdrift.emulator.policies import njit_checked

    signature_text = f"law({', '.join(PARAMETERS)}) -> current_a"
    if not callable(fn):
        raise MemdriftError(f"conduction = {fn!r} is not callable; allowed: a function {signature_text}")
    name = name or _name(getattr(fn, "py_func", fn))
    jitted = njit_checked(fn, kind="conduction law", name=name, parameters=PARAMETERS,
                          signature=(types.float64,) * len(PARAMETERS), count="five",
                          subset="of five floats in Numba's nopython subset (no objects, dicts of mixed types "
                                 "or calls into plain Python)",
                          returns="the current current_a (A)")
    return CompiledConduction(name=name, function=jitted, _solve=_compile_solve(jitted),
                              _grid=_compile_grid(jitted))


def _compile_grid(law: Any) -> Callable[..., None]:
    import numba

    def grid(voltages, gaps, i0, g0, v0, up, down):
        for k in range(gaps.size):
            for j in range(voltages.size):
                up[k, j] = law(voltages[j], gaps[k], i0, g0, v0)
                down[k, j] = law(-voltages[j], gaps[k], i0, g0, v0)

    return numba.njit(error_model="numpy")(grid)


def _compile_solve(law: Any) -> Callable[..., None]:
    """The per-device loop that solves ``|V| = x + R_s I(x)`` for ``x = |V_cell|`` in ``[0, |V|]``."""
    import numba

    rtol, max_iter, step = SOLVE_RTOL, SOLVE_MAX_ITER, DIFF_STEP

    def solve(volts, gaps, i0s, g0s, v0s, rss, share, vc_out, i_out, share_out, slope_out, failed):
        for d in range(gaps.size):
            v, g, i0, g0, v0, rs = volts[d], gaps[d], i0s[d], g0s[d], v0s[d], rss[d]
            target = abs(v)
            sign = 1.0 if v > 0.0 else -1.0
            share_out[d] = share[d]
            slope_out[d] = 0.0
            failed[d] = False
            if target == 0.0:
                vc_out[d] = 0.0
                i_out[d] = 0.0
                continue
            if rs == 0.0:
                # no unknown: the cell takes the whole bias
                current = law(target, g, i0, g0, v0)
                vc_out[d] = sign * target
                i_out[d] = sign * current
                failed[d] = not np.isfinite(current)
                continue
            lo, hi = 0.0, target
            # warm start: the share ln(I R_s/|V|) of the last solve
            x = target * (1.0 - np.exp(share[d]))
            if not (x > lo and x < hi):
                x = 0.5 * target
            dx_old = hi - lo
            dx = dx_old
            done = False
            for _ in range(max_iter):
                cur = law(x, g, i0, g0, v0)
                f = (x - target) + rs * cur
                if not np.isfinite(f):
                    # a law with no current here: no root to bracket (flagged below)
                    break
                if f == 0.0:
                    done = True
                    break
                if f < 0.0:
                    lo = x
                else:
                    hi = x
                h = step * max(x, v0)
                fp = 1.0 + rs * (law(x + h, g, i0, g0, v0) - cur) / h
                newton = x - f / fp
                # bisect where Newton leaves the bracket or does not halve its step (rtsafe)
                if not (newton > lo and newton < hi) or abs(2.0 * f) > abs(dx_old * fp):
                    dx_old = dx
                    dx = 0.5 * (hi - lo)
                    x = lo + dx
                else:
                    dx_old = dx
                    dx = f / fp
                    x = newton
                if abs(dx) <= rtol * target or hi - lo <= rtol * target:
                    done = True
                    break
            cur = law(x, g, i0, g0, v0)
            h = step * max(x, v0)
            di_dv = (law(x + h, g, i0, g0, v0) - cur) / h
            hg = step * g0
            di_dg = (law(x, g + hg, i0, g0, v0) - cur) / hg
            y = target - x
            # the better conditioned side: the resistor's where it takes the bias (R_s dI/dV > 1)
            current = y / rs if rs * di_dv > 1.0 else cur
            vc_out[d] = sign * x
            i_out[d] = sign * current
            if y > 0.0:
                share_out[d] = np.log(y / target)
                # dw/dg of w = ln(I R_s), from x + R_s I(x, g) = |V|
                slope_out[d] = rs * di_dg / (y * (1.0 + rs * di_dv))
            failed[d] = not (done and np.isfinite(current) and np.isfinite(x))

    # IEEE arithmetic (a division by zero gives inf, not an exception), as in the NumPy solve
    return numba.njit(error_model="numpy")(solve)


def resolve_conduction(conduction: Any) -> CompiledConduction | None:
    """``conduction`` as a run option: None (the built-in sinh law), a :class:`CompiledConduction`, a
    function, or the text ``path/to/file.py:function`` (or ``package.module:function``)."""
    if conduction is None or isinstance(conduction, CompiledConduction):
        return conduction
    if isinstance(conduction, (str, Path)):
        from memdrift.emulator.policies import load_function

        return compile_conduction(load_function(str(conduction), "conduction"), name=str(conduction))
    return compile_conduction(conduction)
