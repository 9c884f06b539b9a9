"""The invariants of a run, as pure functions of its recorded `History`.

One library for both tools: `ipchain sim` (ipchain/sim/run.py) and `ipchain faults run`
(ipchain/faultrun/runner.py) each record a `History` and call `run_checks`; a violation
is the same `Violation` in both, printed with `Violation.describe()`. Each check is
shown failing on planted histories (tests/checks/).

Safety — must hold under any fault of at most f replicas:
  agreement          no two honest replicas hold different blocks at one height, and
                     none contradicts its own earlier delivery
  certificates       every held block carries 2f+1 valid commits for exactly its batch
  chain_integrity    each honest chain is contiguous from 1 and links to its parents
  state_roots        equal state roots at every shared height and at the end
  exactly_once       every acknowledged tx is executed once, at the height and with the
                     outcome its receipt named, on every honest replica that got there
  no_fabrication     nothing executes that no client submitted
  conservation       BPC supply equals genesis and the sum of balances; none negative
Liveness — must hold within the bound after the heal:
  liveness           new requests commit; requests the client retries are answered;
                     honest replicas converge on one height (up to f behind if some
                     replica lies)
  view_convergence   every honest replica is in the same view and not in a view change
"""

from __future__ import annotations

from typing import Callable

from ipchain.checks.history import (Block, History, Liveness, Receipt, ReplicaRecord,
                                    Submission, Violation)
from ipchain.checks.progress import check_liveness, check_view_convergence
from ipchain.checks.safety import (check_agreement, check_certificates, check_chain_integrity,
                                   check_conservation, check_exactly_once, check_no_fabrication,
                                   check_state_roots)

CHECKS: dict[str, Callable[[History], list[Violation]]] = {
    "agreement": check_agreement,
    "certificates": check_certificates,
    "chain_integrity": check_chain_integrity,
    "state_roots": check_state_roots,
    "exactly_once": check_exactly_once,
    "no_fabrication": check_no_fabrication,
    "conservation": check_conservation,
    "liveness": check_liveness,
    "view_convergence": check_view_convergence,
}
SAFETY = ("agreement", "certificates", "chain_integrity", "state_roots", "exactly_once",
          "no_fabrication", "conservation")
LIVENESS = ("liveness", "view_convergence")


def run_checks(history: History, seed: int | None = None) -> tuple[list[Violation], dict[str, bool]]:
    """All violations (tagged with the seed when there is one), and per check whether it held."""
    violations: list[Violation] = []
    held: dict[str, bool] = {}
    for name, check in CHECKS.items():
        found = check(history)
        held[name] = not found
        violations.extend(found if seed is None else
                          [Violation(v.invariant, v.message, v.nodes, v.heights, v.evidence, seed)
                           for v in found])
    return violations, held


__all__ = ["Block", "CHECKS", "History", "LIVENESS", "Liveness", "Receipt", "ReplicaRecord",
           "SAFETY", "Submission", "Violation", "run_checks"]
