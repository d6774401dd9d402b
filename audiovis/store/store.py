"""EmbeddingStore: a store's clips, clip / window / patch vectors and patch search, read from its Parquet files.

Everything is read lazily from the shards (``shards/*.parquet``), the index (``clips.parquet``) and the
manifest, so any Parquet reader (pandas, polars, DuckDB, Spark) can read the same files without audiovis.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..checks import check_index, check_int
from .manifest import Manifest, StoreError
from .shards import read_columns, shard_paths

if TYPE_CHECKING:
    import pandas as pd

    from .runs import RunSummary
    from .search import PatchIndex

META_COLUMNS = ("duration", "error", "num_windows", "window_starts")
PREDICTION_COLUMNS = ("top_labels", "top_probs")
POOLINGS = ("mean", "cls")
#: Clip vectors up to this size stay in memory after the first read (re-opening a map of 100 k clips then
#: skips ~0.4 s of reading); larger ones are read again on each call.
KEEP_CLIP_VECTORS_BYTES = 1 << 30


def check_clip_id(clip_id: Any, caller: str) -> str:
    """``clip_id`` if it is a clip id (a string, as in ``store.clips["clip_id"]``), else a TypeError naming ``caller``."""
    if not isinstance(clip_id, str):
        raise TypeError(f"{caller}: clip_id must be a clip's id, a string from store.clips['clip_id'] "
                        f"(e.g. store.clips['clip_id'].iloc[0]), got {type(clip_id).__name__} {clip_id!r}")
    return clip_id


class EmbeddingStore:
    """The embeddings of a dataset under one model (see :func:`audiovis.embed_dataset`)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.manifest = Manifest.read(self.path)
        self.last_run: "RunSummary | None" = None
        self._clips: "pd.DataFrame | None" = None
        self._clip_vectors: dict[tuple[int, str], np.ndarray] = {}
        self._indexes: dict[tuple[int, str], tuple["PatchIndex", dict]] = {}
        self._index_lock = threading.Lock()  # one build per index, whichever thread asks first (a read-ahead)

    def __repr__(self) -> str:
        m = self.manifest
        return (f"EmbeddingStore({str(self.path)!r}: {len(self.clips)} clips, {m.model_class} {m.model_key}, "
                f"layers {m.layers}, dim {m.dim}{', patches' if m.patches else ''})")

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def complete(self) -> bool:
        """False while a run is building the store (or after one that was killed)."""
        return bool(Manifest.read(self.path).complete)

    def check_model(self, model: Any, caller: str = "EmbeddingStore.check_model") -> None:
        """Raise :class:`StoreError` unless ``model`` is the model that built this store (``TypeError``,
        naming ``caller``, for anything that is not a model)."""
        from ..models.base import check_model

        self.manifest.check_model(check_model(model, caller), self.path)

    # -- clips ----------------------------------------------------------------------------------

    @property
    def clips(self) -> "pd.DataFrame":
        """One row per source of the last run, in its order: ``clip_id``, ``source``, ``duration``, ``error``,
        labels, ``num_windows``, ``window_starts``, ``top_labels``, ``top_probs``."""
        if self._clips is None:
            self._clips = self._load_clips()
        return self._clips

    def _load_clips(self) -> "pd.DataFrame":
        import pandas as pd

        from .runs import INDEX, NOT_COMPUTED

        columns = list(META_COLUMNS) + (list(PREDICTION_COLUMNS) if self.manifest.predictions else [])
        table = read_columns(self.path, columns)
        meta = (table.to_pandas() if table is not None else pd.DataFrame(columns=["clip_id", *columns]))
        index_path = self.path / INDEX
        if index_path.is_file():
            index = pd.read_parquet(index_path)
        else:  # killed before the first index: every stored clip, sources unknown
            index = pd.DataFrame({"position": range(len(meta)), "clip_id": meta["clip_id"], "source": None})
        index = index.sort_values("position").drop(columns=["position"]).reset_index(drop=True)
        frame = index.merge(meta, on="clip_id", how="left")  # read_columns keeps one row per clip_id
        missing = frame["num_windows"].isna() & frame["error"].isna()
        frame["error"] = frame["error"].astype(object).where(~missing, NOT_COMPUTED)
        frame["error"] = frame["error"].where(frame["error"].notna(), None)
        frame["num_windows"] = frame["num_windows"].fillna(0).astype(int)
        labels = [c for c in index.columns if c not in ("clip_id", "source")]
        order = ["clip_id", "source", "duration", "error", *labels, "num_windows", "window_starts",
                 *([c for c in PREDICTION_COLUMNS] if self.manifest.predictions else [])]
        return frame[order]

    def refresh(self) -> "EmbeddingStore":
        """Forget what was read (after another process added to the store)."""
        self.manifest = Manifest.read(self.path)
        self._clips = None
        self._clip_vectors.clear()
        with self._index_lock:
            self._indexes.clear()
        return self

    # -- vectors --------------------------------------------------------------------------------

    def _column(self, name: str):
        table = read_columns(self.path, [name])
        if table is None:
            return [], None
        return table.column("clip_id").to_pylist(), table.column(name).combine_chunks()

    def clip_embeddings(self, layer: int = -1, pooling: str = "mean") -> np.ndarray:
        """``[len(clips), dim]`` float32 aligned with :attr:`clips`; NaN rows for clips without vectors.

        ``pooling``: ``"mean"`` (mean of the patch tokens) or ``"cls"`` (the model's own pooling of its prefix
        tokens), each averaged over the clip's windows. Each call returns a new array; up to
        :data:`KEEP_CLIP_VECTORS_BYTES` the store keeps what it read until :meth:`refresh`.
        """
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {list(POOLINGS)}, got {pooling!r}")
        key = (self.manifest.resolve_layer(layer), pooling)
        kept = self._clip_vectors.get(key)
        if kept is not None:
            return kept.copy()
        vectors = self._read_clip_embeddings(*key)
        if vectors.nbytes <= KEEP_CLIP_VECTORS_BYTES:
            self._clip_vectors[key] = vectors.copy()
        return vectors

    def _read_clip_embeddings(self, ly: int, pooling: str) -> np.ndarray:
        ids, column = self._column(f"{pooling}_{ly}")
        if column is None:
            return np.full((len(self.clips), self.manifest.dim), np.nan, np.float32)
        values = _fixed_rows(column, self.manifest.dim)  # a view of Arrow's buffer
        clip_ids = self.clips["clip_id"].tolist()
        rows = _positions(ids, clip_ids)
        found = rows >= 0
        found[found] = column.is_valid().to_numpy(zero_copy_only=False)[rows[found]]  # a null row (a failed clip)
        if found.all():  # stays NaN
            return values[rows]  # one gather (the shards' order is seldom the run's)
        out = np.full((len(clip_ids), self.manifest.dim), np.nan, np.float32)
        out[found] = values[rows[found]]
        return out

    def _row(self, clip_id: str, columns: list[str]) -> dict:
        """The stored values of one clip (the first shard that holds it)."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        for path in shard_paths(self.path):
            ids = pq.read_table(path, columns=["clip_id"]).column("clip_id")
            mask = pc.equal(ids, clip_id)
            if pc.any(mask).as_py():
                table = pq.read_table(path, columns=["clip_id", "error", *columns]).filter(mask)
                return {name: table.column(name)[0] for name in table.column_names}
        raise KeyError(f"clip {clip_id!r} is not in the store at {str(self.path)!r}")

    def window_embeddings(self, clip_id: str, layer: int = -1, pooling: str = "mean") -> np.ndarray:
        """``[windows, dim]``: each model window's vector of one clip (their mean is its clip vector).

        Args:
            clip_id: a clip of the store.
            layer: a stored block (negative counts from the model's last block).
            pooling: ``"mean"`` of the window's patch tokens or its ``"cls"`` token.

        Returns:
            float32 ``[windows, dim]``, in time order.
        """
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {list(POOLINGS)}, got {pooling!r}")
        ly = self.manifest.resolve_layer(layer)
        row = self._row(check_clip_id(clip_id, "window_embeddings"), [f"window_{pooling}_{ly}"])
        self._check_row(clip_id, row)
        return _nested_rows(row[f"window_{pooling}_{ly}"], self.manifest.dim, np.float32)

    def patch_embeddings(self, clip_id: str, layer: int = -1, window: int | None = None) -> np.ndarray:
        """``[num_patches, dim]`` patch tokens of one clip's window (float16 as stored), token order.

        ``window`` picks a window of a clip longer than one (required then); a one-window clip needs none.

        Args:
            clip_id: a clip of the store.
            layer: a stored block (negative counts from the model's last block).
            window: the model window (None: the only one of a one-window clip).

        Returns:
            ``[num_patches, dim]`` in the stored dtype (float16 by default).

        Raises:
            ValueError: the store has no patches, or a clip of several windows without ``window``.
            IndexError: a window outside the clip's.
        """
        if not self.manifest.patches:
            raise ValueError(f"the store at {str(self.path)!r} was built without patches; "
                             "build it with embed_dataset(..., patches=True)")
        ly = self.manifest.resolve_layer(layer)
        row = self._row(check_clip_id(clip_id, "patch_embeddings"), [f"patches_{ly}", "num_windows"])
        self._check_row(clip_id, row)
        dtype = np.float16 if self.manifest.patch_dtype == "float16" else np.float32
        values = _nested_rows(row[f"patches_{ly}"], self.manifest.dim, dtype)
        windows = int(row["num_windows"].as_py())
        values = values.reshape(windows, -1, self.manifest.dim)
        if window is None:
            if windows > 1:
                raise ValueError(f"clip {clip_id!r} has {windows} windows; pass window=0..{windows - 1}")
            window = 0
        return values[check_index(window, windows, "window", context=f" of clip {clip_id!r}")]

    @staticmethod
    def _check_row(clip_id: str, row: dict) -> None:
        error = row["error"].as_py()
        if error is not None:
            raise ValueError(f"clip {clip_id!r} has no vectors: {error}")

    # -- search ---------------------------------------------------------------------------------

    def patch_index(self, layer: int = -1, method: str = "auto", **options: Any) -> tuple["PatchIndex", dict]:
        """The search index of every stored patch vector at ``layer`` and which (clip, window, patch) each row is.

        Made once per layer and method and kept; a second thread asking while it is made waits for it."""
        if not self.manifest.patches:
            raise ValueError(f"the store at {str(self.path)!r} was built without patches; "
                             "build it with embed_dataset(..., patches=True) to search patches")
        ly = self.manifest.resolve_layer(layer)
        key = (ly, method)
        with self._index_lock:
            if key not in self._indexes:
                self._indexes[key] = self._new_patch_index(ly, method, options)
            return self._indexes[key]

    def _new_patch_index(self, ly: int, method: str, options: dict[str, Any]) -> tuple["PatchIndex", dict]:
        """:meth:`patch_index`'s work: the rows' clip, window and patch, and the index over their vectors."""
        table = read_columns(self.path, ["num_windows", "window_starts"])
        ids = [] if table is None else table.column("clip_id").to_pylist()
        current = set(self.clips["clip_id"].dropna())
        keep = np.array([cid in current for cid in ids], bool)
        n = len(self.manifest.patch_bounds)
        counts = (np.zeros(0, np.int64) if table is None else  # an error row has no windows, no patches
                  table.column("num_windows").to_numpy(zero_copy_only=False).astype(np.float64))
        counts = np.nan_to_num(counts).astype(np.int64) * n
        row_of = np.repeat(np.arange(len(ids)), counts)
        selected = keep[row_of]
        if not selected.any():
            raise ValueError(f"the store at {str(self.path)!r} holds no patch vectors to search")
        local = np.arange(len(row_of)) - np.repeat(np.cumsum(counts) - counts, counts)
        starts = table.column("window_starts").to_pylist()
        info = {"clip_ids": np.array(ids, dtype=object), "row": row_of[selected],
                "window": (local // n)[selected], "patch": (local % n)[selected],
                "starts": [s or [0.0] for s in starts]}

        def vectors() -> np.ndarray:
            patch_ids, column = self._column(f"patches_{ly}")
            if patch_ids != ids or not np.array_equal(np.diff(column.offsets.to_numpy()), counts):
                raise StoreError(f"the store at {str(self.path)!r} changed while it was read; "
                                 "call store.refresh() and search again")
            dtype = np.float16 if self.manifest.patch_dtype == "float16" else np.float32
            return _fixed_rows(column.values, self.manifest.dim, dtype)[selected]

        return (self._search_index(ly, method, vectors, int(selected.sum()), (ids, counts, keep), options), info)

    def _search_index(self, layer: int, method: str, vectors: Callable[[], np.ndarray], size: int,
                      rows: tuple[list[str], np.ndarray, np.ndarray], options: dict[str, Any]) -> "PatchIndex":
        """Exact search over the searched vectors, or the IVF index kept in the store (built when missing).

        Args:
            layer: the stored block.
            method: ``"auto"``, ``"exact"`` or ``"ivf"``.
            vectors: reads the searched vectors (only when the index has to be built).
            size: how many vectors are searched.
            rows: clip ids, patch vectors per row and which rows are searched (the index's fingerprint).
            options: :class:`~audiovis.store.search.PatchIndex` options.
        """
        from .index_file import fingerprint, load_or_build
        from .search import EXACT_LIMIT, PatchIndex, resolve_method

        resolved = resolve_method(method, size, options.get("exact_limit", EXACT_LIMIT))
        if resolved != "ivf":
            return PatchIndex(vectors(), method=resolved, **options)
        settings = {"layer": layer, "dtype": self.manifest.patch_dtype, "model": self.manifest.model_key,
                    "nlist": options.get("nlist"), "seed": options.get("seed", 0)}
        digest = fingerprint(shard_paths(self.path), *rows, settings)
        stored, built = load_or_build(self.path, layer, digest,
                                      lambda: PatchIndex(vectors(), **{**options, "method": "ivf"}))
        return built if built is not None else PatchIndex.from_faiss(stored, options.get("nprobe"))

    def search_patches(self, query: np.ndarray, k: int = 10, layer: int = -1, *, method: str = "auto",
                       exclude_clip: str | None = None) -> "pd.DataFrame":
        """The ``k`` stored patches most similar (cosine) to ``query`` ``[dim]``, best first.

        Args:
            query: one vector, e.g. ``store.patch_embeddings(clip_id)[patch]``.
            k: how many matches.
            layer: the stored block to search.
            method: ``"auto"`` (exact up to 1 M vectors, then a faiss IVF index), ``"exact"`` or ``"ivf"``.
                The IVF index is kept in the store (``indexes/``) and read by later sessions until the
                store changes.
            exclude_clip: leave out the patches of this clip (find the pattern elsewhere).

        Returns:
            A DataFrame of ``clip_id``, ``window``, ``patch``, ``score`` and the patch's bounds: ``time_start``,
            ``time_end`` (s from the start of the clip) and ``freq_low``, ``freq_high`` (Hz).
        """
        import pandas as pd

        k = check_int(k, "k", minimum=1)
        shape = np.shape(query)
        if len(shape) == 2 and shape[0] == 1:
            query = np.asarray(query)[0]
        elif len(shape) != 1:
            raise ValueError(f"search_patches takes one query vector [dim], got shape {tuple(shape)}: search each row "
                             "on its own, or search their mean (query.mean(axis=0))")
        index, info = self.patch_index(layer, method)
        extra = 0
        if exclude_clip is not None:
            check_clip_id(exclude_clip, "search_patches(exclude_clip=...)")
            extra = int(np.sum(info["clip_ids"][info["row"]] == exclude_clip))
            if extra == 0 and not (self.clips["clip_id"] == exclude_clip).any():  # a typo excluded nothing
                raise KeyError(f"exclude_clip {exclude_clip!r} is not in the store at {str(self.path)!r}")
        scores, ids = index.search(np.asarray(query), int(k) + extra)
        bounds = np.asarray(self.manifest.patch_bounds, np.float64)
        records = []
        for score, i in zip(scores[0], ids[0]):
            if i < 0:
                continue
            row = int(info["row"][i])
            clip_id = info["clip_ids"][row]
            if clip_id == exclude_clip:
                continue
            window, patch = int(info["window"][i]), int(info["patch"][i])
            offset = float(info["starts"][row][window])
            t0, t1, f0, f1 = bounds[patch]
            records.append({"clip_id": clip_id, "window": window, "patch": patch, "score": float(score),
                            "time_start": offset + t0, "time_end": offset + t1, "freq_low": f0, "freq_high": f1})
            if len(records) == k:
                break
        return pd.DataFrame.from_records(records, columns=["clip_id", "window", "patch", "score", "time_start",
                                                           "time_end", "freq_low", "freq_high"])


def _positions(ids: list[str], wanted: list[str]) -> np.ndarray:
    """The row of each of ``wanted`` in ``ids`` (the last one when an id repeats), -1 where it is missing."""
    import pandas as pd

    if ids == wanted:
        return np.arange(len(ids), dtype=np.int64)
    positions = pd.Series(np.arange(len(ids), dtype=np.int64), index=pd.Index(ids, dtype=object))
    if not positions.index.is_unique:
        positions = positions[~positions.index.duplicated(keep="last")]
    return positions.reindex(pd.Index(wanted, dtype=object)).fillna(-1).to_numpy(np.int64)


def _fixed_rows(column: Any, dim: int, dtype: Any = np.float32) -> np.ndarray:
    """A FixedSizeList Arrow array as ``[rows, dim]`` (null rows: whatever is stored under them)."""
    values = column.values.to_numpy(zero_copy_only=False)
    start = column.offset * dim
    return np.asarray(values[start:start + len(column) * dim], dtype=dtype).reshape(len(column), dim)


def _nested_rows(scalar: Any, dim: int, dtype: Any) -> np.ndarray:
    """One list-of-fixed-size-list Arrow scalar as ``[items, dim]``."""
    if not scalar.is_valid:
        return np.zeros((0, dim), dtype)
    return _fixed_rows(scalar.values, dim, dtype)


def open_store(path: str | os.PathLike, model: Any = None) -> EmbeddingStore:
    """Open the store at ``path``; with ``model``, check first that it is the model that built it.

    Raises :class:`StoreError` for a folder that is not a store and for another model (naming both keys).
    """
    store = EmbeddingStore(path)
    if model is not None:
        store.check_model(model, "open_store")
    return store


__all__ = ["EmbeddingStore", "StoreError", "open_store"]
