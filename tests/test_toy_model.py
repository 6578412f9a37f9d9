"""A newcomer's device in one place: an ideal linear memristor written here, registered with one call,
runs through ``memdrift pulse``, ``memdrift extract`` and a three-point sweep, then goes again."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pytest
import xarray as xr

from memdrift import models
from memdrift.emulator.params import ModelParams, quantity
from memdrift.errors import MemdriftError
from memdrift.experiments import sweep
from memdrift.experiments.cli import main


@dataclass(frozen=True)
class ToyParams(ModelParams):
    """Every pulse above threshold moves the conductance by one fixed step, clipped to the window."""

    model: ClassVar[str] = "toy-linear"
    g_min_s: float = quantity(1e-4, "S", 0.0, None, "lowest conductance", low_open=True)
    g_max_s: float = quantity(1e-3, "S", 0.0, None, "highest conductance", low_open=True)
    step_s: float = quantity(3e-5, "S", 0.0, None, "conductance change of one pulse", low_open=True)
    threshold_v: float = quantity(0.5, "V", 0.0, None, "pulses of smaller magnitude leave the state")
    read_noise: float = quantity(0.01, "1", 0.0, 1.0, "relative standard deviation of a read")
    variation: dict[str, float] = field(default_factory=dict)

    variable_fields: ClassVar[frozenset[str]] = frozenset({"step_s"})

    def __post_init__(self) -> None:
        self._validate()
        self._validate_variation()


class ToyModel(models.DeviceModel):
    name = "toy-linear"
    params_type = ToyParams
    schemes = ("ramp", "identical")
    sweep_schemes = ("ramp", "identical")

    def run(self, params: Any, scheme: Any, *, devices: int, cycles: int | None = None, seed: int = 0,
            threads: int = 1, backend: str = "reference", noise: bool = True, progress: bool = False,
            preset: str = "custom", memory_limit_bytes: float | None = None, plot: bool = False,
            **options: Any) -> xr.Dataset:
        from memdrift.emulator.engine import build_dataset
        from memdrift.emulator.params import Preset
        from memdrift.emulator.pulses import PulseTrain, from_name

        p = params.params if isinstance(params, Preset) else params
        train = scheme if isinstance(scheme, PulseTrain) else from_name(scheme)
        n_cycles = cycles or 1
        rng = np.random.default_rng(seed)
        amplitude = np.asarray(train.amplitude_v)
        width = np.asarray(train.width_s)
        step = np.where(np.abs(amplitude) > p.threshold_v, np.sign(amplitude) * p.step_s, 0.0)
        g = np.full(devices, p.g_min_s)
        conductance = np.empty((devices, n_cycles, train.n_pulses))
        energy = np.empty_like(conductance)
        for c in range(n_cycles):
            for k in range(train.n_pulses):
                energy[:, c, k] = amplitude[k] ** 2 * g * width[k]
                g = np.clip(g + step[k], p.g_min_s, p.g_max_s)
                read = rng.normal(1.0, p.read_noise, devices) if noise else 1.0
                conductance[:, c, k] = g * read
        ds = build_dataset({"conductance": conductance, "energy": energy}, p, train, seed=seed, noise=noise,
                           preset=preset, backend=backend)
        ds.attrs["layout"] = models.LAYOUT_PULSE
        return ds


TOY_PRESET = """name = "toy"
model = "toy-linear"
scheme = "ramp"
[parameters]
step_s = 3e-5
"""


@pytest.fixture
def toy():
    model = models.register(ToyModel)
    yield model
    models.unregister("toy-linear")


def test_a_registered_model_runs_through_pulse_extract_and_a_sweep(toy, tmp_path):
    preset = tmp_path / "toy.toml"
    preset.write_text(TOY_PRESET)
    pulses_nc, record_json = tmp_path / "toy.nc", tmp_path / "toy.json"
    assert main(["pulse", "--device", str(preset), "--backend", "reference", "--devices", "8", "--cycles", "4",
                 "--quiet", "-o", str(pulses_nc)]) == 0
    with xr.open_dataset(pulses_nc) as ds:
        assert ds.attrs["model"] == "toy-linear" and ds.attrs["layout"] == "pulse"
        assert ds["conductance"].shape[:2] == (8, 4)
    assert main(["extract", str(pulses_nc), "-o", str(record_json)]) == 0
    record = json.loads(record_json.read_text())
    assert record["source"]["model"] == "toy-linear"
    assert record["states"] >= 10 and record["linear_r2"]["potentiation"] > 0.999

    spec = sweep.parse_spec(f"""
[sweep]
name = "toy"
devices = 4
cycles = 3
[scheme]
base = "ramp"
[device]
preset = "{preset}"
[axes]
step_s = [2e-5, 3e-5, 4e-5]
""")
    assert spec.model == "toy-linear"
    result = sweep.run_sweep(spec, tmp_path / "sweep.nc", mode="serial")
    assert result.computed == 3
    with xr.open_dataset(tmp_path / "sweep.nc") as ds:
        assert ds.sizes["step_s"] == 3
        assert np.all(np.isfinite(ds["energy_per_cycle"].values))
        # a larger step crosses the window in fewer pulses: the bins widen
        assert np.all(np.diff(ds["bin_width"].values) > 0)


def test_an_unregistered_model_is_refused_by_name(toy):
    models.unregister("toy-linear")
    with pytest.raises(MemdriftError, match=r"model = 'toy-linear' is unknown; allowed: bulk4t, filament"):
        models.get("toy-linear")
    models.register(ToyModel)


def test_the_compiled_backend_is_refused_for_a_reference_only_model(toy, tmp_path):
    preset = tmp_path / "toy.toml"
    preset.write_text(TOY_PRESET)
    assert main(["pulse", "--device", str(preset), "--quiet", "-o", str(tmp_path / "x.nc")]) == 2
    assert not (tmp_path / "x.nc").exists()
