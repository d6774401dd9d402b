"""Loaders given the wrong file, or no network: a CheckpointError naming the file and the problem, at once.

Every case also checks the time: offline, the hub client retries each download for most of a minute
before failing, so "fails clearly" includes "fails within a few seconds".
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import timm
import torch
from safetensors.torch import save_file

import audiovis as av
from audiovis.errors import CheckpointError

TINY = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, max_length=128, num_labels=3)
QUICK = 5.0  # seconds: well above a local failure, far below one round of hub retries

LOADERS = {
    "from_pretrained": lambda path: av.ASTModel.from_pretrained(path),
    "from_imagenet": lambda path: av.ASTModel.from_imagenet(path),
    "ViTModel(checkpoint=)": lambda path: av.ViTModel("vit_tiny_patch16_224", input_shape=(64, 128), checkpoint=path),
}


def fails_quickly(call, match: str) -> CheckpointError:
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=match) as err:
        call()
    took = time.perf_counter() - start
    assert took < QUICK, f"took {took:.1f} s to fail"
    return err.value


def foreign_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """Files that are not checkpoints, and what the error must call them."""
    wav = folder / "clip.wav"
    sf.write(wav, np.zeros(1600, dtype=np.float32), 16000)
    out = {"wav": (wav, r"a RIFF \(WAV\) audio file")}
    for key, text in {"notes": "hello world\n", "words": "some notes\n", "letter": "e"}.items():
        path = folder / f"{key}.pth"
        path.write_text(text)  # each made torch.load fail inside its unpickler (KeyError: 101, IndexError, ...)
        out[key] = (path, "a text file")
    empty = folder / "empty.pth"
    empty.write_bytes(b"")
    out["empty"] = (empty, "an empty file")
    flac = folder / "clip.bin"
    sf.write(flac, np.zeros(1600, dtype=np.float32), 16000, format="FLAC")
    out["flac named .bin"] = (flac, "a FLAC audio file")
    return out


@pytest.mark.parametrize("loader", list(LOADERS))
def test_files_that_are_not_checkpoints(tmp_path, loader):
    for name, (path, kind) in foreign_files(tmp_path).items():
        err = fails_quickly(lambda: LOADERS[loader](path), match=rf"{path.name}.*is {kind}, not a checkpoint")
        assert "expected PyTorch weights" in str(err), name


def test_safetensors_under_another_suffix_is_read(tmp_path):
    """The format comes from the bytes: a .safetensors file named .bin loads like the original."""
    torch.manual_seed(0)
    model = av.ASTModel(av.ASTConfig(**TINY))
    model.save_pretrained(tmp_path / "hf")
    renamed = tmp_path / "weights.bin"
    renamed.write_bytes((tmp_path / "hf" / "model.safetensors").read_bytes())
    loaded = av.ASTModel.from_pretrained(renamed, config=dict(max_length=128, num_labels=3))
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_imagenet_checkpoint_to_from_pretrained_points_to_from_imagenet(tmp_path):
    state = timm.create_model("vit_tiny_patch16_224", pretrained=False).state_dict()
    for path in (tmp_path / "vit.pth", tmp_path / "vit.safetensors"):
        if path.suffix == ".pth":
            torch.save(state, path)
        else:
            save_file(state, str(path))
        err = fails_quickly(lambda: av.ASTModel.from_pretrained(path), match=rf"{path.name}.*image model")
        message = str(err)
        assert f"ASTModel.from_imagenet({str(path)!r})" in message
        assert "3-channel (RGB) patch embedding" in message and "1000 classes" in message
        av.ASTModel.from_imagenet(path)  # the suggestion works


# ---- the hub, unreachable or switched off ------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def unreachable_hub(monkeypatch, tmp_path):
    """The hub endpoint is a closed local port (refused at once, so before the fix every download retried
    for ~23 s), and the cache is an empty folder."""
    from huggingface_hub import constants

    endpoint = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.fixture
def offline_mode(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def put_in_cache(cache: Path, repo_id: str, files: dict[str, bytes]) -> None:
    """The Hugging Face cache layout: models--org--name/refs/main -> snapshots/<commit>/<files>."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, data in files.items():
        (snapshot / name).write_bytes(data)


VIT_REPO = "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k"  # timm's default weights of vit_tiny_patch16_224


@pytest.mark.parametrize("hub", ["unreachable_hub", "offline_mode"])
def test_vit_pretrained_without_the_hub_fails_at_once(request, hub):
    request.getfixturevalue(hub)
    err = fails_quickly(
        lambda: av.ViTModel("vit_tiny_patch16_224", input_shape=(64, 128), pretrained=True),
        match=r"pretrained=True needs timm's weights for 'vit_tiny_patch16_224'",
    )
    message = str(err)
    assert VIT_REPO in message and "not in the Hugging Face cache" in message and "checkpoint=" in message
    assert ("does not answer" in message) if hub == "unreachable_hub" else ("HF_HUB_OFFLINE" in message)


@pytest.mark.parametrize("hub", ["unreachable_hub", "offline_mode"])
def test_from_pretrained_hub_id_without_the_hub_fails_at_once(request, hub):
    request.getfixturevalue(hub)
    err = fails_quickly(
        lambda: av.ASTModel.from_pretrained("someone/ast-not-cached"),
        match=r"'someone/ast-not-cached' is not a local path, config.json is not in the Hugging Face cache",
    )
    assert "cannot be reached" in str(err)


def test_cached_weights_load_without_the_hub(unreachable_hub, tmp_path):
    """Offline, what the cache holds is used directly (no retries): timm's ViT weights and an AST repo."""
    torch.manual_seed(1)
    vit_state = timm.create_model("vit_tiny_patch16_224", pretrained=False).state_dict()
    blob = tmp_path / "vit.safetensors"
    save_file(vit_state, str(blob))
    put_in_cache(unreachable_hub, VIT_REPO, {"model.safetensors": blob.read_bytes()})
    start = time.perf_counter()
    vit = av.ViTModel("vit_tiny_patch16_224", input_shape=(64, 128), pretrained=True)
    assert time.perf_counter() - start < QUICK
    assert torch.equal(vit.vit.blocks[0].attn.qkv.weight, vit_state["blocks.0.attn.qkv.weight"])
    # timm's own loading rules applied: RGB kernels summed to one channel
    assert torch.allclose(vit.vit.patch_embed.proj.weight, vit_state["patch_embed.proj.weight"].sum(1, keepdim=True))

    model = av.ASTModel(av.ASTConfig(**TINY))
    model.save_pretrained(tmp_path / "ast")
    put_in_cache(unreachable_hub, "someone/tiny-ast", {f.name: f.read_bytes() for f in (tmp_path / "ast").iterdir()})
    start = time.perf_counter()
    loaded = av.ASTModel.from_pretrained("someone/tiny-ast")
    assert time.perf_counter() - start < QUICK
    x = torch.randn(1, 128, 128)
    assert torch.equal(loaded(x), model.eval()(x))
