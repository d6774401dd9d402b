"""The Audio Spectrogram Transformer on timm's distilled VisionTransformer, and its config.

``ASTModel`` is timm's ``VisionTransformerDistilled`` (cls + distillation tokens) with one input
channel, overlapping 16 x 16 patches every 10 bins/frames, and AST's head: LayerNorm + Linear on the
mean of the two prefix tokens after the final norm. It equals transformers' ``ASTForAudioClassification``
on the same weights, and ``save_pretrained`` writes that model's files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from timm.layers import Mlp
from timm.models.deit import VisionTransformerDistilled
from torch import nn

from ..checks import check_int, check_number
from ..errors import CheckpointError, ConfigError
from ..spectrogram import KaldiFbank
import audiovis.models.checkpoints as ckpt
from .base import SpectrogramModelMixin
from .labels import default_labels, is_placeholder
from .patch_embed import StridedPatchEmbed

_ACTIVATIONS = {
    "gelu": nn.GELU,
    "gelu_new": partial(nn.GELU, approximate="tanh"),
    "gelu_pytorch_tanh": partial(nn.GELU, approximate="tanh"),
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
}

#: Largest model a config may describe: far above any ViT in use, it stops a config file from asking
#: for more memory than a machine has (1e9 layers would hang the kernel instead of failing).
MAX_PARAMETERS = 10_000_000_000

_INT_FIELDS = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "patch_size",
    "frequency_stride", "time_stride", "max_length", "num_mel_bins", "num_labels",
)


@dataclass
class ASTConfig:
    """AST hyper-parameters, speaking Hugging Face's ``ASTConfig`` keys; defaults are AST-base on AudioSet.

    ``labels`` are the class names (None: AudioSet's for 527 outputs, else ``LABEL_i``);
    ``multi_label`` picks sigmoid (True) or softmax probabilities; ``fbank_mean``/``fbank_std``
    normalise the Kaldi filterbank (AudioSet statistics by default). ``classifier_layer_norm_eps``
    is the head LayerNorm's epsilon when it differs from ``layer_norm_eps`` (original AST: 1e-5 vs 1e-6).

    Args:
        hidden_size: width of the token embeddings.
        num_hidden_layers: transformer blocks.
        num_attention_heads: heads per block; must divide ``hidden_size``.
        intermediate_size: width of each block's MLP.
        hidden_act: the MLP's activation (``"gelu"``, ``"gelu_new"``, ``"relu"``, ``"silu"``, ...).
        hidden_dropout_prob: dropout after attention and MLP, in [0, 1).
        attention_probs_dropout_prob: dropout on attention probabilities, in [0, 1).
        initializer_range: standard deviation of a new head's random weights.
        layer_norm_eps: epsilon of the blocks' LayerNorms.
        classifier_layer_norm_eps: epsilon of the head's LayerNorm (None: ``layer_norm_eps``).
        patch_size: side of a square patch in bins and frames.
        qkv_bias: whether the query/key/value projections have a bias.
        frequency_stride: bins between patch rows.
        time_stride: frames between patch columns.
        max_length: frames of the model input.
        num_mel_bins: mel bins of the model input.
        num_labels: outputs of the classification head.
        labels: the class names (None: AudioSet's for 527 outputs, else ``LABEL_i``).
        multi_label: sigmoid probabilities (True) or softmax (False).
        fbank_mean: mean of the Kaldi filterbank used to normalise it.
        fbank_std: standard deviation used to normalise it.
    """

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    classifier_layer_norm_eps: float | None = None
    patch_size: int = 16
    qkv_bias: bool = True
    frequency_stride: int = 10
    time_stride: int = 10
    max_length: int = 1024
    num_mel_bins: int = 128
    num_labels: int = 527
    labels: list[str] | None = None
    multi_label: bool = True
    fbank_mean: float = -4.2677393
    fbank_std: float = 4.5689974

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            setattr(self, name, check_int(getattr(self, name), f"ASTConfig.{name}", minimum=1, error=ConfigError))
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"ASTConfig: num_attention_heads={self.num_attention_heads} does not divide hidden_size={self.hidden_size}"
            )
        if self.patch_size > self.num_mel_bins or self.patch_size > self.max_length:
            raise ConfigError(
                f"ASTConfig: patch_size={self.patch_size} is larger than the input "
                f"({self.num_mel_bins} mel bins x {self.max_length} frames)"
            )
        if self.hidden_act not in _ACTIVATIONS:
            raise ConfigError(f"ASTConfig.hidden_act must be one of {sorted(_ACTIVATIONS)}, got {self.hidden_act!r}")
        for name in ("layer_norm_eps", "classifier_layer_norm_eps", "fbank_std"):
            if getattr(self, name) is not None:
                check_number(getattr(self, name), f"ASTConfig.{name}", low=0, low_open=True, error=ConfigError)
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            check_number(getattr(self, name), f"ASTConfig.{name}", low=0, high=1, high_open=True, error=ConfigError,
                         what="in [0, 1)")
        check_number(self.fbank_mean, "ASTConfig.fbank_mean", error=ConfigError)
        if self.labels is not None:
            self.labels = [str(name) for name in self.labels]
            if len(self.labels) != self.num_labels:
                raise ConfigError(f"ASTConfig: {len(self.labels)} labels given for num_labels={self.num_labels}")
        if self.num_parameters > MAX_PARAMETERS:
            raise ConfigError(
                f"ASTConfig describes a model of about {self.num_parameters:.3g} parameters, more than the "
                f"{MAX_PARAMETERS:.0e} allowed (num_hidden_layers={self.num_hidden_layers}, "
                f"hidden_size={self.hidden_size}, intermediate_size={self.intermediate_size})"
            )

    @property
    def grid_shape(self) -> tuple[int, int]:
        """``(frequency, time)`` patches: 12 x 101 for AST-base."""
        return (
            (self.num_mel_bins - self.patch_size) // self.frequency_stride + 1,
            (self.max_length - self.patch_size) // self.time_stride + 1,
        )

    @property
    def num_patches(self) -> int:
        rows, cols = self.grid_shape
        return rows * cols

    @property
    def num_parameters(self) -> int:
        """Parameters of the model this config builds (blocks, embeddings, head), counted without building it."""
        h, i = self.hidden_size, self.intermediate_size
        block = (4 * h * h + 4 * h) + (2 * h * i + i + h) + 4 * h  # attention, MLP, two LayerNorms
        embed = self.patch_size**2 * h + h + (self.num_patches + 2) * h + 2 * h  # conv, positions, cls + dist
        head = 2 * h + h * self.num_labels + self.num_labels + 2 * h  # final norm, fc_norm + linear
        return self.num_hidden_layers * block + embed + head

    def resolved_labels(self) -> list[str]:
        """``labels``, or the default names for ``num_labels`` outputs."""
        return list(self.labels) if self.labels is not None else default_labels(self.num_labels)

    def replace(self, **changes: Any) -> "ASTConfig":
        """A copy with ``changes`` (validated); changing ``num_labels`` drops labels that no longer fit."""
        check_fields(changes)
        if "num_labels" in changes and "labels" not in changes and self.labels is not None and len(self.labels) != changes["num_labels"]:
            changes["labels"] = None
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Hugging Face ``config.json`` contents (``id2label``/``label2id``) plus audiovis' own keys."""
        labels = self.resolved_labels()
        out: dict[str, Any] = {
            "architectures": ["ASTForAudioClassification"],
            "model_type": "audio-spectrogram-transformer",
        }
        for f in dataclasses.fields(self):
            if f.name not in ("labels", "multi_label", "classifier_layer_norm_eps"):
                out[f.name] = getattr(self, f.name)
        del out["num_labels"]
        out["id2label"] = {str(i): name for i, name in enumerate(labels)}
        out["label2id"] = {name: i for i, name in enumerate(labels)}
        out["problem_type"] = "multi_label_classification" if self.multi_label else "single_label_classification"
        if self.classifier_layer_norm_eps is not None:
            out["classifier_layer_norm_eps"] = self.classifier_layer_norm_eps
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ASTConfig":
        """Read a Hugging Face ``config.json`` dict (unknown keys are ignored).

        Without ``problem_type``, 527 outputs (AudioSet) are multi-label and others single-label.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"ASTConfig.from_dict takes a dict, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)} - {"labels", "multi_label", "num_labels"}
        kwargs: dict[str, Any] = {k: data[k] for k in names if k in data and data[k] is not None}
        patch = kwargs.get("patch_size")
        if isinstance(patch, (list, tuple)):
            if len(patch) != 2 or patch[0] != patch[1]:
                raise ConfigError(f"ASTConfig: patch_size must be square, got {patch!r}")
            kwargs["patch_size"] = patch[0]
        id2label = data.get("id2label")
        if id2label:
            try:
                ordered = sorted(id2label.items(), key=lambda kv: int(kv[0]))
            except (AttributeError, ValueError) as exc:
                raise ConfigError(f"ASTConfig: id2label must map integer ids to names, got {id2label!r}") from exc
            if [int(k) for k, _ in ordered] != list(range(len(ordered))):
                raise ConfigError("ASTConfig: id2label ids must be 0..n-1")
            labels = [str(v) for _, v in ordered]
            kwargs["num_labels"] = len(labels)
            kwargs["labels"] = None if is_placeholder(labels) else labels
        elif "num_labels" in data:
            kwargs["num_labels"] = data["num_labels"]
        problem = data.get("problem_type")
        if "multi_label" in data:
            kwargs["multi_label"] = bool(data["multi_label"])
        elif problem:
            kwargs["multi_label"] = problem == "multi_label_classification"
        else:
            kwargs["multi_label"] = kwargs.get("num_labels", 527) == 527
        return cls(**kwargs)

    def frontend(self) -> KaldiFbank:
        """The Kaldi filterbank front end this model was trained with."""
        return KaldiFbank(num_mel_bins=self.num_mel_bins, target_frames=self.max_length, mean=self.fbank_mean, std=self.fbank_std)


def check_fields(changes: dict[str, Any]) -> None:
    """ConfigError naming any key of ``changes`` that is not an ASTConfig field."""
    if not isinstance(changes, dict):
        raise ConfigError(f"config must be an ASTConfig or a dict of its fields, got {type(changes).__name__}")
    unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(ASTConfig)})
    if unknown:
        raise ConfigError(f"ASTConfig has no field {', '.join(map(repr, unknown))}")


def _mlp_of_width(width: int, **kwargs: Any) -> Mlp:
    kwargs["hidden_features"] = width
    return Mlp(**kwargs)


class ASTModel(SpectrogramModelMixin, VisionTransformerDistilled):
    """AST as timm's distilled ViT: ``model(x)`` maps ``[B, num_mel_bins, max_length]`` to logits ``[B, num_labels]``.

    ``frontend`` is the KaldiFbank the model expects, ``grid`` its PatchGrid (12 x 101 for AST-base) and
    ``labels`` the class names. ``analyze(audio)`` returns an :class:`~audiovis.Analysis`.
    """

    def __init__(self, config: ASTConfig | None = None) -> None:
        config = ASTConfig() if config is None else config
        if not isinstance(config, ASTConfig):
            raise ConfigError(f"ASTModel takes an ASTConfig, got {type(config).__name__}")
        norm = partial(nn.LayerNorm, eps=config.layer_norm_eps)
        super().__init__(
            img_size=(config.num_mel_bins, config.max_length),
            patch_size=config.patch_size,
            in_chans=1,
            num_classes=0,
            embed_dim=config.hidden_size,
            depth=config.num_hidden_layers,
            num_heads=config.num_attention_heads,
            qkv_bias=config.qkv_bias,
            drop_rate=config.hidden_dropout_prob,
            pos_drop_rate=config.hidden_dropout_prob,
            proj_drop_rate=config.hidden_dropout_prob,
            attn_drop_rate=config.attention_probs_dropout_prob,
            norm_layer=norm,
            act_layer=_ACTIVATIONS[config.hidden_act],
            mlp_layer=partial(_mlp_of_width, config.intermediate_size),
            embed_layer=partial(StridedPatchEmbed, stride=(config.frequency_stride, config.time_stride)),
        )
        self.config = config
        head_eps = config.classifier_layer_norm_eps or config.layer_norm_eps
        self.fc_norm = nn.LayerNorm(config.hidden_size, eps=head_eps)
        self.head = nn.Linear(config.hidden_size, config.num_labels)
        self.head_dist = nn.Identity()
        self.num_classes = config.num_labels
        nn.init.trunc_normal_(self.head.weight, std=config.initializer_range)
        nn.init.zeros_(self.head.bias)
        self.frontend = config.frontend()

    # -- identity ---------------------------------------------------------------------------------

    @property
    def backbone(self) -> "ASTModel":
        return self

    @property
    def labels(self) -> list[str]:
        return self.config.resolved_labels()

    @property
    def multi_label(self) -> bool:
        return self.config.multi_label

    def extra_repr(self) -> str:
        c = self.config
        rows, cols = c.grid_shape
        return (
            f"hidden={c.hidden_size}, layers={c.num_hidden_layers}, heads={c.num_attention_heads}, "
            f"patches={rows}x{cols}, labels={c.num_labels}"
        )

    # -- forward ----------------------------------------------------------------------------------

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Tokens after the final norm ``[B, T, D]`` -> logits ``[B, num_labels]`` (AST pooling + MLP head)."""
        x = self.fc_norm(self.pool_tokens(x))
        return x if pre_logits else self.head(self.head_drop(x))

    def pool_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """AST's clip embedding: the mean of the cls and distillation tokens ``[B, D]``."""
        return (tokens[:, 0] + tokens[:, 1]) / 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(self, x: torch.Tensor, *args: Any, **kwargs: Any):
        """timm's ``forward_intermediates`` on ``[B, F, T]`` spectrograms; NCHW maps are ``[B, D, 12, 101]``."""
        return super().forward_intermediates(self.as_image(x), *args, **kwargs)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None, labels: list[str] | None = None) -> None:
        """A new random head with ``num_classes`` outputs (and names), e.g. before fine-tuning.

        Args:
            num_classes: outputs of the new head.
            global_pool: accepted for timm's signature; AST's head always reads its prefix tokens.
            labels: names of the classes (None: ``LABEL_i``).
        """
        self.config = self.config.replace(num_labels=num_classes, labels=labels)
        self.num_classes = num_classes
        device = self.pos_embed.device
        self.head = nn.Linear(self.config.hidden_size, num_classes, device=device)
        nn.init.trunc_normal_(self.head.weight, std=self.config.initializer_range)
        nn.init.zeros_(self.head.bias)
        self.head_trained = False

    # -- files ------------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write ``config.json``, ``preprocessor_config.json`` and ``model.safetensors`` in Hugging Face's layout."""
        from safetensors.torch import save_file

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2) + "\n", encoding="utf-8")
        preprocessor = {
            "feature_extractor_type": "ASTFeatureExtractor",
            "feature_size": 1,
            "sampling_rate": KaldiFbank.sample_rate,
            "num_mel_bins": self.config.num_mel_bins,
            "max_length": self.config.max_length,
            "mean": self.config.fbank_mean,
            "std": self.config.fbank_std,
            "do_normalize": True,
            "padding_side": "right",
            "padding_value": 0.0,
            "return_attention_mask": False,
        }
        (out / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n", encoding="utf-8")
        save_file(ckpt.timm_to_hf(self.state_dict()), str(out / "model.safetensors"), metadata={"format": "pt"})

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        config: ASTConfig | dict[str, Any] | None = None,
        cache_dir: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
    ) -> "ASTModel":
        """Load AST weights: a Hugging Face directory or hub id, an original AST ``.pth``, or a ``.safetensors``.

        The checkpoint's own config (``config.json``) is used when there is one; otherwise it is inferred
        from tensor shapes (DeiT head counts, AST's 128 mel bins and stride 10). ``config`` overrides
        fields (a dict) or replaces the config (an ASTConfig); a different input length or number of mel
        bins adapts the position embedding as AST does.

        Args:
            name_or_path: a local directory or file, or a Hugging Face hub id.
            config: fields to override (a dict) or the whole config (an ASTConfig).
            cache_dir: where hub downloads are kept (default: Hugging Face's cache).
            device: where the model is put.

        Returns:
            The model, in eval mode on ``device``.

        Raises:
            CheckpointError: the file cannot be read or does not fit an AST.
        """
        files = ckpt.resolve(name_or_path, cache_dir=cache_dir)
        state = ckpt.read_state_dict(files.weights)
        layout = ckpt.detect_layout(state)
        converted = ckpt.to_timm(state, layout)
        _refuse_image_model(converted.state, layout, files.name)
        source = _source_config(files, converted.state, layout, config)
        target = config if isinstance(config, ASTConfig) else source.replace(**(config or {}))
        model = cls(target)
        _adapt_positions(converted, source, target, name=files.name)
        ckpt.load_converted(model, converted, name=files.name, describe=repr_config(target))
        model.head_trained = True  # the checkpoint's own head (load_converted refuses one without it)
        return model.to(device).eval()

    @classmethod
    def from_imagenet(
        cls,
        path: str | os.PathLike,
        *,
        config: ASTConfig | dict[str, Any] | None = None,
        device: str | torch.device = "cpu",
    ) -> "ASTModel":
        """An AST initialised from a local timm ImageNet ViT/DeiT checkpoint, the way AST does it.

        The RGB patch weights are summed to one channel, the square position grid is cut (centre) or
        interpolated to the spectrogram grid, and a checkpoint without a distillation token lends its
        class token (and its position) to both prefix slots. The head starts random. Transformer sizes
        come from the checkpoint; ``config`` sets the audio side (mel bins, length, strides, labels).

        Args:
            path: the timm checkpoint file (a PyTorch pickle or ``.safetensors``).
            config: the audio side's fields (a dict) or a whole ASTConfig.
            device: where the model is put.

        Returns:
            The model, in eval mode on ``device``, its head untrained.
        """
        state = ckpt.read_state_dict(path)
        converted = ckpt.to_timm(state, ckpt.detect_layout(state))
        arch = ckpt.infer_architecture(converted.state, name=os.fspath(path))
        if arch["in_chans"] != 3:
            raise CheckpointError(f"{os.fspath(path)!r}: expected an RGB ImageNet patch embedding, got {arch['in_chans']} channels")
        side = int(math.isqrt(arch["num_positions"]))
        if side * side != arch["num_positions"]:
            raise CheckpointError(f"{os.fspath(path)!r}: {arch['num_positions']} position embeddings are not a square ImageNet grid")
        sizes = {k: arch[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "patch_size", "qkv_bias")}
        if isinstance(config, ASTConfig):
            target = config
        else:
            check_fields(config or {})
            target = ASTConfig(**{**sizes, "layer_norm_eps": 1e-6, "classifier_layer_norm_eps": 1e-5, **(config or {})})
        model = cls(target)
        state = converted.state
        state.pop("head.weight", None), state.pop("head.bias", None)
        for key in [k for k in state if k.startswith("head_dist.")]:
            del state[key]
        state["patch_embed.proj.weight"] = state["patch_embed.proj.weight"].sum(dim=1, keepdim=True)
        pos = state["pos_embed"]
        prefix = 2 if "dist_token" in state else 1
        grid = ckpt.adapt_grid_embed(pos[:, prefix:], (side, side), target.grid_shape)
        prefix_pos = pos[:, :2] if prefix == 2 else pos[:, :1].expand(1, 2, -1)
        state["pos_embed"] = torch.cat([prefix_pos, grid], dim=1)
        if prefix == 1:
            state["dist_token"] = state["cls_token"].clone()
            converted.origin["dist_token"] = converted.origin.get("cls_token", "cls_token")
        ckpt.load_converted(model, converted, name=os.fspath(path), describe=repr_config(target), ignore=("fc_norm.", "head."))
        return model.to(device).eval()


