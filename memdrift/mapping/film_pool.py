"""Film levels through a pool: every weight of a network on a level of an emulated TiO2-x film.

One emulated film per weight of a network is beyond reach, so a documented pool
stands in for the array: ``films`` films of the seed (each with its own
device-to-device parameters from the preset's ``[variation]`` and its own hop
streams) are conditioned, mapped (the ΔR map and the feedforward table Vw(r)
measured on each film, as the paper maps each device) and then run through
``realisations`` FFP cycles, HRS → LRS → HRS. Each potentiation trace (the read
after every FFP event, from the HRS crossing to the LRS crossing) is one
realisation of the film's levels.

Levels. A depth of b bits asks for ``n = 2^b`` levels evenly spaced in
conductance over the window ``[1/hrs_ohm, 1/lrs_ohm]`` (the preset's
initialisation targets, which bound every trace). Each realisation is segmented
on those targets by the paper's method (:func:`memdrift.emulator.segmentation.segment_levels`
on the conductance trace, the reset state before the first event prepended):
level ``j`` of a realisation is its reading nearest target ``j`` (index ``m_j``, no
earlier than the previous level's). Segmenting in conductance, not resistance,
keeps the ideal weights uniform: a weight is ``∝ G − G_ref``. A level whose nearest
reading is more than half a spacing away is *unreached* in that realisation (a
single event carried the film across it, or the trace has fewer readings than
levels asked): the weight still gets the reading the segmentation picks, and it
is counted (``out_of_band``), never dropped.

Mapping (one device against a reference, the TiO2-x paper's single-device
mapping): a tile's stored weight ``w`` with ``w_max = max |w|`` of the tile goes
to level ``j = rint((w / w_max + 1) / 2 · (n − 1))``; the weight the device holds is

    w_held = (G − G_ref) · 2 w_max / (g_max − g_min),   G_ref = (g_min + g_max) / 2,

with ``G_ref`` an ideal reference (a fixed current, not an emulated film), so the
ideal quantised weight of level ``j`` is ``−w_max + j · 2 w_max / (n − 1)``. With aging,
``reference="aged-film"`` makes the reference of each input line of a tile a film of the
pool (drawn from its own stream) at the window's middle as programmed, aged by that
film's emulated change held from its own middle state (kept on the aging branch): the
fixed reference keeps the films' relaxation towards their uniform state as a common
offset of every weight, which an aged reference film shares and so cancels. Every
weight draws its film and its realisation (uniform, from the counter-based stream
of the seed and its global index, the same draw at every bit depth), so results
do not depend on chunking.

Accounting, attributed per weight: the weight's device is charged the emulated
FFP events of its realisation from HRS up to its level (events ``1 … m_j``; level
0 at the reset state costs nothing), their summed pulse energy, and their time
(``m_j`` write pulses of ``ffp_width_s``; the emulator's read takes no time, so reads
are not timed). The network's totals are the sums over weights: a realisation
shared by many weights is charged once per weight, as each weight's own device
would pay it. What the pool spent besides (conditioning, the ΔR maps' pulses, the
depression branches that bring each film back to HRS) is reported per film and
in total as the pool's overhead, not spread over the weights; the mean return
branch is the reset a real device would pay before being programmed. The
automatic ±6 V initialisations between the map's runs and before the first FFP
branch are not recorded by the emulator and are not counted.

Aging from the film's own physics. With ``ages`` ((temperature K, time s) pairs), each
film of the pool runs one more FFP potentiation branch from HRS after its
realisations (the same procedure, one more realisation), kept at ``age_levels``
anchors evenly spaced in conductance over the window (the state where the branch
first reads at or above each anchor; anchor 0 the reset state). Each anchor state
is held at zero bias at each temperature for each time (times accumulate from the
anchor state, every temperature starts from it again; the kernel's field-free
hopping, :func:`memdrift.emulator.bulk4t_schemes.hold`) and read at the film's
ambient: ``ΔG_f(anchor, T, t)``, zero where no vacancy moved. A weight on film
``f`` at level ``j`` then holds its programmed reading plus ``ΔG_f`` linearly
interpolated in conductance at target ``j`` (exactly the anchor's where
``age_levels = 2^bits``, the anchors being that depth's targets). The
approximation: the aging of one realisation of film ``f`` near a level stands
for every realisation of that film at that level. A hold's cost grows with its
relaxation steps, each bounded by the fastest cell (at most ``max_outflow_fraction``
of a cell leaves per step); an age whose bound (:func:`age_steps_bound`) is above
``max_age_steps`` is refused before anything runs.

``age_mode = 'realisations'`` drops the approximation for the depths it is given: every
potentiation trace keeps its vacancy map after every event (the kernel stopped and resumed
there, the same events), and each (film, realisation, level) state the weights of those depths
sit on is held on its own device (its film's parameters, a hop stream of the seed and the
state's index, so neither the chunk of states nor the thread count changes it); a weight then
holds its reading plus its own state's change. The first FFP cycles after the map age a few µS
otherwise than the settled film the anchors' branch stands for. Its cost is a hold per state,
bounded before anything runs (:func:`realisation_steps_bound`, refused above ``max_realisation_steps``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from memdrift.errors import MemdriftError, check_range
from memdrift.mapping.physics_program import PhysicsProgram, split_layers

#: stream of the weight → (film, realisation) draws, apart from the films' own streams
DRAW_STREAM = np.uint64(0x6A09E667F3BCC909)
#: stream of the reference device → film draws, apart from the weights' draws
REFERENCE_STREAM = np.uint64(0xBB67AE8584CAA73B)
#: a weight's reference: the window's middle at every age, or a film at the middle aged by its own physics
REFERENCES = ("fixed", "aged-film")
BITS_RANGE = (1, 12)
#: FFP events above which a potentiation branch is cut (the preset's branches take ~520)
MAX_EVENTS = 2000
#: conductance anchors of the window at which each film is aged (8: exactly the levels of 3 bits)
AGE_LEVELS = 8
AGE_LEVELS_RANGE = (2, 1024)
#: relaxation steps (upper bound) one hold may take: ~61 us of CPU each on a 32 x 32 film, so about
#: two minutes per film and anchor; 10 years at 300 K and ~5 months at 358 K on tio2x-4t fit, a year at 358 K not
MAX_AGE_STEPS = 2e6
#: how the weights' aging is found: from each film's anchors (one more realisation per film, interpolated at the
#: level), or from every (film, realisation, level) state the weights sit on, each held on its own
AGE_MODES = ("anchors", "realisations")
#: stream of the realisation states' holds, apart from the films' own hop streams
HOLD_STREAM = np.uint64(0x3C6EF372FE94F82B)
#: relaxation steps (the bound, summed over the realisation states held) ``age_mode = 'realisations'`` may take:
#: ~61 us of CPU per step on a 32 x 32 film and the holds take ~0.6 of their bound, so some 12 minutes of CPU
MAX_REALISATION_STEPS = 2e7
#: realisation states held together (one kernel call over a chunk; the result does not depend on it)
CHUNK_STATES = 256
#: reading indices per (film, realisation) in a state's hold stream index (an FFP branch has at most 2^20 events)
_STATE_STRIDE = (1 << 20) + 1


@dataclass(frozen=True)
class FilmPool:
    """The pool's potentiation traces and what they cost.

    ``conductance_s`` (films, realisations, 1 + events): read before the first event (the reset
    state) and after every event, NaN past the trace's end; ``energy_j`` (films, realisations,
    events) the source energy of each event's write pulse; ``events`` (films, realisations).
    ``overhead`` per film: pulses, energy (J), time (s) of the conditioning, the ΔR map and the
    return branches (keys ``*_pulses``, ``*_energy_j``, ``*_time_s``). ``aging``: the films' changes at
    zero bias (:class:`FilmAging`), None for a pool built without ages.
    """

    conductance_s: np.ndarray
    energy_j: np.ndarray
    events: np.ndarray
    g_min_s: float
    g_max_s: float
    ffp_width_s: float
    overhead: dict[str, np.ndarray]
    grid: tuple[int, int]
    seed: int
    wall_s: float = 0.0
    cpu_s: float = 0.0
    aging: FilmAging | None = None

    @property
    def films(self) -> int:
        return int(self.conductance_s.shape[0])

    @property
    def realisations(self) -> int:
        return int(self.conductance_s.shape[1])

    def levels(self, bits: int) -> PoolLevels:
        """The pool segmented to ``2^bits`` levels on the window's common targets."""
        from memdrift.emulator.segmentation import segment_levels

        bits = int(check_range("bits", bits, *BITS_RANGE))
        n = 1 << bits
        targets = np.linspace(self.g_min_s, self.g_max_s, n)
        shape = (self.films, self.realisations)
        index = np.zeros(shape + (n,), dtype=np.int64)
        actual = np.full(shape + (n,), np.nan)
        for f in range(self.films):
            for c in range(self.realisations):
                trace = self.conductance_s[f, c, : int(self.events[f, c]) + 1]
                seg = segment_levels(trace, n, r_start=self.g_min_s, r_end=self.g_max_s)
                index[f, c], actual[f, c] = seg.index, seg.actual
        offset = (actual - targets) / (targets[1] - targets[0])
        return PoolLevels(bits, targets, index, actual, offset)


