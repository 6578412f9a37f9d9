"""The settings of the protocols: one frozen dataclass per protocol and model, its fields' defaults, units
and ranges declared once in their metadata and checked in one place (:func:`_validate`), and the
:class:`Options` bag that older callers pass, converted to the protocol's class by :func:`protocol_options`.

Filament protocols take :class:`PdCyclingOptions`, :class:`DrMapOptions`, :class:`RetentionOptions`,
:class:`IvOptions` and :class:`EnduranceOptions`; the bulk four-terminal film's take
:class:`FilmDrMapOptions`, :class:`FilmSegmentationOptions` and :class:`FilmRetentionOptions`, whose
unset fields leave the film scheme's own settings. ``dataclasses.fields(cls)`` lists a class's
settings with ``unit``, ``meaning``, ``low``/``high`` in each field's metadata.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from memdrift.emulator import engine
from memdrift.emulator.pulses import POTENTIATION, from_name
from memdrift.errors import MemdriftError, check_range, field_error


PROTOCOLS = ("pd-cycling", "dr-map", "ffp-segmentation", "retention", "iv", "endurance")
FILAMENT_PROTOCOLS = ("pd-cycling", "dr-map", "retention", "iv", "endurance")
#: protocol -> bulk4t_schemes scheme it delegates to
BULK4T_PROTOCOLS = {"dr-map": "dr-map", "ffp-segmentation": "ffp-segmentation", "retention": "retention"}

TEN_YEARS_S = 10 * 365.25 * 86400.0
DEFAULT_TEMPERATURES_K = (300.0, 325.0, 350.0)
DEFAULT_DR_AMPLITUDES_V = (0.7, 0.8, 0.9, 1.0, -0.7, -0.8, -0.9, -1.0)
#: potentiation pulses of the 20 + 20 ramp every filament protocol programs with
RAMP_POTENTIATION_PULSES = sum(b == POTENTIATION for b in from_name("ramp").branch)


def setting(default: Any, unit: str, meaning: str, *, kind: Any = float, low: float | str | None = None,
            high: float | None = None, low_open: bool = False, optional: bool = False, noun: str = "",
            nonzero: bool = False, fallback: float | None = None, by_scheme: bool = False,
            choices: tuple[str, ...] = ()) -> Any:
    """A protocol setting's field. ``kind``: ``int``, ``float``, ``bool``, ``str`` (one of ``choices``),
    ``tuple`` (of floats, each in the range; ``noun`` words one for an empty tuple, ``nonzero`` refuses 0)
    or ``object`` (a conduction law: a function, its ``"path.py:function"`` text, or None; compiled and
    checked when the protocol runs); ``low`` may name another field whose value is an open lower bound;
    ``optional``: ``None`` is allowed and left unchecked (with ``fallback``, the value a bound on it reads
    then); ``by_scheme``: checked by the scheme it is passed to."""
    return field(default=default, metadata={
        "unit": unit, "meaning": meaning, "kind": kind, "low": low, "high": high, "low_open": low_open,
        "optional": optional, "noun": noun, "nonzero": nonzero, "fallback": fallback, "by_scheme": by_scheme,
        "choices": choices})


def _integer(name: str, value: Any, low: int, high: int | None) -> int:
    if not (isinstance(value, (int, np.integer)) and low <= value and (high is None or value <= high)):
        raise field_error(name, value, f"an integer in [{low}, {high}]" if high is not None
                          else f"an integer >= {low}")
    return int(value)


def _validate(obj: Any) -> None:
    """Check every setting of ``obj`` against its field's metadata, in field order, storing ints as ints
    and floats as floats; the first bad one raises naming the field and its allowed range."""
    meta = {f.name: f.metadata for f in fields(obj)}
    for name, m in meta.items():
        value = getattr(obj, name)
        if "kind" not in m or m["by_scheme"] or m["kind"] is bool or (value is None and m["optional"]):
            continue
        low, unit = m["low"], m["unit"]
        if m["kind"] is int:
            value = _integer(name, value, low, m["high"])
        elif m["kind"] is str:
            if value not in m["choices"]:
                raise field_error(name, value, ", ".join(repr(c) for c in m["choices"]))
        elif m["kind"] is object:
            _check_law_setting(name, value)
        elif m["kind"] is float:
            if isinstance(low, str):
                bound = getattr(obj, low)
                bound = meta[low]["fallback"] if bound is None else bound
                low, unit = bound, f"{unit} (> {m['low']} = {bound:g})"
            value = check_range(name, value, low, m["high"], low_open=m["low_open"], unit=unit)
        else:
            items = tuple(value)
            if not items:
                raise MemdriftError(f"{name} is empty; allowed: at least one {m['noun']} ({unit})")
            for i, item in enumerate(items):
                check_range(f"{name}[{i}]", item, low, m["high"], unit=unit)
                if m["nonzero"] and item == 0:
                    raise field_error(f"{name}[{i}]", item,
                                      f"a non-zero {m['noun'].split()[-1]} in [{low:g}, {m['high']:g}] {unit}")
            value = tuple(float(item) for item in items)
        object.__setattr__(obj, name, value)


def _check_law_setting(name: str, value: Any) -> None:
    from memdrift.emulator.conduction import CompiledConduction

    if not (value is None or isinstance(value, (str, os.PathLike, CompiledConduction)) or callable(value)):
        raise MemdriftError(f"{name} = {value!r} has the wrong type; allowed: None (the built-in sinh law), a "
                            "function law(cell_v, gap_m, i0_a, g0_m, v0_v) -> current_a, or its "
                            "'path/to/file.py:function' text")


def _backend_setting() -> Any:
    return setting("compiled", "1", "the compiled kernel or its NumPy twin ('reference', which a conduction law "
                   "needs; it computes the ensemble whole)", kind=str, choices=("compiled", "reference"))


def _conduction_setting() -> Any:
    return setting(None, "1", "a conduction law of your own in place of the built-in sinh law (None), on the "
                   "reference backend (memdrift.emulator.conduction)", kind=object)


@dataclass(frozen=True)
class ProtocolOptions:
    """What every protocol's settings share: the ensemble, its seed, threads and noise."""

    #: the protocol these settings are for
    protocol: ClassVar[str]

    devices: int = setting(16, "1", "ensemble size", kind=int, low=1, high=engine.MAX_DEVICES)
    seed: int = setting(0, "1", "random seed (each device's stream derives from it)", kind=int, low=0)
    threads: int = setting(1, "1", "compute threads (results do not depend on them)", kind=int, low=1, high=1024)
    noise: bool = setting(True, "1", "Poisson hop counts; False: their expected values", kind=bool)

    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def specific(cls) -> tuple[str, ...]:
        """The settings of this protocol beyond the shared ones, in field order."""
        return tuple(f.name for f in fields(cls) if f.name not in COMMON)


