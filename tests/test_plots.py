"""The figure builders of mtl.extras.notebooks.plots: what they draw from their tables (points, lines, scales), not how they look."""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from mtl.extras.notebooks.plots import VERDICT_COLOURS, family_intervals, freezing_at_scale


@pytest.fixture
def curves():
    return pd.DataFrame({"method": ["heads only"] * 3 + ["top-2"] * 2, "train_size": [250, 1000, 16533, 1000, 250],
                         "seeds": [5, 5, 5, 1, 3], "mean": [0.5, 0.55, 0.6, 0.65, 0.58],
                         "std": [0.01, 0.01, 0.02, np.nan, 0.03]})


def test_freezing_at_scale_draws_each_method_in_increasing_size_at_its_mean_with_its_seed_spread(curves):
    fig = freezing_at_scale(curves, title="t", spread=0.05)
    assert len(fig.axes) == 1  # no second panel
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    lines = {bars.get_label(): bars for bars in ax.containers}
    assert list(lines) == ["heads only", "top-2"]  # the legend's order is the table's
    top2 = lines["top-2"].lines[0]
    x, y = top2.get_xdata(), top2.get_ydata()
    assert list(y) == [0.58, 0.65]  # joined in increasing training size, whatever the table's row order
    assert np.all(np.diff(x) > 0) and np.allclose(x, np.array([250, 1000]) * np.exp(0.05))  # set apart, in log space
    assert np.allclose(lines["heads only"].lines[0].get_xdata(), np.array([250, 1000, 16533]) * np.exp(-0.05))
    heads_bars = lines["heads only"].lines[2][0].get_segments()
    assert [tuple(np.round(segment[:, 1], 3)) for segment in heads_bars] == [(0.49, 0.51), (0.54, 0.56), (0.58, 0.62)]
    top2_bars = lines["top-2"].lines[2][0].get_segments()
    assert np.allclose(top2_bars[1][:, 1], 0.65)  # one seed: no bar
    assert [t.get_text() for t in ax.get_xticklabels()] == ["250", "1,000", "16,533"]  # the sizes, nothing between
    assert not ax.get_xticklabels(minor=True)


def test_family_intervals_draw_each_comparison_in_order_coloured_by_verdict_with_the_margin_shaded():
    table = pd.DataFrame({"difference": [0.1, -0.3, 0.01], "ci_low": [0.05, -0.4, -0.05], "ci_high": [0.15, -0.2, 0.07],
                          "verdict": ["better", "worse", "not separated on 50 documents"]}, index=["b", "w", "n"])
    fig, ax = plt.subplots()
    family_intervals(ax, table, margin=0.02, xlabel="x", title="t")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b", "w", "n"]
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # the table's first row on top
    bars = ax.containers
    assert [b.lines[0].get_xdata()[0] for b in bars] == pytest.approx([0.1, -0.3, 0.01])
    assert [tuple(np.round(b.lines[2][0].get_segments()[0][:, 0], 3)) for b in bars] == [(0.05, 0.15), (-0.4, -0.2),
                                                                                          (-0.05, 0.07)]
    colours = [b.lines[0].get_color() for b in bars]
    assert colours == [VERDICT_COLOURS["better"], VERDICT_COLOURS["worse"], "tab:grey"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["equivalence margin ±0.02", "better", "worse", "not separated on 50 documents"]
    span = ax.patches[0]  # the margin: a Rectangle, or a Polygon in older matplotlib
    xs = [span.get_x(), span.get_x() + span.get_width()] if hasattr(span, "get_width") else np.asarray(span.get_xy())[:, 0]
    assert np.allclose([min(xs), max(xs)], [-0.02, 0.02])
    plt.close(fig)


def test_family_intervals_shade_one_margin_per_row_when_the_tasks_margins_differ():
    table = pd.DataFrame({"difference": [0.01, -0.02], "ci_low": [-0.01, -0.04], "ci_high": [0.03, 0.0],
                          "verdict": ["not separated with 3 seeds"] * 2}, index=["a - b (topic)", "a - b (ner)"])
    fig, ax = plt.subplots()
    family_intervals(ax, table, margin=[0.02, 0.01], xlabel="x")
    shaded = [collection.get_paths()[0].vertices for collection in ax.collections]  # bars have 2 vertices each
    spans = sorted((round(v[:, 0].min(), 3), round(v[:, 0].max(), 3), round(v[:, 1].mean())) for v in shaded
                   if len(v) > 2)
    assert spans == [(-0.02, 0.02, 0), (-0.01, 0.01, 1)]  # row 0 (topic) wider than row 1 (ner)
    plt.close(fig)
