"""Backtests replay recorded signals: the file format, the bar they become visible at, the CLI.

The market is hand-made so each decision is known: flat at 100 for 30 one-minute bars, then every
bar closes 1 higher (a new 5-bar high each bar: ``social_breakout`` with ``entry = 5`` sees a breakout
on every bar from bar 30 on). Whether and when it enters depends only on the signals.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import numpy as np
import pytest

from sniperbot.analytics.signals import SignalBook, SignalFileError, beside, encode_line, read_signals
from sniperbot.backtest import BacktestConfig, run_backtest
from sniperbot.cli.main import main as cli
from sniperbot.data import OHLCV, write_csv
from sniperbot.messages import Signal

T0 = 1_735_689_600 * 1_000_000_000
MINUTE = 60_000_000_000
N = 60
PARAMS = {"entry": 5, "sma": 5, "min_z": 2.0, "min_sentiment": 0.2, "max_age_s": 3600.0}


def end_of(bar: int) -> int:
    """The close (end) time of bar ``bar``."""
    return T0 + (bar + 1) * MINUTE


def market() -> OHLCV:
    """Flat, then a steady climb from bar 30 (see the module docstring)."""
    close = np.array([100.0] * 30 + [101.0 + i for i in range(N - 30)])
    open_ = np.concatenate([[100.0], close[:-1]])
    return OHLCV(
        T0 + np.arange(N) * MINUTE,
        open_,
        np.maximum(open_, close),
        np.minimum(open_, close),
        close,
        np.ones(N),
        symbol="PEPE/USDT",
        timeframe="1m",
    )


def sig(kind: str, value: float, ts_ns: int, **extra: object) -> Signal:
    return Signal(
        source="sentiment",
        subject="PEPE",
        kind=kind,
        value=value,
        ts_ns=ts_ns,
        **{"window_s": 300.0, **extra},
    )


def spike(ts_ns: int, sentiment: float = 0.6, z: float = 3.0) -> list[Signal]:
    return [sig("sentiment", sentiment, ts_ns), sig("mentions_z", z, ts_ns)]


def backtest(signals: list[Signal], **params: object) -> object:
    config = BacktestConfig(fee_bps=0.0, sizer="fixed:1", close_at_end=False)
    return run_backtest(market(), "social_breakout", {**PARAMS, **params}, config, signals=signals)


def entry_bar(result: object) -> int | None:
    """The bar the first buy filled on (decided at the previous bar's close), or None."""
    fills = result.fills  # type: ignore[attr-defined]
    buys = np.flatnonzero(fills.quantity > 0)
    return int(fills.bar[buys[0]]) if len(buys) else None


def test_no_signal_no_entry_and_a_spike_enters_on_the_breakout() -> None:
    """The same breakout: no trade without signals, a trade with them; the signal path is per-bar."""
    assert entry_bar(backtest([])) is None
    result = backtest(spike(end_of(10)))
    assert result.path == "per-bar"  # type: ignore[attr-defined]
    # First breakout is bar 30's close: filled at bar 31's open.
    assert entry_bar(result) == 31
    # Too weak a reading is no entry either (both conditions must hold).
    assert entry_bar(backtest(spike(end_of(10), sentiment=0.1))) is None
    assert entry_bar(backtest(spike(end_of(10), z=1.0))) is None


def test_a_reading_over_another_window_is_not_the_one_asked_for() -> None:
    """The aggregator publishes 300 s and 3600 s windows: a strategy reading 300 s ignores the 3600 s one."""
    hourly = [
        sig("sentiment", 0.6, end_of(10), window_s=3600.0),
        sig("mentions_z", 3.0, end_of(10), window_s=3600.0),
    ]
    assert entry_bar(backtest(hourly)) is None
    assert entry_bar(backtest(hourly, window_s=3600.0)) == 31
    assert entry_bar(backtest(hourly, window_s=0.0)) == 31  # 0: any window's newest


def test_a_signal_is_visible_at_the_close_of_the_bar_it_is_stamped_in_never_earlier() -> None:
    """Stamped inside bar 40 (1 ns after bar 39's end): decided at bar 40's close, filled at bar 41."""
    assert entry_bar(backtest(spike(end_of(39) + 1))) == 41
    # Stamped exactly at bar 39's end: bar 39's close sees it.
    assert entry_bar(backtest(spike(end_of(39)))) == 40


def test_old_or_stale_signals_are_no_signals() -> None:
    """Age is judged at the bar's close: a 10-minute-old reading with max_age_s 5 min does not count."""
    assert entry_bar(backtest(spike(end_of(20)), max_age_s=300.0)) is None
    # Five minutes before bar 30's close is still fresh there.
    assert entry_bar(backtest(spike(end_of(25)), max_age_s=300.0)) == 31
    # The newest reading of the source says it is stale: no entry, even though an older one was fine.
    stale = [*spike(end_of(10)), sig("sentiment", 0.6, end_of(12), stale=True)]
    assert entry_bar(backtest(stale)) is None


def test_negative_sentiment_exits() -> None:
    """In since bar 31; sentiment turns negative inside bar 45: out at bar 45's close, sold at bar 46."""
    result = backtest([*spike(end_of(10)), sig("sentiment", -0.3, end_of(44) + 5)])
    fills = result.fills  # type: ignore[attr-defined]
    sells = np.flatnonzero(fills.quantity < 0)
    assert entry_bar(result) == 31 and int(fills.bar[sells[0]]) == 46


def test_the_vectorised_path_refuses_a_strategy_that_reads_signals() -> None:
    with pytest.raises(ValueError, match="reads signals"):
        run_backtest(market(), "social_breakout", PARAMS, path="vectorised")


def test_signal_file_round_trip_and_errors_name_the_line(tmp_path: Path) -> None:
    """A file is JSON lines of msgspec-encoded signals, sorted on read; a bad line names file:line."""
    file = tmp_path / "s.jsonl"
    late, early = spike(end_of(5))[0], spike(end_of(2))[1]
    file.write_bytes(b"# recorded\n" + encode_line(late) + b"\n" + encode_line(early))
    assert read_signals(file) == [early, late]
    # The minimal hand-written form: no tag, defaults left out.
    file.write_text('{"source":"x","subject":"BTC","kind":"sentiment","value":0.5,"ts_ns":7}\n')
    assert read_signals(file)[0].confidence == 1.0
    for bad, why in (
        ('{"source":"x","subject":"BTC","kind":"k","value":"high","ts_ns":1}', "invalid signal"),
        ('{"source":"x","subject":"BTC","kind":"k","value":1}', "invalid signal: ts_ns must be > 0"),
        ("not json", "not a JSON signal"),
        ('{"source":"x","subject":"BTC","kind":"k","value":1,"confidence":2,"ts_ns":1}', "invalid signal"),
    ):
        file.write_bytes(encode_line(late) + encode_line(early) + bad.encode() + b"\n")
        with pytest.raises(SignalFileError, match=f"{file}:3: {why}"):
            read_signals(file)


def test_the_book_ignores_readings_from_the_future_of_the_decision() -> None:
    """Live, a reading stamped after the bar's end may arrive before the bar closes on the clock."""
    book = SignalBook()
    book.extend([sig("sentiment", 0.1, 100), sig("sentiment", 0.9, 300)])
    assert book.get("PEPE", "sentiment", max_age_s=1, now_ns=200).value == 0.1  # type: ignore[union-attr]
    assert book.get("PEPE", "sentiment", max_age_s=1, now_ns=300).value == 0.9  # type: ignore[union-attr]
    assert book.get("PEPE", "sentiment", source="other", max_age_s=1, now_ns=300) is None
    assert book.get("PEPE", "sentiment", max_age_s=1, now_ns=50) is None


def test_cli_backtest_reads_the_file_beside_the_candles_or_signals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``sniperbot backtest``: ``<data>.signals.jsonl`` by default, ``--signals FILE``, errors exit 2."""
    data = tmp_path / "PEPEUSDT_1m.csv"
    write_csv(market(), data)
    args = ["backtest", "--data", str(data), "--strategy", "social_breakout", "--json", "--sizer", "fixed:1"]
    args += [f"--param={k}={v}" for k, v in PARAMS.items()]
    assert cli(args) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["trades"] == 0 and "reads signals but there is no" in err
    beside(data).write_bytes(b"".join(encode_line(s) for s in spike(end_of(10))))
    assert cli(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["signals"] == str(beside(data)) and report["signal_count"] == 2
    assert report["trades"] >= 1
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(encode_line(spike(end_of(10))[0]) + msgspec.json.encode({"subject": "PEPE"}) + b"\n")
    assert cli([*args, "--signals", str(bad)]) == 2
    assert f"{bad}:2: invalid signal" in capsys.readouterr().err
