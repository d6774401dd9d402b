/** "▶ patches" in saved pages (src/static/patchaudio.ts): perfect reconstruction, band and time selection. */

import { describe, expect, it } from "vitest";
import { maskedWaveform, regionAudio } from "../src/static/patchaudio";

const RATE = 16000;

function tones(seconds: number, parts: Array<[number, number]>): Float32Array {
  const out = new Float32Array(seconds * RATE);
  for (let i = 0; i < out.length; i++) for (const [hz, amp] of parts) out[i] = out[i]! + amp * Math.sin((2 * Math.PI * hz * i) / RATE);
  return out;
}

function rms(x: Float32Array, a = 0, b = x.length): number {
  let s = 0;
  for (let i = a; i < b; i++) s += x[i]! * x[i]!;
  return Math.sqrt(s / Math.max(1, b - a));
}

describe("maskedWaveform", () => {
  it("gives the signal back when the region covers everything (STFT / overlap-add reconstruct exactly)", () => {
    const x = tones(1, [[440, 0.5], [2500, 0.2]]);
    const y = maskedWaveform(x, RATE, [{ t0: -1, t1: 2, f0: 0, f1: RATE }]);
    let err = 0;
    for (let i = 0; i < x.length; i++) err = Math.max(err, Math.abs(x[i]! - y[i]!));
    expect(err).toBeLessThan(1e-5);
  });

  it("keeps the band and the time span of the region", () => {
    const low = tones(2, [[500, 0.5]]);
    const x = tones(2, [[500, 0.5], [3000, 0.5]]);
    const y = maskedWaveform(x, RATE, [{ t0: 0.5, t1: 1.5, f0: 0, f1: 2000 }]);
    const a = 0.7 * RATE;
    const b = 1.3 * RATE;
    const diff = new Float32Array(b - a).map((_, i) => y[a + i]! - low[a + i]!);
    expect(rms(diff)).toBeLessThan(0.02 * rms(low, a, b)); // inside: the 500 Hz tone alone
    expect(rms(y, 0, 0.3 * RATE)).toBeLessThan(1e-3); // before the span: silence
    expect(rms(y, 1.7 * RATE, 2 * RATE)).toBeLessThan(1e-3); // after it too
  });
});

describe("regionAudio", () => {
  it("cuts to the regions' span on the audio's clock", () => {
    const x = tones(3, [[800, 0.4]]);
    const out = regionAudio(x, RATE, 10, [{ t0: 11, t1: 11.5, f0: 0, f1: 8000 }, { t0: 11.25, t1: 12, f0: 500, f1: 1000 }]);
    expect(out.start).toBeCloseTo(11, 3);
    expect(out.samples.length).toBe(Math.round(1.0 * RATE));
    expect(rms(out.samples, 0.1 * RATE, 0.9 * RATE)).toBeGreaterThan(0.25); // the 800 Hz tone is inside both
    expect(() => regionAudio(x, RATE, 10, [{ t0: 20, t1: 21, f0: 0, f1: 8000 }])).toThrow(/outside the audio/);
  });
});
