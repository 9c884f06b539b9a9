"""Many seeds as tasks: in this process, on an embedded Dask cluster, or on a remote one.

A sweep of a million fault schedules is ~100 core-hours; it must spread over machines,
survive being stopped, and say how it is doing while it runs. So each seed is one task
(`run_one`, a pure function of (seed, config): the same fingerprint on any machine),
each result is appended to a JSON-lines file the moment it arrives (nothing is held in
memory but the summary's counters), `resume` skips seeds the file already has, and a
progress bar on stderr counts seeds and violations as they come in.

Dask (`dask.distributed`) does the distribution: `scheduler="tcp://HOST:PORT"` uses an
existing cluster (`dask scheduler` + `dask worker` processes); `scheduler=None` starts a
local one of `jobs` single-threaded worker processes; `jobs=0` runs in this process.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator

from ipchain.sim.run import SimConfig, run_seed


def run_one(seed: int, cfg: SimConfig) -> dict[str, Any]:
    """One seed's outcome as a JSON-able line, with the CPU it cost where it ran (its
    garbage collection included)."""
    _freeze_startup_objects()
    cpu_started = time.process_time()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        result = run_seed(seed, cfg)
        value = result.to_value()
        if not result.ok:
            value["describe"] = result.describe()
        del result
    finally:
        if was_enabled:
            gc.enable()
    gc.collect()
    value["cpu_s"] = round(time.process_time() - cpu_started, 4)
    return value


_startup_frozen = False


def _freeze_startup_objects() -> None:
    """Once per process, before its first seed: what exists by then (modules, classes,
    tables) lives as long as the process, so the collector need never scan it again.

    A seed's objects form cycles (hosts, engines and replicas point at each other), so
    its garbage waits for a full collection; left to the thresholds, those ran a few
    times a seed over every object of the process, about 8 % of a seed's CPU. A seed is
    the natural unit instead: automatic collection is off while it runs (memory grows
    by at most one seed's cyclic garbage) and one collection after it frees what it
    left, scanning only objects made since the freeze. No outcome depends on either.
    (`run_seed` now breaks those cycles itself, `Simulation.release`, so reference
    counting frees a seed and this collection is a safety net that finds ~nothing.)
    """
    global _startup_frozen
    if not _startup_frozen:
        _startup_frozen = True
        gc.collect()
        gc.freeze()


def done_seeds(path: Path) -> set[int]:
    """Seeds already recorded in a results file (a torn last line is ignored)."""
    if not path.exists():
        return set()
    seen: set[int] = set()
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                seen.add(int(json.loads(line)["seed"]))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short when a previous sweep was killed
    return seen


@dataclass
class Tally:
    """What the summary needs, accumulated line by line."""

    seeds: int = 0
    cpu_s: float = 0.0
    heights: list[int] = field(default_factory=list)
    violations: list[dict[str, Any]] = field(default_factory=list)
    failing_seeds: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def add(self, value: dict[str, Any]) -> None:
        self.seeds += 1
        self.cpu_s += value.get("cpu_s", 0.0)
        self.heights.append(value["stats"]["height_max"])
        self.violations += value["violations"]
        if not value["ok"]:
            self.failing_seeds.append(value["seed"])
            self.failures.append(value.get("describe", f"seed {value['seed']}"))


def _in_process(seeds: list[int], cfg: SimConfig) -> Iterator[dict[str, Any]]:
    for seed in seeds:
        yield run_one(seed, cfg)


def _on_dask(seeds: list[int], cfg: SimConfig, scheduler: str | None,
             jobs: int) -> Iterator[dict[str, Any]]:
    from dask.distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                               dashboard_address=None, host="127.0.0.1")
    try:
        with Client(scheduler or cluster) as client:
            futures = client.map(run_one, seeds, cfg=cfg, pure=False)
            for future in as_completed(futures):
                yield future.result()
                future.release()  # its result is on disk now; the cluster may drop it
    finally:
        if cluster is not None:
            cluster.close()


def sweep(cfg: SimConfig, seeds: Iterable[int], out: Path | None = None, resume: bool = False,
          scheduler: str | None = None, jobs: int = 0,
          progress: Callable[[Tally, int], None] | None = None) -> dict[str, Any]:
    """Run `seeds`, append one JSON line per seed to `out`, return the summary.

    With `resume`, seeds already in `out` are skipped and count in the summary as read
    back from the file, so an interrupted sweep continues where it stopped."""
    every = list(seeds)
    wanted = list(every)
    tally = Tally()
    skipped = 0
    if resume and out is not None and out.exists():
        done = done_seeds(out)
        for value in _read_lines(out, set(wanted)):
            tally.add(value)
        skipped = len(done & set(wanted))
        wanted = [s for s in wanted if s not in done]
    started = time.perf_counter()
    if scheduler is None and jobs == 0:
        results = _in_process(wanted, cfg)
    else:
        results = _on_dask(wanted, cfg, scheduler, max(jobs, 1))
    sink = _open_for_append(out) if out is not None else None
    total = len(wanted) + skipped
    try:
        for value in results:
            if sink is not None:
                sink.write(json.dumps(value, sort_keys=True) + "\n")
                sink.flush()
            tally.add(value)
            if progress is not None:
                progress(tally, total)
    finally:
        if sink is not None:
            sink.close()
    summary = summarize(cfg, tally, time.perf_counter() - started, skipped,
                        backend=scheduler or ("local-dask" if jobs else "in-process"), jobs=jobs)
    return {**summary, "seed_first": min(every, default=None), "seed_last": max(every, default=None)}


def _open_for_append(path: Path) -> IO[str]:
    """Append after the last whole line: a line torn by a killed sweep stays alone."""
    torn = path.exists() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    sink = path.open("a", encoding="utf-8")
    if torn:
        sink.write("\n")
    return sink


def _read_lines(path: Path, wanted: set[int]) -> Iterator[dict[str, Any]]:
    seen: set[int] = set()
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                value = json.loads(line)
            except ValueError:
                continue
            seed = value.get("seed")
            if seed in wanted and seed not in seen:
                seen.add(seed)
                yield value


def summarize(cfg: SimConfig, tally: Tally, wall_s: float, skipped: int, backend: str,
              jobs: int) -> dict[str, Any]:
    ran = tally.seeds - skipped
    heights = tally.heights
    return {
        "seeds": tally.seeds, "ran": ran, "resumed": skipped, **cfg.summary(),
        "backend": backend, "jobs": jobs,
        "violations": tally.violations, "failing_seeds": sorted(tally.failing_seeds),
        "seeds_per_min": round(ran / wall_s * 60, 1) if wall_s and ran else None,
        "cpu_seeds_per_min": round(tally.seeds / tally.cpu_s * 60, 1) if tally.cpu_s else None,
        "wall_s": round(wall_s, 2),
        "blocks_per_seed_min": min(heights, default=0),
        "blocks_per_seed_avg": round(sum(heights) / len(heights), 1) if heights else 0,
        "failures": tally.failures,
    }


def progress_bar() -> tuple[Callable[[Tally, int], None], Callable[[], None]]:
    """A rich progress bar on stderr: (update, close). Quiet when stderr is not a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(file=sys.stderr)
    bar = Progress(TextColumn("seeds"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("violations {task.fields[bad]}"), TimeRemainingColumn(),
                   console=console, transient=False, disable=not console.is_terminal)
    task = bar.add_task("sweep", total=None, bad=0)
    bar.start()

    def update(tally: Tally, total: int) -> None:
        bar.update(task, completed=tally.seeds, total=total, bad=len(tally.failing_seeds))

    return update, bar.stop
