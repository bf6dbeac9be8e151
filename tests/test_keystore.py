"""The keystore: `sniperbot keys`, encryption at rest, crash-safe password change, the node's unlock.

Real files, real scrypt and AES-GCM, the real CLI in fresh processes (without a
controlling terminal, like a service), a real node for what reaches actor processes.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sniperbot.config import Config, KeystoreSection
from sniperbot.keystore import (
    PASSWORD_ENV,
    Credentials,
    Keystore,
    KeystoreError,
    WrongPassword,
    unlock_for_config,
)
from sniperbot.keystore.store import ENTRY_SUFFIX, PENDING_SUFFIX, VERIFIER_FILE
from sniperbot.logs import JsonFormatter
from tests.conftest import FAST_CONFIG, ROOT, RunningNode

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "tr0ub4dor&3-but-longer"
# Distinctive values: any of them found in a file or an output is a leak.
SECRETS = {
    "apiKey": "AK-7f3c9e1d5b-keystore-test-apikey",
    "secret": "SK-b91e44aa07-keystore-test-secret",
    "password": "PP-0c77d2e61f-keystore-test-passphrase",
}
OTHER = {"apiKey": "AK-2-another-key-0d9a8b", "secret": "SK-2-another-secret-6e5f4c"}


class _Outputs:
    """Every stdout and stderr of the keys commands a test ran (grepped for secrets)."""

    def __init__(self) -> None:
        self.texts: list[str] = []


@pytest.fixture
def outputs() -> _Outputs:
    """Collected outputs of the CLI."""
    return _Outputs()


@pytest.fixture
def ks(tmp_path: Path) -> Path:
    """A keystore directory path (not created)."""
    return tmp_path / "home" / "keystore"


def _write_secret_file(path: Path, text: str) -> Path:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def pw_file(tmp_path: Path) -> Path:
    """The right password in a 0600 file."""
    return _write_secret_file(tmp_path / "pw", PASSWORD)


def keys(
    outputs: _Outputs, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``sniperbot keys ...`` in a fresh process with no controlling terminal (a new session)."""
    environ = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    environ.update(env or {})
    result = subprocess.run(
        [sys.executable, "-m", "sniperbot", "keys", *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=environ,
        start_new_session=True,
    )
    outputs.texts += [result.stdout, result.stderr]
    return result


def add(
    outputs: _Outputs, ks: Path, pw_file: Path, name: str, fields: dict[str, str], exchange: str = "binance"
):
    """``keys add NAME --exchange binance --stdin`` with the password file."""
    return keys(
        outputs,
        "add",
        name,
        "--exchange",
        exchange,
        "--stdin",
        "--keystore",
        str(ks),
        "--password-file",
        str(pw_file),
        stdin=json.dumps(fields),
    )


def assert_no_secret(text: str | bytes, where: str) -> None:
    """None of the secrets or passwords appears in ``text``."""
    data = text.encode() if isinstance(text, str) else text
    for value in [*SECRETS.values(), *OTHER.values(), PASSWORD, NEW_PASSWORD]:
        assert value.encode() not in data, f"{value!r} leaked into {where}"


# -- the keys command -----------------------------------------------------------------------


def test_add_list_get_remove_through_the_cli(ks: Path, pw_file: Path, outputs: _Outputs) -> None:
    result = add(outputs, ks, pw_file, "main", SECRETS)
    assert result.returncode == 0, result.stderr
    assert "created keystore" in result.stdout
    assert add(outputs, ks, pw_file, "kraken1", OTHER, exchange="kraken").returncode == 0

    # 0700 directory, 0600 files, one file per entry.
    assert stat.S_IMODE(ks.stat().st_mode) == 0o700
    files = sorted(p.name for p in ks.iterdir() if not p.name.startswith("."))
    assert files == ["keystore.json", "kraken1.key", "main.key"]
    for name in files:
        assert stat.S_IMODE((ks / name).stat().st_mode) == 0o600, name

    listed = keys(outputs, "list", "--json", "--keystore", str(ks))  # no password needed
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["exchange"]) for r in rows] == [("kraken1", "kraken"), ("main", "binance")]
    assert all(set(r) == {"name", "exchange", "created"} and r["created"].endswith("Z") for r in rows)
    table = keys(outputs, "list", "--keystore", str(ks))
    assert table.returncode == 0 and "main" in table.stdout and "binance" in table.stdout

    store = Keystore.open(ks, PASSWORD)
    creds = store.get("main")
    assert creds.ccxt_config() == SECRETS and creds.exchange == "binance"
    assert store.get("kraken1").ccxt_config() == OTHER

    removed = keys(outputs, "remove", "kraken1", "--keystore", str(ks), "--password-file", str(pw_file))
    assert removed.returncode == 0, removed.stderr
    assert Keystore.open(ks, PASSWORD).names() == ["main"]
    for text in outputs.texts:
        assert_no_secret(text, "CLI output")


