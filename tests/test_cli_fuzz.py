"""Property-based fuzz of the CLI contract, run in-process through ``cli.main``.

Every generated case must end with exit 0 (a cheap valid run) or exit 2 with
exactly one stderr line, no traceback, and no file left behind on failure. The
entry points: each subcommand's options (pulse, characterise, extract, calibrate,
evaluate, export, reproduce, sweep, presets, and arbitrary tokens after any
subcommand) and each file reader (preset and sweep-spec TOML, JSON records, CSV,
netCDF). Valid cases stay cheap: tiny ensembles, and where a valid line would
start long work (training, a fit, a paper's protocol, a sweep) that call is
replaced by one raising ``Reached``, so what is fuzzed is every check before it.

CI runs 200 cases per entry point (about 75 s on 2 cores); for 1,000 or more per
entry point run::

    MEMDRIFT_FUZZ_EXAMPLES=1000 .venv/bin/python -m pytest tests/test_cli_fuzz.py -q --hypothesis-show-statistics
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings, strategies as st

from memdrift.experiments import cli

EXAMPLES = int(os.environ.get("MEMDRIFT_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

option_values = st.one_of(st.integers(-3, 3).map(str), st.sampled_from(["-1", "0", "1e9", "nan", "inf", "x", "",
                                                                       "18446744073709551616", "1,1", "true"]),
                          st.text(max_size=6))
toml_values = st.recursive(st.one_of(st.booleans(), st.integers(-2**70, 2**70).filter(lambda v: -2**63 <= v < 2**63),
                                     st.floats(allow_nan=False), st.text(max_size=5)),
                           lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner,
                                                                                       max_size=2), max_leaves=4)


class Reached(BaseException):
    """Raised in place of a long computation (training, a fit, a paper's protocol): every check before it
    passed. A BaseException, so the CLI's boundary lets it through as it would let a real run go on."""


def reached(*args, **kwargs):
    raise Reached()


def check(argv: list[str], root: Path, capsys) -> None:
    before = set(root.rglob("*"))
    cwd = os.getcwd()
    os.chdir(root)
    try:
        rc = cli.main(argv)
    except SystemExit as exc:  # --help and --version only
        rc = exc.code
    except Reached:
        rc = 0
        assert set(root.rglob("*")) == before, "a file written before the work started"
    finally:
        os.chdir(cwd)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert rc in (0, 2), (argv, rc, err)
    if rc == 2:
        assert len([line for line in err.split("\n") if line.strip()]) == 1, err
        assert set(root.rglob("*")) == before, "a failed run left a file behind"


PULSE_OPTIONS = ["--devices", "--cycles", "--seed", "--threads", "--tolerance", "--max-pulses", "--targets",
                 "--max-memory-gb", "--scheme", "--chunk-devices", "--backend", "--float32"]


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(PULSE_OPTIONS), option_values), max_size=3))
def test_fuzz_pulse_options(capsys, options):
    with tempfile.TemporaryDirectory() as root:
        argv = ["pulse", "--device", "hfoxsy-hfs2", "--devices", "1", "--cycles", "1", "-o", "o.nc"]
        for name, value in options:
            argv += [name, value]
        check(argv, Path(root), capsys)


CHAR_OPTIONS = ["--devices", "--seed", "--cycles", "--temperatures", "--times", "--steps", "--v-max", "--pulses",
                "--amplitudes", "--record", "--chunk-devices", "--protocol"]


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(CHAR_OPTIONS), option_values), min_size=1, max_size=3))
def test_fuzz_characterise_options(capsys, options):
    with tempfile.TemporaryDirectory() as root:
        argv = ["characterise", "--device", "hfoxsy-hfs2", "--protocol", "iv", "--devices", "1", "--steps", "2",
                "-o", "o.nc"]
        for name, value in options:
            argv += [name, value]
        # a valid combination is a cheap run; the fuzz is after what is refused
        if not any(n in ("--devices", "--steps", "--cycles", "--times", "--pulses", "--record", "--chunk-devices",
                         "--protocol") for n, _ in options):
            argv += ["--seed", "-1"]
        check(argv, Path(root), capsys)


@FUZZ
@given(st.dictionaries(st.sampled_from(["name", "model", "parameters", "variation", "scheme", "colour"]),
                       toml_values, max_size=4))
def test_fuzz_preset_files(capsys, table):
    with tempfile.TemporaryDirectory() as root:
        Path(root, "p.toml").write_text(tomli_w.dumps(table))
        check(["pulse", "--device", "p.toml", "--devices", "1", "--cycles", "1", "-o", "o.nc"], Path(root), capsys)


