/**
 * Colormap tables (256 RGB entries each), read from the same JSON file Python's to_png uses,
 * so the browser and the PNG map a value to the same colour.
 */

import tables from "../../audiovis/rendering/colormaps.json";

export const COLORMAP_NAMES = Object.keys(tables).filter((k) => !k.startsWith("_"));

const cache = new Map<string, Uint8Array>();

function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** The 256 x 3 RGB table of a colormap; unknown names fall back to gray with a warning. */
export function colormapTable(name: string): Uint8Array {
  let lut = cache.get(name);
  if (lut) return lut;
  const hex = (tables as Record<string, string>)[name];
  if (hex === undefined || name.startsWith("_")) {
    console.warn(`audiovis: unknown colormap ${JSON.stringify(name)}, using gray`);
    return colormapTable("gray");
  }
  lut = hexToBytes(hex);
  cache.set(name, lut);
  return lut;
}

/**
 * Table index of a value: round((v - vmin) / (vmax - vmin) * 255), clamped to 0..255.
 * Non-finite values give -1 (drawn transparent). Same rule as serializers/to_png in Python.
 */
export function colorIndex(v: number, vmin: number, vmax: number): number {
  if (!Number.isFinite(v)) return -1;
  const span = vmax - vmin;
  const t = span > 0 ? (v - vmin) / span : 0.5;
  const i = Math.round(t * 255);
  return i < 0 ? 0 : i > 255 ? 255 : i;
}

/** RGBA words (little-endian, opaque) for fast ImageData writes. */
export function packedTable(name: string): Uint32Array {
  const lut = colormapTable(name);
  const out = new Uint32Array(256);
  for (let i = 0; i < 256; i++) out[i] = (255 << 24) | (lut[3 * i + 2]! << 16) | (lut[3 * i + 1]! << 8) | lut[3 * i]!;
  return out;
}

/** CSS colour of a value. */
export function cssColor(name: string, v: number, vmin: number, vmax: number): string {
  const i = colorIndex(v, vmin, vmax);
  if (i < 0) return "transparent";
  const lut = colormapTable(name);
  return `rgb(${lut[3 * i]},${lut[3 * i + 1]},${lut[3 * i + 2]})`;
}
