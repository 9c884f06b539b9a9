// Patents, licensing, the pool and securitization: each page is a few GET /v1/state reads.

import { get, listOf, maybe, state } from "./api.js";
import { badge, bars, bps, h, json, kv, legend, link, num, section, table, time, waterfall } from "./ui.js";
import { verifyInto } from "./pages-chain.js";
import { Bytes } from "./msgpack.js";
import { toHex } from "./verify.js";

const QUALITY_PARTS = ["authorization", "citations", "technology", "family", "international"];
const POINTS_PER_DIMENSION = 20;
const owners = (list) => (list || []).map(([org, share]) => `${org} ${bps(share)}`).join(", ");
const patentLink = (pid) => link(`#/patent/${encodeURIComponent(pid)}`, pid);

// -- patents ------------------------------------------------------------------------------------
async function allPatents() {
  const summaries = listOf(await state("patents"));
  // the list carries no IPC classes: read each record (an alliance holds hundreds, not millions)
  return Promise.all(summaries.slice(0, 500).map((p) => state("patents", p.id)));
}

function matches(p, q) {
  if (!q) return true;
  const needle = q.toLowerCase();
  return p.id.toLowerCase().includes(needle) || p.title.toLowerCase().includes(needle)
    || p.owners.some(([org]) => org.toLowerCase().includes(needle))
    || (p.ipc || []).some((c) => c.toLowerCase().startsWith(needle));
}

export async function patentsPage(view, query) {
  const patents = await allPatents();
  const input = h("input", { id: "patent-search", type: "search", value: query || "", placeholder: "id, owner or IPC class (e.g. H04L)" });
  const form = h("form", { onsubmit: (e) => { e.preventDefault(); location.hash = `#/patents/${encodeURIComponent(input.value)}`; } },
    input, h("button", { type: "submit" }, "Search"));
  const found = patents.filter((p) => matches(p, query));
  view.replaceChildren(section(`Patents (${found.length} of ${patents.length})`, form,
    table(["id", "title", "owners", "IPC", "status", "quality"], found.map((p) =>
      [patentLink(p.id), p.title, owners(p.owners), (p.ipc || []).join(" "), p.effective_status, p.quality.score]), { id: "patents" })));
}

function statusHistory(p) {
  const rows = [["filed", p.filing_date], ["published", p.publication_date], ["granted", p.grant_date],
    [`status ${p.status}`, p.status_date], ["expires", p.expiry_date]].filter(([, d]) => d);
  for (const v of p.versions || []) rows.push([`version ${v.version} replaced (was ${v.status})`, v.status_date]);
  if (p.superseded_by) rows.push([`superseded by ${p.superseded_by}`, ""]);
  return table(["event", "date"], rows.sort((a, b) => String(a[1]).localeCompare(String(b[1]))));
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
  if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  return typeof value === "bigint" ? value.toString() : value;
}

async function servesStateProofs() {
  const doc = await get("/openapi.json").catch(() => ({ paths: {} }));
  return Object.keys(doc.paths || {}).some((path) => path.startsWith("/v1/proof/state"));
}

async function stateProofBox(pid) {
  const box = h("div", { id: "state-proof" });
  if (!(await servesStateProofs())) {
    box.append(h("p", { class: "muted" }, "this node serves no state proofs (its /openapi.json lists no /v1/proof/state)"));
    return box;
  }
  const verdict = h("div");
  const path = `/v1/proof/state/patent/${encodeURIComponent(pid)}`;
  const button = h("button", { id: "fetch-state-proof", onclick: async () => {
    const proof = await maybe(path).catch((e) => ({ error: e.message }));
    if (!proof || proof.error) return verdict.replaceChildren(h("p", { class: "muted" }, `this node serves no state proof here (${proof ? proof.error : "404"})`));
    const blob = URL.createObjectURL(new Blob([JSON.stringify(proof, null, 1)], { type: "application/json" }));
    const result = h("div");
    verdict.replaceChildren(h("a", { href: blob, download: `state-proof-${pid}.json` }, "save the state proof"), result);
    const checked = await verifyInto(result, proof);
    if (checked.valid && checked.value !== undefined) verdict.append(h("p", {}, "the certified value:"), json(plain(checked.value)));
  } }, "Fetch and verify the state proof");
  box.append(h("p", {}, button, " ", h("a", { href: path, download: `state-proof-${pid}.json` }, "download")), verdict);
  return box;
}

