"""Counter-based random streams, one per device.

A device's stream is fixed by (seed, device index) alone, so results do not
depend on thread count, chunking or the order devices are computed in. The root
key comes from :class:`numpy.random.SeedSequence`; device keys and draws use the
SplitMix64 finaliser on (key, counter), the same function the Cython kernel uses
for its hop counts (``memdrift/ext/_filament.pyx``).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
# Separates parameter draws from the kernel's hop-count stream of the same device.
PARAMETER_STREAM = np.uint64(0xD1B54A32D192ED03)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (wrapping uint64 arithmetic)."""
    with np.errstate(over="ignore"):
        z = np.asarray(x, dtype=np.uint64) + GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def device_keys(seed: int, n_devices: int, first_device: int = 0) -> np.ndarray:
    """64-bit key of each device ``first_device … first_device + n_devices − 1``."""
    root = np.random.SeedSequence(int(seed)).generate_state(2, dtype=np.uint64)
    index = np.arange(first_device, first_device + n_devices, dtype=np.uint64)
    with np.errstate(over="ignore"):
        return splitmix64(splitmix64(index ^ root[0]) + root[1])


def uniform(keys: np.ndarray, counter: int, stream: np.uint64 = PARAMETER_STREAM) -> np.ndarray:
    """One uniform in (0, 1) per key for the given counter (53-bit resolution)."""
    with np.errstate(over="ignore"):
        bits = splitmix64(keys ^ stream ^ (np.uint64(counter) * GOLDEN))
    return ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)


def standard_normal(keys: np.ndarray, counter: int) -> np.ndarray:
    return ndtri(uniform(keys, counter))
