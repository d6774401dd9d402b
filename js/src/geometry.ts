/**
 * Patch <-> frame/bin <-> pixel geometry and zoom/pan transforms: pure maths, no drawing.
 * Mirrors audiovis/patches.py (PatchGrid) and Spectrogram's axes; tests cross-check both on shared fixtures.
 * Frames and bins are continuous: the left edge of frame 0 is 0, the bottom edge of bin 0 is 0.
 */

import type { GridSpec } from "./types";

/** A time-frequency rectangle in frames and bins, half-open. */
export interface Box {
  timeStart: number;
  timeEnd: number;
  freqStart: number;
  freqEnd: number;
}

/** The visible frame range [f0, f1) and the canvas size in CSS pixels. Frequency is never zoomed. */
export interface View {
  f0: number;
  f1: number;
  width: number;
  height: number;
  numBins: number;
}

export interface Axes {
  timeOffset: number;
  hopSeconds: number;
  edges: readonly number[];
}

// ---- grid (PatchGrid) ----

export function numPatches(g: GridSpec): number {
  return g.grid_shape[0] * g.grid_shape[1];
}

export function patchIndex(g: GridSpec, row: number, col: number): number {
  const [rows, cols] = g.grid_shape;
  if (row < 0 || row >= rows || col < 0 || col >= cols) throw new RangeError(`patch (${row}, ${col}) outside ${rows} x ${cols}`);
  return row * cols + col;
}

export function isValidPatch(g: GridSpec, index: unknown): index is number {
  return typeof index === "number" && Number.isInteger(index) && index >= 0 && index < numPatches(g);
}

export function patchPosition(g: GridSpec, index: number): [number, number] {
  if (!isValidPatch(g, index)) throw new RangeError(`patch index ${index} outside 0..${numPatches(g) - 1}`);
  const cols = g.grid_shape[1];
  return [Math.floor(index / cols), index % cols];
}

/** The patch's full footprint. */
export function patchBounds(g: GridSpec, index: number): Box {
  const [row, col] = patchPosition(g, index);
  const [pf, pt] = g.patch_size;
  const [sf, st] = g.stride;
  return { timeStart: col * st, timeEnd: col * st + pt, freqStart: row * sf, freqEnd: row * sf + pf };
}

/** The patch's stride cell (the last row/col reaches its patch's end), as PatchGrid.cell_bounds. */
export function cellBounds(g: GridSpec, index: number): Box {
  const [row, col] = patchPosition(g, index);
  const [pf, pt] = g.patch_size;
  const [sf, st] = g.stride;
  const [rows, cols] = g.grid_shape;
  return {
    timeStart: col * st,
    timeEnd: col * st + (col === cols - 1 ? pt : st),
    freqStart: row * sf,
    freqEnd: row * sf + (row === rows - 1 ? pf : sf),
  };
}

/** The patch whose stride cell holds (frame, bin), or null outside every cell (PatchGrid.patch_at). */
export function patchAt(g: GridSpec, frame: number, bin: number): number | null {
  if (!Number.isFinite(frame) || !Number.isFinite(bin)) return null;
  const [pf, pt] = g.patch_size;
  const [sf, st] = g.stride;
  const [rows, cols] = g.grid_shape;
  if (frame < 0 || bin < 0 || frame >= (cols - 1) * st + pt || bin >= (rows - 1) * sf + pf) return null;
  const col = Math.min(Math.floor(frame / st), cols - 1);
  const row = Math.min(Math.floor(bin / sf), rows - 1);
  return row * cols + col;
}

/** Positions on one axis whose span [k*s, k*s+p) overlaps [lo, hi) (a point if lo == hi). */
function overlapping(g: GridSpec, lo: number, hi: number, axis: 0 | 1): [number, number] {
  const p = g.patch_size[axis];
  const s = g.stride[axis];
  const n = g.grid_shape[axis];
  if (hi === lo) hi = lo + 1e-9;
  const first = Math.max(0, Math.floor((lo - p) / s) + 1);
  let last = Math.min(n - 1, Math.ceil(hi / s) - 1);
  if (last < n - 1 && (last + 1) * s < hi) last += 1; // hi / s rounded to a whole number (hi subnormal): one more
  return [first, last];
}

/** Every patch whose footprint overlaps the box, in token order (PatchGrid.patches_in). */
export function patchesIn(g: GridSpec, box: Box): number[] {
  const t0 = Math.min(box.timeStart, box.timeEnd);
  const t1 = Math.max(box.timeStart, box.timeEnd);
  const f0 = Math.min(box.freqStart, box.freqEnd);
  const f1 = Math.max(box.freqStart, box.freqEnd);
  const [r0, r1] = overlapping(g, f0, f1, 0);
  const [c0, c1] = overlapping(g, t0, t1, 1);
  const cols = g.grid_shape[1];
  const out: number[] = [];
  for (let r = r0; r <= r1; r++) for (let c = c0; c <= c1; c++) out.push(r * cols + c);
  return out;
}

