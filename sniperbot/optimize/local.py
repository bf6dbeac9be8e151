"""Run optimiser jobs on local processes, the data shared by fork (copy-on-write), not copied.

The parent loads the bars once; the worker processes are forked with the workload
already in memory, so nothing big is pickled: a task is a list of ``(point, window)``
pairs and a result is a list of small dicts. Where fork is not available the
workload is sent once to each worker as it starts.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from typing import Any

from sniperbot.optimize.evaluate import Job, Workload, run_jobs

__all__ = ["run_local"]

Row = tuple[int, int, dict[str, Any]]

# The workload of this worker process (set before fork, or by the spawn initializer).
_WORK: Workload | None = None


def _init(work: Workload) -> None:
    global _WORK
    _WORK = work


def _task(jobs: Sequence[Job]) -> list[Row]:
    assert _WORK is not None, "worker started without its workload"
    return run_jobs(_WORK, jobs)


def chunks(jobs: Sequence[Job], workers: int) -> list[list[Job]]:
    """Jobs in about four chunks per worker (for balance: some points trade far more)."""
    count = max(1, min(len(jobs), workers * 4))
    size = -(-len(jobs) // count)
    return [list(jobs[i : i + size]) for i in range(0, len(jobs), size)]


def run_local(
    work: Workload,
    jobs: Sequence[Job],
    workers: int,
    progress: Callable[[int], None] | None = None,
) -> list[Row]:
    """Every job's row, on ``workers`` processes (1: in this process); ``progress(n)`` after each batch."""
    if workers <= 1 or len(jobs) <= 1:
        rows: list[Row] = []
        for batch in chunks(jobs, 4):
            rows.extend(run_jobs(work, batch))
            if progress is not None:
                progress(len(batch))
        return rows
    global _WORK
    methods = multiprocessing.get_all_start_methods()
    rows = []
    if "fork" in methods:
        context = multiprocessing.get_context("fork")
        _WORK = work
        pool = context.Pool(workers)
    else:  # pragma: no cover - not Linux
        context = multiprocessing.get_context("spawn")
        pool = context.Pool(workers, initializer=_init, initargs=(work,))
    try:
        for batch in pool.imap_unordered(_task, chunks(jobs, workers)):
            rows.extend(batch)
            if progress is not None:
                progress(len(batch))
    finally:
        pool.terminate()
        pool.join()
        _WORK = None
    return rows
