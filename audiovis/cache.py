"""On-disk cache of per-clip embeddings, keyed by what the numbers depend on.

A cached array lives at ``<cache_dir>/<model key>/<layer>-<pooling>/<content key>.npy``. The content key
hashes the sound (a file's bytes, or an array's samples, dtype, shape and rate); the model key hashes the
state dict and the config. Writes go to a temporary file in the same folder, then ``os.replace``: a run
killed half-way leaves only complete entries behind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

_CHUNK = 1 << 20


def _hasher() -> "hashlib._Hash":
    return hashlib.blake2b(digest_size=20)


def file_key(path: str | os.PathLike) -> str:
    """Hash of a file's bytes (so a renamed copy hits, an edited file misses)."""
    h = _hasher()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return "f" + h.hexdigest()


def array_key(samples: np.ndarray | torch.Tensor, sample_rate: int) -> str:
    """Hash of a waveform's samples, dtype, shape and sample rate."""
    if isinstance(samples, torch.Tensor):
        samples = samples.detach().cpu().contiguous().numpy()
    array = np.ascontiguousarray(samples)
    h = _hasher()
    h.update(f"{array.dtype.str}|{array.shape}|{int(sample_rate)}|".encode())
    h.update(array.view(np.uint8).reshape(-1).data if array.size else b"")
    return "a" + h.hexdigest()


def _config_text(config: object) -> str:
    if config is None:
        return "none"
    if hasattr(config, "to_dict"):
        data = config.to_dict()
    elif dataclasses.is_dataclass(config) and not isinstance(config, type):
        data = dataclasses.asdict(config)
    else:
        return repr(config)
    return json.dumps(data, sort_keys=True, default=repr)


def model_key(model: nn.Module, extra: str = "") -> str:
    """Hash of a model's class, config, ``extra`` and every tensor of its state dict (names, shapes, dtypes, values)."""
    h = _hasher()
    h.update(f"{type(model).__module__}.{type(model).__qualname__}|{extra}|".encode())
    h.update(_config_text(getattr(model, "config", None)).encode())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"|{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()[:24]


class EmbeddingCache:
    """The cached embeddings of one model at one layer with one pooling."""

    def __init__(self, root: str | os.PathLike, model_id: str, layer: int, pooling: str) -> None:
        self.directory = Path(root) / model_id / f"layer{layer}-{pooling}"

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        """The cached array for ``key``, or None if absent (or unreadable: it is then recomputed)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None

    def put(self, key: str, array: np.ndarray) -> None:
        """Store ``array`` under ``key`` atomically (temporary file + ``os.replace``)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, np.ascontiguousarray(array), allow_pickle=False)
            os.replace(tmp, self.path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
