"""Device models behind one interface, and the registry that names them.

A :class:`DeviceModel` says what a device is to the rest of memdrift: its
parameter dataclass, the pulse schemes and characterisation protocols it runs,
its backends, the layout of the datasets it writes, and :meth:`DeviceModel.run`.
The command line, the sweeps, calibration and extraction look a model up in
:data:`MODELS` by the name its presets carry instead of branching on that name,
so a new device is one module (a subclass) and one :func:`register` call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import xarray as xr

from memdrift.errors import MemdriftError, NamedError, literal

#: dataset layouts that extraction reads: programming reads over (device, cycle, pulse); closed-loop
#: write-verify levels; anything else (retention, maps) is read by variable
LAYOUT_PULSE = "pulse"
LAYOUT_WRITE_VERIFY = "write-verify"
LAYOUT_OTHER = "other"
LAYOUTS = (LAYOUT_PULSE, LAYOUT_WRITE_VERIFY, LAYOUT_OTHER)


class DeviceModel:
    """A device model: a small class whose class attributes describe it and whose methods run it.

    Subclasses set :attr:`name` (the ``model`` key of presets and datasets), :attr:`params_type`,
    :attr:`schemes` and implement :meth:`run`; the rest has defaults.
    """

    #: the model's name, as presets and dataset attributes spell it
    name: ClassVar[str]
    #: the parameter dataclass (a :class:`memdrift.emulator.params.ModelParams`)
    params_type: ClassVar[type]
    #: pulse schemes :meth:`run` accepts by name
    schemes: ClassVar[tuple[str, ...]] = ()
    #: characterisation protocols :meth:`characterise` accepts
    protocols: ClassVar[tuple[str, ...]] = ()
    #: sweep schemes (``memdrift.experiments.sweep``) whose points may run this model
    sweep_schemes: ClassVar[tuple[str, ...]] = ()
    #: backends :meth:`run` accepts; the reference one is plain NumPy, always available
    backends: ClassVar[tuple[str, ...]] = ("reference",)
    reference_backend: ClassVar[str] = "reference"
    #: scheme -> layout of the dataset :meth:`run` returns (:data:`LAYOUTS`); unnamed schemes: pulse
    layouts: ClassVar[Mapping[str, str]] = {}
    #: the ``module:function`` a sweep point runs (it must be importable on a Dask worker);
    #: None runs :meth:`run` of the registered model
    sweep_runner: ClassVar[str | None] = None
    #: sweep metrics a spec stores and maximises when it names none
    sweep_store: ClassVar[tuple[str, ...]] = ("differential_bins", "states", "state_sigma", "bin_width")
    sweep_maximise: ClassVar[str] = "differential_bins"
    #: calibration: the preset a fit starts from and the fields it frees by default (empty: no calibration)
    calibration_start: ClassVar[str | None] = None
    calibration_free: ClassVar[tuple[str, ...]] = ()

    def run(self, params: Any, scheme: Any, *, devices: int, cycles: int | None = None, seed: int = 0,
            threads: int = 1, backend: str = "reference", noise: bool = True, progress: bool = False,
            preset: str = "custom", memory_limit_bytes: float | None = None, plot: bool = False,
            **options: Any) -> xr.Dataset:
        """Emulate ``devices`` devices with ``params`` (parameters, or a preset) through ``scheme`` (a name
        from :attr:`schemes` or a scheme object the model understands); returns the dataset of
        :meth:`layout`. ``memory_limit_bytes``: refuse a run needing more; ``plot``: also keep what
        :meth:`plot` draws."""
        raise NotImplementedError

    def layout(self, scheme: str) -> str:
        return self.layouts.get(scheme, LAYOUT_PULSE)

    def streams(self, scheme: str, backend: str) -> bool:
        """Whether ``memdrift pulse`` may compute this run in device chunks (see :meth:`run_chunks`)."""
        return False

    def run_chunks(self, params: Any, scheme: str, *, devices: int, chunk_devices: int,
                   **kwargs: Any) -> Iterator[xr.Dataset]:
        """The run of :meth:`run` as consecutive device chunks whose concatenation is the whole run."""
        raise NotImplementedError(f"model {self.name!r} does not stream")

    def options_type(self, protocol: str) -> type:
        """The settings dataclass :meth:`characterise` takes for ``protocol`` (one of :attr:`protocols`)."""
        raise MemdriftError(f"model = {self.name!r} has no characterisation protocols; allowed: "
                            + ", ".join(n for n, m in MODELS.items() if m.protocols))

    def characterise(self, preset: Any, protocol: str, options: Any) -> xr.Dataset:
        raise MemdriftError(f"model = {self.name!r} has no characterisation protocols; allowed: "
                            + ", ".join(n for n, m in MODELS.items() if m.protocols))

    def plot(self, ds: xr.Dataset, preset: Any, scheme: str, path: Path) -> None:
        raise NamedError(f"{{plot}}: model {literal(self.name)} has no pulse plot; allowed: omit {{plot}}")

    def calibrate(self, ds: xr.Dataset, start: Any, names: tuple[str, ...], *, fit_cycles: int, span: float,
                  read: dict[str, float | None] | None, rounds: int, progress: bool) -> tuple[Any, str]:
        """(fit result, method text) of a calibration to measured data ``ds`` from preset ``start``."""
        raise MemdriftError(f"model = {self.name!r} cannot be calibrated; allowed: "
                            + ", ".join(n for n, m in MODELS.items() if m.calibration_start))


class Registry(Mapping[str, DeviceModel]):
    """Models by name. The built-in models are registered on first look-up, so importing this
    module stays cheap and free of the compiled core."""

    def __init__(self) -> None:
        self._models: dict[str, DeviceModel] = {}
        self._loaded = False

    #: the built-in models and the modules that register them on import, in registration order
    BUILTIN_MODULES: ClassVar[dict[str, str]] = {"filament": "memdrift.emulator.model_filament",
                                                 "bulk4t": "memdrift.emulator.model_bulk4t"}

    def _load(self, upto: str | None = None) -> None:
        """Import the built-in models' modules, the filament first; with ``upto``, only those up to that
        model's, so a filament run does not pay for the film's SciPy import (a tenth of a second)."""
        if self._loaded:
            return
        import importlib

        for name, module in self.BUILTIN_MODULES.items():
            importlib.import_module(module)
            if name == upto:
                return
        self._loaded = True

    def register(self, model: DeviceModel | type[DeviceModel], *, replace: bool = False) -> DeviceModel:
        """Add ``model`` (an instance or a class with a no-argument constructor) under its name,
        and its parameter type to the preset machinery."""
        from memdrift.emulator.params import register_model

        instance = model() if isinstance(model, type) else model
        name = getattr(instance, "name", None)
        if not isinstance(name, str) or not name:
            raise MemdriftError(f"model {instance!r} has no name; allowed: a DeviceModel with a non-empty name")
        if name in self._models and not replace and self._models[name] is not instance:
            raise MemdriftError(f"model = {name!r} is registered already; allowed: a new name, or replace=True")
        self._models[name] = instance
        register_model(name, instance.params_type)
        return instance

    def unregister(self, name: str) -> None:
        from memdrift.emulator.params import unregister_model

        self.get(name)
        del self._models[name]
        unregister_model(name)

    def get(self, name: str) -> DeviceModel:  # type: ignore[override]
        """The model named ``name``; an unknown name is refused naming the known ones."""
        builtin = isinstance(name, str) and name in self.BUILTIN_MODULES
        self._load(name if builtin else None)
        if not builtin or name not in self._models:
            self._load()
        try:
            return self._models[name]
        except (KeyError, TypeError):
            raise MemdriftError(f"model = {name!r} is unknown; allowed: {', '.join(sorted(self._models))}") from None

    def __getitem__(self, name: str) -> DeviceModel:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(list(self._models))

    def __len__(self) -> int:
        self._load()
        return len(self._models)

    def with_scheme(self, sweep_scheme: str) -> list[str]:
        return [n for n, m in self.items() if sweep_scheme in m.sweep_schemes]

    def calibratable(self) -> tuple[str, ...]:
        return tuple(n for n, m in self.items() if m.calibration_start)


MODELS = Registry()
register: Callable[..., DeviceModel] = MODELS.register
unregister: Callable[[str], None] = MODELS.unregister
get: Callable[[str], DeviceModel] = MODELS.get


def run_registered(params: Any, scheme: Any, **kwargs: Any) -> xr.Dataset:
    """Sweep runner of a model without a ``sweep_runner`` of its own: :meth:`DeviceModel.run`."""
    return get(params.model).run(params, scheme, **kwargs)


def layout_of(ds: xr.Dataset) -> str:
    """A dataset's layout: its ``layout`` attribute, or for files written without one, read from its shape."""
    layout = ds.attrs.get("layout")
    if isinstance(layout, str) and layout in LAYOUTS:
        return layout
    if ds.attrs.get("scheme") == "write-verify" and "conductance_final" in ds:
        return LAYOUT_WRITE_VERIFY
    quantity = next((n for n in ("conductance", "resistance") if n in ds and "pulse" in ds[n].dims), None)
    if quantity is not None and "temperature" not in ds[quantity].dims:
        return LAYOUT_PULSE
    return LAYOUT_OTHER


__all__ = [
    "LAYOUTS",
    "LAYOUT_OTHER",
    "LAYOUT_PULSE",
    "LAYOUT_WRITE_VERIFY",
    "MODELS",
    "DeviceModel",
    "Registry",
    "get",
    "layout_of",
    "register",
    "run_registered",
    "unregister",
]
