"""Typed, validated physics parameters and TOML presets.

Every parameter is an SI float whose name carries its unit; the field metadata
holds the unit, the allowed range and a one-line meaning, so validation errors
can name the field and the range, and dataset headers can carry the units.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import tomli_w

from memdrift.constants import BOLTZMANN_EV_PER_K as BOLTZMANN_EV
from memdrift.constants import BOLTZMANN_J_PER_K as BOLTZMANN_J
from memdrift.constants import ELEMENTARY_CHARGE_C as ELEMENTARY_CHARGE
from memdrift.errors import MemdriftError, check_range

PRESET_PACKAGE = "memdrift.data.presets"


def quantity(default: float, unit: str, low: float | None, high: float | None, meaning: str, *,
             low_open: bool = False) -> Any:
    return field(default=default, metadata={"unit": unit, "low": low, "high": high, "low_open": low_open,
                                            "meaning": meaning})


def option(default: Any, unit: str, meaning: str) -> Any:
    """A scheme option's field: its default, unit and meaning (checked by the scheme's own code)."""
    return field(default=default, metadata={"unit": unit, "meaning": meaning})


class ModelParams:
    """What the models' parameter dataclasses share: range checks from the field
    metadata, the device-to-device ``variation`` table, copies and the dict/TOML
    round trip. A model sets ``model`` and ``variable_fields`` (fields whose
    spread may be drawn) and calls :meth:`_validate` from ``__post_init__``."""

    model: ClassVar[str]
    variable_fields: ClassVar[frozenset[str]] = frozenset()

    def _validate(self) -> None:
        for f in fields(self):
            if f.name == "variation":
                continue
            meta = f.metadata
            check_range(f.name, getattr(self, f.name), meta["low"], meta["high"], low_open=meta["low_open"],
                        unit=meta["unit"])

    def physical_violations(self) -> list[str]:
        """Why these parameters lie outside the model's physical envelope (empty: inside).

        The field ranges bound what the numerics accept (a solver can be tested at
        V0 = 15 mV); the envelope bounds what a device can be. Presets, calibration
        and the CLI refuse parameters outside it (:func:`check_physical`)."""
        return []

    def _validate_variation(self) -> None:
        allowed = sorted(self.variable_fields)
        for name, spread in dict(self.variation).items():
            if name not in self.variable_fields:
                raise MemdriftError(f"variation.{name} is unknown; allowed keys: {', '.join(allowed)}")
            check_range(f"variation.{name}", spread, 0.0, 2.0, unit="(relative lognormal sigma)")
        object.__setattr__(self, "variation", {k: float(v) for k, v in dict(self.variation).items()})

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)

    def scalars(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self) if f.name != "variation"}

    def units(self) -> dict[str, str]:
        return {f.name: f.metadata["unit"] for f in fields(self) if f.name != "variation"}

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "parameters": self.scalars(), "variation": dict(self.variation)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        """Parameters from a preset's tables: every key known, every value a number (no booleans)."""
        model = data.get("model", cls.model)
        if model != cls.model:
            raise MemdriftError(f"model = {model!r} does not match; allowed: {cls.model!r}")
        known = {f.name for f in fields(cls)} - {"variation"}
        parameters = _number_table("parameters", data.get("parameters", {}), known)
        variation = _number_table("variation", data.get("variation", {}), set(cls.variable_fields))
        return cls(**parameters, variation=variation)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number_table(section: str, table: Any, known: set[str]) -> dict[str, float]:
    """A TOML table of numbers: unknown keys and non-numbers (booleans, strings, lists) refused by name."""
    if not isinstance(table, dict):
        raise MemdriftError(f"{section} = {table!r} has the wrong type; allowed: a table [{section}] of numbers")
    unknown = sorted(set(table) - known)
    if unknown:
        raise MemdriftError(f"{section}.{unknown[0]} is unknown; allowed keys: {', '.join(sorted(known))}")
    for key, value in table.items():
        if not _is_number(value):
            raise MemdriftError(f"{section}.{key} = {value!r} has the wrong type; allowed: a number")
    return {k: float(v) for k, v in table.items()}


