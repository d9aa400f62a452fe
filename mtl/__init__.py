"""mtl: a sentence encoder extended to several tasks, how to train it and how to evaluate it.

The public API, one place per task of the study: ``SentenceEncoder`` (Task 1, ``mtl.encoder``); ``build_model`` and
``MultiTaskModel`` (Task 2, ``mtl.multitask``); what trains (Task 3, ``mtl.finetuning``); ``TrainConfig`` and
``train`` (Task 4, ``mtl.training``); ``evaluate`` and ``predict`` (Task 5, ``mtl.evaluation``). Names resolve on
first use, so that ``import mtl.paths`` does not load torch.
"""
from importlib import import_module

_EXPORTS = {
    "SentenceEncoder": "mtl.encoder.encoder",
    "build_model": "mtl.multitask.tasks",
    "MultiTaskModel": "mtl.multitask.model",
    "TrainConfig": "mtl.training.train",
    "train": "mtl.training.train",
    "evaluate": "mtl.evaluation.predictions",
    "predict": "mtl.evaluation.predictions",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mtl' has no attribute {name!r}; its public API is {__all__}.")
    return getattr(import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
