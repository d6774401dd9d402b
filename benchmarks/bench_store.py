"""Embedding store: build throughput (local fp32 / int8 / Ray on two local nodes), an AudioSet-2M projection,
patch search latency and recall at 1 M and 5 M vectors, and store size per clip.

    .venv/bin/python -m benchmarks.bench_store            # full sizes (minutes; a quiet machine)
    .venv/bin/python -m benchmarks.bench_store --small    # smoke run: tiny sizes, same code paths

Clips/s counts clips computed in one run divided by its wall time (Ray: including its actors' start-up,
which dominates at this size; the steady rate is reported too). The AudioSet projection multiplies the
measured AST-base per-core rate by cores and nodes, assuming linear scaling: a projection, not a
measurement. Search uses clustered synthetic vectors (like patch embeddings, which group by sound type).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import print_rows, row

AUDIOSET_CLIPS = 2_000_000


def _build(model, data, path: Path, **kwargs) -> tuple[float, float]:
    """(clips/s, bytes per clip) of building a fresh store."""
    from audiovis.store import embed_dataset

    shutil.rmtree(path, ignore_errors=True)
    store = embed_dataset(data, model, path, progress=False, **kwargs)
    summary = store.last_run
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return summary.done / summary.seconds, size / max(1, len(store.clips))


def _ray_cluster():
    import ray
    from ray.cluster_utils import Cluster

    from audiovis.store.ray_engine import SLOW_START

    head = {"num_cpus": 1, "include_dashboard": False, "_system_config": SLOW_START}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    return cluster


def build_rows(small: bool, tmp: Path) -> list[dict]:
    import torch

    import audiovis as av
    from audiovis.datasets import SyntheticEvents
    from audiovis.models.ast import ASTConfig, ASTModel

    rows = []
    demo = av.load_demo_model()
    n = 8 if small else 96
    data = SyntheticEvents(n, seed=11)
    fp32, size = _build(demo, data, tmp / "fp32", batch_size=8)
    rows.append(row("store", f"demo model, local fp32, {n} clips", fp32, "clips/s"))
    _, size_patches = _build(demo, data, tmp / "fp32p", batch_size=8, patches=True)
    rows.append(row("store", "store size per clip, demo, last block, no patches", size / 1024, "KiB"))
    rows.append(row("store", "store size per clip, demo, last block, patches (float16)", size_patches / 1024, "KiB"))
    try:
        from audiovis.models.precision import quantize

        q = quantize(demo, "int8")
        int8, _ = _build(q, data, tmp / "int8", batch_size=8)
        rows.append(row("store", f"demo model, local int8 (av.quantize), {n} clips", int8, "clips/s",
                        peer="local fp32", peer_value=fp32))
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        rows.append(row("store", f"demo model, local int8: not measured ({type(exc).__name__}: {exc})"[:120], float("nan"), ""))

    base = ASTModel(ASTConfig()).eval()  # AST-base shapes (1024 frames, 768 wide, 12 blocks), random weights
    nb = 2 if small else 8
    clips = SyntheticEvents(nb, seed=13, duration=10.0)
    rate, size_base = _build(base, clips, tmp / "base", batch_size=4)
    rows.append(row("store", f"AST-base shapes, local fp32, {nb} x 10 s clips", rate, "clips/s"))
    rows.append(row("store", "store size per clip, AST-base, last block, no patches", size_base / 1024, "KiB"))
    from audiovis.models.precision import quantize

    base_int8, _ = _build(quantize(base, "int8"), clips, tmp / "base-int8", batch_size=4)
    rows.append(row("store", f"AST-base shapes, local int8 (av.quantize), {nb} x 10 s clips", base_int8, "clips/s",
                    peer="local fp32", peer_value=rate, ratio=base_int8 / rate))

    try:
        import ray

        cluster = _ray_cluster()
        try:
            start = time.perf_counter()
            on_ray, _ = _build(demo, data, tmp / "ray", batch_size=8, engine="ray")
            wall = time.perf_counter() - start
            rows.append(row("store", f"demo model, Ray 2 local nodes x 1 CPU, {n} clips (incl. start-up)", on_ray,
                            "clips/s", peer="local fp32", peer_value=fp32))
            more = SyntheticEvents(n, seed=12)  # actors are up now: the steady rate
            steady, _ = _build(demo, more, tmp / "ray2", batch_size=8, engine="ray")
            rows.append(row("store", "demo model, Ray 2 local nodes, second run (cluster up; actors start again)", steady, "clips/s",
                            peer="local fp32", peer_value=fp32))
            rows.append(row("store", "Ray overhead at this size (first run wall time)", wall, "s"))
            base_ray, _ = _build(base, clips, tmp / "base-ray", batch_size=4, engine="ray")
            rows.append(row("store", f"AST-base shapes, Ray 2 local nodes x 1 CPU, {nb} x 10 s clips (actors start in the run)",
                            base_ray, "clips/s", peer="local fp32", peer_value=rate, ratio=base_ray / rate))
        finally:
            ray.shutdown()
            cluster.shutdown()
    except ImportError:
        rows.append(row("store", "Ray: not measured (pip install 'audiovis[ray]')", float("nan"), ""))

    threads = torch.get_num_threads()
    per_core = rate / threads
    rows.append(row("store", "AST-base per-core rate (measured / torch threads)", per_core, "clips/s/core"))
    for nodes, cores in ((1, 2), (8, 16), (32, 16)):
        hours = AUDIOSET_CLIPS / (per_core * cores * nodes) / 3600
        rows.append(row("store", f"PROJECTION AudioSet-2M fp32 on {nodes} node(s) x {cores} cores (linear scaling)",
                        hours, "hours"))
    return rows


def search_rows(small: bool) -> list[dict]:
    from audiovis.store.search import PatchIndex, exact_search, normalize

    rows = []
    dim, queries = 192, 100
    sizes = (20_000, 50_000) if small else (1_000_000, 5_000_000)
    rng = np.random.default_rng(0)
    for n in sizes:
        centers = rng.standard_normal((2000, dim)).astype(np.float32)
        vectors = np.empty((n, dim), np.float32)
        for start in range(0, n, 500_000):  # in blocks: no float64 temporaries of 5 M x 192
            stop = min(n, start + 500_000)
            vectors[start:stop] = centers[rng.integers(0, len(centers), stop - start)]
            vectors[start:stop] += 0.35 * rng.standard_normal((stop - start, dim), dtype=np.float32)
        q = centers[rng.integers(0, len(centers), queries)] + 0.35 * rng.standard_normal((queries, dim), dtype=np.float32)
        unit = normalize(vectors)
        del vectors
        start = time.perf_counter()
        index = PatchIndex(unit, method="ivf", copy=False)
        build = time.perf_counter() - start
        times = []
        found = []
        for i in range(queries):
            t = time.perf_counter()
            found.append(index.search(q[i], 10)[1][0])
            times.append(time.perf_counter() - t)
        _, exact = exact_search(unit, normalize(q), 10)
        t = time.perf_counter()
        exact_search(unit, normalize(q[:5]), 10)
        exact_ms = (time.perf_counter() - t) / 5 * 1000
        recall = float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(found, exact)]))
        median = float(np.median(times) * 1000)
        label = f"{n / 1e6:g} M" if n >= 1e6 else f"{n // 1000} k"
        target_ms = "<= 50 ms" if n == 1_000_000 else None
        rows.append(row("store", f"patch search IVF, {label} x {dim} vectors, median per query", median, "ms",
                        peer="exact search", peer_value=exact_ms, target=target_ms,
                        met=(median <= 50) if target_ms else None))
        rows.append(row("store", f"patch search IVF, {label} vectors, recall@10 vs exact", recall, "",
                        target=">= 0.95", met=recall >= 0.95))
        rows.append(row("store", f"patch search IVF, {label} vectors, index build", build, "s"))
        del unit, index
    return rows


def _grown_store(path: Path, num_vectors: int, rng: np.random.Generator) -> "object":
    """A store of the demo model holding about ``num_vectors`` patch vectors: a few real clips, their rows
    repeated under new clip ids with clustered random patch vectors (float16, as stored)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import audiovis as av
    from audiovis.datasets import SyntheticEvents
    from audiovis.store import embed_dataset, open_store
    from audiovis.store.runs import write_index
    from audiovis.store.shards import shard_name

    seed = embed_dataset(SyntheticEvents(4, seed=21), av.load_demo_model(), path, patches=True, progress=False)
    layer, dim = seed.manifest.resolve_layer(-1), seed.manifest.dim
    (shard,) = sorted((path / "shards").glob("part-*.parquet"))
    table = pq.read_table(shard)
    shard.unlink()
    per_clip = len(seed.manifest.patch_bounds)  # 4 s clips: one window each
    centers = rng.standard_normal((2000, dim)).astype(np.float32)
    num_clips, per_shard = max(1, num_vectors // per_clip), 512
    column = table.schema.names.index(f"patches_{layer}")
    ids, index_rows = [], []
    for start in range(0, num_clips, per_shard):
        n = min(per_shard, num_clips - start)
        part = table.take(np.arange(n) % table.num_rows)
        block_ids = [f"synthetic{start + i:08d}" for i in range(n)]
        vectors = centers[rng.integers(0, len(centers), n * per_clip)]
        vectors += 0.35 * rng.standard_normal(vectors.shape, dtype=np.float32)
        inner = pa.FixedSizeListArray.from_arrays(pa.array(vectors.astype(np.float16).ravel()), dim)
        patches = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * per_clip), inner)
        part = part.set_column(0, "clip_id", pa.array(block_ids)).set_column(column, f"patches_{layer}", patches)
        pq.write_table(part, path / "shards" / shard_name(block_ids))
        ids += block_ids
    write_index(path, [{"position": i, "clip_id": cid, "source": f"clip{i}.wav"} for i, cid in enumerate(ids)])
    return open_store(path)


