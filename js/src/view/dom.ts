/** The viewer's DOM: every element made once, the side canvases' sizes, and canvas sizing on resize. */

export const FREQ_AXIS_WIDTH = 64;
export const TIME_AXIS_HEIGHT = 26;
/** Height of the per-window label strip of a LongViewer. */
export const STRIP_HEIGHT = 20;
export const COLORBAR_WIDTH = 132;

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls: string, testid?: string): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = cls;
  if (testid) node.dataset.testid = testid;
  return node;
}

export function context2d(canvas: HTMLCanvasElement): CanvasRenderingContext2D {
  const ctx = canvas.getContext("2d");
  if (!ctx) throw new Error("audiovis: this browser gives no 2D canvas context");
  return ctx;
}

/** Adds a DOM listener; returns its removal. */
export function listen<K extends keyof HTMLElementEventMap>(
  target: HTMLElement,
  type: K,
  fn: (e: HTMLElementEventMap[K]) => void,
): () => void {
  target.addEventListener(type, fn);
  return () => target.removeEventListener(type, fn);
}

/** The elements of one view (data-testid names are the front-end contract, docs/ARCHITECTURE.md). */
export interface Dom {
  root: HTMLDivElement;
  /** The spectrogram and its overlay; unzoomed, exactly the whole spectrogram. */
  canvas: HTMLCanvasElement;
  /** The canvas's box (holds the tooltip), whose width the plot follows. */
  main: HTMLDivElement;
  freqAxis: HTMLCanvasElement;
  timeAxis: HTMLCanvasElement;
  colorbar: HTMLCanvasElement;
  tooltip: HTMLDivElement;
  playButton: HTMLButtonElement;
  playSelectionButton: HTMLButtonElement;
  playPatchesButton: HTMLButtonElement;
  resetButton: HTMLButtonElement;
  readout: HTMLSpanElement;
  /** The LongViewer's window strip (hidden without windows). */
  strip: HTMLCanvasElement;
}

function button(testid: string, text: string, title?: string): HTMLButtonElement {
  const node = el("button", "av-button", testid);
  node.type = "button";
  node.textContent = text;
  if (title) node.title = title;
  return node;
}

/** Builds one view's elements into `host`: toolbar, then the plot grid (axes, canvas, colour bars, strip). */
export function buildDom(host: HTMLElement): Dom {
  const dom: Dom = {
    root: el("div", "audiovis-viewer", "audiovis-viewer"),
    canvas: el("canvas", "av-canvas", "spectrogram-canvas"),
    main: el("div", "av-main"),
    freqAxis: el("canvas", "av-freq-axis", "audiovis-frequency-axis"),
    timeAxis: el("canvas", "av-time-axis", "audiovis-time-axis"),
    colorbar: el("canvas", "av-colorbar", "audiovis-colorbar"),
    tooltip: el("div", "av-tooltip", "audiovis-tooltip"),
    playButton: button("audiovis-play", ""),
    playSelectionButton: button("audiovis-play-selection", "▶ selection", "Play the time span of the selected patches"),
    playPatchesButton: button("audiovis-play-patches", "▶ patches"),
    resetButton: button("audiovis-reset-zoom", "Reset zoom", "Show the whole clip (double-click the spectrogram)"),
    readout: el("span", "av-readout", "audiovis-readout"),
    strip: el("canvas", "av-window-strip", "audiovis-window-strip"),
  };
  dom.root.tabIndex = 0;
  const toolbar = el("div", "av-toolbar");
  toolbar.append(dom.playButton, dom.playSelectionButton, dom.playPatchesButton, dom.resetButton, dom.readout);

  const plot = el("div", "av-plot");
  dom.canvas.setAttribute("role", "img");
  dom.canvas.setAttribute("aria-label", "spectrogram");
  dom.tooltip.hidden = true;
  dom.main.append(dom.canvas, dom.tooltip);
  plot.append(dom.freqAxis, dom.main, dom.colorbar, el("div", "av-corner"), dom.timeAxis, el("div", "av-corner"));
  plot.append(el("div", "av-corner"), dom.strip, el("div", "av-corner"));
  dom.strip.title = "Analysis windows and their top label; click one to zoom to it";
  plot.style.gridTemplateColumns = `${FREQ_AXIS_WIDTH}px minmax(0, 1fr) ${COLORBAR_WIDTH}px`;
  dom.timeAxis.title = "Click to move the playhead";
  dom.root.append(toolbar, plot);
  host.append(dom.root);
  return dom;
}

/** Sizes every canvas for the plot's current width and `height` CSS px at device resolution; returns the width. */
export function layout(dom: Dom, height: number): number {
  const width = Math.max(50, Math.floor(dom.main.clientWidth || dom.root.clientWidth - FREQ_AXIS_WIDTH - COLORBAR_WIDTH));
  const dpr = window.devicePixelRatio || 1;
  dom.main.style.height = `${height}px`;
  const size = (c: HTMLCanvasElement, w: number, h: number) => {
    c.style.width = `${w}px`;
    c.style.height = `${h}px`;
    c.width = Math.max(1, Math.round(w * dpr));
    c.height = Math.max(1, Math.round(h * dpr));
  };
  size(dom.canvas, width, height);
  size(dom.freqAxis, FREQ_AXIS_WIDTH, height);
  size(dom.colorbar, COLORBAR_WIDTH, height);
  size(dom.timeAxis, width, TIME_AXIS_HEIGHT);
  size(dom.strip, width, STRIP_HEIGHT);
  return width;
}
