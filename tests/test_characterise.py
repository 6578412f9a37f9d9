"""`memdrift characterise`: protocol datasets (names, dims, units, attributes), chunking, atomic
writes, retention → extraction of the Arrhenius energy, bulk delegation and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from memdrift.data.io import open_dataset
from memdrift.emulator import engine
from memdrift.emulator.params import load_preset
from memdrift.emulator.protocols import Options, characterise, write_characterisation
from memdrift.emulator.pulses import ramp
from memdrift.errors import MemdriftError
from memdrift.experiments.cli import main

FILAMENT = "hfoxsy-hfs2"
GLOBAL_ATTRS = ("memdrift_version", "model", "preset", "protocol", "seed", "Conventions")

#: protocol -> (small options, {variable: (dims, units)}, {coordinate: units})
CASES = {
    "pd-cycling": (Options(devices=3, cycles=2, chunk_devices=2),
                   {"conductance": (("device", "cycle", "pulse"), "S"), "energy": (("device", "cycle", "pulse"), "J"),
                    "temperature_peak": (("device", "cycle", "pulse"), "K"), "amplitude": (("pulse",), "V"),
                    "width": (("pulse",), "s")}, {}),
    "dr-map": (Options(devices=3, amplitudes_v=(0.9, -0.9), pulses=4, chunk_devices=2),
               {"conductance": (("device", "cycle", "pulse"), "S"),
                "delta_conductance": (("device", "cycle", "pulse"), "S"),
                "delta_conductance_mean": (("cycle", "pulse"), "S"),
                "conductance_initial": (("device", "cycle"), "S"), "amplitude": (("cycle", "pulse"), "V")},
               {"family_amplitude": "V"}),
    "retention": (Options(devices=2, temperatures_k=(300.0, 350.0), times=5, time_max_s=1e4),
                  {"conductance": (("device", "temperature", "time"), "S"),
                   "gap": (("device", "temperature", "time"), "m"), "conductance_programmed": (("device",), "S")},
                  {"time": "s", "temperature": "K"}),
    "iv": (Options(devices=2, steps=4, dwell_s=1e-4),
           {"current": (("device", "cycle", "sweep", "voltage"), "A"),
            "gap": (("device", "cycle", "sweep", "voltage"), "m")}, {"voltage": "V"}),
    "endurance": (Options(devices=2, cycles=30, record=6),
                  {"conductance": (("device", "cycle", "pulse"), "S"), "on_off_ratio": (("device", "cycle"), "1"),
                   "conductance_on": (("device", "cycle"), "S"), "conductance_off": (("device", "cycle"), "S")}, {}),
}


@pytest.mark.parametrize("protocol", sorted(CASES))
def test_protocol_dataset_contract_and_atomic_write(protocol, tmp_path):
    opts, variables, coords = CASES[protocol]
    ds = characterise(FILAMENT, protocol, opts)
    assert ds.chunks, "filament protocols are dask-backed (computed chunk by chunk)"
    for name, (dims, units) in variables.items():
        assert ds[name].dims == dims, name
        assert ds[name].attrs["units"] == units, name
        assert ds[name].attrs["long_name"], name
    for name, units in coords.items():
        assert ds[name].attrs["units"] == units, name
    for key in GLOBAL_ATTRS:
        assert key in ds.attrs, key
    assert ds.attrs["protocol"] == protocol and ds.attrs["preset"] == FILAMENT and ds.attrs["seed"] == 0
    assert ds.sizes["device"] == opts.devices
    path = write_characterisation(ds, tmp_path / "out.nc", progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["out.nc"]  # no temporary left behind
    back = open_dataset(path).load()
    assert back.attrs["protocol"] == protocol
    for name, (dims, units) in variables.items():
        assert back[name].attrs["units"] == units
        assert np.isfinite(back[name].values).all(), name
    xr.testing.assert_allclose(back[list(variables)], ds[list(variables)].compute())


def test_chunks_do_not_change_results_and_match_the_engine():
    preset = load_preset(FILAMENT)
    whole = characterise(FILAMENT, "pd-cycling", Options(devices=5, cycles=2, seed=4)).compute()
    chunked = characterise(FILAMENT, "pd-cycling", Options(devices=5, cycles=2, seed=4, chunk_devices=2))
    assert len(chunked["conductance"].chunks[0]) == 3
    direct = engine.run_pulses(preset.params, ramp(), devices=5, cycles=2, seed=4)
    assert np.array_equal(chunked["conductance"].values, whole["conductance"].values)
    assert np.array_equal(whole["conductance"].values, direct["conductance"].values)
    # endurance keeps its own kernel state across cycles; with every cycle kept it is pd-cycling
    endu = characterise(FILAMENT, "endurance", Options(devices=5, cycles=2, record=2, seed=4, chunk_devices=3))
    assert list(endu["cycle"].values) == [0, 1]
    assert np.array_equal(endu["conductance"].values, direct["conductance"].values)
    ratio = endu["conductance_on"] / endu["conductance_off"]
    np.testing.assert_allclose(endu["on_off_ratio"].values, ratio.values)


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    ds = characterise(FILAMENT, "pd-cycling", Options(devices=4, cycles=1, chunk_devices=1))
    calls = []
    real = engine.run_pulses

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "run_pulses", failing)
    with pytest.raises(KeyboardInterrupt):
        write_characterisation(ds, tmp_path / "out.nc", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_dr_map_and_iv_physics_are_consistent():
    dr = characterise(FILAMENT, "dr-map", Options(devices=2, amplitudes_v=(0.9, -0.9), pulses=4, noise=False))
    dr = dr.compute()
    rebuilt = dr["conductance_initial"] + dr["delta_conductance"].cumsum("pulse")
    np.testing.assert_allclose(rebuilt.transpose(*dr["conductance"].dims).values, dr["conductance"].values,
                               rtol=1e-12)
    mean = dr["delta_conductance_mean"].values
    assert (mean[0] > 0).all() and (mean[1] < 0).all()  # SET family raises G, RESET family lowers it
    assert list(dr["branch"].values) == ["potentiation", "depression"]

    iv = characterise(FILAMENT, "iv", Options(devices=1, steps=4, dwell_s=1e-4, noise=False)).compute()
    v = iv["voltage"].values
    i = iv["current"].values[0, 0]  # (sweep, voltage)
    assert v[0] == pytest.approx(-1.0) and v[-1] == pytest.approx(1.0)
    assert np.all(np.sign(i[:, v != 0]) == np.sign(v[v != 0])) and np.all(i[:, v == 0] == 0)
    # the turning points are one measurement shared by both sweeps
    assert i[0, -1] == i[1, -1] and i[0, 0] == i[1, 0]


def test_retention_extracts_the_model_activation_energy(tmp_path, capsys):
    """Arrhenius dissolution r = ν_r exp(−Ea_r/kT): extract's drift-rate fit must find Ea_r (noise off)."""
    out, record = tmp_path / "ret.nc", tmp_path / "ret.json"
    rc = main(["characterise", "--device", FILAMENT, "--protocol", "retention", "--devices", "2", "--no-noise",
               "--temperatures", "300,330,360", "--times", "8", "--time-max", "1e5", "-o", str(out)])
    assert rc == 0 and out.exists()
    assert main(["extract", str(out), "-o", str(record)]) == 0
    drift = json.loads(record.read_text())["drift"]
    ea_model = load_preset(FILAMENT).params.dissolution_energy_ev
    # dissolution makes ln G fall linearly in t, not as a power law: the power-law ν is withheld
    # (R² below the threshold) and the fitted value kept aside, decaying (ν > 0)
    assert drift["nu"] is None and drift["nu_r2"] < 0.9 and drift["nu_fit"]["nu"] > 0
    assert drift["activation_energy_method"] == "drift_rate"  # no saturation within 1e5 s
    assert drift["activation_energy_eV"] == pytest.approx(ea_model, rel=0.10)
    capsys.readouterr()


