"""Market-data throughput between two actor processes through the node's bus, vs raw PUB/SUB.

Ours: a BusProxy (XSUB/XPUB thread, as in the node) in this process, a
publisher actor and a subscriber actor, each a real ActorRuntime in its own
process started by sniperbot's Launcher (forkserver). The publisher publishes
N Quote messages back to back through ``ctx.publish``; the subscriber counts
them in ``on_message``. As in a node, the two actors send each other bus messages
directly (``[node] local_bus``, :mod:`sniperbot.transport.fanout`; the proxy gets a marked
copy); printed beside it, the same two actors with every message through the proxy.

Raw (the floor): an XPUB process and a SUB process from the same forkserver,
one ipc hop, sending ``[topic, msgpack(Quote)]`` and decoding each on receipt.
Printed beside it, not the floor: the same with ``send_multipart``/``recv_multipart``,
and with one frame ``topic + NUL + msgpack`` (the bus's own wire format, without the
proxy hop and the envelope).

Rate = messages received / (last receive - first send). PUB/XPUB drop past
their high-water mark (100,000, as on the bus), so received may be < sent.
Target: ours >= 0.5 x raw. Then the same burst once more, paced at 0.5 x the
floor's rate: below the target rate the bus must lose nothing (target 0 dropped).
"""

from __future__ import annotations

import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))  # bench.*; PYTHONPATH wins for sniperbot

import msgspec
import zmq

from bench._common import emit, parse_args, ratio, reap, short_tmp, verdict, wait_for
from bench.bench_actors import BUS_DATA, BusSubscriber, bench_quote
from sniperbot.actors.placement import Launcher
from sniperbot.actors.runtime import ActorLaunch, ActorRuntime
from sniperbot.config import Config
from sniperbot.messages import Envelope, Quote, Ready, Stop, decode_envelope, encode_envelope
from sniperbot.rundir import RunDir
from sniperbot.topology import build_tree, preload_modules
from sniperbot.transport.bus import TOPIC_END, BusProxy, Publisher, split_message

TARGET_RATIO = 0.5


def _read(path: Path, timeout_s: float, what: str) -> dict[str, Any]:
    wait_for(path.exists, timeout_s, what, interval_s=0.01)
    return msgspec.json.decode(path.read_bytes())


def _figures(result: dict[str, Any]) -> dict[str, Any]:
    elapsed_s = (result["t_last_ns"] - result["t_start_ns"]) / 1e9
    return {
        "sent": result["sent"],
        "received": result["received"],
        "dropped": result["sent"] - result["received"],
        "recv_rate": result["received"] / elapsed_s if elapsed_s > 0 else 0.0,
        "send_rate": result["sent"] / (result["send_ns"] / 1e9) if result["send_ns"] else 0.0,
        "elapsed_s": round(elapsed_s, 3),
    }


