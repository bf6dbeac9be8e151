"""Hostile input against a real node (issue #8, points 2, 4 and 5).

Point 2: generated, structured hostile frames (deep nesting, huge collections, wrong
types in every field, wrong tags, truncated msgpack, valid envelopes around garbage)
sent to every socket a real node binds: the node lives, no actor restarts, the frames
are counted, trading goes on.
Point 4: hostile admin input is refused, naming the field, before anything changes; a
child that cannot start is not kept.
Point 5: the run dir is 0700 and every socket 0600 whatever the umask, and another
local user cannot connect to any of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket as sockets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zmq

from sniperbot.messages import Envelope, Heartbeat, Payload, encode_envelope
from sniperbot.messages import topics as topic
from sniperbot.transport.bus import MAX_FRAME_BYTES
from tests.conftest import FAST_CONFIG, ROOT, RunningNode, eventually, sniperbot

_enc = msgspec.msgpack.encode
DEPTH = 2_000  # deeper than CPython's recursion limit, still a ~2 KB frame


# -- generators of hostile frames ---------------------------------------------------------------


def deep_msgpack(depth: int = DEPTH) -> bytes:
    """``[[[...nil...]]]``: one-element arrays nested ``depth`` deep (msgspec cannot encode it)."""
    return b"\x91" * depth + b"\xc0"


def raw_map(fields: list[tuple[str, bytes]]) -> bytes:
    """A msgpack map from already-encoded values (so that values can be hostile bytes)."""
    assert len(fields) < 16
    return bytes([0x80 | len(fields)]) + b"".join(_enc(k) + v for k, v in fields)


def raw_envelope(payload: bytes, topic_name: str = "x", sender: str = "mallory", seq: int = 1) -> bytes:
    """A well-formed envelope array around raw payload bytes."""
    return b"\x96" + _enc(topic_name) + _enc(sender) + _enc(1) + _enc(seq) + _enc(1) + payload


def _wrong_value(field_type: msgspec.inspect.Type) -> bytes:
    """An encoded value of a type that ``field_type`` does not accept."""
    return _enc(12345) if isinstance(field_type, msgspec.inspect.StrType) else _enc("not-the-right-type")


def hostile_envelopes() -> list[bytes]:
    """Every kind of envelope frame that must be dropped, generated from the vocabulary."""
    frames: list[bytes] = []
    hb = [("t", _enc("hb")), ("seq", _enc(1)), ("ts_ns", _enc(1))]
    # deep nesting: in an unknown payload field, in a known field, as the payload, as a header field
    frames.append(raw_envelope(raw_map([*hb, ("zz", deep_msgpack())])))
    frames.append(raw_envelope(raw_map([("t", _enc("snapshot_req")), ("topics", deep_msgpack())])))
    frames.append(raw_envelope(deep_msgpack()))
    frames.append(b"\x96" + deep_msgpack())
    frames.append(deep_msgpack())
    # huge collections: a big one of the wrong element type, and headers that lie about their size
    frames.append(raw_envelope(raw_map([("t", _enc("snapshot_req")), ("topics", _enc([0] * 200_000))])))
    frames.append(raw_envelope(raw_map([*hb, ("zz", _enc(list(range(100_000))))])))
    frames.append(raw_envelope(b"\xdd\xff\xff\xff\xff"))  # array32 of 4 billion, no data
    frames.append(raw_envelope(b"\xdf\xff\xff\xff\xff"))  # map32 of 4 billion, no data
    frames.append(b"\xdb\xff\xff\xff\xff")  # str32 of 4 GB, no data
    # wrong types in every field of every payload kind, and in every envelope field
    for cls in Payload.__args__:  # type: ignore[attr-defined]
        info = msgspec.inspect.type_info(cls)
        for field in info.fields:  # type: ignore[attr-defined]
            wrong = _wrong_value(field.type)
            frames.append(raw_envelope(raw_map([("t", _enc(info.tag)), (field.encode_name, wrong)])))
    for index in range(6):
        header = [_enc("x"), _enc("mallory"), _enc(1), _enc(1), _enc(1), raw_map(hb)]
        header[index] = _enc({"wrong": "type"}) if index < 5 else _enc(7)
        frames.append(b"\x96" + b"".join(header))
    frames.append(raw_envelope(raw_map([*hb[1:], ("t", _enc(2**63))])))  # an int where a tag goes
    # wrong tags
    frames.append(raw_envelope(raw_map([("t", _enc("no_such_tag"))])))
    frames.append(raw_envelope(raw_map([("t", _enc(3))])))
    frames.append(raw_envelope(raw_map(hb[1:])))  # no tag at all
    # overflowing numbers and undecodable text
    frames.append(raw_envelope(raw_map([*hb[:2], ("ts_ns", _enc(1.7e308))])))  # a float where an int goes
    frames.append(raw_envelope(raw_map([*hb[:2], ("ts_ns", b"\xcf" + b"\xff" * 8)])))  # 2**64-1 > int64
    frames.append(b"\x96\xa2\xff\xfe" + _enc("mallory") + _enc(1) * 3 + raw_map(hb))  # invalid UTF-8 topic
    frames.append(raw_envelope(raw_map([*hb, ("zz", b"\xc1")])))  # 0xc1: never valid msgpack
    # valid envelopes around garbage payloads
    for garbage in (_enc(None), _enc("text"), _enc(b"\x00" * 64), _enc(3.5), _enc([1, 2, 3]), b"\x80"):
        frames.append(raw_envelope(garbage))
    # every truncation of a valid envelope
    valid = encode_envelope(Envelope("x", "mallory", 1, 1, 1, Heartbeat(seq=1, ts_ns=1)))
    frames.extend(valid[:cut] for cut in range(len(valid)))
    frames.append(os.urandom(256))
    return frames


def hostile_admin_requests() -> list[bytes]:
    """Admin JSON requests that do not decode to a valid request."""
    deep = b"[" * DEPTH + b"]" * DEPTH
    deep_obj = b'{"a":' * DEPTH + b"1" + b"}" * DEPTH
    return [
        b'{"cmd": "ping", "args": {"x": ' + deep + b"}}",  # deep in admin JSON (args is any JSON)
        b'{"cmd": "ping", "args": ' + deep_obj + b"}",
        b'{"cmd": ' + deep + b"}",
        deep,
        b'{"cmd": "ping", "args": {"x": [' + b"0," * 20_000 + b"0]}, ",  # big and truncated
        b'{"cmd": 1}',
        b'{"cmd": "no_such_command"}',
        b'{"cmd": "ping", "args": []}',
        b'{"cmd": "ping", "bogus": 1}',
        b'{"cmd": "ping", "args": {"x": 1e999999}}',
        b'{"cmd": "\xff\xfe"}',
        b"",
        b"\x00\x01\x02",
    ]


# -- helpers ------------------------------------------------------------------------------------


def _status(node: RunningNode) -> dict[str, Any]:
    return node.admin("status")


def _restarts(node: RunningNode) -> dict[str, tuple[int, int]]:
    return {k: (w["restarts"], w["incarnation"]) for k, w in node.workers().items()}


def _admin_raw(endpoint: str, frame: bytes, curve: dict[str, bytes] | None = None) -> dict[str, Any]:
    """Send one raw frame to an admin socket and return the JSON reply."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if curve is not None:
        sock.curve_serverkey = curve["server"]
        sock.curve_publickey = curve["public"]
        sock.curve_secretkey = curve["secret"]
    try:
        sock.connect(endpoint)
        sock.send(frame)
        assert sock.poll(20_000), f"no reply from {endpoint} to {frame[:60]!r}"
        return json.loads(sock.recv())
    finally:
        sock.close(0)


