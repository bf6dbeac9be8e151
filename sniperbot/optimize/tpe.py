"""Bayesian search (TPE, Optuna) over the space a grid spec defines (``optimize --search tpe``).

``optimize_tpe(ohlcv, "sma_cross", ["fast=5:50:5", "slow=60:240:20"], trials=100, seed=0)``
backtests at most ``trials`` distinct points chosen by Optuna's TPE sampler instead of all of
them, and returns the same :class:`~sniperbot.optimize.search.OptimizeResult` as the grid
(rows best first, the same metrics). Optuna is imported only here
(``pip install 'sniperbot[research]'``).

Decisions (the issue leaves them open):

* **Space.** Each ``--grid`` axis keeps the grid's values: an evenly spaced integer range is an
  ``IntDistribution(start, last, step)``, an evenly spaced float range an ordered integer index
  over its values (a stepped float distribution without float drift: 0.1 + 0.2 is never
  suggested as 0.30000000000000004), an explicit list, a text or a boolean parameter is
  categorical, a single value is fixed. So TPE and the grid search the very same points and
  their bests can be compared.
* **A trial is one distinct point backtested.** Points the strategy refuses (fast >= slow) or a
  ``--constraint`` refuses are told to the sampler as pruned (it learns to avoid them) and do not
  count; a point suggested again is told its cached score, does not count either, and the next
  suggestion is a random point not seen yet (seeded): TPE on a small discrete space keeps
  proposing its favourite, and the budget should buy new points. The search stops early when
  every point of the space has been seen, or after ``50 x trials`` suggestions (a space almost
  entirely refused).
* **Workers: ask/tell over processes, in synchronous batches.** Backtests are CPU-bound, so they
  run on forked worker processes (the bars shared copy-on-write, as :mod:`.local` does for the
  grid; one pool kept for the whole search, where ``run_local`` would start one per round), not
  threads (the GIL would serialise the backtests, and Optuna's shared storage buys nothing here).
  Each round asks ``workers`` trials, backtests them in parallel and tells the results in trial
  order. The sampler never sees completion order, so a run is reproducible for a given seed *and*
  worker count (1 worker: plain sequential TPE). ``constant_liar`` keeps a batch's trials apart.
  The cost is an idle worker while the slowest backtest of a round finishes.
* **Seed.** Default 0: the same command gives the same trials and result.
* **Walk-forward is honest.** With ``walk_forward=K`` each fold runs its own TPE search (same
  trials, seed + fold) on the in-sample window only; its winner and every point it tried are then
  backtested on the next window (the out-of-sample score and rank). Searching on all the data and
  scoring windows afterwards would let the out-of-sample bars steer which points get tried.
* Missing scores (e.g. Sharpe of a point that never trades) rank last, as in the grid; they are
  trials (the backtest ran) told to the sampler as pruned.
* Ray (``--ray``) runs grid searches only: a TPE round is a handful of backtests, too small to be
  worth a cluster's scheduling.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import multiprocessing
import random
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sniperbot.backtest.config import BacktestConfig
from sniperbot.backtest.engine import resolve_strategy
from sniperbot.data.ohlcv import OHLCV
from sniperbot.optimize import walkforward
from sniperbot.optimize.evaluate import FULL, Workload, run_jobs
from sniperbot.optimize.grid import Grid, parse_constraint, parse_grid_spec
from sniperbot.optimize.search import METRICS, OptimizeResult, sort_key
from sniperbot.strategies import Strategy

__all__ = ["DEFAULT_SEED", "DEFAULT_TRIALS", "OptunaUnavailable", "optimize_tpe", "search_space"]

DEFAULT_TRIALS = 100
DEFAULT_SEED = 0
# Suggestions per wanted trial before giving up on a space that is almost all refused.
_ASK_FACTOR = 50
# Spaces up to this size are enumerated to find an unseen point when random draws keep missing.
_ENUMERATE = 200_000

Row = dict[str, Any]


class OptunaUnavailable(RuntimeError):
    """Optuna is not installed."""


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise OptunaUnavailable(
            "--search tpe: Optuna is not installed: pip install 'sniperbot[research]'"
        ) from None
    # Optuna logs every trial at INFO: our output is the ranking, not its chatter.
    optuna.logging.set_verbosity(logging.WARNING)
    return optuna


@dataclasses.dataclass(frozen=True)
class Axis:
    """One searched parameter: its grid values and the Optuna distribution over them."""

    name: str
    values: list[Any]
    kind: str  # "int", "float", "categorical" or "fixed"
    step: float = 0.0

    def distribution(self, optuna: Any) -> Any:
        """The Optuna distribution (None for a fixed value)."""
        d = optuna.distributions
        if self.kind == "int":
            return d.IntDistribution(int(self.values[0]), int(self.values[-1]), step=int(self.step))
        if self.kind == "float":
            return d.IntDistribution(0, len(self.values) - 1)
        if self.kind == "categorical":
            return d.CategoricalDistribution(list(self.values))
        return None

    def value(self, suggested: Any) -> Any:
        """The grid value for a suggestion (a float axis suggests the index of its value)."""
        if self.kind == "fixed":
            return self.values[0]
        if self.kind == "float":
            return self.values[int(suggested)]
        return suggested

    def internal(self, value: Any) -> Any:
        """The suggestion that stands for grid value ``value`` (inverse of :meth:`value`)."""
        return self.values.index(value) if self.kind == "float" else value


def _evenly_spaced(values: Sequence[Any]) -> float | None:
    """The step of an increasing, evenly spaced numeric list of 2+ values, else None."""
    if len(values) < 2 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return None
    step = values[1] - values[0]
    if step <= 0:
        return None
    for a, b in itertools.pairwise(values):
        if not math.isclose(b - a, step, rel_tol=1e-9, abs_tol=1e-12):
            return None
    return step


def search_space(cls: type[Strategy], specs: Sequence[str]) -> list[Axis]:
    """The axes of ``--grid`` specs, typed by the strategy's parameters (ValueError as the grid's)."""
    from sniperbot.optimize.grid import expand_grid

    # One home for the spec rules: the grid validates names, types and ranges. Its points
    # are not needed, only its typed axes, so the check runs on a one-value-per-axis grid.
    axes: list[Axis] = []
    seen: set[str] = set()
    for spec in specs:
        name, raw = parse_grid_spec(spec)
        param = cls.params.get(name)
        if param is None:
            expand_grid(cls, [spec])  # raises naming the spec and the known parameters
        if name in seen:
            raise ValueError(f"--grid: {name!r} given twice")
        seen.add(name)
        try:
            values = [param.parse(name, v) if isinstance(v, str) else param.check(name, v) for v in raw]
        except ValueError as e:
            raise ValueError(f"--grid {spec!r}: {e}") from None
        step = _evenly_spaced(values) if ":" in spec.partition("=")[2] else None
        if len(values) == 1:
            axes.append(Axis(name, values, "fixed"))
        elif step is not None and param.kind is int:
            axes.append(Axis(name, values, "int", step))
        elif step is not None:
            axes.append(Axis(name, values, "float", step))
        else:
            axes.append(Axis(name, values, "categorical"))
    if not axes:
        raise ValueError("--grid: give at least one NAME=START:STOP:STEP")
    return axes


# -- worker processes --------------------------------------------------------------------

_WORK: Workload | None = None


def _backtest(job: tuple[dict[str, Any], int]) -> Row:
    """Backtest ``params`` on one window of the worker's workload (-1: all bars)."""
    assert _WORK is not None, "worker started without its workload"
    params, window = job
    return run_jobs(dataclasses.replace(_WORK, points=[params]), [(0, window)])[0][2]


