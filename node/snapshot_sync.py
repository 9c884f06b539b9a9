"""State sync: a new or far-behind node restores a certified snapshot fetched from its peers.

At start, before the replica runs, the node asks every peer which snapshots it offers.
It takes the highest one well above its own height, fetches its manifest, and checks
the manifest against the block's execution certificate (node/snapshot.py). Then it
fetches the chunks from every peer offering that snapshot at once (a few requests in
flight per peer), checks each chunk on arrival against the manifest, and writes it in
one SQLite transaction that commits only when every chunk is in. A chunk that fails its
check (or its request) is asked of another peer, and the peer that sent it is not asked
for that chunk again; a peer whose manifest fails is not used at all.

Once committed, the node is an ordinary node at height h: the replica resumes there and
fetches the blocks after h with their certificates (consensus/catchup.py), executing
only those. Its blocks below h are "pruned" (the history chunks gave it every
transaction id below h, so duplicates are still refused).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgpack

from consensus import messages as wire
from contracts.merkle_levels import MerkleLevels
from contracts.state import State
from node.chain import wire_certificate
from node.logs import Event
from node.snapshot import (Manifest, SnapshotError, verify_history_chunk_blocks,
                           verify_manifest, verify_state_chunk_levels)

log = logging.getLogger("ipchain.statesync")

REQUESTS_PER_PEER = 2
REQUEST_TIMEOUT_S = 60.0
"""Per request: a peer executing blocks on a large state answers slowly, and a chunk is
worth waiting for (the transport's 10 s suits consensus messages, not this)."""
OFFER_ROUNDS = 5
"""A node asks again while no peer answered and some timed out (busy, not down)."""
MIN_GAP_BLOCKS = 1_024
"""A node that has blocks syncs from a snapshot only this far behind it: closer, replaying
the blocks costs less than fetching the whole state."""


class StateSyncFailed(Exception):
    """No offered snapshot could be restored; the node goes on by replaying blocks."""


@dataclass
class Job:
    kind: str  # "state" or "history"
    index: int
    tried: set[int] = field(default_factory=set)


@dataclass
class Progress:
    bytes_fetched: int = 0
    chunks_by_peer: collections.Counter = field(default_factory=collections.Counter)
    rejected_by_peer: collections.Counter = field(default_factory=collections.Counter)
    failed_requests: int = 0
    timed_out: int = 0


@dataclass
class Fetched:
    """Verified chunks by index, written once all are in."""

    state: dict[int, tuple[list[tuple[str, bytes]], list[bytes]]] = field(default_factory=dict)
    history: dict[int, tuple[list[tuple[int, bytes]], bytes]] = field(default_factory=dict)
    state_levels: dict[int, list[list[bytes]]] = field(default_factory=dict)
    """Each state chunk's Merkle levels, built by its check: the restored state's tree."""

    def state_tree(self) -> MerkleLevels | None:
        if len(self.state_levels) != len(self.state):
            return None
        return MerkleLevels.from_subtrees([self.state_levels[i] for i in sorted(self.state)])

    def state_in_order(self) -> tuple[list[tuple[str, bytes]], list[bytes]]:
        pairs: list[tuple[str, bytes]] = []
        leaves: list[bytes] = []
        for index in sorted(self.state):
            chunk_pairs, chunk_leaves = self.state[index]
            if pairs and chunk_pairs and not pairs[-1][0] < chunk_pairs[0][0]:
                raise SnapshotError(f"state chunk {index} does not follow its predecessor")
            pairs += chunk_pairs
            leaves += chunk_leaves
        return pairs, leaves

    def tx_blocks(self) -> list[tuple[int, bytes]]:
        """(height, concatenated ids) of every block, ascending."""
        return [block for index in sorted(self.history) for block in self.history[index][0]]

    def history_rows(self) -> list[tuple[int, bytes, bytes]]:
        """(height, header, ids) for the node's own history (it serves them on)."""
        rows = []
        for index in sorted(self.history):
            blocks, body = self.history[index]
            headers = msgpack.unpackb(body, raw=False)
            rows += [(height, header, ids) for (height, ids), (header, _) in zip(blocks, headers)]
        return rows


class StateSync:
    """One restore attempt over a Transport's peers into a Storage (SQLite)."""

    def __init__(self, transport: Any, storage: Any, snapshots: Any, genesis: dict[str, Any],
                 genesis_hash: bytes, height: int) -> None:
        self.transport, self.storage, self.snapshots = transport, storage, snapshots
        self.genesis, self.genesis_hash, self.height = genesis, genesis_hash, height
        self.progress = Progress()
        self.state: State | None = None
        """The restored state, loaded and checked, for the node's executor."""

    # -- HTTP -------------------------------------------------------------------------------
    async def _get(self, peer: int, path: str) -> bytes | None:
        link = self.transport.links[peer]
        headers = self.transport.signer("GET", path, b"") if self.transport.signer else {}
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S, connect=2)
        try:
            async with link.session.get(link.peer.url + path, headers=headers,
                                        timeout=timeout) as resp:
                body = await resp.read()
                if resp.status != 200:
                    return None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            self.progress.failed_requests += 1
            self.progress.timed_out += isinstance(exc, asyncio.TimeoutError)
            return None
        self.progress.bytes_fetched += len(body)
        return body

    async def offers(self) -> dict[tuple[int, bytes], list[int]]:
        """(height, manifest hash) -> the peers offering it."""
        peers = sorted(self.transport.links)
        for attempt in range(OFFER_ROUNDS):
            timed_out = self.progress.timed_out
            answers = await asyncio.gather(*(self._get(p, "/p2p/snapshots") for p in peers))
            if any(body is not None for body in answers) or self.progress.timed_out == timed_out:
                break  # someone answered, or every peer is down (a cluster starting)
            log.warning(Event("snapshot_offers_timed_out", attempt=attempt + 1))
            await asyncio.sleep(0.5 * 2 ** attempt)
        found: dict[tuple[int, bytes], list[int]] = collections.defaultdict(list)
        for peer, body in zip(peers, answers):
            try:
                for height, digest in msgpack.unpackb(body, raw=False)["snapshots"]:
                    if type(height) is int and type(digest) is bytes:
                        found[(height, digest)].append(peer)
            except (TypeError, ValueError, KeyError, msgpack.ExtraData, msgpack.FormatError):
                continue
        return found

    # -- the restore ---------------------------------------------------------------------------
    async def run(self) -> dict[str, Any] | None:
        """Restore the best offered snapshot; None when none is worth it."""
        started = time.monotonic()
        offers = await self.offers()
        worth = [(key, peers) for key, peers in offers.items()
                 if key[0] > self.height and (not self.height
                                              or key[0] - self.height >= MIN_GAP_BLOCKS)]
        for (height, digest), peers in sorted(worth, key=lambda kv: (-kv[0][0], -len(kv[1]))):
            for peer in peers:
                manifest, votes = await self._manifest(peer, height, digest)
                if manifest is None:
                    continue
                report = await self._restore(manifest, votes, peers, started)
                if report is not None:
                    return report
        if worth:
            raise StateSyncFailed(f"none of {len(worth)} offered snapshots could be restored")
        return None

    async def _manifest(self, peer: int, height: int,
                        digest: bytes) -> tuple[Manifest | None, list[bytes]]:
        body = await self._get(peer, f"/p2p/snapshot/{height}/manifest")
        try:
            answer = msgpack.unpackb(body, raw=False)
            manifest = Manifest.decode(answer["manifest"])
            votes = [v for v in answer["certificate"] if type(v) is bytes]
            if manifest.hash != digest:
                raise SnapshotError("manifest does not hash to the offered digest")
            _, votes = verify_manifest(manifest, votes, self.genesis, self.genesis_hash)
        except (SnapshotError, TypeError, ValueError, KeyError, msgpack.ExtraData,
                msgpack.FormatError) as exc:
            self.progress.rejected_by_peer[peer] += 1
            log.warning(Event("snapshot_manifest_refused", peer=peer, height=height,
                              reason=str(exc)))
            return None, []
        return manifest, votes

    async def _restore(self, manifest: Manifest, votes: list[bytes], peers: list[int],
                       started: float) -> dict[str, Any] | None:
        header = manifest.header_value
        jobs = collections.deque([Job("state", i) for i in range(len(manifest.state_chunks))]
                                 + [Job("history", j) for j in range(len(manifest.history))])
        log.info(Event("state_sync_started", height=manifest.height, peers=len(peers),
                       state_chunks=len(manifest.state_chunks), history_chunks=len(manifest.history),
                       entries=header.state_leaves))
        got = Fetched()
        await self._fetch_all(manifest, header.state_leaves, jobs, peers, got)
        missing = len(manifest.state_chunks) - len(got.state) + len(manifest.history) - len(
            got.history)
        if missing:
            log.error(Event("state_sync_failed", height=manifest.height,
                            reason=f"{missing} chunks could not be fetched from any peer"))
            return None
        try:
            pairs, leaves = got.state_in_order()
        except SnapshotError as exc:
            log.error(Event("state_sync_failed", height=manifest.height, reason=str(exc)))
            return None
        report = self._report(manifest, header, peers, started)
        block = (header.hash, manifest.header, header.state_root, manifest.preprepare,
                 manifest.commit_certificate)
        self.storage.begin_restore()
        try:  # in key order and id order: SQLite appends instead of splitting pages
            self.storage.restore_state_rows(pairs)
            self.storage.restore_tx_blocks(got.tx_blocks())
            # the id index is one GIL-free SQLite statement: build the state meanwhile
            # (leaving the block waits for the thread, so an abort never races it)
            with concurrent.futures.ThreadPoolExecutor(1, "restore-index") as pool:
                indexing = pool.submit(self.storage.index_restored_tx_ids)
                state = State.from_verified(pairs, leaves, header.state_root, got.state_tree())
            indexing.result()
            self.storage.finish_restore(manifest.height, block, wire_certificate_raw(votes),
                                        report)
        except BaseException:
            self.storage.abort_restore()
            raise
        if self.snapshots is not None:
            self.snapshots.record_blocks(got.history_rows())
        self.state = state
        report["ms"] = int((time.monotonic() - started) * 1000)
        log.warning(Event("state_synced", height=manifest.height, ms=report["ms"],
                          bytes=report["bytes_fetched"], peers=",".join(map(str, report["peers"]))))
        return report

    async def _fetch_all(self, manifest: Manifest, leaves: int, jobs: collections.deque,
                         peers: list[int], got: "Fetched") -> None:
        in_flight = [0]

        async def worker(peer: int) -> None:
            while jobs or in_flight[0]:
                job = next((j for j in jobs if peer not in j.tried), None)
                if job is None:
                    await asyncio.sleep(0.01)  # a job in flight elsewhere may come back
                    if not any(peer not in j.tried for j in jobs) and not in_flight[0]:
                        return
                    continue
                jobs.remove(job)
                job.tried.add(peer)
                in_flight[0] += 1
                try:
                    ok = await self._one(peer, job, manifest, leaves, got)
                finally:
                    in_flight[0] -= 1
                if not ok and len(job.tried) < len(peers):
                    jobs.append(job)  # another peer may have it right

        await asyncio.gather(*(worker(p) for p in peers for _ in range(REQUESTS_PER_PEER)))

    async def _one(self, peer: int, job: Job, manifest: Manifest, leaves: int,
                   got: "Fetched") -> bool:
        if job.kind == "state":
            path = f"/p2p/snapshot/{manifest.height}/state/{job.index}"
        else:
            first, last, _ = manifest.history[job.index]
            path = f"/p2p/snapshot/history?from={first}&to={last}"
        body = await self._get(peer, path)
        if body is None:
            return False
        try:
            if job.kind == "state":
                pairs, hashes, levels = verify_state_chunk_levels(manifest, job.index, leaves,
                                                                  body)
                got.state[job.index], got.state_levels[job.index] = (pairs, hashes), levels
            else:
                got.history[job.index] = (verify_history_chunk_blocks(
                    manifest, job.index, self.genesis_hash, body), body)
        except SnapshotError as exc:
            self.progress.rejected_by_peer[peer] += 1
            log.warning(Event("snapshot_chunk_refused", peer=peer, kind=job.kind,
                              index=job.index, reason=str(exc)))
            return False
        self.progress.chunks_by_peer[peer] += 1
        await asyncio.sleep(0)
        return True

    def _report(self, manifest: Manifest, header: Any, peers: list[int],
                started: float) -> dict[str, Any]:
        p = self.progress
        return {"height": manifest.height, "state_root": header.state_root.hex(),
                "state_entries": header.state_leaves,
                "state_chunks": len(manifest.state_chunks), "history_chunks": len(manifest.history),
                "bytes_fetched": p.bytes_fetched,
                "peers": sorted(p.chunks_by_peer),
                "chunks_by_peer": {str(k): v for k, v in sorted(p.chunks_by_peer.items())},
                "rejected_by_peer": {str(k): v for k, v in sorted(p.rejected_by_peer.items())},
                "failed_requests": p.failed_requests,
                "ms": int((time.monotonic() - started) * 1000)}


def wire_certificate_raw(votes: list[bytes]) -> bytes:
    """The certificate as the store keeps it (node.chain.wire_certificate's format)."""
    return wire_certificate(tuple(wire.decode(v) for v in votes))
