"""Design-space sweeps: spec validation, Dask vs serial, resume after a kill, Pareto."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from memdrift.data.io import open_dataset
from memdrift.emulator.params import load_preset, save_preset
from memdrift.errors import MemdriftError
from memdrift.experiments import cli, sweep

PRESET = "hfoxsy-hfs2"

# Tiny ensembles: the physics is the real engine, the grids are 2 x 2.
SMALL = f"""
[sweep]
name = "small"
seed = 5
devices = 2
cycles = 4

[scheme]
base = "ramp"
pulses_per_branch = 10
width_start_s = 3.5e-7
width_end_s = 3.5e-7
amplitude_end_v = 0.995

[device]
preset = "{PRESET}"

[axes]
amplitude_start_v = [0.9, 0.995]
"variation.activation_energy_ev" = [0.0, 0.02]

[metrics]
store = ["differential_bins", "state_sigma", "bin_width"]
"""


def write_spec(tmp_path: Path, text: str = SMALL, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- spec


def test_spec_axes_ranges_and_units(tmp_path):
    text = SMALL.replace('amplitude_start_v = [0.9, 0.995]',
                         'width_start_s = { start = 1e-7, stop = 4e-7, num = 3, log = true }\n'
                         'pulses_per_branch = { start = 2, stop = 6, num = 3 }\n'
                         'ambient_temperature_k = [300.0, 350.0]')
    spec = sweep.parse_spec(text)
    axes = {a.name: a for a in spec.axes}
    np.testing.assert_allclose(axes["width_start_s"].values, [1e-7, 2e-7, 4e-7], rtol=1e-12)
    assert axes["pulses_per_branch"].values == (2, 4, 6) and axes["pulses_per_branch"].integer
    assert (axes["width_start_s"].units, axes["ambient_temperature_k"].units) == ("s", "K")
    assert axes["variation.activation_energy_ev"].kind == "variation"
    assert spec.shape == (3, 3, 2, 2) and spec.n_points == 36
    # The Pareto costs are stored whatever the spec lists.
    assert {"energy_per_cycle", "programming_time_per_cycle"} <= set(spec.metrics)


@pytest.mark.parametrize("replace, with_, key", [
    ('amplitude_start_v = [0.9, 0.995]', 'amplitude_startt_v = [0.7, 0.9]', "axes.amplitude_startt_v"),
    ('amplitude_start_v = [0.9, 0.995]', 'amplitude_start_v = []', "axes.amplitude_start_v"),
    ('amplitude_start_v = [0.9, 0.995]', 'amplitude_start_v = {start = 0.9, stop = 0.995, num = 0}',
     "axes.amplitude_start_v.num"),
    ('amplitude_start_v = [0.9, 0.995]', 'amplitude_start_v = [0.9, "0.995"]', "axes.amplitude_start_v[1]"),
    ('amplitude_start_v = [0.9, 0.995]', 'amplitude_start_v = 0.9', "axes.amplitude_start_v"),
    ('amplitude_start_v = [0.9, 0.995]', 'pulses_per_branch = [2, 2.5]', "axes.pulses_per_branch[1]"),
    ('amplitude_start_v = [0.9, 0.995]', 'amplitude_start_v = [0.9, 0.9]', "axes.amplitude_start_v"),
    ('amplitude_start_v = [0.9, 0.995]', 'amplitude_start_v = [0.9, -0.995]', "amplitude_start_v"),
    ('amplitude_start_v = [0.9, 0.995]', 'ambient_temperature_k = [300.0, 0.5]', "ambient_temperature_k"),
    ('amplitude_start_v = [0.9, 0.995]', 'width_start_s = {start = 0.0, stop = 1e-7, num = 2, log = true}',
     "axes.width_start_s"),
    ("devices = 2", 'devices = "2"', "sweep.devices"),
    ("cycles = 4", "cycles = 1", "sweep.cycles"),
    ('base = "ramp"', 'base = "sawtooth"', "scheme.base"),
    ('base = "ramp"', 'base = "ffp"', "sweep.cycles"),
    ('amplitude_start_v = [0.9, 0.995]', 'window_high_ohm = [0.2, 0.3]', "axes.window_high_ohm"),
    ('amplitude_start_v = [0.9, 0.995]', 'levels = [32, 128]', "axes.levels"),
    ("pulses_per_branch = 10", "pulses_per_brunch = 10", "scheme.pulses_per_brunch"),
    (f'preset = "{PRESET}"', f'preset = "{PRESET}"\nambient_temp_k = 300.0', "device.ambient_temp_k"),
    ('store = ["differential_bins"', 'store = ["ffp_events_potentiation"', "metrics.store[0]"),
    ('store = ["differential_bins", "state_sigma", "bin_width"]',
     'store = ["accuracy"]\n[metrics.accuracy]\nepochs = "1"', "metrics.accuracy.epochs"),
    ('store = ["differential_bins", "state_sigma", "bin_width"]',
     'store = ["accuracy"]\n[metrics.accuracy]\ntrain_samples = 100.5', "metrics.accuracy.train_samples"),
    ('store = ["differential_bins", "state_sigma", "bin_width"]',
     'store = ["accuracy"]\n[metrics.accuracy]\ndataset = "cifar10"', "metrics.accuracy.dataset"),
    ('store = ["differential_bins", "state_sigma", "bin_width"]',
     'store = ["accuracy"]\n[metrics.accuracy]\nepochz = 1', "metrics.accuracy.epochz"),
    ('store = ["differential_bins", "state_sigma", "bin_width"]',
     'store = ["accuracy"]\naccuracy = 3', "metrics.accuracy"),
    ('store = ["differential_bins", "state_sigma", "bin_width"]',
     'store = ["states"]\n[metrics.accuracy]\nepochs = 1', "metrics.accuracy"),
    ('store = ["differential_bins"', 'store = ["levelz"', "metrics.store[0]"),
])
def test_bad_spec_names_the_key_and_writes_nothing(tmp_path, capsys, replace, with_, key):
    assert replace in SMALL
    spec = write_spec(tmp_path, SMALL.replace(replace, with_))
    with pytest.raises(MemdriftError, match=key.replace("[", r"\[").replace("]", r"\]")):
        sweep.load_spec(spec)
    out = tmp_path / "out.nc"
    assert cli.main(["sweep", str(spec), "-o", str(out), "--serial"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("memdrift sweep: error:") and key in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml"]


def test_level_metrics_ask_the_record_for_their_level_counts():
    spec = sweep.parse_spec(SMALL.replace('store = ["differential_bins"',
                                          'store = ["nu_32_p", "skipped_levels_128_depression", "differential_bins"'))
    assert sweep.enumerate_points(spec)[0].task["levels"] == [32, 128]
    assert sweep.metric_meta("nu_32_p")[1].startswith("nonlinearity nu of the 32-level")
    with pytest.raises(MemdriftError, match=r"metrics.store\[0\] = 'nu_1_p'"):
        sweep.parse_spec(SMALL.replace('store = ["differential_bins"', 'store = ["nu_1_p"'))


@settings(max_examples=40, deadline=None)
@given(start=st.floats(250.0, 400.0), stop=st.floats(250.0, 400.0), num=st.integers(-1, 6), log=st.booleans())
def test_range_axes_give_num_distinct_values_or_name_the_key(start, stop, num, log):
    text = SMALL.replace("amplitude_start_v = [0.9, 0.995]",
                         f"ambient_temperature_k = {{ start = {start!r}, stop = {stop!r}, num = {num}, "
                         f"log = {str(log).lower()} }}")
    try:
        spec = sweep.parse_spec(text)
    except MemdriftError as exc:
        assert "axes.ambient_temperature_k" in str(exc)
        assert num < 1 or "repeats a value" in str(exc)
        return
    values = spec.axes[0].values
    assert len(values) == num and len(set(values)) == num
    assert values[0] == pytest.approx(start)
    if num > 1:
        assert values[-1] == pytest.approx(stop)


def test_point_seeds_follow_the_spec_not_the_order():
    spec = sweep.parse_spec(SMALL)
    reordered = sweep.parse_spec(SMALL.replace("[0.9, 0.995]", "[0.995, 0.9]"))
    seeds = {tuple(p.coords.items()): p.seed for p in sweep.enumerate_points(spec)}
    seeds_r = {tuple(p.coords.items()): p.seed for p in sweep.enumerate_points(reordered)}
    assert seeds == seeds_r
    assert len(set(seeds.values())) == len(seeds)
    other = sweep.parse_spec(SMALL.replace("seed = 5", "seed = 6"))
    assert not set(seeds.values()) & {p.seed for p in sweep.enumerate_points(other)}


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**63 - 1), value=st.floats(0.1, 2.0, allow_nan=False))
def test_point_seed_is_a_valid_engine_seed(seed, value):
    s = sweep.point_seed(seed, {"amplitude_end_v": value})
    assert isinstance(s, int) and 0 <= s < 2**63
    assert s == sweep.point_seed(seed, {"amplitude_end_v": value})


# ----------------------------------------------------------------------------- execution


def test_two_worker_cluster_is_bit_identical_to_serial(tmp_path):
    # Ramps that start at 0.7-0.8 V: from 0.9 V the shipped preset (field-driven hops) jumps on the first
    # strong pulse and a 2-device x 4-cycle point may have no linear range (differential_bins NaN).
    spec = sweep.parse_spec(SMALL.replace("amplitude_start_v = [0.9, 0.995]", "amplitude_start_v = [0.7, 0.8]"))
    serial = sweep.run_sweep(spec, tmp_path / "serial.nc", mode="serial")
    dask = sweep.run_sweep(spec, tmp_path / "dask.nc", mode="local", workers=2)
    assert serial.computed == dask.computed == 4
    xr.testing.assert_identical(serial.dataset, dask.dataset)
    on_disk = open_dataset(tmp_path / "dask.nc").load()
    for m in spec.metrics:
        assert np.array_equal(on_disk[m].values, serial.dataset[m].values, equal_nan=True), m
        assert on_disk[m].dims == ("amplitude_start_v", "variation.activation_energy_ev")
    assert on_disk["amplitude_start_v"].attrs["units"] == "V"
    assert on_disk["energy_per_cycle"].attrs["units"] == "J"
    # The sweep is physics, not a constant: the points differ, energies are positive
    # and a cycle takes its pulses plus its reads.
    assert np.all(on_disk["energy_per_cycle"].values > 0)
    assert np.unique(on_disk["energy_per_cycle"].values).size == 4
    t_reads = 20 * (20e-6 + 30e-6)
    np.testing.assert_allclose(on_disk["programming_time_per_cycle"].values, t_reads + 20 * 350e-9, rtol=1e-12)
    bins = on_disk["differential_bins"].values
    assert np.all(np.isfinite(bins)) and np.all((bins >= 1) & (bins <= 2 * 10 - 1) & (bins % 2 == 1))
    assert on_disk["pareto"].values.sum() >= 1


def test_rerun_reuses_every_stored_point(tmp_path):
    spec = sweep.parse_spec(SMALL)
    out = tmp_path / "out.nc"
    first = sweep.run_sweep(spec, out, mode="serial")
    stamps = {p: p.stat().st_mtime_ns for p in sweep.parts_dir(out).glob("*.json")}
    again = sweep.run_sweep(spec, out, mode="serial")
    assert (again.computed, again.reused) == (0, 4)
    assert stamps == {p: p.stat().st_mtime_ns for p in sweep.parts_dir(out).glob("*.json")}
    xr.testing.assert_identical(first.dataset, again.dataset)
    # Changing a fixed setting changes every point's key: nothing stale is reused.
    bigger = sweep.parse_spec(SMALL.replace("cycles = 4", "cycles = 5"))
    assert sweep.run_sweep(bigger, out, mode="serial").computed == 4


KILL_SPEC = f"""
[sweep]
name = "kill"
seed = 3
devices = 16
cycles = 6

