import { describe, expect, it } from "vitest";
import cases from "../../tests/fixtures/uint8_cases.json";
import { toFloat32 } from "../src/codecs";

// Python's decode (audiovis/rendering/codec.py dequantize_uint8) of every code over several ranges:
// the browser must give the identical float32 values.
describe("uint8 codes decode as in Python", () => {
  it.each(cases.map((c) => [c.range, c]))("range %j", (_range, c) => {
    const codes = new Uint8Array(c.codes);
    const out = toFloat32({ view: new DataView(codes.buffer), dtype: "uint8", shape: [codes.length] }, [c.range[0]!, c.range[1]!]);
    expect(Array.from(out)).toEqual(Array.from(new Float32Array(c.values)));
  });
});
