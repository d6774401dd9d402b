"""Checkpoint files -> timm-named state dicts, and back to Hugging Face's AST layout.

Reads a Hugging Face directory or hub id (``config.json`` + ``model.safetensors``/``pytorch_model.bin``),
an original AST ``.pth`` (``module.v.*`` timm names, ``module.mlp_head.{0,1}``), a timm state dict or
any of those as ``.safetensors``. Pickles load with ``torch.load(weights_only=True)`` only. Every
conversion records where each tensor came from, so a checkpoint that does not fit is reported with
the missing, unexpected and mis-shaped keys in the checkpoint's own names.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import torch
from torch import nn

from ..errors import CheckpointError

Layout = Literal["hf", "original", "timm"]

#: Attention heads of the DeiT/ViT widths AST is built from (hidden size -> heads).
DEIT_HEADS = {192: 3, 384: 6, 768: 12, 1024: 16}

HF_PREFIX = "audio_spectrogram_transformer."
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class CheckpointFiles:
    """Where a checkpoint's weights live, and its Hugging Face config files when it has them."""

    name: str
    weights: Path
    config: dict | None = None
    preprocessor: dict | None = None


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{str(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{str(path)!r} must hold a JSON object, got {type(data).__name__}")
    return data


def _from_directory(name: str, directory: Path) -> CheckpointFiles:
    for fname in _WEIGHT_FILES:
        if (directory / fname).is_file():
            weights = directory / fname
            break
    else:
        if any(directory.glob("*.index.json")):
            raise CheckpointError(f"{name!r}: sharded checkpoints are not supported; save the model as one file")
        raise CheckpointError(f"{name!r} holds neither {' nor '.join(_WEIGHT_FILES)}")
    return CheckpointFiles(
        name, weights, _read_json(directory / "config.json"), _read_json(directory / "preprocessor_config.json")
    )


#: Seconds to wait for the hub to answer one request before calling it unreachable.
HUB_PROBE_TIMEOUT = 3.0


def hub_unavailable(timeout: float = HUB_PROBE_TIMEOUT) -> str | None:
    """Why the Hugging Face hub cannot be used right now, or None when it answers.

    Offline mode (``HF_HUB_OFFLINE=1``) or one request to the hub's endpoint that gets no answer within
    ``timeout`` seconds (no retries): a download would otherwise spend most of a minute in retries
    before failing.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    if constants.is_offline_mode():
        return "offline mode is on (HF_HUB_OFFLINE)"
    try:
        get_session().head(constants.ENDPOINT, timeout=timeout, follow_redirects=False)
    except Exception as exc:  # any transport failure: DNS, refused, timeout, proxy
        return f"{constants.ENDPOINT} does not answer ({type(exc).__name__})"
    return None


def cached_hub_file(repo_id: str, filename: str, cache_dir: str | os.PathLike | None = None, revision: str | None = None) -> Path | None:
    """The local copy of ``filename`` of a hub repo in the Hugging Face cache, or None (no network)."""
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision)
    return Path(hit) if isinstance(hit, str) else None


def _from_hub_cache(repo_id: str, cache_dir: str | os.PathLike | None, why: str) -> CheckpointFiles:
    """The files of ``repo_id`` from the cache alone (the hub cannot be reached); CheckpointError when absent."""
    config = cached_hub_file(repo_id, "config.json", cache_dir)
    weights = next((p for f in _WEIGHT_FILES if (p := cached_hub_file(repo_id, f, cache_dir)) is not None), None)
    if config is None or weights is None:
        where = f"the cache at {str(cache_dir)!r}" if cache_dir else "the Hugging Face cache"
        missing = "config.json" if config is None else " / ".join(_WEIGHT_FILES)
        raise CheckpointError(
            f"{repo_id!r} is not a local path, {missing} is not in {where}, and the hub cannot be reached: {why}. "
            "Pass a local directory or file, or connect once to fill the cache."
        )
    preprocessor = cached_hub_file(repo_id, "preprocessor_config.json", cache_dir)
    return CheckpointFiles(repo_id, weights, _read_json(config), _read_json(preprocessor) if preprocessor else None)


def _from_hub(repo_id: str, cache_dir: str | os.PathLike | None) -> CheckpointFiles:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    why = hub_unavailable()
    if why is not None:
        return _from_hub_cache(repo_id, cache_dir, why)

    def fetch(fname: str) -> Path | None:
        try:
            return Path(hf_hub_download(repo_id, fname, cache_dir=cache_dir))
        except (EntryNotFoundError, LocalEntryNotFoundError):
            return None

    where = f"the cache at {str(cache_dir)!r}" if cache_dir else "the Hugging Face cache"
    try:
        config = fetch("config.json")
        weights = next((p for p in map(fetch, _WEIGHT_FILES) if p is not None), None)
        preprocessor = fetch("preprocessor_config.json")
    except HfHubHTTPError as exc:
        raise CheckpointError(f"{repo_id!r}: the Hugging Face hub refused the download: {exc}") from exc
    except OSError as exc:
        raise CheckpointError(f"{repo_id!r} could not be fetched from the hub or {where}: {exc}") from exc
    if config is None or weights is None:
        missing = "config.json" if config is None else " / ".join(_WEIGHT_FILES)
        raise CheckpointError(
            f"{repo_id!r} is not a local path, and {missing} is neither in {where} nor downloadable "
            "(offline?). Pass a local directory or file, or connect once to fill the cache."
        )
    return CheckpointFiles(repo_id, weights, _read_json(config), _read_json(preprocessor) if preprocessor else None)


def resolve(name_or_path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> CheckpointFiles:
    """Find the files of a local directory, a local weights file or a Hugging Face hub repo id."""
    name = os.fspath(name_or_path)
    path = Path(name).expanduser()
    if path.is_dir():
        return _from_directory(name, path)
    if path.is_file():
        config = preprocessor = None
        if path.name in _WEIGHT_FILES:
            config = _read_json(path.parent / "config.json")
            preprocessor = _read_json(path.parent / "preprocessor_config.json")
        return CheckpointFiles(name, path, config, preprocessor)
    if _REPO_ID.match(name) and not name.startswith((".", "/", "~")):
        return _from_hub(name, cache_dir)
    raise FileNotFoundError(f"no checkpoint at {name!r} (not a file, a directory or a hub repo id 'org/name')")


def _unwrap(obj: object) -> object:
    """Training checkpoints nest the weights under 'state_dict' or 'model'."""
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            inner = obj[key]
            if inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return inner
    return obj


#: Leading bytes of files that turn up where a checkpoint was meant, and what to call them.
_FOREIGN_MAGIC = (
    (b"RIFF", "a RIFF (WAV) audio file"),
    (b"fLaC", "a FLAC audio file"),
    (b"OggS", "an Ogg audio file"),
    (b"ID3", "an MP3 audio file"),
    (b"\xff\xfb", "an MP3 audio file"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89HDF", "an HDF5 file (Keras/TensorFlow weights?)"),
    (b"\x93NUMPY", "a NumPy .npy array"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"%PDF", "a PDF document"),
)


def _describe_foreign(head: bytes) -> str:
    """What a file that is not a checkpoint looks like, from its first bytes."""
    if not head:
        return "an empty file"
    for magic, name in _FOREIGN_MAGIC:
        if head.startswith(magic):
            return name
    if head.lstrip()[:1] in (b"{", b"["):
        return "JSON text"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "a binary file of unknown format"
    return "a text file"


def sniff_format(path: str | os.PathLike) -> Literal["safetensors", "pickle"]:
    """``"safetensors"`` or ``"pickle"`` (PyTorch zip or legacy pickle) from a weights file's first bytes.

    Anything else raises CheckpointError naming the file and what it looks like, before ``torch.load``
    could misread its bytes as pickle opcodes (text and audio files otherwise fail deep inside the
    unpickler with errors such as ``KeyError: 101``). A ``.safetensors`` suffix is taken at its word: the
    safetensors reader reports a damaged file itself.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        return "safetensors"
    with path.open("rb") as f:
        head = f.read(16)
    size = path.stat().st_size
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch.save's zip, or a pickle of protocol >= 2
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") <= size - 8:
        return "safetensors"
    raise CheckpointError(
        f"{str(path)!r} is {_describe_foreign(head)}, not a checkpoint: expected PyTorch weights "
        "(torch.save: a .pth/.pt/.bin file) or a .safetensors file"
    )


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or a PyTorch pickle (``weights_only=True``), on the CPU.

    The format is told by the file's suffix and first bytes; a file that is neither (audio, text, an
    image) raises CheckpointError saying what it looks like.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {str(path)!r}")
    if sniff_format(path) == "safetensors":
        from safetensors.torch import load_file

        try:
            obj: object = load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own error types for every malformed file
            raise CheckpointError(f"{str(path)!r} cannot be read as safetensors (truncated or corrupt?): {exc}") from exc
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise CheckpointError(
                f"{str(path)!r} holds objects other than tensors and plain containers, which are not loaded "
                f"(torch.load with weights_only=True): {str(exc).splitlines()[0]}"
            ) from exc
        except Exception as exc:  # the weights-only unpickler fails on damaged bytes with any error type
            raise CheckpointError(
                f"{str(path)!r} cannot be read as a PyTorch checkpoint (truncated or corrupt?): {type(exc).__name__}: {exc}"
            ) from exc
    obj = _unwrap(obj)
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{str(path)!r} holds no state dict (a mapping of names to tensors)")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{str(path)!r}: entries {bad[:5]} are not tensors; expected a state dict")
    return dict(obj)


