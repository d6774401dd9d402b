"""What an embedding run reads: sources planned into items, content hashes, and decoding with errors kept.

An item is one row of the store's clip table. Its ``clip_id`` hashes what the numbers depend on (a file's
bytes, an array's samples, dtype, shape and rate), so a renamed copy is the same clip and an edited file
is a new one. Reading never raises for one bad file: the problem becomes the item's ``error``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..audio import Audio
from ..spectrogram import Spectrogram

_CHUNK = 1 << 20

#: Extensions a folder scan treats as audio (what libsndfile and torchaudio read).
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au",
                              ".snd", ".caf", ".w64", ".rf64", ".wv", ".m4a"})


def _hasher() -> "hashlib._Hash":
    return hashlib.blake2b(digest_size=20)


def bytes_key(data: bytes) -> str:
    """Hash of a file's bytes (so a renamed copy hits, an edited file misses)."""
    h = _hasher()
    h.update(data)
    return "f" + h.hexdigest()


def file_key(path: str | os.PathLike) -> str:
    """:func:`bytes_key` of a file, read in chunks."""
    h = _hasher()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return "f" + h.hexdigest()


def array_key(samples: Any, sample_rate: int) -> str:
    """Hash of a waveform's samples, dtype, shape and sample rate."""
    if hasattr(samples, "detach"):
        samples = samples.detach().cpu().contiguous().numpy()
    array = np.ascontiguousarray(samples)
    h = _hasher()
    h.update(f"{array.dtype.str}|{array.shape}|{int(sample_rate)}|".encode())
    h.update(array.view(np.uint8).reshape(-1).data if array.size else b"")
    return "a" + h.hexdigest()


@dataclass
class Item:
    """One source: its place in the input, how to show it, how to read it, and its labels."""

    position: int
    source: str
    path: Path | None = None
    value: Any = None  # an Audio, Spectrogram or array; or None (read from ``path`` or ``dataset``)
    dataset_index: int | None = None
    labels: dict[str, Any] = field(default_factory=dict)


@dataclass
class Loaded:
    """An item after reading: its clip id and the sound (or the reason there is none)."""

    item: Item
    clip_id: str
    sound: Audio | Spectrogram | None = None
    error: str | None = None
    stored: bool = False  # the store already has this clip_id: nothing to compute


def _describe(value: Any, position: int) -> str:
    if isinstance(value, Audio):
        return value.name if getattr(value, "name", None) else f"<Audio {position}>"
    return f"<{type(value).__name__} {position}>"


def plan(sources: Any, *, labels: Any = None, what: str = "embed_dataset", folders: bool = True,
         ) -> tuple[list[Item], Any]:
    """``(items, dataset)`` for a list of sources, a folder, a torch Dataset or a DataFrame with ``source``:
    the one rule of what the dataset calls take as their sources.

    Args:
        sources: what the caller was given.
        labels: one label per source (a sequence), or ``{column: sequence}``; added to each item's labels.
        what: the caller's name, for errors.
        folders: a folder is a source list (its audio files, sorted); callers whose results come back as
            rows in the order of the sources refuse one, since that order would be the scan's.

    Returns:
        The items in order, and the torch Dataset they index (None for other sources).

    Raises:
        TypeError or FileNotFoundError naming what cannot be a list of sources.
    """
    dataset = None
    items: list[Item]
    if isinstance(sources, (str, os.PathLike)):
        root = Path(sources)
        if root.is_dir() and not folders:
            raise TypeError(f"{what} takes a list of sources or a Dataset, not a folder ({str(root)!r}): pass a list of "
                            "its files, in the order the results should follow")
        if root.is_dir():
            items = _scan_folder(root)
        elif root.exists():
            raise TypeError(f"{what} takes a list of sources{', a folder' if folders else ''} or a Dataset; wrap the "
                            f"one file {str(root)!r} in a list")
        else:
            raise FileNotFoundError(f"{what}: no {'folder or ' if folders else ''}file at {str(root)!r}")
    elif _is_dataframe(sources):
        items = _from_dataframe(sources, what)
    elif isinstance(sources, (Audio, Spectrogram)):
        raise TypeError(f"{what} takes a list of sources or a Dataset; wrap one source in a list")
    elif isinstance(sources, np.ndarray) or hasattr(sources, "detach"):
        raise TypeError(f"{what} takes a list of sources; pass a list of waveforms, not one array")
    elif _is_dataset(sources):
        dataset = sources
        items = [_dataset_item(sources, i) for i in range(len(sources))]
    else:
        try:
            values = list(sources)
        except TypeError:
            raise TypeError(f"{what}: sources must be a list of paths{', a folder' if folders else ''}, a Dataset or a "
                            f"DataFrame with a 'source' column, got {type(sources).__name__}") from None
        items = []
        for i, value in enumerate(values):
            if isinstance(value, (str, os.PathLike)):
                items.append(Item(i, str(value), path=Path(value)))
            else:
                items.append(Item(i, _describe(value, i), value=value))
    if labels is not None:
        _attach_labels(items, labels, what)
    return items, dataset


