"""Tests for mtl.encoder.architectures through everything layer-wise that uses it, on every supported family (BERT, DistilBERT,
RoBERTa, MPNet): tiny random backbones built from transformers config classes (no download), saved as
sentence-transformers folders and loaded through ``build_model``. Selectors, layer learning rates, gradual
unfreezing, the prefix cache (the plain path's losses and gradients), LoRA, save and load; and a backbone of an
unsupported family (ALBERT): whole-encoder freezing and plain training work, layer-wise features are errors."""
from __future__ import annotations

import warnings
from dataclasses import replace

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (AlbertConfig, AlbertModel, BertConfig, BertModel, DistilBertConfig, DistilBertModel,
                          MPNetConfig, MPNetModel, PreTrainedTokenizerFast, RobertaConfig, RobertaModel)

from mtl.encoder.architectures import ARCHITECTURES
from mtl.encoder.encoder import SentenceEncoder
from mtl.multitask.model import is_frozen
from mtl.finetuning.freezing import freeze, select, unfreeze
from mtl.finetuning.lora import add_lora, lora_parameters
from mtl.multitask.model import MultiTaskModel
from mtl.multitask.tasks import build_model, load_datasets
from mtl.finetuning.rates import layer_learning_rates, parameter_groups
from mtl.training.losses import LossWeighting, MultiTaskObjective
from mtl.training.train import TrainConfig, train
from mtl.utils import set_seed
from test_freezing import changed, snapshot, train_gradually
from test_prefix_cache import assert_same, loss_and_grads  # the cached forward must equal the plain one

FAMILIES = ["bert", "distilbert", "roberta", "mpnet"]
HIDDEN, DEPTH, HEADS_PER_BLOCK, FFN = 32, 3, 2, 64
BLOCKS = [f"layer.{i}" for i in range(DEPTH)]
TASKS = ["topic", "ner"]  # a sentence head and a token head
BERT_SPECIALS = dict(pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
ROBERTA_SPECIALS = dict(cls_token="<s>", pad_token="<pad>", sep_token="</s>", unk_token="<unk>", mask_token="<mask>")


@pytest.fixture(scope="module")
def data():
    return load_datasets(TASKS, "train", limit=24), load_datasets(TASKS, "validation", limit=8)


def tiny_tokenizer(texts: list[str], specials: dict[str, str], with_token_types: bool) -> PreTrainedTokenizerFast:
    """A lower-casing WordPiece tokenizer with a 400-piece vocabulary learnt from ``texts``; special tokens in the
    order given, so RoBERTa's and MPNet's padding id is 1, as their position ids expect."""
    tokenizer = Tokenizer(models.WordPiece(unk_token=specials["unk_token"]))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=list(specials.values()))
    tokenizer.train_from_iterator(texts, trainer)
    cls, sep = specials["cls_token"], specials["sep_token"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", special_tokens=[(t, tokenizer.token_to_id(t)) for t in (cls, sep)])
    tokenizer.decoder = decoders.WordPiece()
    names = ["input_ids", "token_type_ids", "attention_mask"] if with_token_types else ["input_ids", "attention_mask"]
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_input_names=names, **specials)


def tiny_backbone(family: str, folder, texts: list[str]) -> str:
    """A randomly initialised ``family`` model (width 32, 3 blocks) saved with its tokenizer as a sentence-transformers
    folder (Transformer + mean Pooling); returns the folder."""
    bert_like = dict(hidden_size=HIDDEN, num_hidden_layers=DEPTH, num_attention_heads=HEADS_PER_BLOCK,
                     intermediate_size=FFN, max_position_embeddings=66)  # RoBERTa and MPNet count from pad id + 1
    specials = ROBERTA_SPECIALS if family in ("roberta", "mpnet") else BERT_SPECIALS
    tokenizer = tiny_tokenizer(texts, specials, with_token_types=family in ("bert", "albert"))
    vocab = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    set_seed(0)
    backbone = {
        "bert": lambda: BertModel(BertConfig(**vocab, **bert_like), add_pooling_layer=False),
        "roberta": lambda: RobertaModel(RobertaConfig(**vocab, **bert_like), add_pooling_layer=False),
        "mpnet": lambda: MPNetModel(MPNetConfig(**vocab, **bert_like), add_pooling_layer=False),
        "distilbert": lambda: DistilBertModel(DistilBertConfig(
            **vocab, dim=HIDDEN, n_layers=DEPTH, n_heads=HEADS_PER_BLOCK, hidden_dim=FFN, max_position_embeddings=66)),
        "albert": lambda: AlbertModel(AlbertConfig(**vocab, embedding_size=16, **bert_like), add_pooling_layer=False),
    }[family]()
    backbone.save_pretrained(folder / "hf")
    tokenizer.save_pretrained(folder / "hf")
    SentenceEncoder.build(str(folder / "hf"), normalize=False).save(folder / "st")
    return str(folder / "st")


