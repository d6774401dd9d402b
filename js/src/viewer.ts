/** anywidget entry of audiovis.SpectrogramViewer: render({model, el}) builds one view and returns its cleanup. */

import "./viewer.css";
import type { RenderProps } from "@anywidget/types";
import { pcmToFloat32, toFloat32 } from "./codecs";
import {
  type Axes,
  type Limits,
  type View,
  binToHz,
  clampWindow,
  formatHz,
  frameToTime,
  isValidPatch,
  numPatches,
  panBy,
  patchAtPixel,
  patchBounds,
  patchPosition,
  patchesInPixelRect,
  timeToFrame,
  xToFrame,
  yToBin,
  zoomAbout,
} from "./geometry";
import { attachInteractions } from "./interaction";
import { Player } from "./playback";
import { checkGroups } from "./groups";
import { ArraySource, type ColumnSource, drawColorbar, drawFrequencyAxis, drawOverlay, drawTimeAxis, type OverlayState, paintSpectrogram } from "./render";
import { Requester } from "./requests";
import { PatchEmbeddings } from "./similarity";
import { drawWindowStrip, parseWindows, windowAt, type WindowLabel } from "./strip";
import { TiledSource, modelTransport } from "./tiles";
import type { BinaryArray, GridSpec, Model, SpectrogramMeta, ViewerModel } from "./types";

const FREQ_AXIS_WIDTH = 64;
const TIME_AXIS_HEIGHT = 26;
/** Height of the per-window label strip of a LongViewer. */
const STRIP_HEIGHT = 20;
const COLORBAR_WIDTH = 132;
/** Smallest visible window, in frames. */
const MIN_SPAN_FRAMES = 8;

const UNIT_LABELS: Record<string, string> = {
  dB: "dB",
  "normalized-fbank": "normalised log-mel",
  power: "power",
  magnitude: "magnitude",
};

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls: string, testid?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = cls;
  if (testid) node.dataset.testid = testid;
  return node;
}

function context2d(canvas: HTMLCanvasElement): CanvasRenderingContext2D {
  const ctx = canvas.getContext("2d");
  if (!ctx) throw new Error("audiovis: this browser gives no 2D canvas context");
  return ctx;
}

/**
 * Writes this view's changes to the model and sends them at once. ipywidgets itself holds messages back
 * (merged) while one is unacknowledged, and ignores kernel echoes of values it has yet to send; a local
 * delay before `save_changes` would open a window in which such an echo reverts a newer, unsent value.
 */
class ModelWriter {
  constructor(private readonly model: Model) {}

  set<K extends keyof ViewerModel>(key: K, value: ViewerModel[K]): void {
    this.model.set(key, value);
    this.model.save_changes();
  }
}

class SpectrogramView {
  private readonly root = el("div", "audiovis-viewer", "audiovis-viewer");
  private readonly canvas = el("canvas", "av-canvas", "spectrogram-canvas");
  private readonly main = el("div", "av-main");
  private readonly freqAxis = el("canvas", "av-freq-axis", "audiovis-frequency-axis");
  private readonly timeAxis = el("canvas", "av-time-axis", "audiovis-time-axis");
  private readonly colorbar = el("canvas", "av-colorbar", "audiovis-colorbar");
  private readonly tooltip = el("div", "av-tooltip", "audiovis-tooltip");
  private readonly playButton = el("button", "av-button", "audiovis-play");
  private readonly playSelectionButton = el("button", "av-button", "audiovis-play-selection");
  private readonly playPatchesButton = el("button", "av-button", "audiovis-play-patches");
  private readonly resetButton = el("button", "av-button", "audiovis-reset-zoom");
  private readonly readout = el("span", "av-readout", "audiovis-readout");
  private readonly image = document.createElement("canvas");
  private readonly strip = el("canvas", "av-window-strip", "audiovis-window-strip");

  private readonly writer: ModelWriter;
  private readonly requester: Requester;
  private readonly player: Player;
  /** Plays the sound of just the selected patches ("▶ patches"), which the kernel computes. */
  private readonly patchPlayer: Player;
  /** Clock time (s) of the first sample of the patches' sound being played. */
  private patchStart = 0;
  private readonly cleanups: Array<() => void> = [];

