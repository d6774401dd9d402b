"""Progressive attention-ranked pruning (EViT-style) against a full-layout reference written here."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import audiovis as av
from audiovis.models.blocks import block_with_attention
from audiovis.models.progressive import check_stages, default_stages, forward_progressive, stage_counts

from .frozen_models import SR, tiny_ast, tone


@pytest.fixture(scope="module")
def model():
    return tiny_ast(seed=11, num_hidden_layers=4)


@pytest.fixture(scope="module")
def clip():
    return av.load_audio(tone(700.0, noise=0.05, seed=5) + tone(2500.0, amp=0.15), SR)


def cls_row(block, tokens: torch.Tensor) -> torch.Tensor:
    """The attention the cls token pays every token in ``block`` (heads averaged), written out from the
    block's norm and qkv projection for one clip ``[1, T, D]`` -> ``[T]``."""
    attn = block.attn
    qkv = attn.qkv(block.norm1(tokens))[0]
    dim = qkv.shape[-1] // 3
    heads = attn.num_heads
    q = qkv[0, :dim].reshape(heads, -1)
    k = qkv[:, dim:2 * dim].reshape(len(qkv), heads, -1)
    logits = torch.einsum("hd,thd->ht", q, k) / (dim // heads) ** 0.5
    return torch.softmax(logits, dim=-1).mean(dim=0)


def neighbourhood_mean(values: torch.Tensor, rows: int, cols: int) -> list[float]:
    """Each patch's mean over its 3 x 3 grid neighbourhood (fewer at the edges), patch by patch."""
    out = []
    for i in range(rows * cols):
        r, c = divmod(i, cols)
        near = [float(values[rr * cols + cc]) for rr in range(r - 1, r + 2) for cc in range(c - 1, c + 2)
                if 0 <= rr < rows and 0 <= cc < cols]
        out.append(sum(near) / len(near))
    return out


def block_over_keys(block, queries: torch.Tensor, keys: torch.Tensor):
    """A timm block in eval mode, written out, whose queries ``[1, T, D]`` attend over the keys and values of
    other tokens ``[1, T, D]``: ``(output, probabilities [1, heads, T, T])``."""
    attn = block.attn
    heads = attn.num_heads
    dim = queries.shape[-1]

    def split(tokens, part):
        out = attn.qkv(block.norm1(tokens))[0, :, part * dim:(part + 1) * dim]
        return out.reshape(len(out), heads, -1).transpose(0, 1)

    q, k, v = split(queries, 0), split(keys, 1), split(keys, 2)
    probs = torch.softmax(q @ k.transpose(-2, -1) / (dim // heads) ** 0.5, dim=-1)
    x = queries + attn.proj((probs @ v).transpose(0, 1).reshape(1, -1, dim))
    return x + block.mlp(block.norm2(x)), probs[None]


def reference(model, x: torch.Tensor, keep_ratio: float, stages: tuple[int, ...]):
    """Every patch runs every block in the full layout with explicit attention. Before block s of each
    stage the live patches are ranked by the attention the cls token pays each patch in block s itself
    (heads averaged; a dropped patch holds a copy of the fused token and gets its share), averaged over
    the patch's 3 x 3 grid neighbourhood; the lowest drop out. In block s every dropped patch (earlier
    ones included) queries as the mean of the dropped patches' states, attending over the keys of every
    token as it was before the stage, and holds that output from then on. Returns logits, the kept set
    after each stage, every state and attention."""
    p, n = model.num_prefix_tokens, model.grid.num_patches
    rows, cols = model.grid.grid_shape
    counts = stage_counts(n, keep_ratio, len(stages))
    tokens = model.add_positions(model.embed_patches(x))
    live = list(range(n))
    states, attentions, kept_sets = [tokens[0]], [], []
    for b, block in enumerate(model.blocks):
        if b in stages:
            k = counts[stages.index(b)]
            scores = neighbourhood_mean(cls_row(block, tokens)[p:], rows, cols)
            ranked = sorted(live, key=lambda i: (-scores[i], i))
            live = sorted(ranked[:k])
            kept_sets.append(live)
            dropped = torch.ones(n, dtype=torch.bool)
            dropped[live] = False
            rows_dropped = torch.nonzero(dropped).flatten() + p
            queries = tokens.clone()
            queries[0, rows_dropped] = tokens[0, rows_dropped].mean(dim=0)
            tokens, probs = block_over_keys(block, queries, tokens)
        else:
            tokens, probs = block_with_attention(block, tokens)
        states.append(tokens[0])
        attentions.append(probs[0])
    logits = model.forward_head(model.norm(tokens))[0]
    return logits, kept_sets, states, attentions


def test_stages_and_counts():
    assert default_stages(12) == (0,) and default_stages(4) == (0,) and default_stages(1) == (0,)
    assert stage_counts(1212, 0.5, 3) == [962, 764, 606]
    assert check_stages([2, 5], 12) == (2, 5) and check_stages([0, 11], 12) == (0, 11)
    for bad in ([-1], [3, 2], [12], [13], [1.5], []):
        with pytest.raises(ValueError, match="stages"):
            check_stages(bad, 12)


@pytest.mark.parametrize("stages", [(0,), (0, 2), (1, 2, 3), (2,), (1, 3)])
def test_progressive_pass_equals_the_full_layout_reference(model, clip, stages):
    x = model.spectrogram(clip).values[None]
    with torch.no_grad():
        logits, kept_sets, states, attentions = reference(model, x, 0.4, stages)
        out = forward_progressive(model, x, 0.4, stages)
    assert [k[0].tolist() for k in out.stage_kept] == kept_sets
    torch.testing.assert_close(out.logits[0], logits, atol=2e-5, rtol=1e-4)
    res = model.analyze(clip, keep_ratio=0.4, keep_by="attention", prune_layer=list(stages))
    np.testing.assert_array_equal(res.kept_patches, kept_sets[-1])
    np.testing.assert_allclose(res.logits, logits.numpy(), atol=2e-5)
    for layer, state in enumerate(res.hidden_states):
        np.testing.assert_allclose(state, states[layer].numpy(), atol=5e-5)
    for layer in range(model.num_layers):
        np.testing.assert_allclose(res.attention(layer), attentions[layer].numpy(), atol=1e-5)
    assert res._hidden.states[-1].shape[0] == 2 + len(kept_sets[-1]) + 1, "compact states"


def test_attention_ranking_prunes_progressively_by_default(model, clip):
    res = model.analyze(clip, keep_ratio=0.5, keep_by="attention")
    x = res.spectrogram.values[None]
    with torch.no_grad():
        out = forward_progressive(model, x, 0.5, default_stages(model.num_layers))
    np.testing.assert_array_equal(res.kept_patches, out.kept[0].numpy())
    np.testing.assert_allclose(res.logits, out.logits[0].numpy(), atol=1e-6)
    assert res.prune_layer == 0 and res.fused_dropped
    groups = res.merge_groups(-1)
    assert len(np.unique(groups)) == len(res.kept_patches) + 1, "kept patches and one fused token"


def test_progressive_saliency_replays_the_pass(model, clip):
    res = model.analyze(clip, keep_ratio=0.5, keep_by="attention")
    x = res.spectrogram.values[None]
    patches = model.embed_patches(x).detach().requires_grad_(True)
    replay = [k.clone()[None] for k in res._hidden.stage_kept]
    logit = forward_progressive(model, x, 0.5, patches=patches, kept_per_stage=replay).logits[0, 2]
    (grad,) = torch.autograd.grad(logit, patches)
    np.testing.assert_allclose(res.saliency(2), (grad * patches.detach()).sum(-1)[0].numpy(), atol=1e-6)


def test_batched_replay_of_a_progressive_pass_warns_nothing(model, clip):
    """Faithfulness and integrated gradients replay the pass on a batch of inputs (the kept sets expanded
    over the batch): torch warned that searchsorted's values were non-contiguous."""
    res = model.analyze(clip, keep_ratio=0.5, keep_by="attention")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = res.faithfulness("attention", class_index=2, steps=4)
        res.integrated_gradients(2, steps=4)
    assert scores.deletion.shape == (5,) and np.isfinite(scores.deletion_auc)


def test_progressive_errors(model, clip):
    vit = av.ViTModel("vit_tiny_patch16_224", input_shape=(64, 128), num_classes=3, global_pool="avg",
                      class_token=False).eval()
    with pytest.raises(av.ConfigError, match="no prefix token: use keep_by='energy'"):
        vit.analyze(clip, keep_ratio=0.5, keep_by="attention")
    with pytest.raises(ValueError, match="always fuses"):
        model.analyze(clip, keep_ratio=0.5, keep_by="attention", fuse_dropped=False)
    with pytest.raises(ValueError, match="increasing"):
        model.analyze(clip, keep_ratio=0.5, keep_by="attention", prune_layer=[2, 1])
