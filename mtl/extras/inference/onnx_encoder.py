"""Fast CPU inference: the encoder's backbone exported to ONNX and run by ONNX Runtime, optionally in int8.

``OnnxSentenceEncoder.export(encoder)`` exports the transformer backbone of a ``SentenceEncoder`` with torch's
own exporter (``torch.onnx.export(dynamo=True)``, dynamic batch and sequence axes) and, with ``int8=True`` (the
default), quantises its weights with ONNX Runtime's dynamic quantiser (int8 weights per output channel, activations
quantised on the fly). Only the backbone goes through ONNX: pooling, the projection, LayerNorm and L2
normalisation are the encoder's own sentence-transformers modules, run in torch on the backbone's output, so the
two paths cannot disagree on anything but the transformer itself.

Why this route next to ``mtl.extras.inference.quantize`` (torch int8) and sentence-transformers' ``backend="onnx"``:
  - torch runs the model op by op in eager mode; ONNX Runtime first applies its graph optimisations (operator
    fusion, at its default level ``ORT_ENABLE_ALL``) to the whole graph, and ``folder=`` keeps a file that any
    ONNX Runtime deployment can serve.
  - sentence-transformers' ONNX backend exports through ``optimum-onnx``, whose releases pin
    ``transformers<4.58``; this project uses transformers 5.x. torch's exporter and onnxruntime need no such pin.

The session is for inference only (no gradients, no training).
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from mtl.data.examples import check_texts
from mtl.encoder.encoder import SentenceEncoder
from mtl.utils import length_sorted_batches


class _LastHiddenState(nn.Module):
    """The backbone as a function of token ids and mask only, returning (B, T, H) token embeddings."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kwargs = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        return self.backbone(input_ids=input_ids, attention_mask=attention_mask, **kwargs).last_hidden_state


class OnnxSentenceEncoder:
    """``encode(texts)`` like ``SentenceEncoder.encode``, with the backbone run by an ONNX Runtime session."""

    def __init__(self, encoder: SentenceEncoder, model_path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.log_severity_level = 3  # errors only
        self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.tokenizer = encoder.tokenizer
        self.token_counts = encoder.token_counts  # the batching rule of every pass: by token count
        self.max_seq_length = encoder.max_seq_length
        self.head = nn.Sequential(*list(encoder.model)[1:]).to("cpu").eval()  # Pooling, [Dense], [LayerNorm], ...
        self.dim = encoder.dim

    @classmethod
    def export(
        cls,
        encoder: SentenceEncoder,
        folder: str | Path | None = None,
        int8: bool = True,
        threads: int | None = None,
    ) -> OnnxSentenceEncoder:
        """Export ``encoder``'s backbone (and quantise it if ``int8``); files go to ``folder`` if given (kept:
        ``model.onnx``, ``model.int8.onnx``), else to a temporary folder removed once the session has loaded."""
        if encoder.is_int8:
            raise ValueError("Export the float32 encoder: this one is already quantised by torch "
                             "(mtl.extras.inference.quantize); ONNX Runtime quantises the exported model itself with "
                             "int8=True.")
        with contextlib.ExitStack() as stack:
            out = Path(folder) if folder is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
            out.mkdir(parents=True, exist_ok=True)
            path = export_backbone(encoder, out / "model.onnx")
            if int8:
                path = quantize_onnx(path, out / "model.int8.onnx")
            return cls(encoder, path, threads)

    def encode(self, texts: Sequence[str], batch_size: int = 64, show_progress_bar: bool | None = None) -> np.ndarray:
        """Embed texts, shape (n, D), float32, in input order, in batches sorted by token count (less padding); a progress
        bar from 21 batches on unless ``show_progress_bar`` says otherwise."""
        check_texts(texts)
        batches = length_sorted_batches(self.token_counts(texts), batch_size)
        show = len(batches) > 20 if show_progress_bar is None else show_progress_bar
        embeddings = torch.cat([self._embed_batch([texts[i] for i in idx])
                                for idx in tqdm(batches, desc="encode (onnx)", disable=not show)])  # (n, D), sorted
        return embeddings[np.argsort(np.concatenate(batches))].numpy()  # back to input order

    @torch.inference_mode()
    def _embed_batch(self, texts: list[str]) -> torch.Tensor:
        """(b, D): the backbone in ONNX Runtime, then the encoder's pooling etc. in torch."""
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_seq_length,
                               return_tensors="np")
        feeds = {name: batch[name].astype(np.int64) for name in self.input_names}
        tokens = self.session.run(None, feeds)[0]  # (b, T, H)
        features = {"token_embeddings": torch.from_numpy(tokens),
                    "attention_mask": torch.from_numpy(feeds["attention_mask"])}
        return self.head(features)["sentence_embedding"]  # (b, D)


def export_backbone(encoder: SentenceEncoder, path: Path) -> Path:
    """Write ``encoder``'s transformer as an ONNX graph with dynamic batch and sequence axes; returns ``path``."""
    backbone = _LastHiddenState(encoder.transformer.auto_model).to("cpu").eval()
    example = encoder.tokenizer(["an example sentence", "a second, longer example sentence"], padding=True,
                                return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in example]
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            backbone,
            (),
            str(path),
            kwargs={n: example[n] for n in names},
            input_names=names,
            output_names=["token_embeddings"],
            dynamic_shapes={n: {0: batch, 1: seq} for n in names},
            dynamo=True,
            external_data=False,
        )
    return path


def quantize_onnx(source: Path, target: Path) -> Path:
    """ONNX Runtime's dynamic int8 quantisation: int8 weights per output channel, activations per call."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)
    return target


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter and the quantiser print progress and warnings; keep notebooks and test logs clean."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir", "root")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
