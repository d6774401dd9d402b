/** Requester (src/requests.ts): replies reach every view of a widget; each view resolves only its own. */

import type { AnyModel } from "@anywidget/types";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Requester } from "../src/requests";

type Listener = (msg: unknown, buffers: DataView[]) => void;

/** One widget model shared by several views: a custom message from the kernel reaches every listener. */
class FakeModel {
  sent: Record<string, unknown>[] = [];
  private listeners = new Set<Listener>();

  asModel(): AnyModel {
    return {
      send: (content: Record<string, unknown>) => this.sent.push(content),
      on: (_name: string, fn: Listener) => this.listeners.add(fn),
      off: (_name: string, fn: Listener) => this.listeners.delete(fn),
    } as unknown as AnyModel;
  }

  broadcast(content: Record<string, unknown>): void {
    for (const fn of [...this.listeners]) fn(content, []);
  }
}

describe("Requester", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.stubGlobal("window", globalThis);
  });
  afterEach(() => {
    vi.unstubAllGlobals();
    vi.useRealTimers();
  });

  it("gives two views of one widget different ids, and each view resolves only its own request", async () => {
    const model = new FakeModel();
    const a = new Requester(model.asModel());
    const b = new Requester(model.asModel());
    const got: string[] = [];
    const pa = a.request({ type: "audio", chunk: 0 }).then((r) => got.push(`a:${String(r.content.chunk)}`));
    const pb = b.request({ type: "audio", chunk: 3 }).then((r) => got.push(`b:${String(r.content.chunk)}`));
    const [ra, rb] = model.sent;
    expect(typeof ra!.id).toBe("number");
    expect(ra!.id).not.toBe(rb!.id);
    expect(Number.isSafeInteger(ra!.id) && Number.isSafeInteger(rb!.id)).toBe(true);

    model.broadcast({ id: rb!.id, type: "audio", chunk: 3 }); // b's reply reaches a too
    await pb;
    expect(got).toEqual(["b:3"]);
    model.broadcast({ id: ra!.id, type: "audio", chunk: 0 });
    await pa;
    expect(got).toEqual(["b:3", "a:0"]);
    a.destroy();
    b.destroy();
  });

  it("rejects only the asker on an error reply and ignores replies without a pending id", async () => {
    const model = new FakeModel();
    const a = new Requester(model.asModel());
    const b = new Requester(model.asModel());
    let aSettled = false;
    const pa = a.request({ type: "audio", chunk: 0 }).finally(() => (aSettled = true));
    const pb = b.request({ type: "audio", chunk: 99 });
    const [ra, rb] = model.sent;
    model.broadcast({ id: "not a number", error: "junk" });
    model.broadcast({ id: -1, type: "audio" });
    model.broadcast({ id: rb!.id, error: "audio chunk must be an integer in 0..0, got 99" });
    await expect(pb).rejects.toThrow("audio chunk must be an integer in 0..0");
    await Promise.resolve();
    expect(aSettled).toBe(false);
    model.broadcast({ id: ra!.id, type: "audio", chunk: 0 });
    await expect(pa).resolves.toMatchObject({ content: { chunk: 0 } });
    a.destroy();
    b.destroy();
  });
});
