// Cluster, blocks and transactions.

import { ApiError, backfill, genesis, get, live, maybe, txRate } from "./api.js";
import { badge, h, json, kv, link, num, section, short, sparkline, table, time } from "./ui.js";
import { decode } from "./msgpack.js";
import { fromHex, toHex, verifyProof } from "./verify.js";
import { sha256 } from "./vendor/noble-hashes/sha2.js";

const LAG_BLOCKS = 3;

// -- cluster ----------------------------------------------------------------------------------
async function readNode(node) {
  const base = node.self ? "" : node.url;
  try {
    return { ...node, status: await get("/v1/status", base), base };
  } catch (e) {
    return { ...node, error: e.message, base };
  }
}

// Flags: lagging = more than LAG_BLOCKS behind the highest node; diverged = a different
// block hash at the height every reachable node has (or the node says so itself).
async function flagNodes(nodes) {
  const up = nodes.filter((n) => n.status);
  const top = Math.max(0, ...up.map((n) => n.status.height));
  const common = Math.min(...up.map((n) => n.status.height));
  const hashes = await Promise.all(
    up.map((n) =>
      get(`/v1/blocks/${common}`, n.base)
        .then((b) => b.hash)
        .catch(() => null),
    ),
  );
  const counts = new Map();
  for (const x of hashes) if (x) counts.set(x, (counts.get(x) || 0) + 1);
  const majority = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
  up.forEach((n, i) => {
    n.lagging = top - n.status.height > LAG_BLOCKS;
    n.diverged = Boolean(n.status.diverged) || (hashes[i] !== null && hashes[i] !== majority);
    n.commonHash = hashes[i];
  });
  return { top, common, majority };
}

function divergedText(diverged) {
  if (!diverged) return "diverged"; // seen here: its block hash differs from the majority's
  const where = diverged.height === undefined ? "" : ` at ${diverged.height}`;
  return `diverged${where}${diverged.reason ? ` (${diverged.reason})` : ""}`;
}

function nodeRow(n) {
  if (!n.status)
    return [
      n.id + (n.self ? " (this node)" : ""),
      n.url,
      badge("unreachable", "bad"),
      "",
      "",
      "",
      "",
      "",
      n.error,
    ];
  const st = n.status;
  const flags = [
    n.lagging ? badge("lagging", "warn") : null,
    n.diverged ? badge(divergedText(st.diverged), "bad") : null,
    st.failure ? badge(`stopped: ${st.failure}`, "bad") : null,
    st.in_view_change ? badge("view change", "warn") : null,
  ];
  return [
    n.id + (n.self ? " (this node)" : ""),
    n.url,
    flags.some(Boolean) ? flags : badge("ok", "good"),
    num(st.height),
    st.view,
    `node${st.primary}`,
    st.peers.length,
    num(st.mempool),
    short(n.commonHash, 16),
  ];
}

function liveBlocks() {
  const rows = live.blocks.map((b) => [
    link(`#/block/${b.height}`, String(b.height)),
    short(b.hash, 16),
    time(b.timestamp_ms),
    b.tx_count,
    h(
      "span",
      { class: "txids" },
      (b.tx_ids || []).map((id) => link(`#/tx/${id}`, short(id, 10), { "data-tx": id, class: "txid" })),
    ),
  ]);
  return table(["height", "hash", "time", "txs", "transactions"], rows, { id: "live-blocks" });
}