def _is_dataframe(value: Any) -> bool:
    return type(value).__name__ == "DataFrame" and hasattr(value, "columns")


def _is_dataset(value: Any) -> bool:
    try:
        from torch.utils.data import Dataset
    except ImportError:  # pragma: no cover - torch is a base dependency
        return False
    return isinstance(value, Dataset) and not isinstance(value, Sequence)


def _scan_folder(root: Path) -> list[Item]:
    import warnings

    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    audio = [p for p in files if p.suffix.lower() in AUDIO_EXTENSIONS]
    others = [p for p in files if p.suffix.lower() not in AUDIO_EXTENSIONS]
    if others:
        shown = ", ".join(str(p.relative_to(root)) for p in others[:3]) + (" ..." if len(others) > 3 else "")
        warnings.warn(f"{root}: skipped {len(others)} file(s) that are not audio by their extension: {shown}",
                      UserWarning, stacklevel=4)
    if not audio:
        raise FileNotFoundError(f"{str(root)!r} holds no audio files (looked recursively for "
                                f"{', '.join(sorted(AUDIO_EXTENSIONS))})")
    return [Item(i, str(p), path=p) for i, p in enumerate(audio)]


def _from_dataframe(frame: Any, what: str) -> list[Item]:
    if "source" not in frame.columns:
        raise ValueError(f"{what}: a DataFrame of sources needs a 'source' column (paths); it has "
                         f"{[str(c) for c in frame.columns]}")
    label_columns = [c for c in frame.columns if c != "source"]
    items = []
    for i, row in enumerate(frame.itertuples(index=False)):
        record = row._asdict() if hasattr(row, "_asdict") else dict(zip(frame.columns, row))
        value = record.pop("source")
        labels = {str(c): record[c] if c in record else getattr(row, c) for c in label_columns}
        if isinstance(value, (str, os.PathLike)):
            items.append(Item(i, str(value), path=Path(value), labels=labels))
        else:
            items.append(Item(i, _describe(value, i), value=value, labels=labels))
    return items


def _dataset_item(dataset: Any, index: int) -> Item:
    return Item(index, f"{type(dataset).__name__}[{index}]", dataset_index=index)


def _attach_labels(items: list[Item], labels: Any, what: str) -> None:
    columns = labels if isinstance(labels, dict) else {"label": labels}
    for name, values in columns.items():
        values = list(values)
        if len(values) != len(items):
            raise ValueError(f"{what}: labels {name!r} has {len(values)} entries for {len(items)} sources")
        for item, value in zip(items, values):
            item.labels[str(name)] = value


def dataset_labels(clip: Any) -> dict[str, Any]:
    """Labels a dataset item carries: SyntheticEvents' multi-hot ``labels`` as class names."""
    out: dict[str, Any] = {}
    names = getattr(clip, "class_names", None)
    multi_hot = getattr(clip, "labels", None)
    if names is not None and multi_hot is not None:
        hot = np.asarray(multi_hot).reshape(-1)
        out["labels"] = [str(n) for n, v in zip(names, hot) if v > 0]
    return out


