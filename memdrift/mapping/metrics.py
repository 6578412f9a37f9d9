"""Device metrics with the papers' definitions, as pure functions on NumPy arrays.

Two papers fix the definitions (cited in ``docs/design.md``, "References"):

* HfOxSy/HfS2 (Fig. 2d-f): linear range of the mean potentiation/depression
  curves, linear fits and their R², states in the linear range, per-state
  cycle-to-cycle σ, bin width, and the count of differential bins G+ − G− whose
  width exceeds 2σ (16 states a device → 31 bins).
* TiO2−x four-terminal (eqns 1-3, "Multilevel resistance segmentation method",
  "Device program error sampler", Fig. 4c-d): Pearson cycle-to-cycle
  correlation, nonlinearity ν_p/ν_d, segmentation of a resistance trace into n
  levels and skipped levels at CPD 80 % (from :mod:`memdrift.emulator.segmentation`,
  shared with the ffp-segmentation scheme), Student-t program error per level.

Plus retention (power-law drift exponent, Arrhenius activation energy) and
energy. Every function states the definition it uses and, where the paper
leaves a choice open, which choice was made and why. Inputs are SI (S, Ω, s,
K, J); nothing here knows about datasets — :mod:`memdrift.mapping.extract`
applies these functions to the contract layout.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

from memdrift.constants import BOLTZMANN_EV_PER_K as K_B_EV
from memdrift.constants import PROGRAMMING_BRANCHES
from memdrift.errors import MemdriftError
# Segmentation and the skip count have one implementation, shared with the ffp-segmentation scheme
# (its module docstring gives the skip definition); re-exported so the extraction reads every metric here.
from memdrift.emulator.segmentation import (  # noqa: F401
    SKIP_OFFSET, Segmentation, level_offsets, segment_levels, segment_processes, skipped_levels, skipped_mask)


def _as_1d(name: str, values, *, min_size: int = 1) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size < min_size:
        raise MemdriftError(f"{name} has {arr.size} values; allowed: at least {min_size}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise MemdriftError(f"{name}[{bad}] = {arr[bad]!r} is out of range; allowed: a finite number")
    return arr


# --------------------------------------------------------------------------- linear range


@dataclass(frozen=True)
class LinearFit:
    """Least-squares line ``y = slope * x + intercept`` and its coefficient of determination."""

    slope: float
    intercept: float
    r2: float
    #: standard errors of slope and intercept (:func:`scipy.stats.linregress`); None with 2 points
    slope_stderr: float | None = None
    intercept_stderr: float | None = None


def linear_fit(y, x=None) -> LinearFit:
    """Ordinary least-squares line through ``(x, y)`` (``x`` defaults to 0, 1, 2, …).

    R² is ``rvalue**2`` of :func:`scipy.stats.linregress`, i.e. the fraction of the
    variance of ``y`` explained by the line; it lies in [0, 1] by construction.
    A perfectly flat ``y`` has no variance to explain: R² is reported as 1 when
    the line fits exactly (slope 0), since the data are then exactly linear.
    Standard errors need a degree of freedom: None for two points.
    """
    y = _as_1d("y", y, min_size=2)
    x = np.arange(y.size, dtype=np.float64) if x is None else _as_1d("x", x, min_size=2)
    if x.size != y.size:
        raise MemdriftError(f"x has {x.size} values but y has {y.size}; allowed: equal lengths")
    if np.ptp(x) == 0:
        raise MemdriftError("x is constant; allowed: at least two distinct x values")
    exact = 0.0 if y.size > 2 else None
    if np.ptp(y) == 0:
        return LinearFit(0.0, float(y[0]), 1.0, exact, exact)
    res = stats.linregress(x, y)
    se = (float(res.stderr), float(res.intercept_stderr)) if y.size > 2 else (None, None)
    return LinearFit(float(res.slope), float(res.intercept), float(min(1.0, res.rvalue ** 2)), *se)


def _window_r2(y: np.ndarray, start: np.ndarray, length: int) -> np.ndarray:
    """R² of the least-squares line over every window ``y[s:s+length]`` (vectorised via cumulative sums)."""
    x = np.arange(y.size, dtype=np.float64)
    c = lambda v: np.concatenate(([0.0], np.cumsum(v)))  # noqa: E731
    sx, sy, sxx, syy, sxy = c(x), c(y), c(x * x), c(y * y), c(x * y)
    e = start + length
    n = float(length)
    vx = (sxx[e] - sxx[start]) - (sx[e] - sx[start]) ** 2 / n
    vy = (syy[e] - syy[start]) - (sy[e] - sy[start]) ** 2 / n
    cxy = (sxy[e] - sxy[start]) - (sx[e] - sx[start]) * (sy[e] - sy[start]) / n
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(vy > 0, cxy ** 2 / (vx * vy), 1.0)
    return np.clip(r2, 0.0, 1.0)


def linear_range(mean_curve, *, r2_min: float = 0.995, step_ratio: float = 0.5,
                 min_points: int = 3) -> tuple[int, int]:
    """The "most linear range" of one branch's mean curve, as a half-open index range ``[start, stop)``.

    The paper (HfOxSy, Fig. 2d-e) extracts "the conductance states … within the
    most linear range" without an algorithm. Here it is the **longest** window of
    consecutive pulses such that

    * the least-squares line over the window has R² ≥ ``r2_min``, and
    * every step inside the window moves in the window's overall direction and
      lies within ``[step_ratio, 1/step_ratio]`` × the window's mean step — a
      linear update means equal steps, and this rejects the saturated ends
      (steps shrinking to noise) that a lenient R² alone would keep;

    ties in length go to the window spanning the largest conductance change
    (the paper's linear range covers most of the switching window, and a
    saturated tail can be as "linear" as the useful middle of an exponential
    curve). Each point of the window is one state.
    Raises when no window of ``min_points`` satisfies both conditions.
    """
    y = _as_1d("mean_curve", mean_curve, min_size=2)
    if not 0 < step_ratio <= 1:
        raise MemdriftError(f"step_ratio = {step_ratio!r} is out of range; allowed: (0, 1]")
    if not 0 <= r2_min <= 1:
        raise MemdriftError(f"r2_min = {r2_min!r} is out of range; allowed: [0, 1]")
    min_points = max(2, int(min_points))
    steps = np.diff(y)
    for length in range(y.size, min_points - 1, -1):
        starts = np.arange(y.size - length + 1)
        win = np.lib.stride_tricks.sliding_window_view(steps, length - 1)
        mean_step = win.mean(axis=1)
        direction = np.sign(mean_step)
        scaled = win * direction[:, None]
        mag = np.abs(mean_step)
        ok = (mag > 0) & (scaled.min(axis=1) >= step_ratio * mag) & (scaled.max(axis=1) <= mag / step_ratio)
        if not ok.any():
            continue
        r2 = _window_r2(y, starts, length)
        ok &= r2 >= r2_min
        if ok.any():
            span = np.abs(y[starts + length - 1] - y[starts])
            best = int(starts[ok][np.argmax(span[ok])])
            return best, best + length
    raise MemdriftError(
        f"mean_curve has no linear range of at least {min_points} points with R² >= {r2_min} and steps within "
        f"[{step_ratio:g}, {1 / step_ratio:g}] x the mean step; allowed: a monotonic, roughly linear stretch")


def symmetry(slope_potentiation: float, slope_depression: float) -> float:
    """Slope ratio ``|slope_depression| / |slope_potentiation|`` (1 = perfectly symmetric update).

    The paper compares "the gradients of the fitted lines"; magnitudes are used
    because depression lowers conductance (negative slope) by definition.
    """
    if slope_potentiation == 0:
        raise MemdriftError("slope_potentiation = 0.0 is out of range; allowed: non-zero (S/pulse)")
    return float(abs(slope_depression) / abs(slope_potentiation))


# --------------------------------------------------------------------------- states and bins


def state_statistics(traces) -> tuple[np.ndarray, np.ndarray]:
    """Per-state mean and cycle-to-cycle σ of the states of one branch.

    ``traces`` is ``(cycle, state)`` for one device or ``(device, cycle, state)``.
    σ is the sample standard deviation over cycles (ddof = 1), as in the paper's
    Fig. 2f (one device, 100 cycles). With several devices σ is computed per
    device and averaged over devices, so device-to-device spread does not
    inflate the cycle-to-cycle σ (it is reported separately). The mean is over
    every cycle of every device. NaN entries (unmeasured reads) are ignored.
    """
    arr = np.asarray(traces, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1] < 2:
        raise MemdriftError(f"traces has shape {np.shape(traces)}; allowed: (cycle>=2, state) or (device, cycle>=2, state)")
    mean = np.nanmean(arr, axis=(0, 1))
    sigma = np.nanmean(np.nanstd(arr, axis=1, ddof=1), axis=0)
    return mean, sigma


def bin_width(state_means) -> float:
    """Average separation of neighbouring mean states, ``mean(|diff(state_means)|)``.

    The paper: "each step between bins or average conductance states is encoded
    by the average bin-width" (81.077 µS potentiation, 80.520 µS depression).
    """
    s = _as_1d("state_means", state_means, min_size=2)
    return float(np.mean(np.abs(np.diff(s))))


def differential_bins(state_means, state_sigmas, *, sigma_factor: float = 2.0) -> int:
    """Count of reliable differential bins G+ − G− for a pair of devices on one branch.

    The paper (Fig. 2e-f): w ∝ G+ − G−, each unique value of G+ − G− is a bin,
    the weight '0' is mapped to the start of the linear range, and 16 states a
    device give 31 bins with bin width > 2σ. The reading used here: one device
    of the pair rests at the first state ``s_0`` while the other takes state
    ``s_k``, so the values are ``±(s_k − s_0)``; ``K`` states are kept by walking
    the states in order and keeping a state only if it is more than
    ``sigma_factor`` × max(σ of the two) away from the last kept state (the
    paper's criterion, "bin width > 2σ", with the per-state σ of Fig. 2f). The
    count is ``2K − 1`` (zero counted once), so it never exceeds
    ``2 · states − 1``.
    """
    s = _as_1d("state_means", state_means)
    sig = _as_1d("state_sigmas", state_sigmas)
    if s.size != sig.size:
        raise MemdriftError(f"state_sigmas has {sig.size} values but state_means has {s.size}; allowed: one σ per state")
    if np.any(sig < 0):
        raise MemdriftError("state_sigmas has a negative entry; allowed: [0, inf) S")
    count, last = 1, 0
    for k in range(1, s.size):
        if abs(s[k] - s[last]) > sigma_factor * max(sig[k], sig[last]):
            count += 1
            last = k
    return 2 * count - 1


# --------------------------------------------------------------------------- nonlinearity ν (eqns 2-3)


def eqn2_potentiation(n_j, nu: float, n: float) -> np.ndarray:
    """Normalised resistance on potentiation, eqn (2): ``(1 − e^{ν(n_j − n)}) / (1 − e^{−ν n})``.

    Goes from 1 (r_max, HRS) at ``n_j = 0`` to 0 (r_min) at ``n_j = n``. Written
    with ``expm1`` so that ν → 0 tends smoothly to the straight line ``1 − n_j/n``.
    """
    n_j = np.asarray(n_j, dtype=np.float64)
    if abs(nu * n) < 1e-12:
        return 1.0 - n_j / n
    return np.expm1(nu * (n_j - n)) / np.expm1(-nu * n)


def eqn3_depression(n_j, nu: float, n: float) -> np.ndarray:
    """Normalised resistance on depression, eqn (3): ``(1 − e^{ν n_j}) / (1 − e^{ν n})``, 0 at n_j = 0 → 1 at n_j = n."""
    n_j = np.asarray(n_j, dtype=np.float64)
    if abs(nu * n) < 1e-12:
        return n_j / n
    return np.expm1(nu * n_j) / np.expm1(nu * n)


#: How eqns (2)-(3) index a curve of N points. "paper": ``n_j`` is the pulse event number 1 … N
#: and ``n`` the total N, as the paper words it; "end-matched": ``n_j`` = 0 … N−1 and ``n`` = N−1,
#: so the model meets both end points of the data.
NU_INDEXING = ("paper", "end-matched")


def fit_nonlinearity(resistance_levels, branch: str, *, indexing: str = "paper") -> float:
    """ν_p (``branch="potentiation"``) or ν_d (``"depression"``) of a resistance curve, eqns (2)-(3).

    ``resistance_levels`` is the curve in the order it was written (e.g. the
    segmented ``R_a`` of :func:`segment_levels`, one point per level), normalised
    with its own ``r_min``/``r_max`` as the paper does ("R_FF is normalised to a
    range of 0 to 1"). ν is the least-squares value (bounded Brent on ν·n; it may
    come out negative for a curve bending the other way).

    ``indexing`` (see :data:`NU_INDEXING`). With the paper's indexing the model
    at ``n_j = 1`` is not 1, so even a perfectly straight staircase of N levels
    fits with ν ≈ 5/N² (4.98e-3, 3.07e-4, 1.91e-5 for N = 32, 128, 512): the
    paper's published values (4.95e-3, 3.10e-4, 1.91e-5) sit on that floor, and
    it is what makes them scale as 1/N². "end-matched" removes the offset and
    measures the curvature alone (0 for a straight staircase).
    """
    r = _as_1d("resistance_levels", resistance_levels, min_size=3)
    if branch not in PROGRAMMING_BRANCHES:
        raise MemdriftError(f"branch = {branch!r}; allowed: 'potentiation', 'depression'")
    if indexing not in NU_INDEXING:
        raise MemdriftError(f"indexing = {indexing!r}; allowed: {', '.join(repr(k) for k in NU_INDEXING)}")
    lo, hi = r.min(), r.max()
    if hi == lo:
        raise MemdriftError("resistance_levels is constant; allowed: a curve that moves between r_min and r_max")
    y = (r - lo) / (hi - lo)
    if indexing == "paper":
        n, n_j = float(r.size), np.arange(1, r.size + 1, dtype=np.float64)
    else:
        n, n_j = float(r.size - 1), np.arange(r.size, dtype=np.float64)
    model = eqn2_potentiation if branch == "potentiation" else eqn3_depression

    # Fit in u = ν·n, which is of order 1 whatever n is, so the tolerance is scale-free.
    # One parameter and a smooth, unimodal sum of squares: bounded Brent is exact and
    # ~50x cheaper than a gradient solver here (this runs once per trace and level count).
    # |u| = 60 is already a step function at the resolution of a float.
    def sse(u):
        return float(np.sum((model(n_j, u / n, n) - y) ** 2))

    res = optimize.minimize_scalar(sse, bounds=(-60.0, 60.0), method="bounded", options={"xatol": 1e-12})
    return float(res.x / n)


# --------------------------------------------------------------------------- cycle-to-cycle, program error


def pearson_cycle_to_cycle(traces) -> float:
    """Mean Pearson correlation (eqn 1) between the last cycle and every preceding cycle.

    ``traces`` is ``(cycle, pulse)``; as in the paper (Fig. 2b), "the mean p_xy
    is computed by averaging the p_xy values between the final RS array and all
    preceding RS arrays". Cycles with zero variance (a flat trace) have no
    defined correlation and are left out; NaN when none remains.
    """
    arr = np.asarray(traces, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] < 2:
        raise MemdriftError(f"traces has shape {arr.shape}; allowed: (cycle>=2, pulse>=2)")
    x = arr[-1] - arr[-1].mean()
    y = arr[:-1] - arr[:-1].mean(axis=1, keepdims=True)
    num = y @ x
    den = np.sqrt(np.sum(y * y, axis=1) * np.sum(x * x))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = num / den
    p = p[np.isfinite(p)]
    return float(np.clip(p.mean(), -1.0, 1.0)) if p.size else float("nan")


@dataclass(frozen=True)
class StudentT:
    """Student's t fitted to a sample: location, scale and degrees of freedom (eqn 5 of the TiO2 paper)."""

    loc: float
    scale: float
    df: float | None


def fit_student_t(samples) -> StudentT:
    """Maximum-likelihood Student-t fit (:func:`scipy.stats.t.fit`) of program errors at one level.

    A sample with no spread (all values equal) has no defined t shape: it is
    returned as ``loc`` = the value, ``scale`` = 0, ``df`` = None.
    """
    x = _as_1d("samples", samples, min_size=2)
    if np.ptp(x) == 0:
        return StudentT(float(x[0]), 0.0, None)
    # Standardise first: t.fit's default start (loc 0, scale 1) is far off for
    # values like 1e-4 S and its simplex then stops early.
    centre, spread = float(np.median(x)), float(np.std(x))
    df, loc, scale = stats.t.fit((x - centre) / spread)
    return StudentT(float(centre + loc * spread), float(scale * spread), float(df))


def _t_df_score(log_df: np.ndarray, count: np.ndarray, z2: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """d(log-likelihood)/d(df) of Student's t at fixed loc/scale, per row (``z2`` = squared standardised samples)."""
    v = np.exp(log_df)
    per_row = count * (0.5 * special.digamma((v + 1) / 2) - 0.5 * special.digamma(v / 2) - 0.5 / v)
    vv = v[:, None]
    # Missing samples carry z2 = 0, whose term below is exactly 0: no mask needed here.
    return per_row + (-0.5 * np.log1p(z2 / vv) + (vv + 1) / 2 * z2 / (vv * (vv + z2))).sum(1)


def fit_student_t_levels(samples, *, tol: float = 1e-5, max_iter: int = 1000,
                         df_bounds: tuple[float, float] = (0.05, 1e7)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximum-likelihood Student-t (loc, scale, df) for every row of ``samples`` (``(level, sample)``, NaN = missing).

    Same estimator as :func:`fit_student_t` (:func:`scipy.stats.t.fit`), computed
    for all levels at once by the ECME algorithm (Liu & Rubin 1995): the t is a
    scale mixture of normals, so loc and scale have closed-form weighted updates
    and df is the root of the likelihood score, found by bisection in log df.
    Why not ``t.fit`` in a loop: it costs 40-100 ms a level on this project's
    machines, and a record holds 2 × (32 + 128 + 512) levels (over a minute);
    this takes a few seconds. ``tests/test_metrics.py`` checks that the
    likelihood reached is never worse than ``t.fit``'s. Rows with no spread get
    ``scale`` 0 and ``df`` NaN; rows with fewer than 2 samples get NaN.
    A df at the upper bound means the sample is indistinguishable from normal.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 2:
        raise MemdriftError(f"samples has shape {x.shape}; allowed: (level, sample)")
    mask = np.isfinite(x)
    count = mask.sum(axis=1)
    xz = np.where(mask, x, 0.0)
    rows = x.shape[0]
    loc = np.full(rows, np.nan)
    var = np.full(rows, np.nan)
    df = np.full(rows, np.nan)
    enough = count >= 2
    if enough.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            loc[enough] = np.nanmedian(x[enough], axis=1)
            var[enough] = np.nanvar(x[enough], axis=1)
    flat = enough & (var == 0)
    var[flat] = 0.0
    df[enough & ~flat] = 5.0
    lo, hi = np.log(df_bounds[0]), np.log(df_bounds[1])
    # When most samples of a row coincide (quantised reads) the t likelihood has no
    # maximum: the scale collapses onto the tie. The scale is floored at 1e-9 of the
    # row's initial spread and such rows stop there (df then sits at its lower bound).
    var_floor = np.where(np.isfinite(var), var * 1e-18, 0.0)
    active = np.flatnonzero(enough & ~flat)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        for _ in range(max_iter):
            if active.size == 0:
                break
            active = _ecme_step(active, mask, xz, count, loc, var, df, var_floor, lo, hi, tol)
    return loc, np.sqrt(var), df


def _ecme_step(active, mask, xz, count, loc, var, df, var_floor, lo, hi, tol):
    """One ECME iteration on the rows ``active`` (updated in place); returns the rows not yet converged."""
    m, xa, n = mask[active], xz[active], count[active]
    mu, s2, nu = loc[active], var[active], df[active]
    z2 = np.where(m, (xa - mu[:, None]) ** 2 / s2[:, None], 0.0)
    w = np.where(m, (nu[:, None] + 1) / (nu[:, None] + z2), 0.0)
    mu_new = (w * xa).sum(1) / w.sum(1)
    s2_new = np.maximum((w * np.where(m, xa - mu_new[:, None], 0.0) ** 2).sum(1) / n, var_floor[active])
    z2 = np.where(m, (xa - mu_new[:, None]) ** 2 / s2_new[:, None], 0.0)
    # Bisection for the df root, bracketed around the previous df (it moves little between
    # iterations); rows whose root lies outside get the full bracket [lo, hi].
    a = np.maximum(np.log(nu) - 0.5, lo)
    b = np.minimum(np.log(nu) + 0.5, hi)
    a = np.where(_t_df_score(a, n, z2, m) > 0, a, lo)
    b = np.where(_t_df_score(b, n, z2, m) > 0, hi, b)
    for _ in range(18):  # narrow bracket (width 1) -> 4e-6 in log df; a full one is refined next iteration
        c = 0.5 * (a + b)
        rising = _t_df_score(c, n, z2, m) > 0
        a = np.where(rising, c, a)
        b = np.where(rising, b, c)
    nu_new = np.exp(0.5 * (a + b))
    change = np.maximum.reduce([np.abs(mu_new - mu) / np.sqrt(s2_new), np.abs(s2_new / s2 - 1.0),
                                # change of 1/df relative to 1 + 1/df: log-df for small df, 1/df (the
                                # shape) for large df, where the likelihood is flat in df
                                np.abs(1.0 / nu_new - 1.0 / nu) / (1.0 + 1.0 / nu)])
    loc[active], var[active], df[active] = mu_new, s2_new, nu_new
    return active[(change >= tol) & (s2_new > var_floor[active])]


# --------------------------------------------------------------------------- retention


@dataclass(frozen=True)
class DriftFit:
    """``G(t) = g0 · (t / t0)^(−nu)`` fitted in log-log, with the fit's R²."""

    nu: float
    g0: float
    t0: float
    r2: float
    #: standard error of ν (of the log-log slope); None with 2 times
    nu_stderr: float | None = None


def drift_exponent(time_s, conductance, *, t0: float | None = None) -> DriftFit:
    """Power-law drift exponent ν from ``G(t) = G0 (t/t0)^−ν`` (the aihwkit/PCM drift law).

    Fitted as a straight line ``log G = log G0 − ν log(t/t0)`` by
    :func:`scipy.stats.linregress`; ``t0`` defaults to the first time > 0.
    """
    t = _as_1d("time_s", time_s, min_size=2)
    g = _as_1d("conductance", conductance, min_size=2)
    if t.size != g.size:
        raise MemdriftError(f"time_s has {t.size} values but conductance has {g.size}; allowed: equal lengths")
    if np.any(t <= 0):
        raise MemdriftError("time_s has an entry <= 0; allowed: (0, inf) s (the power law is singular at t = 0)")
    if np.any(g <= 0):
        raise MemdriftError("conductance has an entry <= 0; allowed: (0, inf) S")
    t0 = float(t.min()) if t0 is None else float(t0)
    fit = linear_fit(np.log(g), np.log(t / t0))
    return DriftFit(nu=-fit.slope, g0=float(np.exp(fit.intercept)), t0=t0, r2=fit.r2, nu_stderr=fit.slope_stderr)


def relative_drift_rate(time_s, conductance) -> float:
    """Relative drift rate ``k = −d ln G / dt`` (1/s), least-squares slope of ln G against t.

    This is the quantity that follows Arrhenius for constant-rate dissolution
    (the emulator with ``dissolution_barrier_slope_ev_per_m = 0``): a rate
    ``r_diss = ν_r exp(−Ea_r/kT)`` grows the gap linearly in time and
    G ∝ exp(−gap/g0), so ln G falls linearly at a speed proportional to
    ``r_diss``. With the dispersive barrier the decay is a power law instead and
    the extractor times a common change of ln G. Positive when the conductance decays.
    """
    t = _as_1d("time_s", time_s, min_size=2)
    g = _as_1d("conductance", conductance, min_size=2)
    if np.any(g <= 0):
        raise MemdriftError("conductance has an entry <= 0; allowed: (0, inf) S")
    return -linear_fit(np.log(g), t).slope


@dataclass(frozen=True)
class ArrheniusFit:
    """``rate = prefactor · exp(−activation_energy_eV / (k_B T))`` with the fit's R² (in ln rate vs 1/kT)."""

    activation_energy_eV: float
    prefactor: float
    r2: float
    #: standard error of the energy (slope of ln rate vs 1/kT); None with 2 temperatures
    activation_energy_stderr_eV: float | None = None


def arrhenius_activation_energy(temperature_k, rate) -> ArrheniusFit:
    """Activation energy (eV) from rates at several temperatures: slope of ln(rate) vs 1/(k_B T).

    Rates must be positive (any rate-like quantity: drift rate, inverse time to
    a given change); at least two distinct temperatures are needed.
    """
    temp = _as_1d("temperature_k", temperature_k, min_size=2)
    k = _as_1d("rate", rate, min_size=2)
    if temp.size != k.size:
        raise MemdriftError(f"temperature_k has {temp.size} values but rate has {k.size}; allowed: equal lengths")
    if np.any(temp <= 0):
        raise MemdriftError("temperature_k has an entry <= 0; allowed: (0, inf) K")
    if np.any(k <= 0):
        raise MemdriftError("rate has an entry <= 0; allowed: (0, inf) (a thermally activated rate)")
    if np.unique(temp).size < 2:
        raise MemdriftError("temperature_k has fewer than 2 distinct values; allowed: at least two temperatures")
    fit = linear_fit(np.log(k), 1.0 / (K_B_EV * temp))
    return ArrheniusFit(activation_energy_eV=-fit.slope, prefactor=float(np.exp(fit.intercept)), r2=fit.r2,
                        activation_energy_stderr_eV=fit.slope_stderr)


# --------------------------------------------------------------------------- energy


def energy_per_pulse(energy_j) -> float:
    """Mean electrical energy per programming pulse (J), NaNs (pulses not applied) ignored."""
    e = np.asarray(energy_j, dtype=np.float64)
    if e.size == 0 or np.all(np.isnan(e)):
        raise MemdriftError("energy has no finite entry; allowed: at least one pulse energy (J)")
    return float(np.nanmean(e))


def energy_per_cycle(energy_j) -> tuple[float, float]:
    """Mean and standard deviation (J) of the total energy of one cycle; last axis is ``pulse``.

    The paper quotes "23.74 nJ ± 1.26 nJ total programming energy per complete
    potentiation/depression cycle": the sum over the cycle's pulses, then mean
    and sample σ over cycles (and devices).
    """
    e = np.asarray(energy_j, dtype=np.float64)
    if e.ndim < 1 or e.shape[-1] == 0:
        raise MemdriftError("energy has no pulse axis; allowed: (..., pulse) in J")
    per_cycle = np.nansum(e, axis=-1).reshape(-1)
    sd = float(np.std(per_cycle, ddof=1)) if per_cycle.size > 1 else 0.0
    return float(per_cycle.mean()), sd
