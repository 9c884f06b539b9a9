"""One seed's signature checks, shared by all its replicas.

In the simulator every replica checks every message it receives, and a broadcast
reaches n-1 of them: the same (signer, bytes, signature) is checked n-1 times with the
same answer (a keyring's verdict is a pure function of the three and the public keys,
which every replica of a run shares). `SharedVerdicts` remembers the good answers of
one run and `SharingKeyring` consults them before its own keyring, so each distinct
signature is computed once per seed instead of once per receiver. Bad signatures are
never remembered, so they are checked (and refused) by each receiver as before.

Simulator only: a real node checks what arrives at it (node/offload.py keeps its own
memo of what it verified). Nothing a replica decides can differ: only repeated work
goes.
"""

from __future__ import annotations

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
