// The public API, read-only: everything the explorer shows comes from GET /v1/... and the
// event stream, so the page works against any node of any cluster.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function get(path, base = "") {
  let response;
  try {
    response = await fetch(base + path, { headers: { Accept: "application/json" } });
  } catch (e) {
    throw new ApiError(0, "Unreachable", `${base || "this node"} did not answer: ${e.message}`);
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const err = (body && body.error) || {};
    throw new ApiError(response.status, err.code || "HttpError", err.message || `HTTP ${response.status}`);
  }
  return body;
}

// GET that answers null for a 404 (a record that does not exist is not an error here)
export async function maybe(path, base = "") {
  try {
    return await get(path, base);
  } catch (e) {
    if (e.status === 404) return null;
    throw e;
  }
}

export const state = (...parts) => get(`/v1/state/${parts.map(encodeURIComponent).join("/")}`);
export const maybeState = (...parts) => maybe(`/v1/state/${parts.map(encodeURIComponent).join("/")}`);
export const listOf = (answer) => (Array.isArray(answer) ? answer : answer ? answer.result || [] : []);

// The genesis as this node serves it, with the SHA-256 of the exact bytes received, so a
// reader can compare it with a copy they trust (or load that copy instead).
let genesisPromise = null;
export function genesis() {
  if (!genesisPromise) {
    genesisPromise = fetch("/v1/genesis").then(async (response) => {
      if (!response.ok) throw new ApiError(response.status, "NoGenesis", "this node serves no genesis");
      const bytes = new Uint8Array(await response.arrayBuffer());
      return { value: JSON.parse(new TextDecoder().decode(bytes)), bytes };
    });
  }
  return genesisPromise;
}

// -- the live feed: one EventSource for the whole page --------------------------------------
const WINDOW_S = 60;
export const live = {
  blocks: [], // newest first: {height, hash, tx_count, timestamp_ms, tx_ids, seen_ms}
  perSecond: new Map(), // unix second -> committed txs that arrived in it
  listeners: new Set(),
  connected: false,
  backfilled: false,
  source: null,
};

// Committed transactions per second of block time, over the last minute: filled from the
// stream, and at start from the latest blocks so the chart does not begin empty.
function count(second, txs) {
  live.perSecond.set(second, (live.perSecond.get(second) || 0) + txs);
}

export async function backfill() {
  if (live.backfilled) return;
  live.backfilled = true;
  let block = await get("/v1/blocks/latest");
  const since = Date.now() - WINDOW_S * 1000;
  for (let n = 0; n < WINDOW_S && block.height > 0 && block.timestamp_ms >= since; n++) {
    if (!live.blocks.some((b) => b.height === block.height))
      count(Math.floor(block.timestamp_ms / 1000), block.tx_ids.length);
    block = await get(`/v1/blocks/${block.height - 1}`);
  }
  notify();
}

export function txRate() {
  const now = Math.floor(Date.now() / 1000);
  const values = [];
  for (let t = now - WINDOW_S + 1; t <= now; t++) values.push(live.perSecond.get(t) || 0);
  return values;
}

function notify() {
  for (const fn of live.listeners) fn();
}

async function onBlock(event) {
  const record = JSON.parse(event.data);
  const second = Math.floor(record.timestamp_ms / 1000);
  count(second, record.tx_count);
  for (const t of live.perSecond.keys())
    if (t < Math.floor(Date.now() / 1000) - WINDOW_S) live.perSecond.delete(t);
  const entry = { ...record, tx_ids: null, seen_ms: Date.now() };
  live.blocks.unshift(entry);
  live.blocks.length = Math.min(live.blocks.length, 30);
  notify();
  if (record.tx_count > 0) {
    try {
      entry.tx_ids = (await get(`/v1/blocks/${record.height}`)).tx_ids;
    } catch {
      entry.tx_ids = [];
    }
    notify();
  }
}

export function startLive() {
  if (live.source) return;
  const source = new EventSource("/v1/events");
  live.source = source;
  source.addEventListener("open", () => {
    live.connected = true;
    notify();
  });
  source.addEventListener("error", () => {
    live.connected = false;
    notify();
  });
  source.addEventListener("block", onBlock);
}
