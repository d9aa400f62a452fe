"""Int8 inference on CPU: dynamic int8 quantisation of every linear layer of an encoder.

``quantize_encoder(encoder)`` returns a new encoder (the original is untouched) whose ``nn.Linear`` layers run
as int8 GEMMs (fbgemm): weights are quantised once, per output channel; activations are quantised on the fly,
with one scale per batch (so a text's int8 embedding moves a little with the other texts in its batch). Attention
scores, softmax, GELU and LayerNorm stay in float32. No data is needed.

Two choices, measured on all-MiniLM-L6-v2 against its float32 embeddings (cosine over 300 sentiment test sentences;
``benchmarks/encode.py`` prints the same kind of figures for 2,000):
  - Full 8-bit activations. torch's dynamic linear uses 7 bits (``reduce_range=True``) so that the AVX2 kernel's
    16-bit sums of two products cannot saturate: mean cosine 0.967, minimum 0.888. With 8 bits (``Int8Linear``):
    mean 0.990, minimum 0.960. With real weights saturation is rare; the halved step is not.
  - Optional SmoothQuant (Xiao et al., ICML 2023), with ``calibration_texts``: a few input channels of each
    linear layer carry much larger activations than the rest, and one scale per batch cannot resolve both.
    Dividing channel j by ``s_j = max|X_j|**alpha / max|W_j|**(1 - alpha)`` and multiplying the weight's
    column j by ``s_j`` leaves the product unchanged and moves the outliers into the weights (quantised per
    channel). Calibrated on 256 sentiment training sentences it raised the cosine on sentiment sentences (mean
    0.994, minimum 0.985) but fitted their domain: on the Lee news documents it lost 1.2 points of Spearman
    against float32 (plain int8: 0.1). So it is opt-in, for a few hundred texts from the domain you will encode.
    In a post-LayerNorm BERT the scaled inputs also feed residual connections, so the division cannot be folded
    into the LayerNorm and runs as one multiply before each linear layer.

The kernels come from ``torch.ao.quantization.quantize_dynamic``. torch marks ``torch.ao.quantization`` as
deprecated in favour of torchao (its warning says "removed in 2.10"; torch 2.13 still ships it and it works), but
it is the route with fast int8 CPU kernels in eager mode: torchao (not a dependency) computes int8 matmuls on CPU
with ``torch._int_mm`` and counts on ``torch.compile`` to make them fast, and eager ``torch._int_mm`` measured ~25x
slower than a float32 matmul on an AVX2 CPU without VNNI. The deprecation warnings are silenced here, in this one
place; if a later torch drops the module, importing ``mtl.extras.inference.quantize`` fails with torch's own error.

A quantised encoder cannot be saved (its packed int8 weights are not a sentence-transformers folder): save the
float32 encoder and quantise after loading, which takes a second.
"""
from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear
from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

from mtl.data.examples import check_texts

if TYPE_CHECKING:  # only for annotations: mtl.encoder.encoder imports this module
    from mtl.encoder.encoder import SentenceEncoder

SMOOTHING_ALPHA = 0.8  # SmoothQuant: how much of the outliers' range moves into the weights (0: none, 1: all)


class Int8Linear(DynamicQuantizedLinear):
    """fbgemm's dynamic int8 linear layer, with activations quantised to the full 8 bits (torch keeps 7)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(x, self._packed_params._packed_params, reduce_range=False).to(x.dtype)


class SmoothedLinear(nn.Module):
    """``linear(x * inv_scale)``: a linear layer whose weight columns were multiplied by ``1 / inv_scale``."""

    def __init__(self, linear: nn.Module, inv_scale: torch.Tensor):
        super().__init__()
        self.linear = linear
        self.register_buffer("inv_scale", inv_scale)  # (in_features,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x * self.inv_scale)


def quantize_encoder(
    encoder: SentenceEncoder,
    calibration_texts: Sequence[str] | None = None,
    alpha: float = SMOOTHING_ALPHA,
    batch_size: int = 32,
) -> SentenceEncoder:
    """A CPU int8 copy of ``encoder``; with ``calibration_texts``, SmoothQuant-scaled first (strength ``alpha``)."""
    if getattr(encoder, "is_quantized", False):
        raise ValueError("This encoder is already quantised; quantise the float32 encoder instead.")
    if calibration_texts is not None:
        check_texts(calibration_texts)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}.")
    quantized = copy.deepcopy(encoder).to("cpu").eval()  # fbgemm int8 kernels are CPU-only
    quantized.prefix_cache = quantized.token_cache = None
    if calibration_texts is not None:
        smooth_linears(quantized, calibration_texts, alpha, batch_size)
    with warnings.catch_warnings():  # torch.ao's deprecation notice and its quantized-tensor UserWarning
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_(tensor|channel).*", category=UserWarning)
        quantize_dynamic(quantized.model, {nn.Linear: per_channel_dynamic_qconfig}, mapping={nn.Linear: Int8Linear},
                         inplace=True)
    for parameter in quantized.parameters():  # what is left in float32 (embeddings, LayerNorms) is not trained
        parameter.requires_grad_(False)
    quantized.is_quantized = True
    return quantized


def input_absmax(encoder: SentenceEncoder, texts: Sequence[str], batch_size: int = 32) -> dict[str, torch.Tensor]:
    """{linear layer name: (in_features,) largest |input| per channel while ``encoder.encode(texts)`` runs}.

    Padding positions count too: they go through the linear layers at run time, so their values share the
    per-batch activation scale with the real tokens.
    """
    linears = {name: m for name, m in encoder.model.named_modules() if isinstance(m, nn.Linear)}
    absmax: dict[str, torch.Tensor] = {}

    def record(name: str):
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            x = inputs[0].detach().abs().reshape(-1, inputs[0].shape[-1]).amax(0)  # (in_features,)
            absmax[name] = x if name not in absmax else torch.maximum(absmax[name], x)
        return hook

    handles = [m.register_forward_hook(record(name)) for name, m in linears.items()]
    try:
        encoder.encode(list(texts), batch_size=batch_size, show_progress_bar=False)  # length-sorted, as at run time
    finally:
        for handle in handles:
            handle.remove()
    return absmax


def smooth_linears(encoder: SentenceEncoder, texts: Sequence[str], alpha: float, batch_size: int = 32) -> None:
    """Wrap every ``nn.Linear`` of ``encoder`` (in place) in a ``SmoothedLinear`` with SmoothQuant's scales."""
    absmax = input_absmax(encoder, texts, batch_size)
    for name, x_max in absmax.items():
        parent_name, _, child = name.rpartition(".")
        parent = encoder.model.get_submodule(parent_name)
        linear = getattr(parent, child)
        w_max = linear.weight.detach().abs().amax(0)  # (in_features,): largest weight in each input column
        scale = (x_max.clamp(min=1e-5) ** alpha / w_max.clamp(min=1e-5) ** (1 - alpha)).clamp(min=1e-5)
        with torch.no_grad():
            linear.weight.mul_(scale)  # column j times s_j ...
        setattr(parent, child, SmoothedLinear(linear, 1.0 / scale))  # ... input channel j divided by s_j
