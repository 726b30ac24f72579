// Small SVG charts drawn here rather than with a charting library: three shapes are all the console
// needs, they must work under a strict Content-Security-Policy (no inline script or style), and each
// carries its numbers as a table one click away (the text alternative). Colours pass WCAG AA on white.
import { el, fmt, table } from "./ui.js";

const NS = "http://www.w3.org/2000/svg";
export const PALETTE = ["#1f5fa8", "#b34700", "#2e7d32", "#7b1fa2", "#a3162f", "#00695c", "#5d4037", "#37474f"];

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  node.append(...children.map((c) => (c instanceof Node ? c : document.createTextNode(String(c)))));
  return node;
}

function figure(title, chart, numbers) {
  return el("figure", { class: "chart" }, el("figcaption", {}, title), chart, el("details", {}, el("summary", {}, "Show the numbers"), numbers));
}

function frame(width, height, label) {
  return svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, class: "chart-svg" });
}

/**
 * Grouped bars: ``categories`` along x, one bar per series in each. series: [{name, values: [..]}].
 * For counts (label × group) and per-group rates.
 */
export function barChart(title, categories, series, { yLabel = "" } = {}) {
  const W = 640, H = 260, L = 48, B = 40, T = 10;
  const max = Math.max(1e-9, ...series.flatMap((s) => s.values.map((v) => v ?? 0)));
  const root = frame(W, H, `${title}: bar chart; the numbers are in the table below`);
  const band = (W - L - 10) / Math.max(1, categories.length);
  const bar = (band * 0.8) / Math.max(1, series.length);
  root.append(svg("line", { x1: L, y1: H - B, x2: W - 10, y2: H - B, stroke: "#333" }));
  root.append(svg("text", { x: 4, y: T + 8, "font-size": 11 }, `${yLabel} max ${Number.isInteger(max) ? max : fmt(max, max >= 10 ? 0 : 3)}`));
  categories.forEach((category, i) => {
    const x0 = L + i * band + band * 0.1;
    series.forEach((s, j) => {
      const v = s.values[i] ?? 0;
      const h = ((H - B - T) * v) / max;
      root.append(svg("rect", { x: x0 + j * bar, y: H - B - h, width: Math.max(1, bar - 2), height: h, fill: PALETTE[j % PALETTE.length] }, svg("title", {}, `${category}, ${s.name}: ${v}`)));
    });
    root.append(svg("text", { x: x0 + band * 0.4, y: H - B + 14, "font-size": 11, "text-anchor": "middle" }, String(category).slice(0, 14)));
  });
  const legend = el("ul", { class: "legend" }, series.map((s, j) => el("li", {}, el("span", { class: `swatch swatch-${j % PALETTE.length}` }), s.name)));
  const numbers = table(title, [["", (r) => r.category], ...series.map((s, j) => [s.name, (r) => fmt(r.values[j], 3).replace(/\.000$/, "")])],
    categories.map((category, i) => ({ category, values: series.map((s) => s.values[i]) })));
  return figure(title, el("div", {}, root, legend), numbers);
}

/**
 * Lines over x (epochs): series [{name, points: [[x, y], ...]}]; y in [yMin, yMax] when given. A series
 * may set ``color`` (a PALETTE index, default its position) and ``dashed: true`` (a reference line,
 * e.g. the audit's value next to the live one in the same colour).
 */