[scheme]
base = "ramp"
pulses_per_branch = 10
width_start_s = 3.5e-7
width_end_s = 3.5e-7

[device]
preset = "{PRESET}"

[axes]
amplitude_start_v = [0.9, 0.93, 0.96, 0.995]
amplitude_end_v = [0.995, 1.02, 1.05, 1.08]

[metrics]
store = ["differential_bins", "state_sigma"]
"""


def _cli(spec: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "memdrift", "sweep", str(spec), "-o", str(out), "--workers", "2",
            "--no-progress", "--best", "3"]


def test_killed_sweep_resumes_without_recomputing(tmp_path):
    # The shipped preset, frozen for the length of the test: a preset edited between
    # the kill and the rerun rightly invalidates every stored point.
    save_preset(load_preset(PRESET), tmp_path / "frozen.toml")
    spec_path = write_spec(tmp_path, KILL_SPEC.replace(f'preset = "{PRESET}"',
                                                       f'preset = "{tmp_path / "frozen.toml"}"'))
    out = tmp_path / "out.nc"
    parts = sweep.parts_dir(out)
    proc = subprocess.Popen(_cli(spec_path, out), start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300  # worker start-up includes importing (and, editable, building) memdrift
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(parts.glob("*.json"))) >= 2:
                break
            time.sleep(0.01)
    finally:
        # The whole session: the CLI and its Dask worker processes, with no chance to clean up.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in parts.glob("*.json")}
    assert 2 <= len(finished) < 16, "the sweep must be killed part-way for this test to mean anything"
    assert not out.exists()
    for path in finished:
        assert json.loads(path.read_text())["key"] == path.stem  # every part under its final name is whole

    done = subprocess.run(_cli(spec_path, out), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"({16 - len(finished)} computed, {len(finished)} reused)" in done.stderr
    for path, (mtime, data) in finished.items():
        assert (path.stat().st_mtime_ns, path.read_bytes()) == (mtime, data)
    # The log line follows the part's rename, so the kill can land between the two:
    # a stored point may lack its line from the first run. What must hold is that
    # the rerun computed exactly the points without a part, each once.
    log = [line.split()[:2] for line in (parts / "computed.log").read_text().splitlines()]
    first_run = [key for key, pid in log if pid == str(proc.pid)]
    rerun = [key for key, pid in log if pid != str(proc.pid)]
    finished_keys = {path.stem for path in finished}
    assert set(first_run) <= finished_keys, "a log line without its stored part"
    assert len(rerun) == len(set(rerun)) == 16 - len(finished), "a point was computed twice"
    assert not set(rerun) & finished_keys, "a finished point was computed again"
    assert len(finished_keys | set(rerun)) == 16
    assert not list(parts.glob(".*.part"))
    # What was resumed is what an uninterrupted serial run gives.
    ds = open_dataset(out).load()
    serial = sweep.run_sweep(sweep.load_spec(spec_path), None, mode="serial").dataset
    for m in ("differential_bins", "state_sigma", "energy_per_cycle", "pareto"):
        assert np.array_equal(ds[m].values, serial[m].values, equal_nan=True), m


# ----------------------------------------------------------------------------- analysis


def test_pareto_front_of_a_known_set():
    # columns: bins (max), energy (min), time (min)
    values = np.array([
        [31, 20e-9, 2e-3],   # 0 front: most bins
        [31, 25e-9, 2e-3],   # 1 dominated by 0
        [15, 5e-9, 2e-3],    # 2 front: least energy
        [15, 5e-9, 1e-3],    # 3 front, and dominates 2
        [7, 30e-9, 3e-3],    # 4 dominated by everything
        [np.nan, 1e-9, 1e-3],  # 5 no metric: never on the front
        [31, 20e-9, 2e-3],   # 6 equal to 0: neither dominates the other
    ])
    front = sweep.pareto_front(values, [True, False, False])
    assert front.tolist() == [True, False, False, True, False, False, True]
    with pytest.raises(MemdriftError, match="values"):
        sweep.pareto_front(values, [True, False])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=25))
def test_pareto_front_properties(rows):
    v = np.array(rows, dtype=float)
    front = sweep.pareto_front(v, [True, False, False])
    cost = v * np.array([-1.0, 1.0, 1.0])

    def dominates(a, b):
        return np.all(a <= b) and np.any(a < b)

    assert front.any()
    for i in range(len(v)):
        dominated = any(dominates(cost[j], cost[i]) for j in range(len(v)))
        assert front[i] == (not dominated)


def test_table_and_plot(tmp_path):
    spec = sweep.parse_spec(SMALL)
    ds = sweep.run_sweep(spec, None, mode="serial").dataset
    table = sweep.best_table(ds)
    n_front = int(ds["pareto"].sum())
    assert "differential_bins [1]" in table and f"{n_front} of 4 points on the Pareto front" in table
    assert len(table.splitlines()) == 1 + n_front + 1
    png = sweep.plot_pareto(ds, tmp_path / "front.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_shipped_examples_parse():
    names = sweep.shipped_specs()
    assert "example-ramp-vs-identical" in names
    for name in names:
        spec = sweep.load_spec(name)
        assert spec.n_points >= 4
    ramp = sweep.load_spec("example-ramp-vs-identical")
    # One corner of the grid is the identical-pulse scheme: start = end.
    corner = [p for p in sweep.enumerate_points(ramp)
              if p.coords["amplitude_start_v"] == 0.995 and p.coords["width_start_s"] == 350e-9]
    _, train = sweep.build_point(corner[0].task)
    assert np.all(np.abs(train.amplitude_v) == 0.995) and np.all(train.width_s == 350e-9)
    ffp = sweep.load_spec("example-ffp-window-levels")
    assert ffp.model == "bulk4t" and ffp.shape == (3, 3)
    # The three level counts of a window segment one trace: three seeds for nine points.
    assert len({p.seed for p in sweep.enumerate_points(ffp)}) == 3


# ----------------------------------------------------------------------------- ffp on the bulk film

# An 8 x 8 film and a 20-pulse dR map: seconds a point. At this grid 7 V moves R by at
# most ~0.16 ohm per 0.8 s event, so the windows sit below that (above it every target
# asks for the largest amplitude and the window stops mattering).
FFP_SMALL = """
[sweep]
name = "ffp-small"
seed = 3
devices = 1

