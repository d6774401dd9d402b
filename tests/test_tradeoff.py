"""compute_tradeoff: every row checked against direct runs of the same setting, on a model whose settings disagree."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import audiovis as av
from audiovis.datasets import SyntheticEvents
from audiovis.models.merging import MergedModel
from audiovis.models.progressive import forward_progressive
from audiovis.models.pruning import convert_stride, forward_pruned
from audiovis.models.reduction import Reduction, analytic_macs
from audiovis.metrics import mean_average_precision
from audiovis.tradeoff import Tradeoff, parse_setting

from .frozen_models import SR, tiny_ast, tone

# attention pruning at 0.2: at 0.3 it agrees with the full model on all 10 clips here, like most settings
METHODS = ["prune 0.3", "prune attention 0.2", "merge 0.6", "stride 16", "int8"]


@pytest.fixture(scope="module")
def demo():
    return av.load_demo_model()


@pytest.fixture(scope="module")
def data():
    return SyntheticEvents(10, seed=5)


@pytest.fixture(scope="module")
def result(demo, data):
    return av.compute_tradeoff(demo, data, METHODS, progress=False)


def reference_logits(demo, data) -> dict[str, np.ndarray]:
    """Each setting run directly on each clip's model input, one clip at a time."""
    x = torch.stack([demo.spectrogram(data[i].audio).values for i in range(len(data))])
    coarse, fast = convert_stride(demo, 16), av.quantize(demo, "int8")
    runs = {
        "full": lambda b: demo(b),
        "prune 0.3": lambda b: forward_pruned(demo, b, keep_ratio=0.3).logits,
        "prune attention 0.2": lambda b: forward_progressive(demo, b, 0.2).logits,
        "merge 0.6": MergedModel(demo, 0.6),
        "stride 16": coarse,
        "int8": fast,
    }
    with torch.no_grad():
        return {k: torch.cat([f(x[i:i + 1]) for i in range(len(x))]).numpy() for k, f in runs.items()}


def test_rows_match_direct_runs_of_each_setting(demo, data, result):
    assert isinstance(result, Tradeoff) and result.score_name == "mAP"
    assert [r["method"] for r in result.rows] == ["full"] + METHODS
    reference = reference_logits(demo, data)
    truth = np.stack([data[i].labels.numpy() for i in range(len(data))])
    top_full = reference["full"].argmax(-1)
    assert len(set(top_full.tolist())) >= 3, "the full model predicts several classes"
    agreements = {}
    for name, logits in reference.items():
        row = result.row(name)
        agreements[name] = float(np.mean(logits.argmax(-1) == top_full))
        assert row["agreement"] == pytest.approx(agreements[name]), name
        assert row["score"] == pytest.approx(mean_average_precision(truth, logits), abs=1e-6), name
    assert min(agreements.values()) < 1.0 and len(set(agreements.values())) >= 2, "settings disagree with the full model"
    assert len({round(result.row(n)["score"], 6) for n in reference}) >= 3, "settings score differently"


def test_tokens_macs_and_timing_columns(demo, result):
    n = demo.grid.num_patches
    assert result.row("full")["tokens"] == n and result.row("full")["speedup"] == 1.0
    assert result.row("prune 0.3")["tokens"] == round(0.3 * n)
    assert result.row("merge 0.6")["tokens"] == n - round(0.6 * n)
    assert result.row("stride 16")["tokens"] == convert_stride(demo, 16).grid.num_patches
    assert result.row("int8")["tokens"] == n and result.row("int8")["macs_ratio"] == 1.0
    full_macs = analytic_macs(demo)
    expected = analytic_macs(demo, Reduction("prune", 0.3, "energy", 0, True))
    assert result.row("prune 0.3")["macs"] == pytest.approx(expected / 1e9)
    assert result.row("prune 0.3")["macs_ratio"] == pytest.approx(expected / full_macs) and expected < 0.5 * full_macs
    for r in result.rows:
        assert r["frontend_ms"] > 0 and r["model_ms"] > 0  # audio clips: the front end runs and is timed apart
        assert r["time_ms"] == pytest.approx(r["frontend_ms"] + r["model_ms"])
        assert np.isfinite(r["speedup"]) and r["speedup"] > 0


def test_spectrogram_clips_have_no_front_end_to_time_and_old_keep_ratio_lists_still_work():
    model = tiny_ast(seed=4)
    specs = [model.spectrogram(av.load_audio(tone(f, noise=0.02, seed=i), SR)) for i, f in enumerate([300.0, 2500.0])]
    result = av.compute_tradeoff(model, specs, [1.0, 0.5], keep_by=["energy", "attention"], strides=[16], progress=False)
    assert [r["method"] for r in result.rows] == ["full", "prune energy 0.5", "prune attention 0.5", "stride 16"]
    assert result.row("energy", 0.5) is result.row("prune energy 0.5")
    assert all(r["frontend_ms"] == 0 for r in result.rows)
    assert result.score_name is None and "score" not in result.rows[0]
    generated = av.compute_tradeoff(model, specs, (f"prune {r}" for r in [0.5]), progress=False)  # any iterable
    assert [r["method"] for r in generated.rows] == ["full", "prune 0.5"]
    named = av.compute_tradeoff(model, data=specs, methods=["prune 0.5"], progress=False)  # the names
    assert [r["method"] for r in named.rows] == ["full", "prune 0.5"]
    np.testing.assert_array_equal([r["agreement"] for r in named.rows], [r["agreement"] for r in generated.rows])


