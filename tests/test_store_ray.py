"""embed_dataset(engine="ray") on a real two-node Ray cluster (one CPU each), against the local engine.

One cluster for the whole session (starting Ray takes seconds). These tests are marked ``ray``; they run
everywhere, CI included (Ray is in the ``all`` extra); only a missing Ray skips them, and in CI that fails.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audiovis.datasets import SyntheticEvents
from audiovis.store import embed_dataset
from audiovis.store.shards import read_columns

from .ci import skip_or_fail
from .frozen_models import SR, tiny_ast, tone

pytestmark = pytest.mark.ray


def _retry(start, attempts: int = 3):
    for attempt in range(attempts):
        try:
            return start()
        except Exception:  # noqa: BLE001 - Ray raises a bare Exception when a node misses its start-up wait
            if attempt == attempts - 1:
                raise


@pytest.fixture(scope="session")
def ray_cluster():
    try:
        import ray
        from ray.cluster_utils import Cluster
    except ImportError:
        skip_or_fail("ray is not installed (pip install 'audiovis[ray]')")
    from audiovis.store.ray_engine import SLOW_START

    # a loaded machine can take longer than Ray's fixed start-up waits: retry a node that missed them
    head = {"num_cpus": 1, "include_dashboard": False, "_system_config": SLOW_START}
    cluster = _retry(lambda: Cluster(initialize_head=True, head_node_args=head))
    _retry(lambda: cluster.add_node(num_cpus=1))
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def model():
    return tiny_ast(seed=1)


def test_ray_store_equals_the_local_store(ray_cluster, model, tmp_path):
    import ray

    assert len([n for n in ray.nodes() if n["Alive"]]) == 2 and ray.cluster_resources()["CPU"] == 2
    folder = tmp_path / "clips"
    folder.mkdir()
    for i, f in enumerate((300.0, 900.0, 2000.0)):
        sf.write(folder / f"t{i}.wav", tone(f, seconds=5.0 if i == 0 else 2.0, noise=0.01, seed=i), SR)
    (folder / "broken.wav").write_text("no sound here")
    frame = pd.DataFrame({"source": sorted(str(p) for p in folder.iterdir()), "tag": list("abcd")})
    stores = {engine: embed_dataset(frame, model, tmp_path / engine, patches=True, layers=[0, -1], batch_size=2,
                                    engine=engine, progress=False) for engine in ("local", "ray")}
    local, remote = stores["local"], stores["ray"]
    cols = ["clip_id", "source", "tag", "error", "num_windows", "duration"]
    pd.testing.assert_frame_equal(remote.clips[cols], local.clips[cols])
    assert remote.clips["error"].notna().sum() == 1 and "broken.wav" in remote.clips["error"].dropna().iloc[0]
    for layer in (0, -1):
        np.testing.assert_allclose(remote.clip_embeddings(layer), local.clip_embeddings(layer), atol=1e-5, equal_nan=True)
    for cid, n in zip(local.clips["clip_id"], local.clips["num_windows"]):
        for w in range(n):
            window = w if n > 1 else None
            np.testing.assert_allclose(remote.patch_embeddings(cid, window=window).astype(np.float32),
                                       local.patch_embeddings(cid, window=window).astype(np.float32), atol=2e-3)
    assert remote.last_run.engine == "ray" and (remote.last_run.done, remote.last_run.failed) == (3, 1)

    again = embed_dataset(frame, model, tmp_path / "ray", patches=True, layers=[0, -1], batch_size=2, engine="ray",
                          progress=False)
    assert (again.last_run.done, again.last_run.skipped) == (0, 4)  # a rerun on Ray resumes too


def _embed_workers() -> list:
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "EmbedActor" in cmd and proc.pid != os.getpid():
            found.append(proc.pid)
    return found


def test_killed_worker_loses_and_duplicates_nothing(ray_cluster, tmp_path):
    slow = tiny_ast(seed=1)
    slow.patch_embed.register_forward_pre_hook(lambda *args: time.sleep(0.5))
    data = SyntheticEvents(12, seed=9, duration=2.0)
    path = tmp_path / "store"
    killed: list[int] = []

    def kill_one_when_a_shard_exists() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not killed:
            if list((path / "shards").glob("part-*.parquet")):
                workers = _embed_workers()
                if workers:
                    os.kill(workers[0], signal.SIGKILL)  # a Ray worker process this test's run started
                    killed.append(workers[0])
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_when_a_shard_exists, daemon=True)
    killer.start()
    try:
        store = embed_dataset(data, slow, path, batch_size=2, shard_size=3, engine="ray", progress=False)
    except Exception:  # noqa: BLE001 - Ray may give up on the killed task: a rerun must then resume
        store = embed_dataset(data, slow, path, batch_size=2, shard_size=3, engine="ray", progress=False)
    killer.join(timeout=5)
    assert killed, "no model worker was found to kill"
    ids = list(store.clips["clip_id"])
    assert len(ids) == len(set(ids)) == 12 and store.clips["error"].isna().all() and store.complete
    stored = read_columns(path, ["clip_id"]).column("clip_id").to_pylist()
    assert sorted(stored) == sorted(ids)  # every clip once in what a reader sees
    reference = embed_dataset(data, tiny_ast(seed=1), tmp_path / "local", progress=False)
    np.testing.assert_allclose(store.clip_embeddings(), reference.clip_embeddings(), atol=1e-5)
    assert list(store.clips["labels"].map(list)) == list(reference.clips["labels"].map(list))


def test_without_ray_a_clear_error_and_no_import(tmp_path):
    """engine="local" never imports Ray; engine="ray" without Ray says how to install it."""
    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent.parent)!r})
sys.modules["ray"] = None  # as if Ray were not installed
from audiovis.store import embed_dataset
from tests.frozen_models import tiny_ast, tone
m = tiny_ast(seed=1)
embed_dataset([tone(300.0)], m, {str(tmp_path / 'a')!r}, sample_rate=16000, progress=False)
assert "ray" not in {{k.split(".")[0] for k in sys.modules if sys.modules[k] is not None}}
try:
    embed_dataset([tone(300.0)], m, {str(tmp_path / 'b')!r}, sample_rate=16000, engine="ray", progress=False)
except ImportError as exc:
    print("ERROR:", exc)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    assert "ERROR: embed_dataset(engine='ray') needs Ray Data: pip install 'audiovis[ray]'" in out.stdout
