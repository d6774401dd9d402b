/**
 * Entry of an exported notebook page (python -m audiovis.export): renders every widget of the notebook
 * from its saved widget state with @jupyter-widgets/html-manager, bundled into this file, so nothing is
 * fetched. anywidget widgets (audiovis' viewers among them) run the `_esm` module saved in their state,
 * i.e. the front end of the audiovis version that made the notebook; should a browser refuse to import
 * it, audiovis widgets fall back to the viewer bundled here. jupyter_bokeh plots are drawn by the BokehJS
 * in the page, if any; widgets of other libraries that need their own front-end code show a placeholder.
 */

import * as base from "@jupyter-widgets/base";
import { HTMLManager } from "@jupyter-widgets/html-manager/lib/htmlmanager";
import "@jupyter-widgets/controls/css/widgets-base.css";
import "@lumino/widgets/style/index.css";
import viewerWidget from "../viewer";
import { type SavedAudio, pageAnswers } from "./answers";
import type { Answerer } from "./model";

const STATE_TYPE = "application/vnd.jupyter.widget-state+json";
const VIEW_TYPE = "application/vnd.jupyter.widget-view+json";

type RenderFn = (props: { model: unknown; el: HTMLElement }) => unknown;

const modules = new Map<string, Promise<{ render?: RenderFn }>>();
const answerers = new Map<string, Answerer>();
let savedAudio: Record<string, SavedAudio> | null = null;

/** Answers a viewer's audio and "▶ patches" requests from the audio export.py read from the kernel (by
 * model id), anything else with an error. */
function answererFor(modelId: string, model: base.DOMWidgetModel): Answerer {
  let found = answerers.get(modelId);
  if (!found) {
    if (savedAudio === null) {
      try {
        savedAudio = JSON.parse(document.getElementById("audiovis-audio")?.textContent || "{}");
      } catch {
        savedAudio = {};
      }
    }
    const audio = savedAudio?.[modelId] ?? null;
    const geometry = () => {
      const info = model.get("_audio_info");
      const offset = model.get("_grid_offset");
      return {
        grid: model.get("_grid") ?? null,
        meta: model.get("_meta"),
        gridOffset: typeof offset === "number" && Number.isFinite(offset) ? offset : 0,
        audioStart: typeof info?.start === "number" && Number.isFinite(info.start) ? info.start : 0,
      };
    };
    const answer = pageAnswers({ audio, frames: null, tiles: null, geometry });
    found = async (request) => {
      const sound = request.type === "audio" || request.type === "patch_audio";
      if (sound && !audio) {
        throw new Error("this is a static page of the notebook without this viewer's audio (export with --execute to keep it)");
      }
      if (!sound) {
        throw new Error("this is a static page of the notebook: there is no kernel to answer (it is computed in Python)");
      }
      return answer(request);
    };
    answerers.set(modelId, found);
  }
  return found;
}
const styles = new Set<string>();

/** The widget's front-end module from its saved `_esm` text (imported once per distinct text). */
function esmModule(esm: string): Promise<{ render?: RenderFn }> {
  let found = modules.get(esm);
  if (!found) {
    const url = URL.createObjectURL(new Blob([esm], { type: "text/javascript" }));
    found = import(/* @vite-ignore */ url).then((mod) => (mod.default ?? mod) as { render?: RenderFn });
    modules.set(esm, found);
  }
  return found;
}

function addStyle(css: unknown): void {
  if (typeof css !== "string" || !css || styles.has(css)) return;
  styles.add(css);
  const node = document.createElement("style");
  node.textContent = css;
  document.head.append(node);
}

export class AnyModel extends base.DOMWidgetModel {
  override defaults() {
    return {
      ...super.defaults(),
      _model_name: "AnyModel",
      _model_module: "anywidget",
      _view_name: "AnyView",
      _view_module: "anywidget",
    };
  }
}

/** anywidget's view, without a kernel: the model interface over the saved state; requests get an error reply. */
export class AnyView extends base.DOMWidgetView {
  private cleanup: (() => void) | null = null;

  override render(): void {
    void this.mount();
  }

  private adapter() {
    const model = this.model;
    return {
      get: (key: string) => model.get(key),
      set: (key: string, value: unknown) => model.set(key, value),
      on: (name: string, fn: (...args: any[]) => void) => model.on(name, fn),
      off: (name?: string, fn?: (...args: any[]) => void) => model.off(name, fn),
      save_changes: () => {},
      send: (content: any) => {
        const request = content && typeof content === "object" ? content : {};
        answererFor(model.model_id, model)(request).then(
          (reply) => model.trigger("msg:custom", { ...reply.content, id: request.id }, reply.buffers),
          (err: unknown) => model.trigger("msg:custom", { id: request.id, error: err instanceof Error ? err.message : String(err) }, []),
        );
      },
      widget_manager: model.widget_manager,
    };
  }

