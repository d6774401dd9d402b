"""extract_embeddings: agreement with Analysis, every kind of source, long clips, and the on-disk store."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

import audiovis as av
from audiovis.datasets import SyntheticEvents

from .frozen_models import SR, tiny_ast, tone

FREQS = [250.0, 700.0, 1500.0, 3000.0, 5200.0]


@pytest.fixture(scope="module")
def model():
    return tiny_ast(seed=1)


@pytest.fixture
def files(tmp_path):
    paths = []
    for i, f in enumerate(FREQS):
        path = tmp_path / "clips" / f"tone{i}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, tone(f, noise=0.01, seed=i), SR)
        paths.append(path)
    return paths


class ForwardCounter:
    """Counts model passes (calls of the patch embedding); optionally interrupts the n-th one."""

    def __init__(self, model, interrupt_at: int | None = None) -> None:
        self.calls = 0
        self.interrupt_at = interrupt_at
        self.handle = model.patch_embed.register_forward_pre_hook(self)

    def __call__(self, module, args) -> None:
        self.calls += 1
        if self.interrupt_at is not None and self.calls == self.interrupt_at:
            raise KeyboardInterrupt("stopped by the test")

    def __enter__(self) -> "ForwardCounter":
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()


def stored_rows(cache) -> int:
    """Clip rows in every shard of the stores under ``cache``."""
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(p).num_rows for p in cache.rglob("shards/part-*.parquet"))


@pytest.mark.parametrize("layer", [0, 1, -1])
def test_agrees_with_analysis(model, files, layer):
    files = files[:3]
    mean = av.extract_embeddings(files, model, layer=layer, pooling="mean", batch_size=2, progress=False)
    cls = av.extract_embeddings(files, model, layer=layer, pooling="cls", batch_size=2, progress=False)
    patches = av.extract_embeddings(files, model, layer=layer, pooling="patches", batch_size=2, progress=False)
    n, d = len(files), model.config.hidden_size
    assert mean.shape == cls.shape == (n, d) and patches.shape == (n, model.grid.num_patches, d)
    assert mean.dtype == np.float32
    for i, path in enumerate(files):
        analysis = model.analyze(path)
        np.testing.assert_allclose(patches[i], analysis.patch_embeddings(layer), atol=1e-5)
        np.testing.assert_allclose(mean[i], analysis.patch_embeddings(layer).mean(axis=0), atol=1e-5)
        np.testing.assert_allclose(cls[i], analysis.clip_embedding(layer), atol=1e-5)


def test_every_kind_of_source_gives_the_same_vector(model, files):
    from_files = av.extract_embeddings(files, model, progress=False)
    audios = [av.load_audio(p) for p in files]
    arrays = [a.waveform[0].numpy() for a in audios]
    np.testing.assert_allclose(av.extract_embeddings(audios, model, progress=False), from_files, atol=1e-6)
    np.testing.assert_allclose(av.extract_embeddings(arrays, model, sample_rate=SR, progress=False), from_files, atol=1e-6)
    specs = [model.spectrogram(a) for a in audios]
    np.testing.assert_allclose(av.extract_embeddings(specs, model, progress=False), from_files, atol=1e-6)


def test_reads_a_dataset_and_pools_every_window(model):
    data = SyntheticEvents(3, seed=7)
    out = av.extract_embeddings(data, model, batch_size=2, progress=False)
    cls = av.extract_embeddings(data, model, pooling="cls", batch_size=2, progress=False)
    # 4 s clips, a 2 s model: every window analyze() makes counts; the clip's vector is their mean
    mean_ref, cls_ref, first = [], [], []
    for i in range(3):
        windows = model.analyze(data[i].audio)
        assert len(windows) == 2
        mean_ref.append(np.mean([w.patch_embeddings(-1).mean(axis=0) for w in windows], axis=0))
        cls_ref.append(np.mean([w.clip_embedding(-1) for w in windows], axis=0))
        first.append(windows[0].patch_embeddings(-1).mean(axis=0))
    np.testing.assert_allclose(out, np.stack(mean_ref), atol=1e-5)
    np.testing.assert_allclose(cls, np.stack(cls_ref), atol=1e-5)
    assert np.abs(out - np.stack(first)).max() > 1e-2  # not the first window alone
    with pytest.raises(ValueError, match="spans 2 model windows; pooling='patches'"):
        av.extract_embeddings(data, model, pooling="patches", progress=False)


def test_several_layers_from_one_pass(model, files):
    with ForwardCounter(model) as counter:
        out = av.extract_embeddings(files, model, layer=[0, -1, 2], batch_size=2, progress=False)
    assert counter.calls == 3  # ceil(5 / 2) batches, each one pass for all layers
    assert list(out) == [0, -1, 2]
    np.testing.assert_array_equal(out[-1], out[2])
    np.testing.assert_allclose(out[0], av.extract_embeddings(files, model, layer=0, progress=False), atol=1e-6)


def test_second_run_is_all_cache_hits(model, files, tmp_path):
    cache = tmp_path / "cache"
    first = av.extract_embeddings(files, model, batch_size=2, cache_dir=cache, progress=False)
    with ForwardCounter(model) as counter:
        second = av.extract_embeddings(files, model, batch_size=2, cache_dir=cache, progress=False)
    assert counter.calls == 0
    np.testing.assert_array_equal(first, second)
    assert stored_rows(cache) == len(files)
    assert len(list(cache.glob("*/manifest.json"))) == 1  # one store: this model, this layer
    assert not list(cache.rglob("*.tmp"))


def test_renamed_copy_hits_and_changed_file_is_recomputed(model, files, tmp_path):
    cache = tmp_path / "cache"
    before = av.extract_embeddings(files, model, cache_dir=cache, progress=False)
    copy = tmp_path / "copy.wav"
    copy.write_bytes(files[0].read_bytes())
    sf.write(files[3], tone(440.0, noise=0.01, seed=99), SR)
    with ForwardCounter(model) as counter:
        after = av.extract_embeddings(files + [copy], model, cache_dir=cache, progress=False)
    assert counter.calls == 1
    fresh = av.extract_embeddings([files[3]], model, progress=False)[0]
    np.testing.assert_allclose(after[3], fresh, atol=1e-6)
    assert np.abs(after[3] - before[3]).max() > 1e-3
    np.testing.assert_array_equal(after[[0, 1, 2, 4]], before[[0, 1, 2, 4]])
    np.testing.assert_array_equal(after[5], before[0])


def test_interrupted_run_resumes(model, files, tmp_path):
    cache = tmp_path / "cache"
    with ForwardCounter(model, interrupt_at=2) as counter, pytest.raises(KeyboardInterrupt):
        av.extract_embeddings(files, model, batch_size=2, cache_dir=cache, progress=False)
    assert stored_rows(cache) == 2  # the first batch finished and was stored
    assert not list(cache.rglob("*.tmp"))
    with ForwardCounter(model) as counter:
        resumed = av.extract_embeddings(files, model, batch_size=2, cache_dir=cache, progress=False)
    assert counter.calls == 2  # the 3 clips left, in batches of 2
    np.testing.assert_allclose(resumed, av.extract_embeddings(files, model, progress=False), atol=1e-6)


def test_cache_keys_separate_layers_poolings_and_weights(model, files, tmp_path):
    cache = tmp_path / "cache"
    av.extract_embeddings(files[:2], model, cache_dir=cache, progress=False)
    with ForwardCounter(model) as counter:
        av.extract_embeddings(files[:2], model, cache_dir=cache, progress=False, layer=0)
    assert counter.calls == 1
    # the store keeps both poolings from one pass: "cls" after "mean" is read back, and equals a fresh pass
    with ForwardCounter(model) as counter:
        cls = av.extract_embeddings(files[:2], model, cache_dir=cache, progress=False, pooling="cls")
    assert counter.calls == 0
    np.testing.assert_allclose(cls, av.extract_embeddings(files[:2], model, pooling="cls", progress=False), atol=1e-6)
    other = tiny_ast(seed=1)
    with torch.no_grad():
        other.head.bias.add_(1.0)  # a different model, even though only the head changed
    with ForwardCounter(other) as counter:
        av.extract_embeddings(files[:2], other, cache_dir=cache, progress=False)
    assert counter.calls == 1
    twin = tiny_ast(seed=1)
    with ForwardCounter(twin) as counter:
        av.extract_embeddings(files[:2], twin, cache_dir=cache, progress=False)
    assert counter.calls == 0, "identical weights and config share the cache"


def test_damaged_cache_entry_is_recomputed(model, files, tmp_path):
    cache = tmp_path / "cache"
    expected = av.extract_embeddings(files[:1], model, cache_dir=cache, progress=False)
    (entry,) = cache.rglob("shards/part-*.parquet")
    entry.write_bytes(entry.read_bytes()[:20])
    with ForwardCounter(model) as counter, pytest.warns(UserWarning, match="cannot be read"):
        again = av.extract_embeddings(files[:1], model, cache_dir=cache, progress=False)
    assert counter.calls == 1
    np.testing.assert_array_equal(again, expected)


def test_progress_bar(model, files, capsys):
    av.extract_embeddings(files, model, batch_size=2)
    err = capsys.readouterr().err
    assert "embeddings" in err and "5/5" in err


def test_bad_arguments(model, files):
    with pytest.raises(ValueError, match="pooling"):
        av.extract_embeddings(files, model, pooling="max")
    with pytest.raises(ValueError, match=r"layer 3 is outside the model's blocks: 0 \.\. 2"):
        av.extract_embeddings(files, model, layer=3)
    with pytest.raises(ValueError, match="batch_size"):
        av.extract_embeddings(files, model, batch_size=0)
    with pytest.raises(TypeError, match="list of sources"):
        av.extract_embeddings(files[0], model)
    with pytest.raises(ValueError, match="source 1 is an array; pass sample_rate"):
        av.extract_embeddings([av.load_audio(files[0]), tone(300.0)], model, progress=False)
    with pytest.raises(FileNotFoundError, match="source 0"):
        av.extract_embeddings([files[0].with_name("missing.wav")], model, progress=False)
    with pytest.raises(TypeError, match="source 0: cannot read a dict"):
        av.extract_embeddings([{"x": 1}], model, progress=False)
