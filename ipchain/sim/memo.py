"""What one seed's replicas would each compute alike, computed once per seed.

In the simulator every replica checks every message it receives and recomputes the
digest of every batch proposed to it: a broadcast reaches n-1 replicas, and each of them
asks the same pure question with the same arguments. The answers are remembered for the
run, so each is computed once:

- `SharedVerdicts` / `SharingKeyring`: a keyring's verdict on (signer, bytes, signature)
  is a pure function of the three and the public keys, which every replica of a run
  shares. Good verdicts are remembered; bad signatures never are, so each receiver still
  checks (and refuses) them itself.
- `BatchDigests`: `node.chain.digest_batch(timestamp_ms, txs)`, the Merkle-rooted digest
  of a pre-prepare, which the primary computes to propose and each backup to check.

Simulator only: a real node checks what arrives at it (node/offload.py keeps its own
memo of the signatures it verified). Nothing a replica decides can differ: only the
repeated work goes, and the outcome of every seed is unchanged.
"""

from __future__ import annotations

from typing import Callable

from consensus.crypto import Keyring


class SharedVerdicts:
    """(signer, signature) -> the signed bytes a keyring of this run found good."""

    def __init__(self) -> None:
        self.good: dict[tuple[int, bytes], bytes] = {}
        self.hits = 0


class SharingKeyring:
    """`inner` (a replica's own keyring) with the run's remembered good verdicts."""

    def __init__(self, inner: Keyring, verdicts: SharedVerdicts) -> None:
        self.inner = inner
        self.index = inner.index
        self.label = inner.label
        self.sign = inner.sign
        self._verdicts = verdicts
        self._good = verdicts.good

    def verify(self, signer: int, data: bytes, sig: bytes) -> bool:
        key = (signer, sig)
        if self._good.get(key) == data:  # the receivers share one bytes object: no copy
            self._verdicts.hits += 1
            return True
        if not self.inner.verify(signer, data, sig):
            return False
        self._good[key] = data
        return True


class BatchDigests:
    """`digest(timestamp_ms, txs)` remembered for the run (the batches of one seed)."""

    def __init__(self, digest: Callable[[int, tuple[bytes, ...]], bytes]) -> None:
        self._digest = digest
        self._known: dict[tuple[int, tuple[bytes, ...]], bytes] = {}

    def __call__(self, timestamp_ms: int, txs: tuple[bytes, ...]) -> bytes:
        key = (timestamp_ms, txs)
        found = self._known.get(key)
        if found is None:
            found = self._known[key] = self._digest(timestamp_ms, txs)
        return found
