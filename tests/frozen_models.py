"""Small random ASTs and labelled tones for the frozen-encoder, probe and pruning tests."""

from __future__ import annotations

import numpy as np
import torch

from audiovis.models.ast import ASTConfig, ASTModel

SR = 16000


def tiny_ast(seed: int = 0, **overrides) -> ASTModel:
    """A 3-block AST on 64 mel bins x 200 frames (5 x 19 = 95 patches at stride 10), random weights."""
    settings = dict(
        hidden_size=48, num_hidden_layers=3, num_attention_heads=3, intermediate_size=96,
        num_mel_bins=64, max_length=200, num_labels=4, multi_label=False,
    )
    settings.update(overrides)
    torch.manual_seed(seed)
    return ASTModel(ASTConfig(**settings)).eval()


def tone(freq: float, seconds: float = 2.0, *, noise: float = 0.0, seed: int = 0, amp: float = 0.3) -> np.ndarray:
    """A sine at ``freq`` Hz plus optional white noise, float32 at 16 kHz."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    return (amp * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(t.size)).astype(np.float32)
