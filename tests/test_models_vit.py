"""ViTModel: timm ViTs on non-square spectrograms with overlapping patches, and local checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

import audiovis as av
from audiovis.models.blocks import block_with_attention


@pytest.mark.parametrize(
    "name, stride, dim, prefix",
    [("vit_small_patch16_224", (12, 10), 384, 1), ("deit_tiny_distilled_patch16_224", 8, 192, 2)],
)
def test_grid_and_intermediates_follow_the_stride(name, stride, dim, prefix):
    model = av.ViTModel(name, input_shape=(64, 150), stride=stride, num_classes=6)
    expected = av.PatchGrid((64, 150), (16, 16), stride)
    assert model.grid == expected
    rows, cols = expected.grid_shape
    assert tuple(model.vit.patch_embed.grid_size) == (rows, cols)
    assert model.vit.pos_embed.shape == (1, prefix + rows * cols, dim)
    assert model.num_prefix_tokens == prefix
    x = torch.randn(2, 64, 150)
    with torch.no_grad():
        final, inter = model.forward_intermediates(x, indices=[0, 5])
        logits = model(x)
        reference = model.vit(x[:, None])  # timm's own forward on the same image
    assert final.shape == (2, prefix + rows * cols, dim)
    assert [t.shape for t in inter] == [(2, dim, rows, cols)] * 2
    torch.testing.assert_close(logits, reference)
    assert logits.shape == (2, 6)


def test_analysis_matches_timm_and_explicit_attention_matches_fused():
    model = av.ViTModel("deit_tiny_distilled_patch16_224", input_shape=(64, 120), stride=(10, 10), num_classes=4)
    audio = av.load_audio(np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1, 16000)
    res = model.analyze(audio, attention=True)
    x = res.spectrogram.values[None, None]
    with torch.no_grad():
        _, inter = model.vit.forward_intermediates(x, output_fmt="NLC", return_prefix_tokens=True)
        logits = model.vit(x)
    np.testing.assert_allclose(res.logits, logits[0].numpy(), atol=1e-5)
    for layer, (patches, prefix) in enumerate(inter):
        np.testing.assert_allclose(res.patch_embeddings(layer, norm=False), patches[0].numpy(), atol=1e-5)
        np.testing.assert_allclose(res.prefix_embeddings(layer, norm=False), prefix[0].numpy(), atol=1e-5)
    tokens = torch.from_numpy(res.hidden_states[3].copy())[None]
    with torch.no_grad():
        fused = model.vit.blocks[3](tokens)
        explicit, probs = block_with_attention(model.vit.blocks[3], tokens)
    torch.testing.assert_close(explicit, fused, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(res.attention(3), probs[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(res.attention(3).sum(-1), 1.0, atol=1e-5)


def test_local_checkpoint_through_timm(tmp_path):
    torch.manual_seed(0)
    source = timm.create_model("deit_tiny_patch16_224")
    path = tmp_path / "deit_tiny.pth"
    torch.save(source.state_dict(), path)
    model = av.ViTModel("deit_tiny_patch16_224", input_shape=(128, 300), stride=10, checkpoint=path, num_classes=5)
    state = source.state_dict()
    torch.testing.assert_close(model.vit.patch_embed.proj.weight, state["patch_embed.proj.weight"].sum(1, keepdim=True))
    torch.testing.assert_close(model.vit.blocks[7].mlp.fc2.weight, state["blocks.7.mlp.fc2.weight"])
    rows, cols = model.grid.grid_shape
    expected = timm.layers.resample_abs_pos_embed(state["pos_embed"], new_size=(rows, cols), old_size=(14, 14), num_prefix_tokens=1)
    torch.testing.assert_close(model.vit.pos_embed.detach(), expected)
    wrong = tmp_path / "vit_small.pth"
    torch.save(timm.create_model("vit_small_patch16_224").state_dict(), wrong)
    with pytest.raises(av.CheckpointError, match="size mismatch"):
        av.ViTModel("deit_tiny_patch16_224", input_shape=(128, 300), checkpoint=wrong)


def test_bad_arguments():
    with pytest.raises(av.ConfigError, match="no model named"):
        av.ViTModel("not_a_model", input_shape=(64, 100))
    with pytest.raises(av.ConfigError, match="larger than the input"):
        av.ViTModel("deit_tiny_patch16_224", input_shape=(8, 100))
    with pytest.raises(av.ConfigError, match="num_classes"):
        av.ViTModel("deit_tiny_patch16_224", input_shape=(64, 100), num_classes=0)
    with pytest.raises(FileNotFoundError):
        av.ViTModel("deit_tiny_patch16_224", input_shape=(64, 100), checkpoint="/nonexistent/weights.pth")
