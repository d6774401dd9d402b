"""The embedding store (local engine): values against Analysis, every kind of source, resume, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch

import audiovis as av
from audiovis.datasets import SyntheticEvents
from audiovis.store import StoreError, embed_dataset, open_store
from audiovis.store.runs import NOT_COMPUTED

from .frozen_models import SR, tiny_ast, tone
from .test_embeddings import ForwardCounter

FREQS = [250.0, 700.0, 1500.0, 3000.0]


@pytest.fixture(scope="module")
def model():
    return tiny_ast(seed=1)


@pytest.fixture
def folder(tmp_path):
    """Four tones (one of 5 s: three windows of the 2 s model), one in a subfolder."""
    root = tmp_path / "clips"
    (root / "sub").mkdir(parents=True)
    for i, f in enumerate(FREQS):
        path = root / ("sub" if i == 3 else "") / f"tone{i}.wav"
        sf.write(path, tone(f, seconds=5.0 if i == 0 else 2.0, noise=0.01, seed=i), SR)
    return root


def files_of(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.wav"))


def long_row(folder: Path) -> int:
    """The row of the 5 s clip (sources are listed sorted: sub/tone3.wav comes first)."""
    return [p.name for p in files_of(folder)].index("tone0.wav")


def shard_ids(path: Path) -> list[str]:
    """Every clip_id row in every shard (duplicates included)."""
    return [cid for p in sorted((path / "shards").glob("part-*.parquet"))
            for cid in pq.read_table(p, columns=["clip_id"]).column("clip_id").to_pylist()]


def test_values_equal_analysis_window_by_window(model, folder, tmp_path):
    store = embed_dataset(folder, model, tmp_path / "store", layers=[0, -1], patches=True, batch_size=3,
                          progress=False)
    clips = store.clips
    assert list(clips["source"]) == [str(p) for p in files_of(folder)]
    assert clips["error"].isna().all() and clips["clip_id"].is_unique
    emb = {ly: store.clip_embeddings(ly) for ly in (0, -1)}
    cls = store.clip_embeddings(-1, pooling="cls")
    for i, path in enumerate(files_of(folder)):
        windows = model.analyze_windows(path)
        cid = clips["clip_id"][i]
        assert clips["num_windows"][i] == len(windows) == (3 if path.name == "tone0.wav" else 1)
        np.testing.assert_allclose(clips["window_starts"][i], [w.offset for w in windows], atol=1e-9)
        assert clips["duration"][i] == pytest.approx(5.0 if path.name == "tone0.wav" else 2.0)
        for ly in (0, -1):
            per_window = np.stack([w.patch_embeddings(ly).mean(axis=0) for w in windows])
            np.testing.assert_allclose(store.window_embeddings(cid, ly), per_window, atol=1e-5)
            np.testing.assert_allclose(emb[ly][i], per_window.mean(axis=0), atol=1e-5)
            for k, w in enumerate(windows):
                got = store.patch_embeddings(cid, ly, window=k if len(windows) > 1 else None)
                assert got.dtype == np.float16 and got.shape == (model.grid.num_patches, model.config.hidden_size)
                np.testing.assert_allclose(got.astype(np.float32), w.patch_embeddings(ly), rtol=2e-3, atol=2e-3)
        np.testing.assert_allclose(cls[i], np.mean([w.clip_embedding(-1) for w in windows], axis=0), atol=1e-5)
        probs = np.stack([w.probabilities for w in windows])
        clip_probs = probs.max(axis=0) if model.multi_label else probs.mean(axis=0)
        order = np.argsort(-clip_probs, kind="stable")[:4]
        assert list(clips["top_labels"][i]) == [model.labels[j] for j in order]
        np.testing.assert_allclose(clips["top_probs"][i], clip_probs[order], atol=1e-5)
    with pytest.raises(ValueError, match="has 3 windows; pass window=0..2"):
        store.patch_embeddings(clips["clip_id"][long_row(folder)])
    with pytest.raises(ValueError, match=r"layer 1 is not in this store; it holds block\(s\) 0, 2"):
        store.clip_embeddings(1)


def test_files_are_plain_parquet(model, folder, tmp_path):
    embed_dataset(folder, model, tmp_path / "store", progress=False)
    index = pd.read_parquet(tmp_path / "store" / "clips.parquet")
    assert list(index["source"]) == [str(p) for p in files_of(folder)]
    (shard,) = (tmp_path / "store" / "shards").glob("*.parquet")
    table = pq.read_table(shard)
    assert table.schema.field("mean_2").type.list_size == model.config.hidden_size
    assert sorted(table.column("clip_id").to_pylist()) == sorted(index["clip_id"])


def test_dataset_and_dataframe_sources_with_labels(model, folder, tmp_path):
    data = SyntheticEvents(3, seed=5)
    store = embed_dataset(data, model, tmp_path / "ds", batch_size=2, progress=False)
    expected = [[data.class_names[j] for j in np.flatnonzero(data[i].labels.numpy())] for i in range(3)]
    assert [list(v) for v in store.clips["labels"]] == expected
    assert list(store.clips["source"]) == ["SyntheticEvents[0]", "SyntheticEvents[1]", "SyntheticEvents[2]"]
    ref = np.stack([np.mean([w.patch_embeddings(-1).mean(axis=0) for w in model.analyze_windows(data[i].audio)],
                            axis=0) for i in range(3)])
    np.testing.assert_allclose(store.clip_embeddings(), ref, atol=1e-5)

    files = files_of(folder)
    frame = pd.DataFrame({"source": [str(p) for p in files], "species": ["a", "b", "a", "c"], "count": [1, 2, 3, 4]})
    store = embed_dataset(frame, model, tmp_path / "df", progress=False)
    assert list(store.clips["species"]) == ["a", "b", "a", "c"] and list(store.clips["count"]) == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="needs a 'source' column.*'path'"):
        embed_dataset(pd.DataFrame({"path": [str(files[0])]}), model, tmp_path / "bad", progress=False)
    store = embed_dataset(files, model, tmp_path / "list", labels={"tag": list("wxyz")}, progress=False)
    assert list(store.clips["tag"]) == list("wxyz")
    with pytest.raises(ValueError, match="labels 'tag' has 2 entries for 4 sources"):
        embed_dataset(files, model, tmp_path / "list2", labels={"tag": ["a", "b"]}, progress=False)


def test_bad_files_become_error_rows_and_the_run_goes_on(model, folder, tmp_path):
    (folder / "notes.txt").write_text("not a sound")
    (folder / "fake.wav").write_text("text renamed .wav")
    header_only = folder / "header.wav"
    sf.write(header_only, tone(300.0), SR)
    header_only.write_bytes(header_only.read_bytes()[:44])
    missing = folder / "gone.wav"
    with pytest.warns(UserWarning, match=r"skipped 1 file\(s\) that are not audio by their extension: notes.txt"):
        store = embed_dataset(folder, model, tmp_path / "store", progress=False)
    sources = list(store.clips["source"])
    assert str(folder / "notes.txt") not in sources
    errors = dict(zip(store.clips["source"], store.clips["error"]))
    assert "fake.wav" in errors[str(folder / "fake.wav")] and "could not be decoded" in errors[str(folder / "fake.wav")]
    assert "header.wav" in errors[str(header_only)]
    good = [p for p in files_of(folder) if p.name.startswith("tone")]
    assert all(errors[str(p)] is None for p in good)
    emb = store.clip_embeddings()
    bad_rows = store.clips["error"].notna().to_numpy()
    assert np.isnan(emb[bad_rows]).all() and np.isfinite(emb[~bad_rows]).all()
    assert store.last_run.failed == 2 and store.last_run.done == 4

    listed = embed_dataset([good[0], missing], model, tmp_path / "list", progress=False)
    assert listed.clips["error"][0] is None
    assert listed.clips["error"][1] == f"{str(missing)!r}: no such file"


def test_empty_folder_and_not_a_store(model, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("x")
    with pytest.raises(FileNotFoundError, match="holds no audio files"), pytest.warns(UserWarning):
        embed_dataset(tmp_path / "empty", model, tmp_path / "store", progress=False)
    with pytest.raises(ValueError, match="no sources"):
        embed_dataset([], model, tmp_path / "store", progress=False)
    with pytest.raises(StoreError, match="is not an embedding store: it has no manifest.json"):
        open_store(tmp_path / "empty")
    with pytest.raises(StoreError, match="no embedding store at"):
        open_store(tmp_path / "nowhere")
    with pytest.raises(StoreError, match="other files and no manifest.json"):
        embed_dataset([tone(300.0)], model, tmp_path / "empty", sample_rate=SR, progress=False)
    with pytest.raises(ValueError, match="engine must be one of"):
        embed_dataset([tone(300.0)], model, tmp_path / "s", sample_rate=SR, engine="spark")


def test_another_model_or_other_settings_are_refused(model, folder, tmp_path):
    path = tmp_path / "store"
    store = embed_dataset(folder, model, path, progress=False)
    other = tiny_ast(seed=1)
    with torch.no_grad():
        other.head.bias.add_(1.0)
    with pytest.raises(StoreError, match=r"built with another model \(ASTModel, key \w+\); this one is ASTModel with key \w+"):
        open_store(path, other)
    with pytest.raises(StoreError, match="built with another model"):
        embed_dataset(folder, other, path, progress=False)
    with pytest.raises(StoreError, match=r"holds layers=\[2\]; this run asks for layers=\[0\]"):
        embed_dataset(folder, model, path, layers=[0], progress=False)
    assert open_store(path, tiny_ast(seed=1)).clips.equals(store.clips)  # same weights: same key


def test_interrupted_run_resumes_without_recomputing(model, tmp_path):
    data = SyntheticEvents(6, seed=2, duration=2.0)
    path = tmp_path / "store"
    with ForwardCounter(model, interrupt_at=3), pytest.raises(KeyboardInterrupt):
        embed_dataset(data, model, path, batch_size=2, shard_size=2, progress=False)
    half = open_store(path)
    assert not half.complete
    assert list(half.clips["error"][4:]) == [NOT_COMPUTED] * 2 and half.clips["error"][:4].isna().all()
    assert len(shard_ids(path)) == 4
    with ForwardCounter(model) as counter:
        store = embed_dataset(data, model, path, batch_size=2, shard_size=2, progress=False)
    assert counter.calls == 1  # only the last two clips, one batch
    assert (store.last_run.done, store.last_run.skipped, store.last_run.failed) == (2, 4, 0)
    assert store.complete and sorted(shard_ids(path)) == sorted(store.clips["clip_id"])
    fresh = embed_dataset(data, model, tmp_path / "fresh", batch_size=2, progress=False)
    np.testing.assert_array_equal(store.clip_embeddings(), fresh.clip_embeddings())


def test_killed_process_keeps_finished_shards(model, tmp_path):
    """SIGKILL mid-run (no cleanup at all): every written shard stays whole, a rerun computes the rest."""
    path = tmp_path / "store"
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
        from audiovis.datasets import SyntheticEvents
        from audiovis.store import embed_dataset
        from tests.frozen_models import tiny_ast
        model = tiny_ast(seed=1)
        model.patch_embed.register_forward_pre_hook(lambda *a: time.sleep(0.4))
        embed_dataset(SyntheticEvents(12, seed=4, duration=2.0), model, {str(path)!r}, batch_size=2,
                      shard_size=2, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 90
        while len(list((path / "shards").glob("part-*.parquet"))) < 2 and time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        proc.kill()
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    finished = len(shard_ids(path))
    assert 4 <= finished < 12 and finished % 2 == 0
    data = SyntheticEvents(12, seed=4, duration=2.0)
    with ForwardCounter(model) as counter:
        store = embed_dataset(data, model, path, batch_size=2, shard_size=2, progress=False)
    assert counter.calls == (12 - finished) // 2
    ids = shard_ids(path)
    assert len(ids) == len(set(ids)) == 12 and store.clips["error"].isna().all()
    fresh = embed_dataset(data, model, tmp_path / "fresh", batch_size=4, progress=False)
    np.testing.assert_allclose(store.clip_embeddings(), fresh.clip_embeddings(), atol=1e-6)


def test_changed_file_is_recomputed_renamed_copy_is_not(model, folder, tmp_path):
    path = tmp_path / "store"
    b = embed_dataset(folder, model, path, progress=False).clip_embeddings()
    files = files_of(folder)
    sf.write(files[2], tone(440.0, noise=0.01, seed=99), SR)
    copy = folder / "zz_copy.wav"
    copy.write_bytes(files[1].read_bytes())
    with ForwardCounter(model) as counter:
        after = embed_dataset(folder, model, path, progress=False)
    assert counter.calls == 1 and after.last_run.done == 1 and after.last_run.skipped == 4
    a = after.clip_embeddings()
    fresh = av.extract_embeddings([files[2]], model, progress=False)[0]
    np.testing.assert_allclose(a[2], fresh, atol=1e-5)
    assert np.abs(a[2] - b[2]).max() > 1e-3
    np.testing.assert_array_equal(a[[0, 1, 3]], b[[0, 1, 3]])
    np.testing.assert_array_equal(a[4], b[1])  # the renamed copy is the same clip
    assert after.clips["clip_id"][4] == after.clips["clip_id"][1]


def test_corrupt_shard_is_recomputed(model, folder, tmp_path):
    path = tmp_path / "store"
    first = embed_dataset(folder, model, path, progress=False).clip_embeddings()
    (shard,) = (path / "shards").glob("part-*.parquet")
    shard.write_bytes(shard.read_bytes()[:100])
    with ForwardCounter(model) as counter, pytest.warns(UserWarning, match="cannot be read.*renamed \\*.corrupt"):
        again = embed_dataset(folder, model, path, progress=False)
    assert counter.calls == 1  # all 6 windows (3 + 1 + 1 + 1) again, in one batch of 8
    np.testing.assert_allclose(again.clip_embeddings(), first, atol=1e-6)


def test_progress_bar_and_summary(model, folder, tmp_path, capsys):
    embed_dataset(folder, model, tmp_path / "store", batch_size=2)
    out = capsys.readouterr()
    assert "embed_dataset" in out.err and "4/4" in out.err
    assert "embed_dataset (local): 4 clips: 4 done, 0 skipped (already stored), 0 failed;" in out.out
    assert "clips/s" in out.out
    embed_dataset(folder, model, tmp_path / "store", batch_size=2)
    assert "4 clips: 0 done, 4 skipped (already stored), 0 failed" in capsys.readouterr().out


def test_search_is_exact_cosine_with_patch_bounds(model, folder, tmp_path):
    store = embed_dataset(folder, model, tmp_path / "store", patches=True, progress=False)
    clips = store.clips
    vectors, where = [], []
    for cid, n in zip(clips["clip_id"], clips["num_windows"]):
        for w in range(n):
            p = store.patch_embeddings(cid, window=w if n > 1 else None).astype(np.float32)
            vectors.append(p)
            where += [(cid, w, j) for j in range(len(p))]
    vectors = np.concatenate(vectors)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    short = 1 if long_row(folder) != 1 else 2
    query = store.patch_embeddings(clips["clip_id"][short])[17]
    found = store.search_patches(query, k=7)
    ref = unit @ (query.astype(np.float32) / np.linalg.norm(query.astype(np.float32)))
    best = np.argsort(-ref, kind="stable")[:7]
    assert [tuple(r) for r in found[["clip_id", "window", "patch"]].itertuples(index=False)] == [where[i] for i in best]
    np.testing.assert_allclose(found["score"], ref[best], atol=1e-5)
    assert found["score"].is_monotonic_decreasing and found["score"][0] == pytest.approx(1.0, abs=1e-5)
    # bounds: the patch's footprint on its window's spectrogram, at the window's absolute time
    long_id = clips["clip_id"][long_row(folder)]
    hits = store.search_patches(store.patch_embeddings(long_id, window=2)[40], k=3)
    row = hits.iloc[0]
    assert (row["clip_id"], row["window"], row["patch"]) == (long_id, 2, 40)
    window = model.analyze_windows(files_of(folder)[long_row(folder)])[2]
    box = model.grid.bounds_hz_s(40, window.spectrogram)
    assert (row["time_start"], row["time_end"], row["freq_low"], row["freq_high"]) == pytest.approx(tuple(box), abs=1e-6)
    others = store.search_patches(query, k=5, exclude_clip=clips["clip_id"][short])
    assert len(others) == 5 and clips["clip_id"][short] not in set(others["clip_id"])
    with pytest.raises(KeyError, match=r"exclude_clip 'no-such-clip' is not in the store"):  # excluded nothing before
        store.search_patches(query, k=5, exclude_clip="no-such-clip")
    with pytest.raises(TypeError, match=r"exclude_clip=.*must be a clip's id.*got int 0"):
        store.search_patches(query, k=5, exclude_clip=0)
    with pytest.raises(ValueError, match="query must have 48 values"):
        store.search_patches(np.ones(5), k=3)
    plain = embed_dataset(folder, model, tmp_path / "plain", progress=False)
    with pytest.raises(ValueError, match="built without patches"):
        plain.search_patches(query)


def _hits(frame: pd.DataFrame) -> list[tuple]:
    return [tuple(r) for r in frame[["clip_id", "window", "patch"]].itertuples(index=False)]


def test_a_clip_id_that_is_not_a_string_is_named(model, folder, tmp_path):
    """A row position given as the clip id: pyarrow said "Function 'equal' has no kernel matching input
    types (string, int64)"."""
    store = embed_dataset(folder, model, tmp_path / "store", patches=True, progress=False)
    for call in (store.patch_embeddings, store.window_embeddings):
        with pytest.raises(TypeError, match=rf"{call.__name__}: clip_id must be a clip's id, a string from "
                                            r"store.clips\['clip_id'\].*got int 0"):
            call(0)
    with pytest.raises(KeyError, match="'nope' is not in the store"):
        store.window_embeddings("nope")
    assert store.window_embeddings(store.clips["clip_id"].iloc[0]).shape[1] == store.manifest.dim