def check_files(items: list[Item]) -> None:
    """FileNotFoundError naming the first item whose file is missing: for the calls whose results are rows in
    the sources' order (``embed_dataset`` records a missing file as that clip's error row instead)."""
    for item in items:
        if item.path is not None and not item.path.is_file():
            raise FileNotFoundError(f"source {item.position}: no audio file at {str(item.path)!r}")


def item_value(item: Item, dataset: Any) -> Any:
    """What an item given in memory holds: the dataset's item at its index, or the value it was given."""
    return dataset[item.dataset_index] if item.dataset_index is not None else item.value


def sound_value(value: Any, position: int, sample_rate: int | None) -> Any:
    """The sound in a source given in memory (a dataset item's ``.audio``, or the value itself), checked to be
    an Audio, a Spectrogram, or an array with ``sample_rate``; else an error naming source ``position``."""
    if not isinstance(value, (Audio, Spectrogram)) and getattr(value, "audio", None) is not None:
        value = value.audio
    if isinstance(value, (Audio, Spectrogram)):
        return value
    if isinstance(value, np.ndarray) or hasattr(value, "detach"):
        if sample_rate is None:
            raise ValueError(f"source {position} is an array; pass sample_rate=... (or Audio objects)")
        return value
    raise TypeError(f"source {position}: cannot read a {type(value).__name__}; pass paths, Audio, arrays, "
                    "Spectrograms, or dataset items with an .audio")


def read(item: Item, dataset: Any, sample_rate: int | None, stored: frozenset[str] | set[str]) -> Loaded:
    """Hash and (unless ``stored`` has it already) decode one item; problems become ``error``."""
    if item.path is not None:
        path = item.path
        try:
            data = path.read_bytes()
        except OSError as exc:
            problem = "no such file" if isinstance(exc, FileNotFoundError) else f"cannot be read ({exc.strerror or exc})"
            if isinstance(exc, IsADirectoryError):
                problem = "is a directory"
            key = "x" + _hasher_hex(str(path))
            return Loaded(item, key, error=f"{str(path)!r}: {problem}")
        clip_id = bytes_key(data) + ("" if sample_rate is None else f"-{int(sample_rate)}")
        if clip_id in stored:
            return Loaded(item, clip_id, stored=True)
        try:
            from ..audio import load_audio

            sound = load_audio(path, sample_rate=sample_rate)
        except Exception as exc:  # noqa: BLE001 - any decoder failure is this file's error row
            return Loaded(item, clip_id, error=_name_file(str(path), exc))
        return Loaded(item, clip_id, sound=sound)
    raw = item_value(item, dataset)
    if item.dataset_index is not None:
        item.labels = {**dataset_labels(raw), **item.labels}
    value = sound_value(raw, item.position, sample_rate)
    if isinstance(value, Audio):
        clip_id = array_key(value.waveform, value.sample_rate)
    elif isinstance(value, Spectrogram):
        clip_id = "s" + array_key(value.values, value.sample_rate)
    else:
        clip_id = array_key(value, sample_rate)
    if clip_id in stored:
        return Loaded(item, clip_id, stored=True)
    if not isinstance(value, (Audio, Spectrogram)):
        try:
            from ..audio import load_audio

            value = load_audio(value, sample_rate)
        except Exception as exc:  # noqa: BLE001
            return Loaded(item, clip_id, error=_name_file(item.source, exc))
    return Loaded(item, clip_id, sound=value)


def _hasher_hex(text: str) -> str:
    h = _hasher()
    h.update(text.encode())
    return h.hexdigest()


def _name_file(name: str, exc: BaseException) -> str:
    message = str(exc) or type(exc).__name__
    return message if name in message else f"{name!r}: {message}"


def iter_chunks(items: Sequence[Item], size: int) -> Iterator[list[Item]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])
