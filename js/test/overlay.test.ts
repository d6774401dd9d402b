import { describe, expect, it } from "vitest";
import { type View, boxToRect, cellBounds, patchBounds } from "../src/geometry";
import { type OverlayState, drawOverlay } from "../src/render";
import type { GridSpec } from "../src/types";
import { Raster } from "./raster";

// An AST-like overlapping grid (16 x 16 patches, stride 10) on 64 bins x 100 frames: 5 x 9 patches.
const GRID: GridSpec = { input_shape: [64, 100], patch_size: [16, 16], stride: [10, 10], grid_shape: [5, 9] };
// 2 CSS px per frame and per bin, so cells are 20 x 20 px and footprints 32 x 32 px.
const VIEW: View = { f0: 0, f1: 100, width: 200, height: 128, numBins: 64 };
const RED: [number, number, number] = [200, 30, 30];

function state(over: Partial<OverlayState>): OverlayState {
  return {
    view: VIEW,
    grid: GRID,
    showGrid: false,
    selection: new Set(),
    masked: new Set(),
    hovered: null,
    heatmap: null,
    heatmapRange: [0, 1],
    heatmapColormap: "viridis",
    heatmapOpacity: 0.6,
    validFrames: 100,
    numFrames: 100,
    playheadFrame: null,
    rubberBand: null,
    ...over,
  };
}

function draw(over: Partial<OverlayState>): Raster {
  const r = new Raster(VIEW.width, VIEW.height, RED);
  drawOverlay(r.context, state(over));
  return r;
}

/** Pixels whose centre lies inside the rectangle [x, y, w, h], shrunk by `inset` px on every side. */
function pixelsIn([x, y, w, h]: [number, number, number, number], inset = 0): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let j = Math.ceil(y + inset - 0.5); j + 0.5 < y + h - inset; j++) {
    for (let i = Math.ceil(x + inset - 0.5); i + 0.5 < x + w - inset; i++) out.push([i, j]);
  }
  return out;
}

const spread = ([r, g, b]: number[]) => Math.max(r!, g!, b!) - Math.min(r!, g!, b!);
const same = (a: number[], b: number[]) => a.every((v, k) => Math.abs(v - b[k]!) < 1e-6);

describe("masked (pruned) patches", () => {
  const patch = 1 * 9 + 3; // row 1, col 3: cell frames [30, 40), bins [10, 20)
  const cell = boxToRect(VIEW, cellBounds(GRID, patch));

  it("grey out exactly their stride cell", () => {
    const plain = draw({});
    const masked = draw({ masked: new Set([patch]) });
    const inside = pixelsIn(cell);
    expect(inside.length).toBe(400);
    for (const [x, y] of inside) {
      const px = masked.pixel(x, y);
      // desaturated: the red background's channel spread (170) mostly gone, the colour pulled towards grey
      expect(spread(px)).toBeLessThan(0.3 * spread(RED));
      expect(Math.abs(px[0] - 110)).toBeLessThan(Math.abs(RED[0] - 110) / 2);
    }
    const inCell = new Set(inside.map(([x, y]) => `${x},${y}`));
    for (let y = 0; y < VIEW.height; y++) {
      for (let x = 0; x < VIEW.width; x++) {
        if (!inCell.has(`${x},${y}`)) expect(same(masked.pixel(x, y), plain.pixel(x, y))).toBe(true);
      }
    }
  });

  it("stay grey over a heatmap", () => {
    const heatmap = new Float32Array(45).fill(1); // viridis' top colour, a saturated yellow
    const hot = draw({ heatmap, heatmapOpacity: 1 });
    const masked = draw({ heatmap, heatmapOpacity: 1, masked: new Set([patch]) });
    const [x, y] = pixelsIn(cell)[210]!;
    expect(spread(hot.pixel(x, y))).toBeGreaterThan(150);
    expect(spread(masked.pixel(x, y))).toBeLessThan(0.3 * spread(hot.pixel(x, y)));
  });
});

describe("hovered patch on an overlapping grid", () => {
  const patch = 2 * 9 + 4; // row 2, col 4: footprint frames [40, 56), bins [20, 36); cell frames [40, 50), bins [20, 30)
  const foot = boxToRect(VIEW, patchBounds(GRID, patch));
  const cell = boxToRect(VIEW, cellBounds(GRID, patch));

  it("outlines the full 16 x 16 footprint, reaching into the neighbouring stride cells", () => {
    [80, 56, 32, 32].forEach((v, k) => expect(foot[k]).toBeCloseTo(v, 9));
    [80, 68, 20, 20].forEach((v, k) => expect(cell[k]).toBeCloseTo(v, 9));
    const plain = draw({});
    const hover = draw({ hovered: patch });
    const white = (x: number, y: number) => same(hover.pixel(x, y), [255, 255, 255]);
    // the right edge (frame 56) lies 6 frames into column 5's cells, the top edge (bin 36) 6 bins into row 3's
    for (let y = 58; y < 86; y++) expect(white(111, y), `right edge at y=${y}`).toBe(true);
    for (let x = 82; x < 110; x++) expect(white(x, 56), `top edge at x=${x}`).toBe(true);
    for (let y = 58; y < 86; y++) expect(white(80, y), `left edge at y=${y}`).toBe(true);
    for (let x = 82; x < 110; x++) expect(white(x, 87), `bottom edge at x=${x}`).toBe(true);
    // the changed pixels span the footprint (plus the outline's width), not just the cell
    let [x0, x1, y0, y1] = [Infinity, -Infinity, Infinity, -Infinity];
    for (let y = 0; y < VIEW.height; y++) {
      for (let x = 0; x < VIEW.width; x++) {
        if (same(hover.pixel(x, y), plain.pixel(x, y))) continue;
        [x0, x1, y0, y1] = [Math.min(x0, x), Math.max(x1, x), Math.min(y0, y), Math.max(y1, y)];
      }
    }
    expect([x0, x1, y0, y1]).toEqual([78, 113, 54, 89]);
    // an outline, not a fill: inside the footprint but outside the cell nothing changes
    for (const [x, y] of [[106, 62], [96, 62], [106, 80]] as const) expect(same(hover.pixel(x, y), plain.pixel(x, y))).toBe(true);
    // the hovered cell itself is lightened
    const [cx, cy] = [90, 78];
    expect(hover.pixel(cx, cy)[1]).toBeGreaterThan(plain.pixel(cx, cy)[1] + 40);
  });
});
