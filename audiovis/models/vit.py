"""ViTModel: any timm VisionTransformer adapted to spectrograms (1 channel, any input shape, optional stride)."""

from __future__ import annotations

import os
import pickle
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checks import check_int
from ..errors import AudiovisError, CheckpointError, ConfigError
from ..patches import PatchGrid
from ..spectrogram import MelSpectrogram
import audiovis.models.checkpoints as ckpt
from .base import SpectrogramModelMixin
from .labels import default_labels
from .patch_embed import StridedPatchEmbed


def default_frontend(n_mels: int) -> MelSpectrogram:
    """Log-mel at 16 kHz with AST's 25 ms windows and 10 ms hop."""
    return MelSpectrogram(sample_rate=16000, n_fft=1024, win_length=400, hop_length=160, n_mels=n_mels)


def _pretrained_weights_offline(name: str) -> Path | None:
    """For ``pretrained=True``: None when the hub answers (timm downloads as usual); else the cached weights.

    Without the hub, timm would spend most of a minute in download retries and then raise
    ``LocalEntryNotFoundError``; instead the Hugging Face cache is read directly, and a model that is
    not there raises CheckpointError at once.
    """
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(name)
    except RuntimeError as exc:  # an unknown pretrained tag
        raise ConfigError(f"ViTModel: {exc}") from exc
    if cfg is None or not cfg.hf_hub_id:
        return None
    why = ckpt.hub_unavailable()
    if why is None:
        return None
    repo, _, revision = cfg.hf_hub_id.partition("@")
    files = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
    for fname in files:
        local = ckpt.cached_hub_file(repo, fname, revision=revision or None)
        if local is not None:
            return local
    raise CheckpointError(
        f"ViTModel: pretrained=True needs timm's weights for {name!r} (hub repo {repo!r}), which are not in the "
        f"Hugging Face cache, and the hub cannot be reached: {why}. Pass checkpoint='path/to/weights' for a local "
        "file, pretrained=False for random weights, or connect once to fill the cache."
    )


