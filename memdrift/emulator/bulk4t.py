"""2D bulk four-terminal TiO2-x film (DESIGN.md, "2D bulk four-terminal model").

State per device: the oxygen-vacancy count ``n`` of every cell of an Nx x Ny grid
covering the square active region, and the cell temperatures. The four Pt
electrodes are Dirichlet segments centred on the edges: T1 left, T2 top, T3 right,
T4 bottom, each ``electrode_fraction`` of its edge long (0.5 by default: the
paper's electrodes are narrower than the active square, so current crowds at the
segment ends, which is where Joule heating concentrates).

Per step (the equations of the compiled kernel ``memdrift.ext._bulk4t``; this
module is its SciPy twin, kept for tests and the benchmark):

1. sigma(n, T) = (sigma_base + sigma_vac * (n / n_mean)**p) * exp(-E_sigma/k (1/T - 1/T0));
   div(sigma grad phi) = 0 by five-point finite volumes with harmonic face
   conductances; an electrode face couples its cell to the terminal voltage
   through half a cell, or, with ``contact_resistivity_ohm_m2 > 0``, each electrode lies over the film
   ``contact_overlap_m`` deep and couples every cell it covers through (covered area) / rho_c, which bounds
   the current density and so the field at the segment ends. Terminal current I_k is the current flowing from
   terminal k into the film (the four sum to zero).
2. The Joule power of each face (split between its two cells) heats the film
   through a fitted local sink, -div(kappa t grad T) + g_sub (T - T0) = p / A
   (``thermal_model = 0``), or through the stack, the film on a half-space
   substrate (``thermal_model = 1``: lateral film conduction, the film's own
   vertical drop and the half-space Green's function 1 / (2 pi kappa_sub r)
   integrated over every cell). Quasi-static: the substrate under the 15 um
   square settles in about 73 us, the pulses are seconds. sigma(n, T) and T are
   iterated to a fixed point (within THERMAL_TOLERANCE_K); a cell above
   ``thermal_ceiling_k`` (runaway or breakdown) ends the pulse, flagged.
3. Hops across every inner face by the hopping law r+- = nu0 exp(-(Ea -+ z q a E/2)/kT),
   E the face field and T the face temperature. The lattice law is coarse-grained
   to cells of size h: the face has diffusivity D = a^2 (r+ + r-)/2 and drift
   velocity v = a (r+ - r-); per vacancy it is crossed at D/h^2 both ways plus,
   upwind, v/h (``scharfetter_gummel = 0``), or at D/h^2 B(-Pe) forward and
   D/h^2 B(Pe) back, Pe = v h / D, B(x) = x / (e^x - 1) (Scharfetter-Gummel,
   ``scharfetter_gummel = 1``). Site exclusion (1 - n_dest / n_max) slows arrivals
   at a filling cell, and arrivals are thinned to the room under the cap so no
   cell ever holds more than n_max. Counts are Poisson (tau-leaping) or, in
   deterministic mode, the expected values. Electrodes and film edges pass no
   vacancies: the total is conserved exactly (integers in float64).
4. Adaptive dt: no cell sends out more than ``max_outflow_fraction`` of its
   content in one step; phi and T are re-solved when any sigma has moved by more
   than ``sigma_tolerance`` (relative) since the last solve. Steps are bounded to
   the end of the pulse; a pulse that would need more than
   ``max_steps_per_pulse`` stops there, flagged ``step_budget_exhausted``.

Physics, numerics and the measured grid dependence: docs/physics-film.md.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from memdrift.data import flags
from memdrift.emulator.params import BOLTZMANN_EV, ModelParams, quantity, register_model
from memdrift.errors import MemdriftError, field_error

#: sigma(n, T) and T are iterated until no cell's temperature moves by more than this between two field
#: solves (K); twins: THERMAL_TOLERANCE_K and MAX_THERMAL_ITERATIONS in ``_bulk4t.pyx``.
THERMAL_TOLERANCE_K = 1e-3
MAX_THERMAL_ITERATIONS = 500

#: Largest grid (cells) of the substrate heat path: its operator is dense, 8 N^2 bytes (128 MiB at 64 x 64).
MAX_SUBSTRATE_CELLS = 4096

#: Range of the specific contact resistivity of Pt on TiO2-x (ohm m2); 0 selects ideal contacts.
MIN_CONTACT_RESISTIVITY_OHM_M2 = 1e-9
MAX_CONTACT_RESISTIVITY_OHM_M2 = 1e-6

#: Terminal order of every voltage/current array: T1 (left), T2 (top), T3 (right), T4 (bottom).
TERMINALS = ("T1", "T2", "T3", "T4")
READ_VOLTAGE_V = 0.1


@dataclass(frozen=True)
class Bulk4TParams(ModelParams):
    """Planar TiO2-x four-terminal film. ``variation``: relative lognormal spread per field."""

    model: ClassVar[str] = "bulk4t"

    side_length_m: float = quantity(15e-6, "m", 0.0, 1e-3, "side of the square active region", low_open=True)
    film_thickness_m: float = quantity(40e-9, "m", 0.0, 1e-5, "TiO2-x film thickness", low_open=True)
    grid_x: float = quantity(32.0, "1", 4.0, 1024.0, "cells along x (T1 -> T3), integer")
    grid_y: float = quantity(32.0, "1", 4.0, 1024.0, "cells along y (T4 -> T2), integer")
    electrode_fraction: float = quantity(0.5, "1", 0.0, 1.0, "electrode segment length / edge length",
                                         low_open=True)
    hop_distance_m: float = quantity(0.3e-9, "m", 0.0, 5e-9, "vacancy hop distance a", low_open=True)
    attempt_frequency_hz: float = quantity(1e13, "Hz", 0.0, 1e16, "attempt frequency nu0", low_open=True)
    activation_energy_ev: float = quantity(1.0, "eV", 0.0, 5.0, "hopping barrier Ea", low_open=True)
    charge_number: float = quantity(2.0, "1", 0.0, 4.0, "vacancy charge number z", low_open=True)
    vacancy_density_m3: float = quantity(1e25, "m-3", 0.0, 1e29, "mean vacancy density", low_open=True)
    max_occupancy_ratio: float = quantity(4.0, "1", 1.0, 1e6, "site-exclusion cap n_max / n_mean",
                                          low_open=True)
    conductivity_base_s_per_m: float = quantity(1e3, "S/m", 0.0, 1e9, "film conductivity without vacancies")
    conductivity_vacancy_s_per_m: float = quantity(1e4, "S/m", 0.0, 1e9,
                                                   "conductivity added at the mean vacancy density")
    conductivity_exponent: float = quantity(1.0, "1", 0.0, 10.0, "p in sigma_vac (n / n_mean)^p", low_open=True)
    conductivity_activation_ev: float = quantity(0.0, "eV", 0.0, 2.0, "thermal activation of sigma")
    thermal_conductivity_w_per_mk: float = quantity(5.0, "W/(m K)", 0.0, 1e4, "film thermal conductivity kappa",
                                                    low_open=True)
    substrate_conductance_w_per_m2k: float = quantity(5e6, "W/(m2 K)", 0.0, 1e12,
                                                      "local heat sink g_sub (thermal_model = 0)", low_open=True)
    thermal_model: float = quantity(0.0, "1", 0.0, 1.0,
                                    "heat path: 0 a fitted local sink g_sub per cell area, 1 the film on a "
                                    "half-space substrate of conductivity substrate_thermal_conductivity_w_per_mk")
    # rutile TiO2 near room temperature conducts some 7-13 W/(m K) by axis; an anisotropic half-space heats at its
    # surface as an isotropic one of sqrt(k_lateral k_vertical)
    substrate_thermal_conductivity_w_per_mk: float = quantity(9.0, "W/(m K)", 0.0, 1e4,
                                                              "substrate thermal conductivity (thermal_model = 1)",
                                                              low_open=True)
    joule_heating: float = quantity(1.0, "1", 0.0, 1.0, "Joule power multiplier (0: isothermal)")
    ambient_temperature_k: float = quantity(300.0, "K", 1.0, 2000.0, "ambient temperature T0")
    # at most a quarter: a cell's four neighbours then cannot send it more than its free room in one step
    max_outflow_fraction: float = quantity(0.05, "1", 0.0, 0.25, "largest fraction of a cell leaving in one step",
                                           low_open=True)
    sigma_tolerance: float = quantity(0.01, "1", 0.0, 1.0, "relative sigma change before phi, T are re-solved",
                                      low_open=True)
    max_steps_per_pulse: float = quantity(20000.0, "1", 1.0, 1e8,
                                          "step budget per pulse (a pulse not ended within it stops there, flagged "
                                          "step_budget_exhausted)")
    scharfetter_gummel: float = quantity(0.0, "1", 0.0, 1.0,
                                         "face fluxes: 0 first-order upwind, 1 Scharfetter-Gummel exponential "
                                         "fitting (exact for a constant field between cell centres)")
    # Pt (the electrodes) melts at 2,041 K, rutile TiO2 at 2,116 K: above the lower of the two the stack is
    # no longer the film the equations describe
    thermal_ceiling_k: float = quantity(2041.0, "K", 1.0, 5000.0,
                                        "hottest cell a pulse may reach; beyond it the pulse ends, flagged "
                                        "thermal_ceiling")
    # Pt on reduced TiO2-x: an order-of-magnitude bracket of 1e-9 to 1e-6 ohm m2, near-ohmic on oxygen-deficient
    # films, Schottky-like towards stoichiometry (docs/physics-film.md, "Contacts")
    contact_resistivity_ohm_m2: float = quantity(0.0, "ohm m2", 0.0, MAX_CONTACT_RESISTIVITY_OHM_M2,
                                                 "specific contact resistivity rho_c of the Pt electrodes over the "
                                                 "film (0: ideal equipotential segments at the film's edge)")
    contact_overlap_m: float = quantity(1e-6, "m", 0.0, 1e-3,
                                        "depth over which each electrode covers the film inward from its edge "
                                        "(contact_resistivity_ohm_m2 > 0)", low_open=True)
    variation: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._validate()
        for name in ("grid_x", "grid_y"):
            value = getattr(self, name)
            if value != int(value):
                raise field_error(name, value, "an integer in [4, 1024]")
        if self.scharfetter_gummel not in (0.0, 1.0):
            raise field_error("scharfetter_gummel", self.scharfetter_gummel, "0 (upwind) or 1 (Scharfetter-Gummel)")
        if self.thermal_model not in (0.0, 1.0):
            raise field_error("thermal_model", self.thermal_model, "0 (local sink) or 1 (substrate half-space)")
        if self.thermal_model == 1.0 and self.grid_x * self.grid_y > MAX_SUBSTRATE_CELLS:
            raise MemdriftError(
                f"grid_x * grid_y = {int(self.grid_x * self.grid_y)} is out of range for thermal_model = 1 (its "
                f"heat operator is a dense cells x cells matrix); allowed: at most {MAX_SUBSTRATE_CELLS} cells")
        for name in ("grid_x", "grid_y"):
            n = int(getattr(self, name))
            start = _segment_start(n, self.electrode_fraction)
            if start < 1 or n - 2 * start < 1:
                raise MemdriftError(
                    f"electrode_fraction = {self.electrode_fraction!r} is out of range for {name} = {n}; allowed: "
                    f"a segment of at least one cell that does not reach the corners, (1/{n}, {1 - 2 / n:.4g}]")
        rho_c = self.contact_resistivity_ohm_m2
        if 0.0 < rho_c < MIN_CONTACT_RESISTIVITY_OHM_M2:
            raise field_error("contact_resistivity_ohm_m2", rho_c,
                              f"0 (ideal contacts) or [{MIN_CONTACT_RESISTIVITY_OHM_M2:g}, "
                              f"{MAX_CONTACT_RESISTIVITY_OHM_M2:g}] ohm m2")
        gap_m = 0.5 * (1.0 - self.electrode_fraction) * self.side_length_m
        if rho_c > 0 and self.contact_overlap_m > gap_m:
            # deeper, the electrodes on neighbouring edges would overlap one another
            raise field_error("contact_overlap_m", self.contact_overlap_m,
                              f"(0, {gap_m:g}] m, (1 - electrode_fraction) side_length_m / 2")
        if rho_c > 0:
            contact_conductance(self)   # refuses a grid with a cell under two electrodes
        self._validate_variation()

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.grid_x), int(self.grid_y)


# Strictly positive fields whose device-to-device spread can be drawn. device_table draws one normal per field in
# sorted order of their names, so a field added here re-draws every device whose fields sort after it.
VARIABLE_FIELDS = frozenset({
    "hop_distance_m", "attempt_frequency_hz", "activation_energy_ev", "vacancy_density_m3",
    "conductivity_base_s_per_m", "conductivity_vacancy_s_per_m", "thermal_conductivity_w_per_mk",
    "substrate_conductance_w_per_m2k",
})
Bulk4TParams.variable_fields = VARIABLE_FIELDS

register_model("bulk4t", Bulk4TParams)


def _segment_start(n: int, fraction: float) -> int:
    return int(round((1.0 - fraction) * n / 2.0))


# ---------------------------------------------------------------------------
# Per-device parameter arrays (shared by the reference and the compiled path)
# ---------------------------------------------------------------------------

#: Columns of the per-device parameter table handed to the kernels (the compiled one exports its own
#: names, paired with its enum in ``_bulk4t.pyx``; loading it compares the two name by name).
DEVICE_COLUMNS = (
    "hop_distance_m", "attempt_frequency_hz", "activation_energy_ev", "charge_number", "n_mean", "n_max",
    "conductivity_base_s_per_m", "conductivity_vacancy_s_per_m", "conductivity_exponent",
    "conductivity_activation_ev", "thermal_conductivity_w_per_mk", "substrate_conductance_w_per_m2k",
    "joule_heating", "ambient_temperature_k", "thermal_ceiling_k", "scharfetter_gummel", "thermal_model",
    "substrate_thermal_conductivity_w_per_mk",
)
COL = {name: i for i, name in enumerate(DEVICE_COLUMNS)}


def device_streams(seed: int, devices: int) -> tuple[list[np.random.SeedSequence], np.ndarray]:
    """One SeedSequence per device, and the 64-bit counter-RNG key derived from each."""
    children = np.random.SeedSequence(int(seed)).spawn(int(devices))
    keys = np.array([c.generate_state(1, np.uint64)[0] for c in children], dtype=np.uint64)
    return children, keys


def device_table(params: Bulk4TParams, devices: int, seed: int) -> np.ndarray:
    """Per-device parameters (devices x len(DEVICE_COLUMNS)), lognormal variation drawn per device."""
    hx, hy = params.side_length_m / params.grid_x, params.side_length_m / params.grid_y
    base = params.scalars()
    table = np.empty((devices, len(DEVICE_COLUMNS)))
    # Variation draws use their own spawned stream so they do not depend on the hop streams.
    rng = np.random.default_rng(np.random.SeedSequence(int(seed)).spawn(int(devices) + 1)[-1])
    draws = {name: rng.standard_normal(devices) for name in sorted(VARIABLE_FIELDS)}
    for name in DEVICE_COLUMNS:
        if name in ("n_mean", "n_max"):
            continue
        value = np.full(devices, base[name])
        spread = params.variation.get(name, 0.0)
        if spread > 0:
            value = value * np.exp(spread * draws[name] - 0.5 * spread**2)
        table[:, COL[name]] = value
    density = np.full(devices, params.vacancy_density_m3)
    spread = params.variation.get("vacancy_density_m3", 0.0)
    if spread > 0:
        density = density * np.exp(spread * draws["vacancy_density_m3"] - 0.5 * spread**2)
    table[:, COL["n_mean"]] = np.round(density * hx * hy * params.film_thickness_m)
    table[:, COL["n_max"]] = table[:, COL["n_mean"]] * params.max_occupancy_ratio
    if np.any(table[:, COL["n_mean"]] < 1):
        raise MemdriftError(f"vacancy_density_m3 = {params.vacancy_density_m3!r} is out of range for this grid; "
                            "allowed: at least one vacancy per cell on average")
    return table


def initial_counts(table: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Uniform film: every cell holds n_mean vacancies."""
    return np.broadcast_to(table[:, COL["n_mean"], None, None], (table.shape[0], *shape)).copy()


