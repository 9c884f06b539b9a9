// Proof verification in the browser, from docs/protocol.md alone: trust nothing but the
// genesis validators' keys. Ed25519 is @noble/ed25519 and SHA-2 is @noble/hashes (both
// vendored, audited, dependency-free): no crypto is written here, only the byte formulas.
//
// Formats: version 2 (sections 8 and 9: execution certificate over the block hash) and
// the original format (no `version`: COMMIT signatures over the batch digest, node/proofs.py).
// Each check that fails throws ProofInvalid with the check's name; on success the caller
// gets what the proof establishes, in words.

import * as ed from "./vendor/noble-ed25519/index.js";
import { sha256, sha512 } from "./vendor/noble-hashes/sha2.js";
import { bin, compareBytes, decode, encode } from "./msgpack.js";

ed.hashes.sha512 = sha512;
const utf8 = new TextEncoder();
const CONSENSUS_DOMAIN = "ipchain/consensus/v1";
const BATCH_DOMAIN = "ipchain/batch/v1";
const BLOCK_DOMAIN = "ipchain/block/v2";

export class ProofInvalid extends Error {}

function check(condition, message) {
  if (!condition) throw new ProofInvalid(message);
}

export function fromHex(text) {
  check(
    typeof text === "string" && /^([0-9a-f]{2})*$/.test(text),
    `not lowercase hex: ${String(text).slice(0, 20)}`,
  );
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(2 * i, 2), 16);
  return out;
}
export const toHex = (u8) => Array.from(u8, (b) => b.toString(16).padStart(2, "0")).join("");

