"""Errors shared by every layer.

A :class:`MemdriftError` is what the CLI turns into one line on stderr and a
non-zero exit; it is a ``ValueError`` so library users can catch it as such.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable
from typing import Any


class MemdriftError(ValueError):
    """Bad input that names the offending field and what would have been allowed."""


class NamedError(MemdriftError):
    """A message naming Python fields and arguments as ``{name}`` in ``template`` (every other brace doubled):
    the plain message writes each name as it is, :meth:`message` as ``label`` words it for a caller that
    knows it by another name (the command line, by its flag)."""

    def __init__(self, template: str):
        self.template = template
        super().__init__(self.message())

    def __reduce__(self) -> tuple[Any, ...]:
        # rebuilt from its template (a pickled exception is rebuilt from its args, here the message alone)
        return type(self), (self.template,)

    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n for _, n, _, _ in string.Formatter().parse(self.template) if n))

    def message(self, label: Callable[[str], str] = str) -> str:
        return self.template.format(**{n: label(n) for n in self.names()})


def literal(value: Any) -> str:
    """``repr(value)`` for a :class:`NamedError` template (its braces doubled)."""
    return repr(value).replace("{", "{{").replace("}", "}}")


def field_error(field: str, value: Any, allowed: str) -> MemdriftError:
    return MemdriftError(f"{field} = {value!r} is out of range; allowed: {allowed}")


def check_finite(field: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise field_error(field, value, "a finite number")
    return value


def check_range(field: str, value: float, low: float | None = None, high: float | None = None,
                *, low_open: bool = False, high_open: bool = False, unit: str = "") -> float:
    """Return ``value`` as float when inside the interval, else raise naming ``field``."""
    value = check_finite(field, value)
    lo_ok = low is None or (value > low if low_open else value >= low)
    hi_ok = high is None or (value < high if high_open else value <= high)
    if not (lo_ok and hi_ok):
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise field_error(field, value, f"{left}{lo}, {hi}{right}{' ' + unit if unit else ''}")
    return value


#: seeds feed numpy's SeedSequence and are stored as an unsigned 64-bit attribute
SEED_LIMIT = 2**64


def check_seed(field: str, value: Any) -> int:
    """Return ``value`` as int when it is an integer seed in [0, 2**64), else raise naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise MemdriftError(f"{field} = {value!r} has the wrong type; allowed: an integer in [0, 2**64)")
    if not 0 <= value < SEED_LIMIT:
        raise field_error(field, value, "an integer in [0, 2**64)")
    return int(value)


def check_memory(what: str, estimate_bytes: float, limit_bytes: float) -> None:
    """Refuse a request whose memory estimate is above the limit, naming both and the argument that raises
    the limit (``memory_limit_bytes``; a :class:`NamedError`, so a caller may word it as its own)."""
    if estimate_bytes > limit_bytes:
        what = what.replace("{", "{{").replace("}", "}}")
        raise NamedError(f"{what} needs about {estimate_bytes / 2**30:.3g} GiB of memory; allowed: at most "
                         f"{limit_bytes / 2**30:.3g} GiB (raise it with {{memory_limit_bytes}}, or ask for less)")