export async function patentPage(view, pid) {
  const p = await state("patents", pid);
  // lists filtered here rather than per-patent reads that 404 (a browser logs every 404)
  const [licences, pools, open, everyPatent] = await Promise.all([state("licences", "patent", pid).then(listOf),
    poolsHolding(pid), state("open_licences").then(listOf).then((all) => all.find((o) => o.patent === pid)), allPatents()]);
  // the chain indexes forward citations only; what this patent cites is their mirror image
  const cites = everyPatent.filter((other) => (other.cited_by || []).includes(pid)).map((other) => other.id);
  const q = p.quality;
  view.replaceChildren(
    section(`${p.id} — ${p.title}`, kv([["status", badge(p.effective_status, p.effective_status === "GRANTED" ? "good" : "warn")],
      ["kind", p.kind], ["office", p.office], ["application no.", p.application_no], ["IPC", (p.ipc || []).join(", ")],
      ["applicants", (p.applicants || []).join(", ")], ["inventors", (p.inventors || []).join(", ")],
      ["document hash", h("code", {}, p.doc_hash)], ["recorded at height", p.height]])),
    section("Status history", statusHistory(p)),
    section("Owners and shares", table(["owner", "share"], p.owners.map(([org, share]) => [org, bps(share)]))),
    section(`Quality score ${q.score} / ${POINTS_PER_DIMENSION * QUALITY_PARTS.length}`,
      h("div", { id: "quality-chart" }, bars(QUALITY_PARTS.map((k) => [k, q[k], POINTS_PER_DIMENSION, "", undefined, `${q[k]} / ${POINTS_PER_DIMENSION} points`])))),
    section("Family and citations", kv([["family", (p.family.members || []).map((m) => [patentLink(m), " "])],
      ["offices", (p.family.offices || []).join(", ")], ["cites", cites.map((c) => [patentLink(c), " "])],
      ["cited by", (p.cited_by || []).map((c) => [patentLink(c), " "])]])),
    section("Pledge and appraisal", kv([["pledge", p.pledge ? JSON.stringify(p.pledge) : "none"],
      ["appraisal", p.appraisal ? `${num(p.appraisal.value)} BPC by ${p.appraisal.evaluator} (${p.appraisal.basis}), height ${p.appraisal.height}` : "none"]])),
    section("Licences and pools", licenceTable(licences),
      h("p", {}, "open licence: ", open ? `${open.state}, price ${num(open.price)} BPC, royalty ${bps(open.royalty_bps)}, ${open.granted} taken, declared by ${open.declared_by}` : "none"),
      h("p", {}, "pools: ", pools.length ? pools.map((pool) => [link(`#/pool/${pool.id}`, pool.name), " "]) : "none")),
    section("State proof", await stateProofBox(pid)));
}

// -- licensing and the pool ---------------------------------------------------------------
function licenceTable(licences) {
  return table(["licence", "licensors", "licensee", "patents", "kind", "fields", "territories", "term", "fee", "royalty", "state"],
    licences.map((l) => [h("code", {}, l.id), owners(l.licensors), l.licensee, l.patents.map((x) => [patentLink(x), " "]), l.kind,
      l.fields.join(", "), l.territories.join(", "), `${l.start_date} – ${l.end_date}`, num(l.fee), bps(l.royalty_bps),
      badge(l.in_force ? "in force" : l.state, l.in_force ? "good" : "")]), { id: "licences" });
}

