"""ASTModel against transformers' ASTForAudioClassification on random weights, loaded every way."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import ASTConfig as HFConfig
from transformers import ASTFeatureExtractor, ASTForAudioClassification

import audiovis as av
from audiovis.errors import CheckpointError

SR = 16000
LABELS = ["dog", "cat", "siren", "rain", "speech", "music", "engine"]
# Non-default everything: strides differ per axis, eps and front-end statistics are not HF's defaults.
HF_SETTINGS = dict(
    hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=96,
    num_mel_bins=48, max_length=128, frequency_stride=10, time_stride=12, layer_norm_eps=1e-5,
    id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)},
)
FBANK = dict(mean=-5.0, std=3.0)
# What a bare weights file cannot say about itself.
HINTS = dict(
    num_attention_heads=4, num_mel_bins=48, max_length=128, frequency_stride=10, time_stride=12,
    layer_norm_eps=1e-5, classifier_layer_norm_eps=1e-5, fbank_mean=FBANK["mean"], fbank_std=FBANK["std"],
    labels=LABELS, multi_label=False,
)


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-zero random values in every tensor (HF zero-initialises tokens and position embeddings)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if "layernorm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * noise)
            else:
                p.copy_(0.15 * noise)


def waveform(seconds: float = 1.25, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    chirp = 0.3 * np.sin(2 * np.pi * (300 * t + 2000 * t**2))
    return (chirp + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def hf_to_original(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The original AST repository's layout (DataParallel ``module.v.*`` timm names), written out by hand."""
    p = "audio_spectrogram_transformer."
    hidden = state[p + "embeddings.cls_token"].shape[-1]
    layers = 1 + max(int(k.split(".")[3]) for k in state if ".encoder.layer." in k)
    out = {
        "module.v.cls_token": state[p + "embeddings.cls_token"],
        "module.v.dist_token": state[p + "embeddings.distillation_token"],
        "module.v.pos_embed": state[p + "embeddings.position_embeddings"],
        "module.v.patch_embed.proj.weight": state[p + "embeddings.patch_embeddings.projection.weight"],
        "module.v.patch_embed.proj.bias": state[p + "embeddings.patch_embeddings.projection.bias"],
        "module.v.norm.weight": state[p + "layernorm.weight"],
        "module.v.norm.bias": state[p + "layernorm.bias"],
        "module.mlp_head.0.weight": state["classifier.layernorm.weight"],
        "module.mlp_head.0.bias": state["classifier.layernorm.bias"],
        "module.mlp_head.1.weight": state["classifier.dense.weight"],
        "module.mlp_head.1.bias": state["classifier.dense.bias"],
        # the unused ImageNet heads the original model still carries
        "module.v.head.weight": torch.zeros(1000, hidden), "module.v.head.bias": torch.zeros(1000),
        "module.v.head_dist.weight": torch.zeros(1000, hidden), "module.v.head_dist.bias": torch.zeros(1000),
    }
    for i in range(layers):
        layer = f"{p}encoder.layer.{i}."
        v = f"module.v.blocks.{i}."
        for kind in ("weight", "bias"):
            out[v + "attn.qkv." + kind] = torch.cat(
                [state[f"{layer}attention.attention.{n}.{kind}"] for n in ("query", "key", "value")]
            )
            out[v + "attn.proj." + kind] = state[f"{layer}attention.output.dense.{kind}"]
            out[v + "norm1." + kind] = state[f"{layer}layernorm_before.{kind}"]
            out[v + "norm2." + kind] = state[f"{layer}layernorm_after.{kind}"]
            out[v + "mlp.fc1." + kind] = state[f"{layer}intermediate.dense.{kind}"]
            out[v + "mlp.fc2." + kind] = state[f"{layer}output.dense.{kind}"]
    return {k: v.clone() for k, v in out.items()}


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = ASTForAudioClassification(HFConfig(**HF_SETTINGS)).eval()
    randomize(model)
    path = tmp_path_factory.mktemp("hf_ast")
    model.save_pretrained(path)
    ASTFeatureExtractor(num_mel_bins=48, max_length=128, **FBANK).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def hf_bin_dir(hf_dir, tmp_path_factory):
    """The same model as a Hugging Face directory holding ``pytorch_model.bin`` instead of safetensors.

    transformers 4's ``save_pretrained(path, safe_serialization=False)`` wrote exactly this: config.json and
    ``torch.save`` of the state dict in the hub's key names (transformers 5 writes safetensors only).
    """
    path = tmp_path_factory.mktemp("hf_ast_bin")
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(hf_dir / name, path / name)
    torch.save(load_file(hf_dir / "model.safetensors"), path / "pytorch_model.bin")
    return path