  private meta!: SpectrogramMeta;
  private axes!: Axes;
  private source!: ColumnSource;
  /** Level of detail for long recordings (null when the whole spectrogram came in one payload). */
  private tiles: TiledSource | null = null;
  private grid: GridSpec | null = null;
  /** Frame of the recording where the grid's frame 0 lies (LongViewer: the window under view). */
  private gridOffset = 0;
  private windows: WindowLabel[] = [];
  private f0 = 0;
  private f1 = 1;
  private cssWidth = 0;
  private imageDirty = true;
  private chromeDirty = true;
  private raf = 0;
  private heatmap: Float32Array | null = null;
  private embeddings: PatchEmbeddings | null = null;
  private similarity: { index: number; values: Float32Array } | null = null;
  private selected = new Set<number>();
  /**
   * The selection before the current run of clicks (taken at each click with count 1), put back if the
   * run becomes a double-click. Dropped by drags, whose clicks start no run.
   */
  private beforeClicks: Set<number> | null = null;
  private masked = new Set<number>();
  private groups: Int32Array | null = null;
  private rubberBand: [number, number, number, number] | null = null;
  private localPlayhead: number | null = null;
  private lastSentPlayhead = NaN;
  private lastPointer: [number, number] | null = null;

  constructor(
    private readonly model: Model,
    host: HTMLElement,
  ) {
    this.writer = new ModelWriter(model);
    this.requester = new Requester(model);
    this.player = new Player(
      { load: () => this.loadAudio() },
      {
        // the player counts from the audio's first sample; the view's clock starts that many seconds earlier
        onFrame: (t) => this.onPlayFrame(t + this.audioStart()),
        onStop: (t) => this.onPlayStop(t + this.audioStart()),
      },
    );
    this.patchPlayer = new Player(
      { load: () => this.loadPatchAudio() },
      {
        onFrame: (t) => this.onPlayFrame(t + this.patchStart),
        onStop: (t) => this.onPlayStop(t + this.patchStart),
      },
    );
    this.buildDom(host);
    this.loadSpectrogram();
    this.loadGrid();
    this.loadWindows();
    this.loadSelection();
    this.loadMasked();
    this.loadGroups();
    this.loadHeatmap();
    this.loadEmbeddings();
    this.loadTimeRange();
    this.updateButtons();
    this.listen();
    this.cleanups.push(attachInteractions(this.canvas, this.root, this.intents()));
    const observer = new ResizeObserver(() => this.resize());
    observer.observe(this.main);
    this.cleanups.push(() => observer.disconnect());
    this.resize();
  }

  // ---- DOM ----

  private buildDom(host: HTMLElement): void {
    this.root.tabIndex = 0;
    // Test and benchmark hook: the last similarity map computed in the browser ({index, values} or null).
    Object.defineProperty(this.root, "audiovisSimilarity", { get: () => this.similarity, configurable: true });
    const toolbar = el("div", "av-toolbar");
    this.playButton.type = "button";
    this.playSelectionButton.type = "button";
    this.playPatchesButton.type = "button";
    this.playPatchesButton.textContent = "▶ patches";
    this.resetButton.type = "button";
    this.playSelectionButton.textContent = "▶ selection";
    this.playSelectionButton.title = "Play the time span of the selected patches";
    this.resetButton.textContent = "Reset zoom";
    this.resetButton.title = "Show the whole clip (double-click the spectrogram)";
    toolbar.append(this.playButton, this.playSelectionButton, this.playPatchesButton, this.resetButton, this.readout);

    const plot = el("div", "av-plot");
    this.canvas.setAttribute("role", "img");
    this.canvas.setAttribute("aria-label", "spectrogram");
    this.tooltip.hidden = true;
    this.main.append(this.canvas, this.tooltip);
    const corner = el("div", "av-corner");
    const colorbarFoot = el("div", "av-corner");
    plot.append(this.freqAxis, this.main, this.colorbar, corner, this.timeAxis, colorbarFoot);
    plot.append(el("div", "av-corner"), this.strip, el("div", "av-corner"));
    this.strip.title = "Analysis windows and their top label; click one to zoom to it";
    plot.style.gridTemplateColumns = `${FREQ_AXIS_WIDTH}px minmax(0, 1fr) ${COLORBAR_WIDTH}px`;
    this.timeAxis.title = "Click to move the playhead";
    this.root.append(toolbar, plot);
    host.append(this.root);

    const on = <K extends keyof HTMLElementEventMap>(target: HTMLElement, type: K, fn: (e: HTMLElementEventMap[K]) => void) => {
      target.addEventListener(type, fn);
      this.cleanups.push(() => target.removeEventListener(type, fn));
    };
    on(this.playButton, "click", () => this.togglePlay());
    on(this.playSelectionButton, "click", () => this.playSelection());
    on(this.playPatchesButton, "click", () => this.playPatches());
    on(this.resetButton, "click", () => this.setWindow(0, this.meta.n_frames, true));
    on(this.strip, "click", (e) => {
      const i = windowAt(this.windows, xToFrame(this.view(), e.clientX - this.strip.getBoundingClientRect().left));
      if (i >= 0) this.setWindow(this.windows[i]!.start, this.windows[i]!.end, true);
    });
    on(this.timeAxis, "click", (e) => {
      const r = this.timeAxis.getBoundingClientRect();
      const t = frameToTime(this.axes, xToFrame(this.view(), e.clientX - r.left));
      this.seek(t);
    });
  }