def _refuse_image_model(state: dict[str, torch.Tensor], layout: str, name: str) -> None:
    """CheckpointError for an image model's weights (RGB patch kernels) given as an AST checkpoint."""
    proj = state.get("patch_embed.proj.weight")
    if proj is None or proj.ndim != 4 or proj.shape[1] != 3:
        return
    positions = state.get("pos_embed")
    heads = state.get("head.weight")
    what = ", ".join(
        part for part in (
            "3-channel (RGB) patch embedding",
            f"{positions.shape[1]} position embeddings" if positions is not None and positions.ndim == 3 else "",
            f"{heads.shape[0]} classes" if heads is not None else "",
        ) if part
    )
    hint = (
        f"start an AST from it with ASTModel.from_imagenet({name!r}) (AST's ImageNet recipe), or use "
        f"ViTModel(timm_name, checkpoint={name!r})"
        if layout == "timm"
        else "from_pretrained reads AST checkpoints; ASTModel.from_imagenet reads timm ImageNet ViT/DeiT state dicts"
    )
    raise CheckpointError(f"{name!r} holds an image model ({what}), not an AST: {hint}")


def repr_config(config: ASTConfig) -> str:
    rows, cols = config.grid_shape
    return (
        f"ASTModel(hidden_size={config.hidden_size}, {config.num_hidden_layers} layers, "
        f"{config.num_attention_heads} heads, {rows} x {cols} patches, {config.num_labels} labels)"
    )


