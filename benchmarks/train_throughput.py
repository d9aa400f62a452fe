"""Training throughput: mtl's loop (plain, cached, bf16) against Hugging Face's Trainer and sentence-transformers'
trainer fine-tuning the same model on the same data, steps, frozen layers and precision, in one run.

Every path fine-tunes all-MiniLM-L6-v2 (max_seq_length 64) for topic classification (BBC headlines, 5 classes) on
the same stratified subsets of the train and validation splits, with batch size 32, the same number of steps, AdamW
(encoder 1e-4, head 1e-2, weight decay 0.01 on matrices), 10 % linear warm-up then linear decay, gradient clipping
at 1 and a validation pass after each epoch:

  - ``mtl plain``: ``mtl.training.train.train`` with ``TrainConfig(cache_frozen=False)``: every step runs all 6 blocks.
  - ``mtl cached``: the default, the frozen bottom computed once per sentence (``mtl.encoder.prefix_cache``), in
    length-sorted batches before the first epoch's first step.
  - ``HF Trainer``: ``transformers.Trainer`` on ``AutoModelForSequenceClassification`` from the same folder (BERT's
    [CLS] pooler and a linear classifier; the standard recipe: data tokenised once up front, padded per batch by
    ``DataCollatorWithPadding``).
  - ``ST trainer``: ``SentenceTransformerTrainer`` on the same ``SentenceTransformer`` (mean pooling) with a linear
    classifier inside the loss (the trainer optimises a loss's parameters too). It needs the ``datasets`` package,
    which mtl does not depend on (``pip install -r benchmarks/requirements.txt``): without it the row is skipped.

The same components are frozen in every path: the embeddings and the 4 lowest blocks (``top-2``, 3 epochs), or the
whole encoder (``heads-only``, 10 epochs; the HF model's pooler too). HF's trainers keep dropout on in frozen layers
(mtl switches frozen components to eval mode), so their validation scores differ a little by construction.

The bound caching sets, with a block's backward about twice its forward: a plain top-2 step costs 6 forwards +
2 backwards = 10 block forwards per example, 3 epochs 30; the cached run computes the 4 frozen blocks once, in
batches sorted by token count, then 2 forwards + 2 backwards = 6 per example and epoch: 4 + 18 = 22, so 30 / 22 =
1.36x the Trainer at equal padding. Heads only, the encoder runs once instead of 10 times: 10x. Padding is not equal:
shuffled training batches are padded to their longest row (on 512 + 192 headlines, batches of 32 hold 1.42 times the
real tokens) while the cached bottom is computed in token-sorted batches (1.11 times), so the bound printed counts
padded tokens: top-2 30 p / (4 q + 18 p), heads only 10 p / q, for the padding factors p (shuffled batches of 32)
and q (token-sorted batches of 64) of the run's data. Validation passes are part of every path and count like
training.

Each scenario runs at every ``--precisions`` (fp32, bf16): ratios are examples/s against ``HF Trainer`` at the same
precision, and bf16 against fp32 of the same path. bf16 is fast only on CPUs with AMX or AVX512-BF16 (the first line
says whether this one has it); elsewhere it is emulated and slower. The machine may be shared, so the paths run in an
order that rotates from repeat to repeat and each figure is a median over repeats. Validation macro-F1 is that of the
weights after the last epoch, computed at the run's precision.

Usage: ``python benchmarks/train_throughput.py [--repeats 3] [--train 512] [--val 256] [--scenarios top-2 heads-only]
[--precisions fp32 bf16] [--threads N] [--quick]``.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, PrinterCallback,
                          Trainer, TrainingArguments, get_linear_schedule_with_warmup)

from mtl.encoder.backbones import backbone_path
from mtl.data.examples import TASK_LABELS
from mtl.evaluation.metrics import classification_scores
from mtl.multitask.model import FILL_BATCH_SIZE
from mtl.encoder.precision import autocast, cpu_description
from mtl.multitask.tasks import build_model, load_datasets
from mtl.training.train import TrainConfig, train
from mtl.utils import length_sorted_batches, quiet_libraries, set_seed

LABELS = TASK_LABELS["topic"]
MAX_SEQ_LENGTH, BATCH_SIZE, ENCODER_LR, HEAD_LR, WEIGHT_DECAY, WARMUP = 64, 32, 1e-4, 1e-2, 0.01, 0.1
SCENARIOS = {"top-2": (4, 3), "heads-only": (None, 10)}  # name: (frozen blocks, None = the whole encoder; epochs)
PATHS = ("HF Trainer", "mtl plain", "mtl cached", "ST trainer")


def padding_factors(train_set, val_set) -> tuple[float, float]:
    """Padded / real tokens of shuffled batches of ``BATCH_SIZE`` (mean over 20 shuffles of both sets) and of the
    filling pass's token-sorted batches of ``FILL_BATCH_SIZE`` (each set on its own, as ``train`` fills them)."""
    tokenizer = AutoTokenizer.from_pretrained(backbone_path("minilm"))

    def tokens(examples) -> np.ndarray:
        encoded = tokenizer([ex.text for ex in examples], truncation=True, max_length=MAX_SEQ_LENGTH)
        return np.array([len(ids) for ids in encoded["input_ids"]])

    def padded(lengths: np.ndarray, batches: list[np.ndarray]) -> int:  # tokens after padding each batch
        return sum(len(b) * lengths[b].max() for b in batches)

    train_tokens, val_tokens = tokens(train_set), tokens(val_set)
    both = np.concatenate([train_tokens, val_tokens])
    rng = np.random.default_rng(0)
    shuffles = [rng.permutation(len(both)) for _ in range(20)]
    shuffled = np.mean([padded(both, np.split(order, range(BATCH_SIZE, len(order), BATCH_SIZE)))
                        for order in shuffles]) / both.sum()
    filled = sum(padded(t, length_sorted_batches(t.tolist(), FILL_BATCH_SIZE)) for t in (train_tokens, val_tokens))
    return float(shuffled), filled / both.sum()


