"""State snapshots: their format, and every check a restoring node makes (no I/O here).

A snapshot of height h is the state after block h, cut into chunks, plus what a node
needs to go on from h: block h itself (header, pre-prepare and COMMIT certificate) and
the ids of every transaction in blocks 1..h (the executor refuses an id already in the
chain, so a restored node must know them all, or a re-ordered old transaction would
give it another receipts root than its peers).

Trust comes from one place: block h's execution certificate, 2f+1 validators'
EXECUTED(h, hash) signatures over the header, which holds the state root and the number
of state entries (docs/protocol.md §7, §11). Everything else is checked against it:

- State chunk m holds entries m·2^k .. m·2^k + 2^k - 1 in key order. In the state tree
  (carry-up, no duplication) those leaves are exactly one subtree, so the manifest lists
  each chunk's subtree root, and folding the list as a Merkle level reproduces the
  certified state root. The manifest is checked once against the certificate; each
  chunk is then checked on arrival against its root, so a bad chunk is caught alone and
  fetched again from another peer.
- History chunk j holds blocks a_j..b_j: each header and its transaction ids. The ids
  must rebuild the header's tx root, the headers must chain by prev_hash, the top one
  must hash to what the manifest says, and the manifest's top hashes chain down from
  block h's prev_hash to the genesis header. So every id is a certified block's.

CometBFT's statesync trusts the app hash of a light-client-verified header in the same
way; Fabric's snapshots list per-file hashes in a signed metadata file.
"""

from __future__ import annotations

import hashlib
import operator
from dataclasses import dataclass
from typing import Any

import msgpack
import nacl.exceptions
import nacl.signing

from consensus import messages as wire
from consensus.messages import Commit, Executed, PrePrepare, compute_digest
from consensus.quorum import quorum
from contracts import codec
from contracts.merkle import (EMPTY_ROOT, concatenated_leaf_nodes, fold_subtree_roots,
                             leaf_nodes, merkle_root, root_of_leaf_nodes)
from contracts.merkle_levels import MerkleLevels
from contracts.state import leaf_hashes
from node.chain import Header, read_certificate, tx_root

FORMAT = 1
CHUNK_LEAVES_LOG2 = 12
"""4,096 state entries per chunk (about 1 MB at this chain's record sizes): small
enough that a bad chunk costs little to fetch again, large enough that a million
entries are 245 requests. The manifest names its own (tests use tiny chunks)."""
CHUNK_LOG2_RANGE = range(1, 21)
HISTORY_CHUNK_MAX_IDS = 32_768
HISTORY_CHUNK_MAX_BLOCKS = 2_048
"""A history chunk closes at whichever comes first (1 MB of ids, or 2,048 headers)."""
ID_BYTES = 32


class SnapshotError(ValueError):
    """A manifest, certificate or chunk does not check out; the message says which check."""


@dataclass(frozen=True)
class Manifest:
    chain_id: str
    height: int
    header: bytes
    """Block `height`'s encoded header: its state root and entry count anchor the chunks."""
    chunk_leaves_log2: int
    """State chunks hold 2^this entries (the last may hold fewer)."""
    state_chunks: tuple[bytes, ...]
    """Subtree root of each state chunk, in key order."""
    history: tuple[tuple[int, int, bytes], ...]
    """(first height, last height, hash of the last header) per history chunk, ascending."""
    preprepare: bytes
    commit_certificate: bytes
    """Block `height` as the chain stores it, so the restored node can serve it too."""

    def to_value(self) -> dict[str, Any]:
        return {"format": FORMAT, "chain_id": self.chain_id, "height": self.height,
                "header": self.header, "chunk_leaves_log2": self.chunk_leaves_log2,
                "state_chunks": list(self.state_chunks),
                "history": [list(item) for item in self.history],
                "preprepare": self.preprepare, "commit_certificate": self.commit_certificate}

    def encode(self) -> bytes:
        return codec.encode(self.to_value())

    @property
    def hash(self) -> bytes:
        return hashlib.sha256(self.encode()).digest()

    @classmethod
    def decode(cls, data: bytes) -> "Manifest":
        try:
            value = codec.decode(data)
            _check(type(value) is dict and value.get("format") == FORMAT, "unknown format")
            roots = tuple(value["state_chunks"])
            history = tuple((int(a), int(b), bytes(h)) for a, b, h in value["history"])
            manifest = cls(str(value["chain_id"]), int(value["height"]), bytes(value["header"]),
                           int(value["chunk_leaves_log2"]), roots, history,
                           bytes(value["preprepare"]),
                           bytes(value["commit_certificate"]))
        except (codec.CodecError, KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"manifest is malformed: {exc}") from None
        _check(manifest.chunk_leaves_log2 in CHUNK_LOG2_RANGE, "chunk size out of range")
        _check(all(type(r) is bytes and len(r) == 32 for r in roots),
               "a state chunk root is not 32 bytes")
        return manifest

    @property
    def header_value(self) -> Header:
        return Header.decode(self.header)

    @property
    def chunk_leaves(self) -> int:
        return 1 << self.chunk_leaves_log2


