"""The alerts outbox: every alert journaled before it is sent, and marked per channel when delivered.

An LMDB environment of its own, ``<run dir>/alerts`` (the trading journal never waits on it), with
fsync on every commit. Four tables:

* ``alerts``: sequence number -> :class:`~sniperbot.alerts.model.Alert` (msgpack);
* ``marks``: (sequence number, channel) -> outcome: ``delivered``, ``refused: <why>`` (the service
  said the request itself is wrong: sending it again cannot help) or ``expired`` (undelivered past
  ``max_age_s``). An alert with a mark for a channel is never sent to that channel again;
* ``dedup``: alert key -> when an alert with that key was last journaled;
* ``state``: what the alerts actor must remember across restarts (last trading state seen, feed
  health per venue, the last daily summary) so a restart does not re-announce old news.

**Delivery guarantee (kill -9 at any moment).** An alert is committed here before any channel is
tried, so it is never lost: the next incarnation sends every alert a configured channel has no mark
for (:meth:`Outbox.pending`). The mark is committed right after the channel's 2xx (or SMTP ``250``),
before the next alert is sent to that channel. The one window: a kill after the service accepted the
request and before the mark is committed (the request in flight, plus the one LMDB commit after the
response) - then that one alert is sent to that channel once more on restart. Each channel sends one
alert at a time, so at most **one alert per channel** can repeat, and only on a kill in that window;
an alert marked for a channel is never sent to it again. Telegram and Discord have no idempotency
key to close the window; the generic webhook gets ``Idempotency-Key: <alert id>`` so a receiver can.
"""

from __future__ import annotations

import struct
import threading
import time
from pathlib import Path

import lmdb
import msgspec

from sniperbot.alerts.model import Alert, Severity
from sniperbot.journal.lmdbfile import check_before_open

OUTBOX_DIR = "alerts"
DELIVERED = "delivered"
EXPIRED = "expired"
_MAP_SIZE = 256 * 1024 * 1024
_SEQ = struct.Struct(">Q")
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Alert)


class OutboxError(RuntimeError):
    """The outbox file cannot be opened (it names the file and the problem)."""


class Outbox:
    """The alert outbox of one run dir (open it with :func:`open_outbox`: one handle per process)."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        problem = check_before_open(path, must_exist=False)
        if problem is not None:
            raise OutboxError(problem)
        self.path = path
        self.env = lmdb.open(str(path), max_dbs=4, map_size=_MAP_SIZE, sync=True, metasync=True)
        self._alerts = self.env.open_db(b"alerts")
        self._marks = self.env.open_db(b"marks")
        self._dedup = self.env.open_db(b"dedup")
        self._state = self.env.open_db(b"state")

    def close(self) -> None:
        """Close the environment."""
        self.env.close()

    # -- writing ---------------------------------------------------------------------------
    def submit(
        self,
        *,
        key: str,
        kind: str,
        severity: Severity,
        title: str,
        text: str,
        channels: list[str],
        window_s: float,
        now_ns: int | None = None,
    ) -> Alert | None:
        """Journal a new alert, or None when an alert with ``key`` was journaled within ``window_s``.

        The de-duplication check and the append are one transaction, so two incarnations (or a
        restart replaying the last value of a topic) cannot both journal the same alert.
        """
        now_ns = time.time_ns() if now_ns is None else now_ns
        bkey = key.encode()
        with self.env.begin(write=True) as txn:
            last = txn.get(bkey, db=self._dedup)
            if last is not None and now_ns - _SEQ.unpack(last)[0] < window_s * 1e9:
                return None
            txn.put(bkey, _SEQ.pack(now_ns), db=self._dedup)
            cursor = txn.cursor(db=self._alerts)
            seq = _SEQ.unpack(cursor.key())[0] + 1 if cursor.last() else 1
            alert = Alert(
                id=str(seq),
                key=key,
                kind=kind,
                severity=severity,
                title=title,
                text=text,
                ts_ns=now_ns,
                channels=channels,
            )
            txn.put(_SEQ.pack(seq), _encoder.encode(alert), db=self._alerts)
        return alert

    def mark(self, alert_id: str, channel: str, outcome: str = DELIVERED) -> None:
        """Record that ``channel`` is done with the alert (committed before this returns)."""
        with self.env.begin(write=True) as txn:
            txn.put(_mark_key(alert_id, channel), outcome.encode(), db=self._marks)

    def put_state(self, key: str, value: bytes) -> None:
        """Remember ``value`` under ``key`` (the actor's memory across restarts)."""
        with self.env.begin(write=True) as txn:
            txn.put(key.encode(), value, db=self._state)

    # -- reading ---------------------------------------------------------------------------
    def get_state(self, key: str) -> bytes | None:
        """What :meth:`put_state` stored under ``key``, or None."""
        with self.env.begin() as txn:
            return txn.get(key.encode(), db=self._state)

    def outcome(self, alert_id: str, channel: str) -> str | None:
        """The channel's mark on the alert, or None while it is owed."""
        with self.env.begin() as txn:
            raw = txn.get(_mark_key(alert_id, channel), db=self._marks)
        return None if raw is None else raw.decode()

    def alerts(self) -> list[Alert]:
        """Every journaled alert, oldest first."""
        with self.env.begin() as txn:
            return [_decoder.decode(v) for _, v in txn.cursor(db=self._alerts)]

    def pending(self, channels: list[str]) -> list[tuple[Alert, list[str]]]:
        """Alerts still owed to some of ``channels`` (the configured ones), oldest first."""
        out = []
        with self.env.begin() as txn:
            for raw_seq, value in txn.cursor(db=self._alerts):
                alert = _decoder.decode(value)
                owed = [
                    c
                    for c in alert.channels
                    if c in channels and txn.get(raw_seq + c.encode(), db=self._marks) is None
                ]
                if owed:
                    out.append((alert, owed))
        return out

    def prune(self, keep_s: float, now_ns: int | None = None) -> int:
        """Forget alerts older than ``keep_s`` with every channel marked, and older dedup marks.

        Returns how many alerts were forgotten. ``keep_s`` must exceed every de-duplication window.
        """
        now_ns = time.time_ns() if now_ns is None else now_ns
        removed = 0
        with self.env.begin(write=True) as txn:
            for raw_seq, value in list(txn.cursor(db=self._alerts)):
                alert = _decoder.decode(value)
                if now_ns - alert.ts_ns < keep_s * 1e9:
                    break  # oldest first: the rest are younger
                marks = [raw_seq + c.encode() for c in alert.channels]
                if all(txn.get(m, db=self._marks) is not None for m in marks):
                    for m in marks:
                        txn.delete(m, db=self._marks)
                    txn.delete(raw_seq, db=self._alerts)
                    removed += 1
            # De-duplication marks older than that are past any window.
            for key, raw_ts in list(txn.cursor(db=self._dedup)):
                if now_ns - _SEQ.unpack(raw_ts)[0] >= keep_s * 1e9:
                    txn.delete(key, db=self._dedup)
        return removed


def _mark_key(alert_id: str, channel: str) -> bytes:
    return _SEQ.pack(int(alert_id)) + channel.encode()


_open: dict[str, Outbox] = {}
_open_lock = threading.Lock()


def open_outbox(run_dir: Path) -> Outbox:
    """The one outbox handle of this process for ``run_dir`` (LMDB forbids opening a path twice)."""
    path = (Path(run_dir) / OUTBOX_DIR).resolve()
    with _open_lock:
        outbox = _open.get(str(path))
        if outbox is None:
            outbox = _open[str(path)] = Outbox(path)
        return outbox