export async function licensingPage(view) {
  const [licences, pools, open] = await Promise.all([state("licences").then(listOf), state("pools").then(listOf), state("open_licences").then(listOf)]);
  const royalties = await Promise.all(licences.map((l) => state("royalties", l.id)));
  const rows = royalties.flatMap((r) => (r.reports || []).map((x) => [h("code", {}, x.licence), x.period, num(x.net_sales), num(x.units),
    num(x.earned), num(x.due), x.paid ? badge("paid", "good") : badge("unpaid", "warn"), x.paid_to || "—"]));
  view.replaceChildren(
    section(`Licences (${licences.length})`, licenceTable(licences)),
    section("Royalties reported and paid", table(["licence", "period", "net sales", "units", "earned", "due", "status", "paid to"], rows)),
    section("Open licences", table(["patent", "declared by", "price BPC", "royalty", "term days", "taken", "state"], open.map((o) =>
      [patentLink(o.patent), o.declared_by, num(o.price), bps(o.royalty_bps), o.term_days ?? "unlimited", o.granted, o.state]))),
    section("Patent pools", table(["pool", "admin", "fee", "BPR minted", "distributed BPC"], pools.map((p) =>
      [link(`#/pool/${p.id}`, p.name), p.admin, bps(p.admin_fee_bps), num(p.minted_bpr), num(p.distributed_bpc)]), { id: "pools" })));
}

export async function poolPage(view, id) {
  const p = await state("pools", id);
  const dists = Object.entries(p.distributions || {}).sort();
  view.replaceChildren(
    section(`Pool: ${p.name}`, kv([["id", h("code", {}, p.id)], ["admin", p.admin], ["admin fee", bps(p.admin_fee_bps)],
      ["BPC → BPR ratio", `${p.bpr_ratio[0]} BPR per ${p.bpr_ratio[1]} BPC`], ["converted BPC", num(p.converted_bpc)],
      ["minted BPR", num(p.minted_bpr)], ["distributed BPC", num(p.distributed_bpc)], ["treasury BPC", num(p.treasury_bpc)],
      ["last period", p.last_period]])),
    section(`Pooled patents (${p.members.length})`, table(["patent", "owners", "joined", "by", "attested", "active"], p.members.map((m) =>
      [patentLink(m.patent), owners(m.owners), m.joined, m.joined_by, p.attested.includes(m.patent) ? "yes" : "no", m.active ? "yes" : "no"]), { id: "pool-members" })),
    section("BPR holders", table(["holder", "BPR units", "expires"], Object.entries(p.holders).map(([org, x]) => [org, num(x.units), x.expires_date || "never"]), { id: "bpr-holders" })),
    section("Distributions", table(["period", "amount BPC", "admin fee", "patents", "payouts", "height"], dists.map(([period, d]) =>
      [period, num(d.amount), num(d.fee), d.patents, Object.entries(d.payouts).map(([org, v]) => `${org} ${num(v)}`).join(", "), d.height]), { id: "distributions" })));
}

// -- securitization ------------------------------------------------------------------------------
export async function dealsPage(view) {
  const deals = listOf(await state("deals"));
  view.replaceChildren(section(`Deals (${deals.length})`, table(["deal", "state", "originator", "trustee", "last period", "tranche balances"],
    deals.map((d) => [link(`#/deal/${d.id}`, d.id), d.state, d.originator, d.trustee, d.last_period,
      Object.entries(d.tranches).map(([n, b]) => `${n} ${num(b)}`).join(", ")]), { id: "deals" })));
}

function trancheRows(deal) {
  return deal.tranches.map((t) => {
    const cells = [t.name, t.principal, t.coupon_bps, t.sold, t.balance, t.interest_unpaid, t.written_down, t.written_back];
    const tr = h("tr", { "data-tranche": t.name }, cells.map((c, i) => h("td", i ? { "data-value": c } : {}, i ? num(c) : c)),
      h("td", {}, Object.entries(t.holders).map(([org, x]) => `${org}: ${num(x.units)} units, ${num(x.balance)}`).join("; ")));
    return tr;
  });
}

