"""Lower precision: ``quantize(model, "int8" | "bf16")`` gives a new model of the same class that computes less exactly and faster.

- ``"int8"``: dynamic quantization of the transformer blocks' Linear layers (weights stored as int8 with
  one scale per output channel, activations quantized on the fly per call; per-tensor weight scales
  flipped 4 % of the demo model's top classes, per-channel ones about 1 %; PyTorch's fbgemm/x86 kernels through
  ``torch.ao.quantization.quantize_dynamic``). LayerNorms, the patch embedding, positions and the head stay
  float32.
- ``"bf16"``: the blocks' weights in bfloat16 and their matrix products in bfloat16, where the CPU has
  native bfloat16 arithmetic (AVX512-BF16 or AMX; checked, a clear error otherwise). Each LayerNorm,
  Linear and attention layer of a block casts its input to bfloat16; the residual stream between them
  stays float32 (as under autocast), so hidden states, the final norm and the head are float32.
- ``"fp32"``: an unchanged copy.

The original model is never changed. Everything that runs a model works on the result: ``analyze``,
pruning, merging, ``explore``, ``extract_embeddings``. Gradient explanations (saliency and the like) need
a float model: int8 layers have no gradient.
"""

from __future__ import annotations

import copy
import warnings
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from torch import nn

from ..errors import ConfigError

if TYPE_CHECKING:
    from .base import SpectrogramModelMixin

M = TypeVar("M", bound="SpectrogramModelMixin")

PRECISIONS: tuple[str, ...] = ("fp32", "int8", "bf16")


def precision_of(model: Any) -> str:
    """``"fp32"``, ``"int8"`` or ``"bf16"``: what :func:`quantize` made of ``model`` (fp32 for any other)."""
    return getattr(model, "precision", "fp32")


def bf16_support() -> str | None:
    """None when this CPU computes in bfloat16 natively, else the reason it does not."""
    capability = torch.backends.cpu.get_cpu_capability()
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    if check is None:
        return f"this PyTorch build cannot tell whether the CPU supports bfloat16 (CPU capability {capability})"
    if not check():
        return f"this CPU has no native bfloat16 arithmetic (AVX512-BF16 or AMX; PyTorch reports CPU capability {capability})"
    return None


def int8_support() -> str | None:
    """None when dynamic int8 quantization runs here, else the reason it does not."""
    engines = getattr(torch.backends.quantized, "supported_engines", [])
    if not any(e in engines for e in ("x86", "fbgemm", "qnnpack", "onednn")):
        return f"this PyTorch build has no quantized engine (supported: {engines})"
    try:
        from torch.ao.quantization import quantize_dynamic  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the PyTorch release
        return "this PyTorch release no longer has torch.ao.quantization.quantize_dynamic"
    return None


def quantize(model: M, precision: str) -> M:
    """A copy of ``model`` computing in ``precision`` (``"int8"``, ``"bf16"`` or ``"fp32"``), in eval mode.

    Returns a new model of the same class; ``model`` is unchanged. Raises ValueError for an unknown
    precision, ConfigError when this machine cannot compute in it or ``model`` is already quantized.
    """
    if not isinstance(precision, str) or precision.lower() not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    precision = precision.lower()
    if not hasattr(model, "backbone") or not hasattr(model.backbone, "blocks"):
        raise ConfigError(f"quantize takes an audiovis model (ASTModel, ViTModel), got {type(model).__name__}")
    current = precision_of(model)
    if current != "fp32":
        raise ConfigError(f"the model is already {current}; quantize the float32 model instead")
    reason = bf16_support() if precision == "bf16" else int8_support() if precision == "int8" else None
    if reason:
        raise ConfigError(f"cannot compute in {precision}: {reason}")
    new = copy.deepcopy(model).eval()
    blocks = new.backbone.blocks
    if precision == "int8":
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        with warnings.catch_warnings():  # torch.ao's deprecation notices; the kernels are what runs
            warnings.simplefilter("ignore")
            quantize_dynamic(blocks, {nn.Linear: per_channel_dynamic_qconfig}, inplace=True)
        from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

        for module in blocks.modules():
            if isinstance(module, DynamicLinear):
                module.register_forward_pre_hook(_refuse_gradient)
    elif precision == "bf16":
        blocks.to(torch.bfloat16)
        for module in blocks.modules():
            if isinstance(module, (nn.Linear, nn.LayerNorm)):
                module.register_forward_pre_hook(_cast_input)
            elif hasattr(module, "qkv") and hasattr(module, "num_heads"):
                module.register_forward_pre_hook(_cast_attention_input, with_kwargs=True)
    new.precision = precision
    return new


def _refuse_gradient(module: nn.Module, args: tuple) -> None:
    x = args[0] if args else None
    if torch.is_grad_enabled() and isinstance(x, torch.Tensor) and x.requires_grad:
        raise ConfigError(
            "int8 layers have no gradient: gradient explanations (saliency, relevance, integrated gradients) "
            "need the float32 model or quantize(model, 'bf16')"
        )


def _cast_input(module: nn.Module, args: tuple) -> tuple | None:
    x = args[0]
    dtype = module.weight.dtype
    if isinstance(x, torch.Tensor) and x.dtype != dtype and x.is_floating_point():
        return (x.to(dtype),) + tuple(args[1:])
    return None


def _cast_attention_input(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
    dtype = module.qkv.weight.dtype
    changed = False
    if args and isinstance(args[0], torch.Tensor) and args[0].dtype != dtype:
        args = (args[0].to(dtype),) + tuple(args[1:])
        changed = True
    mask = kwargs.get("attn_mask")
    if isinstance(mask, torch.Tensor) and mask.is_floating_point() and mask.dtype != dtype:
        kwargs = {**kwargs, "attn_mask": mask.to(dtype)}
        changed = True
    return (args, kwargs) if changed else None
