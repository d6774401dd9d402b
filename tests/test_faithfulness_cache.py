"""What ``Analysis.faithfulness`` keeps between calls: the random orders' logits, for every class and map.
A second class costs only the map's own passes, and its random curves equal a fresh computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import audiovis as av
from audiovis.explain import faithfulness as F

from .test_faithfulness import counted

CONFIG = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
              num_mel_bins=32, max_length=100, num_labels=3, labels=["a", "b", "c"])


@pytest.fixture(params=[True, False], ids=["multi-label", "softmax"])
def res(request):
    torch.manual_seed(0)
    model = av.ASTModel(av.ASTConfig(**CONFIG, multi_label=request.param)).eval()
    rng = np.random.default_rng(0)
    return model.analyze(av.load_audio(rng.standard_normal(16000).astype(np.float32) * 0.1, 16000))


def test_another_class_reuses_the_random_orders_and_matches_a_fresh_run(res):
    calls = counted(res)
    try:
        first = res.faithfulness("rollout", class_index=0, steps=8)
        assert sum(calls) == 2 + 4 * 2 * 7  # the map and 3 random orders, 7 inner steps each way
        calls.clear()
        other = res.faithfulness("rollout", class_index=2, steps=8)
        assert sum(calls) == 2 + 2 * 7  # the map's own inputs only
    finally:
        del res.__dict__["_forward_logits"]
    for result, c in ((first, 0), (other, 2)):
        fresh = F.faithfulness(res._forward_logits, res.spectrogram.values, res.grid, res.rollout(), class_index=c,
                               multi_label=res.multi_label, steps=8, baseline="mean", seed=0)
        for name in ("deletion", "insertion", "random_deletion", "random_insertion"):
            np.testing.assert_allclose(getattr(result, name), getattr(fresh, name), atol=1e-6, err_msg=name)
    # another class is another curve (the model's classes differ)
    assert np.abs(other.random_deletion - first.random_deletion).max() > 1e-4
    # another baseline, steps or seed is not served from the cache
    calls = counted(res)
    try:
        res.faithfulness("rollout", class_index=2, steps=8, seed=1)
        assert sum(calls) == 2 + 4 * 2 * 7
    finally:
        del res.__dict__["_forward_logits"]


def test_curves_of_reads_the_logits_it_is_given():
    counts = np.array([0, 1, 2, 3])
    ends = torch.tensor([[2.0, 0.0], [-2.0, 0.0]])  # the input itself, everything removed
    middle = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[-1.0, 0.0], [0.5, 0.0]]])  # deletion, insertion at 1, 2
    deletion, insertion = F.curves_of(ends, middle, counts, 3, class_index=0, multi_label=True)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    np.testing.assert_allclose(deletion, sig(np.array([2.0, 1.0, 0.0, -2.0])))
    np.testing.assert_allclose(insertion, sig(np.array([-2.0, -1.0, 0.5, 2.0])))
    deletion, _ = F.curves_of(ends, middle, counts, 3, class_index=0, multi_label=False)
    soft = lambda v: np.exp(v) / (np.exp(v) + 1)  # noqa: E731  (class 1's logit is 0)
    np.testing.assert_allclose(deletion, soft(np.array([2.0, 1.0, 0.0, -2.0])), rtol=1e-6)


def test_num_random_sets_the_random_orders_averaged(res):
    calls = counted(res)
    try:
        one = res.faithfulness("rollout", class_index=1, steps=8, num_random=1)
        assert sum(calls) == 2 + 2 * 2 * 7  # the map and one random order
        calls.clear()
        three = res.faithfulness("rollout", class_index=1, steps=8)  # 3 orders: not served by the 1-order cache
        assert sum(calls) == 2 + 4 * 2 * 7
    finally:
        del res.__dict__["_forward_logits"]
    assert one.num_random == 1 and three.num_random == 3
    # the one-order curves are the first random order's: the same seed draws it first
    order = F.random_orders(res.num_patches, 0, 1)[0]
    scores = np.empty(res.num_patches)
    scores[order] = np.arange(res.num_patches, 0, -1)  # a map that ranks the patches in that order
    only = F.faithfulness(res._forward_logits, res.spectrogram.values, res.grid, scores, class_index=1,
                          multi_label=res.multi_label, steps=8, num_random=1)
    np.testing.assert_allclose(one.random_deletion, only.deletion, atol=1e-6)
    np.testing.assert_allclose(one.random_insertion, only.insertion, atol=1e-6)
    np.testing.assert_allclose(one.deletion, three.deletion, atol=1e-6)  # the map's own curves do not change
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="num_random"):
            res.faithfulness("rollout", num_random=bad)