@dataclass(frozen=True)
class FilamentParams(ModelParams):
    """Vacancy-drift filament cell (DESIGN.md, "Filament model").

    With ``site_population`` hops counted per step the cycle-to-cycle noise is an
    outcome of the physics; ``variation`` gives the relative (lognormal) device-to-
    device spread of any of the fields below, e.g. ``{"activation_energy_ev": 0.01}``.
    """

    model: ClassVar[str] = "filament"

    hop_distance_m: float = quantity(0.25e-9, "m", 0.0, 5e-9, "vacancy hop distance a", low_open=True)
    attempt_frequency_hz: float = quantity(1e10, "Hz", 0.0, 1e16, "attempt frequency nu0", low_open=True)
    activation_energy_ev: float = quantity(0.6, "eV", 0.0, 5.0, "hopping barrier Ea", low_open=True)
    charge_number: float = quantity(2.0, "1", 0.0, 4.0, "vacancy charge number z", low_open=True)
    oxide_thickness_m: float = quantity(5e-9, "m", 0.0, 1e-6, "switching layer thickness t_ox", low_open=True)
    field_enhancement: float = quantity(2.0, "1", 0.0, 100.0, "field enhancement gamma0", low_open=True)
    field_enhancement_slope: float = quantity(0.0, "1", 0.0, 100.0, "beta in gamma = gamma0 - beta (g/1 nm)^alpha")
    field_enhancement_power: float = quantity(3.0, "1", 0.0, 10.0, "alpha in gamma = gamma0 - beta (g/1 nm)^alpha")
    min_field_v_per_m: float = quantity(0.0, "V/m", 0.0, 1e11, "field below which ions do not drift (F_min)")
    site_population: float = quantity(1000.0, "1", 1.0, 1e12, "sites M whose hops are Poisson-counted")
    tunnel_current_a: float = quantity(1e-3, "A", 0.0, 1.0, "tunnelling prefactor I0", low_open=True)
    tunnel_length_m: float = quantity(0.25e-9, "m", 0.0, 1e-8, "tunnelling decay length g0", low_open=True)
    tunnel_voltage_v: float = quantity(0.25, "V", 0.0, 10.0, "tunnelling voltage scale V0", low_open=True)
    series_resistance_ohm: float = quantity(0.0, "ohm", 0.0, 1e9, "series resistance R_s")
    thermal_resistance_k_per_w: float = quantity(0.0, "K/W", 0.0, 1e9, "filament thermal resistance R_th")
    thermal_time_constant_s: float = quantity(0.0, "s", 0.0, 1e-3, "thermal time constant tau_th")
    ambient_temperature_k: float = quantity(300.0, "K", 1.0, 2000.0, "ambient temperature T0")
    gap_min_m: float = quantity(0.1e-9, "m", 0.0, 1e-7, "smallest gap g_min")
    gap_max_m: float = quantity(1.7e-9, "m", 0.0, 1e-7, "largest gap g_max", low_open=True)
    gap_initial_m: float = quantity(1.7e-9, "m", 0.0, 1e-7, "gap at the start of the first cycle")
    dissolution_frequency_hz: float = quantity(0.0, "Hz", 0.0, 1e20, "dissolution attempt frequency nu_r")
    dissolution_energy_ev: float = quantity(1.0, "eV", 0.0, 10.0, "dissolution barrier Ea_r", low_open=True)
    max_gap_step_m: float = quantity(0.02e-9, "m", 0.0, 1e-8, "largest expected gap change in one sub-step",
                                     low_open=True)
    max_substeps: float = quantity(4000.0, "1", 1.0, 1e7, "sub-steps per segment before the rest is one step")
    reset_field_enhancement_slope: float = quantity(
        0.0, "1", 0.0, 100.0, "beta_R: under RESET bias gamma = gamma0 + delta_R - (beta + beta_R) (g/1 nm)^alpha")
    reset_field_enhancement_offset: float = quantity(
        0.0, "1", -100.0, 100.0, "delta_R: under RESET bias gamma = gamma0 + delta_R - (beta + beta_R) (g/1 nm)^alpha")
    thermal_ceiling_k: float = quantity(
        3031.0, "K", 300.0, 1e4, "filament temperature that ends a pulse, flagged (HfO2 melts at 3,031 K)")
    max_temperature_step_k: float = quantity(
        10.0, "K", 0.0, 1e4, "largest filament temperature change in one sub-step", low_open=True)
    integration_tolerance: float = quantity(
        0.5, "1", 0.0, 16.0, "factor on max_gap_step_m and max_temperature_step_k: the sub-step bounds used",
        low_open=True)
    dissolution_barrier_slope_ev_per_m: float = quantity(
        0.0, "eV/m", 0.0, 1e11, "b: the dissolution barrier is Ea_r + b*delta, delta the gap relaxed by dissolution "
        "since the tip was last rebuilt by field-driven hops (0: constant-rate dissolution)")
    thermal_step_error_fraction: float = quantity(
        0.01, "1", 0.0, 1.0, "largest estimated gap error of a cooling sub-step from the rates' change with the "
        "relaxing temperature, as a fraction of max_gap_step_m (0: only the max_temperature_step_k bound)")
    reset_min_field_ratio: float = quantity(
        1.0, "1", 0.0, 10.0, "F_min under RESET bias over F_min: the field below which ions do not drift away from "
        "the tip (the two interfaces of an asymmetric cell need not share one threshold)")
    series_heat_share: float = quantity(
        0.0, "1", 0.0, 1.0, "share of the series resistance's Joule power I^2 R_s that heats the filament (the "
        "part of R_s in the filament's own body and the electrode constriction at its ends; 0: R_s is the line "
        "and the electrodes away from the cell)")
    variation: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._validate()
        if self.ambient_temperature_k >= self.thermal_ceiling_k:
            raise MemdriftError(f"thermal_ceiling_k = {self.thermal_ceiling_k!r} is out of range; allowed: > "
                                f"ambient_temperature_k ({self.ambient_temperature_k!r} K)")
        if self.gap_min_m > self.gap_max_m:
            raise MemdriftError(
                f"gap_min_m = {self.gap_min_m!r} is out of range; allowed: <= gap_max_m ({self.gap_max_m!r} m)")
        if not (self.gap_min_m <= self.gap_initial_m <= self.gap_max_m):
            raise MemdriftError(f"gap_initial_m = {self.gap_initial_m!r} is out of range; allowed: "
                                f"[{self.gap_min_m!r}, {self.gap_max_m!r}] m (gap_min_m..gap_max_m)")
        self._validate_variation()

    def max_field_enhancement(self) -> float:
        """The largest γ either polarity reaches over [g_min, g_max] (γ falls with the gap, so at g_min)."""
        g = (self.gap_min_m / 1e-9) ** self.field_enhancement_power
        set_gamma = self.field_enhancement - self.field_enhancement_slope * g
        reset_gamma = (self.field_enhancement + self.reset_field_enhancement_offset
                       - (self.field_enhancement_slope + self.reset_field_enhancement_slope) * g)
        return max(set_gamma, reset_gamma, 0.0)

    def physical_violations(self) -> list[str]:
        out = []
        for name, (low, high, why) in FILAMENT_ENVELOPE.items():
            value = getattr(self, name)
            if not low <= value <= high:
                unit = next(f.metadata["unit"] for f in fields(self) if f.name == name)
                out.append(f"{name} = {value!r} is outside the physical envelope; allowed: [{low:g}, {high:g}] "
                           f"{unit} ({why})")
        # A hop of length a in the field E gains z q E a, and the potential across one hop
        # cannot exceed the cell's: E a <= |V_cell|, i.e. gamma <= t_ox / a, so the barrier
        # lowering z q a E / 2 never exceeds half of z q |V_cell|.
        bound = self.oxide_thickness_m / self.hop_distance_m
        gamma = self.max_field_enhancement()
        if gamma > bound:
            out.append(f"field_enhancement = {self.field_enhancement!r} is outside the physical envelope: gamma "
                       f"reaches {gamma:.4g} at gap_min_m (with field_enhancement_slope, "
                       f"reset_field_enhancement_offset and reset_field_enhancement_slope); allowed: gamma(g) <= "
                       f"oxide_thickness_m / hop_distance_m = {bound:.4g} at every gap (the potential across one "
                       "hop cannot exceed the cell voltage)")
        return out


