"""TrainConfig checks values, not only types: a value outside its range is an error when the config is built,
naming the field and what is valid (types and unknown fields: test_reliability.py)."""
import math

import pytest

from mtl.training.train import TrainConfig


@pytest.mark.parametrize("values, message", [
    ({"encoder_lr": math.nan}, r"TrainConfig\.encoder_lr must be a finite number >= 0, got nan"),
    ({"encoder_lr": -1.0}, r"TrainConfig\.encoder_lr must be a finite number >= 0, got -1\.0"),
    ({"head_lr": math.inf}, r"TrainConfig\.head_lr must be a finite number >= 0, got inf"),
    ({"weight_decay": -0.01}, r"TrainConfig\.weight_decay must be a finite number >= 0"),
    ({"warmup_ratio": 2}, r"TrainConfig\.warmup_ratio must be in \[0, 1\], got 2"),
    ({"warmup_ratio": math.nan}, r"TrainConfig\.warmup_ratio must be in \[0, 1\], got nan"),
    ({"temperature": 0}, r"TrainConfig\.temperature must be a finite number > 0, got 0"),
    ({"sampling": "bogus"}, r"TrainConfig\.sampling must be one of \('proportional', 'round_robin', 'temperature'\), "
                            r"got 'bogus'"),
    ({"loss_weighting": "bogus"},
     r"TrainConfig\.loss_weighting must be one of \('fixed', 'uncertainty'\), got 'bogus'"),
    ({"task_weights": {"topic": 1.0, "ner": -0.5}}, r"TrainConfig\.task_weights\['ner'\] must be a finite number >= 0, "
                                                    r"got -0\.5"),
    ({"max_grad_norm": 0}, r"TrainConfig\.max_grad_norm must be > 0, got 0"),
    ({"patience": 0}, r"TrainConfig\.patience must be positive \(>= 1\) or None, got 0"),
    ({"seed": -1}, r"TrainConfig\.seed must be >= 0, got -1"),
    ({"epochs": 0}, r"TrainConfig\.epochs must be positive \(>= 1\), got 0"),
    ({"layer_lr_decay": math.inf}, r"TrainConfig\.layer_lr_decay must be a finite number > 0"),
], ids=lambda v: str(v) if isinstance(v, dict) else "")
def test_a_value_out_of_range_is_an_error_naming_the_field_and_the_valid_values(values, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**values)
    with pytest.raises(ValueError, match=message):  # the same from a config file's dict
        TrainConfig.from_dict(values)


def test_values_at_the_edges_of_their_ranges_are_accepted():
    config = TrainConfig(encoder_lr=0.0, warmup_ratio=1.0, max_grad_norm=math.inf, task_weights={"ner": 0.0},
                         sampling="temperature", temperature=0.5, loss_weighting="uncertainty", patience=None, seed=0)
    assert (config.encoder_lr, config.warmup_ratio, config.task_weights) == (0.0, 1.0, {"ner": 0.0})
