"""A store's approximate patch index on disk: ``indexes/patches_<layer>.faiss`` and its fingerprint.

Training and filling an IVF index over millions of patch vectors takes from seconds to minutes (14 s at 1 M,
2 min at 5 M vectors here), so a store keeps the index it built: the next session's first search reads a
file instead. The fingerprint (``patches_<layer>.json``) records what the index covers: the shard files
(named by the hash of their clip ids) and their sizes, the clips searched, the vector type and the build
options. Any difference (a run added clips, a shard was recomputed, other options) rebuilds the index.

The index is written to a temporary file and renamed, then the fingerprint is written the same way, so a
killed write leaves either the previous pair or a fingerprint that no longer matches the index (rebuilt).
An index file that cannot be read is rebuilt with a warning; a store on a read-only disk still searches,
it only cannot keep the index (a warning says so).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .manifest import write_atomic
from .search import import_faiss

INDEXES = "indexes"


def fingerprint(shards: list[Path], ids: list[str], counts: np.ndarray, keep: np.ndarray,
                settings: dict[str, Any]) -> str:
    """A hash of everything an index over a store's patch vectors depends on.

    Args:
        shards: the shard files read (their names hash their clip ids; sizes catch a rewrite).
        ids: the clip id of each stored row, in reading order.
        counts: the number of patch vectors of each row.
        keep: which rows are searched (the clips of the store's current index).
        settings: the layer, vector type, model key and build options.
    """
    h = hashlib.sha256()
    h.update(json.dumps({"shards": [[p.name, p.stat().st_size] for p in shards], "settings": settings},
                        sort_keys=True, default=str).encode())
    h.update("\n".join(ids).encode())
    h.update(np.ascontiguousarray(counts, np.int64).tobytes())
    h.update(np.ascontiguousarray(keep, np.bool_).tobytes())
    return h.hexdigest()


def _paths(root: Path, layer: int) -> tuple[Path, Path]:
    folder = Path(root) / INDEXES
    return folder / f"patches_{layer}.faiss", folder / f"patches_{layer}.json"


def load_or_build(root: Path, layer: int, digest: str, build: Callable[[], Any]) -> Any:
    """The stored faiss index of ``layer`` when its fingerprint is ``digest``; otherwise ``build()``'s, kept.

    Args:
        root: the store's folder.
        layer: the stored block the index searches.
        digest: the current :func:`fingerprint`.
        build: makes a :class:`~audiovis.store.search.PatchIndex`; called only when no matching index is stored.

    Returns:
        ``(faiss index or None, PatchIndex or None)``: the stored index, or the one just built.
    """
    faiss = import_faiss()
    index_path, meta_path = _paths(root, layer)
    if meta_path.is_file() and index_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            meta = {}
        if meta.get("fingerprint") == digest:
            try:
                return faiss.read_index(str(index_path)), None
            except Exception as exc:  # noqa: BLE001 - any unreadable file is rebuilt, never fatal
                warnings.warn(f"the stored patch index {str(index_path)!r} could not be read ({exc}); "
                              "building it again", RuntimeWarning, stacklevel=3)
    built = build()
    _keep(built.index, index_path, meta_path, digest)
    return None, built


def _keep(index: Any, index_path: Path, meta_path: Path, digest: str) -> None:
    """Write ``index`` and its fingerprint atomically; warn (and go on) when the store is not writable."""
    faiss = import_faiss()
    try:
        index_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=index_path.name, suffix=".tmp", dir=index_path.parent)
        os.close(fd)
        try:
            faiss.write_index(index, tmp)
            os.replace(tmp, index_path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        write_atomic(meta_path, json.dumps({"fingerprint": digest, "vectors": int(index.ntotal),
                                            "nlist": int(index.nlist), "nprobe": int(index.nprobe)}).encode())
    except (OSError, RuntimeError) as exc:  # faiss reports a failed write as RuntimeError
        warnings.warn(f"the patch index could not be kept in the store ({exc}); the next session builds it "
                      "again", RuntimeWarning, stacklevel=4)
