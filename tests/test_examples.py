"""The numbered scripts in examples/ run on their own, each in a fresh interpreter."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("[0-9][0-9]_*.py"))


def test_the_four_examples_are_there():
    assert [p.name[:2] for p in EXAMPLES] == ["01", "02", "03", "04"]


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_and_writes_its_files(script, tmp_path):
    if script.name.startswith("03") and importlib.util.find_spec("aihwkit") is None:
        pytest.skip("aihwkit not installed: bash scripts/install-aihwkit.sh")
    res = subprocess.run([sys.executable, str(script), str(tmp_path / "out")], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written and all(p.startswith(script.name[:2]) for p in written), written
    assert "wrote" in res.stdout
    if script.name.startswith("01"):
        assert "same bits: True" in res.stdout
