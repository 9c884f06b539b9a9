"""What one seed's replicas would each compute alike, computed once per seed.

In the simulator every replica checks every message it receives: a broadcast reaches
n-1 replicas, and each of them asks the same pure question with the same arguments.
`SharedVerdicts` / `SharingKeyring` remember the answers for the run, so each is
computed once: a keyring's verdict on (signer, bytes, signature) is a pure function of
the three and the public keys, which every replica of a run shares. Good verdicts are
remembered (a signature a keyring makes is one from the start); bad signatures never
are, so each receiver still checks (and refuses) them itself.

Batch digests are shared through the replicas' one `node.chain.BatchHashes` (a digest
check and the executor both read a batch's tx ids and root from it; ipchain/sim/run.py),
and executed blocks through ipchain/sim/execshare.py.

Simulator only: a real node checks what arrives at it (node/offload.py keeps its own
memo of the signatures it verified). Nothing a replica decides can differ: only the
repeated work goes, and the outcome of every seed is unchanged.
"""

from __future__ import annotations

from consensus.crypto import Keyring


class SharedVerdicts:
    """(signer, signature) -> the signed bytes a keyring of this run found good."""

    def __init__(self) -> None:
        self.good: dict[tuple[int, bytes], bytes] = {}


class SharingKeyring:
    """`inner` (a replica's own keyring) with the run's remembered good verdicts."""

    def __init__(self, inner: Keyring, verdicts: SharedVerdicts) -> None:
        self.inner = inner
        self.index = inner.index
        self.label = inner.label
        self._sign = inner.sign
        self._verify = inner.verify
        self._good = verdicts.good

    def sign(self, data: bytes) -> bytes:
        """A signature this keyring just made over `data` is good by construction: its
        verdict is remembered at once, so the first receiver need not compute it."""
        sig = self._sign(data)
        self._good[(self.index, sig)] = data
        return sig

    def verify(self, signer: int, data: bytes, sig: bytes) -> bool:
        key = (signer, sig)
        if self._good.get(key) == data:  # the receivers share one bytes object: no copy
            return True
        if not self._verify(signer, data, sig):
            return False
        self._good[key] = data
        return True

