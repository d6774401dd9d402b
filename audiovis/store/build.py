"""``embed_dataset``: build or extend an embedding store, locally or on Ray; the local engine.

A run plans the sources, reads the store's manifest (or writes a new one), then computes only the clips
whose ``clip_id`` no shard holds yet. Finished clips are buffered and written ``shard_size`` at a time;
the buffer is also written when the run stops on an exception (Ctrl-C included), and a killed process
loses at most the clips of its unwritten buffer. At the end ``clips.parquet`` lists every source in input
order with its clip_id and labels, and one line sums the run up.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..checks import check_int
from ..errors import ConfigError
from .compute import WindowEmbedder, embed_prepared, prepare, resolve_layers
from .manifest import MANIFEST, Manifest, StoreError, store_model_key
from .shards import SHARDS, stored_ids, write_shard
from .runs import INDEX, RunSummary, index_row, write_index
from .sources import Item, Loaded, iter_chunks, plan, read

if TYPE_CHECKING:
    from .store import EmbeddingStore

ENGINES = ("local", "ray")


def new_manifest(model: Any, layers: Sequence[int], *, patches: bool, patch_dtype: str, predictions: bool,
                 sample_rate: int | None) -> Manifest:
    """The manifest of a new store for ``model``: identity, layers, front end, patch geometry."""
    import torch

    from ..audio import Audio

    fe = model.frontend
    silence = Audio(torch.zeros(1, int(round(model.window_seconds * fe.sample_rate))), int(fe.sample_rate), "silence")
    _, spec = model.windows(silence)[0]
    grid = model.grid
    bounds = [list(grid.bounds_hz_s(i, spec)) for i in range(grid.num_patches)]
    return Manifest(
        model_key=store_model_key(model), model_class=type(model).__name__, frontend=repr(fe),
        num_layers=int(model.num_layers), layers=sorted(set(int(v) for v in layers)),
        dim=int(model.backbone.embed_dim), patches=bool(patches), patch_dtype=patch_dtype,
        predictions=bool(predictions), class_names=[str(v) for v in model.labels],
        multi_label=bool(model.multi_label), sample_rate=sample_rate, grid=grid.to_dict(), patch_bounds=bounds,
        window_seconds=float(model.window_seconds),
        # False: the top predictions in store.clips are those of a head that was never trained
        extra={"head_trained": bool(getattr(model, "head_trained", True))},
    )


def open_for_writing(root: Path, model: Any, layers: Sequence[int], *, patches: bool, patch_dtype: str,
                     predictions: bool, sample_rate: int | None) -> Manifest:
    """The manifest of the store at ``root``: checked against this run, or new (written)."""
    if (root / MANIFEST).exists():
        manifest = Manifest.read(root)
        for leftover in (root / SHARDS).glob(".*.tmp"):  # a killed run's unfinished shard
            leftover.unlink(missing_ok=True)
        manifest.check_model(model, root)
        manifest.check_settings(root, layers=sorted(set(int(v) for v in layers)), patches=bool(patches),
                                patch_dtype=patch_dtype, predictions=bool(predictions), sample_rate=sample_rate)
        if manifest.complete:
            manifest.complete = False
            manifest.write(root)
        return manifest
    if root.exists() and not root.is_dir():
        raise StoreError(f"{str(root)!r} is a file; an embedding store is a folder")
    if root.is_dir() and any(p.name not in (SHARDS, INDEX) for p in root.iterdir()):
        raise StoreError(f"{str(root)!r} is a folder with other files and no {MANIFEST}; "
                         "give embed_dataset an empty or new folder")
    manifest = new_manifest(model, layers, patches=patches, patch_dtype=patch_dtype, predictions=predictions,
                            sample_rate=sample_rate)
    manifest.write(root)
    return manifest


def run_local(items: list[Item], dataset: Any, model: Any, manifest: Manifest, root: Path | None, *,
              batch_size: int, shard_size: int, sample_rate: int | None, progress: bool,
              keep: dict[str, dict] | None = None, desc: str = "embed_dataset") -> tuple[RunSummary, list[dict]]:
    """Compute the missing clips in this process. Returns the summary and the index rows (input order).

    ``root=None`` writes nothing (``keep`` collects the rows): :func:`audiovis.extract_embeddings` without
    a cache.
    """
    from tqdm.auto import tqdm

    known = stored_ids(root) if root is not None else set()
    embedder = WindowEmbedder(model, manifest.layers, patches=manifest.patches, predictions=manifest.predictions,
                              batch_size=batch_size, patch_dtype=manifest.patch_dtype)
    index: list[dict | None] = [None] * len(items)
    buffer: list[dict] = []
    done = skipped = failed = 0
    start = time.perf_counter()
    try:
        with tqdm(total=len(items), desc=desc, unit="clip", disable=not progress) as bar:
            for chunk in iter_chunks(items, batch_size):
                todo = []
                for item in chunk:
                    loaded = read(item, dataset, sample_rate, known)
                    index[item.position] = index_row(item, loaded)
                    if loaded.stored or loaded.clip_id in known:
                        skipped += 1
                        continue
                    known.add(loaded.clip_id)
                    todo.append(prepare(model, loaded))
                rows = embed_prepared(embedder, todo)
                bad = sum(r["error"] is not None for r in rows)
                failed += bad
                done += len(rows) - bad
                if keep is not None:
                    keep.update((r["clip_id"], r) for r in rows)
                buffer.extend(rows)
                if root is not None and len(buffer) >= shard_size:
                    write_shard(root, buffer, manifest)
                    buffer = []
                bar.update(len(chunk))
    finally:
        if root is not None:
            if buffer:
                write_shard(root, buffer, manifest)
            rows_out = [row if row is not None else index_row(items[i], None) for i, row in enumerate(index)]
            write_index(root, rows_out)
    summary = RunSummary(len(items), done, skipped, failed, time.perf_counter() - start)
    return summary, [r for r in index if r is not None]


def embed_dataset(
    sources: Any,
    model: Any,
    path: str | os.PathLike,
    *,
    layers: int | Sequence[int] = (-1,),
    patches: bool = False,
    labels: Any = None,
    batch_size: int = 8,
    engine: str = "local",
    progress: bool = True,
    shard_size: int = 256,
    sample_rate: int | None = None,
    num_workers: int | None = None,
) -> "EmbeddingStore":
    """Embed every source with a frozen ``model`` into the store at ``path`` (created, or extended and resumed).

    Args:
        sources: a list of paths (or Audio / arrays with ``sample_rate``), a folder (audio files found
            recursively; other files are skipped with a warning), a torch Dataset whose items have an
            ``.audio`` (e.g. :class:`audiovis.datasets.SyntheticEvents`, whose labels are kept), or a pandas
            DataFrame with a ``source`` column (paths) whose other columns are labels.
        model: an ``ASTModel`` / ``ViTModel``. Its key (weights, config, front end) is in the manifest;
            extending a store with another model raises :class:`~audiovis.store.StoreError`.
        path: the store's folder.
        layers: block indices to keep (-1 = the last block, after the final norm).
        patches: also keep every patch token (float16) for :meth:`EmbeddingStore.patch_embeddings` and
            :meth:`EmbeddingStore.search_patches`.
        labels: optional labels per source (a sequence, or ``{column: sequence}``), added to ``store.clips``.
        batch_size: model windows per forward pass.
        engine: ``"local"`` (this process) or ``"ray"`` (Ray Data on the connected or a new local cluster;
            needs ``pip install 'audiovis[ray]'``).
        progress: a progress bar and the one-line summary.
        shard_size: clips per Parquet shard.
        sample_rate: resample files to this rate first (and the rate of raw arrays).
        num_workers: Ray only: model actors (default: one per CPU of the cluster).

    Returns:
        The :class:`~audiovis.store.EmbeddingStore`; ``store.last_run`` holds this run's :class:`RunSummary`.

    Audio longer than one model window is cut into the model's windows (``model.windows``, the rule of
    ``analyze``); each window's vectors are kept and the clip's vector is their mean. A file that cannot
    be read or decoded becomes a row whose ``error`` names the file and the problem; the run goes on.
    Clips are identified by a hash of their bytes (or samples): a rerun computes only clips no shard
    holds, so an edited file is computed again and a renamed copy is not.
    """
    from ..models.base import check_model
    from .store import EmbeddingStore

    check_model(model, "embed_dataset")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"embed_dataset: path must be the store's folder (a str or os.PathLike), got {type(path).__name__}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
    batch_size = check_int(batch_size, "batch_size", minimum=1, error=ConfigError)
    shard_size = check_int(shard_size, "shard_size", minimum=1)
    if num_workers is not None:
        num_workers = check_int(num_workers, "num_workers", minimum=1)
    if not isinstance(patches, bool):
        raise ValueError(f"patches must be True or False, got {patches!r}")
    block_layers = resolve_layers(layers, model.num_layers)
    items, dataset = plan(sources, labels=labels, what="embed_dataset")
    if not items:
        raise ValueError("embed_dataset: no sources to embed (an empty list)")
    root = Path(path)
    manifest = open_for_writing(root, model, block_layers, patches=patches, patch_dtype="float16",
                                predictions=True, sample_rate=sample_rate)
    if engine == "ray":
        from .ray_engine import run_ray

        summary = run_ray(items, dataset, model, manifest, root, batch_size=batch_size, shard_size=shard_size,
                          sample_rate=sample_rate, progress=progress, num_workers=num_workers)
    else:
        summary, _ = run_local(items, dataset, model, manifest, root, batch_size=batch_size, shard_size=shard_size,
                               sample_rate=sample_rate, progress=progress)
    manifest.complete = True
    manifest.write(root)
    if progress:
        print(summary.line())
    store = EmbeddingStore(root)
    store.last_run = summary
    return store
