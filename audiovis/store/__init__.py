"""Dataset-scale embeddings: a sharded Parquet store built locally or with Ray, resumable, searchable to the patch.

``embed_dataset`` builds (or resumes) a store; ``open_store`` opens one; ``EmbeddingStore`` reads clips,
clip / window / patch vectors and searches patches. pandas and pyarrow are imported on first use
(``pip install 'audiovis[store]'``); Ray only for ``engine="ray"``.
"""

from __future__ import annotations

from .build import RunSummary, embed_dataset
from .manifest import StoreError
from .store import EmbeddingStore, open_store

__all__ = ["EmbeddingStore", "RunSummary", "StoreError", "embed_dataset", "open_store"]