[scheme]
base = "ffp"
window_low_ohm = 0.05
levels = 32
map_pulses = 20
max_events = 4000

[device]
preset = "tio2x-4t"
grid = 8

[axes]
window_high_ohm = [0.1, 0.15]
"""


def test_ffp_sweep_larger_window_fewer_events(tmp_path):
    spec = sweep.parse_spec(FFP_SMALL)
    out = tmp_path / "ffp.nc"
    run = sweep.run_sweep(spec, out, mode="serial")
    ds = open_dataset(out).load()
    assert run.computed == 2 and ds["window_high_ohm"].attrs["units"] == "ohm"
    for m in spec.metrics:
        assert ds[m].dims == ("window_high_ohm",) and np.all(np.isfinite(ds[m].values)), m
    events_p, events_d = ds["ffp_events_potentiation"].values, ds["ffp_events_depression"].values
    # The larger |dR| aimed at takes fewer events to cross the same HRS -> LRS -> HRS span.
    assert events_p[1] < 0.85 * events_p[0] and events_d[1] < 0.85 * events_d[0]
    assert np.all(events_p > 100) and np.all(events_p < 4000) and np.all(events_d < 4000)
    # A cycle is every event's 0.8 s write pulse (no read time given), and costs energy.
    np.testing.assert_allclose(ds["write_time_per_cycle"].values, 0.8 * (events_p + events_d), rtol=1e-12)
    np.testing.assert_array_equal(ds["programming_time_per_cycle"].values, ds["write_time_per_cycle"].values)
    assert np.all(ds["energy_per_cycle"].values > 0)
    reach = ds["reachable_levels_n"].values
    assert np.all((reach >= 0) & (reach <= 32))
    np.testing.assert_array_equal(reach, np.minimum(32 - ds["skipped_levels_n_potentiation"].values,
                                                    32 - ds["skipped_levels_n_depression"].values))
    assert ds.attrs["model"] == "bulk4t" and ds.attrs["scheme"] == "ffp" and ds.attrs["parameters.grid_x"] == 8
    # Resume: a rerun reuses both parts; another grid is another point.
    assert sweep.run_sweep(spec, out, mode="serial").computed == 0
    finer = sweep.parse_spec(FFP_SMALL.replace("grid = 8", "grid = 10"))
    assert {p.key for p in sweep.enumerate_points(finer)}.isdisjoint(p.key for p in sweep.enumerate_points(spec))


def test_ffp_level_count_axis_segments_the_same_trace():
    text = FFP_SMALL.replace("levels = 32\n", "").replace("window_high_ohm = [0.1, 0.15]",
                                                          "window_high_ohm = [0.15]\nlevels = [8, 512]")
    spec = sweep.parse_spec(text)
    points = sweep.enumerate_points(spec)
    assert len({p.seed for p in points}) == 1 and len({p.key for p in points}) == 2
    ds = sweep.run_sweep(spec, None, mode="serial").dataset
    events = ds["ffp_events_potentiation"].values[0]
    assert events[0] == events[1]  # one trace, two segmentations
    skipped = ds["skipped_levels_n_potentiation"].values[0]
    assert skipped[0] == 0 and skipped[1] >= skipped[0]
    assert ds["levels"].dtype.kind == "i" and np.all(ds["reachable_levels_n"].values[0] <= [8, 512])


@pytest.mark.parametrize("replace, with_, key", [
    ("devices = 1", "devices = 1\ncycles = 3", "sweep.cycles"),
    ('preset = "tio2x-4t"', f'preset = "{PRESET}"', "device.preset"),
    ("grid = 8", "grid = 8.5", "device.grid"),
    ("grid = 8", "grid = 2", "grid_x"),
    ("grid = 8", "grid = 8\ngrid_x = 8.0", "device.grid"),
    ("map_pulses = 20", "map_pulses = 0", "map_pulses"),
    ("window_high_ohm = [0.1, 0.15]", "window_high_ohm = [0.04, 0.15]", "window_low_ohm"),
    ("window_high_ohm = [0.1, 0.15]", "levels = [32, 1]", "levels"),
    ("window_high_ohm = [0.1, 0.15]", "levels = [32, 64.5]", "axes.levels[1]"),
    ("window_high_ohm = [0.1, 0.15]", "amplitude_end_v = [0.9, 1.0]", "axes.amplitude_end_v"),
    ("window_high_ohm = [0.1, 0.15]", '"variation.tunnel_length_m" = [0.0, 0.1]',
     "axes.variation.tunnel_length_m"),
    ("levels = 32", "levels = 32\npulses_per_branch = 3", "scheme.pulses_per_branch"),
])
def test_bad_ffp_spec_names_the_key(replace, with_, key):
    assert replace in FFP_SMALL
    with pytest.raises(MemdriftError, match=key.replace("[", r"\[").replace("]", r"\]")):
        sweep.parse_spec(FFP_SMALL.replace(replace, with_))


# ----------------------------------------------------------------------------- write-verify


def test_ffp_option_defaults_are_the_scheme_dataclass_defaults():
    from memdrift.emulator.bulk4t_schemes import FFPOptions

    made = FFPOptions()
    assert (sweep.FFP_OPTIONS["window_low_ohm"][2], sweep.FFP_OPTIONS["window_high_ohm"][2]) == made.window_ohm
    for name in ("ffp_width_s", "max_events", "map_pulses"):
        assert sweep.FFP_OPTIONS[name][2] == getattr(made, name), name


def test_write_verify_options_are_the_scheme_dataclass_fields():
    import dataclasses

    from memdrift.emulator.write_verify import WriteVerify

    scheme_fields = [f for f in dataclasses.fields(WriteVerify) if f.name != "targets_s"]
    assert list(sweep.WV_OPTIONS) == [*sweep.WV_TARGET_OPTIONS, *(f.name for f in scheme_fields)]
    for f in scheme_fields:
        integer, units, default = sweep.WV_OPTIONS[f.name]
        assert (integer, units, default) == (isinstance(f.default, int), f.metadata["unit"], f.default), f.name
    assert sweep.WV_OPTIONS["max_pulses"] == (True, "1", 100)
    assert sweep.WV_OPTIONS["read_width_s"] == (False, "s", 30e-6)

WV_SMALL = f"""
[sweep]
name = "wv-small"
seed = 2
devices = 24

