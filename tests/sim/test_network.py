"""The simulated network: seeded latency, loss, duplication, reordering, partitions."""

from __future__ import annotations

import random

from ipchain.sim.clock import EventQueue, SimClock
from ipchain.sim.network import LatencyModel, LinkCondition, Network, all_links, links_between


def make(n: int = 4, seed: int = 1, **latency) -> tuple[Network, EventQueue, list]:
    queue = EventQueue()
    got: list[tuple[int, int, int, object]] = []
    net = Network(n, random.Random(seed), queue,
                  lambda dst, src, packet: got.append((queue.now_us, src, dst, packet)),
                  LatencyModel(**latency))
    return net, queue, got


def run(queue: EventQueue) -> None:
    queue.run_until(10**12, lambda: False, 10**9)


def test_each_link_has_its_own_latency_within_the_model() -> None:
    net, queue, got = make(min_base_us=1_000, max_base_us=5_000, max_jitter_us=0)
    net.send(0, 1, ("x",))
    net.send(2, 3, ("y",))
    run(queue)
    assert {(src, dst) for _, src, dst, _ in got} == {(0, 1), (2, 3)}
    assert all(1_000 <= t <= 5_000 for t, *_ in got)
    assert got[0][0] == net.base_us[got[0][1]][got[0][2]]


def test_jitter_reorders_messages_on_one_link() -> None:
    net, queue, got = make(min_base_us=1_000, max_base_us=1_000, max_jitter_us=0)
    net.add_condition("storm", LinkCondition(all_links(4), extra_jitter_us=50_000))
    for i in range(50):
        net.send(0, 1, (i,))
    run(queue)
    order = [packet[0] for _, _, _, packet in got]
    assert sorted(order) == list(range(50)) and order != list(range(50))


def test_symmetric_partition_blocks_both_ways_and_only_across() -> None:
    net, queue, got = make()
    net.add_condition("p", LinkCondition(links_between([0, 1], [2, 3]), blocked=True))
    for src in range(4):
        for dst in range(4):
            if src != dst:
                net.send(src, dst, ("m",))
    run(queue)
    assert sorted((s, d) for _, s, d, _ in got) == [(0, 1), (1, 0), (2, 3), (3, 2)]
    assert net.stats["dropped_partition"] == 8


def test_one_way_partition_blocks_one_direction_only() -> None:
    net, queue, got = make()
    net.add_condition("out", LinkCondition(links_between([2], [0, 1, 3], both_ways=False), blocked=True))
    net.send(2, 0, ("lost",))
    net.send(0, 2, ("heard",))
    run(queue)
    assert [(s, d) for _, s, d, _ in got] == [(0, 2)]


def test_ending_one_partition_keeps_an_overlapping_one() -> None:
    net, queue, got = make()
    net.add_condition("a", LinkCondition(links_between([1], [0, 2, 3]), blocked=True))
    net.add_condition("b", LinkCondition(links_between([1], [0, 2, 3]), blocked=True))
    net.remove_condition("a")
    assert net.is_blocked(1, 0) and net.is_blocked(0, 1)
    net.remove_condition("b")
    assert not net.is_blocked(1, 0)


def test_loss_drops_about_its_rate_and_duplication_copies() -> None:
    net, queue, got = make()
    net.add_condition("loss", LinkCondition(((0, 1),), loss=0.5))
    net.add_condition("dup", LinkCondition(((2, 3),), duplicate=1.0))
    for _ in range(1_000):
        net.send(0, 1, ("a",))
    net.send(2, 3, ("b",))
    run(queue)
    arrived = sum(1 for _, s, _, _ in got if s == 0)
    assert 400 < arrived < 600
    assert sum(1 for _, s, _, _ in got if s == 2) == 2


def test_heal_clears_every_condition() -> None:
    net, queue, got = make()
    net.add_condition("p", LinkCondition(all_links(4), blocked=True))
    net.heal()
    net.send(0, 1, ("m",))
    run(queue)
    assert len(got) == 1


def test_same_seed_same_timings() -> None:
    def timings(seed: int) -> list:
        net, queue, got = make(seed=seed)
        net.add_condition("loss", LinkCondition(all_links(4), loss=0.3, duplicate=0.2))
        for i in range(200):
            net.send(i % 4, (i + 1) % 4, (i,))
        run(queue)
        return got
    assert timings(5) == timings(5)
    assert timings(5) != timings(6)


def test_each_host_sees_its_own_skewed_clock_in_ms() -> None:
    queue = EventQueue()
    clock = SimClock(queue, 1_000_000, [0, 7])
    queue.run_until(2_500, lambda: False, 10)
    assert (clock.now_ms(0), clock.now_ms(1), clock.sim_ms()) == (1_000_002, 1_000_009, 2)
