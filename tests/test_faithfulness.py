"""Deletion / insertion faithfulness: a model whose output depends only on known patches, masking of
overlapping footprints against a per-patch loop, consistency with the analysis, and bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import audiovis as av
from audiovis.explain import faithfulness as F

# 32 bins x 100 frames, 16 x 16 patches every 10: a 2 x 9 grid of overlapping patches
CONFIG = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
              num_mel_bins=32, max_length=100, num_labels=3, labels=["known", "b", "c"])
KNOWN = {3: 3.0, 11: 2.0, 16: 1.0}  # patch -> weight of its evidence
SCALE, BIAS = 2.0, 3.0


def exclusive_mask(grid: av.PatchGrid, patch: int) -> np.ndarray:
    """Pixels of ``patch``'s footprint that no other patch covers."""
    count = np.zeros(grid.input_shape, dtype=int)
    for p in range(grid.num_patches):
        b = grid.bounds(p)
        count[b.freq_start:b.freq_end, b.time_start:b.time_end] += 1
    own = np.zeros(grid.input_shape, dtype=bool)
    b = grid.bounds(patch)
    own[b.freq_start:b.freq_end, b.time_start:b.time_end] = True
    return own & (count == 1)


class KnownPatchesModel(av.ASTModel):
    """Class 0's logit is ``SCALE * sum_k w_k * mean(x over patch k's own pixels) - BIAS``, for the KNOWN
    patches k only; the other classes are constant. So only the KNOWN patches matter, in weight order."""

    def setup(self) -> None:
        masks = [torch.from_numpy(exclusive_mask(self.grid, p)).float() for p in KNOWN]
        self.register_buffer("known_masks", torch.stack([m / m.sum() for m in masks]))
        self.register_buffer("known_weights", torch.tensor(list(KNOWN.values())))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        means = torch.einsum("bft,kft->bk", x.reshape(x.shape[0], *self.input_shape), self.known_masks)
        logit = SCALE * (means * self.known_weights).sum(dim=1) - BIAS
        return torch.stack([logit, torch.zeros_like(logit), torch.ones_like(logit)], dim=1)


@pytest.fixture(scope="module")
def known():
    torch.manual_seed(0)
    model = KnownPatchesModel(av.ASTConfig(**CONFIG)).eval()
    model.setup()
    grid = model.grid
    assert grid.grid_shape == (2, 9)
    for p in KNOWN:
        assert exclusive_mask(grid, p).sum() > 0
    silence = av.load_audio(np.zeros(16000, dtype=np.float32), 16000)
    spec = dataclasses.replace(model.spectrogram(silence), values=torch.ones(grid.input_shape))
    return model, model.analyze(spec)


def ideal_deletion(counts):
    """The class-0 probability after removing the first ``count`` patches of an order that puts the known
    patches first (heaviest first): written from the model's definition, not from the masking code."""
    weights = sorted(KNOWN.values(), reverse=True)
    out = []
    for c in counts:
        remaining = sum(weights[min(c, len(weights)):])
        out.append(1 / (1 + np.exp(-(SCALE * remaining - BIAS))))
    return np.array(out)


def ideal_insertion(counts):
    weights = sorted(KNOWN.values(), reverse=True)
    return np.array([1 / (1 + np.exp(-(SCALE * sum(weights[:min(c, len(weights))]) - BIAS))) for c in counts])


def test_ideal_map_gives_the_ideal_curves_and_random_does_not(known):
    model, res = known
    scores = np.zeros(res.num_patches)
    for p, w in KNOWN.items():
        scores[p] = w
    f = res.faithfulness(scores, class_index="known", steps=18, baseline="zero")
    counts = F.step_counts(res.num_patches, 18)
    np.testing.assert_array_equal(counts, np.arange(19))
    np.testing.assert_allclose(f.deletion, ideal_deletion(counts), atol=1e-6)
    np.testing.assert_allclose(f.insertion, ideal_insertion(counts), atol=1e-6)
    # random orders remove the known patches later on average: their curves are far from ideal
    assert f.random_deletion_auc > f.deletion_auc + 0.2
    assert f.random_insertion_auc < f.insertion_auc - 0.2
    assert np.abs(f.random_deletion - f.deletion).max() > 0.3
    # the reversed map is the worst order: the known patches go last
    worst = res.faithfulness(-scores, class_index=0, steps=18, baseline="zero")
    assert worst.deletion_auc > f.random_deletion_auc > f.deletion_auc
    assert worst.insertion_auc < f.random_insertion_auc < f.insertion_auc
    assert f.method == "custom" and f.label == "known" and f.fractions[-1] == 1.0
    assert f.to_dict()["deletion_auc"] == pytest.approx(F.auc(f.fractions, f.deletion))