def test_a_search_query_that_is_not_one_direction_is_named(model, folder, tmp_path):
    """Several queries at once were searched and all but the first silently dropped; an all-zero query
    scored every patch 0 and returned an arbitrary k."""
    store = embed_dataset(folder, model, tmp_path / "store", patches=True, progress=False)
    query = store.patch_embeddings(store.clips["clip_id"][1 if long_row(folder) != 1 else 2])[17]
    with pytest.raises(ValueError, match=r"search_patches takes one query vector \[dim\], got shape \(2, \d+\): "
                                         r"search each row on its own, or search their mean"):
        store.search_patches(np.stack([query, query]), k=3)
    for method in ("exact", "ivf"):
        with pytest.raises(ValueError, match="query is all zeros: cosine similarity needs a direction"):
            store.search_patches(np.zeros_like(query), k=3, method=method)
    pd.testing.assert_frame_equal(store.search_patches(query[None], k=3), store.search_patches(query, k=3))


def test_ivf_index_is_kept_in_the_store_and_rebuilt_only_when_the_store_changes(model, folder, tmp_path,
                                                                              monkeypatch):
    from audiovis.store.search import PatchIndex

    builds = []
    real_build = PatchIndex._build_ivf

    def counted(self, *args, **kwargs):
        builds.append(self.size)
        return real_build(self, *args, **kwargs)

    monkeypatch.setattr(PatchIndex, "_build_ivf", counted)
    path = tmp_path / "store"
    store = embed_dataset(folder, model, path, patches=True, progress=False)
    query = store.patch_embeddings(store.clips["clip_id"][1 if long_row(folder) != 1 else 2])[17]
    first = store.search_patches(query, k=6, method="ivf")
    layer = store.manifest.resolve_layer(-1)
    kept = path / "indexes" / f"patches_{layer}.faiss"
    assert kept.is_file() and (path / "indexes" / f"patches_{layer}.json").is_file()
    assert builds == [sum(len(store.patch_embeddings(c, window=w if n > 1 else None))
                          for c, n in zip(store.clips["clip_id"], store.clips["num_windows"]) for w in range(n))]
    # the small store's index visits every cell: the same matches as exact search
    assert _hits(first) == _hits(store.search_patches(query, k=6, method="exact"))

    again = open_store(path).search_patches(query, k=6, method="ivf")  # a new session reads the file
    pd.testing.assert_frame_equal(again, first)
    assert len(builds) == 1

    kept.write_bytes(b"not a faiss index")  # unreadable: rebuilt with a warning, same answer
    with pytest.warns(RuntimeWarning, match="could not be read"):
        pd.testing.assert_frame_equal(open_store(path).search_patches(query, k=6, method="ivf"), first)
    assert len(builds) == 2
    pd.testing.assert_frame_equal(open_store(path).search_patches(query, k=6, method="ivf"), first)
    assert len(builds) == 2  # the rebuilt index replaced the bad file

    sf.write(folder / "zz_new.wav", tone(5000.0, noise=0.01, seed=7), SR)  # the store grows: rebuilt
    grown = embed_dataset(folder, model, path, patches=True, progress=False)
    new_id = grown.clips["clip_id"].iloc[-1]
    hit = open_store(path).search_patches(grown.patch_embeddings(new_id)[5], k=1, method="ivf")
    assert len(builds) == 3 and _hits(hit) == [(new_id, 0, 5)]


