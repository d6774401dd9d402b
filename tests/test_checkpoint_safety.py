"""Checkpoints an attacker or a careless user hands over: code in pickles, absurd configs, truncated files.

A pickle whose unpickling would run code is refused by every loader and the code never runs (a marker
file it would write never appears; a control shows the payload is live when unpickled unsafely).
Impossible configurations raise ConfigError naming the field; broken weight files raise CheckpointError
naming the file.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

import audiovis as av
from audiovis.errors import CheckpointError, ConfigError

TINY = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, max_length=128, num_labels=3)


class Payload:
    """Unpickling this object calls ``exec`` on code that writes ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",))


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("ast")
    av.ASTModel(av.ASTConfig(**TINY)).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def vit_state() -> dict[str, torch.Tensor]:
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0).state_dict()


def evil_files(folder: Path, marker: Path, state: dict[str, torch.Tensor]) -> dict[str, Path]:
    """The same payload in the shapes a checkpoint arrives in."""
    files = {
        "bare object (zip)": (Payload(marker), {}),
        "inside a real state dict": ({**state, "evil": Payload(marker)}, {}),
        "under 'optimizer' of a training checkpoint": ({"state_dict": state, "optimizer": Payload(marker)}, {}),
        "legacy (non-zip) format": ({**state, "evil": Payload(marker)}, {"_use_new_zipfile_serialization": False}),
    }
    out = {}
    for i, (name, (obj, kwargs)) in enumerate(files.items()):
        path = folder / f"evil{i}.pth"
        torch.save(obj, path, **kwargs)
        out[name] = path
    raw = folder / "evil_raw.pth"  # plain pickle.dump, no torch container at all
    raw.write_bytes(pickle.dumps(Payload(marker)))
    out["plain pickle"] = raw
    return out


def test_the_payload_is_live(tmp_path):
    """Control: unpickled without weights_only, the payload does write its marker."""
    marker = tmp_path / "control"
    path = evil_files(tmp_path, marker, {"w": torch.zeros(2)})["inside a real state dict"]
    torch.load(path, weights_only=False)
    assert marker.read_text() == "code ran"


LOADERS = {
    "ASTModel.from_pretrained(file)": lambda path: av.ASTModel.from_pretrained(path),
    "ASTModel.from_imagenet": lambda path: av.ASTModel.from_imagenet(path),
    "ViTModel(checkpoint=)": lambda path: av.ViTModel("vit_tiny_patch16_224", input_shape=(64, 128), checkpoint=path),
}


@pytest.mark.parametrize("loader", list(LOADERS))
def test_code_in_a_pickle_never_runs(tmp_path, vit_state, loader):
    marker = tmp_path / "marker"
    for name, path in evil_files(tmp_path, marker, vit_state).items():
        with pytest.raises(CheckpointError, match=str(path.name)) as err:
            LOADERS[loader](path)
        assert not marker.exists(), f"{loader} ran the code in {name}"
        message = str(err.value)
        assert "weights_only" in message or "cannot be read" in message or "refused" in message, message


