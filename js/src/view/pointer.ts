/**
 * The pointer in one view (its position, the rubber band, the selection before a run of clicks) and the
 * viewer's answer to each input intent from view/interaction.ts: hover, select, zoom, pan, reset.
 */

import { isValidPatch, panBy, patchAtPixel, patchesInPixelRect, xToFrame, zoomAbout } from "../geometry";
import type { ModelData, ModelWriter, ViewModel } from "../model";
import type { Intents } from "./interaction";
import type { Viewport } from "./viewport";

/** What the pointer asks of the rest of the view. */
export interface PointerHooks {
  /** The pointer moved or the patches under it changed: rewrite the tooltip. */
  tooltip(): void;
  draw(): void;
  /** The selection changed: update the play buttons. */
  buttons(): void;
  togglePlay(): void;
}

export class Pointer {
  /** Canvas position (CSS px) of this view's pointer, or null when it is elsewhere. */
  position: [number, number] | null = null;
  /** Shift-drag rectangle in progress, canvas px [x0, y0, x1, y1]. */
  rubberBand: [number, number, number, number] | null = null;
  /**
   * The selection before the current run of clicks (taken at each click with count 1), put back if the
   * run becomes a double-click. Dropped by drags, whose clicks start no run.
   */
  private beforeClicks: Set<number> | null = null;

  /**
   * @param model the widget model (hovered_patch)
   * @param writer where selection and hover are written
   * @param data the decoded traits (grid, selection)
   * @param viewport the visible range, which zoom and pan move
   * @param hooks the rest of the view
   */
  constructor(
    private readonly model: ViewModel,
    private readonly writer: ModelWriter,
    private readonly data: ModelData,
    private readonly viewport: Viewport,
    private readonly hooks: PointerHooks,
  ) {}

  /** The patch under this view's pointer, or null when the pointer is elsewhere or there is no grid. */
  pointerPatch(): number | null {
    const p = this.position;
    const grid = this.data.grid;
    return p && grid ? patchAtPixel(grid, this.viewport.gridView(), p[0], p[1]) : null;
  }

  /** Writes the patch under the pointer to `hovered_patch` when it changed. */
  publishHover(): void {
    const patch = this.pointerPatch();
    if (patch !== this.model.get("hovered_patch")) this.writer.set("hovered_patch", patch);
  }

  /**
   * The hovered patch: the one under this view's pointer (what the user sees, whatever an echo from the
   * kernel holds), else the model's (hovered in another view, or set from Python).
   */
  hovered(): number | null {
    const h = this.position ? this.pointerPatch() : this.model.get("hovered_patch");
    return this.data.grid && isValidPatch(this.data.grid, h) ? h : null;
  }

  private publishSelection(next: Set<number>): void {
    this.data.selection = next;
    this.writer.set("selected_patches", [...next].sort((a, b) => a - b));
    this.hooks.buttons();
    this.hooks.draw();
  }

  private moveTo(position: [number, number] | null): void {
    this.position = position;
    this.publishHover();
    this.hooks.tooltip();
    this.hooks.draw();
  }

  /** The viewer's answer to each input intent. */
  intents(): Intents {
    const viewport = this.viewport;
    return {
      hover: (x, y) => this.moveTo([x, y]),
      leave: () => this.moveTo(null),
      click: (x, y, toggle, count) => {
        const selection = this.data.selection;
        if (count <= 1 || !this.beforeClicks) this.beforeClicks = new Set(selection);
        if (!this.data.grid) return;
        const patch = patchAtPixel(this.data.grid, viewport.gridView(), x, y);
        if (patch === null) return;
        const next = new Set(toggle ? selection : []);
        if (toggle && next.has(patch)) next.delete(patch);
        else next.add(patch);
        this.publishSelection(next);
      },
      rectangle: (x0, y0, x1, y1, done) => {
        this.beforeClicks = null;
        this.rubberBand = done ? null : [x0, y0, x1, y1];
        if (done && this.data.grid && (x0 !== x1 || y0 !== y1)) {
          this.publishSelection(new Set(patchesInPixelRect(this.data.grid, viewport.gridView(), x0, y0, x1, y1)));
        }
        this.hooks.draw();
      },
      zoom: (x, factor) => {
        const anchor = xToFrame(viewport.view(), x);
        const [a, b] = zoomAbout(viewport.f0, viewport.f1, anchor, factor, viewport.limits());
        viewport.setRange(a, b, true);
      },
      pan: (dx) => {
        this.beforeClicks = null;
        const frames = (-dx / (viewport.width || 1)) * (viewport.f1 - viewport.f0);
        const [a, b] = panBy(viewport.f0, viewport.f1, frames, viewport.limits());
        viewport.setRange(a, b, true);
      },
      reset: () => viewport.showAll(),
      doubleClick: () => {
        if (this.beforeClicks) this.publishSelection(this.beforeClicks);
        this.beforeClicks = null;
        viewport.showAll();
      },
      escape: () => {
        this.rubberBand = null;
        this.publishSelection(new Set());
      },
      togglePlay: () => this.hooks.togglePlay(),
    };
  }
}