def detect_layout(state: dict[str, torch.Tensor]) -> Layout:
    """Which naming scheme a state dict uses: Hugging Face AST, original AST, or timm."""
    keys = list(state)
    if any("patch_embeddings.projection." in k for k in keys):
        return "hf"
    if any(re.match(r"^(module\.)?v\.patch_embed\.proj\.weight$", k) for k in keys) or any("mlp_head." in k for k in keys):
        return "original"
    if "patch_embed.proj.weight" in state:
        return "timm"
    raise CheckpointError(
        "the checkpoint is not an AST or ViT state dict: no patch embedding found "
        f"(first keys: {keys[:5]})"
    )


@dataclass
class Converted:
    """A timm-named state dict, the source name of each entry, and what did not convert."""

    state: dict[str, torch.Tensor] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    display: Callable[[str], str] = lambda key: key

    def put(self, key: str, value: torch.Tensor, source: str) -> None:
        self.state[key] = value
        self.origin[key] = source


# Hugging Face AST names (the hub's, after the optional prefix) and the timm names they map to, both ways;
# {n} is a block index, {p} weight or bias. qkv is handled apart: the hub keeps query, key and value apart.
_HF_NAMES = [
    ("embeddings.cls_token", "cls_token"),
    ("embeddings.distillation_token", "dist_token"),
    ("embeddings.position_embeddings", "pos_embed"),
    ("embeddings.patch_embeddings.projection.{p}", "patch_embed.proj.{p}"),
    ("encoder.layer.{n}.layernorm_before.{p}", "blocks.{n}.norm1.{p}"),
    ("encoder.layer.{n}.attention.output.dense.{p}", "blocks.{n}.attn.proj.{p}"),
    ("encoder.layer.{n}.layernorm_after.{p}", "blocks.{n}.norm2.{p}"),
    ("encoder.layer.{n}.intermediate.dense.{p}", "blocks.{n}.mlp.fc1.{p}"),
    ("encoder.layer.{n}.output.dense.{p}", "blocks.{n}.mlp.fc2.{p}"),
    ("layernorm.{p}", "norm.{p}"),
    ("classifier.layernorm.{p}", "fc_norm.{p}"),
    ("classifier.dense.{p}", "head.{p}"),
]


