# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled filament kernel: one cycle of (pulse, idle, read) segments for N devices.

Same equations and step control as ``memdrift.emulator.filament`` (the NumPy
twin); see its docstring. The arithmetic lives in ``_filament_lanes.h``, which
advances batches of ``LANES`` devices in lockstep so that the compiler can run
them as SIMD lanes; this module checks the arrays and spreads the batches over
threads with OpenMP. Each device draws its hop counts from its own
counter-based stream (SplitMix64 of key and counter), which makes the output
bit-identical for any thread count and any grouping of devices.
"""

from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint64_t

import numpy as np

from memdrift.ext._streams cimport poisson

cdef extern from "_filament_lanes.h" nogil:
    enum:
        N_COLUMNS
        N_STATE
        K_PULSE
        K_READ
    ctypedef double (*md_hops_fn)(double, uint64_t, uint64_t*) noexcept nogil
    # one batch function per width: 16 lanes, and 1 for the few devices an ensemble may leave over
    void memdrift_filament_batch_16(Py_ssize_t first, int n_lanes, const double* segments, Py_ssize_t n_seg,
                                    double* state, const double* table, const uint64_t* keys, uint64_t* counters,
                                    double** out, const Py_ssize_t* row_stride,
                                    const Py_ssize_t* pulse_stride, int noise, md_hops_fn hops)
    void memdrift_filament_batch_1(Py_ssize_t first, int n_lanes, const double* segments, Py_ssize_t n_seg,
                                   double* state, const double* table, const uint64_t* keys, uint64_t* counters,
                                   double** out, const Py_ssize_t* row_stride,
                                   const Py_ssize_t* pulse_stride, int noise, md_hops_fn hops)
    void memdrift_filament_solve(const double* table_row, double volts, double gap, double lnshare, double* vc,
                                 double* cur, int64_t* bad)
    double md_exp(double x)
    double md_log(double x)
    const char *md_filament_column_name(int c)

# devices per batch of the wide build (memdrift_filament_batch_16)
cdef int WIDE = 16
#: devices per batch of the compiled kernel
LANES = WIDE
#: up to this many devices left over after the full batches run one at a time, more as one padded batch
SINGLE_MAX = 3


def elementary(const double[::1] x, double[::1] exp_out, double[::1] log_out):
    """The lanes' own exp and log of every element of ``x`` (tests hold them against libm)."""
    cdef Py_ssize_t i
    if exp_out.shape[0] != x.shape[0] or log_out.shape[0] != x.shape[0]:
        raise ValueError("x, exp_out and log_out must have the same length")
    for i in range(x.shape[0]):
        exp_out[i] = md_exp(x[i])
        log_out[i] = md_log(x[i])


def solve_cells(const double[::1] volts, const double[::1] gap, const double[:, ::1] table, const double[::1] lnshare,
                double[::1] vc_out, double[::1] current_out, unsigned char[::1] bad_out):
    """The kernel's cell solve, one element per row of ``table`` (tests hold it against an independent root)."""
    cdef Py_ssize_t i, n = volts.shape[0]
    cdef double vc, cur
    cdef int64_t bad
    if table.shape[1] != N_COLUMNS:
        raise ValueError(f"parameter table has {table.shape[1]} columns; the kernel expects {N_COLUMNS}")
    if gap.shape[0] != n or lnshare.shape[0] != n or vc_out.shape[0] != n or current_out.shape[0] != n:
        raise ValueError("volts, gap, lnshare and the outputs must have the same length")
    if table.shape[0] != n or bad_out.shape[0] != n:
        raise ValueError("table and bad_out must have one row per element")
    for i in range(n):
        memdrift_filament_solve(&table[i, 0], volts[i], gap[i], lnshare[i], &vc, &cur, &bad)
        vc_out[i], current_out[i], bad_out[i] = vc, cur, <unsigned char>(bad != 0)


def n_columns():
    return N_COLUMNS


#: the parameter held in each column of the table ``run_cycle`` takes, from the kernel's own list
COLUMNS = tuple(md_filament_column_name(c).decode("ascii") for c in range(N_COLUMNS))


cdef double _hops(double mean, uint64_t key, uint64_t* counter) noexcept nogil:
    # the shared stream sampler, behind a pointer: the lane kernel is plain C
    return poisson(mean, key, counter)