@pytest.fixture(scope="module")
def reference(hf_dir):
    """HF's outputs (eager attention) for the test waveform."""
    model = ASTForAudioClassification.from_pretrained(hf_dir, attn_implementation="eager").eval()
    fe = ASTFeatureExtractor.from_pretrained(hf_dir)
    inputs = fe(waveform(), sampling_rate=SR, return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True, output_attentions=True)
        base = model.audio_spectrogram_transformer(inputs["input_values"])
    return dict(
        model=model,
        input_values=inputs["input_values"],
        logits=out.logits[0],
        hidden=[h[0] for h in out.hidden_states],
        attentions=[a[0] for a in out.attentions],
        last=base.last_hidden_state[0],
        pooled=base.pooler_output[0],
    )


def _populate_hub_cache(cache, repo_id: str, files) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in files:
        shutil.copy(f, snapshot / f.name)


@pytest.fixture(params=["hf_dir", "hf_dir_pytorch_model_bin", "hub_id", "original_pth", "safetensors"])
def loaded(request, hf_dir, hf_bin_dir, tmp_path, monkeypatch):
    kind = request.param
    if kind == "hf_dir":
        return av.ASTModel.from_pretrained(hf_dir)
    if kind == "hf_dir_pytorch_model_bin":
        assert sorted(p.name for p in hf_bin_dir.iterdir()) == ["config.json", "preprocessor_config.json", "pytorch_model.bin"]
        return av.ASTModel.from_pretrained(hf_bin_dir)
    if kind == "hub_id":
        import huggingface_hub.constants

        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        _populate_hub_cache(tmp_path, "audiovis-test/tiny-ast", list(hf_dir.iterdir()))
        return av.ASTModel.from_pretrained("audiovis-test/tiny-ast", cache_dir=tmp_path)
    state = load_file(hf_dir / "model.safetensors")
    if kind == "original_pth":
        path = tmp_path / "audioset_tiny.pth"
        torch.save(hf_to_original(state), path)
        hints = HINTS
    else:
        path = tmp_path / "weights.safetensors"
        save_file(state, path)
        hints = {**HINTS, "classifier_layer_norm_eps": None}
    return av.ASTModel.from_pretrained(path, config=hints)


def test_parity_with_transformers(loaded, reference):
    audio = av.load_audio(waveform(), SR)
    res = loaded.analyze(audio, attention=True)
    np.testing.assert_allclose(res.spectrogram.numpy(), reference["input_values"][0].T.numpy(), atol=1e-5)
    assert np.abs(res.logits - reference["logits"].numpy()).max() <= 1e-4
    assert res.labels == LABELS
    assert len(res.hidden_states) == len(reference["hidden"])
    for ours, theirs in zip(res.hidden_states, reference["hidden"]):
        np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-4)
    for layer, theirs in enumerate(reference["attentions"]):
        np.testing.assert_allclose(res.attention(layer), theirs.numpy(), atol=1e-5)
    np.testing.assert_allclose(res.tokens(-1), reference["last"].numpy(), atol=1e-4)
    np.testing.assert_allclose(res.clip_embedding(), reference["pooled"].numpy(), atol=1e-4)
    # softmax: the HF config is single-label (problem_type is absent and there are 7 classes)
    np.testing.assert_allclose(res.probabilities, torch.softmax(reference["logits"], -1).numpy(), atol=1e-5)


def test_lazy_attention_equals_eager(hf_dir, reference):
    model = av.ASTModel.from_pretrained(hf_dir)
    res = model.analyze(av.load_audio(waveform(), SR))
    assert res._attn == {}  # nothing computed until asked
    for layer in (-1, 0, 1):
        np.testing.assert_allclose(res.attention(layer), reference["attentions"][layer].numpy(), atol=1e-5)
    np.testing.assert_allclose(res.attention(1, head=2), reference["attentions"][1][2].numpy(), atol=1e-5)


