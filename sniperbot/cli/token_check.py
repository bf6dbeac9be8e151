"""``sniperbot token-check``: the token safety check from the command line, nothing bought.

``sniperbot token-check --venue V TOKEN [--json] [--config PATH] [--run-dir DIR]`` simulates a buy, a
transfer and a sell of TOKEN against venue V's router (see :mod:`sniperbot.venues.evm.safety`) and prints
the report, or its JSON with ``--json``. The chain comes from the ``[[venues]]`` entry V of ``--config``
(``rpc_url``, ``router``, ``factory``, the quote token's address in ``tokens``, the rules in its
``[venues.safety]`` table); ``--rpc-url --router --factory --weth`` give or override them directly (no
config needed: the default rules apply). ``--wallet ADDRESS`` also simulates that wallet's own buy and sell
(traps for wallets only). ``--run-dir`` also journals the report in that run dir's journal.

**Solana**: a venue of ``kind = "solana"`` runs :func:`sniperbot.venues.solana.safety.check_token` on the
mint TOKEN instead, with the same rules table, output and exit codes: the chain comes from the venue
(``rpc_url``, ``aggregator_url``, ``pools_program``, ``commitment``, ``[venues.safety]``) or from
``--rpc-url --aggregator-url [--pools-program]`` (no config: ``--aggregator-url`` selects Solana).
``--pool`` names the pool account (default: the mint's deepest SOL pool), ``--wallet`` the buyer's public
key whose buy and sell are simulated (unsigned: no key is needed; without it nothing can be simulated and
the verdict is "refuse"), ``--amount`` the buy in SOL.

Exit codes: 0 the verdict is "buy"; 3 the verdict is "refuse" (the reasons are printed); 2 bad input (a
missing or malformed argument, a config without venue V, a WETH that is not the router's - named in the
message; nothing was simulated); 1 the check could not run (the RPC endpoint does not answer, the journal
cannot be written).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec

from sniperbot.messages import TokenSafetyReport

EXIT_BUY = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_REFUSE = 3

_CHAIN_FLAGS = ("rpc_url", "router", "factory", "weth")


def add_token_check_parser(sub: Any) -> None:
    """Register ``token-check`` on the top-level subparsers."""
    p = sub.add_parser(
        "token-check",
        help="simulate buying and selling a token and judge it (exit 0 buy, 3 refuse, 2 bad input)",
    )
    p.add_argument("token", metavar="TOKEN", help="the token's address (a Solana mint's base58 key)")
    p.add_argument("--venue", required=True, help="the evm or solana venue (a [[venues]] name of --config)")
    p.add_argument("--config", help="node config TOML holding the venue")
    p.add_argument("--rpc-url", help="JSON-RPC endpoint (overrides the venue's rpc_url)")
    p.add_argument("--router", help="UniswapV2Router02 address (overrides the venue's)")
    p.add_argument("--factory", help="UniswapV2Factory address (overrides the venue's)")
    p.add_argument("--weth", help="the quote token, wrapped native (overrides the venue's quote address)")
    p.add_argument("--amount", type=float, help="quote amount of the simulated buy (default: the rules')")
    p.add_argument("--wallet", help="the buying wallet's address: simulate its own buy and sell too")
    p.add_argument("--aggregator-url", help="Solana: the Jupiter-shaped Swap API (overrides the venue's)")
    p.add_argument("--pool", help="Solana: the pool account (default: the mint's deepest SOL pool)")
    p.add_argument("--pools-program", help="Solana: the program owning the pools (overrides the venue's)")
    p.add_argument(
        "--latest-block",
        action="store_true",
        help="simulate in the latest block instead of the next one (blind to dead-block traps)",
    )
    p.add_argument("--run-dir", help="also journal the report in this run dir's journal")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _bad(message: str) -> int:
    print(f"sniperbot: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _venue(args: argparse.Namespace) -> Any:
    """Venue ``args.venue`` of ``args.config``; ValueError names the problem."""
    from sniperbot.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as e:
        raise ValueError(str(e)) from None
    venue = config.venue(args.venue)
    if venue is None:
        known = ", ".join(v.name for v in config.venues)
        raise ValueError(f"--venue {args.venue!r} is not a venue of {args.config} (venues: {known})")
    return venue


def _kind(venue: Any) -> str:
    return str(type(venue).__struct_config__.tag)


def _from_config(args: argparse.Namespace, venue: Any) -> tuple[dict[str, str], Any]:
    """(chain settings, rules) of the evm ``venue``; ValueError names the problem."""
    from sniperbot.venues.dex import SafetyRules

    if not hasattr(venue, "router"):
        raise ValueError(
            f"--venue {args.venue!r} in {args.config} is of kind {_kind(venue)!r}, "
            "not an evm venue (nor a solana venue)"
        )
    tokens: dict[str, str] = dict(getattr(venue, "tokens", {}) or {})
    chain = {
        "rpc_url": str(getattr(venue, "rpc_url", "") or ""),
        "router": str(getattr(venue, "router", "") or ""),
        "factory": str(getattr(venue, "factory", "") or ""),
        "weth": str(tokens.get(str(getattr(venue, "quote", "")), "")),
    }
    rules = getattr(venue, "safety", None) or SafetyRules()
    return chain, rules


def run_token_check(args: argparse.Namespace) -> int:
    """Run ``sniperbot token-check``; the exit code (0 buy, 3 refuse, 2 bad input, 1 could not run)."""
    from sniperbot.venues.dex import SafetyRules

    chain: dict[str, str] = {}
    rules = SafetyRules()
    if args.config:
        try:
            venue = _venue(args)
            if _kind(venue) == "solana":
                return run_solana_token_check(args, venue)
            chain, rules = _from_config(args, venue)
        except ValueError as e:
            return _bad(str(e))
    elif args.aggregator_url:
        return run_solana_token_check(args, None)
    # Imported past the dispatch: a solana check does not pay web3's import.
    from web3 import Web3

    from sniperbot.venues.evm.safety import check_token

    solana_only = [f"--{n.replace('_', '-')}" for n in ("pool", "pools_program") if getattr(args, n)]
    if solana_only:
        return _bad(f"{', '.join(solana_only)}: solana flags, but venue {args.venue!r} is an evm venue")
    for name in _CHAIN_FLAGS:
        if getattr(args, name):
            chain[name] = getattr(args, name)
    missing = [f"--{n.replace('_', '-')}" for n in _CHAIN_FLAGS if not chain.get(n)]
    if missing:
        return _bad(f"token-check needs {', '.join(missing)} (or --config with an evm venue {args.venue!r})")
    for flag, value in (
        ("TOKEN", args.token),
        *((f"--{n}", chain[n]) for n in ("router", "factory", "weth")),
    ):
        if not Web3.is_address(value):
            return _bad(f"{flag}: {value!r} is not an address (0x and 40 hex digits)")
    if args.wallet is not None and not Web3.is_address(args.wallet):
        return _bad(f"--wallet: {args.wallet!r} is not an address (0x and 40 hex digits)")
    if args.amount is not None and not 0 < args.amount < float("inf"):
        return _bad(f"--amount: must be a number > 0, received {args.amount}")
    run_dir = Path(args.run_dir) if args.run_dir else None
    if run_dir is not None and not run_dir.is_dir():
        return _bad(f"--run-dir: {run_dir} is not a directory")

    w3 = Web3(Web3.HTTPProvider(chain["rpc_url"], request_kwargs={"timeout": 30}))
    try:
        router_weth = w3.eth.call(
            {"to": Web3.to_checksum_address(chain["router"]), "data": "0xad5c4648"}  # WETH()
        )
    except Exception as e:  # connection refused, timeout, not an RPC endpoint
        # Named by host only, and the exception by type: an RPC URL often carries an API key.
        message = f"cannot query the router at --rpc-url {_host(chain['rpc_url'])}: {type(e).__name__}"
        print(f"sniperbot: error: {message}", file=sys.stderr)
        return EXIT_FAILED
    if len(router_weth) < 32 or int.from_bytes(router_weth[12:32], "big") != int(chain["weth"], 16):
        actual = "0x" + bytes(router_weth[12:32]).hex() if len(router_weth) >= 32 else "nothing"
        return _bad(
            f"--weth {chain['weth']} is not the router's WETH (the router {chain['router']} says {actual})"
        )

    amount_in = None if args.amount is None else int(args.amount * 10**18)
    report = check_token(
        w3,
        chain["router"],
        chain["factory"],
        chain["weth"],
        args.token,
        rules,
        venue=args.venue,
        amount_in_wei=amount_in,
        next_block=False if args.latest_block else None,
        wallet=args.wallet,
    )
    return _finish(args, report, run_dir)


def _finish(args: argparse.Namespace, report: TokenSafetyReport, run_dir: Path | None) -> int:
    """Journal the report (``--run-dir``), print it, and the exit code of its verdict."""
    if run_dir is not None:
        from sniperbot.journal import Journal, JournalError

        try:
            journal = Journal.open(run_dir)
            try:
                journal.append(report)
            finally:
                journal.close()
        except JournalError as e:
            print(format_report(report), file=sys.stderr)
            print(f"sniperbot: error: the report could not be journaled in {run_dir}: {e}", file=sys.stderr)
            return EXIT_FAILED
    if args.json:
        print(json.dumps(report_dict(report), indent=2))
    else:
        print(format_report(report))
    return EXIT_BUY if report.verdict == "buy" else EXIT_REFUSE


def _pubkey(flag: str, value: str) -> Any:
    """The public key ``value`` of ``flag``; ValueError naming both unless it is base58 of 32 bytes."""
    from solders.pubkey import Pubkey

    try:
        key = Pubkey.from_string(value)
    except ValueError:
        key = None
    if key is None or str(key) != value:
        raise ValueError(f"{flag}: {value!r} is not a public key (base58 of 32 bytes)")
    return key


def run_solana_token_check(args: argparse.Namespace, venue: Any) -> int:
    """``token-check`` on a solana venue (``venue`` from the config, or None: the flags only)."""
    import httpx

    from sniperbot.venues.dex import SafetyRules
    from sniperbot.venues.solana.layouts import LAMPORTS_PER_SOL, LOCAL_AMM_PROGRAM
    from sniperbot.venues.solana.safety import check_token

    settings = {
        "rpc_url": str(getattr(venue, "rpc_url", "") or ""),
        "aggregator_url": str(getattr(venue, "aggregator_url", "") or ""),
        "pools_program": str(getattr(venue, "pools_program", "") or LOCAL_AMM_PROGRAM),
    }
    for name in settings:
        if getattr(args, name):
            settings[name] = getattr(args, name)
    rules = getattr(venue, "safety", None) or SafetyRules()
    missing = [f"--{n.replace('_', '-')}" for n in ("rpc_url", "aggregator_url") if not settings[n]]
    if missing:
        return _bad(
            f"token-check needs {', '.join(missing)} (or --config with a solana venue {args.venue!r})"
        )
    evm_only = [f"--{n}" for n in ("router", "factory", "weth") if getattr(args, n)]
    if evm_only:
        return _bad(f"{', '.join(evm_only)}: evm flags, but venue {args.venue!r} is a solana venue")
    try:
        mint = _pubkey("TOKEN", args.token)
        pool = None if args.pool is None else _pubkey("--pool", args.pool)
        wallet = None if args.wallet is None else _pubkey("--wallet", args.wallet)
        program = _pubkey("--pools-program", settings["pools_program"])
    except ValueError as e:
        return _bad(str(e))
    if args.amount is not None and not 0 < args.amount < float("inf"):
        return _bad(f"--amount: must be a number > 0, received {args.amount}")
    run_dir = Path(args.run_dir) if args.run_dir else None
    if run_dir is not None and not run_dir.is_dir():
        return _bad(f"--run-dir: {run_dir} is not a directory")

    try:  # an endpoint that does not answer at all: the check could not run (not a "refuse")
        httpx.post(
            settings["rpc_url"], json={"jsonrpc": "2.0", "id": 1, "method": "getHealth"}, timeout=30
        ).raise_for_status()
    except Exception as e:
        # Named by host only, and the exception by type: an RPC URL often carries an API key.
        message = f"cannot query --rpc-url {_host(settings['rpc_url'])}: {type(e).__name__}"
        print(f"sniperbot: error: {message}", file=sys.stderr)
        return EXIT_FAILED
    report = check_token(
        settings["rpc_url"],
        mint,
        pool,
        rules,
        wallet=wallet,
        aggregator_url=settings["aggregator_url"],
        buy_lamports=None if args.amount is None else round(args.amount * LAMPORTS_PER_SOL),
        venue=args.venue,
        pools_program=program,
        commitment=str(getattr(venue, "commitment", "confirmed") or "confirmed"),
    )
    return _finish(args, report, run_dir)


def report_dict(report: TokenSafetyReport) -> dict[str, Any]:
    """The ``--json`` object of a report: its fields, without the wire tag."""
    out: dict[str, Any] = msgspec.to_builtins(report)
    out.pop("t", None)
    return out


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def _tax(bps: int) -> str:
    return "not measured" if bps < 0 else f"{bps / 100:.2f} %"


def format_report(report: TokenSafetyReport) -> str:
    """The human report: verdict, every reason, then the measured figures."""
    lines = [
        f"token {report.token} on {report.venue}: {report.verdict.upper()}",
        *(f"  - {reason}" for reason in report.reasons),
        f"  pair             {report.pair or '-'}",
        f"  simulated block  {report.block_number}",
        f"  can sell         {'yes' if report.can_sell else 'no'}",
        f"  buy tax          {_tax(report.buy_tax_bps)}",
        f"  transfer tax     {_tax(report.transfer_tax_bps)}",
        f"  sell tax         {_tax(report.sell_tax_bps)}",
        f"  max tx           {f'{report.max_tx:g} tokens' if report.max_tx else 'none found'}",
        f"  max wallet       {f'{report.max_wallet:g} tokens' if report.max_wallet else 'none found'}",
        f"  owner powers     {', '.join(report.owner_powers) or 'none found'}",
        f"  liquidity        {report.liquidity_quote:g} (quote token in the pool)",
        f"  LP burnt/locked  {report.lp_burnt_or_locked_pct:.2f} %",
    ]
    return "\n".join(lines)