class _Runner:
    """Backtests batches of ``(params, window)`` jobs, in this process or on forked workers."""

    def __init__(self, work: Workload, workers: int) -> None:
        global _WORK
        _WORK = work
        self.pool: Any = None
        if workers > 1:
            methods = multiprocessing.get_all_start_methods()
            method = "fork" if "fork" in methods else "spawn"
            context = multiprocessing.get_context(method)
            self.pool = context.Pool(workers, initializer=_set_work, initargs=(work,))

    def run(self, jobs: list[tuple[dict[str, Any], int]]) -> list[Row]:
        """Rows in job order."""
        if self.pool is None or len(jobs) <= 1:
            return [_backtest(job) for job in jobs]
        return self.pool.map(_backtest, jobs, chunksize=1)

    def close(self) -> None:
        """Stop the workers."""
        global _WORK
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
        _WORK = None


def _set_work(work: Workload) -> None:
    global _WORK
    _WORK = work


# -- the search ----------------------------------------------------------------------------


@dataclasses.dataclass
class _Search:
    """What one TPE search saw: the rows of the points it backtested, in trial order."""

    rows: list[Row]
    refused_invalid: int
    refused_constraint: int
    suggestions: int


def _search(
    optuna: Any,
    cls: type[Strategy],
    axes: list[Axis],
    fixed: Mapping[str, Any],
    constraints: list[Any],
    runner: _Runner,
    window: int,
    metric: str,
    trials: int,
    seed: int,
    batch: int,
    progress: Callable[[int], None] | None,
) -> _Search:
    """One TPE study over ``axes`` scored on ``window``: up to ``trials`` distinct points."""
    higher = METRICS[metric]
    with warnings.catch_warnings():  # constant_liar is "experimental" since Optuna 2.8; pinned range
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    study = optuna.create_study(direction="maximize" if higher else "minimize", sampler=sampler)
    dists = {a.name: a.distribution(optuna) for a in axes if a.kind != "fixed"}
    space = math.prod(len(a.values) for a in axes)
    cache: dict[tuple[Any, ...], float | None] = {}  # point -> score; refused points too (None)
    rows: list[Row] = []
    invalid = rejected = asked = 0
    pruned = optuna.trial.TrialState.PRUNED

    chance = random.Random(seed)
    pending: set[tuple[Any, ...]] = set()  # the points of the round being asked

    def explore() -> None:
        """Queue a random point not seen yet (after a repeated suggestion)."""
        seen = cache.keys() | pending
        combo: tuple[Any, ...] | None = None
        for _ in range(50):
            draw = tuple(chance.choice(a.values) for a in axes)
            if draw not in seen:
                combo = draw
                break
        if combo is None and space <= _ENUMERATE:
            unseen = [c for c in itertools.product(*(a.values for a in axes)) if c not in seen]
            combo = chance.choice(unseen) if unseen else None
        if combo is not None:
            study.enqueue_trial(
                {a.name: a.internal(v) for a, v in zip(axes, combo, strict=True) if a.kind != "fixed"}
            )

    def tell(trial: Any, score: float | None) -> None:
        if score is None or (isinstance(score, float) and not math.isfinite(score)):
            study.tell(trial, state=pruned)
        else:
            study.tell(trial, score)

    while len(rows) < trials and len(cache) < space and asked < _ASK_FACTOR * max(trials, 1):
        jobs: list[tuple[Any, dict[str, Any], tuple[Any, ...]]] = []
        repeats: list[tuple[Any, tuple[Any, ...]]] = []
        pending.clear()
        want = min(batch, trials - len(rows))
        while len(jobs) < want and asked < _ASK_FACTOR * max(trials, 1):
            trial = study.ask(dists)
            asked += 1
            point = {a.name: a.value(trial.params.get(a.name)) for a in axes}
            key = tuple(point[a.name] for a in axes)
            if key in pending:
                repeats.append((trial, key))
                explore()
                continue
            if key in cache:
                tell(trial, cache[key])
                explore()
                continue
            candidate = {**fixed, **point}
            try:
                values = cls.validate_params(candidate)
            except ValueError:
                invalid += 1
                cache[key] = None
                study.tell(trial, state=pruned)
                continue
            if not all(c.holds(values) for c in constraints):
                rejected += 1
                cache[key] = None
                study.tell(trial, state=pruned)
                continue
            pending.add(key)
            jobs.append((trial, candidate, key))
            if len(cache) + len(pending) >= space:
                break
        if not jobs:
            for trial, key in repeats:
                tell(trial, cache.get(key))
            continue
        results = runner.run([(candidate, window) for _, candidate, _ in jobs])
        for (trial, candidate, key), row in zip(jobs, results, strict=True):
            score = row.get(metric)
            cache[key] = score
            tell(trial, score)
            rows.append({"params": candidate, **row, "trial": len(rows)})
        for trial, key in repeats:
            tell(trial, cache.get(key))
        if progress is not None:
            progress(len(jobs))
    return _Search(rows, invalid, rejected, asked)


