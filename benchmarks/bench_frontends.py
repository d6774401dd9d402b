"""Front ends, timed on the public call ``frontend(audio)``, against librosa, torchaudio and the FFT floor.

The matrix (16 kHz noise):

- ``STFTSpectrogram`` and ``MelSpectrogram`` (128 HTK mels) at ``n_fft`` 400 (AST's 25 ms) and 1024, hop
  160, on 10 minutes: in dB (the default; librosa's peer adds ``power_to_db(ref=1, amin=1e-10,
  top_db=80)``) and in power (``to_db=False``, what ``librosa.stft`` power / ``melspectrogram`` return).
- ``KaldiFbank`` (25 ms frames every 10 ms, not centred, FFT 512): ``KaldiFbank()`` on a 10 s clip (AST's
  use: 998 frames padded to 1024, normalised) and ``KaldiFbank(target_frames=None)`` on 10 minutes. Peers:
  ``torchaudio.compliance.kaldi.fbank`` with the same settings, and librosa's ``melspectrogram`` of the
  same 25 ms frames (``n_fft=512, win_length=400, center=False``, 128 HTK mels from 20 Hz) + ``log``.

Each against the floor of any STFT front end: the windowed ``rfft`` of the same frames at the same FFT
size and nothing else, in the same blocks on the same worker threads as audiovis
(``audiovis.framewise.block_workers``), its buffers made once. Targets: at least librosa's speed, at
most 1.5x the floor. Every comparison takes medians of the same number of alternating runs of both
sides (``paired_medians``); the 10 s clip, a few milliseconds a run, takes five times as many. Also kept: the first rows of this benchmark (MelSpectrogram ``n_fft`` 1024
power against librosa and bare torchaudio).
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from .common import paired_medians, print_rows, row, smoke

SR = 16000
HOP = 160
N_MELS = 128


def _floor(frames: torch.Tensor, window: torch.Tensor, fft_size: int):
    """The windowed rfft of ``frames`` ``[n, frame_length]`` at ``fft_size``, block by block on the workers."""
    from audiovis.framewise import block_workers, blocks_of, pooled

    pool = pooled(frames.shape[0], fft_size)  # the same blocks on the same threads as audiovis
    blocks = blocks_of([(0, frames)], frames.shape[0], fft_size, pool=pool)
    block = max(b.shape[0] for _, b in blocks)
    length = frames.shape[1]
    local = threading.local()

    def work(i: int, scratch: dict) -> None:
        b = blocks[i][1]
        buffer = getattr(local, "buffer", None)
        if buffer is None:
            buffer = local.buffer = torch.zeros(block, fft_size)  # made once per thread; tail stays zero
        n = b.shape[0]
        torch.mul(b, window, out=buffer[:n, :length])
        torch.fft.rfft(buffer[:n])

    return lambda: block_workers(len(blocks), work, pool=pool)


def _stft_mel_rows(wav: np.ndarray, audio, minutes: float, rounds: int) -> list[dict]:
    import librosa

    import audiovis as av

    rows = []
    tensor = torch.from_numpy(wav)
    for n_fft in (400, 1024):
        frames = torch.nn.functional.pad(tensor, (n_fft // 2, n_fft // 2)).unfold(0, n_fft, HOP)
        floor = _floor(frames, torch.hann_window(n_fft), n_fft)
        stft = dict(n_fft=n_fft, hop_length=HOP, window="hann", center=True, pad_mode="constant")
        mel = dict(sr=SR, n_fft=n_fft, hop_length=HOP, n_mels=N_MELS, htk=True, norm=None, pad_mode="constant")
        peers = {
            "STFTSpectrogram": lambda: np.abs(librosa.stft(wav, **stft)) ** 2,
            "MelSpectrogram": lambda: librosa.feature.melspectrogram(y=wav, **mel),
        }
        for name, peer in peers.items():
            for to_db in (True, False):
                if name == "STFTSpectrogram":
                    ours = av.STFTSpectrogram(n_fft=n_fft, hop_length=HOP, to_db=to_db)
                else:
                    ours = av.MelSpectrogram(sample_rate=SR, n_fft=n_fft, hop_length=HOP, n_mels=N_MELS, to_db=to_db)
                theirs = (lambda p=peer: librosa.power_to_db(p(), ref=1.0, amin=1e-10, top_db=80.0)) if to_db else peer
                case = f"{name} n_fft {n_fft}, {'dB' if to_db else 'power'}, {minutes:g} min"
                rows += _case_rows(case, lambda f=ours: f(audio), theirs, "librosa", floor, rounds)
    return rows


def _case_rows(case: str, ours, theirs, peer: str, floor, rounds: int, torchaudio=None) -> list[dict]:
    """Rows of one front end: vs ``peer`` (>= 1.0x its speed), vs torchaudio if given, vs the floor (<= 1.5x)."""
    with torch.inference_mode():
        t_ours, t_peer = paired_medians(ours, theirs, rounds=rounds)
        rows = [row("frontends", f"{case}: audiovis vs {peer} (speed-up = {peer} time / ours)", t_ours * 1000, "ms",
                    peer=peer, peer_value=t_peer * 1000, ratio=t_peer / t_ours, target=">= 1.0x",
                    met=t_peer / t_ours >= 1.0)]
        if torchaudio is not None:
            t_ours_ta, t_ta = paired_medians(ours, torchaudio, rounds=rounds)
            rows.append(row("frontends", f"{case}: audiovis vs torchaudio kaldi.fbank (speed-up)", t_ours_ta * 1000,
                            "ms", peer="torchaudio", peer_value=t_ta * 1000, ratio=t_ta / t_ours_ta,
                            target=">= 1.0x", met=t_ta / t_ours_ta >= 1.0))
        t_ours_floor, t_floor = paired_medians(ours, floor, rounds=rounds)
    ratio = t_ours_floor / t_floor
    rows.append(row("frontends", f"{case}: audiovis / windowed-rfft floor (time ratio)", t_ours_floor * 1000, "ms",
                    peer="rfft floor", peer_value=t_floor * 1000, ratio=ratio, target="<= 1.5x", met=ratio <= 1.5))
    return rows


def _kaldi_rows(wav: np.ndarray, seconds: float, rounds: int) -> list[dict]:
    import librosa
    from torchaudio.compliance import kaldi

    import audiovis as av

    clip = wav[: int(seconds * SR)]
    tensor = torch.from_numpy(clip)
    audio = av.load_audio(clip, SR)
    ours = av.KaldiFbank() if seconds <= 10.24 else av.KaldiFbank(target_frames=None)
    floor = _floor(tensor.unfold(0, 400, HOP), torch.hann_window(400, periodic=False), 512)
    eps = float(np.finfo(np.float32).eps)

    def theirs_librosa() -> np.ndarray:
        power = librosa.feature.melspectrogram(y=clip, sr=SR, n_fft=512, win_length=400, hop_length=HOP,
                                               window="hann", center=False, n_mels=N_MELS, fmin=20.0, htk=True,
                                               norm=None)
        return np.log(np.maximum(power, eps))

    def theirs_torchaudio() -> torch.Tensor:
        return kaldi.fbank(tensor[None], sample_frequency=SR, window_type="hanning", num_mel_bins=N_MELS,
                           htk_compat=True, use_energy=False, dither=0.0, frame_shift=10.0, frame_length=25.0)

    what = f"KaldiFbank(), {seconds:g} s clip" if seconds <= 10.24 else \
        f"KaldiFbank(target_frames=None), {seconds / 60:g} min"
    return _case_rows(what, lambda: ours(audio), theirs_librosa, "librosa", floor, rounds, theirs_torchaudio)


def _first_rows(wav: np.ndarray, audio, minutes: float, rounds: int) -> list[dict]:
    """The benchmark's first rows (MelSpectrogram n_fft 1024 power), kept with their targets."""
    import librosa
    import torchaudio

    import audiovis as av

    params = dict(n_fft=1024, hop_length=HOP, n_mels=N_MELS)
    ours = av.MelSpectrogram(sample_rate=SR, to_db=False, **params)
    bare = torchaudio.transforms.MelSpectrogram(sample_rate=SR, pad_mode="constant", **params)
    tensor = torch.from_numpy(wav)
    frames = torch.nn.functional.pad(tensor, (512, 512)).unfold(0, 1024, HOP)
    floor = _floor(frames, torch.hann_window(1024), 1024)
    with torch.inference_mode():
        t_ours_bare, t_bare = paired_medians(lambda: ours(audio), lambda: bare(tensor), rounds=rounds)
        t_ours, t_librosa = paired_medians(
            lambda: ours(audio),
            lambda: librosa.feature.melspectrogram(y=wav, sr=SR, htk=True, norm=None, pad_mode="constant", **params),
            rounds=rounds,
        )
        _, t_floor = paired_medians(lambda: ours(audio), floor, rounds=rounds)
    speedup = t_librosa / t_ours
    return [
        row("frontends", f"MelSpectrogram, {minutes:g} min @16 kHz (audiovis, median of {rounds})", t_ours * 1000, "ms"),
        row("frontends", f"speed-up vs librosa.feature.melspectrogram (medians of {rounds} alternating runs each)", speedup,
            "x", peer="librosa", peer_value=t_librosa * 1000, ratio=speedup, target=">= 20x faster", met=speedup >= 20),
        row("frontends", f"time vs bare torchaudio MelSpectrogram (medians of {rounds} alternating runs each)",
            t_ours_bare / t_bare, "x", peer="torchaudio", peer_value=t_bare * 1000, ratio=t_ours_bare / t_bare,
            target="<= 1.1x", met=t_ours_bare / t_bare <= 1.1),
        row("frontends", "speed-up vs librosa the rfft floor allows", t_librosa / t_floor, "x", peer="librosa",
            peer_value=t_librosa * 1000, ratio=t_librosa / t_floor),
    ]


def run(*, minutes: float = 10, rounds: int = 5) -> list[dict]:
    """``minutes`` of audio; each comparison takes medians of ``rounds`` alternating runs of both sides."""
    import warnings

    import audiovis as av

    if smoke():
        minutes, rounds = 0.2, 1
    rng = np.random.default_rng(0)
    wav = (0.1 * rng.standard_normal(int(SR * 60 * minutes))).astype(np.float32)
    audio = av.load_audio(wav, SR)
    with warnings.catch_warnings():  # 128 mels over 201 bins (n_fft 400): some filters are empty, by design here
        warnings.filterwarnings("ignore", message=".*(all zero|Empty filters).*")
        rows = _stft_mel_rows(wav, audio, minutes, rounds)
        rows += _kaldi_rows(wav, 10.0, 5 * rounds)  # a few ms a run: more runs for a stable median
        rows += _kaldi_rows(wav, 60 * minutes, rounds)
        rows += _first_rows(wav, audio, minutes, rounds)
    return rows


if __name__ == "__main__":
    print_rows(run())