def test_files_are_decoded_once_and_folders_or_missing_files_are_named(tmp_path, monkeypatch):
    """File sources: read once before timing (decoding is not the front end's work), the same rows of logits
    as their Audio; a folder is refused (the rows' order would be the scan's), a missing file named."""
    import soundfile as sf

    model = tiny_ast(seed=4)
    clips = [av.load_audio(tone(f, noise=0.02, seed=i), SR) for i, f in enumerate([300.0, 2500.0])]
    paths = []
    for i, clip in enumerate(clips):
        paths.append(tmp_path / f"clip{i}.wav")
        sf.write(paths[-1], clip.waveform[0].numpy(), SR, subtype="FLOAT")
    opened = []
    real = sf.SoundFile
    monkeypatch.setattr(sf, "SoundFile", lambda path, *a, **k: opened.append(path) or real(path, *a, **k))
    from_files = av.compute_tradeoff(model, [str(p) for p in paths], ["prune 0.5"], repeats=2, progress=False)
    assert sorted(opened) == sorted(str(p) for p in paths), "each file decoded once, not in every timed run"
    monkeypatch.undo()
    from_audio = av.compute_tradeoff(model, clips, ["prune 0.5"], repeats=1, progress=False)
    assert [r["agreement"] for r in from_files.rows] == [r["agreement"] for r in from_audio.rows]
    logits = [model.analyze(p, keep_ratio=0.5).logits for p in paths]
    np.testing.assert_allclose(logits, [model.analyze(c, keep_ratio=0.5).logits for c in clips], atol=1e-6)
    with pytest.raises(TypeError, match=r"^compute_tradeoff takes a list of sources or a Dataset, not a folder "
                                        r"\('.*'\): pass a list of its files"):
        av.compute_tradeoff(model, tmp_path, ["prune 0.5"], progress=False)
    with pytest.raises(FileNotFoundError, match=r"^source 1: no audio file at '.*missing\.wav'$"):
        av.compute_tradeoff(model, [paths[0], tmp_path / "missing.wav"], ["prune 0.5"], progress=False)
    with pytest.raises(TypeError, match=r"source 0: cannot read a dict"):
        av.compute_tradeoff(model, [{"x": 1}], ["prune 0.5"], progress=False)


def test_table_and_figure(result):
    lines = result.to_markdown().splitlines()
    assert lines[0].startswith("| method |") and "front end ms" in lines[0] and "mAP" in lines[0]
    assert len(lines) == 2 + 1 + len(METHODS)
    # outside a notebook the result prints as the same table, one line per setting, not a dict per row
    printed = repr(result).splitlines()
    assert printed[1:] == lines and printed[0] == f"Tradeoff ({len(result.rows)} settings)"
    from bokeh.models import Row

    fig = result.figure
    assert isinstance(fig, Row) and len(fig.children) == 2
    titles = [c.title.text for c in fig.children]
    assert any("speed-up" in t for t in titles) and any("multiply-accumulates" in t for t in titles)


def test_setting_text():
    s = parse_setting("INT8 +  prune attention 0.5")
    assert s.name == "int8 + prune attention 0.5" and s.precision == "int8"
    assert s.analyze_options == {"keep_ratio": 0.5, "keep_by": "attention"}
    assert parse_setting("merge 0.25 + stride 16").stride == 16