_KNOWN_LENGTHS = {101: 1024, 50: 512, 12: 128}  # AST's AudioSet, ESC-50 and Speech Commands inputs
_PRESET_BY_LENGTH = {512: "esc50", 128: "speechcommands"}


def _source_config(files: ckpt.CheckpointFiles, state: dict, layout: str, overrides: ASTConfig | dict | None) -> ASTConfig:
    """The config the checkpoint was made with: its config.json, else inferred from its tensors."""
    if files.config is not None:
        data = dict(files.config)
        pre = files.preprocessor or {}
        for key, ours in (("mean", "fbank_mean"), ("std", "fbank_std")):
            if ours not in data and key in pre:
                data[ours] = pre[key]
        return ASTConfig.from_dict(data)
    arch = ckpt.infer_architecture(state, name=files.name)
    hints = dataclasses.asdict(overrides) if isinstance(overrides, ASTConfig) else dict(overrides or {})
    kwargs: dict[str, Any] = {
        k: arch[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "patch_size", "qkv_bias")
    }
    if layout == "original":
        kwargs.update(layer_norm_eps=1e-6, classifier_layer_norm_eps=1e-5)
    kwargs["num_labels"] = arch.get("num_labels", 527)
    kwargs["multi_label"] = kwargs["num_labels"] == 527
    for key in ("num_attention_heads", "layer_norm_eps", "classifier_layer_norm_eps", "frequency_stride", "time_stride", "num_mel_bins", "hidden_act", "qkv_bias"):
        if key in hints:
            kwargs[key] = hints[key]
    kwargs["num_mel_bins"] = kwargs.get("num_mel_bins", 128)
    probe = ASTConfig(**{**kwargs, "max_length": max(kwargs["patch_size"], 16)})
    num_freq = probe.grid_shape[0]
    positions = arch["num_positions"]
    if positions % num_freq:
        raise CheckpointError(
            f"{files.name!r}: {positions} position embeddings do not fit {num_freq} frequency rows; "
            "pass config={'num_mel_bins': ..., 'frequency_stride': ...} describing the checkpoint"
        )
    num_time = positions // num_freq
    stride = kwargs.get("time_stride", 10)
    kwargs["max_length"] = hints.get("max_length", _KNOWN_LENGTHS.get(num_time) if stride == 10 else None) or (num_time - 1) * stride + kwargs["patch_size"]
    if (kwargs["max_length"] - kwargs["patch_size"]) // stride + 1 != num_time:
        kwargs["max_length"] = (num_time - 1) * stride + kwargs["patch_size"]
    preset = None if kwargs["num_labels"] == 527 else _PRESET_BY_LENGTH.get(kwargs["max_length"])
    if preset:
        stats = KaldiFbank.preset(preset)
        kwargs["fbank_mean"], kwargs["fbank_std"] = stats.mean, stats.std
    return ASTConfig(**kwargs)


def _adapt_positions(converted: ckpt.Converted, source: ASTConfig, target: ASTConfig, *, name: str) -> None:
    """Re-grid the checkpoint's patch position embeddings when the target's input differs."""
    pos = converted.state.get("pos_embed")
    if pos is None or source.grid_shape == target.grid_shape:
        return
    if pos.ndim != 3 or pos.shape[1] != source.num_patches + 2:
        return  # the size check in load_converted reports it
    grid = ckpt.adapt_grid_embed(pos[:, 2:], source.grid_shape, target.grid_shape)
    converted.state["pos_embed"] = torch.cat([pos[:, :2], grid], dim=1)