  private heightPx(): number {
    const h = this.model.get("height");
    return Number.isFinite(h) && h > 40 ? h : 320;
  }

  private resize(): void {
    const width = Math.max(50, Math.floor(this.main.clientWidth || this.root.clientWidth - FREQ_AXIS_WIDTH - COLORBAR_WIDTH));
    const height = this.heightPx();
    const dpr = window.devicePixelRatio || 1;
    this.cssWidth = width;
    this.main.style.height = `${height}px`;
    const size = (c: HTMLCanvasElement, w: number, h: number) => {
      c.style.width = `${w}px`;
      c.style.height = `${h}px`;
      c.width = Math.max(1, Math.round(w * dpr));
      c.height = Math.max(1, Math.round(h * dpr));
    };
    size(this.canvas, width, height);
    size(this.freqAxis, FREQ_AXIS_WIDTH, height);
    size(this.colorbar, COLORBAR_WIDTH, height);
    size(this.timeAxis, width, TIME_AXIS_HEIGHT);
    size(this.strip, width, STRIP_HEIGHT);
    this.image.width = this.canvas.width;
    this.image.height = this.canvas.height;
    this.imageDirty = true;
    this.chromeDirty = true;
    this.requestDraw();
  }

  // ---- data from the model ----

  private loadSpectrogram(): void {
    this.meta = this.model.get("_meta");
    const payload: BinaryArray = this.model.get("_spectrogram");
    const values = toFloat32(payload, this.meta.value_range);
    const overview = new ArraySource(values, this.meta.n_bins, this.meta.n_frames, this.meta.frames_per_column);
    this.tiles?.destroy();
    const tiles = this.model.get("_tiles");
    this.tiles = tiles ? new TiledSource(overview, tiles, modelTransport(this.model), { onTile: () => this.onTile() }) : null;
    this.source = this.tiles ?? overview;
    this.axes = { timeOffset: this.meta.time_offset, hopSeconds: this.meta.hop_seconds, edges: this.meta.frequency_edges };
    this.imageDirty = true;
    this.chromeDirty = true;
  }

  private loadWindows(): void {
    this.windows = parseWindows(this.model.get("_windows"));
    this.strip.style.display = this.windows.length ? "" : "none";
    this.chromeDirty = true;
  }

  private loadGrid(): void {
    this.grid = this.model.get("_grid") ?? null;
    const offset = this.model.get("_grid_offset");
    this.gridOffset = typeof offset === "number" && Number.isFinite(offset) ? offset : 0;
    this.loadSelection();
  }

  private validIndices(values: unknown, trait: string): Set<number> {
    const out = new Set<number>();
    if (!this.grid || !Array.isArray(values)) return out;
    for (const v of values) {
      if (isValidPatch(this.grid, v)) out.add(v);
      else console.warn(`audiovis: ignoring ${trait} entry ${JSON.stringify(v)} outside 0..${numPatches(this.grid) - 1}`);
    }
    return out;
  }

  private loadSelection(): void {
    this.selected = this.validIndices(this.model.get("selected_patches"), "selected_patches");
    this.updateButtons();
  }

  private loadMasked(): void {
    this.masked = this.validIndices(this.model.get("masked_patches"), "masked_patches");
  }

  private loadGroups(): void {
    this.groups = checkGroups(this.model.get("patch_groups"), this.grid ? numPatches(this.grid) : 0);
  }

  private loadHeatmap(): void {
    const payload = this.model.get("heatmap");
    this.heatmap = null;
    if (!payload || !this.grid) return;
    const values = toFloat32(payload);
    if (values.length !== numPatches(this.grid)) {
      console.warn(`audiovis: heatmap has ${values.length} values for ${numPatches(this.grid)} patches; not drawn`);
      return;
    }
    this.heatmap = values;
  }

  private loadEmbeddings(): void {
    const payload = this.model.get("embeddings");
    this.embeddings = null;
    this.similarity = null;
    if (!payload || !this.grid) return;
    const n = numPatches(this.grid);
    if (payload.shape.length !== 2 || payload.shape[0] !== n) {
      console.warn(`audiovis: embeddings of shape ${payload.shape.join("x")} do not fit ${n} patches; ignored`);
      return;
    }
    this.embeddings = PatchEmbeddings.fromBinary(payload);
  }

  /** Cosine similarity of every patch to `index` (cached for the hovered patch). */
  private similarityTo(index: number): Float32Array {
    if (this.similarity?.index === index) return this.similarity.values;
    const values = this.embeddings!.similarity([index]);
    this.similarity = { index, values };
    return values;
  }

