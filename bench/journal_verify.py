"""Cost of verifying the whole journal at node start (``Journal.verify``), per 100k records.

The node checks every record (decodes) and every index (agrees with the log) before it
starts, so a damaged journal stops it with a message instead of trading on a wrong
book. This measures what that costs a big journal: orders, their updates and fills in
the proportions a trading node writes them.
"""

from __future__ import annotations

import sys
import time

sys.path.append(str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from bench._common import emit, fs_type, parse_args, short_tmp
from sniperbot.journal import Journal
from sniperbot.messages import Fill, Order, OrderUpdate
from sniperbot.messages.orders import make_intent_id


def _records(i: int) -> list[Order | OrderUpdate | Fill]:
    cid = make_intent_id("bench", i + 1, "t0life")
    common = {"strategy_id": "bench", "venue": "sim", "symbol": "BTC/USDT"}
    return [
        Order(client_order_id=cid, intent_id=cid, side="buy", quantity=0.01, ts_ns=time.time_ns(), **common),
        OrderUpdate(client_order_id=cid, status="filled", ts_ns=time.time_ns(), **common),
        Fill(
            fill_id=cid + "-f",
            client_order_id=cid,
            side="buy",
            quantity=0.01,
            price=60000.0,
            fee=0.6,
            ts_ns=time.time_ns(),
            **common,
        ),
    ]


def main() -> None:
    args = parse_args(__doc__ or "")
    orders = 10_000 if args.quick else 100_000
    with short_tmp("sb-verify-") as tmp:
        figures: dict[str, object] = {"fs": fs_type(tmp)}
        with Journal.open(tmp, durability="process") as journal:
            batch: list[Order | OrderUpdate | Fill] = []
            for i in range(orders):
                batch += _records(i)
                if len(batch) >= 3000:
                    journal.append_many(batch)
                    batch = []
            journal.append_many(batch)
        with Journal.open(tmp, durability="process") as journal:
            start = time.perf_counter()
            records = journal.verify()
            elapsed = time.perf_counter() - start
        figures["records"] = records
        figures["verify_s"] = round(elapsed, 3)
        figures["verify_s_per_100k_records"] = round(elapsed * 100_000 / records, 3)
        figures["file_mb"] = round((tmp / "journal" / "data.mdb").stat().st_size / 1e6, 1)
    emit("journal_verify", figures)


if __name__ == "__main__":
    main()
