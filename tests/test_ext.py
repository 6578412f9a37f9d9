"""A compiled kernel that cannot be imported, or whose parameter table is laid out otherwise than its
NumPy twin's, is a memdrift error naming the reference backend."""

from __future__ import annotations

import sys

import pytest

from memdrift import ext
from memdrift.emulator import bulk4t, filament
from memdrift.emulator.engine import run_pulses
from memdrift.emulator.params import load_preset
from memdrift.emulator.pulses import ramp
from memdrift.errors import MemdriftError


def test_both_kernels_load():
    for name in ext.KERNELS:
        assert hasattr(ext.load(name), "__file__")


def test_unknown_kernel_is_named():
    with pytest.raises(MemdriftError, match="'_nothing' is unknown; allowed: _filament, _bulk4t"):
        ext.load("_nothing")


def test_missing_build_points_at_the_reference_backend(monkeypatch, tmp_path, capsys):
    # a None entry in sys.modules makes the import fail as a missing build does
    monkeypatch.setitem(sys.modules, "memdrift.ext._filament", None)
    params = load_preset("hfoxsy-hfs2").params
    with pytest.raises(MemdriftError, match=r"memdrift.ext._filament cannot be imported.*allowed: backend "
                                            r"'reference' \(the NumPy twin\)"):
        run_pulses(params, ramp(), devices=2, cycles=1, seed=0, backend="compiled")
    # the command line names the flag
    from memdrift.experiments.cli import main

    argv = ["pulse", "--device", "hfoxsy-hfs2", "--devices", "2", "--cycles", "1", "-o", str(tmp_path / "o.nc")]
    assert main(argv) == 2
    assert "allowed: --backend 'reference' (the NumPy twin)" in capsys.readouterr().err
    # the twin still runs without the build
    ds = run_pulses(params, ramp(), devices=2, cycles=1, seed=0, backend="reference")
    assert ds["conductance"].shape[0] == 2


@pytest.mark.parametrize("name, twin", [("_filament", filament.COLUMNS), ("_bulk4t", bulk4t.DEVICE_COLUMNS)])
def test_the_kernel_names_its_table_columns_as_the_twin_does(name, twin):
    # the names come from the kernel's own enum (an X-macro list in C, enum -> name pairs in Cython)
    kernel = ext.load(name).COLUMNS
    assert len(kernel) == len(twin) > 10
    for position, (held, wanted) in enumerate(zip(kernel, twin)):
        assert held == wanted, f"column {position}"


def test_a_kernel_whose_columns_differ_is_refused_naming_the_column(monkeypatch):
    module = ext.load("_filament")
    swapped = list(module.COLUMNS)
    swapped[3], swapped[4] = swapped[4], swapped[3]
    monkeypatch.setattr(module, "COLUMNS", tuple(swapped))
    params = load_preset("hfoxsy-hfs2").params
    n = len(swapped)
    with pytest.raises(MemdriftError, match=r"memdrift.ext._filament holds 'oxide_thickness_m' in column 3 .* "
                                            rf"the NumPy twin holds 'charge_number' \({n} columns against {n}\)"):
        run_pulses(params, ramp(), devices=2, cycles=1, seed=0, backend="compiled")


@pytest.mark.parametrize("kernel, words", [
    (("a", "b"), "holds 'nothing' in column 2 of its parameter table where the NumPy twin holds 'c' "
                 "(2 columns against 3)"),
    (("a", "b", "c", "d"), "holds 'd' in column 3 of its parameter table where the NumPy twin holds 'nothing'"),
    (("a", "", "c"), "holds '' in column 1"),
])
def test_a_column_missing_or_added_on_one_side_is_named(kernel, words):
    with pytest.raises(MemdriftError) as info:
        ext.check_columns("_bulk4t", kernel, ("a", "b", "c"))
    assert words in str(info.value)
    ext.check_columns("_bulk4t", ("a", "b", "c"), ("a", "b", "c"))
