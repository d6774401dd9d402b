import { describe, expect, it } from "vitest";
import cases from "../../tests/fixtures/geometry_cases.json";
import {
  type View,
  binToHz,
  cellBounds,
  clampRange,
  frameToTime,
  frameToX,
  hzToBin,
  panBy,
  patchAt,
  patchAtPixel,
  patchBounds,
  patchPosition,
  patchesIn,
  patchesInPixelRect,
  xToFrame,
  yToBin,
  zoomAbout,
} from "../src/geometry";
import { frequencyTicks, linearTicks } from "../src/axes";
import type { GridSpec } from "../src/types";

type Pair = [number, number];
const boxOf = (b: number[]) => ({ timeStart: b[0]!, timeEnd: b[1]!, freqStart: b[2]!, freqEnd: b[3]! });

describe.each(cases.grids)("grid $name against PatchGrid", (g) => {
  const grid = g.grid as unknown as GridSpec;
  const viewOf = (v: { f0: number; f1: number; width: number; height: number }): View => ({ ...v, numBins: grid.input_shape[0] });

  it("patch_at: the stride cell holding a point", () => {
    for (const c of g.patch_at) expect(patchAt(grid, c.frame, c.bin), `(${c.frame}, ${c.bin})`).toBe(c.patch);
  });

  it("patches_in: every patch overlapping a box", () => {
    for (const c of g.patches_in) expect(patchesIn(grid, boxOf(c.box)), JSON.stringify(c.box)).toEqual(c.patches);
  });

  it("position, bounds and cell bounds", () => {
    for (const c of g.patches) {
      expect(patchPosition(grid, c.index)).toEqual(c.position);
      expect(Object.values(patchBounds(grid, c.index))).toEqual(c.bounds);
      expect(Object.values(cellBounds(grid, c.index))).toEqual(c.cell_bounds);
    }
  });

  it("pixel -> frame/bin -> patch in zoomed and unzoomed views", () => {
    for (const c of g.pixels) {
      const v = viewOf(c.view);
      expect(xToFrame(v, c.x)).toBeCloseTo(c.frame, 9);
      expect(yToBin(v, c.y)).toBeCloseTo(c.bin, 9);
      expect(patchAtPixel(grid, v, c.x, c.y)).toBe(c.patch);
    }
  });

  it("rectangle selection selects every overlapping patch", () => {
    for (const c of g.rects) {
      const [x0, y0, x1, y1] = c.rect as [number, number, number, number];
      expect(patchesInPixelRect(grid, viewOf(c.view), x0, y0, x1, y1)).toEqual(c.patches);
    }
  });
});

describe("overlapping patches", () => {
  const ast: GridSpec = { input_shape: [128, 1024], patch_size: [16, 16], stride: [10, 10], grid_shape: [12, 101] };

  it("a point inside two footprints belongs to the patch whose stride cell holds it", () => {
    // frame 12 lies in the footprints of cols 0 ([0,16)) and 1 ([10,26)); its stride cell is col 1
    expect(patchAt(ast, 12, 3)).toBe(1);
    expect(patchAt(ast, 9.999, 3)).toBe(0);
  });

  it("a rectangle over one stride cell selects all patches whose footprints reach into it", () => {
    // frames [12, 14) x bins [12, 14): cols 0 and 1, rows 0 and 1
    expect(patchesIn(ast, { timeStart: 12, timeEnd: 14, freqStart: 12, freqEnd: 14 })).toEqual([0, 1, 101, 102]);
  });

  it("the centre of patch (row 4, col 63) maps back to it from canvas pixels", () => {
    const v: View = { f0: 0, f1: 1024, width: 1000, height: 300, numBins: 128 };
    const b = patchBounds(ast, 4 * 101 + 63);
    const x = frameToX(v, (b.timeStart + b.timeEnd) / 2);
    const y = v.height - (((b.freqStart + b.freqEnd) / 2) / 128) * v.height;
    expect(patchAtPixel(ast, v, x, y)).toBe(467);
  });
});

describe("axes against Spectrogram", () => {
  for (const a of cases.axes) {
    const axes = { timeOffset: a.axes.time_offset, hopSeconds: a.axes.hop_seconds, edges: a.axes.edges };
    it(`${a.name}: bin <-> Hz and frame -> seconds`, () => {
      for (const [bin, hz] of a.bin_to_hz as Pair[]) expect(binToHz(axes, bin)).toBeCloseTo(hz, 6);
      for (const [hz, bin] of a.hz_to_bin as Pair[]) expect(hzToBin(axes, hz)).toBeCloseTo(bin, 9);
      for (const [frame, t] of a.frame_to_time as Pair[]) expect(frameToTime(axes, frame)).toBeCloseTo(t, 12);
    });
  }

  it("mel ticks are round Hz values, evenly spread in mel", () => {
    const kaldi = cases.axes.find((a) => a.name === "kaldi")!;
    const axes = { timeOffset: 0, hopSeconds: 0.01, edges: kaldi.axes.edges };
    const ticks = frequencyTicks(axes, "mel", 320);
    expect(ticks.length).toBeGreaterThanOrEqual(6);
    for (const t of ticks) expect(t / 10 ** Math.floor(Math.log10(t))).toSatisfy((m: number) => [1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9].includes(m));
    const ys = ticks.map((t) => (hzToBin(axes, t) / 128) * 320);
    const gaps = ys.slice(1).map((y, i) => y - ys[i]!);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(28);
    // mel spacing: the top half of the axis (above ~2 kHz on Kaldi's mel scale) gets ticks too, not just the bottom
    expect(ys.filter((y) => y > 160).length).toBeGreaterThanOrEqual(2);
  });

  it("linear ticks follow a 1-2-5 step", () => {
    expect(linearTicks(0, 8000, 5)).toEqual([0, 2000, 4000, 6000, 8000]);
    expect(linearTicks(0.13, 0.61, 5)).toEqual([0.2, 0.3, 0.4, 0.5, 0.6]);
  });
});

describe("zoom and pan", () => {
  const lim = { numFrames: 1000, minSpan: 8 };

  it("zooming keeps the frame under the pointer in place", () => {
    const width = 800;
    const before: View = { f0: 100, f1: 500, width, height: 100, numBins: 10 };
    const x = 300;
    const anchor = xToFrame(before, x);
    const [f0, f1] = zoomAbout(100, 500, anchor, 0.5, lim);
    expect(f1 - f0).toBeCloseTo(200, 9);
    expect(frameToX({ ...before, f0, f1 }, anchor)).toBeCloseTo(x, 9);
  });

  it("zoom stops at the minimum span and at the whole clip", () => {
    expect(zoomAbout(0, 1000, 500, 1e-6, lim)).toEqual([496, 504]);
    expect(zoomAbout(100, 200, 150, 1e6, lim)).toEqual([0, 1000]);
  });

  it("zooming out near an edge slides the window back inside the clip", () => {
    const [f0, f1] = zoomAbout(900, 1000, 990, 3, lim);
    expect(f1).toBe(1000);
    expect(f1 - f0).toBeCloseTo(300, 9);
  });

  it("pan shifts the window and stops at the ends", () => {
    expect(panBy(100, 300, 50, lim)).toEqual([150, 350]);
    expect(panBy(100, 300, -500, lim)).toEqual([0, 200]);
    expect(panBy(100, 300, 5000, lim)).toEqual([800, 1000]);
  });

  it("clampRange repairs non-finite or inverted ranges", () => {
    expect(clampRange(Number.NaN, Number.NaN, lim)).toEqual([0, 1000]);
    expect(clampRange(50, 40, lim)).toEqual([50, 58]);
  });
});
