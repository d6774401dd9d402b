"""Frozen-encoder embeddings: one vector (or one per patch) per clip, batched, optionally cached on disk.

``layer`` and the pooled vectors follow :class:`~audiovis.Analysis`: ``layer`` is a block index (0 = the
first block's output, -1 = the last), the last layer gets the final LayerNorm (the features the head
sees), ``pooling="mean"`` averages the patch tokens, ``"cls"`` is the model's own pooling of its prefix
tokens (AST: the mean of the cls and distillation tokens) and ``"patches"`` keeps every patch token.
Each clip is cut or padded to one model window, as ``model.spectrogram`` does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Literal, Sequence, Union

import numpy as np
import torch

from .audio import Audio
from .cache import EmbeddingCache, array_key, file_key, model_key
from .spectrogram import Spectrogram

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from .models.base import SpectrogramModelMixin

Pooling = Literal["mean", "cls", "patches"]
POOLINGS: tuple[str, ...] = ("mean", "cls", "patches")
Source = Union[str, os.PathLike, Audio, Spectrogram, np.ndarray, torch.Tensor]


def resolve_layers(layer: int | Sequence[int], num_layers: int) -> list[int]:
    """Block indices in ``[0, num_layers)`` (negative ones count from the end); checked."""
    layers = [layer] if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool) else list(layer)
    if not layers:
        raise ValueError("layer: give at least one layer index")
    out = []
    for value in layers:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"layer must be an integer (or a list of integers), got {value!r}")
        index = int(value) + (num_layers if value < 0 else 0)
        if not 0 <= index < num_layers:
            raise ValueError(f"layer {value} is outside the model's blocks: 0 .. {num_layers - 1} (or -1 .. {-num_layers})")
        out.append(index)
    return out


def pool(model: "SpectrogramModelMixin", tokens: torch.Tensor, pooling: str) -> torch.Tensor:
    """Tokens ``[B, P + N, D]`` -> ``[B, D]`` (``mean`` over patches, ``cls`` = the model's pooling) or ``[B, N, D]``."""
    p = model.num_prefix_tokens
    if pooling == "mean":
        return tokens[:, p:].mean(dim=1)
    if pooling == "cls":
        return model.pool_tokens(tokens)
    if pooling == "patches":
        return tokens[:, p:]
    raise ValueError(f"pooling must be one of {list(POOLINGS)}, got {pooling!r}")


def layer_tokens(model: "SpectrogramModelMixin", x: torch.Tensor, layers: Sequence[int]) -> dict[int, torch.Tensor]:
    """All tokens of blocks ``layers`` (the last one after the final norm) for a spectrogram batch ``x``.

    Only the blocks up to the deepest requested layer run.
    """
    states: list[torch.Tensor] = []
    model.run_blocks(model.embed(x), stop=max(layers) + 1, hidden_states=states)
    last = model.num_layers - 1
    return {ly: model.backbone.norm(states[ly]) if ly == last else states[ly] for ly in layers}


def iter_sources(sources, what: str = "extract_embeddings") -> tuple[int, Iterable]:
    """``(count, items)`` of a list of sources or a Dataset (items are read one at a time)."""
    from torch.utils.data import Dataset

    if isinstance(sources, (str, os.PathLike, Audio, Spectrogram)):
        raise TypeError(f"{what} takes a list of sources or a Dataset; wrap one source in a list")
    if isinstance(sources, np.ndarray) or isinstance(sources, torch.Tensor):
        raise TypeError(f"{what} takes a list of sources; pass a list of waveforms, not one array")
    if isinstance(sources, Dataset) and not isinstance(sources, Sequence):
        return len(sources), (sources[i] for i in range(len(sources)))  # type: ignore[arg-type]
    sources = list(sources)
    return len(sources), iter(sources)


def read_source(item, sample_rate: int | None, position: int) -> tuple[str, Source]:
    """``(content key, something model.spectrogram reads)`` for one source or dataset item."""
    if hasattr(item, "audio") and isinstance(item.audio, Audio):
        item = item.audio
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if not path.is_file():
            raise FileNotFoundError(f"source {position}: no audio file at {str(path)!r}")
        return file_key(path) + ("" if sample_rate is None else f"-{int(sample_rate)}"), path
    if isinstance(item, Audio):
        return array_key(item.waveform, item.sample_rate), item
    if isinstance(item, Spectrogram):
        return "s" + array_key(item.values, item.sample_rate), item
    if isinstance(item, (np.ndarray, torch.Tensor)):
        if sample_rate is None:
            raise ValueError(f"source {position} is an array; pass sample_rate=... (or Audio objects)")
        return array_key(item, sample_rate), item
    raise TypeError(
        f"source {position}: cannot read a {type(item).__name__}; pass paths, Audio, arrays, Spectrograms, "
        "or dataset items with an .audio"
    )


def extract_embeddings(
    sources: Sequence[Source] | "Dataset",
    model: "SpectrogramModelMixin",
    *,
    layer: int | Sequence[int] = -1,
    pooling: Pooling = "mean",
    batch_size: int = 8,
    cache_dir: str | os.PathLike | None = None,
    sample_rate: int | None = None,
    progress: bool = True,
) -> np.ndarray | dict[int, np.ndarray]:
    """Embeddings of every source from a frozen ``model``: ``[n, D]`` (``mean``/``cls``) or ``[n, N, D]`` (``patches``).

    ``sources`` is a list of paths, Audio, arrays (at ``sample_rate``) or Spectrograms, or a Dataset whose
    items have an ``.audio`` (e.g. :class:`audiovis.datasets.SyntheticEvents`). ``layer`` may be a list: then
    a dict ``{layer: array}`` comes back from one pass. With ``cache_dir``, every clip's result is stored
    under a hash of its content, the model's weights and config, the layer and the pooling; a rerun reads
    them back without running the model, and a run that stops half-way keeps what it finished.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {list(POOLINGS)}, got {pooling!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    layers = resolve_layers(layer, model.num_layers)
    unique_layers = sorted(set(layers))
    total, items = iter_sources(sources)

    caches: dict[int, EmbeddingCache] = {}
    if cache_dir is not None:
        key = model_key(model, extra=repr(getattr(model, "frontend", None)))
        caches = {ly: EmbeddingCache(cache_dir, key, ly, pooling) for ly in unique_layers}

    results: dict[int, list[np.ndarray | None]] = {ly: [None] * total for ly in unique_layers}
    pending: list[tuple[int, str, Source]] = []
    device = model.device

    def run_batch() -> None:
        specs = [model.spectrogram(src, sample_rate=sample_rate).values for _, _, src in pending]
        x = torch.stack(specs).to(device)
        states = layer_tokens(model, x, unique_layers)
        for ly in unique_layers:
            pooled = pool(model, states[ly], pooling).float().cpu().numpy()
            for row, (position, content, _) in enumerate(pending):
                results[ly][position] = pooled[row]
                if caches:
                    caches[ly].put(content, pooled[row])
        bar.update(len(pending))
        pending.clear()

    from tqdm.auto import tqdm

    from .models.base import inference

    with tqdm(total=total, desc="embeddings", unit="clip", disable=not progress) as bar, inference(model):
        for position, item in enumerate(items):
            content, src = read_source(item, sample_rate, position)
            cached = {ly: caches[ly].get(content) for ly in unique_layers} if caches else {}
            if caches and all(v is not None for v in cached.values()):
                for ly, value in cached.items():
                    results[ly][position] = value
                bar.update(1)
                continue
            pending.append((position, content, src))
            if len(pending) == batch_size:
                run_batch()
        if pending:
            run_batch()

    stacked = {ly: np.stack(results[ly]) if total else np.zeros((0,), np.float32) for ly in unique_layers}
    if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
        return stacked[layers[0]]
    return {requested: stacked[ly] for requested, ly in zip(layer, layers)}  # type: ignore[arg-type]