function coverage(tests) {
  const rows = [["coverage (IC)", tests.coverage.value_bps, tests.coverage.min_bps, tests.coverage.pass]];
  for (const [name, t] of Object.entries(tests.oc || {})) rows.push([`OC ${name}`, t.value_bps, t.min_bps, t.pass]);
  const scale = Math.round(Math.max(...rows.map((r) => Math.max(r[1], r[2]))) * 1.1);
  return h("div", { class: "coverage" },
    bars(rows.map(([label, value, min, pass]) => [label, value, scale, pass ? "pass" : "fail", min, `${bps(value)} (min ${bps(min)})`]), { labelWidth: 130 }),
    h("p", { class: "muted" }, "the black line on each bar is the test's threshold"),
    table(["test", "value", "threshold", "result"], rows.map(([label, value, min, pass]) => [label, bps(value), bps(min), badge(pass ? "pass" : "fail", pass ? "good" : "bad")])));
}

function reportSection(r) {
  const steps = h("table", { class: "steps", "data-period": r.period },
    h("thead", {}, h("tr", {}, ["#", "step", "tranche", "due", "paid", "unpaid"].map((t) => h("th", {}, t)))),
    h("tbody", {}, r.steps.map((st, i) => h("tr", { "data-step": i, class: `wf-row-${st.kind}` }, h("td", {}, i), h("td", {}, st.kind),
      h("td", {}, st.tranche || "—"), ...["due", "paid", "unpaid"].map((f) => h("td", { "data-field": f, "data-value": st[f] }, num(st[f])))))));
  return h("div", { class: "report", "data-report": r.period },
    h("h3", {}, `Period ${r.period} — ${r.mode}, height ${r.height}, ${time(r.timestamp_ms)}`),
    kv([["collections", num(r.collections)], ["cash", num(r.cash)], ["paid", num(r.total_paid)], ["reserve in / out", `${num(r.reserve_in)} / ${num(r.reserve_out)}`],
      ["trigger", r.trigger.triggered ? badge(`triggered (period ${r.trigger.fired_period})`, "bad") : badge("not triggered", "good")]]),
    h("p", {}, `where the period's cash (${num(r.cash)}) went, left to right in waterfall order:`), waterfall(r.steps, r.cash),
    legend([["wf-fees", "fees"], ["wf-interest", "interest"], ["wf-principal", "principal"], ["wf-reserve", "reserve"], ["wf-residual", "residual"], ["wf-rest", "not paid out"]]), steps,
    h("h4", {}, "coverage against thresholds"), coverage(r.tests),
    h("details", {}, h("summary", {}, "disclosure report (JSON)"), json(r)));
}

export async function dealPage(view, id) {
  const [deal, reports] = await Promise.all([state("deals", id), state("deal_reports", id).then(listOf)]);
  const t = deal.trigger;
  view.replaceChildren(
    section(`Deal ${deal.id}`, kv([["state", badge(deal.state)], ["originator", deal.originator], ["trustee", deal.trustee], ["mode", deal.mode],
      ["collateral value", num(deal.collateral_value)], ["performing value", num(deal.performing_value)], ["collected", num(deal.collected)],
      ["paid", num(deal.paid)], ["losses", num(deal.losses)], ["recoveries", num(deal.recoveries)],
      ["trigger", t.triggered ? badge(`triggered in period ${t.fired_period} (${t.breach_count} breaches)`, "bad") : badge("not triggered", "good")]])),
    section("Tranches", h("table", { id: "tranches" },
      h("thead", {}, h("tr", {}, ["tranche", "principal", "coupon bps", "sold", "balance", "interest unpaid", "written down", "written back", "holders"].map((x) => h("th", {}, x)))),
      h("tbody", {}, trancheRows(deal)))),
    section("Assets", table(["licence", "patents", "defaulted", "loss", "recovered"], Object.entries(deal.assets).map(([lid, a]) =>
      [h("code", {}, lid), a.patents.map((x) => [patentLink(x), " "]), a.defaulted ? badge("defaulted", "bad") : "no", num(a.loss), num(a.recovered)]))),
    section(`Waterfall and disclosure reports (${reports.length} periods)`, reports.map(reportSection)));
}
