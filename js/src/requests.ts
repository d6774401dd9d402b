/**
 * Request/response over the widget's custom messages: every request carries an id, Python always answers.
 * Replies reach every view of the widget, so ids start at a random base per view (as in tiles.ts): a view
 * resolves only the requests it sent and ignores the others' replies.
 */

import type { AnyModel } from "@anywidget/types";

export interface Reply {
  content: Record<string, unknown>;
  buffers: DataView[];
}

export class Requester {
  private readonly idBase = Math.floor(Math.random() * 2 ** 31) * 2 ** 20;
  private next = 1;
  private pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void; timer: number }>();
  private readonly listener: (msg: unknown, buffers: DataView[]) => void;

  constructor(
    private readonly model: AnyModel,
    private readonly timeoutMs = 30000,
  ) {
    this.listener = (msg, buffers) => {
      if (typeof msg !== "object" || msg === null) return;
      const content = msg as Record<string, unknown>;
      const id = content.id;
      if (typeof id !== "number") return;
      const entry = this.pending.get(id);
      if (!entry) return;
      this.pending.delete(id);
      window.clearTimeout(entry.timer);
      if (typeof content.error === "string") entry.reject(new Error(content.error));
      else entry.resolve({ content, buffers: buffers ?? [] });
    };
    model.on("msg:custom", this.listener);
  }

  request(content: Record<string, unknown>): Promise<Reply> {
    const id = this.idBase + this.next++;
    return new Promise<Reply>((resolve, reject) => {
      const timer = window.setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no answer from the kernel to ${String(content.type)} within ${this.timeoutMs / 1000} s`));
      }, this.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.model.send({ ...content, id });
    });
  }

  destroy(): void {
    this.model.off("msg:custom", this.listener);
    for (const [, entry] of this.pending) {
      window.clearTimeout(entry.timer);
      entry.reject(new Error("viewer closed"));
    }
    this.pending.clear();
  }
}
