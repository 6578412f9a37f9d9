"""The public façade: every function's docstring example runs, and memdrift re-exports them."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

import memdrift
from memdrift import api


def test_the_docstring_examples_run():
    result = doctest.testmod(api, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 10 and result.failed == 0


def test_memdrift_reexports_the_facade():
    for name in api.__all__:
        assert getattr(memdrift, name) is getattr(api, name)
        assert name in memdrift.__all__
    with pytest.raises(AttributeError):
        memdrift.no_such_function  # noqa: B018


def test_the_package_is_marked_typed():
    assert (Path(memdrift.__file__).parent / "py.typed").is_file()


def test_to_aihwkit_builds_configs_from_a_record_file(tmp_path):
    pytest.importorskip("aihwkit")
    from memdrift.mapping.extract import save_record

    record = memdrift.extract(memdrift.simulate("hfoxsy-hfs2", devices=8, cycles=3), levels=(32,))
    path = tmp_path / "record.json"
    save_record(record, path)
    configs = memdrift.to_aihwkit(path, levels=32)
    assert {"inference", "training", "record"} <= set(configs)