class OursHarness:
    """Bus proxy and control ROUTER of a node, without the node; actors started by the Launcher."""

    def __init__(self, work: Path) -> None:
        self.rundir = RunDir(work / "run")
        self.rundir.create()
        self.zctx = zmq.Context()
        self.proxy = BusProxy(self.zctx, self.rundir.bus_in, self.rundir.bus_out)
        self.proxy.start()
        # Actors send Ready and heartbeats here; with a huge heartbeat interval they
        # never miss the supervisor, so nobody needs to answer.
        self.control = self.zctx.socket(zmq.ROUTER)
        self.control.setsockopt(zmq.LINGER, 0)
        self.control.bind(self.rundir.control)
        self.launcher = Launcher(
            self.zctx, preload=[*preload_modules(build_tree(Config())), "bench.bench_actors"]
        )
        self.incarnation = 0
        self.handles: list[Any] = []
        self.local_bus = True  # [node] local_bus for the actors started next

    def start(self, actor_id: str, actor: str, args: dict[str, Any]) -> tuple[Any, bytes]:
        """Start one actor process and wait for its Ready on the control socket."""
        self.incarnation += 1
        launch = ActorLaunch(
            actor_id=actor_id,
            actor=actor,
            args=args,
            run_dir=str(self.rundir.path),
            incarnation=self.incarnation,
            heartbeat_interval_s=3600.0,
            heartbeat_liveness=100,
            journal_durability="process",
            local_bus=self.local_bus,
        )
        handle = self.launcher.start(launch, "process")
        self.handles.append(handle)
        identity = f"{actor_id}#{self.incarnation}".encode()
        deadline = time.monotonic() + 20
        while True:  # other control traffic (a SnapshotRequest, say) goes unanswered
            if not self.control.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                raise TimeoutError(f"{actor_id} did not report Ready")
            frames = self.control.recv_multipart()
            if frames[0] == identity and isinstance(decode_envelope(frames[1]).payload, Ready):
                return handle, identity

    def stop(self, handle: Any, identity: bytes) -> None:
        """Ask the actor to stop (as its supervisor would); kill it if it does not."""
        frame = encode_envelope(Envelope("ctl", "node", 0, 0, time.time_ns(), Stop()))
        self.control.send_multipart((identity, frame))
        deadline = time.monotonic() + 5
        while handle.exitcode() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if handle.exitcode() is None:
            handle.kill()
        handle.release()
        self.handles.remove(handle)

    def run(
        self, work: Path, rep: int | str, count: int, rate: float = 0.0, local_bus: bool = True
    ) -> dict[str, Any]:
        """One measurement: subscriber first, then the publisher (which waits for the go).

        ``local_bus``: actor to actor directly (sniperbot.transport.fanout), else through the proxy.
        """
        self.local_bus = local_bus
        out = work / f"ours-{rep}-{local_bus}.json"
        sub = self.start("bench.sub", "bench.bench_actors:BusSubscriber", {"out": str(out)})
        pub = self.start("bench.pub", "bench.bench_actors:BusPublisher", {"count": count, "rate": rate})
        try:
            result = _read(out, 120, "the subscriber's result")
        finally:
            self.stop(*pub)
            self.stop(*sub)
        return _figures(result)

    def close(self) -> None:
        """Kill actors still running, stop the proxy, close every socket."""
        for handle in self.handles:
            if handle.exitcode() is None:
                handle.kill()
        self.control.close(0)
        self.proxy.stop()
        self.zctx.destroy(linger=0)


def run_raw(work: Path, rep: int, count: int, mode: str) -> dict[str, Any]:
    """One raw measurement in two processes of the same forkserver (``mode``: see ``bench._raw.bus_pub``)."""
    from bench import _raw

    mp = multiprocessing.get_context("forkserver")
    name = f"raw-{mode}-{rep}"
    endpoint = f"ipc://{work}/{name}.sock"
    out = work / f"{name}.json"
    pub = mp.Process(target=_raw.bus_pub, args=(endpoint, count, str(out), mode), name="raw-pub")
    sub = mp.Process(target=_raw.bus_sub, args=(endpoint, str(out), mode), name="raw-sub")
    pub.start()
    sub.start()
    try:
        result = _read(out, 120, "the raw subscriber's result")
    finally:
        reap((pub, sub), 5)
    return _figures(result)


