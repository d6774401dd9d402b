"""Input that is not what the model takes gets a clear error or a warning, never a confident answer.

Each test here failed on the code before its fix (issue 19): spectrogram values read as 128-channel audio,
a batch mixed into one clip, another front end's spectrogram analysed, windows of padding, a random head's
labels shown as if trained, and ``explore`` arguments that crashed.
"""

from __future__ import annotations

import random
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

import audiovis as av
from audiovis.widgets.explorer import Explorer, explore

SR = 16000


@pytest.fixture(scope="module")
def demo():
    return av.load_demo_model()


def tone(seconds: float, hz: float = 440.0, seed: int = 0) -> av.Audio:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SR))) / SR
    wav = 0.3 * np.sin(2 * np.pi * hz * t) + 0.01 * rng.standard_normal(t.size)
    return av.load_audio(wav.astype(np.float32), SR)


@pytest.fixture(scope="module")
def clip():
    return tone(4.0)


# ---- item 2a: a spectrogram's values are not audio --------------------------------------------


def test_spectrogram_values_are_refused_as_audio(demo, clip):
    spec = demo.spectrogram(clip)
    assert spec.values.shape == (128, 400)
    for values in (spec.numpy(), spec.values, spec.numpy().T):
        with pytest.raises(av.AudioLoadError, match=r"not a waveform.*128 channels.*Spectrogram object itself"):
            demo.analyze(values, sample_rate=SR)
    with pytest.raises(av.AudioLoadError, match="not a waveform"):  # not "pass sample_rate=...": that was the trap
        demo.analyze(spec.values)
    with pytest.raises(av.AudioLoadError, match="not a waveform"):
        av.load_audio(spec.numpy(), SR)
    np.testing.assert_allclose(demo.analyze(spec).logits, demo.analyze(clip).logits, atol=1e-5)  # what to pass


def test_real_multichannel_arrays_still_load():
    rng = np.random.default_rng(0)
    for channels in (1, 2, 8, 64):
        audio = av.load_audio(rng.uniform(-0.5, 0.5, (channels, 4000)).astype(np.float32), SR, mono=False)
        assert audio.num_channels == channels
    layout = av.load_audio(rng.uniform(-0.5, 0.5, (4000, 6)).astype(np.float32), SR, mono=False)  # soundfile's
    assert layout.num_channels == 6
    wide = av.Audio(torch.zeros(128, 4000), SR)  # the way to hold that many channels on purpose
    assert wide.num_channels == 128


# ---- item 2b: a batch is not one clip's channels; lists of clips -------------------------------


def test_many_channels_mixed_into_one_clip_warn_with_the_count(demo):
    batch = 0.1 * torch.randn(16, 64000, generator=torch.Generator().manual_seed(0))
    with pytest.warns(UserWarning, match=r"16 channels and mixed to mono.*list"):
        demo.analyze(batch, sample_rate=SR)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        av.load_audio(batch[:2].numpy(), SR)  # stereo: mixed as usual, no warning
        av.load_audio(batch.numpy(), SR, mono=False)  # kept as channels: nothing mixed


def test_analyze_takes_a_list_of_clips(demo, clip, tmp_path):
    import soundfile as sf

    batch = torch.stack([tone(4.0, hz, seed=i).waveform[0] for i, hz in enumerate((300.0, 900.0, 2500.0))])
    results = demo.analyze(list(batch), sample_rate=SR)
    assert type(results) is list and len(results) == 3
    for row, res in zip(batch, results):
        assert isinstance(res, av.Analysis)
        np.testing.assert_allclose(res.logits, demo.analyze(row, sample_rate=SR).logits, atol=1e-6)
    assert not np.allclose(results[0].logits, results[2].logits)
    path = tmp_path / "clip.wav"
    sf.write(path, clip.numpy()[0], SR, subtype="FLOAT")
    mixed = demo.analyze((clip, str(path), demo.spectrogram(clip), tone(9.0)))
    assert [type(r).__name__ for r in mixed] == ["Analysis", "Analysis", "Analysis", "WindowedAnalyses"]
    for res in mixed[1:3]:
        np.testing.assert_allclose(res.logits, mixed[0].logits, atol=1e-5)
    with pytest.raises(ValueError, match="empty list"):
        demo.analyze([])
    with pytest.raises(av.AudioLoadError, match="list of numbers"):
        demo.analyze([0.1, 0.2, 0.3], sample_rate=SR)


