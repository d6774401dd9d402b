"""Frozen-encoder embeddings: one vector (or one per patch) per clip, batched, optionally kept on disk.

``layer`` and the pooled vectors follow :class:`~audiovis.Analysis`: ``layer`` is a block index (0 = the
first block's output, -1 = the last), the last layer gets the final LayerNorm (the features the head
sees), ``pooling="mean"`` averages the patch tokens, ``"cls"`` is the model's own pooling of its prefix
tokens (AST: the mean of the cls and distillation tokens) and ``"patches"`` keeps every patch token.
A clip longer than one model window is cut into the model's windows (``model.windows``, the rule of
``analyze``) and its vector is the mean of its windows' vectors. The computation is the embedding
store's (:mod:`audiovis.store`): the same stages, and with ``cache_dir`` the same Parquet store.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Sequence, Union

import numpy as np
import torch

from .audio import Audio
from .checks import check_int, is_int
from .errors import ConfigError
from .models.base import check_model
from .spectrogram import Spectrogram
from .store.compute import resolve_layers

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from .models.base import SpectrogramModelMixin

Pooling = Literal["mean", "cls", "patches"]
POOLINGS: tuple[str, ...] = ("mean", "cls", "patches")
Source = Union[str, os.PathLike, Audio, Spectrogram, np.ndarray, torch.Tensor]


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
    a dict ``{layer: array}`` comes back from one pass.

    Audio longer than one model window: every window is embedded and the clip's vector is the mean of its
    windows' vectors (``mean``/``cls``); ``patches`` has no such mean and raises for a clip of several
    windows (use :func:`audiovis.embed_dataset` with ``patches=True``, which keeps each window's patches).

    With ``cache_dir``, results go to an embedding store (:func:`audiovis.embed_dataset`) at
    ``cache_dir/<model key>-<layers>``: a rerun reads finished clips back without running the model, an
    edited file is computed again, and a run that stops half-way keeps what it finished.

    Args:
        sources: paths, Audio, arrays or Spectrograms, or a Dataset of items with ``.audio``.
        model: the frozen model.
        layer: a block index (negative counts from the end) or a list of them.
        pooling: ``"mean"`` of the patch tokens, the ``"cls"`` token, or every ``"patches"`` token.
        batch_size: model windows per forward pass.
        cache_dir: where an embedding store keeps the results between runs (None: not kept).
        sample_rate: the rate of sources given as arrays.
        progress: show a progress bar.

    Returns:
        ``[n, D]`` (``mean``/``cls``) or ``[n, N, D]`` (``patches``) float32, in the order of ``sources``;
        a dict ``{layer: array}`` when ``layer`` is a list.
    """
    from .store.build import new_manifest, open_for_writing, run_local
    from .store.manifest import store_model_key
    from .store.sources import check_files, plan

    check_model(model, "extract_embeddings")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {list(POOLINGS)}, got {pooling!r}")
    batch_size = check_int(batch_size, "batch_size", minimum=1, error=ConfigError)
    layers = resolve_layers(layer, model.num_layers)
    unique_layers = sorted(set(layers))
    items, dataset = plan(sources, what="extract_embeddings", folders=False)
    check_files(items)
    patches = pooling == "patches"
    options = dict(patches=patches, patch_dtype="float32", predictions=False, sample_rate=sample_rate)
    kept: dict[str, dict] = {}
    if cache_dir is None:
        manifest = new_manifest(model, unique_layers, **options)
        _, index = run_local(items, dataset, model, manifest, None, batch_size=batch_size, shard_size=1,
                             sample_rate=sample_rate, progress=progress, keep=kept, desc="embeddings")
    else:
        name = f"{store_model_key(model)}-layers{'_'.join(map(str, unique_layers))}{'-patches' if patches else ''}"
        root = Path(cache_dir) / name
        manifest = open_for_writing(root, model, unique_layers, **options)
        _, index = run_local(items, dataset, model, manifest, root, batch_size=batch_size, shard_size=256,
                             sample_rate=sample_rate, progress=progress, desc="embeddings")
        manifest.complete = True
        manifest.write(root)
        kept = _read_rows(root, [r["clip_id"] for r in index], unique_layers, patches)

    stacked: dict[int, np.ndarray] = {}
    for ly in unique_layers:
        out = []
        for entry in index:
            row = kept[entry["clip_id"]]
            if row.get("error") is not None:
                from .errors import AudioLoadError

                raise AudioLoadError(f"source {entry['position']}: {row['error']}")
            if patches:
                if row["num_windows"] > 1:
                    raise ValueError(
                        f"source {entry['position']} ({entry['source']}) spans {row['num_windows']} model windows; "
                        "pooling='patches' gives one window's patches: cut the clip, or use "
                        "audiovis.embed_dataset(..., patches=True), which keeps every window's patches"
                    )
                out.append(np.asarray(row[f"patches_{ly}"], np.float32))
            else:
                out.append(np.asarray(row[f"{pooling}_{ly}"], np.float32))
        stacked[ly] = np.stack(out) if out else np.zeros((0,), np.float32)
    if is_int(layer):
        return stacked[layers[0]]
    return {requested: stacked[ly] for requested, ly in zip(layer, layers)}  # type: ignore[arg-type]


def _read_rows(root: Path, clip_ids: list[str], layers: Sequence[int], patches: bool) -> dict[str, dict]:
    """The stored rows of ``clip_ids`` (error, window count and the vectors of ``layers``) from a store."""
    from .store.shards import read_columns

    columns = ["error", "num_windows"]
    for ly in layers:
        columns += [f"patches_{ly}"] if patches else [f"mean_{ly}", f"cls_{ly}"]
    table = read_columns(root, columns)
    wanted = set(clip_ids)
    rows: dict[str, dict] = {}
    if table is None:
        return rows
    for record in table.to_pylist():
        if record["clip_id"] in wanted:
            rows[record["clip_id"]] = record
    return rows
