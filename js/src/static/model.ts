/**
 * A widget model with no kernel behind it, for saved pages: the anywidget model interface (get, set, on,
 * off, send, save_changes) over trait values held in the page. Requests the viewer sends (audio chunks,
 * tiles) go to an answering function that replies from data embedded in the page, as "msg:custom" events,
 * always asynchronously, as a kernel would.
 */

export type Listener = (...args: any[]) => void;
/** Answers one request: resolves with the reply's content and buffers, or rejects (sent as {id, error}). */
export type Answerer = (content: Record<string, unknown>) => Promise<{ content: Record<string, unknown>; buffers: DataView[] }>;

/** A saved binary buffer: where it goes in the state and its bytes (base64, zlib-compressed if marked). */
export interface SavedBuffer {
  path: Array<string | number>;
  data: string;
  compression?: "deflate";
}

export interface SavedState {
  state: Record<string, unknown>;
  buffers: SavedBuffer[];
}

export function base64ToBytes(text: string): Uint8Array {
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

export async function inflate(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** The saved state with every buffer put back at its path as a DataView (what ipywidgets' put_buffers does). */
export async function restoreState(saved: SavedState): Promise<Record<string, unknown>> {
  const state: Record<string, unknown> = { ...saved.state };
  for (const buffer of saved.buffers ?? []) {
    let bytes = base64ToBytes(buffer.data);
    if (buffer.compression === "deflate") bytes = await inflate(bytes);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let node: any = state;
    const path = buffer.path;
    for (let i = 0; i < path.length - 1; i++) node = node[path[i]!];
    node[path[path.length - 1]!] = view;
  }
  return state;
}

/** Equal values set twice fire no change: lists of numbers by content, anything else (e.g. binary arrays,
 * whose DataView has no JSON form) by identity. */
function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
  return a.every((v, i) => v === b[i]);
}

export class StaticModel {
  private readonly values: Record<string, unknown>;
  private readonly listeners = new Map<string, Set<Listener>>();
  /** Not a Jupyter widget manager: saved pages have no other models to resolve. */
  readonly widget_manager = {
    get_model: async (id: string) => {
      throw new Error(`no widget model ${id} in a saved page`);
    },
  };

  constructor(
    state: Record<string, unknown>,
    private readonly answer: Answerer,
  ) {
    this.values = { ...state };
  }

  get(key: string): any {
    return this.values[key];
  }

  /** Sets a value; "change:key" listeners run at once when it differs (as Backbone does). */
  set(key: string, value: unknown): void {
    if (same(this.values[key], value)) return;
    this.values[key] = value;
    this.emit(`change:${key}`, this, value);
    this.emit("change", this);
  }

  save_changes(): void {}

  on(name: string, fn: Listener): void {
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    set.add(fn);
  }

  off(name?: string | null, fn?: Listener | null): void {
    if (!name) {
      this.listeners.clear();
      return;
    }
    if (!fn) this.listeners.delete(name);
    else this.listeners.get(name)?.delete(fn);
  }

  send(content: unknown, _callbacks?: unknown, _buffers?: unknown): void {
    const request = (typeof content === "object" && content !== null ? content : {}) as Record<string, unknown>;
    const id = request.id;
    this.answer(request).then(
      (reply) => this.emit("msg:custom", { ...reply.content, id }, reply.buffers),
      (err: unknown) => this.emit("msg:custom", { id, error: err instanceof Error ? err.message : String(err) }, []),
    );
  }

  private emit(name: string, ...args: unknown[]): void {
    for (const fn of [...(this.listeners.get(name) ?? [])]) {
      try {
        fn(...args);
      } catch (err) {
        console.warn("audiovis:", err);
      }
    }
  }
}
