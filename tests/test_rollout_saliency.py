"""Rollout and saliency: the fast paths (row-vector rollout, batched and cached saliency) equal plain references.

The references are written here: attention maps and gradients from transformers' ASTForAudioClassification
(eager attention) on the same random weights, rollout as Abnar & Zuidema's full matrix product in float64.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from transformers import ASTForAudioClassification

import audiovis as av
import audiovis.analysis as analysis_module
from audiovis.models.blocks import attention_probabilities, inference, mean_attention

SR = 16000
LABELS = ["dog", "cat", "siren", "rain", "speech", "music"]


def waveform(seconds: float = 0.9, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(2 * np.pi * (300 * t + 1500 * t**2)) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(1)
    config = av.ASTConfig(
        hidden_size=48, num_hidden_layers=3, num_attention_heads=6, intermediate_size=64,
        num_mel_bins=32, max_length=96, num_labels=len(LABELS), labels=LABELS, multi_label=False,
    )
    m = av.ASTModel(config).eval()
    with torch.no_grad():  # peaked, unequal attention and class scores that differ per class
        m.pos_embed.normal_(std=0.5)
        m.head.weight.normal_()
        for block in m.backbone.blocks:
            block.attn.qkv.weight.mul_(4.0)
    return m


@pytest.fixture(scope="module")
def hf(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("hf_ast")
    model.save_pretrained(path)
    return ASTForAudioClassification.from_pretrained(path, attn_implementation="eager").eval()


@pytest.fixture(scope="module")
def audio():
    return av.load_audio(waveform(), SR)


def reference_rollout(attentions: list[np.ndarray], prefix: int) -> np.ndarray:
    """Abnar & Zuidema: per layer head-mean attention + identity, rows normalised, multiplied first to last."""
    tokens = attentions[0].shape[-1]
    joint = np.eye(tokens)
    for att in attentions:
        step = 0.5 * att.astype(np.float64).mean(axis=0) + 0.5 * np.eye(tokens)
        joint = (step / step.sum(axis=-1, keepdims=True)) @ joint
    rows = joint[:prefix] if prefix else joint
    return rows.mean(axis=0)[prefix:]


def hf_attentions(hf, res) -> list[np.ndarray]:
    with torch.no_grad():
        out = hf(res.spectrogram.values.T[None], output_attentions=True)
    return [a[0].numpy() for a in out.attentions]


def hf_saliency(hf, res, class_index: int) -> np.ndarray:
    """Gradient x patch embedding of one class through transformers' model: one forward, one backward."""
    captured = {}

    def keep(module, args, output):
        output.retain_grad()
        captured["emb"] = output

    handle = hf.audio_spectrogram_transformer.embeddings.patch_embeddings.register_forward_hook(keep)
    try:
        hf(res.spectrogram.values.T[None]).logits[0, class_index].backward()
    finally:
        handle.remove()
        hf.zero_grad(set_to_none=True)
    emb = captured["emb"]
    return (emb.grad * emb).sum(-1)[0].detach().numpy()


class ForwardCounter:
    """Counts the model's passes through its first block."""

    def __init__(self, model):
        self.count = 0
        self._handle = model.backbone.blocks[0].register_forward_hook(self._hit)

    def _hit(self, *args):
        self.count += 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.remove()


# -- rollout -------------------------------------------------------------------------------------


def test_rollout_equals_the_full_matrix_product_of_transformers_attention(model, hf, audio):
    res = model.analyze(audio)
    expected = reference_rollout(hf_attentions(hf, res), prefix=2)
    assert np.ptp(expected) > 1e-3  # attention that is far from uniform, so a wrong product shows
    np.testing.assert_allclose(res.rollout(), expected, rtol=1e-5, atol=1e-7)
    assert res._attn == {}  # rollout keeps no [heads, tokens, tokens] maps behind


