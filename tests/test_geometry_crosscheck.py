"""Patch geometry cases from Python's PatchGrid and Spectrogram, shared with js/test/geometry.test.ts.

tests/fixtures/geometry_cases.json is generated here (``python -m tests.test_geometry_crosscheck``) and
checked on both sides: this test fails if PatchGrid no longer gives the stored answers, vitest fails
if js/src/geometry.ts disagrees with them.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from audiovis import Audio, KaldiFbank, MelSpectrogram, PatchGrid, STFTSpectrogram

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "geometry_cases.json"

GRIDS = [
    dict(name="ast", input_shape=(128, 1024), patch_size=(16, 16), stride=(10, 10)),
    dict(name="vit-no-overlap", input_shape=(128, 500), patch_size=(16, 16), stride=(16, 16)),
    dict(name="heavy-overlap", input_shape=(64, 300), patch_size=(8, 12), stride=(4, 5)),
]

# Zoomed and unzoomed views: visible frames [f0, f1) on a canvas of width x height CSS px.
VIEWS = [
    dict(f0=0.0, f1=1.0, width=800, height=320),  # f1 replaced by the grid's frame count
    dict(f0=100.0, f1=164.0, width=640, height=256),
    dict(f0=613.25, f1=655.75, width=777, height=300),
]


def _grid_cases(spec: dict, rng: np.random.Generator) -> dict:
    grid = PatchGrid(spec["input_shape"], spec["patch_size"], spec["stride"])
    n_bins, n_frames = grid.input_shape
    (sf, st), (pf, pt) = grid.stride, grid.patch_size
    rows, cols = grid.grid_shape
    points = [(float(f), float(b)) for f, b in rng.uniform([-5, -5], [n_frames + 5, n_bins + 5], size=(60, 2))]
    # stride-cell edges, the last cell's extension, and just outside the covered area
    points += [(float(c * st), float(r * sf)) for r, c in [(0, 0), (1, 1), (rows - 1, cols - 1), (rows // 2, cols // 3)]]
    points += [((cols - 1) * st + pt - 1e-6, (rows - 1) * sf + pf - 1e-6), ((cols - 1) * st + pt, 0.0), (0.0, (rows - 1) * sf + pf)]
    points += [(-1e-9, 3.0), (3.0, -1e-9), (math.nextafter(st, 0), math.nextafter(sf, 0))]
    patch_at = [dict(frame=f, bin=b, patch=grid.patch_at(f, b)) for f, b in points]

    boxes = [tuple(float(v) for v in rng.uniform([-3, -3, -3, -3], [n_frames + 3, n_frames + 3, n_bins + 3, n_bins + 3])) for _ in range(25)]
    boxes += [(5.0, 5.0, 7.0, 7.0), (float(st), float(st), float(sf), float(sf)), (30.0, 12.0, 40.0, 3.0), (0.0, n_frames, 0.0, n_bins)]
    boxes += [(0.0, 5e-324, 0.0, 0.0), (0.0, 5e-324, 0.0, 5e-324)]  # subnormal edges: hi / stride underflows
    patches_in = [dict(box=list(b), patches=grid.patches_in(b)) for b in boxes]

    indices = sorted({0, cols - 1, (rows - 1) * cols, grid.num_patches - 1, *rng.integers(0, grid.num_patches, 6).tolist()})
    patches = [
        dict(index=i, position=list(grid.position(i)), bounds=list(grid.bounds(i)), cell_bounds=list(grid.cell_bounds(i)))
        for i in indices
    ]

    pixels, rects = [], []
    for view in VIEWS:
        v = dict(view, f1=float(n_frames) if view["f1"] == 1.0 else view["f1"])
        for x, y in rng.uniform([0, 0], [v["width"], v["height"]], size=(15, 2)):
            frame = v["f0"] + x / v["width"] * (v["f1"] - v["f0"])
            bin_ = (v["height"] - y) / v["height"] * n_bins
            pixels.append(dict(view=v, x=float(x), y=float(y), frame=frame, bin=bin_, patch=grid.patch_at(frame, bin_)))
        for x0, y0, x1, y1 in rng.uniform([0, 0, 0, 0], [v["width"], v["height"], v["width"], v["height"]], size=(5, 4)):
            box = (
                v["f0"] + x0 / v["width"] * (v["f1"] - v["f0"]),
                v["f0"] + x1 / v["width"] * (v["f1"] - v["f0"]),
                (v["height"] - y0) / v["height"] * n_bins,
                (v["height"] - y1) / v["height"] * n_bins,
            )
            rects.append(dict(view=v, rect=[float(x0), float(y0), float(x1), float(y1)], patches=grid.patches_in(box)))
    return dict(name=spec["name"], grid=grid.to_dict(), patch_at=patch_at, patches_in=patches_in,
                patches=patches, pixels=pixels, rects=rects)


def _axes_cases() -> list[dict]:
    sr = 16000
    wav = torch.from_numpy((0.1 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr)).astype(np.float32))[None]
    audio = Audio(wav, sr)
    out = []
    for name, frontend in [("kaldi", KaldiFbank(target_frames=200)), ("mel-slaney", MelSpectrogram(n_mels=64, mel_scale="slaney")),
                           ("stft", STFTSpectrogram(n_fft=256))]:
        spec = frontend(audio)
        bins = [0.0, 0.5, 1.0, 7.25, spec.num_bins / 2, spec.num_bins - 0.1, float(spec.num_bins), -1.0, spec.num_bins + 2.0]
        hz = [0.0, 25.0, 440.0, 1000.0, 3333.3, 7999.0, 9000.0]
        frames = [0.0, 1.0, 10.5, spec.num_frames - 0.5, -2.0]
        out.append(dict(
            name=name, scale=spec.scale,
            axes=dict(time_offset=float(spec.time_offset), hop_seconds=float(spec.hop_seconds),
                      edges=[float(e) for e in spec.frequency_edges]),
            bin_to_hz=[[b, float(spec.bin_to_hz(b))] for b in bins],
            hz_to_bin=[[h, float(spec.hz_to_bin(h))] for h in hz],
            frame_to_time=[[f, float(spec.frame_to_time(f))] for f in frames],
        ))
    return out


def build_cases() -> dict:
    rng = np.random.default_rng(20240607)
    return {"grids": [_grid_cases(g, rng) for g in GRIDS], "axes": _axes_cases()}


def _normalise(obj):
    return json.loads(json.dumps(obj))


def test_fixture_matches_patchgrid():
    assert FIXTURE.exists(), f"{FIXTURE} missing: run `python -m tests.test_geometry_crosscheck`"
    stored = json.loads(FIXTURE.read_text())
    fresh = _normalise(build_cases())
    for stored_grid, fresh_grid in zip(stored["grids"], fresh["grids"], strict=True):
        for key in fresh_grid:
            assert stored_grid[key] == fresh_grid[key], f"{fresh_grid['name']}: {key} differs from PatchGrid"
    for stored_axes, fresh_axes in zip(stored["axes"], fresh["axes"], strict=True):
        for key in ("bin_to_hz", "hz_to_bin", "frame_to_time"):
            np.testing.assert_allclose(np.array(stored_axes[key]), np.array(fresh_axes[key]), rtol=1e-9, atol=1e-9)


def test_fixture_covers_overlap_edge_cases():
    """The shared cases exercise what the stride-cell rule is about, so the JS check means something."""
    cases = json.loads(FIXTURE.read_text())
    heavy = next(g for g in cases["grids"] if g["name"] == "heavy-overlap")
    assert any(p["patch"] is None for p in heavy["patch_at"]), "no point outside the grid"
    assert any(len(c["patches"]) > 4 for c in heavy["patches_in"]), "no box hitting several overlapping patches"
    ast = next(g for g in cases["grids"] if g["name"] == "ast")
    zoomed = [p for p in ast["pixels"] if p["view"]["f0"] > 0]
    assert zoomed and all(p["patch"] is not None for p in zoomed[:5])


if __name__ == "__main__":
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(_normalise(build_cases()), indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)", file=sys.stderr)