@dataclass(frozen=True)
class FilamentOptions(ProtocolOptions):
    """What the filament protocols share: their device chunks."""

    chunk_devices: int | None = setting(None, "1", "devices computed at a time (None: chunks of about 64 MiB)",
                                        kind=int, low=1, optional=True)


@dataclass(frozen=True)
class PdCyclingOptions(FilamentOptions):
    """``pd-cycling``: the 20 + 20 ramp repeated."""

    protocol: ClassVar[str] = "pd-cycling"
    cycles: int = setting(100, "1", "ramp cycles", kind=int, low=1, high=10**7)
    backend: str = _backend_setting()
    conduction: Any = _conduction_setting()


@dataclass(frozen=True)
class DrMapOptions(FilamentOptions):
    """``dr-map``: a family of identical pulses per signed amplitude, each after a reset."""

    protocol: ClassVar[str] = "dr-map"
    amplitudes_v: tuple[float, ...] = setting(DEFAULT_DR_AMPLITUDES_V, "V", "signed amplitude of each family",
                                              kind=tuple, low=-10.0, high=10.0, noun="signed amplitude",
                                              nonzero=True)
    pulses: int = setting(20, "1", "pulses per family", kind=int, low=1, high=100_000)
    width_s: float = setting(200e-9, "s", "pulse width", low=0.0, high=1.0, low_open=True)
    backend: str = _backend_setting()
    conduction: Any = _conduction_setting()


