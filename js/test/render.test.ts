import { describe, expect, it } from "vitest";
import cases from "../../tests/fixtures/render_cases.json";
import { toFloat32 } from "../src/codecs";
import { formatTick } from "../src/axes";
import { ArraySource, paintSpectrogram, pixelBins, pixelFrames } from "../src/render";

function bytes(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** ImageData stand-in for Node (same fields paintSpectrogram touches). */
function image(width: number, height: number): ImageData {
  return { width, height, data: new Uint8ClampedArray(width * height * 4), colorSpace: "srgb" } as ImageData;
}

describe.each(cases.cases)("paintSpectrogram $name matches Python's to_png", (c) => {
  it("paints the same RGBA bytes", () => {
    const codes = bytes(c.codes);
    const values = toFloat32({ view: new DataView(codes.buffer), dtype: "uint8", shape: c.shape }, c.value_range as [number, number]);
    const src = new ArraySource(values, c.n_bins, c.n_frames, c.frames_per_column);
    const img = image(c.width, c.height);
    paintSpectrogram(img, src, { f0: c.f0, f1: c.f1, colormap: c.colormap, vmin: c.vmin, vmax: c.vmax, validFrames: c.valid_frames });
    const expected = bytes(c.rgba);
    let mismatches = 0;
    for (let i = 0; i < expected.length; i++) if (img.data[i] !== expected[i]) mismatches++;
    expect(mismatches).toBe(0);
  });
});

describe("pixel sampling", () => {
  it("zoomed in: each pixel shows the frame under its centre", () => {
    expect(pixelFrames(10, 12, 8, 0)).toEqual([10, 11]);
    expect(pixelFrames(10, 12, 8, 7)).toEqual([11, 12]);
  });

  it("zoomed out: a pixel spans every frame it touches", () => {
    expect(pixelFrames(0, 100, 10, 0)).toEqual([0, 10]);
    expect(pixelFrames(0, 100, 30, 1)).toEqual([3, 7]);
  });

  it("rows count from the bottom bin", () => {
    expect(pixelBins(4, 8, 7)).toEqual([0, 1]);
    expect(pixelBins(4, 8, 0)).toEqual([3, 4]);
    expect(pixelBins(128, 64, 63)).toEqual([0, 2]);
  });

  it("ArraySource max-pools frames, and reads pooled columns for long recordings", () => {
    const values = new Float32Array([0, 1, 5, 2, /* bin 1 */ 9, 0, 0, 3]);
    const src = new ArraySource(values, 2, 4);
    const out = new Float32Array(2);
    src.reduceFrames(1, 3, out);
    expect(Array.from(out)).toEqual([5, 0]);
    const pooled = new ArraySource(new Float32Array([1, 7, 4, 2]), 2, 20, 10);
    pooled.reduceFrames(12, 13, out);
    expect(Array.from(out)).toEqual([7, 2]);
  });
});

describe("formatTick", () => {
  it("keeps neighbouring colour-bar ticks distinct at every scale", () => {
    const cases: Array<[number, number]> = [[0.5, 1], [0.001, 0.0005], [0.0001, 0.00002], [1e-6, 2e-7], [2e6, 5e5], [-40, 10]];
    for (const [start, step] of cases) {
      const labels = [0, 1, 2, 3].map((k) => formatTick(start + k * step, step));
      expect(new Set(labels).size).toBe(4);
      labels.forEach((label, k) => expect(Math.abs(Number(label) - (start + k * step))).toBeLessThanOrEqual(step / 2));
    }
  });
  it("prints plain decimals for ordinary ranges", () => {
    expect(formatTick(0.25, 0.05)).toBe("0.25");
    expect(formatTick(-40, 10)).toBe("-40");
    expect(formatTick(0.0021, 0.0001)).toBe("0.0021");
    expect(formatTick(0, 0.5)).toBe("0");
  });
});
