/**
 * A small software stand-in for CanvasRenderingContext2D (Node has no canvas): the calls drawOverlay makes,
 * rasterised into RGB floats so tests can look at pixels. A pixel is covered when its centre lies inside a
 * filled rectangle; strokes are rectangles `lineWidth` wide centred on the path; dashes are drawn solid;
 * paths may only hold horizontal and vertical segments (all drawOverlay draws).
 */

type Rgba = [number, number, number, number];

function parseColor(style: string): Rgba {
  const hex = /^#([0-9a-f]{6})$/i.exec(style);
  if (hex) {
    const n = parseInt(hex[1]!, 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255, 1];
  }
  const fn = /^rgba?\(([^)]*)\)$/.exec(style.replace(/\s+/g, ""));
  if (!fn) throw new Error(`raster: unsupported colour ${style}`);
  const parts = fn[1]!.split(",").map(Number);
  if (parts.length < 3 || parts.some((v) => !Number.isFinite(v))) throw new Error(`raster: bad colour ${style}`);
  return [parts[0]!, parts[1]!, parts[2]!, parts[3] ?? 1];
}

export class Raster {
  /** RGB per pixel, row-major, 0..255 floats. */
  readonly rgb: Float32Array;
  fillStyle = "#000000";
  strokeStyle = "#000000";
  lineWidth = 1;
  globalAlpha = 1;
  private segments: Array<[number, number, number, number]> = [];
  private pen: [number, number] | null = null;

  constructor(
    readonly width: number,
    readonly height: number,
    background: [number, number, number],
  ) {
    this.rgb = new Float32Array(width * height * 3);
    for (let i = 0; i < width * height; i++) this.rgb.set(background, 3 * i);
  }

  /** The drawing calls as a CanvasRenderingContext2D (for drawOverlay). */
  get context(): CanvasRenderingContext2D {
    return this as unknown as CanvasRenderingContext2D;
  }

  pixel(x: number, y: number): [number, number, number] {
    const i = 3 * (y * this.width + x);
    return [this.rgb[i]!, this.rgb[i + 1]!, this.rgb[i + 2]!];
  }

  private paint(x0: number, y0: number, x1: number, y1: number, style: string): void {
    const [r, g, b, a0] = parseColor(style);
    const a = a0 * this.globalAlpha;
    const i0 = Math.max(0, Math.ceil(Math.min(x0, x1) - 0.5));
    const i1 = Math.min(this.width, Math.ceil(Math.max(x0, x1) - 0.5));
    const j0 = Math.max(0, Math.ceil(Math.min(y0, y1) - 0.5));
    const j1 = Math.min(this.height, Math.ceil(Math.max(y0, y1) - 0.5));
    for (let j = j0; j < j1; j++) {
      for (let i = i0; i < i1; i++) {
        const k = 3 * (j * this.width + i);
        this.rgb[k] = this.rgb[k]! * (1 - a) + r * a;
        this.rgb[k + 1] = this.rgb[k + 1]! * (1 - a) + g * a;
        this.rgb[k + 2] = this.rgb[k + 2]! * (1 - a) + b * a;
      }
    }
  }

  fillRect(x: number, y: number, w: number, h: number): void {
    this.paint(x, y, x + w, y + h, this.fillStyle);
  }

  strokeRect(x: number, y: number, w: number, h: number): void {
    const d = this.lineWidth / 2;
    // four bands that do not overlap (overlapping would composite a translucent colour twice)
    this.paint(x - d, y - d, x + w + d, y + d, this.strokeStyle);
    this.paint(x - d, y + h - d, x + w + d, y + h + d, this.strokeStyle);
    this.paint(x - d, y + d, x + d, y + h - d, this.strokeStyle);
    this.paint(x + w - d, y + d, x + w + d, y + h - d, this.strokeStyle);
  }

  setLineDash(_dashes: number[]): void {}

  beginPath(): void {
    this.segments = [];
    this.pen = null;
  }

  moveTo(x: number, y: number): void {
    this.pen = [x, y];
  }

  lineTo(x: number, y: number): void {
    if (this.pen) this.segments.push([this.pen[0], this.pen[1], x, y]);
    this.pen = [x, y];
  }

  stroke(): void {
    const d = this.lineWidth / 2;
    for (const [x0, y0, x1, y1] of this.segments) {
      if (x0 === x1) this.paint(x0 - d, y0, x1 + d, y1, this.strokeStyle);
      else if (y0 === y1) this.paint(x0, y0 - d, x1, y1 + d, this.strokeStyle);
      else throw new Error("raster: only horizontal and vertical segments");
    }
  }
}
