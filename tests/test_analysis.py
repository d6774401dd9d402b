"""Analysis API on a small random AST: layers, labels, maps, caching and sliding windows."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

import audiovis as av
from audiovis.analysis import WindowedAnalyses

SR = 16000


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = av.ASTConfig(
        hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
        num_mel_bins=32, max_length=100, num_labels=5, labels=list("abcde"),
    )
    m = av.ASTModel(config).eval()
    with torch.no_grad():
        m.pos_embed.normal_(std=0.5)
        m.head.weight.normal_()
    return m


def sound(seconds: float, seed: int = 0) -> av.Audio:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    wav = 0.3 * np.sin(2 * np.pi * 700 * t * (1 + t)) + 0.05 * rng.standard_normal(t.size)
    return av.load_audio(wav.astype(np.float32), SR)


@pytest.fixture(scope="module")
def result(model):
    return model.analyze(sound(0.9))


def test_layers_count_like_python_indices(model, result):
    assert result.num_layers == 3 and result.num_heads == 4 and result.hidden_states.shape == (4, 2 + 2 * 9, 32)
    np.testing.assert_array_equal(result.patch_embeddings(-1), result.patch_embeddings(2))
    np.testing.assert_array_equal(result.patch_embeddings(-3, norm=False), result.hidden_states[1][2:])
    with torch.no_grad():
        normed = model.norm(torch.from_numpy(result.hidden_states[3].copy())).numpy()
    np.testing.assert_allclose(result.tokens(-1), normed, atol=1e-6)
    np.testing.assert_array_equal(result.patch_embeddings(0), result.hidden_states[1][2:])
    with pytest.raises(IndexError, match="-3..2"):
        result.patch_embeddings(3)
    with pytest.raises(TypeError):
        result.attention(1.5)
    with pytest.raises(ValueError):
        result.patch_embeddings(-1)[0, 0] = 1.0  # cached arrays are read-only


def test_labels_and_probabilities(model, result):
    probs = result.probabilities
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-result.logits.astype(np.float64))), atol=1e-6)
    top = result.top_labels(3)
    assert [name for name, _ in top] == [model.labels[i] for i in np.argsort(-probs)[:3]]
    assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)
    with pytest.raises(ValueError):
        result.top_labels(0)
    single = av.ASTModel(model.config.replace(multi_label=False))
    single.load_state_dict(model.state_dict())
    probs = single.analyze(sound(0.9)).probabilities
    np.testing.assert_allclose(probs.sum(), 1.0, atol=1e-6)
    np.testing.assert_allclose(probs, torch.softmax(torch.from_numpy(result.logits.copy()), -1).numpy(), atol=1e-6)


def test_maps_are_per_patch_in_token_order(result):
    n = result.num_patches
    sim = result.similarity([5])
    assert sim.shape == (n,) and sim.dtype == np.float32
    assert sim[5] == pytest.approx(1.0, abs=1e-6)
    assert np.all(sim <= 1 + 1e-6)
    rows = result.attention(1)[:, [2 + 4, 2 + 9], :].mean(axis=(0, 1))[2:]
    np.testing.assert_allclose(result.attention_from([4, 9], layer=1), rows, atol=1e-7)
    np.testing.assert_allclose(result.attention_from(4, layer=1, head=2), result.attention(1, head=2)[6, 2:], atol=1e-7)
    assert result.rollout().shape == (n,) and result.saliency().shape == (n,)
    assert result.clip_embedding().shape == (result.dim,)
    for bad in ([n], [-1]):
        with pytest.raises(IndexError):
            result.similarity(bad)
    with pytest.raises(ValueError):
        result.similarity([])
    with pytest.raises(IndexError):
        result.attention(0, head=4)
    with pytest.raises(KeyError):
        result.saliency("no such class")


def test_saliency_defaults_to_the_top_class_and_accepts_names(result):
    top = int(np.argmax(result.logits))
    np.testing.assert_array_equal(result.saliency(), result.saliency(top))
    np.testing.assert_array_equal(result.saliency(result.labels[top]), result.saliency(top))
    assert not np.array_equal(result.saliency(0), result.saliency(1))


def test_eager_and_lazy_attention_agree_and_mode_is_restored(model):
    model.train()
    try:
        eager = model.analyze(sound(0.9), attention=True)
        assert model.training
    finally:
        model.eval()
    lazy = model.analyze(sound(0.9))
    for layer in range(3):
        np.testing.assert_allclose(eager.attention(layer), lazy.attention(layer), atol=1e-6)
    np.testing.assert_allclose(eager.rollout(), lazy.rollout(), atol=1e-6)
    np.testing.assert_allclose(eager.logits, lazy.logits, atol=1e-5)


def test_inputs_path_array_and_spectrogram(model, result, tmp_path):
    audio = sound(0.9)
    path = tmp_path / "clip.wav"
    sf.write(path, audio.numpy()[0], SR, subtype="FLOAT")
    from_path = model.analyze(path)
    from_array = model.analyze(audio.numpy()[0], sample_rate=SR)
    from_spec = model.analyze(model.frontend(audio))
    for other in (from_path, from_array, from_spec):
        np.testing.assert_allclose(other.logits, result.logits, atol=1e-5)
    with pytest.raises(ValueError, match="32"):
        model.analyze(av.KaldiFbank(num_mel_bins=40, target_frames=100)(audio))


def long_fbank(model) -> av.KaldiFbank:
    """The model's front end without its fixed length: a whole recording's frames."""
    fe = model.frontend
    return av.KaldiFbank(num_mel_bins=fe.num_mel_bins, target_frames=None, mean=fe.mean, std=fe.std)


def test_long_audio_gives_one_analysis_per_window(model):
    audio = sound(2.5, seed=3)
    span = model.window_seconds
    assert span == pytest.approx(1.0)
    windows = model.analyze(audio)
    assert isinstance(windows, list) and isinstance(windows, WindowedAnalyses)
    # windows every 1 s while one fits, then one ending at the end (on the 10 ms frame grid): no padded window
    assert [w.offset for w in windows] == pytest.approx([0.0, 1.0, 1.48]) and windows.offsets == [w.offset for w in windows]
    for w in windows:
        # each window against the model run on that segment alone (which fits one window: one Analysis)
        alone = model.analyze(audio.segment(w.offset, w.offset + span + 0.015))
        assert isinstance(alone, av.Analysis) and alone.offset == pytest.approx(w.offset)  # the segment keeps its start
        np.testing.assert_allclose(w.logits, alone.logits, atol=1e-5)
        np.testing.assert_allclose(w.hidden_states, alone.hidden_states, atol=1e-5)
        np.testing.assert_array_equal(w.spectrogram.numpy(), alone.spectrogram.numpy())
        assert w.spectrogram.times[0] == pytest.approx(w.offset + 0.0125)
    assert [w.spectrogram.valid_frames for w in windows] == [100, 100, 100]  # all real signal, none padded
    explicit = model.analyze_windows(audio)
    assert [w.offset for w in explicit] == [w.offset for w in windows]
    for a, b in zip(explicit, windows):
        np.testing.assert_array_equal(a.logits, b.logits)
    with pytest.raises(AttributeError, match=r"3 Analysis objects.*result\[0\]\.logits"):
        windows.logits


def test_many_windows_warn_about_the_memory_their_hidden_states_take(model, monkeypatch):
    """Every window keeps its hidden states: (layers + 1) x tokens x dim floats; past the bound, a warning."""
    per_window = (model.num_layers + 1) * (model.grid.num_patches + 2) * 32 * 4
    monkeypatch.setattr(type(model), "HEAVY_ANALYSES_BYTES", 3 * per_window - 1)  # 3 windows is too many
    audio = sound(2.5, seed=3)
    with pytest.warns(UserWarning, match=r"analysing 3 windows .*LongViewer"):
        assert len(model.analyze(audio)) == 3
    with pytest.warns(UserWarning, match=r"analysing 3 windows"):
        model.analyze_windows(audio)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.analyze_windows(audio, windows=[0, 2])  # two are within the bound
        model.analyze(sound(0.9))
    assert sum(np.asarray(w.hidden_states, dtype=np.float32).nbytes for w in model.analyze_windows(audio, windows=[0])) == per_window


def test_attention_maps_and_lists_of_clips_count_in_the_memory_warning(model, monkeypatch):
    """attention=True keeps layers x heads x tokens^2 floats per window more (850 MB a window on AST-base:
    five minutes of windows filled 24 GB without a word); a list of clips keeps every clip's states too."""
    tokens = model.grid.num_patches + 2
    states = (model.num_layers + 1) * tokens * 32 * 4
    maps = model.num_layers * model.num_heads * tokens * tokens * 4
    monkeypatch.setattr(type(model), "HEAVY_ANALYSES_BYTES", 2 * (states + maps) - 1)
    audio = sound(1.5, seed=3)  # two windows
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        analyses = model.analyze_windows(audio, attention=True, windows=[0])  # one window is within the bound
        model.analyze(audio)  # two windows without attention maps too
    assert sum(np.asarray(a.attention(i)).nbytes for a in analyses for i in range(model.num_layers)) == maps
    with pytest.warns(UserWarning, match=r"analysing 2 windows keeps every window's hidden states and attention maps, "
                                         r"about .* GiB; .*without attention=True"):
        assert len(model.analyze(audio, attention=True)) == 2
    with pytest.warns(UserWarning, match=r"analysing 2 windows .*attention maps"):
        model.analyze_windows(audio, attention=True)
    clip = sound(0.9)
    with pytest.warns(UserWarning, match=r"analysing 2 clips keeps every clip's hidden states and attention maps, "
                                         r".*av\.extract_embeddings"):
        assert len(model.analyze([clip, clip], attention=True)) == 2
    monkeypatch.setattr(type(model), "HEAVY_ANALYSES_BYTES", 3 * states - 1)
    with pytest.warns(UserWarning, match=r"analysing 3 clips keeps every clip's hidden states, about"):
        model.analyze([clip, clip, clip])


