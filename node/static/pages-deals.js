// Securitization: deals, tranches, the waterfall of each period, coverage tests, trigger.

import { listOf, state } from "./api.js";
import { badge, bars, bps, h, json, kv, legend, link, num, section, table, time, waterfall } from "./ui.js";
import { patentLink } from "./pages-licensing.js";

export async function dealsPage(view) {
  const deals = listOf(await state("deals"));
  view.replaceChildren(
    section(
      `Deals (${deals.length})`,
      table(
        ["deal", "state", "originator", "trustee", "last period", "tranche balances"],
        deals.map((d) => [
          link(`#/deal/${d.id}`, d.id),
          d.state,
          d.originator,
          d.trustee,
          d.last_period,
          Object.entries(d.tranches)
            .map(([n, b]) => `${n} ${num(b)}`)
            .join(", "),
        ]),
        { id: "deals" },
      ),
    ),
  );
}

function trancheRows(deal) {
  return deal.tranches.map((t) => {
    const cells = [
      t.name,
      t.principal,
      t.coupon_bps,
      t.sold,
      t.balance,
      t.interest_unpaid,
      t.written_down,
      t.written_back,
    ];
    const tr = h(
      "tr",
      { "data-tranche": t.name },
      cells.map((c, i) => h("td", i ? { "data-value": c } : {}, i ? num(c) : c)),
      h(
        "td",
        {},
        Object.entries(t.holders)
          .map(([org, x]) => `${org}: ${num(x.units)} units, ${num(x.balance)}`)
          .join("; "),
      ),
    );
    return tr;
  });
}

function coverage(tests) {
  const rows = [["coverage (IC)", tests.coverage.value_bps, tests.coverage.min_bps, tests.coverage.pass]];
  for (const [name, t] of Object.entries(tests.oc || {}))
    rows.push([`OC ${name}`, t.value_bps, t.min_bps, t.pass]);
  const scale = Math.round(Math.max(...rows.map((r) => Math.max(r[1], r[2]))) * 1.1);
  return h(
    "div",
    { class: "coverage" },
    bars(
      rows.map(([label, value, min, pass]) => [
        label,
        value,
        scale,
        pass ? "pass" : "fail",
        min,
        `${bps(value)} (min ${bps(min)})`,
      ]),
      { labelWidth: 130, width: 620, valueWidth: 190 },
    ),
    h("p", { class: "muted" }, "the black line on each bar is the test's threshold"),
    table(
      ["test", "value", "threshold", "result"],
      rows.map(([label, value, min, pass]) => [
        label,
        bps(value),
        bps(min),
        badge(pass ? "pass" : "fail", pass ? "good" : "bad"),
      ]),
    ),
  );
}

function reportSection(r) {
  const steps = h(
    "table",
    { class: "steps", "data-period": r.period },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["#", "step", "tranche", "due", "paid", "unpaid"].map((t) => h("th", {}, t)),
      ),
    ),
    h(
      "tbody",
      {},
      r.steps.map((st, i) =>
        h(
          "tr",
          { "data-step": i, class: `wf-row-${st.kind}` },
          h("td", {}, i),
          h("td", {}, st.kind),
          h("td", {}, st.tranche || "—"),
          ...["due", "paid", "unpaid"].map((f) =>
            h("td", { "data-field": f, "data-value": st[f] }, num(st[f])),
          ),
        ),
      ),
    ),
  );
  return h(
    "div",
    { class: "report", "data-report": r.period },
    h("h3", {}, `Period ${r.period} — ${r.mode}, height ${r.height}, ${time(r.timestamp_ms)}`),
    kv([
      ["collections", num(r.collections)],
      ["cash", num(r.cash)],
      ["paid", num(r.total_paid)],
      ["reserve in / out", `${num(r.reserve_in)} / ${num(r.reserve_out)}`],
      [
        "trigger",
        r.trigger.triggered
          ? badge(`triggered (period ${r.trigger.fired_period})`, "bad")
          : badge("not triggered", "good"),
      ],
    ]),
    h("p", {}, `where the period's cash (${num(r.cash)}) went, left to right in waterfall order:`),
    waterfall(r.steps, r.cash),
    legend([
      ["wf-fees", "fees"],
      ["wf-interest", "interest"],
      ["wf-principal", "principal"],
      ["wf-reserve", "reserve"],
      ["wf-residual", "residual"],
      ["wf-rest", "not paid out"],
    ]),
    steps,
    h("h4", {}, "coverage against thresholds"),
    coverage(r.tests),
    h("details", {}, h("summary", {}, "disclosure report (JSON)"), json(r)),
  );
}

export async function dealPage(view, id) {
  const [deal, reports] = await Promise.all([state("deals", id), state("deal_reports", id).then(listOf)]);
  const t = deal.trigger;
  view.replaceChildren(
    section(
      `Deal ${deal.id}`,
      kv([
        ["state", badge(deal.state)],
        ["originator", deal.originator],
        ["trustee", deal.trustee],
        ["mode", deal.mode],
        ["collateral value", num(deal.collateral_value)],
        ["performing value", num(deal.performing_value)],
        ["collected", num(deal.collected)],
        ["paid", num(deal.paid)],
        ["losses", num(deal.losses)],
        ["recoveries", num(deal.recoveries)],
        [
          "trigger",
          t.triggered
            ? badge(`triggered in period ${t.fired_period} (${t.breach_count} breaches)`, "bad")
            : badge("not triggered", "good"),
        ],
      ]),
    ),
    section(
      "Tranches",
      h(
        "table",
        { id: "tranches" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            [
              "tranche",
              "principal",
              "coupon bps",
              "sold",
              "balance",
              "interest unpaid",
              "written down",
              "written back",
              "holders",
            ].map((x) => h("th", {}, x)),
          ),
        ),
        h("tbody", {}, trancheRows(deal)),
      ),
    ),
    section(
      "Assets",
      table(
        ["licence", "patents", "defaulted", "loss", "recovered"],
        Object.entries(deal.assets).map(([lid, a]) => [
          h("code", {}, lid),
          a.patents.map((x) => [patentLink(x), " "]),
          a.defaulted ? badge("defaulted", "bad") : "no",
          num(a.loss),
          num(a.recovered),
        ]),
      ),
    ),
    section(`Waterfall and disclosure reports (${reports.length} periods)`, reports.map(reportSection)),
  );
}