def cost_breakdown(harness: OursHarness, work: Path, n: int) -> dict[str, float]:
    """Per-message CPU cost of each side, measured in this process, one side at a time.

    Publish: sniperbot's ``Publisher.publish`` (to the proxy) vs the same
    envelope sent with two ``send`` calls and an int SNDMORE flag. Receive: a real
    ``ActorRuntime.step`` loop (drain, decode, dispatch to the actor) vs a plain
    SUB doing two ``recv`` calls and ``decode_envelope``. Raw: the floor's send
    and receive loops. The payload is one prebuilt Quote (its construction,
    ~0.3 µs, is left out); the throughput of a pair is bounded by its slower side.
    """
    zctx, rundir = harness.zctx, harness.rundir
    quote = bench_quote(1)
    sndmore = int(zmq.SNDMORE)
    noblock = int(zmq.NOBLOCK)
    out: dict[str, float] = {}

    runtime = ActorRuntime(
        ActorLaunch(
            actor_id="bench.inproc",
            actor="bench.bench_actors:BusSubscriber",
            args={"out": str(work / "inproc.json")},
            run_dir=str(rundir.path),
            incarnation=1,
            heartbeat_interval_s=3600.0,
            heartbeat_liveness=100,
        ),
        zctx,
    )
    runtime.open()
    actor = runtime.actor
    assert isinstance(actor, BusSubscriber)
    plain = zctx.socket(zmq.SUB)
    plain.setsockopt(zmq.RCVHWM, 0)
    plain.setsockopt(zmq.SUBSCRIBE, b"md.bench.")
    plain.connect(rundir.bus_out)
    pub = Publisher(zctx, rundir.bus_in, "bench.inproc.pub", 1)
    sock = pub.socket
    topic_b = BUS_DATA.encode()
    head = topic_b + TOPIC_END
    try:
        # Until both subscriptions have reached the publisher, messages are dropped.
        def subscribed() -> bool:
            pub.publish(BUS_DATA, quote)
            runtime.step(5)
            return actor.received > 0 and plain.poll(5) != 0

        wait_for(subscribed, 10, "in-process subscription")
        time.sleep(0.1)

        def settle() -> None:
            """Let in-flight messages arrive, drop them, reset the count."""
            time.sleep(0.2)
            while True:
                before = runtime.handled
                runtime.step(5)
                if runtime.handled == before:
                    break
            while plain.poll(0):
                plain.recv_multipart()
            actor.received = 0

        settle()
        t = time.perf_counter_ns()
        for _ in range(n):
            pub.publish(BUS_DATA, quote)
        out["publish_us"] = (time.perf_counter_ns() - t) / n / 1e3
        time.sleep(0.3)  # the proxy forwards everything to both subscribers
        t = time.perf_counter_ns()
        while actor.received < n:
            runtime.step(100)
        out["runtime_receive_us"] = (time.perf_counter_ns() - t) / n / 1e3
        t = time.perf_counter_ns()
        got = 0
        while got < n:
            try:
                decode_envelope(split_message(plain.recv(noblock))[1])
            except zmq.Again:
                if not plain.poll(1000):
                    raise RuntimeError("messages went missing in the cost breakdown") from None
                continue
            got += 1
        out["recv_split_decode_us"] = (time.perf_counter_ns() - t) / n / 1e3

        settle()
        seq = pub.seq
        t = time.perf_counter_ns()
        for _ in range(n):
            seq += 1
            frame = encode_envelope(Envelope(BUS_DATA, "bench.inproc.pub", 1, seq, time.time_ns(), quote))
            sock.send(head + frame)
        out["one_send_publish_us"] = (time.perf_counter_ns() - t) / n / 1e3
        pub.seq = seq
        time.sleep(0.3)
        while plain.poll(0):
            plain.recv_multipart()

        encode = msgspec.msgpack.encode
        t = time.perf_counter_ns()
        for _ in range(n):
            sock.send(topic_b, sndmore)
            sock.send(encode(quote))
        out["raw_send_us"] = (time.perf_counter_ns() - t) / n / 1e3
        time.sleep(0.3)
        decode = msgspec.msgpack.Decoder(Quote).decode
        t = time.perf_counter_ns()
        for _ in range(n):
            plain.recv()
            decode(plain.recv())
        out["raw_receive_us"] = (time.perf_counter_ns() - t) / n / 1e3
    finally:
        pub.close()
        plain.close(0)
        runtime.close(clean=False)
    return {k: round(v, 2) for k, v in out.items()}


