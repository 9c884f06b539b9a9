"""View change (Castro & Liskov §4.4) — replaced in full by the fault-tolerance work.

Until then a replica only keeps the request timer so the host sees stalls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from consensus.messages import Signed

if TYPE_CHECKING:
    from consensus.replica import Replica


class ViewChanges:
    def __init__(self: "Replica") -> None:
        self.in_view_change = False

    def arm_request_timer(self: "Replica") -> None:
        self.set_timer("view", self.cfg.request_timeout_ms)

    def on_view_timer(self: "Replica") -> None:
        self.stats["request_timeouts"] += 1

    def suspect_primary(self: "Replica", reason: str) -> None:
        self.stats["suspected_primary"] += 1

    def on_view_change(self: "Replica", msg: Signed) -> None:
        self.stats["ignored_view_change"] += 1

    def on_new_view(self: "Replica", msg: Signed) -> None:
        self.stats["ignored_new_view"] += 1
