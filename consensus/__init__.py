"""Pure PBFT: the replica state machine, its messages and quorum rules.

`replica.Replica` takes inputs and returns actions (it does no I/O); `messages` and
`crypto` define what is signed and sent; `quorum` the counting; `normal`,
`viewchange`, `checkpoints` and `catchup` the protocol's phases; `state` the replica's
fields and a slot's phases, declared once; `events` the replica's inputs and actions.
"""

__all__ = ["catchup", "checkpoints", "crypto", "events", "messages", "normal", "quorum",
           "replica", "state", "viewchange"]
