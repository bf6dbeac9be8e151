"""Run optimiser jobs as Ray tasks (``sniperbot optimize --ray [ADDRESS]``).

Ray is imported only here, and only when asked for (``pip install 'sniperbot[cluster]'``).
The workload (bars, strategy, grid) goes into Ray's object store once; each task
gets a reference to it and a batch of ``(point, window)`` jobs, so the bars are read
zero-copy by workers on the same machine. Workers on other machines need sniperbot
installed.

``address``: None or ``"auto"`` lets ``ray.init`` find a cluster (``RAY_ADDRESS``, or a
``ray start`` on this machine) and otherwise start a local one; ``"local"`` always
starts a new local cluster; ``host:port`` joins that cluster. Ray probes the cloud
metadata address at start, so its tests run in a loopback-only network namespace.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from sniperbot.optimize.evaluate import Job, Workload, run_jobs
from sniperbot.optimize.local import chunks

__all__ = ["RayUnavailable", "run_ray"]

Row = tuple[int, int, dict[str, Any]]


class RayUnavailable(RuntimeError):
    """Ray is not installed, or the cluster could not be started or joined."""


def _import_ray() -> Any:
    # Read by Ray at import: no usage statistics sent anywhere.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise RayUnavailable("--ray: Ray is not installed: pip install 'sniperbot[cluster]'") from None
    return ray


def run_ray(
    work: Workload,
    jobs: Sequence[Job],
    address: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[Row]:
    """Every job's row, computed by Ray tasks; leaves a cluster it started shut down again."""
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
        if address == "local":
            kwargs.update(address="local", include_dashboard=False)
        elif address not in (None, "auto"):
            kwargs["address"] = address
        try:
            ray.init(**kwargs)
        except Exception as e:
            raise RayUnavailable(f"--ray: cannot start or join Ray at {address or 'auto'!r}: {e}") from None
        started = True
    try:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        shared = ray.put(work)
        remote = ray.remote(num_cpus=1)(_remote_jobs)
        pending = [remote.remote(shared, batch) for batch in chunks(jobs, workers)]
        rows: list[Row] = []
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                batch = ray.get(ref)
                rows.extend(batch)
                if progress is not None:
                    progress(len(batch))
        return rows
    finally:
        if started:
            ray.shutdown()


def _remote_jobs(work: Workload, jobs: Sequence[Job]) -> list[Row]:
    """The task body (Ray resolves the workload reference to the object)."""
    return run_jobs(work, jobs)
