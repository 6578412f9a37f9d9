"""Extraction record → IBM aihwkit configurations (the only module importing aihwkit).

The record is the plain dict of the DESIGN contract (``memdrift extract``), all SI.
Keys read here:

required
    ``g_min``, ``g_max`` (S): the programmable conductance window of one device;
    ``states``: levels per device (quantisation for inference);
    ``program_error_t``: Student-t program error per level, either a list of
    ``{loc, scale, df}`` (optionally with ``conductance`` in S, the level target;
    otherwise levels are taken evenly spaced from ``g_min`` to ``g_max``), a dict of
    lists ``{loc: [...], scale: [...], df: [...]}``, or either of those keyed by the
    level count (``{"32": [...], "128": [...]}``) — loc and scale in S.

optional (a default with a stated reason where absent)
    ``drift`` ``{nu, activation_energy_eV[, nu_std, reference_temperature_K]}``: power
    law ``G(t) = G(t0) (t/t0)^-nu`` after programming (no drift when absent);
    ``delta_g`` ``{potentiation|depression: {conductance, mean, std}}`` (S): the
    conductance change of one pulse vs the conductance before it, mean and
    cycle-to-cycle std (the training device; a linear device from ``bin_width`` and
    ``state_sigma`` when absent); ``bin_width``, ``state_sigma`` (S);
    ``energy_per_pulse`` (J), ``pulse_width`` (s), ``read_time`` (s): programming cost.

aihwkit works in µS for conductances, so values cross the boundary multiplied by 1e6.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from aihwkit.inference.compensation.drift import GlobalDriftCompensation
from aihwkit.inference.converter.base import BaseConductanceConverter
from aihwkit.inference.noise.base import BaseNoiseModel
from aihwkit.simulator.configs import (
    InferenceRPUConfig,
    PiecewiseStepDevice,
    SingleRPUConfig,
    TorchInferenceRPUConfig,
)
from aihwkit.simulator.parameters.enums import WeightClipType, WeightModifierType

from memdrift.constants import BOLTZMANN_EV_PER_K
from memdrift.constants import PROGRAMMING_BRANCHES as BRANCHES
from memdrift.errors import MemdriftError, check_range, field_error
from memdrift.mapping.tiles import resolve_tile

MICRO = 1e6
#: aihwkit's convention: drift is referenced to 20 s after programming ends.
DRIFT_T0_S = 20.0
#: Paper baseline (HfOxSy/HfS2 MNIST/CIFAR studies): 30 % device-to-device variation,
#: taken from ALD HfO2 and hBN arrays because one device cannot measure it.
DEFAULT_DTOD = 0.30


# --------------------------------------------------------------------------- record access

def _require(record: Mapping[str, Any], key: str) -> Any:
    if key not in record or record[key] is None:
        raise MemdriftError(f"extraction record has no {key!r}; required keys: g_min, g_max, states, "
                            "program_error_t")
    return record[key]


def conductance_window(record: Mapping[str, Any]) -> tuple[float, float]:
    """(g_min, g_max) in S, checked: 0 <= g_min < g_max."""
    g_min = check_range("g_min", _require(record, "g_min"), 0.0, 1.0, unit="S")
    g_max = check_range("g_max", _require(record, "g_max"), 0.0, 1.0, low_open=True, unit="S")
    if not g_min < g_max:
        raise field_error("g_max", g_max, f"> g_min = {g_min:g} S")
    return g_min, g_max


def level_count(record: Mapping[str, Any]) -> int:
    states = check_range("states", _require(record, "states"), 2, 1 << 16)
    if states != int(states):
        raise field_error("states", states, "an integer in [2, 65536]")
    return int(states)


@dataclass(frozen=True)
class ProgramErrorTable:
    """Student-t program error (in S) per level, levels at ``position`` in [0, 1] of the window."""

    position: np.ndarray
    loc: np.ndarray
    scale: np.ndarray
    df: np.ndarray

    def resample(self, levels: int) -> ProgramErrorTable:
        """Table for ``levels`` evenly spaced levels, interpolated over the window position.

        A record holds the errors of the level count it was extracted at; another
        count (a bits sweep) takes the error of the nearest measured conductances.
        """
        pos = np.linspace(0.0, 1.0, levels)
        return ProgramErrorTable(pos, *(np.interp(pos, self.position, v) for v in (self.loc, self.scale, self.df)))


def _rows_from(entry: Any, where: str) -> list[dict[str, float]]:
    if isinstance(entry, Mapping) and all(k in entry for k in ("loc", "scale", "df")):
        loc, scale, df = (np.atleast_1d(np.asarray(entry[k], dtype=float)) for k in ("loc", "scale", "df"))
        if not (loc.shape == scale.shape == df.shape):
            raise MemdriftError(f"{where}: loc, scale and df must have the same length "
                                f"(got {loc.size}, {scale.size}, {df.size})")
        cond = entry.get("conductance")
        rows = [{"loc": a, "scale": b, "df": c} for a, b, c in zip(loc, scale, df)]
        if cond is not None:
            for row, g in zip(rows, np.atleast_1d(np.asarray(cond, dtype=float))):
                row["conductance"] = g
        return rows
    if isinstance(entry, Sequence) and not isinstance(entry, str):
        rows = []
        for i, row in enumerate(entry):
            if not isinstance(row, Mapping) or not all(k in row for k in ("loc", "scale", "df")):
                raise MemdriftError(f"{where}[{i}] must be a mapping with loc, scale, df; got {row!r}")
            rows.append(dict(row))
        return rows
    raise MemdriftError(f"{where} must be a list of {{loc, scale, df}} or a mapping of lists; got {type(entry).__name__}")


def program_error_table(record: Mapping[str, Any], levels: int | None = None) -> ProgramErrorTable:
    """The record's per-level Student-t program error, validated, as a table over window position.

    ``levels`` picks the entry for that level count when the record keys tables by
    count (the nearest count otherwise).
    """
    g_min, g_max = conductance_window(record)
    entry = _require(record, "program_error_t")
    where = "program_error_t"
    if isinstance(entry, Mapping) and entry and all(str(k).lstrip("n").isdigit() for k in entry):
        counts = {int(str(k).lstrip("n")): k for k in entry}
        want = levels if levels is not None else level_count(record)
        best = min(counts, key=lambda c: (abs(math.log2(c) - math.log2(max(want, 1))), c))
        entry, where = entry[counts[best]], f"program_error_t[{counts[best]!r}]"
    rows = _rows_from(entry, where)
    if not rows:
        raise MemdriftError(f"{where} is empty; need at least one level")
    for i, row in enumerate(rows):
        check_range(f"{where}[{i}].loc", row["loc"], -(g_max - g_min), g_max - g_min, unit="S")
        check_range(f"{where}[{i}].scale", row["scale"], 0.0, g_max - g_min, unit="S")
        check_range(f"{where}[{i}].df", row["df"], 0.0, 1e9, low_open=True)
    if all("conductance" in r for r in rows):
        pos = np.array([(float(r["conductance"]) - g_min) / (g_max - g_min) for r in rows])
    else:
        pos = np.linspace(0.0, 1.0, len(rows)) if len(rows) > 1 else np.array([0.5])
    order = np.argsort(pos)
    pick = lambda k: np.array([float(rows[i][k]) for i in order])  # noqa: E731
    return ProgramErrorTable(pos[order], pick("loc"), pick("scale"), pick("df"))


def drift_parameters(record: Mapping[str, Any]) -> tuple[float, float, float, float]:
    """(nu, nu_std, activation_energy_eV, reference_temperature_K); zeros when the record has no drift."""
    drift = record.get("drift") or {}
    if not isinstance(drift, Mapping):
        raise MemdriftError(f"drift must be a mapping {{nu, activation_energy_eV}}; got {drift!r}")
    nu = check_range("drift.nu", drift.get("nu", 0.0) or 0.0, -1.0, 1.0)
    nu_std = check_range("drift.nu_std", drift.get("nu_std", 0.0) or 0.0, 0.0, 1.0)
    ea = check_range("drift.activation_energy_eV", drift.get("activation_energy_eV", 0.0) or 0.0, 0.0, 5.0,
                     unit="eV")
    t_ref = check_range("drift.reference_temperature_K", drift.get("reference_temperature_K", 300.0),
                        1.0, 2000.0, unit="K")
    return nu, nu_std, ea, t_ref


# --------------------------------------------------------------------------- inference

class _FixedRangeConverter(BaseConductanceConverter):
    """A converter with one fixed weight range ``[-w_range, w_range]`` for every tile (µS window).

    aihwkit's single-pair converter rescales every tile to its own largest weight
    (what the bits study's default ``"tile"`` range amounts to); a study over a fixed
    range (``--weight-range 4``: the TiO2-x paper's [-4, 4] read literally) needs the
    same scale for every tile. Weights outside the range are clipped, as
    a device cannot go past its window.
    """

    def __init__(self, g_min: float, g_max: float, w_range: float):
        self.g_min, self.g_max, self.w_range = float(g_min), float(g_max), float(w_range)

    def __str__(self) -> str:
        return f"{type(self).__name__}(g_min={self.g_min:g}, g_max={self.g_max:g}, w_range={self.w_range:g})"


class FixedRangePairConverter(_FixedRangeConverter):
    """Differential pair mapping ``[-w_range, w_range]`` to ``[g_min, g_max]`` on either device."""

    @torch.no_grad()
    def convert_to_conductances(self, weights: torch.Tensor) -> tuple[list[torch.Tensor], dict]:
        ratio = (self.g_max - self.g_min) / self.w_range
        scaled = weights.clamp(-self.w_range, self.w_range) * ratio
        return [scaled.clamp(min=0.0) + self.g_min, (-scaled).clamp(min=0.0) + self.g_min], {"scale_ratio": ratio}

    @torch.no_grad()
    def convert_back_to_weights(self, conductances: list[torch.Tensor], params: dict) -> torch.Tensor:
        return (conductances[0] - conductances[1]) / params["scale_ratio"]


class StudentTProgramNoise(BaseNoiseModel):
    """Quantisation to the device's n levels + per-level Student-t program error + power-law drift.

    aihwkit ships only Gaussian programming noise; measured program errors of
    filament and bulk cells have heavier tails (TiO2-x paper, eqns 4-5), which a
    Gaussian of the same scale under-counts. Programming: each target conductance
    goes to the nearest of ``levels`` evenly spaced levels in [g_min, g_max], then
    ``G = G_level + loc_k + scale_k · T(df_k)``, with a per-device scale of the window
    ``(1 + dtod · N(0, 1))`` for device-to-device variation of the reachable range.
    Drift: ``G(t) = G_prog (t_eff / t0)^-nu`` with per-device ``nu ~ N(nu, nu_std)``
    and ``t_eff = t · exp(Ea/k (1/T_ref − 1/T))`` (Arrhenius acceleration).
    All conductances in µS (aihwkit's unit).

    Fields (as ``PCMLikeNoiseModel`` documents its own), with the record key each comes from:

    ==========================  ======  ===============================================================
    field                       unit    meaning (record key)
    ==========================  ======  ===============================================================
    ``g_min``, ``g_max``        µS      programmable window of one device (``g_min``, ``g_max``)
    ``levels``                  1       evenly spaced levels a device is programmed to (``states``,
                                        or the level count asked for)
    ``loc``                     µS      per level (tensor, length ``levels``): mean of G reached − G
                                        aimed at (``program_error_t[].loc``)
    ``scale``                   µS      per level: Student-t scale of that error
                                        (``program_error_t[].scale``)
    ``df``                      1       per level: Student-t degrees of freedom; small df = heavy
                                        tails, df → ∞ a Gaussian of σ = scale (``program_error_t[].df``)
    ``nu``, ``nu_std``          1       drift exponent and its device-to-device σ (``drift.nu``,
                                        ``drift.nu_std``); ``G(t) = G_prog (t/t0)^-nu``, t0 = 20 s
    ``activation_energy_ev``    eV      Arrhenius energy of the drift (``drift.activation_energy_eV``)
    ``reference_temperature_k`` K       temperature ``nu`` was measured at
                                        (``drift.reference_temperature_K``)
    ``temperature_k``           K       operating temperature (argument)
    ``dtod``                    1       relative device-to-device σ of the window (argument)
    ``program_error``           bool    False: quantisation only (argument)
    ``clip_to_window``          bool    one device per weight: programmed G held in [g_min, g_max]
    ``g_converter``             —       weights ↔ conductances (aihwkit's single pair by default)
    ==========================  ======  ===============================================================
    """

    def __init__(self, g_min_us: float, g_max_us: float, levels: int, table: ProgramErrorTable, *,
                 nu: float = 0.0, nu_std: float = 0.0, activation_energy_ev: float = 0.0,
                 reference_temperature_k: float = 300.0, temperature_k: float = 300.0, dtod: float = 0.0,
                 g_converter: BaseConductanceConverter | None = None, program_error: bool = True,
                 clip_to_window: bool = False):
        from aihwkit.inference.converter.conductance import SinglePairConductanceConverter

        super().__init__(g_converter or SinglePairConductanceConverter(g_max=g_max_us, g_min=g_min_us))
        self.g_min, self.g_max, self.levels = float(g_min_us), float(g_max_us), int(levels)
        table = table.resample(self.levels)
        # per-level parameters in µS, as torch tensors indexed by level number
        self.loc = torch.tensor(table.loc * MICRO, dtype=torch.float32)
        self.scale = torch.tensor(table.scale * MICRO, dtype=torch.float32)
        self.df = torch.tensor(table.df, dtype=torch.float32)
        self.nu, self.nu_std = float(nu), float(nu_std)
        self.activation_energy_ev = float(activation_energy_ev)
        self.reference_temperature_k, self.temperature_k = float(reference_temperature_k), float(temperature_k)
        self.dtod = float(dtod)
        self.program_error = bool(program_error)
        self.clip_to_window = bool(clip_to_window)

    def __eq__(self, other: object) -> bool:  # tensors make the base __eq__ ambiguous
        return self is other

    __hash__ = object.__hash__

    def level_index(self, g: torch.Tensor) -> torch.Tensor:
        step = (self.g_max - self.g_min) / (self.levels - 1)
        return torch.round((g - self.g_min) / step).clamp(0, self.levels - 1).long()

    def quantise(self, g: torch.Tensor) -> torch.Tensor:
        step = (self.g_max - self.g_min) / (self.levels - 1)
        return self.g_min + self.level_index(g).to(g.dtype) * step

    @torch.no_grad()
    def apply_programming_noise_to_conductance(self, g_target: torch.Tensor) -> torch.Tensor:
        k = self.level_index(g_target)
        g = self.quantise(g_target)
        if self.program_error:
            df = self.df.to(g.device)[k]
            t = torch.distributions.StudentT(df).sample()
            g = g + self.loc.to(g.device)[k] + self.scale.to(g.device)[k] * t
        if self.dtod > 0:
            g = self.g_min + (g - self.g_min) * (1.0 + self.dtod * torch.randn_like(g))
        if self.clip_to_window:
            # one device against a reference: the window's ends are the weight range's ends, and the
            # device holds nothing past its HRS/LRS (a fitted df < 1 would otherwise throw a weight
            # arbitrarily far: one programming of the tio2x record at 9 bits lost 2.6 % accuracy to it)
            return g.clamp(self.g_min, self.g_max)
        # a conductance cannot be negative; the tails above g_max are real overshoot
        return g.clamp(min=0.0)

    @torch.no_grad()
    def generate_drift_coefficients(self, g_target: torch.Tensor) -> torch.Tensor:
        nu = torch.full_like(g_target, self.nu)
        if self.nu_std > 0:
            nu = nu + self.nu_std * torch.randn_like(g_target)
        return nu

    def effective_time(self, t_inference: float) -> float:
        if self.activation_energy_ev == 0.0:
            return t_inference
        accel = math.exp(self.activation_energy_ev / BOLTZMANN_EV_PER_K
                         * (1.0 / self.reference_temperature_k - 1.0 / self.temperature_k))
        return t_inference * accel

    @torch.no_grad()
    def apply_drift_noise_to_conductance(self, g_prog: torch.Tensor, drift_noise_param: torch.Tensor | None,
                                         t_inference: float) -> torch.Tensor:
        t = self.effective_time(float(t_inference))
        if drift_noise_param is None or t <= DRIFT_T0_S:
            return g_prog
        # drift is of the conductance above the window floor (the vacancy-controlled part)
        factor = (t / DRIFT_T0_S) ** (-drift_noise_param)
        return (self.g_min + (g_prog - self.g_min) * factor).clamp(min=0.0)


class FixedRangeSingleConverter(_FixedRangeConverter):
    """One device per weight: ``[-w_range, w_range]`` spans the whole window ``[g_min, g_max]``.

    The TiO2-x paper's weight transfer maps HRS…LRS of one device onto [−4, 4]
    with the n levels uniform over that range. Zero weight is the middle of the
    window, subtracted in the periphery as a reference current (a constant, not a
    programmed device). With an even level count zero is not a level, so small
    weights land half a step either side of it — which is why a 3-bit transfer
    can still classify.
    """

    @torch.no_grad()
    def convert_to_conductances(self, weights: torch.Tensor) -> tuple[list[torch.Tensor], dict]:
        ratio = (self.g_max - self.g_min) / (2.0 * self.w_range)
        g = (weights.clamp(-self.w_range, self.w_range) + self.w_range) * ratio + self.g_min
        return [g], {"scale_ratio": ratio, "g_zero": 0.5 * (self.g_min + self.g_max)}

    @torch.no_grad()
    def convert_back_to_weights(self, conductances: list[torch.Tensor], params: dict) -> torch.Tensor:
        return (conductances[0] - params["g_zero"]) / params["scale_ratio"]


#: How a fixed weight range is put on devices: a differential pair, or one device and a reference.
WEIGHT_MAPPINGS = ("pair", "single")


def noise_model(record: Mapping[str, Any], *, levels: int | None = None, dtod: float = 0.0,
                w_range: float | None = None, temperature_k: float = 300.0, drift: bool = True,
                program_error: bool = True, mapping: str = "pair") -> StudentTProgramNoise:
    """The inference noise model of ``record`` (levels per device default: ``record['states']``).

    ``w_range`` fixes the weight range for every tile; ``mapping`` then says whether a
    weight is a differential pair (``pair``) or one device against a reference
    (``single``, the TiO2-x paper's weight transfer).
    """
    g_min, g_max = conductance_window(record)
    n = level_count(record) if levels is None else int(check_range("levels", levels, 2, 1 << 16))
    dtod = check_range("dtod", dtod, 0.0, 1.0)
    nu, nu_std, ea, t_ref = drift_parameters(record) if drift else (0.0, 0.0, 0.0, 300.0)
    if mapping not in WEIGHT_MAPPINGS:
        raise MemdriftError(f"mapping = {mapping!r} is unknown; allowed: {', '.join(WEIGHT_MAPPINGS)}")
    converter = None
    if w_range is not None:
        kind = FixedRangePairConverter if mapping == "pair" else FixedRangeSingleConverter
        converter = kind(g_min * MICRO, g_max * MICRO, check_range("w_range", w_range, 0.0, 1e6, low_open=True))
    elif mapping == "single":
        raise MemdriftError("mapping = 'single' needs w_range; allowed: a weight range > 0 (e.g. 4.0)")
    return StudentTProgramNoise(g_min * MICRO, g_max * MICRO, n, program_error_table(record, n), nu=nu,
                                nu_std=nu_std, activation_energy_ev=ea, reference_temperature_k=t_ref,
                                temperature_k=check_range("temperature_k", temperature_k, 1.0, 2000.0),
                                dtod=dtod, g_converter=converter, program_error=program_error,
                                clip_to_window=mapping == "single")


def relative_program_noise(record: Mapping[str, Any]) -> float:
    """Program error of one device as a fraction of its conductance window (RMS over the levels).

    Each level's error counts as the Gaussian σ with the same central 68.3 %
    interval: ``scale · t_df.ppf(Φ(1))`` (σ itself for a Gaussian, 1.31 scale at
    df = 2), with the level's bias ``loc`` added in quadrature. Not the Student-t
    variance ``scale² df/(df − 2)``: fitted df of the tail levels come out near 2,
    where that variance diverges (one level at df = 2.002 made it 10 % of the window
    on the record of an earlier hfoxsy-hfs2 calibration, ≈ 4.5× the
    spread of the conductances it describes), and HWAT with that much noise lost
    accuracy it should have gained.
    """
    from scipy import stats

    g_min, g_max = conductance_window(record)
    tab = program_error_table(record)
    half_width = tab.scale * stats.t.ppf(stats.norm.cdf(1.0), np.maximum(tab.df, 1e-3))
    return float(np.sqrt(np.mean(half_width**2 + tab.loc**2)) / (g_max - g_min))


def on_torch_tile(config: InferenceRPUConfig) -> TorchInferenceRPUConfig:
    """The same inference configuration on aihwkit's torch tile (reproducible for a torch seed)."""
    import dataclasses

    out = TorchInferenceRPUConfig()
    for f in dataclasses.fields(config):
        if f.name not in ("tile_class", "tile_array_class", "simulator_tile_class", "runtime"):
            setattr(out, f.name, copy.deepcopy(getattr(config, f.name)))
    return out


def inference_config(record: Mapping[str, Any], *, levels: int | None = None, dtod: float = 0.0,
                     w_range: float | str | None = None, adc_bits: int = 8, dac_bits: int = 8,
                     ir_drop: float = 0.0,
                     drift_compensation: bool = True, hwat_noise: float | None = None,
                     temperature_k: float = 300.0, drift: bool = True, program_error: bool = True,
                     mapping: str = "pair", tile: str = "cpp") -> InferenceRPUConfig:
    """``InferenceRPUConfig`` for inference (and hardware-aware training) on the record's device.

    8-bit DAC/ADC (the paper's converters), optional IR drop (``ir_drop`` is
    aihwkit's wire-resistance scale; it makes each forward ~8x slower), global drift
    compensation, weights mapped to the device range per column, and a Gaussian
    weight-noise modifier for HWAT whose std is the weight's relative program
    error (:func:`relative_program_noise` of each device of the mapping;
    ``hwat_noise`` overrides, 0 disables). ``tile`` (:data:`memdrift.mapping.tiles.TILES`) picks the
    simulator tile; ``torch`` and ``auto`` return a ``TorchInferenceRPUConfig``
    (a subclass) where IR drop is off.
    """
    for name, bits in (("adc_bits", adc_bits), ("dac_bits", dac_bits)):
        check_range(name, bits, 1, 24)
    check_range("ir_drop", ir_drop, 0.0, 1e3)
    tile = resolve_tile(tile, ir_drop)
    per_tile = isinstance(w_range, str)
    if per_tile and w_range != "tile":
        raise MemdriftError(f"w_range = {w_range!r} is unknown; allowed: a weight range > 0, 'tile' or None")
    cfg = InferenceRPUConfig()
    cfg.noise_model = noise_model(record, levels=levels, dtod=dtod, w_range=1.0 if per_tile else w_range,
                                  temperature_k=temperature_k,
                                  drift=drift, program_error=program_error, mapping=mapping)
    cfg.drift_compensation = GlobalDriftCompensation() if drift_compensation else None
    # converters as in the paper; the rest of the periphery (bounds, output read
    # noise, noise and bound management) keeps aihwkit's inference defaults
    cfg.forward.inp_res = 1.0 / (2**dac_bits - 2)
    cfg.forward.out_res = 1.0 / (2**adc_bits - 2)
    if ir_drop > 0:
        cfg.forward.ir_drop = float(ir_drop)
    if per_tile:
        # each tile's largest |w| maps to the window's end (aihwkit's weight scaling, the scale restored
        # digitally at the tile's output); the converter then sees [-1, 1]
        cfg.mapping.weight_scaling_omega = 1.0
        cfg.mapping.weight_scaling_columnwise = False
        cfg.clip.type = WeightClipType.FIXED_VALUE
        cfg.clip.fixed_value = 1.0
    elif w_range is not None:
        # fixed range: the weights live in [-w_range, w_range] during HWAT too
        cfg.clip.type = WeightClipType.FIXED_VALUE
        cfg.clip.fixed_value = float(w_range)
        cfg.mapping.weight_scaling_omega = 0.0
    else:
        # each column's largest weight maps to g_max (aihwkit's weight range mapping)
        cfg.mapping.weight_scaling_omega = 1.0
        cfg.mapping.weight_scaling_columnwise = True
        cfg.clip.type = WeightClipType.FIXED_VALUE
        cfg.clip.fixed_value = 1.0
    if hwat_noise is None:
        # a weight's error relative to its largest value: a pair maps that value to g_max - g_min on
        # one device and both devices carry independent error (√2); one device against a reference
        # spans [-w_range, w_range] with the whole window (2×)
        std = relative_program_noise(record) * (math.sqrt(2.0) if mapping == "pair" else 2.0)
    else:
        std = check_range("hwat_noise", hwat_noise, 0.0, 1.0)
    if std > 0:
        cfg.modifier.type = WeightModifierType.ADD_NORMAL
        cfg.modifier.std_dev = float(std)
        cfg.modifier.rel_to_actual_wmax = True
    return on_torch_tile(cfg) if tile == "torch" else cfg


# --------------------------------------------------------------------------- training device

def _linear_steps(record: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """ΔG nodes of a linear device: one bin width a pulse, cycle-to-cycle std = state σ."""
    g_min, g_max = conductance_window(record)
    n = level_count(record)
    step = float(record.get("bin_width") or (g_max - g_min) / (n - 1))
    sigma = float(record.get("state_sigma") or 0.0)
    g = np.linspace(g_min, g_max, n)
    return {b: {"conductance": g, "mean": np.full(n, step), "std": np.full(n, sigma)} for b in BRANCHES}


def step_nodes(record: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """Validated ΔG-vs-G nodes per branch (S); magnitudes, sorted by conductance."""
    raw = record.get("delta_g")
    if raw is None:
        return _linear_steps(record)
    out = {}
    for branch in BRANCHES:
        if branch not in raw:
            raise MemdriftError(f"delta_g has no {branch!r} branch; need both of {BRANCHES}")
        node = raw[branch]
        try:
            g, mean = (np.asarray(node[k], dtype=float) for k in ("conductance", "mean"))
            std = np.asarray(node.get("std", np.zeros_like(g)), dtype=float)
        except (KeyError, TypeError, ValueError) as exc:
            raise MemdriftError(f"delta_g.{branch} must hold arrays conductance, mean[, std] ({exc})") from None
        if g.ndim != 1 or g.size < 2 or mean.shape != g.shape or std.shape != g.shape:
            raise MemdriftError(f"delta_g.{branch}: conductance, mean and std must be 1-D of one length >= 2 "
                                f"(got {g.shape}, {mean.shape}, {std.shape})")
        if not (np.all(np.isfinite(g)) and np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
            raise field_error(f"delta_g.{branch}", "non-finite values", "finite numbers")
        order = np.argsort(g)
        out[branch] = {"conductance": g[order], "mean": np.abs(mean[order]), "std": np.abs(std[order])}
    return out


def training_device(record: Mapping[str, Any], *, nodes: int = 16, dtod: float = DEFAULT_DTOD) -> PiecewiseStepDevice:
    """A ``PiecewiseStepDevice`` whose up/down step sizes follow the record's ΔG(G).

    The device spans weights [-1, 1] for [g_min, g_max]; one pulse moves a weight
    by ``2 ΔG / (g_max − g_min)``. ``piecewise_up/down`` are the steps at ``nodes``
    evenly spaced conductances relative to their mean step; cycle-to-cycle spread is
    the mean relative std of ΔG; ``dtod`` is the device-to-device spread of the
    step size, bounds and up/down asymmetry.
    """
    g_min, g_max = conductance_window(record)
    check_range("nodes", nodes, 2, 1000)
    dtod = check_range("dtod", dtod, 0.0, 1.0)
    steps = step_nodes(record)
    grid = np.linspace(g_min, g_max, int(nodes))
    up = np.interp(grid, steps["potentiation"]["conductance"], steps["potentiation"]["mean"])
    down = np.interp(grid, steps["depression"]["conductance"], steps["depression"]["mean"])
    mean_step = 0.5 * (up.mean() + down.mean())
    if not mean_step > 0:
        raise field_error("delta_g.mean", 0.0, "a positive mean conductance step")
    c2c = []
    for b in BRANCHES:
        m, s = steps[b]["mean"], steps[b]["std"]
        ok = m > 0
        c2c.append(float(np.mean(s[ok] / m[ok])) if ok.any() else 0.0)
    dw_min = 2.0 * mean_step / (g_max - g_min)
    return PiecewiseStepDevice(
        w_min=-1.0, w_max=1.0, w_min_dtod=dtod / 3.0, w_max_dtod=dtod / 3.0,
        dw_min=float(dw_min), dw_min_dtod=dtod, dw_min_std=float(np.mean(c2c)),
        up_down=float((up.mean() - down.mean()) / mean_step / 2.0), up_down_dtod=dtod / 3.0,
        piecewise_up=[float(v) for v in up / mean_step],
        piecewise_down=[float(v) for v in down / mean_step],
    )


def training_config(record: Mapping[str, Any], *, dtod: float = DEFAULT_DTOD, dac_bits: int = 8,
                    adc_bits: int = 8) -> SingleRPUConfig:
    """``SingleRPUConfig`` for in-memory training (AnalogSGD) on the record's pulsed device."""
    cfg = SingleRPUConfig(device=training_device(record, dtod=dtod))
    cfg.forward.inp_res = 1.0 / (2**dac_bits - 2)
    cfg.forward.out_res = 1.0 / (2**adc_bits - 2)
    return cfg


# --------------------------------------------------------------------------- programming cost

def programming_cost(record: Mapping[str, Any], weights: Sequence[np.ndarray] | np.ndarray, *,
                     verify_reads: int = 1) -> dict[str, float]:
    """Pulses, energy (J) and time (s) to program ``weights`` onto differential pairs from reset.

    Each weight maps (largest |w| of its array → g_max) onto one device of the pair,
    programmed from g_min by potentiation pulses of the record's mean ΔG at that
    conductance (a write-verify record programmed lowest level first: the pulses it
    measured, summed up to the level), with ``verify_reads`` reads after each pulse. Time is serial (one
    device at a time) and row-parallel (all devices of one array row pulsed
    together, the row taking its slowest device). aihwkit has no such estimate.
    """
    g_min, g_max = conductance_window(record)
    e_pulse = check_range("energy_per_pulse", _require(record, "energy_per_pulse"), 0.0, 1.0, unit="J")
    width = record.get("pulse_width")
    read = record.get("read_time", 0.0) or 0.0
    grid = np.linspace(g_min, g_max, 513)
    wv = record.get("write_verify")
    if isinstance(wv, Mapping) and wv.get("ascending_from_reset"):
        # a write-verify record programmed its levels lowest first from reset: the pulses it took to reach
        # each level, summed, are measured costs of reaching that level from reset
        levels_g = np.asarray(wv["target"], dtype=float)
        pulses_to = np.interp(grid, levels_g, np.cumsum(np.asarray(wv["pulses"], dtype=float)))
    else:
        steps = step_nodes(record)["potentiation"]
        dg = np.maximum(np.interp(grid, steps["conductance"], steps["mean"]), 1e-30)
        # cumulative pulses to climb from g_min to each grid conductance
        pulses_to = np.concatenate([[0.0], np.cumsum(np.diff(grid) / dg[:-1])])
    arrays = [weights] if isinstance(weights, np.ndarray) else list(weights)
    total, serial_rows, n_weights = 0.0, 0.0, 0
    for w in arrays:
        w = np.asarray(w, dtype=float).reshape(w.shape[0], -1) if np.ndim(w) > 1 else np.atleast_2d(w)
        wmax = max(float(np.abs(w).max()), 1e-30)
        g = g_min + np.abs(w) / wmax * (g_max - g_min)
        # rounding first: a climb of exactly k bins sums to k ± 1 ulp, which must not cost a (k+1)-th pulse
        p = np.ceil(np.round(np.interp(g, grid, pulses_to), 9))
        total += float(p.sum())
        serial_rows += float(p.max(axis=1).sum())
        n_weights += w.size
    out = {"weights": float(n_weights), "devices": 2.0 * n_weights, "pulses": total,
           "energy_J": total * e_pulse, "pulses_per_weight": total / max(n_weights, 1)}
    if width is not None:
        t_op = check_range("pulse_width", width, 0.0, 1e3, low_open=True, unit="s") + verify_reads * float(read)
        out["time_serial_s"] = total * t_op
        out["time_row_parallel_s"] = serial_rows * t_op
    return out


def describe(record: Mapping[str, Any]) -> dict[str, Any]:
    """A summary of what the bridge will use (for result attributes)."""
    g_min, g_max = conductance_window(record)
    nu, nu_std, ea, t_ref = drift_parameters(record)
    tab = program_error_table(record)
    return {"g_min_S": g_min, "g_max_S": g_max, "states": level_count(record),
            "program_error_scale_mean_S": float(tab.scale.mean()), "program_error_df_mean": float(tab.df.mean()),
            "relative_program_noise": relative_program_noise(record), "drift_nu": nu, "drift_nu_std": nu_std,
            "drift_activation_energy_eV": ea, "drift_reference_temperature_K": t_ref}


def copy_record(record: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(dict(record))


# --------------------------------------------------------------------------- export

#: what :func:`save_configs` writes: a dict with these keys
EXPORT_KEYS = ("inference", "training", "record", "memdrift_version", "aihwkit_version", "torch_version")


def export_configs(record: Mapping[str, Any], *, tile: str = "torch", levels: int | None = None,
                   dtod: float = 0.0, training_dtod: float = DEFAULT_DTOD) -> dict[str, Any]:
    """The record's aihwkit configurations, ready for aihwkit's own functions.

    ``inference``: :func:`inference_config` (an ``InferenceRPUConfig``, or its torch-tile subclass
    for ``tile="torch"``) — use it in ``aihwkit.nn.conversion.convert_to_analog``, then
    ``program_analog_weights()`` and ``drift_analog_weights(t_s)``; ``training``:
    :func:`training_config` (a ``SingleRPUConfig`` with the record's ``PiecewiseStepDevice``) —
    use it for in-memory training with ``aihwkit.optim.AnalogSGD``. ``levels``/``dtod`` are
    those of :func:`inference_config`, ``training_dtod`` the training device's
    device-to-device variation.
    """
    from importlib.metadata import version

    return {"inference": inference_config(record, levels=levels, dtod=dtod, tile=tile),
            "training": training_config(record, dtod=training_dtod),
            "record": copy_record(record), "memdrift_version": version("memdrift"),
            "aihwkit_version": version("aihwkit"), "torch_version": torch.__version__}


def save_configs(configs: Mapping[str, Any], path: str) -> None:
    """Write :func:`export_configs`' dict with ``torch.save`` (atomically)."""
    import io

    from memdrift.data.io import atomic_write_bytes

    missing = [k for k in EXPORT_KEYS if k not in configs]
    if missing:
        raise MemdriftError(f"configs has no {missing[0]!r}; allowed: the dict of export_configs "
                            f"({', '.join(EXPORT_KEYS)})")
    buf = io.BytesIO()
    torch.save(dict(configs), buf)
    atomic_write_bytes(path, buf.getvalue())


def load_configs(path: str) -> dict[str, Any]:
    """Read a file written by :func:`save_configs`.

    Plain ``torch.load(path, weights_only=False)`` gives the same dict: the file holds aihwkit
    objects (and this module's noise model), which ``weights_only`` loading refuses, so load
    only files you trust.
    """
    from pathlib import Path

    p = Path(path)
    if not p.exists():
        raise MemdriftError(f"aihwkit config file {str(p)!r} does not exist")
    try:
        configs = torch.load(p, weights_only=False)
    except Exception as exc:  # torch raises many kinds for a file that is not its own
        raise MemdriftError(f"aihwkit config file {str(p)!r} is not a memdrift export ({exc})") from None
    if not isinstance(configs, dict) or any(k not in configs for k in EXPORT_KEYS):
        raise MemdriftError(f"aihwkit config file {str(p)!r} is not a memdrift export; allowed: a file of "
                            "memdrift export (save_configs)")
    return configs