@dataclass(frozen=True)
class PoolLevels:
    """Per (film, realisation, level): reading index ``m_j``, conductance reached, offset in spacings."""

    bits: int
    targets_s: np.ndarray
    index: np.ndarray
    conductance_s: np.ndarray
    offset: np.ndarray

    @property
    def reached(self) -> np.ndarray:
        """Per (film, realisation, level): a reading lies within half a spacing of the target."""
        from memdrift.emulator.segmentation import SKIP_OFFSET

        return np.abs(self.offset) <= SKIP_OFFSET

    def spread_spacings(self) -> float:
        """Mean over levels of the standard deviation over the pool's realisations, in level spacings."""
        return float(np.nanstd(self.offset.reshape(-1, self.offset.shape[-1]), axis=0).mean())


@dataclass(frozen=True)
class FilmAging:
    """Each film's conductance change at zero bias from its anchor states, by (temperature K, time s).

    ``anchors_s`` (anchors,) the window's conductances; ``reached_s`` (films, anchors) the conductance read
    where the aging branch was kept; ``events`` (films, anchors) its FFP events there; ``delta_s`` and
    ``steps`` by (T, t): (films, anchors) conductance change and relaxation steps of the hold to ``t``.
    """

    anchors_s: np.ndarray
    reached_s: np.ndarray
    events: np.ndarray
    delta_s: dict[tuple[float, float], np.ndarray]
    steps: dict[tuple[float, float], np.ndarray]
    wall_s: float = 0.0
    cpu_s: float = 0.0
    #: the reference state (None: not aged), per film: read where the aging branch first reads at or
    #: above the window's middle, its FFP events there, and its change and steps by (T, t) as the anchors'
    reference_reached_s: np.ndarray | None = None
    reference_events: np.ndarray | None = None
    reference_delta_s: dict[tuple[float, float], np.ndarray] = field(default_factory=dict)
    reference_steps: dict[tuple[float, float], np.ndarray] = field(default_factory=dict)
    #: ``age_mode = 'realisations'`` (empty otherwise): by (T, t), (films, realisations, 1 + events) the change of
    #: the state at each reading of each potentiation trace, held on its own (NaN: not a level of ``realisation_bits``)
    #: and its relaxation steps (−1: not held); the depths whose levels were held, the states held, their wall/CPU s
    realisation_delta_s: dict[tuple[float, float], np.ndarray] = field(default_factory=dict)
    realisation_steps: dict[tuple[float, float], np.ndarray] = field(default_factory=dict)
    realisation_bits: tuple[int, ...] = ()
    realisation_states: int = 0
    #: with the reference state: (films, realisations) the reading where each potentiation trace first reads at
    #: or above the window's middle (its state held too), a reference film programmed by that realisation
    realisation_reference_index: np.ndarray | None = None
    realisation_wall_s: float = 0.0
    realisation_cpu_s: float = 0.0

    def level_delta_s(self, key: tuple[float, float], targets_s: np.ndarray) -> np.ndarray:
        """(films, levels): each film's change interpolated linearly in conductance at ``targets_s``."""
        delta = self.delta_s[key]
        return np.stack([np.interp(targets_s, self.anchors_s, d) for d in delta])