  private loadTimeRange(): void {
    const range = this.model.get("time_range");
    if (!Array.isArray(range) || range.length !== 2) {
      this.setWindow(0, this.meta.n_frames, false);
      return;
    }
    const [a, b] = clampWindow(timeToFrame(this.axes, range[0]), timeToFrame(this.axes, range[1]), this.limits());
    if (Math.abs(a - this.f0) > 1e-6 || Math.abs(b - this.f1) > 1e-6) this.setWindow(a, b, false);
  }

  private listen(): void {
    const on = (key: keyof ViewerModel, fn: () => void) => {
      const handler = () => fn();
      this.model.on(`change:${key}`, handler);
      this.cleanups.push(() => this.model.off(`change:${key}`, handler));
    };
    on("_spectrogram", () => this.refresh(() => this.loadSpectrogram()));
    on("_tiles", () => this.refresh(() => this.loadSpectrogram()));
    on("_windows", () => this.refresh(() => this.loadWindows()));
    on("_grid_offset", () => this.refresh(() => this.loadGrid()));
    on("window", () => this.refresh(() => (this.chromeDirty = true)));
    on("_meta", () => this.refresh(() => {
      this.loadSpectrogram();
      this.loadTimeRange();
    }));
    on("_grid", () => this.refresh(() => {
      this.loadGrid();
      this.loadMasked();
      this.loadGroups();
      this.loadHeatmap();
      this.loadEmbeddings();
    }));
    on("_audio_info", () => this.updateButtons());
    on("selected_patches", () => this.refresh(() => this.loadSelection()));
    on("masked_patches", () => this.refresh(() => this.loadMasked()));
    on("patch_groups", () => this.refresh(() => this.loadGroups()));
    on("hovered_patch", () => this.refresh(() => this.updateTooltip()));
    on("heatmap", () => this.refresh(() => this.loadHeatmap()));
    on("embeddings", () => this.refresh(() => this.loadEmbeddings()));
    for (const key of ["heatmap_opacity", "heatmap_colormap", "heatmap_range", "heatmap_label", "hover_mode", "show_grid"] as const) {
      on(key, () => this.refresh(() => (this.chromeDirty = true)));
    }
    for (const key of ["colormap", "vmin", "vmax"] as const) {
      on(key, () => this.refresh(() => {
        this.imageDirty = true;
        this.chromeDirty = true;
      }));
    }
    on("time_range", () => this.loadTimeRange());
    on("playhead", () => this.onModelPlayhead());
    on("height", () => this.resize());
  }

