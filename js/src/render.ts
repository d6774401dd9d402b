/** Drawing on the spectrogram canvas: the image from a column source, and the patch overlay over it. */

import { colorIndex, colormapTable, packedTable } from "./colormaps";
import { drawGroups } from "./groups";
import { type View, binToY, boxToRect, cellBounds, frameToX, patchBounds, visibleCols } from "./geometry";
import type { GridSpec } from "./types";

/**
 * Where spectrogram values come from. One array today; level-of-detail tiles for long recordings
 * can implement the same interface.
 */
export interface ColumnSource {
  readonly numBins: number;
  readonly numFrames: number;
  /** Per-bin maximum over the frames whose span meets [f0, f1) (at least one frame), into `out` (numBins). */
  reduceFrames(f0: number, f1: number, out: Float32Array): void;
}

/** Values [numBins, numColumns] (frequency-major, as numpy sends them); each column stands for `framesPerColumn` frames. */
export class ArraySource implements ColumnSource {
  readonly numColumns: number;
  constructor(
    readonly values: Float32Array,
    readonly numBins: number,
    readonly numFrames: number,
    readonly framesPerColumn = 1,
  ) {
    this.numColumns = Math.ceil(numFrames / framesPerColumn);
    if (values.length !== numBins * this.numColumns) {
      throw new Error(`spectrogram payload has ${values.length} values, expected ${numBins} x ${this.numColumns}`);
    }
  }

  reduceFrames(f0: number, f1: number, out: Float32Array): void {
    const fpc = this.framesPerColumn;
    const n = this.numColumns;
    let c0 = Math.floor(Math.max(0, f0) / fpc);
    let c1 = Math.ceil(Math.min(this.numFrames, f1) / fpc);
    c0 = Math.min(c0, n - 1);
    if (c1 <= c0) c1 = c0 + 1;
    for (let b = 0; b < this.numBins; b++) {
      const row = b * n;
      let m = -Infinity;
      for (let c = c0; c < c1; c++) {
        const v = this.values[row + c]!;
        if (v > m) m = v;
      }
      out[b] = m;
    }
  }
}

/**
 * Frame window of output pixel column x (device pixels): at most one frame per pixel, the frame under the
 * pixel's centre; else every frame the pixel spans (max-pooled). to_png in Python follows the same rule.
 */
export function pixelFrames(f0: number, f1: number, width: number, x: number): [number, number] {
  const fpp = (f1 - f0) / width;
  if (fpp <= 1) {
    const k = Math.floor(f0 + (x + 0.5) * fpp);
    return [k, k + 1];
  }
  const a = f0 + x * fpp;
  return [Math.floor(a), Math.max(Math.floor(a) + 1, Math.ceil(a + fpp))];
}

/** Bin window of output pixel row y (0 = top), by the same rule as pixelFrames. */
export function pixelBins(numBins: number, height: number, y: number): [number, number] {
  const bpp = numBins / height;
  const fromBottom = height - 1 - y;
  if (bpp <= 1) {
    const k = Math.min(numBins - 1, Math.floor((fromBottom + 0.5) * bpp));
    return [k, k + 1];
  }
  const a = fromBottom * bpp;
  return [Math.floor(a), Math.min(numBins, Math.max(Math.floor(a) + 1, Math.ceil(a + bpp)))];
}

export interface ImageParams {
  f0: number;
  f1: number;
  colormap: string;
  vmin: number;
  vmax: number;
  validFrames: number;
}