def test_the_config_moves_the_keystore_and_the_env_gives_the_password(
    tmp_path: Path, outputs: _Outputs
) -> None:
    target = tmp_path / "elsewhere" / "ks"
    config = tmp_path / "node.toml"
    config.write_text(f'[keystore]\ndir = "{target}"\n')
    result = keys(
        outputs,
        "add",
        "main",
        "--exchange",
        "binance",
        "--stdin",
        "--config",
        str(config),
        stdin=json.dumps(SECRETS),
        env={PASSWORD_ENV: PASSWORD},
    )
    assert result.returncode == 0, result.stderr
    assert Keystore.open(target, PASSWORD).get("main").ccxt_config() == SECRETS


def test_a_wrong_password_is_refused_even_with_an_empty_keystore(
    ks: Path, tmp_path: Path, outputs: _Outputs
) -> None:
    Keystore.create(ks, PASSWORD)
    with pytest.raises(WrongPassword, match="wrong password"):
        Keystore.open(ks, "not the password")
    wrong = _write_secret_file(tmp_path / "wrong", "not the password")
    result = keys(outputs, "remove", "main", "--keystore", str(ks), "--password-file", str(wrong))
    assert result.returncode == 2
    assert "wrong password" in result.stderr and str(ks) in result.stderr
    # And without any password source (no terminal here): exit 2 saying how to give one.
    result = keys(outputs, "remove", "main", "--keystore", str(ks))
    assert result.returncode == 2 and PASSWORD_ENV in result.stderr and "--password-file" in result.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["add", "a/b", "--exchange", "binance", "--stdin"], SECRETS, "'a/b' is not a valid id"),
        (["add", "..", "--exchange", "binance", "--stdin"], SECRETS, "is not a valid id"),
        (["add", "main", "--exchange", "binance", "--stdin"], OTHER, "already exists"),
        (["add", "x", "--exchange", "nosuchexchange", "--stdin"], SECRETS, "not a ccxt exchange id"),
        (
            ["add", "x", "--exchange", "binance", "--stdin"],
            {**SECRETS, "bogus": "v"},
            "'bogus' is not a ccxt",
        ),
        (["add", "x", "--exchange", "binance", "--stdin"], {"apiKey": "k"}, "binance needs the credential"),
        (["add", "x", "--exchange", "binance", "--stdin"], "not json " + SECRETS["secret"], "not valid JSON"),
        (["remove", "ghost"], None, "no entry named 'ghost'"),
        (["remove", "../main"], None, "is not a valid id"),
    ],
    ids=["slash", "dotdot", "duplicate", "exchange", "field", "missing", "json", "unknown", "path"],
)
def test_bad_input_exits_2_naming_it_and_loses_nothing(
    ks: Path, pw_file: Path, outputs: _Outputs, args: list[str], stdin: Any, message: str
) -> None:
    assert add(outputs, ks, pw_file, "main", SECRETS).returncode == 0
    before = {p.name: p.read_bytes() for p in ks.iterdir()}
    text = stdin if isinstance(stdin, str) or stdin is None else json.dumps(stdin)
    result = keys(outputs, *args, "--keystore", str(ks), "--password-file", str(pw_file), stdin=text)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert message in result.stderr
    assert {p.name: p.read_bytes() for p in ks.iterdir()} == before
    assert Keystore.open(ks, PASSWORD).get("main").ccxt_config() == SECRETS
    for out in outputs.texts:
        assert_no_secret(out, "CLI output")


