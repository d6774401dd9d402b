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
  attention over 256 tokens or more runs a block of queries at a time (see ``_bf16_attention``); without
  gradients the Linear layers multiply by weights packed once in oneDNN's layout, the MLP's GELU fused
  into its first product (see :func:`packed_linear`). The model pickles and saves as any other.
- ``"fp32"``: an unchanged copy.

The original model is never changed. Everything that runs a model works on the result: ``analyze``,
pruning, merging, ``explore``, ``extract_embeddings``. Gradient explanations (saliency and the like) need
a float model: int8 layers have no gradient.
"""

from __future__ import annotations

import copy
import types
import warnings
import weakref
from typing import TYPE_CHECKING, Any, TypeVar

import torch
import torch.nn.functional as F
from timm.layers import Attention, Mlp
from torch import nn

from ..errors import ConfigError
from .base import check_model

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
    check_model(model, "quantize", error=ConfigError)
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
                if _blockable(module) and type(module) is not Attention:  # a subclass keeps its class
                    module.forward = types.MethodType(_bf16_attention, module)
        for module in blocks.modules():
            module.__class__ = _bf16_class(module)
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
        timm_forward = Attention.forward if isinstance(self, BF16Attention) else type(self).forward
        return timm_forward(self, x, attn_mask=attn_mask, is_causal=is_causal)
    from .blocks import _softmax_last

    batch = x.shape[0]
    qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    # contiguous once per layer: a block's products would otherwise copy every key and value again
    q = (self.q_norm(q) * self.scale).contiguous()
    keys = self.k_norm(k).transpose(-2, -1).contiguous()
    v = v.contiguous()
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        attn_mask = torch.zeros(attn_mask.shape, dtype=q.dtype).masked_fill_(~attn_mask, float("-inf"))
    out = torch.empty(batch, tokens, self.num_heads, self.head_dim, dtype=q.dtype)  # the proj's layout
    for start in range(0, tokens, QUERY_BLOCK):
        rows = slice(start, start + QUERY_BLOCK)
        logits = q[:, :, rows] @ keys
        if attn_mask is not None:
            logits += attn_mask[..., rows, :] if attn_mask.shape[-2] > 1 else attn_mask
        out[:, rows] = (_softmax_last(logits) @ v).transpose(1, 2)
    out = self.norm(out.reshape(batch, tokens, self.attn_dim))
    return self.proj_drop(self.proj(out))


class BF16Attention(Attention):
    """timm ``Attention`` of a bf16 model: :func:`_bf16_attention` (a class of its own, so the model pickles)."""

    forward = _bf16_attention


# -- packed matrix products ---------------------------------------------------------------------------
#
# oneDNN multiplies by a weight it first reorders into its blocked layout; a plain ``F.linear`` pays that
# reorder on every call (about a tenth of AST-base's bf16 forward here). The packed weight is made once per
# Linear, kept beside the model (not in it: it cannot be pickled or saved) and made again when the weight
# changes. Gradients, and PyTorch builds without these oneDNN operators, take ``F.linear``.

_PACKED: "weakref.WeakKeyDictionary[nn.Linear, tuple[tuple[int, int], torch.Tensor]]" = weakref.WeakKeyDictionary()
_packing: list[bool] = []  # [available], decided on first use


def packing_support() -> bool:
    """Whether this PyTorch build has oneDNN's packed bf16 linear operators (decided once)."""
    if not _packing:
        try:
            ops = torch.ops.mkldnn
            _packing.append(bool(torch.backends.mkldnn.is_available() and ops._linear_pointwise and ops._reorder_linear_weight))
        except (AttributeError, RuntimeError):
            _packing.append(False)
    return _packing[0]


def _packed_weight(linear: nn.Linear, rows: int) -> torch.Tensor:
    weight = linear.weight
    key = (weight.data_ptr(), weight._version)
    hit = _PACKED.get(linear)
    if hit is None or hit[0] != key:
        hit = (key, torch.ops.mkldnn._reorder_linear_weight(weight.detach(), rows))
        _PACKED[linear] = hit
    return hit[1]


def packed_linear(linear: nn.Linear, x: torch.Tensor, activation: str = "none", approximate: str = "none") -> torch.Tensor:
    """``linear(x)`` (then ``activation``: "none" or "gelu" with ``approximate``) through the packed weight, in
    the weight's dtype; ``F.linear`` when gradients are on or the operators are missing."""
    x = x.to(linear.weight.dtype)
    if torch.is_grad_enabled() or not packing_support():
        y = F.linear(x, linear.weight, linear.bias)
        return F.gelu(y, approximate=approximate) if activation == "gelu" else y
    flat = x.reshape(-1, x.shape[-1])
    try:
        y = torch.ops.mkldnn._linear_pointwise(flat, _packed_weight(linear, flat.shape[0]), linear.bias, activation,
                                               [], approximate if activation == "gelu" else "")
    except RuntimeError:  # a build whose operators refuse this input: the plain product from now on
        _packing[:] = [False]
        return packed_linear(linear, x, activation, approximate)
    return y.reshape(*x.shape[:-1], y.shape[-1])


class BF16Linear(nn.Linear):
    """``nn.Linear`` of a bf16 model, through the packed weight when no gradient is needed."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return packed_linear(self, x)


class BF16Mlp(Mlp):
    """timm ``Mlp`` (GELU, no hidden norm) of a bf16 model: the GELU fused into the first product."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return Mlp.forward(self, x)
        hidden = packed_linear(self.fc1, x, "gelu", self.act.approximate)
        return self.drop2(self.fc2(self.norm(hidden)))


def _bf16_class(module: nn.Module) -> type:
    """The class a bf16 model's ``module`` takes: its own unless it is exactly one of the kinds made faster."""
    kind = type(module)
    if kind is Attention and _blockable(module):
        return BF16Attention
    if kind is nn.Linear:
        return BF16Linear
    if (kind is Mlp and type(module.act) is nn.GELU and isinstance(module.norm, nn.Identity)
            and isinstance(module.fc1, nn.Linear) and isinstance(module.drop1, (nn.Dropout, nn.Identity))):
        return BF16Mlp
    return kind