# ---------------------------------------------------------------------------
# Reference physics (NumPy / scipy.sparse)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Geometry:
    nx: int
    ny: int
    hx: float
    hy: float
    thickness: float
    #: Cell masks of the four electrode segments, T1..T4, each (nx, ny) bool.
    masks: np.ndarray
    #: Per electrode: geometric factor of its half-cell coupling (conductance = sigma * factor).
    factors: np.ndarray
    #: Contact conductance (S) of each cell to each terminal through the film area the electrode covers,
    #: (4, nx, ny); None: ideal segments, each edge cell coupled through half a cell (``factors``).
    contact: np.ndarray | None = None

    @classmethod
    def from_params(cls, params: Bulk4TParams) -> "Geometry":
        nx, ny = params.shape
        hx, hy = params.side_length_m / nx, params.side_length_m / ny
        t = params.film_thickness_m
        masks = np.zeros((4, nx, ny), dtype=bool)
        sy, sx = _segment_start(ny, params.electrode_fraction), _segment_start(nx, params.electrode_fraction)
        masks[0, 0, sy:ny - sy] = True          # T1 left
        masks[1, sx:nx - sx, ny - 1] = True     # T2 top
        masks[2, nx - 1, sy:ny - sy] = True     # T3 right
        masks[3, sx:nx - sx, 0] = True          # T4 bottom
        factors = np.array([t * hy / (hx / 2), t * hx / (hy / 2), t * hy / (hx / 2), t * hx / (hy / 2)])
        if params.contact_resistivity_ohm_m2 > 0:
            contact = contact_conductance(params)
            return cls(nx, ny, hx, hy, t, contact > 0, factors, contact)
        return cls(nx, ny, hx, hy, t, masks, factors)

    def boundary_conductance(self, sigma: np.ndarray) -> np.ndarray:
        """(4, nx, ny) conductance of each cell to each terminal (zero off the segments)."""
        if self.contact is not None:
            return self.contact
        return self.masks * self.factors[:, None, None] * sigma[None]