def test_a_damaged_or_edited_entry_is_named_and_the_others_still_open(
    ks: Path, pw_file: Path, outputs: _Outputs
) -> None:
    assert add(outputs, ks, pw_file, "main", SECRETS).returncode == 0
    assert add(outputs, ks, pw_file, "other", OTHER).returncode == 0
    main = ks / f"main{ENTRY_SUFFIX}"

    # An edited header (the exchange) fails authentication: the key is not handed to another venue.
    data = json.loads(main.read_text())
    main.write_text(json.dumps({**data, "exchange": "kraken"}))
    with pytest.raises(KeystoreError, match="damaged or edited") as error:
        Keystore.open(ks, PASSWORD).get("main")
    assert str(main) in str(error.value)

    # A file renamed to another entry's name is refused.
    shutil.copy2(ks / "other.key", ks / "third.key")
    with pytest.raises(KeystoreError, match="renamed or moved"):
        Keystore.open(ks, PASSWORD).get("third")
    (ks / "third.key").unlink()

    # Truncated garbage: `keys list` lists the good entry, names the bad file, exits 2.
    main.write_bytes(b'{"format": "sniperbot-keystore-entry", "vers')
    listed = keys(outputs, "list", "--json", "--keystore", str(ks))
    assert listed.returncode == 2
    assert [r["name"] for r in json.loads(listed.stdout)] == ["other"]
    assert str(main) in listed.stderr and "damaged" in listed.stderr
    assert Keystore.open(ks, PASSWORD).get("other").ccxt_config() == OTHER
    # change-password refuses before writing anything; remove still works for the damaged entry.
    new_pw = _write_secret_file(ks.parent / "new", NEW_PASSWORD)
    before = {p.name: p.read_bytes() for p in ks.iterdir()}
    changed = keys(
        outputs,
        "change-password",
        "--keystore",
        str(ks),
        "--password-file",
        str(pw_file),
        "--new-password-file",
        str(new_pw),
    )
    assert changed.returncode == 2 and str(main) in changed.stderr
    assert {p.name: p.read_bytes() for p in ks.iterdir()} == before
    removed = keys(outputs, "remove", "main", "--keystore", str(ks), "--password-file", str(pw_file))
    assert removed.returncode == 0, removed.stderr
    for out in outputs.texts:
        assert_no_secret(out, "CLI output")


def test_loose_permissions_are_refused_like_ssh(ks: Path) -> None:
    Keystore.create(ks, PASSWORD)
    ks.chmod(0o755)
    with pytest.raises(KeystoreError, match="too open: chmod 700"):
        Keystore.open(ks, PASSWORD)
    ks.chmod(0o700)
    (ks / VERIFIER_FILE).chmod(0o644)
    with pytest.raises(KeystoreError, match="too open: chmod 600"):
        Keystore.open(ks, PASSWORD)


# -- change-password -----------------------------------------------------------------------


