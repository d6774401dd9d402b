/** The LongViewer's window strip helpers: parsing untrusted window lists, lookup, label fitting. */

import { describe, expect, it } from "vitest";
import { drawWindowStrip, fitLabel, parseWindows, windowAt } from "../src/view/strip";

describe("window strip", () => {
  it("keeps only well-formed windows and labels", () => {
    const got = parseWindows([
      { start: 0, end: 1024, labels: [["speech", 0.9], ["<b>dog</b>", 0.1], [3, 0.2], ["x"]] },
      { start: 5, end: 5, labels: [] },
      null,
      "window",
      { start: 1024, end: 2048 },
    ]);
    expect(got).toEqual([
      { start: 0, end: 1024, labels: [["speech", 0.9], ["<b>dog</b>", 0.1]] },
      { start: 1024, end: 2048, labels: [] },
    ]);
    expect(parseWindows({ start: 0 })).toEqual([]);
  });

  it("finds the window holding a frame", () => {
    const w = parseWindows([0, 1, 2, 3].map((k) => ({ start: k * 100, end: k * 100 + 100, labels: [] })));
    expect(windowAt(w, 0)).toBe(0);
    expect(windowAt(w, 99.9)).toBe(0);
    expect(windowAt(w, 100)).toBe(1);
    expect(windowAt(w, 399)).toBe(3);
    expect(windowAt(w, 400)).toBe(-1);
    expect(windowAt(w, -1)).toBe(-1);
    const gap = parseWindows([{ start: 0, end: 10, labels: [] }, { start: 20, end: 30, labels: [] }]);
    expect(windowAt(gap, 15)).toBe(-1);
  });

  it("fits a label to the space: score, then the name cut with an ellipsis", () => {
    const measure = (s: string) => s.length * 6;
    expect(fitLabel(["speech", 0.934], 200, measure)).toBe("speech 0.93");
    expect(fitLabel(["speech", 0.934], 40, measure)).toBe("speech");
    expect(fitLabel(["speech", 0.934], 30, measure)).toBe("spee…");
    expect(fitLabel(["speech", 0.934], 7, measure)).toBe("");
    expect(fitLabel(undefined, 100, measure)).toBe("");
  });

  it("draws each window's top label, and an ellipsis while a window's labels are pending", () => {
    const texts: string[] = [];
    const ctx = {
      clearRect() {}, fillRect() {}, strokeRect() {},
      measureText: (s: string) => ({ width: s.length * 6 }),
      fillText: (s: string) => texts.push(s),
    } as unknown as CanvasRenderingContext2D;
    const windows = parseWindows([
      { start: 0, end: 100, labels: [["tone", 0.5]] },
      { start: 100, end: 200, labels: [] },
    ]);
    drawWindowStrip(ctx, windows, { f0: 0, f1: 200, width: 400, height: 20, numBins: 128 }, 20, -1, "#000");
    expect(texts).toEqual(["tone 0.50", "…"]);
  });
});