def contact_conductance(params: Bulk4TParams) -> np.ndarray:
    """(4, nx, ny) conductance (S) from each cell to each electrode: the area of the cell the electrode covers
    over the specific contact resistivity, A / rho_c.

    Each electrode covers the film over a rectangle of the segment's length (``electrode_fraction`` of the edge,
    centred) and ``contact_overlap_m`` deep from the edge; the areas are exact cell-by-rectangle intersections,
    so the contact is the same on every grid. Current enters the film across that area, at most
    (V - phi) / rho_c per unit area, which bounds the field at the segment ends. The film's own vertical
    resistance, t / sigma (3e-13 ohm m2 for 40 nm at 1.35e5 S/m), is far below rho_c and is left out.
    """
    nx, ny = params.shape
    side, depth = params.side_length_m, params.contact_overlap_m
    lo, hi = 0.5 * (1.0 - params.electrode_fraction) * side, 0.5 * (1.0 + params.electrode_fraction) * side
    ex, ey = np.linspace(0.0, side, nx + 1), np.linspace(0.0, side, ny + 1)

    def cover(edges: np.ndarray, a: float, b: float) -> np.ndarray:
        length = np.clip(np.minimum(edges[1:], b) - np.maximum(edges[:-1], a), 0.0, None)
        # a cell that only touches the rectangle at an edge, to rounding, is not under it
        return np.where(length > 1e-9 * (edges[1] - edges[0]), length, 0.0)

    rects = (((0.0, depth), (lo, hi)), ((lo, hi), (side - depth, side)),
             ((side - depth, side), (lo, hi)), ((lo, hi), (0.0, depth)))
    area = np.stack([np.outer(cover(ex, *rx), cover(ey, *ry)) for rx, ry in rects])
    if np.any((area > 0).sum(axis=0) > 1):
        raise MemdriftError(f"grid_x = {nx}, grid_y = {ny} is out of range for contact_overlap_m = {depth!r}: a "
                            "cell lies under two electrodes; allowed: a finer grid or a shallower overlap")
    return area / params.contact_resistivity_ohm_m2