@pytest.fixture(scope="module", params=FAMILIES)
def backbone(request, tmp_path_factory, data) -> str:
    texts = [ex.text for split in data for examples in split.values() for ex in examples]
    return tiny_backbone(request.param, tmp_path_factory.mktemp(request.param), texts)


def fresh_model(backbone: str, seed: int = 0) -> MultiTaskModel:
    set_seed(seed)
    return build_model(TASKS, backbone=backbone, max_seq_length=32)


# ---- components and selectors ------------------------------------------------------------------------------
def test_the_saved_folder_is_a_sentence_transformers_model_of_its_family(backbone):
    encoder = SentenceEncoder.load(backbone)
    family = encoder.transformer.auto_model.config.model_type
    assert family in FAMILIES and encoder.architecture is ARCHITECTURES[family]
    assert encoder.hidden_size == HIDDEN and len(encoder.blocks) == DEPTH


def test_components_split_every_backbone_weight_into_embeddings_and_blocks(backbone):
    model = fresh_model(backbone)
    parts = model.components()
    assert list(parts) == ["embeddings", *BLOCKS, "head.topic", "head.ner"]
    owned = [id(p) for name, module in parts.items() if not name.startswith("head.") for p in module.parameters()]
    weights = [id(p) for p in model.encoder.transformer.auto_model.parameters()]
    assert sorted(owned) == sorted(weights)  # each backbone weight in exactly one component (MPNet: the position bias)


@pytest.mark.parametrize("selector, expected", [
    ("encoder", ["embeddings", *BLOCKS]),
    ("backbone", ["embeddings", *BLOCKS]),
    ("heads", ["head.topic", "head.ner"]),
    ("bottom:0", ["embeddings"]),
    ("bottom:2", ["embeddings", "layer.0", "layer.1"]),
    ("top:1", ["layer.2"]),
    ("top:3", BLOCKS),
    ("layer.1", ["layer.1"]),
    ("embeddings", ["embeddings"]),
])
def test_selectors(backbone, selector, expected):
    assert select(fresh_model(backbone), selector) == expected


def test_freezing_by_selector_sets_what_trains_and_the_frozen_depth(backbone):
    model = fresh_model(backbone)
    freeze(model, "bottom:2")
    frozen = {name for name, module in model.components().items() if is_frozen(module)}
    assert frozen == {"embeddings", "layer.0", "layer.1"}
    assert model.encoder.frozen_depth() == 2
    freeze(model, "encoder")
    unfreeze(model, "top:1")
    assert model.encoder.frozen_depth() == 2
    assert model.encoder.blocks[2].training and not model.encoder.blocks[1].training  # frozen parts run in eval mode
    with pytest.raises(ValueError, match="k <= 3"):
        select(model, "top:4")


# ---- discriminative learning rates and gradual unfreezing -------------------------------------------------------
def test_layer_learning_rates_reach_every_component_and_one_step_moves_each_block_by_its_rate(backbone, data):
    model = fresh_model(backbone)
    rates = layer_learning_rates(model, 1e-3, 0.5)
    assert rates == pytest.approx({"layer.2": 1e-3, "layer.1": 5e-4, "layer.0": 2.5e-4, "embeddings": 1.25e-4})
    config = TrainConfig(epochs=1, steps_per_epoch=1, batch_size=16, encoder_lr=1e-3, layer_lr_decay=0.5,
                         warmup_ratio=0.0, weight_decay=0.0, max_grad_norm=1e9, patience=None, progress=False)
    groups = parameter_groups(MultiTaskObjective(model, LossWeighting(TASKS, "fixed")), config)
    rate_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    for name, rate in rates.items():
        params = list(model.components()[name].parameters())
        assert [rate_of[id(p)] for p in params] == pytest.approx([rate] * len(params)), name
    before = snapshot(model)
    train(model, *data, config)
    after = snapshot(model)
    for name in BLOCKS:  # Adam's first step: about lr for every weight with a gradient
        step = max(float((b - a).abs().max()) for a, b in zip(before[name], after[name]))
        assert step == pytest.approx(rates[name], rel=0.02), name