def test_rollout_similarity_saliency_match_direct_computation(hf_dir, reference):
    model = av.ASTModel.from_pretrained(hf_dir)
    res = model.analyze(av.load_audio(waveform(), SR))
    # rollout from HF's attentions, residual-aware, prefix rows averaged
    tokens = reference["hidden"][0].shape[0]
    joint = np.eye(tokens)
    for att in reference["attentions"]:
        a = 0.5 * att.double().mean(0).numpy() + 0.5 * np.eye(tokens)
        joint = (a / a.sum(-1, keepdims=True)) @ joint
    np.testing.assert_allclose(res.rollout(), joint[:2, 2:].mean(0), atol=1e-5)
    # similarity on layer 1 (raw hidden states) and on the final (normed) layer
    for layer, emb in ((1, reference["hidden"][2][2:]), (-1, reference["last"][2:])):
        emb = emb.double().numpy()
        ref = emb[[3, 7, 8]].mean(0)
        cos = emb @ ref / (np.linalg.norm(emb, axis=1) * np.linalg.norm(ref))
        np.testing.assert_allclose(res.similarity([3, 7, 8], layer=layer), cos, atol=1e-5)
    # saliency: gradient x patch embedding, through HF's own model
    hf = reference["model"]
    captured = {}

    def keep(module, args, output):
        output.retain_grad()
        captured["emb"] = output

    handle = hf.audio_spectrogram_transformer.embeddings.patch_embeddings.register_forward_hook(keep)
    try:
        logits = hf(reference["input_values"]).logits
        logits[0, 4].backward()
    finally:
        handle.remove()
        hf.zero_grad(set_to_none=True)
    emb = captured["emb"]
    expected = (emb.grad * emb).sum(-1)[0].detach().numpy()
    np.testing.assert_allclose(res.saliency(4), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(res.saliency("speech"), expected, rtol=1e-4, atol=1e-5)


def test_save_pretrained_is_the_hf_format(tmp_path):
    torch.manual_seed(3)
    config = av.ASTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48,
        num_mel_bins=32, max_length=64, time_stride=16, num_labels=3, labels=["a", "b", "c"],
        layer_norm_eps=1e-6, fbank_mean=-3.0, fbank_std=2.0,
    )
    ours = av.ASTModel(config).eval()
    with torch.no_grad():
        ours.pos_embed.normal_()
        ours.fc_norm.weight.uniform_(0.5, 1.5)
    ours.save_pretrained(tmp_path)
    hf = ASTForAudioClassification.from_pretrained(tmp_path).eval()
    assert hf.config.id2label == {0: "a", 1: "b", 2: "c"}
    fe = ASTFeatureExtractor.from_pretrained(tmp_path)
    assert (fe.mean, fe.std, fe.max_length) == (-3.0, 2.0, 64)
    wav = waveform(0.5, seed=1)
    with torch.no_grad():
        theirs = hf(**fe(wav, sampling_rate=SR, return_tensors="pt")).logits[0].numpy()
    np.testing.assert_allclose(ours.analyze(av.load_audio(wav, SR)).logits, theirs, atol=1e-5)
    again = av.ASTModel.from_pretrained(tmp_path)
    assert again.config == config
    for (k, a), b in zip(ours.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k


def test_forward_and_intermediates_follow_the_grid(hf_dir):
    model = av.ASTModel.from_pretrained(hf_dir)
    rows, cols = model.grid.grid_shape
    assert (rows, cols) == ((48 - 16) // 10 + 1, (128 - 16) // 12 + 1)
    assert tuple(model.patch_embed.grid_size) == (rows, cols)
    assert tuple(model.patch_embed.dynamic_feat_size((48, 128))) == (rows, cols)
    assert model.patch_embed.feat_ratio(as_scalar=False) == (10, 12)
    x = torch.randn(2, 48, 128)
    with torch.no_grad():
        final, inter = model.forward_intermediates(x)
        feats = model.forward_features(x)
        np.testing.assert_allclose(model(x), model.forward_head(feats), atol=1e-6)
        # timm's intermediates are block outputs; the first patch of row 1 is token 2 + cols
        res_hidden = model.run_blocks(model.embed(x), stop=1)
    assert final.shape == (2, 2 + rows * cols, 64)
    assert [t.shape for t in inter] == [(2, 64, rows, cols)] * 3
    np.testing.assert_allclose(inter[0][:, :, 1, 0], res_hidden[:, 2 + cols], atol=1e-5)
    with pytest.raises(ValueError, match=r"\[batch, 48, 128\]"):
        model(torch.randn(1, 128, 48))


def test_ast_base_counts_match_transformers():
    ours = av.ASTModel()
    theirs = ASTForAudioClassification(HFConfig(num_labels=527))
    assert ours.grid.num_patches == 12 * 101 == ours.pos_embed.shape[1] - 2
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in theirs.parameters())
    assert 86.5e6 < count < 86.7e6
    assert ours.labels[0] == "Speech" and ours.labels[137] == "Music" and len(ours.labels) == 527


def _ast_position_adaptation(pos: torch.Tensor, f_dim: int, t_dim: int) -> torch.Tensor:
    """AST's own code (ASTModel.__init__, audioset_pretrain branch) for a 12 x 101 checkpoint."""
    dim = pos.shape[-1]
    new_pos_embed = pos[:, 2:, :].detach().reshape(1, 1212, dim).transpose(1, 2).reshape(1, dim, 12, 101)
    if t_dim < 101:
        new_pos_embed = new_pos_embed[:, :, :, 50 - int(t_dim / 2): 50 - int(t_dim / 2) + t_dim]
    else:
        new_pos_embed = torch.nn.functional.interpolate(new_pos_embed, size=(12, t_dim), mode="bilinear")
    if f_dim < 12:
        new_pos_embed = new_pos_embed[:, :, 6 - int(f_dim / 2): 6 - int(f_dim / 2) + f_dim, :]
    elif f_dim > 12:
        new_pos_embed = torch.nn.functional.interpolate(new_pos_embed, size=(f_dim, t_dim), mode="bilinear")
    new_pos_embed = new_pos_embed.reshape(1, dim, f_dim * t_dim).transpose(1, 2)
    return torch.cat([pos[:, :2, :].detach(), new_pos_embed], dim=1)


@pytest.mark.parametrize("num_mel_bins, max_length", [(128, 512), (128, 1200), (64, 1024), (160, 600)])
def test_position_embedding_adapts_like_ast(tmp_path, num_mel_bins, max_length):
    torch.manual_seed(1)
    base = av.ASTModel(av.ASTConfig(hidden_size=24, num_hidden_layers=1, num_attention_heads=2, intermediate_size=24))
    with torch.no_grad():
        base.pos_embed.normal_()
    base.save_pretrained(tmp_path)
    adapted = av.ASTModel.from_pretrained(tmp_path, config={"num_mel_bins": num_mel_bins, "max_length": max_length})
    f_dim, t_dim = adapted.grid.grid_shape
    expected = _ast_position_adaptation(base.pos_embed, f_dim, t_dim)
    torch.testing.assert_close(adapted.pos_embed.detach(), expected)


def test_original_checkpoint_config_is_inferred(tmp_path):
    """An AST-shaped original checkpoint (192 wide, 12 x 101 grid, 527 classes) needs no config."""
    torch.manual_seed(2)
    hf = ASTForAudioClassification(
        HFConfig(hidden_size=192, num_hidden_layers=1, num_attention_heads=3, intermediate_size=64, num_labels=527)
    )
    randomize(hf, seed=2)
    hf.save_pretrained(tmp_path / "hf")  # the hub's key names
    path = tmp_path / "audioset_10_10_0.4593.pth"
    torch.save(hf_to_original(load_file(tmp_path / "hf" / "model.safetensors")), path)
    model = av.ASTModel.from_pretrained(path)
    c = model.config
    assert (c.num_attention_heads, c.max_length, c.num_mel_bins, c.num_labels) == (3, 1024, 128, 527)
    assert (c.layer_norm_eps, c.classifier_layer_norm_eps) == (1e-6, 1e-5)
    assert model.fc_norm.eps == 1e-5 and model.blocks[0].norm1.eps == 1e-6
    assert model.labels[0] == "Speech" and model.multi_label


def test_pytorch_model_bin_directory_is_what_transformers_reads(hf_bin_dir, reference):
    """The .bin directory of the parity fixture is a real Hugging Face checkpoint: transformers loads it too."""
    theirs = ASTForAudioClassification.from_pretrained(hf_bin_dir).eval()
    with torch.no_grad():
        logits = theirs(reference["input_values"]).logits[0]
    torch.testing.assert_close(logits, reference["logits"], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "hidden, heads, max_length, classes, preset",
    [(384, 6, 512, 50, "esc50"), (768, 12, 128, 35, "speechcommands")],
)
def test_original_checkpoint_config_for_other_widths_and_lengths(tmp_path, hidden, heads, max_length, classes, preset):
    """ESC-50-like (384 wide, 12 x 50 grid, 50 classes) and Speech-Commands-like (768 wide, 12 x 12, 35 classes)
    original checkpoints: heads from the DeiT table, max_length from the time grid, the dataset's fbank preset."""
    torch.manual_seed(5)
    settings = dict(hidden_size=hidden, num_hidden_layers=1, num_attention_heads=heads, intermediate_size=64,
                    max_length=max_length, num_labels=classes, layer_norm_eps=1e-6)
    hf = ASTForAudioClassification(HFConfig(**settings)).eval()
    randomize(hf, seed=5)
    hf.save_pretrained(tmp_path / "hf")
    path = tmp_path / "original.pth"
    torch.save(hf_to_original(load_file(tmp_path / "hf" / "model.safetensors")), path)
    model = av.ASTModel.from_pretrained(path)
    c = model.config
    stats = av.KaldiFbank.preset(preset)
    assert (c.hidden_size, c.num_attention_heads, c.max_length, c.num_mel_bins, c.num_labels) == (hidden, heads, max_length, 128, classes)
    assert model.grid.grid_shape == (12, (max_length - 16) // 10 + 1)
    assert (c.fbank_mean, c.fbank_std) == (stats.mean, stats.std) and not c.multi_label
    assert (c.layer_norm_eps, c.classifier_layer_norm_eps) == (1e-6, 1e-5)
    # The inferred head count is the one the weights were made with: same logits as transformers
    # (which uses 1e-6 in the head's LayerNorm too, hence the tolerance); a wrong count is far off.
    fe = ASTFeatureExtractor(num_mel_bins=128, max_length=max_length, mean=stats.mean, std=stats.std)
    with torch.no_grad():
        theirs = hf(**fe(waveform(), sampling_rate=SR, return_tensors="pt")).logits[0].numpy()
    ours = model.analyze(av.load_audio(waveform(), SR)).logits
    assert np.abs(ours - theirs).max() < 5e-4  # measured 4e-5 (384 wide), 6e-5 (768 wide)
    wrong = av.ASTModel.from_pretrained(path, config={"num_attention_heads": heads // 3 if heads > 3 else 1})
    assert np.abs(wrong.analyze(av.load_audio(waveform(), SR)).logits - theirs).max() > 1.0  # measured 6.6, 7.5


def test_mismatched_checkpoints_list_the_keys(hf_dir, tmp_path):
    state = load_file(hf_dir / "model.safetensors")
    layer2 = [k for k in state if ".encoder.layer.2." in k]
    truncated = {k: v for k, v in state.items() if k not in layer2}
    truncated["extra.weight"] = torch.zeros(3)
    truncated["classifier.dense.weight"] = torch.zeros(5, 64)
    path = tmp_path / "model.safetensors"
    save_file(truncated, path)
    shutil.copy(hf_dir / "config.json", tmp_path / "config.json")
    with pytest.raises(CheckpointError) as info:
        av.ASTModel.from_pretrained(tmp_path)
    message = str(info.value)
    assert "missing keys (16)" in message
    assert "audio_spectrogram_transformer.encoder.layer.2.attention.attention.query.weight" in message
    assert "unexpected keys (1): extra.weight" in message
    assert "classifier.dense.weight: checkpoint (5, 64) vs model (7, 64)" in message


def test_unreadable_checkpoints_raise_checkpoint_error(hf_dir, tmp_path):
    data = (hf_dir / "model.safetensors").read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot be read as safetensors"):
        av.ASTModel.from_pretrained(cut, config=HINTS)
    torch.save(hf_to_original(load_file(hf_dir / "model.safetensors")), tmp_path / "full.pth")
    raw = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(raw[: len(raw) // 3])
    with pytest.raises(CheckpointError, match="cannot be read as a PyTorch checkpoint"):
        av.ASTModel.from_pretrained(tmp_path / "cut.pth", config=HINTS)
    torch.save({"weights": torch.zeros(2), "callback": shutil.copy}, tmp_path / "pickled.pth")
    with pytest.raises(CheckpointError, match="weights_only=True"):
        av.ASTModel.from_pretrained(tmp_path / "pickled.pth")
    with pytest.raises(FileNotFoundError):
        av.ASTModel.from_pretrained(tmp_path / "absent.pth")


def test_hub_id_missing_from_offline_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CheckpointError, match="not a local path"):
        av.ASTModel.from_pretrained("audiovis-test/not-cached", cache_dir=tmp_path)


def _ast_from_imagenet_reference(state, f_dim, t_dim):
    """AST's ImageNet initialisation (ASTModel.__init__, imagenet_pretrain branch)."""
    pos = state["pos_embed"]
    dim = pos.shape[-1]
    prefix = 2 if "dist_token" in state else 1
    hw = int((pos.shape[1] - prefix) ** 0.5)
    new = pos[:, prefix:, :].detach().reshape(1, hw * hw, dim).transpose(1, 2).reshape(1, dim, hw, hw)
    if t_dim <= hw:
        new = new[:, :, :, int(hw / 2) - int(t_dim / 2): int(hw / 2) - int(t_dim / 2) + t_dim]
    else:
        new = torch.nn.functional.interpolate(new, size=(hw, t_dim), mode="bilinear")
    if f_dim <= hw:
        new = new[:, :, int(hw / 2) - int(f_dim / 2): int(hw / 2) - int(f_dim / 2) + f_dim, :]
    else:
        new = torch.nn.functional.interpolate(new, size=(f_dim, t_dim), mode="bilinear")
    return new.reshape(1, dim, f_dim * t_dim).transpose(1, 2)


@pytest.mark.parametrize("name", ["deit_tiny_distilled_patch16_224", "vit_tiny_patch16_224"])
def test_from_imagenet(tmp_path, name):
    import timm

    torch.manual_seed(4)
    source = timm.create_model(name)
    with torch.no_grad():
        source.pos_embed.normal_()
    path = tmp_path / f"{name}.pth"
    torch.save(source.state_dict(), path)
    model = av.ASTModel.from_imagenet(path, config={"num_mel_bins": 128, "max_length": 400, "num_labels": 10})
    state = source.state_dict()
    f_dim, t_dim = model.grid.grid_shape
    assert (f_dim, t_dim) == (12, 39)
    torch.testing.assert_close(model.pos_embed[:, 2:].detach(), _ast_from_imagenet_reference(state, f_dim, t_dim))
    torch.testing.assert_close(model.patch_embed.proj.weight.detach(), state["patch_embed.proj.weight"].sum(1, keepdim=True))
    torch.testing.assert_close(model.blocks[5].attn.qkv.weight.detach(), state["blocks.5.attn.qkv.weight"])
    torch.testing.assert_close(model.cls_token.detach(), state["cls_token"])
    if "dist_token" in state:
        torch.testing.assert_close(model.dist_token.detach(), state["dist_token"])
        torch.testing.assert_close(model.pos_embed[:, :2].detach(), state["pos_embed"][:, :2])
    else:
        torch.testing.assert_close(model.dist_token.detach(), state["cls_token"])
        torch.testing.assert_close(model.pos_embed[:, 1].detach(), state["pos_embed"][:, 0])
    assert model.config.num_attention_heads == 3 and model.config.hidden_size == 192
    assert model.head.out_features == 10


def test_config_validation_and_hf_round_trip():
    for bad in (
        dict(num_hidden_layers=0),
        dict(patch_size=200, num_mel_bins=128),
        dict(frequency_stride=0),
        dict(time_stride=-10),
        dict(hidden_size=64, num_attention_heads=5),
        dict(num_labels=2, labels=["a"]),
        dict(layer_norm_eps=0.0),
    ):
        with pytest.raises(av.ConfigError):
            av.ASTConfig(**bad)
    config = av.ASTConfig(hidden_size=32, num_attention_heads=4, num_labels=2, labels=["x", "y"], multi_label=False)
    data = json.loads(json.dumps(config.to_dict()))
    hf = HFConfig(**data)
    assert (hf.hidden_size, hf.num_labels, hf.id2label[1]) == (32, 2, "y")
    assert av.ASTConfig.from_dict(data) == config
    audioset = av.ASTConfig.from_dict(HFConfig(num_labels=527).to_dict())
    assert audioset.multi_label is True and audioset.labels is None  # AudioSet: sigmoid, shipped names
    assert av.ASTConfig.from_dict(HFConfig(num_labels=35).to_dict()).multi_label is False