#: The filament's physical envelope: (low, high, reason) per field, beyond the numerical ranges.
FILAMENT_ENVELOPE: dict[str, tuple[float, float, str]] = {
    "tunnel_voltage_v": (0.1, 1.0, "tunnelling voltage scale of a sub-nm gap; fitted compact models give "
                                   "0.25-0.43 V, and below ~0.1 V the cell is a short at any write bias"),
    "tunnel_current_a": (1e-6, 0.1, "tunnelling prefactor of a nanometre filament (Stanford-PKU: 1 mA)"),
    "tunnel_length_m": (0.05e-9, 1e-9, "tunnelling decay length, a fraction of a nanometre"),
    "hop_distance_m": (0.1e-9, 1e-9, "vacancy hop distance, about one lattice spacing"),
    "attempt_frequency_hz": (1e10, 1e14, "attempt frequency, of the order of a phonon frequency"),
    "activation_energy_ev": (0.3, 2.5, "oxygen-vacancy migration barrier in transition-metal oxides"),
    "charge_number": (0.5, 2.0, "charge of an oxygen vacancy in units of q"),
    "oxide_thickness_m": (1e-9, 100e-9, "switching layer thickness"),
    "series_resistance_ohm": (0.0, 1e4, "access resistance of lines, contacts and the series layer"),
    "thermal_resistance_k_per_w": (0.0, 1e8, "thermal resistance of a nanometre filament, 1e5-1e7 K/W"),
    "thermal_time_constant_s": (0.0, 1e-6, "thermal time constant of a nanometre filament, ns"),
    "dissolution_energy_ev": (0.5, 3.0, "barrier of vacancy out-diffusion from the filament tip"),
    "gap_max_m": (0.0, 10e-9, "a tunnelling gap beyond ~10 nm conducts nothing"),
}


