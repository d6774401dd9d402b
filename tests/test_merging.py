"""Token merging (ToMe): a plain reference written here, groups, the merge_ratio=0 identity, analyze, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import audiovis as av
from audiovis.models.merging import MergedModel, forward_merged, merge_schedule, num_merged

from .frozen_models import SR, tiny_ast, tone


@pytest.fixture(scope="module")
def model():
    return tiny_ast(seed=7)


@pytest.fixture(scope="module")
def clip():
    return av.load_audio(tone(900.0, noise=0.05, seed=3) + tone(3000.0, amp=0.1), SR)


def reference_tome(model, x: torch.Tensor, schedule: list[int]):
    """ToMe written out token by token for one clip: returns the logits and, after each block, the list of
    groups (each a list of patch indices) the patch tokens stand for.

    In a block with ``r`` merges: attention over the current tokens with a key bias of log(size); then
    the patch tokens alternate into A (even positions) and B (odd); each A token's best B match by cosine
    similarity of the head-averaged keys; the r A tokens with the best matches (ties: lower index) merge
    into their B token as size-weighted averages; the order becomes prefix, remaining A, B; then the MLP.
    """
    p = model.num_prefix_tokens
    tokens = [t for t in model.add_positions(model.embed_patches(x))[0].double()]
    sizes = [1.0] * len(tokens)
    groups = [[i] for i in range(len(tokens) - p)]
    history = []
    for block, r in zip(model.blocks, schedule):
        w = {k: v.double() for k, v in block.state_dict().items()}
        h = torch.stack(tokens)
        n = torch.nn.functional.layer_norm(h, (h.shape[-1],), w["norm1.weight"], w["norm1.bias"], block.norm1.eps)
        qkv = n @ w["attn.qkv.weight"].T + w["attn.qkv.bias"]
        heads, dim = block.attn.num_heads, h.shape[-1]
        q, k, v = [qkv[:, i * dim:(i + 1) * dim].reshape(len(tokens), heads, -1).transpose(0, 1) for i in range(3)]
        logits = q @ k.transpose(-2, -1) / math.sqrt(dim // heads) + torch.log(torch.tensor(sizes, dtype=torch.float64))
        out = (torch.softmax(logits, -1) @ v).transpose(0, 1).reshape(len(tokens), dim)
        h = h + out @ w["attn.proj.weight"].T + w["attn.proj.bias"]
        tokens = list(h)
        if r:
            metric = k.mean(0)
            patch = list(range(p, len(tokens)))
            a, b = patch[0::2], patch[1::2]
            best = []
            for i in a:
                sims = [float(torch.nn.functional.cosine_similarity(metric[i], metric[j], dim=0)) for j in b]
                j = int(np.argmax(sims))
                best.append((sims[j], i, b[j]))
            ranked = sorted(range(len(a)), key=lambda m: (-best[m][0], m))
            merged = {best[m][1]: best[m][2] for m in ranked[:r]}
            new_tokens, new_sizes, new_groups = tokens[:p], sizes[:p], []
            weighted = {j: tokens[j] * sizes[j] for j in b}
            total = {j: sizes[j] for j in b}
            members = {j: list(groups[j - p]) for j in b}
            for i, j in merged.items():
                weighted[j] = weighted[j] + tokens[i] * sizes[i]
                total[j] += sizes[i]
                members[j] += groups[i - p]
            for i in a:
                if i not in merged:
                    new_tokens.append(tokens[i]), new_sizes.append(sizes[i]), new_groups.append(groups[i - p])
            for j in b:
                new_tokens.append(weighted[j] / total[j]), new_sizes.append(total[j]), new_groups.append(sorted(members[j]))
            tokens, sizes, groups = new_tokens, new_sizes, new_groups
        h = torch.stack(tokens)
        n = torch.nn.functional.layer_norm(h, (h.shape[-1],), w["norm2.weight"], w["norm2.bias"], block.norm2.eps)
        m = torch.nn.functional.gelu(n @ w["mlp.fc1.weight"].T + w["mlp.fc1.bias"]) @ w["mlp.fc2.weight"].T + w["mlp.fc2.bias"]
        tokens = list(h + m)
        history.append([list(g) for g in groups])
    final = model.norm.double()(torch.stack(tokens)[None])
    logits = model.forward_head.__func__(_DoubleHead(model), final)
    model.norm.float()
    return logits[0].float(), history


class _DoubleHead:
    """The model's head in float64 for the reference."""

    def __init__(self, model):
        self.fc_norm = torch.nn.LayerNorm(model.fc_norm.normalized_shape, eps=model.fc_norm.eps).double()
        self.fc_norm.load_state_dict(model.fc_norm.state_dict())
        self.head = torch.nn.Linear(model.head.in_features, model.head.out_features).double()
        self.head.load_state_dict(model.head.state_dict())
        self.head_drop = torch.nn.Identity()
        self.pool_tokens = model.pool_tokens


