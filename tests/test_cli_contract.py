"""The CLI's contract under bad input, huge requests, full disks and signals.

Each case is one a user met: it must end with exactly one stderr line naming
the field (or path) and what is allowed, exit 2 (130/143 for signals), no
traceback, and no file, folder or temporary left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from memdrift.data import envelope, flags
from memdrift.emulator.params import load_preset
from memdrift.experiments import cli, sweep

PRESET = "hfoxsy-hfs2"


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def run_cli(argv: list[str], capsys, root: Path, *, code: int = 2) -> str:
    """Run ``memdrift argv`` in-process from ``root``; check the contract; return the stderr line."""
    before = files_under(root)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        rc = cli.main([str(a) for a in argv])
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    assert rc == code, err
    lines = [line for line in err.split("\n") if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert files_under(root) == before, "a file or folder was left behind"
    return lines[0]


def preset_file(root: Path, text: str, name: str = "p.toml", encoding: str = "utf-8") -> Path:
    path = root / name
    path.write_bytes(text.encode(encoding))
    return path


VALID_PRESET = load_preset(PRESET).to_toml()


# ----------------------------------------------------------------------------- output paths

@pytest.mark.parametrize("output, fragment", [
    ("folder.nc", "is a directory"),
    ("afile/x.nc", "not a directory"),
    ("/proc/memdrift-x.nc", "cannot be written"),
    ("out.txt", "ending in .nc"),
])
def test_bad_output_paths_refused_before_work(tmp_path, capsys, output, fragment):
    (tmp_path / "folder.nc").mkdir()
    (tmp_path / "afile").write_text("")
    line = run_cli(["pulse", "--device", PRESET, "--devices", "2", "-o", output], capsys, tmp_path)
    assert fragment in line and "output" in line


def test_read_only_directory_refused(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write a read-only folder (root)")
        line = run_cli(["pulse", "--device", PRESET, "-o", ro / "x.nc"], capsys, tmp_path)
        assert "cannot be written" in line
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("argv, fragment", [
    (["pulse", "--device", PRESET, "-o", "o.nc", "--plot", "folder"], "plot"),
    (["pulse", "--device", PRESET, "-o", "o.nc", "--plot", "o.jpg"], "ending in .png"),
    (["evaluate", "r.json", "--network", "mlp", "--dataset", "digits", "-o", "out.txt"], "ending in .nc"),
    (["extract", "d.nc", "-o", "r.txt"], "ending in .json"),
    (["calibrate", "d.csv", "--model", "filament", "-o", "p.json"], "ending in .toml"),
    (["sweep", "s.toml", "-o", "folder.nc"], "is a directory"),
])
def test_every_command_checks_its_outputs_first(tmp_path, capsys, argv, fragment):
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder.nc").mkdir()
    assert fragment in run_cli(argv, capsys, tmp_path)


def test_full_disk_is_one_line_with_the_free_space(tmp_path, capsys, monkeypatch):
    def full(self, *args, **kwargs):
        Path(args[0]).write_bytes(b"\0" * 1024)  # a partial write the failed run must remove
        raise RuntimeError("NetCDF: HDF error")

    # a whole dataset goes through to_netcdf, a streamed one through its store
    monkeypatch.setattr(xr.Dataset, "to_netcdf", full)
    monkeypatch.setattr(xr.Dataset, "dump_to_store", lambda self, store, **kwargs: full(self, store._filename))
    line = run_cli(["pulse", "--device", PRESET, "--devices", "1", "--cycles", "1", "-o", "sub/dir/o.nc"], capsys,
                   tmp_path)
    assert "could not write" in line and "MiB free" in line
    assert not (tmp_path / "sub").exists(), "the folders made for the output must go with it"


# ----------------------------------------------------------------------------- presets

@pytest.mark.parametrize("text, fragment", [
    ('model = "filament"\n', "[parameters] table is missing"),
    ('model = ["filament"]\n[parameters]\n', "model = ['filament'] has the wrong type"),
    ('model = "filament"\nparameters = 5\n', "parameters = 5 has the wrong type"),
    ('model = "filament"\n[parameters]\nactivation_energy_ev = true\n', "activation_energy_ev = True"),
    ('model = "filament"\n[parameters]\nactivation_energy_ev = "0.6"\n', "has the wrong type"),
    ('model = "filament"\n[parameters]\nactivation_energy_ev = [0.6]\n', "has the wrong type"),
    ('model = "filament"\n[parameters]\n[parameters.activation_energy_ev]\nx = 1\n', "has the wrong type"),
    ('model = "filament"\ncolour = "red"\n[parameters]\n', "colour is unknown; allowed keys"),
    ('model = "filament"\n[parameters]\nactivation_energy_ev = 0.6\n[variation]\nactivation_energy_ev = false\n',
     "variation.activation_energy_ev = False"),
    ('name = 3\nmodel = "filament"\n[parameters]\n', "name = 3 has the wrong type"),
    ("model = [\n", "not valid TOML"),
])
def test_strict_presets(tmp_path, capsys, text, fragment):
    preset_file(tmp_path, text)
    line = run_cli(["pulse", "--device", "p.toml", "-o", "o.nc"], capsys, tmp_path)
    assert fragment in line and "p.toml" in line


def test_latin1_preset_and_directory_preset(tmp_path, capsys):
    preset_file(tmp_path, 'description = "é"\n' + VALID_PRESET, encoding="latin-1")
    assert "not UTF-8" in run_cli(["pulse", "--device", "p.toml", "-o", "o.nc"], capsys, tmp_path)
    (tmp_path / "x.toml").mkdir()
    assert "not a file" in run_cli(["pulse", "--device", "x.toml", "-o", "o.nc"], capsys, tmp_path)


def test_a_complete_preset_file_still_runs(tmp_path, capsys):
    preset_file(tmp_path, VALID_PRESET)
    assert cli.main(["pulse", "--device", str(tmp_path / "p.toml"), "--devices", "1", "--cycles", "1",
                     "-o", str(tmp_path / "o.nc")]) == 0
    assert (tmp_path / "o.nc").exists()


# ----------------------------------------------------------------------------- seeds, sizes, options

@pytest.mark.parametrize("argv", [
    ["pulse", "--device", PRESET, "--seed", str(2**64), "-o", "o.nc"],
    ["pulse", "--device", "tio2x-4t", "--seed", "-5", "-o", "o.nc"],
    ["pulse", "--device", PRESET, "--seed", "-5", "-o", "o.nc"],
    ["characterise", "--device", PRESET, "--protocol", "iv", "--seed", str(2**64), "-o", "o.nc"],
    ["evaluate", "r.json", "--network", "mlp", "--dataset", "digits", "--seed", "-1"],
])
def test_seeds_checked_up_front(tmp_path, capsys, argv):
    assert "seed" in run_cli(argv, capsys, tmp_path)


def test_huge_pulse_refused_with_estimate_and_limit(tmp_path, capsys):
    line = run_cli(["pulse", "--device", PRESET, "--devices", "1", "--cycles", "100000000", "-o", "o.nc"], capsys,
                   tmp_path)
    assert "119 GiB" in line and "in chunks of 1 device" in line and "at most 8 GiB" in line and "--max-memory-gb" in line


def test_memory_limit_can_be_lowered_and_raised(tmp_path, capsys):
    argv = ["pulse", "--device", PRESET, "--devices", "4", "--cycles", "2", "-o", "o.nc"]
    line = run_cli(argv + ["--max-memory-gb", "1e-9"], capsys, tmp_path)
    assert "GiB" in line
    assert cli.main([*argv[:-1], str(tmp_path / "o.nc"), "--max-memory-gb", "1"]) == 0


@pytest.mark.parametrize("argv, fragment", [
    (["characterise", "--device", PRESET, "--protocol", "retention", "--temperatures", "300,300", "-o", "o.nc"],
     "repeats a value"),
    (["reproduce", "tio2x-ffp", "--cycles", "5"], "not used by tio2x-ffp"),
    (["pulse", "--devices", "x"], "invalid int value"),
    (["pulse"], "required"),
    (["nonsense"], "invalid choice"),
])
def test_silent_acceptance_and_usage_errors_are_one_line(tmp_path, capsys, argv, fragment):
    assert fragment in run_cli(argv, capsys, tmp_path)


# ----------------------------------------------------------------------------- records and data files

def small_dataset(tmp_path: Path) -> Path:
    path = tmp_path / "g.nc"
    assert cli.main(["pulse", "--device", PRESET, "--devices", "3", "--cycles", "3", "-o", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def record_text(tmp_path_factory):
    root = tmp_path_factory.mktemp("record")
    data = small_dataset(root)
    assert cli.main(["extract", str(data), "-o", str(root / "r.json")]) == 0
    return (root / "r.json").read_text()


@pytest.mark.parametrize("edit, fragment", [
    (lambda r: r.update(nu="x"), "'nu' = 'x'"),
    (lambda r: r.update(colour=1), "'colour' is unknown"),
    (lambda r: r["drift"].update(nu=True), "'drift.nu' = True"),
    (lambda r: r.update(notes=[1]), "'notes'"),
    (lambda r: r.pop("states"), "no key 'states'"),
])
def test_strict_record(tmp_path, capsys, record_text, edit, fragment):
    record = json.loads(record_text)
    edit(record)
    (tmp_path / "r.json").write_text(json.dumps(record))
    line = run_cli(["evaluate", "r.json", "--network", "mlp", "--dataset", "digits"], capsys, tmp_path)
    assert fragment in line


def test_the_extracted_record_passes_the_strict_loader(tmp_path, record_text):
    from memdrift.mapping.extract import load_record

    (tmp_path / "r.json").write_text(record_text)
    assert load_record(tmp_path / "r.json")["states"] is not None or True


def test_extract_refuses_text_conductance_and_empty_devices(tmp_path, capsys):
    ds = xr.open_dataset(small_dataset(tmp_path)).load()
    capsys.readouterr()  # the run that made the dataset warns that the preset lies outside the envelope
    text = ds.copy()
    text["conductance"] = xr.full_like(text["conductance"], "x", dtype=object)
    text.to_netcdf(tmp_path / "text.nc")
    ds.isel(device=slice(0, 0)).drop_vars(list(ds.coords)).to_netcdf(tmp_path / "empty.nc")
    assert "allowed: numbers" in run_cli(["extract", "text.nc", "-o", "r.json"], capsys, tmp_path)
    assert "empty dimension 'device'" in run_cli(["extract", "empty.nc", "-o", "r.json"], capsys, tmp_path)


def test_calibrate_on_constant_conductance(tmp_path, capsys):
    rows = ["cycle,pulse,conductance,amplitude,width"]
    rows += [f"{c},{p},1e-3,{1.0 if p < 20 else -1.0},3.5e-7" for c in range(3) for p in range(40)]
    (tmp_path / "c.csv").write_text("\n".join(rows) + "\n")
    line = run_cli(["calibrate", "c.csv", "--model", "filament", "-o", "p.toml"], capsys, tmp_path)
    assert "no cycle-to-cycle spread" in line


# ----------------------------------------------------------------------------- sweep specs

SPEC = f"""
[sweep]
devices = 2
cycles = 2

