"""``sniperbot chaos``: fault injection against a running node, then the money invariants.

Wiring (in ``sniperbot/cli/main.py``)::

    from sniperbot.cli.chaos import add_chaos_parser, run_chaos_command
    add_chaos_parser(sub)                      # next to "run", "admin", "journal"
    if args.command == "chaos":
        return run_chaos_command(args)

Exit codes: 0 every check passed; 1 a check failed (an invariant broke, a fault
was not recovered, the node stopped trading); 2 chaos could not run (bad
arguments, no node, the node refuses: it was not started with
``--enable-chaos``, a bad config, a wrong keystore password, an exchange that
cannot be read at the start).

Against an exchange: ``--config FILE`` (the node's config) makes every live ccxt
venue's journal be checked against the exchange's own orders, trades and balances,
read through ccxt with the venue's keys (``--keystore``, ``--password-file`` or
``SNIPERBOT_KEYSTORE_PASSWORD``, as ``sniperbot run``). ``--venue-faults URL`` is a
hook of the local test exchanges only (``tests/exchanges``: their
``http://127.0.0.1:P/__control__/`` endpoint): network faults injected by the server.

On a chain: the same ``--config`` makes every live evm venue's journal be checked against the chain
(:mod:`sniperbot.chaos.chain`): the wallet (its address from the unlocked ``wallet`` entry) and every
transaction it sent since the session started, over the venue's RPC; every live solana venue's the same way
(:mod:`sniperbot.chaos.solana_chain`: the wallet's signatures, SOL and token accounts).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

DEFAULT_RUN_DIR = ".sniperbot"


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, received {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, received {text}")
    return value


def _signals(text: str) -> tuple[str, ...]:
    from sniperbot.chaos.tool import SIGNALS

    names = tuple(s.strip().upper().removeprefix("SIG") for s in text.split(",") if s.strip())
    bad = [n for n in names if n not in SIGNALS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"signals must be a comma list of {', '.join(SIGNALS)}, received {text!r}"
        )
    return names


def _net_faults(text: str) -> tuple[str, ...]:
    from sniperbot.chaos.tool import NET_FAULTS

    names = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [n for n in names if n not in NET_FAULTS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"network faults must be a comma list of {', '.join(NET_FAULTS)}, received {text!r}"
        )
    return names


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in 0..1, received {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in 0..1, received {text}")
    return value


def add_chaos_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``chaos`` command to the CLI's subparsers; returns its parser."""
    chaos = subparsers.add_parser(
        "chaos",
        help="inject faults into a running node (--enable-chaos) and check no money was lost",
        description=(
            "Kill (KILL) or hang (STOP) random actors of a running node through its admin socket, "
            "then check: every fault recovered, recovery time p50/p99, breaker trips, the node still "
            "trades, no order reached the venue twice, no fill lost, positions == sum of fills, "
            "venue ledger == journal. With --config, live ccxt venues are checked against the "
            "exchange's own orders, trades and balances (fetched with the venue's keys). "
            "The node must run with --enable-chaos."
        ),
    )
    chaos.add_argument("--run-dir", default=DEFAULT_RUN_DIR, help="run directory of the node")
    chaos.add_argument("--duration", type=_seconds, required=True, help="seconds of fault injection")
    chaos.add_argument("--interval", type=_seconds, required=True, help="seconds between faults")
    chaos.add_argument("--seed", type=int, default=0, help="seed of the actor and signal choices")
    chaos.add_argument(
        "--signals", type=_signals, default=("KILL", "STOP"), help="comma list of KILL, STOP, TERM"
    )
    chaos.add_argument(
        "--recovery-timeout", type=_seconds, default=60.0, help="seconds to wait for the last recovery"
    )
    chaos.add_argument(
        "--trade-timeout", type=_seconds, default=30.0, help="seconds to wait for a fill after the faults"
    )
    chaos.add_argument(
        "--settle-timeout",
        type=_seconds,
        default=15.0,
        help="seconds to wait for the journal and the venue ledgers to agree after the faults",
    )
    chaos.add_argument(
        "--config",
        metavar="FILE",
        help="the node's config: its live ccxt venues are checked against the exchange's own records",
    )
    chaos.add_argument("--keystore", metavar="DIR", help="keystore directory (default: [keystore] dir)")
    chaos.add_argument(
        "--password-file", metavar="FILE", help="keystore password (else $SNIPERBOT_KEYSTORE_PASSWORD)"
    )
    chaos.add_argument(
        "--venue-faults",
        metavar="URL",
        help="test exchanges only: the local server's control URL (http://127.0.0.1:P/__control__/); "
        "network faults are then mixed into the schedule",
    )
    chaos.add_argument(
        "--net-faults",
        type=_net_faults,
        default=None,
        help="comma list of the network faults to inject (default: all of them)",
    )
    chaos.add_argument(
        "--net-share",
        type=_share,
        default=0.3,
        help="share of fault slots that are network faults with --venue-faults (0..1, default 0.3)",
    )
    chaos.add_argument("--json", action="store_true", help="print one JSON object")
    chaos.set_defaults(handler=run_chaos_command)
    return chaos


def run_chaos_command(args: argparse.Namespace) -> int:
    """Run ``sniperbot chaos`` with parsed arguments; returns the exit code."""
    import msgspec

    from sniperbot.chaos.tool import NET_FAULTS, ChaosOptions, ChaosUnavailable, format_report, run_chaos

    exchange: list[tuple[Any, Any]] = []
    chains: list[Any] = []
    if args.config:
        from sniperbot.chaos.exchange import exchange_venues
        from sniperbot.config import ConfigError, load_config
        from sniperbot.keystore import KeystoreError, unlock_for_config

        try:
            config = load_config(args.config)
            credentials = unlock_for_config(config, keystore=args.keystore, password_file=args.password_file)
        except (ConfigError, KeystoreError) as e:
            print(f"sniperbot: error: {e}", file=sys.stderr)
            return 2
        exchange = [(v, credentials.get(v.keys) if v.keys else None) for v in exchange_venues(config)]
        from sniperbot.chaos.chain import chain_venues

        chains = chain_venues(config, credentials)
        from sniperbot.venues.solana.config import SolanaVenueConfig  # light: no solders until needed

        if any(isinstance(v, SolanaVenueConfig) and v.mode == "live" for v in config.venues):
            from sniperbot.chaos.solana_chain import solana_chain_venues

            chains += solana_chain_venues(config, credentials)
    options = ChaosOptions(
        run_dir=str(args.run_dir),
        duration_s=args.duration,
        interval_s=args.interval,
        seed=args.seed,
        signals=tuple(args.signals),
        recovery_timeout_s=args.recovery_timeout,
        trade_timeout_s=args.trade_timeout,
        settle_timeout_s=args.settle_timeout,
        venue_faults=args.venue_faults,
        net_faults=tuple(args.net_faults or NET_FAULTS),
        net_share=args.net_share,
    )
    say = (lambda _: None) if args.json else (lambda line: print(line, flush=True))
    try:
        report = run_chaos(options, say, exchange, chains)
    except ChaosUnavailable as e:
        print(f"sniperbot: error: {e.code}: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(msgspec.to_builtins(report)))
    else:
        print(format_report(report))
    return 0 if report.ok else 1
