// Bundles src/viewer.ts (and its CSS) into ../audiovis/static for the Python widget, and the loader of saved
// pages (src/static/page.ts -> page.js + page.css, an IIFE inlined into save_html pages); --watch rebuilds on change.
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
];

if (watch) {
  for (const options of builds) await (await esbuild.context(options)).watch();
} else {
  await Promise.all(builds.map((options) => esbuild.build(options)));
}
