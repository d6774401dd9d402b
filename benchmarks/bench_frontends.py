"""Front ends: MelSpectrogram on 10 minutes of 16 kHz audio vs librosa and vs bare torchaudio.

Also reports the floor of any STFT-based front end here: the windowed ``rfft`` of the same frames alone
(in the same 512-frame blocks), and the speed-up over librosa that this floor would allow.
"""

from __future__ import annotations

import numpy as np
import torch

from .common import paired_medians, print_rows, row


def run(*, minutes: float = 10, rounds: int = 5) -> list[dict]:
    """``minutes`` of audio; each comparison takes medians of ``rounds`` alternating runs of both sides."""
    import librosa
    import torchaudio

    import audiovis as av
    from audiovis.spectrogram import _FRAMES_PER_BLOCK

    sr = 16000
    rng = np.random.default_rng(0)
    wav = (0.1 * rng.standard_normal(int(sr * 60 * minutes))).astype(np.float32)
    audio = av.load_audio(wav, sr)
    params = dict(n_fft=1024, hop_length=160, n_mels=128)
    ours = av.MelSpectrogram(sample_rate=sr, to_db=False, **params)
    bare = torchaudio.transforms.MelSpectrogram(sample_rate=sr, pad_mode="constant", **params)
    tensor = torch.from_numpy(wav)

    window = ours.transform.spectrogram.window
    frames = torch.nn.functional.pad(tensor, (512, 512)).unfold(0, 1024, 160)
    spectrum = torch.empty(_FRAMES_PER_BLOCK, 513, dtype=torch.complex64)
    windowed = torch.empty(_FRAMES_PER_BLOCK, 1024)

    def rfft_only() -> None:
        for start in range(0, frames.shape[0], _FRAMES_PER_BLOCK):
            block = frames[start : start + _FRAMES_PER_BLOCK]
            n = block.shape[0]
            torch.fft.rfft(torch.mul(block, window, out=windowed[:n]), out=spectrum[:n])

    # Each comparison: medians of the same number of alternating runs of both sides.
    with torch.inference_mode():
        t_ours_bare, t_bare = paired_medians(lambda: ours(audio), lambda: bare(tensor), rounds=rounds)
        t_ours_floor, t_floor = paired_medians(lambda: ours(audio), rfft_only, rounds=rounds)
    t_ours, t_librosa = paired_medians(
        lambda: ours(audio),
        lambda: librosa.feature.melspectrogram(y=wav, sr=sr, htk=True, norm=None, pad_mode="constant", **params),
        rounds=rounds,
    )
    speedup = t_librosa / t_ours
    return [
        row("frontends", f"MelSpectrogram, {minutes:g} min @16 kHz (audiovis, median of {rounds})", t_ours * 1000, "ms"),
        row("frontends", f"speed-up vs librosa.feature.melspectrogram (medians of {rounds} alternating runs each)", speedup,
            "x", peer="librosa",
            peer_value=t_librosa * 1000, ratio=speedup, target=">= 20x faster", met=speedup >= 20),
        row("frontends", f"time vs bare torchaudio MelSpectrogram (medians of {rounds} alternating runs each)",
            t_ours_bare / t_bare, "x", peer="torchaudio", peer_value=t_bare * 1000, ratio=t_ours_bare / t_bare,
            target="<= 1.1x", met=t_ours_bare / t_bare <= 1.1),
        row("frontends", "floor: windowed rfft of the same frames only", t_floor * 1000, "ms",
            peer="audiovis", peer_value=t_ours_floor * 1000),
        row("frontends", "speed-up vs librosa the rfft floor allows", t_librosa / t_floor, "x", peer="librosa",
            peer_value=t_librosa * 1000, ratio=t_librosa / t_floor),
    ]


if __name__ == "__main__":
    print_rows(run())