# -- building (the producing node) ------------------------------------------------------------
def state_chunk_count(leaves: int, chunk_leaves: int) -> int:
    return (leaves + chunk_leaves - 1) // chunk_leaves


def state_chunk_roots(leaf_hashes: list[bytes], chunk_leaves: int) -> list[bytes]:
    """Each chunk's subtree root, from the state's leaf hashes in key order."""
    return [merkle_root(leaf_hashes[start:start + chunk_leaves])
            for start in range(0, len(leaf_hashes), chunk_leaves)]


def encode_state_chunk(pairs: list[tuple[str, bytes]]) -> bytes:
    return msgpack.packb([[key, value] for key, value in pairs], use_bin_type=True)


def history_ranges(counts: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Cut (height, tx count) rows, ascending from 1, into history chunk ranges."""
    ranges: list[tuple[int, int]] = []
    first, ids = None, 0
    for height, count in counts:
        if first is None:
            first, ids = height, 0
        ids += count
        if ids >= HISTORY_CHUNK_MAX_IDS or height - first + 1 >= HISTORY_CHUNK_MAX_BLOCKS:
            ranges.append((first, height))
            first = None
    if first is not None:
        ranges.append((first, counts[-1][0]))
    return ranges


def encode_history_chunk(rows: list[tuple[bytes, bytes]]) -> bytes:
    """rows: (encoded header, concatenated 32-byte tx ids) per block, ascending."""
    return msgpack.packb([[header, ids] for header, ids in rows], use_bin_type=True)


# -- checking (the restoring node) ---------------------------------------------------------------
def verify_manifest(manifest: Manifest, certificate: list[bytes], genesis: dict[str, Any],
                    genesis_hash: bytes) -> tuple[Header, list[bytes]]:
    """Block h's header and the valid votes of its certificate (a proof built on them
    must verify: a peer's padding is dropped), once the manifest is the certified state's."""
    _check(manifest.chain_id == genesis["chain_id"], "manifest is for another chain")
    try:
        header = manifest.header_value
    except (codec.CodecError, TypeError, ValueError) as exc:
        raise SnapshotError(f"manifest header is malformed: {exc}") from None
    _check(header.height == manifest.height > 0, "manifest header is for another height")
    signers = execution_signers(certificate, header, genesis)
    needed = quorum(len(genesis["validators"]))
    _check(len(signers) >= needed,
           f"execution certificate has {len(signers)} valid signatures; {needed} needed")
    _check(len(manifest.state_chunks) == state_chunk_count(header.state_leaves,
                                                                manifest.chunk_leaves),
           "manifest lists the wrong number of state chunks")
    root = fold_subtree_roots(list(manifest.state_chunks)) if manifest.state_chunks else EMPTY_ROOT
    _check(root == header.state_root, "state chunk roots do not fold to the certified state root")
    check_history_claims(manifest, header, genesis_hash)
    check_base_block(manifest, header, genesis)
    return header, [signers[i] for i in sorted(signers)]


def execution_signers(certificate: list[bytes], header: Header,
                      genesis: dict[str, Any]) -> dict[int, bytes]:
    """Distinct validators whose EXECUTED(height, header hash) signature verifies."""
    keys = validator_keys(genesis)
    signers: dict[int, bytes] = {}
    for raw in certificate:
        try:
            vote = wire.decode(raw)
        except wire.WireError:
            continue
        if (isinstance(vote.body, Executed) and vote.body == Executed(header.height, header.hash)
                and vote.sender in keys and vote.sender not in signers
                and _verifies(keys[vote.sender], vote, genesis["chain_id"])):
            signers[vote.sender] = raw
    return signers


def check_history_claims(manifest: Manifest, header: Header, genesis_hash: bytes) -> None:
    """The history ranges cover 1..h-1 without gaps; the top hash claims are checked
    chunk by chunk (`verify_history_chunk`), the last against block h's prev_hash."""
    expected_first = 1
    for first, last, top in manifest.history:
        _check(first == expected_first and last >= first and len(top) == 32,
               "history ranges have a gap or overlap")
        expected_first = last + 1
    _check(expected_first == manifest.height, "history does not end below the snapshot block")
    last_top = manifest.history[-1][2] if manifest.history else genesis_hash
    _check(last_top == header.prev_hash, "history does not chain to the snapshot block")


def check_base_block(manifest: Manifest, header: Header, genesis: dict[str, Any]) -> None:
    """Block h's pre-prepare is the one the header seals, with 2f+1 valid COMMITs."""
    try:
        pp = wire.decode(manifest.preprepare)
        votes = read_certificate(manifest.commit_certificate)
    except (wire.WireError, codec.CodecError, TypeError, ValueError):
        raise SnapshotError("snapshot block is malformed") from None
    body = pp.body
    _check(isinstance(body, PrePrepare) and body.seq == header.height,
           "snapshot block is not block h")
    _check(compute_digest(header.proposal_timestamp_ms, header.tx_root) == body.digest
           and tx_root(body.txs) == header.tx_root, "snapshot block does not match its header")
    keys = validator_keys(genesis)
    n = len(genesis["validators"])
    _check(pp.sender == body.view % n and pp.sender in keys
           and _verifies(keys[pp.sender], pp, genesis["chain_id"]),
           "snapshot block's pre-prepare is not its primary's")
    commits = {v.sender for v in votes
               if v.body == Commit(body.view, body.seq, body.digest) and v.sender in keys
               and _verifies(keys[v.sender], v, genesis["chain_id"])}
    _check(len(commits) >= quorum(n), "snapshot block's COMMIT certificate is short")


def verify_state_chunk(manifest: Manifest, index: int, leaves: int,
                       data: bytes) -> tuple[list[tuple[str, bytes]], list[bytes]]:
    """The chunk's (key, value) pairs and their leaf hashes, once they rebuild the
    manifest's root for it."""
    pairs, hashes, _levels = verify_state_chunk_levels(manifest, index, leaves, data)
    return pairs, hashes


def verify_state_chunk_levels(manifest: Manifest, index: int, leaves: int, data: bytes
                              ) -> tuple[list[tuple[str, bytes]], list[bytes], list[list[bytes]]]:
    """`verify_state_chunk`, plus the chunk's Merkle levels that the check built: a
    restore assembles the state's tree from them (MerkleLevels.from_subtrees)."""
    _check(0 <= index < len(manifest.state_chunks), "no such state chunk")
    expected = min(manifest.chunk_leaves, leaves - index * manifest.chunk_leaves)
    try:
        items = msgpack.unpackb(data, raw=False, use_list=False)
        pairs = [(key, value) for key, value in items
                 if type(key) is str and type(value) is bytes]
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError,
            msgpack.StackError):
        raise SnapshotError(f"state chunk {index} is malformed") from None
    _check(len(pairs) == len(items) == expected, f"state chunk {index} has the wrong size")
    keys = [key for key, _ in pairs]
    _check(all(map(operator.lt, keys, keys[1:])),
           f"state chunk {index} is not in key order")
    hashes = leaf_hashes(pairs)
    tree = MerkleLevels(leaf_nodes(hashes))
    _check(tree.root() == manifest.state_chunks[index],
           f"state chunk {index} does not match its root")
    return pairs, hashes, tree.levels


