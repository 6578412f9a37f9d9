"""Every kind of file memdrift writes passes the IOOS compliance checker for CF-1.10."""

from __future__ import annotations

import json
import string
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, strategies as st

from memdrift.data import schema
from memdrift.data.io import open_dataset, write_dataset
from memdrift.experiments.cli import main

runner = pytest.importorskip("compliance_checker.runner")

#: A retention file's ``time`` is the time elapsed since programming (s). The checker takes any
#: variable named ``time`` for an absolute CF time, which needs "units since epoch"; giving an
#: emulation an invented calendar epoch would turn every user's elapsed time into a date, so
#: these two findings, and only these, are accepted for retention files.
ELAPSED_TIME = ("time must be in a valid units format <unit> since <epoch> not s",
                "time does not have correct time units",
                "Coordinate variable 'time' should have standard_name='time', found: 'None'")


def cf_problems(path: Path) -> list[str]:
    """Findings of high (errors) and medium (warnings) weight of ``compliance-checker --test cf:1.10``."""
    suite = runner.CheckSuite()
    suite.load_all_available_checkers()
    groups, crashed = suite.run_all(suite.load_dataset(str(path)), ["cf:1.10"], skip_checks=[])["cf:1.10"]
    assert not crashed, crashed  # a check that raises has not passed
    return [m for r in groups if r.weight >= 2 and r.value[0] < r.value[1] for m in r.msgs]


def assert_clean(path: Path, accepted: tuple[str, ...] = ()) -> None:
    problems = [m for m in cf_problems(path) if m not in accepted]
    assert not problems, problems
    ds = xr.open_dataset(path)
    for key in ("Conventions", "title", "history", "memdrift_version", "aihwkit_version", "torch_version"):
        assert ds.attrs.get(key), key
    assert ds.attrs["Conventions"] == "CF-1.10"
    ds.close()


def test_streamed_pulse_file_is_cf_clean(tmp_path):
    """Several device chunks: an unlimited device dimension and per-variable filters."""
    chunked = tmp_path / "chunked.nc"
    assert main(["pulse", "--device", "hfoxsy-hfs2", "--scheme", "ramp", "--devices", "5", "--cycles", "2",
                 "--chunk-devices", "2", "--float32", "-o", str(chunked)]) == 0
    assert_clean(chunked)


def test_pulse_file_is_cf_clean_and_its_checker_catches_a_bad_one(tmp_path):
    out = tmp_path / "ramp.nc"
    assert main(["pulse", "--device", "hfoxsy-hfs2", "--scheme", "ramp", "--devices", "2", "--cycles", "2",
                 "-o", str(out)]) == 0
    assert_clean(out)
    # the check can fail: the same data written by plain xarray (dotted names, _FillValue on
    # coordinates, no long_name on the index coordinates) is not clean
    ds = open_dataset(out).load()
    for name in ds.coords:
        ds[name].attrs.pop("long_name", None)
    raw = tmp_path / "raw.nc"
    ds.to_netcdf(raw)
    problems = cf_problems(raw)
    assert any("param.gap_min_m" in m for m in problems)
    assert any("long_name" in m and "device" in m for m in problems)


def test_film_ffp_file_is_cf_clean(tmp_path):
    out = tmp_path / "ffp.nc"
    assert main(["pulse", "--device", "tio2x-4t", "--scheme", "ffp-segmentation", "--devices", "1",
                 "-o", str(out)]) == 0
    assert_clean(out)


@pytest.mark.parametrize("device, protocol, extra, accepted", [
    ("hfoxsy-hfs2", "retention", ["--times", "5", "--temperatures", "300,350"], ELAPSED_TIME),
    ("hfoxsy-hfs2", "iv", ["--steps", "5"], ()),
    ("hfoxsy-hfs2", "pd-cycling", ["--cycles", "2"], ()),
    ("tio2x-4t", "dr-map", [], ()),
])
def test_characterise_files_are_cf_clean(tmp_path, device, protocol, extra, accepted):
    out = tmp_path / f"{protocol}.nc"
    assert main(["characterise", "--device", device, "--protocol", protocol, "--devices", "2", *extra,
                 "-o", str(out)]) == 0
    assert_clean(out, accepted)


