"""Design-space sweeps (issue 6): spec validation, Dask vs serial, resume after a kill, Pareto."""

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
    ('base = "ramp"', 'base = "ffp"', "not yet"),
    ("pulses_per_branch = 10", "pulses_per_brunch = 10", "scheme.pulses_per_brunch"),
    (f'preset = "{PRESET}"', f'preset = "{PRESET}"\nambient_temp_k = 300.0', "device.ambient_temp_k"),
    ('store = ["differential_bins"', 'store = ["accuracy"', "not yet"),
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
    spec = sweep.parse_spec(SMALL)
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
    log = [line.split()[0] for line in (parts / "computed.log").read_text().splitlines()]
    assert len(log) == len(set(log)) == 16, "a finished point was computed twice"
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