def verify_history_chunk(manifest: Manifest, index: int, genesis_hash: bytes,
                         data: bytes) -> list[tuple[int, list[bytes]]]:
    """(height, tx ids) per block, once the chunk is shown to be certified history."""
    return [(height, [ids[i:i + ID_BYTES] for i in range(0, len(ids), ID_BYTES)])
            for height, ids in verify_history_chunk_blocks(manifest, index, genesis_hash, data)]


def verify_history_chunk_blocks(manifest: Manifest, index: int, genesis_hash: bytes,
                                data: bytes) -> list[tuple[int, bytes]]:
    """`verify_history_chunk` with each block's ids left concatenated, as a restore
    stores them (node/storage.py splits them in SQL)."""
    _check(0 <= index < len(manifest.history), "no such history chunk")
    first, last, top = manifest.history[index]
    prev = manifest.history[index - 1][2] if index else genesis_hash
    try:
        rows = msgpack.unpackb(data, raw=False, use_list=False)
        blocks = [(Header.decode(header), ids) for header, ids in rows]
    except (ValueError, TypeError, KeyError, codec.CodecError, msgpack.ExtraData,
            msgpack.FormatError, msgpack.StackError):
        raise SnapshotError(f"history chunk {index} is malformed") from None
    _check(len(blocks) == last - first + 1, f"history chunk {index} has the wrong size")
    out: list[tuple[int, bytes]] = []
    for offset, (header, ids) in enumerate(blocks):
        _check(type(ids) is bytes and len(ids) % ID_BYTES == 0 and header.height == first + offset
               and header.prev_hash == prev, f"history chunk {index} does not chain")
        _check(root_of_leaf_nodes(concatenated_leaf_nodes(ids, ID_BYTES)) == header.tx_root,
               f"history chunk {index}: block {header.height}'s ids miss its tx root")
        out.append((header.height, ids))
        prev = header.hash
    _check(prev == top, f"history chunk {index} does not end at its certified header")
    return out


def validator_keys(genesis: dict[str, Any]) -> dict[int, nacl.signing.VerifyKey]:
    return {v["index"]: nacl.signing.VerifyKey(bytes.fromhex(v["public_key"]))
            for v in genesis["validators"]}


def _verifies(key: nacl.signing.VerifyKey, msg: wire.Signed, chain_id: str) -> bool:
    try:
        key.verify(msg.signing_bytes(chain_id), msg.sig)
    except (nacl.exceptions.BadSignatureError, ValueError):
        return False
    return True


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise SnapshotError(message)
