"""Relevance (Chefer et al.) against a plain reference on transformers' AST, and integrated gradients
against captum's IntegratedGradients, both on random weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients
from transformers import ASTConfig as HFConfig
from transformers import ASTForAudioClassification

import audiovis as av

SR = 16000
LABELS = ["a", "b", "c", "d"]
HF_SETTINGS = dict(
    hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64, num_mel_bins=32,
    max_length=100, frequency_stride=10, time_stride=12, layer_norm_eps=1e-6,
    id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)},
)


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            p.copy_(1.0 + 0.2 * noise if "layernorm" in name and name.endswith("weight") else 0.3 * noise)


def sound(seconds: float = 1.0, seed: int = 0) -> av.Audio:
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    wav = 0.3 * np.sin(2 * np.pi * (300 * t + 2000 * t**2)) + 0.05 * rng.standard_normal(t.size)
    return av.load_audio(wav.astype(np.float32), SR)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    torch.manual_seed(0)
    hf = ASTForAudioClassification(HFConfig(**HF_SETTINGS, attn_implementation="eager")).eval()
    randomize(hf)
    path = tmp_path_factory.mktemp("hf_ast")
    hf.save_pretrained(path)
    ours = av.ASTModel.from_pretrained(path)
    return hf, ours


def reference_relevance(hf, values: torch.Tensor, class_index: int) -> np.ndarray:
    """Chefer et al.: R = I; per layer R += mean_h((dy/dA * A)^+) @ R; the cls and distillation rows."""
    out = hf(input_values=values.T[None], output_attentions=True)
    grads = torch.autograd.grad(out.logits[0, class_index], out.attentions)
    tokens = out.attentions[0].shape[-1]
    relevance = torch.eye(tokens, dtype=torch.float64)
    for attention, grad in zip(out.attentions, grads):
        cam = (grad * attention.detach())[0].clamp(min=0).mean(dim=0).double()
        relevance = relevance + cam @ relevance
    return ((relevance[0] + relevance[1]) / 2)[2:].numpy()


def test_relevance_matches_a_plain_reference_on_transformers(pair):
    hf, ours = pair
    res = ours.analyze(sound())
    assert res.grid.grid_shape == (2, 8)
    for c in range(len(LABELS)):
        expected = reference_relevance(hf, res.spectrogram.values, c)
        got = res.relevance(c)
        assert got.shape == (res.num_patches,)
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-5 * np.abs(expected).max())
    # the classes differ (the gradient weighting), unlike rollout
    assert not np.allclose(res.relevance(0), res.relevance(1))
    assert res.relevance("b") is res.relevance(1)


def footprint_sums(values: np.ndarray, grid: av.PatchGrid) -> np.ndarray:
    out = np.zeros(grid.num_patches)
    for p in range(grid.num_patches):
        b = grid.bounds(p)
        out[p] = values[b.freq_start:b.freq_end, b.time_start:b.time_end].sum()
    return out


@pytest.mark.parametrize("baseline", ["mean", "zero", -0.5, "array"])
def test_integrated_gradients_match_captum(pair, baseline):
    _, model = pair
    res = model.analyze(sound(seed=1))
    x = res.spectrogram.values
    if baseline == "array":
        baseline = np.random.default_rng(0).standard_normal(tuple(x.shape)).astype(np.float32) * 0.1
        ref = torch.from_numpy(baseline)
    else:
        ref = torch.full_like(x, {"mean": float(x.double().mean()), "zero": 0.0}.get(baseline, baseline))
    c = 2
    ig = IntegratedGradients(lambda inp: model(inp)[:, c])
    theirs = ig.attribute(x[None].clone(), baselines=ref[None], n_steps=16, method="riemann_middle")[0]
    expected = footprint_sums(theirs.detach().double().numpy(), res.grid)
    got = res.integrated_gradients(c, steps=16, baseline=baseline)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())


def test_integrated_gradients_add_up_to_the_logit_change(pair):
    _, model = pair
    res = model.analyze(sound(seed=2))
    from audiovis.explain import integrated_gradients as ig

    x = res.spectrogram.values
    ref = ig.baseline_input(x, "zero")
    pixels = ig.integrated_gradients(lambda p: res._forward_logits(p, grad=True)[:, 0], x, ref, steps=64)
    with torch.no_grad():
        change = float(model(x[None])[0, 0] - model(ref[None])[0, 0])
    assert float(pixels.sum()) == pytest.approx(change, rel=0.05, abs=0.02)


def test_bad_input_is_named(pair):
    _, model = pair
    res = model.analyze(sound())
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        res.integrated_gradients(0, steps=0)
    with pytest.raises(ValueError, match="baseline array must have the input's shape"):
        res.integrated_gradients(0, baseline=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="baseline must be one of"):
        res.integrated_gradients(0, baseline="blur")
    with pytest.raises(IndexError, match="class index 9"):
        res.relevance(9)
    pruned = model.analyze(sound(), keep_ratio=0.5)
    with pytest.raises(ValueError, match="analyse without keep_ratio"):
        pruned.relevance(0)
    # integrated gradients follow the pruned pass itself
    assert np.all(np.isfinite(pruned.integrated_gradients(0, steps=4)))
