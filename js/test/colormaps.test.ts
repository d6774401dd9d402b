import { describe, expect, it } from "vitest";
import { COLORMAP_NAMES, colorIndex, colormapTable, cssColor, packedTable } from "../src/colormaps";

// Endpoints and midpoints of matplotlib's published colormap data (_cm_listed.py), in 0..1.
const ANCHORS: Record<string, Array<[number, [number, number, number]]>> = {
  viridis: [[0, [0.267004, 0.004874, 0.329415]], [128, [0.127568, 0.566949, 0.550556]], [255, [0.993248, 0.906157, 0.143936]]],
  magma: [[0, [0.001462, 0.000466, 0.013866]], [255, [0.987053, 0.991438, 0.749504]]],
  inferno: [[0, [0.001462, 0.000466, 0.013866]], [255, [0.988362, 0.998364, 0.644924]]],
  gray: [[0, [0, 0, 0]], [255, [1, 1, 1]]],
};

describe("colormap tables", () => {
  it("hold magma, viridis, inferno and gray", () => {
    for (const name of ["magma", "viridis", "inferno", "gray"]) expect(COLORMAP_NAMES).toContain(name);
  });

  it.each(Object.entries(ANCHORS))("%s matches matplotlib's published values", (name, anchors) => {
    const lut = colormapTable(name);
    expect(lut.length).toBe(768);
    for (const [i, rgb] of anchors) {
      for (let c = 0; c < 3; c++) expect(Math.abs(lut[3 * i + c]! - rgb[c]! * 255)).toBeLessThanOrEqual(0.5 + 1e-9);
    }
  });

  it("gray is the identity ramp and magma gets brighter", () => {
    const gray = colormapTable("gray");
    for (let i = 0; i < 256; i++) expect(gray[3 * i]).toBe(i);
    const magma = colormapTable("magma");
    const lum = (i: number) => magma[3 * i]! + magma[3 * i + 1]! + magma[3 * i + 2]!;
    for (let i = 8; i < 256; i += 8) expect(lum(i)).toBeGreaterThan(lum(i - 8));
  });

  it("packs RGBA little-endian words for ImageData", () => {
    const word = packedTable("viridis")[255]!;
    const bytes = new Uint8Array(new Uint32Array([word]).buffer);
    expect(Array.from(bytes)).toEqual([253, 231, 37, 255]);
  });

  it("unknown names fall back to gray", () => {
    expect(colormapTable("no-such-map")).toBe(colormapTable("gray"));
  });
});

describe("colorIndex", () => {
  it("maps vmin..vmax onto 0..255, rounding and clamping", () => {
    expect(colorIndex(-80, -80, 0)).toBe(0);
    expect(colorIndex(0, -80, 0)).toBe(255);
    expect(colorIndex(-40, -80, 0)).toBe(128); // 127.5 rounds up, as Math.round and to_png do
    expect(colorIndex(-200, -80, 0)).toBe(0);
    expect(colorIndex(50, -80, 0)).toBe(255);
    expect(colorIndex(Number.NaN, 0, 1)).toBe(-1);
    expect(colorIndex(3, 3, 3)).toBe(128);
  });

  it("cssColor of the top of the range is the table's last entry", () => {
    expect(cssColor("viridis", 1, 0, 1)).toBe("rgb(253,231,37)");
    expect(cssColor("viridis", Number.NaN, 0, 1)).toBe("transparent");
  });
});
