"""LinearProbe, its metrics and folds, and probe_layers on labelled synthetic sound."""

from __future__ import annotations

import numpy as np
import pytest

import audiovis as av
from audiovis.probe import LinearProbe, ProbeTable, chance_map, kfold_indices

from .frozen_models import SR, tiny_ast, tone


def ap_by_definition(y: np.ndarray, s: np.ndarray) -> float:
    """Mean over positives of the precision among everything scored at least as high (no ties)."""
    order = np.argsort(-s)
    hits = y[order].astype(bool)
    ranks = np.flatnonzero(hits) + 1
    return float(np.mean(np.arange(1, ranks.size + 1) / ranks))


def random_score_map(truth: np.ndarray, folds: int, seed: int = 0, draws: int = 2000) -> float:
    """Chance mAP from the labels alone: random scores on held-out parts the size of one fold (the probe's mAP
    is a mean over folds), AP by :func:`ap_by_definition`, averaged over ``draws`` random parts."""
    rng = np.random.default_rng(seed)
    n = truth.shape[0]
    maps = []
    for _ in range(draws):
        y = truth[rng.choice(n, n // folds, replace=False)]
        s = rng.random(y.shape)
        maps.append(np.mean([ap_by_definition(y[:, c], s[:, c]) for c in range(y.shape[1]) if y[:, c].any()]))
    return float(np.mean(maps))


def test_folds_are_a_stratified_partition():
    labels = np.repeat(np.arange(4), [10, 10, 10, 5])
    folds = kfold_indices(labels, labels.size, 5, seed=3)
    together = np.concatenate(folds)
    assert sorted(together.tolist()) == list(range(labels.size))
    for fold in folds:
        assert np.bincount(labels[fold], minlength=4).tolist() == [2, 2, 2, 1]
    assert [f.tolist() for f in kfold_indices(labels, labels.size, 5, seed=3)] == [f.tolist() for f in folds]


def blobs(n_per_class: int = 30, classes: int = 3, dim: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (classes, dim))
    y = np.repeat(np.arange(classes), n_per_class)
    return (centres[y] + rng.normal(0, 1, (y.size, dim))).astype(np.float32), y


def test_multiclass_probe_learns_and_shuffled_labels_stay_at_chance():
    X, y = blobs()
    scores = LinearProbe(seed=0).cross_validate(X, y, folds=5)
    assert scores.task == "multiclass" and scores.folds == 5
    assert scores.accuracy >= 0.95 and scores.mAP >= 0.95
    assert scores.chance_accuracy == pytest.approx(1 / 3) and scores.chance_mAP == pytest.approx(1 / 3)
    shuffled = LinearProbe(seed=0).cross_validate(X, np.random.default_rng(1).permutation(y), folds=5)
    assert shuffled.accuracy < 0.6


def test_multilabel_probe():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(120, 6)).astype(np.float32)
    y = (X[:, :3] + 0.3 * rng.normal(size=(120, 3)) > 0.5).astype(np.int64)
    scores = LinearProbe().cross_validate(X, y, folds=4)
    assert scores.task == "multilabel"
    assert scores.mAP >= 0.9 and scores.chance_mAP == pytest.approx(chance_map(y, "multilabel"))
    assert scores.chance_mAP < 0.45
    probe = LinearProbe().fit(X, y)
    assert probe.predict(X).shape == (120, 3) and set(np.unique(probe.predict(X))) <= {0, 1}
    assert probe.score(X, y)["accuracy"] >= 0.7


def test_hidden_layer_solves_what_a_linear_head_cannot():
    rng = np.random.default_rng(4)
    X = rng.uniform(-1, 1, (300, 2)).astype(np.float32)
    y = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(np.int64)  # XOR: not linearly separable
    linear = LinearProbe().cross_validate(X, y, folds=3)
    hidden = LinearProbe(hidden=32, epochs=500).cross_validate(X, y, folds=3)
    assert linear.accuracy < 0.7 < 0.9 < hidden.accuracy


def test_probe_is_reproducible_from_its_seed():
    X, y = blobs(seed=5)
    a = LinearProbe(hidden=8, seed=3).fit(X, y).predict_proba(X)
    b = LinearProbe(hidden=8, seed=3).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_probe_errors():
    X, y = blobs()
    with pytest.raises(RuntimeError, match="not fitted"):
        LinearProbe().predict(X)
    with pytest.raises(ValueError, match="30 labels|90 feature rows"):
        LinearProbe().fit(X, y[:30])
    with pytest.raises(ValueError, match="NaN"):
        LinearProbe().fit(np.full_like(X, np.nan), y)
    with pytest.raises(ValueError, match="multi-class labels"):
        LinearProbe(task="multiclass").fit(X, y.astype(float) + 0.5)
    with pytest.raises(ValueError, match="multi-hot"):
        LinearProbe().fit(X, np.full((90, 2), 3))
    with pytest.raises(ValueError, match="folds"):
        LinearProbe().cross_validate(X, y, folds=1)
    with pytest.raises(ValueError, match="hidden"):
        LinearProbe(hidden=0)
    with pytest.raises(ValueError, match="features must be \\[samples, 8\\]"):
        LinearProbe().fit(X, y).predict(X[:, :4])


FREQS = [400.0, 900.0, 2000.0, 4500.0]


@pytest.fixture(scope="module")
def tones():
    """A random tiny AST and its input spectrograms of 32 noisy tones, 8 per class, each a few percent off its class frequency."""
    model = tiny_ast(seed=2)
    rng = np.random.default_rng(8)
    specs, labels = [], []
    for i in range(32):
        c = i % 4
        freq = FREQS[c] * (1 + rng.uniform(-0.05, 0.05))
        wave = tone(freq, noise=rng.uniform(0.005, 0.05), seed=i, amp=rng.uniform(0.1, 0.5))
        specs.append(model.spectrogram(av.load_audio(wave, SR)))
        labels.append(c)
    return model, specs, np.array(labels)


def test_probe_layers_on_tones_is_far_above_chance(tones, tmp_path):
    model, specs, labels = tones
    table = av.probe_layers(model, specs, labels=labels, folds=4, cache_dir=tmp_path, progress=False)
    assert isinstance(table, ProbeTable) and table.metric == "accuracy"
    assert table.column("layer").tolist() == [0, 1, 2]
    for row in table.rows:
        assert row["chance_accuracy"] == pytest.approx(0.25)
        assert row["accuracy"] >= 0.85, row
    shuffled = np.random.default_rng(0).permutation(labels)
    control = av.probe_layers(model, specs, labels=shuffled, layers=[-1], folds=4, cache_dir=tmp_path, progress=False)
    assert control.rows[0]["accuracy"] < 0.55
    assert table.best["accuracy"] == table.column("accuracy").max()
    text = table.to_markdown()
    assert text.splitlines()[0].startswith("| layer |") and len(text.splitlines()) == 5
    from bokeh.plotting import figure

    assert isinstance(table.plot(), figure)


def test_probe_layers_reads_dataset_labels():
    from audiovis.datasets import SyntheticEvents

    data = SyntheticEvents(12, seed=4)
    model = tiny_ast(seed=2, num_mel_bins=128, max_length=400)
    table = av.probe_layers(model, data, layers=[0], folds=3, epochs=20, progress=False)
    assert table.metric == "mAP" and table.rows[0]["task"] == "multilabel"
    truth = np.stack([data[i].labels.numpy() for i in range(12)])
    assert table.rows[0]["chance_mAP"] == pytest.approx(chance_map(truth.astype(np.int64), "multilabel"))
    positive_rates = truth.mean(axis=0)
    assert table.rows[0]["chance_mAP"] == pytest.approx(positive_rates[positive_rates > 0].mean(), abs=1e-12)
    # the mAP is the one the same probe gets from the labels read here, and not from these labels shuffled
    # (a random 3-block model's features are near chance on these clips, so this checks the labels, not skill)
    given = av.probe_layers(model, data, labels=truth, layers=[0], folds=3, epochs=20, progress=False).rows[0]
    assert 0.0 < table.rows[0]["mAP"] <= 1.0
    assert table.rows[0]["mAP"] == pytest.approx(given["mAP"], abs=1e-9)
    shuffled = truth[np.random.default_rng(1).permutation(12)]
    other = av.probe_layers(model, data, labels=shuffled, layers=[0], folds=3, epochs=20, progress=False).rows[0]
    assert abs(other["mAP"] - table.rows[0]["mAP"]) > 1e-3
    with pytest.raises(ValueError, match="pooling"):
        av.probe_layers(model, data, pooling="patches")


def test_probe_on_demo_model_features_of_synthetic_events_is_far_above_chance():
    """The shipped demo model's last-layer features of held-out SyntheticEvents clips carry the event classes."""
    from audiovis.datasets import SyntheticEvents
    from audiovis.demo import EVAL_SEED, load_demo_model

    model = load_demo_model()
    data = SyntheticEvents(48, seed=EVAL_SEED, duration=model.window_seconds, classes=list(model.labels))
    row = av.probe_layers(model, data, layers=[-1], folds=4, progress=False).rows[0]
    assert row["task"] == "multilabel"
    truth = np.stack([data[i].labels.numpy() for i in range(len(data))])
    positive_rates = truth.mean(axis=0)
    assert row["chance_mAP"] == pytest.approx(positive_rates[positive_rates > 0].mean(), abs=1e-12)
    # chance from random scores on fold-sized parts is above the positive rate on 12-clip folds: beat that
    chance = random_score_map(truth, folds=4)
    assert chance >= row["chance_mAP"]
    assert row["mAP"] >= 0.75 and row["mAP"] - chance >= 0.4, (row, chance)


@pytest.mark.parametrize("task, hidden, samples", [("multiclass", None, 300), ("multiclass", 16, 2500),
                                                    ("multilabel", None, 2500), ("multilabel", 8, 300)])
def test_training_equals_a_plain_reference(task, hidden, samples):
    """The probe trains on class-major logits (and on every thread from THREADED_SAMPLES up); a plain loop written
    here, [samples, classes] logits through the usual losses, full-batch AdamW from the same initial weights,
    must end at the same weights and probabilities."""
    import torch
    from torch import nn

    rng = np.random.default_rng(7)
    X = rng.standard_normal((samples, 24)).astype(np.float32) * rng.uniform(0.5, 3, 24).astype(np.float32) + 2
    if task == "multiclass":
        y = np.argmax(X[:, :5] + rng.standard_normal((samples, 5)), axis=1)
    else:
        y = (X[:, :4] + rng.standard_normal((samples, 4)) > 2).astype(np.int64)
    probe = LinearProbe(hidden=hidden, task=task, epochs=40, seed=4).fit(X, y)

    torch.manual_seed(4)
    classes = 5 if task == "multiclass" else 4
    head = nn.Linear(24, classes) if hidden is None else nn.Sequential(nn.Linear(24, hidden), nn.ReLU(),
                                                                        nn.Linear(hidden, classes))
    mean, std = X.mean(axis=0), X.std(axis=0) + 1e-6
    xs = torch.from_numpy((X - mean) / std)
    loss_fn = nn.CrossEntropyLoss() if task == "multiclass" else nn.BCEWithLogitsLoss()
    target = torch.from_numpy(y if task == "multiclass" else y.astype(np.float32))
    opt = torch.optim.AdamW(head.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(40):
        opt.zero_grad()
        loss_fn(head(xs), target).backward()
        opt.step()
    for got, want in zip(probe.head_.parameters(), head.parameters()):
        np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        logits = head(xs)
    want = (logits.softmax(-1) if task == "multiclass" else logits.sigmoid()).numpy()
    np.testing.assert_allclose(probe.predict_proba(X), want, rtol=1e-4, atol=1e-5)
