"""mtl.extras.notebooks.results: notebooks record their numbers; under the test command they are checked, within a tolerance."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mtl.extras.notebooks.results import CHECK_ENV, NotebookResults, load


def test_recording_writes_every_value_at_once_and_finish_drops_keys_no_longer_recorded(tmp_path, monkeypatch):
    monkeypatch.delenv(CHECK_ENV, raising=False)
    first = NotebookResults("nb", tmp_path)
    first.record("old", 1)
    second = NotebookResults("nb", tmp_path)
    assert second.record("acc", np.float32(0.8815), tolerance=0.02) == np.float32(0.8815)  # returned unchanged
    assert load("nb", tmp_path) == {"old": 1, "acc": 0.8815}  # written at once; "old" kept until finish
    second.record_frame("table", pd.DataFrame({"f1": [0.5, np.nan]}, index=["a", "b"]))
    second.record_frame("multi", pd.DataFrame({"f1": [0.25]}, index=pd.MultiIndex.from_tuples([("x", "y")])))
    second.finish()
    assert load("nb", tmp_path) == {"acc": 0.8815, "table/a/f1": 0.5, "multi/x/y/f1": 0.25}
    assert json.loads((tmp_path / "nb.json").read_text())["values"]["acc"]["tolerance"] == 0.02


def test_checking_compares_within_the_tolerance_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(CHECK_ENV, raising=False)
    writer = NotebookResults("nb", tmp_path)
    writer.record("acc", 0.88, tolerance=0.02)
    writer.record("name", "mean")
    writer.record("seconds", 12.5, tolerance=None)
    writer.finish()
    before = (tmp_path / "nb.json").read_text()
    monkeypatch.setenv(CHECK_ENV, "1")
    checker = NotebookResults("nb", tmp_path)
    checker.record("acc", 0.899, tolerance=0.02)  # within tolerance
    checker.record("seconds", 99.0, tolerance=None)  # a timing: recorded, not compared
    with pytest.raises(AssertionError, match=r"acc = 0\.901, recorded 0\.88 \(tolerance 0\.02\)"):
        checker.record("acc", 0.901, tolerance=0.02)
    with pytest.raises(AssertionError, match="'name'.*recorded 'mean'|name = 'max'"):
        checker.record("name", "max")
    with pytest.raises(AssertionError, match="never recorded"):
        checker.record("new", 1.0)
    assert (tmp_path / "nb.json").read_text() == before


def test_checking_notices_a_result_that_is_no_longer_computed(tmp_path, monkeypatch):
    monkeypatch.delenv(CHECK_ENV, raising=False)
    writer = NotebookResults("nb", tmp_path)
    writer.record("a", 1.0)
    writer.record("b", 2.0)
    writer.finish()
    monkeypatch.setenv(CHECK_ENV, "1")
    checker = NotebookResults("nb", tmp_path)
    checker.record("a", 1.0)
    with pytest.raises(AssertionError, match=r"recorded before but not now: \['b'\]"):
        checker.finish()


def test_checking_without_a_committed_file_says_how_to_make_it(tmp_path, monkeypatch):
    monkeypatch.setenv(CHECK_ENV, "1")
    with pytest.raises(FileNotFoundError, match="make all"):
        NotebookResults("missing", tmp_path)


def test_only_numbers_and_strings_are_recorded(tmp_path, monkeypatch):
    monkeypatch.delenv(CHECK_ENV, raising=False)
    with pytest.raises(TypeError, match="Only numbers and strings"):
        NotebookResults("nb", tmp_path).record("x", [1, 2])


def test_a_recording_run_keeps_its_provenance_and_a_checking_run_none(tmp_path, monkeypatch):
    monkeypatch.delenv(CHECK_ENV, raising=False)
    results = NotebookResults("nb", tmp_path)
    results.record("acc", 0.5, 0.02)
    written = json.loads((tmp_path / "nb.json").read_text())
    assert {"command", "commit", "cpu", "torch", "date"} <= set(written["provenance"])
    assert written["provenance"]["command"] == "make all (notebooks/nb.ipynb)"
    monkeypatch.setenv(CHECK_ENV, "1")
    assert NotebookResults("nb", tmp_path).about == {}
