/**
 * Patch embeddings in the browser: decoded once from the float16 payload, then the cosine similarity of
 * every patch to one hovered patch (or to the mean of several) is computed locally, with no kernel round trip.
 * Same rule as Python's Analysis.similarity: cosine to the mean of the query patches' embeddings.
 */

import { decodeArray, halfToFloat } from "./codecs";
import type { BinaryArray } from "./types";

let halfTable: Float32Array | null = null;

/** All 65536 half-float bit patterns as float32 (built once, 256 KB), so bulk decoding is one lookup per value. */
function halfLookup(): Float32Array {
  if (halfTable === null) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  return halfTable;
}

/** Little-endian float16 bytes -> Float32Array (any byteOffset). */
export function decodeHalfBulk(view: DataView, n: number): Float32Array {
  if (view.byteLength < 2 * n) throw new Error(`float16 payload of ${view.byteLength} bytes cannot hold ${n} values`);
  const table = halfLookup();
  const out = new Float32Array(n);
  const bytes = new Uint8Array(view.buffer, view.byteOffset, 2 * n);
  for (let i = 0, b = 0; i < n; i++, b += 2) out[i] = table[bytes[b]! | (bytes[b + 1]! << 8)]!;
  return out;
}

/** Row-major [numPatches, dim] embeddings with their inverse row norms (0 for an all-zero row). */
export class PatchEmbeddings {
  private readonly invNorms: Float32Array;
  private readonly query: Float32Array;

  constructor(
    readonly values: Float32Array,
    readonly numPatches: number,
    readonly dim: number,
  ) {
    const n = numPatches;
    if (!Number.isInteger(n) || !Number.isInteger(dim) || n < 1 || dim < 1) {
      throw new Error(`embeddings shape must be two positive integers, got [${n}, ${dim}]`);
    }
    if (values.length !== n * dim) throw new Error(`embeddings hold ${values.length} values, expected ${n} x ${dim}`);
    this.invNorms = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let s = 0;
      const row = i * dim;
      for (let k = 0; k < dim; k++) {
        const v = values[row + k]!;
        s += v * v;
      }
      this.invNorms[i] = s > 0 && Number.isFinite(s) ? 1 / Math.sqrt(s) : 0;
    }
    this.query = new Float32Array(dim);
  }

  /** From the viewer's `embeddings` trait: {view, dtype: "float16" | "float32", shape: [n, dim]}. */
  static fromBinary(arr: BinaryArray): PatchEmbeddings {
    if (arr.shape.length !== 2) throw new Error(`embeddings must be 2-D [patches, dim], got shape [${arr.shape.join(", ")}]`);
    const [n, dim] = arr.shape as [number, number];
    let values: Float32Array;
    if (arr.dtype === "float16") {
      if (arr.view.byteLength !== 2 * n * dim) {
        throw new Error(`float16 payload of ${arr.view.byteLength} bytes does not hold ${n} x ${dim} values`);
      }
      values = decodeHalfBulk(arr.view, n * dim);
    } else if (arr.dtype === "float32") {
      values = decodeArray(arr) as Float32Array;
    } else {
      throw new Error(`embeddings must be float16 or float32, got ${JSON.stringify(arr.dtype)}`);
    }
    return new PatchEmbeddings(values, n, dim);
  }

  /**
   * Cosine similarity of every patch to the mean embedding of `patches` (indices outside 0..numPatches-1 are
   * ignored), written into `out` (length numPatches) and returned. An empty query or a zero mean gives all zeros.
   */
  similarity(patches: readonly number[], out: Float32Array = new Float32Array(this.numPatches)): Float32Array {
    const { values, dim, numPatches: n, invNorms, query } = this;
    if (out.length !== n) throw new Error(`output has length ${out.length}, expected ${n}`);
    query.fill(0);
    let count = 0;
    for (const p of patches) {
      if (!Number.isInteger(p) || p < 0 || p >= n) continue;
      const row = p * dim;
      for (let k = 0; k < dim; k++) query[k]! += values[row + k]!;
      count++;
    }
    let qq = 0;
    for (let k = 0; k < dim; k++) qq += query[k]! * query[k]!;
    if (count === 0 || !(qq > 0) || !Number.isFinite(qq)) return out.fill(0);
    // The mean's norm cancels the 1/count, so the sum is used directly.
    const invQ = 1 / Math.sqrt(qq);
    for (let i = 0; i < n; i++) {
      const row = i * dim;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let k = 0;
      for (; k + 3 < dim; k += 4) {
        s0 += values[row + k]! * query[k]!;
        s1 += values[row + k + 1]! * query[k + 1]!;
        s2 += values[row + k + 2]! * query[k + 2]!;
        s3 += values[row + k + 3]! * query[k + 3]!;
      }
      for (; k < dim; k++) s0 += values[row + k]! * query[k]!;
      out[i] = (s0 + s1 + s2 + s3) * invNorms[i]! * invQ;
    }
    return out;
  }
}
