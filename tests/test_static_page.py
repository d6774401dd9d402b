"""save_html without a browser: what the page holds, audio round trips, clear errors for bad input."""

from __future__ import annotations

import base64
import io
import json
import re
import zlib

import numpy as np
import pytest
import soundfile as sf
import torch

import audiovis as av
from audiovis.widgets.static_page import encode_audio

SR = 16000


def page_data(path) -> dict:
    text = path.read_text()
    return json.loads(re.search(r'<script type="application/json" id="audiovis-page">(.*?)</script>', text, re.S).group(1))


def small_viewer(seconds: float = 2.0, **kwargs) -> av.SpectrogramViewer:
    t = np.arange(int(seconds * SR)) / SR
    audio = av.Audio(torch.tensor(0.3 * np.sin(2 * np.pi * 440 * t), dtype=torch.float32)[None], SR)
    spec = av.MelSpectrogram()(audio)
    return av.SpectrogramViewer(spec, audio=audio, **kwargs)


def test_missing_folder_and_folder_path_are_named(tmp_path):
    viewer = small_viewer()
    with pytest.raises(FileNotFoundError, match=r"folder .*no_such_dir does not exist"):
        viewer.save_html(tmp_path / "no_such_dir" / "page.html")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        viewer.save_html(tmp_path)
    with pytest.raises(ValueError, match="frames must be 'all' or 'view'"):
        viewer.save_html(tmp_path / "p.html", frames="some")
    with pytest.raises(ValueError, match="audio_format must be"):
        viewer.save_html(tmp_path / "p.html", audio_format="mp3")
    assert not (tmp_path / "p.html").exists()


def test_page_holds_state_and_escapes_text(tmp_path):
    viewer = small_viewer()
    viewer.heatmap_label = "</script><img src=x onerror=alert(1)>"
    path = tmp_path / "v.html"
    report = viewer.save_html(path, title="<b>mine</b>")
    text = path.read_text()
    assert "<b>mine</b>" not in text and "&lt;b&gt;mine&lt;/b&gt;" in text
    assert text.count("</script>") == text.count("<script")  # no string closes a script early
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    data = page_data(path)
    state = data["viewer"]["state"]
    assert state["heatmap_label"] == viewer.heatmap_label
    assert "_esm" not in state and "_css" not in state  # the page carries its own loader
    entry = next(b for b in data["viewer"]["buffers"] if b["path"][0] == "_spectrogram")
    spec = base64.b64decode(entry["data"])
    if entry.get("compression") == "deflate":
        spec = zlib.decompress(spec)
    assert spec == viewer._spectrogram.tobytes()
    assert report.size_bytes == path.stat().st_size and report.parts["audio"] > 0


def test_flac_audio_round_trips_losslessly_and_loud_audio_keeps_its_level():
    rng = np.random.default_rng(0)
    samples = (0.5 * rng.standard_normal(SR)).clip(-1, 1).astype(np.float32)
    entry, notes = encode_audio(samples, SR)
    assert entry["format"] == "flac" and not notes
    decoded, rate = sf.read(io.BytesIO(base64.b64decode(entry["data"])), dtype="float32")
    assert rate == SR and len(decoded) == entry["num_samples"] == SR
    np.testing.assert_allclose(decoded * entry["gain"], samples, atol=1 / 32767)
    loud = samples * 3
    entry, _ = encode_audio(loud, SR)
    decoded, _ = sf.read(io.BytesIO(base64.b64decode(entry["data"])), dtype="float32")
    assert entry["gain"] == pytest.approx(float(np.abs(loud).max()))
    np.testing.assert_allclose(decoded * entry["gain"], loud, atol=4 / 32767)


@pytest.mark.parametrize("seconds, audio_format, expected", [(70, "auto", "vorbis"), (5, "opus", "opus")])
def test_compressed_audio_sounds_like_the_original(seconds, audio_format, expected):
    t = np.arange(seconds * SR) / SR
    samples = (0.4 * np.sin(2 * np.pi * 330 * t) * (t % 2 < 1)).astype(np.float32)
    entry, _ = encode_audio(samples, SR, audio_format)
    assert entry["format"] == expected and entry["mime"] == "audio/ogg"
    raw = base64.b64decode(entry["data"])
    assert len(raw) < seconds * 40000 / 8  # under 40 kb/s
    decoded, rate = sf.read(io.BytesIO(raw), dtype="float32")
    assert rate == SR and abs(len(decoded) - len(samples)) < SR // 10
    n = min(len(decoded), len(samples))
    corr = np.corrcoef(decoded[:n], samples[:n])[0, 1]
    assert corr > 0.95, corr
    wav, _ = encode_audio(samples[:SR], SR, "wav")
    assert wav["format"] == "wav" and base64.b64decode(wav["data"])[:4] == b"RIFF"
    with pytest.raises(ValueError, match="Opus takes rates"):
        from audiovis.widgets.static_page import _encode

        _encode(sf, samples[:100], 22050, "opus")


def test_long_spectrogram_frames_all_or_view(tmp_path):
    viewer = small_viewer(200.0)
    values = viewer.spectrogram.numpy()
    n_bins, n_frames = values.shape
    assert viewer._tiles is not None  # long enough for level of detail
    viewer.save_html(tmp_path / "all.html")
    full = page_data(tmp_path / "all.html")
    frames = full["viewer"]["frames"]
    assert (frames["start_frame"], frames["end_frame"]) == (0, n_frames) and full["viewer"]["overview_from_frames"]
    codes = np.frombuffer(zlib.decompress(base64.b64decode(frames["data"])), np.uint8).reshape(n_bins, n_frames)
    codes = np.cumsum(codes, axis=0, dtype=np.uint8)  # undo the difference to the bin below (mod 256)
    np.testing.assert_array_equal(codes, viewer._tile_server.encode(values))
    assert all(b["path"][0] != "_spectrogram" for b in full["viewer"]["buffers"])  # pooled in the page
    viewer.time_range = (50.0, 60.0)
    report = viewer.save_html(tmp_path / "view.html", frames="view")
    part = page_data(tmp_path / "view.html")["viewer"]["frames"]
    first, last = viewer.spectrogram.time_to_frame(50.0), viewer.spectrogram.time_to_frame(60.0)
    assert part["start_frame"] <= first and part["end_frame"] >= last
    assert part["end_frame"] - part["start_frame"] < n_frames / 2
    assert any("full resolution saved for" in note for note in report.notes)
    assert (tmp_path / "all.html").stat().st_size > report.size_bytes


def test_long_viewer_page_keeps_the_view_and_says_so(tmp_path):
    from audiovis.datasets.synthetic import SyntheticEvents

    clips = SyntheticEvents(30, seed=4)
    wav = np.concatenate([clips[i].waveform.numpy()[0] for i in range(30)])  # 120 s
    lv = av.LongViewer(av.Audio(torch.tensor(wav)[None], SR), background=False)
    lv.show_window(5)
    report = lv.save_html(tmp_path / "long.html")
    data = page_data(tmp_path / "long.html")["viewer"]
    frames = data["frames"]
    window = lv.windows[5]
    assert frames["start_frame"] <= window.start and frames["end_frame"] >= window.end
    assert frames["end_frame"] - frames["start_frame"] < lv.spectrogram.num_frames / 2  # the view, not all
    assert not data["overview_from_frames"]  # the overview is stored for the rest
    assert data["state"]["_windows"] and data["state"]["window"] == 5  # the label strip and window of save time
    assert any("LongViewer page" in note and "window 5" in note for note in report.notes)
    assert any("full resolution saved for" in note for note in report.notes)