def optimize_tpe(
    ohlcv: OHLCV,
    strategy: str | type[Strategy],
    grid: Sequence[str],
    *,
    trials: int = DEFAULT_TRIALS,
    seed: int = DEFAULT_SEED,
    fixed: Mapping[str, Any] | None = None,
    constraints: Sequence[str] = (),
    config: BacktestConfig | None = None,
    metric: str = "sharpe",
    workers: int | None = None,
    walk_forward: int = 0,
    path: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> OptimizeResult:
    """TPE over the grid's space: the best ``metric`` in ``trials`` backtests (ValueError on bad input).

    ``progress(done, total)`` is called as trials finish.
    """
    import os

    started = time.perf_counter()
    cls = resolve_strategy(strategy)
    if metric not in METRICS:
        raise ValueError(f"--metric: unknown metric {metric!r} (known: {', '.join(METRICS)})")
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if trials < 1:
        raise ValueError(f"--trials must be >= 1, got {trials}")
    axes = search_space(cls, grid)
    fixed = dict(fixed or {})
    overlap = set(fixed) & {a.name for a in axes}
    if overlap:
        raise ValueError(f"--param {sorted(overlap)[0]!r} is also on the grid")
    parsed = [parse_constraint(c) for c in constraints]
    for constraint in parsed:
        missing = constraint.names() - set(cls.params)
        if missing:
            raise ValueError(
                f"--constraint {constraint.text!r}: {cls.name} has no parameter {sorted(missing)[0]!r}"
            )
    optuna = _import_optuna()
    bounds = walkforward.windows(len(ohlcv), walk_forward) if walk_forward else []
    work = Workload(ohlcv, cls, [], bounds, config or BacktestConfig(), path)
    used = max(1, min(workers or os.cpu_count() or 1, trials))
    total = trials * (1 + 2 * len(bounds[1:]))
    done = 0

    def step(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(min(done, total), total)

    if progress is not None:
        progress(0, total)
    runner = _Runner(work, used)
    try:
        main = _search(optuna, cls, axes, fixed, parsed, runner, FULL, metric, trials, seed, used, step)
        folds = [
            _fold(optuna, cls, axes, fixed, parsed, runner, bounds, f, metric, trials, seed, used, step)
            for f in range(1, len(bounds))
        ]
    finally:
        runner.close()
    key = sort_key(metric)
    rows = sorted(main.rows, key=lambda r: key(r.get(metric)))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    searched = Grid(
        {a.name: a.values for a in axes},
        [r["params"] for r in main.rows],
        main.refused_invalid,
        main.refused_constraint,
    )
    return OptimizeResult(
        strategy=cls.name or cls.__name__,
        metric=metric,
        grid=searched,
        rows=rows,
        elapsed_s=time.perf_counter() - started,
        backend="local",
        workers=used,
        bars=len(ohlcv),
        walk_forward=folds,
        search={"search": "tpe", "trials": trials, "seed": seed, "suggestions": main.suggestions},
    )


def _fold(
    optuna: Any,
    cls: type[Strategy],
    axes: list[Axis],
    fixed: Mapping[str, Any],
    constraints: list[Any],
    runner: _Runner,
    bounds: list[tuple[int, int]],
    fold: int,
    metric: str,
    trials: int,
    seed: int,
    batch: int,
    step: Callable[[int], None],
) -> dict[str, Any]:
    """Fold ``fold``: TPE on window ``fold - 1`` only; its points then scored on window ``fold``."""
    found = _search(
        optuna, cls, axes, fixed, constraints, runner, fold - 1, metric, trials, seed + fold, batch, step
    )
    key = sort_key(metric)
    out: dict[str, Any] = {
        "fold": fold,
        "in_sample_bars": list(bounds[fold - 1]),
        "out_of_sample_bars": list(bounds[fold]),
        "trials": len(found.rows),
    }
    if not found.rows:
        return {**out, "params": {}, "in_sample": None, "out_of_sample": None, "out_of_sample_rank": None}
    oos_rows = runner.run([(row["params"], fold) for row in found.rows])
    step(len(oos_rows))
    in_sample = [row.get(metric) for row in found.rows]
    out_sample = [row.get(metric) for row in oos_rows]
    best = min(range(len(found.rows)), key=lambda p: key(in_sample[p]))
    order = sorted(range(len(found.rows)), key=lambda p: key(out_sample[p]))
    return {
        **out,
        "params": found.rows[best]["params"],
        "in_sample": in_sample[best],
        "out_of_sample": out_sample[best],
        "out_of_sample_rank": order.index(best) + 1,
    }