/** Paint the spectrogram into `img` (device pixels): colormapped values, padding frames dimmed. */
export function paintSpectrogram(img: ImageData, src: ColumnSource, p: ImageParams): void {
  const { width, height } = img;
  const words = new Uint32Array(img.data.buffer, img.data.byteOffset, width * height);
  const lut = packedTable(p.colormap);
  const dimLut = lut.map((w) => {
    const r = (w & 0xff) * 0.35;
    const g = ((w >> 8) & 0xff) * 0.35;
    const b = ((w >> 16) & 0xff) * 0.35;
    return (255 << 24) | (b << 16) | (g << 8) | r;
  });
  const column = new Float32Array(src.numBins);
  const rows = Array.from({ length: height }, (_, y) => pixelBins(src.numBins, height, y));
  for (let x = 0; x < width; x++) {
    const [a, b] = pixelFrames(p.f0, p.f1, width, x);
    const blank = a >= src.numFrames || b <= 0;
    if (!blank) src.reduceFrames(a, b, column);
    const centre = p.f0 + ((x + 0.5) / width) * (p.f1 - p.f0);
    const table = centre >= p.validFrames ? dimLut : lut;
    for (let y = 0; y < height; y++) {
      let word = 0;
      if (!blank) {
        const [b0, b1] = rows[y]!;
        let m = column[b0]!;
        for (let k = b0 + 1; k < b1; k++) if (column[k]! > m) m = column[k]!;
        const i = colorIndex(m, p.vmin, p.vmax);
        word = i < 0 ? 0 : table[i]!;
      }
      words[y * width + x] = word;
    }
  }
}

export interface OverlayState {
  view: View;
  grid: GridSpec | null;
  showGrid: boolean;
  selection: ReadonlySet<number>;
  masked: ReadonlySet<number>;
  groups?: Int32Array | null;
  hovered: number | null;
  heatmap: Float32Array | null;
  heatmapRange: [number, number];
  heatmapColormap: string;
  heatmapOpacity: number;
  validFrames: number;
  numFrames: number;
  playheadFrame: number | null;
  rubberBand: [number, number, number, number] | null;
  /** Set by drawOverlay: how many merge groups it outlined. */
  groupsDrawn?: number;
}

const SELECT_FILL = "rgba(0, 220, 255, 0.35)";
const SELECT_LINE = "rgba(0, 230, 255, 0.95)";
const MASK_FILL = "rgba(110, 110, 110, 0.75)";
const GRID_LINE = "rgba(255, 255, 255, 0.28)";

