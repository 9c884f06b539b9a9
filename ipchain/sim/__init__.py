"""A deterministic simulator that drives the real replicas and contracts (TigerBeetle's VOPR).

One seed decides everything: link latencies, losses, the fault plan, the client load.
`run.run_seed(seed, SimConfig(...))` runs N real `consensus.replica.Replica`s, each
hosted with its own contract `State` (`host.Host`), over a simulated network and clock,
first with faults on (safety phase) and then healed (liveness phase), and hands the
recorded history to the checkers. A failing seed replays exactly from its number.

Modules: clock (event queue, simulated time), network (links, partitions, loss),
faults (the fault plan and its mixes), byzantine (faulty replicas' outbound lies),
workload (client keys, genesis, signed transfers, retrying client), host (one replica
and its executor), checkers (agreement, roots, exactly-once, liveness...), run, cli.
"""
