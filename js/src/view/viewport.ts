/** The visible time range [f0, f1) in frames, the plot's size, and the `time_range` trait they follow. */

import { type Limits, type View, clampRange, frameToTime, timeToFrame } from "../geometry";
import type { ModelData, ModelWriter, ViewModel } from "../model";

/** Smallest visible range, in frames. */
export const MIN_SPAN_FRAMES = 8;

export class Viewport {
  f0 = 0;
  f1 = 1;
  /** Width of the spectrogram canvas in CSS pixels (0 until laid out). */
  width = 0;

  /**
   * @param model the widget model (height, time_range)
   * @param data the decoded traits (frame count, axes, grid offset)
   * @param writer where user-driven range changes are written
   * @param onMove called after every change of range; `published` when it was written to the model
   */
  constructor(
    private readonly model: ViewModel,
    private readonly data: ModelData,
    private readonly writer: ModelWriter,
    private readonly onMove: (published: boolean) => void,
  ) {}

  /** Height of the plot in CSS pixels (the `height` trait, 320 when it is unusable). */
  height(): number {
    const h = this.model.get("height");
    return Number.isFinite(h) && h > 40 ? h : 320;
  }

  limits(): Limits {
    return { numFrames: this.data.meta.n_frames, minSpan: MIN_SPAN_FRAMES };
  }

  view(): View {
    return { f0: this.f0, f1: this.f1, width: this.width || 1, height: this.height(), numBins: this.data.meta.n_bins };
  }

  /** The view in the grid's frames (shifted by the grid offset), for everything about patches. */
  gridView(): View {
    const v = this.view();
    return { ...v, f0: v.f0 - this.data.gridOffset, f1: v.f1 - this.data.gridOffset };
  }

  /** Show frames [a, b); `publish` writes time_range back to the model (user-driven changes). */
  setRange(a: number, b: number, publish: boolean): void {
    [this.f0, this.f1] = clampRange(a, b, this.limits());
    if (publish) this.writer.set("time_range", [frameToTime(this.data.axes, this.f0), frameToTime(this.data.axes, this.f1)]);
    this.onMove(publish);
  }

  /** Show everything. */
  showAll(): void {
    this.setRange(0, this.data.meta.n_frames, true);
  }

  /** Follow the `time_range` trait (no range: everything); nothing happens when it is already shown. */
  loadTimeRange(): void {
    const range = this.model.get("time_range");
    if (!Array.isArray(range) || range.length !== 2) {
      this.setRange(0, this.data.meta.n_frames, false);
      return;
    }
    const axes = this.data.axes;
    const [a, b] = clampRange(timeToFrame(axes, range[0]), timeToFrame(axes, range[1]), this.limits());
    if (Math.abs(a - this.f0) > 1e-6 || Math.abs(b - this.f1) > 1e-6) this.setRange(a, b, false);
  }
}
