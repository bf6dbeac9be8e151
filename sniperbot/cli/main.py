"""The ``sniperbot`` command: run a node, talk to its admin socket, read its journal.

Exit codes: 0 success; 1 a command failed (for example the node did not answer);
2 bad usage or configuration, or a lost or damaged journal or venue ledger, or a
keystore refusal (nothing was started, nothing read); 3 ``admin``: no node running in the run dir,
``token-check``: the verdict is "refuse" (see :mod:`sniperbot.cli.token_check`);
``run`` also: 70 the root supervisor gave up, 71 the node crashed (an exception
escaped its loop), 74 stopped: disk full (see :mod:`sniperbot.node`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

DEFAULT_RUN_DIR = ".sniperbot"

_SUP = (("--sup",), {"required": True, "help": "supervisor id (see admin tree)"})
_ID = (("--id",), {"required": True, "help": "child id"})
_REASON = (("--reason",), {"default": "operator", "help": "why (journaled and logged)"})

# (command, help, [(flags, argparse kwargs)]); the admin socket's command is the name with "_".
ADMIN_COMMANDS: list[tuple[str, str, list[tuple[tuple[str, ...], dict[str, Any]]]]] = [
    ("ping", "is the node alive", []),
    ("tree", "the supervision tree", []),
    ("status", "positions, P&L, counts, trading state, breakers", []),
    ("which-children", "children of a supervisor in start order", [_SUP]),
    ("count-children", "OTP counts of a supervisor's children", [_SUP]),
    ("get-childspec", "the full spec of a child", [_SUP, _ID]),
    ("start-child", "add and start a child from a JSON spec", [_SUP, (("--spec",), {"required": True})]),
    ("terminate-child", "stop a child, keep its spec", [_SUP, _ID]),
    ("restart-child", "start a stopped child again", [_SUP, _ID]),
    ("delete-child", "forget a stopped child", [_SUP, _ID]),
    (
        "add-strategy",
        "start a new strategy actor now (journaled: it survives restarts)",
        [
            (("--id",), {"required": True, "help": "strategy id"}),
            (("--strategy",), {"required": True, "help": "strategy name, e.g. sma_cross"}),
            (("--venue",), {"help": "venue name (default: the first configured venue)"}),
            (("--symbol",), {"help": "symbol (default: the first one of the venue)"}),
            (("--quantity",), {"type": float, "help": "order quantity"}),
            (("--bar-interval",), {"type": float, "dest": "bar_interval_s", "help": "bar seconds"}),
            (("--param",), {"action": "append", "default": [], "metavar": "K=V", "help": "parameter"}),
        ],
    ),
    ("remove-strategy", "stop a strategy actor and forget it", [(("--id",), {"required": True})]),
    (
        "halt",
        "stop trading (HALTED, or REDUCING with --reducing)",
        [(("--reducing",), {"action": "store_true"}), _REASON],
    ),
    ("resume", "trade normally again (ACTIVE)", [_REASON]),
    ("breaker-status", "circuit breakers with state, trips and cooldown", []),
    ("breaker-reset", "close a circuit breaker now", [(("--scope",), {"required": True})]),
    (
        "chaos",
        "send a signal to an actor (node started with --enable-chaos only)",
        [(("--actor",), {"required": True}), (("--signal",), {"default": "KILL"})],
    ),
    ("shutdown", "stop the node in an orderly way", []),
]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sniperbot", description="A 24/7 crypto trading node of supervised actors."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a supervised trading node")
    run.add_argument("--config", help="TOML config file (default: the embedded default)")
    run.add_argument("--run-dir", default=DEFAULT_RUN_DIR, help="sockets and journal (default: %(default)s)")
    run.add_argument("--duration", type=_positive_float, help="stop after this many seconds")
    run.add_argument("--seed", type=int, help="seed of every simulated venue (overrides venues[].seed)")
    run.add_argument(
        "--enable-chaos",
        action="store_true",
        help="allow fault injection through the admin socket (sniperbot chaos)",
    )
    run.add_argument(
        "--ray",
        metavar="auto|ADDRESS",
        help="place the actors configured with placement \"ray\" on Ray: 'auto' starts a local "
        "cluster, ADDRESS (host:port of the GCS) joins a running one (pip install 'sniperbot[cluster]')",
    )
    run.add_argument(
        "--password-file", metavar="FILE", help="keystore password (else $SNIPERBOT_KEYSTORE_PASSWORD)"
    )
    run.add_argument("--keystore", metavar="DIR", help="keystore directory (default: [keystore] dir)")

    admin = sub.add_parser("admin", help="inspect and change a running node through its admin socket")
    admin.add_argument("--run-dir", default=DEFAULT_RUN_DIR)
    admin.add_argument("--endpoint", help="tcp:// admin endpoint of a remote node (CURVE)")
    admin.add_argument("--server-key", help="the node's public certificate (with --endpoint)")
    admin.add_argument("--client-key", help="our secret certificate (with --endpoint)")
    admin.add_argument("--timeout", type=_positive_float, default=20.0, help="seconds to wait for the node")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    for name, help_text, options in ADMIN_COMMANDS:
        cmd = admin_sub.add_parser(name, help=help_text)
        for flags, kwargs in options:
            cmd.add_argument(*flags, **kwargs)
        cmd.add_argument("--json", action="store_true", help="print JSON")

    keygen = sub.add_parser("keygen", help="make a CURVE certificate pair for the tcp admin socket")
    keygen.add_argument("--dir", required=True, help="where to write NAME.key and NAME.key_secret")
    keygen.add_argument("--name", required=True, help="certificate name, e.g. server or alice")

    from sniperbot.cli.chaos import add_chaos_parser
    from sniperbot.cli.research import (
        add_backtest_parser,
        add_data_parser,
        add_lookahead_parser,
        add_optimize_parser,
    )

    add_data_parser(sub)
    add_backtest_parser(sub)
    add_optimize_parser(sub)
    add_lookahead_parser(sub)
    add_chaos_parser(sub)
    from sniperbot.cli.replay import add_replay_parser

    add_replay_parser(sub)
    from sniperbot.keystore.cli import add_keys_parser

    add_keys_parser(sub)
    from sniperbot.cli.strategies import add_strategies_parsers

    add_strategies_parsers(sub)

    from sniperbot.cli.journal import add_journal_parser

    add_journal_parser(sub, DEFAULT_RUN_DIR)
    from sniperbot.cli.token_check import add_token_check_parser

    add_token_check_parser(sub)
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
    if args.command == "keygen":
        return _keygen(args)
    if args.command == "chaos":
        from sniperbot.cli.chaos import run_chaos_command

        return run_chaos_command(args)
    if args.command == "backtest":
        from sniperbot.cli.research import run_backtest

        return run_backtest(args)
    if args.command == "optimize":
        from sniperbot.cli.research import run_optimize

        return run_optimize(args)
    if args.command == "keys":
        from sniperbot.keystore.cli import run_keys_command

        return run_keys_command(args)
    if args.command == "check-lookahead":
        from sniperbot.cli.research import run_check_lookahead

        return run_check_lookahead(args)
    if args.command == "strategies":
        from sniperbot.cli.strategies import run_strategies

        return run_strategies(args)
    if args.command == "new-strategy":
        from sniperbot.cli.strategies import run_new_strategy

        return run_new_strategy(args)
    if args.command == "replay":
        from sniperbot.cli.replay import run_replay

        return run_replay(args)
    if args.command == "data":
        from sniperbot.cli.research import run_data

        return run_data(args)
    if args.command == "token-check":
        from sniperbot.cli.token_check import run_token_check

        return run_token_check(args)
    from sniperbot.cli.journal import run_journal_command

    return run_journal_command(args)


def _fail(message: str, code: int) -> int:
    print(f"sniperbot: error: {message}", file=sys.stderr)
    return code


def _run(args: argparse.Namespace) -> int:
    from sniperbot.config import (
        ConfigError,
        check_files,
        check_venues,
        load_config,
        ray_placements,
        with_overrides,
    )
    from sniperbot.logs import configure_logging
    from sniperbot.rundir import RunDirError

    try:
        config = load_config(args.config)
        if args.seed is not None:
            config = with_overrides(config, seed=args.seed)
        check_files(config, str(args.config or "<built-in config>"))
    except ConfigError as e:
        return _fail(str(e), 2)
    from sniperbot.keystore import KeystoreError, unlock_for_config

    try:
        # Before any process starts; also takes the password out of the environment actors inherit.
        # The venue that signs gets its Credentials from this dict (see sniperbot.keystore).
        credentials = unlock_for_config(config, keystore=args.keystore, password_file=args.password_file)
    except KeystoreError as e:
        return _fail(str(e), 2)
    try:
        for warning in check_venues(config, str(args.config or "<built-in config>")):
            print(f"sniperbot: warning: {warning}", file=sys.stderr)
    except ConfigError as e:
        return _fail(str(e), 2)
    wants_ray = ray_placements(config)
    if wants_ray and not args.ray:
        return _fail(f"{', '.join(wants_ray)} needs a Ray cluster: run with --ray auto|ADDRESS", 2)
    if args.ray:
        import importlib.util

        # Only looked up: Ray reads its environment at import, which the node sets first.
        try:
            installed = importlib.util.find_spec("ray") is not None
        except (ImportError, ValueError):
            installed = False
        if not installed:
            return _fail("--ray: Ray is not installed: pip install 'sniperbot[cluster]'", 2)
    configure_logging(config.node.log_level)
    from sniperbot.node import EXIT_DISK_FULL, Node

    node = Node(
        config, args.run_dir, enable_chaos=args.enable_chaos, ray_address=args.ray, credentials=credentials
    )
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
    if node.crash:
        what = "stopped: disk full" if code == EXIT_DISK_FULL else "node crashed"
        _fail(f"{what}: {node.crash} (the next start is fail-closed: global breaker open)", code)
    return code


def _admin_args(args: argparse.Namespace) -> dict[str, Any]:
    """The admin socket's arguments for the parsed command line."""
    transport = (
        "command",
        "admin_command",
        "run_dir",
        "json",
        "endpoint",
        "server_key",
        "client_key",
        "timeout",
    )
    fields = {k: v for k, v in vars(args).items() if k not in transport}
    if args.admin_command == "start-child":
        try:
            fields["spec"] = json.loads(fields["spec"])
        except json.JSONDecodeError as e:
            raise ValueError(f"--spec is not valid JSON: {e}") from None
    if args.admin_command == "add-strategy":
        fields["params"] = _params(fields.pop("param"))
    if args.admin_command == "halt":
        fields["state"] = "REDUCING" if fields.pop("reducing") else "HALTED"
    return {k: v for k, v in fields.items() if v is not None}