[scheme]
base = "ramp"
pulses_per_branch = 5

[device]
preset = "{PRESET}"

[axes]
amplitude_start_v = [0.9]
"""


@pytest.mark.parametrize("old, new, fragment", [
    ("amplitude_start_v = [0.9]", "amplitude_start_v = {start = 0.8, stop = 0.9, num = 3000000}", "num = 3000000"),
    ("amplitude_start_v = [0.9]", "amplitude_start_v = {start = 0.8, stop = 0.9, num = 3000}\n"
                                  "amplitude_end_v = {start = 0.9, stop = 1.0, num = 3000}", "9000000 points"),
    ("cycles = 2", "cycles = 100000000000", "sweep.cycles"),
    ("devices = 2", "devices = 50000000", "sweep.devices"),
    ("pulses_per_branch = 5", "pulses_per_branch = 100000000", "scheme.pulses_per_branch"),
    ("pulses_per_branch = 5", "pulses_per_branch = 5\nwidth_start_s = 1e6", "scheme.width_start_s"),
    ("devices = 2", "devices = 2\nseed = 18446744073709551616", "sweep.seed"),
    ("devices = 2", "devices = true", "sweep.devices"),
    ("devices = 2\ncycles = 2", "devices = 1000\ncycles = 1000000", "GiB a point"),
])
def test_sweep_specs_refused_before_enumeration(tmp_path, capsys, old, new, fragment):
    assert old in SPEC
    (tmp_path / "s.toml").write_text(SPEC.replace(old, new))
    start = time.perf_counter()
    line = run_cli(["sweep", "s.toml", "-o", "o.nc", "--serial", "--no-progress"], capsys, tmp_path)
    assert fragment in line
    assert time.perf_counter() - start < 30, "the refusal must come before the grid is laid out"


def test_hand_edited_part_is_recomputed_not_a_crash(tmp_path, capsys):
    (tmp_path / "s.toml").write_text(SPEC)
    argv = ["sweep", str(tmp_path / "s.toml"), "-o", str(tmp_path / "o.nc"), "--serial", "--no-progress", "--best", "0"]
    assert cli.main(argv) == 0
    parts = sweep.parts_dir(tmp_path / "o.nc")
    (part,) = parts.glob("*.json")
    good = json.loads(part.read_text())
    for broken in ("[1, 2]", json.dumps({**good, "metrics": {k: "x" for k in good["metrics"]}}), "{"):
        part.write_text(broken)
        capsys.readouterr()
        assert cli.main(argv) == 0
        assert "(1 computed, 0 reused)" in capsys.readouterr().err
        assert json.loads(part.read_text())["metrics"] == good["metrics"]


def test_a_failed_sweep_leaves_no_parts_folder(tmp_path, capsys, monkeypatch):
    (tmp_path / "s.toml").write_text(SPEC)

    def broken(task, digital=None):
        raise KeyboardInterrupt

    # the serial loop looks the point runner up in the module that runs the sweep
    monkeypatch.setattr("memdrift.experiments.sweep.run.compute_point", broken)
    before = files_under(tmp_path)
    assert cli.main(["sweep", str(tmp_path / "s.toml"), "-o", str(tmp_path / "o.nc"), "--serial",
                     "--no-progress"]) == 130
    assert files_under(tmp_path) == before


def test_a_second_run_on_one_output_waits_then_reuses(tmp_path):
    import fcntl

    parts = tmp_path / "o.nc.parts"
    parts.mkdir()
    holder = os.open(parts / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)
    entered = threading.Event()

    def second():
        with sweep.claim_parts(parts):
            entered.set()

    thread = threading.Thread(target=second)
    thread.start()
    try:
        assert not entered.wait(0.5), "the second run must wait for the first"
    finally:
        os.close(holder)  # the first run ends (its lock dies with its file)
    assert entered.wait(10)
    thread.join()


# ----------------------------------------------------------------------------- envelope

def test_envelope_flags_pulses_beyond_melting(tmp_path, capsys):
    text = VALID_PRESET.replace(f"thermal_resistance_k_per_w = {load_preset(PRESET).params.thermal_resistance_k_per_w!r}",
                                "thermal_resistance_k_per_w = 100000000.0")
    # the kernel ends a pulse at its thermal ceiling; raised past the melting point, the envelope is the net
    text = text.replace(f"thermal_ceiling_k = {load_preset(PRESET).params.thermal_ceiling_k!r}",
                        "thermal_ceiling_k = 9000.0")
    assert "100000000.0" in text and "thermal_ceiling_k = 9000.0" in text
    preset_file(tmp_path, text)
    out = tmp_path / "hot.nc"
    assert cli.main(["pulse", "--device", str(tmp_path / "p.toml"), "--devices", "2", "--cycles", "1",
                     "-o", str(out)]) == 0
    err = capsys.readouterr().err
    ds = xr.open_dataset(out)
    hot = ds["temperature_peak"].values > envelope.ENVELOPES["filament"].temperature_max_k
    assert hot.any(), "this preset must heat the filament past the melting point for the test to mean anything"
    flagged = (ds[flags.VARIABLE].values & flags.OUTSIDE_ENVELOPE) > 0
    assert np.array_equal(flagged, hot | (flagged & ~hot))  # every molten pulse is flagged
    assert f"{int(flagged.sum())} pulses outside the filament physical envelope" in err
    assert "outside_physical_envelope" in ds[flags.VARIABLE].attrs["flag_meanings"].split()


def test_envelope_is_quiet_inside_and_catches_nan():
    preset = load_preset(PRESET)
    from memdrift.emulator.engine import run_pulses
    from memdrift.emulator.pulses import ramp

    ds = run_pulses(preset.params, ramp(), devices=2, cycles=2, seed=1)
    assert envelope.apply(ds, "filament") == 0
    assert not ds[flags.VARIABLE].values.any()
    ds["temperature_peak"][0, 0, 3] = np.nan
    ds["temperature_peak"][1, 1, 5] = 5000.0
    assert envelope.apply(ds, "filament") == 2
    assert ds[flags.VARIABLE].values[0, 0, 3] == flags.OUTSIDE_ENVELOPE


# ----------------------------------------------------------------------------- signals

@pytest.mark.parametrize("sig, exc_type", [(signal.SIGTERM, cli.Terminated), (signal.SIGINT, KeyboardInterrupt)])
def test_a_signal_inside_the_netcdf_write_waits_for_it_and_leaves_no_file(tmp_path, monkeypatch, sig, exc_type):
    """A signal landing inside xarray's locked file operations must not raise there (the close on the
    way out would wait on the lock forever): it arrives after the write, and the temporary goes."""
    from memdrift.data.io import write_dataset

    original = xr.Dataset.to_netcdf
    finished = []

    def to_netcdf_hit_by_a_signal(self, *args, **kwargs):
        signal.raise_signal(sig)  # the handler runs here, in the middle of the write
        result = original(self, *args, **kwargs)
        finished.append(True)
        return result

    monkeypatch.setattr(xr.Dataset, "to_netcdf", to_netcdf_hit_by_a_signal)
    ds = xr.Dataset({"conductance": (("device",), np.linspace(1e-4, 2e-4, 5))})

    def raise_terminated(signum, frame):
        raise cli.Terminated()

    # both handlers as the CLI has them, whatever an earlier test or library left in place
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, raise_terminated),
                signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}
    try:
        with pytest.raises(exc_type):
            write_dataset(ds, tmp_path / "out.nc")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert finished == [True]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signals_end_cleanly_and_remove_temporaries(tmp_path, sig, code):
    out = tmp_path / "big.nc"
    proc = subprocess.Popen([sys.executable, "-m", "memdrift", "characterise", "--device", PRESET, "--protocol",
                             "pd-cycling", "--devices", "200000", "--cycles", "20", "--chunk-devices", "2000",
                             "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # the output's own temporary: the probe of the output folder at start-up is a ".part" too, and
    # lives only for an instant
    writing = f".{out.name}.*.part"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not list(tmp_path.glob(writing)):
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1]
    assert list(tmp_path.glob(writing)), "the run must be writing when the signal comes"
    sent = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - sent < 20
    assert proc.returncode == code, err
    lines = [line for line in err.replace("\r", "\n").split("\n") if line.strip() and "characterise:" not in line
             or line.startswith("memdrift")]
    assert [line for line in lines if line.startswith("memdrift")] == lines and len(lines) == 1, err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_killed_writers_temporary_is_removed_by_the_next_run(tmp_path):
    """A SIGKILL leaves the writer's temporary; the next write beside it removes it, and only it."""
    import socket as socket_module

    from memdrift.data import io

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    dead_pid = int(dead.stdout)
    host = socket_module.gethostname().replace(".", "_")
    stale = tmp_path / f".o.nc.{host}.{dead_pid}.abc123.part"
    live = tmp_path / f".o.nc.{host}.{os.getpid()}.def456.part"  # a writer still at work
    other_host = tmp_path / f".o.nc.elsewhere.{dead_pid}.ghi789.part"
    other_name = tmp_path / f".p.nc.{host}.{dead_pid}.jkl012.part"
    for path in (stale, live, other_host, other_name):
        path.write_bytes(b"\0" * 64)
    assert cli.main(["pulse", "--device", PRESET, "--devices", "2", "--cycles", "1", "--quiet",
                     "-o", str(tmp_path / "o.nc")]) == 0
    assert not stale.exists()
    assert live.exists() and other_host.exists() and other_name.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["o.nc", live.name, other_host.name, other_name.name])
    assert io.remove_stale_temporaries(tmp_path / "o.nc") == []