def test_bad_arguments():
    model = tiny_ast(seed=4)
    specs = [model.spectrogram(av.load_audio(tone(500.0), SR))]
    with pytest.raises(ValueError, match="keep_ratio"):
        av.compute_tradeoff(model, specs, [0.0], progress=False)
    with pytest.raises(ValueError, match="keep_by"):
        av.compute_tradeoff(model, specs, [0.5], keep_by="volume", progress=False)
    with pytest.raises(ValueError, match="unknown trade-off method 'prune half'"):
        av.compute_tradeoff(model, specs, ["prune half"], progress=False)
    with pytest.raises(ValueError, match="merge_ratio"):
        av.compute_tradeoff(model, specs, ["merge 1.5"], progress=False)
    with pytest.raises(ValueError, match="precision|unknown trade-off"):
        av.compute_tradeoff(model, specs, ["fp16"], progress=False)
    with pytest.raises(ValueError, match="at least one clip"):
        av.compute_tradeoff(model, [], ["prune 0.5"], progress=False)
    with pytest.raises(ValueError, match="2 labels for 1 clips"):
        av.compute_tradeoff(model, specs, ["prune 0.5"], labels=np.array([0, 1]), progress=False)
    with pytest.raises(ValueError, match="repeats"):
        av.compute_tradeoff(model, specs, ["prune 0.5"], repeats=0, progress=False)
    # a part given twice was silently overridden by the last one ("int8 + bf16" ran bf16 under that name)
    for text, kind in [("int8 + bf16", "precision"), ("prune 0.5 + prune attention 0.3", "pruning"),
                       ("merge 0.2 + merge 0.4", "merging"), ("stride 16 + stride 8", "stride")]:
        with pytest.raises(ValueError, match=rf"^{re.escape(repr(text))} gives the {kind} twice"):
            av.compute_tradeoff(model, specs, [text], progress=False)
    with pytest.raises(ValueError, match=r"^'0\.5\.5' in 'prune 0\.5\.5' of 'prune 0\.5\.5' is not a number"):
        av.compute_tradeoff(model, specs, ["prune 0.5.5"], progress=False)
    for methods, kind in [(None, "NoneType"), ({"prune": 0.5}, "dict"), (0.5, "float")]:
        with pytest.raises(TypeError, match=rf"^methods must be a list of settings .* got {kind}"):
            av.compute_tradeoff(model, specs, methods, progress=False)
    with pytest.raises(ValueError, match=r"^a trade-off method is a string such as .* got \{'keep_ratio': 0\.5\}"):
        av.compute_tradeoff(model, specs, [{"keep_ratio": 0.5}], progress=False)


def _plain_clip_scores(window_logits: np.ndarray, multi_label: bool) -> np.ndarray:
    """The store's clip rule written plainly: multi-label, the largest sigmoid over windows (as its logit);
    softmax, the log of the windows' mean softmax."""
    if multi_label:
        return np.array([max(column) for column in window_logits.T])
    probs = np.exp(window_logits - window_logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return np.log(probs.mean(axis=0))


@pytest.mark.parametrize("multi_label", [True, False])
def test_clips_longer_than_a_window_run_every_window(multi_label, monkeypatch):
    """A clip of several model windows is analysed window by window, as analyze cuts it (it was: the first
    window only); its scores combine the windows as the store's clip probabilities do."""
    from audiovis.analysis import clip_probabilities, clip_scores

    model = tiny_ast(seed=6, multi_label=multi_label)
    freqs = [300.0, 900.0, 2500.0, 4000.0]
    clips = [av.load_audio(np.concatenate([tone(f, seconds=2.0, seed=i), tone(5200.0 - f, seconds=3.0, seed=i + 9)]),
                           SR) for i, f in enumerate(freqs)]
    windows = [model.analyze_windows(c) for c in clips]
    assert [len(w) for w in windows] == [3] * 4
    full = np.stack([_plain_clip_scores(np.stack([a.logits for a in ws]), multi_label) for ws in windows])
    merged_windows = [model.analyze_windows(c, merge_ratio=0.5) for c in clips]
    merged = np.stack([_plain_clip_scores(np.stack([a.logits for a in ws]), multi_label) for ws in merged_windows])
    labels = (np.eye(4, dtype=np.int64)[[0, 1, 2, 3]] if multi_label else np.array([0, 1, 2, 3]))
    calls = []
    analyze = type(model).analyze
    monkeypatch.setattr(type(model), "analyze", lambda self, *a, **k: (calls.append(1), analyze(self, *a, **k))[1])
    result = av.compute_tradeoff(model, clips, ["merge 0.5"], labels=labels, progress=False)
    assert len(calls) == 2 * 2 * 4 * 3  # (warm-up + 1 round) x 2 settings x 4 clips x 3 windows
    top = full.argmax(-1)
    assert result.row("merge 0.5")["agreement"] == pytest.approx(np.mean(merged.argmax(-1) == top))
    for name, scores in (("full", full), ("merge 0.5", merged)):
        want = (mean_average_precision(labels, scores) if multi_label else float(np.mean(scores.argmax(-1) == labels)))
        assert result.row(name)["score"] == pytest.approx(want, abs=1e-9), name
    assert all(r["frontend_ms"] > 0 for r in result.rows)
    # the rule's two forms agree: probabilities from the scores are the store's clip probabilities
    w = np.stack([a.logits for a in windows[0]]).astype(np.float64)
    probs = 1 / (1 + np.exp(-w)) if multi_label else np.exp(w) / np.exp(w).sum(axis=1, keepdims=True)
    back = 1 / (1 + np.exp(-clip_scores(w, multi_label))) if multi_label else np.exp(clip_scores(w, multi_label))
    np.testing.assert_allclose(back, clip_probabilities(probs, multi_label), rtol=1e-12)
