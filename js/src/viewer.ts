/**
 * anywidget entry of audiovis.SpectrogramViewer (and LongViewer): `render({model, el})` builds one view
 * from its parts (view/*), wires them to each other and to the model through the trait table (model.ts),
 * and returns the cleanup that undoes everything it made: DOM and model listeners, the ResizeObserver,
 * the animation frame, tile and audio requests (the view's handle on the model's channel), AudioContexts.
 */

import "./viewer.css";
import type { RenderProps } from "@anywidget/types";
import { type Effect, ModelData, ModelWriter, ON_CHANGE, type Trait, type Traits, type ViewModel } from "./model";
import { type Channel, channelFor } from "./requests";
import { Controls } from "./view/controls";
import { buildDom, layout, listen } from "./view/dom";
import { Drawing } from "./view/draw";
import { activeHeatmap } from "./view/heatmap";
import { attachInteractions } from "./view/interaction";
import { Pointer } from "./view/pointer";
import { attachStrip, showStrip } from "./view/strip";
import { updateTooltip } from "./view/tooltip";
import { Viewport } from "./view/viewport";

/** Builds one view of `model` into `host`, its requests going over `channel`; returns the view's cleanup. */
function mount(model: ViewModel, host: HTMLElement, channel: Channel): () => void {
  const cleanups: Array<() => void> = [];
  const writer = new ModelWriter(model);
  const dom = buildDom(host);
  const data = new ModelData(model, channel, () => drawing.onTile());
  // Test and benchmark hook: the last similarity map computed in the browser ({index, values} or null).
  Object.defineProperty(dom.root, "audiovisSimilarity", { get: () => data.similarity, configurable: true });
  data.decodeAll();

  const tooltip = () => updateTooltip(dom.tooltip, {
    data,
    view: viewport.view(),
    pointer: pointer.position,
    hovered: pointer.hovered(),
    heatmap: () => activeHeatmap(model, data, pointer.hovered()),
  });
  const viewport = new Viewport(model, data, writer, (published) => {
    drawing.staleImage();
    if (pointer.position) {
      if (published) pointer.publishHover(); // zooming about the pointer moves patches under it
      tooltip();
    }
    drawing.request();
  });
  const pointer = new Pointer(model, writer, data, viewport, {
    tooltip,
    draw: () => drawing.request(),
    buttons: () => controls.updateButtons(),
    togglePlay: () => controls.togglePlay(),
  });
  const controls = new Controls(model, writer, channel, data, viewport, dom, () => drawing.request());
  const drawing = new Drawing(model, dom, data, viewport, {
    hovered: () => pointer.hovered(),
    rubberBand: () => pointer.rubberBand,
    playhead: () => controls.playhead(),
  });
  const resize = () => {
    viewport.width = layout(dom, viewport.height());
    drawing.resized();
  };

  cleanups.push(
    listen(dom.resetButton, "click", () => viewport.showAll()),
    attachStrip(dom.strip, () => data.windows, () => viewport.view(), (f0, f1) => viewport.setRange(f0, f1, true)),
  );
  showStrip(dom.strip, data.windows);
  viewport.loadTimeRange();
  controls.updateButtons();

  const effects: Record<Effect, () => void> = {
    image: () => drawing.staleImage(),
    chrome: () => drawing.staleChrome(),
    strip: () => showStrip(dom.strip, data.windows),
    buttons: () => controls.updateButtons(),
    tooltip,
    range: () => viewport.loadTimeRange(),
    playhead: () => controls.onModelPlayhead(),
    size: resize,
  };
  const onChange = (trait: Trait) => {
    const entry = ON_CHANGE[trait];
    const apply = () => {
      data.update(trait);
      for (const effect of entry.effects) effects[effect]();
    };
    if (!entry.redraw) return apply();
    try {
      apply();
    } catch (err) {
      console.warn("audiovis:", err);
    }
    drawing.request();
  };
  for (const trait of Object.keys(ON_CHANGE) as Trait[]) {
    const handler = () => onChange(trait);
    model.on(`change:${trait}`, handler);
    cleanups.push(() => model.off(`change:${trait}`, handler));
  }

  cleanups.push(attachInteractions(dom.canvas, dom.root, pointer.intents()));
  const observer = new ResizeObserver(resize);
  observer.observe(dom.main);
  cleanups.push(() => observer.disconnect());
  resize();

  return () => {
    drawing.destroy();
    for (const fn of cleanups.splice(0)) fn();
    data.destroy();
    controls.destroy();
    dom.root.remove();
  };
}

function render({ model, el: host }: RenderProps<Traits>): () => void {
  const channel = channelFor(model);
  let destroy: () => void;
  try {
    destroy = mount(model, host, channel);
  } catch (err) {
    channel.release();
    throw err;
  }
  return () => {
    destroy();
    channel.release();
  };
}

export default { render };