class PhysicalEnvelopeWarning(UserWarning):
    """A preset outside the physical envelope was loaded because its [calibration] says why."""


def check_physical(params: Any, source: str = "parameters") -> None:
    """Refuse parameters outside the model's physical envelope, naming the field and the range."""
    problems = params.physical_violations()
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise MemdriftError(f"{source}: {problems[0]}{more}")


# Fields whose device-to-device spread can be drawn (all strictly positive, so a
# lognormal draw keeps them physical).
VARIABLE_FIELDS = frozenset({
    "hop_distance_m", "attempt_frequency_hz", "activation_energy_ev", "oxide_thickness_m", "field_enhancement",
    "tunnel_current_a", "tunnel_length_m", "tunnel_voltage_v", "series_resistance_ohm",
    "thermal_resistance_k_per_w", "gap_initial_m", "dissolution_frequency_hz", "dissolution_energy_ev",
})
FilamentParams.variable_fields = VARIABLE_FIELDS

MODELS: dict[str, type] = {"filament": FilamentParams}
# Models defined in their own modules register themselves on import.
_MODEL_MODULES = {"bulk4t": "memdrift.emulator.bulk4t"}


@dataclass(frozen=True)
class Preset:
    """A named parameter set with its provenance, as stored in a TOML file."""

    name: str
    params: Any
    description: str = ""
    scheme: str = "ramp"
    calibration: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> str:
        return self.params.model

    def to_toml(self) -> str:
        body = {"name": self.name, "description": self.description, "scheme": self.scheme,
                **self.params.to_dict()}
        if self.calibration:
            body["calibration"] = self.calibration
        return tomli_w.dumps(body)


def register_model(name: str, params_type: type) -> None:
    """Let another model (e.g. the bulk four-terminal film) share the preset machinery."""
    MODELS[name] = params_type


def unregister_model(name: str) -> None:
    MODELS.pop(name, None)


#: the top-level keys of a preset TOML, with the type each must have
PRESET_KEYS: dict[str, type] = {"name": str, "description": str, "scheme": str, "model": str,
                                "parameters": dict, "variation": dict, "calibration": dict}
_TYPE_WORDS = {str: "a string", dict: "a table"}