def age_steps_bound(params, temperature_k: float, time_s: float) -> float:
    """Relaxation steps a zero-bias hold of ``time_s`` at ``temperature_k`` takes at most on ``params``' grid.

    At zero bias a vacancy leaves a cell over at most four faces at ``(a/h)^2 ν exp(−Ea/kT)`` each, and a
    step lets at most ``max_outflow_fraction`` of the fastest cell leave: steps ≤ t · 4 (a/h)² ν e^(−Ea/kT) / f.
    The nominal parameters (the preset's variation moves it by a few per cent).
    """
    from memdrift.emulator.params import BOLTZMANN_EV

    h = min(params.side_length_m / params.grid_x, params.side_length_m / params.grid_y)
    rate = params.attempt_frequency_hz * np.exp(-params.activation_energy_ev / (BOLTZMANN_EV * float(temperature_k)))
    return float(time_s) * 4.0 * (params.hop_distance_m / h) ** 2 * rate / params.max_outflow_fraction + 1.0


def check_ages(params, ages: Sequence[tuple[float, float]], max_age_steps: float = MAX_AGE_STEPS) -> None:
    """Refuse an age the film cannot be held for within ``max_age_steps`` relaxation steps (before anything runs)."""
    check_range("max_age_steps", max_age_steps, 1.0, 1e12)
    for temp_k, t_s in ages:
        check_range("age temperature", temp_k, 1.0, 2000.0, unit="K")
        check_range("age", t_s, 0.0, 1e10, low_open=True, unit="s")
        steps = age_steps_bound(params, temp_k, t_s)
        if steps > max_age_steps:
            longest = (max_age_steps - 1.0) / (steps - 1.0) * t_s
            # three digits rounded down, so the age the message allows is allowed
            unit = 10.0 ** (np.floor(np.log10(longest)) - 2)
            longest = np.floor(longest / unit) * unit
            raise MemdriftError(
                f"age = {t_s:g} s at {temp_k:g} K is out of range for this film: its zero-bias hold takes up to "
                f"{steps:.3g} relaxation steps on a {int(params.grid_x)} x {int(params.grid_y)} grid (each bounded by "
                f"the fastest cell); allowed: at most {max_age_steps:.3g} steps, ages up to {longest:.3g} s at "
                f"{temp_k:g} K")


def realisation_steps_bound(params, films: int, realisations: int, bits: Sequence[int], max_events: int,
                            ages: Sequence[tuple[float, float]], reference: bool = False) -> tuple[int, float]:
    """(states, relaxation steps) ``age_mode = 'realisations'`` holds at most: every (film, realisation, level)
    of every depth and, with ``reference``, each realisation's middle state (a realisation's states together
    are at most its ``1 + max_events`` readings), each held at each temperature to its longest time (times
    accumulate from the state)."""
    levels = min(sum(1 << int(b) for b in set(bits)) + int(bool(reference)), int(max_events) + 1)
    longest: dict[float, float] = {}
    for temp_k, t_s in ages:
        longest[float(temp_k)] = max(longest.get(float(temp_k), 0.0), float(t_s))
    per_state = sum(age_steps_bound(params, tk, ts) for tk, ts in longest.items())
    states = int(films) * int(realisations) * levels
    return states, states * per_state


