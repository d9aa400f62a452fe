"""Old name of ``mtl.multitask.heads``' lookup by kind, until its callers import ``head_type`` from there."""
from mtl.multitask.heads import IGNORE, SentenceHead, head_type as task_kind  # noqa: F401

classification_scores = SentenceHead.scores