@dataclass(frozen=True)
class RetentionOptions(FilamentOptions):
    """``retention``: programmed by ramp pulses, then a zero-bias bake per temperature, read at log-spaced
    times."""

    protocol: ClassVar[str] = "retention"
    temperatures_k: tuple[float, ...] = setting(DEFAULT_TEMPERATURES_K, "K", "bake (ambient) temperatures",
                                                kind=tuple, low=1.0, high=2000.0, noun="temperature")
    time_min_s: float = setting(1.0, "s", "first read after programming", low=1e-4)
    time_max_s: float = setting(TEN_YEARS_S, "s", "last read", low="time_min_s", low_open=True)
    times: int = setting(41, "1", "log-spaced reads", kind=int, low=2, high=100_000)
    program_pulses: int = setting(max(1, RAMP_POTENTIATION_PULSES // 2), "1",
                                  "ramp potentiation pulses that program the state (half the branch)",
                                  kind=int, low=0, high=RAMP_POTENTIATION_PULSES)


@dataclass(frozen=True)
class IvOptions(FilamentOptions):
    """``iv``: quasi-static triangular loops 0 -> +V -> -V -> 0."""

    protocol: ClassVar[str] = "iv"
    cycles: int = setting(1, "1", "loops", kind=int, low=1, high=100_000)
    voltage_max_v: float = setting(1.0, "V", "loop amplitude", low=0.0, high=10.0, low_open=True)
    steps: int = setting(25, "1", "voltage steps from 0 to voltage_max_v", kind=int, low=2, high=100_000)
    dwell_s: float = setting(1e-3, "s", "time per voltage step", low=0.0, high=100.0, low_open=True)
    backend: str = _backend_setting()
    conduction: Any = _conduction_setting()


@dataclass(frozen=True)
class EnduranceOptions(FilamentOptions):
    """``endurance``: ramp cycles run, kept at log-spaced cycles only."""

    protocol: ClassVar[str] = "endurance"
    cycles: int = setting(10_000, "1", "ramp cycles run", kind=int, low=1, high=10**9)
    record: int = setting(50, "1", "log-spaced cycles kept in the dataset", kind=int, low=1, high=100_000)


@dataclass(frozen=True)
class FilmOptions(ProtocolOptions):
    """What the film's protocols share: options of :func:`memdrift.emulator.bulk4t_schemes.simulate_scheme`
    passed as they are (``grid``, ``conditioning_cycles``, ...; that function checks them)."""

    scheme_options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FilmDrMapOptions(FilmOptions):
    """``dr-map`` on the film: the film scheme's map; unset fields keep its own settings."""

    protocol: ClassVar[str] = "dr-map"
    amplitudes_v: tuple[float, ...] | None = setting(None, "V", "family amplitudes; each magnitude is run in "
                                                     "both polarities, once", kind=tuple, by_scheme=True)
    pulses: int | None = setting(None, "1", "pulses per family", kind=int, by_scheme=True)
    width_s: float | None = setting(None, "s", "pulse width", by_scheme=True)


@dataclass(frozen=True)
class FilmSegmentationOptions(FilmOptions):
    """``ffp-segmentation`` on the film."""

    protocol: ClassVar[str] = "ffp-segmentation"
    levels: tuple[int, ...] | None = setting(None, "1", "level counts (None: the scheme's 32, 128, 512)",
                                             kind=tuple, by_scheme=True)


@dataclass(frozen=True)
class FilmRetentionOptions(FilmOptions):
    """``retention`` on the film (initialised to LRS by +6 V, not programmed by pulses). Without time
    settings the scheme's own reads (1 s ... 1e5 s) are kept: the film's zero-bias relaxation costs minutes
    per device and temperature to reach 10 years; with any, the reads are log-spaced from ``time_min_s``
    (1 s unset) to ``time_max_s`` (10 years unset), ``times`` of them (21 unset)."""

    protocol: ClassVar[str] = "retention"
    temperatures_k: tuple[float, ...] | None = setting(None, "K", "bake temperatures (None: the scheme's)",
                                                       kind=tuple, by_scheme=True)
    time_min_s: float | None = setting(None, "s", "first read", low=1e-4, optional=True, fallback=1.0)
    time_max_s: float | None = setting(None, "s", "last read", low="time_min_s", low_open=True, optional=True,
                                       fallback=TEN_YEARS_S)
    times: int | None = setting(None, "1", "log-spaced reads", kind=int, low=2, high=100_000, optional=True,
                                fallback=21)

    def __post_init__(self) -> None:
        super().__post_init__()
        reads = self._reads()
        if reads is not None and None in (self.time_min_s, self.time_max_s, self.times):
            # the unset ones take their fallback, and the reads they make are checked whole
            FilmRetentionOptions(time_min_s=reads[0], time_max_s=reads[1], times=int(reads[2]))

    def _reads(self) -> tuple[float, float, float] | None:
        """(first, last, count) of the reads, the unset ones at their fallback; None: the scheme's own."""
        names = ("time_min_s", "time_max_s", "times")
        if all(getattr(self, n) is None for n in names):
            return None
        fallback = {f.name: f.metadata["fallback"] for f in fields(self) if f.name in names}
        t_min, t_max, n = (fallback[n] if getattr(self, n) is None else getattr(self, n) for n in names)
        return t_min, t_max, n

    def times_s(self) -> np.ndarray | None:
        """The read times, or None for the scheme's own."""
        reads = self._reads()
        if reads is None:
            return None
        t_min, t_max, n = reads
        return np.logspace(np.log10(t_min), np.log10(t_max), int(n))


#: the settings every protocol shares (the rest are the protocol's own)
COMMON = ("devices", "seed", "threads", "noise", "chunk_devices", "scheme_options")

#: each model's protocols and their settings
FILAMENT_OPTIONS: dict[str, type[FilamentOptions]] = {
    c.protocol: c for c in (PdCyclingOptions, DrMapOptions, RetentionOptions, IvOptions, EnduranceOptions)}
FILM_OPTIONS: dict[str, type[FilmOptions]] = {
    c.protocol: c for c in (FilmDrMapOptions, FilmSegmentationOptions, FilmRetentionOptions)}
#: settings the film's protocol does not read although the filament's protocol of the same name does
BULK4T_UNUSED = {"program_pulses": "on a bulk4t preset (the film is initialised to LRS by +6 V)"}


@dataclass(frozen=True)
class Options:
    """Every protocol's settings in one bag (SI); ``None`` means the protocol's default. A protocol takes
    the fields its own class has (:data:`PROTOCOL_OPTIONS`) and refuses the others that are set
    (:class:`UnusedOption`); ``extra`` goes to the film's scheme."""

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
    # pd-cycling, dr-map, iv
    backend: str | None = None
    conduction: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def _union(*names: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for group in names for n in group))


