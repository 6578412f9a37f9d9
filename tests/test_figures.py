"""Figures: labels read back from the drawn Axes, one branch palette, visible axis breaks, spatial
axes on the film's maps, skipped levels and sweep points marked, the reproductions' verdicts and
atomic PNG writes. Small runs on the Agg backend."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import example, given, settings
from hypothesis import strategies as st
from matplotlib.colors import to_hex

from memdrift.emulator.bulk4t_schemes import Bulk4TDevices, simulate_scheme
from memdrift.emulator.params import load_preset
from memdrift.errors import MemdriftError
from memdrift.experiments import figstyle
from memdrift.experiments import reproduce as rep


@pytest.fixture
def drawn(monkeypatch):
    """The figures the code under test saves, kept open so their Axes can be read back."""
    figures = []

    def keep(fig, path, **options):
        figures.append(fig)
        fig.savefig(path, format="png", **{"dpi": 40, **options})
        return path

    monkeypatch.setattr(figstyle, "save", keep)
    yield figures
    for fig in figures:
        figstyle.pyplot().close(fig)


@pytest.fixture(scope="module")
def film():
    """A two-device 8 x 8 FFP segmentation run with map snapshots (about a second)."""
    params = load_preset("tio2x-4t").params.replace(grid_x=8.0, grid_y=8.0)
    r0 = Bulk4TDevices(params, 1).read()[0]
    return simulate_scheme("tio2x-4t", "ffp-segmentation", devices=2, seed=4, grid=8, conditioning_cycles=0,
                           map_amplitudes_v=(2.0, 5.0, 7.0), map_pulses=10, max_events=60, hrs_ohm=r0 + 0.4,
                           lrs_ohm=r0 - 0.6, levels=(4, 8), snapshot_events=(0, 2))


def _flat(text: str) -> str:
    return " ".join(text.split())


def _all_axes(fig):
    return [ax for ax in fig.get_axes() if ax.get_visible()]


# ------------------------------------------------------------------ the label helper


def test_label_is_long_name_and_display_units():
    g = xr.DataArray([4.1e-4, 1.9e-3], dims="pulse", name="conductance",
                     attrs={"long_name": "conductance read after the pulse", "units": "S"})
    values, text, factor = figstyle.scaled(g)
    assert text == "conductance read after the pulse (mS)"
    np.testing.assert_allclose(values, [0.41, 1.9])
    assert factor == pytest.approx(1e3)
    r = xr.DataArray([880.0], dims="x", name="resistance", attrs={"long_name": "R13", "units": "ohm"})
    assert figstyle.label(r) == "R13 (Ω)"
    bins = xr.DataArray([31], dims="x", name="bins", attrs={"long_name": "differential bins", "units": "1"})
    assert figstyle.label(bins) == "differential bins"
    # a coordinate with no attributes in memory gets what the file writer gives it
    pulse = xr.DataArray(np.arange(3), dims="pulse", name="pulse")
    assert figstyle.label(pulse) == "pulse index within the cycle"
    energy = xr.DataArray([2.3e-8, 5.1e-8], dims="x", name="energy_per_cycle",
                          attrs={"long_name": "energy of one cycle", "units": "J"})
    assert figstyle.scaled(energy)[1] == "energy of one cycle (nJ)"
    kelvin = xr.DataArray([300.0, 2000.0], dims="x", name="t", attrs={"long_name": "T", "units": "K"})
    assert figstyle.scaled(kelvin)[1] == "T (K)"  # no kilo-kelvin


@settings(max_examples=50, deadline=None)
@given(st.floats(1e-14, 1e9), st.sampled_from(["S", "J", "W", "ohm", "s", "m", "V"]))
@example(999999999.9999999, "S")  # log10 rounds it up to 9.0
def test_prefix_brings_the_median_into_one_to_a_thousand(value, units):
    exponent = figstyle.prefix_exponent(units, [value, value])
    assert 1.0 <= value * 10.0 ** -exponent < 1000.0 * (1 + 1e-12)


def test_plain_ticks_show_no_offset(drawn, tmp_path):
    plt = figstyle.pyplot()
    fig, ax = plt.subplots()
    ax.plot([1, 2], [2010.0, 2014.0])
    figstyle.plain_ticks(ax)
    figstyle.save(fig, tmp_path / "t.png")
    assert ax.yaxis.get_major_formatter().get_offset() == ""


# ------------------------------------------------------------------ the film's figures


def test_scheme_figure_labels_palette_maps_and_skipped_levels(film, drawn, tmp_path):
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    from memdrift.experiments.plots_bulk4t import plot_scheme

    ds = film.copy()
    ds["resistance"].attrs["long_name"] = "a resistance named only here"
    ds["vacancy_map"].attrs["long_name"] = "oxygen vacancies in the cell"
    plot_scheme(ds, tmp_path / "scheme.png", device=1)
    (fig,) = drawn
    axes = _all_axes(fig)
    ylabels = [_flat(ax.get_ylabel()) for ax in axes]
    assert "a resistance named only here (Ω)" in ylabels
    assert "pulse amplitude (V)" in ylabels
    # one palette: every line labelled by a branch has that branch's colour
    branch_lines = [ln for ax in axes for ln in ax.get_lines() if ln.get_label() in figstyle.BRANCH_COLOURS]
    assert {ln.get_label() for ln in branch_lines} == {"potentiation", "depression"}
    for ln in branch_lines:
        assert to_hex(ln.get_color()) == to_hex(figstyle.BRANCH_COLOURS[ln.get_label()])
    # the skipped levels of the finest segmentation are marked, as many as the dataset counts
    (levels_ax,) = [ax for ax in axes if ax.get_xlabel().startswith("level (n = 8)")]
    for c, name in enumerate(ds.branch.values):
        marks = [ln for ln in levels_ax.get_lines() if ln.get_label().startswith(f"{name}: skipped")]
        assert len(marks) == 1 and len(marks[0].get_xdata()) == int(ds["skipped_n8"].values[c])
    assert int(ds["skipped_n8"].sum()) > 0  # the run does skip levels, so the marks are not vacuous
    # maps: spatial axes over the film's side length, a scale bar, colourbars labelled from the data
    maps = [ax for ax in axes if ax.images]
    assert len(maps) == 2 * 2 * ds.sizes["snapshot"]
    side_um = ds.attrs["parameters.side_length_m"] * 1e6
    for ax in maps:
        assert ax.get_xlim() == pytest.approx((0.0, side_um))
        assert any(isinstance(a, AnchoredSizeBar) for a in ax.artists)
    assert any("µm" in ax.get_xlabel() for ax in maps) and any("µm" in ax.get_ylabel() for ax in maps)
    colourbars = [_flat(ax.get_ylabel()) for ax in axes if not ax.images]
    assert "oxygen vacancies in the cell (10^6)" in colourbars
    assert any(text.startswith("cell temperature during the event's write pulse (K)") for text in colourbars)


def test_scale_bar_is_a_round_quarter_of_the_map():
    from memdrift.experiments.plots_bulk4t import _scale_bar_um

    assert _scale_bar_um(15.0) == 2.0
    assert _scale_bar_um(40.0) == 10.0
    assert _scale_bar_um(0.9) == pytest.approx(0.2)


# ------------------------------------------------------------------ accuracy and sweep figures


def _accuracy(values):
    values = np.asarray(values, dtype=float)
    ds = xr.Dataset({"accuracy": (("mode", "repeat"), values)},
                    coords={"mode": ["digital", "analog"], "repeat": np.arange(values.shape[1])})
    ds["accuracy"].attrs.update(units="1", long_name="test-set classification accuracy")
    ds.attrs.update(network="mlp", dataset="synthetic", study="accuracy")
    return ds


def test_accuracy_axis_break_and_error_bars_are_stated(drawn, tmp_path):
    from memdrift.experiments import evaluate

    evaluate.plot(_accuracy([[0.981, 0.980, 0.982], [0.93, 0.95, 0.94]]), tmp_path / "a.png")
    evaluate.plot(_accuracy([[0.98, 0.97, 0.98], [0.11, 0.35, 0.2]]), tmp_path / "b.png")
    zoomed, full = (fig.axes[0] for fig in drawn)
    assert zoomed.get_ylim()[0] > 90.0 and figstyle.has_axis_break(zoomed)
    assert "axis from" in zoomed.get_ylabel() and zoomed.get_ylabel().endswith("(%)")
    assert full.get_ylim()[0] == 0.0 and not figstyle.has_axis_break(full)
    assert _flat(full.get_ylabel()) == "test-set classification accuracy (%)"
    legend = [t.get_text() for t in zoomed.get_legend().get_texts()]
    assert "mean ± 1 s.d. over 3 repeats" in legend


def test_film_levels_plot_is_accuracy_against_bits_per_route(drawn, tmp_path):
    from memdrift.experiments import evaluate_film

    acc = np.array([[[0.93] * 2] * 2, [[0.92, 0.93], [0.921, 0.931]], [[0.915, 0.93], [0.92, 0.932]]])
    ds = xr.Dataset({"accuracy": (("mode", "repeat", "bits"), acc)},
                    coords={"mode": ["digital", "statistical", "physics"], "repeat": [0, 1], "bits": [3, 9]})
    ds["accuracy"].attrs.update(units="1", long_name="test-set classification accuracy")
    ds["bits"].attrs.update(units="1", long_name="weight resolution (2^bits levels of one film)")
    ds.attrs.update(network="mlp-256-128", dataset="digits", study="physics", pool_films=8)
    evaluate_film.plot(ds, tmp_path / "f.png")
    (ax,) = _all_axes(drawn[0])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["digital", "statistical", "physics"]
    assert _flat(ax.get_xlabel()) == "weight resolution (2^bits levels of one film)"
    assert "8-film pool" in ax.get_title()
    # the plot names the pool on a copy: the dataset keeps its study
    assert ds.attrs["study"] == "physics"


def _sweep(colour_values):
    ds = xr.Dataset(coords={"amplitude_start_v": [0.9, 0.95, 0.995]})
    ds["amplitude_start_v"].attrs.update(units="V", long_name="first pulse amplitude")
    dims = ("amplitude_start_v",)
    ds["differential_bins"] = (dims, [25.0, 31.0, np.nan], {"units": "1", "long_name": "reliable bins"})
    ds["energy_per_cycle"] = (dims, [2.3e-8, 4.1e-8, 5.0e-8], {"units": "J", "long_name": "energy of one cycle"})
    ds["programming_time_per_cycle"] = (dims, colour_values, {"units": "s", "long_name": "time of one cycle"})
    ds["pareto"] = (dims, np.array([1, 1, 0], dtype=np.int8))
    ds.attrs.update(pareto_maximise="differential_bins",
                    pareto_minimise="energy_per_cycle,programming_time_per_cycle", title="t")
    return ds


def test_sweep_plot_labels_points_and_drops_a_flat_colour_scale(drawn, tmp_path):
    from memdrift.experiments import sweep

    sweep.plot_pareto(_sweep([2.010e-3, 2.012e-3, 2.014e-3]), tmp_path / "flat.png")
    sweep.plot_pareto(_sweep([1e-3, 2e-3, 3e-3]), tmp_path / "spread.png")
    flat, spread = drawn
    ax = flat.axes[0]
    assert _flat(ax.get_xlabel()) == "energy of one cycle (nJ)"
    assert _flat(ax.get_ylabel()) == "reliable bins"
    # the two drawable points carry their sweep values; the one without a metric is said to be missing
    notes = sorted(t.get_text() for t in ax.texts)
    assert notes == ["amplitude_start_v = 0.9", "amplitude_start_v = 0.95"]
    assert "1 of 3 points have no differential_bins" in ax.get_title()
    assert len(flat.axes) == 1 and "at every point" in ax.get_title()  # 0.2 % spread: no colourbar
    assert len(spread.axes) == 2 and _flat(spread.axes[1].get_ylabel()) == "time of one cycle (ms)"


# ------------------------------------------------------------------ reproductions: verdicts and overlays


def test_tolerances_name_published_targets_and_one_rule():
    published = rep.targets()
    for section, entries in rep.tolerances().items():
        for key, tol in entries.items():
            value = published[section]
            for part in key.split("."):
                value = value[part]
            assert value is not None, key
            if tol.rule == "sigmas":
                assert isinstance(value, list) and len(value) == 2, key


def test_bad_tolerance_entry_is_named(monkeypatch):
    class Text:
        def joinpath(self, *parts):
            return self

        def read_text(self):
            return '[filament_hfoxsy_hfs2]\nstates_per_device = { figure = "Fig. 2d", rel = 0.1, abs = 1 }\n'

    monkeypatch.setattr(rep.resources, "files", lambda _pkg: Text())
    with pytest.raises(MemdriftError, match="states_per_device"):
        rep.tolerances()


def test_row_verdicts_follow_the_rules():
    within = rep.Tolerance("Fig. x", "sigmas", 2.0)
    assert rep.Row("e", "", 494.0, 515.0, tolerance=within, paper_std=11.0).verdict() == rep.PASS
    assert rep.Row("e", "", 494.0, 521.0, tolerance=within, paper_std=11.0).verdict() == rep.FAIL
    assert rep.Row("e", "", 494.0, None, tolerance=within, paper_std=11.0).verdict() == rep.FAIL
    assert rep.Row("n", "", 16.0, 15.0, tolerance=rep.Tolerance("f", "at_least", 1.0)).verdict() == rep.FAIL
    assert rep.Row("r", "", 0.999, 0.9951, tolerance=rep.Tolerance("f", "min", 0.995)).verdict() == rep.PASS
    assert rep.Row("b", "", 81e-6, 72e-6, tolerance=rep.Tolerance("f", "rel", 0.10)).verdict() == rep.FAIL
    assert rep.Row("q", "", None, 1.0, tolerance=within).verdict() == rep.NO_TARGET
    with pytest.raises(MemdriftError, match="sigmas"):
        rep.Row("e", "", 494.0, 500.0, tolerance=within).verdict()


def test_verdict_line_reports_a_deliberately_failing_figure(tmp_path, monkeypatch, drawn):
    real = rep.tolerances()
    result = rep.reproduce("hfoxsy-ramp", tmp_path / "ok", devices=6, cycles=6, progress=False)
    assert "Fig. 2e" in result.verdicts()
    # every published value the experiment compares is held to a tolerance (none is left unjudged)
    assert all(r.tolerance is not None for r in result.rows if r.paper is not None)
    # the same run held to a bin width nobody reaches: Fig. 2e fails, and only because of it
    strict = {s: dict(e) for s, e in real.items()}
    strict["filament_hfoxsy_hfs2"]["bin_width_potentiation_S"] = rep.Tolerance("Fig. 2e", "rel", 0.0)
    monkeypatch.setattr(rep, "tolerances", lambda: strict)
    failing = rep.reproduce("hfoxsy-ramp", tmp_path / "bad", devices=6, cycles=6, progress=False)
    assert failing.verdicts()["Fig. 2e"] == rep.FAIL and not failing.passed
    for figure, verdict in result.verdicts().items():
        if figure != "Fig. 2e":
            assert failing.verdicts()[figure] == verdict
    lines = failing.table().splitlines()
    assert any(line.strip().startswith("FAIL  Fig. 2e:") and "bin width, potentiation" in line for line in lines)
    # the figure carries the same verdict in the panel title, and the paper's bin width as a line
    (ax_e,) = [ax for ax in drawn[-1].axes if ax.get_title(loc="left").startswith("(e)")]
    assert ax_e.get_title(loc="left").splitlines()[0].endswith(rep.FAIL)
    assert any(ln.get_label().startswith("paper: 81.077 µS") for ln in ax_e.get_lines())


def test_ffp_figure_overlays_the_paper_and_marks_skipped_levels(film, drawn, tmp_path):
    t = rep._Rows("bulk_tio2x_four_terminal")
    t.add("HRS (read R13)", "Ω", "hrs_ohm", float(film["resistance_start"].values[:, 0].mean()))
    t.add("FFP events HRS→LRS", "", "ffp_events_potentiation", float(film["events"].values[:, 0].mean()))
    rep._plot_ffp(film, (4, 8), t, tmp_path / "ffp.png")
    (fig,) = drawn
    ax_map, ax_tr, ax_seg, ax_cpd = fig.axes[:4]
    # the small film is far from the paper's 880 ohm and 494 events: the trace panel says FAIL
    assert ax_tr.get_title(loc="left").splitlines()[0] == "FFP trace — FAIL"
    assert any(ln.get_ydata()[0] == 880.0 for ln in ax_tr.get_lines() if ln.get_linestyle() == "--")
    assert any(ln.get_xdata()[0] == 494 for ln in ax_tr.get_lines() if ln.get_linestyle() == "--")
    for ln in ax_tr.get_lines():
        if ln.get_label().endswith("device 0"):
            name = ln.get_label().split(",")[0]
            assert to_hex(ln.get_color()) == to_hex(figstyle.BRANCH_COLOURS[name])
    assert _flat(ax_map.get_xlabel()) == "resistance R13 the dR map is measured at (Ω)"
    assert _flat(ax_tr.get_ylabel()) == "resistance read after the pulse (Ω)"
    skipped = [ln for ln in ax_seg.get_lines() if "skipped at CPD 80 %" in ln.get_label()]
    assert sum(len(ln.get_xdata()) for ln in skipped) == int(film["skipped_n8"].sum())


# ------------------------------------------------------------------ atomic writes


def test_a_failed_save_leaves_the_old_figure_and_no_temporary(tmp_path):
    plt = figstyle.pyplot()
    path = tmp_path / "fig.png"
    path.write_bytes(b"old figure")
    fig, _ = plt.subplots()

    def broken(target, **_options):
        with open(target, "wb") as fh:
            fh.write(b"\x89PNG half")
        raise OSError("disk full")

    fig.savefig = broken
    with pytest.raises(OSError, match="disk full"):
        figstyle.save(fig, path)
    assert path.read_bytes() == b"old figure"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]
    assert not plt.fignum_exists(fig.number)  # closed even on failure
    fig2, _ = plt.subplots()
    figstyle.save(fig2, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]
