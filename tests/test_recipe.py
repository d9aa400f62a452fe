from dataclasses import replace

import pandas as pd
import pytest

from mtl.extras.notebooks import recipe


def tiny_sentiment(n=24):
    from mtl.data.examples import Example

    return [Example(f"sentence number {i} " + ("good" if i % 2 else "bad"), {"sentiment": "positive" if i % 2
                                                                                      else "negative"})
            for i in range(n)]


def test_interrupted_at_stops_right_after_that_checkpoint_and_refuses_a_run_that_never_writes_it(tmp_path):
    from mtl.multitask.tasks import build_model
    from mtl.training.train import TrainConfig, train
    from mtl.utils import set_seed

    set_seed(0)
    model = build_model(["sentiment"], backbone="scratch", max_seq_length=16)
    data = tiny_sentiment()
    config = TrainConfig(epochs=2, steps_per_epoch=4, batch_size=4, checkpoint_every=2, progress=False,
                         output_dir=str(tmp_path / "run"))
    with recipe.interrupted_at(epoch=2, step=2):
        train(model, {"sentiment": data}, {"sentiment": data}, config)
    history = tmp_path / "run" / "history.csv"
    assert not history.exists() or len(pd.read_csv(history)) == 1  # epoch 2 never finished
    assert (tmp_path / "run" / "last").is_dir()  # the checkpoint it stopped after
    assert recipe.LOOP.save_checkpoint.__name__ == "save_checkpoint"  # the real one is back
    with pytest.raises(RuntimeError, match="no checkpoint at epoch 3, step 2"):
        with recipe.interrupted_at(epoch=3, step=2):  # there is no epoch 3
            train(model, {"sentiment": data}, {"sentiment": data}, replace(config, output_dir=str(tmp_path / "b")))
