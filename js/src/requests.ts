/**
 * The one request channel of a widget model: every request (audio chunks, patch audio, tiles) goes out as
 * `{type, ..., id}` over the model's custom messages, and Python answers every id, `{id, type, ...}` with
 * binary buffers or `{id, error}`. All views of one model share one channel (one id sequence, one pending
 * map, one `msg:custom` listener), so a reply resolves exactly the request that carries its id.
 *
 * `channelFor(model)` hands each view its own handle and counts them: releasing a handle rejects the
 * requests sent through it; releasing the last one also removes the listener (nothing is left behind).
 * Ids start at a random base per channel, so browser windows on one kernel (each with its own model,
 * all receiving every reply) do not answer each other's requests.
 */

export interface Reply {
  content: Record<string, unknown>;
  buffers: DataView[];
}

/** The kernel answered a request with `{id, error}`. */
export class ReplyError extends Error {
  override readonly name = "ReplyError";
}

/** What a channel needs of a widget model (anywidget's AnyModel has it). */
export interface MessageModel {
  send(content: Record<string, unknown>): void;
  on(name: "msg:custom", fn: (msg: unknown, buffers: DataView[]) => void): void;
  off(name: "msg:custom", fn: (msg: unknown, buffers: DataView[]) => void): void;
}

/** One view's handle on its model's channel. */
export interface Channel {
  /**
   * Sends `{...content, id}` with a fresh id. Resolves with the reply to that id; rejects with a ReplyError
   * when the kernel answers `{id, error}`, and with an Error when no answer comes within `timeoutMs` or the
   * handle is released first.
   */
  request(content: Record<string, unknown>, timeoutMs?: number): Promise<Reply>;
  /** Rejects the requests sent through this handle; the model's last handle also stops listening. Idempotent. */
  release(): void;
}

/** Default wait for an answer (ms). */
export const REQUEST_TIMEOUT_MS = 30000;

interface Pending {
  resolve: (reply: Reply) => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout>;
  owner: object;
}

/** Ids, pending requests, timeouts and the single listener of one model. */
class SharedChannel {
  private readonly idBase = Math.floor(Math.random() * 2 ** 31) * 2 ** 20;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listener = (msg: unknown, buffers: DataView[]) => this.receive(msg, buffers);
  handles = 0;

  constructor(private readonly model: MessageModel) {
    model.on("msg:custom", this.listener);
  }

  send(content: Record<string, unknown>, owner: object, timeoutMs: number): Promise<Reply> {
    const id = this.idBase + this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no answer from the kernel to ${String(content.type)} within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer, owner });
      this.model.send({ ...content, id });
    });
  }

  /** A custom message: settles the pending request with its id; anything else is not ours and is ignored. */
  private receive(msg: unknown, buffers: DataView[]): void {
    if (typeof msg !== "object" || msg === null) return;
    const content = msg as Record<string, unknown>;
    const id = content.id;
    if (typeof id !== "number") return;
    const entry = this.pending.get(id);
    if (!entry) return;
    this.pending.delete(id);
    clearTimeout(entry.timer);
    if (content.error !== undefined && content.error !== null) entry.reject(new ReplyError(String(content.error)));
    else entry.resolve({ content, buffers: buffers ?? [] });
  }

  /** Rejects every request sent by `owner`. */
  drop(owner: object): void {
    for (const [id, entry] of this.pending) {
      if (entry.owner !== owner) continue;
      this.pending.delete(id);
      clearTimeout(entry.timer);
      entry.reject(new Error("viewer closed"));
    }
  }

  close(): void {
    this.model.off("msg:custom", this.listener);
  }
}

const channels = new WeakMap<MessageModel, SharedChannel>();

/** A handle on `model`'s channel, made on the first call and shared by every later one until all are released. */
export function channelFor(model: MessageModel): Channel {
  let shared = channels.get(model);
  if (!shared) {
    shared = new SharedChannel(model);
    channels.set(model, shared);
  }
  const channel = shared;
  channel.handles++;
  const owner = {};
  let released = false;
  return {
    request(content, timeoutMs = REQUEST_TIMEOUT_MS) {
      if (released) return Promise.reject(new Error("viewer closed"));
      return channel.send(content, owner, timeoutMs);
    },
    release() {
      if (released) return;
      released = true;
      channel.drop(owner);
      if (--channel.handles > 0) return;
      channel.close();
      if (channels.get(model) === channel) channels.delete(model);
    },
  };
}
