"""Client load for a fault run: signed transfers at a steady rate, every one recorded.

Each transaction goes to the next node in turn with `?wait=commit`, like a client that
wants its receipt. What the client was told is its outcome: acknowledged (a committed
receipt, naming a height), rejected (the node refused it, or its receipt failed), or
unknown (timeout, no answer). An unreachable node or a 5xx is retried with the SAME
signed transaction on the next node — retries are how real clients meet crashed
replicas, and they are exactly what could make a transaction commit twice if the
chain did not deduplicate by id, which the checker then verifies.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from typing import Any, Callable

from ipchain.sdk import client
from ipchain.cluster import layout
from ipchain.cluster.manager import Cluster
from ipchain.checks import Submission
from ipchain.faultrun.scenario import Load

NONCE_MARGIN = 200


class LoadGenerator:
    def __init__(self, cluster: Cluster, session: Any, profile: Load, rng: random.Random,
                 clock: Callable[[], float], planned_s: float) -> None:
        self.cluster = cluster
        self.session = session
        self.profile = profile
        self.rng = rng
        self.clock = clock
        self.orgs = [layout.client_org_id(i) for i in range(profile.clients)]
        self.keys = [cluster.client_key(org) for org in self.orgs]
        per_client = math.ceil(profile.rate_tps * planned_s / profile.clients) + NONCE_MARGIN
        self.nonces = [cluster.nonces.reserve(client.sender_hex(k), per_client) for k in self.keys]
        self.limits = [n + per_client for n in self.nonces]
        self.submissions: dict[str, Submission] = {}
        self.inflight = 0
        self.slipped = 0
        self._next = 0
        self._tasks: set[asyncio.Task] = set()
        self._slots = asyncio.Semaphore(profile.max_inflight)

    def make_tx(self) -> tuple[Any, str, int]:
        """The next transfer between two load clients, round-robin over senders."""
        c = self._next % len(self.orgs)
        self._next += 1
        if self.nonces[c] >= self.limits[c]:  # ran past the reservation: take more
            self.nonces[c] = self.cluster.nonces.reserve(client.sender_hex(self.keys[c]), 1000)
            self.limits[c] = self.nonces[c] + 1000
        nonce = self.nonces[c]
        self.nonces[c] += 1
        to = self.orgs[(c + 1 + self.rng.randrange(len(self.orgs) - 1)) % len(self.orgs)]
        tx = client.sign(self.keys[c], self.cluster.chain_id, nonce, "token.transfer",
                         {"to": to, "amount": 1 + self.rng.randrange(100)})
        return tx, self.orgs[c], nonce

    async def run(self, until_t: float) -> None:
        """Offer `rate_tps` until `until_t` on the run clock; the schedule slips (and is
        counted) when max_inflight submissions are outstanding."""
        if self.profile.rate_tps <= 0:
            return
        start = self.clock()
        k = 0
        while True:
            due = start + k / self.profile.rate_tps
            if due >= until_t:
                break
            await asyncio.sleep(max(0.0, due - self.clock()))
            if self._slots.locked():
                self.slipped += 1
            await self._slots.acquire()
            tx, sender, nonce = self.make_tx()
            task = asyncio.create_task(self._submit_released(tx, sender, nonce, k))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            k += 1

    async def _submit_released(self, tx: Any, sender: str, nonce: int, k: int) -> None:
        try:
            await self.submit(tx, sender, nonce, "load", first=k)
        finally:
            self._slots.release()

    async def drain(self) -> None:
        """Wait for every outstanding submission to get its answer (or time out)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def submit(self, tx: Any, sender: str, nonce: int, kind: str, first: int = 0,
                     urls: list[str] | None = None, timeout_ms: int | None = None,
                     retries: int | None = None) -> Submission:
        urls = urls or self.cluster.urls
        timeout_ms = timeout_ms or self.profile.commit_timeout_ms
        retries = self.profile.retries if retries is None else retries
        sub = Submission(tx.id, kind, sender, nonce, self.clock())
        self.submissions[tx.id] = sub
        self.inflight += 1
        try:
            for attempt in range(retries + 1):
                url = urls[(first + attempt) % len(urls)]
                if not await self._attempt(sub, url, tx, timeout_ms):
                    break
        finally:
            self.inflight -= 1
            sub.t_done = self.clock()
        return sub

    async def _attempt(self, sub: Submission, url: str, tx: Any, timeout_ms: int) -> bool:
        """One try; True when it is worth trying the next node."""
        started = self.clock()
        note: dict[str, Any] = {"node": url, "t": round(started, 3)}
        sub.attempts.append(note)
        try:
            answer = await client.submit(self.session, url, tx, wait=True, timeout_ms=timeout_ms,
                                         as_msgpack=True)
        except client.ApiError as exc:
            note.update(status=exc.status, code=exc.code)
            if exc.status == 504:
                sub.outcome, sub.code = "unknown", "Timeout"
                return False  # the node holds it pending; another node would too
            if 400 <= exc.status < 500:
                sub.outcome, sub.code = "rejected", exc.code
                return False
            sub.outcome, sub.code = "unknown", exc.code
            return True
        receipt = answer.get("receipt") or {}
        note.update(status=200, result=answer.get("status"))
        sub.height = receipt.get("height")
        if answer.get("status") == "committed":
            sub.outcome, sub.code = "acknowledged", None
        else:
            sub.outcome, sub.code = "rejected", receipt.get("code")
        return False

    async def resolve_unknown(self, urls: list[str]) -> None:
        """After the run, ask the nodes what became of each unknown outcome (the client's
        answer stays unknown; `final_status` says whether it committed after all)."""
        for sub in self.submissions.values():
            if sub.outcome != "unknown":
                continue
            statuses = []
            for url in urls:
                try:
                    answer = await client.get_tx(self.session, url, sub.id)
                except client.ApiError:
                    continue
                statuses.append(answer.get("status"))
                if answer.get("status") in client.FINAL_STATUSES:
                    break
            final = [s for s in statuses if s in client.FINAL_STATUSES]
            sub.final_status = final[0] if final else (
                "pending" if "pending" in statuses else "absent")


def wall_ms() -> int:
    return time.time_ns() // 1_000_000
