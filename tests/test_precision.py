"""quantize(model, "int8" | "bf16"): new models of the same class, close to float32, the original untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import audiovis as av
from audiovis.models import precision
from audiovis.models.pruning import convert_stride

from .frozen_models import SR, tiny_ast, tone

#: Stated tolerances against the float32 demo model's logits (held-out SyntheticEvents clips): the largest
#: and the mean absolute difference over every clip and class.
TOLERANCE = {"int8": (0.3, 0.05), "bf16": (0.15, 0.03)}

BF16_MISSING = precision.bf16_support()


def lower_precisions() -> list[str]:
    """int8, and bf16 where the CPU computes in it (elsewhere test_bf16_refused_without_support covers bf16)."""
    return ["int8"] + ([] if BF16_MISSING else ["bf16"])


@pytest.fixture(scope="module")
def model():
    return tiny_ast(seed=3)


@pytest.fixture(scope="module")
def clip():
    return av.load_audio(tone(1200.0, noise=0.03, seed=4) + tone(300.0, amp=0.1), SR)


@pytest.mark.parametrize("name", ["fp32", "int8", "bf16"])
def test_a_new_model_of_the_same_class_and_the_original_untouched(model, clip, name):
    if name == "bf16" and BF16_MISSING:
        with pytest.raises(av.ConfigError, match="bf16"):
            av.quantize(model, name)
        return
    before = {k: v.clone() for k, v in model.state_dict().items()}
    plain = model.analyze(clip)
    fast = av.quantize(model, name)
    assert type(fast) is type(model) and fast is not model and precision.precision_of(fast) == name
    assert precision.precision_of(model) == "fp32"
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())
    assert all(type(m) is nn.Linear for m in model.blocks.modules() if "Linear" in type(m).__name__)
    np.testing.assert_array_equal(model.analyze(clip).logits, plain.logits)
    if name == "fp32":  # an exact copy
        np.testing.assert_array_equal(fast.analyze(clip).logits, plain.logits)


def test_int8_quantizes_the_blocks_linear_layers_only(model):
    fast = av.quantize(model, "int8")
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    linear = [m for m in fast.blocks.modules() if isinstance(m, (nn.Linear, DynamicLinear))]
    assert len(linear) == 4 * model.num_layers  # qkv, proj, fc1, fc2
    assert all(isinstance(m, DynamicLinear) for m in linear)
    assert all(m.weight().qscheme() == torch.per_channel_affine for m in linear)
    assert type(fast.head) is nn.Linear and fast.patch_embed.proj.weight.dtype == torch.float32


@pytest.mark.skipif(BF16_MISSING is not None, reason=f"bf16: {BF16_MISSING}")
def test_bf16_weights_and_float32_residual_stream(model, clip):
    fast = av.quantize(model, "bf16")
    assert {p.dtype for p in fast.blocks.parameters()} == {torch.bfloat16}
    assert fast.head.weight.dtype == fast.norm.weight.dtype == torch.float32
    res = fast.analyze(clip)
    assert res.hidden_states.dtype == np.float32
    # reference: each block's branches computed by hand from bf16 copies of the weights
    x = res.spectrogram.values[None]
    with torch.no_grad():
        tokens = model.embed(x)
        for block in model.blocks:
            w = {k: v.bfloat16() for k, v in block.state_dict().items()}
            h = nn.functional.layer_norm(tokens.bfloat16(), (tokens.shape[-1],), w["norm1.weight"], w["norm1.bias"], block.norm1.eps)
            qkv = nn.functional.linear(h, w["attn.qkv.weight"], w["attn.qkv.bias"])
            b, t, _ = qkv.shape
            q, k, v = qkv.reshape(b, t, 3, block.attn.num_heads, -1).permute(2, 0, 3, 1, 4)
            a = torch.softmax((q @ k.transpose(-2, -1)).float() * block.attn.scale, -1).bfloat16() @ v
            tokens = tokens + nn.functional.linear(a.transpose(1, 2).reshape(b, t, -1), w["attn.proj.weight"], w["attn.proj.bias"])
            h = nn.functional.layer_norm(tokens.bfloat16(), (tokens.shape[-1],), w["norm2.weight"], w["norm2.bias"], block.norm2.eps)
            h = nn.functional.linear(nn.functional.gelu(nn.functional.linear(h, w["mlp.fc1.weight"], w["mlp.fc1.bias"])),
                                     w["mlp.fc2.weight"], w["mlp.fc2.bias"])
            tokens = tokens + h
        expected = model.forward_head(model.norm(tokens))[0].numpy()
    np.testing.assert_allclose(res.logits, expected, atol=0.03)


@pytest.mark.parametrize("name", lower_precisions())
def test_quantized_models_work_on_every_path(model, clip, name):
    fast = av.quantize(model, name)
    res = fast.analyze(clip)
    assert res.attention(-1).shape == (3, 97, 97) and np.isfinite(res.rollout()).all()
    assert np.isfinite(res.patch_embeddings(-1)).all() and res.clip_embedding().dtype == np.float32
    pruned = fast.analyze(clip, keep_ratio=0.5)
    merged = fast.analyze(clip, merge_ratio=0.5)
    for r in (pruned, merged):
        assert np.isfinite(r.logits).all() and r.attention(0).shape == (3, 97, 97)
    np.testing.assert_allclose(merged.attention(1).sum(-1), 1.0, atol=1e-3)
    emb = av.extract_embeddings([clip.waveform[0].numpy()], fast, sample_rate=SR, progress=False)
    reference = av.extract_embeddings([clip.waveform[0].numpy()], model, sample_rate=SR, progress=False)
    assert emb.shape == reference.shape and np.abs(emb - reference).max() < 0.1


def test_demo_model_logits_within_the_stated_tolerance():
    from audiovis.datasets import SyntheticEvents
    from audiovis.demo import EVAL_SEED

    demo = av.load_demo_model()
    data = SyntheticEvents(16, seed=EVAL_SEED + 11)
    x = torch.stack([demo.spectrogram(data[i].audio).values for i in range(len(data))])
    with torch.no_grad():
        reference = demo(x)
        for name in lower_precisions():
            out = av.quantize(demo, name)(x).float()
            largest, mean = TOLERANCE[name]
            diff = (out - reference).abs()
            assert diff.max() <= largest and diff.mean() <= mean, (name, float(diff.max()), float(diff.mean()))
            assert diff.max() > 0, "the quantized model computes differently"
            assert (out.argmax(-1) == reference.argmax(-1)).float().mean() >= 0.9


def test_bad_precision_and_what_a_quantized_model_refuses(model, clip, monkeypatch):
    with pytest.raises(ValueError, match=r"precision must be one of \['fp32', 'int8', 'bf16'\], got 'fp16'"):
        av.quantize(model, "fp16")
    with pytest.raises(ValueError, match="precision must be"):
        av.quantize(model, 8)
    with pytest.raises(av.ConfigError, match="ASTModel, ViTModel"):
        av.quantize(nn.Linear(2, 2), "int8")
    fast = av.quantize(model, "int8")
    with pytest.raises(av.ConfigError, match="already int8"):
        av.quantize(fast, "bf16")
    with pytest.raises(av.ConfigError, match="int8 layers have no gradient"):
        fast.analyze(clip).saliency(0)
    with pytest.raises(av.ConfigError, match="convert the stride, then quantize"):
        convert_stride(fast, 16)
    monkeypatch.setattr(precision, "bf16_support", lambda: "this CPU has no native bfloat16 arithmetic (test)")
    with pytest.raises(av.ConfigError, match="cannot compute in bf16: this CPU has no native bfloat16"):
        av.quantize(model, "bf16")


@pytest.mark.skipif(BF16_MISSING is not None, reason=f"bf16: {BF16_MISSING}")
@pytest.mark.parametrize("mask", [None, "additive", "bool"])
def test_bf16_attention_in_query_blocks_equals_the_formula(model, mask):
    from timm.layers import Attention

    torch.manual_seed(5)
    tokens = precision.MIN_BLOCKED_TOKENS + 45  # several blocks and a short last one
    attn = Attention(32, num_heads=4, qkv_bias=True).eval().to(torch.bfloat16)
    x = torch.randn(2, tokens, 32).to(torch.bfloat16)
    size = torch.rand(2, tokens) * 3 + 1
    masks = {None: None, "additive": size.log()[:, None, None, :].to(torch.bfloat16),
             "bool": (torch.rand(2, 1, tokens, tokens) > 0.3) | torch.eye(tokens, dtype=torch.bool)}
    m = masks[mask]
    with torch.no_grad():
        got = precision._bf16_attention(attn, x, attn_mask=m)
        # the formula in float64 from the same bfloat16 weights and input
        w = {k: v.double() for k, v in attn.state_dict().items()}
        qkv = nn.functional.linear(x.double(), w["qkv.weight"], w["qkv.bias"]).reshape(2, tokens, 3, 4, 8)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        logits = (q @ k.transpose(-2, -1)) * 8 ** -0.5
        if mask == "additive":
            logits = logits + m.double()
        elif mask == "bool":
            logits = logits.masked_fill(~m, float("-inf"))
        ref = (torch.softmax(logits, -1) @ v).transpose(1, 2).reshape(2, tokens, 32)
        ref = nn.functional.linear(ref, w["proj.weight"], w["proj.bias"])
        timm_out = Attention.forward(attn, x, attn_mask=m)
    assert got.dtype == torch.bfloat16 and got.shape == ref.shape
    err, timm_err = (got.double() - ref).abs().max().item(), (timm_out.double() - ref).abs().max().item()
    assert err < 0.03 and err <= 2 * timm_err + 1e-3  # as close to the formula as timm's own bf16 path
    with torch.enable_grad():  # gradients take timm's forward
        assert torch.equal(precision._bf16_attention(attn, x, attn_mask=m), Attention.forward(attn, x, attn_mask=m))
    short = x[:, : precision.MIN_BLOCKED_TOKENS - 1]
    with torch.no_grad():
        assert torch.equal(precision._bf16_attention(attn, short), Attention.forward(attn, short))
    fast = av.quantize(model, "bf16")
    assert all(type(a) is precision.BF16Attention for a in fast.blocks.modules() if isinstance(a, Attention))
    assert all(type(a) is Attention for a in model.blocks.modules() if isinstance(a, Attention))


@pytest.mark.skipif(BF16_MISSING is not None, reason=f"bf16: {BF16_MISSING}")
@pytest.mark.parametrize("activation", ["none", "gelu", "gelu-tanh"])
def test_packed_bf16_linear_equals_the_plain_product(activation):
    torch.manual_seed(8)
    linear = nn.Linear(48, 80).to(torch.bfloat16)
    x = torch.randn(3, 37, 48)  # float32 in: the layer computes in its own dtype
    act, approximate = ("gelu", "tanh") if activation == "gelu-tanh" else (activation, "none")
    with torch.no_grad():
        got = precision.packed_linear(linear, x, act, approximate)
        plain = nn.functional.linear(x.to(torch.bfloat16), linear.weight, linear.bias)
        plain = nn.functional.gelu(plain, approximate=approximate) if act == "gelu" else plain
        # the formula in float64 from the same bfloat16 weights and input
        ref = nn.functional.linear(x.to(torch.bfloat16).double(), linear.weight.double(), linear.bias.double())
        ref = nn.functional.gelu(ref, approximate=approximate) if act == "gelu" else ref
    assert got.dtype == torch.bfloat16 and got.shape == (3, 37, 80)
    if precision.packing_support():
        assert precision._PACKED.get(linear) is not None  # the packed path ran
    err, plain_err = (got.double() - ref).abs().max().item(), (plain.double() - ref).abs().max().item()
    assert err <= 2 * plain_err + 1e-2  # as close to the formula as the plain bf16 product
    with torch.no_grad():  # a weight changed in place is packed again
        linear.weight.mul_(-1)
        again = precision.packed_linear(linear, x)
        flipped = nn.functional.linear(x.to(torch.bfloat16).double(), linear.weight.double(), linear.bias.double())
    assert (again.double() - flipped).abs().max().item() <= 2 * plain_err + 1e-2
    with torch.enable_grad():  # gradients take F.linear itself
        w = linear.weight.detach().requires_grad_()
        grad_linear = nn.Linear(48, 80).to(torch.bfloat16)
        grad_linear.weight, grad_linear.bias = nn.Parameter(w), linear.bias
        out = precision.packed_linear(grad_linear, x)
        assert out.requires_grad and torch.equal(out, nn.functional.linear(x.to(torch.bfloat16), w, linear.bias))


@pytest.mark.skipif(BF16_MISSING is not None, reason=f"bf16: {BF16_MISSING}")
def test_bf16_without_packing_operators_takes_the_plain_product(model, clip, monkeypatch):
    fast = av.quantize(model, "bf16")
    packed = fast.analyze(clip).probabilities
    if precision.packing_support():  # an operator that fails at run time: the plain product, and it stays so
        def refuse(*args):
            raise RuntimeError("no kernel for this input (test)")

        monkeypatch.setattr(precision, "_packing", [True])
        monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", refuse, raising=False)
        with torch.no_grad():
            failed = fast.analyze(clip).probabilities
        assert precision._packing == [False] and np.abs(failed - packed).max() < 0.02
        monkeypatch.undo()
    monkeypatch.setattr(precision, "_packing", [False])
    linear = nn.Linear(16, 8).to(torch.bfloat16)
    x = torch.randn(5, 16).to(torch.bfloat16)
    with torch.no_grad():
        assert torch.equal(precision.packed_linear(linear, x, "gelu"), nn.functional.gelu(nn.functional.linear(x, linear.weight, linear.bias)))
        plain = fast.analyze(clip).probabilities
    assert np.abs(plain - packed).max() < 0.02


@pytest.mark.skipif(BF16_MISSING is not None, reason=f"bf16: {BF16_MISSING}")
def test_bf16_model_pickles_and_saves(model, clip, tmp_path):
    import pickle

    fast = av.quantize(model, "bf16")
    before = fast.analyze(clip).probabilities
    again = pickle.loads(pickle.dumps(fast))
    torch.save(fast, tmp_path / "bf16.pt")
    loaded = torch.load(tmp_path / "bf16.pt", weights_only=False)
    for other in (again, loaded):
        assert other.precision == "bf16" and type(other.blocks[0].mlp) is precision.BF16Mlp
        np.testing.assert_array_equal(other.analyze(clip).probabilities, before)
