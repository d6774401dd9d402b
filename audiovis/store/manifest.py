"""The store's manifest: which model, layers and front end made its numbers, and what each shard holds.

``manifest.json`` sits at the store's root and is written atomically. Opening or extending a store with a
model whose key differs raises :class:`StoreError` naming both models: numbers from two models never mix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checks import check_int
from ..errors import AudiovisError

FORMAT = "audiovis-embedding-store"
VERSION = 1
MANIFEST = "manifest.json"


class StoreError(AudiovisError, ValueError):
    """An embedding store that cannot be opened or extended as asked (wrong model, damaged, not a store)."""


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


def model_key(model: Any, extra: str = "") -> str:
    """Hash of a model's class, config, ``extra`` and every tensor of its state dict (names, shapes, dtypes, values)."""
    import torch

    h = hashlib.blake2b(digest_size=20)
    h.update(f"{type(model).__module__}.{type(model).__qualname__}|{extra}|".encode())
    h.update(_config_text(getattr(model, "config", None)).encode())
    for name, tensor in sorted(_state_tensors(model.state_dict().items())):
        if not isinstance(tensor, torch.Tensor):  # e.g. an int8 layer's dtype entry
            h.update(f"|{name}|{tensor!r}|".encode())
            continue
        t = tensor.detach().cpu()
        if t.is_quantized:  # int8 layers (models/precision.py): their values as the layer computes with them
            t = t.dequantize()
        t = t.contiguous()
        h.update(f"|{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()[:24]


def _state_tensors(items) -> list:
    """``(name, value)`` of a state dict with tuples (an int8 layer's packed weight and bias) opened up."""
    out = []
    for name, value in items:
        if isinstance(value, (tuple, list)):
            out.extend(_state_tensors((f"{name}.{i}", v) for i, v in enumerate(value)))
        else:
            out.append((name, value))
    return out


def store_model_key(model: Any) -> str:
    """The key a store records: :func:`model_key` with the front end's settings."""
    return model_key(model, extra=repr(getattr(model, "frontend", None)))


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class Manifest:
    """What a store holds. ``layers`` are block indices (0 = first block, ``num_layers - 1`` = last, normed)."""

    model_key: str
    model_class: str
    frontend: str
    num_layers: int
    layers: list[int]
    dim: int
    patches: bool
    patch_dtype: str
    predictions: bool
    class_names: list[str]
    multi_label: bool
    sample_rate: int | None
    grid: dict
    patch_bounds: list[list[float]]  # per patch: time start/end (s from the window start), freq low/high (Hz)
    window_seconds: float
    complete: bool = False
    extra: dict = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps({"format": FORMAT, "version": VERSION, **dataclasses.asdict(self)}, indent=1).encode()

    @classmethod
    def read(cls, root: Path) -> "Manifest":
        path = Path(root) / MANIFEST
        if not Path(root).is_dir():
            what = "a file, not a folder" if Path(root).exists() else "no such folder"
            raise StoreError(f"no embedding store at {str(root)!r} ({what})")
        if not path.is_file():
            raise StoreError(f"{str(root)!r} is not an embedding store: it has no {MANIFEST}")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise StoreError(f"{str(path)!r} cannot be read as a store manifest: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise StoreError(f"{str(path)!r} is not an audiovis embedding store manifest")
        if data.get("version") != VERSION:
            raise StoreError(f"{str(path)!r} has store format version {data.get('version')!r}; this audiovis reads {VERSION}")
        names = {f.name for f in dataclasses.fields(cls)}
        missing = names - set(data) - {"complete", "extra"}
        if missing:
            raise StoreError(f"{str(path)!r} lacks {sorted(missing)}")
        return cls(**{k: v for k, v in data.items() if k in names})

    def write(self, root: Path) -> None:
        write_atomic(Path(root) / MANIFEST, self.to_json())

    def resolve_layer(self, layer: int) -> int:
        """A stored block index for ``layer`` (negative counts from the model's last block)."""
        check_int(layer, "layer")
        index = int(layer) + (self.num_layers if layer < 0 else 0)
        if index not in self.layers:
            stored = ", ".join(str(v) for v in self.layers)
            raise ValueError(f"layer {layer} is not in this store; it holds block(s) {stored} of {self.num_layers} "
                             f"(-1 = {self.num_layers - 1})")
        return index

    def check_model(self, model: Any, root: Path) -> None:
        """Raise :class:`StoreError` unless ``model`` is the model that built this store."""
        key = store_model_key(model)
        if key != self.model_key:
            raise StoreError(
                f"the store at {str(root)!r} was built with another model ({self.model_class}, key {self.model_key}); "
                f"this one is {type(model).__name__} with key {key} (weights, config or front end differ). "
                "Use a new path for this model, or the model that built the store."
            )

    def check_settings(self, root: Path, **settings: Any) -> None:
        """Raise :class:`StoreError` when a run asks for other layers / patches / rate than the store holds."""
        for name, wanted in settings.items():
            have = getattr(self, name)
            if have != wanted:
                raise StoreError(f"the store at {str(root)!r} holds {name}={have!r}; this run asks for {name}={wanted!r}. "
                                 "Use a new path for other settings.")