def groups_from_ids(ids: np.ndarray) -> list[list[int]]:
    return sorted(sorted(np.flatnonzero(ids == g).tolist()) for g in np.unique(ids))


def test_merge_schedule_decreases_and_sums_to_the_ratio():
    schedule = merge_schedule(1212, 0.5, 12, last_layer=11)  # ToMe's whole-depth spread
    assert sum(schedule) == 606 == num_merged(1212, 0.5)
    assert all(a >= b for a, b in zip(schedule, schedule[1:])) and schedule[0] > schedule[-1] > 0
    default = merge_schedule(1212, 0.5, 12)
    assert sum(default) == 606 and default[:5] == [202, 162, 121, 81, 40] and default[5:] == [0] * 7
    early = merge_schedule(1212, 0.5, 12, last_layer=3)
    assert sum(early) == 606 and early[4:] == [0] * 8
    assert merge_schedule(95, 0.0, 3) == [0, 0, 0]
    with pytest.raises(ValueError, match=r"more than blocks 0..0 can .*: at most merge_ratio=0.494$"):
        merge_schedule(95, 0.9, 3, last_layer=0)
    # past what the default span can merge, the rest goes on to the later blocks (was: an error naming an
    # option analyze does not have); at most half of the tokens per block, up to the model's last block
    deep = merge_schedule(468, 0.85, 4)
    assert deep == [234, 117, 47, 0] and sum(deep) == num_merged(468, 0.85)
    assert merge_schedule(468, 0.93, 4) == [234, 117, 58, 26]
    with pytest.raises(ValueError, match=r"merges 440 of 468 .* more than the model's 4 blocks can .*"
                                         r"at most merge_ratio=0.935$"):
        merge_schedule(468, 0.94, 4)


@pytest.mark.parametrize("ratio,last", [(0.5, None), (0.3, 1), (0.7, None), (0.5, 2), (0.85, None)])
def test_merged_pass_equals_the_plain_tome_reference(model, clip, ratio, last):
    x = model.spectrogram(clip).values[None]
    schedule = merge_schedule(model.grid.num_patches, ratio, model.num_layers, last)
    with torch.no_grad():
        expected, history = reference_tome(model, x, schedule)
        out = forward_merged(model, x, ratio, last_layer=last)
    torch.testing.assert_close(out.logits[0], expected, atol=1e-4, rtol=1e-4)
    res = model.analyze(clip, merge_ratio=ratio) if last is None else None
    if res is not None:
        np.testing.assert_allclose(res.logits, expected.numpy(), atol=1e-4)
        n = model.grid.num_patches
        for layer, groups in enumerate(history):
            ids = res.merge_groups(layer)
            assert groups_from_ids(ids) == sorted(groups), f"block {layer}"
            assert ids.shape == (n,) and sorted(np.unique(ids)) == list(range(len(groups)))
            assert np.bincount(ids).sum() == n  # the groups partition the patches
        assert len(np.unique(res.merge_groups(-1))) == n - num_merged(n, ratio)


def test_merge_ratio_zero_is_exactly_the_plain_analysis(model, clip):
    plain = model.analyze(clip)
    same = model.analyze(clip, merge_ratio=0.0)
    np.testing.assert_array_equal(same.logits, plain.logits)
    np.testing.assert_array_equal(same.hidden_states, plain.hidden_states)
    np.testing.assert_array_equal(same.merge_groups(-1), np.arange(model.grid.num_patches))
    x = plain.spectrogram.values[None]
    with torch.no_grad():
        assert torch.equal(forward_merged(model, x, 0.0).logits, model(x))
        assert torch.equal(MergedModel(model, 0.0)(x), model(x))


def test_merged_analysis_full_layout(model, clip):
    """Every patch holds its group's token; attention rows sum to one and a group's column is shared."""
    res = model.analyze(clip, merge_ratio=0.5)
    p, n = 2, model.grid.num_patches
    for layer in range(model.num_layers):
        ids = res.merge_groups(layer)
        states = res.hidden_states[layer + 1][p:]
        for g in np.unique(ids):
            members = np.flatnonzero(ids == g)
            np.testing.assert_array_equal(states[members], np.broadcast_to(states[members[0]], states[members].shape))
        att = res.attention(layer)
        np.testing.assert_allclose(att.sum(-1), 1.0, atol=1e-5)
    # attention of block 1 equals a full-layout pass where each group is repeated (proportional attention)
    from audiovis.models.blocks import attention_probabilities

    full = torch.from_numpy(res.hidden_states[1].copy())[None]
    with torch.no_grad():
        reference = attention_probabilities(model.blocks[1], full)[0].numpy()
    np.testing.assert_allclose(res.attention(1), reference, atol=1e-5)
    assert res._hidden.states[-1].shape[0] == p + n - num_merged(n, 0.5), "the pass kept compact states"


