"""Shared fixtures: a tiny, fast model on the from-scratch backbone (no pretrained weights needed)."""
import pytest

from mtl.utils import quiet_libraries, set_seed

quiet_libraries()


@pytest.fixture
def tiny_model():
    from mtl.tasks import build_model

    set_seed(0)
    return build_model(["topic", "sentiment", "ner"], backbone="scratch", max_seq_length=32)