def conductivity(n: np.ndarray, temperature: np.ndarray, table: np.ndarray) -> np.ndarray:
    """sigma(n, T) for arrays (devices, nx, ny)."""
    c = lambda name: table[:, COL[name], None, None]  # noqa: E731
    sigma = c("conductivity_base_s_per_m") + c("conductivity_vacancy_s_per_m") * (
        np.maximum(n, 0.0) / c("n_mean")) ** c("conductivity_exponent")
    ea = c("conductivity_activation_ev")
    if np.any(ea > 0):
        sigma = sigma * np.exp(-ea / BOLTZMANN_EV * (1.0 / temperature - 1.0 / c("ambient_temperature_k")))
    return sigma


def _harmonic(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 2.0 * a * b / (a + b)


def _laplacian(gx: np.ndarray, gy: np.ndarray, diag_extra: np.ndarray) -> sp.csc_matrix:
    """Five-point matrix from face conductances (gx: (nx-1, ny), gy: (nx, ny-1)); cell index = ix * ny + iy."""
    nx, ny = diag_extra.shape
    idx = np.arange(nx * ny).reshape(nx, ny)
    diag = diag_extra.copy()
    diag[:-1, :] += gx
    diag[1:, :] += gx
    diag[:, :-1] += gy
    diag[:, 1:] += gy
    rows = np.concatenate([idx.ravel(), idx[:-1, :].ravel(), idx[1:, :].ravel(), idx[:, :-1].ravel(),
                           idx[:, 1:].ravel()])
    cols = np.concatenate([idx.ravel(), idx[1:, :].ravel(), idx[:-1, :].ravel(), idx[:, 1:].ravel(),
                           idx[:, :-1].ravel()])
    vals = np.concatenate([diag.ravel(), -gx.ravel(), -gx.ravel(), -gy.ravel(), -gy.ravel()])
    return sp.csc_matrix((vals, (rows, cols)), shape=(nx * ny, nx * ny))


def solve_potential(sigma: np.ndarray, volts: np.ndarray, geom: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """One device: phi (nx, ny) and terminal currents (4,) into the film, for terminal voltages ``volts``."""
    t = geom.thickness
    gx = _harmonic(sigma[:-1, :], sigma[1:, :]) * t * geom.hy / geom.hx
    gy = _harmonic(sigma[:, :-1], sigma[:, 1:]) * t * geom.hx / geom.hy
    gb = geom.boundary_conductance(sigma)
    a = _laplacian(gx, gy, gb.sum(axis=0))
    rhs = np.tensordot(volts, gb, axes=1)
    phi = spla.spsolve(a, rhs.ravel()).reshape(sigma.shape)
    currents = (gb * (volts[:, None, None] - phi[None])).sum(axis=(1, 2))
    return phi, currents


def joule_power(sigma: np.ndarray, phi: np.ndarray, volts: np.ndarray, geom: Geometry) -> np.ndarray:
    """Power dissipated in each cell (W): half of each inner face's G dV^2 to either side, electrode faces whole."""
    t = geom.thickness
    gx = _harmonic(sigma[:-1, :], sigma[1:, :]) * t * geom.hy / geom.hx
    gy = _harmonic(sigma[:, :-1], sigma[:, 1:]) * t * geom.hx / geom.hy
    px = 0.5 * gx * (phi[:-1, :] - phi[1:, :]) ** 2
    py = 0.5 * gy * (phi[:, :-1] - phi[:, 1:]) ** 2
    p = (geom.boundary_conductance(sigma) * (volts[:, None, None] - phi[None]) ** 2).sum(axis=0)
    p[:-1, :] += px
    p[1:, :] += px
    p[:, :-1] += py
    p[:, 1:] += py
    return p


def heat_matrix_local(kappa: float, g_sub: float, geom: Geometry) -> sp.csc_matrix:
    """-div(kappa t grad) + g_sub, cell-integrated (W/K); film edges adiabatic (heat leaves through the substrate)."""
    gx = np.full((geom.nx - 1, geom.ny), kappa * geom.thickness * geom.hy / geom.hx)
    gy = np.full((geom.nx, geom.ny - 1), kappa * geom.thickness * geom.hx / geom.hy)
    return _laplacian(gx, gy, np.full((geom.nx, geom.ny), g_sub * geom.hx * geom.hy))


def heat_matrix(row: np.ndarray, geom: Geometry) -> sp.csc_matrix:
    """The local-sink heat matrix of one device (thermal_model = 0)."""
    return heat_matrix_local(row[COL["thermal_conductivity_w_per_mk"]], row[COL["substrate_conductance_w_per_m2k"]],
                             geom)


def _rect_integral(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Integral of 1/r over the rectangle spanned by the origin and (x, y) (m), signed by the quadrant."""
    ax, ay = np.abs(x), np.abs(y)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(ax > 0, ax * np.arcsinh(ay / np.where(ax > 0, ax, 1.0)), 0.0) + np.where(
            ay > 0, ay * np.arcsinh(ax / np.where(ay > 0, ay, 1.0)), 0.0)
    return np.sign(x) * np.sign(y) * value


def substrate_green(geom: Geometry, kappa_sub: float) -> np.ndarray:
    """Surface temperature rise (K) of a half-space of conductivity ``kappa_sub`` (W/(m K)) at each cell centre
    per watt spread uniformly over each cell: (N, N), N = nx * ny cells, index ix * ny + iy.

    The half-space's surface Green's function is 1 / (2 pi kappa r); over a rectangle it integrates in closed
    form (the corner sum of x asinh(y/x) + y asinh(x/y)), so every entry is exact, the self-heating of a cell
    included: a square of side h heats its centre by 0.5611 P / (kappa h), (2/pi) asinh(1).
    """
    ox = np.arange(-(geom.nx - 1), geom.nx) * geom.hx
    oy = np.arange(-(geom.ny - 1), geom.ny) * geom.hy
    x, y = np.meshgrid(ox, oy, indexing="ij")
    hx2, hy2 = geom.hx / 2, geom.hy / 2
    integral = (_rect_integral(x + hx2, y + hy2) - _rect_integral(x - hx2, y + hy2)
                - _rect_integral(x + hx2, y - hy2) + _rect_integral(x - hx2, y - hy2))
    kernel = integral / (2.0 * np.pi * kappa_sub * geom.hx * geom.hy)
    ix, iy = np.divmod(np.arange(geom.nx * geom.ny), geom.ny)
    return kernel[(ix[:, None] - ix[None, :]) + geom.nx - 1, (iy[:, None] - iy[None, :]) + geom.ny - 1]


def substrate_heat_operator(geom: Geometry, kappa_film: float, kappa_sub: float) -> np.ndarray:
    """Film temperature rise per cell power (K/W), (N, N): the film on a half-space substrate.

    Cell powers p (W) flow laterally through the film (sheet conductance kappa_film t, adiabatic edges) and down
    into the substrate as fluxes q (W per cell): p = L theta + q. The film's mean temperature stands above the
    substrate surface under it by q t / (3 kappa_film A) (heat made uniformly through a slab with an adiabatic
    top), and the surface is the half-space's response G q. So theta = (L + (G + D)^-1)^-1 p.
    """
    lateral = heat_matrix_local(kappa_film, 0.0, geom).toarray()
    b = substrate_green(geom, kappa_sub)
    b[np.diag_indices_from(b)] += geom.thickness / (3.0 * kappa_film * geom.hx * geom.hy)
    b_inv = scipy.linalg.cho_solve(scipy.linalg.cho_factor(b), np.eye(b.shape[0]))
    m = scipy.linalg.cho_solve(scipy.linalg.cho_factor(lateral + b_inv), np.eye(b.shape[0]))
    return np.ascontiguousarray(0.5 * (m + m.T))


@functools.lru_cache(maxsize=2)
def _shared_substrate_operator(nx: int, ny: int, hx: float, hy: float, thickness: float, kappa_film: float,
                               kappa_sub: float) -> np.ndarray:
    # devices of one ensemble, and the field maps drawn of them, share one operator (read-only) per heat path
    geom = Geometry(nx, ny, hx, hy, thickness, np.zeros((4, nx, ny), dtype=bool), np.zeros(4))
    m = substrate_heat_operator(geom, kappa_film, kappa_sub)
    m.flags.writeable = False
    return m


class DenseHeat:
    """The substrate heat path as a linear map of cell powers to temperature rises (the local sink's is a
    sparse LU with the same ``solve``)."""

    def __init__(self, operator: np.ndarray):
        self.operator = operator

    def solve(self, p: np.ndarray) -> np.ndarray:
        return self.operator @ p


def heat_solver(row: np.ndarray, geom: Geometry):
    """theta = solver.solve(p) (K, W per cell, flattened) for one device's heat path."""
    if row[COL["thermal_model"]] > 0:
        return DenseHeat(_shared_substrate_operator(geom.nx, geom.ny, geom.hx, geom.hy, geom.thickness,
                                                    float(row[COL["thermal_conductivity_w_per_mk"]]),
                                                    float(row[COL["substrate_thermal_conductivity_w_per_mk"]])))
    return spla.splu(heat_matrix(row, geom))


def bernoulli_pair(pe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """B(-pe), B(pe) with B(t) = t / (exp(t) - 1), the weights of the Scharfetter-Gummel flux.

    From one exponential of -|pe| (no overflow at any Peclet number); a series below |pe| = 1e-2, where the
    quotient loses digits to cancellation. Twin of md_bernoulli_pair in ``_bulk4t_hops.h``.
    """
    pe = np.asarray(pe, dtype=float)
    ap = np.abs(pe)
    small = ap < 1e-2
    u = np.exp(-ap)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = ap / (1.0 - u)
    even = 1.0 + pe * pe * (1.0 / 12.0) - pe * pe * pe * pe * (1.0 / 720.0)
    b_minus = np.where(small, even + 0.5 * pe, np.where(pe > 0, g, g * u))
    b_plus = np.where(small, even - 0.5 * pe, np.where(pe > 0, g * u, g))
    return b_minus, b_plus


def face_rates(n: np.ndarray, phi: np.ndarray, temperature: np.ndarray, table: np.ndarray, geom: Geometry):
    """Per-vacancy crossing rates (1/s) for all devices: (x forward, x backward, y forward, y backward).

    Forward = towards larger index. Arrays (devices, nx-1, ny) and (devices, nx, ny-1).
    """
    c = lambda name: table[:, COL[name], None, None]  # noqa: E731
    a, nu0, ea, z = c("hop_distance_m"), c("attempt_frequency_hz"), c("activation_energy_ev"), c("charge_number")
    n_max = c("n_max")
    sg = bool(np.any(table[:, COL["scharfetter_gummel"]] > 0))
    out = []
    for axis, h in ((1, geom.hx), (2, geom.hy)):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        lo, hi = tuple(lo), tuple(hi)
        field_v_per_m = (phi[lo] - phi[hi]) / h
        kt = BOLTZMANN_EV * 0.5 * (temperature[lo] + temperature[hi])
        r0 = nu0 * np.exp(-ea / kt)
        x = z * a * field_v_per_m / (2.0 * kt)
        rp, rm = r0 * np.exp(x), r0 * np.exp(-x)
        diffusion = (a / h) ** 2 * 0.5 * (rp + rm)
        drift = (a / h) * (rp - rm)
        if sg:
            with np.errstate(divide="ignore", invalid="ignore"):
                b_minus, b_plus = bernoulli_pair(np.where(diffusion > 0, drift / diffusion, 0.0))
            fwd, bwd = diffusion * b_minus, diffusion * b_plus
        else:
            fwd, bwd = diffusion + np.maximum(drift, 0.0), diffusion + np.maximum(-drift, 0.0)
        out += [fwd * np.clip(1.0 - n[hi] / n_max, 0.0, 1.0), bwd * np.clip(1.0 - n[lo] / n_max, 0.0, 1.0)]
    return tuple(out)


def outflow_rate(fx, bx, fy, by) -> np.ndarray:
    """Total per-vacancy rate of leaving each cell."""
    d, nxm1, ny = fx.shape
    out = np.zeros((d, nxm1 + 1, ny))
    out[:, :-1, :] += fx
    out[:, 1:, :] += bx
    out[:, :, :-1] += fy
    out[:, :, 1:] += by
    return out


def apply_hops(n: np.ndarray, hx_f, hx_b, hy_f, hy_b) -> np.ndarray:
    """n after moving the given hop counts (forward/backward per face); conserves the total exactly."""
    new = n.copy()
    new[:, :-1, :] -= hx_f
    new[:, 1:, :] += hx_f
    new[:, 1:, :] -= hx_b
    new[:, :-1, :] += hx_b
    new[:, :, :-1] -= hy_f
    new[:, :, 1:] += hy_f
    new[:, :, 1:] -= hy_b
    new[:, :, :-1] += hy_b
    return new


def limit_outflow(n: np.ndarray, counts: list[np.ndarray]) -> list[np.ndarray]:
    """Thin Poisson counts so no cell sends out more vacancies than it holds (integers stay integers)."""
    fx, bx, fy, by = counts
    total = outflow_rate(fx, bx, fy, by)
    over = total > n
    if not np.any(over):
        return counts
    scale = np.where(over, n / np.where(total > 0, total, 1.0), 1.0)
    return [np.floor(fx * scale[:, :-1, :]), np.floor(bx * scale[:, 1:, :]),
            np.floor(fy * scale[:, :, :-1]), np.floor(by * scale[:, :, 1:])]


def limit_inflow(n: np.ndarray, counts: list[np.ndarray], cap: np.ndarray, *, integer: bool) -> list[np.ndarray]:
    """Thin the counts arriving at each cell to the room under ``cap`` (devices, 1, 1) it has now.

    None of the step's departures is counted, so the cap holds whatever order the hops take. ``integer``:
    the thinned counts are rounded down (Poisson counts stay whole vacancies).
    """
    fx, bx, fy, by = counts
    arriving = outflow_rate(bx, fx, by, fy)   # a face's backward count lands in its first cell, forward in its second
    room = cap - n
    over = arriving > room
    if not np.any(over):
        return counts
    scale = np.where(over, np.clip(room, 0.0, None) / np.where(arriving > 0, arriving, 1.0), 1.0)
    out = [fx * scale[:, 1:, :], bx * scale[:, :-1, :], fy * scale[:, :, 1:], by * scale[:, :, :-1]]
    return [np.floor(c) for c in out] if integer else out


def read_volts(volts: np.ndarray | None, devices: int) -> np.ndarray:
    """Terminal voltages (devices, 4) of a read: the default read bias, one (4,) vector or one row per device."""
    volts = np.array([READ_VOLTAGE_V, 0.0, 0.0, 0.0]) if volts is None else np.asarray(volts, float)
    if volts.shape not in ((4,), (devices, 4)):
        raise MemdriftError(f"volts has shape {volts.shape}; allowed: (4,) or ({devices}, 4), one voltage per "
                            f"terminal {', '.join(TERMINALS)}")
    return np.broadcast_to(volts, (devices, 4)).astype(np.float64, order="C")


@dataclass
class PulseRecord:
    """What one pulse did to each device.

    ``flag``: the bits of :mod:`memdrift.data.flags` (0: the pulse ran its full width with trusted fields);
    ``elapsed_s``: the time simulated, shorter than the width when a flag ended the pulse early.
    """

    temperature_peak: np.ndarray
    temperature_mean: np.ndarray
    energy: np.ndarray
    steps: np.ndarray
    flag: np.ndarray
    elapsed_s: np.ndarray


def _settled(change: float, last: float) -> bool:
    """Has the Picard iteration of T come within THERMAL_TOLERANCE_K of its fixed point?

    The iteration contracts by q = change / last per sweep, so the error left after a sweep of ``change`` is
    change q / (1 - q): near the onset of runaway q approaches 1 and the last change alone understates it.
    """
    if change > THERMAL_TOLERANCE_K:
        return False
    q = change / last if last > 0 else 0.0
    return q < 1.0 and change * q <= THERMAL_TOLERANCE_K * (1.0 - q)


class ReferenceEngine:
    """The SciPy twin of the compiled kernel, vectorised over devices where NumPy allows."""

    def __init__(self, params: Bulk4TParams, table: np.ndarray, children: list[np.random.SeedSequence]):
        self.params = params
        self.geom = Geometry.from_params(params)
        self.table = table
        self.rngs = [np.random.default_rng(c) for c in children]
        self._heat = [heat_solver(row, self.geom) for row in table]

    def read(self, n: np.ndarray, temperature: np.ndarray, volts: np.ndarray | None = None):
        """Resistance V1 / |I3| and terminal currents (devices, 4) under the read bias."""
        vv = read_volts(volts, n.shape[0])
        sigma = conductivity(n, temperature, self.table)
        currents = np.stack([solve_potential(s, v, self.geom)[1] for s, v in zip(sigma, vv)])
        return vv[:, 0] / -currents[:, 2], currents

    def _fields(self, n, guess, volts, idx):
        """sigma, phi, T and delivered power for the devices ``idx``, sigma(n, T) and T self-consistent.

        ``guess`` is the first temperature of the Picard iteration; also returns the flag bits of each
        device (THERMAL_CEILING: a cell above the ceiling or no finite temperature; SOLVE_NOT_CONVERGED: no
        fixed point within MAX_THERMAL_ITERATIONS). The twin of ``_fields`` in ``_bulk4t.pyx``.
        """
        sigma = np.empty((idx.size, *n.shape[1:]))
        phi = np.empty_like(sigma)
        temperature = np.empty_like(sigma)
        power = np.zeros(idx.size)
        flag = np.zeros(idx.size, dtype=np.uint8)
        for k, d in enumerate(idx):
            row = self.table[d]
            t0, heating = row[COL["ambient_temperature_k"]], row[COL["joule_heating"]]
            coupled = heating > 0 and row[COL["conductivity_activation_ev"]] > 0
            temp = np.array(guess[d], dtype=float)
            last = -1.0
            for it in range(1, MAX_THERMAL_ITERATIONS + 1):
                sigma[k] = conductivity(n[d][None], temp[None], self.table[d][None])[0]
                phi[k], cur = solve_potential(sigma[k], volts[d], self.geom)
                power[k] = float(volts[d] @ cur)
                theta = np.zeros_like(temp)
                if heating > 0:
                    p = heating * joule_power(sigma[k], phi[k], volts[d], self.geom)
                    theta = self._heat[d].solve(p.ravel()).reshape(p.shape)
                new = t0 + theta
                change = np.abs(new - temp).max()
                temp = new
                if not temp.max() <= row[COL["thermal_ceiling_k"]]:
                    flag[k] = flags.THERMAL_CEILING
                    break
                if not coupled or _settled(change, last):
                    break
                last = change
            else:
                flag[k] = flags.SOLVE_NOT_CONVERGED
            temperature[k] = temp
        return sigma, phi, temperature, power, flag

    def pulse(self, n: np.ndarray, volts: np.ndarray, width_s: np.ndarray, *, deterministic: bool = False,
              ambient_k: np.ndarray | None = None) -> tuple[np.ndarray, PulseRecord]:
        """Apply terminal voltages ``volts`` (devices, 4) for ``width_s`` (devices,); returns new counts."""
        n = n.astype(np.float64, copy=True)
        d = n.shape[0]
        table = self.table
        if ambient_k is not None:
            table = table.copy()
            table[:, COL["ambient_temperature_k"]] = ambient_k
        saved, self.table = self.table, table
        try:
            return self._pulse(n, volts, np.broadcast_to(np.asarray(width_s, dtype=float), (d,)).copy(),
                               deterministic)
        finally:
            self.table = saved

    def _pulse(self, n, volts, width, deterministic):
        d = n.shape[0]
        t0 = self.table[:, COL["ambient_temperature_k"]]
        remaining = width.copy()
        f_max = self.params.max_outflow_fraction
        tol = self.params.sigma_tolerance
        max_steps = int(self.params.max_steps_per_pulse)
        n_max = self.table[:, COL["n_max"], None, None]
        cap = n_max if deterministic else np.floor(n_max)
        t_base = np.broadcast_to(t0[:, None, None], n.shape)
        sigma_solved, phi, temperature, power, flag = self._fields(n, t_base, volts, np.arange(d))
        peak = temperature.max(axis=(1, 2))
        mean_acc = np.zeros(d)
        energy = np.zeros(d)
        steps = np.zeros(d, dtype=np.int64)
        while True:
            running = (remaining > 0) & (flag == 0)
            budget = running & (steps >= max_steps)
            flag[budget] |= flags.STEP_BUDGET
            running &= ~budget
            if not np.any(running):
                break
            rates = face_rates(n, phi, temperature, self.table, self.geom)
            out = outflow_rate(*rates).max(axis=(1, 2))
            with np.errstate(divide="ignore"):
                dt = np.where(out > 0, np.minimum(remaining, f_max / out), remaining)
            dt = np.where(running, dt, 0.0)
            expected = []
            for k, r in enumerate(rates):
                src = (n[:, :-1, :], n[:, 1:, :], n[:, :, :-1], n[:, :, 1:])[k]
                expected.append(src * r * dt[:, None, None])
            if deterministic:
                counts = expected
            else:
                counts = [np.stack([self.rngs[i].poisson(e[i]) for i in range(d)]).astype(np.float64)
                          for e in expected]
                counts = limit_outflow(n, counts)
            counts = limit_inflow(n, counts, cap, integer=not deterministic)
            n = apply_hops(n, *counts)
            energy += power * dt
            mean_acc += temperature.mean(axis=(1, 2)) * dt
            steps += running
            remaining = np.where(running, remaining - dt, remaining)
            remaining[remaining < 1e-12 * width] = 0.0
            # phi and T are re-solved when sigma at the present temperatures has moved past the tolerance
            sigma = conductivity(n, temperature, self.table)
            moved = (np.abs(sigma / sigma_solved - 1.0).max(axis=(1, 2)) > tol) & running & (remaining > 0)
            if np.any(moved):
                idx = np.flatnonzero(moved)
                sigma_solved[idx], phi[idx], temperature[idx], power[idx], fl = self._fields(
                    n, temperature, volts, idx)
                flag[idx] |= fl
                peak = np.maximum(peak, temperature.max(axis=(1, 2)))
        elapsed = width - remaining
        # a device given no pulse was never heated: it reports its ambient, not the field solve's peak
        idle = width <= 0
        peak = np.where(idle, t0, peak)
        mean_t = np.where(elapsed > 0, mean_acc / np.where(elapsed > 0, elapsed, 1.0),
                          temperature.mean(axis=(1, 2)))
        mean_t = np.where(idle, t0, mean_t)
        flag = np.where(idle, 0, flag).astype(np.uint8)
        return n, PulseRecord(peak, mean_t, energy, steps, flag, np.where(idle, 0.0, elapsed))


class CompiledEngine:
    """The same model through ``memdrift.ext._bulk4t`` (banded Cholesky + PCG, hops in C, prange over devices)."""

    #: Relative sigma change after which the band factor is rebuilt instead of reused as CG preconditioner.
    refactor_tolerance = 0.05

    def __init__(self, params: Bulk4TParams, table: np.ndarray, keys: np.ndarray, threads: int = 1):
        from memdrift import ext

        _bulk4t = ext.load("_bulk4t", columns=DEVICE_COLUMNS)

        self._k = _bulk4t
        self.params = params
        self.geom = Geometry.from_params(params)
        self.table = np.ascontiguousarray(table, dtype=np.float64)
        self.keys = np.ascontiguousarray(keys, dtype=np.uint64)
        self.counters = np.zeros(len(keys), dtype=np.uint64)
        self.threads = int(threads)
        g = self.geom
        term = np.full(g.nx * g.ny, -1, dtype=np.int8)
        for k in range(4):
            term[g.masks[k].ravel()] = k
        # the contact conductance of each cell under an electrode; empty: ideal segments (sigma * factor)
        contact = np.zeros(0) if g.contact is None else g.contact.sum(axis=0).ravel()
        self._geo = (g.nx, g.ny, g.hx, g.hy, g.thickness, np.ascontiguousarray(g.factors), term,
                     np.ascontiguousarray(contact, dtype=np.float64))
        d, npts = len(keys), g.nx * g.ny
        self.band = np.zeros((d, self._k.band_size(npts, g.ny)))
        # per device: sigma of the factor (zero: no factor yet) and the warm-start phi of two voltage patterns
        self.state = np.zeros((d, self._k.state_size(npts)))
        if params.thermal_model > 0:
            # one dense operator per distinct pair of film and substrate conductivities, shared by the devices
            pairs = self.table[:, [COL["thermal_conductivity_w_per_mk"],
                                   COL["substrate_thermal_conductivity_w_per_mk"]]]
            unique, index = np.unique(pairs, axis=0, return_inverse=True)
            self.heat_band = np.stack([_shared_substrate_operator(g.nx, g.ny, g.hx, g.hy, g.thickness, float(kf),
                                                                  float(ks)).ravel() for kf, ks in unique])
            self.heat_index = np.ascontiguousarray(index.ravel(), dtype=np.intc)
        else:
            self.heat_band = np.zeros((d, self._k.band_size(npts, g.ny)))
            self._k.heat_factor(*self._geo, self.table, self.heat_band)
            self.heat_index = np.arange(d, dtype=np.intc)

    def _flat(self, n: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(n.reshape(n.shape[0], -1), dtype=np.float64)

    def read(self, n: np.ndarray, temperature: np.ndarray | None = None, volts: np.ndarray | None = None):
        d = n.shape[0]
        vv = read_volts(volts, d)
        currents = np.zeros((d, 4))
        status = self._k.read(*self._geo, self.table, self._flat(n), self.band, self.state, vv,
                              self.refactor_tolerance, currents, self.threads)
        if np.any(status < 0):
            raise ArithmeticError("potential matrix is not positive definite")
        return vv[:, 0] / -currents[:, 2], currents

    def pulse(self, n: np.ndarray, volts: np.ndarray, width_s: np.ndarray, *, deterministic: bool = False,
              ambient_k: np.ndarray | None = None) -> tuple[np.ndarray, PulseRecord]:
        d = n.shape[0]
        flat = self._flat(n).copy()
        table = self.table
        if ambient_k is not None:
            table = table.copy()
            table[:, COL["ambient_temperature_k"]] = ambient_k
        out = np.zeros((d, 6))
        status = self._k.pulse(*self._geo, table, flat, self.band, self.state, self.heat_band, self.heat_index,
                               np.asarray(volts).astype(np.float64, order="C"),
                               np.broadcast_to(width_s, (d,)).astype(np.float64, order="C"),
                               bool(deterministic), self.keys, self.counters, self.params.max_outflow_fraction,
                               self.params.sigma_tolerance, self.refactor_tolerance,
                               int(self.params.max_steps_per_pulse), out, self.threads)
        if np.any(status < 0):
            raise ArithmeticError("potential matrix is not positive definite")
        return flat.reshape(n.shape), PulseRecord(out[:, 0], out[:, 1], out[:, 2], out[:, 3].astype(np.int64),
                                                  out[:, 4].astype(np.uint8), out[:, 5])


    def ffp(self, n: np.ndarray, r_grid: np.ndarray, vw: np.ndarray, sign: float, width_s: float, r_stop: float,
            limit: int, r_now: np.ndarray, events: np.ndarray, record: np.ndarray, *,
            deterministic: bool = False) -> np.ndarray:
        """Feedforward events run inside the kernel: per device, read r -> write sign * Vw(r) -> read, while r
        is above (sign > 0) or below (sign < 0) ``r_stop`` and ``events[d] < limit``.

        ``r_now`` (devices,) and ``events`` (devices, C long) are updated in place; ``record`` (devices,
        max_events, 6) receives (r, amplitude, peak T, mean T, energy, flag bits) of each event. Returns the new counts.
        The same pulses and reads as ``pulse``/``read`` called from Python, without returning between events.
        """
        flat = self._flat(n).copy()
        status = self._k.ffp(*self._geo, self.table, flat, self.band, self.state, self.heat_band, self.heat_index,
                             np.ascontiguousarray(r_grid, dtype=np.float64), np.ascontiguousarray(vw, dtype=np.float64),
                             float(sign), float(width_s), READ_VOLTAGE_V, float(r_stop), int(limit), r_now, events,
                             bool(deterministic), self.keys, self.counters, self.params.max_outflow_fraction,
                             self.params.sigma_tolerance, self.refactor_tolerance,
                             int(self.params.max_steps_per_pulse), record, self.threads)
        if np.any(status < 0):
            raise ArithmeticError("potential matrix is not positive definite")
        return flat.reshape(n.shape)


def field_maps(params: Bulk4TParams, table_row: np.ndarray, n: np.ndarray, volts: np.ndarray):
    """Potential (V) and temperature (K) maps of one device under terminal voltages ``volts`` (for plots)."""
    geom = Geometry.from_params(params)
    table = np.asarray(table_row, dtype=float)[None]
    t0 = table[0, COL["ambient_temperature_k"]]
    sigma = conductivity(np.asarray(n, float)[None], np.full((1, *n.shape), t0), table)[0]
    phi, _ = solve_potential(sigma, np.asarray(volts, float), geom)
    temperature = np.full(n.shape, t0)
    if table[0, COL["joule_heating"]] > 0:
        p = table[0, COL["joule_heating"]] * joule_power(sigma, phi, np.asarray(volts, float), geom)
        temperature = t0 + heat_solver(table[0], geom).solve(p.ravel()).reshape(n.shape)
    return phi, temperature
