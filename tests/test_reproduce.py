"""``memdrift reproduce``: the paper-vs-memdrift tables and figures, on small ensembles."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from memdrift.experiments import reproduce as rep
from memdrift.experiments.cli import main

SHARED_TARGETS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "targets.toml"


def test_shipped_targets_are_the_published_ones():
    if not SHARED_TARGETS.exists():
        pytest.skip(f"{SHARED_TARGETS} not beside the checkout")
    assert rep.targets() == tomllib.loads(SHARED_TARGETS.read_text())


def test_hfoxsy_ramp_table_holds_paper_and_emulated_numbers(tmp_path):
    result = rep.reproduce("hfoxsy-ramp", tmp_path, devices=6, cycles=6, progress=False)
    for path in result.files:
        assert path.exists() and path.stat().st_size > 500
    rows = {r.quantity: r for r in result.rows}
    assert rows["differential bins (BW > 2σ)"].paper == 31
    assert rows["mean state σ"].paper == pytest.approx(23.7e-6)
    # emulated figures come out of the run: σ is positive and bins are bounded by 2 * states - 1
    assert rows["mean state σ"].memdrift > 0
    states = rows["states per device (linear range)"].memdrift
    assert 2 <= states <= 20
    assert rows["differential bins (BW > 2σ)"].memdrift <= 2 * states - 1
    assert 0.0 < rows["R² linear fit, potentiation"].memdrift <= 1.0
    table = result.table()
    assert "paper vs memdrift" in table and "81.077" in table


def test_unknown_experiment_is_named(tmp_path, capsys):
    with pytest.raises(rep.MemdriftError, match="experiment = 'fig9'"):
        rep.reproduce("fig9", tmp_path)
    assert main(["reproduce", "fig9", "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid choice: 'fig9'" in err[0]
    assert not (tmp_path / "x").exists()


def test_cli_bad_devices_is_one_line(tmp_path, capsys):
    assert main(["reproduce", "hfoxsy-ramp", "--devices", "0", "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "devices" in err[0]
    assert not (tmp_path / "r").exists()


def test_row_ratio_and_missing_values():
    row = rep.Row("x", "µS", 80e-6, 88e-6, 1e6)
    assert row.cells() == ("x", "80", "88", "1.100")
    assert rep.Row("y", "", None, np.nan).cells() == ("y", "—", "—", "—")


def test_cli_prints_verdicts_and_strict_exits_on_a_failing_figure(tmp_path, capsys, monkeypatch):
    from memdrift.experiments.cmd_reproduce import EXIT_OUTSIDE_TOLERANCE

    argv = ["reproduce", "hfoxsy-ramp", "--devices", "6", "--cycles", "6", "-o", str(tmp_path / "r")]
    # nothing held to a tolerance: nothing can fail
    monkeypatch.setattr(rep, "tolerances", lambda: {})
    assert main(argv + ["--strict"]) == 0
    assert "verdict per figure" in capsys.readouterr().out
    impossible = {"filament_hfoxsy_hfs2": {"states_per_device": rep.Tolerance("Fig. 2d", "rel", -1.0)}}
    monkeypatch.setattr(rep, "tolerances", lambda: impossible)
    assert main(argv) == 0  # without --strict a failed comparison is a result, not an error
    out = capsys.readouterr().out
    assert "  FAIL  Fig. 2d: 0 of 1 within tolerance; outside: states per device (linear range)" in out
    assert main(argv + ["--strict"]) == EXIT_OUTSIDE_TOLERANCE