  private async mount(): Promise<void> {
    const esm = this.model.get("_esm");
    const isAudiovis = String(this.model.get("_anywidget_id") ?? "").startsWith("audiovis.");
    addStyle(this.model.get("_css"));
    let render: RenderFn | undefined;
    try {
      if (typeof esm !== "string") throw new Error("no _esm in the saved state");
      render = (await esmModule(esm)).render;
    } catch (err) {
      if (!isAudiovis) {
        this.el.textContent = `This widget's front end could not be loaded in a static page: ${String(err)}`;
        return;
      }
      console.warn("audiovis: using the bundled viewer:", err);
    }
    if (!render && isAudiovis) render = viewerWidget.render as RenderFn;
    if (!render) {
      this.el.textContent = "This widget has no render function.";
      return;
    }
    const out = await render({ model: this.adapter(), el: this.el });
    if (typeof out === "function") this.cleanup = out as () => void;
  }

  override remove(): any {
    this.cleanup?.();
    this.cleanup = null;
    return super.remove();
  }
}

class PlaceholderModel extends base.DOMWidgetModel {}

class PlaceholderView extends base.DOMWidgetView {
  override render(): void {
    const module = String(this.model.get("_view_module") ?? "?");
    const name = String(this.model.get("_view_name") ?? "?");
    this.el.className += " audiovis-widget-placeholder";
    this.el.dataset.testid = "audiovis-widget-placeholder";
    this.el.textContent = `[${module} ${name}: this widget needs its own front end and a running kernel; it is not shown in this static page]`;
  }
}

/**
 * jupyter_bokeh's plot, drawn by the BokehJS already in the page (the output of `output_notebook`, which
 * an Explorer emits) from the figure saved in `render_bundle`; no link to Python, so selections made in
 * it stay in the plot. Without BokehJS in the page it is a placeholder.
 */
class BokehView extends base.DOMWidgetView {
  override render(): void {
    void this.mount().catch((err) => {
      this.el.textContent = `[Bokeh plot: could not be drawn in this static page: ${String(err)}]`;
    });
  }

  private async mount(): Promise<void> {
    const Bokeh = (window as any).Bokeh;
    const raw = this.model.get("render_bundle");
    const bundle = typeof raw === "string" ? JSON.parse(raw) : raw;
    if (!Bokeh?.embed?.embed_items || !bundle?.docs_json) {
      PlaceholderView.prototype.render.call(this);
      return;
    }
    for (let i = 0; i < 100 && !this.el.isConnected; i++) await new Promise((r) => setTimeout(r, 50));
    for (const item of bundle.render_items ?? []) {
      for (const [rootId, elementId] of Object.entries(item.roots ?? {})) {
        const holder = document.createElement("div");
        holder.id = String(elementId);
        holder.dataset.rootId = rootId;
        holder.style.display = "contents";
        this.el.append(holder);
      }
    }
    this.el.dataset.testid = "audiovis-static-bokeh";
    await Bokeh.embed.embed_items(bundle.docs_json, bundle.render_items);
  }
}

/** Classes for modules this page does not carry: every *View / *Model name resolves to a placeholder
 * (and nothing else: a `then` would make the module look like a promise). */
const placeholders = new Proxy({} as Record<string, unknown>, {
  get: (_target, name) => {
    if (typeof name !== "string") return undefined;
    if (name.endsWith("View")) return PlaceholderView;
    return name.endsWith("Model") ? PlaceholderModel : undefined;
  },
});

async function loader(moduleName: string): Promise<unknown> {
  if (moduleName === "anywidget") return { AnyModel, AnyView };
  if (moduleName === "@bokeh/jupyter_bokeh") return { BokehModel: PlaceholderModel, BokehView };
  return placeholders;
}

async function renderNotebook(): Promise<void> {
  const tags = Array.from(document.querySelectorAll(`script[type="${STATE_TYPE}"]`));
  for (const tag of tags) {
    const manager = new HTMLManager({ loader });
    const models = await manager.set_state(JSON.parse(tag.textContent ?? "{}"));
    const views = Array.from(document.querySelectorAll(`script[type="${VIEW_TYPE}"]`));
    await Promise.all(
      views.map(async (viewTag) => {
        const { model_id } = JSON.parse(viewTag.textContent ?? "{}");
        const model = models.find((m) => m.model_id === model_id);
        if (!model || !viewTag.parentElement) return;
        const host = document.createElement("div");
        host.className = "widget-subarea";
        viewTag.parentElement.insertBefore(host, viewTag);
        try {
          const view = await manager.create_view(model);
          await manager.display_view(view, host);
        } catch (err) {
          host.textContent = `This widget could not be shown: ${String(err)}`;
        }
      }),
    );
  }
  document.body.dataset.audiovisWidgets = "rendered";
}

function start(): void {
  renderNotebook().catch((err) => {
    console.error("audiovis: widgets could not be rendered:", err);
    document.body.dataset.audiovisWidgets = "failed";
  });
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
