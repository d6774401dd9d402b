/** The hover-similarity kernel against cosine similarities computed in Python (tests/test_explorer.py writes the fixture). */

import { describe, expect, it } from "vitest";
import fixture from "./fixtures/similarity.json";
import { decodeHalfBulk, PatchEmbeddings } from "../src/similarity";
import type { BinaryArray } from "../src/types";

interface Case {
  patches: number[];
  expected: number[];
}

function base64Bytes(text: string): Uint8Array {
  const chars = atob(text);
  const out = new Uint8Array(chars.length);
  for (let i = 0; i < chars.length; i++) out[i] = chars.charCodeAt(i);
  return out;
}

/** The payload placed at a non-zero, odd byte offset inside a larger buffer, as a DataView. */
function payload(offset: number): BinaryArray {
  const raw = base64Bytes(fixture.float16_base64);
  const buffer = new ArrayBuffer(raw.length + offset + 3);
  new Uint8Array(buffer, offset, raw.length).set(raw);
  return { view: new DataView(buffer, offset, raw.length), dtype: "float16", shape: fixture.shape };
}

describe("float16 decode", () => {
  it("decodes the payload to the float16-rounded values Python stored, at any byte offset", () => {
    for (const offset of [0, 1, 6]) {
      const arr = payload(offset);
      const values = decodeHalfBulk(arr.view, fixture.rounded.length);
      expect(Array.from(values)).toEqual(fixture.rounded);
    }
  });

  it("decodes special values", () => {
    // 0x3c00 = 1, 0xc000 = -2, 0x0001 = smallest subnormal, 0x7bff = 65504, 0x7c00 = inf, 0x8000 = -0.
    const bits = [0x3c00, 0xc000, 0x0001, 0x7bff, 0x7c00, 0x8000];
    const view = new DataView(new Uint16Array(bits).buffer);
    const out = decodeHalfBulk(view, bits.length);
    expect(Array.from(out)).toEqual([1, -2, 2 ** -24, 65504, Infinity, -0]);
  });
});

describe("PatchEmbeddings.similarity", () => {
  const emb = PatchEmbeddings.fromBinary(payload(3));

  it("has the fixture's shape", () => {
    expect([emb.numPatches, emb.dim]).toEqual(fixture.shape);
  });

  it.each(fixture.cases as Case[])("matches Python for patches $patches", ({ patches, expected }) => {
    const got = emb.similarity(patches);
    expect(got.length).toBe(expected.length);
    for (let i = 0; i < expected.length; i++) expect(got[i]!).toBeCloseTo(expected[i]!, 5);
  });

  it("writes into a given output buffer", () => {
    const out = new Float32Array(emb.numPatches);
    const returned = emb.similarity([2], out);
    expect(returned).toBe(out);
    expect(out[2]).toBeCloseTo(1, 6);
  });

  it("ignores indices outside the grid and answers zeros for an empty query", () => {
    const first = (fixture.cases as Case[])[0]!;
    const withJunk = emb.similarity([...first.patches, -1, emb.numPatches, 1.5]);
    expect(Array.from(withJunk)).toEqual(Array.from(emb.similarity(first.patches)));
    expect(Array.from(emb.similarity([])).every((v) => v === 0)).toBe(true);
  });

  it("rejects payloads that do not match their shape or dtype", () => {
    const good = payload(0);
    expect(() => PatchEmbeddings.fromBinary({ ...good, shape: [good.shape[0]! + 1, good.shape[1]!] })).toThrow(/does not hold/);
    expect(() => PatchEmbeddings.fromBinary({ ...good, dtype: "int16" })).toThrow(/float16 or float32/);
    expect(() => PatchEmbeddings.fromBinary({ ...good, shape: [good.shape[0]! * good.shape[1]!] })).toThrow(/2-D/);
  });
});
