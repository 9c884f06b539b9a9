"""A deterministic simulator that drives the real replicas and contracts (TigerBeetle's VOPR).

One seed decides everything: link latencies, losses, the fault plan, the client load.
`run.run_seed(seed, SimConfig(...))` runs N real `consensus.replica.Replica`s, each
hosted with its own copy of the chain and contract state (`host.Host`), over a
simulated network and clock, first with faults on (safety phase) and then healed
(liveness phase), and judges the recorded history with the one checker library,
`ipchain.checks` (shared with `ipchain faults run`). A failing seed replays exactly
from its number (`ipchain sim --seed N`, scripts/sim.py).

Modules: clock (event queue, simulated time), network (links, partitions, loss),
faults (the fault plan and its mixes; the Byzantine behaviours themselves are
node/byzantine.py, the same classes the live node runs), workload (client keys,
genesis, signed transfers, retrying client), host (one replica and its executor),
record (a finished run as an `ipchain.checks.History`), run (one seed, many seeds).
"""