#: the settings each protocol reads on some model, besides the shared ones
PROTOCOL_OPTIONS: dict[str, tuple[str, ...]] = {
    p: _union(*(table[p].specific() for table in (FILAMENT_OPTIONS, FILM_OPTIONS) if p in table))
    for p in PROTOCOLS}

#: the options only some protocols read, in the order of the fields (the first one set but unused is named)
PROTOCOL_SPECIFIC = tuple(f.name for f in fields(Options) if f.name not in COMMON + ("extra",))


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


def check_protocol(protocol: str, allowed: Sequence[str], device: str) -> None:
    if protocol not in allowed:
        raise MemdriftError(f"protocol = {protocol!r} is not available for {device}; allowed: {', '.join(allowed)}")


def build_options(cls: type[ProtocolOptions], settings: Mapping[str, Any]) -> ProtocolOptions:
    """``cls`` made from ``settings`` (field -> value; ``None`` leaves the default), refusing a set
    protocol setting that ``cls`` does not have with :class:`UnusedOption` (the shared settings first
    in the order of :data:`PROTOCOL_SPECIFIC`)."""
    protocol = cls.protocol
    own = {f.name for f in fields(cls)}
    given = {k: v for k, v in settings.items() if v is not None}
    for name in PROTOCOL_SPECIFIC:
        if name in given and name not in PROTOCOL_OPTIONS[protocol]:
            raise UnusedOption(name, protocol, allowed=PROTOCOL_OPTIONS[protocol])
    for name in given:
        if name not in own and name != "chunk_devices":
            # a setting of this protocol on the other model, or no setting at all
            if name in BULK4T_UNUSED:
                raise UnusedOption(name, protocol, note=BULK4T_UNUSED[name])
            raise UnusedOption(name, protocol, allowed=cls.specific())
    if "chunk_devices" in given and "chunk_devices" not in own:
        # checked, though the film is computed whole in memory and has no chunks
        _integer("chunk_devices", given.pop("chunk_devices"), 1, None)
    return cls(**{k: v for k, v in given.items() if k in own})


def protocol_options(cls: type[ProtocolOptions], options: Options | ProtocolOptions | None) -> ProtocolOptions:
    """``options`` as an instance of ``cls``: an instance already, the defaults for ``None``, or an
    :class:`Options` bag converted by :func:`build_options` (its ``extra`` as the film's scheme options)."""
    if options is None:
        return cls()
    if isinstance(options, cls):
        return options
    if isinstance(options, Options):
        settings = {f.name: getattr(options, f.name) for f in fields(Options) if f.name != "extra"}
        if options.extra:
            if "scheme_options" not in {f.name for f in fields(cls)}:
                raise MemdriftError(f"option {sorted(options.extra)[0]!r} is unknown for filament protocols; "
                                    "allowed: the fields of Options")
            settings["scheme_options"] = dict(options.extra)
        return build_options(cls, settings)
    raise MemdriftError(f"options = {options!r} are not for protocol {cls.protocol!r} on this preset; allowed: "
                        f"{cls.__name__}, Options or None")