def _send_frames(ctx: zmq.Context, kind: int, endpoint: str, messages: list[list[bytes]]) -> None:
    # To the bus we publish from an XPUB: like a PUB it drops what nobody subscribed to, but
    # it shows the proxy's subscriptions, so we send once they arrived (no timing guess).
    sock = ctx.socket(zmq.XPUB if kind == zmq.PUB else kind)
    sock.setsockopt(zmq.LINGER, 2000)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.connect(endpoint)
    try:
        if kind == zmq.PUB:
            assert sock.poll(10_000), f"no subscription from {endpoint}"
            while sock.poll(200):  # the proxy sends all of its subscriptions on connect
                sock.recv()
        for frames in messages:
            sock.send_multipart(frames)
    finally:
        sock.close()


@pytest.fixture
def curve_node(short_tmp: Path) -> Iterator[tuple[RunningNode, str, dict[str, bytes]]]:
    """A node on the fast config with the CURVE TCP admin open to one client key."""
    from zmq.auth import load_certificate

    keys, allowed = short_tmp / "keys", short_tmp / "allowed"
    for name in ("server", "alice"):
        assert sniperbot("keygen", "--dir", str(keys), "--name", name).returncode == 0
    allowed.mkdir()
    shutil.copy(keys / "alice.key", allowed / "alice.key")
    with sockets.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = short_tmp / "tcp.toml"
    config.write_text(
        FAST_CONFIG
        + f'\n[admin]\ntcp_endpoint = "tcp://127.0.0.1:{port}"\n'
        + f'server_key = "{keys / "server.key_secret"}"\nauthorized_clients = "{allowed}"\n'
    )
    server_public, _ = load_certificate(keys / "server.key")
    public, secret = load_certificate(keys / "alice.key_secret")
    assert secret is not None
    running = RunningNode(short_tmp / "run", config)
    try:
        yield (
            running,
            f"tcp://127.0.0.1:{port}",
            {"server": server_public, "public": public, "secret": secret},
        )
    finally:
        if running.process.poll() is None:
            running.stop()