def test_merged_saliency_follows_the_merged_model(model, clip):
    res = model.analyze(clip, merge_ratio=0.5)
    x = res.spectrogram.values[None]
    patches = model.embed_patches(x).detach().requires_grad_(True)
    logit = forward_merged(model, x, 0.5, patches=patches).logits[0, 1]
    (grad,) = torch.autograd.grad(logit, patches)
    np.testing.assert_allclose(res.saliency(1), (grad * patches.detach()).sum(-1)[0].numpy(), atol=1e-6)
    assert np.abs(res.saliency(1) - model.analyze(clip).saliency(1)).max() > 1e-6


def test_merging_a_vit_with_an_average_pooling_head():
    """A head that pools the patch tokens counts a merged token once for every patch it stands for."""
    torch.manual_seed(1)
    vit = av.ViTModel("vit_tiny_patch16_224", input_shape=(64, 128), num_classes=3, global_pool="avg", class_token=False).eval()
    x = torch.randn(1, 64, 128)
    with torch.no_grad():
        out = forward_merged(vit, x, 0.5)
        full = out.tokens.gather(1, out.source[..., None].expand(-1, -1, out.tokens.shape[-1]))
        sizes = torch.bincount(out.source[0], minlength=out.tokens.shape[1]).float()
        weighted = (out.tokens[0] * sizes[:, None]).sum(0) / sizes.sum()
        torch.testing.assert_close(full[0].mean(0), weighted, atol=1e-5, rtol=1e-5)
        assert out.logits.shape == (1, 3)


def test_bad_merge_arguments(model, clip):
    for bad in (-0.1, 1.0, 1.5, float("nan"), "half", True):
        with pytest.raises(ValueError, match="merge_ratio"):
            model.analyze(clip, merge_ratio=bad)
    # pruning's options beside merge_ratio changed nothing, silently (prune_layer read as where merging ends)
    with pytest.raises(ValueError, match=r"^prune_layer=2 sets token pruning, which merge_ratio=0\.5 does not use .*"
                                         r"drop it, or prune instead with keep_ratio$"):
        model.analyze(clip, merge_ratio=0.5, prune_layer=2)
    with pytest.raises(ValueError, match=r"^keep_by='attention', fuse_dropped=False set token pruning.* drop them"):
        model.analyze_windows(clip, merge_ratio=0.5, keep_by="attention", fuse_dropped=False)
    explicit = model.analyze(clip, merge_ratio=0.5, keep_by="energy", prune_layer=None, fuse_dropped=True)  # defaults
    np.testing.assert_array_equal(explicit.logits, model.analyze(clip, merge_ratio=0.5).logits)
    broken = tiny_ast(seed=7)
    broken.blocks[1].attn = torch.nn.Identity()
    with pytest.raises(av.ConfigError, match="token merging needs attention keys in every block: block 1 uses Identity"):
        broken.analyze(clip, merge_ratio=0.5)


def test_explorer_merged_tokens_overlay(model, clip):
    from traitlets import TraitError

    res = model.analyze(clip, merge_ratio=0.5)
    ex = av.explore(res, overlay="merged")
    assert ex.viewer.patch_groups == res.merge_groups(-1).tolist()
    named = av.explore(res, overlay="merged tokens")  # the and the menu's name for it
    assert named.overlay == "merged" and named.viewer.patch_groups == ex.viewer.patch_groups
    assert "tokens for 95 patches" in ex._current.label
    ex.layer = 0
    assert ex.viewer.patch_groups == res.merge_groups(0).tolist() != res.merge_groups(-1).tolist()
    ex.overlay = "cls"
    assert ex.viewer.patch_groups is None
    plain = av.explore(model.analyze(clip), overlay="merged")
    assert plain.viewer.patch_groups == list(range(95)) and "none" in plain._current.label
    with pytest.raises(TraitError, match="one group id per patch"):
        ex.viewer.patch_groups = [0, 1]
    with pytest.raises(TraitError, match=">= 0"):
        ex.viewer.patch_groups = [-2] * 95
    ex.viewer.set_state({"patch_groups": [0] * 95})  # not writable from the browser: ignored, no error
    assert ex.viewer.patch_groups is None
