// n points (?n=) in ten clusters, coloured by cluster, drawn by regl-scatterplot on a 900 x 420 canvas.
// window.frameTimes holds every animation frame's time; window.ready turns true once the points are drawn.
import createScatterplot from "regl-scatterplot";

const n = Number(new URLSearchParams(location.search).get("n") || 100000);
const canvas = document.getElementById("map");
const plot = createScatterplot({ canvas, width: 900, height: 420, pointSize: 3 });
let seed = 1;
const random = () => { seed = (seed * 16807) % 2147483647; return seed / 2147483647; };
const x = new Float32Array(n), y = new Float32Array(n), z = new Float32Array(n);
for (let i = 0; i < n; i++) {
  const k = i % 10;
  x[i] = 0.5 * Math.cos(k) + 0.6 * (random() - 0.5);
  y[i] = 0.5 * Math.sin(k) + 0.6 * (random() - 0.5);
  z[i] = k;
}
plot.set({ colorBy: "valueA", pointColor: ["#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00",
  "#ffff33", "#a65628", "#f781bf", "#999999", "#66c2a5"] });
window.frameTimes = [];
const tick = (t) => { window.frameTimes.push(t); requestAnimationFrame(tick); };
requestAnimationFrame(tick);
plot.draw({ x, y, z }).then(() => { window.ready = true; });