def _params(items: list[str]) -> dict[str, Any]:
    """``k=v`` pairs; values read as int, float or bool when they look like one."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--param takes K=V, received {item!r}")
        value: Any = text
        if text.lower() in ("true", "false"):
            value = text.lower() == "true"
        else:
            for kind in (int, float):
                try:
                    value = kind(text)
                    break
                except ValueError:
                    pass
        params[key] = value
    return params


def _admin(args: argparse.Namespace) -> int:
    from sniperbot.admin import AdminUnavailable, NoNodeRunning, admin_request

    try:
        request_args = _admin_args(args)
    except ValueError as e:
        return _fail(str(e), 2)
    try:
        reply = admin_request(
            args.run_dir,
            args.admin_command.replace("-", "_"),
            args.timeout,
            endpoint=args.endpoint,
            server_key=args.server_key,
            client_key=args.client_key,
            **request_args,
        )
    except NoNodeRunning as e:
        return _fail(str(e), 3)
    except AdminUnavailable as e:
        return _fail(str(e), 1)
    if not reply.ok:
        assert reply.error is not None
        if args.json:
            print(json.dumps({"ok": False, "code": reply.error.code, "message": reply.error.message}))
        return _fail(f"{reply.error.code}: {reply.error.message}", 1)
    if args.json:
        print(json.dumps(reply.result, indent=2))
    elif args.admin_command == "tree":
        from sniperbot.cli.live_view import print_tree

        print_tree(reply.result)
    elif args.admin_command == "status":
        from sniperbot.cli.live_view import print_status

        print_status(reply.result)
    else:
        print(json.dumps(reply.result, indent=2) if reply.result is not None else "ok")
    return 0


def _keygen(args: argparse.Namespace) -> int:
    import os

    import zmq.auth

    os.makedirs(args.dir, mode=0o700, exist_ok=True)
    public, secret = zmq.auth.create_certificates(args.dir, args.name)
    os.chmod(secret, 0o600)
    print(f"public  {public}\nsecret  {secret}  (keep it private; mode 0600)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