def test_change_password_reencrypts_every_entry(ks: Path, pw_file: Path, outputs: _Outputs) -> None:
    assert add(outputs, ks, pw_file, "main", SECRETS).returncode == 0
    assert add(outputs, ks, pw_file, "other", OTHER).returncode == 0
    new_pw = _write_secret_file(ks.parent / "new", NEW_PASSWORD)
    result = keys(
        outputs,
        "change-password",
        "--keystore",
        str(ks),
        "--password-file",
        str(pw_file),
        "--new-password-file",
        str(new_pw),
    )
    assert result.returncode == 0, result.stderr
    with pytest.raises(WrongPassword):
        Keystore.open(ks, PASSWORD)
    store = Keystore.open(ks, NEW_PASSWORD)
    assert store.get("main").ccxt_config() == SECRETS and store.get("other").ccxt_config() == OTHER
    assert not [p for p in ks.iterdir() if p.name.endswith(PENDING_SUFFIX) or p.name.endswith(".tmp")]


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.name != ".lock"}


def _lay_out(directory: Path, files: dict[str, bytes]) -> None:
    shutil.rmtree(directory)
    directory.mkdir(mode=0o700)
    for name, data in files.items():
        (directory / name).write_bytes(data)
        (directory / name).chmod(0o600)


def test_a_crash_at_any_point_of_change_password_loses_no_entry(tmp_path: Path) -> None:
    """Every on-disk state change-password passes through opens with exactly one password, whole."""
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    store = Keystore.create(old_dir, PASSWORD)
    entries = {"a": SECRETS, "b": OTHER, "c": {"apiKey": "AK-c", "secret": "SK-c"}}
    for name, fields in entries.items():
        store.add(name, "binance", fields)
    shutil.copytree(old_dir, new_dir)
    Keystore.open(new_dir, PASSWORD).change_password(NEW_PASSWORD)
    old, new = _snapshot(old_dir), _snapshot(new_dir)
    names = [f"{n}{ENTRY_SUFFIX}" for n in entries]
    pending = {VERIFIER_FILE + PENDING_SUFFIX: new[VERIFIER_FILE]}
    states: list[tuple[str, dict[str, bytes], str]] = []
    # Before the commit: the new verifier pending, k new entries pending (+ a half-written temp file).
    for k in range(len(names) + 1):
        files = {**old, **pending, **{n + PENDING_SUFFIX: new[n] for n in names[:k]}}
        files[f".{names[0]}.new.1234abcd.tmp"] = new[names[0]][:10]
        states.append((f"before commit, {k} written", files, PASSWORD))
    # After the commit: the new verifier in place, k entries renamed, the rest still pending.
    for k in range(len(names) + 1):
        files = {**old, VERIFIER_FILE: new[VERIFIER_FILE]}
        files.update({n: new[n] for n in names[:k]})
        files.update({n + PENDING_SUFFIX: new[n] for n in names[k:]})
        states.append((f"after commit, {k} renamed", files, NEW_PASSWORD))
    crash = tmp_path / "crash"
    crash.mkdir()
    for what, files, password in states:
        _lay_out(crash, files)
        wrong = NEW_PASSWORD if password == PASSWORD else PASSWORD
        with pytest.raises(WrongPassword):
            Keystore.open(crash, wrong)
        opened = Keystore.open(crash, password)
        assert {n: opened.get(n).ccxt_config() for n in entries} == entries, what
        left = sorted(p.name for p in crash.iterdir() if p.name != ".lock")
        assert left == sorted([VERIFIER_FILE, *names]), (what, left)


# -- secrets never leak ----------------------------------------------------------------------


def test_credentials_never_show_their_secrets() -> None:
    creds = Credentials("main", "binance", "2026-01-01T00:00:00Z", SECRETS)
    shown = [repr(creds), str(creds), f"{creds}", f"{creds!r}", repr(creds["secret"])]
    shown += [str(creds["secret"]), f"{creds['secret']:>40}", json.dumps({"c": creds}, default=str)]
    for text in shown:
        assert_no_secret(text, "a rendering of Credentials")
    assert "apiKey" in repr(creds) and "binance" in repr(creds)
    for encode in (msgspec.json.encode, msgspec.msgpack.encode, pickle.dumps):
        with pytest.raises(TypeError) as error:
            encode(creds)
        assert_no_secret(str(error.value), f"{encode} error")
    with pytest.raises(TypeError):
        pickle.dumps(creds["secret"])
    record = logging.makeLogRecord({"msg": "unlocked %s", "args": (creds,), "creds": creds})
    assert_no_secret(JsonFormatter().format(record), "a log line")
    # The only ways out in the clear: ccxt's config, and the launch bytes for the signing actor.
    assert Credentials.from_launch(creds.to_launch()) == creds
    assert creds.ccxt_config() == SECRETS


