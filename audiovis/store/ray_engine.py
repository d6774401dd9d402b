"""``engine="ray"``: the local engine's stages as Ray Data ``map_batches`` stages on a Ray cluster.

1. read (tasks): hash each source's bytes (or samples), skip clips the store holds, decode the rest;
2. front end (tasks): the model's windows of each clip (``model.windows``), as float32 bytes;
3. model (a callable class per actor, the model loaded once per actor, one actor per cluster CPU): every
   window through :class:`~audiovis.store.compute.WindowEmbedder`, clip rows, and the shard written by
   the actor itself (atomic, named by its clip ids).

Only small rows (position, clip_id, status) come back to the driver, which writes ``clips.parquet``. A
killed worker's task is retried by Ray (tasks and actors are started with retries); a shard written
twice by a retry has the same name or, if batches were cut differently, its clips are read once
(readers keep one row per clip_id); a rerun resumes like the local engine. The model and the in-memory
sources travel once through Ray's object store. Ray is imported only here.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from .runs import RunSummary, index_row
from .compute import Prepared, WindowEmbedder, embed_prepared
from .manifest import Manifest
from .shards import stored_ids, write_shard
from .sources import Item, Loaded, read

#: CPU share of a read or front-end task; model actors take the rest of each CPU.
TASK_CPUS = 0.2
_FETCHED: dict[str, Any] = {}  # per worker process: the model behind an object ref, fetched once


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ImportError(
            "embed_dataset(engine='ray') needs Ray Data: pip install 'audiovis[ray]' (or pip install 'ray[data]')"
        ) from None
    return ray


def connect(progress: bool = True) -> Any:
    """The connected Ray cluster: the one ``ray.init`` joined, else ``RAY_ADDRESS``, else a new local one."""
    ray = _ray()
    if not ray.is_initialized():
        quiet = dict(log_to_driver=False, configure_logging=False)
        address = os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, **quiet)
        else:  # (a cluster started with `ray start`: ray.init(address="auto") first, or set RAY_ADDRESS)
            start_local(ray, **quiet)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = bool(progress)
    ctx.print_on_execution_start = False
    return ray


#: Ray's node agents get this long to start (its default, 30 s, is too short on a busy machine).
SLOW_START = {"agent_register_timeout_ms": 180_000, "raylet_start_wait_time_s": 180}


def start_local(ray: Any, attempts: int = 3, **options: Any) -> None:
    """Start a local Ray cluster, retrying: on a loaded machine a node can miss Ray's fixed start-up wait."""
    for attempt in range(attempts):
        try:
            ray.init(address="local", include_dashboard=False, _system_config=SLOW_START, **options)
            return
        except Exception:  # noqa: BLE001 - Ray raises a bare Exception for a node that timed out
            ray.shutdown()
            if attempt == attempts - 1:
                raise


def _fetch(ref: Any) -> Any:
    """The object behind ``ref``, fetched once per worker process (the model: once per process, not per batch)."""
    import ray

    key = ref.hex()
    if key not in _FETCHED:
        _FETCHED[key] = ray.get(ref)
    return _FETCHED[key]


def _read_stage(batch: dict, *, dataset_ref: Any, values_ref: Any, sample_rate: int | None,
                known_ref: Any) -> dict:
    """Hash and decode: one output row per input row (waveform as float32 bytes)."""
    known = _fetch(known_ref)
    dataset = _fetch(dataset_ref) if dataset_ref is not None else None
    values = _fetch(values_ref) if values_ref is not None else None
    out: dict[str, list] = {k: [] for k in ("position", "clip_id", "status", "error", "labels", "samples",
                                            "rate", "kind")}
    for i, position in enumerate(batch["position"]):
        path = batch["path"][i]
        vindex = int(batch["value_index"][i])
        item = Item(int(position), str(batch["source"][i]), path=Path(path) if path else None,
                    value=values[vindex] if vindex >= 0 else None,
                    dataset_index=int(batch["dataset_index"][i]) if batch["dataset_index"][i] >= 0 else None)
        loaded = read(item, dataset, sample_rate, known)
        out["position"].append(item.position)
        out["clip_id"].append(loaded.clip_id)
        out["labels"].append(json.dumps(item.labels if item.dataset_index is not None else {}, default=str))
        out["error"].append(loaded.error)
        status = "stored" if loaded.stored else ("error" if loaded.error is not None else "read")
        out["status"].append(status)
        sound = loaded.sound
        if sound is not None and hasattr(sound, "waveform"):
            out["samples"].append(sound.waveform.detach().cpu().numpy().astype(np.float32).tobytes())
            out["rate"].append(int(sound.sample_rate))
            out["kind"].append(f"audio:{sound.num_channels}")
        elif sound is not None:  # a Spectrogram: passed as-is (pickled)
            import pickle

            out["samples"].append(pickle.dumps(sound))
            out["rate"].append(0)
            out["kind"].append("spectrogram")
        else:
            out["samples"].append(b"")
            out["rate"].append(0)
            out["kind"].append("")
    return {k: np.array(v, dtype=object) if k not in ("position", "rate") else np.array(v) for k, v in out.items()}


