"""Physical constants (CODATA 2018, exact in the SI) and the branch labels datasets carry."""

from __future__ import annotations

from typing import Final

#: Boltzmann constant
BOLTZMANN_J_PER_K: Final = 1.380649e-23
#: elementary charge
ELEMENTARY_CHARGE_C: Final = 1.602176634e-19
#: Boltzmann constant in eV/K: BOLTZMANN_J_PER_K / ELEMENTARY_CHARGE_C, to the digits the kernels use
BOLTZMANN_EV_PER_K: Final = 8.617333262e-5

#: branch labels of the pulses of a cycle and of a retention bake
POTENTIATION: Final = "potentiation"
DEPRESSION: Final = "depression"
RETENTION: Final = "retention"
#: the programming branches, potentiation first
PROGRAMMING_BRANCHES: Final = (POTENTIATION, DEPRESSION)
BRANCHES: Final = (POTENTIATION, DEPRESSION, RETENTION)

__all__ = ["BOLTZMANN_EV_PER_K", "BOLTZMANN_J_PER_K", "BRANCHES", "DEPRESSION", "ELEMENTARY_CHARGE_C",
           "POTENTIATION", "PROGRAMMING_BRANCHES", "RETENTION"]