def run_cycle(const double[:, ::1] segments, double[:, ::1] state, const double[:, ::1] table,
              const uint64_t[::1] keys, uint64_t[::1] counters,
              double[:, :] conductance, double[:, :] temperature_peak, double[:, :] energy, double[:, :] gap_out,
              int noise, int threads, double[:, :] flags=None):
    """Advance every device through one cycle.

    ``state`` rows are (gap m, temperature K, ln(I R_s/|V|) of the last write,
    sub-steps taken, ln(I R_s/|V|) of the last read; the two shares warm-start the
    cell solve; gap m relaxed by dissolution since the tip was last rebuilt) and are
    updated in place; ``counters`` are the devices' stream
    positions, also updated. The output arrays are (device, pulse); ``flags``
    (optional) receives each pulse's ``memdrift.data.flags`` bits as floats.
    """
    cdef Py_ssize_t n = state.shape[0], n_seg = segments.shape[0], n_items, n16, n_single, b, first, s, n_pulses = 0
    cdef double* out[5]
    cdef Py_ssize_t row_stride[5]
    cdef Py_ssize_t pulse_stride[5]
    cdef int j
    cdef double[:, :] flag_out
    if segments.shape[1] != 3:
        raise ValueError(f"segments has {segments.shape[1]} columns; the kernel expects 3 (voltage, duration, kind)")
    if state.shape[1] != N_STATE:
        raise ValueError(f"state has {state.shape[1]} columns; the kernel expects {N_STATE}")
    if table.shape[1] != N_COLUMNS:
        raise ValueError(f"parameter table has {table.shape[1]} columns; the kernel expects {N_COLUMNS}")
    if table.shape[0] != n or keys.shape[0] != n or counters.shape[0] != n:
        raise ValueError("state, table, keys and counters must have one row per device")
    for s in range(n_seg):
        if <int>segments[s, 2] == K_PULSE:
            n_pulses += 1
        elif <int>segments[s, 2] == K_READ and n_pulses == 0:
            raise ValueError(f"segment {s} reads before the first pulse; a read belongs to the pulse before it")
    if flags is None:
        flag_out = np.empty((n, n_pulses))
    else:
        flag_out = flags
    for j, arr in enumerate((conductance, temperature_peak, energy, gap_out, flags)):
        if arr is not None and (arr.shape[0] != n or arr.shape[1] != n_pulses):
            raise ValueError(f"output {j} has shape ({arr.shape[0]}, {arr.shape[1]}); expected ({n}, {n_pulses})")
    if n == 0 or n_seg == 0:
        return
    if n_pulses > 0:
        out[0], out[1], out[2], out[3] = &conductance[0, 0], &temperature_peak[0, 0], &energy[0, 0], &gap_out[0, 0]
        out[4] = &flag_out[0, 0]
    else:
        out[0] = out[1] = out[2] = out[3] = out[4] = NULL
    for j, arr in enumerate((conductance, temperature_peak, energy, gap_out, flag_out)):
        row_stride[j] = arr.strides[0] // sizeof(double)
        pulse_stride[j] = arr.strides[1] // sizeof(double)
    if threads < 1:
        threads = 1
    # full batches of 16; a rest of up to three devices runs one at a time (a lane computes whether or
    # not it holds a device: one device alone in a batch cost 3.5x the scalar kernel, 1.2x alone),
    # a larger rest as one padded batch (measured: 3 devices 1.2 us a device-pulse alone, 1.56 us in
    # a padded batch; 4 devices break even)
    n16 = n // WIDE
    n_single = n - WIDE * n16
    if n_single > SINGLE_MAX:
        n16, n_single = n16 + 1, 0
    n_items = n16 + n_single
    for b in prange(n_items, nogil=True, num_threads=threads, schedule="dynamic", chunksize=8):
        if b < n16:
            first = WIDE * b
            memdrift_filament_batch_16(first, <int>(n - first if n - first < WIDE else WIDE), &segments[0, 0], n_seg,
                                       &state[0, 0], &table[0, 0], &keys[0], &counters[0], out, row_stride,
                                       pulse_stride, noise, _hops)
        else:
            memdrift_filament_batch_1(WIDE * n16 + (b - n16), 1, &segments[0, 0], n_seg, &state[0, 0], &table[0, 0],
                                      &keys[0], &counters[0], out, row_stride, pulse_stride, noise, _hops)