class ViTModel(SpectrogramModelMixin, nn.Module):
    """A timm ViT by name (e.g. ``"vit_small_patch16_224"``) on ``input_shape = (freq bins, frames)`` spectrograms.

    ``stride`` (int or (freq, time)) makes patches overlap as AST's do. ``checkpoint`` is a local timm
    weights file (e.g. ImageNet), loaded through timm's ``pretrained_cfg_overlay=dict(file=...)`` path,
    which sums the RGB patch weights to one channel and resamples the position embeddings; a head of
    another size than ``num_classes`` is dropped and starts random. The front end defaults to a 16 kHz
    log-mel spectrogram with ``input_shape[0]`` bands and a 10 ms hop. ``labels`` default to AudioSet's
    names for 527 classes (a fresh head predicts nothing until trained).

    Args:
        name: the timm model name.
        input_shape: ``(freq bins, frames)`` of the model input.
        stride: step between patches, an int or ``(freq, time)`` (None: the patch size, no overlap).
        checkpoint: a local timm weights file (None: random weights, or timm's own with ``pretrained=True``).
        num_classes: outputs of the classification head.
        labels: the class names (None: AudioSet's for 527 classes, else ``LABEL_i``).
        multi_label: sigmoid probabilities (True) or softmax (False).
        frontend: the module turning audio into the model input (None: a 16 kHz log-mel spectrogram).
        **timm_kwargs: passed on to ``timm.create_model``.
    """

    def __init__(
        self,
        name: str,
        *,
        input_shape: tuple[int, int] = (128, 1024),
        stride: int | tuple[int, int] | None = None,
        checkpoint: str | os.PathLike | None = None,
        num_classes: int = 527,
        labels: list[str] | None = None,
        multi_label: bool = True,
        frontend: nn.Module | None = None,
        **timm_kwargs: Any,
    ) -> None:
        super().__init__()
        import timm
        from huggingface_hub.errors import HfHubHTTPError
        from safetensors import SafetensorError
        from timm.models.vision_transformer import VisionTransformer

        grid_check = PatchGrid(input_shape, 1, 1)  # validates the shape
        num_classes = check_int(num_classes, "ViTModel: num_classes", minimum=1, error=ConfigError)
        if labels is not None and len(labels) != num_classes:
            raise ConfigError(f"ViTModel: {len(labels)} labels given for num_classes={num_classes}")
        kwargs: dict[str, Any] = dict(
            in_chans=1,
            img_size=grid_check.input_shape,
            num_classes=num_classes,
            embed_layer=partial(StridedPatchEmbed, stride=stride),
            dynamic_img_size=False,
            **timm_kwargs,
        )
        if not timm.is_model(name.split(".")[0]):
            raise ConfigError(f"ViTModel: timm has no model named {name!r}")
        if checkpoint is not None:
            path = Path(checkpoint).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"no checkpoint file at {os.fspath(checkpoint)!r}")
            ckpt.sniff_format(path)  # a text or audio file fails here, not inside the unpickler
            kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
        elif kwargs.get("pretrained"):
            local = _pretrained_weights_offline(name)
            if local is not None:
                kwargs["pretrained_cfg_overlay"] = dict(file=str(local))
        try:
            vit = timm.create_model(name, **kwargs)
        except AudiovisError:
            raise
        except TypeError as exc:
            raise ConfigError(f"ViTModel: {name!r} is not a timm VisionTransformer variant ({exc})") from exc
        except AssertionError as exc:  # timm checks sizes with asserts, e.g. heads dividing the width
            raise ConfigError(f"ViTModel: timm rejects {name!r} with {timm_kwargs}: {exc}") from exc
        except (RuntimeError, pickle.UnpicklingError, EOFError, SafetensorError) as exc:
            if checkpoint is None:
                raise
            raise CheckpointError(
                f"checkpoint {os.fspath(checkpoint)!r} cannot be loaded into {name!r} (refused, truncated, corrupt "
                f"or of another architecture): {exc}"
            ) from exc
        except (OSError, HfHubHTTPError) as exc:
            if checkpoint is not None or not kwargs.get("pretrained"):
                raise
            raise CheckpointError(f"ViTModel: timm's pretrained weights for {name!r} could not be fetched: {exc}") from exc
        if not isinstance(vit, VisionTransformer):
            raise ConfigError(f"ViTModel: {name!r} builds a {type(vit).__name__}, not a timm VisionTransformer")
        if len(vit.blocks) == 0:
            raise ConfigError(f"ViTModel: {name!r} needs at least one transformer block, got depth=0")
        self.name = name
        self.vit = vit
        # timm keeps a pretrained head only when its class count is the checkpoint's; otherwise it starts random
        loaded = bool(kwargs.get("pretrained"))
        self.head_trained = loaded and num_classes == (getattr(vit, "pretrained_cfg", None) or {}).get("num_classes")
        self.frontend = frontend if frontend is not None else default_frontend(grid_check.input_shape[0])
        self._labels = list(labels) if labels is not None else default_labels(num_classes)
        self._multi_label = bool(multi_label)
        self.eval()

    @property
    def backbone(self) -> nn.Module:
        return self.vit

    @property
    def labels(self) -> list[str]:
        return list(self._labels)

    @property
    def multi_label(self) -> bool:
        return self._multi_label

    @property
    def num_prefix_tokens(self) -> int:
        return int(self.vit.num_prefix_tokens)

    def forward_head(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens after the final norm -> logits ``[B, num_classes]`` (timm's pooling and head)."""
        return self.vit.forward_head(tokens)

    @property
    def head_reads_patches(self) -> bool:
        """timm pools patch tokens unless it reads the class token (or the distillation pair)."""
        return getattr(self.vit, "dist_token", None) is None and getattr(self.vit, "global_pool", "token") != "token"

    def pool_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """The clip embedding ``[B, D]``: timm's pooling (mean of cls and distillation tokens for DeiT-distilled)."""
        if getattr(self.vit, "dist_token", None) is not None:
            return (tokens[:, 0] + tokens[:, 1]) / 2
        return self.vit.pool(tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(self, x: torch.Tensor, *args: Any, **kwargs: Any):
        """timm's ``forward_intermediates`` on ``[B, F, T]`` spectrograms."""
        return self.vit.forward_intermediates(self.as_image(x), *args, **kwargs)

    def extra_repr(self) -> str:
        rows, cols = self.grid.grid_shape
        return f"name={self.name!r}, patches={rows}x{cols}, labels={len(self._labels)}"
