"""The simulator's side of the one checker library: a finished run as an `ipchain.checks.History`.

Each replica's headers are the ones its executor sealed (kept by the host), which gives
the sim the same block hashes, parent links and roots the fault runner reads from real
nodes.
Times become seconds of simulated time.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ipchain.checks import Block, History, Liveness, Receipt, ReplicaRecord, Submission
from ipchain.sim.host import Host


def record_of(host: Host, genesis_time_ms: int, tx_ids: dict[bytes, str] | None = None,
              blocks_seen: dict[tuple[Any, ...], Block] | None = None) -> ReplicaRecord:
    chain, replica = host.chain, host.replica
    state = chain.state
    return ReplicaRecord(
        index=host.index, honest=host.honest, up=host.up and replica is not None,
        blocks=_blocks(host, tx_ids or {}, {} if blocks_seen is None else blocks_seen),
        receipts=[Receipt(r.tx_id, r.height, r.ok, r.code)
                  for block in chain.receipts for r in block],
        height=chain.height, state_root=chain.roots[chain.height].hex(),
        view=replica.view if replica is not None else 0,
        in_view_change=bool(replica is not None and replica.in_view_change),
        supply_bpc=state.get("supply/BPC", 0),
        balances_bpc={key.rsplit("/", 1)[1]: value for key, value in state.items("bal/BPC/")},
        anomalies=list(host.anomalies), bad_certificates=list(host.bad_certificates))


def _blocks(host: Host, tx_ids: dict[bytes, str],
            seen: dict[tuple[Any, ...], Block]) -> list[Block]:
    """`tx_ids`: the ids the clients already computed for what they sent (raw -> hex); a
    transaction they did not send (a Byzantine replica's) is hashed here. `seen`: the
    records already made for other replicas, keyed by everything a record is made of
    (the header by its hash): most replicas hold the same blocks, and a `Block` is
    immutable, so one record serves all of them."""
    chain, headers, roots = host.chain, host.headers, host.chain.roots
    blocks = []
    for height in range(1, chain.height + 1):
        proposal, header = chain.blocks[height].preprepare.body, headers[height]
        key = (header.hash, roots[height - 1], roots[height], proposal.view,
               proposal.digest, proposal.txs)
        block = seen.get(key)
        if block is None:
            block = seen[key] = Block(
                height, header.hash.hex(), header.prev_hash.hex(), roots[height - 1].hex(),
                roots[height].hex(), proposal.view, header.timestamp_ms,
                tuple(tx_ids.get(raw) or hashlib.sha256(raw).hexdigest()
                      for raw in proposal.txs),
                proposal.digest.hex(), header.tx_root.hex())
        blocks.append(block)
    return blocks


def submissions_of(client: Any) -> dict[str, Submission]:
    """Every request the simulated clients sent, with the receipt they were given."""
    out, acked = {}, client.acked
    for tx_id, sent in client.submissions.items():
        ack = acked.get(tx_id)
        kind = "liveness" if sent.phase == "liveness" else "load"
        if ack is None:
            out[tx_id] = Submission(tx_id, kind, "", 0, sent.first_ms / 1000)
        else:
            out[tx_id] = Submission(tx_id, kind, "", 0, sent.first_ms / 1000,
                                    "acknowledged" if ack.ok else "rejected", ack.height,
                                    ack.code, ack.at_ms / 1000, [{"node": ack.host}])
    return out


def history_of(hosts: list[Host], client: Any, genesis_time_ms: int, genesis_supply_bpc: int,
               heal_ms: int, liveness_bound_ms: int, max_lagging: int) -> History:
    tx_ids = {sent.ctx.raw: tx_id for tx_id, sent in client.submissions.items()}
    blocks_seen: dict[tuple[Any, ...], Block] = {}
    return History(
        replicas=[record_of(h, genesis_time_ms, tx_ids, blocks_seen) for h in hosts],
        submissions=submissions_of(client),
        liveness=Liveness(liveness_bound_ms / 1000, heal_ms / 1000, every_request_answered=True,
                          max_lagging=max_lagging),
        genesis_supply_bpc=genesis_supply_bpc)
