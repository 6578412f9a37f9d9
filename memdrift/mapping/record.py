"""The extraction record (``DEVICE.json``) as a typed dataclass: one field per key, its unit and meaning
in the field's metadata, one loader.

:class:`DeviceRecord` is what :func:`memdrift.mapping.extract.extract_record` returns, what
:func:`load_record` reads and :func:`save_record` writes, and what the aihwkit bridge and the
``evaluate`` / ``export`` commands take. It is also a mapping of the keys it holds
(``record["states"]``, ``record["notes"] = ...``), so code written against the JSON dict reads
and edits it unchanged; a key it does not know is refused.

The JSON is the format: ``to_json`` writes the keys in the order the record was built with (an
extracted record puts the required keys first; a merged one ends with ``sources`` and ``source``),
so a record read and written again is the same bytes. An optional key the producer did not write
stays absent (it is not written as null): absent and null say different things (not applicable to
this record vs. not measurable from this dataset, with the reason in ``notes``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from memdrift.errors import MemdriftError

SCHEMA = "memdrift-extraction/1"


class _Absent:
    """An optional key the record does not hold (not written to the JSON)."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"



ABSENT: Any = _Absent()


def _key(unit: str, doc: str, *, required: bool = False) -> Any:
    """A record field: None by default when ``required`` (the key is always written), else absent."""
    meta = {"unit": unit, "meaning": doc, "required": required}
    return field(default=None if required else ABSENT, metadata=meta)


