"""Int8 inference on CPU: dynamic int8 quantisation of every linear layer of an encoder or a multi-task model.

``quantize(encoder)`` returns a new encoder (the original is untouched) whose ``nn.Linear`` layers run as int8
GEMMs (fbgemm): weights are quantised once, per output channel; activations are quantised on the fly, with one
scale per batch (so a text's int8 embedding moves a little with the other texts in its batch). Attention scores,
softmax, GELU and LayerNorm stay in float32. ``quantize(model)`` does the same to a ``MultiTaskModel``'s encoder and
copies its heads in float32. No data is needed.

Two choices:
  - Full 8-bit activations (``Int8Linear``). torch's dynamic linear keeps 7 bits (``reduce_range=True``) so that
    the AVX2 kernel's 16-bit sums of two products cannot saturate; with real weights saturation is rare, while the
    halved step costs accuracy on every input.
  - Optional SmoothQuant (Xiao et al., ICML 2023), with ``calibration_texts``: a few input channels of each linear
    layer carry much larger activations than the rest, and one scale per batch cannot resolve both. Dividing
    channel j by ``s_j = max|X_j|**alpha / max|W_j|**(1 - alpha)`` and multiplying the weight's column j by ``s_j``
    leaves the product unchanged and moves the outliers into the weights (quantised per channel). The scales fit
    the calibration texts' domain and can lose accuracy on others, so it is opt-in: pass a few hundred texts from
    the domain you will encode. In a post-LayerNorm BERT the scaled inputs also feed residual connections, so the
    division cannot be folded into the LayerNorm and runs as one multiply before each linear layer.

The kernels come from ``torch.ao.quantization.quantize_dynamic``: torch marks the module as deprecated in favour of
torchao, but it is the route with fast int8 CPU kernels in eager mode (torchao relies on ``torch.compile`` for
speed). Its deprecation warnings are silenced here, in this one place.

An int8 copy runs on CPU in float32 precision only and cannot be saved (its packed int8 weights are not a
sentence-transformers folder): save the float32 encoder or model and quantise after loading.
"""
from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from typing import TypeVar

import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear
from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

from mtl.data.examples import check_texts
from mtl.encoder.encoder import SentenceEncoder
from mtl.multitask.model import MultiTaskModel

SMOOTHING_ALPHA = 0.8  # SmoothQuant: how much of the outliers' range moves into the weights (0: none, 1: all)
Quantizable = TypeVar("Quantizable", SentenceEncoder, MultiTaskModel)


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


def quantize(
    target: Quantizable,
    calibration_texts: Sequence[str] | None = None,
    alpha: float = SMOOTHING_ALPHA,
    batch_size: int = 32,
) -> Quantizable:
    """A CPU int8 copy of a ``SentenceEncoder``, or of a ``MultiTaskModel`` (its encoder int8, its heads float32),
    in eval mode; ``target`` is left unchanged. With ``calibration_texts``, SmoothQuant-scaled first (strength
    ``alpha``)."""
    if isinstance(target, MultiTaskModel):
        encoder = quantize(target.encoder, calibration_texts, alpha, batch_size)
        model = copy.deepcopy(target, memo={id(target.encoder): encoder})  # everything else copied as it is
        return model.to("cpu").eval()
    if target.is_int8:
        raise ValueError("This encoder is already quantised; quantise the float32 encoder instead.")
    if calibration_texts is not None:
        check_texts(calibration_texts)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}.")
    quantized = copy.deepcopy(target).to("cpu").eval()  # fbgemm int8 kernels are CPU-only
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
