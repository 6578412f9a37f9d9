"""Grid convergence of the film's write: R13 after +6 V on T2/T4 for 500 s, with and without contact resistance.

The ideal equipotential segments carry a field singularity at their ends (~ r^-1/2) and the write's change of R13
grows with every refinement; Pt contacts of finite specific contact resistivity spread the current over the
transfer length and the change converges (docs/physics-film.md, "Contacts").
"""

from __future__ import annotations

import pytest

from memdrift.emulator.bulk4t_schemes import Bulk4TDevices
from memdrift.emulator.params import load_preset

DEFAULT_GRID = 32


def write_r13(grid: int, rho_c: float, heating: float) -> tuple[float, float]:
    """R13 (ohm) of the uniform film before and after +6 V on T2/T4 for 500 s (deterministic, local sink)."""
    params = load_preset("tio2x-4t").params.replace(grid_x=float(grid), grid_y=float(grid),
                                                    contact_resistivity_ohm_m2=rho_c, joule_heating=heating)
    dev = Bulk4TDevices(params, 1, seed=0, deterministic=True)
    before = float(dev.read()[0])
    rec = dev.write(6.0, 500.0)
    assert rec.flag[0] == 0
    return before, float(dev.read()[0])


@pytest.mark.parametrize("heating", [0.0, 1.0])
def test_r13_after_the_write_is_grid_converged_with_contacts(heating):
    assert load_preset("tio2x-4t").params.grid_x == DEFAULT_GRID   # the default grid is the one tested
    runs = {g: write_r13(g, 1e-9, heating) for g in (DEFAULT_GRID, 2 * DEFAULT_GRID, 4 * DEFAULT_GRID)}
    coarse, fine = runs[DEFAULT_GRID][1], runs[2 * DEFAULT_GRID][1]
    # the criterion: the default grid and one twice as fine agree within 1 %
    assert abs(fine / coarse - 1) < 0.01
    # and the write's change of R13 itself converges: each refinement moves it less than the one before
    change = {g: after - before for g, (before, after) in runs.items()}
    assert all(c < 0 for c in change.values())
    step_coarse = abs(change[2 * DEFAULT_GRID] - change[DEFAULT_GRID])
    step_fine = abs(change[4 * DEFAULT_GRID] - change[2 * DEFAULT_GRID])
    assert step_fine < 0.6 * step_coarse


def test_ideal_segments_fail_the_criterion():
    # without contact resistance the drift at the singular segment ends grows with refinement: the same
    # criterion must reject it, or it does not test the regularisation
    coarse = write_r13(DEFAULT_GRID, 0.0, 1.0)[1]
    fine = write_r13(2 * DEFAULT_GRID, 0.0, 1.0)[1]
    assert abs(fine / coarse - 1) > 0.05