def gradual_run(backbone, data, monkeypatch, cache_frozen: bool):
    """3 epochs: heads, then + the top block, then everything; snapshots and trainable sets at each epoch end."""
    return train_gradually(fresh_model(backbone), *data, monkeypatch, cache_frozen, steps_per_epoch=2)


def test_gradual_unfreezing_trains_the_same_weights_with_and_without_the_cache(backbone, data, monkeypatch):
    cached, snapshots, trainable = gradual_run(backbone, data, monkeypatch, cache_frozen=True)
    heads = {"head.topic", "head.ner"}
    assert trainable == [heads, heads | {"layer.2"}, heads | {"embeddings", *BLOCKS}]
    moved = [changed(snapshots[i], snapshots[i + 1]) - heads for i in range(3)]
    assert moved == [set(), {"layer.2"}, {"embeddings", *BLOCKS}]
    plain, _, _ = gradual_run(backbone, data, monkeypatch, cache_frozen=False)
    for (name, a), b in zip(cached.state_dict().items(), plain.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=name)


# ---- the prefix cache -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("frozen", ["encoder", "bottom:2"])
def test_cached_forward_gives_the_plain_loss_and_gradients(backbone, data, frozen):
    model = fresh_model(backbone)
    freeze(model, frozen)
    with torch.no_grad():  # beyond the initial std of 0.02, so that e.g. a position bias left out would show
        for p in model.encoder.embeddings.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    examples = data[0]["topic"][:6] + data[0]["ner"][:6]
    batches = [sorted(examples, key=lambda ex: len(ex.text))[:5], examples[3:9]]  # unlike the filling passes
    plain = [loss_and_grads(model, batch) for batch in batches]
    model.encoder.use_prefix_cache()
    for start in range(0, len(examples), 4):
        loss_and_grads(model, examples[start : start + 4])
    cache = model.encoder.prefix_cache
    assert cache.depth == (DEPTH if frozen == "encoder" else 2) and len(cache) == cache.misses == len(examples)
    for batch, expected in zip(batches, plain):
        assert_same(expected, loss_and_grads(model, batch))
    assert cache.misses == len(examples)  # served from the cache, nothing recomputed


# ---- LoRA -------------------------------------------------------------------------------------------------------
def test_lora_adapts_the_familys_attention_projections_and_trains_only_adapters_and_heads(backbone, data):
    model = fresh_model(backbone)
    add_lora(model, r=4, alpha=8, dropout=0.0)
    targets = model.encoder.architecture.lora_targets
    adapted = {name.split(".lora_")[0].rsplit(".", 1)[-1] for name, _ in model.named_parameters() if ".lora_" in name}
    assert adapted == set(targets) and lora_parameters(model) == DEPTH * len(targets) * 4 * (HIDDEN + HIDDEN)
    assert model.encoder.frozen_depth() == 0  # adapters in every block: nothing may be cached
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    config = TrainConfig(epochs=1, steps_per_epoch=3, batch_size=8, encoder_lr=1e-2, patience=None, progress=False)
    train(model, *data, config)
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert any(".lora_B." in n for n in moved) and any(n.startswith("heads.") for n in moved)
    assert all(".lora_" in n or n.startswith("heads.") for n in moved)


def test_lora_on_the_top_blocks_caches_the_frozen_bottom_with_the_same_gradients(backbone, data):
    model = fresh_model(backbone)
    add_lora(model, r=4, layers=[1, 2], dropout=0.0)
    assert model.encoder.frozen_depth() == 1
    with torch.no_grad():  # non-zero B, so the adapters matter
        for name, p in model.named_parameters():
            if ".lora_B." in name:
                p.normal_(std=0.05)
    batch = data[0]["topic"][:8]
    plain = loss_and_grads(model, batch)
    model.encoder.use_prefix_cache()
    loss_and_grads(model, batch)  # fills
    assert_same(plain, loss_and_grads(model, batch))
    assert model.encoder.prefix_cache.depth == 1 and model.encoder.prefix_cache.hits == len(batch)


