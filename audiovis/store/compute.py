"""The three compute stages every engine runs: windows (front end), the model on a batch of windows, clip rows.

The local engine calls them in one process; the Ray engine calls the same functions inside ``map_batches``
stages; ``extract_embeddings`` calls them without a store. Windows are the model's own
(:meth:`~audiovis.models.base.SpectrogramModelMixin.windows`, the rule ``analyze`` uses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ..audio import Audio
from ..checks import check_int, is_int
from .sources import Loaded

TOP_K = 5


@dataclass
class Prepared:
    """One clip's model inputs: window starts (s) and ``inputs`` ``[windows, F, T]``; or its error."""

    loaded: Loaded
    duration: float = float("nan")
    starts: list[float] | None = None
    inputs: np.ndarray | None = None
    error: str | None = None


def prepare(model: Any, loaded: Loaded) -> Prepared:
    """The front end's windows of one decoded clip; a failure becomes the clip's error."""
    if loaded.error is not None or loaded.sound is None:
        return Prepared(loaded, error=loaded.error)
    sound = loaded.sound
    duration = sound.duration if isinstance(sound, Audio) else sound.num_frames * sound.hop_seconds
    try:
        windows = model.windows(sound)
    except Exception as exc:  # noqa: BLE001 - this clip's error row, the run goes on
        from .sources import _name_file

        return Prepared(loaded, duration=float(duration), error=_name_file(loaded.item.source, exc))
    inputs = np.stack([spec.values.detach().cpu().numpy().astype(np.float32, copy=False) for _, spec in windows])
    return Prepared(loaded, duration=float(duration), starts=[float(o) for o, _ in windows], inputs=inputs)


def resolve_layers(layer: int | Sequence[int], num_layers: int) -> list[int]:
    """Block indices in ``[0, num_layers)`` (negative ones count from the end); checked."""
    layers = [layer] if is_int(layer) else list(layer)
    if not layers:
        raise ValueError("layer: give at least one layer index")
    out = []
    for value in layers:
        check_int(value, "layer", what="an integer (or a list of integers)")
        index = int(value) + (num_layers if value < 0 else 0)
        if not 0 <= index < num_layers:
            raise ValueError(f"layer {value} is outside the model's blocks: 0 .. {num_layers - 1} (or -1 .. {-num_layers})")
        out.append(index)
    return out


class WindowEmbedder:
    """The model on batches of windows: per layer the mean of the patch tokens, the model's pooling and
    (optionally) every patch token; the class probabilities when ``predictions``.

    Holds the model, so a Ray actor builds one and keeps it for its lifetime.
    """

    def __init__(self, model: Any, layers: Sequence[int], *, patches: bool, predictions: bool, batch_size: int,
                 patch_dtype: str = "float16") -> None:
        self.model = model
        self.layers = sorted(set(int(v) for v in layers))
        self.patches = patches
        self.predictions = predictions
        self.batch_size = int(batch_size)
        self.patch_dtype = np.dtype(patch_dtype)

    def __call__(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """``inputs`` ``[W, F, T]`` -> ``{"mean_L": [W, D], "cls_L": [W, D], "patches_L": [W, N, D], "probs": [W, C]}``."""
        from ..analysis import probabilities_of
        from ..models.blocks import inference

        model = self.model
        last = model.num_layers - 1
        stop = None if self.predictions else max(self.layers) + 1
        parts: dict[str, list[np.ndarray]] = {}
        p = int(model.backbone.num_prefix_tokens)
        with inference(model):
            for start in range(0, len(inputs), self.batch_size):
                x = torch.from_numpy(np.ascontiguousarray(inputs[start:start + self.batch_size])).to(model.device)
                states: list[torch.Tensor] = []
                tokens = model.run_blocks(model.embed(x), stop=stop, hidden_states=states)
                out: dict[str, np.ndarray] = {}
                for ly in self.layers:
                    h = model.backbone.norm(states[ly]) if ly == last else states[ly]
                    out[f"mean_{ly}"] = h[:, p:].mean(dim=1).float().cpu().numpy()
                    out[f"cls_{ly}"] = model.pool_tokens(h).float().cpu().numpy()
                    if self.patches:
                        out[f"patches_{ly}"] = h[:, p:].float().cpu().numpy().astype(self.patch_dtype)
                if self.predictions:
                    logits = model.forward_head(model.backbone.norm(tokens)).float()
                    out["probs"] = probabilities_of(logits, model.multi_label).cpu().numpy()
                for key, value in out.items():
                    parts.setdefault(key, []).append(value)
        return {key: np.concatenate(value) for key, value in parts.items()}


def embed_prepared(embedder: WindowEmbedder, prepared: Sequence[Prepared]) -> list[dict[str, Any]]:
    """Run every window of ``prepared`` clips in batches and return one clip row each (:func:`clip_row`)."""
    good = [c for c in prepared if c.error is None]
    outputs: dict[str, np.ndarray] = {}
    if good:
        outputs = embedder(np.concatenate([c.inputs for c in good]))  # type: ignore[misc]
    rows, offset = [], 0
    for clip in prepared:
        if clip.error is not None:
            rows.append(error_row(clip))
            continue
        count = len(clip.starts)  # type: ignore[arg-type]
        rows.append(clip_row(embedder, clip, {k: v[offset:offset + count] for k, v in outputs.items()}))
        offset += count
    return rows


def error_row(clip: Prepared) -> dict[str, Any]:
    return {"clip_id": clip.loaded.clip_id, "duration": clip.duration, "error": clip.error, "num_windows": 0}


def clip_row(embedder: WindowEmbedder, clip: Prepared, out: dict[str, np.ndarray]) -> dict[str, Any]:
    """One clip's stored values. Clip vectors are the mean over its windows of each window's vector;
    clip probabilities are the maximum over windows (multi-label: present anywhere) or their mean (softmax)."""
    from ..analysis import clip_probabilities

    model = embedder.model
    row: dict[str, Any] = {"clip_id": clip.loaded.clip_id, "duration": clip.duration, "error": None,
                           "num_windows": len(clip.starts), "window_starts": list(clip.starts)}  # type: ignore[arg-type]
    for ly in embedder.layers:
        for kind in ("mean", "cls"):
            windows = out[f"{kind}_{ly}"]
            row[f"window_{kind}_{ly}"] = windows
            row[f"{kind}_{ly}"] = windows.astype(np.float64).mean(axis=0).astype(np.float32)
        if embedder.patches:
            patches = out[f"patches_{ly}"]
            row[f"patches_{ly}"] = patches.reshape(-1, patches.shape[-1])
    if embedder.predictions:
        probs = out["probs"]
        clip_probs = clip_probabilities(probs, model.multi_label)
        order = np.argsort(-clip_probs, kind="stable")[:TOP_K]
        row["probs"] = clip_probs.astype(np.float32)
        row["top_labels"] = [str(model.labels[i]) for i in order]
        row["top_probs"] = [float(clip_probs[i]) for i in order]
    return row