def _template_pattern(template: str) -> re.Pattern:
    return re.compile(re.escape(template).replace(r"\{n\}", r"(?P<n>\d+)").replace(r"\{p\}", r"(?P<p>weight|bias)"))


_HF_TO_TIMM = [(_template_pattern(hf), timm) for hf, timm in _HF_NAMES]
_TIMM_TO_HF = [(_template_pattern(timm), hf) for hf, timm in _HF_NAMES]


def _rename(name: str, table: list[tuple[re.Pattern, str]]) -> str | None:
    """``name`` renamed by the first template of ``table`` it matches fully, or None."""
    for pattern, target in table:
        m = pattern.fullmatch(name)
        if m:
            return target.format(**m.groupdict())
    return None


_HF_QKV = re.compile(r"encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)")
# transformers >= 5 module names, as found in a state_dict() saved without save_pretrained.
_HF5_RENAMES = [
    (r"^layers\.(\d+)\.attention\.([qkv])_proj\.", lambda m: f"encoder.layer.{m[1]}.attention.attention.{dict(q='query', k='key', v='value')[m[2]]}."),
    (r"^layers\.(\d+)\.attention\.o_proj\.", r"encoder.layer.\1.attention.output.dense."),
    (r"^layers\.(\d+)\.mlp\.fc1\.", r"encoder.layer.\1.intermediate.dense."),
    (r"^layers\.(\d+)\.mlp\.fc2\.", r"encoder.layer.\1.output.dense."),
    (r"^layers\.(\d+)\.", r"encoder.layer.\1."),
]
_QKV_PARTS = ("query", "key", "value")


