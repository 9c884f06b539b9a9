"""The bench's CPU figures: the verification it compares with, and the ratio's arithmetic."""

from __future__ import annotations

import dataclasses
import time

import nacl.signing
import pytest

from contracts.tx import sign_tx
from ipchain.workloads import bench
from ipchain.workloads.cpu import VerifyDuring, summarize_cpu, verify_cpu_us


def test_verify_cost_is_timed_on_the_nodes_own_check_of_a_real_transaction() -> None:
    key = nacl.signing.SigningKey(bytes(range(32)))
    tx = sign_tx(key, "bench", 7, "token.transfer", {"to": "client-001", "amount": 5})
    other = sign_tx(key, "bench", 8, "token.transfer", {"to": "client-002", "amount": 6})
    assert verify_cpu_us([tx, other], rounds=50, blocks=3) > 0
    forged = dataclasses.replace(tx, nonce=8, encoded=b"")  # same signature, other body
    with pytest.raises(ValueError, match="does not verify"):
        verify_cpu_us([other, forged], rounds=1, blocks=1)
    with pytest.raises(ValueError):
        verify_cpu_us([], rounds=1, blocks=1)


def test_ratio_uses_the_mean_of_the_costs_before_and_after_the_load() -> None:
    result = summarize_cpu([300.0, None, 200.0], 90.0, 110.0)
    assert result["cpu_us_per_tx_mean"] == 250.0  # a node without a figure is left out
    assert (result["verify_us_before"], result["verify_us_after"]) == (90.0, 110.0)
    assert result["verify_us"] == 100.0 and result["limit_ratio"] == 0.4
    assert summarize_cpu([None], 80.0)["limit_ratio"] is None
    alone = summarize_cpu([160.0], 80.0)  # no figure after the load: none is made up
    assert alone["verify_us_after"] is None and alone["limit_ratio"] == 0.5


def test_restarting_the_tally_forgets_the_warm_up_but_not_the_height() -> None:
    tally = bench.Tally(rejected=1, shed=2, errors=3, blocks=4, block_txs=5,
                        last_commit=6.0, final_height=7)
    tally.submitted_at["a"] = tally.committed_at["a"] = tally.proposed_at["a"] = 1.0
    tally.restart()
    assert tally == bench.Tally(final_height=7)


def test_verification_is_sampled_while_the_load_runs() -> None:
    key = nacl.signing.SigningKey(bytes(range(32)))
    txs = [sign_tx(key, "bench", n, "token.transfer", {"to": "client-001", "amount": 5})
           for n in range(4)]
    with VerifyDuring(txs, every_s=0.01, rounds=5) as during:
        deadline = time.monotonic() + 10
        while len(during.samples) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(during.samples) >= 3 and all(v > 0 for v in during.samples)
    summary = during.summary(1000.0)
    assert summary["verify_during_samples"] == len(during.samples)
    assert summary["limit_ratio_during"] == round(summary["verify_us_during"] / 1000.0, 3)
    assert VerifyDuring(txs).summary(None)["limit_ratio_during"] is None