export async function clusterPage(view) {
  const { nodes } = await get("/v1/peers");
  const read = await Promise.all(nodes.map(readNode));
  const { top, common, majority } = await flagNodes(read);
  await backfill().catch(() => null); // a chart that starts empty is fine too
  const liveBox = h("div", { id: "live" });
  const paint = () => {
    const rate = txRate();
    liveBox.replaceChildren(
      h(
        "p",
        {},
        badge(live.connected ? "live" : "connecting…", live.connected ? "good" : "warn"),
        ` committed transactions per second of block time, last minute (${rate.reduce((a, b) => a + b, 0)} in all):`,
      ),
      sparkline(rate, { label: "committed transactions per second" }),
      liveBlocks(),
    );
  };
  paint();
  view.replaceChildren(
    section(
      `Cluster of ${nodes.length} nodes`,
      table(
        ["node", "API", "flags", "height", "view", "primary", "peers", "mempool", `hash at ${common}`],
        read.map(nodeRow),
        { id: "nodes" },
      ),
      h(
        "p",
        { class: "muted" },
        `highest height ${num(top)}; nodes compared at height ${common} (majority hash ${short(majority, 16)}); lagging = more than ${LAG_BLOCKS} blocks behind.`,
      ),
    ),
    section("Live blocks (server-sent events)", liveBox),
  );
  return { onLive: paint, refreshMs: 3000 };
}

// -- blocks -------------------------------------------------------------------------------------
export async function blocksPage(view) {
  const latest = await get("/v1/blocks/latest");
  const heights = [];
  for (let x = latest.height; x > 0 && heights.length < 20; x--) heights.push(x);
  const blocks = [latest, ...(await Promise.all(heights.slice(1).map((x) => get(`/v1/blocks/${x}`))))];
  view.replaceChildren(
    section(
      "Latest blocks",
      table(
        ["height", "hash", "time", "txs", "view"],
        blocks
          .filter((b) => b.height > 0)
          .map((b) => [
            link(`#/block/${b.height}`, String(b.height)),
            short(b.hash, 24),
            time(b.timestamp_ms),
            b.tx_ids.length,
            b.view ?? "—",
          ]),
        { id: "blocks" },
      ),
    ),
  );
}

function signersOf(cert) {
  if (!cert) return [];
  return (cert.commits || cert.signatures || []).map((c) => c.replica);
}

function certificateSection(title, cert) {
  if (!cert) return section(title, h("p", { class: "muted" }, "none (genesis, or not gathered yet)"));
  const signers = signersOf(cert).map((r) => badge(`node${r}`, "good"));
  return section(title, h("p", {}, "signed by validators: ", signers), json(cert));
}

export async function blockPage(view, height) {
  const b = await get(`/v1/blocks/${encodeURIComponent(height)}`);
  const header = Object.entries(b).filter(([k, v]) => typeof v !== "object" && k !== "hash");
  view.replaceChildren(
    section(
      `Block ${b.height}`,
      kv([
        ["hash", h("code", {}, b.hash)],
        ...header.map(([k, v]) => [k, k.endsWith("_ms") ? `${v} (${time(v)})` : h("code", {}, String(v))]),
      ]),
      h(
        "p",
        {},
        b.height > 0 ? link(`#/block/${b.height - 1}`, "← previous") : "",
        " ",
        link(`#/block/${b.height + 1}`, "next →"),
      ),
    ),
    certificateSection("Commit certificate: 2f+1 COMMITs, which order this batch", b.certificate),
    b.execution_certificate === undefined
      ? null
      : certificateSection(
          "Execution certificate: 2f+1 signatures over this header, after execution",
          b.execution_certificate,
        ),
    section(
      `Transactions (${b.tx_ids.length})`,
      table(
        ["#", "id"],
        b.tx_ids.map((id, i) => [i, link(`#/tx/${id}`, id, { "data-tx": id })]),
      ),
    ),
  );
}

// -- transactions and their proofs --------------------------------------------------------
async function genesisLine(box) {
  const { value: g, bytes } = await genesis();
  const digest = toHex(sha256(bytes));
  box.replaceChildren(
    `Checked against genesis ${g.chain_id}: ${g.validators.length} validators; `,
    `sha256 of the genesis this node serves ${short(digest, 16)} — compare it with a copy you trust, or check against that copy: `,
    h("input", {
      type: "file",
      accept: ".json,application/json",
      id: "genesis-file",
      onchange: loadGenesisFile,
    }),
    ")",
  );
}

let ownGenesis = null;
async function loadGenesisFile(event) {
  const file = event.target.files[0];
  if (file) ownGenesis = JSON.parse(await file.text());
  event.target.after(` using ${file ? file.name : "the node's genesis"}`);
}