def test_no_secret_in_any_file_or_output_of_the_keys_commands(
    tmp_path: Path, ks: Path, pw_file: Path, outputs: _Outputs
) -> None:
    assert add(outputs, ks, pw_file, "main", SECRETS).returncode == 0
    assert add(outputs, ks, pw_file, "other", OTHER, exchange="kraken").returncode == 0
    assert add(outputs, ks, pw_file, "main", OTHER).returncode == 2  # duplicate
    keys(outputs, "list", "--keystore", str(ks))
    keys(outputs, "list", "--json", "--keystore", str(ks))
    wrong = _write_secret_file(tmp_path / "wrong", "wrong-" + SECRETS["secret"])
    assert (
        keys(outputs, "remove", "other", "--keystore", str(ks), "--password-file", str(wrong)).returncode == 2
    )
    new_pw = _write_secret_file(tmp_path / "new", NEW_PASSWORD)
    args = ["--keystore", str(ks), "--password-file", str(pw_file), "--new-password-file", str(new_pw)]
    assert keys(outputs, "change-password", *args).returncode == 0
    # A damaged entry: its ciphertext flipped.
    other = ks / "other.key"
    data = json.loads(other.read_text())
    data["ciphertext"] = data["ciphertext"][::-1]
    other.write_text(json.dumps(data))
    env = {PASSWORD_ENV: NEW_PASSWORD}
    refused = keys(
        outputs, "change-password", "--keystore", str(ks), "--new-password-file", str(pw_file), env=env
    )
    assert refused.returncode == 2 and str(other) in refused.stderr
    with pytest.raises(KeystoreError) as error:
        Keystore.open(ks, NEW_PASSWORD).get("other")
    outputs.texts.append(str(error.value))
    assert keys(outputs, "remove", "other", "--keystore", str(ks), env=env).returncode == 0
    assert Keystore.open(ks, NEW_PASSWORD).get("main").ccxt_config() == SECRETS
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p not in (pw_file, wrong, new_pw)]
    assert len(written) >= 3
    for path in written:
        assert_no_secret(path.read_bytes(), str(path))
    for text in outputs.texts:
        assert_no_secret(text, "CLI output")


# -- the node: unlock before any process starts ------------------------------------------------


class _Venue(msgspec.Struct, frozen=True):
    """The shape of a ``[[venues]]`` entry as far as keys go (the venue config comes later)."""

    name: str
    exchange: str
    keys: str = ""


class _ConfigWithVenues(msgspec.Struct, frozen=True):
    """What ``unlock_for_config`` reads of a node config: ``[keystore]`` and the venues' ``keys``.

    Not a :class:`~sniperbot.config.Config`: no venue kind has ``keys`` yet (the ccxt venue adds
    it), and ``Config`` validates its venues as the kinds it knows.
    """

    venues: list[_Venue] = []
    keystore: KeystoreSection = KeystoreSection()


