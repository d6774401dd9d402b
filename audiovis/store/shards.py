"""Parquet shards: one row per clip, written atomically, read back by any Parquet reader.

A shard is ``shards/part-<hash of its clip ids>.parquet``: written to a temporary file in the same folder,
then renamed, so a killed run leaves only whole shards, and a retried Ray task that writes the same clips
replaces its own shard instead of adding a second one. Readers keep the first row of each ``clip_id`` (a
clip computed twice by overlapping retries is still one row). A shard that cannot be read is renamed
``*.corrupt`` with a warning; its clips count as missing and the next run computes them again.

Columns: ``clip_id``, ``duration``, ``error``, ``num_windows``, ``window_starts``, and when the model ran:
``probs``, ``top_labels``, ``top_probs``; per stored block ``L``: ``mean_L`` / ``cls_L`` (the clip,
``[dim]`` float32), ``window_mean_L`` / ``window_cls_L`` (``[windows][dim]``) and with patches
``patches_L`` (``[windows * patches][dim]``, float16 by default, window-major).
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .manifest import Manifest, write_atomic

SHARDS = "shards"


def _arrow():
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pa, pq


def schema(manifest: Manifest):
    """The Arrow schema of every shard of a store."""
    pa, _ = _arrow()
    d = manifest.dim
    vec = pa.list_(pa.float32(), d)
    fields = [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("duration", pa.float64()),
        pa.field("error", pa.string()),
        pa.field("num_windows", pa.int32()),
        pa.field("window_starts", pa.list_(pa.float64())),
    ]
    if manifest.predictions:
        fields += [pa.field("probs", pa.list_(pa.float32(), len(manifest.class_names))),
                   pa.field("top_labels", pa.list_(pa.string())), pa.field("top_probs", pa.list_(pa.float32()))]
    patch_type = pa.float16() if manifest.patch_dtype == "float16" else pa.float32()
    for ly in manifest.layers:
        fields += [pa.field(f"mean_{ly}", vec), pa.field(f"cls_{ly}", vec),
                   pa.field(f"window_mean_{ly}", pa.list_(vec)), pa.field(f"window_cls_{ly}", pa.list_(vec))]
        if manifest.patches:
            fields.append(pa.field(f"patches_{ly}", pa.list_(pa.list_(patch_type, d))))
    return pa.schema(fields)


def _vectors(rows: Sequence[dict], key: str, dim: int, dtype, pa) -> Any:
    """A fixed-size-list column (nulls where a row has no value) without Python-level loops over numbers."""
    present = [r.get(key) is not None for r in rows]
    flat = [np.asarray(r[key], dtype=dtype).reshape(-1) for r, ok in zip(rows, present) if ok]
    values = np.concatenate(flat) if flat else np.zeros(0, dtype)
    full = np.zeros((len(rows), dim), dtype)
    if flat:
        full[np.array(present)] = values.reshape(-1, dim)
    arr = pa.FixedSizeListArray.from_arrays(pa.array(full.reshape(-1)), dim)
    if all(present):
        return arr
    return pa.FixedSizeListArray.from_arrays(pa.array(full.reshape(-1)), dim, mask=pa.array([not ok for ok in present]))


def _nested(rows: Sequence[dict], key: str, dim: int, dtype, pa) -> Any:
    """A list-of-fixed-size-list column: ``[items][dim]`` per row (nulls for rows without it)."""
    arrays = [None if r.get(key) is None else np.asarray(r[key], dtype=dtype).reshape(-1, dim) for r in rows]
    counts = [0 if a is None else len(a) for a in arrays]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    flat = np.concatenate([a.reshape(-1) for a in arrays if a is not None]) if any(a is not None for a in arrays) \
        else np.zeros(0, dtype)
    inner = pa.FixedSizeListArray.from_arrays(pa.array(flat), dim)
    mask = pa.array([a is None for a in arrays])
    return pa.ListArray.from_arrays(pa.array(offsets), inner, mask=mask)


def to_table(rows: Sequence[dict], manifest: Manifest):
    """An Arrow table of clip rows (:func:`audiovis.store.compute.clip_row` / ``error_row``)."""
    pa, _ = _arrow()
    sch = schema(manifest)
    d = manifest.dim
    columns: dict[str, Any] = {
        "clip_id": pa.array([r["clip_id"] for r in rows], pa.string()),
        "duration": pa.array([float(r.get("duration", np.nan)) for r in rows], pa.float64()),
        "error": pa.array([r.get("error") for r in rows], pa.string()),
        "num_windows": pa.array([int(r.get("num_windows", 0)) for r in rows], pa.int32()),
        "window_starts": pa.array([r.get("window_starts") for r in rows], pa.list_(pa.float64())),
    }
    if manifest.predictions:
        columns["probs"] = _vectors(rows, "probs", len(manifest.class_names), np.float32, pa)
        columns["top_labels"] = pa.array([r.get("top_labels") for r in rows], pa.list_(pa.string()))
        columns["top_probs"] = pa.array([r.get("top_probs") for r in rows], pa.list_(pa.float32()))
    patch_dtype = np.float16 if manifest.patch_dtype == "float16" else np.float32
    for ly in manifest.layers:
        for kind in ("mean", "cls"):
            columns[f"{kind}_{ly}"] = _vectors(rows, f"{kind}_{ly}", d, np.float32, pa)
            columns[f"window_{kind}_{ly}"] = _nested(rows, f"window_{kind}_{ly}", d, np.float32, pa)
        if manifest.patches:
            columns[f"patches_{ly}"] = _nested(rows, f"patches_{ly}", d, patch_dtype, pa)
    return pa.table([columns[f.name] for f in sch], schema=sch)


def shard_name(clip_ids: Iterable[str]) -> str:
    h = hashlib.blake2b(digest_size=12)
    for clip_id in sorted(clip_ids):
        h.update(clip_id.encode() + b"\0")
    return f"part-{h.hexdigest()}.parquet"


def write_shard(root: Path, rows: Sequence[dict], manifest: Manifest) -> Path:
    """Write ``rows`` as one shard (temporary file + rename); returns its path."""
    _, pq = _arrow()
    table = to_table(rows, manifest)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    path = Path(root) / SHARDS / shard_name(r["clip_id"] for r in rows)
    write_atomic(path, buffer.getvalue())
    return path


def shard_paths(root: Path) -> list[Path]:
    folder = Path(root) / SHARDS
    return sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []


def _quarantine(path: Path, exc: BaseException) -> None:
    warnings.warn(f"shard {path.name} of {path.parent.parent} cannot be read ({type(exc).__name__}: {exc}); "
                  "renamed *.corrupt, its clips will be computed again", UserWarning, stacklevel=4)
    try:
        os.replace(path, path.with_suffix(".corrupt"))
    except OSError:
        pass


def _store_types(root: Path, wanted: list[str]) -> dict | None:
    """The types the store's manifest gives the ``wanted`` columns (None without a readable manifest)."""
    try:
        full = schema(Manifest.read(root))
    except Exception:  # noqa: BLE001 - the first readable shard stands in
        return None
    return {c: full.field(c).type for c in wanted if full.get_field_index(c) >= 0}