def test_retention_over_ten_years_saturates_and_still_gives_the_energy(tmp_path, capsys):
    """At 360 K the gap reaches gap_max within the 10-year bake, so ln G is not linear in t: extract
    switches to the time to a common fall of ln G, which is Arrhenius whatever the curve's shape."""
    out, record = tmp_path / "ret.nc", tmp_path / "ret.json"
    assert main(["characterise", "--device", FILAMENT, "--protocol", "retention", "--devices", "1", "--no-noise",
                 "--temperatures", "300,330,360", "--times", "12", "-o", str(out)]) == 0
    ds = xr.open_dataset(out)
    assert ds["time"].values[0] == pytest.approx(1.0) and ds["time"].values[-1] == pytest.approx(3.15576e8)
    gap = ds["gap"].sel(temperature=360.0).values[0]
    assert gap[-1] == pytest.approx(load_preset(FILAMENT).params.gap_max_m)  # saturated
    assert main(["extract", str(out), "-o", str(record)]) == 0
    drift = json.loads(record.read_text())["drift"]
    assert drift["activation_energy_method"] == "time_to_change"
    assert drift["activation_energy_eV"] == pytest.approx(load_preset(FILAMENT).params.dissolution_energy_ev,
                                                          rel=0.10)
    capsys.readouterr()


