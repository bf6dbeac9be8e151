"""Parameter grids: ``k=start:stop:step`` ranges, explicit lists, constraints, expansion.

A grid spec names one parameter and its values:

* ``fast=5:50:5`` — from 5 to 50 **inclusive** in steps of 5 (10 values); ints when
  start, stop and step are all integers, floats otherwise (``k=1.5:2.5:0.25``);
* ``mode=long,long-short`` or ``fast=5,8,13`` — an explicit list;
* ``fast=10`` — a single value.

Values are typed by the strategy's declared parameter (``Param.parse``), so
``fast=5.5`` is refused for an integer parameter. Points the strategy's own
``validate_params`` refuses (fast >= slow, out of range) are skipped and counted, as
are points failing an explicit constraint such as ``fast<slow`` or ``slow>=2*fast``
(``A op B`` where each side is a parameter name, a number, or ``number*name``).
"""

from __future__ import annotations

import itertools
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sniperbot.strategies import Strategy

__all__ = ["Constraint", "Grid", "expand_grid", "parse_constraint", "parse_grid_spec"]

# Grids beyond this are a typo (fast=1:100000:1), not a search anyone waits for.
MAX_POINTS = 1_000_000


def _number(text: str) -> int | float:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{text!r} is not a finite number") from None
        return value


def _range(name: str, start_text: str, stop_text: str, step_text: str) -> list[int | float]:
    """Inclusive ``start..stop`` by ``step``; ValueError naming the parameter."""
    try:
        start, stop, step = _number(start_text), _number(stop_text), _number(step_text)
    except ValueError:
        raise ValueError(f"--grid {name}: start, stop and step must be numbers") from None
    if step <= 0:
        raise ValueError(f"--grid {name}: step must be > 0")
    if stop < start:
        raise ValueError(f"--grid {name}: stop ({stop}) is below start ({start})")
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > MAX_POINTS:
        raise ValueError(f"--grid {name}: {count} values is too many")
    if all(isinstance(v, int) for v in (start, stop, step)):
        return list(range(int(start), int(stop) + 1, int(step)))
    # Computed from the start, not accumulated, so 0.1 steps do not drift.
    return [round(start + i * step, 12) for i in range(count)]


def parse_grid_spec(spec: str) -> tuple[str, list[Any]]:
    """``"fast=5:50:5"`` -> ``("fast", [5, 10, ..., 50])``; ValueError naming the spec."""
    name, sep, text = spec.partition("=")
    name = name.strip()
    if not sep or not name or not text.strip():
        raise ValueError(f"--grid {spec!r}: expected NAME=START:STOP:STEP, NAME=V1,V2,... or NAME=V")
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise ValueError(f"--grid {spec!r}: a range is START:STOP:STEP")
        return name, _range(name, *parts)
    values = [part.strip() for part in text.split(",")]
    if any(not v for v in values):
        raise ValueError(f"--grid {spec!r}: empty value in the list")
    return name, values


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_TERM = re.compile(
    r"^\s*(?:(?P<coef>[-+]?[0-9.]+(?:e[-+]?[0-9]+)?)\s*\*\s*)?(?P<name>[A-Za-z_]\w*)\s*$|^\s*(?P<num>[-+]?[0-9.]+(?:e[-+]?[0-9]+)?)\s*$"
)


@dataclass(frozen=True)
class Constraint:
    """``left op right`` over parameters, e.g. ``fast<slow`` or ``slow>=2*fast``."""

    text: str
    left: tuple[float, str | None]
    op: str
    right: tuple[float, str | None]

    def names(self) -> set[str]:
        """Parameter names the constraint reads."""
        return {n for _, n in (self.left, self.right) if n is not None}

    def holds(self, params: Mapping[str, Any]) -> bool:
        """Whether ``params`` satisfy it."""

        def value(term: tuple[float, str | None]) -> Any:
            coef, name = term
            return coef if name is None else coef * params[name]

        return _OPS[self.op](value(self.left), value(self.right))


def parse_constraint(text: str) -> Constraint:
    """Parse ``"fast<slow"``; ValueError naming the text."""
    for op in ("<=", ">=", "==", "!=", "<", ">"):
        if op in text:
            left_text, _, right_text = text.partition(op)
            terms = []
            for side in (left_text, right_text):
                match = _TERM.match(side)
                if match is None:
                    raise ValueError(
                        f"--constraint {text!r}: {side.strip()!r} is not NAME, NUMBER or NUMBER*NAME"
                    )
                if match.group("num") is not None:
                    terms.append((float(match.group("num")), None))
                else:
                    coef = match.group("coef")
                    terms.append((float(coef) if coef else 1.0, match.group("name")))
            return Constraint(text, terms[0], op, terms[1])
    raise ValueError(f"--constraint {text!r}: expected A<B (or <=, >, >=, ==, !=)")


@dataclass(frozen=True)
class Grid:
    """The points of a grid that a strategy accepts, and how many were skipped."""

    axes: dict[str, list[Any]]
    points: list[dict[str, Any]]
    skipped_invalid: int
    skipped_constraint: int

    @property
    def size(self) -> int:
        """All combinations, skipped ones included."""
        return math.prod(len(v) for v in self.axes.values()) if self.axes else 0


def expand_grid(
    cls: type[Strategy],
    specs: Sequence[str],
    fixed: Mapping[str, Any] | None = None,
    constraints: Sequence[str] = (),
) -> Grid:
    """Every combination of ``specs`` (with ``fixed`` parameters) the strategy and constraints accept."""
    axes: dict[str, list[Any]] = {}
    for spec in specs:
        name, raw = parse_grid_spec(spec)
        param = cls.params.get(name)
        if param is None:
            known = ", ".join(cls.params) or "none"
            raise ValueError(f"--grid {spec!r}: {cls.name} has no parameter {name!r} (known: {known})")
        if name in axes:
            raise ValueError(f"--grid: {name!r} given twice")
        try:
            axes[name] = [param.parse(name, v) if isinstance(v, str) else param.check(name, v) for v in raw]
        except ValueError as e:
            raise ValueError(f"--grid {spec!r}: {e}") from None
    if not axes:
        raise ValueError("--grid: give at least one NAME=START:STOP:STEP")
    fixed = dict(fixed or {})
    overlap = set(fixed) & set(axes)
    if overlap:
        raise ValueError(f"--param {sorted(overlap)[0]!r} is also on the grid")
    parsed = [parse_constraint(c) for c in constraints]
    for constraint in parsed:
        missing = constraint.names() - set(cls.params)
        if missing:
            raise ValueError(
                f"--constraint {constraint.text!r}: {cls.name} has no parameter {sorted(missing)[0]!r}"
            )
    size = math.prod(len(v) for v in axes.values())
    if size > MAX_POINTS:
        raise ValueError(f"--grid: {size:,} combinations is too many (at most {MAX_POINTS:,})")
    points: list[dict[str, Any]] = []
    invalid = rejected = 0
    names = list(axes)
    for combo in itertools.product(*axes.values()):
        candidate = {**fixed, **dict(zip(names, combo, strict=True))}
        try:
            values = cls.validate_params(candidate)
        except ValueError:
            invalid += 1
            continue
        if not all(c.holds(values) for c in parsed):
            rejected += 1
            continue
        points.append(candidate)
    return Grid(axes, points, invalid, rejected)
