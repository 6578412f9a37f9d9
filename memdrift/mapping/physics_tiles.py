"""Inference in aihwkit on exactly the emulated conductances (the hook of the physics-in-the-loop route).

:class:`EmulatedConductances` is an aihwkit noise model that draws nothing: for
its tile, programming returns the weights the emulated pairs hold,
``(G+ − G−) · w_max / (g_max − g_min)``, and drift to time ``t`` returns those of
the pairs aged to ``t`` by the emulator (at the temperature chosen with
:func:`select_age`). Everything else is aihwkit's: DAC/ADC, output noise, bound
management, global drift compensation (its baseline taken on the programmed
weights), IR drop on the C++ tile. Each tile gets its own model (aihwkit keeps one
``rpu_config`` per layer but a model must know its own layer's conductances).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from aihwkit.inference.noise.base import BaseNoiseModel
from torch import Tensor, nn

from memdrift.errors import MemdriftError
from memdrift.mapping.physics_program import PhysicsProgram


class EmulatedConductances(BaseNoiseModel):
    """The programmed weights of one tile, and its aged weights by (temperature K, time s)."""

    def __init__(self, programmed: np.ndarray, aged: dict[tuple[float, float], np.ndarray]):
        super().__init__()
        self.programmed = torch.as_tensor(np.asarray(programmed), dtype=torch.float32)
        self.aged = {k: torch.as_tensor(np.asarray(v), dtype=torch.float32) for k, v in aged.items()}
        self.temperature_k: float | None = None

    def __eq__(self, other: object) -> bool:  # tensors make the base __eq__ ambiguous
        return self is other

    __hash__ = object.__hash__

    @torch.no_grad()
    def apply_programming_noise(self, weights: Tensor) -> tuple[Tensor, list[Tensor | None]]:
        if tuple(weights.shape) != tuple(self.programmed.shape):
            raise MemdriftError(f"tile weights {tuple(weights.shape)} do not match the emulated pairs "
                                f"{tuple(self.programmed.shape)}")
        return self.programmed.to(weights.device, weights.dtype).clone(), [None]

    @torch.no_grad()
    def apply_drift_noise(self, weights: Tensor, drift_noise_parameters: list, t_inference: float) -> Tensor:
        if t_inference == 0.0 or self.temperature_k is None:
            return self.programmed.to(weights.device, weights.dtype).clone()
        key = (float(self.temperature_k), float(t_inference))
        if key not in self.aged:
            raise MemdriftError(f"no emulated aging to t = {t_inference:g} s at {self.temperature_k:g} K; "
                                f"emulated: {sorted(self.aged)}")
        return self.aged[key].to(weights.device, weights.dtype).clone()

    def apply_programming_noise_to_conductance(self, g_target: Tensor) -> Tensor:
        raise MemdriftError("EmulatedConductances holds weights, not a conductance distribution")


def tile_weights(analog: nn.Module) -> list[np.ndarray]:
    """Each analog tile's stored weights (after aihwkit's weight scaling), the targets to program."""
    return [tile.tile.get_weights().detach().cpu().numpy().astype(np.float64) for tile in analog.analog_tiles()]


def install(analog: nn.Module, program: PhysicsProgram) -> None:
    """Give every tile of ``analog`` its own :class:`EmulatedConductances` from ``program``."""
    tiles = list(analog.analog_tiles())
    if len(tiles) != len(program.conductance_s):
        raise MemdriftError(f"{len(tiles)} analog tiles but {len(program.conductance_s)} programmed layers")
    for i, tile in enumerate(tiles):
        aged = {key: program.aged_weights(i, key) for key in program.aged_s}
        model = EmulatedConductances(program.weights(i), aged)
        tile.rpu_config = copy.deepcopy(tile.rpu_config)
        tile.rpu_config.noise_model = model
        if hasattr(tile, "noise_model"):
            tile.noise_model = model
        tile.programmed_weights = None
        tile.reference_combined_weights = None


def select_age(analog: nn.Module, temperature_k: float | None) -> None:
    """Which temperature's aged conductances ``drift_analog_weights(t)`` uses (None: no aging)."""
    for tile in analog.analog_tiles():
        tile.rpu_config.noise_model.temperature_k = temperature_k
