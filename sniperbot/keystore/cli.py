"""``sniperbot keys``: add, list, remove exchange API keys and change the keystore password.

Exit codes: 0 done; 2 refused, nothing changed (wrong password, damaged file, a name
already present or unknown, an invalid name or exchange, no password source); 1 the
system failed (an I/O error such as a full disk; the keystore is left as it was, see
:mod:`sniperbot.keystore.store`). Secrets are read without echo (a terminal prompt) or
as JSON on stdin (``--stdin``), and never printed. A prompt reads one line: a multi-line
secret (Coinbase's EC private key in PEM) goes through ``--stdin``, its line breaks as
``\n`` in the JSON string, e.g. ``jq -n --rawfile s key.pem '{apiKey: "...", secret: $s}'``.
An EVM wallet (``[[venues]] kind = "evm"``, ``wallet = NAME``) is an entry of kind ``evm``:
``sniperbot keys add NAME --exchange evm`` asks for ``private_key`` (32 bytes in hex, checked
before anything is stored); a Solana wallet (``kind = "solana"``) is an entry of kind ``solana``:
``--exchange solana`` asks for ``secret_key`` (base58 of the 64-byte keypair, checked the same way).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sniperbot.keystore.store import (
    Keystore,
    KeystoreError,
    check_credentials,
    check_exchange,
    check_name,
    check_new_password,
    required_fields,
)
from sniperbot.keystore.unlock import (
    has_terminal,
    keystore_dir,
    no_password_error,
    prompt_password,
    read_password_file,
    take_env_password,
)


def add_keys_parser(sub: Any) -> None:
    """Add ``keys`` and its verbs to the ``sniperbot`` subparsers ``sub``."""
    keys = sub.add_parser("keys", help="the encrypted keystore of exchange API keys")
    verbs = keys.add_subparsers(dest="keys_command", required=True)

    def verb(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = verbs.add_parser(name, help=help_text)
        parser.add_argument("--keystore", metavar="DIR", help="keystore directory (default: [keystore] dir)")
        parser.add_argument("--config", help="TOML config whose [keystore] dir to use")
        return parser

    add = verb("add", "store a new key (prompted without echo, or JSON on stdin)")
    add.add_argument("name", help="entry name, referenced by a venue's keys = NAME")
    add.add_argument(
        "--exchange",
        required=True,
        help="ccxt exchange id, e.g. binance, coinbase, kraken; or evm / solana (an on-chain wallet: "
        "private_key / secret_key)",
    )
    add.add_argument(
        "--stdin",
        action="store_true",
        help='read the credentials as JSON on stdin, ccxt field names: {"apiKey": ..., "secret": ..., '
        '"password": ...} (also uid, privateKey, walletAddress, ...); evm: {"private_key": "0x..."}; '
        'solana: {"secret_key": "<base58>"}',
    )
    lst = verb("list", "entries: name, exchange, created (never secrets; no password needed)")
    lst.add_argument("--json", action="store_true", help="print a JSON array")
    remove = verb("remove", "delete an entry")
    remove.add_argument("name")
    change = verb("change-password", "re-encrypt every entry under a new password")
    change.add_argument("--new-password-file", metavar="FILE", help="the new password (first line)")
    for parser in (add, remove, change):
        parser.add_argument("--password-file", metavar="FILE", help="the keystore password (first line)")


def run_keys_command(args: argparse.Namespace) -> int:
    """Run ``sniperbot keys ...``; see the module docstring for exit codes."""
    directory = keystore_dir(None, args.keystore)
    try:
        config = _config(args.config) if args.config else None
        directory = keystore_dir(config, args.keystore)
        if args.keys_command == "list":
            return _list(directory, args.json)
        if args.keys_command == "add":
            return _add(args, directory)
        if args.keys_command == "remove":
            Keystore.open(directory, _password(args, "keys remove")).remove(args.name)
            print(f"removed {args.name} from {directory}")
            return 0
        store = Keystore.open(directory, _password(args, "keys change-password"))
        new = _new_password(args.new_password_file, "new keystore password")
        store.change_password(new)
        print(f"password changed: {len(store.names())} entries re-encrypted in {directory}")
        return 0
    except KeystoreError as e:
        return _fail(str(e), 2)
    except OSError as e:
        return _fail(f"keystore {directory}: {e.strerror or e} ({e.filename or directory})", 1)


def _fail(message: str, code: int) -> int:
    print(f"sniperbot: error: {message}", file=sys.stderr)
    return code


def _config(path: str) -> Any:
    from sniperbot.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as e:
        raise KeystoreError(str(e)) from None


def _password(args: argparse.Namespace, what: str) -> str:
    """The keystore password from --password-file, the environment or the terminal."""
    env = take_env_password()
    if args.password_file:
        return read_password_file(args.password_file)
    if env is not None:
        return env
    password = prompt_password()
    if password is None:
        raise no_password_error(what)
    return password


def _new_password(password_file: str | None, prompt: str) -> str:
    """A new password from a file, or typed twice on the terminal."""
    if password_file:
        password = read_password_file(password_file)
    else:
        if not has_terminal():
            raise KeystoreError("the new password: pass --new-password-file FILE (no terminal to ask)")
        password = prompt_password(f"{prompt}: ") or ""
        check_new_password(password)
        if prompt_password(f"{prompt} again: ") != password:
            raise KeystoreError("the two passwords differ: nothing changed")
    check_new_password(password)
    return password


def _list(directory: Any, as_json: bool) -> int:
    infos, errors = Keystore.list_entries(directory)
    if as_json:
        print(
            json.dumps(
                [{"name": i.name, "exchange": i.exchange, "created": i.created} for i in infos], indent=2
            )
        )
    else:
        for info in infos:
            print(f"{info.name:<32} {info.exchange:<16} {info.created}")
        print(f"{len(infos)} entries in {directory}")
    for error in errors:
        _fail(error, 2)
    return 2 if errors else 0


def _add(args: argparse.Namespace, directory: Any) -> int:
    check_name(args.name)
    check_exchange(args.exchange)  # a wrong exchange id fails before any prompt
    fields = _stdin_fields() if args.stdin else _prompted_fields(args.exchange)
    check_credentials(args.exchange, fields)
    if Keystore.exists(directory):
        store = Keystore.open(directory, _password(args, "keys add"))
    else:
        env = take_env_password()
        password = read_password_file(args.password_file) if args.password_file else env
        if password is None:
            password = _new_password(None, f"new keystore password for {directory}")
        store = Keystore.create(directory, password)
        print(f"created keystore {directory}")
    info = store.add(args.name, args.exchange, fields)
    print(f"added {info.name} ({info.exchange}) to {directory}")
    return 0


def _stdin_fields() -> dict[str, str]:
    """Credential fields as a JSON object on stdin (messages never quote the input)."""
    try:
        data = json.loads(sys.stdin.read())
    except json.JSONDecodeError as e:
        raise KeystoreError(
            f"--stdin: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})"
        ) from None
    if not isinstance(data, dict):
        raise KeystoreError('--stdin: expected a JSON object such as {"apiKey": "...", "secret": "..."}')
    for field, value in data.items():
        if not isinstance(value, str):
            raise KeystoreError(f"--stdin: credential field {field!r} must be a string")
    return {k: v for k, v in data.items() if v != ""}


def _prompted_fields(exchange: str) -> dict[str, str]:
    """Ask the terminal, without echo, for each field ccxt says ``exchange`` needs."""
    if not has_terminal():
        raise KeystoreError("keys add: no terminal to ask for the credentials: use --stdin")
    fields: dict[str, str] = {}
    for field in required_fields(exchange):
        value = prompt_password(f"{exchange} {field}: ")
        if value:
            fields[field] = value
    return fields