def test_rollout_never_builds_every_heads_map_and_visits_each_layer_once(model, hf, audio, monkeypatch):
    """One head-mean map per layer; the [heads, tokens, tokens] block of any layer is never made."""
    import audiovis.models.blocks as blocks

    def refuse(*args, **kwargs):
        raise AssertionError("rollout built a [heads, tokens, tokens] attention block")

    calls = []
    real = blocks.mean_attention
    monkeypatch.setattr(analysis_module, "attention_probabilities", refuse)
    monkeypatch.setattr(blocks, "attention_probabilities", refuse)
    monkeypatch.setattr(analysis_module, "mean_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    res = model.analyze(audio)
    got = res.rollout()
    assert len(calls) == res.num_layers
    monkeypatch.undo()
    np.testing.assert_allclose(got, reference_rollout(hf_attentions(hf, res), prefix=2), rtol=1e-5, atol=1e-7)


def test_rollout_from_cached_attention_is_the_same(model, hf, audio):
    eager = model.analyze(audio, attention=True)
    lazy = model.analyze(audio)
    lazy.attention(1)  # one layer cached, the others computed on the way
    expected = reference_rollout(hf_attentions(hf, lazy), prefix=2)
    np.testing.assert_allclose(eager.rollout(), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(lazy.rollout(), expected, rtol=1e-5, atol=1e-7)


def test_rollout_without_prefix_tokens_averages_every_row():
    torch.manual_seed(2)
    vit = av.ViTModel(
        "vit_tiny_patch16_224", input_shape=(32, 80), num_classes=3, class_token=False, global_pool="avg",
        depth=3, embed_dim=48, num_heads=3,
    )
    with torch.no_grad():
        for block in vit.backbone.blocks:
            block.attn.qkv.weight.mul_(4.0)
    res = vit.analyze(av.load_audio(waveform(0.7), SR))
    assert res.num_prefix_tokens == 0
    expected = reference_rollout([res.attention(i) for i in range(res.num_layers)], prefix=0)
    assert np.ptp(expected) > 1e-4
    np.testing.assert_allclose(res.rollout(), expected, rtol=1e-5, atol=1e-8)


def test_mean_attention_equals_the_mean_of_every_head(model, audio):
    res = model.analyze(audio)
    for idx, block in enumerate(model.backbone.blocks):
        hidden = torch.from_numpy(res.hidden_states[idx].copy())[None]
        with inference(model):
            full = attention_probabilities(block, hidden)[0].mean(0)
            for at_once in (1, 4, 6, 50):
                np.testing.assert_allclose(mean_attention(block, hidden, heads_at_once=at_once)[0], full, atol=1e-6)


def test_mean_attention_works_through_a_projection_that_is_not_a_plain_linear(model, audio):
    """A quantized model's qkv cannot be sliced into queries and keys: the full projection is used."""

    class Wrapped(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

    block = model.backbone.blocks[0]
    hidden = torch.from_numpy(model.analyze(audio).hidden_states[0].copy())[None]
    with inference(model):
        expected = attention_probabilities(block, hidden)[0].mean(0)
        original = block.attn.qkv
        block.attn.qkv = Wrapped(original)
        try:
            got = mean_attention(block, hidden)[0]
        finally:
            block.attn.qkv = original
    np.testing.assert_allclose(got, expected, atol=1e-6)


# -- saliency ------------------------------------------------------------------------------------


def test_batched_saliency_equals_transformers_gradients_class_by_class(model, hf, audio):
    res = model.analyze(audio)
    classes = [4, 1, 5, 0]
    with ForwardCounter(model) as passes:
        maps = res.saliencies(classes)
    assert passes.count == 1  # one forward pass for all four classes
    assert maps.shape == (4, res.num_patches) and maps.dtype == np.float32
    for row, c in zip(maps, classes):
        expected = hf_saliency(hf, res, c)
        np.testing.assert_allclose(row, expected, rtol=1e-4, atol=1e-6)
    assert not np.allclose(maps[0], maps[1])


def test_many_classes_run_in_bounded_backward_batches_after_one_forward(model, hf, audio, monkeypatch):
    """Each class of a batched backward holds its own activation gradients (~40 MB on AST-base): the classes
    go SALIENCY_CLASSES_PER_PASS at a time through the one forward graph, so all 527 of AudioSet never
    share one pass."""
    from audiovis import analysis as module

    monkeypatch.setattr(module, "SALIENCY_CLASSES_PER_PASS", 2)
    widths, real = [], torch.autograd.grad

    def spy(outputs, inputs, grad_outputs=None, **kwargs):
        widths.append(1 if grad_outputs is None else len(grad_outputs))
        return real(outputs, inputs, grad_outputs=grad_outputs, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", spy)
    res = model.analyze(audio)
    classes = [4, 1, 5, 0, 2]
    with ForwardCounter(model) as passes:
        maps = res.saliencies(classes)
    assert passes.count == 1 and widths == [2, 2, 1]
    for row, c in zip(maps, classes):
        np.testing.assert_allclose(row, hf_saliency(hf, res, c), rtol=1e-4, atol=1e-6)


def test_batched_saliency_equals_the_unbatched_uncached_computation(model, audio):
    batched = model.analyze(audio)
    maps = batched.saliencies(["speech", 1, 2])
    for row, c in zip(maps, [4, 1, 2]):
        fresh = model.analyze(audio)  # nothing cached: one class, one backward
        np.testing.assert_allclose(row, fresh.saliency(c), rtol=1e-5, atol=1e-8)


def test_saliency_is_cached_per_class_and_reuses_batched_results(model, audio):
    res = model.analyze(audio)
    res.saliencies([3, 2])
    with ForwardCounter(model) as passes:
        first = res.saliency(3)
        again = res.saliencies([2, 3, 3, "rain"])
        assert passes.count == 0
        res.saliencies([3, 0, 5])  # only 0 and 5 are new: one pass for both
        assert passes.count == 1
    np.testing.assert_array_equal(again[1], first)
    np.testing.assert_array_equal(again[2], first)
    np.testing.assert_array_equal(again[3], first)
    assert res.saliencies([]).shape == (0, res.num_patches)


def test_saliencies_refuse_a_single_class_and_unknown_names(model, audio):
    res = model.analyze(audio)
    with pytest.raises(TypeError, match="list of class"):
        res.saliencies(3)
    with pytest.raises(TypeError, match="list of class"):
        res.saliencies("dog")
    with pytest.raises(KeyError):
        res.saliencies(["dog", "no such class"])


@pytest.mark.parametrize(
    "options", [dict(keep_ratio=0.5, fuse_dropped=True), dict(keep_ratio=0.5, fuse_dropped=False), dict(merge_ratio=0.5)],
    ids=["pruned-fused", "pruned", "merged"],
)
def test_reduced_batched_saliency_equals_one_class_at_a_time(model, audio, options):
    batched = model.analyze(audio, **options)
    maps = batched.saliencies([0, 3, 4])
    for row, c in zip(maps, [0, 3, 4]):
        fresh = model.analyze(audio, **options)
        np.testing.assert_allclose(row, fresh.saliency(c), rtol=1e-5, atol=1e-8)


# -- progress ------------------------------------------------------------------------------------


def test_progress_bar_appears_only_when_asked_and_slow(model, audio, capsys, monkeypatch):
    model.analyze(audio).rollout()  # under a second: no bar
    assert "rollout" not in capsys.readouterr().err
    monkeypatch.setattr(analysis_module, "PROGRESS_DELAY", 0.0)  # everything counts as slow now
    model.analyze(audio).rollout(progress=False)
    model.analyze(audio).saliency(1, progress=False)
    assert capsys.readouterr().err == ""
    model.analyze(audio).rollout()
    model.analyze(audio).saliencies([1, 2])
    err = capsys.readouterr().err
    assert "rollout" in err and "/3 " in err  # one step per layer
    assert "saliency (2 classes)" in err


# -- explorer ------------------------------------------------------------------------------------


def test_explorer_computes_the_listed_classes_in_one_pass_and_says_so(model, audio):
    res = model.analyze(audio)
    ex = av.Explorer(res, top_k=4)
    seen = []
    ex._status.observe(lambda change: seen.append(change["new"]), "value")
    top = [int(i) for i in np.argsort(-res.probabilities, kind="stable")[:4]]
    with ForwardCounter(model) as passes:
        ex.class_index = top[1]
        ex.overlay = "saliency"
        assert passes.count == 1 and list(res._saliency) == [top[1]]  # the first map alone: the quickest answer
        assert any(s.startswith("Computing class saliency") for s in seen)
        assert not ex._status.value.startswith("Computing")  # the status line is restored afterwards
        np.testing.assert_array_equal(ex.heatmap, res.saliency(top[1]))
        ex.class_index = top[2]  # comparing classes: the other listed classes come in the same pass
        assert passes.count == 2 and sorted(res._saliency) == sorted(top)
        ex.class_index = top[0]
        ex.class_index = top[3]
        assert passes.count == 2  # switching among them runs no model
        np.testing.assert_array_equal(ex.heatmap, res.saliency(top[3]))
        outside = int(np.argsort(-res.probabilities, kind="stable")[-1])
        ex.class_index = outside
        assert passes.count == 3
    np.testing.assert_array_equal(ex.heatmap, res.saliency(outside))


def test_explorer_says_it_is_computing_rollout(model, audio):
    res = model.analyze(audio)
    ex = av.Explorer(res)
    seen = []
    ex._status.observe(lambda change: seen.append(change["new"]), "value")
    ex.overlay = "rollout"
    assert any(s.startswith("Computing attention rollout") for s in seen)
    np.testing.assert_array_equal(ex.heatmap, res.rollout())
