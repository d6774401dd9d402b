"""Token pruning and stride conversion, checked against direct computations and a masked-attention reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import audiovis as av
from audiovis.models.pruning import (
    PrunedModel,
    adapt_pos_embed_to_stride,
    convert_stride,
    forward_pruned,
    num_kept,
    patch_energy,
)

from .frozen_models import tiny_ast, tone


@pytest.fixture(scope="module")
def model():
    return tiny_ast(seed=3)


@pytest.fixture(scope="module")
def inputs(model):
    """Two model-input spectrograms: a low tone in noise, and a high tone with a second partial."""
    a = tone(300.0, noise=0.02, seed=1)
    b = tone(2500.0, noise=0.02, seed=2) + tone(5000.0, amp=0.1)
    return torch.stack([model.spectrogram(av.load_audio(w, 16000)).values for w in (a, b)])


def energy_reference(x: torch.Tensor, grid: av.PatchGrid) -> np.ndarray:
    """Mean of each patch footprint, one patch at a time."""
    values = x.numpy().astype(np.float64)
    out = np.zeros((values.shape[0], grid.num_patches))
    for i in range(grid.num_patches):
        b = grid.bounds(i)
        out[:, i] = values[:, int(b.freq_start):int(b.freq_end), int(b.time_start):int(b.time_end)].mean(axis=(1, 2))
    return out


def energy_score_reference(x: torch.Tensor, grid: av.PatchGrid) -> np.ndarray:
    """Footprint mean minus the (lower) median of the patch's grid row."""
    energy = energy_reference(x, grid)
    rows, cols = grid.grid_shape
    out = np.zeros_like(energy)
    for r in range(rows):
        row = energy[:, r * cols:(r + 1) * cols]
        out[:, r * cols:(r + 1) * cols] = row - np.sort(row, axis=1)[:, [(cols - 1) // 2]]
    return out


def attention_reference(model, x: torch.Tensor, block: int) -> np.ndarray:
    """What the prefix tokens pay each patch in ``block``, read from timm's own (non-fused) softmax."""
    captured = []
    attn = model.blocks[block].attn
    hook = attn.attn_drop.register_forward_hook(lambda mod, inp, out: captured.append(inp[0].detach()))
    fused = attn.fused_attn
    attn.fused_attn = False
    try:
        with torch.no_grad():
            model(x)
    finally:
        attn.fused_attn = fused
        hook.remove()
    probs = captured[0].double()  # [B, heads, T, T]
    return probs[:, :, :2, 2:].mean(dim=(1, 2)).numpy()


def assert_top_k(kept: torch.Tensor, scores: np.ndarray, k: int, slack: float = 0.0) -> None:
    for row, score in zip(kept.numpy(), scores):
        assert len(row) == k and len(set(row.tolist())) == k
        assert np.all(np.diff(row) > 0), "kept indices come in token order"
        dropped = np.setdiff1d(np.arange(score.size), row)
        assert score[row].min() >= score[dropped].max() - slack


def test_patch_energy_is_the_footprint_mean(model):
    x = torch.randn(2, *model.input_shape)
    np.testing.assert_allclose(patch_energy(x, model.grid).numpy(), energy_reference(x, model.grid), atol=1e-5)


@pytest.mark.parametrize("keep_ratio", [0.25, 0.5, 0.8])
def test_energy_keeps_the_top_k_patches(model, inputs, keep_ratio):
    k = num_kept(model.grid.num_patches, keep_ratio)
    with torch.no_grad():
        out = forward_pruned(model, inputs, keep_ratio=keep_ratio, keep_by="energy")
        plain = forward_pruned(model, inputs, keep_ratio=keep_ratio, keep_by="energy", fuse_dropped=False)
    assert out.kept.shape == (2, k) and out.tokens.shape[1] == 2 + k + 1 and out.fused
    assert plain.tokens.shape[1] == 2 + k and not plain.fused
    assert torch.equal(out.kept, plain.kept)
    assert_top_k(out.kept, energy_score_reference(inputs, model.grid), k, slack=1e-6)
    assert not torch.equal(out.kept[0], out.kept[1]), "each clip keeps its own patches"


def test_energy_score_prefers_an_event_over_a_louder_background_band(model):
    """A loud low band everywhere (hum, brown noise) must not crowd out a quieter event higher up."""
    x = torch.zeros(1, *model.input_shape)
    x[0, :20] = 3.0  # loud, steady: rows 0-1 of the grid
    x[0, 40:50, 60:100] = 1.0  # quieter, short: the event
    grid = model.grid
    event = {i for i in range(grid.num_patches)
             if grid.bounds(i).freq_start < 50 and grid.bounds(i).freq_end > 40
             and grid.bounds(i).time_start < 100 and grid.bounds(i).time_end > 60}
    assert len(event) == 10  # 2 rows x 5 columns of footprints touch the event
    with torch.no_grad():
        kept = forward_pruned(model, x, keep_ratio=8 / grid.num_patches).kept[0].tolist()
        raw = patch_energy(x, grid)[0]
    assert len(kept) == 8 and set(kept) <= event, (kept, sorted(event))
    assert set(torch.topk(raw, 8).indices.tolist()).isdisjoint(event), "raw energy would keep the loud band"


@pytest.mark.parametrize("prune_layer", [1, 2])
def test_attention_keeps_the_top_k_patches(model, inputs, prune_layer):
    k = num_kept(model.grid.num_patches, 0.4)
    with torch.no_grad():
        out = forward_pruned(model, inputs, keep_ratio=0.4, keep_by="attention", prune_layer=prune_layer)
    assert out.prune_layer == prune_layer
    assert_top_k(out.kept, attention_reference(model, inputs, prune_layer - 1), k, slack=1e-7)


@pytest.mark.parametrize("keep_by", ["energy", "attention"])
def test_keep_ratio_one_is_the_unpruned_model_exactly(model, inputs, keep_by):
    with torch.no_grad():
        full_tokens = model.forward_features(inputs)
        out = forward_pruned(model, inputs, keep_ratio=1.0, keep_by=keep_by)
    assert torch.equal(out.tokens, full_tokens)
    assert torch.equal(out.logits, model.forward_head(full_tokens))
    assert torch.equal(out.kept, torch.arange(model.grid.num_patches).expand(2, -1))


def masked_reference(
    model, x: torch.Tensor, kept: torch.Tensor, prune_layer: int, positions: str = "own", fuse: bool = False
) -> torch.Tensor:
    """Every token runs every block in the full layout; returns the final (normed) tokens ``[B, P + N, D]``.

    From ``prune_layer`` on, without ``fuse`` no token may attend to a dropped patch; with ``fuse`` every
    dropped patch is replaced by the mean of the dropped patches there and all attend normally (what
    one fused token with proportional attention must equal). ``positions="first_k"`` gives the dropped
    patches' slots away: the kept patches get the position embeddings of the first k patches (a wrong
    pruning); it returns the compact prefix + kept tokens.
    """
    batch, k = kept.shape
    p = model.num_prefix_tokens
    patches = model.embed_patches(x)
    if positions == "first_k":
        tokens = torch.cat([model.cls_token.expand(batch, -1, -1), model.dist_token.expand(batch, -1, -1)], 1)
        gathered = torch.gather(patches, 1, kept[..., None].expand(-1, -1, patches.shape[-1]))
        return model.norm(model.run_blocks(torch.cat([tokens, gathered], 1) + model.pos_embed[:, : p + k]))
    tokens = model.add_positions(patches)
    allowed = torch.zeros(batch, tokens.shape[1], dtype=torch.bool)
    allowed[:, :p] = True
    allowed[torch.arange(batch)[:, None], kept + p] = True
    mask = torch.zeros(batch, 1, 1, tokens.shape[1]).masked_fill(~allowed[:, None, None, :], float("-inf"))
    blocks = list(model.backbone.blocks)
    for i in range(len(blocks) + 1):
        if i == prune_layer and fuse:
            dropped = ~allowed
            mean = (tokens * dropped[..., None]).sum(1, keepdim=True) / dropped.sum(1)[:, None, None]
            tokens = torch.where(dropped[..., None], mean, tokens)
        if i < len(blocks):
            tokens = blocks[i](tokens, attn_mask=mask) if i >= prune_layer and not fuse else blocks[i](tokens)
    return model.backbone.norm(tokens)


def compact(full: torch.Tensor, kept: torch.Tensor, p: int) -> torch.Tensor:
    """Prefix + kept rows of full-layout tokens."""
    rows = torch.cat([torch.arange(p).expand(kept.shape[0], -1), kept + p], 1)
    return torch.gather(full, 1, rows[..., None].expand(-1, -1, full.shape[-1]))


def dropped_rows(full: torch.Tensor, kept: torch.Tensor, p: int) -> list[torch.Tensor]:
    """Each clip's dropped-patch rows of full-layout tokens."""
    out = []
    for clip, keep in zip(full, kept):
        mask = torch.ones(full.shape[1] - p, dtype=torch.bool)
        mask[keep] = False
        out.append(clip[p:][mask])
    return out


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("keep_by,prune_layer", [("energy", 0), ("energy", 1), ("attention", 1), ("attention", 3)])
def test_pruned_tokens_keep_their_position_embeddings(model, inputs, keep_by, prune_layer, fuse):
    p = model.num_prefix_tokens
    with torch.no_grad():
        out = forward_pruned(model, inputs, keep_ratio=0.5, keep_by=keep_by, prune_layer=prune_layer, fuse_dropped=fuse)
        reference = masked_reference(model, inputs, out.kept, prune_layer, fuse=fuse)
        wrong = masked_reference(model, inputs, out.kept, prune_layer, positions="first_k")
    k = out.kept.shape[1]
    assert out.tokens.shape[1] == p + k + fuse
    torch.testing.assert_close(out.tokens[:, : p + k], compact(reference, out.kept, p), atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(out.logits, model.forward_head(reference), atol=2e-5, rtol=1e-4)
    if fuse:  # the fused token ends where every one of the copies it stands for ends
        for fused, rows in zip(out.tokens[:, -1], dropped_rows(reference, out.kept, p)):
            torch.testing.assert_close(rows, fused.expand_as(rows), atol=2e-5, rtol=1e-4)
    if prune_layer == 0:
        assert (out.tokens[:, : p + k] - wrong).abs().max() > 1e-2, "the reference tells right positions from wrong ones"


def test_fuse_dropped_is_not_ignored(model, inputs):
    with torch.no_grad():
        fused = forward_pruned(model, inputs, keep_ratio=0.3)
        plain = forward_pruned(model, inputs, keep_ratio=0.3, fuse_dropped=False)
    assert torch.equal(fused.kept, plain.kept)
    assert (fused.logits - plain.logits).abs().max() > 1e-4


def test_pruning_a_timm_vit_with_one_prefix_token():
    torch.manual_seed(0)
    vit = av.ViTModel("vit_tiny_patch16_224", input_shape=(64, 128), num_classes=3).eval()
    assert vit.num_prefix_tokens == 1
    x = torch.randn(2, 64, 128)
    with torch.no_grad():
        for keep_by, layer in (("energy", 0), ("attention", 4)):
            for fuse in (True, False):
                out = forward_pruned(vit, x, keep_ratio=0.5, keep_by=keep_by, prune_layer=layer, fuse_dropped=fuse)
                assert out.tokens.shape == (2, 1 + 16 + fuse, 192)
                reference = masked_reference(vit, x, out.kept, layer, fuse=fuse)
                torch.testing.assert_close(out.tokens[:, :17], compact(reference, out.kept, 1), atol=2e-5, rtol=1e-4)
        assert torch.equal(forward_pruned(vit, x, keep_ratio=1.0).logits, vit(x))
    with pytest.raises(av.ConfigError, match="needs an ASTModel"):
        convert_stride(vit, 16)


def test_an_average_pooling_head_counts_the_fused_token_for_every_dropped_patch():
    torch.manual_seed(1)
    vit = av.ViTModel("vit_tiny_patch16_224", input_shape=(64, 128), num_classes=3, global_pool="avg", class_token=False).eval()
    assert vit.head_reads_patches and vit.num_prefix_tokens == 0
    x = torch.randn(2, 64, 128)
    with torch.no_grad():
        out = forward_pruned(vit, x, keep_ratio=0.25, prune_layer=2)
        reference = masked_reference(vit, x, out.kept, 2, fuse=True)
        torch.testing.assert_close(out.logits, vit.forward_head(reference), atol=2e-5, rtol=1e-4)
        plain = forward_pruned(vit, x, keep_ratio=0.25, prune_layer=2, fuse_dropped=False)
        torch.testing.assert_close(plain.logits, vit.forward_head(plain.tokens), atol=0, rtol=0)


def test_batch_items_are_pruned_independently(model, inputs):
    with torch.no_grad():
        both = forward_pruned(model, inputs, keep_ratio=0.3, keep_by="attention")
        single = [forward_pruned(model, inputs[i:i + 1], keep_ratio=0.3, keep_by="attention") for i in range(2)]
    for i, one in enumerate(single):
        assert torch.equal(both.kept[i], one.kept[0])
        torch.testing.assert_close(both.logits[i], one.logits[0], atol=1e-5, rtol=1e-5)


def test_pruned_model_module(model, inputs):
    pruned = PrunedModel(model, 0.5, keep_by="energy")
    assert pruned.num_tokens == num_kept(model.grid.num_patches, 0.5) == round(0.5 * model.grid.num_patches)
    with torch.no_grad():
        expected = forward_pruned(model, inputs, keep_ratio=0.5).logits
        assert torch.equal(pruned(inputs), expected)
    assert "keep_ratio=0.5" in repr(pruned)


@pytest.mark.parametrize("bad", [0, 0.0, -0.5, 1.5, float("nan"), "half", True])
def test_bad_keep_ratio(model, inputs, bad):
    with pytest.raises(ValueError, match="keep_ratio"):
        forward_pruned(model, inputs, keep_ratio=bad)


def test_bad_keep_by_and_prune_layer(model, inputs):
    with pytest.raises(ValueError, match="keep_by"):
        forward_pruned(model, inputs, keep_ratio=0.5, keep_by="loudness")
    with pytest.raises(ValueError, match=r"prune_layer must be in \[1, 3\]"):
        forward_pruned(model, inputs, keep_ratio=0.5, keep_by="attention", prune_layer=0)
    with pytest.raises(ValueError, match=r"prune_layer must be in \[0, 3\]"):
        forward_pruned(model, inputs, keep_ratio=0.5, prune_layer=4)
    with pytest.raises(ValueError, match="model input must be"):
        forward_pruned(model, inputs[:, :10], keep_ratio=0.5)


def bilinear(grid: np.ndarray, u: float, v: float) -> np.ndarray:
    """``grid[u, v]`` at a fractional position, clamped to the grid."""
    u = min(max(u, 0.0), grid.shape[0] - 1)
    v = min(max(v, 0.0), grid.shape[1] - 1)
    u0, v0 = int(np.floor(u)), int(np.floor(v))
    u1, v1 = min(u0 + 1, grid.shape[0] - 1), min(v0 + 1, grid.shape[1] - 1)
    a, b = u - u0, v - v0
    return (1 - a) * (1 - b) * grid[u0, v0] + (1 - a) * b * grid[u0, v1] + a * (1 - b) * grid[u1, v0] + a * b * grid[u1, v1]


def test_stride_16_conversion_of_an_ast_base_grid():
    base = tiny_ast(seed=5, num_mel_bins=128, max_length=1024, num_hidden_layers=1, num_labels=3)
    assert base.grid.grid_shape == (12, 101)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    coarse = convert_stride(base, 16)

    assert coarse.config.frequency_stride == coarse.config.time_stride == 16
    assert coarse.grid == av.PatchGrid((128, 1024), (16, 16), (16, 16))
    assert coarse.grid.grid_shape == (8, 64) and coarse.grid.num_patches == 512
    assert coarse.patch_embed.proj.stride == (16, 16)
    new_state = coarse.state_dict()
    assert new_state.keys() == before.keys()
    for name, value in before.items():
        if name == "pos_embed":
            assert tuple(new_state[name].shape) == (1, 2 + 512, 48)
        else:
            assert new_state[name].shape == value.shape and torch.equal(new_state[name], value), name
    assert all(torch.equal(v, base.state_dict()[k]) for k, v in before.items()), "the source model is unchanged"

    old = before["pos_embed"][0, 2:].reshape(12, 101, -1).double().numpy()
    new = new_state["pos_embed"][0, 2:].reshape(8, 64, -1).double().numpy()
    torch.testing.assert_close(new_state["pos_embed"][:, :2], before["pos_embed"][:, :2])
    np.testing.assert_array_equal(new[5, 5], old[8, 8].astype(np.float32))  # both patches start at bin 80, frame 80
    for r, c in [(0, 0), (1, 1), (3, 17), (7, 63), (6, 40)]:
        np.testing.assert_allclose(new[r, c], bilinear(old, 1.6 * r, 1.6 * c), atol=1e-6)

    x = torch.randn(2, 128, 1024)
    with torch.no_grad():
        assert coarse(x).shape == (2, 3)
        assert coarse.forward_features(x).shape == (2, 514, 48)


def test_stride_conversion_errors():
    model = tiny_ast()
    for bad in (0, 16.0, (16,), "16", (16, True)):
        with pytest.raises(av.ConfigError, match="stride must be"):
            convert_stride(model, bad)
    assert convert_stride(model, (16, 8)).grid.stride == (16, 8)
    with pytest.raises(av.ConfigError, match="input"):
        adapt_pos_embed_to_stride(model.pos_embed, model.grid, av.PatchGrid((64, 100), 16, 16), 2)
    with pytest.raises(av.ConfigError, match="does not fit"):
        adapt_pos_embed_to_stride(model.pos_embed[:, :-1], model.grid, av.PatchGrid((64, 200), 16, 16), 2)


# -- model.analyze(keep_ratio=...) -----------------------------------------------------------------


@pytest.fixture(scope="module")
def clip():
    return av.load_audio(tone(1200.0, noise=0.03, seed=4) + tone(300.0, amp=0.1), 16000)


@pytest.mark.parametrize("keep_by", ["energy", "attention"])
def test_analyze_keep_ratio_one_is_the_unpruned_analysis(model, clip, keep_by):
    plain = model.analyze(clip)
    same = model.analyze(clip, keep_ratio=1.0, keep_by=keep_by)
    np.testing.assert_array_equal(same.logits, plain.logits)
    np.testing.assert_array_equal(same.hidden_states, plain.hidden_states)
    np.testing.assert_array_equal(same.kept_patches, np.arange(model.grid.num_patches))
    assert same.pruned_patches.size == 0 and same.prune_layer is None
    np.testing.assert_array_equal(same.saliency(0), plain.saliency(0))


def copies_reference(model, x: torch.Tensor, kept: np.ndarray, prune_layer: int, fuse: bool):
    """Explicit-attention pass in the full layout: the tokens entering every block and each block's
    attention ``[heads, T, T]``. From ``prune_layer`` on the dropped patches are replaced by their mean
    (``fuse``) or masked out as keys (not ``fuse``)."""
    from audiovis.models.blocks import block_with_attention

    p = model.num_prefix_tokens
    tokens = model.add_positions(model.embed_patches(x))
    dropped = torch.ones(tokens.shape[1], dtype=torch.bool)
    dropped[:p] = False
    dropped[torch.from_numpy(kept.copy()) + p] = False
    bias = torch.zeros(1, tokens.shape[1]).masked_fill(dropped[None], float("-inf"))
    states, attentions = [tokens], []
    for i, block in enumerate(model.backbone.blocks):
        if i == prune_layer and fuse:
            tokens = torch.where(dropped[None, :, None], tokens[:, dropped].mean(1, keepdim=True), tokens)
        masked = i >= prune_layer and not fuse
        tokens, probs = block_with_attention(block, tokens, bias if masked else None)
        states.append(tokens)
        attentions.append(probs[0])
    return states, attentions, dropped


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("keep_by,prune_layer", [("energy", 0), ("attention", 2)])
def test_pruned_analysis(model, clip, keep_by, prune_layer, fuse):
    res = model.analyze(clip, keep_ratio=0.4, keep_by=keep_by, prune_layer=prune_layer, fuse_dropped=fuse)
    x = res.spectrogram.values[None]
    with torch.no_grad():
        out = forward_pruned(model, x, keep_ratio=0.4, keep_by=keep_by, prune_layer=prune_layer, fuse_dropped=fuse)
        states, attentions, dropped = copies_reference(model, x, res.kept_patches, prune_layer, fuse)
    k, n, p = out.kept.shape[1], model.grid.num_patches, 2
    np.testing.assert_array_equal(res.kept_patches, out.kept[0].numpy())
    np.testing.assert_array_equal(np.sort(np.concatenate([res.kept_patches, res.pruned_patches])), np.arange(n))
    assert res.prune_layer == prune_layer and res.pruned_patches.size == n - k and res.fused_dropped == fuse
    np.testing.assert_allclose(res.logits, out.logits[0].numpy(), atol=1e-5)
    np.testing.assert_array_equal(np.flatnonzero(dropped.numpy()), res.pruned_patches + p)

    kept_rows = np.r_[np.arange(p), res.kept_patches + p]
    np.testing.assert_allclose(res.tokens(-1)[kept_rows], out.tokens[0, : p + k].numpy(), atol=1e-5)
    rows = res.pruned_patches + p
    for layer, state in enumerate(res.hidden_states):
        np.testing.assert_allclose(state[kept_rows], states[layer][0, kept_rows].numpy(), atol=2e-5)
        if layer <= prune_layer:
            np.testing.assert_allclose(state[rows], states[layer][0, rows].numpy(), atol=2e-5)
        elif fuse:  # a dropped patch is one of the copies the fused token stands for
            np.testing.assert_allclose(state[rows], states[layer][0, rows].numpy(), atol=2e-5)
        else:  # a dropped patch keeps the state it was dropped with
            np.testing.assert_array_equal(state[rows], res.hidden_states[prune_layer][rows])

    for layer in range(model.num_layers):
        att = res.attention(layer)
        reference = attentions[layer].numpy()
        if layer >= prune_layer and not fuse:
            assert np.all(att[:, rows, :] == 0) and np.all(att[:, :, rows] == 0)
            np.testing.assert_allclose(att[:, kept_rows], reference[:, kept_rows], atol=1e-6)
        else:
            np.testing.assert_allclose(att, reference, atol=1e-6)
            np.testing.assert_allclose(att.sum(-1), 1.0, atol=1e-5)
    assert res.rollout().shape == (n,) and np.all(np.isfinite(res.rollout()))


@pytest.mark.parametrize("fuse", [True, False])
def test_pruned_saliency_follows_the_pruned_model(model, clip, fuse):
    res = model.analyze(clip, keep_ratio=0.5, keep_by="energy", prune_layer=1, fuse_dropped=fuse)
    kept = torch.from_numpy(res.kept_patches.copy())
    x = res.spectrogram.values[None]
    patches = model.embed_patches(x).detach().requires_grad_(True)
    p = model.num_prefix_tokens
    tokens = model.add_positions(patches)
    dropped = torch.ones(tokens.shape[1], dtype=torch.bool)
    dropped[:p] = False
    dropped[kept + p] = False
    mask = torch.zeros(1, 1, 1, tokens.shape[1]).masked_fill(dropped, float("-inf"))
    for i, block in enumerate(model.blocks):
        if i == 1 and fuse:
            tokens = torch.where(dropped[None, :, None], tokens[:, dropped].mean(1, keepdim=True), tokens)
        tokens = block(tokens, attn_mask=mask) if i >= 1 and not fuse else block(tokens)
    c = res.class_index(None)
    (grad,) = torch.autograd.grad(model.forward_head(model.norm(tokens))[0, c], patches)
    expected = (grad * patches.detach()).sum(-1)[0].numpy()
    np.testing.assert_allclose(res.saliency(c), expected, atol=1e-5, rtol=1e-3)
    assert np.abs(res.saliency(c) - model.analyze(clip).saliency(c)).max() > 1e-6


def test_analyze_rejects_bad_pruning_arguments(model, clip):
    with pytest.raises(ValueError, match="keep_ratio"):
        model.analyze(clip, keep_ratio=0)
    with pytest.raises(ValueError, match="keep_by"):
        model.analyze(clip, keep_ratio=1.0, keep_by="loud")


# -- laziness: the pruned pass keeps compact states; attention and full layouts only when asked ---------------


def test_pruned_analyze_computes_no_attention_until_asked(model, clip, monkeypatch):
    from audiovis.models import base, blocks
    from audiovis.models.reduction import ReducedStates

    asked: list[int] = []
    real = ReducedStates.attention
    monkeypatch.setattr(ReducedStates, "attention", lambda self, block: asked.append(block) or real(self, block))

    def no_explicit_attention(*args, **kwargs):
        raise AssertionError("the pruned pass formed a full attention map")

    monkeypatch.setattr(base, "block_with_attention", no_explicit_attention)  # run_blocks
    monkeypatch.setattr(blocks, "block_with_attention", no_explicit_attention)  # the reduced passes
    k = num_kept(model.grid.num_patches, 0.4)
    for keep_by in ("energy", "attention"):
        res = model.analyze(clip, keep_ratio=0.4, keep_by=keep_by)
        assert asked == [] and res._attn == {}
        states = res._hidden
        assert isinstance(states, ReducedStates)
        assert states.states[-1].shape == (2 + k + 1, model.config.hidden_size), "the last layer is kept compact"
    monkeypatch.undo()
    monkeypatch.setattr(ReducedStates, "attention", lambda self, block: asked.append(block) or real(self, block))
    lazy = model.analyze(clip, keep_ratio=0.4)
    lazy.attention(1)
    assert asked == [1]
    eager = model.analyze(clip, keep_ratio=0.4, attention=True)
    for layer in range(model.num_layers):
        np.testing.assert_array_equal(eager.attention(layer), lazy.attention(layer))
    np.testing.assert_array_equal(eager.rollout(), lazy.rollout())


def test_reduction_description_is_checked(model, clip):
    from audiovis.models.reduction import Reduction

    assert Reduction.from_options(keep_ratio=0.5) == Reduction("prune", 0.5, "energy", None, True)
    assert Reduction.from_options(merge_ratio=0.25) == Reduction("merge", 0.25, "keys", None, True)
    assert Reduction.from_options(keep_ratio=0.5, keep_by="attention").resolve(model).layer == (0,)  # staged, before block 0
    assert Reduction.from_options(keep_ratio=0.5, keep_by="attention", prune_layer=2).resolve(model).layer == 2
    with pytest.raises(ValueError, match="not both"):
        model.analyze(clip, keep_ratio=0.5, merge_ratio=0.5)
    with pytest.raises(ValueError, match="fuse_dropped must be True or False"):
        model.analyze(clip, keep_ratio=0.5, fuse_dropped="yes")
    with pytest.raises(ValueError, match=r"prune_layer must be in \[0, 3\]"):
        model.analyze(clip, keep_ratio=0.5, prune_layer=7)
