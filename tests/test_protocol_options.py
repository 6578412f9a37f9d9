"""The characterisation protocols' settings classes (memdrift.emulator.protocols.options): one per protocol and
model, each field's unit, default and range in its metadata and checked when made; the Options bag converted
to them."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from memdrift.emulator.protocols import (FILAMENT_OPTIONS, FILM_OPTIONS, PROTOCOL_OPTIONS, PROTOCOL_SPECIFIC,
                                         FilmRetentionOptions, IvOptions, Options, RetentionOptions, UnusedOption,
                                         build_options, characterise, options_type)
from memdrift.emulator.protocols.options import COMMON
from memdrift.errors import MemdriftError

CLASSES = [*FILAMENT_OPTIONS.values(), *FILM_OPTIONS.values()]
#: (class, field) of every checked integer setting
INTEGERS = [(c, f) for c in CLASSES for f in dataclasses.fields(c)
            if f.metadata.get("kind") is int and not f.metadata["by_scheme"]]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_setting_has_a_unit_and_a_meaning_and_its_default_passes_its_own_check(cls):
    made = cls()
    for f in dataclasses.fields(cls):
        if f.name == "scheme_options":
            continue
        assert f.metadata["unit"] and f.metadata["meaning"], f.name
        if f.metadata["kind"] is int and getattr(made, f.name) is not None:
            assert type(getattr(made, f.name)) is int, f.name
    assert dataclasses.is_dataclass(made) and cls.__dataclass_params__.frozen
    assert cls.protocol in PROTOCOL_OPTIONS and set(cls.specific()) <= set(PROTOCOL_SPECIFIC)


@pytest.mark.parametrize("cls, f", INTEGERS, ids=lambda x: getattr(x, "__name__", getattr(x, "name", "")))
def test_an_integer_setting_outside_its_range_names_the_field_and_the_range(cls, f):
    low, high = f.metadata["low"], f.metadata["high"]
    allowed = f"an integer in [{low}, {high}]" if high is not None else f"an integer >= {low}"
    with pytest.raises(MemdriftError, match=rf"^{f.name} = {low - 1} is out of range; allowed: {re.escape(allowed)}$"):
        cls(**{f.name: low - 1})
    if high is not None:
        with pytest.raises(MemdriftError, match=rf"^{f.name} = {high + 1} is out of range"):
            cls(**{f.name: high + 1})
    with pytest.raises(MemdriftError, match=rf"^{f.name} = 2.0 is out of range"):
        cls(**{f.name: 2.0})
    assert type(getattr(cls(**{f.name: np.int64(low)}), f.name)) is int


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(INTEGERS), st.integers(-5, 2 * 10**9))
def test_an_integer_setting_is_taken_exactly_when_inside_its_range(case, value):
    cls, f = case
    low, high = f.metadata["low"], f.metadata["high"]
    if low <= value and (high is None or value <= high):
        assert getattr(cls(**{f.name: value}), f.name) == value
    else:
        with pytest.raises(MemdriftError, match=f"^{f.name} = "):
            cls(**{f.name: value})


@pytest.mark.parametrize("kwargs, message", [
    ({"width_s": 0.0}, r"^width_s = 0.0 is out of range; allowed: \(0, 1\] s$"),
    ({"amplitudes_v": ()}, r"^amplitudes_v is empty; allowed: at least one signed amplitude \(V\)$"),
    ({"amplitudes_v": (0.8, 0.0)}, r"^amplitudes_v\[1\] = 0.0 is out of range; allowed: a non-zero amplitude"),
    ({"amplitudes_v": (11.0,)}, r"^amplitudes_v\[0\] = 11.0 is out of range; allowed: \[-10, 10\] V$"),
])
def test_dr_map_settings_are_checked(kwargs, message):
    with pytest.raises(MemdriftError, match=message):
        FILAMENT_OPTIONS["dr-map"](**kwargs)


def test_retention_bounds_its_last_read_by_its_first():
    with pytest.raises(MemdriftError, match=r"^time_max_s = 5.0 is out of range; allowed: \(10, inf\] s "
                                            r"\(> time_min_s = 10\)$"):
        RetentionOptions(time_min_s=10.0, time_max_s=5.0)
    assert RetentionOptions(time_min_s=2, times=3).time_min_s == 2.0
    # on the film an unset bound takes its fallback once any read setting is given
    with pytest.raises(MemdriftError, match=r"^time_max_s = 315576000.0 is out of range"):
        FilmRetentionOptions(time_min_s=1e9)
    assert FilmRetentionOptions().times_s() is None
    np.testing.assert_allclose(FilmRetentionOptions(time_max_s=100.0, times=3).times_s(), [1.0, 10.0, 100.0])


@pytest.mark.parametrize("preset, table", [("hfoxsy-hfs2", FILAMENT_OPTIONS), ("tio2x-4t", FILM_OPTIONS)])
def test_options_converts_to_the_protocols_class_and_refuses_what_it_does_not_read(preset, table):
    for protocol, cls in table.items():
        assert options_type(preset, protocol) is cls
        own = cls.specific()
        for name in PROTOCOL_SPECIFIC:
            value = {"temperatures_k": (300.0,), "amplitudes_v": (0.8,), "levels": (8,), "time_min_s": 2.0,
                     "time_max_s": 20.0, "width_s": 1e-7, "voltage_max_v": 0.9, "dwell_s": 1e-3, "backend": "reference",
                     "conduction": "memdrift.emulator.conduction:sinh_law"}.get(name, 3)
            if name in own:
                made = build_options(cls, {name: value})
                assert type(made) is cls and getattr(made, name) == value
            else:
                with pytest.raises(UnusedOption) as raised:
                    build_options(cls, {name: value})
                assert raised.value.option == name and raised.value.protocol == protocol
                assert "--" not in str(raised.value)
    with pytest.raises(MemdriftError, match="not available"):
        options_type(preset, "iv" if table is FILM_OPTIONS else "ffp-segmentation")


def test_a_class_and_the_options_bag_give_the_same_dataset():
    typed = characterise("hfoxsy-hfs2", "iv", IvOptions(devices=2, steps=3, dwell_s=1e-4, seed=5)).compute()
    bag = characterise("hfoxsy-hfs2", "iv", Options(devices=2, steps=3, dwell_s=1e-4, seed=5)).compute()
    assert typed.identical(bag)
    assert typed.sizes["voltage"] == 7 and np.isfinite(typed["current"].values).all()
    with pytest.raises(MemdriftError, match=r"options = .* are not for protocol 'iv'.*allowed: IvOptions"):
        characterise("hfoxsy-hfs2", "iv", RetentionOptions())
    with pytest.raises(MemdriftError, match="option 'grid' is unknown for filament protocols"):
        characterise("hfoxsy-hfs2", "iv", Options(extra={"grid": 8}))


def test_the_shared_settings_are_the_same_on_every_class():
    for cls in CLASSES:
        assert [f.name for f in dataclasses.fields(cls)][:4] == list(COMMON[:4])


def test_emulator_messages_name_arguments_and_the_command_line_names_its_flags(tmp_path, capsys):
    """The emulator's errors name Python arguments; ``memdrift pulse`` words the same errors with its flags."""
    from memdrift.emulator.params import load_preset
    from memdrift.errors import NamedError, check_memory
    from memdrift.experiments.cli import main
    from memdrift.models import MODELS

    filament, film = MODELS.get("filament"), MODELS.get("bulk4t")
    preset = load_preset("hfoxsy-hfs2")
    cases = [
        (lambda: filament.run(preset, "write-verify", devices=1, cycles=3), "cycles", "--cycles"),
        (lambda: filament.run(preset, "ramp", devices=1, backend="reference", targets_s=(1e-3,)), "targets_s",
         "--targets"),
        (lambda: filament.run(preset, "ramp", devices=1000, cycles=100_000, memory_limit_bytes=2**30),
         "memory_limit_bytes", "--max-memory-gb"),
        (lambda: film.run(load_preset("tio2x-4t"), "ffp", devices=1, cycles=3), "cycles", "--cycles"),
        (lambda: check_memory("a {run}", 2.0, 1.0), "memory_limit_bytes", "--max-memory-gb"),
    ]
    for call, name, flag in cases:
        with pytest.raises(NamedError) as raised:
            call()
        text = str(raised.value)
        assert "--" not in text and name in text, text
        assert flag in raised.value.message(lambda n: {name: flag}.get(n, n))
    with pytest.raises(MemdriftError) as raised:
        from memdrift.emulator.engine import check_conduction_backend

        check_conduction_backend("mine.py:f", "compiled")
    assert "--" not in str(raised.value)
    argv = ["pulse", "--device", "hfoxsy-hfs2", "-o", str(tmp_path / "o.nc")]
    for extra, words in [(["--scheme", "write-verify", "--cycles", "3"], "allowed: omit --cycles"),
                         (["--backend", "reference", "--targets", "1e-3"], "allowed: --scheme write-verify"),
                         (["--backend", "reference", "--devices", "1000", "--cycles", "100000"],
                          "raise it with --max-memory-gb")]:
        assert main(argv + extra) == 2
        assert words in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_mapping_ext_and_model_messages_name_arguments_and_the_command_line_names_its_flags(tmp_path, capsys):
    """memdrift.mapping, memdrift.ext and the models' defaults name Python arguments; the command line words
    the same messages with its flags."""
    from memdrift import ext
    from memdrift.emulator.engine import run_pulses
    from memdrift.emulator.params import load_preset
    from memdrift.emulator.pulses import ramp
    from memdrift.errors import NamedError
    from memdrift.experiments.cli import FLAGS, main
    from memdrift.mapping.calibrate import calibrate_filament
    from memdrift.mapping.extract import merge_records
    from memdrift.models import MODELS, DeviceModel

    params = load_preset("hfoxsy-hfs2").params
    two_cycles = run_pulses(params, ramp(), devices=2, cycles=2, seed=0)
    cases = [
        (lambda: ext.check_columns("_bulk4t", ("a", "b"), ("a", "c")), "backend"),
        (lambda: merge_records([("a.nc", {"levels": [32]}), ("b.nc", {"levels": [64]})]), "levels"),
        (lambda: calibrate_filament(two_cycles, params, ("site_population",), fit_cycles=1, span=10.0, read=None,
                                    rounds=1, progress=False), "free"),
        (lambda: DeviceModel.plot(MODELS.get("filament"), two_cycles, None, "ramp", tmp_path / "p.png"), "plot"),
    ]
    for call, name in cases:
        with pytest.raises(NamedError) as raised:
            call()
        text = str(raised.value)
        assert "--" not in text and name in text, text
        worded = raised.value.message(lambda n: FLAGS.get(n, n))
        assert FLAGS[name] in worded and worded.count(FLAGS[name]) == raised.value.template.count("{" + name + "}"), worded
    # through the command line: calibrate's site_population needs three cycles
    data = tmp_path / "two.nc"
    from memdrift.data.io import write_dataset

    write_dataset(two_cycles, data)
    assert main(["calibrate", str(data), "--model", "filament", "--free", "site_population", "--rounds", "1",
                 "-o", str(tmp_path / "p.toml")]) == 2
    err = capsys.readouterr().err
    assert "leave site_population out of --free" in err and "--free = 'site_population'" in err, err


def test_no_emulator_message_names_a_command_line_flag():
    """Every string in the emulator's code, memdrift.errors, memdrift.ext, memdrift.mapping and memdrift.models,
    docstrings aside, is free of ``--flag``."""
    import ast
    from pathlib import Path

    import memdrift

    root = Path(memdrift.__file__).parent
    found = []
    for path in [*sorted((root / "emulator").rglob("*.py")), root / "errors.py", *sorted((root / "ext").glob("*.py")),
                 *sorted((root / "mapping").rglob("*.py")), root / "models.py"]:
        tree = ast.parse(path.read_text())
        docs = {id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body
                and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs \
                    and re.search(r"--[a-z]", node.value):
                found.append(f"{path.relative_to(root)}:{node.lineno}: {node.value!r}")
    assert not found, found
