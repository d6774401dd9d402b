// Bundles src/viewer.ts (and its CSS) into ../audiovis/static for the Python widget, the loader of saved
// pages (src/static/page.ts -> page.js + page.css, an IIFE inlined into save_html pages) and the widget
// manager of exported notebooks (src/static/notebook.ts -> notebook.js + notebook.css, with
// @jupyter-widgets/html-manager; icon fonts left out); --watch rebuilds on change.
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const watch = process.argv.includes("--watch");

const common = {
  bundle: true,
  target: "es2022",
  minify: !watch,
  sourcemap: watch ? "inline" : false,
  outdir: path.join(here, "..", "audiovis", "static"),
  logLevel: "info",
};
const builds = [
  { ...common, entryPoints: { viewer: path.join(here, "src", "viewer.ts") }, format: "esm" },
  { ...common, entryPoints: { page: path.join(here, "src", "static", "page.ts") }, format: "iife" },
  {
    ...common,
    entryPoints: { notebook: path.join(here, "src", "static", "notebook.ts") },
    format: "iife",
    define: { "process.env.NODE_ENV": '"production"', global: "window" },
    loader: { ".woff": "empty", ".woff2": "empty", ".ttf": "empty", ".eot": "empty", ".svg": "dataurl", ".png": "dataurl", ".gif": "dataurl" },
  },
];

if (watch) {
  for (const options of builds) await (await esbuild.context(options)).watch();
} else {
  await Promise.all(builds.map((options) => esbuild.build(options)));
}