[scheme]
base = "write-verify"
g_low_s = 0.8e-3
g_high_s = 1.6e-3

[device]
preset = "{PRESET}"

[axes]
levels = [4, 24]
tolerance = [0.005, 0.05]

[metrics]
store = ["differential_bins", "state_sigma", "states"]
"""


def test_write_verify_sweep_trades_band_against_energy_and_bins(tmp_path):
    ds = sweep.run_sweep(sweep.parse_spec(WV_SMALL), tmp_path / "wv.nc", mode="serial").dataset
    assert ds["differential_bins"].dims == ("levels", "tolerance")
    # (dict indexers: ``tolerance`` is also a keyword of .sel itself)
    assert int(ds["states"].sel({"levels": 24, "tolerance": 0.005})) == 24
    # a tighter band: more pulses, so more energy and time, and a narrower spread of every level
    for levels in (4, 24):
        tight, loose = ds.sel({"levels": levels, "tolerance": 0.005}), ds.sel({"levels": levels, "tolerance": 0.05})
        assert float(tight["energy_per_cycle"]) > float(loose["energy_per_cycle"])
        assert float(tight["programming_time_per_cycle"]) > float(loose["programming_time_per_cycle"])
        assert float(tight["state_sigma"]) < float(loose["state_sigma"])
    # 24 levels 35 uS apart: a +-5 % band (up to +-80 uS) merges neighbours, +-0.5 % keeps all of them
    assert int(ds["differential_bins"].sel({"levels": 24, "tolerance": 0.005})) == 2 * 24 - 1
    assert int(ds["differential_bins"].sel({"levels": 24, "tolerance": 0.05})) < 2 * 24 - 1
    assert (ds["differential_bins"] <= 2 * ds["levels"] - 1).all()


@pytest.mark.parametrize("replace, with_, key", [
    ("seed = 2", "seed = 2\ncycles = 3", "sweep.cycles"),
    ("levels = [4, 24]", "levels = [4, 1]", "levels"),
    ("g_high_s = 1.6e-3", "g_high_s = 0.5e-3", "g_low_s"),
    ("tolerance = [0.005, 0.05]", "tolerance = [0.005, 0.0]", "tolerance"),
    ("levels = [4, 24]", "pulses_per_branch = [4, 24]", "axes.pulses_per_branch"),
    ('store = ["differential_bins", "state_sigma", "states"]', 'store = ["ffp_events_potentiation"]',
     "ffp_events_potentiation"),
])
def test_bad_write_verify_spec_names_the_key(replace, with_, key):
    assert replace in WV_SMALL
    with pytest.raises(MemdriftError, match=key):
        sweep.parse_spec(WV_SMALL.replace(replace, with_))


# ----------------------------------------------------------------------------- accuracy through aihwkit

# ramps from 0.7-0.8 V, as in the cluster test: from 0.9 V a 2-device x 4-cycle point of the shipped preset may
# have no linear range, hence no record to program (accuracy NaN)
ACCURACY = SMALL.replace("amplitude_start_v = [0.9, 0.995]", "amplitude_start_v = [0.7, 0.8]").replace(
    'store = ["differential_bins", "state_sigma", "bin_width"]', """\