# -- point 2 ------------------------------------------------------------------------------------


def test_hostile_frames_on_every_socket_are_dropped_and_counted(
    curve_node: tuple[RunningNode, str, dict[str, bytes]],
) -> None:
    node, tcp_admin, curve = curve_node
    workers = node.wait_ready(40)
    run_dir = node.run_dir
    eventually(lambda: _status(node)["fills"] > 0, 60, what="first fills")
    before = _status(node)
    restarts_before = _restarts(node)
    frames = hostile_envelopes()
    ctx = zmq.Context()
    try:
        attacked: set[str] = set()
        # the bus: every topic prefix an actor or the node follows, the Ready topic included
        bus_topics = [
            topic.READY + "feed.sim",
            topic.READY,
            topic.quote("sim", "BTC/USDT"),
            topic.trade("sim", "BTC/USDT"),
            topic.fill("fast_btc"),
            topic.order_update("fast_btc"),
            topic.breaker("global"),
            topic.STATUS_PORTFOLIO,
            topic.STATUS_RISK,
            "sim",
            "",
        ]
        bus = [[t.encode(), f] for t in bus_topics for f in frames]
        bus += [[topic.READY.encode()], [b"ctl.ready.x", b"", b"extra"]]  # wrong frame counts
        _send_frames(ctx, zmq.PUB, f"ipc://{run_dir / 'bus-in.sock'}", bus)
        attacked.add("bus-in.sock")
        # the supervisors' control socket (as an unknown sender, and with wrong frame counts)
        _send_frames(
            ctx, zmq.DEALER, f"ipc://{run_dir / 'control.sock'}", [[f] for f in frames] + [[b"a", b"b"]]
        )
        attacked.add("control.sock")
        # every actor's inbox
        inboxes = sorted(p.name for p in run_dir.glob("inbox-*.sock"))
        assert {f"inbox-{w}.sock" for w in ("executor.sim", "paper.sim", "risk_guard")} <= set(inboxes)
        for name in inboxes:
            _send_frames(ctx, zmq.DEALER, f"ipc://{run_dir / name}", [[f] for f in frames] + [[b"a", b"b"]])
            attacked.add(name)
        # every actor's local-bus socket (sniperbot.transport.fanout): datagrams, as local publishers
        # send them, and subscribe requests that are not
        subs = sorted(p.name for p in run_dir.glob("sub-*.sock"))
        assert {f"sub-{w}.sock" for w in ("executor.sim", "paper.sim", "risk_guard")} <= set(subs)
        for name in subs:
            direct = sockets.socket(sockets.AF_UNIX, sockets.SOCK_SEQPACKET)
            direct.connect(str(run_dir / name))
            for message in [t.encode() + b"\0" + f for t in bus_topics for f in frames] + [b"\x02", *frames]:
                with contextlib.suppress(OSError):  # EMSGSIZE: a frame larger than a datagram
                    direct.send(message)
            direct.close()
            attacked.add(name)
        # the unix admin socket and the CURVE TCP admin: each bad request is answered, not fatal
        for frame in hostile_admin_requests():
            for endpoint, keys in ((f"ipc://{run_dir / 'admin.sock'}", None), (tcp_admin, curve)):
                answer = _admin_raw(endpoint, frame, keys)
                assert answer["ok"] is False and answer["error"]["code"] == "invalid_message", answer
        attacked.add("admin.sock")
        # bus-out is the proxy's XPUB: a peer can only send subscriptions there, which libzmq parses
        assert attacked | {"bus-out.sock"} == {p.name for p in run_dir.glob("*.sock")}
        # a frame past the size limit: libzmq drops it and disconnects the sender
        big = [b"md.sim.quote.BTC/USDT.", b"\x00" * (MAX_FRAME_BYTES + 1)]
        _send_frames(ctx, zmq.PUB, f"ipc://{run_dir / 'bus-in.sock'}", [big])
        for name in ("control.sock", "inbox-executor.sim.sock"):
            _send_frames(ctx, zmq.DEALER, f"ipc://{run_dir / name}", [[b"\x00" * (MAX_FRAME_BYTES + 1)]])
    finally:
        ctx.destroy(linger=2000)  # an oversized frame is never taken: do not wait for it forever

    # every frame was counted as invalid: the node's own sockets and the actors' (via heartbeats)
    expected = len(frames) * 2  # at the very least control + one inbox
    after = eventually(
        lambda: (s := _status(node))["invalid_frames"] >= before["invalid_frames"] + expected and s,
        30,
        what="invalid frames counted",
    )
    assert node.process.poll() is None, node.log()
    assert _restarts(node) == restarts_before, node.log()
    assert after["actors"] == len(workers)
    # and it still trades
    eventually(lambda: _status(node)["fills"] > after["fills"], 60, what="fills after the attack")
    assert "Traceback" not in node.log()
    assert node.stop() == 0


