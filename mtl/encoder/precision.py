"""Numeric precision of the forward pass: float32, or bfloat16 / float16 autocast, or "auto".

Under ``torch.autocast`` matrix products run in the lower precision while numerically touchy operations (LayerNorm,
softmax cross-entropy, reductions) stay in float32, so weights, optimiser and the outputs of ``encode`` / ``predict``
stay float32. bfloat16 keeps float32's exponent range with an 8-bit mantissa; float16 overflows above 65,504, so
training in it needs a gradient scaler (Accelerate adds one) and it is offered on CUDA only.

bfloat16 is fast only where the hardware multiplies in it: x86 CPUs with AMX or AVX512-BF16, CUDA GPUs from Ampere
on; elsewhere it is emulated through float32, which is slower. "auto" therefore means bfloat16 where it is native
and float32 everywhere else.
"""
from __future__ import annotations

import contextlib

import torch
from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import parse_flag_from_env

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
NATIVE_BF16_CPU_FEATURES = ("amx_bf16", "avx512_bf16")  # keys of torch.cpu.get_capabilities() (cpuinfo)
ACCELERATE_MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}  # Accelerator(mixed_precision=...)


def native_bf16(device: str | torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 natively (CPU: AMX or AVX512-BF16; CUDA: bf16 without emulation)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        capabilities = torch.cpu.get_capabilities()
        return any(capabilities.get(feature, False) for feature in NATIVE_BF16_CPU_FEATURES)
    return False


def check_precision_name(precision: str) -> None:
    """An unknown precision is an error naming the valid ones."""
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; valid precisions are {PRECISIONS}.")


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """"fp32", "bf16" or "fp16" for ``precision`` on ``device``: "auto" becomes bf16 where it is native, else fp32.
    An unknown name, or fp16 off CUDA, is an error naming the valid choices."""
    check_precision_name(precision)
    device = torch.device(device)
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"precision 'fp16' needs a CUDA device, not {device.type!r}: on CPU use 'bf16' (or 'auto').")
    return precision


def autocast(precision: str, device: str | torch.device) -> contextlib.AbstractContextManager:
    """A context running the forward pass in ``precision`` on ``device`` (nothing to do for float32)."""
    device = torch.device(device)
    resolved = resolve_precision(precision, device)
    return contextlib.nullcontext() if resolved == "fp32" else torch.autocast(device.type, dtype=DTYPES[resolved])


def autocast_dtype(device: str | torch.device) -> torch.dtype:
    """The dtype matrix products run in at this point on ``device``: the autocast dtype if autocast is on, else
    float32 (used to keep results computed in different precisions apart, e.g. in ``mtl.encoder.prefix_cache``)."""
    device_type = torch.device(device).type
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else torch.float32


def accelerate_device() -> torch.device:
    """The device an ``Accelerator`` created now will use, without creating the process state (which must be left to
    Accelerate: it also reads ``ACCELERATE_USE_CPU`` and its own arguments): CUDA if present and not switched off."""
    if PartialState._shared_state:  # already set up, e.g. by an earlier run in this process
        return PartialState().device
    use_cuda = torch.cuda.is_available() and not parse_flag_from_env("ACCELERATE_USE_CPU")
    return torch.device("cuda" if use_cuda else "cpu")


def accelerate_mixed_precision(precision: str) -> str:
    """Accelerate's ``mixed_precision`` ("no", "bf16", "fp16") for ``precision`` on this process's device.

    Accelerate keeps one mixed precision per process (``AcceleratorState`` is a singleton that refuses a change), but
    here it is a setting of each training run: when a run asks for another one than the previous run, the state is
    reset first, as transformers' ``TrainingArguments`` does before each ``Trainer``.
    """
    mixed_precision = ACCELERATE_MIXED_PRECISION[resolve_precision(precision, accelerate_device())]
    if AcceleratorState._shared_state.get("_mixed_precision", mixed_precision) != mixed_precision:
        AcceleratorState._reset_state()  # the process state (devices, process group) is kept
    return mixed_precision


def cpu_description() -> str:
    """The CPU's name and the extensions the fast paths depend on (int8: VNNI / AMX-INT8; bf16: AVX512-BF16 / AMX)."""
    capabilities = torch.cpu.get_capabilities()
    name = str(capabilities.get("cpu_name") or "unknown CPU")
    try:  # Linux names the model in full
        with open("/proc/cpuinfo") as cpuinfo:
            name = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), name)
    except OSError:
        pass
    features = [f for f in ("avx2", "avx512_f", "avx_vnni", "avx512_vnni", "amx_int8", *NATIVE_BF16_CPU_FEATURES)
                if capabilities.get(f, False)]
    return f"{name} ({', '.join(features) or 'no AVX2'}; bf16 {'native' if native_bf16('cpu') else 'emulated'})"
