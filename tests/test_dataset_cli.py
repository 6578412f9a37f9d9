"""Dataset contract, netCDF round trip, presets, pulse trains and the CLI's error handling."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings, strategies as st

from memdrift.data.io import atomic_write_text, open_dataset, write_dataset
from memdrift.emulator.engine import params_from_attrs, run_pulses, train_from_dataset
from memdrift.emulator.params import FilamentParams, Preset, load_preset, preset_from_toml, save_preset
from memdrift.emulator.pulses import PAPER_RAMP, PulseTrain, from_name, identical, ramp
from memdrift.errors import MemdriftError


def test_paper_ramp_table():
    train = ramp()
    assert train.n_pulses == 2 * PAPER_RAMP["pulses_per_branch"] == 40
    assert train.amplitude_v[0] == pytest.approx(0.7) and train.amplitude_v[19] == pytest.approx(0.995)
    assert train.amplitude_v[20] == pytest.approx(-0.7) and train.amplitude_v[39] == pytest.approx(-0.995)
    assert train.width_s[0] == pytest.approx(160e-9) and train.width_s[19] == pytest.approx(350e-9)
    assert np.all(np.diff(train.width_s[:20]) > 0)
    assert train.read_voltage_v == -0.1 and train.read_width_s == 30e-6
    assert train.branch[:20] == ("potentiation",) * 20 and train.branch[20:] == ("depression",) * 20


def test_dataset_contract_and_roundtrip(tmp_path):
    preset = load_preset("hfoxsy-hfs2")
    ds = run_pulses(preset.params, ramp(), devices=4, cycles=3, seed=7, preset=preset.name)
    assert ds["conductance"].dims == ("device", "cycle", "pulse")
    for name, unit in (("conductance", "S"), ("temperature_peak", "K"), ("energy", "J"), ("amplitude", "V"),
                       ("width", "s"), ("gap", "m")):
        assert ds[name].attrs["units"] == unit
        assert ds[name].attrs["long_name"]
    for key in ("memdrift_version", "model", "preset", "scheme", "seed"):
        assert key in ds.attrs
    path = write_dataset(ds, tmp_path / "run.nc")
    assert not list(tmp_path.glob(".*part"))  # no temporary left behind
    # memdrift's reader gives back the in-memory names; the file adds CF metadata only
    mine = open_dataset(path).load()
    xr.testing.assert_equal(mine, ds)
    assert {k: mine.attrs[k] for k in ds.attrs} == ds.attrs
    for name in ds.variables:  # (pulse_flag's CF flag_masks is an array)
        for key, value in ds[name].attrs.items():
            assert np.array_equal(np.asarray(mine[name].attrs[key]), np.asarray(value)), (name, key)
    # the file alone (CF names, read by plain xarray) is enough to regenerate itself
    back = xr.open_dataset(path)
    assert not [k for k in back.attrs if "." in k]
    again = run_pulses(params_from_attrs(back.attrs), train_from_dataset(back), devices=back.sizes["device"],
                       cycles=back.sizes["cycle"], seed=int(back.attrs["seed"]), preset=back.attrs["preset"])
    assert np.array_equal(again["conductance"].values, ds["conductance"].values)
    # a file written before the attribute names were CF-legal (dotted) still loads and regenerates
    old = tmp_path / "dotted.nc"
    ds.to_netcdf(old)
    dotted = open_dataset(old)
    assert dotted.attrs == ds.attrs
    again = run_pulses(params_from_attrs(dotted.attrs), train_from_dataset(dotted), devices=4, cycles=3, seed=7,
                       preset=preset.name)
    assert np.array_equal(again["conductance"].values, ds["conductance"].values)


def test_preset_round_trips_unchanged(tmp_path):
    preset = load_preset("hfoxsy-hfs2")
    save_preset(preset, tmp_path / "p.toml")
    again = load_preset(tmp_path / "p.toml")
    assert again == preset
    assert again.to_toml() == preset.to_toml()


@pytest.mark.parametrize("make, field", [
    (lambda: PulseTrain(np.array([1.0]), np.array([-1e-9])), "width_s"),
    (lambda: PulseTrain(np.array([1.0]), np.array([0.0])), "width_s"),
    (lambda: PulseTrain(np.array([np.nan]), np.array([1e-9])), "amplitude_v"),
    (lambda: identical(width_s=0.0), "width_s"),
    (lambda: load_preset("no-such-device"), "preset"),
    (lambda: from_name("zigzag"), "scheme"),
    (lambda: FilamentParams(gap_min_m=2e-9, gap_max_m=1e-9, gap_initial_m=1e-9), "gap_min_m"),
    (lambda: FilamentParams(ambient_temperature_k=-3.0), "ambient_temperature_k"),
    (lambda: FilamentParams(variation={"colour": 0.1}), "variation.colour"),
    (lambda: run_pulses(FilamentParams(), ramp(), devices=0), "devices"),
])
def test_bad_input_names_the_field(make, field):
    with pytest.raises(ValueError, match=field) as info:
        make()
    assert isinstance(info.value, MemdriftError)
    assert "allowed" in str(info.value)


def test_bad_toml_is_reported(tmp_path):
    with pytest.raises(MemdriftError, match="not valid TOML"):
        preset_from_toml("model = [", "broken.toml")
    with pytest.raises(MemdriftError, match="parameters.colour"):
        preset_from_toml('model = "filament"\n[parameters]\ncolour = 1.0\n', "x.toml")


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 30), a0=st.floats(0.1, 3.0), a1=st.floats(0.1, 3.0), w0=st.floats(1e-9, 1e-6),
       w1=st.floats(1e-9, 1e-6))
def test_ramp_constructor_properties(n, a0, a1, w0, w1):
    train = ramp(n, a0, a1, w0, w1)
    assert train.n_pulses == 2 * n
    assert np.all(train.amplitude_v[:n] > 0) and np.all(train.amplitude_v[n:] < 0)
    assert np.all(train.width_s > 0)
    assert np.allclose(-train.amplitude_v[n:], train.amplitude_v[:n])


def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "memdrift", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_cli_pulse_writes_dataset_and_plot(tmp_path):
    out, png = tmp_path / "r.nc", tmp_path / "r.png"
    res = _cli("pulse", "--device", "hfoxsy-hfs2", "--scheme", "ramp", "--devices", "8", "--cycles", "3",
               "--seed", "2", "--threads", "2", "-o", str(out), "--plot", str(png))
    assert res.returncode == 0, res.stderr
    ds = xr.open_dataset(out)
    assert ds.sizes == {"device": 8, "cycle": 3, "pulse": 40}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    listing = _cli("presets").stdout
    assert listing.count("hfoxsy-hfs2") == 1 and "tio2x-4t" in listing
    assert "retention" in listing and "hfoxsy-ramp" in listing  # protocols and experiments are listed too


@pytest.mark.parametrize("args, field", [
    (["--device", "nope"], "preset"),
    (["--device", "hfoxsy-hfs2", "--scheme", "zigzag"], "scheme"),
    (["--device", "hfoxsy-hfs2", "--devices", "0"], "devices"),
    (["--device", "hfoxsy-hfs2", "--threads", "0"], "threads"),
])
def test_cli_bad_input_one_line_no_file(tmp_path, args, field):
    out = tmp_path / "bad.nc"
    res = _cli("pulse", *args, "-o", str(out))
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0] and "Traceback" not in res.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "keep.txt"
    atomic_write_text(target, "old")

    class Boom(Exception):
        pass

    from memdrift.data.io import atomic_path

    with pytest.raises(Boom):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise Boom
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_atomic_writes_get_the_mode_of_a_plain_open(tmp_path, umask):
    # The temporary file starts 0600; a lab shares datasets, so the result must
    # carry the mode the user's umask gives any new file, as open() would.
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "note.txt", "x")
        write_dataset(xr.Dataset({"r_ohm": ("pulse", np.arange(3.0))}), tmp_path / "d.nc")
        with open(tmp_path / "plain.txt", "w") as plain:
            plain.write("x")
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == expected
    for name in ("note.txt", "d.nc"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected, name


def test_custom_preset_file_via_cli(tmp_path):
    preset = load_preset("hfoxsy-hfs2")
    # a copy of a preset outside the physical envelope must say why, as the shipped one does
    custom = Preset("mine", preset.params.replace(site_population=5e4), "custom", "identical",
                    calibration={"envelope_exception": preset.calibration["envelope_exception"]})
    save_preset(custom, tmp_path / "mine.toml")
    res = _cli("pulse", "--device", str(tmp_path / "mine.toml"), "--devices", "2", "-o", str(tmp_path / "m.nc"))
    assert res.returncode == 0, res.stderr
    ds = open_dataset(tmp_path / "m.nc")
    assert ds.attrs["scheme"] == "identical" and ds.attrs["param.site_population"] == 5e4