/** Column range [c0, c1] of patches whose stride cells meet frames [f0, f1) (for drawing only what is visible). */
export function visibleCols(g: GridSpec, f0: number, f1: number): [number, number] {
  const st = g.stride[1];
  const cols = g.grid_shape[1];
  return [Math.max(0, Math.floor(f0 / st)), Math.min(cols - 1, Math.floor(f1 / st))];
}

// ---- axes (Spectrogram) ----

export function frameToTime(a: Axes, frame: number): number {
  return a.timeOffset + frame * a.hopSeconds;
}

export function timeToFrame(a: Axes, seconds: number): number {
  return (seconds - a.timeOffset) / a.hopSeconds;
}

/** Piecewise-linear interpolation clamped at the ends (numpy.interp). */
function interp(x: number, xs: ArrayLike<number>, ys: ArrayLike<number>): number {
  const n = xs.length;
  if (x <= xs[0]!) return ys[0]!;
  if (x >= xs[n - 1]!) return ys[n - 1]!;
  let lo = 0;
  let hi = n - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (xs[mid]! <= x) lo = mid;
    else hi = mid;
  }
  const x0 = xs[lo]!;
  const x1 = xs[hi]!;
  return x1 === x0 ? ys[lo]! : ys[lo]! + ((x - x0) / (x1 - x0)) * (ys[hi]! - ys[lo]!);
}

/** Continuous bin coordinate -> Hz over the band edges (Spectrogram.bin_to_hz). */
export function binToHz(a: Axes, bin: number): number {
  const idx = a.edges.map((_, i) => i);
  return interp(bin, idx, a.edges);
}

/** Hz -> continuous bin coordinate (Spectrogram.hz_to_bin). */
export function hzToBin(a: Axes, hz: number): number {
  const idx = a.edges.map((_, i) => i);
  return interp(hz, a.edges, idx);
}

// ---- pixels ----

export function xToFrame(v: View, x: number): number {
  return v.f0 + (x / v.width) * (v.f1 - v.f0);
}

export function frameToX(v: View, frame: number): number {
  return ((frame - v.f0) / (v.f1 - v.f0)) * v.width;
}

export function yToBin(v: View, y: number): number {
  return ((v.height - y) / v.height) * v.numBins;
}

export function binToY(v: View, bin: number): number {
  return v.height - (bin / v.numBins) * v.height;
}

/** The patch under canvas pixel (x, y), by the stride-cell rule. */
export function patchAtPixel(g: GridSpec, v: View, x: number, y: number): number | null {
  return patchAt(g, xToFrame(v, x), yToBin(v, y));
}

/** A frame/bin box -> canvas rectangle [x, y, w, h] (y grows downwards). */
export function boxToRect(v: View, b: Box): [number, number, number, number] {
  const x0 = frameToX(v, b.timeStart);
  const x1 = frameToX(v, b.timeEnd);
  const yTop = binToY(v, b.freqEnd);
  const yBottom = binToY(v, b.freqStart);
  return [x0, yTop, x1 - x0, yBottom - yTop];
}

/** Patches overlapping the rectangle dragged between two canvas pixels. */
export function patchesInPixelRect(g: GridSpec, v: View, x0: number, y0: number, x1: number, y1: number): number[] {
  return patchesIn(g, {
    timeStart: xToFrame(v, x0),
    timeEnd: xToFrame(v, x1),
    freqStart: yToBin(v, y0),
    freqEnd: yToBin(v, y1),
  });
}

// ---- zoom and pan ----

/** Limits of the visible range: at most all frames, at least `minSpan` frames. */
export interface Limits {
  numFrames: number;
  minSpan: number;
}

/** The range [f0, f1) moved and resized as little as needed to fit the limits (non-finite input: everything). */
export function clampRange(f0: number, f1: number, lim: Limits): [number, number] {
  let span = Math.min(Math.max(f1 - f0, Math.min(lim.minSpan, lim.numFrames)), lim.numFrames);
  if (!Number.isFinite(span) || span <= 0) span = lim.numFrames;
  let start = Number.isFinite(f0) ? f0 : 0;
  start = Math.min(Math.max(start, 0), lim.numFrames - span);
  return [start, start + span];
}

/** Zoom by `factor` (< 1 zooms in) keeping frame `anchor` at the same place on screen. */
export function zoomAbout(f0: number, f1: number, anchor: number, factor: number, lim: Limits): [number, number] {
  const span = f1 - f0;
  const target = Math.min(Math.max(span * factor, Math.min(lim.minSpan, lim.numFrames)), lim.numFrames);
  const ratio = target / span;
  const start = anchor - (anchor - f0) * ratio;
  return clampRange(start, start + target, lim);
}

/** Shift the range by `dFrames`, stopping at the ends. */
export function panBy(f0: number, f1: number, dFrames: number, lim: Limits): [number, number] {
  return clampRange(f0 + dFrames, f1 + dFrames, lim);
}