def kept_index_rows(small: bool, tmp: Path) -> list[dict]:
    """The first search of a session over a large store: the IVF index built, then read back from the store."""
    from audiovis.store import open_store

    target = 50_000 if small else 1_000_000
    rng = np.random.default_rng(1)
    store = _grown_store(tmp / "grown", target, rng)
    query = store.patch_embeddings(store.clips["clip_id"][3])[7]
    vectors = len(store.clips) * len(store.manifest.patch_bounds)
    t = time.perf_counter()
    built = open_store(store.path).search_patches(query, k=10, method="ivf")
    t_build = time.perf_counter() - t
    t = time.perf_counter()
    kept = open_store(store.path).search_patches(query, k=10, method="ivf")
    t_kept = time.perf_counter() - t
    assert built.equals(kept), "the kept index answered differently"
    label = f"{vectors / 1e6:.2g} M" if vectors >= 1e6 else f"{vectors // 1000} k"
    return [row("store", f"first search_patches after open_store, {label} patch vectors, index kept in the store",
                t_kept * 1000, "ms", peer="index built in that call", peer_value=t_build * 1000,
                ratio=t_build / t_kept)]


def run(small: bool = False) -> list[dict]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-store-"))
    try:
        return build_rows(small, tmp) + kept_index_rows(small, tmp) + search_rows(small)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    print_rows(run(small="--small" in sys.argv))
