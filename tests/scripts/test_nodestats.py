"""The bench's node watch (ipchain/workloads/nodestats.py): RSS slope and view-change counts."""

from __future__ import annotations

import asyncio
import os

from ipchain.workloads.nodestats import NodeWatch, proc_rss_mb, slope_per_min


def test_slope_is_in_units_per_minute_and_needs_two_distinct_times() -> None:
    assert slope_per_min([(0.0, 50.0), (30.0, 51.0), (60.0, 52.0)]) == 2.0
    assert slope_per_min([(0.0, 50.0), (600.0, 50.0)]) == 0.0
    assert slope_per_min([(5.0, 50.0)]) is None
    assert slope_per_min([(5.0, 50.0), (5.0, 60.0)]) is None


def test_rss_of_this_process_is_read_and_a_dead_pid_gives_none() -> None:
    mine = proc_rss_mb(os.getpid())
    assert mine is not None and mine > 1
    assert proc_rss_mb(None) is None and proc_rss_mb(2 ** 22 + 12345) is None


def test_view_changes_are_what_the_window_started_and_unreachable_nodes_give_none() -> None:
    answers = iter([{"view": 0, "in_view_change": False, "consensus": {"resent": 1}},
                    RuntimeError("down"),
                    {"view": 1, "in_view_change": False,
                     "consensus": {"view_changes_started": 1, "resent": 4,
                                   "received_Commit": 7}},
                    {"view": 1, "in_view_change": True, "consensus": {}}])

    async def fetch(i: int) -> dict:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    watch = NodeWatch([os.getpid(), None], fetch)
    asyncio.run(watch.mark())
    asyncio.run(watch.mark())
    summary = watch.summary()
    assert summary["view_changes_per_node"] == [1, None] and summary["view_changes"] == 1
    assert summary["views_end"] == [1, 1] and summary["in_view_change_end"] == [False, True]
    assert summary["consensus_msgs_resent"] == [3, None]
    assert summary["consensus_msgs_received"] == [7, None]
    assert summary["rss_mb_start"][0] > 1 and summary["rss_mb_start"][1] is None
