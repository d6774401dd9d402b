"""The demo training entry point: a tiny run learns, is reproducible, and writes a loadable model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from audiovis.datasets import CLASSES, SyntheticEvents
from audiovis.demo import WEIGHTS_DIR
from audiovis.demo.features import compute_features
from audiovis.demo.train import TrainOptions, _schedule, train


def _tiny(**changes) -> TrainOptions:
    options = TrainOptions(
        out=None, train_clips=48, epochs=4, batch_size=16, max_steps=12, threads=1, hidden_size=32,
        num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, progress=False,
    )
    for key, value in changes.items():
        setattr(options, key, value)
    return options


@pytest.fixture(scope="module")
def tiny_features():
    return compute_features(SyntheticEvents(48, seed=0), num_mel_bins=128, max_length=400)


def test_cli_tiny_run_writes_a_model_and_the_loss_decreases(tmp_path):
    from audiovis.models.ast import ASTModel

    out = tmp_path / "tiny"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "audiovis.demo.train", "--tiny", "--threads", "1", "--no-progress", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert run.returncode == 0, run.stderr
    log = json.loads((out / "train_log.json").read_text())
    losses = log["losses"]
    assert log["steps"] == len(losses) == 30
    assert np.mean(losses[-10:]) < 0.9 * np.mean(losses[:10]), losses
    model = ASTModel.from_pretrained(out)
    assert model.labels == list(CLASSES) and model.config.max_length == 400
    assert all(p.dtype == torch.float32 for p in model.parameters())
    x = model.frontend(SyntheticEvents(1, seed=3)[0].audio).values[None]
    assert model(x).shape == (1, len(CLASSES))


@pytest.mark.parametrize("threads", [1, 2])
def test_training_is_reproducible_from_its_seed(tiny_features, threads):
    a = train(_tiny(max_steps=6, threads=threads), features=tiny_features)
    b = train(_tiny(max_steps=6, threads=threads), features=tiny_features)
    assert a.losses == b.losses
    for (name, pa), (_, pb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(pa, pb), name
    c = train(_tiny(max_steps=6, seed=1, threads=threads), features=tiny_features)
    assert c.losses != a.losses


def test_features_are_what_the_model_front_end_gives(tiny_features):
    """Cached raw fbank + batch normalisation equals the trained model's own KaldiFbank on the clip."""
    result = train(_tiny(max_steps=1), features=tiny_features)
    config = result.model.config
    mean, std = tiny_features.statistics()
    assert (config.fbank_mean, config.fbank_std) == (mean, std)
    x, y = tiny_features.batch(torch.tensor([0, 5]), mean, std)
    ds = SyntheticEvents(48, seed=0)
    for row, i in enumerate((0, 5)):
        expected = result.model.frontend(ds[i].audio).values
        assert x[row].shape == expected.shape == (128, 400)
        assert torch.max(torch.abs(x[row] - expected)) <= 2e-3  # float16 storage of the raw fbank
        assert torch.equal(y[row], ds[i].labels)


def test_statistics_exclude_padding(tiny_features):
    valid = int(tiny_features.valid_frames[0])
    assert valid == 398 and tiny_features.features.shape[-1] == 400
    assert torch.all(tiny_features.features[:, :, valid:] == 0)
    signal = torch.cat([f[:, :n].double().flatten() for f, n in zip(tiny_features.features, tiny_features.valid_frames)])
    mean, std = tiny_features.statistics()
    assert mean == pytest.approx(float(signal.mean()), abs=1e-9)
    assert std == pytest.approx(float(signal.std(unbiased=False)), rel=1e-9)


def test_learning_rate_schedule_warms_up_then_decays():
    factors = [_schedule(s, 100, 10) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:]))
    assert factors[-1] < 0.01


def test_cli_refuses_to_overwrite_shipped_weights_with_a_small_run():
    from audiovis.demo.train import main

    with pytest.raises(SystemExit, match="refusing"):
        main(["--clips", "10", "--out", str(WEIGHTS_DIR)])