def test_retention_long_names_say_what_was_measured(tmp_path):
    out = tmp_path / "ret.nc"
    assert main(["characterise", "--device", "hfoxsy-hfs2", "--protocol", "retention", "--devices", "2",
                 "--times", "3", "--temperatures", "300", "-o", str(out)]) == 0
    ds = open_dataset(out)
    assert "bake" in ds["conductance"].attrs["long_name"] and "pulse" not in ds["conductance"].attrs["long_name"]
    film = schema.annotate(xr.Dataset({"temperature_peak": ("pulse", [300.0])}, attrs={"model": "bulk4t"}))
    assert "film" in film["temperature_peak"].attrs["long_name"]


def test_sweep_file_is_cf_clean_and_reads_back(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_sweep import SMALL

    from memdrift.experiments import sweep

    spec = sweep.parse_spec(SMALL.replace("amplitude_start_v = [0.9, 0.995]", "amplitude_start_v = [0.7, 0.8]"))
    run = sweep.run_sweep(spec, tmp_path / "sweep.nc", mode="serial")
    assert_clean(tmp_path / "sweep.nc")
    back = open_dataset(tmp_path / "sweep.nc").load()
    assert back["differential_bins"].dims == ("amplitude_start_v", "variation.activation_energy_ev")
    xr.testing.assert_equal(back, run.dataset)


def test_evaluate_file_is_cf_clean_and_holds_the_record(tmp_path):
    pytest.importorskip("aihwkit")
    sys.path.insert(0, str(Path(__file__).parent))
    from test_networks import record

    rec = tmp_path / "device.json"
    rec.write_text(json.dumps(record()))
    out = tmp_path / "eval.nc"
    assert main(["evaluate", str(rec), "--network", "mlp", "--dataset", "digits", "-o", str(out), "--epochs", "1",
                 "--hwat-epochs", "1", "--repeats", "2", "--train-samples", "64", "--test-samples", "32",
                 "--threads", "1"]) == 0
    assert_clean(out)
    back = open_dataset(out)
    assert list(back["mode"].values[:2]) == ["digital", "analog"]
    assert json.loads(back.attrs["record_json"]) == record()
    assert back.attrs["settings.seed"] == 0


_names = st.text(string.ascii_lowercase + "_", min_size=1, max_size=12).filter(
    lambda s: "__" not in s and not s.startswith("_") and not s.endswith("_"))


@given(st.dictionaries(st.lists(_names, min_size=1, max_size=3).map(".".join), st.integers(), max_size=8))
def test_attribute_names_round_trip_and_are_cf_legal(attrs):
    on_disk = schema.to_file_attrs(attrs)
    assert all(k.replace("_", "a").isalnum() for k in on_disk)
    assert schema.from_file_attrs(on_disk) == attrs


def test_string_labelled_dimension_round_trips(tmp_path):
    ds = xr.Dataset({"accuracy": (("mode", "repeat"), np.ones((2, 3)), {"units": "1", "long_name": "acc"})},
                    coords={"mode": ["digital", "analog"], "repeat": [0, 1, 2]}, attrs={"settings.seed": 3})
    write_dataset(ds, tmp_path / "e.nc")
    assert_clean(tmp_path / "e.nc")
    back = open_dataset(tmp_path / "e.nc").load()
    xr.testing.assert_equal(back, ds)
    assert float(back["accuracy"].sel(mode="analog", repeat=1)) == 1.0


def test_float32_reads_halve_the_reads_and_stay_within_single_precision(tmp_path, capsys):
    args = ["pulse", "--device", "hfoxsy-hfs2", "--scheme", "ramp", "--devices", "16", "--cycles", "4", "--quiet"]
    assert main([*args, "-o", str(tmp_path / "f64.nc")]) == 0
    assert main([*args, "--float32", "-o", str(tmp_path / "f32.nc")]) == 0
    assert "%|" not in capsys.readouterr().err  # --quiet: no bar
    f64, f32 = open_dataset(tmp_path / "f64.nc").load(), open_dataset(tmp_path / "f32.nc").load()
    assert f32["conductance"].encoding["dtype"] == np.float32 and f32.attrs["reads_stored_as"] == "float32"
    assert f32["energy"].encoding["dtype"] == np.float64  # only the reads
    np.testing.assert_allclose(f32["conductance"].values, f64["conductance"].values, rtol=2 ** -23, atol=0)
    assert not np.array_equal(f32["conductance"].values, f64["conductance"].values)
    assert_clean(tmp_path / "f32.nc")


def test_threads_default_to_the_cores_this_process_may_use():
    import os

    from memdrift.experiments.cli import build_parser

    args = build_parser().parse_args(["pulse", "--device", "hfoxsy-hfs2", "-o", "x.nc"])
    assert args.threads == len(os.sched_getaffinity(0)) and args.quiet is False
