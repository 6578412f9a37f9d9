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
    real = engine.pulse_arrays

    def interrupted(*args, first_device=0, **kwargs):
        if first_device >= 2:
            raise KeyboardInterrupt
        return real(*args, first_device=first_device, **kwargs)

    monkeypatch.setattr(engine, "pulse_arrays", interrupted)
    assert cli.main([*BASE, "--chunk-devices", "2", "-o", str(tmp_path / "o.nc")]) == 130
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(engine, "pulse_arrays", real)

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


def _fresh_python(code: str) -> str:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout


def test_pulse_imports_no_dask_array_distributed_scipy_or_frameworks(tmp_path):
    # each of these costs a tenth of a second or more of start-up that a filament pulse run has no use for
    # (scipy.special it has: the parameter draws' inverse normal)
    heavy = ("dask.array", "distributed", "scipy.linalg", "torch", "aihwkit", "matplotlib", "numba")
    out = _fresh_python(
        "import sys\n"
        "from memdrift.experiments import cli\n"
        f"assert cli.main({[*BASE, '-o', str(tmp_path / 'p.nc')]!r}) == 0\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
        "from xarray.namedarray import pycompat\n"
        "print('dask' in pycompat._cached_duck_array_modules)\n")
    assert out.splitlines()[-2:] == ["[]", "False"], out
    assert xr.open_dataset(tmp_path / "p.nc").sizes["device"] == 7


def test_dask_stand_in_answers_as_xarray_would():
    out = _fresh_python(
        "import sys\n"
        "import numpy as np, xarray as xr\n"
        "from xarray.namedarray.pycompat import array_type, mod_version\n"
        "from memdrift.experiments import cli\n"
        "with cli._dask_looked_up_lazily():\n"
        "    xr.Variable(('x',), np.zeros(3))\n"
        "    print('dask.array' in sys.modules, array_type('dask'))\n"
        "    import dask, dask.array as da\n"
        "    print(array_type('dask') == (da.Array,), mod_version('dask') == mod_version('dask'))\n"
        "    print(str(mod_version('dask')) == dask.__version__.split('+')[0])\n"
        "    v = xr.DataArray(da.ma.masked_array(da.arange(4.0, chunks=2), mask=[0, 1, 0, 0]))\n"
        "    print(v.chunks, int(v.isnull().sum()))\n")
    assert out.splitlines() == ["False ()", "True True", "True", "((2, 2),) 1"], out


def test_kernel_computes_the_next_chunk_while_this_one_is_assembled(monkeypatch):
    import threading

    from memdrift.models import MODELS

    real_arrays, real_dataset = engine.pulse_arrays, engine.pulse_dataset
    second_started = threading.Event()
    where = []

    def arrays(*args, first_device=0, **kwargs):
        where.append(threading.current_thread().name)
        if first_device == 2:
            second_started.set()
        return real_arrays(*args, first_device=first_device, **kwargs)

    def dataset(*args, first_device=0, **kwargs):
        if first_device == 0:
            # the chunk after this one is already in the kernel (a serial loop would wait here in vain)
            assert second_started.wait(10)
        return real_dataset(*args, first_device=first_device, **kwargs)

    monkeypatch.setattr(engine, "pulse_arrays", arrays)
    monkeypatch.setattr(engine, "pulse_dataset", dataset)
    params = load_preset(PRESET).params
    chunks = list(MODELS.get("filament").run_chunks(params, "ramp", devices=5, chunk_devices=2, cycles=2, seed=3))
    assert [c.sizes["device"] for c in chunks] == [2, 2, 1]
    assert all(name.startswith("memdrift-kernel") for name in where), where
    whole = engine.run_pulses(params, from_name("ramp"), devices=5, cycles=2, seed=3)
    for name in ("conductance", "temperature_peak", "energy", "gap", "pulse_flag", "device"):
        assert np.array_equal(np.concatenate([c[name].values for c in chunks]), whole[name].values), name
