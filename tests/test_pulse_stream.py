"""``memdrift pulse`` streams filament ensembles to disk by device chunks: the same file as one whole run."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from memdrift.data import io
from memdrift.emulator import engine
from memdrift.emulator.params import load_preset
from memdrift.emulator.pulses import from_name
from memdrift.experiments import cli

PRESET = "hfoxsy-hfs2"
BASE = ["pulse", "--device", PRESET, "--devices", "7", "--cycles", "2", "--seed", "3", "--quiet"]


def run(tmp_path, name: str, *extra: str) -> xr.Dataset:
    assert cli.main([*BASE, *extra, "-o", str(tmp_path / name)]) == 0
    return xr.open_dataset(tmp_path / name).load()


@pytest.mark.parametrize("float32", [False, True])
def test_chunked_file_is_the_whole_run(tmp_path, float32):
    extra = ("--float32",) if float32 else ()
    whole = run(tmp_path, "whole.nc", *extra)
    assert whole.sizes["device"] == 7
    for chunk in ("1", "3", "7"):
        xr.testing.assert_identical(run(tmp_path, f"c{chunk}.nc", "--chunk-devices", chunk, *extra), whole)
    # and the numbers are the engine's, computed in one piece and in memory
    ref = engine.run_pulses(load_preset(PRESET).params, from_name("ramp"), devices=7, cycles=2, seed=3)
    for name in ("conductance", "temperature_peak", "energy", "gap"):
        want = ref[name].values.astype(np.float32) if float32 and name == "conductance" else ref[name].values
        assert np.array_equal(whole[name].values, want), name
    np.testing.assert_array_equal(whole["device"].values, np.arange(7))


def test_interrupt_and_writer_failure_leave_nothing(tmp_path, capsys, monkeypatch):
    real = engine.run_pulses

    def interrupted(*args, first_device=0, **kwargs):
        if first_device >= 2:
            raise KeyboardInterrupt
        return real(*args, first_device=first_device, **kwargs)

    monkeypatch.setattr(engine, "run_pulses", interrupted)
    assert cli.main([*BASE, "--chunk-devices", "2", "-o", str(tmp_path / "o.nc")]) == 130
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(engine, "run_pulses", real)

    from memdrift.data import schema

    calls = []

    def full_disk(ds):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return schema.for_file.__wrapped__(ds)

    full_disk.__wrapped__ = schema.for_file
    monkeypatch.setattr(schema, "for_file", full_disk)
    capsys.readouterr()
    assert cli.main([*BASE, "--chunk-devices", "2", "-o", str(tmp_path / "o.nc")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no space left" in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_chunk_memory_is_estimated_and_refused(tmp_path, capsys):
    assert cli.main(["pulse", "--device", PRESET, "--devices", "1", "--cycles", "100000000", "-o",
                     str(tmp_path / "o.nc")]) == 2
    line = capsys.readouterr().err.strip()
    assert "in chunks of 1 device" in line and "GiB" in line and "--max-memory-gb" in line
    assert cli.main([*BASE, "--chunk-devices", "0", "-o", str(tmp_path / "o.nc")]) == 2
    assert "chunk-devices" in capsys.readouterr().err
    assert cli.main(["pulse", "--device", PRESET, "--scheme", "write-verify", "--devices", "1", "--chunk-devices", "1",
                     "-o", str(tmp_path / "o.nc")]) == 2
    assert "only filament" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_compression_is_chosen_by_what_a_sample_saves():
    rng = np.random.default_rng(0)
    assert io.measured_compression(rng.random(10_000))["zlib"] is False  # full-entropy floats: not worth zlib
    flags = np.zeros(10_000, dtype=np.uint8)
    flags[::97] = 4
    assert io.measured_compression(flags)["zlib"] is True
    steps = np.repeat(rng.random(100), 100)  # a gap that moves on few pulses
    chosen = io.measured_compression(steps)
    assert chosen["zlib"] is True and chosen["complevel"] == 1
    assert io.measured_compression(np.array([]))["zlib"] is False


def test_streamed_file_compresses_its_flags(tmp_path):
    run(tmp_path, "o.nc", "--chunk-devices", "4")
    ds = xr.open_dataset(tmp_path / "o.nc")
    assert ds["pulse_flag"].encoding["zlib"] is True
    assert ds["pulse_flag"].encoding["chunksizes"][0] == 4
    ds.close()
