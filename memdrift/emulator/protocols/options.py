"""The settings of every protocol (:class:`Options`), which protocol reads which, and their checks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from memdrift.emulator import engine
from memdrift.errors import MemdriftError, field_error


PROTOCOLS = ("pd-cycling", "dr-map", "ffp-segmentation", "retention", "iv", "endurance")
FILAMENT_PROTOCOLS = ("pd-cycling", "dr-map", "retention", "iv", "endurance")
#: protocol -> bulk4t_schemes scheme it delegates to
BULK4T_PROTOCOLS = {"dr-map": "dr-map", "ffp-segmentation": "ffp-segmentation", "retention": "retention"}

TEN_YEARS_S = 10 * 365.25 * 86400.0
DEFAULT_TEMPERATURES_K = (300.0, 325.0, 350.0)
DEFAULT_DR_AMPLITUDES_V = (0.7, 0.8, 0.9, 1.0, -0.7, -0.8, -0.9, -1.0)


@dataclass(frozen=True)
class Options:
    """Protocol settings (SI). ``None`` means the protocol's default."""

    devices: int = 16
    cycles: int | None = None
    seed: int = 0
    threads: int = 1
    noise: bool = True
    chunk_devices: int | None = None
    # retention
    temperatures_k: tuple[float, ...] | None = None
    time_min_s: float | None = None
    time_max_s: float | None = None
    times: int | None = None
    program_pulses: int | None = None
    # dr-map
    amplitudes_v: tuple[float, ...] | None = None
    pulses: int | None = None
    width_s: float | None = None
    # iv
    voltage_max_v: float | None = None
    steps: int | None = None
    dwell_s: float | None = None
    # endurance
    record: int | None = None
    # bulk ffp-segmentation
    levels: tuple[int, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


#: Options each protocol reads besides devices/seed/threads/noise/chunk_devices.
PROTOCOL_OPTIONS: dict[str, tuple[str, ...]] = {
    "pd-cycling": ("cycles",),
    "dr-map": ("amplitudes_v", "pulses", "width_s"),
    "ffp-segmentation": ("levels",),
    "retention": ("temperatures_k", "time_min_s", "time_max_s", "times", "program_pulses"),
    "iv": ("cycles", "voltage_max_v", "steps", "dwell_s"),
    "endurance": ("cycles", "record"),
}


#: the options only some protocols read, in the order of the fields (the first one set but unused is named)
PROTOCOL_SPECIFIC = tuple(f.name for f in fields(Options)
                          if f.name not in ("devices", "seed", "threads", "noise", "chunk_devices", "extra"))
#: options the bulk schemes have no use for, although the protocol of the same name has
BULK4T_UNUSED = {"program_pulses"}


class UnusedOption(MemdriftError):
    """An option set for a protocol that does not read it. :meth:`message` words it with every option
    named by ``label`` (the command line names its flags); the plain message names the fields."""

    def __init__(self, option: str, protocol: str, allowed: Sequence[str] | None = None, note: str = ""):
        self.option, self.protocol, self.note = option, protocol, note
        self.allowed = None if allowed is None else tuple(allowed)
        super().__init__(self.message())

    def __reduce__(self) -> tuple[Any, ...]:
        # rebuilt from its fields (a pickled exception is rebuilt from its args, here the message alone)
        return type(self), (self.option, self.protocol, self.allowed, self.note)

    def message(self, label: Callable[[str], str] = str) -> str:
        text = f"{label(self.option)} is not used by protocol {self.protocol!r}"
        if self.note:
            text += f" {self.note}"
        if self.allowed is not None:
            text += f"; allowed options: {', '.join(label(n) for n in self.allowed) or 'none'}"
        return text


def _check_options(protocol: str, opts: Options, allowed: Sequence[str], device: str) -> None:
    if protocol not in allowed:
        raise MemdriftError(f"protocol = {protocol!r} is not available for {device}; allowed: {', '.join(allowed)}")
    for name in PROTOCOL_SPECIFIC:
        if getattr(opts, name) is not None and name not in PROTOCOL_OPTIONS[protocol]:
            raise UnusedOption(name, protocol, allowed=PROTOCOL_OPTIONS[protocol])
    if not (isinstance(opts.devices, (int, np.integer)) and 1 <= opts.devices <= engine.MAX_DEVICES):
        raise field_error("devices", opts.devices, f"an integer in [1, {engine.MAX_DEVICES}]")
    if not (isinstance(opts.seed, (int, np.integer)) and opts.seed >= 0):
        raise field_error("seed", opts.seed, "an integer >= 0")
    if not (isinstance(opts.threads, (int, np.integer)) and 1 <= opts.threads <= 1024):
        raise field_error("threads", opts.threads, "an integer in [1, 1024]")
    if opts.chunk_devices is not None and not (isinstance(opts.chunk_devices, (int, np.integer))
                                               and opts.chunk_devices >= 1):
        raise field_error("chunk_devices", opts.chunk_devices, "an integer >= 1")


def _int_option(name: str, value: int | None, default: int, low: int, high: int) -> int:
    value = default if value is None else value
    if not (isinstance(value, (int, np.integer)) and low <= value <= high):
        raise field_error(name, value, f"an integer in [{low}, {high}]")
    return int(value)
