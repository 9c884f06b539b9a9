// Patents: search by id, owner or IPC class; one patent with everything derived about it.

import { get, listOf, maybe, state } from "./api.js";
import { badge, bars, bps, h, json, kv, link, num, section, short, table, time } from "./ui.js";
import { verifyInto } from "./pages-chain.js";
import { Bytes } from "./msgpack.js";
import { toHex } from "./verify.js";
import { licenceTable, owners, patentLink } from "./pages-licensing.js";

const QUALITY_PARTS = ["authorization", "citations", "technology", "family", "international"];
const POINTS_PER_DIMENSION = 20;

async function allPatents() {
  const summaries = listOf(await state("patents"));
  // the list carries no IPC classes: read each record (an alliance holds hundreds, not millions)
  return Promise.all(summaries.slice(0, 500).map((p) => state("patents", p.id)));
}

function matches(p, q) {
  if (!q) return true;
  const needle = q.toLowerCase();
  return (
    p.id.toLowerCase().includes(needle) ||
    p.title.toLowerCase().includes(needle) ||
    p.owners.some(([org]) => org.toLowerCase().includes(needle)) ||
    (p.ipc || []).some((c) => c.toLowerCase().startsWith(needle))
  );
}

export async function patentsPage(view, query) {
  const patents = await allPatents();
  const input = h("input", {
    id: "patent-search",
    type: "search",
    value: query || "",
    placeholder: "id, owner or IPC class (e.g. H04L)",
  });
  const form = h(
    "form",
    {
      onsubmit: (e) => {
        e.preventDefault();
        location.hash = `#/patents/${encodeURIComponent(input.value)}`;
      },
    },
    input,
    h("button", { type: "submit" }, "Search"),
  );
  const found = patents.filter((p) => matches(p, query));
  view.replaceChildren(
    section(
      `Patents (${found.length} of ${patents.length})`,
      form,
      table(
        ["id", "title", "owners", "IPC", "status", "quality"],
        found.map((p) => [
          patentLink(p.id),
          p.title,
          owners(p.owners),
          (p.ipc || []).join(" "),
          p.effective_status,
          p.quality.score,
        ]),
        { id: "patents" },
      ),
    ),
  );
}

function statusHistory(p) {
  const rows = [
    ["filed", p.filing_date],
    ["published", p.publication_date],
    ["granted", p.grant_date],
    [`status ${p.status}`, p.status_date],
    ["expires", p.expiry_date],
  ].filter(([, d]) => d);
  for (const v of p.versions || [])
    rows.push([`version ${v.version} replaced (was ${v.status})`, v.status_date]);
  if (p.superseded_by) rows.push([`superseded by ${p.superseded_by}`, ""]);
  return table(
    ["event", "date"],
    rows.sort((a, b) => String(a[1]).localeCompare(String(b[1]))),
  );
}

// Every contract event that names this patent, read back from the event stream replayed
// from height 1 (the chain keeps no per-patent index, so this reads every block's events:
// a button, not an automatic load).
function chainHistory(pid) {
  const box = h("div", { id: "chain-history" });
  const needle = JSON.stringify(pid);
  const load = async () => {
    const head = (await get("/v1/blocks/latest")).height;
    const rows = [];
    const status = h("p", { class: "muted" }, `replaying blocks 1–${head}…`);
    box.replaceChildren(status);
    await new Promise((resolve) => {
      const source = new EventSource("/v1/events?from_height=1");
      let left = null; // events still due from block `head`, once its header has arrived
      const stop = () => {
        source.close();
        resolve();
      };
      source.addEventListener("event", (e) => {
        const r = JSON.parse(e.data);
        if (JSON.stringify(r.data).includes(needle)) rows.push(r);
        if (r.height === head && --left === 0) stop();
      });
      source.addEventListener("block", (e) => {
        const b = JSON.parse(e.data);
        if (b.height === head) left = b.event_count;
        if (b.height > head || (b.height === head && left === 0)) stop();
      });
      source.addEventListener("error", stop);
      if (head === 0) stop();
    });
    box.replaceChildren(
      h("p", {}, `${rows.length} events name ${pid} in blocks 1–${head}:`),
      table(
        ["height", "time", "event", "transaction", "data"],
        rows.map((r) => [
          link(`#/block/${r.height}`, String(r.height)),
          time(r.timestamp_ms),
          `${r.contract}.${r.name}`,
          link(`#/tx/${r.tx_id}`, short(r.tx_id, 10)),
          h("code", {}, JSON.stringify(r.data)),
        ]),
        { id: "history-events" },
      ),
    );
  };
  box.append(h("button", { id: "load-history", onclick: load }, "Load every on-chain event for this patent"));
  return box;
}

async function poolsHolding(pid) {
  const pools = listOf(await state("pools"));
  const full = await Promise.all(pools.map((p) => state("pools", p.id)));
  return full.filter((pool) => pool.members.some((m) => m.patent === pid));
}

// decoded msgpack -> JSON for display: byte strings as hex
function plain(value) {
  if (value instanceof Bytes) return toHex(value.u8);
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === "object")
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  return typeof value === "bigint" ? value.toString() : value;
}

