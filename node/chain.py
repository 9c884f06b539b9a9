"""Blocks: the header sealed after executing a committed batch, and the executor.

Consensus agrees on (view, seq, digest) where digest binds the primary's timestamp and
the Merkle root of the transaction ids. The header adds what execution produced — the
state root after the block and the receipts root — and every replica signs its hash in
an execution vote (consensus/execution.py), so 2f+1 signatures cover every header field
a proof shows. The bytes are specified in docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import msgspec

from consensus import events as ev
from consensus import messages as wire
from consensus.messages import compute_digest
from contracts import codec
from contracts.errors import ContractError
from contracts.genesis import init_state
from contracts.merkle import EMPTY_ROOT, merkle_root
from contracts.runtime import BlockContext, Receipt, apply_transaction
from contracts.state import State
from contracts.tx import Transaction, from_bytes, from_canonical_bytes

log = logging.getLogger("ipchain.chain")
EXECUTE_CHUNK_TXS = 200
ZERO_HASH = bytes(32)


def tx_root(txs: tuple[bytes, ...]) -> bytes:
    return merkle_root([hashlib.sha256(raw).digest() for raw in txs])


def digest_batch(timestamp_ms: int, txs: tuple[bytes, ...]) -> bytes:
    return compute_digest(timestamp_ms, tx_root(txs))


class BatchHashes:
    """One replica's tx ids and tx root of the batches it hashed lately.

    Consensus hashes each batch it is handed, to check a PRE-PREPARE's (or a fetched
    block's) digest; the executor needs the same ids (duplicates, the mempool) and the
    same root (the header) when that batch commits. Give the replica `digest_batch` of
    the engine's instance and each batch is hashed once per replica, not twice. Only
    the very tuple already hashed is answered from here (looked up by identity and
    held until evicted, so no other tuple can take its id); a miss just hashes again.
    One per replica on a node; the simulator shares one among a seed's replicas, which
    its wire hands the same decoded batch (ipchain/sim/run.py).

    `by_content`: look batches up by their bytes instead (a tuple's hash over its
    items' cached hashes), so an equal batch in another tuple is answered too: the
    simulator's primary hashes its own proposal, every other replica the copy its wire
    decoded. Not for a node, whose replica and executor hold the very same tuple and
    whose first sight of a large batch would pay that hash on top of SHA-256."""

    def __init__(self, keep_batches: int = 64, by_content: bool = False) -> None:
        self.keep_batches = keep_batches
        self.by_content = by_content
        self._recent: dict[Any, list[Any]] = {}
        """Each batch's [txs, ids, root, timestamp_ms, digest] (its last digest asked)."""

    def ids_and_root(self, txs: tuple[bytes, ...]) -> tuple[tuple[bytes, ...], bytes]:
        """(SHA-256 of each tx, `tx_root(txs)`)."""
        entry = self._entry(txs)
        return entry[1], entry[2]

    def digest_batch(self, timestamp_ms: int, txs: tuple[bytes, ...]) -> bytes:
        """`digest_batch`, remembering the batch's ids and root for the executor (and its
        digest, which every replica of the simulator's shared instance asks for)."""
        entry = self._entry(txs)
        if entry[3] != timestamp_ms:
            entry[3], entry[4] = timestamp_ms, compute_digest(timestamp_ms, entry[2])
        return entry[4]

    def _entry(self, txs: tuple[bytes, ...]) -> list[Any]:
        key = txs if self.by_content else id(txs)
        hit = self._recent.get(key)
        if hit is not None and (hit[0] is txs or self.by_content):
            return hit
        sha256 = hashlib.sha256
        ids = tuple([sha256(raw).digest() for raw in txs])
        recent = self._recent
        if len(recent) >= self.keep_batches:
            del recent[next(iter(recent))]  # the oldest: dicts keep insertion order
        entry = recent[key] = [txs, ids, merkle_root(ids), None, b""]
        return entry


BLOCK_DOMAIN = b"ipchain/block/v2"


@dataclass(frozen=True)
class Header:
    """No view here: the quorum agrees on the batch, not on the view it committed in
    (a batch committed in view 0 on some replicas may be re-proposed and committed in
    view 2 on others), so a view in the hashed header would fork the block hashes."""

    height: int
    prev_hash: bytes
    tx_root: bytes
    state_root: bytes
    """State root AFTER this block: the header is sealed once the block is executed, so
    one certified header proves both the block and the state it left."""
    timestamp_ms: int
    """The agreed time: max(primary's timestamp, previous block's), never decreasing."""
    proposal_timestamp_ms: int
    receipts_root: bytes = EMPTY_ROOT
    state_leaves: int = 0
    """Number of state entries: fixes the tree shape, so an absence proof can show that
    two leaves are neighbours."""

    def to_value(self) -> dict[str, Any]:
        return {"height": self.height, "prev_hash": self.prev_hash,
                "tx_root": self.tx_root, "state_root": self.state_root,
                "timestamp_ms": self.timestamp_ms,
                "proposal_timestamp_ms": self.proposal_timestamp_ms,
                "receipts_root": self.receipts_root, "state_leaves": self.state_leaves}

    def encode(self) -> bytes:
        """Computed once: a header is frozen, and each block needs it several times. Kept
        in __dict__ by hand: `functools.cached_property` takes a lock on Python 3.11 that
        cost more than the encoding (once per block on every replica)."""
        encoded = self.__dict__.get("_encoded")
        if encoded is None:
            encoded = self.__dict__["_encoded"] = codec.encode(self.to_value())
        return encoded

    @property
    def hash(self) -> bytes:
        block_hash = self.__dict__.get("_hash")
        if block_hash is None:
            block_hash = self.__dict__["_hash"] = hashlib.sha256(
                BLOCK_DOMAIN + self.encode()).digest()
        return block_hash

    @classmethod
    def decode(cls, data: bytes) -> "Header":
        return cls(**codec.decode(data))


class Executor:
    """Applies delivered blocks in order and stores each with its state changes.

    The one block executor (node and simulator): header, receipts, tx index and
    duplicates. Synchronous and chunked (`begin`, `BlockRun.advance`, `commit`) so an
    asyncio adapter can yield mid-block and a simulator can model execution time."""

    def __init__(self, storage: Any, genesis: dict[str, Any], state: State | None = None) -> None:
        """`state`: the stored state already loaded and checked (a snapshot restore)."""
        self.storage = storage
        self.chain_id = genesis["chain_id"]
        genesis_state = genesis_state_of(genesis)
        self.genesis = genesis_header(genesis_state, genesis["genesis_time_ms"])
        storage.init_state(genesis_state.raw_items())
        if state is None:
            stored = storage.state_items()
            # A store still at the genesis (every new replica) holds exactly the state
            # just built, whose leaves and root are hashed already: no second build.
            state = genesis_state if stored == genesis_state.raw_items() else State(stored)
        self.state = state
        self.state.take_dirty()
        self.height = storage.last_height()
        self.head = (self.genesis if self.height == 0
                     else Header.decode(storage.block(self.height)[1]))
        self.lock = asyncio.Lock()
        """Held by the asyncio adapter while a block is applied, so queries never see
        half a block (the synchronous simulator never interleaves, so never takes it)."""
        self.planted_fault: Callable[[], Any] | None = None
        """Test hook (a planted fault): when set, each block also writes the value it
        returns, so this replica's results differ from everyone else's."""
        self.batch_hashes = BatchHashes()
        """Where a block's tx ids and root come from: the engine puts its replica's here
        when the replica checks digests with one (node/engine.py)."""
        self.shared_runs: Callable[..., "BlockRun"] | None = None
        """Simulator hook (ipchain/sim/execshare.py): makes each block's run in place of
        `BlockRun`, replaying what a replica of the same seed computed from identical
        inputs. None on a node, which executes every block itself."""

    def begin(self, block: ev.Deliver, known: Callable[[bytes], Transaction | None],
              verified: Callable[[Transaction], bool]) -> "BlockRun":
        if block.seq != self.height + 1:
            raise RuntimeError(f"block {block.seq} delivered after {self.height}")
        if self.shared_runs is not None:
            return self.shared_runs(self, block, known, verified)
        return BlockRun(self, block, known, verified)

    def commit(self, run: "BlockRun") -> tuple[Header, list[Receipt]]:
        """Store the block, its receipts and state changes in one transaction."""
        block, receipts = run.block, run.receipts
        if self.planted_fault is not None:
            self.state.put("zz-planted-fault", self.planted_fault())
        rows, header = run.seal(self)
        changes = self.state.take_dirty()
        self.storage.save_block(
            block.seq, header.hash, header.encode(), self.state.root(),
            wire.encode(block.preprepare), wire_certificate(block.certificate), rows, changes)
        self.height, self.head = block.seq, header
        return header, receipts


class BlockRun:
    """One block being applied: its receipts come chunk by chunk; its header is sealed
    by `Executor.commit` once all are in (it carries the state and receipts roots)."""

    def __init__(self, executor: Executor, block: ev.Deliver,
                 known: Callable[[bytes], Transaction | None],
                 verified: Callable[[Transaction], bool]) -> None:
        self.block = block
        ctx = BlockContext(executor.chain_id, block.seq, block_time_ms(executor.head, block))
        self.ids, self.tx_root = ids, _ = executor.batch_hashes.ids_and_root(block.txs)
        self._pending = iter_receipts(executor.state, ctx, block.txs, ids,
                                      executor.storage.known_tx_ids(ids), known, verified)
        self.receipts: list[Receipt] = []

    def advance(self, max_txs: int | None = None) -> bool:
        """Apply up to `max_txs` more transactions (all if None); True once all are."""
        before = len(self.receipts)
        self.receipts.extend(itertools.islice(self._pending, max_txs))
        return max_txs is None or len(self.receipts) - before < max_txs

    def seal(self, executor: Executor) -> tuple[list[tuple[bytes, int, bytes]], Header]:
        """Once every receipt is in: the stored receipts as the store's rows (tx id,
        index, record), and the header over the executor's state as the block left it."""
        kept = [r for r in self.receipts if r.code != DUPLICATE]
        leaves, records = receipts_bytes(kept)
        roots = (self.tx_root, merkle_root(leaves))
        ids = self.ids
        return ([(ids[r.index], r.index, record) for r, record in zip(kept, records)],
                seal_header(executor.head, self.block, executor.state, self.receipts, roots))


# -- the block recipe shared by the node's executor and the simulator's -------------------
DUPLICATE = "DuplicateTransaction"


_GENESIS_STATES: dict[bytes, State] = {}
"""`init_state` of each genesis met in this process, by its canonical bytes: the
simulator starts every replica of every seed from one genesis (4+ executors a seed)."""
_KEEP_GENESIS_STATES = 8


def genesis_state_of(genesis: dict[str, Any]) -> State:
    """`init_state(genesis)`: a copy of the one built (checked, hashed) for the same
    genesis before. A genesis the codec refuses is not kept: `init_state` says why."""
    try:
        key = codec.encode(genesis)
    except codec.CodecError:
        return init_state(genesis)
    template = _GENESIS_STATES.get(key)
    if template is None:
        template = init_state(genesis)
        template.root()  # hashed here once, for every copy
        if len(_GENESIS_STATES) >= _KEEP_GENESIS_STATES:
            _GENESIS_STATES.clear()
        _GENESIS_STATES[key] = template
    return template.copy()


def genesis_header(state: State, genesis_time_ms: int) -> Header:
    return Header(0, ZERO_HASH, EMPTY_ROOT, state.root(), genesis_time_ms, genesis_time_ms,
                  EMPTY_ROOT, len(state))


def block_time_ms(prev: Header, block: ev.Deliver) -> int:
    """The agreed block time: the primary's, but never before the previous block's."""
    return max(block.timestamp_ms, prev.timestamp_ms)


RECEIPT_LEAF_FIELDS = ("code", "events", "index", "status", "tx_id")


_NO_EVENTS_BYTES = codec.encode([])
_NO_EVENTS = msgspec.Raw(_NO_EVENTS_BYTES)


def _events_raw(receipt: Receipt) -> msgspec.Raw:
    """The receipt's events as canonical bytes, encoded once (types checked, every map
    sorted) and embedded as they are in both the leaf and the stored record."""
    events = receipt.events
    return msgspec.Raw(codec.encode_events(events)) if events else _NO_EVENTS


def receipt_leaf(receipt: Receipt, events: msgspec.Raw | None = None) -> bytes:
    """What a receipt contributes to the receipts root (docs/protocol.md §3.1): no
    height (the header has it) and no human message (wording is not a result).

    The same bytes as `codec.encode` of that map, built with the keys already in order
    (only the events needed the canonical check, done once in `_events_raw`): this runs
    for every transaction on every replica."""
    return codec.pack({"code": receipt.code,
                       "events": _events_raw(receipt) if events is None else events,
                       "index": receipt.index,
                       "status": "committed" if receipt.ok else "rejected",
                       "tx_id": receipt.tx_id})


def receipt_record(receipt: Receipt, events: msgspec.Raw | None = None) -> bytes:
    """The stored receipt: the same bytes as `codec.encode(receipt.to_value())`, built
    with the keys already in order, like `receipt_leaf` (once per transaction)."""
    return codec.pack({"code": receipt.code,
                       "events": _events_raw(receipt) if events is None else events,
                       "height": receipt.height, "index": receipt.index,
                       "message": receipt.message,
                       "status": "committed" if receipt.ok else "rejected",
                       "tx_id": receipt.tx_id})


_pack = codec.pack
_COMMITTED, _REJECTED = _pack("status") + _pack("committed"), _pack("status") + _pack("rejected")
_LEAF_HEAD = (_pack({"code": 0, "events": 0, "index": 0, "status": 0, "tx_id": 0})[:1]
              + _pack("code"))
"""A map's first byte says how many entries follow; then its first key."""
_RECORD_HEAD = (_pack({"code": 0, "events": 0, "height": 0, "index": 0, "message": 0,
                       "status": 0, "tx_id": 0})[:1] + _pack("code"))
_EVENTS_KEY, _HEIGHT_KEY, _INDEX_KEY, _MESSAGE_KEY, _TX_ID_KEY = (
    _pack("events"), _pack("height"), _pack("index"), _pack("message"), _pack("tx_id"))


def receipt_bytes(receipt: Receipt) -> tuple[bytes, bytes]:
    """(leaf, stored record) of one receipt: `receipt_leaf` and `receipt_record`'s
    bytes (`receipts_bytes` of one). tests/node/test_chain.py compares them with
    codec.encode."""
    leaves, records = receipts_bytes([receipt])
    return leaves[0], records[0]


def receipts_bytes(receipts: list[Receipt]) -> tuple[list[bytes], list[bytes]]:
    """Each receipt's leaf and stored record, joined from the map's header, its keys
    packed once at import and each value packed once for both (a map's bytes are its
    header then each key and value in order); building and packing the two maps cost a
    sixth more. One loop for a block's receipts (once per transaction on every replica:
    a call per receipt cost as much as the joins)."""
    leaves: list[bytes] = []
    records: list[bytes] = []
    join, pack = b"".join, _pack
    height = height_bytes = None  # a block's receipts share theirs: packed once
    for receipt in receipts:
        events = receipt.events
        events_bytes = _events_bytes(events) if events else _NO_EVENTS_BYTES
        code = receipt.code
        code = _OK if code == "ok" else pack(code)
        index, tx_id = pack(receipt.index), pack(receipt.tx_id)
        status = _COMMITTED if receipt.ok else _REJECTED
        if receipt.height != height:
            height = receipt.height
            height_bytes = pack(height)
        message = receipt.message
        leaves.append(join((_LEAF_HEAD, code, _EVENTS_KEY, events_bytes, _INDEX_KEY, index,
                            status, _TX_ID_KEY, tx_id)))
        records.append(join((_RECORD_HEAD, code, _EVENTS_KEY, events_bytes,
                             _HEIGHT_KEY, height_bytes, _INDEX_KEY, index, _MESSAGE_KEY,
                             pack(message) if message else _NO_MESSAGE, status,
                             _TX_ID_KEY, tx_id)))
    return leaves, records


_NO_MESSAGE, _OK = _pack(""), _pack("ok")


_FLAT_VALUE_TYPES = frozenset({str, int, bytes, bool, type(None)})
_pack_sorted = msgspec.msgpack.Encoder(order="sorted").encode


def _events_bytes(events: tuple[Any, ...]) -> bytes:
    """`codec.encode_events(events)`: the same bytes, and the same error for anything
    it refuses. An event whose data is flat (str keys, scalar values: every event the
    contracts emit today) is checked here in one loop, where `codec.is_canonical` walks
    it in a call of its own; an int out of the 64-bit range is refused by the encoder
    (OverflowError), and then the codec names it. Anything else goes to the codec."""
    flat = _FLAT_VALUE_TYPES
    for event in events:
        data = event.data
        if type(event.contract) is not str or type(event.name) is not str \
                or type(data) is not dict:
            return codec.encode_events(events)
        for key, item in data.items():
            if type(key) is not str or type(item) not in flat:
                return codec.encode_events(events)
    try:
        return _pack_sorted(events)
    except OverflowError:
        return codec.encode_events(events)


def receipts_root(receipts: list[Receipt]) -> bytes:
    return merkle_root([receipt_leaf(r) for r in receipts if r.code != DUPLICATE])


def seal_header(prev: Header, block: ev.Deliver, state: State, receipts: list[Receipt],
                roots: tuple[bytes, bytes] | None = None) -> Header:
    """The header of the block after `prev`, once the block has been executed on `state`.
    `roots`: (tx root, receipts root) when the caller already holds them (the executor
    has every tx id and receipt leaf at hand; hashing them again costs per transaction)."""
    txs_root, results_root = roots or (tx_root(block.txs), receipts_root(receipts))
    return Header(block.seq, prev.hash, txs_root, state.root(), block_time_ms(prev, block),
                  block.timestamp_ms, results_root, len(state))


def iter_receipts(state: State, ctx: BlockContext, txs: tuple[bytes, ...], ids: list[bytes],
                  committed: set[bytes], known: Callable[[bytes], Transaction | None],
                  verified: Callable[[Transaction], bool]) -> Iterator[Receipt]:
    """Apply a committed batch in order, one receipt per transaction.

    A transaction already in the chain (or earlier in this batch) is not applied again:
    after a view change the same request can be ordered twice, and it must take effect
    once. A generator, so the node can yield to its event loop between chunks.
    """
    in_batch: set[bytes] = set()
    for index, (raw, tx_id) in enumerate(zip(txs, ids)):
        if tx_id in committed or tx_id in in_batch:
            yield Receipt(tx_id.hex(), ctx.height, index, False, DUPLICATE, "already in the chain")
            continue
        in_batch.add(tx_id)
        yield apply_raw(state, ctx, raw, tx_id, index, known, verified)


def apply_raw(state: State, ctx: BlockContext, raw: bytes, tx_id: bytes, index: int,
              known: Callable[[bytes], Transaction | None],
              verified: Callable[[Transaction], bool]) -> Receipt:
    """Decode (unless already known from the mempool) and apply one ordered transaction."""
    tx = known(tx_id)
    if tx is None:
        # A peer's canonical bytes (nearly every tx) take the short way, which accepts
        # exactly what `from_bytes` accepts with the same bytes back; anything else the
        # long way, which names what is wrong.
        tx = from_canonical_bytes(raw, tx_id)
        if tx is None:
            try:
                tx = from_bytes(raw)
            except ContractError as exc:
                return Receipt(tx_id.hex(), ctx.height, index, False, exc.code, str(exc))
            if tx.to_bytes() != raw:
                return Receipt(tx_id.hex(), ctx.height, index, False, "BadTransaction",
                               "transaction bytes are not canonical")
        tx.__dict__["id"] = tx_id.hex()  # its bytes are `raw`, whose hash is `tx_id`
    return apply_transaction(state, ctx, tx, index, verified)


def wire_certificate(certificate: tuple[wire.Signed, ...]) -> bytes:
    """A list of byte strings is canonical as it stands: packed without the codec's walk
    (once per block on every replica, and again for its execution certificate)."""
    return codec.pack([wire.encode(vote) for vote in certificate])


def read_certificate(data: bytes) -> tuple[wire.Signed, ...]:
    return tuple(wire.decode(item) for item in codec.decode(data))