def caching_bound(scenario: str, shuffled: float, sorted_: float) -> float:
    """Cached vs Trainer examples/s if only block passes over padded tokens cost time (see the docstring)."""
    if scenario == "top-2":
        return 3 * 10 * shuffled / (4 * sorted_ + 3 * 6 * shuffled)
    return 10 * shuffled / sorted_


class Run:
    """One training run's data and settings; ``seconds`` and ``score`` are filled by the path that runs it."""

    def __init__(self, scenario: str, precision: str, train_set, val_set):
        self.frozen_blocks, self.epochs = SCENARIOS[scenario]
        self.precision, self.train_set, self.val_set = precision, train_set, val_set
        self.steps_per_epoch = len(train_set) // BATCH_SIZE
        self.steps = self.epochs * self.steps_per_epoch

    @property
    def examples(self) -> int:
        return self.steps * BATCH_SIZE

    def macro_f1(self, predicted: np.ndarray) -> float:
        true = [ex.labels["topic"] for ex in self.val_set]
        return classification_scores(true, [LABELS[i] for i in predicted], LABELS)["macro_f1"]


def optimizer_and_schedule(encoder: nn.Module, head: nn.Module, steps: int):
    """mtl's AdamW groups (encoder / head rates, decay on matrices only) and its warm-up + linear decay."""
    groups = []
    for module, lr in ((encoder, ENCODER_LR), (head, HEAD_LR)):
        trainable = [p for p in module.parameters() if p.requires_grad]
        groups += [{"params": [p for p in trainable if p.ndim >= 2], "lr": lr, "weight_decay": WEIGHT_DECAY},
                   {"params": [p for p in trainable if p.ndim < 2], "lr": lr, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]])
    return optimizer, get_linear_schedule_with_warmup(optimizer, int(WARMUP * steps), steps)


def freeze_bert(bert: nn.Module, frozen_blocks: int | None) -> None:
    """Freeze the embeddings and the lowest blocks of a ``BertModel``, or all of it (``None``)."""
    parts = [bert] if frozen_blocks is None else [bert.embeddings, *bert.encoder.layer[:frozen_blocks]]
    for part in parts:
        part.requires_grad_(False)


def trainer_arguments(cls, run: Run, output_dir: str):
    """The same schedule for both HF trainers: max_steps, a validation pass per epoch, nothing saved or logged."""
    return cls(output_dir=output_dir, per_device_train_batch_size=BATCH_SIZE, per_device_eval_batch_size=BATCH_SIZE,
               max_steps=run.steps, eval_strategy="steps", eval_steps=run.steps_per_epoch, save_strategy="no",
               logging_strategy="no", report_to="none", use_cpu=True, bf16=run.precision == "bf16", seed=0,
               dataloader_drop_last=True, max_grad_norm=1.0, disable_tqdm=True)