def test_unlock_for_config_opens_every_named_key(ks: Path, pw_file: Path, outputs: _Outputs) -> None:
    assert add(outputs, ks, pw_file, "main", SECRETS).returncode == 0
    venues = [_Venue("bn", "binance", "main"), _Venue("bn2", "binance", "main"), _Venue("sim", "sim")]
    config = _ConfigWithVenues(venues=venues)
    environ = {PASSWORD_ENV: PASSWORD, "OTHER": "x"}
    unlocked = unlock_for_config(config, keystore=ks, environ=environ)
    assert list(unlocked) == ["main"] and unlocked["main"].ccxt_config() == SECRETS
    assert environ == {"OTHER": "x"}, "the password must leave the environment actors inherit"
    assert (
        unlock_for_config(config, keystore=ks, password_file=pw_file, environ={})["main"].exchange
        == "binance"
    )

    with pytest.raises(WrongPassword):
        unlock_for_config(config, keystore=ks, environ={PASSWORD_ENV: "wrong password!"})
    with pytest.raises(KeystoreError, match=r"venues\[1\].keys: no keystore entry named 'nope'"):
        unlock_for_config(
            _ConfigWithVenues(venues=[venues[0], _Venue("x", "binance", "nope")]),
            keystore=ks,
            password_file=pw_file,
        )
    with pytest.raises(KeystoreError, match=r"venues\[0\].keys: keystore entry 'main' holds a binance key"):
        unlock_for_config(
            _ConfigWithVenues(venues=[_Venue("k", "kraken", "main")]), keystore=ks, password_file=pw_file
        )
    with pytest.raises(KeystoreError, match=PASSWORD_ENV):
        unlock_for_config(config, keystore=ks, environ={}, interactive=False)
    with pytest.raises(KeystoreError, match="no keystore at"):
        unlock_for_config(config, keystore=ks.parent / "none", environ={PASSWORD_ENV: PASSWORD})
    # No key named and no password given: the keystore is not needed, not even looked for.
    assert unlock_for_config(Config(), keystore=ks.parent / "none", environ={}) == {}


def _node_config(tmp_path: Path, ks: Path) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(FAST_CONFIG + f'\n[keystore]\ndir = "{ks}"\n')
    return path


def test_run_with_a_wrong_password_exits_2_before_anything_starts(
    tmp_path: Path, short_tmp: Path, ks: Path, outputs: _Outputs
) -> None:
    Keystore.create(ks, PASSWORD)
    wrong = _write_secret_file(tmp_path / "wrong", "not the password")
    run_dir = short_tmp / "run"
    run_args = ["--run-dir", str(run_dir), "--password-file", str(wrong), "--duration", "30"]
    result = subprocess.run(
        [sys.executable, "-m", "sniperbot", "run", "--config", str(_node_config(tmp_path, ks)), *run_args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        start_new_session=True,
    )
    assert result.returncode == 2, result.stderr
    assert "wrong password" in result.stderr and str(ks) in result.stderr
    assert not run_dir.exists(), "nothing may start before the keystore is unlocked"
    assert_no_secret(result.stdout + result.stderr, "run output")


def _pids_with(needle: bytes, file: str) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / file).read_bytes():
                    found.add(int(entry.name))
            except OSError:
                pass
    return found


