"""memdrift: physics-level emulator of oxygen-vacancy resistive memories.

The public interface is :mod:`memdrift.api`, re-exported here: ``load_preset``, ``simulate``,
``characterise``, ``extract``, ``to_aihwkit``, ``sweep``. They load on first use, so importing
memdrift stays cheap.
"""

from importlib.metadata import PackageNotFoundError, version as _version
from typing import TYPE_CHECKING, Any

try:
    __version__ = _version("memdrift")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

if TYPE_CHECKING:
    from memdrift.api import characterise, extract, load_preset, simulate, sweep, to_aihwkit

_API = ("characterise", "extract", "load_preset", "simulate", "sweep", "to_aihwkit")


def __getattr__(name: str) -> Any:
    if name in _API:
        from memdrift import api

        return getattr(api, name)
    raise AttributeError(f"module 'memdrift' has no attribute {name!r}")


__all__ = ["__version__", "characterise", "extract", "load_preset", "simulate", "sweep", "to_aihwkit"]
