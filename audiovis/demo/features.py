"""Model-input features of SyntheticEvents clips, computed once and kept in memory so epochs are cheap.

Features are AST's raw Kaldi log-mel fbank (zero-padded to the model window), stored as float16; the
model's normalisation ``(x - mean) / (2 * std)`` is applied per batch by :meth:`FeatureSet.batch`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..datasets import SyntheticEvents
from ..spectrogram import KaldiFbank


@dataclass
class FeatureSet:
    """Raw fbank ``features`` ``[clips, mel bins, frames]`` (float16), multi-hot ``labels`` and valid frame counts."""

    features: torch.Tensor
    labels: torch.Tensor
    valid_frames: torch.Tensor

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def statistics(self) -> tuple[float, float]:
        """Mean and standard deviation of the fbank over the frames that hold signal (padding excluded)."""
        total = total_sq = 0.0
        count = 0
        for clip, valid in zip(self.features, self.valid_frames.tolist()):
            x = clip[:, :valid].double()
            total += float(x.sum())
            total_sq += float((x * x).sum())
            count += x.numel()
        mean = total / count
        return mean, math.sqrt(max(total_sq / count - mean * mean, 0.0))

    def batch(self, indices: torch.Tensor, mean: float, std: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised inputs ``[B, mel bins, frames]`` (float32) and targets ``[B, classes]``, as KaldiFbank gives them."""
        x = (self.features[indices].float() - mean) / (2.0 * std)
        return x, self.labels[indices]


def compute_features(
    dataset: SyntheticEvents, *, num_mel_bins: int, max_length: int, progress: bool = False
) -> FeatureSet:
    """Generate every clip of ``dataset`` and its raw fbank (AST front end, padded or cut to ``max_length``)."""
    from tqdm.auto import tqdm

    frontend = KaldiFbank(num_mel_bins=num_mel_bins, target_frames=max_length, normalize=False)
    n = len(dataset)
    features = torch.empty(n, num_mel_bins, max_length, dtype=torch.float16)
    labels = torch.empty(n, dataset.num_classes, dtype=torch.float32)
    valid = torch.empty(n, dtype=torch.int64)
    for i in tqdm(range(n), desc="features", disable=not progress, leave=False):
        clip = dataset[i]
        spec = frontend(clip.audio)
        features[i] = spec.values.to(torch.float16)
        labels[i] = clip.labels
        valid[i] = spec.valid_frames
    return FeatureSet(features, labels, valid)