def preset_from_toml(text: str, source: str = "<string>", *, envelope: bool = True) -> Preset:
    """Parse a preset strictly: known keys of their declared types, ``model`` and ``[parameters]`` present,
    and (``envelope``) the parameters inside the model's physical envelope."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MemdriftError(f"{source}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - set(PRESET_KEYS))
    if unknown:
        raise MemdriftError(f"{source}: {unknown[0]} is unknown; allowed keys: {', '.join(PRESET_KEYS)}")
    for key, kind in PRESET_KEYS.items():
        if key in data and not isinstance(data[key], kind):
            raise MemdriftError(f"{source}: {key} = {data[key]!r} has the wrong type; allowed: {_TYPE_WORDS[kind]}")
    model = data.get("model")
    if model is None:
        raise MemdriftError(f"{source}: model is missing; allowed: model = one of "
                            f"{', '.join(sorted({*MODELS, *_MODEL_MODULES}))}")
    if model not in MODELS and model in _MODEL_MODULES:
        import importlib

        importlib.import_module(_MODEL_MODULES[model])
    if model not in MODELS:
        raise MemdriftError(f"{source}: model = {model!r} is unknown; allowed: {', '.join(sorted(MODELS))}")
    if "parameters" not in data:
        # a preset is a complete device: silently running on the defaults would hide a truncated file
        raise MemdriftError(f"{source}: the [parameters] table is missing; allowed: a preset with [parameters] "
                            f"giving the {model} fields (see `memdrift presets` and memdrift/data/presets/)")
    try:
        params = MODELS[model].from_dict(data)
    except MemdriftError as exc:
        raise MemdriftError(f"{source}: {exc}") from None
    except TypeError as exc:  # a model's own constructor refusing a combination
        raise MemdriftError(f"{source}: {exc}") from None
    calibration = dict(data.get("calibration", {}))
    if envelope:
        exception = calibration.get("envelope_exception")
        if isinstance(exception, str) and exception.strip() and params.physical_violations():
            # a preset that says why it lies outside is loaded, and flagged every time it is
            import warnings

            warnings.warn(f"{source}: {params.physical_violations()[0]}; the preset says why: {exception}",
                          PhysicalEnvelopeWarning, stacklevel=2)
        else:
            check_physical(params, source)
    return Preset(name=data.get("name", Path(source).stem), params=params,
                  description=data.get("description", ""), scheme=data.get("scheme", "ramp"),
                  calibration=calibration)


def list_presets() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(PRESET_PACKAGE).iterdir() if p.name.endswith(".toml"))


def load_preset(name_or_path: str | os.PathLike[str], *, envelope: bool = True) -> Preset:
    """A shipped preset by name, or any preset TOML file by path; ``envelope=False`` lets a preset outside
    the physical envelope load (the start of a calibration, nothing that simulates)."""
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.exists():
        if not path.is_file():
            raise MemdriftError(f"preset = {str(path)!r} is not a file; allowed: a shipped preset name or the path "
                                "of a preset .toml file")
        from memdrift.data.io import read_text_file

        text = read_text_file(path, f"preset = {str(path)!r}", "a TOML file, which is UTF-8")
        return preset_from_toml(text, str(path), envelope=envelope)
    shipped = list_presets()
    if str(name_or_path) not in shipped:
        raise MemdriftError(f"preset = {str(name_or_path)!r} is unknown; allowed: {', '.join(shipped)} "
                            "or the path of a preset .toml file")
    text = resources.files(PRESET_PACKAGE).joinpath(f"{name_or_path}.toml").read_text()
    return preset_from_toml(text, f"{name_or_path}.toml", envelope=envelope)


def save_preset(preset: Preset, path: str | os.PathLike[str]) -> None:
    from memdrift.data.io import atomic_write_text

    atomic_write_text(Path(path), preset.to_toml())


def thermal_voltage_ev(temperature_k: float) -> float:
    """kT in eV."""
    return BOLTZMANN_EV * temperature_k


assert math.isclose(BOLTZMANN_J / ELEMENTARY_CHARGE, BOLTZMANN_EV, rel_tol=1e-9)
