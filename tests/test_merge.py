"""One device record from several datasets: memdrift extract A.nc B.nc -o device.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memdrift.emulator.params import Preset, load_preset, save_preset
from memdrift.errors import MemdriftError
from memdrift.experiments.cli import main
from memdrift.mapping.extract import extract_datasets, extract_record, load_record, merge_records
from memdrift.mapping.measured import read_measured

PRESET = "hfoxsy-hfs2"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("merge")
    out = {"ramp": d / "ramp.nc", "retention": d / "retention.nc", "other": d / "other.nc"}
    assert main(["pulse", "--device", PRESET, "--scheme", "ramp", "--devices", "6", "--cycles", "3", "--seed", "1",
                 "-o", str(out["ramp"])]) == 0
    assert main(["characterise", "--device", PRESET, "--protocol", "retention", "--devices", "4", "--times", "7",
                 "--temperatures", "300,350", "--no-noise", "-o", str(out["retention"])]) == 0
    preset = load_preset(PRESET)
    # a copy of a preset outside the physical envelope must say why, as the shipped one does
    save_preset(Preset("other", preset.params.replace(site_population=preset.params.site_population * 2),
                       "custom", "ramp", calibration={"envelope_exception": preset.calibration["envelope_exception"]}),
                d / "other.toml")
    assert main(["pulse", "--device", str(d / "other.toml"), "--scheme", "ramp", "--devices", "6", "--cycles", "3",
                 "-o", str(out["other"])]) == 0
    return out


def _extract(path: Path) -> dict:
    return extract_record(read_measured(path), levels=(32,))


def test_cycling_and_retention_merge_into_one_record(files, tmp_path, capsys):
    out = tmp_path / "device.json"
    assert main(["extract", str(files["ramp"]), str(files["retention"]), "--levels", "32", "-o", str(out)]) == 0
    merged = load_record(out)
    alone_ramp, alone_ret = _extract(files["ramp"]), _extract(files["retention"])
    # what each file measures, unchanged: programming from the ramp, drift from the retention bake
    assert alone_ramp["drift"]["nu"] is None and alone_ret["states"] is None
    for key in ("states", "bin_width", "state_sigma", "differential_bins", "g_min", "g_max", "energy_per_pulse"):
        assert merged[key] == pytest.approx(alone_ramp[key]), key
    assert json.dumps(merged["drift"], sort_keys=True) == json.dumps(alone_ret["drift"], sort_keys=True)
    assert merged["drift"]["activation_energy_eV"] > 0
    notes = merged["notes"]
    assert f"programming metrics from {files['ramp']}" in notes and f"drift metrics from {files['retention']}" in notes
    # neither file's reason for what it lacks survives into the record that has it
    assert not [n for n in notes if "no retention data" in n or "no programming pulses" in n]
    assert [s["provides"] for s in merged["sources"]] == [["programming"], ["drift"]]
    # a fixed 20-pulse ramp defines no FFP skipped levels: null, with the reason
    assert merged["skipped_levels"] is None
    assert any(n.startswith(f"{files['ramp']}: skipped_levels: defined for feedforward") for n in notes)
    assert "drift ν / Ea" in capsys.readouterr().out


def test_order_of_files_does_not_change_the_values(files):
    named = [(str(files[k]), read_measured(files[k])) for k in ("retention", "ramp")]
    a = extract_datasets(named, levels=(32,))
    b = extract_datasets(named[::-1], levels=(32,))
    for key in ("states", "state_sigma", "bin_width", "drift", "program_error_t"):
        assert json.dumps(a[key], sort_keys=True) == json.dumps(b[key], sort_keys=True), key


def test_two_devices_are_refused_naming_the_parameter(files, tmp_path, capsys):
    out = tmp_path / "device.json"
    assert main(["extract", str(files["ramp"]), str(files["other"]), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "param.site_population" in err and "not the device of" in err
    assert not out.exists()
    named = [("a.nc", read_measured(files["retention"])), ("b.nc", read_measured(files["other"]))]
    with pytest.raises(MemdriftError, match="preset"):
        extract_datasets(named)


def test_second_programming_file_is_named_and_not_mixed_in(files):
    a, b = _extract(files["ramp"]), _extract(files["ramp"])
    b["state_sigma"] = 1.0  # would show if the groups were mixed key by key
    merged = merge_records([("first.nc", a), ("second.nc", b)])
    assert merged["state_sigma"] == a["state_sigma"]
    assert any("also in second.nc: not used" in n for n in merged["notes"])
    assert any(n.startswith("drift: none of first.nc, second.nc") and "protocol 'retention'" in n
               for n in merged["notes"])
    with pytest.raises(MemdriftError, match="level counts"):
        merge_records([("a.nc", a), ("b.nc", dict(b, levels=[64]))])


def test_drift_study_without_drift_names_the_key_and_the_protocol(files, tmp_path, capsys):
    pytest.importorskip("aihwkit")
    rec = tmp_path / "ramp.json"
    assert main(["extract", str(files["ramp"]), "-o", str(rec)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(rec), "--network", "mlp", "--dataset", "digits", "--study", "drift",
                 "-o", str(tmp_path / "drift.nc")]) == 2
    err = capsys.readouterr().err.strip()
    assert "'drift.nu'" in err and "characterise --protocol retention" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "drift.nc").exists()


def test_summary_prints_energies_with_their_si_prefix():
    from memdrift.experiments.cmd_extract import si

    assert si(0.2489, "J") == "248.9 mJ" and si(5.935e-10, "J") == "593.5 pJ" and si(None, "J") == "—"