def mtl_path(cached: bool) -> Callable[[Run], tuple[float, float]]:
    def run_mtl(run: Run) -> tuple[float, float]:
        set_seed(0)
        model = build_model(["topic"], backbone="minilm", max_seq_length=MAX_SEQ_LENGTH)
        freeze = ["encoder"] if run.frozen_blocks is None else [f"bottom:{run.frozen_blocks}"]
        config = TrainConfig(epochs=run.epochs, steps_per_epoch=run.steps_per_epoch, batch_size=BATCH_SIZE,
                             encoder_lr=ENCODER_LR, head_lr=HEAD_LR, weight_decay=WEIGHT_DECAY, warmup_ratio=WARMUP,
                             freeze=freeze, cache_frozen=cached, patience=None, eval_batch_size=BATCH_SIZE,
                             precision=run.precision, progress=False)
        started = time.perf_counter()
        history = train(model, {"topic": run.train_set}, {"topic": run.val_set}, config)
        return time.perf_counter() - started, float(history["val/topic/macro_f1"].iloc[-1])
    return run_mtl


def hf_trainer(run: Run) -> tuple[float, float]:
    path = backbone_path("minilm")
    set_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(LABELS))
    freeze_bert(model.bert, run.frozen_blocks)

    def encoded(examples) -> list[dict]:  # tokenised once, padded per batch by the collator
        return [{**tokenizer(ex.text, truncation=True, max_length=MAX_SEQ_LENGTH),
                 "labels": LABELS.index(ex.labels["topic"])} for ex in examples]

    train_data, val_data = encoded(run.train_set), encoded(run.val_set)
    with tempfile.TemporaryDirectory() as output_dir:
        trainer = Trainer(model=model, args=trainer_arguments(TrainingArguments, run, output_dir),
                          train_dataset=train_data, eval_dataset=val_data,
                          data_collator=DataCollatorWithPadding(tokenizer),
                          optimizers=optimizer_and_schedule(model.bert, model.classifier, run.steps))
        trainer.remove_callback(PrinterCallback)  # no printed metrics per evaluation
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
        predicted = trainer.predict(val_data).predictions.argmax(-1)
    return seconds, run.macro_f1(predicted)


class ClassifierLoss(nn.Module):
    """Cross-entropy of a linear classifier on the sentence embedding: single-sentence classification as a
    sentence-transformers loss (the trainer trains the classifier with the model)."""

    def __init__(self, model, num_labels: int):
        super().__init__()
        self.model, self.classifier = model, nn.Linear(model.get_embedding_dimension(), num_labels)

    def forward(self, sentence_features, labels: torch.Tensor) -> torch.Tensor:
        embeddings = self.model(sentence_features[0])["sentence_embedding"]  # (B, H)
        return F.cross_entropy(self.classifier(embeddings), labels)


def st_trainer(run: Run) -> tuple[float, float] | None:
    try:
        from datasets import Dataset
    except ImportError:
        return None
    from sentence_transformers import (SentenceTransformer, SentenceTransformerTrainer,
                                       SentenceTransformerTrainingArguments)
    set_seed(0)
    model = SentenceTransformer(backbone_path("minilm"), device="cpu")
    model.max_seq_length = MAX_SEQ_LENGTH
    freeze_bert(model[0].auto_model, run.frozen_blocks)
    loss = ClassifierLoss(model, len(LABELS))

    def dataset(examples):
        return Dataset.from_dict({"text": [ex.text for ex in examples],
                                  "label": [LABELS.index(ex.labels["topic"]) for ex in examples]})

    with tempfile.TemporaryDirectory() as output_dir:
        trainer = SentenceTransformerTrainer(
            model=model, args=trainer_arguments(SentenceTransformerTrainingArguments, run, output_dir),
            train_dataset=dataset(run.train_set), eval_dataset=dataset(run.val_set), loss=loss,
            optimizers=optimizer_and_schedule(model, loss.classifier, run.steps))
        trainer.remove_callback(PrinterCallback)
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
    model.eval()
    with torch.inference_mode(), autocast(run.precision, "cpu"):
        embeddings = model.encode([ex.text for ex in run.val_set], batch_size=BATCH_SIZE, convert_to_tensor=True)
        predicted = loss.classifier(embeddings).argmax(-1).numpy()
    return seconds, run.macro_f1(predicted)


RUNNERS = {"HF Trainer": hf_trainer, "mtl plain": mtl_path(cached=False), "mtl cached": mtl_path(cached=True),
           "ST trainer": st_trainer}