export function showVerdict(box, result) {
  box.replaceChildren(
    result.valid
      ? h(
          "div",
          { class: "verdict good", "data-verdict": "valid" },
          h("strong", {}, "valid"),
          " — ",
          result.what,
        )
      : h(
          "div",
          { class: "verdict bad", "data-verdict": "invalid" },
          h("strong", {}, "invalid"),
          " — ",
          result.reason,
        ),
  );
}

export async function verifyInto(box, proof) {
  const result = verifyProof(proof, ownGenesis || (await genesis()).value);
  showVerdict(box, result);
  return result;
}

function txBody(proof) {
  try {
    const tx = decode(fromHex(proof.tx));
    return { ...tx, sender: tx.sender && tx.sender.u8 ? toHex(tx.sender.u8) : tx.sender, sig: undefined };
  } catch {
    return null;
  }
}

export async function txPage(view, id) {
  const answer = await get(`/v1/tx/${encodeURIComponent(id)}`);
  const receipt = answer.receipt;
  const proof =
    answer.status === "pending" || answer.status === "unknown" ? null : await maybe(`/v1/proof/tx/${id}`);
  const verdict = h("div", { id: "verdict" }),
    genesisBox = h("p", { class: "muted" });
  const pasted = h("textarea", {
    id: "proof-json",
    rows: 6,
    placeholder: "paste a proof (JSON) to check it here",
  });
  const events = receipt
    ? receipt.events.map((e) => [e.contract, e.name, h("code", {}, JSON.stringify(e.data))])
    : [];
  const body = proof && txBody(proof);
  view.replaceChildren(
    section(
      `Transaction ${short(id, 16)}`,
      kv([
        ["id", h("code", {}, answer.id)],
        ["status", badge(answer.status, answer.status === "committed" ? "good" : "warn")],
        ["block", receipt ? link(`#/block/${receipt.height}`, String(receipt.height)) : "—"],
        ["index in block", receipt?.index],
        ["code", receipt?.code],
        ["message", receipt?.message],
        ["op", body?.op],
        ["sender", body ? h("code", {}, body.sender) : null],
        ["nonce", body?.nonce],
      ]),
      body ? [h("h3", {}, "arguments"), json(body.args)] : null,
    ),
    section(`Events (${events.length})`, table(["contract", "event", "data"], events)),
    section(
      "Proof",
      proof
        ? [
            h(
              "p",
              {},
              "The proof holds the transaction's bytes, its Merkle path to the block header, and the validators' signatures. ",
              "Verify checks all of it here in your browser (Ed25519, SHA-256) against the genesis validators — no node is trusted.",
            ),
            h(
              "p",
              {},
              h("button", { id: "verify", onclick: () => verifyInto(verdict, proof) }, "Verify"),
              " ",
              h(
                "a",
                { href: `/v1/proof/tx/${id}`, download: `proof-${id.slice(0, 12)}.json` },
                "download proof",
              ),
            ),
            verdict,
            genesisBox,
            h(
              "details",
              {},
              h("summary", {}, "check another proof"),
              pasted,
              h(
                "p",
                {},
                h(
                  "button",
                  {
                    id: "verify-pasted",
                    onclick: () => {
                      let parsed;
                      try {
                        parsed = JSON.parse(pasted.value);
                      } catch (e) {
                        return showVerdict(verdict, { valid: false, reason: `not JSON: ${e.message}` });
                      }
                      return verifyInto(verdict, parsed);
                    },
                  },
                  "Verify pasted proof",
                ),
              ),
            ),
          ]
        : h("p", { class: "muted" }, "no proof: the transaction is not committed on this node"),
    ),
  );
  if (proof) genesisLine(genesisBox).catch((e) => genesisBox.replaceChildren(`no genesis: ${e.message}`));
}

export function searchTx(value) {
  const id = value.trim().toLowerCase();
  if (/^[0-9a-f]{64}$/.test(id)) return `#/tx/${id}`;
  if (/^\d+$/.test(id)) return `#/block/${id}`;
  throw new ApiError(400, "BadSearch", "enter a block height or a 64-hex transaction id");
}