/** Grid, heatmap, masks, selection, hover footprint, rubber band and playhead, in CSS pixels. */
export function drawOverlay(ctx: CanvasRenderingContext2D, s: OverlayState): void {
  const v = s.view;
  const g = s.grid;
  if (g) {
    const [c0, c1] = visibleCols(g, v.f0, v.f1);
    const rows = g.grid_shape[0];
    const cols = g.grid_shape[1];
    const eachVisible = (fn: (index: number) => void) => {
      for (let r = 0; r < rows; r++) for (let c = c0; c <= c1; c++) fn(r * cols + c);
    };
    const cellRect = (i: number) => boxToRect(v, cellBounds(g, i));
    if (s.heatmap) {
      const lut = colormapTable(s.heatmapColormap);
      const [lo, hi] = s.heatmapRange;
      ctx.globalAlpha = s.heatmapOpacity;
      eachVisible((i) => {
        const k = colorIndex(s.heatmap![i]!, lo, hi);
        if (k < 0) return;
        ctx.fillStyle = `rgb(${lut[3 * k]},${lut[3 * k + 1]},${lut[3 * k + 2]})`;
        const [x, y, w, h] = cellRect(i);
        ctx.fillRect(x, y, w, h);
      });
      ctx.globalAlpha = 1;
    }
    if (s.masked.size) {
      ctx.fillStyle = MASK_FILL;
      for (const i of s.masked) {
        const [x, y, w, h] = cellRect(i);
        ctx.fillRect(x, y, w, h);
      }
    }
    if (s.groups) s.groupsDrawn = drawGroups(ctx, g, s.groups, cellRect, eachVisible);
    if (s.showGrid) drawGridLines(ctx, g, v, c0, c1);
    if (s.selection.size) {
      ctx.fillStyle = SELECT_FILL;
      ctx.strokeStyle = SELECT_LINE;
      ctx.lineWidth = 1;
      for (const i of s.selection) {
        const [x, y, w, h] = cellRect(i);
        ctx.fillRect(x, y, w, h);
        ctx.strokeRect(x + 0.5, y + 0.5, w - 1, h - 1);
      }
    }
    if (s.hovered !== null) {
      const [x, y, w, h] = boxToRect(v, patchBounds(g, s.hovered));
      ctx.strokeStyle = "rgba(0, 0, 0, 0.8)";
      ctx.lineWidth = 4;
      ctx.strokeRect(x, y, w, h);
      ctx.strokeStyle = "#ffffff";
      ctx.lineWidth = 2;
      ctx.strokeRect(x, y, w, h);
      const [cx, cy, cw, ch] = cellRect(s.hovered);
      ctx.fillStyle = "rgba(255, 255, 255, 0.25)";
      ctx.fillRect(cx, cy, cw, ch);
    }
  }
  if (s.validFrames < s.numFrames) {
    const x = Math.round(frameToX(v, s.validFrames)) + 0.5;
    if (x >= 0 && x <= v.width) {
      ctx.setLineDash([4, 4]);
      ctx.strokeStyle = "rgba(255, 255, 255, 0.6)";
      ctx.lineWidth = 1;
      line(ctx, x, 0, x, v.height);
      ctx.setLineDash([]);
    }
  }
  if (s.rubberBand) {
    const [x0, y0, x1, y1] = s.rubberBand;
    ctx.setLineDash([5, 3]);
    ctx.strokeStyle = "#ffffff";
    ctx.lineWidth = 1.5;
    ctx.strokeRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
    ctx.setLineDash([]);
    ctx.fillStyle = "rgba(255, 255, 255, 0.12)";
    ctx.fillRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
  }
  if (s.playheadFrame !== null) {
    const x = frameToX(v, s.playheadFrame);
    if (x >= 0 && x <= v.width) {
      ctx.strokeStyle = "#39ff7a";
      ctx.lineWidth = 2;
      line(ctx, x, 0, x, v.height);
    }
  }
}

function drawGridLines(ctx: CanvasRenderingContext2D, g: GridSpec, v: View, c0: number, c1: number): void {
  const [sf, st] = g.stride;
  const [pf, pt] = g.patch_size;
  const [rows, cols] = g.grid_shape;
  const fEnd = (rows - 1) * sf + pf;
  const tEnd = (cols - 1) * st + pt;
  const yTop = binToY(v, fEnd);
  const xEnd = Math.min(v.width, frameToX(v, tEnd));
  const xStart = Math.max(0, frameToX(v, c0 * st));
  ctx.strokeStyle = GRID_LINE;
  ctx.lineWidth = 1;
  ctx.beginPath();
  const cellPx = (st / (v.f1 - v.f0)) * v.width;
  if (cellPx >= 3) {
    for (let c = c0; c <= c1 + 1; c++) {
      const frame = c === cols ? tEnd : c * st;
      if (c > cols) break;
      const x = Math.round(frameToX(v, frame)) + 0.5;
      if (x < -1 || x > v.width + 1) continue;
      ctx.moveTo(x, yTop);
      ctx.lineTo(x, v.height);
    }
  }
  for (let r = 0; r <= rows; r++) {
    const y = Math.round(binToY(v, r === rows ? fEnd : r * sf)) - 0.5;
    ctx.moveTo(xStart, y);
    ctx.lineTo(xEnd, y);
  }
  ctx.stroke();
}

/** One straight stroked segment. */
export function line(ctx: CanvasRenderingContext2D, x0: number, y0: number, x1: number, y1: number): void {
  ctx.beginPath();
  ctx.moveTo(x0, y0);
  ctx.lineTo(x1, y1);
  ctx.stroke();
}