def _hf_local_name(key: str) -> str:
    """A Hugging Face key without the model prefix, in the hub's (transformers 4) names."""
    local = key[len(HF_PREFIX):] if key.startswith(HF_PREFIX) else key
    for pattern, repl in _HF5_RENAMES:
        new = re.sub(pattern, repl, local)
        if new != local:
            return new
    return local


def hf_to_timm(state: dict[str, torch.Tensor]) -> Converted:
    """Hugging Face ``ASTForAudioClassification`` weights -> timm names (q/k/v fused into qkv)."""
    out = Converted(display=timm_to_hf_name)
    qkv: dict[tuple[int, str], dict[str, tuple[str, torch.Tensor]]] = {}
    for key, value in state.items():
        local = _hf_local_name(key)
        m = _HF_QKV.fullmatch(local)
        if m:
            qkv.setdefault((int(m[1]), m[3]), {})[m[2]] = (key, value)
            continue
        target = _rename(local, _HF_TO_TIMM)
        if target is None:
            out.unexpected.append(key)
        else:
            out.put(target, value, key)
    for (layer, kind), parts in sorted(qkv.items()):
        absent = [p for p in _QKV_PARTS if p not in parts]
        if absent:
            out.missing.extend(f"{HF_PREFIX}encoder.layer.{layer}.attention.attention.{p}.{kind}" for p in absent)
            continue
        fused = torch.cat([parts[p][1] for p in _QKV_PARTS], dim=0)
        out.put(f"blocks.{layer}.attn.qkv.{kind}", fused, " + ".join(parts[p][0] for p in _QKV_PARTS))
    return out


def timm_to_hf_name(key: str) -> str:
    """The Hugging Face name(s) of a timm AST key (qkv names its three parts)."""
    m = re.fullmatch(r"blocks\.(\d+)\.attn\.qkv\.(weight|bias)", key)
    if m:
        return " + ".join(f"{HF_PREFIX}encoder.layer.{m[1]}.attention.attention.{p}.{m[2]}" for p in _QKV_PARTS)
    hf = _rename(key, _TIMM_TO_HF)
    if hf is None:
        return key
    return hf if hf.startswith("classifier.") else HF_PREFIX + hf


def timm_to_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm AST weights -> Hugging Face ``ASTForAudioClassification`` names (qkv split in three)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        names = timm_to_hf_name(key).split(" + ")
        chunks = value.chunk(len(names), dim=0) if len(names) > 1 else (value,)
        for name, chunk in zip(names, chunks):
            out[name] = chunk.detach().contiguous().clone()
    return out


def _original_display(key: str) -> str:
    m = re.fullmatch(r"fc_norm\.(weight|bias)", key)
    if m:
        return f"module.mlp_head.0.{m[1]}"
    m = re.fullmatch(r"head\.(weight|bias)", key)
    if m:
        return f"module.mlp_head.1.{m[1]}"
    return f"module.v.{key}"


def original_to_timm(state: dict[str, torch.Tensor]) -> Converted:
    """Original AST (``module.v.*`` timm DeiT + ``module.mlp_head``) -> timm names.

    The DeiT ImageNet heads the original model carries but never uses (``v.head``, ``v.head_dist``)
    are dropped.
    """
    out = Converted(display=_original_display)
    for key, value in state.items():
        local = key[len("module."):] if key.startswith("module.") else key
        m = re.fullmatch(r"mlp_head\.([01])\.(weight|bias)", local)
        if m:
            out.put(("fc_norm." if m[1] == "0" else "head.") + m[2], value, key)
        elif re.match(r"v\.head(_dist)?\.", local):
            continue
        elif local.startswith("v."):
            out.put(local[2:], value, key)
        else:
            out.unexpected.append(key)
    return out


def timm_identity(state: dict[str, torch.Tensor]) -> Converted:
    """A state dict already in timm names."""
    out = Converted()
    for key, value in state.items():
        out.put(key, value, key)
    return out


