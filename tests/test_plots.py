"""The figure builders of mtl.extras.notebooks.plots: what they draw from their tables (points, lines, scales), not how they look."""
import numpy as np
import pandas as pd
import pytest

from mtl.extras.notebooks.plots import learning_curves, paired_differences, transfer_tradeoffs


@pytest.fixture
def runs():
    rows = []
    for seed, jitter in enumerate([-0.01, 0.0, 0.01]):
        rows += [{"scenario": "all frozen", "trainable": 1, "seconds": 1.0, "topic/accuracy": 0.3 + jitter},
                 {"scenario": "heads only", "trainable": 10, "seconds": 2.0, "topic/accuracy": 0.6 + jitter},
                 {"scenario": "scratch, full", "trainable": 1000, "seconds": 20.0, "topic/accuracy": 0.5 + jitter}]
    return pd.DataFrame(rows)


def test_transfer_tradeoffs_plots_each_trained_scenario_at_its_means_with_the_floor_dashed(runs):
    fig = transfer_tradeoffs(runs, ["topic"], labels_below=["heads only"], title="t")
    by_params, by_time = fig.axes
    assert by_params.get_xscale() == by_time.get_xscale() == "log"
    points = {text.get_text(): text.xy for text in by_params.texts}
    assert set(points) == {"heads only", "scratch, full"}  # the floor is a line, not a point
    assert points["heads only"] == pytest.approx((10, 0.6))
    assert {text.get_text(): text.xy for text in by_time.texts}["scratch, full"] == pytest.approx((20.0, 0.5))
    floor = [line for line in by_params.lines if line.get_linestyle() == "--"]
    assert len(floor) == 1 and floor[0].get_ydata()[0] == pytest.approx(0.3)
    markers = {bars.get_label(): bars.lines[0].get_marker() for bars in by_params.containers}
    assert markers == {"heads only": "o", "scratch, full": "s"}  # from-scratch encoders are squares


@pytest.fixture
def curves():
    return pd.DataFrame({"method": ["heads only"] * 2 + ["top-2"] * 2, "train_size": [250, 1000] * 2,
                         "seeds": [3, 3, 3, 1], "mean": [0.5, 0.55, 0.58, 0.65], "std": [0.01, 0.01, 0.02, np.nan],
                         "seconds": [10.0, 20.0, 40.0, 90.0], "trainable": [1e3, 1e3, 1e6, 1e6]})


def test_learning_curves_draw_each_method_against_size_time_and_parameters_with_markers_growing_with_size(curves):
    fig = learning_curves(curves, title="t")
    assert [ax.get_xscale() for ax in fig.axes] == ["log"] * 3
    for ax, x in zip(fig.axes, ["train_size", "seconds", "trainable"]):
        scatters = ax.collections[-2:]  # one scatter per method, drawn after its error bars
        top2 = scatters[-1].get_offsets()
        assert np.allclose(top2, curves[curves.method == "top-2"][[x, "mean"]].to_numpy())
        sizes = scatters[-1].get_sizes()
        assert sizes[1] > sizes[0]  # the larger training set, the larger marker
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["heads only", "top-2"]


def test_paired_differences_draw_each_comparison_per_budget_hollow_where_not_significant():
    index = pd.MultiIndex.from_tuples([("a - b", "topic"), ("a - b", "ner")], names=["comparison", "task"])
    small = pd.DataFrame({"difference": [0.02, -0.01], "ci_low": [0.01, -0.03], "ci_high": [0.03, 0.01],
                          "significant": [True, False]}, index=index)
    large = small.iloc[:1] * [2, 2, 2, 1]  # only the topic row, doubled
    fig = paired_differences({"small": small, "large": large}, title="t")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a - b (topic)", "a - b (ner)"]
    bars = ax.containers
    assert len(bars) == 3  # two rows of the small budget, one of the large
    dots = [(b.lines[0].get_xdata()[0], b.lines[0].get_markerfacecolor()) for b in bars]
    assert dots[0][0] == pytest.approx(0.02) and dots[2][0] == pytest.approx(0.04)
    assert dots[1][1] == "white" and dots[0][1] != "white"  # hollow: within noise
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["small", "large"]
    assert any(line.get_linestyle() == "--" and line.get_xdata()[0] == 0 for line in ax.lines)