def test_a_store_that_cannot_keep_its_index_still_searches(model, folder, tmp_path):
    path = tmp_path / "store"
    store = embed_dataset(folder, model, path, patches=True, progress=False)
    (path / "indexes").write_text("a file where the index folder would go")
    query = store.patch_embeddings(store.clips["clip_id"][1 if long_row(folder) != 1 else 2])[3]
    with pytest.warns(RuntimeWarning, match="could not be kept in the store"):
        hits = store.search_patches(query, k=4, method="ivf")
    assert _hits(hits) == _hits(store.search_patches(query, k=4, method="exact"))


def test_read_columns_over_many_shards_keeps_order_first_copies_and_skips_a_damaged_one(tmp_path):
    """Many shards are read in one go; the result is what reading them one by one gives (written plainly here):
    shard order, each clip's first copy, a damaged shard set aside with a warning and the others kept."""
    import pyarrow as pa

    from audiovis.store.shards import _read_at_once, read_columns

    folder = tmp_path / "shards"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        ids = [f"clip{i:02d}-{j}" for j in range(5)] + ([f"clip{i - 1:02d}-0"] if i % 4 == 1 else [])
        pq.write_table(pa.table({"clip_id": ids, "x": rng.standard_normal(len(ids)), "y": np.arange(len(ids))}),
                       folder / f"part-{i:03d}.parquet")

    def one_by_one() -> pd.DataFrame:
        frames = [pd.read_parquet(p, columns=["clip_id", "x"]) for p in sorted(folder.glob("part-*.parquet"))]
        return pd.concat(frames).drop_duplicates("clip_id", keep="first").reset_index(drop=True)

    expected = one_by_one()
    assert len(expected) == 60
    pd.testing.assert_frame_equal(read_columns(tmp_path, ["x"]).to_pandas(), expected)
    at_once = _read_at_once(sorted(folder.glob("part-*.parquet")), ["clip_id", "x"], None)  # the fast path itself
    assert at_once is not None and at_once.num_rows == 63

    damaged = folder / "part-005.parquet"
    damaged.write_bytes(damaged.read_bytes()[:50])
    with pytest.warns(UserWarning, match="part-005.parquet .*cannot be read.*renamed \\*.corrupt"):
        table = read_columns(tmp_path, ["x"])
    assert not damaged.exists() and damaged.with_suffix(".corrupt").exists()
    expected = one_by_one()
    assert len(expected) == 55
    pd.testing.assert_frame_equal(table.to_pandas(), expected)

    # a shard without the column, or with it in another type, is set aside as the shard-by-shard read
    # does: not filled with nulls or cast by a one-call read
    for name, x in (("part-007.parquet", None), ("part-009.parquet", pa.array(np.arange(5), pa.int64()))):
        columns = {"clip_id": [f"odd{name}-{j}" for j in range(5)], "y": np.arange(5)}
        pq.write_table(pa.table(columns if x is None else {**columns, "x": x}), folder / name)
        with pytest.warns(UserWarning, match=f"(?s){name} .*cannot be read.*renamed \\*.corrupt"):
            table = read_columns(tmp_path, ["x"])
        assert not (folder / name).exists()
        pd.testing.assert_frame_equal(table.to_pandas(), one_by_one())


