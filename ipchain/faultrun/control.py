"""Enacting a scenario's events on a live cluster: process faults through the cluster
manager (kill -9, graceful stop, start, restart, SIGSTOP/SIGCONT) and network and
Byzantine faults through each node's admin API (`/admin/faults`).

The controller keeps a model of what is installed where, because a node's fault rules
live in its memory: when a crashed node comes back, the partition, rules and Byzantine
mode that still apply to it are installed again, so a restart never silently heals a
fault the schedule meant to keep. Every fault opens a `Window` (what, who, from, to)
that the report and the timeline picture show.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import aiohttp

from ipchain.sdk import client
from node.config import read_admin_token
from ipchain.cluster.manager import Cluster, ClusterError
from ipchain.faultrun.scenario import Event

READY_DEADLINE_S = 20.0
ADMIN_TIMEOUT_S = 3.0


@dataclass
class Window:
    label: str
    kind: str
    """process, network or byzantine (the picture shades each differently)."""
    nodes: tuple[int, ...]
    start: float
    end: float | None = None
    event: int | None = None


@dataclass
class Applied:
    """What happened to one scheduled event."""

    index: int
    label: str
    at_s: float
    started_t: float | None = None
    nodes: list[int] = field(default_factory=list)
    error: str | None = None


class Controller:
    def __init__(self, cluster: Cluster, session: Any, clock: Callable[[], float], seed: int,
                 log: Callable[[str], None]) -> None:
        self.cluster = cluster
        self.session = session
        self.clock = clock
        self.seed = seed
        self.log = log
        self.rng = random.Random(seed)
        self.tokens = {i: read_admin_token(cluster.config_path(i)) for i in range(cluster.n)}
        self.down: set[int] = set()
        self.paused: set[int] = set()
        self.partition: list[list[int]] | None = None
        self.rules: dict[int, dict[int, dict[str, Any]]] = {}
        """node -> event index -> rules request installed for that event."""
        self.rule_ids: dict[tuple[int, int], list[int]] = {}
        self.byzantine: dict[int, dict[str, Any]] = {}
        self.windows: list[Window] = []
        self.applied: list[Applied] = []
        self.undos: list[asyncio.Task] = []
        self._reinstalls: set[asyncio.Task] = set()
        """Held so that a pending reinstall is neither garbage-collected nor orphaned."""
        self.ever_byzantine: set[int] = set()
        self._process_lock = asyncio.Lock()

    # -- admin API ------------------------------------------------------------------------
    async def admin(self, i: int, method: str, path: str = "",
                    body: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """One admin call; a node that is down or paused is reported, not fatal."""
        url = f"{self.cluster.urls[i]}/admin/faults{path}"
        headers = {"Authorization": f"Bearer {self.tokens[i]}"}
        try:
            _, answer = await client.request(self.session, method, url, json=body,
                                             headers=headers, timeout=_timeout(ADMIN_TIMEOUT_S))
            return answer
        except client.ApiError as exc:
            self.log(f"  admin {method} on node {i} failed: {exc}")
            return None

    async def install(self, i: int, request: dict[str, Any]) -> list[int]:
        answer = await self.admin(i, "POST", body=request)
        return list(answer.get("installed", [])) if answer else []

    async def diagnostics(self) -> dict[str, Any]:
        """Each node's fault counters, replica stats and runtime counters (for the report)."""
        found = {}
        for i in range(self.cluster.n):
            answer = await self.admin(i, "GET")
            if answer is not None:
                found[str(i)] = {k: answer.get(k) for k in
                                 ("counters", "replica_stats", "runtime_counters")}
        return found

    # -- selecting nodes --------------------------------------------------------------------
    async def primary(self) -> int | None:
        """The primary most reachable nodes name (None if nobody answers)."""
        votes: dict[int, int] = {}
        for url in self.cluster.urls:
            try:
                status = await client.request(self.session, "GET", f"{url}/v1/status",
                                              timeout=_timeout(1.0))
                votes[status[1]["primary"]] = votes.get(status[1]["primary"], 0) + 1
            except (client.ApiError, KeyError, TypeError):
                continue
        return max(votes, key=lambda p: (votes[p], -p)) if votes else None

    async def resolve(self, selectors: tuple[int | str, ...]) -> list[int]:
        chosen: list[int] = []
        for sel in selectors:
            if sel == "all":
                chosen.extend(range(self.cluster.n))
            elif sel in ("primary", "backup"):
                primary = await self.primary()
                if sel == "primary" and primary is not None:
                    chosen.append(primary)
                elif sel == "backup":
                    backups = [i for i in range(self.cluster.n)
                               if i != primary and i not in self.down | self.paused]
                    chosen.append(self.rng.choice(backups or list(range(self.cluster.n))))
            else:
                chosen.append(int(sel))
        return sorted(set(chosen))

    # -- events ---------------------------------------------------------------------------
    async def apply(self, event: Event) -> None:
        record = Applied(event.index, event.label(), event.at_s, self.clock())
        self.applied.append(record)
        try:
            record.nodes = await self.resolve(event.nodes)
            self.log(f"[{self.clock():6.1f}s] {event.label()}"
                     + (f" -> nodes {record.nodes}" if event.nodes else "")
                     + (f" for {event.for_s:g}s" if event.for_s is not None else ""))
            undo = await self._enact(event, record.nodes)
        except (ClusterError, OSError) as exc:
            record.error = str(exc)
            self.log(f"  event {event.index} failed: {exc}")
            return
        if undo is not None and event.for_s is not None:
            self.undos.append(asyncio.create_task(self._later(event.for_s, undo)))

    async def _later(self, delay_s: float, undo: Callable[[], Any]) -> None:
        await asyncio.sleep(delay_s)
        try:
            await undo()
        except (ClusterError, OSError) as exc:
            self.log(f"  undo failed: {exc}")

    async def _enact(self, event: Event, nodes: list[int]) -> Callable[[], Any] | None:
        action = event.action
        if action in ("kill", "stop"):
            sig = signal.SIGKILL if action == "kill" else signal.SIGTERM
            window = self._open(f"{action} {_names(nodes)}", "process", nodes, event)
            for i in nodes:
                await self.take_down(i, sig)
            return lambda: self._restore(nodes, window)
        if action == "pause":
            window = self._open(f"pause {_names(nodes)}", "process", nodes, event)
            for i in nodes:
                await self.pause(i)
            return lambda: self._restore(nodes, window)
        if action in ("start", "resume"):
            await self._restore(nodes, None)
            return None
        if action == "restart":
            window = self._open(f"restart {_names(nodes)}", "process", nodes, event)
            sig = signal.SIGKILL if event.signal == "KILL" else signal.SIGTERM
            for i in nodes:
                await self.take_down(i, sig)
                await asyncio.sleep(event.down_s)
                await self.bring_up(i)
            await self._wait_answering(nodes)
            self._close(window)
            return None
        if action in ("rules", "partition", "byzantine"):
            return await self._network(event, nodes)
        if action == "clear":
            for i in nodes:
                await self._clear_node(i)
            return None
        await self.heal()
        return None

    async def _network(self, event: Event, nodes: list[int]) -> Callable[[], Any]:
        if event.action == "partition":
            groups = [list(g) for g in event.groups]
            self.partition = groups
            window = self._open(event.label(), "network", tuple(range(self.cluster.n)), event)
            for i in range(self.cluster.n):
                await self.install(i, {"partition": groups})
            return lambda: self._end_partition(window)
        if event.action == "rules":
            window = self._open(event.label(), "network", nodes, event)
            for i in nodes:
                request = {"seed": self.seed * 1000 + event.index * 10 + i,
                           "rules": [dict(r) for r in event.rules]}
                self.rules.setdefault(i, {})[event.index] = request
                self.rule_ids[(i, event.index)] = await self.install(i, request)
            return lambda: self._end_rules(nodes, event.index, window)
        spec = dict(event.byzantine)
        window = self._open(event.label(), "byzantine", nodes, event)
        for i in nodes:
            if spec.get("mode") == "none":
                self.byzantine.pop(i, None)
            else:
                self.byzantine[i] = spec
                self.ever_byzantine.add(i)
            await self.install(i, {"byzantine": spec, "seed": self.seed * 1000 + i})
        return lambda: self._end_byzantine(nodes, window)

    async def _end_partition(self, window: Window) -> None:
        self.partition = None
        for i in range(self.cluster.n):
            await self.install(i, {"partition": []})
        self._close(window, "partition healed")

    async def _end_rules(self, nodes: list[int], index: int, window: Window) -> None:
        for i in nodes:
            self.rules.get(i, {}).pop(index, None)
            for rule_id in self.rule_ids.pop((i, index), []):
                await self.admin(i, "DELETE", f"/{rule_id}")
        self._close(window, "rules removed")

    async def _end_byzantine(self, nodes: list[int], window: Window) -> None:
        for i in nodes:
            self.byzantine.pop(i, None)
            await self.install(i, {"byzantine": {"mode": "none"}})
        self._close(window, "Byzantine mode off")

    async def _clear_node(self, i: int) -> None:
        self.rules.pop(i, None)
        self.byzantine.pop(i, None)
        await self.admin(i, "DELETE")

    # -- processes --------------------------------------------------------------------------
    async def take_down(self, i: int, sig: int) -> None:
        async with self._process_lock:
            if i in self.paused:  # a stopped process cannot act on SIGTERM
                await asyncio.to_thread(self.cluster.kill, i, signal.SIGCONT)
                self.paused.discard(i)
            if i in self.down or not self.cluster.is_running(i):
                self.down.add(i)
                return
            await asyncio.to_thread(self.cluster.kill, i, sig)
            self.down.add(i)

    async def pause(self, i: int) -> None:
        async with self._process_lock:
            if i in self.down or i in self.paused:
                return
            await asyncio.to_thread(self.cluster.kill, i, signal.SIGSTOP)
            self.paused.add(i)

    async def bring_up(self, i: int) -> None:
        async with self._process_lock:
            if i in self.paused:
                await asyncio.to_thread(self.cluster.kill, i, signal.SIGCONT)
                self.paused.discard(i)
                return
            if self.cluster.is_running(i):
                self.down.discard(i)
                return
            await asyncio.to_thread(self.cluster.start, [i])
            self.down.discard(i)
        task = asyncio.create_task(self._reinstall(i))
        self._reinstalls.add(task)
        task.add_done_callback(self._reinstalls.discard)

    async def _restore(self, nodes: list[int], window: Window | None) -> None:
        for i in nodes:
            await self.bring_up(i)
        if window is not None:
            self._close(window)

    async def _wait_answering(self, nodes: list[int]) -> bool:
        deadline = time.monotonic() + READY_DEADLINE_S
        pending = set(nodes)
        while pending and time.monotonic() < deadline:
            for i in sorted(pending):
                try:
                    await client.request(self.session, "GET", f"{self.cluster.urls[i]}/v1/status",
                                         timeout=_timeout(1.0))
                    pending.discard(i)
                except client.ApiError:
                    pass
            if pending:
                await asyncio.sleep(0.1)
        return not pending

    async def _reinstall(self, i: int) -> None:
        """A restarted node forgot its faults: give it back those still in force."""
        if not await self._wait_answering([i]):
            self.log(f"  node {i} did not answer after its start")
            return
        if self.partition is not None:
            await self.install(i, {"partition": self.partition})
        for index, request in sorted(self.rules.get(i, {}).items()):
            self.rule_ids[(i, index)] = await self.install(i, request)
        if i in self.byzantine:
            await self.install(i, {"byzantine": self.byzantine[i]})

    # -- heal -------------------------------------------------------------------------------
    async def heal(self) -> None:
        """Everything back to normal: processes resumed and started, all faults cleared."""
        for task in self.undos:
            task.cancel()
        self.undos.clear()
        self.partition, self.rules, self.rule_ids, self.byzantine = None, {}, {}, {}
        for i in sorted(self.paused | self.down):
            await self.bring_up(i)
        await self._wait_answering(list(range(self.cluster.n)))
        for i in range(self.cluster.n):
            await self.admin(i, "DELETE")
        now = self.clock()
        for window in self.windows:
            if window.end is None:
                window.end = now

    async def release(self) -> None:
        """Before stopping the cluster: no process may stay SIGSTOPped, and nothing may
        still be installing faults on a node that is about to stop."""
        for task in list(self._reinstalls):
            task.cancel()
        await asyncio.gather(*self._reinstalls, return_exceptions=True)
        for i in sorted(self.paused):
            try:
                await asyncio.to_thread(self.cluster.kill, i, signal.SIGCONT)
            except ClusterError:
                pass
        self.paused.clear()

    # -- windows ----------------------------------------------------------------------------
    def _open(self, label: str, kind: str, nodes: Any, event: Event) -> Window:
        window = Window(label, kind, tuple(nodes), self.clock(), None, event.index)
        self.windows.append(window)
        return window

    def _close(self, window: Window, what: str = "") -> None:
        if window.end is None:
            window.end = self.clock()
            self.log(f"[{window.end:6.1f}s] end of {window.label}" + (f" ({what})" if what else ""))


def _names(nodes: list[int]) -> str:
    return ",".join(f"node{i}" for i in nodes)


def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds)