# -- point 4 ------------------------------------------------------------------------------------


HOSTILE_ADD_STRATEGY: list[tuple[str, dict[str, Any], str, str]] = [
    # (case, raw args, expected code, what the message must name)
    ("slash-id", {"id": "a/b"}, "invalid_spec", "id"),
    ("space-id", {"id": "a b"}, "invalid_spec", "id"),
    ("dotdot-id", {"id": "..x"}, "invalid_spec", "id"),
    ("dotdot-inside-id", {"id": "a..b"}, "invalid_spec", "id"),
    ("5000-char-id", {"id": "x" * 5000}, "invalid_spec", "id"),
    ("300-char-id", {"id": "y" * 300}, "invalid_spec", "id"),
    ("number-id", {"id": 7}, "invalid_spec", "id"),
    ("string-quantity", {"quantity": "0.1"}, "invalid_spec", "quantity"),
    ("zero-quantity", {"quantity": 0}, "invalid_spec", "quantity"),
    ("negative-quantity", {"quantity": -1.0}, "invalid_spec", "quantity"),
    ("null-quantity", {"quantity": None}, "invalid_spec", "quantity"),  # what --quantity nan sends
    ("bool-quantity", {"quantity": True}, "invalid_spec", "quantity"),
    ("tiny-bar", {"bar_interval_s": 1e-10}, "invalid_spec", "bar_interval_s"),
    ("null-bar", {"bar_interval_s": None}, "invalid_spec", "bar_interval_s"),
    ("unknown-symbol", {"symbol": "DOGE/USDT"}, "invalid_spec", "symbol"),
    ("bad-params", {"params": {"fast": 9, "slow": 2}}, "invalid_spec", "params"),
    ("nested-params", {"params": {"fast": {"a": [1]}}}, "invalid_spec", "params"),
    ("unknown-arg", {"colour": "red"}, "invalid_message", "colour"),
]