def test_code_in_an_hf_directory_pickle_never_runs(tmp_path, hf_dir):
    """A directory with config.json and a pytorch_model.bin carrying the payload."""
    marker = tmp_path / "marker"
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text((hf_dir / "config.json").read_text())
    from safetensors.torch import load_file

    state = load_file(hf_dir / "model.safetensors")
    torch.save({**state, "evil": Payload(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pytorch_model.bin.*weights_only"):
        av.ASTModel.from_pretrained(folder)
    assert not marker.exists()


# ---- absurd configurations ------------------------------------------------------------------------

ABSURD = [
    ("0 layers", {"num_hidden_layers": 0}, r"num_hidden_layers must be a positive integer, got 0"),
    ("negative layers", {"num_hidden_layers": -2}, r"num_hidden_layers must be a positive integer"),
    ("patch larger than the input", {"patch_size": 400}, r"patch_size=400 is larger than the input \(128 mel bins x 128 frames\)"),
    ("negative stride", {"time_stride": -10}, r"time_stride must be a positive integer, got -10"),
    ("zero stride", {"frequency_stride": 0}, r"frequency_stride must be a positive integer, got 0"),
    ("heads not dividing the width", {"num_attention_heads": 5}, r"num_attention_heads=5 does not divide hidden_size=32"),
    ("string size", {"hidden_size": "big"}, r"hidden_size must be a positive integer, got 'big'"),
    ("float size", {"intermediate_size": 64.5}, r"intermediate_size must be a positive integer"),
    ("bool size", {"num_mel_bins": True}, r"num_mel_bins must be a positive integer, got True"),
    ("NaN epsilon", {"layer_norm_eps": float("nan")}, r"layer_norm_eps must be a positive number, got nan"),
    ("dropout of 1", {"hidden_dropout_prob": 1.0}, r"hidden_dropout_prob must be in \[0, 1\)"),
    ("unknown activation", {"hidden_act": "os.system"}, r"hidden_act must be one of"),
    ("1e9 layers", {"num_hidden_layers": 10**9}, r"about 8.54e\+12 parameters, more than the 1e\+10 allowed"),
    ("a million wide", {"hidden_size": 2**20, "num_attention_heads": 1}, r"parameters, more than the 1e\+10 allowed"),
]


@pytest.mark.parametrize("name, change, match", ABSURD, ids=[a[0] for a in ABSURD])
def test_absurd_config_json_is_a_config_error(tmp_path, hf_dir, name, change, match):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes((hf_dir / "model.safetensors").read_bytes())
    config = json.loads((hf_dir / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ConfigError, match=match):
        av.ASTModel.from_pretrained(folder)
    with pytest.raises(ConfigError, match=match):  # the same values given in Python
        av.ASTConfig(**{**TINY, **change})


def test_absurd_overrides_are_config_errors(hf_dir, tmp_path, vit_state):
    with pytest.raises(ConfigError, match="num_hidden_layers must be a positive integer"):
        av.ASTModel.from_pretrained(hf_dir, config={"num_hidden_layers": 0})
    with pytest.raises(ConfigError, match="ASTConfig has no field 'bogus'"):
        av.ASTModel.from_pretrained(hf_dir, config={"bogus": 1})
    path = tmp_path / "vit.safetensors"
    save_file(vit_state, str(path))
    with pytest.raises(ConfigError, match="ASTConfig has no field 'depth'"):
        av.ASTModel.from_imagenet(path, config={"depth": 3})
    with pytest.raises(ConfigError, match=r"patch_size=16 is larger than the input \(128 mel bins x 8 frames\)"):
        av.ASTModel.from_imagenet(path, config={"max_length": 8})


@pytest.mark.parametrize("kwargs, match", [
    (dict(depth=0), "at least one transformer block, got depth=0"),
    (dict(num_heads=5), "dim should be divisible by num_heads"),
    (dict(stride=-1), "stride must be positive, got -1"),
    (dict(input_shape=(8, 256)), r"patch \(16, 16\) is larger than the input \(8, 256\)"),
    (dict(input_shape=(0, 256)), "positive integers"),
])
def test_absurd_vit_settings_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        av.ViTModel("vit_tiny_patch16_224", **{"input_shape": (64, 128), **kwargs})


# ---- truncated and corrupt files ----------------------------------------------------------------


def truncate(src: Path, dst: Path, keep: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


@pytest.mark.parametrize("keep", [0.0, 0.001, 0.5, 0.999])
def test_truncated_safetensors_is_a_checkpoint_error(tmp_path, hf_dir, vit_state, keep):
    folder = tmp_path / "cut"
    folder.mkdir()
    (folder / "config.json").write_text((hf_dir / "config.json").read_text())
    truncate(hf_dir / "model.safetensors", folder / "model.safetensors", keep)
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*cannot be read as safetensors \(truncated or corrupt\?\)"):
        av.ASTModel.from_pretrained(folder)
    full = tmp_path / "vit.safetensors"
    save_file(vit_state, str(full))
    cut = truncate(full, tmp_path / "vit_cut.safetensors", keep)
    with pytest.raises(CheckpointError, match=r"vit_cut\.safetensors.*cannot be read as safetensors"):
        av.ASTModel.from_imagenet(cut)
    with pytest.raises(CheckpointError, match=r"vit_cut\.safetensors.*cannot be loaded into 'vit_tiny_patch16_224'"):
        av.ViTModel("vit_tiny_patch16_224", input_shape=(64, 128), checkpoint=cut)


def test_truncated_and_foreign_pickles_are_checkpoint_errors(tmp_path, vit_state):
    full = tmp_path / "vit.pth"
    torch.save(vit_state, full)
    cut = truncate(full, tmp_path / "vit_cut.pth", 0.5)
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    for path in (cut, text):
        with pytest.raises(CheckpointError, match=path.name):
            av.ASTModel.from_pretrained(path)
        with pytest.raises(CheckpointError, match=path.name):
            av.ViTModel("vit_tiny_patch16_224", input_shape=(64, 128), checkpoint=path)
    plain = tmp_path / "numbers.pth"
    torch.save({"a": 1, "b": [2, 3]}, plain)  # loads safely, but holds no tensors
    with pytest.raises(CheckpointError, match=r"numbers\.pth.*not tensors"):
        av.ASTModel.from_pretrained(plain)