def test_random_curves_are_seeded_and_cached(known):
    _, res = known
    scores = np.arange(res.num_patches, dtype=float)
    a = res.faithfulness(scores, class_index=0, steps=6, baseline="zero", seed=1)
    b = res.faithfulness(-scores, class_index=0, steps=6, baseline="zero", seed=1)
    c = res.faithfulness(scores, class_index=0, steps=6, baseline="zero", seed=2)
    np.testing.assert_array_equal(a.random_deletion, b.random_deletion)
    assert not np.array_equal(a.random_deletion, c.random_deletion)
    # the cached random curves equal a fresh computation
    fresh = F.faithfulness(res._forward_logits, res.spectrogram.values, res.grid, scores, class_index=0,
                           multi_label=True, steps=6, baseline="zero", seed=1)
    np.testing.assert_allclose(fresh.random_deletion, a.random_deletion, atol=1e-7)


def reference_masks(grid, order, count, x, baseline, mode):
    """Per-patch loop: deletion sets each of the first ``count`` footprints to the baseline; insertion
    starts from the baseline on every covered pixel and copies those footprints back."""
    out = x.clone()
    if mode == "insertion":
        for p in range(grid.num_patches):
            b = grid.bounds(p)
            out[b.freq_start:b.freq_end, b.time_start:b.time_end] = baseline
    for p in order[:count]:
        b = grid.bounds(int(p))
        region = (slice(b.freq_start, b.freq_end), slice(b.time_start, b.time_end))
        out[region] = baseline if mode == "deletion" else x[region]
    return out


