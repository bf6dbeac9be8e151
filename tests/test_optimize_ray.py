"""``optimize --ray``: the grid on a real local Ray cluster gives the local processes' ranking.

Ray sends traffic off the machine when it starts (it probes the cloud metadata
address and binds the external interface), so this file runs only inside a network
namespace whose sole interface is loopback, and fails anywhere else without
starting Ray. ``make test`` runs it there, with ``tests/test_ray.py``::

    unshare -n sh -c 'ip link set lo up && exec .venv/bin/pytest tests/test_ray.py tests/test_optimize_ray.py'

The main suite (plain ``pytest``) leaves this file out (``--ignore`` in pyproject).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sniperbot.data import OHLCV, write_csv
from sniperbot.optimize import optimize
from tests.conftest import sniperbot


def _interfaces() -> list[str]:
    """Network interfaces of this namespace (/proc/net/dev lists them all, up or down)."""
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    return sorted(line.split(":", 1)[0].strip() for line in lines if ":" in line)


@pytest.fixture(autouse=True, scope="module")
def _loopback_only() -> Iterator[None]:
    """Refuse to start Ray where it could reach the network."""
    interfaces = _interfaces()
    if interfaces != ["lo"]:
        pytest.fail(
            "tests/test_optimize_ray.py must run in a network namespace with only loopback "
            f"(found {interfaces}): Ray sends traffic off the machine when it starts. Run as root: "
            "unshare -n sh -c 'ip link set lo up && exec .venv/bin/pytest tests/test_optimize_ray.py' "
            "(make test does).",
            pytrace=False,
        )
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    yield


@pytest.fixture(scope="module")
def data() -> OHLCV:
    rng = np.random.default_rng(23)
    n = 4_000
    close = 500 * np.exp(np.cumsum(rng.normal(0.0, 0.003, n)))
    open_ = np.concatenate([[500.0], close[:-1]])
    high = np.maximum(open_, close) * 1.001
    low = np.minimum(open_, close) * 0.999
    times = 1_700_000_000 * 1_000_000_000 + np.arange(n) * 60_000_000_000
    return OHLCV(times, open_, high, low, close, np.ones(n), symbol="SOL/USDT", timeframe="1m")


def _strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in rows]


def test_ray_tasks_rank_the_grid_like_local_processes(data: OHLCV) -> None:
    grid = ["fast=4:12:4", "slow=20:40:10", "mode=long,long-short"]
    local = optimize(data, "sma_cross", grid, workers=2, walk_forward=2)
    on_ray = optimize(data, "sma_cross", grid, ray=True, ray_address="local", walk_forward=2)
    assert on_ray.backend == "ray"
    assert len(on_ray.rows) == 18
    assert _strip(on_ray.rows) == _strip(local.rows)
    assert on_ray.walk_forward == local.walk_forward
    import ray

    assert not ray.is_initialized()  # the cluster it started is shut down again


def test_cli_optimize_with_ray(data: OHLCV, tmp_path: Path) -> None:
    path = tmp_path / "SOLUSDT_1m.csv"
    write_csv(data, path)
    done = sniperbot(
        "optimize", "--data", str(path), "--strategy", "ema_cross", "--grid", "fast=5:10:5",
        "--grid", "slow=20:30:10", "--ray", "local", "--json", timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["backend"] == "ray" and out["evaluated"] == 4
    local = optimize(data, "ema_cross", ["fast=5:10:5", "slow=20:30:10"], workers=1)
    assert [r["params"] for r in out["results"]] == [r["params"] for r in local.rows]