def measure(scenario: str, precisions: list[str], train_set, val_set, repeats: int, threads: int) -> dict:
    """{(path, precision): [(seconds, score), ...]} over ``repeats`` rounds in a rotating order."""
    jobs = [(path, precision) for precision in precisions for path in PATHS]
    results: dict[tuple[str, str], list] = {job: [] for job in jobs}
    for r in range(repeats):
        shift = r % len(jobs)
        for path, precision in jobs[shift:] + jobs[:shift]:
            torch.set_num_threads(threads)  # a trainer may change it
            outcome = RUNNERS[path](Run(scenario, precision, train_set, val_set))
            if outcome is not None:
                results[path, precision].append(outcome)
        print(f"  {scenario}, repeat {r + 1}/{repeats}: " + ", ".join(
            f"{p} {q} {results[p, q][-1][0]:.1f} s" for p, q in jobs if results[p, q]), flush=True)
    return results


def report(scenario: str, precisions: list[str], results: dict, examples: int, bound: float) -> None:
    def median_ratio(a: tuple[str, str], b: tuple[str, str]) -> float:  # examples/s of a over b, per repeat
        return float(np.median([tb / ta for (ta, _), (tb, _) in zip(results[a], results[b])]))

    for precision in precisions:
        reference = ("HF Trainer", precision)
        parts = []
        for path in PATHS:
            runs = results[path, precision]
            if not runs:
                parts.append(f"{path}: skipped (needs datasets: pip install -r benchmarks/requirements.txt)")
                continue
            speed = examples / float(np.median([s for s, _ in runs]))
            line = f"{path} {speed:.1f} examples/s"
            if path != reference[0]:
                line += f" = {median_ratio((path, precision), reference):.2f}x"
            if path == "mtl cached":
                line += f" (bound {bound:.2f}x: {100 * median_ratio((path, precision), reference) / bound:.0f} %)"
            parts.append(line + f", val macro-F1 {np.median([score for _, score in runs]):.3f}")
        print(f"{scenario}, {precision}: " + "; ".join(parts), flush=True)
        if results["mtl cached", precision] and results["mtl plain", precision]:
            print(f"{scenario}, {precision}: mtl cached = "
                  f"{median_ratio(('mtl cached', precision), ('mtl plain', precision)):.2f}x mtl plain", flush=True)
    if len(precisions) > 1 and "fp32" in precisions:
        for precision in (p for p in precisions if p != "fp32"):
            ratios = [f"{path} {median_ratio((path, precision), (path, 'fp32')):.2f}x" for path in PATHS
                      if results[path, precision] and results[path, "fp32"]]
            print(f"{scenario}, {precision} vs fp32 examples/s: " + ", ".join(ratios), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds over every path (median reported)")
    parser.add_argument("--train", type=int, default=512, help="training examples (topic); a multiple of 32")
    parser.add_argument("--val", type=int, default=256, help="validation examples (topic; cut to whole batches)")
    parser.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 64 + 32 examples, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.train, args.val, args.repeats = 64, 32, 1
    if args.train % BATCH_SIZE or args.train < BATCH_SIZE:
        parser.error(f"--train must be a positive multiple of the batch size {BATCH_SIZE}, got {args.train}.")
    quiet_libraries()
    threads = args.threads or torch.get_num_threads()
    train_set = load_datasets(["topic"], "train", limit=args.train)["topic"]
    # a whole number of batches: HF's trainers drop a last partial batch in evaluation too (dataloader_drop_last)
    val_size = min(args.val, len(load_datasets(["topic"], "validation")["topic"])) // BATCH_SIZE * BATCH_SIZE
    val_set = load_datasets(["topic"], "validation", limit=val_size)["topic"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{cpu_description()}, torch {torch.__version__} with {threads} threads, load average {load:.1f}; MiniLM, "
          f"topic, {len(train_set)} train + {len(val_set)} validation examples, batch {BATCH_SIZE}, "
          f"median of {args.repeats}", flush=True)
    shuffled, sorted_ = padding_factors(train_set, val_set)
    print(f"padded / real tokens: shuffled batches of {BATCH_SIZE} {shuffled:.2f}, token-sorted batches of "
          f"{FILL_BATCH_SIZE} (the cached bottom) {sorted_:.2f}", flush=True)
    for scenario in args.scenarios:
        results = measure(scenario, args.precisions, train_set, val_set, args.repeats, threads)
        report(scenario, args.precisions, results, Run(scenario, "fp32", train_set, val_set).examples,
               caching_bound(scenario, shuffled, sorted_))


if __name__ == "__main__":
    main()
