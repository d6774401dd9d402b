/** Binary payloads from Python ({view, dtype, shape}) -> typed arrays, honouring the DataView's byteOffset. */

import type { BinaryArray } from "./types";

export type NumericArray = Uint8Array | Int16Array | Int32Array | Float32Array | Float64Array;

const SIZES: Record<string, number> = {
  uint8: 1,
  int16: 2,
  float16: 2,
  int32: 4,
  float32: 4,
  float64: 8,
};

/** Number of elements a shape holds. */
export function shapeSize(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function checkLength(arr: BinaryArray): number {
  const size = SIZES[arr.dtype];
  if (size === undefined) throw new Error(`unsupported dtype ${JSON.stringify(arr.dtype)}`);
  const n = shapeSize(arr.shape);
  if (arr.view.byteLength !== n * size) {
    throw new Error(`payload of ${arr.view.byteLength} bytes does not hold ${n} ${arr.dtype} values (shape ${arr.shape.join("x")})`);
  }
  return n;
}

/**
 * Copy-free typed array over the payload when its offset is aligned, else an aligned copy.
 * float16 is widened to Float32Array.
 */
export function decodeArray(arr: BinaryArray): NumericArray {
  const n = checkLength(arr);
  const { buffer, byteOffset, byteLength } = arr.view;
  switch (arr.dtype) {
    case "uint8":
      return new Uint8Array(buffer, byteOffset, n);
    case "float16":
      return decodeFloat16(arr.view, n);
    default: {
      const Ctor = { int16: Int16Array, int32: Int32Array, float32: Float32Array, float64: Float64Array }[arr.dtype]!;
      if (byteOffset % Ctor.BYTES_PER_ELEMENT === 0) return new Ctor(buffer as ArrayBuffer, byteOffset, n);
      return new Ctor((buffer as ArrayBuffer).slice(byteOffset, byteOffset + byteLength));
    }
  }
}

/** IEEE 754 half floats (little-endian) -> Float32Array. */
export function decodeFloat16(view: DataView, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = halfToFloat(view.getUint16(i * 2, true));
  return out;
}

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** Values of a payload as float32; uint8 codes are mapped linearly onto `range` (code 0 -> range[0], 255 -> range[1]). */
export function toFloat32(arr: BinaryArray, range?: readonly [number, number]): Float32Array {
  const raw = decodeArray(arr);
  if (arr.dtype === "uint8" && range) {
    const [lo, hi] = range;
    const step = (hi - lo) / 255;
    const out = new Float32Array(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = lo + raw[i]! * step;
    return out;
  }
  return raw instanceof Float32Array ? raw : Float32Array.from(raw);
}

/** PCM chunk (int16 or float32) -> float32 samples in [-1, 1]. */
export function pcmToFloat32(arr: BinaryArray): Float32Array {
  const raw = decodeArray(arr);
  if (arr.dtype === "int16") {
    const out = new Float32Array(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = raw[i]! / 32768;
    return out;
  }
  if (arr.dtype !== "float32") throw new Error(`PCM must be int16 or float32, got ${arr.dtype}`);
  return raw as Float32Array;
}
