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


def record_of(host: Host, genesis_time_ms: int,
              tx_ids: dict[bytes, str] | None = None) -> ReplicaRecord:
    chain, replica = host.chain, host.replica
    state = chain.state
    return ReplicaRecord(
        index=host.index, honest=host.honest, up=host.up and replica is not None,
        blocks=_blocks(host, genesis_time_ms, tx_ids or {}),
        receipts=[Receipt(r.tx_id, r.height, r.ok, r.code)
                  for block in chain.receipts for r in block],
        height=chain.height, state_root=chain.roots[chain.height].hex(),
        view=replica.view if replica is not None else 0,
        in_view_change=bool(replica is not None and replica.in_view_change),
        supply_bpc=state.get("supply/BPC", 0),
        balances_bpc={key.rsplit("/", 1)[1]: value for key, value in state.items("bal/BPC/")},
        anomalies=list(host.anomalies), bad_certificates=list(host.bad_certificates))


def _blocks(host: Host, genesis_time_ms: int, tx_ids: dict[bytes, str]) -> list[Block]:
    """`tx_ids`: the ids the clients already computed for what they sent (raw -> hex); a
    transaction they did not send (a Byzantine replica's) is hashed here."""
    chain = host.chain
    blocks = []
    for height in range(1, chain.height + 1):
        delivered, header = chain.blocks[height], host.headers[height]
        blocks.append(Block(height, header.hash.hex(), header.prev_hash.hex(),
                            chain.roots[height - 1].hex(), chain.roots[height].hex(),
                            delivered.view, header.timestamp_ms,
                            tuple(tx_ids.get(raw) or hashlib.sha256(raw).hexdigest()
                                  for raw in delivered.txs),
                            delivered.digest.hex(), header.tx_root.hex()))
    return blocks


def submissions_of(client: Any) -> dict[str, Submission]:
    """Every request the simulated clients sent, with the receipt they were given."""
    out = {}
    for tx_id, sent in client.submissions.items():
        ack = client.acked.get(tx_id)
        sub = Submission(tx_id, "liveness" if sent.phase == "liveness" else "load",
                         sender="", nonce=0, t_submit=sent.first_ms / 1000)
        if ack is not None:
            sub.outcome = "acknowledged" if ack.ok else "rejected"
            sub.height, sub.code, sub.t_done = ack.height, ack.code, ack.at_ms / 1000
            sub.attempts = [{"node": ack.host}]
        out[tx_id] = sub
    return out


def history_of(hosts: list[Host], client: Any, genesis_time_ms: int, genesis_supply_bpc: int,
               heal_ms: int, liveness_bound_ms: int, max_lagging: int) -> History:
    tx_ids = {sent.ctx.raw: tx_id for tx_id, sent in client.submissions.items()}
    return History(
        replicas=[record_of(h, genesis_time_ms, tx_ids) for h in hosts],
        submissions=submissions_of(client),
        liveness=Liveness(liveness_bound_ms / 1000, heal_ms / 1000, every_request_answered=True,
                          max_lagging=max_lagging),
        genesis_supply_bpc=genesis_supply_bpc)
