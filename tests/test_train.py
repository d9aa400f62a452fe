import copy
import math

import numpy as np
import pandas as pd
import pytest

from mtl.data.examples import Example
from mtl.multitask.tasks import load_datasets
from mtl.training.sampling import BatchStream, upcoming_examples
from mtl.training.train import TrainConfig, train


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
    from mtl.evaluation.predictions import evaluate
    from mtl.training.train import selection_score
    assert selection_score(evaluate(tiny_model, val_sets), tiny_model) == pytest.approx(history["val/main"].max(), abs=1e-6)


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


def test_balanced_class_weights_match_scikit_learn_and_weight_the_loss(tiny_model):
    import numpy as np
    import torch
    from sklearn.utils.class_weight import compute_class_weight

    from mtl.training.losses import balanced_class_weights
    train_sets, _ = small_data()
    weights = balanced_class_weights(tiny_model, train_sets)
    assert set(weights) == {"topic", "sentiment"}  # sentence tasks only
    topic_labels = [ex.labels["topic"] for examples in train_sets.values() for ex in examples if "topic" in ex.labels]
    assert len(topic_labels) > len(train_sets["topic"])  # pooled: the NER sentences carry topics too
    expected = compute_class_weight("balanced", classes=np.array(tiny_model.tasks["topic"].labels), y=topic_labels)
    assert torch.allclose(weights["topic"], torch.tensor(expected, dtype=torch.float32))
    logits, labels = {"sentiment": torch.randn(6, 3)}, {"sentiment": torch.tensor([0, 0, 0, 0, 1, 2])}
    plain = tiny_model.task_losses(logits, labels)["sentiment"]
    weighted = tiny_model.task_losses(logits, labels, weights)["sentiment"]
    w = weights["sentiment"][labels["sentiment"]]
    per_example = torch.nn.functional.cross_entropy(logits["sentiment"], labels["sentiment"], reduction="none")
    assert torch.allclose(weighted, (w * per_example).sum() / w.sum()) and not torch.allclose(weighted, plain)


def test_balanced_training_runs_and_bad_values_are_named(tiny_model):
    train_sets, val_sets = small_data()
    history = train(tiny_model, train_sets, val_sets, TrainConfig(epochs=1, steps_per_epoch=2, batch_size=4,
                                                                  class_weighting="balanced", progress=False))
    assert len(history) == 1 and math.isfinite(history["train_loss/sentiment"].iloc[0])
    with pytest.raises(ValueError, match="class_weighting"):
        TrainConfig(class_weighting="inverse")
    with pytest.raises(ValueError, match="eval_batch_size"):
        TrainConfig(eval_batch_size=0)
    with pytest.raises(ValueError, match="checkpoint_every"):
        TrainConfig(checkpoint_every=0)


def test_resuming_without_an_output_dir_is_refused_up_front(tiny_model, tmp_path):
    train_sets, val_sets = small_data()
    with pytest.raises(ValueError, match="resume_from needs config.output_dir"):
        train(tiny_model, train_sets, val_sets, TrainConfig(epochs=1, progress=False), resume_from=tmp_path / "last")


@pytest.mark.parametrize("scores, best", [([0.2, 0.6, 0.4], 2), ([0.1, 0.2, 0.3], 3)])
def test_the_best_epochs_weights_are_kept_exactly(tiny_model, tmp_path, monkeypatch, scores, best):
    """The weights train() ends with equal, bit for bit, the model it saved at the best epoch (a full copy written
    right then), also for a component that gradual unfreezing starts training after the best epoch."""
    import torch

    import mtl.training.train
    from mtl.multitask.model import MultiTaskModel
    scripted = iter(scores)
    monkeypatch.setattr(mtl.training.train, "selection_score", lambda values, model: next(scripted))
    train_sets, val_sets = small_data()
    initial_top = {k: v.clone() for k, v in tiny_model.encoder.blocks[-1].state_dict().items()}
    config = TrainConfig(epochs=3, steps_per_epoch=2, batch_size=8, encoder_lr=1e-3, head_lr=5e-3, patience=None,
                         freeze=["encoder"], unfreeze_schedule={3: ["top:1"]}, output_dir=str(tmp_path),
                         progress=False)
    history = train(tiny_model, train_sets, val_sets, config)
    assert list(history["val/main"]) == scores
    kept = tiny_model.state_dict()
    reference = MultiTaskModel.load(tmp_path / "best").state_dict()  # written at the best epoch
    last = MultiTaskModel.load(tmp_path / "last").state_dict()  # written after the final epoch
    assert kept.keys() == reference.keys() and all(torch.equal(kept[k], reference[k]) for k in kept)
    top = tiny_model.encoder.blocks[-1].state_dict()
    trained_in_epoch_3 = not all(torch.equal(top[k], initial_top[k]) for k in top)
    assert trained_in_epoch_3 == (best == 3)  # the top block, unfrozen for epoch 3 only, is back where it was
    assert all(torch.equal(kept[k], last[k]) for k in kept) == (best == 3)


def test_upcoming_examples_are_what_the_streams_then_draw_and_leave_them_untouched():
    rng = np.random.default_rng(0)
    streams = {name: BatchStream([Example(f"{name} {i}", {}) for i in range(n)], rng)
               for name, n in {"a": 5, "b": 7}.items()}
    schedule = ["a", "b", "a", "a", "b"]  # "a" runs out after 2 batches of 2: its next batch reshuffles
    state = copy.deepcopy(rng.bit_generator.state)
    upcoming = upcoming_examples(streams, schedule, batch_size=2, rng=rng, rank=1, world=2)
    assert rng.bit_generator.state == state  # the real generator has not moved
    drawn = {"a": [], "b": []}
    for name in schedule:
        drawn[name] += streams[name].next(2)[1::2]  # process 1 of 2: the second half of each batch
    for name in drawn:
        assert [ex.text for ex in upcoming[name]] == list(dict.fromkeys(ex.text for ex in drawn[name]))
