/**
 * Drawing one view, at most once per animation frame: the spectrogram is painted into an offscreen canvas
 * only when the range, size or colour scale changed; each frame composites it and draws the overlay; the
 * chrome (axes, colour bars, strip) is redrawn when it went stale. The root's data attributes report draw
 * times and counts and the tile cache's figures, for tests and benchmarks.
 */

import { drawColorbar, drawFrequencyAxis, drawTimeAxis, unitLabel } from "../axes";
import { frameToTime, timeToFrame } from "../geometry";
import type { ModelData, ViewModel } from "../model";
import { type OverlayState, drawOverlay, paintSpectrogram } from "../render";
import type { Playhead } from "./controls";
import { COLORBAR_WIDTH, type Dom, FREQ_AXIS_WIDTH, TIME_AXIS_HEIGHT, context2d } from "./dom";
import { type ActiveHeatmap, activeHeatmap, heatmapRange } from "./heatmap";
import { paintStrip } from "./strip";
import type { Viewport } from "./viewport";

/** What the drawing reads from the rest of the view. */
export interface Scene {
  hovered(): number | null;
  rubberBand(): [number, number, number, number] | null;
  playhead(): Playhead;
}

export class Drawing {
  /** The spectrogram at device resolution, repainted only when `imageStale`. */
  private readonly image = document.createElement("canvas");
  private imageStale = true;
  private chromeStale = true;
  private raf = 0;

  /**
   * @param model the widget model (colour scales, heatmap traits, the LongViewer's window)
   * @param dom the canvases and readout drawn into
   * @param data the decoded traits
   * @param viewport the visible range and size
   * @param scene hover, rubber band and playhead
   */
  constructor(
    private readonly model: ViewModel,
    private readonly dom: Dom,
    private readonly data: ModelData,
    private readonly viewport: Viewport,
    private readonly scene: Scene,
  ) {}

  /** Draw at the next animation frame (once, however often asked). */
  request(): void {
    if (!this.raf) this.raf = requestAnimationFrame(() => this.draw());
  }

  /** The spectrogram image must be repainted (and so the chrome redrawn). */
  staleImage(): void {
    this.imageStale = true;
    this.chromeStale = true;
  }

  /** Axes, colour bars and strip must be redrawn. */
  staleChrome(): void {
    this.chromeStale = true;
  }

  /** The canvases were laid out again: the offscreen image follows the canvas's size. */
  resized(): void {
    this.image.width = this.dom.canvas.width;
    this.image.height = this.dom.canvas.height;
    this.staleImage();
    this.request();
  }

  /** A tile arrived: repaint, and publish the cache's figures for tests and benchmarks. */
  onTile(): void {
    const s = this.data.tiles!.stats;
    const root = this.dom.root;
    root.dataset.tilesReceived = String(s.received);
    root.dataset.tileBytes = String(s.cachedBytes);
    root.dataset.tileFetchMs = s.lastFetchMs.toFixed(1);
    this.imageStale = true;
    this.request();
  }

  private draw(): void {
    this.raf = 0;
    const { dom, data, viewport, model } = this;
    if (!viewport.width) return;
    const started = performance.now();
    const dpr = dom.canvas.width / viewport.width;
    if (this.imageStale) this.paintImage();
    const ctx = context2d(dom.canvas);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, dom.canvas.width, dom.canvas.height);
    ctx.drawImage(this.image, 0, 0);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const hovered = this.scene.hovered();
    const hm = activeHeatmap(model, data, hovered);
    const playhead = this.scene.playhead();
    const offset = data.gridOffset;
    const overlay: OverlayState = {
      view: viewport.gridView(),
      grid: data.grid,
      showGrid: model.get("show_grid"),
      selection: data.selection,
      masked: data.masked,
      groups: data.groups,
      hovered,
      heatmap: hm?.values ?? null,
      heatmapRange: hm ? heatmapRange(hm.values, model.get("heatmap_range")) : [0, 1],
      heatmapColormap: model.get("heatmap_colormap"),
      heatmapOpacity: model.get("heatmap_opacity"),
      validFrames: data.meta.valid_frames - offset,
      numFrames: data.meta.n_frames - offset,
      playheadFrame: playhead.show ? timeToFrame(data.axes, playhead.time) - offset : null,
      rubberBand: this.scene.rubberBand(),
    };
    drawOverlay(ctx, overlay);
    dom.root.dataset.groups = String(overlay.groupsDrawn ?? 0);
    if (this.chromeStale || hm) this.drawChrome(hm);
    dom.readout.textContent = this.readoutText(playhead.time);
    const elapsed = performance.now() - started;
    dom.root.dataset.drawMs = elapsed.toFixed(3);
    dom.root.dataset.drawCount = String(Number(dom.root.dataset.drawCount ?? 0) + 1);
  }

  /** Paints the visible range into the offscreen image, asking the tile cache for what it needs. */
  private paintImage(): void {
    const { f0, f1 } = this.viewport;
    const ictx = context2d(this.image);
    const img = ictx.createImageData(this.image.width, this.image.height);
    this.data.tiles?.want(f0, f1, this.image.width);
    paintSpectrogram(img, this.data.source, {
      f0,
      f1,
      colormap: this.model.get("colormap"),
      vmin: this.model.get("vmin"),
      vmax: this.model.get("vmax"),
      validFrames: this.data.meta.valid_frames,
    });
    ictx.putImageData(img, 0, 0);
    this.imageStale = false;
  }

  private drawChrome(hm: ActiveHeatmap | null): void {
    this.chromeStale = false;
    const { dom, data, viewport, model } = this;
    const width = viewport.width;
    const dpr = dom.canvas.width / width;
    const color = getComputedStyle(dom.root).color || "#333";
    const height = viewport.height();
    const ta = context2d(dom.timeAxis);
    ta.setTransform(dpr, 0, 0, dpr, 0, 0);
    drawTimeAxis(ta, viewport.view(), data.axes, width, TIME_AXIS_HEIGHT, color);
    paintStrip(dom.strip, data.windows, viewport.view(), model.get("window"), dpr, color);
    const fa = context2d(dom.freqAxis);
    fa.setTransform(dpr, 0, 0, dpr, 0, 0);
    drawFrequencyAxis(fa, data.axes, data.meta.scale, FREQ_AXIS_WIDTH, height, color);
    const cb = context2d(dom.colorbar);
    cb.setTransform(dpr, 0, 0, dpr, 0, 0);
    cb.clearRect(0, 0, COLORBAR_WIDTH, height);
    const unit = unitLabel(data.meta.units);
    drawColorbar(cb, 18, 6, height - 12, model.get("colormap"), model.get("vmin"), model.get("vmax"), unit, color);
    if (hm) {
      const [lo, hi] = heatmapRange(hm.values, model.get("heatmap_range"));
      drawColorbar(cb, 84, 6, height - 12, model.get("heatmap_colormap"), lo, hi, hm.label, color);
    }
  }

  private readoutText(playhead: number): string {
    const { f0, f1 } = this.viewport;
    const t0 = frameToTime(this.data.axes, f0);
    const t1 = frameToTime(this.data.axes, f1);
    const count = this.data.selection.size;
    const selected = count ? `  ·  ${count} selected` : "";
    return `${t0.toFixed(2)}–${t1.toFixed(2)} s  ·  playhead ${playhead.toFixed(2)} s${selected}`;
  }

  destroy(): void {
    cancelAnimationFrame(this.raf);
    this.raf = 0;
  }
}