def main() -> int:
    """Measure, print, emit the JSON line."""
    args = parse_args(
        __doc__.splitlines()[0],
        lambda p: p.add_argument("--count", type=int, default=0, help="messages per run"),
    )
    count = args.count or (200_000 if args.quick else 1_000_000)
    reps = 1 if args.quick else 3
    print(f"bus throughput: {count:,} Quote messages per run, {reps} run(s) each, interleaved")
    runs: dict[str, list[dict[str, Any]]] = {
        "raw": [],
        "raw_multipart": [],
        "raw_one_frame": [],
        "ours": [],
        "ours_via_proxy": [],
    }
    with short_tmp("sb-bus-") as work:
        harness = OursHarness(work)
        try:
            for rep in range(reps):
                runs["raw"].append(run_raw(work, rep, count, "frames"))
                runs["raw_multipart"].append(run_raw(work, rep, count, "multipart"))
                runs["raw_one_frame"].append(run_raw(work, rep, count, "one_frame"))
                runs["ours"].append(harness.run(work, rep, count))
                runs["ours_via_proxy"].append(harness.run(work, rep, count, local_bus=False))
                for name, series in runs.items():
                    r = series[-1]
                    print(
                        f"  run {rep + 1} {name:<13}: received {r['received']:>9,} of {r['sent']:,} "
                        f"({r['dropped']:,} dropped) {r['recv_rate'] / 1e6:6.3f} M msgs/s received; "
                        f"publisher sent {r['send_rate'] / 1e6:6.3f} M msgs/s"
                    )
            # Below the target rate nothing may be lost: the same burst paced at TARGET_RATIO x the floor.
            pace = TARGET_RATIO * statistics.median(x["recv_rate"] for x in runs["raw"])
            paced = harness.run(work, "paced", count, rate=pace)
            print(
                f"  paced ours    : received {paced['received']:>9,} of {paced['sent']:,} "
                f"({paced['dropped']:,} dropped) published at {pace / 1e6:.3f} M msgs/s "
                f"({TARGET_RATIO} x the floor's median)"
            )
            costs = cost_breakdown(harness, work, 20_000 if args.quick else 50_000)
        finally:
            harness.close()

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    ours_rate = median("ours", "recv_rate")
    raw_rate = median("raw", "recv_rate")
    raw_mp_rate = median("raw_multipart", "recv_rate")
    raw_one_rate = median("raw_one_frame", "recv_rate")
    r = ratio(ours_rate, raw_rate)
    r_mp = ratio(ours_rate, raw_mp_rate)
    r_one = ratio(ours_rate, raw_one_rate)
    print("medians (messages received per second, first send to last receive):")
    print(f"  ours (actor -> actor, local bus):                {ours_rate / 1e6:.3f} M msgs/s")
    proxy_rate = median("ours_via_proxy", "recv_rate")
    print(f"  ours (actor -> bus proxy -> actor):              {proxy_rate / 1e6:.3f} M msgs/s")
    print(f"  raw  (PUB -> SUB, one ipc hop, send/recv):       {raw_rate / 1e6:.3f} M msgs/s  (the floor)")
    print(f"  raw  (PUB -> SUB, send_multipart/recv_multipart): {raw_mp_rate / 1e6:.3f} M msgs/s")
    print(f"  raw  (PUB -> SUB, one frame topic+NUL+msgpack):   {raw_one_rate / 1e6:.3f} M msgs/s")
    print(f"ratio ours/raw: {r:.2f}   target >= {TARGET_RATIO}: {verdict(r >= TARGET_RATIO)}")
    print(f"ratio ours/raw_multipart: {r_mp:.2f}")
    print(f"ratio ours/raw_one_frame (our wire format without the proxy and the envelope): {r_one:.2f}")
    print(
        f"paced at {TARGET_RATIO} x the floor: {paced['dropped']:,} dropped of {paced['sent']:,}   "
        f"target 0: {verdict(paced['dropped'] == 0)}"
    )
    print("CPU per message, one side at a time in this process (µs; lower is better):")
    labels = {
        "publish_us": "ours: Publisher.publish (envelope, one frame)",
        "one_send_publish_us": "same envelope, send(topic + NUL + frame)",
        "raw_send_us": "raw: send + send of msgpack(Quote)",
        "runtime_receive_us": "ours: ActorRuntime.step drain -> on_message",
        "recv_split_decode_us": "recv + split_message + decode_envelope",
        "raw_receive_us": "raw: recv + recv + decode Quote",
    }
    for key, label in labels.items():
        print(f"  {label:<56} {costs[key]:6.2f} µs  (max {1 / costs[key]:.3f} M msgs/s)")
    emit(
        "bus",
        {
            "count": count,
            "reps": reps,
            "ours_msgs_per_s": round(ours_rate),
            "ours_via_proxy_msgs_per_s": round(proxy_rate),
            "raw_msgs_per_s": round(raw_rate),
            "raw_multipart_msgs_per_s": round(raw_mp_rate),
            "ratio": r,
            "raw_one_frame_msgs_per_s": round(raw_one_rate),
            "ratio_vs_raw_multipart": r_mp,
            "ratio_vs_raw_one_frame": r_one,
            "target_ratio": TARGET_RATIO,
            "target_met": r >= TARGET_RATIO,
            **{f"{name}_send_msgs_per_s": round(median(name, "send_rate")) for name in runs},
            **{f"{name}_dropped": [x["dropped"] for x in series] for name, series in runs.items()},
            "paced_msgs_per_s": round(pace),
            "paced_dropped": paced["dropped"],
            "paced_received_per_s": round(paced["recv_rate"]),
            "cost_us": costs,
            "runs": runs,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
