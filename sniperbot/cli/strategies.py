"""``sniperbot strategies`` (what strategies exist, with their parameters) and ``sniperbot new-strategy``."""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def add_strategies_parsers(sub: Any) -> None:
    """The ``strategies`` and ``new-strategy`` commands."""
    listing = sub.add_parser("strategies", help="the available strategies with their parameters")
    listing.add_argument(
        "--strategy",
        action="append",
        default=[],
        help="also describe this reference (module:Class, file.py:Class)",
    )
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    new = sub.add_parser(
        "new-strategy", help="write a documented strategy template that backtests as written"
    )
    new.add_argument("name", help="snake_case name, e.g. my_breakout (the file is NAME.py)")
    new.add_argument("--dir", default="strategies", help="where to write NAME.py (default: %(default)s)")


def describe(cls: Any, ref: str) -> dict[str, Any]:
    """One strategy as ``strategies --json`` prints it."""
    doc = inspect.getdoc(cls) or ""
    return {
        "name": cls.name or ref,
        "reference": ref,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "doc": doc.splitlines()[0] if doc else "",
        "vectorised": cls.has_vectorised(),
        "signals": list(getattr(cls, "signals", ())),
        "warmup_bars": cls.warmup_bars_for({}) if hasattr(cls, "warmup_bars_for") else None,
        "ordered": [list(pair) for pair in cls.ordered],
        "params": {
            key: {
                "type": spec.kind.__name__,
                "default": spec.default,
                "min": spec.min,
                "max": spec.max,
                "choices": list(spec.choices),
                "doc": spec.doc,
            }
            for key, spec in cls.params.items()
        },
    }


def run_strategies(args: argparse.Namespace) -> int:
    """List built-in strategies (and any ``--strategy`` reference) with parameters, defaults and ranges."""
    from sniperbot.strategies import STRATEGIES
    from sniperbot.strategies.loader import StrategyLoadError, load_strategy

    rows = [describe(cls, name) for name, cls in sorted(STRATEGIES.items())]
    for ref in args.strategy:
        try:
            rows.append(describe(load_strategy(ref), ref))
        except StrategyLoadError as e:
            print(f"sniperbot: error: --strategy: {e}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        fast = "vectorised" if row["vectorised"] else "per-bar"
        print(f"{row['reference']}  ({fast})  {row['doc']}")
        for key, p in row["params"].items():
            bounds = (
                "one of " + ", ".join(p["choices"])
                if p["choices"]
                else f"[{_bound(p['min'], '-inf')}, {_bound(p['max'], 'inf')}]"
            )
            print(f"    {key:<12} {p['type']:<5} default {p['default']!s:<10} {bounds:<22} {p['doc']}")
    return 0


def _bound(value: Any, unbounded: str) -> str:
    return unbounded if value is None else str(value)


def run_new_strategy(args: argparse.Namespace) -> int:
    """Write ``DIR/NAME.py`` from the template; never overwrite a file."""
    from sniperbot.strategies.template import TEMPLATE

    if not _NAME.match(args.name):
        print(
            f"sniperbot: error: name: {args.name!r} must be snake_case (a-z, 0-9, _; starting with a letter)",
            file=sys.stderr,
        )
        return 2
    directory = Path(args.dir)
    path = directory / f"{args.name}.py"
    if path.exists():
        print(f"sniperbot: error: {path} exists; not overwritten", file=sys.stderr)
        return 2
    class_name = "".join(part.capitalize() for part in args.name.split("_") if part)
    reference = f"{path}:{class_name}"
    directory.mkdir(parents=True, exist_ok=True)
    path.write_text(TEMPLATE.format(class_name=class_name, name=args.name, reference=reference))
    print(f'wrote {path}\nuse it as --strategy {reference}  (or strategy = "{reference}" in a config)')
    return 0