function concat(...parts) {
  const chunks = parts.map((p) => (typeof p === "string" ? utf8.encode(p) : p));
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
const H = (...parts) => sha256(concat(...parts));
const equal = (a, b) => a.length === b.length && compareBytes(a, b) === 0;

function u64be(n) {
  const out = new Uint8Array(8);
  let v = BigInt(n);
  for (let i = 7; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}
function u32be(n) {
  return u64be(n).subarray(4);
}

// -- Merkle (section 3) -------------------------------------------------------------------
export function walkPath(leaf, path) {
  let node = H(new Uint8Array([0]), leaf);
  check(Array.isArray(path), "path is not a list");
  for (const step of path) {
    check(Array.isArray(step) && (step[0] === "L" || step[0] === "R"), "path step is not [L|R, hex]");
    const sibling = fromHex(step[1]);
    node = step[0] === "L" ? H(new Uint8Array([1]), sibling, node) : H(new Uint8Array([1]), node, sibling);
  }
  return node;
}

export function pathSides(index, count) {
  check(
    Number.isInteger(index) && Number.isInteger(count) && index >= 0 && index < count,
    "leaf index out of range",
  );
  const sides = [];
  let i = index,
    w = count;
  while (w > 1) {
    const s = i ^ 1;
    if (s < w) sides.push(s < i ? "L" : "R");
    i = Math.floor(i / 2);
    w = Math.floor((w + 1) / 2);
  }
  return sides;
}

export function quorum(n) {
  const f = Math.floor((n - 1) / 3);
  return Math.floor((n + f) / 2) + 1;
}

// -- headers and signatures ---------------------------------------------------------------
function headerValue(header) {
  // bin fields travel as hex strings; every other field is an integer
  check(header && typeof header === "object", "header missing");
  const value = {};
  for (const [k, v] of Object.entries(header)) value[k] = typeof v === "string" ? bin(fromHex(v)) : v;
  return value;
}

function signingBytes(chainId, body) {
  return concat(CONSENSUS_DOMAIN, chainId, new Uint8Array([0]), encode(body));
}

function validatorKeys(genesis) {
  const keys = new Map();
  for (const v of genesis.validators) keys.set(v.index, fromHex(v.public_key));
  return keys;
}

function verifySig(key, message, sigHex) {
  try {
    return ed.verify(fromHex(sigHex), message, key);
  } catch {
    return false;
  }
}

// -- version 2: execution certificate (sections 6-8) --------------------------------------
function checkCertificate(proof, genesis) {
  const header = headerValue(proof.header);
  const blockHash = H(BLOCK_DOMAIN, encode(header));
  check(toHex(blockHash) === proof.block_hash, "block_hash is not the hash of the header");
  const cert = proof.certificate;
  check(cert && cert.height === proof.header.height, "certificate is for another height");
  check(cert.block_hash === proof.block_hash, "certificate signs another block hash");
  const keys = validatorKeys(genesis);
  const message = signingBytes(genesis.chain_id, ["EX", cert.height, bin(blockHash)]);
  const seen = new Set();
  for (const item of cert.signatures || []) {
    check(!seen.has(item.replica), `validator ${item.replica} signed twice`);
    check(keys.has(item.replica), `validator ${item.replica} is not in genesis`);
    check(
      verifySig(keys.get(item.replica), message, item.sig),
      `validator ${item.replica}'s signature does not verify`,
    );
    seen.add(item.replica);
  }
  const needed = quorum(keys.size);
  check(seen.size >= needed, `${seen.size} valid signatures; ${needed} needed`);
  return [...seen].sort((a, b) => a - b);
}

function verifyTxV2(proof, genesis) {
  check(proof.chain_id === genesis.chain_id, "proof is for another chain");
  const tx = fromHex(proof.tx);
  check(toHex(H(tx)) === proof.tx_id, "tx bytes do not hash to tx_id");
  let decoded;
  try {
    decoded = decode(tx);
  } catch (e) {
    throw new ProofInvalid(`tx is not canonical msgpack: ${e.message}`);
  }
  check(decoded && decoded.chain === genesis.chain_id, "tx is not a transaction of this chain");
  check(
    toHex(walkPath(fromHex(proof.tx_id), proof.tx_path)) === proof.header.tx_root,
    "tx_path does not reach tx_root",
  );
  const receipt = proof.receipt;
  check(
    receipt && receipt.tx_id === proof.tx_id && receipt.index === proof.index,
    "receipt is for another transaction",
  );
  check(
    toHex(walkPath(encode(receipt), proof.receipt_path)) === proof.header.receipts_root,
    "receipt_path does not reach receipts_root",
  );
  const signers = checkCertificate(proof, genesis);
  const outcome = receipt.status === "committed" ? "committed" : `rejected with code ${receipt.code}`;
  const when = new Date(proof.header.timestamp_ms).toISOString();
  return {
    height: proof.header.height,
    timestamp_ms: proof.header.timestamp_ms,
    signers,
    op: decoded.op,
    outcome,
    what:
      `transaction ${proof.tx_id.slice(0, 16)}… (${decoded.op}) was ${outcome} at height ` +
      `${proof.header.height}, block time ${when}; its receipt and the block header are signed ` +
      `after execution by validators ${signers.join(", ")}`,
  };
}

function verifyStateLeaf(leaf, n, root) {
  check(leaf && typeof leaf.key === "string", "leaf missing its key");
  const sides = pathSides(leaf.index, n);
  check(
    Array.isArray(leaf.path) &&
      leaf.path.length === sides.length &&
      leaf.path.every((s, i) => s[0] === sides[i]),
    "path has the wrong shape for its index",
  );
  const key = utf8.encode(leaf.key);
  const entry = H(new Uint8Array([0]), u32be(key.length), key, fromHex(leaf.value));
  check(toHex(walkPath(entry, leaf.path)) === root, `state path of ${leaf.key} does not reach state_root`);
  return key;
}

function verifyStateV2(proof, genesis) {
  check(proof.chain_id === genesis.chain_id, "proof is for another chain");
  const signers = checkCertificate(proof, genesis);
  const n = proof.header.state_leaves,
    root = proof.header.state_root;
  const at = `at height ${proof.header.height}`;
  if (proof.present) {
    check(proof.leaf.key === proof.key, "leaf is for another key");
    verifyStateLeaf(proof.leaf, n, root);
    const value = decode(fromHex(proof.leaf.value));
    return {
      height: proof.header.height,
      signers,
      value,
      what: `${at}, key ${proof.key} holds the value shown (signed by validators ${signers.join(", ")})`,
    };
  }
  const key = utf8.encode(proof.key);
  const { left, right } = proof;
  if (n === 0) check(!left && !right && root === toHex(H()), "empty state with neighbours");
  if (left)
    check(compareBytes(verifyStateLeaf(left, n, root), key) < 0, "left neighbour is not below the key");
  if (right)
    check(compareBytes(key, verifyStateLeaf(right, n, root)) < 0, "right neighbour is not above the key");
  if (n > 0 && !left)
    check(right && right.index === 0, "no left neighbour, but the right one is not the first leaf");
  if (n > 0 && !right)
    check(left && left.index === n - 1, "no right neighbour, but the left one is not the last leaf");
  if (left && right) check(right.index === left.index + 1, "neighbours are not adjacent");
  return {
    height: proof.header.height,
    signers,
    what: `${at}, key ${proof.key} does not exist (signed by validators ${signers.join(", ")})`,
  };
}

// -- the original format (no version): COMMITs over the batch digest -----------------------
function verifyTxV1(proof, genesis) {
  check(proof.chain_id === genesis.chain_id, "proof is for another chain");
  check(toHex(H(fromHex(proof.tx))) === proof.tx_id, "tx bytes do not hash to tx_id");
  const header = headerValue(proof.header);
  check(
    toHex(walkPath(fromHex(proof.tx_id), proof.merkle_path)) === proof.header.tx_root,
    "Merkle path does not reach tx_root",
  );
  check(toHex(sha256(encode(header))) === proof.block_hash, "header does not hash to block_hash");
  const commit = proof.commit;
  check(commit && commit.seq === proof.header.height && commit.seq === proof.height, "heights disagree");
  const digest = H(BATCH_DOMAIN, u64be(proof.header.proposal_timestamp_ms), fromHex(proof.header.tx_root));
  check(toHex(digest) === commit.digest, "batch digest does not bind this tx_root and timestamp");
  const keys = validatorKeys(genesis);
  const message = signingBytes(genesis.chain_id, ["C", commit.view, commit.seq, bin(digest)]);
  const signers = new Set();
  for (const item of commit.signatures || []) {
    if (keys.has(item.replica) && verifySig(keys.get(item.replica), message, item.sig))
      signers.add(item.replica);
  }
  const needed = quorum(keys.size);
  check(signers.size >= needed, `${signers.size} valid commit signatures; ${needed} needed`);
  const list = [...signers].sort((a, b) => a - b);
  const op = decode(fromHex(proof.tx)).op;
  return {
    height: proof.height,
    timestamp_ms: proof.header.timestamp_ms,
    signers: list,
    op,
    outcome: proof.receipt ? proof.receipt.status : "ordered",
    what: `transaction ${proof.tx_id.slice(0, 16)}… (${op}) was ordered at height ${proof.height} by a quorum (COMMITs from validators ${list.join(", ")}); this format certifies order, not the receipt`,
  };
}

// Returns {valid: true, ...facts, what} or {valid: false, reason}; never throws.
export function verifyProof(proof, genesis) {
  try {
    check(proof && typeof proof === "object", "not a proof object");
    check(genesis && Array.isArray(genesis.validators), "no genesis validators to check against");
    let facts;
    if (proof.version === 2 && proof.kind === "tx") facts = verifyTxV2(proof, genesis);
    else if (proof.version === 2 && proof.kind === "state") facts = verifyStateV2(proof, genesis);
    else if (proof.version === undefined && proof.commit) facts = verifyTxV1(proof, genesis);
    else throw new ProofInvalid(`unknown proof format (kind ${proof.kind}, version ${proof.version})`);
    return { valid: true, ...facts };
  } catch (e) {
    return { valid: false, reason: e instanceof ProofInvalid ? e.message : `malformed proof: ${e.message}` };
  }
}
