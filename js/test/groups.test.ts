import { describe, expect, it } from "vitest";
import { checkGroups, drawGroups, groupColor } from "../src/groups";

type Rect = [number, number, number, number];

/** Records fills and stroked segments (with their style) instead of drawing. */
class Recorder {
  fillStyle = "";
  strokeStyle = "";
  lineWidth = 1;
  fills: Array<[string, Rect]> = [];
  segments: Array<[string, number, number, number, number]> = [];
  private pen: [number, number] = [0, 0];
  private path: Array<[number, number, number, number]> = [];
  fillRect(x: number, y: number, w: number, h: number) { this.fills.push([this.fillStyle, [x, y, w, h]]); }
  beginPath() { this.path = []; }
  moveTo(x: number, y: number) { this.pen = [x, y]; }
  lineTo(x: number, y: number) { this.path.push([this.pen[0], this.pen[1], x, y]); this.pen = [x, y]; }
  stroke() { for (const s of this.path) this.segments.push([this.strokeStyle, ...s]); }
}

// 2 rows x 3 columns of 10 px cells; row 0 is drawn at the bottom (frequency runs upwards).
const GRID = { grid_shape: [2, 3] as [number, number] };
const cellRect = (i: number): Rect => [(i % 3) * 10, (1 - Math.floor(i / 3)) * 10, 10, 10];
const every = (fn: (i: number) => void) => { for (let i = 0; i < 6; i++) fn(i); };

function draw(groups: number[]): Recorder {
  const rec = new Recorder();
  const count = drawGroups(rec as unknown as CanvasRenderingContext2D, GRID, Int32Array.from(groups), cellRect, every);
  (rec as unknown as { count: number }).count = count;
  return rec;
}

const has = (rec: Recorder, seg: [number, number, number, number]) =>
  rec.segments.some(([, a, b, c, d]) => (a === seg[0] && b === seg[1] && c === seg[2] && d === seg[3]));

describe("merged-token groups", () => {
  it("fills each cell in its group's colour and outlines only group boundaries", () => {
    // row 0: [0, 0, 1]; row 1 (above): [0, 2, 2]
    const rec = draw([0, 0, 1, 0, 2, 2]);
    expect((rec as unknown as { count: number }).count).toBe(3);
    expect(rec.fills.map(([style]) => style)).toEqual([0, 0, 1, 0, 2, 2].map((g) => groupColor(g, 0.3)));
    // cells 0 and 1 share group 0: no edge at x = 10 in the bottom row; cells 1 and 2 differ: an edge at x = 20
    expect(has(rec, [10, 10, 10, 20])).toBe(false);
    expect(has(rec, [20, 10, 20, 20])).toBe(true);
    // cell 0 (bottom left) and cell 3 (above it) share group 0: no edge between them at y = 10
    expect(has(rec, [0, 10, 10, 10])).toBe(false);
    // cell 1 (group 0) under cell 4 (group 2): an edge at y = 10, drawn in cell 1's colour and in cell 4's
    const between = rec.segments.filter(([, x0, y0, x1, y1]) => y0 === 10 && y1 === 10 && x0 === 10 && x1 === 20);
    expect(new Set(between.map(([style]) => style))).toEqual(new Set([groupColor(0), groupColor(2)]));
    // the outer border is always drawn
    expect(has(rec, [0, 20, 10, 20])).toBe(true);
  });

  it("skips patches in no group", () => {
    const rec = draw([-1, -1, -1, 4, 4, 4]);
    expect((rec as unknown as { count: number }).count).toBe(1);
    expect(rec.fills).toHaveLength(3);
  });

  it("checks what the kernel sent", () => {
    expect(checkGroups(null, 6)).toBeNull();
    expect(checkGroups([0, 1], 6)).toBeNull();
    expect(checkGroups([0, 1, 2, 3, 4, 1.5], 6)).toBeNull();
    expect(checkGroups([0, 1, 2, 3, 4, -2], 6)).toBeNull();
    expect(Array.from(checkGroups([0, 1, 2, 3, 4, -1], 6)!)).toEqual([0, 1, 2, 3, 4, -1]);
  });
});
