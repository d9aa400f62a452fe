"""The multi-task model: one shared sentence encoder, one head per task in a ``ModuleDict``.

Each head owns its kind of task (``mtl.multitask.heads``): sentence heads read the pooled embedding, token heads the
backbone's token embeddings. An example may carry labels for any subset of the tasks; a missing label is -100
(``IGNORE``) and costs no loss.

Saved as a folder: ``encoder/`` (a sentence-transformers model), ``heads.safetensors`` and ``config.json``.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from sentence_transformers.models import Dense, LayerNorm
from torch import Tensor, nn
from tqdm.auto import tqdm
from transformers import BatchEncoding

from mtl.data.examples import Example, check_texts
from mtl.encoder.encoder import SentenceEncoder
from mtl.encoder.precision import autocast
from mtl.multitask.heads import TaskSpec, head_type
from mtl.utils import length_sorted_batches
from mtl.data.words import joined_words, split_words

FORMAT_VERSION = 1
FILL_BATCH_SIZE = 64  # rows per pass of ``fill_prefix_cache`` (sorted by token count, so little padding)


def is_frozen(module: nn.Module) -> bool:
    """No parameter of ``module`` has a gradient."""
    return all(not p.requires_grad for p in module.parameters())


class MultiTaskModel(nn.Module):
    """Shared ``SentenceEncoder`` + ``heads[task]``; ``forward`` returns logits for the tasks asked for."""

    def __init__(self, encoder: SentenceEncoder, tasks: Sequence[TaskSpec]):
        super().__init__()
        if len({t.name for t in tasks}) != len(tasks):
            raise ValueError(f"Task names must be unique, got {[t.name for t in tasks]}.")
        self.encoder = encoder
        self.tasks = {t.name: t for t in tasks}
        self.heads = nn.ModuleDict({t.name: head_type(t.kind)(t, encoder) for t in tasks})

    def train(self, mode: bool = True) -> MultiTaskModel:
        """As ``nn.Module.train``, but fully frozen components stay in eval mode (no dropout where nothing learns)."""
        super().train(mode)
        if mode:
            for module in self.components().values():
                if is_frozen(module):
                    module.eval()
        return self

    def components(self) -> dict[str, nn.Module]:
        """Name -> module for every component, bottom-up: ``embeddings``, ``layer.0`` ... (the backbone's blocks, from
        its family's adapter, ``mtl.encoder.architectures``; a family it does not know is one ``backbone``),
        ``projection`` and ``layer_norm`` if the encoder has them, ``head.<task>``: what ``mtl.finetuning`` freezes."""
        encoder = self.encoder
        if encoder.blocks is None:
            parts: dict[str, nn.Module] = {"backbone": encoder.transformer.auto_model}
        else:
            parts = {"embeddings": encoder.embeddings, **{f"layer.{i}": block for i, block in enumerate(encoder.blocks)}}
        for module in list(encoder.model)[1:]:
            if isinstance(module, Dense):
                parts["projection"] = module
            elif isinstance(module, LayerNorm):
                parts["layer_norm"] = module
        parts.update({f"head.{name}": head for name, head in self.heads.items()})
        return parts

    # ---- forward -------------------------------------------------------------------------------------------
    def check_tasks(self, tasks: Iterable[str] | None) -> list[str]:
        """The tasks to run (all by default); an unknown name is an error that lists the model's tasks."""
        names = list(self.tasks) if tasks is None else list(tasks)
        unknown = [t for t in names if t not in self.tasks]
        if unknown:
            raise KeyError(f"Unknown task(s) {unknown}; this model has tasks {list(self.tasks)}.")
        return names

    def forward(self, features: BatchEncoding | dict, tasks: Iterable[str] | None = None) -> dict[str, Tensor]:
        """{task: logits}: (B, C) for sentence tasks, (B, T, C) for token tasks."""
        names = self.check_tasks(tasks)
        encoded = self.encoder(features)  # sentence_embedding (B, D), token_embeddings (B, T, H): each head picks one
        return {name: self.heads[name](encoded).logits for name in names}

    # ---- batches and losses ----------------------------------------------------------------------------------
    def collate(self, examples: Sequence[Example]) -> tuple[BatchEncoding, dict[str, Tensor]]:
        """Tokenise a batch (``tokenize``) and turn its labels into each head's targets (``targets``), ``IGNORE`` where
        a label is missing or not scored; an unknown label is an error naming the task."""
        if len(examples) == 0:
            raise ValueError("Cannot collate an empty batch.")
        features = self.tokenize(examples)
        labels = {name: head.targets([ex.labels[name] if name in ex.labels else None for ex in examples], features)
                  for name, head in self.heads.items() if any(name in ex.labels for ex in examples)}
        return features, {k: v.to(self.encoder.device) for k, v in labels.items()}

    def inputs(self, examples: Sequence[Example]) -> list[str] | list[Sequence[str]]:
        """What the encoder reads for these examples: their words if one has words or a label of a by-words kind (so
        that labels align with words), else their texts."""
        word_tasks = [name for name, head in self.heads.items() if head.by_words]
        by_words = any(ex.words is not None or any(n in ex.labels for n in word_tasks) for ex in examples)
        return [ex.words or tuple(ex.text.split()) for ex in examples] if by_words else [ex.text for ex in examples]

    def tokenize(self, examples: Sequence[Example]) -> BatchEncoding:
        """The encoder's input for a batch (``inputs``), padded and truncated."""
        return self.encoder.tokenize(self.inputs(examples))

    def batches(self, examples: Sequence[Example], batch_size: int) -> list[np.ndarray]:
        """Positions of ``examples`` in batches sorted by token count (longest first): the batching of every pass
        over a data set (validation, test predictions, cache filling), so that each batch holds little padding."""
        return length_sorted_batches(self.encoder.token_counts(self.inputs(examples)), batch_size)

    @torch.no_grad()
    def fill_prefix_cache(self, examples: Sequence[Example], batch_size: int = FILL_BATCH_SIZE) -> None:
        """Compute the frozen bottom of the examples the prefix cache lacks (``mtl.encoder.prefix_cache``), in length-sorted
        batches, before they are needed: a training step or a validation batch then only looks them up, instead of
        computing them in small chunks of a shuffled batch. Batches are sorted by token count, not characters, so that
        they hold little padding (short texts of equal length in characters differ in tokens). No effect without a
        cache or a frozen bottom. Tokenises as ``collate`` does, so pass the examples of
        one dataset (batches are drawn from one dataset at a time)."""
        cache, depth = self.encoder.prefix_cache, 0
        if cache is not None and len(examples):
            depth = self.encoder.cached_depth()
        if depth == 0:
            return
        features = self.tokenize(examples)  # (n, T), right-padded: tokenised once, sliced per batch
        lengths = features["attention_mask"].sum(1)  # (n,)
        for idx in self.batches(examples, batch_size):  # frozen blocks: eval mode
            rows = torch.from_numpy(idx)
            width = int(lengths[rows].max())
            cache.fill(self.encoder, {name: values[rows, :width] for name, values in features.items()}, depth)

    def check_examples(self, examples: Sequence[Example], where: str) -> None:
        """Fail before training, naming ``where`` and the example, on an empty data set, an example without a label
        for any of the model's tasks, or a label its task's head does not accept (``label_problem``)."""
        if len(examples) == 0:
            raise ValueError(f"{where} has no examples.")
        for i, ex in enumerate(examples):
            about = f"{where}, example {i} ({ex.text!r:.60})"
            tasks = [name for name in ex.labels if name in self.tasks]
            if not tasks:
                raise ValueError(f"{about}: no label for any of the model's tasks {list(self.tasks)}; "
                                 f"it has labels for {list(ex.labels)}.")
            for name in tasks:
                problem = self.heads[name].label_problem(ex.labels[name])
                if problem:
                    raise ValueError(f"{about}: task {name!r} is a {self.tasks[name].kind} task: {problem}.")

    def task_losses(self, logits: dict[str, Tensor], labels: dict[str, Tensor],
                    class_weights: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Mean loss per task over the labelled positions (``Head.loss``; weighted per class by
        ``class_weights[task]`` when given: a weighted mean); tasks without labels in the batch are left out."""
        class_weights = class_weights or {}
        sums = {name: self.heads[name].loss(logits[name], labels[name], class_weights.get(name))
                for name in labels if name in logits}
        return {name: loss / total for name, (loss, total) in sums.items() if total > 0}

    # ---- inference -----------------------------------------------------------------------------------------
    @torch.inference_mode()
    def predict(self, inputs: Sequence[str | Sequence[str]], tasks: Iterable[str] | None = None, batch_size: int = 64,
                show_progress_bar: bool | None = None, precision: str = "fp32") -> list[dict]:
        """Readable predictions per input: {task: {"label", "probs"}}, or for token tasks {"entities": [...]} with
        character offsets into the input's text.

        An input is a text or its words (a list of strings, whose text is the words joined by spaces). Inputs are
        tokenised as ``collate`` tokenises training batches: by words when a token task runs or words are given (a
        text split as the training data was: ``mtl.data.words.split_words``), else as texts. Batches are sorted by
        token count; a progress bar shows from 21 batches on unless ``show_progress_bar`` says otherwise. ``precision`` of
        the forward pass: "fp32", "bf16", "fp16" (CUDA) or "auto" (see ``mtl.encoder.precision``).
        """
        check_texts(inputs, words=True)
        names = self.check_tasks(tasks)
        self.encoder.check_precision(precision)
        by_words = (any(self.heads[name].by_words for name in names)
                    or not all(isinstance(x, str) for x in inputs))
        items = [(split_words(x) if isinstance(x, str) else joined_words(x)) if by_words else x for x in inputs]
        was_training = self.training
        self.eval()
        inputs = [x.words if by_words else x for x in items]
        batches = length_sorted_batches(self.encoder.token_counts(inputs), batch_size)  # by tokens: little padding
        results: list[dict] = [{} for _ in items]
        show = len(batches) > 20 if show_progress_bar is None else show_progress_bar
        for idx in tqdm(batches, desc="predict", disable=not show):
            features = self.encoder.tokenize([inputs[i] for i in idx])
            with autocast(precision, self.encoder.device):
                logits = self(features, names)
            probs = {k: v.float().softmax(-1).cpu() for k, v in logits.items()}  # (B, C) or (B, T, C)
            for row, i in enumerate(idx):
                text, spans = (items[i].text, items[i].spans) if by_words else (items[i], None)
                for name in names:
                    results[i][name] = self.heads[name].readable(probs[name][row], features.word_ids(row), text, spans)
        self.train(was_training)
        return results

    # ---- save / load ---------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write ``encoder/`` (sentence-transformers), ``heads.safetensors`` and ``config.json``."""
        if self.encoder.is_int8:
            raise NotImplementedError("A model with an int8 encoder cannot be saved: save the float32 model and "
                                      "quantise it after loading (mtl.extras.inference.quantize).")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.encoder.save(path / "encoder")
        save_file({k: v.detach().contiguous().cpu() for k, v in self.heads.state_dict().items()},
                  str(path / "heads.safetensors"))
        config = {"format_version": FORMAT_VERSION, "tasks": [t.to_dict() for t in self.tasks.values()]}
        (path / "config.json").write_text(json.dumps(config, indent=2))

    @classmethod
    def load(cls, path: str | Path, tasks: Sequence[TaskSpec] | None = None,
             device: str | torch.device | None = None) -> MultiTaskModel:
        """Load a saved model; if ``tasks`` is given, the checkpoint's tasks and label sets must match it."""
        path = Path(path)
        config_file, heads_file = path / "config.json", path / "heads.safetensors"
        for f in (config_file, heads_file):
            if not f.is_file():
                raise FileNotFoundError(f"{f} is missing: {path} is not a saved MultiTaskModel.")
        try:
            config = json.loads(config_file.read_text())
            saved = [TaskSpec(**{**t, "labels": tuple(t["labels"])}) for t in config["tasks"]]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{config_file} is not a valid model config: {err}") from err
        if config.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{config_file} has format_version {config.get('format_version')}; this version of mtl "
                             f"reads format_version {FORMAT_VERSION}.")
        if tasks is not None and list(tasks) != saved:
            raise ValueError(f"{path} holds tasks {[(t.name, t.labels) for t in saved]}, "
                             f"but {[(t.name, t.labels) for t in tasks]} were expected.")
        model = cls(SentenceEncoder.load(path / "encoder", device=device), saved)
        try:
            state = load_file(str(heads_file))
        except Exception as err:  # safetensors raises its own error types for truncated / corrupt files
            raise ValueError(f"{heads_file} is corrupted or not a safetensors file: {err}") from err
        expected = model.heads.state_dict()
        if set(state) != set(expected) or any(state[k].shape != v.shape for k, v in expected.items()):
            raise ValueError(f"{heads_file} does not match {config_file}: the heads' names or shapes differ.")
        model.heads.load_state_dict(state)
        return model.to(model.encoder.device)

