"""Lower precision: ``quantize(model, "int8" | "bf16")`` gives a new model of the same class that computes less exactly and faster.

- ``"int8"``: dynamic quantization of the transformer blocks' Linear layers (weights stored as int8 with
  one scale per output channel, activations quantized on the fly per call; per-tensor weight scales
  flipped 4 % of the demo model's top classes, per-channel ones about 1 %; PyTorch's fbgemm/x86 kernels through
  ``torch.ao.quantization.quantize_dynamic``). LayerNorms, the patch embedding, positions and the head stay
  float32.
- ``"bf16"``: the blocks' weights in bfloat16 and their matrix products in bfloat16, where the CPU has
  native bfloat16 arithmetic (AVX512-BF16 or AMX; checked, a clear error otherwise). Each LayerNorm,
  Linear and attention layer of a block casts its input to bfloat16; the residual stream between them
  stays float32 (as under autocast), so hidden states, the final norm and the head are float32. Softmax
  attention over 256 tokens or more runs a block of queries at a time (see ``_bf16_attention``).
- ``"fp32"``: an unchanged copy.

The original model is never changed. Everything that runs a model works on the result: ``analyze``,
pruning, merging, ``explore``, ``extract_embeddings``. Gradient explanations (saliency and the like) need
a float model: int8 layers have no gradient.
"""

from __future__ import annotations

import copy
import types
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
                if _blockable(module):
                    module.forward = types.MethodType(_bf16_attention, module)
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


QUERY_BLOCK = 128
"""Queries per block in bf16 attention: a block's logits (heads x 128 x keys) stay in cache."""
MIN_BLOCKED_TOKENS = 2 * QUERY_BLOCK


def _blockable(attn: nn.Module) -> bool:
    """A timm ``Attention`` without a gate: what the blocked path computes."""
    from timm.layers import Attention

    return isinstance(attn, Attention) and getattr(attn, "gate", None) is None


def _bf16_attention(self: nn.Module, x: torch.Tensor, attn_mask: torch.Tensor | None = None,
                    is_causal: bool = False) -> torch.Tensor:
    """timm ``Attention.forward`` with the softmax attention computed a block of queries at a time.

    PyTorch's fused CPU attention runs no faster in bfloat16 than in float32, while bfloat16 matrix
    products do (2x here); blocks of ``QUERY_BLOCK`` queries keep each block's logits in cache. The same
    arithmetic as the unfused path (scaled logits, additive mask, softmax over keys), in bfloat16. Short
    sequences, causal masks, training and gradients take timm's own forward.
    """
    tokens = x.shape[1]
    if tokens < MIN_BLOCKED_TOKENS or is_causal or self.training or torch.is_grad_enabled():
        return type(self).forward(self, x, attn_mask=attn_mask, is_causal=is_causal)
    batch = x.shape[0]
    qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q, k = self.q_norm(q) * self.scale, self.k_norm(k)
    keys = k.transpose(-2, -1)
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        attn_mask = torch.zeros(attn_mask.shape, dtype=q.dtype).masked_fill_(~attn_mask, float("-inf"))
    out = torch.empty_like(q)
    for start in range(0, tokens, QUERY_BLOCK):
        rows = slice(start, start + QUERY_BLOCK)
        logits = q[:, :, rows] @ keys
        if attn_mask is not None:
            logits += attn_mask[..., rows, :] if attn_mask.shape[-2] > 1 else attn_mask
        torch.matmul(torch.softmax(logits, dim=-1), v, out=out[:, :, rows])
    out = self.norm(out.transpose(1, 2).reshape(batch, tokens, self.attn_dim))
    return self.proj_drop(self.proj(out))