export function lineChart(title, series, { xLabel = "epoch", yMin = null, yMax = null } = {}) {
  const W = 640, H = 240, L = 48, B = 30, T = 10, R = 10;
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1])).filter((y) => y !== null && y !== undefined);
  const x0 = Math.min(...xs, 0), x1 = Math.max(...xs, 1);
  const y0 = yMin ?? Math.min(...ys, 0), y1 = yMax ?? Math.max(...ys, 1e-9);
  const sx = (x) => L + ((W - L - R) * (x - x0)) / Math.max(1e-9, x1 - x0);
  const sy = (y) => H - B - ((H - B - T) * (y - y0)) / Math.max(1e-9, y1 - y0);
  const root = frame(W, H, `${title}: line chart; the numbers are in the table below`);
  root.append(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#333" }), svg("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#333" }));
  root.append(svg("text", { x: 2, y: T + 8, "font-size": 11 }, fmt(y1, 2)), svg("text", { x: 2, y: H - B, "font-size": 11 }, fmt(y0, 2)));
  root.append(svg("text", { x: W - R, y: H - 6, "font-size": 11, "text-anchor": "end" }, `${xLabel} ${x1}`));
  const colour = (s, j) => (s.color ?? j) % PALETTE.length;
  series.forEach((s, j) => {
    const pts = s.points.filter((p) => p[1] !== null && p[1] !== undefined);
    if (!pts.length) return;
    const stroke = PALETTE[colour(s, j)];
    root.append(svg("polyline", { points: pts.map(([x, y]) => `${sx(x)},${sy(y)}`).join(" "), fill: "none", stroke, "stroke-width": 2, ...(s.dashed ? { "stroke-dasharray": "6 4" } : {}) }));
    // a reference line's points are hollow
    pts.forEach(([x, y]) => root.append(svg("circle", { cx: sx(x), cy: sy(y), r: 3, fill: s.dashed ? "#fff" : stroke, stroke }, svg("title", {}, `${s.name}, ${xLabel} ${x}: ${fmt(y)}`))));
  });
  const legend = el("ul", { class: "legend" }, series.map((s, j) => el("li", {}, el("span", { class: `swatch swatch-${colour(s, j)}${s.dashed ? " swatch-dashed" : ""}` }), s.name)));
  const allX = [...new Set(xs)].sort((a, b) => a - b);
  const numbers = table(title, [[xLabel, (x) => x], ...series.map((s) => [s.name, (x) => fmt(s.points.find((p) => p[0] === x)?.[1])])], allX);
  return figure(title, el("div", {}, root, legend), numbers);
}

/**
 * A forest plot: one row per item {label, value, low, high}, a vertical line at ``reference`` (0 for
 * paired differences). Intervals that cross the reference are drawn hollow.
 */
export function forestPlot(title, rows, { reference = 0, digits = 3 } = {}) {
  const W = 640, rowH = 26, L = 220, R = 20, T = 20;
  const H = T + rowH * rows.length + 24;
  const values = rows.flatMap((r) => [r.value, r.low, r.high]).filter((v) => v !== null && v !== undefined);
  const lo = Math.min(reference, ...values), hi = Math.max(reference, ...values);
  const pad = (hi - lo) * 0.05 || 0.01;
  const sx = (v) => L + ((W - L - R) * (v - lo + pad)) / (hi - lo + 2 * pad);
  const root = frame(W, H, `${title}: forest plot; the numbers are in the table below`);
  root.append(svg("line", { x1: sx(reference), y1: T - 10, x2: sx(reference), y2: H - 20, stroke: "#555", "stroke-dasharray": "4 3" }));
  root.append(svg("text", { x: sx(reference), y: H - 6, "font-size": 11, "text-anchor": "middle" }, fmt(reference, 1)));
  rows.forEach((r, i) => {
    const y = T + i * rowH + rowH / 2;
    root.append(svg("text", { x: L - 8, y: y + 4, "font-size": 12, "text-anchor": "end" }, String(r.label).slice(0, 32)));
    if (r.low !== null && r.low !== undefined && r.high !== null && r.high !== undefined) {
      root.append(svg("line", { x1: sx(r.low), y1: y, x2: sx(r.high), y2: y, stroke: "#1f5fa8", "stroke-width": 2 }));
    }
    if (r.value !== null && r.value !== undefined) {
      const crosses = r.low !== null && r.low !== undefined && r.low <= reference && r.high >= reference;
      root.append(svg("circle", { cx: sx(r.value), cy: y, r: 5, fill: crosses ? "#fff" : "#1f5fa8", stroke: "#1f5fa8", "stroke-width": 2 },
        svg("title", {}, `${r.label}: ${fmt(r.value, digits)} [${fmt(r.low, digits)}, ${fmt(r.high, digits)}]`)));
    }
  });
  const numbers = table(title, [["", (r) => r.label], ["value", (r) => fmt(r.value, digits)], ["low", (r) => fmt(r.low, digits)], ["high", (r) => fmt(r.high, digits)]], rows);
  return figure(title, root, numbers);
}
