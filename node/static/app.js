// The explorer's router: hash routes, one page at a time, the live feed kept across pages.

import { live, startLive } from "./api.js";
import { blockPage, blocksPage, clusterPage, searchTx, txPage } from "./pages-chain.js";
import { dealPage, dealsPage } from "./pages-deals.js";
import { licensingPage, poolPage } from "./pages-licensing.js";
import { patentPage, patentsPage } from "./pages-patents.js";
import { h } from "./ui.js";

const ROUTES = [
  [/^#?\/?$/, clusterPage],
  [/^#\/cluster$/, clusterPage],
  [/^#\/blocks$/, blocksPage],
  [/^#\/block\/([^/]+)$/, blockPage],
  [/^#\/tx\/([0-9a-fA-F]+)$/, txPage],
  [/^#\/patents(?:\/(.*))?$/, patentsPage],
  [/^#\/patent\/(.+)$/, patentPage],
  [/^#\/licensing$/, licensingPage],
  [/^#\/pool\/([^/]+)$/, poolPage],
  [/^#\/deals$/, dealsPage],
  [/^#\/deal\/([^/]+)$/, dealPage],
];

const view = document.getElementById("view");
let current = { onLive: null, timer: null, token: 0 };

function stop() {
  if (current.onLive) live.listeners.delete(current.onLive);
  clearTimeout(current.timer);
}

async function render() {
  stop();
  const token = ++current.token;
  const hash = location.hash || "#/";
  const route = ROUTES.find(([re]) => re.test(hash));
  document
    .querySelectorAll("nav a")
    .forEach((a) => a.classList.toggle("active", hash.startsWith(a.getAttribute("href"))));
  if (!route) return view.replaceChildren(h("p", { class: "error" }, `no page at ${hash}`));
  const args = hash
    .match(route[0])
    .slice(1)
    .map((a) => (a === undefined ? a : decodeURIComponent(a)));
  view.setAttribute("aria-busy", "true");
  try {
    const page = (await route[1](view, ...args)) || {};
    if (token !== current.token) return;
    if (page.onLive) {
      current.onLive = page.onLive;
      live.listeners.add(page.onLive);
    }
    if (page.refreshMs) current.timer = setTimeout(() => token === current.token && render(), page.refreshMs);
  } catch (e) {
    if (token === current.token)
      view.replaceChildren(h("p", { class: "error", role: "alert" }, `${e.code || "Error"}: ${e.message}`));
  } finally {
    if (token === current.token) view.setAttribute("aria-busy", "false");
  }
}

document.getElementById("search").addEventListener("submit", (e) => {
  e.preventDefault();
  const box = document.getElementById("search-box");
  try {
    location.hash = searchTx(box.value);
  } catch (err) {
    view.replaceChildren(h("p", { class: "error" }, err.message));
  }
});
window.addEventListener("hashchange", render);
startLive();
render();