# ---- save and load ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lora", [False, True])
def test_a_fine_tuned_model_saves_and_loads(backbone, data, tmp_path, lora):
    model = fresh_model(backbone)
    if lora:
        add_lora(model, r=4, dropout=0.0)
    config = TrainConfig(epochs=1, steps_per_epoch=2, batch_size=8, encoder_lr=1e-2, patience=None, progress=False,
                         freeze=[] if lora else ["bottom:1"])
    train(model, *data, config)
    model.save(tmp_path / "model")
    loaded = MultiTaskModel.load(tmp_path / "model")
    assert loaded.encoder.architecture is model.encoder.architecture
    assert lora_parameters(loaded) == lora_parameters(model)
    texts = ["Shares rose after the results.", "The minister visited London on Monday."]
    expected = model.eval()(model.encoder.tokenize(texts))
    actual = loaded.eval()(loaded.encoder.tokenize(texts))  # the saved tokenizer too
    for task in TASKS:
        torch.testing.assert_close(actual[task], expected[task], atol=1e-5, rtol=1e-4)


# ---- a backbone of an unsupported family ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def albert(tmp_path_factory, data) -> str:
    texts = [ex.text for split in data for examples in split.values() for ex in examples]
    return tiny_backbone("albert", tmp_path_factory.mktemp("albert"), texts)


SUPPORTED = r"model_type 'albert' is not a supported architecture: bert \(BERT\), roberta \(RoBERTa\), distilbert"


@pytest.mark.parametrize("selector", ["embeddings", "layer.0", "bottom:1", "top:1"])
def test_layer_wise_selectors_on_an_unsupported_family_are_errors_naming_the_supported_ones(albert, selector):
    model = fresh_model(albert)
    assert list(model.components()) == ["backbone", "head.topic", "head.ner"]
    assert select(model, "encoder") == select(model, "backbone") == ["backbone"]
    with pytest.raises(ValueError, match=rf"selector '{selector}' needs .*{SUPPORTED}"):
        select(model, selector)


@pytest.mark.parametrize("config, match", [
    (dict(layer_lr_decay=0.8), "layer_lr_decay=0.8 needs"),
    (dict(epochs=2, freeze=["encoder"], unfreeze_schedule={2: ["top:1"]}), "selector 'top:1' needs"),
])
def test_layer_wise_training_on_an_unsupported_family_fails_before_training(albert, data, config, match):
    model = fresh_model(albert)
    before = snapshot(model)
    with pytest.raises(ValueError, match=rf"{match} .*{SUPPORTED}"):
        train(model, *data, TrainConfig(steps_per_epoch=1, batch_size=8, patience=None, progress=False, **config))
    assert not changed(before, model) and not any(is_frozen(m) for m in model.components().values())


def test_an_unsupported_family_trains_whole_frozen_or_whole(albert, data):
    frozen = fresh_model(albert)
    before = snapshot(frozen)
    config = TrainConfig(epochs=1, steps_per_epoch=2, batch_size=8, head_lr=1e-2, patience=None, progress=False)
    with pytest.warns(UserWarning, match="does not know the blocks of model_type 'albert'"):  # not cached, and says so
        train(frozen, *data, replace(config, freeze=["encoder"]))
    assert changed(before, frozen) == {"head.topic", "head.ner"}
    whole = fresh_model(albert)
    before = snapshot(whole)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing frozen: nothing to cache, nothing to say
        train(whole, *data, config)
    assert changed(before, whole) == {"backbone", "head.topic", "head.ner"}


def test_lora_on_an_unsupported_family_needs_explicit_targets_and_no_cache(albert, data):
    model = fresh_model(albert)
    with pytest.raises(ValueError, match=rf"LoRA's default target_modules needs .*{SUPPORTED}"):
        add_lora(model)
    with pytest.raises(ValueError, match="LoRA on chosen layers needs"):
        add_lora(model, target_modules=["query", "value"], layers=[0])
    add_lora(model, r=4, target_modules=["query", "value"])
    assert lora_parameters(model) > 0
    config = TrainConfig(epochs=1, steps_per_epoch=1, batch_size=8, patience=None, progress=False)
    with pytest.raises(ValueError, match=r"prefix cache of a partly frozen backbone \(train with cache_frozen=False\)"):
        train(model, *data, config)
    train(model, *data, replace(config, cache_frozen=False))