def _sound(row_samples: bytes, rate: int, kind: str, name: str) -> Any:
    import pickle

    import torch

    from ..audio import Audio

    if kind == "spectrogram":
        return pickle.loads(row_samples)
    channels = int(kind.split(":")[1])
    wave = np.frombuffer(row_samples, dtype=np.float32).reshape(channels, -1)
    return Audio(torch.from_numpy(wave.copy()), int(rate), name)


def _frontend_stage(batch: dict, *, model_ref: Any) -> dict:
    """The model's windows of each decoded clip (inputs as float32 bytes, starts as JSON)."""
    model = _fetch(model_ref)
    n = len(batch["position"])
    inputs, starts, durations, errors, status = [], [], [], list(batch["error"]), list(batch["status"])
    for i in range(n):
        if status[i] != "read":
            inputs.append(b"")
            starts.append("[]")
            durations.append(float("nan"))
            continue
        sound = _sound(batch["samples"][i], int(batch["rate"][i]), str(batch["kind"][i]), str(batch["clip_id"][i]))
        loaded = Loaded(Item(int(batch["position"][i]), str(batch["clip_id"][i])), str(batch["clip_id"][i]), sound=sound)
        from .compute import prepare

        prep = prepare(model, loaded)
        durations.append(prep.duration)
        if prep.error is not None:
            errors[i] = prep.error
            status[i] = "error"
            inputs.append(b"")
            starts.append("[]")
        else:
            inputs.append(prep.inputs.astype(np.float32).tobytes())
            starts.append(json.dumps(prep.starts))
    return {"position": batch["position"], "clip_id": batch["clip_id"], "labels": batch["labels"],
            "status": np.array(status, dtype=object), "error": np.array(errors, dtype=object),
            "duration": np.array(durations, dtype=np.float64), "inputs": np.array(inputs, dtype=object),
            "starts": np.array(starts, dtype=object)}


