"""A compiled kernel that cannot be imported is a memdrift error naming the reference backend."""

from __future__ import annotations

import sys

import pytest

from memdrift import ext
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


def test_missing_build_points_at_the_reference_backend(monkeypatch):
    # a None entry in sys.modules makes the import fail as a missing build does
    monkeypatch.setitem(sys.modules, "memdrift.ext._filament", None)
    params = load_preset("hfoxsy-hfs2").params
    with pytest.raises(MemdriftError, match=r"memdrift.ext._filament cannot be imported.*--backend reference"):
        run_pulses(params, ramp(), devices=2, cycles=1, seed=0, backend="compiled")
    # the twin still runs without the build
    ds = run_pulses(params, ramp(), devices=2, cycles=1, seed=0, backend="reference")
    assert ds["conductance"].shape[0] == 2
