/** Merged-token groups (token merging): each group's stride cells filled in its own colour, the group's outline drawn. */

type Rect = [number, number, number, number];

/** A colour per group id: hues a golden angle apart, so neighbouring ids differ clearly. */
export function groupColor(id: number, alpha = 1): string {
  const hue = (id * 137.508) % 360;
  return `hsla(${hue.toFixed(1)}, 85%, 55%, ${alpha})`;
}

/** ``patch_groups`` from the model as an Int32Array of ``numPatches`` ids (>= -1), or null (absent or malformed, with a warning). */
export function checkGroups(value: unknown, numPatches: number): Int32Array | null {
  if (value === null || value === undefined) return null;
  if (!Array.isArray(value) || value.length !== numPatches) {
    console.warn(`audiovis: ignoring patch_groups: expected ${numPatches} group ids`);
    return null;
  }
  const out = new Int32Array(numPatches);
  for (let i = 0; i < numPatches; i++) {
    const v = value[i];
    if (typeof v !== "number" || !Number.isInteger(v) || v < -1) {
      console.warn(`audiovis: ignoring patch_groups: entry ${i} is not a group id`);
      return null;
    }
    out[i] = v;
  }
  return out;
}

/**
 * Fill every visible cell in its group's colour and outline each group: an edge of a cell is drawn
 * where the neighbouring cell belongs to another group (or there is none). Returns how many distinct
 * groups were drawn.
 */
export function drawGroups(
  ctx: CanvasRenderingContext2D,
  grid: { grid_shape: [number, number] },
  groups: Int32Array,
  cellRect: (index: number) => Rect,
  eachVisible: (fn: (index: number) => void) => void,
): number {
  const [rows, cols] = grid.grid_shape;
  const drawn = new Set<number>();
  // Is the next row (higher frequency) drawn above? Frequency runs bottom to top.
  const nextRowAbove = rows > 1 ? cellRect(cols)[1] < cellRect(0)[1] : true;
  eachVisible((i) => {
    const id = groups[i]!;
    if (id < 0) return;
    drawn.add(id);
    const [x, y, w, h] = cellRect(i);
    ctx.fillStyle = groupColor(id, 0.3);
    ctx.fillRect(x, y, w, h);
  });
  ctx.lineWidth = 2;
  eachVisible((i) => {
    const id = groups[i]!;
    if (id < 0) return;
    const r = Math.floor(i / cols);
    const c = i % cols;
    const [x, y, w, h] = cellRect(i);
    const other = (rr: number, cc: number) => rr < 0 || rr >= rows || cc < 0 || cc >= cols || groups[rr * cols + cc] !== id;
    ctx.strokeStyle = groupColor(id);
    ctx.beginPath();
    if (other(r, c - 1)) { ctx.moveTo(x, y); ctx.lineTo(x, y + h); }
    if (other(r, c + 1)) { ctx.moveTo(x + w, y); ctx.lineTo(x + w, y + h); }
    const top = nextRowAbove ? r + 1 : r - 1;
    const bottom = nextRowAbove ? r - 1 : r + 1;
    if (other(top, c)) { ctx.moveTo(x, y); ctx.lineTo(x + w, y); }
    if (other(bottom, c)) { ctx.moveTo(x, y + h); ctx.lineTo(x + w, y + h); }
    ctx.stroke();
  });
  return drawn.size;
}
