// Licensing and the pool: licences with their scope and royalties, the BPSA pool.

import { listOf, state } from "./api.js";
import { badge, bps, h, kv, link, num, section, table } from "./ui.js";

export const owners = (list) => (list || []).map(([org, share]) => `${org} ${bps(share)}`).join(", ");
export const patentLink = (pid) => link(`#/patent/${encodeURIComponent(pid)}`, pid);

export function licenceTable(licences) {
  return table(
    [
      "licence",
      "licensors",
      "licensee",
      "patents",
      "kind",
      "fields",
      "territories",
      "term",
      "fee",
      "royalty",
      "state",
    ],
    licences.map((l) => [
      h("code", {}, l.id),
      owners(l.licensors),
      l.licensee,
      l.patents.map((x) => [patentLink(x), " "]),
      l.kind,
      l.fields.join(", "),
      l.territories.join(", "),
      `${l.start_date} – ${l.end_date}`,
      num(l.fee),
      bps(l.royalty_bps),
      badge(l.in_force ? "in force" : l.state, l.in_force ? "good" : ""),
    ]),
    { id: "licences" },
  );
}

export async function licensingPage(view) {
  const [licences, pools, open] = await Promise.all([
    state("licences").then(listOf),
    state("pools").then(listOf),
    state("open_licences").then(listOf),
  ]);
  const royalties = await Promise.all(licences.map((l) => state("royalties", l.id)));
  const rows = royalties.flatMap((r) =>
    (r.reports || []).map((x) => [
      h("code", {}, x.licence),
      x.period,
      num(x.net_sales),
      num(x.units),
      num(x.earned),
      num(x.due),
      x.paid ? badge("paid", "good") : badge("unpaid", "warn"),
      x.paid_to || "—",
    ]),
  );
  view.replaceChildren(
    section(`Licences (${licences.length})`, licenceTable(licences)),
    section(
      "Royalties reported and paid",
      table(["licence", "period", "net sales", "units", "earned", "due", "status", "paid to"], rows),
    ),
    section(
      "Open licences",
      table(
        ["patent", "declared by", "price BPC", "royalty", "term days", "taken", "state"],
        open.map((o) => [
          patentLink(o.patent),
          o.declared_by,
          num(o.price),
          bps(o.royalty_bps),
          o.term_days ?? "unlimited",
          o.granted,
          o.state,
        ]),
      ),
    ),
    section(
      "Patent pools",
      table(
        ["pool", "admin", "fee", "BPR minted", "distributed BPC"],
        pools.map((p) => [
          link(`#/pool/${p.id}`, p.name),
          p.admin,
          bps(p.admin_fee_bps),
          num(p.minted_bpr),
          num(p.distributed_bpc),
        ]),
        { id: "pools" },
      ),
    ),
  );
}

export async function poolPage(view, id) {
  const p = await state("pools", id);
  const dists = Object.entries(p.distributions || {}).sort();
  view.replaceChildren(
    section(
      `Pool: ${p.name}`,
      kv([
        ["id", h("code", {}, p.id)],
        ["admin", p.admin],
        ["admin fee", bps(p.admin_fee_bps)],
        ["BPC → BPR ratio", `${p.bpr_ratio[0]} BPR per ${p.bpr_ratio[1]} BPC`],
        ["converted BPC", num(p.converted_bpc)],
        ["minted BPR", num(p.minted_bpr)],
        ["distributed BPC", num(p.distributed_bpc)],
        ["treasury BPC", num(p.treasury_bpc)],
        ["last period", p.last_period],
      ]),
    ),
    section(
      `Pooled patents (${p.members.length})`,
      table(
        ["patent", "owners", "joined", "by", "attested", "active"],
        p.members.map((m) => [
          patentLink(m.patent),
          owners(m.owners),
          m.joined,
          m.joined_by,
          p.attested.includes(m.patent) ? "yes" : "no",
          m.active ? "yes" : "no",
        ]),
        { id: "pool-members" },
      ),
    ),
    section(
      "BPR holders",
      table(
        ["holder", "BPR units", "expires"],
        Object.entries(p.holders).map(([org, x]) => [org, num(x.units), x.expires_date || "never"]),
        { id: "bpr-holders" },
      ),
    ),
    section(
      "Distributions",
      table(
        ["period", "amount BPC", "admin fee", "patents", "payouts", "height"],
        dists.map(([period, d]) => [
          period,
          num(d.amount),
          num(d.fee),
          d.patents,
          Object.entries(d.payouts)
            .map(([org, v]) => `${org} ${num(v)}`)
            .join(", "),
          d.height,
        ]),
        { id: "distributions" },
      ),
    ),
  );
}
