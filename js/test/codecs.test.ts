import { describe, expect, it } from "vitest";
import { decodeArray, halfToFloat, pcmToFloat32, toFloat32 } from "../src/codecs";

/** A DataView over `bytes` placed at `offset` inside a larger buffer (as the widget protocol hands them over). */
function viewAt(bytes: Uint8Array, offset: number): DataView {
  const buf = new ArrayBuffer(offset + bytes.length + 5);
  new Uint8Array(buf).fill(0xee);
  new Uint8Array(buf, offset, bytes.length).set(bytes);
  return new DataView(buf, offset, bytes.length);
}

const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

describe("decodeArray", () => {
  it.each([0, 1, 3, 4, 8])("float32 at byteOffset %i", (offset) => {
    const values = new Float32Array([1.5, -2.25, 3e-5, 1e30]);
    const out = decodeArray({ view: viewAt(bytesOf(values), offset), dtype: "float32", shape: [2, 2] });
    expect(Array.from(out)).toEqual(Array.from(values));
  });

  it.each([0, 1, 2, 7])("int16 and float64 at byteOffset %i", (offset) => {
    const i16 = new Int16Array([-32768, -1, 0, 32767]);
    expect(Array.from(decodeArray({ view: viewAt(bytesOf(i16), offset), dtype: "int16", shape: [4] }))).toEqual(Array.from(i16));
    const f64 = new Float64Array([Math.PI, -0.5]);
    expect(Array.from(decodeArray({ view: viewAt(bytesOf(f64), offset), dtype: "float64", shape: [2] }))).toEqual(Array.from(f64));
  });

  it("uint8 never reads bytes outside the view", () => {
    const out = decodeArray({ view: viewAt(new Uint8Array([0, 128, 255]), 5), dtype: "uint8", shape: [3] });
    expect(Array.from(out)).toEqual([0, 128, 255]);
  });

  it("rejects a payload whose size does not match its shape, and unknown dtypes", () => {
    expect(() => decodeArray({ view: viewAt(new Uint8Array(7), 1), dtype: "float32", shape: [2] })).toThrow(/does not hold/);
    expect(() => decodeArray({ view: viewAt(new Uint8Array(4), 0), dtype: "complex64", shape: [1] })).toThrow(/unsupported dtype/);
  });
});

describe("float16", () => {
  it("decodes known half-precision bit patterns", () => {
    // IEEE 754 binary16 reference values
    expect(halfToFloat(0x3c00)).toBe(1);
    expect(halfToFloat(0xc000)).toBe(-2);
    expect(halfToFloat(0x7bff)).toBe(65504);
    expect(halfToFloat(0x0001)).toBe(2 ** -24);
    expect(halfToFloat(0x3555)).toBeCloseTo(0.333251953125, 12);
    expect(halfToFloat(0x7c00)).toBe(Infinity);
    expect(halfToFloat(0x7e00)).toBeNaN();
  });

  it("decodes an odd-offset float16 array", () => {
    const words = new Uint16Array([0x3c00, 0xc000, 0x3800]);
    const out = decodeArray({ view: viewAt(bytesOf(words), 3), dtype: "float16", shape: [3, 1] });
    expect(Array.from(out)).toEqual([1, -2, 0.5]);
  });
});

describe("value decoding", () => {
  it("uint8 codes map onto the value range like serializers.dequantize_uint8", () => {
    const out = toFloat32({ view: viewAt(new Uint8Array([0, 51, 255]), 1), dtype: "uint8", shape: [3] }, [-80, 0]);
    expect(out[0]).toBeCloseTo(-80, 5);
    expect(out[1]).toBeCloseTo(-80 + 51 * (80 / 255), 5);
    expect(out[2]).toBeCloseTo(0, 5);
  });

  it("int16 PCM becomes floats in [-1, 1)", () => {
    const pcm = new Int16Array([-32768, 0, 16384]);
    expect(Array.from(pcmToFloat32({ view: viewAt(bytesOf(pcm), 1), dtype: "int16", shape: [3] }))).toEqual([-1, 0, 0.5]);
  });
});
