"""Shared test helpers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

EXT = Path(__file__).resolve().parents[1] / "memdrift" / "ext"


@pytest.fixture
def isa_builds(tmp_path):
    """Build a C harness over the kernels' headers once per instruction set this CPU runs (baseline,
    AVX2, AVX-512F, x86-64-v4), with one instruction set per build and the project's flags (no FMA
    contraction), and return [(flags, stdout as float64)] for comparing their bits. Skips without a C
    compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the per-instruction-set harness")
    cpu = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    isas = [[]] + [[f"-m{isa}"] for isa in ("avx2", "avx512f") if isa in cpu]
    if all(f in cpu for f in ("avx512f", "avx512dq", "avx512bw", "avx512vl")):
        isas.append(["-march=x86-64-v4"])  # the AVX-512 clone of MD_CLONES_DQ code

    def build(source: str, args: tuple[str, ...] = ()) -> list[tuple[list[str], np.ndarray]]:
        path = tmp_path / "harness.c"
        path.write_text(source)
        outputs = []
        for isa in isas:
            exe = tmp_path / ("harness" + "".join(isa))
            subprocess.run([cc, "-std=c11", "-O3", "-ffp-contract=off", "-fno-trapping-math", "-fno-math-errno", "-Wno-psabi", *isa,
                            "-DMD_CLONES=", f"-I{EXT}", str(path), "-lm", "-o", str(exe)], check=True,
                           capture_output=True)
            run = subprocess.run([str(exe), *args], check=True, capture_output=True)
            outputs.append((isa, np.frombuffer(run.stdout, dtype=np.float64)))
        return outputs

    return build


@pytest.fixture
def compiled_substeps():
    """Sub-steps the compiled kernel takes for one nominal device through a pulse train."""
    return _compiled_substeps


def _compiled_substeps(params, train) -> float:
    """Sub-steps the compiled kernel takes for device 0 of ``params`` through one cycle of ``train``
    (column 3 of the kernel state, see ``engine.kernel_state``)."""
    from memdrift.emulator import engine, filament
    from memdrift.ext import _filament

    keys = engine.device_keys(0, 1)
    table, gap0 = engine.parameter_table(params, keys)
    state = engine.kernel_state(gap0, table[:, filament.COL["ambient_temperature_k"]].copy())
    outs = [np.empty((1, train.n_pulses)) for _ in range(4)]
    _filament.run_cycle(engine.segment_table(train), state, table, keys, np.zeros(1, np.uint64), *outs, 0, 1)
    return float(state[0, 3])