  private refresh(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      console.warn("audiovis:", err);
    }
    this.requestDraw();
  }

  // ---- view window ----

  private limits(): Limits {
    return { nFrames: this.meta.n_frames, minSpan: MIN_SPAN_FRAMES };
  }

  private view(): View {
    return { f0: this.f0, f1: this.f1, width: this.cssWidth || 1, height: this.heightPx(), nBins: this.meta.n_bins };
  }

  /** The view in the grid's frames (shifted by the grid offset), for everything about patches. */
  private gridView(): View {
    const v = this.view();
    return { ...v, f0: v.f0 - this.gridOffset, f1: v.f1 - this.gridOffset };
  }

  /** Show frames [a, b); `publish` writes time_range back to the model (user-driven changes). */
  private setWindow(a: number, b: number, publish: boolean): void {
    [this.f0, this.f1] = clampWindow(a, b, this.limits());
    this.imageDirty = true;
    this.chromeDirty = true;
    if (publish) {
      const range: [number, number] = [frameToTime(this.axes, this.f0), frameToTime(this.axes, this.f1)];
      this.writer.set("time_range", range);
      if (this.lastPointer) this.publishHover(); // zooming about the pointer moves patches under it
    }
    if (this.lastPointer) this.updateTooltip();
    this.requestDraw();
  }

  // ---- input ----

  private intents() {
    return {
      hover: (x: number, y: number) => {
        this.lastPointer = [x, y];
        this.publishHover();
        this.updateTooltip();
        this.requestDraw();
      },
      leave: () => {
        this.lastPointer = null;
        this.publishHover();
        this.updateTooltip();
        this.requestDraw();
      },
      click: (x: number, y: number, toggle: boolean, count: number) => {
        if (count <= 1 || !this.beforeClicks) this.beforeClicks = new Set(this.selected);
        if (!this.grid) return;
        const patch = patchAtPixel(this.grid, this.gridView(), x, y);
        if (patch === null) return;
        const next = new Set(toggle ? this.selected : []);
        if (toggle && next.has(patch)) next.delete(patch);
        else next.add(patch);
        this.publishSelection(next);
      },
      rectangle: (x0: number, y0: number, x1: number, y1: number, done: boolean) => {
        this.beforeClicks = null;
        this.rubberBand = done ? null : [x0, y0, x1, y1];
        if (done && this.grid && (x0 !== x1 || y0 !== y1)) {
          this.publishSelection(new Set(patchesInPixelRect(this.grid, this.gridView(), x0, y0, x1, y1)));
        }
        this.requestDraw();
      },
      zoom: (x: number, factor: number) => {
        const anchor = xToFrame(this.view(), x);
        const [a, b] = zoomAbout(this.f0, this.f1, anchor, factor, this.limits());
        this.setWindow(a, b, true);
      },
      pan: (dx: number) => {
        this.beforeClicks = null;
        const frames = (-dx / (this.cssWidth || 1)) * (this.f1 - this.f0);
        const [a, b] = panBy(this.f0, this.f1, frames, this.limits());
        this.setWindow(a, b, true);
      },
      reset: () => this.setWindow(0, this.meta.n_frames, true),
      doubleClick: () => {
        if (this.beforeClicks) this.publishSelection(this.beforeClicks);
        this.beforeClicks = null;
        this.setWindow(0, this.meta.n_frames, true);
      },
      escape: () => {
        this.rubberBand = null;
        this.publishSelection(new Set());
      },
      togglePlay: () => this.togglePlay(),
    };
  }

  private publishSelection(next: Set<number>): void {
    this.selected = next;
    this.writer.set("selected_patches", [...next].sort((a, b) => a - b));
    this.updateButtons();
    this.requestDraw();
  }

  /** The patch under this view's pointer, or null when the pointer is elsewhere or there is no grid. */
  private pointerPatch(): number | null {
    const p = this.lastPointer;
    return p && this.grid ? patchAtPixel(this.grid, this.gridView(), p[0], p[1]) : null;
  }

  /** Writes the patch under the pointer to `hovered_patch` when it changed. */
  private publishHover(): void {
    const patch = this.pointerPatch();
    if (patch !== this.model.get("hovered_patch")) this.writer.set("hovered_patch", patch);
  }

  /**
   * The hovered patch: the one under this view's pointer (what the user sees, whatever an echo from the
   * kernel holds), else the model's (hovered in another view, or set from Python).
   */
  private hovered(): number | null {
    const h = this.lastPointer ? this.pointerPatch() : this.model.get("hovered_patch");
    return this.grid && isValidPatch(this.grid, h) ? h : null;
  }

  /** Heatmap to draw: cosine similarity to the hovered patch in similarity mode, else the heatmap trait. */
  private activeHeatmap(): { values: Float32Array; label: string } | null {
    const hovered = this.hovered();
    if (this.model.get("hover_mode") === "similarity" && this.embeddings && hovered !== null) {
      return { values: this.similarityTo(hovered), label: `cosine similarity to patch ${hovered}` };
    }
    return this.heatmap ? { values: this.heatmap, label: this.model.get("heatmap_label") || "heatmap" } : null;
  }

  private heatmapRange(values: Float32Array): [number, number] {
    const r = this.model.get("heatmap_range");
    if (Array.isArray(r) && r.length === 2 && Number.isFinite(r[0]) && Number.isFinite(r[1])) return [r[0], r[1]];
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of values) {
      if (!Number.isFinite(v)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (!Number.isFinite(lo)) return [0, 1];
    return lo === hi ? [lo - 0.5, hi + 0.5] : [lo, hi];
  }

  private updateTooltip(): void {
    const p = this.lastPointer;
    if (!p) {
      this.tooltip.hidden = true;
      return;
    }
    const v = this.view();
    const frame = xToFrame(v, p[0]);
    const bin = yToBin(v, p[1]);
    const lines: string[] = [];
    const patch = this.hovered();
    if (this.grid && patch !== null) {
      const [row, col] = patchPosition(this.grid, patch);
      const b = patchBounds(this.grid, patch);
      const t0 = frameToTime(this.axes, b.timeStart + this.gridOffset);
      const t1 = frameToTime(this.axes, b.timeEnd + this.gridOffset);
      const hz0 = binToHz(this.axes, b.freqStart);
      const hz1 = binToHz(this.axes, b.freqEnd);
      lines.push(`patch ${patch} (row ${row}, col ${col})`);
      lines.push(`${t0.toFixed(3)}–${t1.toFixed(3)} s`);
      lines.push(`${formatHz(hz0)}–${formatHz(hz1)}${this.meta.scale === "mel" ? " (mel band)" : ""}`);
      const hm = this.activeHeatmap();
      if (hm) lines.push(`${hm.label}: ${formatValue(hm.values[patch]!)}`);
      if (this.masked.has(patch)) lines.push("masked");
    }
    if (frame >= 0 && frame < this.meta.n_frames && bin >= 0 && bin < this.meta.n_bins) {
      const column = new Float32Array(this.meta.n_bins);
      const k = Math.floor(frame);
      this.source.reduceFrames(k, k + 1, column);
      const value = column[Math.min(this.meta.n_bins - 1, Math.floor(bin))]!;
      const unit = UNIT_LABELS[this.meta.units] ?? this.meta.units;
      const pad = frame >= this.meta.valid_frames ? "  (padding)" : "";
      lines.push(`${frameToTime(this.axes, frame).toFixed(3)} s, ${formatHz(binToHz(this.axes, bin))}: ${formatValue(value)} ${unit}${pad}`);
    }
    if (!lines.length) {
      this.tooltip.hidden = true;
      return;
    }
    this.tooltip.replaceChildren(
      ...lines.map((text) => {
        const row = document.createElement("div");
        row.textContent = text;
        return row;
      }),
    );
    this.tooltip.hidden = false;
    const w = this.tooltip.offsetWidth;
    const h = this.tooltip.offsetHeight;
    const left = p[0] + 14 + w > v.width ? p[0] - 14 - w : p[0] + 14;
    const top = Math.min(Math.max(0, p[1] + 14), Math.max(0, v.height - h));
    this.tooltip.style.left = `${Math.max(0, left)}px`;
    this.tooltip.style.top = `${top}px`;
  }

  // ---- playback ----

  private async loadAudio(): Promise<{ samples: Float32Array; sampleRate: number }> {
    const info = this.model.get("_audio_info");
    if (!info) throw new Error("this viewer has no audio");
    const samples = new Float32Array(info.num_samples);
    let filled = 0;
    for (let chunk = 0; chunk < info.chunks; chunk++) {
      const reply = await this.requester.request({ type: "audio", chunk });
      const c = reply.content;
      const view = reply.buffers[0];
      if (!view) throw new Error(`audio chunk ${chunk} arrived without data`);
      const part = pcmToFloat32({ view, dtype: String(c.dtype), shape: c.shape as number[] });
      samples.set(part.subarray(0, samples.length - filled), filled);
      filled += part.length;
    }
    return { samples, sampleRate: info.sample_rate };
  }

  /** Where the audio's first sample plays on the spectrogram's clock (s): Audio.start, 0 for a whole file. */
  private audioStart(): number {
    return this.model.get("_audio_info")?.start ?? 0;
  }

  /** Where the audio ends on the spectrogram's clock (s); without audio, where the spectrogram ends. */
  private audioEnd(): number {
    const info = this.model.get("_audio_info");
    return info ? this.audioStart() + info.duration : frameToTime(this.axes, this.meta.n_frames);
  }

  private togglePlay(): void {
    if (!this.model.get("_audio_info")) return;
    if (this.patchPlayer.active) {
      this.patchPlayer.stop(true);
      return;
    }
    if (this.player.active) {
      // playing, or still waiting for the audio: either way this press pauses (a pending start is cancelled)
      this.player.stop(true);
      return;
    }
    let start = this.model.get("playhead") || 0;
    if (start < this.audioStart() || start >= this.audioEnd() - 1e-3) start = this.audioStart();
    this.startPlayback(start);
  }

  private selectionSpan(): [number, number] | null {
    if (!this.grid || !this.selected.size) return null;
    let a = Infinity;
    let b = -Infinity;
    for (const i of this.selected) {
      const box = patchBounds(this.grid, i);
      a = Math.min(a, box.timeStart);
      b = Math.max(b, box.timeEnd);
    }
    return [Math.max(0, frameToTime(this.axes, a + this.gridOffset)), frameToTime(this.axes, b + this.gridOffset)];
  }

  /** The selection's time span when some of it lies within the audio, else null (nothing to play). */
  private playableSelectionSpan(): [number, number] | null {
    const span = this.selectionSpan();
    if (!span || !this.model.get("_audio_info")) return null;
    return span[0] < this.audioEnd() && span[1] > Math.max(span[0], this.audioStart()) ? span : null;
  }

  private playSelection(): void {
    const span = this.playableSelectionSpan();
    if (span) this.startPlayback(span[0], span[1]);
  }

  /** "▶ patches": only the selected patches' sound (their frames and bands), computed by the kernel. */
  private playPatches(): void {
    if (!this.grid || !this.selected.size || !this.model.get("_audio_info")) return;
    this.player.stop(false);
    this.patchPlayer.forget();
    this.localPlayhead = this.selectionSpan()?.[0] ?? null;
    const started = this.patchPlayer.play(0);
    this.updateButtons();
    this.requestDraw();
    started.catch((err: unknown) => {
      console.warn("audiovis: playing the patches failed:", err);
      this.readout.textContent = `playing the patches failed: ${err instanceof Error ? err.message : String(err)}`;
      this.localPlayhead = null;
      this.updateButtons();
    });
  }

  private async loadPatchAudio(): Promise<{ samples: Float32Array; sampleRate: number }> {
    const patches = [...this.selected].sort((a, b) => a - b);
    const reply = await this.requester.request({ type: "patch_audio", patches });
    const c = reply.content;
    const view = reply.buffers[0];
    if (!view) throw new Error("the patches' sound arrived without data");
    this.patchStart = Number(c.start);
    const samples = pcmToFloat32({ view, dtype: String(c.dtype), shape: c.shape as number[] });
    return { samples, sampleRate: Number(c.sample_rate) };
  }

  private startPlayback(start: number, end?: number): void {
    this.patchPlayer.stop(false);
    this.localPlayhead = start;
    const started = this.player.play(start - this.audioStart(), end === undefined ? undefined : end - this.audioStart());
    this.updateButtons();
    this.requestDraw(); // the playhead shows at the start while the audio loads
    started.catch((err: unknown) => {
      console.warn("audiovis: playback failed:", err);
      this.readout.textContent = `playback failed: ${err instanceof Error ? err.message : String(err)}`;
      this.localPlayhead = null;
      this.updateButtons();
    });
  }

  private seek(t: number): void {
    const time = Math.min(Math.max(this.audioStart(), t), this.audioEnd());
    this.lastSentPlayhead = time;
    this.writer.set("playhead", time);
    if (this.player.active) this.startPlayback(time);
    this.requestDraw();
  }

  private onPlayFrame(t: number): void {
    this.localPlayhead = t;
    if (!(Math.abs(t - this.lastSentPlayhead) < 0.1)) { // NaN (nothing sent yet) sends too
      this.lastSentPlayhead = t;
      this.writer.set("playhead", t);
    }
    const frame = timeToFrame(this.axes, t);
    if (frame > this.f1 && this.f1 < this.meta.n_frames) {
      const span = this.f1 - this.f0;
      this.setWindow(frame - 0.1 * span, frame + 0.9 * span, true);
    }
    this.requestDraw();
  }

  private onPlayStop(t: number): void {
    this.localPlayhead = null;
    this.lastSentPlayhead = t;
    this.writer.set("playhead", t);
    this.updateButtons();
    this.requestDraw();
  }

  private onModelPlayhead(): void {
    const t = this.model.get("playhead");
    if (this.player.active && Number.isFinite(t) && Math.abs(t - this.lastSentPlayhead) > 1e-6) {
      this.startPlayback(t);
    }
    this.requestDraw();
  }

  private updateButtons(): void {
    const hasAudio = !!this.model.get("_audio_info");
    const playing = !!this.player?.active || !!this.patchPlayer?.active; // also while the audio is still loading
    this.playButton.textContent = playing ? "⏸ Pause" : "▶ Play";
    this.playButton.dataset.state = playing ? "playing" : "paused";
    this.playButton.disabled = !hasAudio;
    this.playButton.title = hasAudio ? "Play / pause (space)" : "No audio was given to this viewer";
    const playable = hasAudio && this.playableSelectionSpan() !== null;
    this.playSelectionButton.disabled = !playable;
    this.playPatchesButton.disabled = !playable || !this.grid;
    this.playPatchesButton.title = !hasAudio
      ? "No audio was given to this viewer"
      : playable || !this.selected.size
        ? "Play only the selected patches' sound: their frames and frequency bands"
        : "The selected patches lie beyond the end of the audio";
    this.playSelectionButton.title = !hasAudio
      ? "No audio was given to this viewer"
      : playable || !this.selected.size
        ? "Play the time span of the selected patches"
        : "The selected patches lie beyond the end of the audio";
  }

  // ---- drawing ----

  private requestDraw(): void {
    if (!this.raf) this.raf = requestAnimationFrame(() => this.draw());
  }

  private draw(): void {
    this.raf = 0;
    if (!this.cssWidth) return;
    const started = performance.now();
    const dpr = this.canvas.width / this.cssWidth;
    if (this.imageDirty) {
      const ictx = context2d(this.image);
      const img = ictx.createImageData(this.image.width, this.image.height);
      this.tiles?.want(this.f0, this.f1, this.image.width);
      paintSpectrogram(img, this.source, {
        f0: this.f0,
        f1: this.f1,
        colormap: this.model.get("colormap"),
        vmin: this.model.get("vmin"),
        vmax: this.model.get("vmax"),
        validFrames: this.meta.valid_frames,
      });
      ictx.putImageData(img, 0, 0);
      this.imageDirty = false;
    }
    const ctx = context2d(this.canvas);
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.drawImage(this.image, 0, 0);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const hm = this.activeHeatmap();
    const playing = this.localPlayhead !== null;
    const playhead = playing ? this.localPlayhead! : this.model.get("playhead");
    const showPlayhead = playing || (!!this.model.get("_audio_info") && playhead > this.audioStart());
    const off = this.gridOffset;
    const overlay: OverlayState = {
      view: this.gridView(),
      grid: this.grid,
      showGrid: this.model.get("show_grid"),
      selected: this.selected,
      masked: this.masked,
      groups: this.groups,
      hovered: this.hovered(),
      heatmap: hm?.values ?? null,
      heatmapRange: hm ? this.heatmapRange(hm.values) : [0, 1],
      heatmapColormap: this.model.get("heatmap_colormap"),
      heatmapOpacity: this.model.get("heatmap_opacity"),
      validFrames: this.meta.valid_frames - off,
      nFrames: this.meta.n_frames - off,
      playheadFrame: showPlayhead ? timeToFrame(this.axes, playhead) - off : null,
      rubberBand: this.rubberBand,
    };
    drawOverlay(ctx, overlay);
    this.root.dataset.groups = String(overlay.groupsDrawn ?? 0);
    if (this.chromeDirty || hm) this.drawChrome(hm);
    this.readout.textContent = this.readoutText(playhead);
    const elapsed = performance.now() - started;
    this.root.dataset.drawMs = elapsed.toFixed(3);
    this.root.dataset.drawCount = String(Number(this.root.dataset.drawCount ?? 0) + 1);
  }

  private drawChrome(hm: { values: Float32Array; label: string } | null): void {
    this.chromeDirty = false;
    const dpr = this.canvas.width / this.cssWidth;
    const color = getComputedStyle(this.root).color || "#333";
    const height = this.heightPx();
    const ta = context2d(this.timeAxis);
    ta.setTransform(dpr, 0, 0, dpr, 0, 0);
    drawTimeAxis(ta, this.view(), this.axes, this.cssWidth, TIME_AXIS_HEIGHT, color);
    if (this.windows.length) {
      const sc = context2d(this.strip);
      sc.setTransform(dpr, 0, 0, dpr, 0, 0);
      const current = this.model.get("window");
      drawWindowStrip(sc, this.windows, this.view(), STRIP_HEIGHT, typeof current === "number" ? current : -1, color);
    }
    const fa = context2d(this.freqAxis);
    fa.setTransform(dpr, 0, 0, dpr, 0, 0);
    drawFrequencyAxis(fa, this.axes, this.meta.scale, FREQ_AXIS_WIDTH, height, color);
    const cb = context2d(this.colorbar);
    cb.setTransform(dpr, 0, 0, dpr, 0, 0);
    cb.clearRect(0, 0, COLORBAR_WIDTH, height);
    const unit = UNIT_LABELS[this.meta.units] ?? this.meta.units;
    drawColorbar(cb, 18, 6, height - 12, this.model.get("colormap"), this.model.get("vmin"), this.model.get("vmax"), unit, color);
    if (hm) {
      const [lo, hi] = this.heatmapRange(hm.values);
      drawColorbar(cb, 84, 6, height - 12, this.model.get("heatmap_colormap"), lo, hi, hm.label, color);
    }
  }

  private readoutText(playhead: number): string {
    const t0 = frameToTime(this.axes, this.f0);
    const t1 = frameToTime(this.axes, this.f1);
    const sel = this.selected.size ? `  ·  ${this.selected.size} selected` : "";
    return `${t0.toFixed(2)}–${t1.toFixed(2)} s  ·  playhead ${playhead.toFixed(2)} s${sel}`;
  }

  /** A tile arrived: repaint, and publish the cache's figures for tests and benchmarks. */
  private onTile(): void {
    const s = this.tiles!.stats;
    this.root.dataset.tilesReceived = String(s.received);
    this.root.dataset.tileBytes = String(s.cachedBytes);
    this.root.dataset.tileFetchMs = s.lastFetchMs.toFixed(1);
    this.imageDirty = true;
    this.requestDraw();
  }

  destroy(): void {
    cancelAnimationFrame(this.raf);
    this.raf = 0;
    for (const fn of this.cleanups.splice(0)) fn();
    this.tiles?.destroy();
    this.player.destroy();
    this.patchPlayer.destroy();
    this.requester.destroy();
    this.root.remove();
  }
}

function formatValue(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : v.toFixed(a < 1 ? 3 : 2);
}

function render({ model, el: host }: RenderProps<ViewerModel>): () => void {
  const view = new SpectrogramView(model, host);
  return () => view.destroy();
}

export default { render };