# ---- item 2c: spectrograms made another way ----------------------------------------------------


def test_a_spectrogram_from_another_front_end_is_refused_naming_both(demo, clip):
    db = av.MelSpectrogram(n_mels=128)(clip)
    with pytest.raises(ValueError, match=r"made by MelSpectrogram\(.*\(dB\).*model's input comes from KaldiFbank\("):
        demo.analyze(db)
    other_norm = av.KaldiFbank()(clip)  # AudioSet's normalisation, not the demo's
    with pytest.raises(ValueError, match=r"mean=-4\.2677393.*mean=-8\.79"):
        demo.analyze(other_norm)
    raw = av.KaldiFbank(normalize=False, target_frames=400)(clip)
    with pytest.raises(ValueError, match="normalize=False"):
        demo.analyze(raw)
    with pytest.raises(ValueError, match="MelSpectrogram"):
        demo.analyze_windows(db)
    handmade = replace(demo.spectrogram(clip), frontend=None)  # no signature: units, scale and hop are checked
    np.testing.assert_allclose(demo.analyze(handmade).logits, demo.analyze(clip).logits, atol=1e-5)
    with pytest.raises(ValueError, match=r"units 'dB' \(the model's: 'normalized-fbank'\)"):
        demo.analyze(replace(handmade, units="dB"))
    with pytest.raises(ValueError, match=r"hop '20 ms'"):
        demo.analyze(replace(handmade, hop_length=320))


def test_spectrogram_windows_follow_valid_frames(demo, clip):
    fe = demo.frontend
    padded = av.KaldiFbank(mean=fe.mean, std=fe.std, target_frames=1024)(clip)  # 398 real frames, 626 padding
    assert padded.num_frames == 1024 and padded.valid_frames == 398
    one = demo.analyze(padded)
    assert isinstance(one, av.Analysis)  # not 3 windows, 2 of them pure padding
    assert demo.window_starts(padded) == [0]
    np.testing.assert_allclose(one.logits, demo.analyze(clip).logits, atol=1e-5)
    long_audio = tone(9.3, seed=2)
    whole = av.KaldiFbank(mean=fe.mean, std=fe.std, target_frames=2048)(long_audio)
    from_spec, from_audio = demo.analyze(whole), demo.analyze(long_audio)
    assert from_spec.offsets == pytest.approx(from_audio.offsets) and len(from_spec) == 3
    for a, b in zip(from_spec, from_audio):
        assert a.spectrogram.valid_frames == b.spectrogram.valid_frames == 400
        np.testing.assert_allclose(a.logits, b.logits, atol=1e-5)


# ---- item 3: no window is mostly padding --------------------------------------------------------


def test_audio_just_over_one_window_gives_no_window_of_padding(demo):
    a = tone(5.0)
    just_over = demo.analyze(a.segment(0, 4.02))
    assert isinstance(just_over, av.Analysis)  # the 5 ms past the window's last frame make no frame of their own
    assert just_over.spectrogram.valid_frames == 400
    for seconds in (4.03, 4.5, 5.0, 8.0, 9.99, 12.3):
        audio = tone(seconds, seed=3)
        windows = demo.analyze_windows(audio)
        assert len(windows) >= 2
        for w in windows:
            assert w.spectrogram.valid_frames == 400, (seconds, w.offset)  # none padded at all
            assert round(w.offset * 100) == pytest.approx(w.offset * 100, abs=1e-6)  # on the 10 ms frame grid
        last = windows[-1]
        assert seconds - 0.01 < last.offset + demo.span_seconds <= seconds + 1e-9  # ends at the end
        assert windows[-2].offset < last.offset
        # the last window is the model on that stretch alone
        alone = demo.analyze(audio.segment(last.offset, last.offset + demo.span_seconds))
        np.testing.assert_allclose(last.logits, alone.logits, atol=1e-5)