@FUZZ
@given(st.dictionaries(st.sampled_from(["sweep", "scheme", "device", "axes", "metrics", "other"]), toml_values,
                       max_size=5))
def test_fuzz_sweep_specs(capsys, table):
    with tempfile.TemporaryDirectory() as root:
        Path(root, "s.toml").write_text(tomli_w.dumps(table))
        check(["sweep", "s.toml", "-o", "o.nc", "--serial", "--no-progress"], Path(root), capsys)


@FUZZ
@given(st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_fuzz_records(capsys, data):
    with tempfile.TemporaryDirectory() as root:
        Path(root, "r.json").write_bytes(data)
        check(["evaluate", "r.json", "--network", "mlp", "--dataset", "digits"], Path(root), capsys)


@FUZZ
@given(st.lists(st.lists(st.sampled_from(["0", "1", "-1", "1e-3", "x", "", "nan", "potentiation"]), min_size=1,
                         max_size=4), max_size=4),
       st.sampled_from(["cycle,pulse,conductance", "cycle,pulse,resistance", "pulse,conductance", "a,b"]))
def test_fuzz_csv(capsys, rows, header):
    with tempfile.TemporaryDirectory() as root:
        Path(root, "d.csv").write_text("\n".join([header] + [",".join(r) for r in rows]) + "\n")
        check(["extract", "d.csv", "-o", "r.json"], Path(root), capsys)


@FUZZ
@given(st.binary(max_size=128))
def test_fuzz_netcdf(capsys, data):
    with tempfile.TemporaryDirectory() as root:
        Path(root, "d.nc").write_bytes(b"\x89HDF\r\n\x1a\n" + data)
        check(["extract", "d.nc", "-o", "r.json"], Path(root), capsys)


# ----------------------------------------------------------------------------- the other subcommands

PRESET = "hfoxsy-hfs2"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A small pulse dataset, its record, a tiny sweep spec and a measured-style CSV, made once."""
    root = tmp_path_factory.mktemp("fuzz-inputs")
    assert cli.main(["pulse", "--device", PRESET, "--devices", "2", "--cycles", "2", "--quiet",
                     "-o", str(root / "g.nc")]) == 0
    assert cli.main(["extract", str(root / "g.nc"), "-o", str(root / "r.json")]) == 0
    spec = {"sweep": {"devices": 1, "cycles": 1}, "scheme": {"base": "ramp", "pulses_per_branch": 3},
            "device": {"preset": PRESET}, "axes": {"amplitude_start_v": [0.9]}}
    (root / "s.toml").write_text(tomli_w.dumps(spec))
    rows = ["cycle,pulse,conductance,amplitude,width"]
    rows += [f"{c},{p},{1e-3 + 1e-5 * p + 1e-6 * c},{1.0 if p < 5 else -1.0},3.5e-7" for c in range(2)
             for p in range(10)]
    (root / "c.csv").write_text("\n".join(rows) + "\n")
    return {name: (root / name).read_bytes() for name in ("g.nc", "r.json", "s.toml", "c.csv")}


def fuzz_options(capsys, inputs, base: list[str], options, files=()) -> None:
    with tempfile.TemporaryDirectory() as root:
        for name in files:
            Path(root, name).write_bytes(inputs[name])
        argv = list(base)
        for name, value in options:
            argv += [name, value]
        check(argv, Path(root), capsys)


options_of = lambda names, **kw: st.lists(st.tuples(st.sampled_from(names), option_values), **kw)  # noqa: E731


@FUZZ
@given(options_of(["--levels", "--r2-min", "--max-processes", "-o"], min_size=1, max_size=3))
def test_fuzz_extract_options(capsys, inputs, options):
    fuzz_options(capsys, inputs, ["extract", "g.nc", "-o", "r.json"], options, ["g.nc"])


@FUZZ
@given(options_of(["--free", "--start-preset", "--name", "--fit-cycles", "--span", "--rounds", "--read-voltage",
                   "--read-width", "--read-gap", "--model"], min_size=1, max_size=3))
def test_fuzz_calibrate_options(capsys, inputs, monkeypatch, options):
    from memdrift.mapping import calibrate

    monkeypatch.setattr(calibrate, "calibrate", reached)
    fuzz_options(capsys, inputs, ["calibrate", "c.csv", "--model", "filament", "-o", "p.toml"], options, ["c.csv"])


@FUZZ
@given(st.lists(st.lists(st.sampled_from(["0", "1", "2", "-1", "1e-3", "2e-3", "x", "", "nan", "inf", "3.5e-7"]),
                         min_size=1, max_size=5), max_size=6),
       st.sampled_from(["cycle,pulse,conductance,amplitude,width", "cycle,pulse,resistance,amplitude,width",
                        "cycle,pulse,conductance", "conductance", "a,b,c"]))
def test_fuzz_calibrate_csv(capsys, rows, header):
    with tempfile.TemporaryDirectory() as root:
        Path(root, "c.csv").write_text("\n".join([header] + [",".join(r) for r in rows]) + "\n")
        check(["calibrate", "c.csv", "--model", "filament", "--rounds", "1", "--fit-cycles", "1", "-o", "p.toml"],
              Path(root), capsys)


EVALUATE_OPTIONS = ["--network", "--dataset", "--study", "-o", "--plot", "--device", "--epochs", "--hwat-epochs",
                    "--repeats", "--batch-size", "--lr", "--hwat-lr", "--analog-lr", "--dtod", "--ir-drop",
                    "--weight-range", "--tile", "--train-samples", "--test-samples", "--seed", "--threads",
                    "--data-dir"]


@FUZZ
@given(options_of(EVALUATE_OPTIONS, min_size=1, max_size=3))
def test_fuzz_evaluate_options(capsys, inputs, monkeypatch, options):
    try:
        from memdrift.experiments import evaluate
    except ImportError:  # without torch every valid line ends at the missing-dependency refusal
        pass
    else:
        monkeypatch.setattr(evaluate, "run_study", reached)
    fuzz_options(capsys, inputs, ["evaluate", "r.json", "--network", "mlp", "--dataset", "digits"], options,
                 ["r.json"])


@FUZZ
@given(options_of(["--aihwkit", "--tile", "--levels", "--dtod"], min_size=1, max_size=3))
def test_fuzz_export_options(capsys, inputs, monkeypatch, options):
    try:
        from memdrift.mapping import aihwkit_bridge
    except ImportError:
        pass
    else:
        monkeypatch.setattr(aihwkit_bridge, "save_configs", reached)
    fuzz_options(capsys, inputs, ["export", "r.json", "--aihwkit", "cfg.pt"], options, ["r.json"])


@FUZZ
@given(st.sampled_from(["hfoxsy-ramp", "tio2x-ffp", "x", ""]),
       options_of(["--devices", "--cycles", "--seed", "--threads", "-o"], max_size=3))
def test_fuzz_reproduce_options(capsys, inputs, monkeypatch, experiment, options):
    from memdrift.experiments import reproduce

    monkeypatch.setattr(reproduce, "reproduce", reached)
    fuzz_options(capsys, inputs, ["reproduce", experiment, "-o", "out"], options)


@FUZZ
@given(options_of(["--workers", "--best", "--plot", "-o", "--scheduler"], min_size=1, max_size=3))
def test_fuzz_sweep_options(capsys, inputs, monkeypatch, options):
    from memdrift.experiments import sweep

    monkeypatch.setattr(sweep, "run_sweep", reached)
    fuzz_options(capsys, inputs, ["sweep", "s.toml", "-o", "o.nc", "--serial"], options, ["s.toml"])


@FUZZ
@given(st.lists(st.sampled_from(["--help", "-h", "--version", "x", "--devices", "1", "-o", "o.nc", "--quiet"]) |
                st.text(max_size=4), max_size=3))
def test_fuzz_presets_argv(capsys, argv):
    with tempfile.TemporaryDirectory() as root:
        check(["presets", *argv], Path(root), capsys)


@FUZZ
@given(st.sampled_from([m.rsplit("_", 1)[1] for m in cli.COMMAND_MODULES] + ["characterize", "", "x"]),
       st.lists(st.sampled_from(["-o", "--device", PRESET, "--devices", "--cycles", "--seed", "o.nc", "r.json",
                                 "g.nc", "s.toml", "--plot", "--", "-"]) | option_values, max_size=5))
def test_fuzz_any_command_line(capsys, inputs, monkeypatch, command, tokens):
    """Arbitrary tokens after any subcommand: a usage error, a refusal, or a cheap run (long work stubbed)."""
    from memdrift.experiments import reproduce, sweep
    from memdrift.mapping import calibrate

    for module, name in ((reproduce, "reproduce"), (sweep, "run_sweep"), (calibrate, "calibrate")):
        monkeypatch.setattr(module, name, reached)
    fuzz_options(capsys, inputs, [command, *tokens], [], ["g.nc", "r.json", "s.toml"])