class EmbedActor:
    """Holds the model (fetched once per actor) and writes each batch's clips as one shard."""

    def __init__(self, model_ref: Any, manifest: dict, root: str, batch_size: int, threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        self.model = _fetch(model_ref)
        self.manifest = Manifest(**manifest)
        self.root = Path(root)
        self.embedder = WindowEmbedder(self.model, self.manifest.layers, patches=self.manifest.patches,
                                       predictions=self.manifest.predictions, batch_size=batch_size,
                                       patch_dtype=self.manifest.patch_dtype)

    def __call__(self, batch: dict) -> dict:
        f, t = self.model.input_shape
        prepared = []
        for i in range(len(batch["position"])):
            status = batch["status"][i]
            if status == "stored":
                continue
            loaded = Loaded(Item(int(batch["position"][i]), ""), str(batch["clip_id"][i]))
            if status == "error":
                prepared.append(Prepared(loaded, duration=float(batch["duration"][i]), error=str(batch["error"][i])))
                continue
            inputs = np.frombuffer(batch["inputs"][i], dtype=np.float32).reshape(-1, f, t)
            prepared.append(Prepared(loaded, duration=float(batch["duration"][i]),
                                     starts=json.loads(batch["starts"][i]), inputs=inputs))
        if prepared:
            rows = embed_prepared(self.embedder, prepared)
            unique = list({r["clip_id"]: r for r in rows}.values())
            write_shard(self.root, unique, self.manifest)
        return {"position": batch["position"], "clip_id": batch["clip_id"], "status": batch["status"],
                "labels": batch["labels"]}


def run_ray(items: list[Item], dataset: Any, model: Any, manifest: Manifest, root: Path, *, batch_size: int,
            shard_size: int, sample_rate: int | None, progress: bool, num_workers: int | None) -> RunSummary:
    """Build the missing part of the store at ``root`` with Ray Data; returns the run's summary."""
    import dataclasses

    ray = connect(progress)
    from ..audio import Audio  # noqa: F401 - workers unpickle Audio objects

    start = time.perf_counter()
    known = stored_ids(root)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    workers = num_workers or cpus
    values = [item.value for item in items if item.value is not None]
    value_index, k = [], 0
    for item in items:
        value_index.append(k if item.value is not None else -1)
        k += item.value is not None
    rows = [{"position": item.position, "source": item.source, "path": str(item.path) if item.path else "",
             "dataset_index": -1 if item.dataset_index is None else item.dataset_index,
             "value_index": value_index[i]} for i, item in enumerate(items)]
    model_ref = ray.put(model)
    known_ref = ray.put(frozenset(known))
    dataset_ref = ray.put(dataset) if dataset is not None else None
    values_ref = ray.put(values) if values else None
    # shards: at most shard_size clips, and at least two batches per actor so that every actor works
    per_shard = max(1, min(shard_size, math.ceil(len(items) / (2 * workers))))
    read_batch = max(1, min(per_shard, 16))
    actor_cpus = max(0.1, 1.0 - 2 * TASK_CPUS) if workers >= cpus else 1.0
    tasks = ray.data.TaskPoolStrategy(size=workers)  # a few task workers: each one imports torch once
    ds = (
        ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), 4 * workers)))
        .map_batches(_read_stage, batch_size=read_batch, batch_format="numpy", num_cpus=TASK_CPUS, compute=tasks,
                     fn_kwargs=dict(dataset_ref=dataset_ref, values_ref=values_ref, sample_rate=sample_rate,
                                    known_ref=known_ref))
        .map_batches(_frontend_stage, batch_size=read_batch, batch_format="numpy", num_cpus=TASK_CPUS,
                     compute=tasks, fn_kwargs=dict(model_ref=model_ref))
        # actors restart and their tasks are retried when a worker dies (Ray Data's defaults for actor pools)
        .map_batches(EmbedActor, batch_size=per_shard, batch_format="numpy", num_cpus=actor_cpus,
                     compute=ray.data.ActorPoolStrategy(size=workers),
                     fn_constructor_kwargs=dict(model_ref=model_ref, manifest=dataclasses.asdict(manifest),
                                                root=str(root), batch_size=batch_size,
                                                threads=max(1, int(actor_cpus + 0.5))))
    )
    results = ds.take_all()
    by_position = {int(r["position"]): r for r in results}
    missing = [item.position for item in items if item.position not in by_position]
    if missing:
        raise RuntimeError(f"the Ray run returned no result for {len(missing)} source(s), e.g. position {missing[0]}")
    index = []
    for item in items:
        r = by_position[item.position]
        labels = json.loads(r["labels"]) if r["labels"] else {}
        item.labels = {**labels, **item.labels}
        index.append(index_row(item, Loaded(item, str(r["clip_id"]))))
    from .runs import write_index
    from .shards import read_columns

    table = read_columns(root, ["error"])
    errors = dict(zip(table.column("clip_id").to_pylist(), table.column("error").to_pylist())) if table is not None else {}
    computed = {r["clip_id"] for r in index} - set(known)
    write_index(root, index)
    lost = [cid for cid in computed if cid not in errors]
    if lost:
        raise RuntimeError(f"the Ray run wrote no row for {len(lost)} clip(s), e.g. {lost[0]}; run embed_dataset again "
                           "to compute them")
    failed = sum(errors[cid] is not None for cid in computed)
    done = len(computed) - failed
    return RunSummary(len(items), done, len(items) - done - failed, failed, time.perf_counter() - start, engine="ray")