def _add_strategy_raw(node: RunningNode, args: dict[str, Any]) -> dict[str, Any]:
    request = {"cmd": "add_strategy", "args": {"id": "evil", "strategy": "sma_cross", **args}}
    return _admin_raw(f"ipc://{node.run_dir / 'admin.sock'}", json.dumps(request).encode())


def test_hostile_admin_input_is_refused_naming_the_field_and_nothing_is_kept(node: RunningNode) -> None:
    node.wait_ready(40)
    for case, args, code, field in HOSTILE_ADD_STRATEGY:
        answer = _add_strategy_raw(node, args)
        assert answer["ok"] is False, (case, answer)
        assert answer["error"]["code"] == code, (case, answer)
        assert field in answer["error"]["message"], (case, answer)
        assert node.process.poll() is None, (case, node.log())
    # the CLI refuses the same way (nan and inf are never replaced by the default quantity)
    for flags, field in [
        (("--quantity", "nan"), "quantity"),
        (("--quantity", "inf"), "quantity"),
        (("--quantity", "0"), "quantity"),
        (("--bar-interval", "1e-10"), "bar_interval_s"),
        (("--id", "../../etc"), "id"),
    ]:
        args = ("--id", "evil", "--strategy", "sma_cross", *flags)
        result = sniperbot("admin", "--run-dir", str(node.run_dir), "add-strategy", *args, "--json")
        assert result.returncode == 1, (flags, result.stdout, result.stderr)
        body = json.loads(result.stdout)
        assert body["code"] == "invalid_spec" and field in body["message"], (flags, body)
    # start-child with raw specs: bad ids, non-finite numbers, an actor that is not one
    for spec, field in [
        ({"id": "a/b", "actor": "sniperbot.actors.strategy:StrategyActor"}, "id"),
        ({"id": "z" * 300, "actor": "sniperbot.actors.strategy:StrategyActor"}, "id"),
        ({"id": "ok", "actor": "sniperbot.actors.strategy:StrategyActor", "shutdown_s": "inf"}, "shutdown_s"),
        ({"id": "ok", "actor": "os:system"}, "Actor"),
        ({"id": "ok", "actor": "no.such.module:X"}, "no.such"),
    ]:
        request = {"cmd": "start_child", "args": {"sup": "strategies", "spec": spec}}
        answer = _admin_raw(f"ipc://{node.run_dir / 'admin.sock'}", json.dumps(request).encode())
        assert answer["ok"] is False and answer["error"]["code"] == "invalid_spec", (spec, answer)
        assert field in answer["error"]["message"], (spec, answer)
    # a spec that passes validation but cannot start is not kept, in the tree or the journal
    broken = {"id": "broken", "actor": "sniperbot.actors.strategy:StrategyActor", "args": {}}
    request = {"cmd": "start_child", "args": {"sup": "strategies", "spec": broken}}
    answer = _admin_raw(f"ipc://{node.run_dir / 'admin.sock'}", json.dumps(request).encode())
    assert answer["ok"] is False and answer["error"]["code"] == "start_failed", answer
    assert "broken" not in node.workers()
    assert "evil" not in json.dumps(node.admin("tree"))
    # a valid hot-add still works, then the node restarts cleanly with only that one kept
    answer = _add_strategy_raw(node, {"id": "good", "quantity": 0.01, "params": {"fast": 2, "slow": 4}})
    assert answer["ok"] is True, answer
    assert node.process.poll() is None
    assert node.stop() == 0
    again = RunningNode(node.run_dir, _config_of(node))
    try:
        workers = again.wait_ready(40)
        assert "strategy.good" in workers and "broken" not in workers
        assert all(w["restarts"] == 0 for w in workers.values())
    finally:
        assert again.stop() == 0