async function servesStateProofs() {
  const doc = await get("/openapi.json").catch(() => ({ paths: {} }));
  return Object.keys(doc.paths || {}).some((path) => path.startsWith("/v1/proof/state"));
}

async function stateProofBox(pid) {
  const box = h("div", { id: "state-proof" });
  if (!(await servesStateProofs())) {
    box.append(
      h(
        "p",
        { class: "muted" },
        "this node serves no state proofs (its /openapi.json lists no /v1/proof/state)",
      ),
    );
    return box;
  }
  const verdict = h("div");
  const path = `/v1/proof/state/patent/${encodeURIComponent(pid)}`;
  const button = h(
    "button",
    {
      id: "fetch-state-proof",
      onclick: async () => {
        const proof = await maybe(path).catch((e) => ({ error: e.message }));
        if (!proof || proof.error)
          return verdict.replaceChildren(
            h(
              "p",
              { class: "muted" },
              `this node serves no state proof here (${proof ? proof.error : "404"})`,
            ),
          );
        const blob = URL.createObjectURL(
          new Blob([JSON.stringify(proof, null, 1)], { type: "application/json" }),
        );
        const result = h("div");
        verdict.replaceChildren(
          h("a", { href: blob, download: `state-proof-${pid}.json` }, "save the state proof"),
          result,
        );
        const checked = await verifyInto(result, proof);
        if (checked.valid && checked.value !== undefined)
          verdict.append(h("p", {}, "the certified value:"), json(plain(checked.value)));
      },
    },
    "Fetch and verify the state proof",
  );
  box.append(
    h("p", {}, button, " ", h("a", { href: path, download: `state-proof-${pid}.json` }, "download")),
    verdict,
  );
  return box;
}

export async function patentPage(view, pid) {
  const p = await state("patents", pid);
  // lists filtered here rather than per-patent reads that 404 (a browser logs every 404)
  const [licences, pools, open, everyPatent] = await Promise.all([
    state("licences", "patent", pid).then(listOf),
    poolsHolding(pid),
    state("open_licences")
      .then(listOf)
      .then((all) => all.find((o) => o.patent === pid)),
    allPatents(),
  ]);
  // the chain indexes forward citations only; what this patent cites is their mirror image
  const cites = everyPatent.filter((other) => (other.cited_by || []).includes(pid)).map((other) => other.id);
  const q = p.quality;
  view.replaceChildren(
    section(
      `${p.id} — ${p.title}`,
      kv([
        ["status", badge(p.effective_status, p.effective_status === "GRANTED" ? "good" : "warn")],
        ["kind", p.kind],
        ["office", p.office],
        ["application no.", p.application_no],
        ["IPC", (p.ipc || []).join(", ")],
        ["applicants", (p.applicants || []).join(", ")],
        ["inventors", (p.inventors || []).join(", ")],
        ["document hash", h("code", {}, p.doc_hash)],
        ["recorded at height", p.height],
      ]),
    ),
    section("Status history", statusHistory(p), chainHistory(pid)),
    section(
      "Owners and shares",
      table(
        ["owner", "share"],
        p.owners.map(([org, share]) => [org, bps(share)]),
      ),
    ),
    section(
      `Quality score ${q.score} / ${POINTS_PER_DIMENSION * QUALITY_PARTS.length}`,
      h(
        "div",
        { id: "quality-chart" },
        bars(
          QUALITY_PARTS.map((k) => [
            k,
            q[k],
            POINTS_PER_DIMENSION,
            "",
            undefined,
            `${q[k]} / ${POINTS_PER_DIMENSION} points`,
          ]),
        ),
      ),
    ),
    section(
      "Family and citations",
      kv([
        ["family", (p.family.members || []).map((m) => [patentLink(m), " "])],
        ["offices", (p.family.offices || []).join(", ")],
        ["cites", cites.map((c) => [patentLink(c), " "])],
        ["cited by", (p.cited_by || []).map((c) => [patentLink(c), " "])],
      ]),
    ),
    section(
      "Pledge and appraisal",
      kv([
        ["pledge", p.pledge ? JSON.stringify(p.pledge) : "none"],
        [
          "appraisal",
          p.appraisal
            ? `${num(p.appraisal.value)} BPC by ${p.appraisal.evaluator} (${p.appraisal.basis}), height ${p.appraisal.height}`
            : "none",
        ],
      ]),
    ),
    section(
      "Licences and pools",
      licenceTable(licences),
      h(
        "p",
        {},
        "open licence: ",
        open
          ? `${open.state}, price ${num(open.price)} BPC, royalty ${bps(open.royalty_bps)}, ${open.granted} taken, declared by ${open.declared_by}`
          : "none",
      ),
      h(
        "p",
        {},
        "pools: ",
        pools.length ? pools.map((pool) => [link(`#/pool/${pool.id}`, pool.name), " "]) : "none",
      ),
    ),
    section("State proof", await stateProofBox(pid)),
  );
}
