"""The viewer's playback audio: read from the caller's Audio, not copied, yet served exactly."""

from __future__ import annotations

import numpy as np
import torch

import audiovis as av
from audiovis.widgets.viewer import AUDIO_CHUNK_SAMPLES, SpectrogramViewer


def _viewer(audio: av.Audio) -> SpectrogramViewer:
    spec = av.MelSpectrogram(sample_rate=audio.sample_rate, n_mels=32)(audio)
    return SpectrogramViewer(spec, audio=audio)


def test_mono_float32_audio_is_shared_not_copied():
    rng = np.random.default_rng(0)
    audio = av.load_audio((0.1 * rng.standard_normal(3 * AUDIO_CHUNK_SAMPLES // 2)).astype(np.float32), 16000)
    viewer = _viewer(audio)
    assert np.shares_memory(viewer._pcm, audio.waveform.numpy())
    # ... and what the browser receives is still exactly those samples, chunk by chunk
    parts = []
    assert viewer._audio_info["chunks"] == 2
    for k in range(viewer._audio_info["chunks"]):
        reply, buffers = viewer._audio_chunk(k)
        parts.append(np.frombuffer(buffers[0], dtype=reply["dtype"]))
    sent = np.concatenate(parts).astype(np.float32) / (32767.0 if reply["dtype"] == "int16" else 1.0)
    np.testing.assert_allclose(sent, audio.waveform[0].numpy(), atol=1 / 32767)


def test_stereo_audio_is_mixed_once():
    audio = av.Audio(torch.stack([torch.full((16000,), 0.2), torch.full((16000,), -0.1)]), 16000)
    assert audio.num_channels == 2
    viewer = _viewer(audio)
    assert not np.shares_memory(viewer._pcm, audio.waveform.numpy())
    np.testing.assert_allclose(viewer._pcm, 0.05, atol=1e-7)
