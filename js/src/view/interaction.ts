/** Mouse, trackpad and keyboard input on the spectrogram canvas, turned into intents for the viewer. */

export interface Intents {
  hover(x: number, y: number): void;
  leave(): void;
  /**
   * A click without dragging; `toggle` when shift, ctrl or cmd was held. `count` is the browser's click
   * count (MouseEvent.detail): 1 starts a new run of clicks (a double-click's first click has 1, its second 2).
   */
  click(x: number, y: number, toggle: boolean, count: number): void;
  /** Shift-drag in progress (rectangle in canvas pixels) or finished (`done`). */
  rectangle(x0: number, y0: number, x1: number, y1: number, done: boolean): void;
  /** Zoom time by `factor` (< 1 zooms in) about canvas x. */
  zoom(x: number, factor: number): void;
  /** Drag by dx canvas pixels (content follows the pointer). */
  pan(dx: number): void;
  reset(): void;
  /** A double-click: reset the zoom and undo what the double-click's own clicks did to the selection. */
  doubleClick(): void;
  escape(): void;
  togglePlay(): void;
}

/** Pointer travel (px) below which a press counts as a click, not a drag. */
export const DRAG_THRESHOLD = 3;

/** Zoom factor for one wheel event; ctrl+wheel is how browsers report a trackpad pinch, so it is stronger. */
export function wheelZoomFactor(deltaY: number, deltaMode: number, pinch: boolean): number {
  const pixels = deltaMode === 1 ? deltaY * 16 : deltaMode === 2 ? deltaY * 400 : deltaY;
  const k = pinch ? 0.01 : 0.0015;
  return Math.exp(Math.max(-200, Math.min(200, pixels)) * k);
}

/** Wire input handlers; returns a function removing every listener it added. */
export function attachInteractions(canvas: HTMLCanvasElement, root: HTMLElement, intents: Intents): () => void {
  const controller = new AbortController();
  const opts = { signal: controller.signal };
  let press: { id: number; x0: number; y0: number; lastX: number; rect: boolean; moved: boolean } | null = null;
  /** The last press ended without moving: the click event that follows it selects. */
  let clickPending = false;

  const local = (e: MouseEvent): [number, number] => {
    const r = canvas.getBoundingClientRect();
    return [e.clientX - r.left, e.clientY - r.top];
  };

  canvas.addEventListener(
    "pointerdown",
    (e) => {
      if (e.button !== 0) return;
      const [x, y] = local(e);
      press = { id: e.pointerId, x0: x, y0: y, lastX: x, rect: e.shiftKey, moved: false };
      clickPending = false;
      canvas.setPointerCapture?.(e.pointerId);
      root.focus({ preventScroll: true });
      e.preventDefault();
    },
    opts,
  );

  canvas.addEventListener(
    "pointermove",
    (e) => {
      const [x, y] = local(e);
      if (press && press.id === e.pointerId) {
        if (!press.moved && Math.hypot(x - press.x0, y - press.y0) >= DRAG_THRESHOLD) press.moved = true;
        if (press.moved) {
          if (press.rect) intents.rectangle(press.x0, press.y0, x, y, false);
          else intents.pan(x - press.lastX);
          press.lastX = x;
        }
        if (press.moved) return;
      }
      intents.hover(x, y);
    },
    opts,
  );

  const finish = (e: PointerEvent, cancelled: boolean) => {
    if (!press || press.id !== e.pointerId) return;
    const p = press;
    press = null;
    canvas.releasePointerCapture?.(e.pointerId);
    const [x, y] = local(e);
    if (cancelled) {
      if (p.rect && p.moved) intents.rectangle(p.x0, p.y0, p.x0, p.y0, true);
      return;
    }
    // A click is reported from the click event that follows (it carries the browser's click count).
    if (!p.moved) clickPending = true;
    else if (p.rect) intents.rectangle(p.x0, p.y0, x, y, true);
    intents.hover(x, y);
  };
  canvas.addEventListener(
    "click",
    (e) => {
      if (!clickPending) return;
      clickPending = false;
      const [x, y] = local(e);
      intents.click(x, y, e.shiftKey || e.ctrlKey || e.metaKey, e.detail);
    },
    opts,
  );
  canvas.addEventListener("pointerup", (e) => finish(e, false), opts);
  canvas.addEventListener("pointercancel", (e) => finish(e, true), opts);
  canvas.addEventListener("pointerleave", () => {
    if (!press) intents.leave();
  }, opts);

  canvas.addEventListener(
    "wheel",
    (e) => {
      e.preventDefault();
      const [x] = local(e);
      if (Math.abs(e.deltaX) > Math.abs(e.deltaY) && !e.ctrlKey) intents.pan(-e.deltaX);
      else intents.zoom(x, wheelZoomFactor(e.deltaY, e.deltaMode, e.ctrlKey));
    },
    { signal: controller.signal, passive: false },
  );

  canvas.addEventListener("dblclick", (e) => {
    e.preventDefault();
    intents.doubleClick();
  }, opts);

  root.addEventListener(
    "keydown",
    (e) => {
      const target = e.target as HTMLElement | null;
      if (target && target !== root && target.tagName === "BUTTON" && (e.key === " " || e.key === "Enter")) return;
      let handled = true;
      if (e.key === "Escape") intents.escape();
      else if (e.key === " ") intents.togglePlay();
      else if (e.key === "+" || e.key === "=") intents.zoom(canvas.clientWidth / 2, 0.8);
      else if (e.key === "-") intents.zoom(canvas.clientWidth / 2, 1.25);
      else if (e.key === "ArrowLeft") intents.pan(canvas.clientWidth * 0.1);
      else if (e.key === "ArrowRight") intents.pan(-canvas.clientWidth * 0.1);
      else if (e.key === "0") intents.reset();
      else handled = false;
      if (handled) {
        e.preventDefault();
        e.stopPropagation();
      }
    },
    opts,
  );

  return () => controller.abort();
}
