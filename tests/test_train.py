import math

import pandas as pd
import pytest

from mtl.tasks import load_datasets
from mtl.train import TrainConfig, train


def small_data():
    return (load_datasets(["topic", "sentiment", "ner"], "train", limit=48),
            load_datasets(["topic", "sentiment", "ner"], "validation", limit=24))


def test_training_lowers_the_loss_and_keeps_the_best_epoch(tiny_model, tmp_path):
    train_sets, val_sets = small_data()
    config = TrainConfig(epochs=3, steps_per_epoch=8, batch_size=8, head_lr=5e-3, encoder_lr=1e-3, patience=None,
                         output_dir=str(tmp_path), progress=False)
    history = train(tiny_model, train_sets, val_sets, config)
    assert list(history.epoch) == [1, 2, 3]
    assert history["train_loss/ner"].iloc[-1] < history["train_loss/ner"].iloc[0]
    assert {"best", "last", "history.csv"} <= {p.name for p in tmp_path.iterdir()}
    assert pd.read_csv(tmp_path / "history.csv").shape == history.shape
    from mtl.metrics import evaluate
    from mtl.train import main_score
    assert main_score(evaluate(tiny_model, val_sets), tiny_model) == pytest.approx(history["val/main"].max(), abs=1e-6)


def test_early_stopping_stops_after_patience(tiny_model):
    train_sets, val_sets = small_data()
    config = TrainConfig(epochs=6, steps_per_epoch=2, batch_size=4, encoder_lr=0.0, head_lr=0.0, patience=1,
                         progress=False)
    history = train(tiny_model, train_sets, val_sets, config)  # nothing learns: no epoch beats the first
    assert len(history) == 2


def test_frozen_prefix_is_cached_during_training(tiny_model):
    train_sets, val_sets = small_data()
    config = TrainConfig(epochs=1, steps_per_epoch=4, batch_size=8, freeze=["bottom:3"], progress=False)
    cache_log = {}
    original = tiny_model.encoder.use_prefix_cache

    def spy(enabled=True, cache=None):
        original(enabled, cache)
        if enabled:
            cache_log["cache"] = tiny_model.encoder.prefix_cache
    tiny_model.encoder.use_prefix_cache = spy
    train(tiny_model, train_sets, val_sets, config)
    cache = cache_log["cache"]
    assert cache.depth == 3 and cache.misses > 0 and len(cache) > 0
    assert tiny_model.encoder.prefix_cache is None  # released after training


def test_config_errors():
    with pytest.raises(ValueError, match="positive"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="Unknown TrainConfig field"):
        TrainConfig.from_dict({"learning_rate": 1e-3})
    with pytest.raises(TypeError, match="batch_size must be"):
        TrainConfig.from_dict({"batch_size": "32"})
    assert math.isclose(TrainConfig.from_dict({"encoder_lr": 1}).encoder_lr, 1)
