"""Absolute time: a part of a recording keeps where it lies in it (``Audio.start``), and so do its
spectrograms (``time_offset``), analyses (``offset``), explorers and viewers (their clock and playback)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
import traitlets

import audiovis as av
from audiovis.longform import chunked_spectrogram

SR = 16000


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> tuple[np.ndarray, str]:
    """70 s of noise with a 1 kHz tone at 61-62 s, as samples and as a FLAC file."""
    rng = np.random.default_rng(11)
    x = (0.05 * rng.standard_normal(70 * SR)).astype(np.float32)
    t = np.arange(SR) / SR
    x[61 * SR : 62 * SR] += (0.4 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    path = tmp_path_factory.mktemp("abs") / "long.flac"
    sf.write(path, x, SR)
    return x, str(path)


def fresh(samples: np.ndarray) -> av.Audio:
    """The same samples as a clip of their own, starting at 0: the reference the absolute results shift."""
    return av.Audio(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None], SR)


def test_segment_and_offset_loads_keep_their_start(recording):
    x, path = recording
    whole = av.load_audio(x, SR)
    assert whole.start == 0.0 and av.load_audio(path).start == 0.0
    part = whole.segment(60, 64)
    assert part.start == 60.0 and part.end == 64.0
    np.testing.assert_array_equal(part.numpy()[0], x[60 * SR : 64 * SR])
    inner = part.segment(1.0, 2.0)  # counts from the part's own first sample; lies at 61 s in the recording
    assert inner.start == 61.0
    np.testing.assert_array_equal(inner.numpy()[0], x[61 * SR : 62 * SR])
    assert part.resample(8000).start == 60.0 and part.to_mono().start == 60.0
    loaded = av.load_audio(path, offset=60, duration=4)
    assert loaded.start == 60.0 and loaded.num_samples == 4 * SR
    assert av.load_audio(path, offset=60.00003).start == 60.0  # read from a whole sample: that sample's time
    assert av.load_audio(x, SR, offset=2.5).start == 2.5
    assert av.load_audio(part, offset=1.0).start == 61.0
    assert av.load_audio(path, sample_rate=8000, offset=60, duration=1).start == 60.0
    assert "from 60.000 s" in repr(part) and "from" not in repr(whole)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "60", True, None])
def test_bad_start_is_named(bad):
    with pytest.raises(av.AudioLoadError, match=r"Audio\.start must be a finite number of seconds >= 0"):
        av.Audio(torch.zeros(1, 10), SR, None, bad)


@pytest.mark.parametrize(
    "frontend",
    [av.KaldiFbank(target_frames=None), av.KaldiFbank(), av.MelSpectrogram(), av.STFTSpectrogram(n_fft=512)],
    ids=["kaldi", "kaldi-fixed", "mel", "stft"],
)
def test_front_ends_put_frames_on_the_recordings_clock(recording, frontend):
    x, _ = recording
    part = av.load_audio(x, SR).segment(60, 64)
    got, ref = frontend(part), frontend(fresh(x[60 * SR : 64 * SR]))
    np.testing.assert_array_equal(got.numpy(), ref.numpy())
    np.testing.assert_allclose(got.times, ref.times + 60.0, rtol=0, atol=1e-9)
    assert got.time_offset == pytest.approx(ref.time_offset + 60.0, abs=1e-9)


def test_chunked_spectrogram_of_a_part_is_on_the_recordings_clock(recording):
    x, _ = recording
    fe = av.KaldiFbank(target_frames=None)
    part = av.load_audio(x, SR).segment(30, 64)
    got = chunked_spectrogram(fe, part, chunk_seconds=10)
    ref = fe(fresh(x[30 * SR : 64 * SR]))
    np.testing.assert_allclose(got.numpy(), ref.numpy(), atol=1e-5)
    np.testing.assert_allclose(got.times, ref.times + 30.0, rtol=0, atol=1e-9)


def test_analysis_offset_is_the_time_in_the_recording(recording):
    x, path = recording
    model = av.load_demo_model()
    whole = av.load_audio(x, SR)
    windows = model.analyze(whole)
    assert windows[15].offset == 60.0
    part = whole.segment(60, 64 + 0.015)
    one = model.analyze(part)
    assert isinstance(one, av.Analysis) and one.offset == 60.0
    assert one.spectrogram.time_offset == pytest.approx(60.0075, abs=1e-9)  # Kaldi frame 0 is centred 12.5 ms in
    np.testing.assert_allclose(one.logits, windows[15].logits, atol=1e-5)
    # the reference: the same samples as a clip of their own, at 0; only the clock differs
    alone = model.analyze(fresh(x[60 * SR : 64 * SR + 240]))
    assert alone.offset == 0.0
    np.testing.assert_allclose(one.logits, alone.logits, atol=1e-6)
    np.testing.assert_allclose(one.spectrogram.times, alone.spectrogram.times + 60.0, rtol=0, atol=1e-9)
    # windows of a part loaded from the file count from where the part lies
    loaded = model.analyze(av.load_audio(path, offset=56))
    assert [w.offset for w in loaded][:3] == [56.0, 60.0, 64.0]
    from_file = model.analyze(av.load_audio(path))  # the file holds 16-bit samples: compare file with file
    np.testing.assert_allclose(loaded[1].logits, from_file[15].logits, atol=1e-5)
    # a spectrogram of the part, windowed by the model, reads the offset from its frames' times
    spec = av.KaldiFbank(target_frames=None, mean=model.frontend.mean, std=model.frontend.std)(whole.segment(56, 70))
    from_spec = model.analyze(spec)
    assert [w.offset for w in from_spec][:3] == [56.0, 60.0, 64.0]
    np.testing.assert_allclose(from_spec[1].logits, windows[15].logits, atol=1e-5)


def test_explorer_and_viewer_show_and_play_the_recordings_clock(recording):
    x, _ = recording
    part = av.load_audio(x, SR).segment(60, 64 + 0.015)
    ex = av.explore(part)
    texts = [w.value for w in _walk(ex) if isinstance(getattr(w, "value", None), str)]
    assert any("from 60.00 s" in t for t in texts), texts
    viewer = ex.viewer
    assert viewer.full_time_range[0] == pytest.approx(60.0075, abs=1e-9)
    assert viewer._meta["time_offset"] == pytest.approx(60.0075, abs=1e-9)
    # playback: the audio's first sample plays at 60 s on the viewer's clock
    assert viewer._audio_info["start"] == 60.0
    assert viewer._audio_info["duration"] == pytest.approx(4.0075)  # cut where the spectrogram ends
    assert viewer.playhead == 60.0
    viewer.playhead = 61.5
    with pytest.raises(traitlets.TraitError, match=r"playhead must be within 60\.\.64\.00[78] s, got 1\.5"):
        viewer.playhead = 1.5
    viewer.set_state({"playhead": 1.5})  # the browser's value before the audio: clamped to its start
    assert viewer.playhead == 60.0
    viewer.set_state({"playhead": 99.0})
    assert viewer.playhead == pytest.approx(64.0075)


def test_explorer_of_a_window_of_a_part_plays_that_window(recording):
    """explore(part, window=1) on a part at 56-70 s: the window at 60 s, its audio cut at the window's end."""
    x, _ = recording
    part = av.load_audio(x, SR).segment(56, 70)
    ex = av.explore(part, window=1)
    assert ex.analysis.offset == 60.0
    end = float(ex.viewer.spectrogram.frame_to_time(ex.viewer.spectrogram.num_frames))
    assert end == pytest.approx(64.0075, abs=1e-9)
    assert ex.viewer._audio_info["start"] == 56.0  # the part's samples, on the recording's clock
    assert ex.viewer._duration() == pytest.approx(end, abs=1 / SR)  # up to the window's end, not the part's


def test_viewer_of_a_whole_clip_keeps_its_clock_from_zero(recording):
    x, _ = recording
    audio = av.load_audio(x[: 4 * SR], SR)
    viewer = av.SpectrogramViewer(av.KaldiFbank()(audio), audio=audio)
    assert viewer._audio_info["start"] == 0.0 and viewer.playhead == 0.0
    with pytest.raises(traitlets.TraitError, match=r"playhead must be within 0\.\.4\.000 s"):
        viewer.playhead = -0.5


def _walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)
