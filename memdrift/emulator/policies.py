"""Feedforward write policies Vw(r) of the film's FFP schemes, and user policies compiled with Numba.

A policy chooses the amplitude of the next feedforward write from the last read. It is a function

    policy(r_ohm, sign, r_grid_ohm, vw_table_v) -> amplitude_v

``r_ohm``: the device's last read resistance (ohm); ``sign``: +1.0 on the HRS -> LRS branch
(potentiation), -1.0 on LRS -> HRS (depression); ``r_grid_ohm``: the resistance centres of the dR map
(increasing, ohm); ``vw_table_v``: the map's write amplitudes for this branch at those centres (V),
both read-only. It returns the magnitude of the write in (0, :data:`MAX_AMPLITUDE_V`] V; the scheme
applies the branch's sign (+Vw on T2 and T4 to potentiate, -Vw to depress). The built-in policy,
:func:`table_policy`, reads the table by linear interpolation, ends clamped.

A user policy is compiled by ``numba.njit`` for exactly these argument types (float64, float64 and two
read-only C-contiguous float64 arrays) before the run starts, so a function Numba cannot compile fails
before any device is simulated; it is then called for every device at every event, inside the scheme's
loop. A run with a user policy takes the event loop in Python on either backend (the compiled backend's
in-kernel loop knows only the table), with the same pulses and reads and so the same bits.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from memdrift.errors import MemdriftError

#: the largest write amplitude a policy may return (V); the film schemes' amplitudes share the bound
MAX_AMPLITUDE_V = 50.0
#: the policy's parameters, in order, as the errors and docs name them
PARAMETERS = ("r_ohm", "sign", "r_grid_ohm", "vw_table_v")


def table_policy(r_ohm: float, sign: float, r_grid_ohm: np.ndarray, vw_table_v: np.ndarray) -> float:
    """The built-in policy: the feedforward table at ``r_ohm``, linearly interpolated (``numpy.interp``)."""
    return np.interp(r_ohm, r_grid_ohm, vw_table_v)


def _name(fn: Any) -> str:
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{module}:{qualname}" if module else str(qualname)


@dataclass(frozen=True)
class CompiledPolicy:
    """A user policy compiled by Numba, with the loop over devices that calls it."""

    name: str
    function: Callable[..., float]
    _amplitudes: Callable[..., None]

    def amplitudes(self, r_ohm: np.ndarray, sign: float, r_grid_ohm: np.ndarray, vw_table_v: np.ndarray,
                   active: np.ndarray) -> np.ndarray:
        """The signed write amplitude of every device (V); refuses a value of an ``active`` device outside
        (0, MAX_AMPLITUDE_V] V, naming the device and its read. Devices not active get their policy's
        value where it is usable (their pulse has zero width) and 0 V otherwise."""
        r = np.ascontiguousarray(r_ohm, dtype=np.float64)
        grid = _read_only(r_grid_ohm)
        table = _read_only(vw_table_v)
        out = np.empty_like(r)
        self._amplitudes(r, float(sign), grid, table, out)
        usable = np.isfinite(out) & (out > 0.0) & (out <= MAX_AMPLITUDE_V)
        bad = np.flatnonzero(np.asarray(active, dtype=bool) & ~usable)
        if bad.size:
            d = int(bad[0])
            raise MemdriftError(
                f"policy {self.name} returned amplitude_v = {float(out[d])!r} for device {d} at r_ohm = "
                f"{float(r[d])!r} (sign = {float(sign):+g}); allowed: (0, {MAX_AMPLITUDE_V:g}] V, the write's "
                "magnitude (the scheme applies the sign)")
        return float(sign) * np.where(usable, out, 0.0)


def _read_only(values: np.ndarray) -> np.ndarray:
    a = np.array(values, dtype=np.float64, order="C", copy=True)
    a.flags.writeable = False
    return a


def njit_checked(fn: Any, *, kind: str, name: str, parameters: Sequence[str], signature: tuple[Any, ...],
                 count: str, subset: str, returns: str) -> Any:
    """``fn`` compiled by ``numba.njit`` for ``signature`` (kept as is when it is already a dispatcher).

    Refuses, naming the ``kind`` and ``name``: a function that cannot be called with ``parameters``
    (``count`` of them, in words), one Numba cannot compile in nopython mode (with Numba's reason;
    ``subset`` says what is allowed), and one that returns anything but a number (``returns``: what the
    number is). Shared by the write policies and the conduction laws.
    """
    import numba
    from numba import types
    from numba.core.registry import CPUDispatcher

    try:
        inspect.signature(getattr(fn, "py_func", fn)).bind(*parameters)
    except TypeError as e:
        raise MemdriftError(f"{kind} {name} cannot be called with ({', '.join(parameters)}): {e}; allowed: a "
                            f"function of exactly those {count} arguments") from None
    except ValueError:
        pass  # no signature to read (a builtin): the compile below decides
    jitted = fn if isinstance(fn, CPUDispatcher) else numba.njit(fn)
    try:
        jitted.compile(signature)
    except Exception as e:  # numba raises its own errors, and whatever the function's body raises when typed
        reason = " ".join(str(e).split("\n\n")[0].split())
        raise MemdriftError(f"{kind} {name} could not be compiled by numba.njit: {reason}; allowed: a function "
                            f"{subset}") from None
    returned = jitted.overloads[signature].signature.return_type
    if not isinstance(returned, (types.Float, types.Integer)) or isinstance(returned, types.Boolean):
        raise MemdriftError(f"{kind} {name} returns {returned}; allowed: one number, {returns}")
    return jitted


def compile_policy(fn: Any, name: str | None = None) -> CompiledPolicy:
    """Compile ``fn`` (a plain Python function, or one already decorated with ``numba.njit``) as a policy.

    Refuses, naming the policy: something not callable, a function that cannot be called as
    ``fn(r_ohm, sign, r_grid_ohm, vw_table_v)``, one Numba cannot compile in nopython mode (with
    Numba's reason), and one that returns anything but a number. ``name``: how errors and the dataset's
    attributes name it (default ``module:qualname``).
    """
    import numba
    from numba import types

    if not callable(fn):
        raise MemdriftError(f"policy = {fn!r} is not callable; allowed: a function "
                            f"policy({', '.join(PARAMETERS)}) -> amplitude_v")
    name = name or _name(getattr(fn, "py_func", fn))
    table = types.Array(types.float64, 1, "C", readonly=True)
    jitted = njit_checked(fn, kind="policy", name=name, parameters=PARAMETERS,
                          signature=(types.float64, types.float64, table, table), count="four",
                          subset="of floats and NumPy arrays in Numba's nopython subset (no dicts of mixed "
                                 "types, objects or calls into Python)",
                          returns="the write amplitude amplitude_v (V)")

    def amplitudes(r: np.ndarray, sign: float, grid: np.ndarray, vw: np.ndarray, out: np.ndarray) -> None:
        for i in range(r.size):
            out[i] = jitted(r[i], sign, grid, vw)

    return CompiledPolicy(name=name, function=jitted, _amplitudes=numba.njit(amplitudes))


def resolve_policy(policy: Any) -> CompiledPolicy | None:
    """``policy`` as a scheme option: None (the built-in table), a :class:`CompiledPolicy`, a function, or
    the text ``path/to/file.py:function`` of the command line."""
    if policy is None or isinstance(policy, CompiledPolicy):
        return policy
    if isinstance(policy, (str, Path)):
        return compile_policy(load_policy(str(policy)), name=str(policy))
    return compile_policy(policy)


def load_policy(spec: str) -> Callable[..., Any]:
    """The function named by ``path/to/file.py:function``, imported from that file (not from memdrift),
    or by ``package.module:function``."""
    return load_function(spec, "policy")


def load_function(spec: str, what: str) -> Callable[..., Any]:
    """The function named by ``spec``, ``path/to/file.py:function`` (imported from that file, not from
    memdrift) or ``package.module:function`` (an importable module); ``what`` names the option in errors."""
    path_text, sep, attr = str(spec).rpartition(":")
    if not sep or not path_text or not attr:
        raise MemdriftError(f"{what} = {spec!r} names no function; allowed: path/to/file.py:function")
    path = Path(path_text)
    if path.suffix != ".py" and not path.exists() and path_text.replace(".", "").replace("_", "").isalnum():
        return _from_module(spec, path_text, attr, what)
    if path.suffix != ".py" or not path.is_file():
        raise MemdriftError(f"{what} = {spec!r}: {path_text!r} is not a Python file; allowed: an existing "
                            "path/to/file.py:function")
    module_name = f"memdrift_user_{what}_{abs(hash(str(path.resolve())))}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise MemdriftError(f"{what} = {spec!r}: {path_text!r} cannot be imported; allowed: a Python file")
    module = importlib.util.module_from_spec(loader_spec)
    # registered so that Numba (and pickling) find the module by its name
    sys.modules[module_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[module_name]
        raise MemdriftError(f"{what} = {spec!r}: importing {path_text!r} failed: {type(e).__name__}: {e}") from None
    fn = getattr(module, attr, None)
    if fn is None:
        raise MemdriftError(f"{what} = {spec!r}: {path_text!r} defines no {attr!r}; allowed: a function "
                            "defined in that file")
    return fn


def _from_module(spec: str, module_name: str, attr: str, what: str) -> Callable[..., Any]:
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        raise MemdriftError(f"{what} = {spec!r}: module {module_name!r} cannot be imported ({type(e).__name__}: "
                            f"{e}); allowed: path/to/file.py:function or package.module:function") from None
    fn = getattr(module, attr, None)
    if fn is None:
        raise MemdriftError(f"{what} = {spec!r}: module {module_name!r} defines no {attr!r}; allowed: a "
                            "function defined in that module")
    return fn
