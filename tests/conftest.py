"""Shared fixtures: a tiny, fast model on the from-scratch backbone (no pretrained weights needed); hypothesis
settings for the property-based tests."""
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

from mtl.utils import quiet_libraries, set_seed

quiet_libraries()
# the same examples on every run, no timing limits (the CPU is shared), nothing written into the work tree
settings.register_profile("mtl", derandomize=True, deadline=None, database=None, print_blob=True)
settings.load_profile("mtl")
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "mtl-hypothesis")  # its caches; by default ./.hypothesis


@pytest.fixture
def tiny_model():
    from mtl.multitask.tasks import build_model

    set_seed(0)
    return build_model(["topic", "sentiment", "ner"], backbone="scratch", max_seq_length=32)