store = ["differential_bins", "accuracy", "accuracy_no_hwat", "accuracy_digital"]
[metrics.accuracy]
dataset = "digits"
epochs = 1
repeats = 1
train_samples = 200
test_samples = 100""")


def test_accuracy_metric_lands_in_the_dataset(tmp_path):
    pytest.importorskip("aihwkit")
    from memdrift.experiments.datasets import load
    from memdrift.experiments.evaluate import Settings, accuracy, train_digital

    spec = sweep.parse_spec(ACCURACY)
    assert spec.accuracy["epochs"] == 1 and spec.accuracy["network"] == "mlp"
    # The record gets the program-error table the bridge needs.
    assert sweep.enumerate_points(spec)[0].task["levels"] == [32]
    ds = sweep.run_sweep(spec, tmp_path / "acc.nc", mode="serial").dataset
    for m in ("accuracy", "accuracy_no_hwat", "accuracy_digital"):
        values = ds[m].values
        assert np.all(np.isfinite(values)) and np.all((values >= 0) & (values <= 1)), m
        assert ds[m].attrs["units"] == "1"
    assert ds.attrs["accuracy.dataset"] == "digits"
    # Trained once for the sweep, and the very network the evaluate study trains.
    digital = ds["accuracy_digital"].values
    assert np.unique(digital).size == 1
    data = load("digits").subset(200, 100)
    net = train_digital("mlp", data, Settings(epochs=1, seed=0))
    assert digital.flat[0] == accuracy(net, data.x_test, data.y_test)
    assert digital.flat[0] > 0.2  # 10 classes: above chance after one epoch
    # The analog accuracy follows the device: not one value for all four points.
    assert np.unique(ds["accuracy"].values).size > 1


def test_ffp_and_accuracy_sweeps_on_two_workers_match_serial(tmp_path):
    pytest.importorskip("aihwkit")
    from distributed import Client, LocalCluster

    specs = {"ffp": sweep.parse_spec(FFP_SMALL), "accuracy": sweep.parse_spec(ACCURACY)}
    serial = {k: sweep.run_sweep(s, tmp_path / f"{k}-serial.nc", mode="serial").dataset for k, s in specs.items()}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        for name, spec in specs.items():
            run = sweep.run_sweep(spec, tmp_path / f"{name}-dask.nc", mode="client", client=client)
            assert run.computed == spec.n_points
            xr.testing.assert_identical(serial[name], run.dataset)
            on_disk = open_dataset(tmp_path / f"{name}-dask.nc").load()
            for m in spec.metrics:
                assert np.array_equal(on_disk[m].values, serial[name][m].values, equal_nan=True), (name, m)
