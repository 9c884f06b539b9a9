// DOM and SVG helpers. Every piece of chain data goes in as text (textContent), never as
// markup, so nothing a transaction carries can run in the reader's page.

const SVG_NS = "http://www.w3.org/2000/svg";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {}))
    if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  for (const c of children.flat(Infinity))
    if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

export const link = (href, text, attrs = {}) => h("a", { href, ...attrs }, text);
export const short = (hex, n = 12) =>
  typeof hex === "string" && hex.length > n ? hex.slice(0, n) + "…" : (hex ?? "—");
export const num = (n) => (typeof n === "number" ? n.toLocaleString("en-US") : (n ?? "—"));
export const bps = (n) => (typeof n === "number" ? `${(n / 100).toFixed(2)} %` : "—");
export const time = (ms) => (ms ? new Date(ms).toISOString().replace("T", " ").replace(".000Z", "Z") : "—");
export const json = (v) => h("pre", { class: "json" }, JSON.stringify(v, null, 2));

export function table(headers, rows, attrs = {}) {
  return h(
    "table",
    attrs,
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        headers.map((t) => h("th", {}, t)),
      ),
    ),
    h(
      "tbody",
      {},
      rows.length
        ? rows.map((r) =>
            h(
              "tr",
              {},
              r.map((c) => h("td", {}, c)),
            ),
          )
        : h("tr", {}, h("td", { colspan: headers.length, class: "muted" }, "none")),
    ),
  );
}

export function kv(pairs) {
  return h(
    "dl",
    { class: "kv" },
    pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]),
  );
}

export const section = (title, ...body) => h("section", { class: "card" }, h("h2", {}, title), ...body);
export const badge = (text, kind = "") => h("span", { class: `badge ${kind}` }, text);

// -- charts (plain SVG: a sparkline and bars need no library) -------------------------------
export function sparkline(values, { width = 320, height = 48, label = "" } = {}) {
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? width / (values.length - 1) : width;
  const points = values.map(
    (v, i) => `${(i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 6)).toFixed(1)}`,
  );
  return s(
    "svg",
    { class: "spark", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label },
    s("polyline", { points: points.join(" "), fill: "none", stroke: "currentColor", "stroke-width": 1.5 }),
    s("text", { x: width - 2, y: 11, "text-anchor": "end", class: "spark-label" }, `max ${max}`),
  );
}

// Horizontal bars: rows of [label, value, max, class, marker, text]; a marker (a threshold)
// is drawn as a line across the bar; text (default "value / max") is printed beside it.
export function bars(rows, { width = 480, barHeight = 18, labelWidth = 120, valueWidth = 130 } = {}) {
  const height = rows.length * (barHeight + 6) + 4;
  const inner = width - labelWidth - valueWidth;
  const at = (v, max) => (max > 0 ? Math.max(0, Math.min(1, v / max)) * inner : 0);
  return s(
    "svg",
    { class: "bars", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" },
    rows.map(([label, value, max, cls, marker, text], i) => {
      const y = 2 + i * (barHeight + 6);
      return s(
        "g",
        { class: cls || "" },
        s("text", { x: 0, y: y + barHeight - 5, class: "bar-label" }, label),
        s("rect", { x: labelWidth, y, width: inner, height: barHeight, class: "bar-track" }),
        s("rect", {
          x: labelWidth,
          y,
          width: at(value, max).toFixed(1),
          height: barHeight,
          class: "bar-fill",
        }),
        marker === undefined
          ? null
          : s("line", {
              x1: labelWidth + at(marker, max),
              x2: labelWidth + at(marker, max),
              y1: y - 2,
              y2: y + barHeight + 2,
              class: "bar-marker",
            }),
        s(
          "text",
          { x: labelWidth + inner + 6, y: y + barHeight - 5, class: "bar-value" },
          text ?? `${num(value)} / ${num(max)}`,
        ),
      );
    }),
  );
}

export function legend(items) {
  return h(
    "p",
    { class: "legend" },
    items.map(([cls, text]) => h("span", { class: cls }, h("i"), text)),
  );
}

// One stacked column per waterfall: where each unit of collections went, step by step.
export function waterfall(steps, total, { width = 640, height = 30 } = {}) {
  const paid = steps.filter((st) => st.paid > 0);
  let x = 0;
  const scale = total > 0 ? width / total : 0;
  const parts = paid.map((st, i) => {
    const w = st.paid * scale,
      part = s(
        "g",
        { class: `wf-${st.kind}` },
        s(
          "rect",
          { x: x.toFixed(1), y: 0, width: w.toFixed(1), height, class: "wf-bar" },
          s("title", {}, `${st.kind} ${st.tranche || ""}: ${st.paid}`),
        ),
      );
    x += w;
    return part;
  });
  const left = total - paid.reduce((n, st) => n + st.paid, 0);
  if (left > 0)
    parts.push(
      s("rect", { x: x.toFixed(1), y: 0, width: (left * scale).toFixed(1), height, class: "wf-rest" }),
    );
  return s(
    "svg",
    { class: "waterfall", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" },
    parts,
  );
}
