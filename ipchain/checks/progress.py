"""The liveness invariants: once the faults are healed, the cluster must make progress
and come back together within the run's bound.

Both recorders end a run the same way: after the heal they wait (up to the bound) for
the honest replicas to agree on height, state root and view, then record them. So
"converged" and "one view" are judged on the final records, not on a flag the
recorder computed by itself.
"""

from __future__ import annotations

from ipchain.checks.history import History, ReplicaRecord, Submission, Violation


def first_commit_after_heal(history: History) -> Submission | None:
    """The first request sent after the heal that a block took in (the recovery)."""
    done = [s for s in history.submissions.values()
            if s.kind == "liveness" and s.committed and s.t_done is not None]
    return min(done, key=lambda s: (s.t_done, s.id), default=None)


def check_liveness(history: History) -> list[Violation]:
    """After the heal new requests commit within the bound, every request the client
    keeps retrying is answered, and the honest replicas converge on one height."""
    live = history.liveness
    if live.heal_t is None:
        return [Violation("liveness", "the run never reached its heal", (), (),
                          {"detail": live.detail})]
    return _recovery(history) + _unanswered(history) + _convergence(history)


def _recovery(history: History) -> list[Violation]:
    live = history.liveness
    deadline = live.heal_t + live.bound_s
    probes = [s for s in history.submissions.values() if s.kind == "liveness"]
    first = first_commit_after_heal(history)
    took = None if first is None else first.t_done - live.heal_t
    if took is None or took > live.bound_s:
        return [Violation(
            "liveness", "no transaction submitted after the heal committed within "
            f"{live.bound_s:g}s" if took is None else
            f"recovery took {took:.1f}s, over the {live.bound_s:g}s bound",
            tuple(history.honest), (), {"heal_t": round(live.heal_t, 3),
                                        "recovered_after_s": None if took is None
                                        else round(took, 3), "requests": len(probes),
                                        "detail": live.detail})]
    late = sorted(s.id for s in probes if not s.committed or s.t_done is None
                  or s.t_done > deadline)
    if live.every_request_answered and late:
        return [Violation("liveness", f"{len(late)} of {len(probes)} requests submitted after "
                          f"the heal not committed within {live.bound_s:g}s",
                          tuple(history.honest), (), {"first": late[0][:16]})]
    return []


def _unanswered(history: History) -> list[Violation]:
    if not history.liveness.every_request_answered:
        return []
    backlog = sorted(s.id for s in history.submissions.values()
                     if s.kind != "liveness" and not s.committed and s.outcome != "rejected")
    if not backlog:
        return []
    return [Violation("liveness", f"{len(backlog)} requests from the faulty phase never "
                      f"answered", tuple(history.honest), (), {"first": backlog[0][:16]})]


def _convergence(history: History) -> list[Violation]:
    """Every honest replica is up and at the top height (acknowledged heights included);
    up to `max_lagging` may be behind when some replica lies."""
    honest = history.honest_records()
    down = [r.index for r in honest if not r.up]
    top = max([r.height for r in honest if r.up]
              + [s.height for s in history.submissions.values() if s.height is not None],
              default=0)
    behind = [r for r in honest if r.up and r.height < top]
    if not down and len(behind) <= history.liveness.max_lagging:
        return []
    heights = {r.index: r.height if r.up else None for r in honest}
    return [Violation(
        "liveness", f"honest nodes did not converge on height {top} within "
        f"{history.liveness.bound_s:g}s of the heal"
        + (f" (unreachable: {down})" if down else ""),
        tuple(sorted(down + [r.index for r in behind])),
        tuple(sorted({r.height for r in behind} | {top})),
        {"heights": heights, "allowed_behind": history.liveness.max_lagging,
         "detail": history.liveness.detail})]


def check_view_convergence(history: History) -> list[Violation]:
    """After the heal and the settle bound, every honest replica that is up is in one view
    and not in a view change (a replica alone in a higher view's view change is out of
    consensus: the cluster runs on one fault less than it thinks)."""
    live = [r for r in history.honest_records() if r.up]
    views = {r.view for r in live}
    changing = [r.index for r in live if r.in_view_change]
    if len(views) <= 1 and not changing:
        return []
    state = {r.index: _view_of(r) for r in history.honest_records()}
    return [Violation(
        "view_convergence", f"honest nodes ended in views {sorted(views)}"
        + (f", nodes {changing} still in a view change" if changing else "")
        + f" {history.liveness.bound_s:g}s after the heal",
        tuple(sorted(r.index for r in live if len(views) > 1 or r.in_view_change)), (),
        {"views": state})]


def _view_of(record: ReplicaRecord) -> str:
    if not record.up:
        return "down"
    return f"view {record.view}" + (" (in view change)" if record.in_view_change else "")
