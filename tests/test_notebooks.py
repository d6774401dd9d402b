"""Every tutorial notebook runs top to bottom, offline, in a kernel of this venv, without error."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_tutorials():
    names = [p.name for p in NOTEBOOKS]
    for expected in ("01_quickstart.ipynb", "02_spectrograms_and_patches.ipynb",
                     "03_attention_and_embeddings.ipynb", "04_your_own_weights.ipynb",
                     "05_frozen_encoders.ipynb", "06_datasets.ipynb"):
        assert expected in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), "stored with outputs"
    env_root = str(Path(__file__).parent.parent)
    # for the kernel this test starts (it inherits the environment); monkeypatch restores both afterwards
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [env_root, os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nb.cells.insert(0, nbformat.v4.new_code_cell("import sys; print(sys.prefix)"))
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    assert nb.cells[0].outputs[0]["text"].strip() == sys.prefix  # the kernel is this venv's python