def test_clip_embeddings_follow_the_index_order_whatever_the_shard_order(model, folder, tmp_path):
    """Vectors are aligned with ``store.clips`` by clip id (shards may hold them in another order, e.g. from
    Ray), failed clips NaN in either case."""
    (folder / "fake.wav").write_text("text renamed .wav")
    path = tmp_path / "store"
    store = embed_dataset(folder, model, path, batch_size=2, progress=False)
    before = store.clip_embeddings()
    failed = store.clips["error"].notna().to_numpy()
    assert failed.sum() == 1 and np.isnan(before[failed]).all() and np.isfinite(before[~failed]).all()
    index = pd.read_parquet(path / "clips.parquet").sort_values("position")
    index["position"] = index["position"].to_numpy()[::-1]  # the same clips listed backwards
    index.to_parquet(path / "clips.parquet", index=False)
    reversed_store = open_store(path)
    assert list(reversed_store.clips["clip_id"]) == list(store.clips["clip_id"])[::-1]
    np.testing.assert_array_equal(reversed_store.clip_embeddings(), before[::-1])


def test_clip_embeddings_are_read_once_returned_as_new_arrays_and_read_again_after_refresh(model, folder, tmp_path,
                                                                                          monkeypatch):
    """A second call does not read the shards again, yet changing what one call returned changes nothing
    that a later call returns; after ``refresh()`` clips added by another run are there; vectors above
    the size limit are read on every call."""
    from audiovis.store import store as store_module

    path = tmp_path / "store"
    sources = files_of(folder)
    store = embed_dataset(sources[:2], model, path, progress=False)
    reads = []
    original = store_module.read_columns

    def counted(root, columns):
        if any(c.startswith(("mean_", "cls_")) for c in columns):  # a read of clip vectors
            reads.append(columns)
        return original(root, columns)

    monkeypatch.setattr(store_module, "read_columns", counted)
    first = store.clip_embeddings()
    assert len(reads) == 1
    expected = first.copy()
    first[:] = 0.0
    again = store.clip_embeddings()
    assert len(reads) == 1  # kept
    np.testing.assert_array_equal(again, expected)
    assert store.clip_embeddings(pooling="cls").shape == expected.shape and len(reads) == 2  # its own key
    embed_dataset(sources, model, path, progress=False)  # another run adds the other clips
    assert len(store.clip_embeddings()) == 2  # still what this store object read
    store.refresh()
    grown = store.clip_embeddings()
    assert len(grown) == len(sources) == len(store.clips)
    np.testing.assert_array_equal(grown, open_store(path).clip_embeddings())
    monkeypatch.setattr(store_module, "KEEP_CLIP_VECTORS_BYTES", grown.nbytes - 1)
    store.refresh()
    count = len(reads)
    store.clip_embeddings()
    store.clip_embeddings()
    assert len(reads) == count + 2  # too large to keep


@pytest.mark.parametrize("ids, wanted", [
    (["a", "b", "c"], ["a", "b", "c"]),  # the run's order
    (["c", "a", "b"], ["a", "b", "c", "zz"]),  # another order, one id never stored
    (["a", "b", "a", "c", "b"], ["b", "a", "c", "d"]),  # ids stored twice (a run resumed): the last row
    ([], ["a"]),
])
def test_clip_positions_match_a_plain_dictionary(ids, wanted):
    """The vectorised alignment of stored rows with the clip table equals the dictionary it replaced."""
    from audiovis.store.store import _positions

    last = {cid: i for i, cid in enumerate(ids)}
    expected = [last.get(cid, -1) for cid in wanted]
    got = _positions(ids, wanted)
    assert got.dtype == np.int64 and got.tolist() == expected
