"""The ``sniperbot`` command: run a node, talk to its admin socket, read its journal.

Exit codes: 0 success; 1 a command failed (for example no node answered);
2 bad usage or configuration (nothing was started); 70 the root supervisor
gave up.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_RUN_DIR = ".sniperbot"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sniperbot", description="A 24/7 crypto trading node of supervised actors."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a supervised trading node")
    run.add_argument("--config", help="TOML config file (default: the embedded default)")
    run.add_argument("--run-dir", default=DEFAULT_RUN_DIR, help="sockets and journal (default: %(default)s)")
    run.add_argument("--duration", type=_positive_float, help="stop after this many seconds")
    run.add_argument("--seed", type=int, help="seed of the simulated market (overrides market.seed)")

    admin = sub.add_parser("admin", help="query a running node through its admin socket")
    admin.add_argument("--run-dir", default=DEFAULT_RUN_DIR)
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    for name, help_text in (("tree", "the supervision tree"), ("status", "positions, P&L, counts")):
        cmd = admin_sub.add_parser(name, help=help_text)
        cmd.add_argument("--json", action="store_true", help="print JSON")

    journal = sub.add_parser("journal", help="read a node's journal (running or stopped)")
    journal.add_argument("--run-dir", default=DEFAULT_RUN_DIR)
    journal_sub = journal.add_subparsers(dest="journal_command", required=True)
    fills = journal_sub.add_parser("fills", help="every journaled fill, in journal order")
    fills.add_argument("--json", action="store_true", help="print a JSON array")
    return parser


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, received {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, received {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command == "admin":
        return _admin(args)
    return _journal(args)


def _fail(message: str, code: int) -> int:
    print(f"sniperbot: error: {message}", file=sys.stderr)
    return code


def _run(args: argparse.Namespace) -> int:
    from sniperbot.config import ConfigError, load_config, with_overrides
    from sniperbot.logs import configure_logging
    from sniperbot.rundir import RunDirError

    try:
        config = load_config(args.config)
        if args.seed is not None:
            config = with_overrides(config, seed=args.seed)
    except ConfigError as e:
        return _fail(str(e), 2)
    configure_logging(config.node.log_level)
    from sniperbot.node import Node

    node = Node(config, args.run_dir)
    on_idle = None
    view = None
    if sys.stdout.isatty():
        from sniperbot.cli.live_view import LiveView

        view = LiveView()
        on_idle = view.refresh
    else:
        configure_logging("INFO" if config.node.log_level == "WARNING" else config.node.log_level)
    try:
        if view is not None:
            with view:
                code = node.run(args.duration, on_idle)
        else:
            code = node.run(args.duration, on_idle)
    except RunDirError as e:
        return _fail(str(e), 2)
    if view is not None:
        view.print_summary(node)
    return code


def _admin(args: argparse.Namespace) -> int:
    from sniperbot.admin import AdminUnavailable, admin_request

    try:
        reply = admin_request(args.run_dir, args.admin_command)
    except AdminUnavailable as e:
        return _fail(str(e), 1)
    if not reply.ok:
        assert reply.error is not None
        return _fail(f"{reply.error.code}: {reply.error.message}", 1)
    if args.json:
        print(json.dumps(reply.result, indent=2))
    elif args.admin_command == "tree":
        from sniperbot.cli.live_view import print_tree

        print_tree(reply.result)
    else:
        from sniperbot.cli.live_view import print_status

        print_status(reply.result)
    return 0


def _journal(args: argparse.Namespace) -> int:
    import msgspec

    from sniperbot.journal import Journal, JournalError

    try:
        journal = Journal.open(Path(args.run_dir), readonly=True)
    except JournalError as e:
        return _fail(str(e), 1)
    try:
        fills: list[Any] = [msgspec.to_builtins(f) for f in journal.fills()]
    finally:
        journal.close()
    for fill in fills:
        fill.pop("t", None)
    if args.json:
        print(json.dumps(fills, indent=2))
    else:
        for f in fills:
            print(
                f"{f['client_order_id']:<24} {f['symbol']:<10} {f['side']:<4} "
                f"{f['quantity']:>12.6f} @ {f['price']:<14.4f} fee {f['fee']:.4f}"
            )
        print(f"{len(fills)} fills")
    return 0


if __name__ == "__main__":
    sys.exit(main())