def test_hop_sets_the_window_starts_and_is_validated(model):
    audio = sound(2.5, seed=3)
    span = model.window_seconds
    overlapping = model.analyze(audio, hop=0.5)
    assert [w.offset for w in overlapping] == pytest.approx([0.0, 0.5, 1.0, 1.48])  # the last ends at the end
    for w in overlapping:
        alone = model.analyze(audio.segment(w.offset, w.offset + span + 0.015))
        np.testing.assert_allclose(w.logits, alone.logits, atol=1e-5)
    assert [w.offset for w in model.analyze(audio, hop=1.5)] == pytest.approx([0.0, 1.48])
    for bad in (0, -1.0, float("nan"), float("inf"), True, "0.5", [0.5]):
        for call in (model.analyze, model.analyze_windows):
            with pytest.raises(ValueError, match="hop"):
                call(audio, hop=bad)
        with pytest.raises(ValueError, match="hop"):
            model.analyze(sound(0.5), hop=bad)  # checked even when one window suffices
    with pytest.raises(ValueError, match="one frame"):
        model.analyze(long_fbank(model)(audio), hop=0.004)


def test_audio_that_fits_one_window_gives_one_analysis(model):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one = model.analyze(sound(1.0))  # exactly one window
        also = model.analyze(sound(1.015))  # one window plus the last frame's overhang
    assert isinstance(one, av.Analysis) and isinstance(also, av.Analysis)
    # 144 samples more are less than one 10 ms frame hop: the front end makes no frame of them either
    assert isinstance(model.analyze(sound(1.024)), av.Analysis)
    two = model.analyze(sound(1.025))  # one frame more: a second window, ending at the end
    assert isinstance(two, list) and two.offsets == pytest.approx([0.0, 0.01])
    assert len(model.analyze_windows(sound(0.9))) == 1  # the explicit form is always a list


