"""Tests for mtl.encoder.prefix_cache: the cached path gives the plain path's losses and gradients (sentence and token heads,
however batches are composed), entries are never served for other frozen weights or depths, and a cache can be
shared across models."""
from __future__ import annotations

import copy

import pytest
import torch

from mtl.encoder import prefix_cache
from mtl.data.examples import Example
from mtl.finetuning.freezing import freeze, unfreeze
from mtl.encoder.prefix_cache import PrefixCache
from mtl.multitask.tasks import build_model, load_datasets
from mtl.training.train import TrainConfig, train
from mtl.utils import set_seed

TASKS = ["topic", "ner"]  # a sentence head and a token head


@pytest.fixture(scope="module")
def examples():
    data = load_datasets(TASKS, "train", limit=12)
    return {"topic": data["topic"], "ner": data["ner"]}


def fresh_model(seed: int = 0):
    set_seed(seed)
    return build_model(TASKS, backbone="scratch", max_seq_length=32)


def loss_and_grads(model, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Summed task losses on a batch and the gradient of every trainable parameter (dropout off: deterministic)."""
    model.eval()
    model.zero_grad()
    features, labels = model.collate(batch)
    loss = sum(model.task_losses(model(features, tasks=list(labels)), labels).values())
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same(plain, cached):
    torch.testing.assert_close(cached[0], plain[0], atol=1e-5, rtol=0)
    assert plain[1].keys() == cached[1].keys() and plain[1]
    for name in plain[1]:
        torch.testing.assert_close(cached[1][name], plain[1][name], atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("frozen", ["encoder", "bottom:2"])
def test_cached_path_gives_the_plain_loss_and_gradients_whatever_the_batching(examples, task, frozen):
    model = fresh_model()
    freeze(model, frozen)
    data = examples[task]
    lengths = [len(model.encoder.tokenizer(ex.text)["input_ids"]) for ex in data]
    assert len(set(lengths)) > 3  # different lengths: padding differs with the batch composition
    lookup = [sorted(data, key=lambda ex: len(ex.text))[:4], data[5:9]]  # batches unlike the filling pass
    plain = [loss_and_grads(model, batch) for batch in lookup]

    model.encoder.use_prefix_cache()
    cache = model.encoder.prefix_cache
    for start in range(0, len(data), 5):  # fill in other batches (other padding widths)
        loss_and_grads(model, data[start : start + 5])
    filled = cache.misses
    assert len(cache) == filled == len({ex.text for ex in data}) and cache.depth == model.encoder.frozen_depth()
    for batch, expected in zip(lookup, plain):
        assert_same(expected, loss_and_grads(model, batch))
    assert cache.misses == filled and cache.hits >= 8  # served from the cache, nothing recomputed


def test_whole_encoder_frozen_runs_no_block(examples, monkeypatch):
    model = fresh_model()
    freeze(model, "encoder")
    model.encoder.use_prefix_cache()
    loss_and_grads(model, examples["topic"][:6])
    calls = []
    for block in model.encoder.blocks:
        monkeypatch.setattr(block, "forward", lambda *a, **k: calls.append(1))
    loss_and_grads(model, examples["topic"][:6])
    assert not calls


def test_changing_the_frozen_set_invalidates_the_cache(examples):
    model = fresh_model()
    freeze(model, "bottom:3")
    model.encoder.use_prefix_cache()
    cache = model.encoder.prefix_cache
    batch = examples["topic"][:6]
    loss_and_grads(model, batch)
    assert (cache.depth, len(cache)) == (3, 6)
    unfreeze(model, "layer.2")  # depth 3 -> 2: the stored hidden states are one block too high
    model.encoder.use_prefix_cache(False)
    plain = loss_and_grads(model, batch)
    model.encoder.use_prefix_cache(True, cache)
    assert_same(plain, loss_and_grads(model, batch))
    assert cache.depth == 2 and cache.misses == 6 and cache.hits == 0


def test_frozen_weights_changed_in_place_invalidate_the_cache(examples):
    model = fresh_model()
    freeze(model, "encoder")
    model.encoder.use_prefix_cache()
    cache = model.encoder.prefix_cache
    batch = examples["topic"][:6]
    loss_and_grads(model, batch)
    with torch.no_grad():  # e.g. load_state_dict of another checkpoint: same depth, same tensors, new values
        model.encoder.blocks[1].output.dense.weight.mul_(1.5)
    cached = loss_and_grads(model, batch)
    assert (cache.misses, cache.hits) == (6, 0)  # cleared (statistics too) and recomputed
    model.encoder.use_prefix_cache(False)
    assert_same(loss_and_grads(model, batch), cached)


def test_different_data_is_computed_not_reused(examples):
    model = fresh_model()
    freeze(model, "encoder")
    model.encoder.use_prefix_cache()
    cache = model.encoder.prefix_cache
    loss_and_grads(model, examples["topic"][:6])
    other = examples["topic"][6:12]
    cached = loss_and_grads(model, other)
    assert cache.misses == 12 and cache.hits == 0
    model.encoder.use_prefix_cache(False)
    assert_same(loss_and_grads(model, other), cached)


def test_a_shared_cache_serves_models_with_the_same_frozen_bottom_only(examples):
    cache = PrefixCache()
    batch = examples["topic"][:6]
    first = fresh_model(seed=0)
    freeze(first, "encoder")
    first.encoder.use_prefix_cache(True, cache)
    assert first.encoder.prefix_cache is cache  # an empty cache is used, not replaced
    loss_and_grads(first, batch)

    second = fresh_model(seed=1)  # same pretrained (here: same saved scratch) backbone, other heads
    freeze(second, "encoder")
    second.encoder.use_prefix_cache(True, cache)
    cached = loss_and_grads(second, batch)
    assert (cache.misses, cache.hits) == (6, 6)  # the second model recomputed nothing
    second.encoder.use_prefix_cache(False)
    assert_same(loss_and_grads(second, batch), cached)

    third = fresh_model(seed=2)
    with torch.no_grad():  # another backbone: same architecture, other weights
        third.encoder.transformer.auto_model.embeddings.word_embeddings.weight.add_(0.01)
    freeze(third, "encoder")
    third.encoder.use_prefix_cache(True, cache)
    cached = loss_and_grads(third, batch)
    assert cache.misses == 6 and cache.hits == 0  # cleared and recomputed, not served from the first backbone
    third.encoder.use_prefix_cache(False)
    assert_same(loss_and_grads(third, batch), cached)

    copied = copy.deepcopy(first)
    assert copied.encoder.prefix_cache is cache  # a deepcopy shares the cache (it checks weights before use)


def test_training_with_the_cache_gives_the_weights_of_plain_training():
    data = load_datasets(TASKS, "train", limit=24)
    val = load_datasets(TASKS, "validation", limit=8)
    results = {}
    for cache_frozen in (True, False):
        model = fresh_model()
        config = TrainConfig(epochs=2, steps_per_epoch=3, batch_size=8, encoder_lr=1e-3, freeze=["bottom:2"],
                             cache_frozen=cache_frozen, patience=None, progress=False)  # dropout on in the top
        history = train(model, data, val, config)
        results[cache_frozen] = model.state_dict(), history
    (cached, cached_history), (plain, plain_history) = results[True], results[False]
    for name in plain:
        torch.testing.assert_close(cached[name], plain[name], atol=1e-5, rtol=1e-4, msg=name)
    losses = [c for c in plain_history if c.startswith("train_loss/")]
    torch.testing.assert_close(torch.tensor(cached_history[losses].values), torch.tensor(plain_history[losses].values),
                               atol=1e-5, rtol=0)


def test_half_precision_storage_halves_the_memory_and_stays_close(examples):
    batch = examples["topic"][:6]
    results = {}
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        model = fresh_model()
        freeze(model, "bottom:2")
        cache = PrefixCache(dtype=dtype)
        model.encoder.use_prefix_cache(True, cache)
        loss_and_grads(model, batch)  # fills
        results[dtype] = cache, loss_and_grads(model, batch)  # served from the stored entries
    (full, exact), (bf16, rounded), (fp16, finer) = results.values()
    tokens = sum(entry.shape[0] for entry in full.store.values())
    assert full.nbytes == tokens * model.encoder.hidden_size * 4 == 2 * bf16.nbytes == 2 * fp16.nbytes
    assert all(entry.dtype == torch.bfloat16 for entry in bf16.store.values()) and len(bf16) == len(full)
    for served in (rounded, finer):
        assert not torch.equal(served[0], exact[0])  # rounded entries were used
        torch.testing.assert_close(served[0], exact[0], atol=1e-2, rtol=0)
        assert all(g.dtype == torch.float32 for g in served[1].values())
    assert f"{full.nbytes / 1e6:,.1f} MB as float32" in repr(full)
    with pytest.raises(ValueError, match="dtype must be one of"):
        PrefixCache(dtype=torch.int8)
    with pytest.raises(ValueError, match="max_bytes must be"):
        PrefixCache(max_bytes=-1)


def test_max_bytes_bounds_the_cache_without_changing_results(examples):
    data = examples["topic"]
    model = fresh_model()
    freeze(model, "bottom:2")
    unbounded = PrefixCache()
    model.encoder.use_prefix_cache(True, unbounded)
    expected = [loss_and_grads(model, data[i : i + 4]) for i in range(0, 12, 4)]
    bound = unbounded.nbytes // 3
    bounded = PrefixCache(max_bytes=bound)
    model.encoder.use_prefix_cache(True, bounded)
    with pytest.warns(RuntimeWarning, match="reached max_bytes"):
        for _ in range(2):  # the second pass recomputes what was not stored
            for start, want in zip(range(0, 12, 4), expected):
                assert_same(want, loss_and_grads(model, data[start : start + 4]))
    assert 0 < bounded.nbytes <= bound and 0 < len(bounded) < len(unbounded)
    assert bounded.unstored == 2 * (len(unbounded) - len(bounded))  # computed in each pass, never stored
    assert bounded.misses == len(unbounded) + bounded.unstored // 2


def test_entries_computed_under_autocast_are_not_served_in_float32(examples):
    model = fresh_model()
    freeze(model, "encoder")
    model.encoder.use_prefix_cache()
    cache = model.encoder.prefix_cache
    batch = examples["topic"][:6]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss_and_grads(model, batch)
    assert cache.precision == torch.bfloat16 and len(cache) == 6
    cached = loss_and_grads(model, batch)
    assert cache.precision == torch.float32 and (cache.misses, cache.hits) == (6, 0)  # cleared and recomputed
    model.encoder.use_prefix_cache(False)
    assert_same(loss_and_grads(model, batch), cached)


def test_the_token_cache_gives_the_tokenizers_batches(examples, monkeypatch):
    model = fresh_model()
    long_text = " ".join(["word"] * 100)  # truncated at max_seq_length
    batches = [examples["topic"][:5], examples["ner"][:5], examples["topic"][3:8]]
    plain = [model.collate(batch) for batch in batches]
    plain.append(model.encoder.tokenize([long_text, "short"]))
    model.encoder.use_prefix_cache()
    calls = []
    tokenizer_type = type(model.encoder.tokenizer)
    original = tokenizer_type.__call__
    monkeypatch.setattr(tokenizer_type, "__call__", lambda self, inputs, **kw: calls.append(len(inputs)) or
                        original(self, inputs, **kw))
    for _ in range(2):  # the second round tokenises nothing
        memo = [model.collate(batch) for batch in batches]
        memo.append(model.encoder.tokenize([long_text, "short"]))
        for (features, labels), (want_features, want_labels) in zip(memo[:3], plain[:3]):
            assert features.keys() == want_features.keys()
            for key in want_features:
                assert torch.equal(features[key], want_features[key]), key
            assert labels.keys() == want_labels.keys() and all(torch.equal(labels[k], want_labels[k]) for k in labels)
        assert all(torch.equal(memo[3][key], plain[3][key]) for key in plain[3])
        assert memo[3]["input_ids"].shape[1] == model.encoder.max_seq_length
    assert calls == [5, 5, 3, 2]  # each distinct input once: the third batch had 3 new texts
    model.encoder.use_prefix_cache(False)
    assert model.encoder.token_cache is None


def test_training_computes_the_frozen_bottom_before_each_epoch_not_in_its_steps(monkeypatch):
    """``train`` fills the cache with the examples the epoch will draw and the validation sets, in length-sorted
    batches (``MultiTaskModel.fill_prefix_cache``): its steps and validation passes then compute nothing."""
    data = load_datasets(TASKS, "train", limit=24)
    val = load_datasets(TASKS, "validation", limit=8)
    model, cache = fresh_model(), PrefixCache()
    computed = {"fill": 0, "step": 0}
    fill, hidden_states = PrefixCache.fill, PrefixCache.hidden_states

    def counting(method, where):
        def wrapper(self, *args):
            before = self.misses
            out = method(self, *args)
            computed[where] += self.misses - before
            return out
        return wrapper
    monkeypatch.setattr(PrefixCache, "fill", counting(fill, "fill"))
    monkeypatch.setattr(PrefixCache, "hidden_states", counting(hidden_states, "step"))
    config = TrainConfig(epochs=2, steps_per_epoch=2, batch_size=8, freeze=["bottom:2"], patience=None, progress=False)
    train(model, data, val, config, prefix_cache=cache)
    assert computed["step"] == 0 and computed["fill"] == len(cache) > 0
    drawn_at_most = 2 * 2 * 8 + sum(map(len, val.values()))  # 2 epochs x 2 steps x 8 examples, and validation
    assert len(cache) <= drawn_at_most < sum(map(len, data.values())) + sum(map(len, val.values()))  # not all data


def test_within_an_unchanged_bottom_the_frozen_tensors_are_checked_once_per_block(examples, monkeypatch):
    """``SentenceEncoder.frozen_bottom_unchanged`` (a training epoch): the frozen depth and the cache's check of the
    frozen tensors run at the block's first forward pass; a change made between blocks is still noticed."""
    model = fresh_model()
    freeze(model, "encoder")
    model.encoder.use_prefix_cache()
    cache, batch = model.encoder.prefix_cache, examples["topic"][:6]
    checks, depths = [], []
    frozen_tensors, frozen_depth = prefix_cache._frozen_tensors, type(model.encoder).frozen_depth
    monkeypatch.setattr(prefix_cache, "_frozen_tensors", lambda *a: checks.append(1) or frozen_tensors(*a))
    monkeypatch.setattr(type(model.encoder), "frozen_depth", lambda self: depths.append(1) or frozen_depth(self))
    with model.encoder.frozen_bottom_unchanged():
        expected = [loss_and_grads(model, batch) for _ in range(3)]
    assert len(checks) == len(depths) == 1 and cache.misses == 6
    for _ in range(2):  # outside a block: checked at every forward pass
        loss_and_grads(model, batch)
    assert len(checks) == len(depths) == 3
    with torch.no_grad():  # between blocks, e.g. another checkpoint loaded
        model.encoder.blocks[0].output.dense.weight.mul_(1.5)
    with model.encoder.frozen_bottom_unchanged():
        changed = loss_and_grads(model, batch)
        assert (cache.misses, cache.hits) == (6, 0)  # the block's first check cleared the stale entries
        assert_same(changed, loss_and_grads(model, batch))
    assert len(checks) == len(depths) == 4 and model.encoder.unchanged_bottom is None
    assert not torch.allclose(changed[0], expected[0][0])


def test_training_fills_each_example_once_per_frozen_depth(monkeypatch):
    """Epochs over examples already in the cache hand none of them to the filling pass again, until unfreezing
    changes the frozen depth (and so every entry)."""
    data = load_datasets(["topic"], "train", limit=16)
    val = load_datasets(["topic"], "validation", limit=8)
    model = build_model(["topic"], backbone="scratch", max_seq_length=32)
    handed: list[tuple[int, int]] = []  # (frozen depth, id of the example)
    fill = type(model).fill_prefix_cache

    def recording(self, examples, *args):
        handed.extend((self.encoder.cached_depth(), id(ex)) for ex in examples)
        return fill(self, examples, *args)
    monkeypatch.setattr(type(model), "fill_prefix_cache", recording)
    config = TrainConfig(epochs=4, batch_size=8, freeze=["encoder"], unfreeze_schedule={3: ["top:1"]},
                         patience=None, progress=False)
    train(model, data, val, config)
    distinct = {id(ex) for ex in [*data["topic"], *val["topic"]]}
    assert len(handed) == len(set(handed)) == 2 * len(distinct)  # once at the whole depth, once one block lower
    assert {depth for depth, _ in handed} == {len(model.encoder.blocks), len(model.encoder.blocks) - 1}


def test_the_filling_pass_batches_by_token_count_not_characters(monkeypatch):
    """Character counts misorder texts of long words and texts of many short ones; the filling pass sorts by tokens,
    so each batch is padded to its own longest row only."""
    model = fresh_model()
    freeze(model, "encoder")
    model.encoder.use_prefix_cache()
    texts = ["a b c d e f g h", "extraordinarily", "a b", "telecommunications", "a b c d e", "ok"]
    tokens = [len(model.encoder.tokenizer(text)["input_ids"]) for text in texts]
    chars_order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    assert [tokens[i] for i in chars_order] != sorted(tokens, reverse=True)  # characters would misorder them
    batches = []
    fill = PrefixCache.fill
    monkeypatch.setattr(PrefixCache, "fill", lambda self, encoder, features, depth: batches.append(
        features["attention_mask"]) or fill(self, encoder, features, depth))
    model.fill_prefix_cache([Example(text, {"topic": "tech"}) for text in texts], batch_size=2)
    lengths = [row for mask in batches for row in mask.sum(1).tolist()]
    assert lengths == sorted(tokens, reverse=True)
    assert all(mask.shape[1] == mask.sum(1).max() for mask in batches)  # no column of padding only
    assert len(model.encoder.prefix_cache) == len(texts)