def test_window_rule():
    from audiovis.windows import window_starts

    assert window_starts(3, 4, 4) == [0] and window_starts(4, 4, 4) == [0]
    assert window_starts(8, 4, 4) == [0, 4]
    assert window_starts(10, 4, 4) == [0, 4, 6]
    assert window_starts(9, 4, 2) == [0, 2, 4, 5]
    assert window_starts(12, 4, 6) == [0, 6, 8]  # a hop longer than the window: gaps, then the end
    assert all(isinstance(s, int) for s in window_starts(1000, 7, 3))
    assert window_starts(8.0, 4.015, 4.0, grid=0.01) == pytest.approx([0.0, 3.98])
    assert window_starts(4.015, 4.015, 4.0, grid=0.01) == [0.0]
    with pytest.raises(ValueError, match="positive"):
        window_starts(10, 4, 0)
    rng = random.Random(0)
    for _ in range(500):
        window, step = rng.randint(1, 50), rng.randint(1, 60)
        length = rng.randint(1, 400)
        starts = window_starts(length, window, step, grid=1)
        assert starts[0] == 0 and all(b > a for a, b in zip(starts, starts[1:]))
        if length <= window:
            assert starts == [0]
            continue
        assert all(s + window <= length for s in starts)  # never past the end: no padding
        assert starts[-1] + window == length  # the last ends at the end
        regular = [s for s in starts[:-1]]
        assert regular == [k * step for k in range(len(regular))]


# ---- item 7: an untrained head says so where its labels appear -----------------------------------


def test_loaders_say_whether_the_head_was_trained(demo, tmp_path):
    import timm

    assert demo.head_trained is True
    from audiovis.models.pruning import convert_stride

    assert convert_stride(demo, 16).head_trained is True  # the same head, copied to the new model
    assert av.quantize(demo, "bf16").head_trained is True
    config = av.ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                          num_mel_bins=32, max_length=64, num_labels=4)
    random_ast = av.ASTModel(config)
    assert random_ast.head_trained is False
    random_ast.save_pretrained(tmp_path / "ast")
    loaded = av.ASTModel.from_pretrained(tmp_path / "ast")
    assert loaded.head_trained is True  # the checkpoint holds a head (whatever trained it)
    loaded.reset_classifier(3)
    assert loaded.head_trained is False
    torch.manual_seed(0)
    source = timm.create_model("deit_tiny_patch16_224")
    path = tmp_path / "deit_tiny.pth"
    torch.save(source.state_dict(), path)
    assert av.ViTModel("deit_tiny_patch16_224", input_shape=(64, 100)).head_trained is False
    same = av.ViTModel("deit_tiny_patch16_224", input_shape=(64, 100), checkpoint=path, num_classes=1000)
    assert same.head_trained is True
    torch.testing.assert_close(same.vit.head.weight, source.head.weight)
    other = av.ViTModel("deit_tiny_patch16_224", input_shape=(64, 100), checkpoint=path, num_classes=527)
    assert other.head_trained is False  # timm dropped the 1000-class head: a fresh random one
    imagenet = av.ASTModel.from_imagenet(path, config={"num_mel_bins": 64, "max_length": 100, "num_labels": 5})
    assert imagenet.head_trained is False


def test_random_head_labels_are_marked(demo, clip):
    from audiovis.analysis import UntrainedHeadWarning

    torch.manual_seed(0)
    vit = av.ViTModel("deit_tiny_patch16_224", input_shape=(128, 400), stride=16)  # 527 AudioSet names, random
    res = vit.analyze(clip)
    assert res.head_trained is False
    with pytest.warns(UntrainedHeadWarning, match="untrained head.*random weights"):
        top = res.top_labels(3)
    assert top[0][0] in vit.labels
    assert "(untrained head)" in repr(res)
    ex = Explorer(res)
    assert ex.head_note is not None and "Untrained head" in ex.head_note.value
    side = ex.children[-1].children[-1]
    assert side.children[0] is ex.head_note and side.children[1] is ex._predictions  # above the labels
    assert "untrained head" in ex._predictions.children[0].value
    trained = demo.analyze(clip)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trained.top_labels(3)
        shown = Explorer(trained)
    assert shown.head_note is None and "untrained" not in shown._predictions.children[0].value
    assert "untrained" not in repr(trained)


def test_long_viewer_of_an_untrained_head_says_so(demo):
    from audiovis.analysis import UntrainedHeadWarning
    from audiovis.widgets.longview import LongViewer

    config = av.ASTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                          max_length=400, num_labels=3)
    with pytest.warns(UntrainedHeadWarning, match="LongViewer: untrained head"):
        lv = LongViewer(tone(9.0), av.ASTModel(config), background=False)
    lv.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrainedHeadWarning)
        LongViewer(tone(9.0), demo, background=False).close()


# ---- item 8: explore's arguments -----------------------------------------------------------------