def test_long_spectrogram_is_windowed_like_its_audio(model):
    """A whole-recording KaldiFbank spectrogram gives the audio's windows, the padded last one included."""
    audio = sound(2.5, seed=3)
    spec = long_fbank(model)(audio)
    assert spec.num_frames == 248
    for hop in (None, 0.5):
        from_audio = model.analyze(audio, hop=hop)
        from_spec = model.analyze(spec, hop=hop)
        assert [w.offset for w in from_spec] == pytest.approx([w.offset for w in from_audio])
        for a, b in zip(from_spec, from_audio):
            np.testing.assert_allclose(a.spectrogram.numpy(), b.spectrogram.numpy(), atol=1e-6)
            np.testing.assert_allclose(a.spectrogram.times, b.spectrogram.times, atol=1e-9)
            assert a.spectrogram.valid_frames == b.spectrogram.valid_frames
            np.testing.assert_allclose(a.logits, b.logits, atol=1e-5)
    # a short one is padded as the front end pads (raw zeros, then normalised)
    short = sound(0.5, seed=1)
    np.testing.assert_allclose(model.analyze(long_fbank(model)(short)).logits, model.analyze(short).logits, atol=1e-5)


def test_analyze_windows_picks_windows(model):
    audio = sound(2.5, seed=3)
    every = model.analyze_windows(audio, hop=0.5)
    (third,) = model.analyze_windows(audio, hop=0.5, windows=[2])
    assert third.offset == pytest.approx(1.0)
    np.testing.assert_array_equal(third.logits, every[2].logits)
    for bad in ([4], [-1], [True], [1.0]):
        with pytest.raises(IndexError, match=r"outside 0\.\.3"):
            model.analyze_windows(audio, hop=0.5, windows=bad)


def test_windows_can_be_pruned_like_one_window(model):
    audio = sound(2.5, seed=4)
    span = model.window_seconds
    windows = model.analyze_windows(audio, keep_ratio=0.5, keep_by="energy")
    assert [w.offset for w in windows] == pytest.approx([0.0, 1.0, 1.48])
    for w in windows:
        alone = model.analyze(audio.segment(w.offset, w.offset + span + 0.015), keep_ratio=0.5, keep_by="energy")
        np.testing.assert_array_equal(w.kept_patches, alone.kept_patches)
        np.testing.assert_allclose(w.logits, alone.logits, atol=1e-5)
        assert w.prune_layer == 0 and w.fused_dropped and w.pruned_patches.size == model.grid.num_patches // 2
        assert w.spectrogram.times[0] == pytest.approx(w.offset + 0.0125)
    assert any(not np.array_equal(a.kept_patches, b.kept_patches) for a, b in zip(windows, windows[1:]))
    with pytest.raises(ValueError, match="keep_ratio"):
        model.analyze_windows(audio, keep_ratio=0)
    with pytest.raises(ValueError, match="keep_by"):
        model.analyze_windows(audio, keep_ratio=0.5, keep_by="loud")