def check_realisation_budget(params, films: int, realisations: int, bits: Sequence[int], max_events: int,
                             ages: Sequence[tuple[float, float]],
                             max_steps: float = MAX_REALISATION_STEPS, reference: bool = False) -> None:
    """Refuse ``age_mode = 'realisations'`` whose holds could take more than ``max_steps`` steps (before anything
    runs)."""
    check_range("max_realisation_steps", max_steps, 1.0, 1e12)
    if not bits:
        raise MemdriftError("age_bits is empty; allowed with age_mode = 'realisations': the bit depths (1-12) "
                            "whose levels are aged")
    for b in bits:
        check_range("age_bits", b, *BITS_RANGE)
    states, steps = realisation_steps_bound(params, films, realisations, bits, max_events, ages, reference)
    if steps > max_steps:
        raise MemdriftError(
            f"age_mode = 'realisations' is out of range for this pool: {states} realisation states "
            f"({int(films)} films x {int(realisations)} realisations x the levels of bits "
            f"{','.join(str(int(b)) for b in sorted(set(bits)))}) held to the longest age at each temperature take "
            f"up to {steps:.3g} relaxation steps on a {int(params.grid_x)} x {int(params.grid_y)} grid; allowed: at "
            f"most {max_steps:.3g} steps (fewer films, realisations or bits, shorter ages, a coarser grid, or "
            "age_mode = 'anchors')")