@dataclass(eq=False)
class DeviceRecord(MutableMapping[str, Any]):
    """One device's extraction record; every quantity SI, nested per-branch / per-level tables as JSON
    objects. ``metadata["unit"]`` of each field is the unit of its numbers ("1": counts and ratios,
    "": text or mixed; nested units are listed in ``units``)."""

    # the keys every record holds (values may be null, with the reason in notes)
    states: int | None = _key("1", "states in the linear range, fewer of the two branches", required=True)
    bin_width: float | None = _key("S", "mean of the two branches' bin widths", required=True)
    state_sigma: float | None = _key("S", "mean cycle-to-cycle sigma over every state of both branches",
                                     required=True)
    differential_bins: int | None = _key("1", "reliable G+ - G- bins (BW > 2 sigma), fewer of the two branches",
                                         required=True)
    linear_r2: dict[str, float | None] | None = _key("1", "per branch: R^2 of the linear-range fit", required=True)
    nu: dict[str, Any] | None = _key("1", "per level count n: nonlinearity nu of each branch (eqns 2-3), its "
                                          "spread, processes, end-matched value", required=True)
    pearson: float | None = _key("1", "mean cycle-to-cycle Pearson correlation (eqn 1), both branches",
                                 required=True)
    program_error_t: Any = _key("S", "per level count n: the worse branch's Student-t program error per level "
                                     "{conductance, loc, scale, df, branch}", required=True)
    skipped_levels: dict[str, Any] | None = _key("1", "per level count n: levels skipped per branch at CPD 80 %",
                                                 required=True)
    drift: dict[str, Any] | None = _key("", "{nu, nu_stderr, nu_std, nu_r2, activation_energy_eV (eV), "
                                            "reference_temperature_K (K), ...}", required=True)
    energy_per_pulse: float | None = _key("J", "mean programming pulse energy", required=True)
    g_min: float | None = _key("S", "lowest conductance of the ensemble-mean cycle", required=True)
    g_max: float | None = _key("S", "highest conductance of the ensemble-mean cycle", required=True)
    notes: list[str] | None = _key("", "why any field is null; for several datasets, which file gave what",
                                   required=True)
    # keys some records hold
    schema: str = _key("", f"the record's format ({SCHEMA})")
    units: dict[str, str] = _key("", "units of the record's quantities, by key")
    levels: list[int] = _key("1", "level counts n of nu, skipped_levels and program_error_t")
    source: dict[str, Any] | None = _key("", "attributes of the dataset it was extracted from")
    branches: dict[str, Any] | None = _key("", "per-branch details (states, sigma, means, bins, ...)")
    linear_fit: dict[str, Any] | None = _key("", "per branch: slope (S/pulse), intercept (S), their standard "
                                                  "errors, R^2, range")
    symmetry: float | None = _key("1", "|slope_d| / |slope_p|")
    pearson_branch: dict[str, float | None] | None = _key("1", "Pearson correlation per branch")
    program_error_t_branch: dict[str, Any] | None = _key("S", "program error tables of both branches")
    delta_g: dict[str, Any] | None = _key("S", "per branch: dG-vs-G nodes {conductance, mean, std, count}")
    device_to_device: dict[str, Any] | None = _key("1", "relative spread of slopes and of g_min / g_max")
    pulse_table: dict[str, Any] | None = _key("", "amplitude_v (V), width_s (s), branch per pulse")
    pulse_width: float | None = _key("s", "mean programming pulse width")
    read_time: float | None = _key("s", "read duration")
    energy_per_cycle: dict[str, float | None] | None = _key("J", "energy of a cycle {mean, std}")
    energy_per_pulse_branch: dict[str, float | None] | None = _key("J", "mean pulse energy per branch")
    write_verify: dict[str, Any] | None = _key("", "write-verify datasets: per-level cost and success")
    sources: list[dict[str, Any]] | None = _key("", "several datasets: per file its name, what it provided and "
                                                    "its attributes")
    #: the order the keys were given in, kept so that the JSON written is the JSON read
    _order: tuple[str, ...] = field(default=(), repr=False, metadata={"internal": True})

    # ----------------------------------------------------------------- mapping view

    def __getitem__(self, key: str) -> Any:
        if key not in KEYS:
            raise KeyError(key)
        value = getattr(self, key)
        if value is ABSENT:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        present = [k for k in KEYS if getattr(self, k) is not ABSENT]
        order = [k for k in self._order if k in present]
        return iter(order + [k for k in present if k not in order])

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in KEYS:
            raise MemdriftError(f"record key {key!r} is unknown; allowed: {', '.join(sorted(KEYS))}")
        setattr(self, key, value)

    def __delitem__(self, key: str) -> None:
        self[key]  # noqa: B018  (KeyError for a key not held)
        if key in REQUIRED_KEYS:
            raise MemdriftError(f"record key {key!r} is required; allowed: set it to None (null) instead")
        setattr(self, key, ABSENT)

    def __len__(self) -> int:
        return sum(getattr(self, k) is not ABSENT for k in KEYS)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self) == dict(other)
        return NotImplemented

    def __hash__(self) -> int:
        return id(self)

    # ----------------------------------------------------------------- construction and JSON

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "record") -> DeviceRecord:
        """The record of ``data``; refuses a key it does not know and a required key it lacks, naming it
        (values are checked by :meth:`validate`)."""
        if not isinstance(data, Mapping):
            raise MemdriftError(f"{source} is a {type(data).__name__}; allowed: a JSON object (extraction record)")
        for key in REQUIRED_KEYS:
            if key not in data:
                raise MemdriftError(f"{source} has no key {key!r}; allowed: an extraction record with "
                                    f"{', '.join(REQUIRED_KEYS)}")
        unknown = sorted(set(data) - set(KEYS))
        if unknown:
            raise MemdriftError(f"{source}: key {unknown[0]!r} is unknown; allowed: {', '.join(sorted(KEYS))}")
        return cls(**dict(data), _order=tuple(data))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: the keys held, in the record's order, values as JSON has them (NaN -> null)."""
        return {k: jsonable(self[k]) for k in self}

    def to_json(self) -> str:
        """The JSON text :func:`save_record` writes (without its final newline)."""
        self.validate()
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    @classmethod
    def from_json(cls, text: str, *, source: str = "record") -> DeviceRecord:
        """Parse and check a record's JSON text (:meth:`from_dict`, then :meth:`validate`)."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise MemdriftError(f"{source} is not valid JSON ({exc})") from None
        return cls.from_dict(data, source=source).validate(source=source)

    def validate(self, *, source: str = "record") -> DeviceRecord:
        """Check the values: counts are integers, scalars finite numbers or null, nested tables objects of
        numbers; raises naming the first field at fault."""
        validate_values(self, source)
        return self


#: every key a record may hold, in field order
KEYS = tuple(f.name for f in fields(DeviceRecord) if not f.metadata.get("internal"))
#: keys every record holds (values may be null)
REQUIRED_KEYS = tuple(f.name for f in fields(DeviceRecord) if f.metadata.get("required"))
#: keys a record may hold besides REQUIRED_KEYS (what extract_record writes on some paths)
OPTIONAL_KEYS = tuple(k for k in KEYS if k not in REQUIRED_KEYS)
#: required objects and the keys they must hold
REQUIRED_NESTED = {"linear_r2": ("potentiation", "depression"), "drift": ("nu", "activation_energy_eV")}
#: the unit of each field's numbers (":class:`DeviceRecord`" metadata)
FIELD_UNITS = {f.name: f.metadata["unit"] for f in fields(DeviceRecord) if not f.metadata.get("internal")}


def finite_float(x: Any) -> float | None:
    """``x`` as a float, or None when it is None or not finite (JSON has no NaN)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def jsonable(obj: Any) -> Any:
    """``obj`` as JSON values: NumPy scalars and arrays to numbers and lists, NaN/inf to null."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return finite_float(obj)
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def validate_values(record: Mapping[str, Any], source: str) -> None:
    for key, inner in REQUIRED_NESTED.items():
        value = record[key]
        if not isinstance(value, Mapping):
            raise MemdriftError(f"{source}: {key!r} is {value!r}; allowed: an object with {', '.join(inner)}")
        for sub in inner:
            if sub not in value:
                raise MemdriftError(f"{source} has no key '{key}.{sub}'; allowed: {key} with {', '.join(inner)}")
    for key in ("states", "differential_bins"):
        v = record[key]
        if v is not None and (not isinstance(v, (int, np.integer)) or isinstance(v, (bool, np.bool_)) or v < 0):
            raise MemdriftError(f"{source}: {key!r} = {v!r} is out of range; allowed: an integer >= 0 or null")
    for key in ("bin_width", "state_sigma", "energy_per_pulse", "g_min", "g_max", "pearson"):
        v = record[key]
        if v is not None and not _number(v):
            raise MemdriftError(f"{source}: {key!r} = {v!r} is out of range; allowed: a finite number or null")
    for key in ("symmetry", "pulse_width", "read_time"):
        _check_leaves(source, key, record.get(key), 0)
    for key, value in record["linear_r2"].items():
        _check_leaves(source, f"linear_r2.{key}", value, 0)
    for key, value in record["drift"].items():
        if key == "per_temperature":
            # one row of fit results per bake temperature
            if not isinstance(value, list):
                raise MemdriftError(f"{source}: 'drift.per_temperature' = {value!r} has the wrong type; "
                                    "allowed: a list of objects")
            for i, row in enumerate(value):
                _check_leaves(source, f"drift.per_temperature[{i}]", row, 1)
        elif key.endswith("_method"):
            if not isinstance(value, str):
                raise MemdriftError(f"{source}: 'drift.{key}' = {value!r} has the wrong type; allowed: a string")
        else:
            # a number, or an object of numbers for a fit kept aside (``nu_fit``)
            _check_leaves(source, f"drift.{key}", value, 1 if isinstance(value, Mapping) else 0)
    # per level count n: {"p": nu, "d": nu, ...} and {"potentiation": count, ...}
    _check_leaves(source, "nu", record["nu"], 2)
    _check_leaves(source, "skipped_levels", record["skipped_levels"], 2)
    notes = record["notes"]
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise MemdriftError(f"{source}: 'notes' = {notes!r} has the wrong type; allowed: a list of strings")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) \
        and math.isfinite(v)


def _check_leaves(source: str, where: str, value: Any, depth: int) -> None:
    """``value`` is null, a finite number, or (``depth`` > 0) an object of such values ``depth`` levels deep."""
    if value is None or value is ABSENT:
        return
    if depth > 0:
        if not isinstance(value, Mapping):
            raise MemdriftError(f"{source}: {where!r} = {value!r} has the wrong type; allowed: an object or null")
        for key, inner in value.items():
            _check_leaves(source, f"{where}.{key}", inner, depth - 1)
        return
    if not _number(value):
        raise MemdriftError(f"{source}: {where!r} = {value!r} has the wrong type; allowed: a finite number or null")


def as_record(record: Mapping[str, Any], *, source: str = "record") -> DeviceRecord:
    """``record`` as a :class:`DeviceRecord` (a plain dict is converted, keys checked)."""
    return record if isinstance(record, DeviceRecord) else DeviceRecord.from_dict(record, source=source)


def save_record(record: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``record`` (a :class:`DeviceRecord`, or a dict of its keys) as JSON atomically."""
    from memdrift.data.io import atomic_write_text

    atomic_write_text(path, as_record(record).to_json() + "\n")
    return Path(path)


def load_record(path: str | os.PathLike[str]) -> DeviceRecord:
    """Read and check an extraction record written by :func:`save_record` (or by hand): memdrift's one
    record loader."""
    from memdrift.data.io import read_text_file

    p = Path(path)
    source = f"record file {str(p)!r}"
    if not p.exists():
        raise MemdriftError(f"{source} does not exist")
    return DeviceRecord.from_json(read_text_file(p, source, "a JSON file, which is UTF-8"), source=source)
