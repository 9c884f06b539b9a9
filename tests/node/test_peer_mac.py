"""The MAC envelope on a validator's POSTs to a peer: the pair's key is the same on both
sides and only theirs, and a request is refused when anything about it changes."""

from __future__ import annotations

from pathlib import Path

import nacl.signing
import pytest

from node.peer_auth import (H_MAC, H_SIG, PeerAuthError, mac_request, pair_keys,
                            peer_link_signers, sign_request, verify_envelope)
from tests.node.conftest import LocalCluster

CHAIN = "ipchain-test"
KEYS = [nacl.signing.SigningKey(bytes([i + 1]) * 32) for i in range(4)]
PUBLIC = [bytes(k.verify_key) for k in KEYS]
NOW_MS = 1_800_000_000_000
BODY = b"\x91\xc4\x03abc"


def keys_of(index: int) -> dict[int, bytes]:
    return pair_keys(KEYS[index], index, PUBLIC, CHAIN)


def check(receiver: int, headers: dict[str, str], body: bytes = BODY, path: str = "/p2p/txs",
          now_ms: int = NOW_MS) -> tuple[int, bytes]:
    return verify_envelope(headers, CHAIN, PUBLIC, "POST", path, len(body), now_ms=now_ms,
                           pair_key=keys_of(receiver).get)


def test_each_pair_shares_one_key_that_no_other_pair_has() -> None:
    keys = {i: keys_of(i) for i in range(4)}
    assert all(i not in keys[i] for i in range(4))  # no key with itself
    for i in range(4):
        for j in range(4):
            if i != j:
                assert keys[i][j] == keys[j][i]
    pairs = {keys[i][j] for i in range(4) for j in range(4) if i < j}
    assert len(pairs) == 6
    assert pair_keys(KEYS[0], 0, PUBLIC, "other-chain")[1] != keys[0][1]


def test_a_peers_mac_is_accepted_and_names_the_sender() -> None:
    headers = mac_request(keys_of(2)[1], CHAIN, 2, "POST", "/p2p/txs", BODY, now_ms=NOW_MS)
    assert H_MAC in headers and H_SIG not in headers
    index, body_hash = check(1, headers)
    assert index == 2 and len(body_hash) == 32


@pytest.mark.parametrize("change", ["sender", "path", "length", "stamp", "mac", "stale",
                                    "third party", "own index", "reflected"])
def test_a_mac_envelope_that_changed_in_any_way_is_refused(change: str) -> None:
    headers = mac_request(keys_of(2)[1], CHAIN, 2, "POST", "/p2p/txs", BODY, now_ms=NOW_MS)
    receiver, body, path, now_ms = 1, BODY, "/p2p/txs", NOW_MS
    if change == "sender":
        headers["X-Ipchain-Peer"] = "3"
    elif change == "path":
        path = "/p2p/messages"
    elif change == "length":
        body = BODY + b"\x00"
    elif change == "stamp":
        headers["X-Ipchain-Timestamp-Ms"] = str(NOW_MS + 1)
    elif change == "mac":
        headers[H_MAC] = headers[H_MAC][:-2] + ("00" if headers[H_MAC][-2:] != "00" else "01")
    elif change == "stale":
        now_ms = NOW_MS + 61_000
    elif change == "third party":  # node 3 keyed with its own pair key to 1, claiming 2
        headers = mac_request(keys_of(3)[1], CHAIN, 2, "POST", "/p2p/txs", BODY, now_ms=NOW_MS)
    elif change == "own index":  # the receiver's own index: it holds no key with itself
        headers = mac_request(keys_of(2)[1], CHAIN, 1, "POST", "/p2p/txs", BODY, now_ms=NOW_MS)
    elif change == "reflected":  # 1's request to 2, sent back to 1
        headers = mac_request(keys_of(1)[2], CHAIN, 1, "POST", "/p2p/txs", BODY, now_ms=NOW_MS)
    with pytest.raises(PeerAuthError):
        check(receiver, headers, body, path, now_ms)


def test_signed_envelopes_still_verify_beside_macs() -> None:
    headers = sign_request(KEYS[3], CHAIN, 3, "POST", "/p2p/txs", BODY, now_ms=NOW_MS)
    assert check(0, headers)[0] == 3
    headers[H_SIG] = headers[H_SIG][:-2] + "00"
    with pytest.raises(PeerAuthError):
        check(0, headers)


def test_each_nodes_link_signer_is_accepted_by_that_peer_only(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, 4, {}, {})
    cfgs = [cluster.config(i) for i in range(4)]
    signers = peer_link_signers(cfgs[0])
    assert sorted(signers) == [1, 2, 3]
    headers = signers[2]("POST", "/p2p/messages", BODY)
    accepted = []
    for cfg in cfgs[1:]:
        keys = pair_keys(cfg.signing_key, cfg.index, cfg.validator_keys, cfg.chain_id)
        try:
            verify_envelope(headers, cfg.chain_id, cfg.validator_keys, "POST", "/p2p/messages",
                            len(BODY), pair_key=keys.get)
            accepted.append(cfg.index)
        except PeerAuthError:
            pass
    assert accepted == [2]
