"""The typed extraction record (memdrift.mapping.record.DeviceRecord): the JSON it writes is the JSON it
reads, and the files written before it existed are reproduced byte for byte."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from memdrift.emulator.params import load_preset
from memdrift.emulator.write_verify import WriteVerify, run_write_verify
from memdrift.errors import MemdriftError
from memdrift.mapping import extract, metrics
from memdrift.mapping.extract import extract_record, merge_records
from memdrift.mapping.record import (
    ABSENT, FIELD_UNITS, KEYS, OPTIONAL_KEYS, REQUIRED_KEYS, DeviceRecord, load_record, save_record,
)
from test_extract import synthetic_dataset

#: records written by save_record before the record was a dataclass, from the datasets below
RECORDS = Path(__file__).parent / "data" / "records"


def _bake() -> xr.Dataset:
    t = np.logspace(0, 8.5, 30)
    temps = np.array([300.0, 350.0, 400.0])
    k = 1e3 * np.exp(-0.9 / (metrics.K_B_EV * temps))
    g = 1e-4 * np.exp(-k[:, None, None] * t) * np.ones((3, 4, 1))
    return xr.Dataset({"conductance": (("temperature", "device", "time"), g)},
                      coords={"temperature": temps, "time": t})


def _write_verify() -> xr.Dataset:
    return run_write_verify(load_preset("hfoxsy-hfs2").params,
                            WriteVerify(targets_s=(0.8e-3, 1.1e-3, 1.4e-3), tolerance=0.03), devices=12, seed=3,
                            backend="reference")


CASES = {
    "staircase": lambda: extract_record(synthetic_dataset(), levels=(8, 16)),
    # a merged record ends with sources and then source: the order it was built in is kept
    "merged": lambda: merge_records([("staircase.nc", extract_record(synthetic_dataset(), levels=(8,))),
                                     ("bake.nc", extract_record(_bake(), levels=(8,)))]),
    "write-verify": lambda: extract_record(_write_verify()),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_record_is_written_byte_for_byte_as_before_and_round_trips(name, tmp_path):
    before = (RECORDS / f"{name}.json").read_bytes()
    record = CASES[name]()
    assert isinstance(record, DeviceRecord)
    assert save_record(record, tmp_path / "now.json").read_bytes() == before
    # read back and written again: the same bytes, the same record
    back = load_record(RECORDS / f"{name}.json")
    assert save_record(back, tmp_path / "again.json").read_bytes() == before
    assert back == json.loads(before)
    assert DeviceRecord.from_json(back.to_json()) == back
    assert back.to_json() + "\n" == before.decode("utf-8")


def test_the_fields_are_typed_and_carry_their_units():
    record = load_record(RECORDS / "staircase.json")
    assert record.states == 16 and isinstance(record.bin_width, float)
    assert record.notes == record["notes"]
    assert FIELD_UNITS["bin_width"] == "S" and FIELD_UNITS["energy_per_pulse"] == "J"
    assert FIELD_UNITS["pulse_width"] == "s" and FIELD_UNITS["states"] == "1"
    for f in dataclasses.fields(DeviceRecord):
        if not f.metadata.get("internal"):
            assert f.metadata["meaning"] and "unit" in f.metadata, f.name
    assert set(REQUIRED_KEYS) | set(OPTIONAL_KEYS) == set(KEYS)
    # the extractor's contract names are the record's
    assert extract.REQUIRED_KEYS == REQUIRED_KEYS and extract.load_record is load_record


def test_an_optional_key_not_written_stays_absent():
    record = load_record(RECORDS / "staircase.json")
    assert record.write_verify is ABSENT and "write_verify" not in record
    assert record.get("sources") is None
    with pytest.raises(KeyError):
        record["sources"]
    assert "write_verify" not in record.to_dict()


def _edited(tmp_path: Path, change) -> Path:
    data = json.loads((RECORDS / "staircase.json").read_text())
    change(data)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("change, words", [
    (lambda d: d.pop("g_max"), "has no key 'g_max'"),
    (lambda d: d.pop("notes"), "has no key 'notes'"),
    (lambda d: d.update(bin_widht=1e-4), "key 'bin_widht' is unknown"),
    (lambda d: d.update(states=2.5), "'states' = 2.5 is out of range; allowed: an integer >= 0 or null"),
    (lambda d: d.update(drift={"nu": None}), "has no key 'drift.activation_energy_eV'"),
    (lambda d: d.update(pulse_width="255 ns"), "'pulse_width' = '255 ns' has the wrong type"),
])
def test_the_one_loader_refuses_a_bad_record_naming_the_field(tmp_path, change, words):
    path = _edited(tmp_path, change)
    with pytest.raises(MemdriftError) as info:
        load_record(path)
    assert words in str(info.value) and str(path) in str(info.value)


def test_a_record_of_unknown_keys_is_not_written(tmp_path):
    data = dict(json.loads((RECORDS / "staircase.json").read_text()), extra=1)
    with pytest.raises(MemdriftError, match="key 'extra' is unknown"):
        save_record(data, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()