def test_the_password_never_reaches_an_actor_process(
    tmp_path: Path, short_tmp: Path, ks: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Keystore.create(ks, PASSWORD)
    marker = f"sb-keystore-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("SNIPERBOT_TEST_MARKER", marker)
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    node = RunningNode(short_tmp / "run", _node_config(tmp_path, ks))
    try:
        workers = node.wait_ready()
        ours = _pids_with(marker.encode(), "environ")
        assert len(ours) >= len(workers), "the node's actor processes carry the test marker"
        # Only the node's own initial environment (fixed at exec) still holds it; no child has it.
        assert _pids_with(PASSWORD.encode(), "environ") & ours == {node.process.pid}
        assert not _pids_with(PASSWORD.encode(), "cmdline") & ours
    finally:
        assert node.stop() == 0
    for path in (short_tmp / "run").rglob("*"):
        if path.is_file():
            assert_no_secret(path.read_bytes(), str(path))
    assert_no_secret(node.log(), "node log")


def _on_a_terminal(
    args: list[str], answers: list[tuple[str, str]], timeout_s: float = 120.0
) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as its controlling terminal; answer each prompt once seen."""
    import fcntl
    import pty
    import select
    import termios
    import time

    master, slave = pty.openpty()

    def controlling_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    environ = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    process = subprocess.Popen(
        [sys.executable, "-m", "sniperbot", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        preexec_fn=controlling_terminal,  # a test process: no threads to deadlock
        cwd=ROOT,
        env=environ,
    )
    os.close(slave)
    seen, pending = b"", list(answers)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            if pending and pending[0][0].encode() in seen.rsplit(b"\n", 1)[-1]:
                os.write(master, pending.pop(0)[1].encode() + b"\n")
                seen += b"\n"  # a prompt is answered once
            if process.poll() is not None and not ready:
                break
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    assert not pending, f"never prompted for {[p for p, _ in pending]}: {seen!r}"
    return code, seen.decode(errors="replace")


def test_secrets_and_password_are_prompted_on_the_terminal_without_echo(ks: Path) -> None:
    code, shown = _on_a_terminal(
        ["keys", "add", "main", "--exchange", "binance", "--keystore", str(ks)],
        [
            ("binance apiKey: ", SECRETS["apiKey"]),
            ("binance secret: ", SECRETS["secret"]),
            ("new keystore password for", PASSWORD),
            ("again: ", PASSWORD),
        ],
    )
    assert code == 0, shown
    assert "added main (binance)" in shown
    assert_no_secret(shown, "the terminal")  # nothing typed was echoed
    assert Keystore.open(ks, PASSWORD).get("main").ccxt_config() == {
        "apiKey": SECRETS["apiKey"],
        "secret": SECRETS["secret"],
    }


def test_a_multi_line_pem_secret_goes_through_stdin_intact(
    ks: Path, pw_file: Path, outputs: _Outputs
) -> None:
    """Coinbase's secret is an EC private key in PEM: its line breaks must survive."""
    pem = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIPEMtest0123\nabcdef==\n-----END EC PRIVATE KEY-----\n"
    fields = {"apiKey": "organizations/org-1/apiKeys/key-1", "secret": pem}
    assert add(outputs, ks, pw_file, "cb", fields, exchange="coinbase").returncode == 0
    assert Keystore.open(ks, PASSWORD).get("cb").ccxt_config() == fields


def test_a_keys_command_waits_for_another_holding_the_keystore_lock(
    ks: Path, pw_file: Path, outputs: _Outputs
) -> None:
    """Two commands never interleave (one could otherwise undo the other's half-done change)."""
    import fcntl
    import platform

    from sniperbot.keystore.store import LOCK_FILE
    from tests.conftest import eventually

    flock_syscall = {"x86_64": 73, "aarch64": 32}.get(platform.machine())
    if flock_syscall is None:
        pytest.skip(f"flock syscall number unknown on {platform.machine()}")
    Keystore.create(ks, PASSWORD)
    environ = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    args = ["--stdin", "--keystore", str(ks), "--password-file", str(pw_file)]
    holder = os.open(ks / LOCK_FILE, os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)
    process = subprocess.Popen(
        [sys.executable, "-m", "sniperbot", "keys", "add", "main", "--exchange", "binance", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=environ,
        start_new_session=True,
    )
    try:
        assert process.stdin is not None
        process.stdin.write(json.dumps(SECRETS))
        process.stdin.close()

        def blocked_in_flock() -> bool:
            assert process.poll() is None, "finished while another held the lock"
            fields = Path(f"/proc/{process.pid}/syscall").read_text().split()
            return bool(fields) and fields[0] == str(flock_syscall)

        eventually(blocked_in_flock, 60.0, what="keys add waiting for the keystore lock")
        assert not (ks / "main.key").exists()
    finally:
        os.close(holder)  # releases the lock
    assert process.wait(timeout=120) == 0, process.stderr.read() if process.stderr else ""
    assert Keystore.open(ks, PASSWORD).get("main").ccxt_config() == SECRETS