def to_timm(state: dict[str, torch.Tensor], layout: Layout) -> Converted:
    return {"hf": hf_to_timm, "original": original_to_timm, "timm": timm_identity}[layout](state)


_REQUIRED = ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.mlp.fc1.weight")


def infer_architecture(state: dict[str, torch.Tensor], *, name: str = "checkpoint") -> dict:
    """Transformer sizes readable from timm-named tensor shapes (heads from the DeiT table)."""
    absent = [k for k in _REQUIRED if k not in state]
    if absent:
        raise CheckpointError(f"{name}: cannot tell the architecture; missing {absent}")
    hidden = int(state["cls_token"].shape[-1])
    proj = state["patch_embed.proj.weight"]
    if proj.ndim != 4 or proj.shape[-1] != proj.shape[-2]:
        raise CheckpointError(f"{name}: patch embedding weight of shape {tuple(proj.shape)} is not a square conv kernel")
    blocks = {int(m[1]) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))}
    prefix = 1 + ("dist_token" in state)
    arch = {
        "hidden_size": hidden,
        "num_hidden_layers": max(blocks) + 1,
        "num_attention_heads": DEIT_HEADS.get(hidden, max(1, hidden // 64)),
        "intermediate_size": int(state["blocks.0.mlp.fc1.weight"].shape[0]),
        "patch_size": int(proj.shape[-1]),
        "qkv_bias": "blocks.0.attn.qkv.bias" in state,
        "num_positions": int(state["pos_embed"].shape[1]) - prefix,
        "in_chans": int(proj.shape[1]),
    }
    if "head.weight" in state:
        arch["num_labels"] = int(state["head.weight"].shape[0])
    return arch


def adapt_grid_embed(pos: torch.Tensor, src: tuple[int, int], dst: tuple[int, int]) -> torch.Tensor:
    """AST's position-embedding adaptation on a ``[1, src_f * src_t, D]`` patch grid -> ``dst``.

    Time first: centre cut when ``dst_t <= src_t``, else bilinear interpolation; then frequency:
    centre cut when ``dst_f <= src_f``, else bilinear interpolation (as AST's ``ASTModel.__init__``).
    """
    (sf, st), (df, dt) = src, dst
    dim = pos.shape[-1]
    if pos.shape[1] != sf * st:
        raise CheckpointError(f"position embedding holds {pos.shape[1]} patches, not the {sf} x {st} grid")
    grid = pos.reshape(1, sf, st, dim).permute(0, 3, 1, 2).float()
    if dt <= st:
        grid = grid[:, :, :, st // 2 - dt // 2: st // 2 - dt // 2 + dt]
    else:
        grid = nn.functional.interpolate(grid, size=(sf, dt), mode="bilinear")
    if df <= sf:
        grid = grid[:, :, sf // 2 - df // 2: sf // 2 - df // 2 + df, :]
    else:
        grid = nn.functional.interpolate(grid, size=(df, dt), mode="bilinear")
    return grid.permute(0, 2, 3, 1).reshape(1, df * dt, dim).to(pos.dtype)


def _listing(title: str, items: list[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    more = f", ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"\n  {title} ({len(items)}): {shown}{more}"


def load_converted(model: nn.Module, converted: Converted, *, name: str, describe: str, ignore: tuple[str, ...] = ()) -> None:
    """Copy ``converted`` into ``model``; raise CheckpointError listing every key that does not fit.

    Keys starting with one of ``ignore`` keep the model's own values when the checkpoint lacks them.
    """
    expected = model.state_dict()
    state = converted.state
    missing = [
        name
        for k in expected
        if k not in state and not k.startswith(ignore)
        for name in converted.display(k).split(" + ")
    ]
    missing += converted.missing
    unexpected = list(converted.unexpected) + [converted.origin.get(k, k) for k in state if k not in expected]
    mismatched = [
        f"{converted.origin.get(k, k)}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in state.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or mismatched:
        message = f"checkpoint {name!r} does not fit {describe}:"
        if missing:
            message += _listing("missing keys", missing)
        if unexpected:
            message += _listing("unexpected keys", unexpected)
        if mismatched:
            message += _listing("shape mismatches", mismatched)
        raise CheckpointError(message)
    result = model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=False)
    leftover = [k for k in result.missing_keys if not k.startswith(ignore)]
    if leftover:  # pragma: no cover - guarded by the check above
        raise CheckpointError(f"checkpoint {name!r}: keys left unset: {leftover}")
