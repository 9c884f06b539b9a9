"""Issue 17 B2 on real processes: a replayed PRE-PREPARE with swapped transactions.

The primary's PRE-PREPAREs to node3 are dropped (an admin fault rule on node0), so node3
holds an open slot without the primary's proposal while 0-2 commit it — exactly when the
old code believed a forged copy: it blamed the primary for the digest mismatch and went
into a view change alone (posted to two such backups, it deposed the primary). We take the
real pre-prepare from the unauthenticated `GET /p2p/blocks`, swap its transactions, and
POST it to node3's `/p2p/messages`. Now nothing happens: no view change, no evidence;
node3 drops the forgery, fetches the committed block, and everyone stays in view 0.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import aiohttp
import msgpack

from consensus import messages as wire
from ipchain.sdk import client
from node.config import read_admin_token
from tests.cluster.test_primary_crash import statuses

DEADLINE_S = 60.0


async def until(predicate, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def scenario(cluster) -> None:
    token = read_admin_token(cluster.config_path(0))
    async with client.open_session() as session:
        async with session.post(f"{cluster.urls[0]}/admin/faults",
                                headers={"Authorization": f"Bearer {token}"},
                                json={"rules": [{"action": "drop", "kinds": ["PP"],
                                                 "peers": [3]}]}) as resp:
            assert resp.status < 300, await resp.text()
        key = cluster.client_key("client-000")
        nonce = cluster.nonces.reserve(client.sender_hex(key))
        tx = client.sign(key, cluster.chain_id, nonce, "token.transfer",
                         {"to": "north-university", "amount": 1})
        answer = await client.submit(session, cluster.urls[1], tx, wait=True, timeout_ms=20_000)
        assert answer["status"] == "committed"
        height = answer.get("height") or answer["receipt"]["height"]
        served: list = []

        async def block_served() -> bool:  # node1 answered the receipt, so it has the block
            async with session.get(f"{cluster.urls[1]}/p2p/blocks",
                                   params={"from": height, "to": height}) as resp:
                if resp.status == 200:
                    served[:] = msgpack.unpackb(await resp.read(), raw=False)["blocks"]
            return bool(served)
        await until(block_served, "GET /p2p/blocks serving the committed block")
        pp_bytes, _ = served[0]
        real = wire.decode(pp_bytes)
        forged = wire.Signed(dataclasses.replace(real.body, txs=(b"pay mallory",)),
                             real.sender, real.sig)
        for target in (3,):
            async with session.post(f"{cluster.urls[target]}/p2p/messages",
                                    data=msgpack.packb([wire.encode(forged)], use_bin_type=True),
                                    headers={"Content-Type": "application/msgpack"}) as resp:
                assert resp.status == 202

        async def caught_up() -> bool:
            return all(s["height"] >= height for s in await statuses(session, cluster, [0, 1, 2, 3]))
        await until(caught_up, "node3 fetching the block the forgery claimed to be")
        await asyncio.sleep(3.0)  # a request timeout's worth for a wrong view change to show
        final = await statuses(session, cluster, [0, 1, 2, 3])
        assert [s["view"] for s in final] == [0, 0, 0, 0], final
        assert not any(s["in_view_change"] for s in final), final
        assert all(s["evidence"] == 0 for s in final), final
        # The forgery did reach the check it targets (not ignored as already settled).
        assert final[3]["consensus"].get("dropped_preprepare_txs_mismatch") == 1, final[3]


def test_b2_replayed_preprepare_with_swapped_txs_deposes_nobody(start_cluster) -> None:
    cluster, _ = start_cluster(n=4, clients=2)
    asyncio.run(scenario(cluster))