def _config_of(node: RunningNode) -> Path:
    """The --config path a RunningNode was started with."""
    args = node.process.args
    assert isinstance(args, list)
    return Path(args[args.index("--config") + 1])


# -- point 5 ------------------------------------------------------------------------------------

OTHER_USER = "sniperbot-other"

_PROBE = """
import json, socket, sys
result = {}
for path in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        s.sendall(bytes.fromhex("ff00000000000000"))
        result[path] = "connected"
    except OSError as e:
        result[path] = e.__class__.__name__
    finally:
        s.close()
print(json.dumps(result))
"""


class _UmaskZeroNode(RunningNode):
    """``(umask 000; sniperbot run ...)``: a node started by a careless shell."""

    def __init__(self, run_dir: Path, config: Path) -> None:
        self.run_dir = run_dir
        self.log_path = run_dir.parent / f"{run_dir.name}.log"
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "sniperbot",
                    "run",
                    "--config",
                    str(config),
                    "--run-dir",
                    str(run_dir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                preexec_fn=lambda: os.umask(0),
            )


def _other_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(OTHER_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", OTHER_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(OTHER_USER)


def test_run_dir_and_sockets_are_private_whatever_the_umask(short_tmp: Path, fast_config: Path) -> None:
    """``mkdir -m 755 RD; (umask 000; sniperbot run --run-dir RD)``: another user reaches nothing."""
    os.chmod(short_tmp, 0o755)  # let the other user reach RD itself: only RD's own mode protects it
    run_dir = short_tmp / "run"
    run_dir.mkdir(mode=0o755)
    os.chmod(run_dir, 0o755)
    node = _UmaskZeroNode(run_dir, fast_config)
    process = node.process
    try:
        workers = node.wait_ready(40)
        socks = sorted(run_dir.glob("*.sock"))
        assert {p.name for p in socks} >= {"admin.sock", "bus-in.sock", "bus-out.sock", "control.sock"}
        assert len([p for p in socks if p.name.startswith("inbox-")]) >= 3, socks
        assert oct(run_dir.stat().st_mode & 0o777) == "0o700"
        modes = {p.name: oct(p.stat().st_mode & 0o777) for p in socks}
        assert set(modes.values()) == {"0o600"}, modes
        if os.geteuid() != 0:
            pytest.skip("modes checked; a second user needs root to test")
        other = _other_user()
        python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
        probe = subprocess.run(
            [python, "-c", _PROBE, *map(str, socks)],
            capture_output=True,
            text=True,
            timeout=30,
            cwd="/",
            env={"PATH": "/usr/bin:/bin"},
            user=other.pw_uid,
            group=other.pw_gid,
            extra_groups=[],
        )
        assert probe.returncode == 0, probe.stderr
        assert set(json.loads(probe.stdout).values()) == {"PermissionError"}, probe.stdout
        assert node.process.poll() is None
        assert all(w["restarts"] == 0 for w in node.workers().values()) and workers
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