def _hold_keys(seed: int, ids: np.ndarray) -> np.ndarray:
    """Hop-stream key of each held state, from the seed and the state's index alone (not its chunk)."""
    from memdrift.emulator.randomness import splitmix64

    root = np.random.SeedSequence(int(seed)).generate_state(2, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return splitmix64(splitmix64(splitmix64(np.asarray(ids, dtype=np.uint64) ^ root[0]) + root[1]) ^ HOLD_STREAM)


def _age_realisations(dev, pool: FilmPool, kept: Sequence[np.ndarray], *, bits: Sequence[int],
                      ages: Sequence[tuple[float, float]], threads: int, backend: str,
                      chunk_states: int, reference: bool = False) -> dict:
    """Every (film, realisation, level) state of ``bits`` held on its own device (the film's parameters, the
    state's own hop stream), in chunks of ``chunk_states``: FilmAging's ``realisation_*`` fields."""
    from memdrift.emulator import bulk4t_schemes as bs

    wall, cpu = time.perf_counter(), time.process_time()
    films, reals, width = pool.films, pool.realisations, pool.conductance_s.shape[2]
    need = np.zeros((films, reals, width), dtype=bool)
    for b in sorted(set(int(b) for b in bits)):
        index = pool.levels(b).index
        f, c = np.meshgrid(np.arange(films), np.arange(reals), indexing="ij")
        need[f[..., None], c[..., None], index] = True
    ref_index = None
    if reference:
        # each realisation as a reference's programming: its first reading at or above the middle (the last
        # reading where none is), as the aging branch's reference stop
        middle_s = 0.5 * (pool.g_min_s + pool.g_max_s)
        ref_index = np.empty((films, reals), dtype=np.int64)
        for f in range(films):
            for c in range(reals):
                trace = pool.conductance_s[f, c, : int(pool.events[f, c]) + 1]
                above = np.flatnonzero(trace >= middle_s)
                ref_index[f, c] = above[0] if above.size else trace.size - 1
                need[f, c, ref_index[f, c]] = True
    fi, ci, mi = np.nonzero(need)
    ids = (fi * reals + ci) * _STATE_STRIDE + mi
    by_temp: dict[float, list[float]] = {}
    for temp_k, t_s in ages:
        by_temp.setdefault(float(temp_k), []).append(float(t_s))
    keys = [(tk, ts) for tk, ts_ in by_temp.items() for ts in ts_]
    delta = {key: np.full((films, reals, width), np.nan) for key in keys}
    steps = {key: np.full((films, reals, width), -1, dtype=np.int64) for key in keys}
    for start in range(0, fi.size, int(chunk_states)):
        sl = slice(start, min(start + int(chunk_states), fi.size))
        f, c, m = fi[sl], ci[sl], mi[sl]
        held = bs.Bulk4TDevices.from_table(dev.params, dev.table[f], _hold_keys(pool.seed, ids[sl]),
                                           threads=threads, backend=backend, deterministic=dev.deterministic)
        states = np.stack([kept[c_][f_, m_] for f_, c_, m_ in zip(f, c, m)])
        d_k, s_k = _hold_state(held, bs, states, by_temp)
        for key in keys:
            delta[key][f, c, m], steps[key][f, c, m] = d_k[key], s_k[key]
    return dict(realisation_delta_s=delta, realisation_steps=steps,
                realisation_bits=tuple(sorted(set(int(b) for b in bits))), realisation_states=int(fi.size),
                realisation_reference_index=ref_index,
                realisation_wall_s=time.perf_counter() - wall, realisation_cpu_s=time.process_time() - cpu)


def _hold_state(dev, bs, state: np.ndarray, by_temp: dict[float, list[float]]
                ) -> tuple[dict[tuple[float, float], np.ndarray], dict[tuple[float, float], np.ndarray]]:
    """Every film held from ``state`` (films, nx, ny) at each temperature to each of its times: (change, steps)."""
    delta, steps = {}, {}
    for temp_k, times in by_temp.items():
        dev.n = state.copy()
        g0 = 1.0 / dev.read()
        elapsed, taken = 0.0, np.zeros(dev.devices, dtype=np.int64)
        for t_s in sorted(set(times)):
            taken += bs.hold(dev, t_s - elapsed, temp_k)
            steps[(temp_k, t_s)] = taken.copy()
            elapsed = t_s
            # no vacancy moved: the film is what it was (a re-read differs only by the solver's tolerance)
            same = np.all(dev.n == state, axis=(1, 2))
            delta[(temp_k, t_s)] = np.where(same, 0.0, 1.0 / dev.read() - g0)
    return delta, steps


def _age_pool(dev, vw_table: np.ndarray, r_grid: np.ndarray, *, g_min_s: float, g_max_s: float,
              ffp_width_s: float, max_events: int, ages: Sequence[tuple[float, float]],
              age_levels: int, reference: bool = False) -> FilmAging:
    """One more potentiation branch per film, kept at the anchors (and, with ``reference``, at the window's
    middle), each kept state held and read."""
    from memdrift.emulator import bulk4t_schemes as bs

    wall, cpu = time.perf_counter(), time.process_time()
    anchors = np.linspace(g_min_s, g_max_s, int(age_levels))
    states = np.empty((dev.devices, anchors.size, *dev.n.shape[1:]))
    reached = np.empty((dev.devices, anchors.size))
    events = np.zeros((dev.devices, anchors.size), dtype=np.int64)
    # anchor 0 is the reset state the branch starts from, as level 0 is the reset reading of every trace
    states[:, 0], reached[:, 0] = dev.n, 1.0 / dev.read()
    stops_s = anchors[1:]
    middle_s = 0.5 * (g_min_s + g_max_s)
    if reference:
        # one more stop on the same branch: the kernel stops and resumes there, the anchors' events unchanged
        at = int(np.searchsorted(stops_s, middle_s))
        stops_s = np.insert(stops_s, at, middle_s)
    kept, r_at, ev_at = bs.ffp_states(dev, vw_table, r_grid, 1.0 / stops_s, width_s=ffp_width_s,
                                      max_events=max_events)
    rest = np.ones(stops_s.size, dtype=bool)
    if reference:
        rest[at] = False
        ref_state, ref_reached, ref_events = kept[:, at].copy(), 1.0 / r_at[:, at], ev_at[:, at].copy()
    states[:, 1:], reached[:, 1:], events[:, 1:] = kept[:, rest], 1.0 / r_at[:, rest], ev_at[:, rest]
    by_temp: dict[float, list[float]] = {}
    for temp_k, t_s in ages:
        by_temp.setdefault(float(temp_k), []).append(float(t_s))
    delta = {(tk, ts): np.empty((dev.devices, anchors.size)) for tk, ts_ in by_temp.items() for ts in ts_}
    steps = {key: np.zeros((dev.devices, anchors.size), dtype=np.int64) for key in delta}
    for k in range(anchors.size):
        d_k, s_k = _hold_state(dev, bs, states[:, k], by_temp)
        for key in delta:
            delta[key][:, k], steps[key][:, k] = d_k[key], s_k[key]
    extra = {}
    if reference:
        # held after every anchor, so the anchors' holds draw what they draw without it
        ref_delta, ref_steps = _hold_state(dev, bs, ref_state, by_temp)
        extra = dict(reference_reached_s=ref_reached, reference_events=ref_events, reference_delta_s=ref_delta,
                     reference_steps=ref_steps)
    return FilmAging(anchors, reached, events, delta, steps, time.perf_counter() - wall,
                     time.process_time() - cpu, **extra)


def build_pool(params, *, films: int = 8, realisations: int = 2, seed: int = 0, threads: int = 1,
               noise: bool = True, grid: int | tuple[int, int] | None = None, map_pulses: int = 100,
               map_amplitudes_v: Sequence[float] | None = None, ffp_width_s: float = 0.8,
               target_ohm: float = 0.28, max_events: int = MAX_EVENTS, hrs_ohm: float | None = None,
               lrs_ohm: float | None = None, conditioning_cycles: int = 2, init_amplitude_v: float = 6.0,
               calibration: dict | None = None, progress: bool = False, backend: str = "compiled",
               ages: Sequence[tuple[float, float]] = (), age_levels: int = AGE_LEVELS,
               max_age_steps: float = MAX_AGE_STEPS, reference: bool = False, age_mode: str = "anchors",
               age_bits: Sequence[int] = (), chunk_states: int = CHUNK_STATES,
               max_realisation_steps: float = MAX_REALISATION_STEPS) -> FilmPool:
    """Condition, map and FFP-cycle a pool of ``films`` films ``realisations`` times (the scheme's defaults).

    ``grid``: cells per side (the preset's 32 × 32 by default; a coarser grid is faster and shifts the
    levels); ``noise`` False: expected hop counts. ``hrs_ohm`` / ``lrs_ohm`` default to the preset's
    calibration (880 / 740 ohm without one), and bound the window. ``backend``: the compiled kernel or
    its SciPy twin (``reference``), for benchmarks and checks. ``ages``: (temperature K, time s) pairs at
    which every film is aged from ``age_levels`` anchor states (none: no aging, the pool as without it).
    ``reference``: each film also keeps and ages the state at the window's middle, for the aged-film
    reference of :func:`program_network` (its anchors' aging is the same bit for bit).
    ``age_mode`` ``realisations``: besides the anchors (the same bit for bit), the state at every level of
    ``age_bits`` of every realisation is kept on its potentiation branch and held on its own (the film's
    parameters, a hop stream of the seed and the state's index; ``chunk_states`` at a time, which changes
    nothing), for :func:`program_network`'s ``age_mode``; refused before anything runs where the holds'
    step bound (:func:`realisation_steps_bound`) is above ``max_realisation_steps``.
    """
    from memdrift.emulator import bulk4t_schemes as bs

    check_range("pool", films, 1, 4096)
    check_range("realisations", realisations, 1, 1024)
    check_range("max_events", max_events, 1, 1 << 20)
    check_range("map_pulses", map_pulses, 1, 100_000)
    check_range("ffp_width_s", ffp_width_s, 0.0, None, low_open=True, unit="s")
    check_range("conditioning_cycles", conditioning_cycles, 0, 1000)
    calibration = dict(calibration or {})
    hrs = float(hrs_ohm if hrs_ohm is not None else calibration.get("hrs_ohm", 880.0))
    lrs = float(lrs_ohm if lrs_ohm is not None else calibration.get("lrs_ohm", 740.0))
    check_range("lrs_ohm", lrs, 0.0, None, low_open=True, unit="ohm")
    check_range("hrs_ohm", hrs, lrs, None, low_open=True, unit="ohm (> lrs_ohm)")
    if grid is not None:
        gx, gy = (grid, grid) if np.isscalar(grid) else grid
        check_range("grid", gx, 4, 512)
        check_range("grid", gy, 4, 512)
        params = params.replace(grid_x=float(gx), grid_y=float(gy))
    ages = [(float(tk), float(ts)) for tk, ts in ages]
    if ages:
        check_range("age_levels", age_levels, *AGE_LEVELS_RANGE)
        check_ages(params, ages, max_age_steps)
    elif reference:
        raise MemdriftError("reference is only for aging (a reference film ages with the pool); allowed with ages")
    if age_mode not in AGE_MODES:
        raise MemdriftError(f"age_mode = {age_mode!r} is unknown; allowed: {', '.join(AGE_MODES)}")
    per_realisation = age_mode == "realisations"
    if per_realisation:
        if not ages:
            raise MemdriftError("age_mode = 'realisations' is only for aging; allowed with ages")
        check_range("chunk_states", chunk_states, 1, 1 << 20)
        check_realisation_budget(params, films, realisations, tuple(age_bits), max_events, ages,
                                 max_realisation_steps, bool(reference))
    wall, cpu = time.perf_counter(), time.process_time()
    dev = bs.Bulk4TDevices(params, int(films), seed=int(seed), threads=int(threads), deterministic=not noise,
                           backend=backend)
    dev.init_first_pulse_s = float(calibration.get("init_first_pulse_s", bs.INIT_FIRST_PULSE_S))
    dev.init_step_growth = float(calibration.get("init_step_growth", bs.INIT_STEP_GROWTH))
    over = {k: np.zeros(int(films)) for k in ("conditioning_pulses", "conditioning_energy_j", "conditioning_time_s",
                                              "map_pulses", "map_energy_j", "map_time_s",
                                              "return_pulses", "return_energy_j", "return_time_s")}
    for _ in range(int(conditioning_cycles)):
        for sign in (+1.0, -1.0):
            rec = dev.write(sign * abs(init_amplitude_v), 100.0)
            over["conditioning_pulses"] += 1
            over["conditioning_energy_j"] += rec.energy
            over["conditioning_time_s"] += 100.0
    amps = bs.PAPER_AMPLITUDES_V if map_amplitudes_v is None else tuple(map_amplitudes_v)
    init = {"hrs_ohm": hrs, "lrs_ohm": lrs, "init_amplitude_v": float(init_amplitude_v)}
    ident = bs.run_identical(dev, amps, 2.0, int(map_pulses), progress=progress, **init)
    over["map_pulses"] += np.isfinite(ident["energy"]).sum(axis=(1, 2))
    over["map_energy_j"] += np.nansum(ident["energy"], axis=(1, 2))
    over["map_time_s"] += 2.0 * np.isfinite(ident["energy"]).sum(axis=(1, 2))
    m = bs.build_dr_map(ident, ffp_width_s=float(ffp_width_s), map_width_s=2.0, target_ohm=float(target_ohm))
    branches = (+1.0, -1.0) * int(realisations)
    res = bs.run_ffp(dev, m["vw_table"], m["dr_map_resistance"], width_s=float(ffp_width_s),
                     max_events=int(max_events), progress=progress, branches=branches,
                     keep_states=per_realisation, **init)
    pot = np.arange(0, 2 * int(realisations), 2)
    used = res["resistance"].shape[2]
    g = np.full((int(films), int(realisations), used + 1), np.nan)
    g[:, :, 0] = 1.0 / res["resistance_start"][:, pot]
    g[:, :, 1:] = 1.0 / res["resistance"][:, pot]
    energy = np.nan_to_num(res["energy"][:, pot], nan=0.0)
    events = res["events"][:, pot]
    back = res["events"][:, pot + 1]
    over["return_pulses"] += back.sum(axis=1)
    over["return_energy_j"] += np.nansum(res["energy"][:, pot + 1], axis=(1, 2))
    over["return_time_s"] += float(ffp_width_s) * back.sum(axis=1)
    aging = None
    if ages:
        aging = _age_pool(dev, m["vw_table"], m["dr_map_resistance"], g_min_s=1.0 / hrs, g_max_s=1.0 / lrs,
                          ffp_width_s=float(ffp_width_s), max_events=int(max_events), ages=ages,
                          age_levels=int(age_levels), reference=bool(reference))
    pool = FilmPool(g, energy, events, 1.0 / hrs, 1.0 / lrs, float(ffp_width_s), over,
                    (int(params.grid_x), int(params.grid_y)), int(seed), aging=aging)
    if per_realisation:
        extra = _age_realisations(dev, pool, res["states"], bits=tuple(age_bits), ages=ages, threads=int(threads),
                                  backend=backend, chunk_states=int(chunk_states), reference=bool(reference))
        pool = replace(pool, aging=replace(aging, **extra))
    return replace(pool, wall_s=time.perf_counter() - wall, cpu_s=time.process_time() - cpu)


@dataclass
class FilmProgram(PhysicsProgram):
    """The film route's programmed layers: arrays over (1, rows, columns), one device per weight.

    ``level``, ``film`` and ``realisation`` per weight; ``converged`` is the level reached. ``reference``:
    ``fixed`` (``G_ref`` the window's middle at every age) or ``aged-film`` (one reference film per input
    line of a tile, ``reference_film`` (columns,) per layer, programmed to the window's middle and aged by
    its film's own physics: ``reference_aged_s[(T, t)]`` (columns,) per layer).
    """

    bits: int = 0
    level: list[np.ndarray] = field(default_factory=list)
    film: list[np.ndarray] = field(default_factory=list)
    realisation: list[np.ndarray] = field(default_factory=list)
    reference: str = "fixed"
    reference_film: list[np.ndarray] = field(default_factory=list)
    reference_aged_s: dict[tuple[float, float], list[np.ndarray]] = field(default_factory=dict)

    @property
    def g_ref_s(self) -> float:
        return 0.5 * (self.g_min_s + self.g_max_s)

    def weights(self, layer: int, conductance_s: np.ndarray | None = None,
                reference_s: np.ndarray | None = None) -> np.ndarray:
        """The weights the layer's devices hold: ``(G − G_ref) · 2 w_max / (g_max − g_min)``; ``reference_s``
        (columns,) the reference of each input line (None: the fixed ``G_ref``)."""
        g = self.conductance_s[layer] if conductance_s is None else conductance_s
        ref = self.g_ref_s if reference_s is None else reference_s
        return (g[0] - ref) * 2.0 * self.w_max[layer] / (self.g_max_s - self.g_min_s)

    def aged_weights(self, layer: int, key: tuple[float, float]) -> np.ndarray:
        """The weights after aging ``key`` = (T, t): the aged devices against the reference at that age."""
        ref = self.reference_aged_s[key][layer] if self.reference == "aged-film" else None
        return self.weights(layer, self.aged_s[key][layer], ref)

    def ideal_weights(self, layer: int) -> np.ndarray:
        """The ideal quantised weights of the chosen levels, ``−w_max + j · 2 w_max / (n − 1)``."""
        n = 1 << self.bits
        return -self.w_max[layer] + self.level[layer][0] * 2.0 * self.w_max[layer] / (n - 1)


def draws(seed: int, count: int, films: int, realisations: int, first: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(film, realisation) of weights ``first … first + count − 1``: uniform, from the seed and the index alone."""
    from memdrift.emulator.randomness import device_keys, uniform

    keys = device_keys(int(seed), int(count), int(first))
    film = np.minimum((uniform(keys, 0, DRAW_STREAM) * films).astype(np.int64), films - 1)
    real = np.minimum((uniform(keys, 1, DRAW_STREAM) * realisations).astype(np.int64), realisations - 1)
    return film, real


def reference_draws(seed: int, count: int, films: int, first: int = 0) -> np.ndarray:
    """Film of reference devices ``first … first + count − 1``: uniform, from the seed and the index alone."""
    from memdrift.emulator.randomness import device_keys, uniform

    keys = device_keys(int(seed), int(count), int(first))
    return np.minimum((uniform(keys, 0, REFERENCE_STREAM) * films).astype(np.int64), films - 1)


def program_network(pool: FilmPool, weights: Sequence[np.ndarray], bits: int, *, seed: int = 0,
                    chunk_devices: int = 1 << 20, reference: str = "fixed", age_mode: str = "anchors") -> FilmProgram:
    """Every weight of ``weights`` (one 2-D array per analog layer) on a level of a film drawn from ``pool``.

    ``reference``: ``fixed`` (the ideal ``G_ref``, the window's middle, at every age) or ``aged-film``
    (each input line of a tile against its own reference film, drawn from the pool, at the window's
    middle as programmed and aged by that film's emulated change from its middle state; needs a pool
    built with ``reference=True``). ``age_mode``: ``anchors`` (a weight's change is its film's, interpolated
    at its level's target) or ``realisations`` (the change of its own (film, realisation, level) state, held
    on its own; needs a pool built with ``age_mode='realisations'`` and ``bits`` among its ``age_bits``).
    """
    check_range("chunk_devices", chunk_devices, 1, 1 << 30)
    if age_mode not in AGE_MODES:
        raise MemdriftError(f"age_mode = {age_mode!r} is unknown; allowed: {', '.join(AGE_MODES)}")
    if age_mode == "realisations":
        held = () if pool.aging is None else pool.aging.realisation_bits
        if int(bits) not in held:
            allowed = ", ".join(map(str, held)) or "none (a pool built with age_mode = 'realisations')"
            raise MemdriftError(f"bits = {bits} was not aged per realisation in this pool; allowed with age_mode = "
                                f"'realisations': {allowed}")
    if reference not in REFERENCES:
        raise MemdriftError(f"reference = {reference!r} is unknown; allowed: {', '.join(REFERENCES)}")
    if reference == "aged-film" and (pool.aging is None or pool.aging.reference_reached_s is None):
        raise MemdriftError("reference = 'aged-film' needs a pool whose films aged a reference state; allowed: "
                            "a pool built with ages and reference=True")
    tic = time.perf_counter()
    lv = pool.levels(bits)
    n = 1 << lv.bits
    reached = lv.reached
    # cumulative energy of a realisation up to and including each reading (reading 0: the reset state)
    cum_e = np.concatenate([np.zeros(pool.energy_j.shape[:2] + (1,)), np.cumsum(pool.energy_j, axis=2)], axis=2)
    shapes, levels, w_max = [], [], []
    for w in weights:
        w2 = np.asarray(w, dtype=np.float64).reshape(np.shape(w)[0], -1)
        m = max(float(np.abs(w2).max(initial=0.0)), 1e-30)
        w_max.append(m)
        levels.append(np.clip(np.rint((w2 / m + 1.0) * 0.5 * (n - 1)), 0, n - 1).astype(np.int64))
        shapes.append((1,) + w2.shape)
    flat = np.concatenate([lv_.ravel() for lv_ in levels]) if levels else np.zeros(0, dtype=np.int64)
    total = flat.size
    out = {"conductance_s": np.empty(total), "pulses": np.empty(total, dtype=np.int64), "energy_j": np.empty(total),
           "time_s": np.empty(total), "converged": np.empty(total, dtype=bool),
           "film": np.empty(total, dtype=np.int64), "realisation": np.empty(total, dtype=np.int64)}
    for start in range(0, total, int(chunk_devices)):
        stop = min(start + int(chunk_devices), total)
        j = flat[start:stop]
        f, c = draws(seed, stop - start, pool.films, pool.realisations, start)
        m_j = lv.index[f, c, j]
        out["conductance_s"][start:stop] = lv.conductance_s[f, c, j]
        out["pulses"][start:stop] = m_j
        out["energy_j"][start:stop] = cum_e[f, c, m_j]
        out["time_s"][start:stop] = m_j * pool.ffp_width_s
        out["converged"][start:stop] = reached[f, c, j]
        out["film"][start:stop], out["realisation"][start:stop] = f, c

    def split(a: np.ndarray) -> list[np.ndarray]:
        return split_layers(a, shapes)

    aged: dict[tuple[float, float], list[np.ndarray]] = {}
    if pool.aging is not None:
        targets = np.linspace(pool.g_min_s, pool.g_max_s, n)
        for key in pool.aging.delta_s:
            if age_mode == "realisations":
                # the weight's own (film, realisation, level) state, held on its own
                change = pool.aging.realisation_delta_s[key][out["film"], out["realisation"], out["pulses"]]
            else:
                # film f's change near level j, the same for every realisation of f (the route's approximation)
                change = pool.aging.level_delta_s(key, targets)[out["film"], flat]
            aged[key] = split(out["conductance_s"] + change)
    if not np.isfinite(out["conductance_s"]).all():
        raise MemdriftError("a pool level has no reading; allowed: a pool whose every trace moves")
    ref_film: list[np.ndarray] = []
    ref_aged: dict[tuple[float, float], list[np.ndarray]] = {}
    if reference == "aged-film":
        # one reference device per input line (column) of each tile, shared by the tile's outputs
        columns = [s[2] for s in shapes]
        films = reference_draws(seed, sum(columns), pool.films)
        ref_film = split_layers(films, [(c,) for c in columns])
        middle_s = 0.5 * (pool.g_min_s + pool.g_max_s)
        for key, d in pool.aging.reference_delta_s.items():
            # trimmed to the middle when programmed; its change is its film's, held from its middle state
            ref_aged[key] = [middle_s + d[f] for f in ref_film]
    prog = FilmProgram("ffp-levels", pool.g_min_s, pool.g_max_s, w_max, [np.full(s, np.nan) for s in shapes],
                       *(split(out[k]) for k in ("conductance_s", "pulses", "energy_j", "time_s", "converged")),
                       aged_s=aged, bits=lv.bits, level=[lvl[None] for lvl in levels], film=split(out["film"]),
                       realisation=split(out["realisation"]), reference=reference, reference_film=ref_film,
                       reference_aged_s=ref_aged)
    prog.target_s = [pool.g_min_s + lvl * (pool.g_max_s - pool.g_min_s) / (n - 1) for lvl in prog.level]
    prog.wall_s = {"program": time.perf_counter() - tic}
    return prog


def pool_summary(pool: FilmPool, bits: Sequence[int]) -> dict[str, np.ndarray]:
    """Per bit depth: levels asked, mean and least levels a realisation reaches, (realisation, level) pairs
    unreached, and the per-level spread over the pool in level spacings."""
    rows = {k: [] for k in ("levels", "reached_mean", "reached_min", "unreached", "spread_spacings")}
    for b in bits:
        lv = pool.levels(int(b))
        per = lv.reached.sum(axis=2)
        rows["levels"].append(1 << lv.bits)
        rows["reached_mean"].append(float(per.mean()))
        rows["reached_min"].append(int(per.min()))
        rows["unreached"].append(int((~lv.reached).sum()))
        rows["spread_spacings"].append(lv.spread_spacings())
    return {k: np.asarray(v) for k, v in rows.items()}
