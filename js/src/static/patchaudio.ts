/**
 * "▶ patches" in a saved page: the sound inside some patches' regions, by the rule of
 * audiovis/explain/patch_audio.py (STFT with a periodic Hann window of ~32 ms and a quarter hop, centred
 * frames with zero padding; a mask of 1 on every cell whose frame centre and bin centre lie in a region,
 * softened by a half-height ring; inverse STFT by windowed overlap-add over the summed squared window),
 * cut to the regions' time span. It works at the audio's own rate (Python resamples to the spectrogram's
 * first); regions are in Hz, so the same cells are kept.
 */

/** A region: seconds on the audio's clock and Hz (half-open). */
export interface Region {
  t0: number;
  t1: number;
  f0: number;
  f1: number;
}

const WINDOW_SECONDS = 0.032;

/** In-place radix-2 complex FFT of (re, im), length a power of two; `inverse` without the 1/n. */
function fft(re: Float64Array, im: Float64Array, inverse: boolean): void {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j]!, re[i]!];
      [im[i], im[j]] = [im[j]!, im[i]!];
    }
  }
  for (let size = 2; size <= n; size <<= 1) {
    const angle = ((inverse ? 2 : -2) * Math.PI) / size;
    const wr = Math.cos(angle);
    const wi = Math.sin(angle);
    for (let start = 0; start < n; start += size) {
      let cr = 1;
      let ci = 0;
      for (let k = 0; k < size / 2; k++) {
        const a = start + k;
        const b = a + size / 2;
        const tr = re[b]! * cr - im[b]! * ci;
        const ti = re[b]! * ci + im[b]! * cr;
        re[b] = re[a]! - tr;
        im[b] = im[a]! - ti;
        re[a] = re[a]! + tr;
        im[a] = im[a]! + ti;
        const next = cr * wr - ci * wi;
        ci = cr * wi + ci * wr;
        cr = next;
      }
    }
  }
}

/** `mask` [bins][frames] with a ring around it: 0.5 beside, 0.25 diagonal; never lower inside. */
function soften(mask: Float64Array[], bins: number, frames: number): Float64Array[] {
  const out = mask.map((row) => row.slice());
  const steps: Array<[number, number, number]> = [
    [-1, 0, 0.5], [1, 0, 0.5], [0, -1, 0.5], [0, 1, 0.5], [-1, -1, 0.25], [-1, 1, 0.25], [1, -1, 0.25], [1, 1, 0.25],
  ];
  for (let f = 0; f < bins; f++) {
    for (let t = 0; t < frames; t++) {
      let v = out[f]![t]!;
      for (const [df, dt, w] of steps) {
        const g = f + df;
        const u = t + dt;
        if (g >= 0 && g < bins && u >= 0 && u < frames) v = Math.max(v, w * mask[g]![u]!);
      }
      out[f]![t] = v;
    }
  }
  return out;
}

/** `signal` kept only inside `regions` (seconds from its first sample, Hz); same length. */
export function maskedWaveform(signal: Float32Array, rate: number, regions: readonly Region[]): Float32Array {
  const nFft = 1 << Math.max(4, Math.round(Math.log2(WINDOW_SECONDS * rate)));
  const hop = nFft / 4;
  const half = nFft / 2;
  const bins = half + 1;
  const length = signal.length;
  const frames = 1 + Math.floor(length / hop);
  const window = new Float64Array(nFft).map((_, k) => 0.5 - 0.5 * Math.cos((2 * Math.PI * k) / nFft));
  let mask: Float64Array[] = Array.from({ length: bins }, () => new Float64Array(frames));
  for (const r of regions) {
    for (let f = 0; f < bins; f++) {
      const hz = (f * rate) / nFft;
      if (hz < r.f0 || hz >= r.f1) continue;
      for (let t = 0; t < frames; t++) {
        const s = (t * hop) / rate;
        if (s >= r.t0 && s < r.t1) mask[f]![t] = 1;
      }
    }
  }
  mask = soften(mask, bins, frames);
  const out = new Float64Array(length);
  const envelope = new Float64Array(length);
  const re = new Float64Array(nFft);
  const im = new Float64Array(nFft);
  for (let t = 0; t < frames; t++) {
    const first = t * hop - half;
    let any = false;
    for (let f = 0; f < bins && !any; f++) any = mask[f]![t]! > 0;
    for (let k = 0; k < nFft; k++) {
      const i = first + k;
      if (i >= 0 && i < length) envelope[i]! += window[k]! * window[k]!;
    }
    if (!any) continue;
    for (let k = 0; k < nFft; k++) {
      const i = first + k;
      re[k] = i >= 0 && i < length ? signal[i]! * window[k]! : 0;
      im[k] = 0;
    }
    fft(re, im, false);
    for (let f = 0; f < bins; f++) {
      const m = mask[f]![t]!;
      re[f] = re[f]! * m;
      im[f] = im[f]! * m;
    }
    for (let f = 1; f < half; f++) {
      re[nFft - f] = re[f]!;
      im[nFft - f] = -im[f]!;
    }
    fft(re, im, true);
    for (let k = 0; k < nFft; k++) {
      const i = first + k;
      if (i >= 0 && i < length) out[i]! += (re[k]! / nFft) * window[k]!;
    }
  }
  const result = new Float32Array(length);
  for (let i = 0; i < length; i++) result[i] = envelope[i]! > 1e-11 ? out[i]! / envelope[i]! : 0;
  return result;
}

/** The sound inside `regions` cut to their time span (with two windows of context transformed): samples at
 * `rate` and the clock time of the first, as the kernel's `patch_audio` reply gives them. */
export function regionAudio(samples: Float32Array, rate: number, audioStart: number, regions: readonly Region[]): { samples: Float32Array; start: number } {
  const end = audioStart + samples.length / rate;
  const t0 = Math.max(audioStart, Math.min(...regions.map((r) => r.t0)));
  const t1 = Math.min(end, Math.max(...regions.map((r) => r.t1)));
  if (!(t1 > t0)) throw new Error(`the selected patches (${t0.toFixed(3)}-${t1.toFixed(3)} s) lie outside the audio`);
  const context = 2 * WINDOW_SECONDS;
  const first = Math.max(0, Math.floor((t0 - context - audioStart) * rate));
  const last = Math.min(samples.length, Math.ceil((t1 + context - audioStart) * rate));
  const cutStart = audioStart + first / rate;
  const shifted = regions.map((r) => ({ ...r, t0: r.t0 - cutStart, t1: r.t1 - cutStart }));
  const out = maskedWaveform(samples.subarray(first, last), rate, shifted);
  const begin = Math.round((t0 - cutStart) * rate);
  const count = Math.round((t1 - t0) * rate);
  return { samples: out.slice(begin, begin + count), start: cutStart + begin / rate };
}