def test_bulk4t_delegates_to_its_schemes(tmp_path):
    opts = Options(devices=1, temperatures_k=(300.0, 400.0), times=3, time_max_s=100.0,
                   extra={"grid": 8, "conditioning_cycles": 1})
    ds = characterise("tio2x-4t", "retention", opts)
    assert ds["resistance"].dims == ("device", "temperature", "time")
    assert ds["resistance"].attrs["units"] == "ohm" and ds["time"].attrs["units"] == "s"
    assert ds.attrs["protocol"] == "retention" and ds.attrs["model"] == "bulk4t"
    np.testing.assert_allclose(ds["time"].values, [1.0, 10.0, 100.0])
    write_characterisation(ds, tmp_path / "bulk.nc", progress=False)
    assert xr.open_dataset(tmp_path / "bulk.nc").attrs["protocol"] == "retention"
    with pytest.raises(MemdriftError, match=r"protocol = 'iv'.*allowed: dr-map, ffp-segmentation, retention"):
        characterise("tio2x-4t", "iv", Options())


@pytest.mark.parametrize("argv, field", [
    (["--protocol", "nope"], "protocol"),
    (["--protocol", "iv", "--temperatures", "300"], "temperatures_k (--temperatures)"),
    (["--protocol", "retention", "--temperatures", "300,abc"], "temperatures"),
    (["--protocol", "retention", "--temperatures", "-5"], "temperatures_k[0]"),
    (["--protocol", "retention", "--time-min", "10", "--time-max", "1"], "time_max_s"),
    (["--protocol", "pd-cycling", "--devices", "0"], "devices"),
    (["--protocol", "pd-cycling", "--cycles", "0"], "cycles"),
    (["--protocol", "dr-map", "--amplitudes", "0.8,0"], "amplitudes_v[1]"),
    (["--protocol", "iv", "--dwell", "nan"], "dwell_s"),
    (["--protocol", "iv", "--v-max", "-1"], "voltage_max_v"),
])
def test_bad_flags_one_line_error_and_no_file(argv, field, tmp_path, capsys):
    out = tmp_path / "out.nc"
    rc = main(["characterise", "--device", FILAMENT, *argv, "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and field in err, err
    assert list(tmp_path.iterdir()) == []


def test_an_unused_option_is_named_by_its_field_in_python_and_by_its_flag_on_the_command_line(tmp_path, capsys):
    from memdrift.emulator.protocols import PROTOCOL_SPECIFIC, UnusedOption
    from memdrift.experiments.cmd_characterise import FLAGS

    # every option only some protocols read has a flag, and the emulator's messages name none of them
    assert set(FLAGS) == set(PROTOCOL_SPECIFIC)
    with pytest.raises(UnusedOption) as raised:
        characterise(FILAMENT, "iv", Options(temperatures_k=(300.0,)))
    assert str(raised.value) == ("temperatures_k is not used by protocol 'iv'; allowed options: cycles, "
                                 "voltage_max_v, steps, dwell_s, backend, conduction")
    with pytest.raises(UnusedOption, match=r"^program_pulses is not used by protocol 'retention' on a bulk4t"):
        characterise("tio2x-4t", "retention", Options(program_pulses=2))
    assert main(["characterise", "--device", "tio2x-4t", "--protocol", "retention", "--program-pulses", "2",
                 "-o", str(tmp_path / "o.nc")]) == 2
    assert "program_pulses (--program-pulses) is not used by protocol 'retention'" in capsys.readouterr().err
    assert main(["characterise", "--device", FILAMENT, "--protocol", "iv", "--temperatures", "300",
                 "-o", str(tmp_path / "o.nc")]) == 2
    assert ("temperatures_k (--temperatures) is not used by protocol 'iv'; allowed options: cycles (--cycles), "
            "voltage_max_v (--v-max), steps (--steps), dwell_s (--dwell), backend (--backend), conduction "
            "(--conduction)") in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_bad_device_and_output(tmp_path, capsys):
    assert main(["characterise", "--device", "nope", "--protocol", "iv", "-o", str(tmp_path / "o.nc")]) == 2
    assert "preset" in capsys.readouterr().err
    assert main(["characterise", "--device", FILAMENT, "--protocol", "iv", "-o", str(tmp_path / "o.txt")]) == 2
    assert "output" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