def test_explore_takes_demo_by_name_and_audio_with_an_analysis(demo, clip):
    by_name = explore(clip, "demo")
    assert by_name.analysis._model is demo
    np.testing.assert_allclose(by_name.analysis.logits, demo.analyze(clip).logits, atol=1e-6)
    with pytest.raises(TypeError, match=r"\"demo\".*from_pretrained"):
        explore(clip, "my_model.pth")
    with pytest.raises(TypeError, match="got a ndarray"):
        explore(clip, np.zeros(3))
    res = demo.analyze(clip)
    with_audio = explore(res, audio=clip)
    assert with_audio.analysis is res and with_audio.viewer._audio_info["sample_rate"] == SR
    with pytest.raises(TypeError, match="audio given twice"):
        explore(clip, demo, audio=clip)
    for clips in ([clip, clip], (clip,)):  # was: "load_audio takes one sound", naming a call not made
        with pytest.raises(TypeError, match=r"^explore\(\) shows one clip, got a (list of 2|tuple of 1): explore each "
                                            r".*av\.explore_dataset"):
            explore(clips, demo)
    assert explore(clip, model=demo).analysis._model is demo


@pytest.mark.parametrize("call, name", [
    (lambda model, clips, path: av.extract_embeddings(model, clips, progress=False), "extract_embeddings"),
    (lambda model, clips, path: av.embed_dataset(model, clips, path, progress=False), "embed_dataset"),
    (lambda model, clips, path: av.compute_tradeoff(clips, model, progress=False), "compute_tradeoff"),
    (lambda model, clips, path: av.probe_layers(clips, model, labels=[0], progress=False), "probe_layers"),
])
def test_model_and_data_swapped_name_the_call_and_what_it_got(demo, clip, tmp_path, call, name):
    """Arguments in the wrong order fail at once with the call's name, before anything is read or written."""
    store = tmp_path / "store"
    with pytest.raises(TypeError, match=rf"^{name}: model must be an audiovis model \(ASTModel, ViTModel, "
                                        r"av\.load_demo_model\(\)\), got a list$"):
        call(demo, [clip], store)
    assert not store.exists()


@pytest.mark.parametrize("model, got", [("ast-base", "'ast-base'"), (None, "a NoneType"), (3, "an int")])
def test_a_model_that_is_not_a_model_is_named(clip, tmp_path, model, got):
    with pytest.raises(TypeError, match=rf"^extract_embeddings: model must be an audiovis model .*, got {got}$"):
        av.extract_embeddings([clip], model, progress=False)
    with pytest.raises(av.ConfigError, match=rf"^quantize: model must be an audiovis model .*, got {got}$"):
        av.quantize(model, "int8")


def test_a_store_opened_or_explored_with_something_else_than_a_model(demo, clip, tmp_path):
    av.embed_dataset([clip], demo, tmp_path / "store", progress=False)
    with pytest.raises(TypeError, match=r"^open_store: model must be an audiovis model .*, got 'demo2'$"):
        av.open_store(tmp_path / "store", model="demo2")
    store = av.open_store(tmp_path / "store", model=demo)  # the model that built it passes
    with pytest.raises(TypeError, match=r"^explore_dataset: model must be an audiovis model .*, got a dict$"):
        av.explore_dataset(store, {"model": demo})


def test_dataset_calls_name_a_bad_path_source_list_or_empty_dataset(demo, clip, tmp_path):
    with pytest.raises(TypeError, match=r"^embed_dataset: path must be the store's folder \(a str or os\.PathLike\), "
                                        r"got int$"):
        av.embed_dataset([clip], demo, 3, progress=False)
    with pytest.raises(TypeError, match=r"^compute_tradeoff: sources must be a list of paths, a Dataset or a DataFrame "
                                        r"with a 'source' column, got int$"):
        av.compute_tradeoff(demo, 3, progress=False)
    with pytest.raises(ValueError, match=r"^probe_layers: no clips to probe \(the dataset is empty\)$"):
        av.probe_layers(demo, [], labels=[], progress=False)
    (tmp_path / "notes.txt").write_text("not a store")
    with pytest.raises(av.StoreError, match=r"no embedding store at '.*notes\.txt' \(a file, not a folder\)$"):
        av.open_store(tmp_path / "notes.txt")
    with pytest.raises(av.StoreError, match=r"no embedding store at '.*missing' \(no such folder\)$"):
        av.open_store(tmp_path / "missing")