def _odd_column(found: Any, types: dict) -> str | None:
    """Why the schema ``found`` does not fit ``types`` (a column missing or of another type), or None."""
    for column, kind in types.items():
        index = found.get_field_index(column)
        if index < 0:
            return f"no column {column}"
        if found.field(index).type != kind:
            return f"column {column} is {found.field(index).type}, the store's is {kind}"
    return None


def _read_at_once(paths: list[Path], wanted: list[str], types: dict | None):
    """``wanted`` from every shard in one threaded read (100 k clips: ~400 shards, a third of the time of
    one by one), or None when a shard cannot be read or does not hold ``wanted`` with the store's types
    (one read would fill or cast what the shard-by-shard read sets aside as damaged)."""
    import pyarrow.dataset as ds

    try:
        dataset = ds.dataset([str(p) for p in paths], format="parquet")
        table = dataset.to_table(columns=wanted)
        types = types if types is not None else {c: table.schema.field(c).type for c in wanted}
        if any(_odd_column(fragment.physical_schema, types) for fragment in dataset.get_fragments()):
            return None
    except Exception:  # noqa: BLE001 - the shard-by-shard read finds the damaged one
        return None
    return table


def read_columns(root: Path, columns: Sequence[str]):
    """One Arrow table of ``columns`` (``clip_id`` first) from every readable shard, one row per clip_id.

    A shard that cannot be read, or lacks a column or holds it in another type than the store's, is
    renamed ``*.corrupt`` with a warning (its clips are computed again by the next run)."""
    pa, pq = _arrow()
    wanted = ["clip_id", *[c for c in columns if c != "clip_id"]]
    paths = shard_paths(root)
    if not paths:
        return None
    types = _store_types(root, wanted)
    table = _read_at_once(paths, wanted, types)
    if table is None:
        tables = []
        for path in paths:
            try:
                part = pq.read_table(path, columns=wanted)
                types = types if types is not None else {c: part.schema.field(c).type for c in wanted}
                odd = _odd_column(part.schema, types)
                if odd:
                    raise TypeError(odd)
                tables.append(part)
            except Exception as exc:  # noqa: BLE001 - a damaged shard is recomputed, not fatal
                _quarantine(path, exc)
        if not tables:
            return None
        table = pa.concat_tables(tables)
    import pyarrow.compute as pc

    if len(pc.unique(table.column("clip_id"))) < table.num_rows:  # a clip stored twice (a resumed run)
        _, first = np.unique(table.column("clip_id").to_numpy(zero_copy_only=False), return_index=True)
        table = table.take(pa.array(np.sort(first)))
    return table


def stored_ids(root: Path) -> set[str]:
    """Every clip_id with a row in a readable shard."""
    table = read_columns(root, ["clip_id"])
    return set() if table is None else set(table.column("clip_id").to_pylist())
