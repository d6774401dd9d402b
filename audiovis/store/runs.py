"""What a build run leaves besides shards: ``clips.parquet`` (every source in input order) and its summary line.

Shared by both engines (build.py, ray_engine.py) and read by the store (store.py), so it sits below all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .manifest import write_atomic
from .sources import Item, Loaded

INDEX = "clips.parquet"
NOT_COMPUTED = "not computed yet: the run that built this store stopped before this clip (run embed_dataset again)"


@dataclass
class RunSummary:
    """What one run did: clips computed, found already stored, failed (error rows), and the time it took."""

    total: int
    done: int
    skipped: int
    failed: int
    seconds: float
    engine: str = "local"

    @property
    def clips_per_second(self) -> float:
        computed = self.done + self.failed
        return computed / self.seconds if self.seconds > 0 else float("nan")

    def line(self) -> str:
        return (f"embed_dataset ({self.engine}): {self.total} clips: {self.done} done, {self.skipped} skipped "
                f"(already stored), {self.failed} failed; {self.clips_per_second:.2f} clips/s")


def index_row(item: Item, loaded: Loaded | None) -> dict[str, Any]:
    return {"position": item.position, "clip_id": None if loaded is None else loaded.clip_id,
            "source": item.source, **item.labels}


def write_index(root: Path, rows: list[dict[str, Any]]) -> None:
    """``clips.parquet``: every source in input order (clip_id, source, labels), written atomically."""
    import io

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = pd.DataFrame(rows)
    for column in frame.columns:
        try:
            pa.array(frame[column])
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            frame[column] = frame[column].map(repr)  # mixed label types: kept as their text
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    write_atomic(root / INDEX, buffer.getvalue())