@pytest.mark.parametrize("stride", [(10, 10), (16, 16), (8, 12)])
def test_masking_matches_a_per_patch_loop(stride):
    grid = av.PatchGrid(input_shape=(40, 70), patch_size=(16, 16), stride=stride)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal(grid.input_shape).astype(np.float32))
    order = rng.permutation(grid.num_patches)
    ranks = torch.from_numpy(F.pixel_ranks(order, grid))
    counts = np.array([1, 2, grid.num_patches // 2, grid.num_patches - 1])
    for mode in ("deletion", "insertion"):
        got = F.masked_inputs(x, ranks, counts, -7.0, mode, grid.num_patches)
        for i, c in enumerate(counts):
            torch.testing.assert_close(got[i], reference_masks(grid, order, int(c), x, -7.0, mode), rtol=0, atol=0)


@pytest.mark.parametrize("batch_size", [1, 3, 7, 40])
def test_order_logits_batches_lazily_and_equal_every_input_run_at_once(batch_size, monkeypatch):
    grid = av.PatchGrid(input_shape=(40, 70), patch_size=(16, 16), stride=(10, 10))
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.standard_normal(grid.input_shape).astype(np.float32))
    orders = [rng.permutation(grid.num_patches) for _ in range(3)]
    counts = F.step_counts(grid.num_patches, 8)
    inner = F.inner_counts(counts, grid.num_patches)
    weights = torch.from_numpy(rng.standard_normal((int(np.prod(grid.input_shape)), 5)).astype(np.float32))

    def logits(batch):
        return batch.reshape(len(batch), -1) @ weights

    # reference: every input built first, in the documented order, and run in one pass
    covered = torch.from_numpy(F.pixel_ranks(np.arange(grid.num_patches), grid) < grid.num_patches)
    every = [x[None], torch.where(covered, torch.full_like(x, 0.5), x)[None]]
    for order in orders:
        ranks = torch.from_numpy(F.pixel_ranks(order, grid))
        every += [F.masked_inputs(x, ranks, inner, 0.5, mode, grid.num_patches) for mode in ("deletion", "insertion")]
    expected = logits(torch.cat(every))

    made, sizes = [], []
    real = F.masked_inputs
    monkeypatch.setattr(F, "masked_inputs", lambda *a: made.append(len(a[2])) or real(*a))

    def forward(batch):
        sizes.append(len(batch))
        assert sum(made) < sum(sizes) + batch_size  # inputs made only as the batches need them
        return logits(batch)

    ends, middle = F.order_logits(forward, x, grid, orders, counts, baseline=0.5, batch_size=batch_size)
    assert sizes[:-1] == [batch_size] * (len(sizes) - 1) and 0 < sizes[-1] <= batch_size
    assert sum(sizes) == len(expected)
    sizes.clear()
    made.clear()
    alone = F.order_logits(forward, x, grid, orders, np.array([0, grid.num_patches]), baseline=0.5,
                           batch_size=batch_size)  # no inner step: the two shared inputs only
    assert max(sizes) <= batch_size and sum(sizes) == 2 and alone[1].shape == (3, 2, 0, 5)
    torch.testing.assert_close(alone[0], expected[:2], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(ends, expected[:2], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(middle.reshape(-1, 5), expected[2:], rtol=1e-5, atol=1e-4)


def test_curves_start_at_the_analysis_probability_pruned_or_not():
    torch.manual_seed(1)
    model = av.ASTModel(av.ASTConfig(**{**CONFIG, "labels": ["a", "b", "c"]})).eval()
    rng = np.random.default_rng(0)
    audio = av.load_audio(rng.standard_normal(16000).astype(np.float32) * 0.1, 16000)
    for res in (model.analyze(audio), model.analyze(audio, keep_ratio=0.5)):
        f = res.faithfulness("rollout", steps=4)
        c = int(np.argmax(res.probabilities))
        assert f.class_index == c
        assert f.deletion[0] == pytest.approx(float(res.probabilities[c]), abs=1e-5)
        assert f.insertion[-1] == pytest.approx(float(res.probabilities[c]), abs=1e-5)
        assert f.deletion[-1] == pytest.approx(f.insertion[0], abs=1e-7)
        assert len(f.deletion) == 5 and 0 <= f.deletion_auc <= 1


def counted(res) -> list[int]:
    """The batch sizes of every forward pass ``res`` makes from now on (until ``_forward_logits`` is deleted
    from its ``__dict__``)."""
    calls = []
    original = res._forward_logits

    def counting(x):
        calls.append(x.shape[0])
        return original(x)

    res.__dict__["_forward_logits"] = counting
    return calls


def test_a_call_runs_about_two_passes_per_step(known):
    model, res = known
    calls = counted(res)
    try:
        res.faithfulness("rollout", class_index=0, steps=10, baseline="zero")  # random orders computed once
        calls.clear()
        res.faithfulness("attention", class_index=0, steps=10, baseline="zero")
    finally:
        del res.__dict__["_forward_logits"]
    assert sum(calls) == 2 + 2 * 9  # original, all removed, 9 inner steps per curve
    assert len(calls) <= 2


def test_bad_input_is_named(known):
    _, res = known
    with pytest.raises(ValueError, match="one value per patch \\(18\\)"):
        res.faithfulness(np.zeros(17))
    with pytest.raises(ValueError, match="unknown explanation method 'gradcam'"):
        res.faithfulness("gradcam")
    with pytest.raises(ValueError, match="non-finite"):
        res.faithfulness(np.full(18, np.nan))
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        res.faithfulness("rollout", steps=0)
    with pytest.raises(ValueError, match="steps must be a positive integer up to 100000 .*got 1000000000"):
        res.faithfulness("rollout", steps=10**9)
    with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
        res.faithfulness("rollout", seed=-1)
    with pytest.raises(ValueError, match="baseline must be one of"):
        res.faithfulness("rollout", baseline="median")
    with pytest.raises(IndexError, match="class index 7"):
        res.faithfulness("rollout", class_index=7)
    with pytest.raises(KeyError, match="no class named 'dog'"):
        res.faithfulness("rollout", class_index="dog")


def test_more_steps_than_patches_repeat_points(known):
    _, res = known
    scores = np.arange(res.num_patches, dtype=float)
    few = res.faithfulness(scores, class_index=0, steps=18, baseline="zero")
    many = res.faithfulness(scores, class_index=0, steps=36, baseline="zero")
    np.testing.assert_allclose(many.deletion[::2], few.deletion, atol=1e-7)
    one = res.faithfulness(scores, class_index=0, steps=1, baseline="zero")
    np.testing.assert_allclose(one.deletion, few.deletion[[0, -1]], atol=1e-7)


def test_plot_draws_the_four_curves_with_their_areas(known):
    """The figure's lines are the result's curves (deletion, insertion solid; random dashed), and each legend
    entry carries the curve's trapezoid area computed here."""
    from bokeh.models import GlyphRenderer, Line

    _, res = known
    scores = np.zeros(res.num_patches)
    for p, w in KNOWN.items():
        scores[p] = w
    f = res.faithfulness(scores, class_index="known", steps=9, baseline="zero")
    fig = f.plot(width=300, height=220)
    assert (fig.width, fig.height) == (300, 220) and fig.title.text == "custom: p(known)"
    assert len(fig.legend) == 1 and fig.legend[0] in fig.below  # under the curves, not over them
    lines = {r.name: r for r in fig.renderers if isinstance(r, GlyphRenderer) and isinstance(r.glyph, Line)}
    expected = {"deletion": (f.deletion, []), "insertion": (f.insertion, []),
                "random deletion": (f.random_deletion, [6]), "random insertion": (f.random_insertion, [6])}
    assert set(lines) == set(expected)
    legend = {item.label["value"]: item.renderers for item in fig.legend[0].items}
    for name, (curve, dash) in expected.items():
        data = lines[name].data_source.data
        np.testing.assert_array_equal(data["x"], f.fractions)
        np.testing.assert_array_equal(data["y"], curve)
        assert list(lines[name].glyph.line_dash) == dash
        x, y = np.asarray(f.fractions, float), np.asarray(curve, float)
        area = float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))
        assert legend[f"{name} AUC {area:.3f}"] == [lines[name]]
    assert lines["deletion"].glyph.line_color == lines["random deletion"].glyph.line_color
    assert lines["deletion"].glyph.line_color != lines["insertion"].glyph.line_color
    for bad in (0, 99, "300", 300.0):
        with pytest.raises(ValueError, match="width must be a whole number of pixels, at least 100"):
            f.plot(width=bad)
    with pytest.raises(ValueError, match="height must be"):
        f.plot(height=-1)
