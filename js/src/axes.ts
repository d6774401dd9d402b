/**
 * Axes around the spectrogram: tick placement and labels (seconds, Hz, colour-bar values) and the time
 * axis, frequency axis and colour bars drawn from them.
 */

import { colormapTable } from "./colormaps";
import { type Axes, type View, frameToTime, frameToX, hzToBin, timeToFrame } from "./geometry";
import { line } from "./render";

const UNIT_LABELS: Record<string, string> = {
  dB: "dB",
  "normalized-fbank": "normalised log-mel",
  power: "power",
  magnitude: "magnitude",
};

/** How a spectrogram's `units` are named on the colour bar and in the tooltip. */
export function unitLabel(units: string): string {
  return UNIT_LABELS[units] ?? units;
}

/** 1-2-5 step giving at most `maxTicks` ticks over `span`. */
export function niceStep(span: number, maxTicks: number): number {
  const raw = span / Math.max(1, maxTicks);
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

/** Nice tick values in [lo, hi]. */
export function linearTicks(lo: number, hi: number, maxTicks: number): number[] {
  if (!(hi > lo)) return [lo];
  const step = niceStep(hi - lo, maxTicks);
  const out: number[] = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) out.push(+(k * step).toPrecision(12));
  return out;
}

/** Seconds label with as many decimals as the tick step needs. */
export function formatSeconds(t: number, step: number): string {
  const decimals = Math.max(0, Math.min(4, -Math.floor(Math.log10(step) + 1e-9)));
  return `${t.toFixed(decimals)} s`;
}

export function formatHz(hz: number): string {
  if (Math.abs(hz) >= 1000) return `${+(hz / 1000).toPrecision(3)} kHz`;
  return `${Math.round(hz)} Hz`;
}

/**
 * Frequency ticks in Hz for an axis `height` px tall: for mel (or any non-linear) edges, round Hz values
 * taken bottom-up at least `minGap` px apart, so they fall mel-spaced; for linear edges, a 1-2-5 sequence.
 */
export function frequencyTicks(a: Axes, scale: string, height: number, minGap = 28): number[] {
  const lo = a.edges[0]!;
  const hi = a.edges[a.edges.length - 1]!;
  const numBins = a.edges.length - 1;
  if (scale === "linear") return linearTicks(lo, hi, Math.max(2, Math.floor(height / minGap)));
  const candidates: number[] = [];
  for (let p = 1; p <= 5; p++) for (const m of [1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9]) candidates.push(m * 10 ** p);
  const out: number[] = [];
  let lastY = Infinity;
  for (const hz of candidates) {
    if (hz < lo || hz > hi) continue;
    const y = height - (hzToBin(a, hz) / numBins) * height;
    if (lastY - y >= minGap) {
      out.push(hz);
      lastY = y;
    }
  }
  return out;
}

const AXIS_FONT = "11px var(--jp-ui-font-family, system-ui, sans-serif)";

/** Time axis under the spectrogram: ticks in seconds adapted to the zoom. */
export function drawTimeAxis(ctx: CanvasRenderingContext2D, v: View, a: Axes, width: number, height: number, color: string): void {
  ctx.clearRect(0, 0, width, height);
  const t0 = frameToTime(a, v.f0);
  const t1 = frameToTime(a, v.f1);
  const maxTicks = Math.max(2, Math.floor(width / 80));
  const step = niceStep(t1 - t0, maxTicks);
  ctx.fillStyle = color;
  ctx.strokeStyle = color;
  ctx.font = AXIS_FONT;
  ctx.textBaseline = "top";
  ctx.lineWidth = 1;
  for (const t of linearTicks(t0, t1, maxTicks)) {
    const x = Math.round(frameToX(v, timeToFrame(a, t))) + 0.5;
    line(ctx, x, 0, x, 5);
    const label = formatSeconds(t, step);
    const w = ctx.measureText(label).width;
    ctx.fillText(label, Math.min(Math.max(0, x - w / 2), width - w), 7);
  }
}

/** Frequency axis left of the spectrogram: Hz/kHz labels (mel scales at mel-spaced ticks). */
export function drawFrequencyAxis(ctx: CanvasRenderingContext2D, a: Axes, scale: string, width: number, height: number, color: string): void {
  ctx.clearRect(0, 0, width, height);
  const numBins = a.edges.length - 1;
  ctx.fillStyle = color;
  ctx.strokeStyle = color;
  ctx.font = AXIS_FONT;
  ctx.textBaseline = "middle";
  ctx.textAlign = "right";
  ctx.lineWidth = 1;
  for (const hz of frequencyTicks(a, scale, height)) {
    const y = Math.round(height - (hzToBin(a, hz) / numBins) * height) + 0.5;
    line(ctx, width - 5, y, width, y);
    ctx.fillText(formatHz(hz), width - 7, Math.min(Math.max(6, y), height - 6));
  }
}

/** A tick label that tells neighbouring ticks ``step`` apart; exponent form for tiny or huge values. */
export function formatTick(value: number, step: number): string {
  if (Math.abs(value) < step * 1e-6) return "0";
  const stepExp = Math.floor(Math.log10(Math.abs(step)) + 1e-9);
  if (stepExp >= -4 && Math.abs(value) < 1e6) return value.toFixed(Math.max(0, -stepExp));
  const valueExp = Math.floor(Math.log10(Math.abs(value)) + 1e-9);
  return value.toExponential(Math.min(6, Math.max(0, valueExp - stepExp)));
}

/** One vertical colour bar with its range, ticks and units label. */
export function drawColorbar(
  ctx: CanvasRenderingContext2D,
  x: number,
  top: number,
  barHeight: number,
  colormap: string,
  lo: number,
  hi: number,
  label: string,
  color: string,
): void {
  const lut = colormapTable(colormap);
  const barWidth = 12;
  for (let y = 0; y < barHeight; y++) {
    const k = Math.round((1 - y / Math.max(1, barHeight - 1)) * 255);
    ctx.fillStyle = `rgb(${lut[3 * k]},${lut[3 * k + 1]},${lut[3 * k + 2]})`;
    ctx.fillRect(x, top + y, barWidth, 1);
  }
  ctx.fillStyle = color;
  ctx.strokeStyle = color;
  ctx.font = AXIS_FONT;
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  const ticks = linearTicks(lo, hi, Math.max(2, Math.floor(barHeight / 40)));
  const step = ticks.length > 1 ? ticks[1]! - ticks[0]! : 1;
  for (const t of ticks) {
    const y = Math.round(top + (1 - (t - lo) / (hi - lo || 1)) * (barHeight - 1)) + 0.5;
    line(ctx, x + barWidth, y, x + barWidth + 3, y);
    ctx.fillText(formatTick(t, step), x + barWidth + 5, y);
  }
  ctx.save();
  ctx.translate(x - 4, top + barHeight / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textAlign = "center";
  ctx.textBaseline = "bottom";
  ctx.fillText(label, 0, 0);
  ctx.restore();
}
