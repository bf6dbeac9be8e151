"""OHLCV loading: formats, time encodings, gaps, and errors that name file, line and column."""

from __future__ import annotations

import gzip
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from sniperbot.data import (
    OHLCV,
    DataError,
    Gap,
    find_gaps,
    format_timeframe,
    infer_timeframe,
    load_csv,
    load_ohlcv,
    loaders,
    parse_datetime,
    parse_timeframe,
    write_csv,
)
from sniperbot.data.times import TimeParseError, parse_iso_array, parse_time_column
from tests.conftest import missing_data_reason, shared_data

MIN_NS = 60_000_000_000
T0 = 1_747_699_200_000_000_000  # 2025-05-20 00:00:00 UTC
REAL = shared_data("candles")


def sample(n: int = 5, step: int = MIN_NS, seed: int = 0) -> OHLCV:
    rng = np.random.default_rng(seed)
    close = np.round(100_000 + np.cumsum(rng.normal(0, 20, n)), 2)
    open_ = np.round(close + rng.normal(0, 5, n), 2)
    return OHLCV(
        T0 + np.arange(n, dtype=np.int64) * step,
        open_,
        np.maximum(open_, close) + 3.5,
        np.minimum(open_, close) - 2.25,
        close,
        np.round(rng.uniform(0, 20, n), 5),
    )


def rows(bars: OHLCV) -> list[tuple[float, float, float, float, float]]:
    return list(
        zip(
            bars.open.tolist(),
            bars.high.tolist(),
            bars.low.tolist(),
            bars.close.tolist(),
            bars.volume.tolist(),
            strict=True,
        )
    )


def same(a: OHLCV, b: OHLCV) -> None:
    np.testing.assert_array_equal(a.time_ns, b.time_ns)
    for name in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


# -- times ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-05-20 00:00:00+00:00", T0),
        ("2025-05-20T00:00:00Z", T0),
        ("2025-05-20", T0),
        ("2025-05-20 02:00+02:00", T0),
        ("2025-05-19T19:30:00-0430", T0),
        ("2025-05-20 00:00:00 UTC", T0),
        ("2025-05-20 00:00:00.000001", T0 + 1_000),
        ("2025-05-20T00:00:00.123456789Z", T0 + 123_456_789),
        ("1747699200", T0),
        ("1747699200000", T0),
        ("1747699200000000", T0),
        ("1747699200000000000", T0),
        ("1747699200.5", T0 + 500_000_000),
        ("2024-02-29 23:59:59", 1_709_251_199_000_000_000),
        ("1969-12-31 23:59:59", -1_000_000_000),
    ],
)
def test_time_values(text: str, expected: int) -> None:
    assert parse_datetime(text) == expected
    column = np.array([text.encode()] * 3)
    np.testing.assert_array_equal(parse_time_column(column), [expected] * 3)


@pytest.mark.parametrize(
    "bad", ["2025-02-29 00:00", "2025-13-01", "2025-05-20 24:00", "20/05/2025", "", "soon"]
)
def test_bad_time_values(bad: str) -> None:
    with pytest.raises(TimeParseError) as error:
        parse_iso_array(np.array([b"2025-05-20 00:00", bad.encode(), b"2025-05-20 00:02"]))
    assert error.value.index == 1


def test_mixed_layouts_in_one_column() -> None:
    column = np.array(
        [b"2025-05-20 00:00:00", b"2025-05-20 00:01:00.5", b"2025-05-20T00:02:00Z", b"2025-05-20 02:03+02:00"]
    )
    np.testing.assert_array_equal(
        parse_iso_array(column), [T0, T0 + MIN_NS + 500_000_000, T0 + 2 * MIN_NS, T0 + 3 * MIN_NS]
    )


# -- timeframes, gaps, container ---------------------------------------------------------------


def test_timeframes() -> None:
    assert parse_timeframe("1m") == MIN_NS
    assert parse_timeframe("4h") == 240 * MIN_NS
    assert parse_timeframe("1M") == 30 * 24 * 60 * MIN_NS
    assert [
        format_timeframe(n) for n in (MIN_NS, 60 * MIN_NS, 1440 * MIN_NS, 7 * 1440 * MIN_NS, 90 * 10**9)
    ] == [
        "1m",
        "1h",
        "1d",
        "1w",
        "90s",
    ]
    assert format_timeframe(250_000_000) == "250ms"
    with pytest.raises(ValueError, match="bad timeframe"):
        parse_timeframe("1x")
    times = T0 + np.array([0, 5, 10, 20, 25, 30, 31]) * MIN_NS
    assert infer_timeframe(times) == "5m"  # the median, not the odd 1-minute bar


def test_gaps_are_found_not_filled() -> None:
    times = T0 + np.array([0, 1, 2, 5, 6, 10]) * MIN_NS
    gaps = find_gaps(times, MIN_NS)
    assert gaps == [Gap(T0 + 3 * MIN_NS, T0 + 5 * MIN_NS, 2, 3), Gap(T0 + 7 * MIN_NS, T0 + 10 * MIN_NS, 3, 5)]
    assert str(gaps[0]) == "2025-05-20 00:03 -> 2025-05-20 00:05 (2 missing bars)"
    bars = OHLCV(times, *(np.ones(6),) * 5)
    assert bars.timeframe == "1m" and len(bars) == 6 and bars.gaps() == gaps
    # Off-grid bars still count whole missing slots.
    assert find_gaps(T0 + np.array([0, 60, 150]) * 10**9, MIN_NS)[0].missing == 1
    # Months vary in length: 31-day months are not gaps in 1M bars.
    month_starts = np.array(
        [parse_datetime(d) for d in ("2025-01-01", "2025-02-01", "2025-03-01", "2025-05-01")]
    )
    monthly = OHLCV(month_starts, *(np.ones(4),) * 5, timeframe="1M")
    assert [g.missing for g in monthly.gaps()] == [1]


def test_container() -> None:
    bars = sample(10)
    assert bars.timeframe == "1m" and bars.timeframe_ns == MIN_NS
    assert bars.time_ns.dtype == np.int64 and bars.close.dtype == np.float64
    part = bars[2:5]
    assert len(part) == 3 and part.start_ns == T0 + 2 * MIN_NS and part.timeframe == "1m"
    assert len(bars.between(T0 + 3 * MIN_NS, T0 + 7 * MIN_NS)) == 4
    assert repr(bars).startswith("OHLCV(? 1m, 10 bars, 2025-05-20 00:00 -> 2025-05-20 00:09")
    with pytest.raises(ValueError, match="must increase strictly; bar 2"):
        OHLCV(T0 + np.array([0, 2, 1]) * MIN_NS, *(np.ones(3),) * 5)
    with pytest.raises(ValueError, match="volume has 2 values but time_ns has 3"):
        OHLCV(T0 + np.arange(3) * MIN_NS, *(np.ones(3),) * 4, np.ones(2))
    assert OHLCV(np.array([T0]), *(np.ones(1),) * 5).timeframe == ""


# -- CSV ---------------------------------------------------------------------------------------


def test_freqtrade_style_csv(tmp_path: Path) -> None:
    bars = sample(50)
    path = tmp_path / "BTC_USDT-1m.csv"
    write_csv(bars, path)
    assert path.read_text().splitlines()[1].startswith("2025-05-20 00:00:00+00:00,")
    loaded = load_csv(path)
    same(loaded, bars)
    assert loaded.symbol == "BTC/USDT" and loaded.timeframe == "1m" and loaded.source == str(path)


@pytest.mark.parametrize(
    ("header", "stamp"),
    [
        ("timestamp,open,high,low,close,volume", lambda t: f"{t // 10**6}"),
        ("Date,Open,High,Low,Close,Volume", lambda t: np.datetime_as_string(np.datetime64(t, "ns"), "s")),
        ("time,o,h,l,c,v", lambda t: f"{t // 10**9}"),
        ("open_time,open,high,low,close,volume", lambda t: f"{t // 1000}"),
        ("ts,open,high,low,close,volume", lambda t: f"{t}"),
        ("datetime,open,high,low,close,volume", lambda t: f"{t / 1e9:.3f}"),
    ],
)
def test_header_names_and_time_encodings(tmp_path: Path, header: str, stamp: object) -> None:
    bars = sample(20)
    lines = [header] + [
        f"{stamp(t)},{o!r},{h!r},{lo!r},{c!r},{v!r}"  # type: ignore[operator]
        for t, (o, h, lo, c, v) in zip(bars.time_ns.tolist(), rows(bars), strict=True)
    ]
    same(load_csv(write(tmp_path / "x.csv", "\n".join(lines) + "\n")), bars)


def test_column_order_extra_columns_semicolons_crlf_bom_quotes(tmp_path: Path) -> None:
    bars = sample(8)
    lines = ['\ufeff"symbol";"Volume";"Close";"Low";"High";"Open";"Date (UTC)";"trades"']
    for t, (o, h, lo, c, v) in zip(bars.time_ns.tolist(), rows(bars), strict=True):
        iso = np.datetime_as_string(np.datetime64(t, "ns"), "s")
        lines.append(f'"BTCUSDT";{v!r};{c!r};{lo!r};{h!r};{o!r};"{iso}Z";17')
    same(load_csv(write(tmp_path / "x.txt", "\r\n".join(lines) + "\r\n")), bars)


def test_volume_named_by_currency(tmp_path: Path) -> None:
    text = "unix,date,symbol,open,high,low,close,Volume BTC,Volume USDT\n"
    text += "1747699200,2025-05-20 00:00:00,BTC/USDT,1,2,0.5,1.5,10,15\n"
    text += "1747699260,2025-05-20 00:01:00,BTC/USDT,1,2,0.5,1.5,11,16\n"
    loaded = load_csv(write(tmp_path / "cdd.csv", text))
    assert loaded.volume.tolist() == [10.0, 11.0] and loaded.time_ns[0] == T0


def kline_text(bars: OHLCV, unit: int = 1_000_000) -> str:
    out = []
    for t, (o, h, lo, c, v) in zip(bars.time_ns.tolist(), rows(bars), strict=True):
        close_time = (t + MIN_NS) // unit - 1
        out.append(
            f"{t // unit},{o:.8f},{h:.8f},{lo:.8f},{c:.8f},{v:.8f},{close_time},{c * v:.8f},42,"
            f"{v / 2:.8f},0,0"
        )
    return "\n".join(out) + "\n"


def test_binance_klines_without_header(tmp_path: Path) -> None:
    bars = sample(30)
    loaded = load_ohlcv(write(tmp_path / "BTCUSDT-1m-2025-05-20.csv", kline_text(bars)))
    same(loaded, bars)
    assert loaded.symbol == "BTC/USDT"
    # data.binance.vision writes microseconds for spot since 2025.
    same(load_ohlcv(write(tmp_path / "us.csv", kline_text(bars, 1_000))), bars)


def test_compressed_files(tmp_path: Path) -> None:
    bars = sample(12)
    text = kline_text(bars)
    gz = tmp_path / "k.csv.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    same(load_ohlcv(gz), bars)
    zipped = tmp_path / "BTCUSDT-1m-2025-05.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("BTCUSDT-1m-2025-05.csv", text)
    same(load_ohlcv(zipped), bars)


def test_fast_and_line_by_line_readers_agree(tmp_path: Path) -> None:
    bars = sample(300, seed=4)
    for name, text in (
        ("a.csv", kline_text(bars)),
        (
            "b.csv",
            "date,open,high,low,close,volume\n"
            + loaders.format_csv_rows(bars.time_ns, bars.open, bars.high, bars.low, bars.close, bars.volume),
        ),
    ):
        content = write(tmp_path / name, text).read_bytes()
        layout = loaders._csv_layout(content.decode(), name)
        fast_t, fast_v = loaders._parse_csv_fast(content, layout)
        slow_t, slow_v = loaders._parse_csv_slow(content, layout, name)
        assert fast_t is not None and fast_v is not None
        np.testing.assert_array_equal(fast_t, slow_t)
        for a, b in zip(fast_v, slow_v, strict=True):
            np.testing.assert_array_equal(a, b)


def test_big_files_take_the_fast_route(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bars = sample(130_708, seed=2)
    path = tmp_path / "big.csv"
    write_csv(bars, path)

    def refuse(*args: object) -> None:
        raise AssertionError("the line-by-line reader ran on a well-formed file")

    monkeypatch.setattr(loaders, "_parse_csv_slow", refuse)
    started = time.perf_counter()
    loaded = load_csv(path)
    elapsed = time.perf_counter() - started
    same(loaded, bars)
    print(f"130,708-row CSV loaded in {elapsed:.3f} s")


@pytest.mark.skipif(not REAL.is_dir(), reason=missing_data_reason(REAL))
def test_real_candles() -> None:
    started = time.perf_counter()
    btc = load_ohlcv(REAL / "binance_spot_BTCUSDT_1m_2025-05-20_2025-08-18.csv")
    elapsed = time.perf_counter() - started
    assert (len(btc), btc.timeframe, btc.symbol, btc.gaps()) == (130_708, "1m", "BTC/USDT", [])
    assert btc.close.min() == 98_344.75 and btc.close.max() == 124_447.73
    print(f"real 130,708-row CSV loaded in {elapsed:.3f} s")
    hourly = load_ohlcv(REAL / "binance_spot_BTCUSDT_1h_2017-08-17_2024-04-21.csv")
    gaps = hourly.gaps()
    assert (len(gaps), sum(g.missing for g in gaps)) == (28, 128)  # as the data's README says


# -- errors ---------------------------------------------------------------------------------


GOOD = "date,open,high,low,close,volume\n" + "".join(
    f"2025-05-20 00:0{i}:00+00:00,1.0,2.0,0.5,1.5,10\n" for i in range(6)
)


@pytest.mark.parametrize(
    ("line", "replacement", "message"),
    [
        (
            5,
            "2025-05-20 00:01:00+00:00,1,2,0.5,1.5,10",
            r"line 5: column 'date': time 2025-05-20 00:01 is before the previous row's 2025-05-20 00:02",
        ),
        (5, "2025-05-20 00:01:00+00:00,1,2,0.5,1.5,10", r"unsorted"),
        (
            3,
            "2025-05-20 00:00:00+00:00,1,2,0.5,1.5,10",
            r"line 3: column 'date': time 2025-05-20 00:00 is the same as",
        ),
        (5, "2025-05-20 00:03:00+00:00,1,2,zero,1.5,10", r"line 5: column 'low': 'zero' is not a number"),
        (5, "2025-05-20 00:03:00+00:00,1,2,0.5,,10", r"line 5: column 'close': '' is not a number"),
        (
            6,
            "2025-05-20 00:04:00+00:00,1,2,0.5,nan,10",
            r"line 6: column 'close': 'nan' is not a finite number",
        ),
        (2, "yesterday,1,2,0.5,1.5,10", r"line 2: column 'date': 'yesterday' is not a time"),
        (3, "2025-05-20 00:01:00+00:00,1,2", r"line 3: expected at least 6 fields, found 3"),
        (
            7,
            "2025-02-30 00:00:00+00:00,1,2,0.5,1.5,10",
            r"line 7: column 'date': '2025-02-30 00:00:00\+00:00' is not a valid",
        ),
    ],
)
def test_malformed_csv_names_file_line_and_column(
    tmp_path: Path, line: int, replacement: str, message: str
) -> None:
    lines = GOOD.splitlines()
    lines[line - 1] = replacement
    path = write(tmp_path / "bad.csv", "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message) as error:
        load_csv(path)
    assert str(error.value).startswith(f"{path}: line {line}: ")
    assert error.value.line == line and error.value.path == str(path)


def test_missing_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", "date,open,high,low,close\n2025-05-20,1,2,0.5,1.5\n")
    with pytest.raises(
        DataError, match=r"x.csv: line 1: missing 'volume' in the header \(date, open, high, low, close\)"
    ):
        load_csv(path)
    path = write(tmp_path / "y.csv", "when,open,high,low,close,volume\n2025-05-20,1,2,0.5,1.5,1\n")
    with pytest.raises(DataError, match=r"missing a time column in the header"):
        load_csv(path)
    with pytest.raises(DataError, match=r"no header and only 3 columns"):
        load_csv(write(tmp_path / "z.csv", "1747699200000,1,2\n"))


def test_empty_and_header_only(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty"):
        load_csv(write(tmp_path / "e.csv", "\n\n"))
    with pytest.raises(DataError, match="no data rows"):
        load_csv(write(tmp_path / "h.csv", "date,open,high,low,close,volume\n"))
    with pytest.raises(DataError, match="cannot read"):
        load_ohlcv(tmp_path / "missing.csv")


def test_blank_lines_keep_line_numbers_right(tmp_path: Path) -> None:
    lines = GOOD.splitlines()
    text = "\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]).replace(",10\n", ",10\n", 1)
    assert len(load_csv(write(tmp_path / "ok.csv", text + "\n\n"))) == 6
    text = text.replace(
        "2025-05-20 00:04:00+00:00,1.0,2.0,0.5,1.5,10", "2025-05-20 00:04:00+00:00,1.0,x,0.5,1.5,10"
    )
    with pytest.raises(DataError, match=r"line 7: column 'high': 'x' is not a number"):
        load_csv(write(tmp_path / "bad.csv", text))


def test_declared_timeframe(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", GOOD)
    assert load_csv(path, timeframe="1m").timeframe == "1m"
    with pytest.raises(DataError, match="declared timeframe 5m but the bars are 1m apart"):
        load_csv(path, timeframe="5m")
    assert load_csv(path, symbol="ETH/USDT").symbol == "ETH/USDT"


# -- Parquet / Feather ---------------------------------------------------------------------------


def test_without_pyarrow_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(b"PAR1 not really")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` fail
    with pytest.raises(
        DataError, match=r"x.parquet: reading Parquet files needs pyarrow.*pip install pyarrow"
    ):
        load_ohlcv(path)


def test_parquet_and_feather(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    bars = sample(40)
    columns = {name: getattr(bars, name) for name in ("open", "high", "low", "close", "volume")}
    aware = pa.table({"date": pa.array(bars.time_ns, pa.timestamp("ns", tz="UTC")), **columns})
    pq.write_table(aware, tmp_path / "BTC_USDT-1m.parquet")
    loaded = load_ohlcv(tmp_path / "BTC_USDT-1m.parquet")
    same(loaded, bars)
    assert loaded.symbol == "BTC/USDT"
    millis = pa.table(
        {"Open_Time": pa.array(bars.time_ns // 10**6), **{k.title(): v for k, v in columns.items()}}
    )
    feather.write_feather(millis, tmp_path / "k.feather")
    same(load_ohlcv(tmp_path / "k.feather"), bars)
    seconds = pa.table({"timestamp": pa.array(bars.time_ns // 10**9, pa.timestamp("s")), **columns})
    feather.write_feather(seconds, tmp_path / "no-extension")  # sniffed from the magic bytes
    same(load_ohlcv(tmp_path / "no-extension"), bars)
    texts = pa.table(
        {
            "date": [np.datetime_as_string(np.datetime64(t, "ns"), "s") + "Z" for t in bars.time_ns.tolist()],
            **columns,
        }
    )
    pq.write_table(texts, tmp_path / "t.parquet")
    same(load_ohlcv(tmp_path / "t.parquet"), bars)

    shuffled = pa.table({"date": pa.array(bars.time_ns[::-1], pa.timestamp("ns")), **columns})
    pq.write_table(shuffled, tmp_path / "s.parquet")
    with pytest.raises(DataError, match=r"s.parquet: row 2: column 'date': time .* is not after"):
        load_ohlcv(tmp_path / "s.parquet")
    holes = pa.table(
        {"date": pa.array(bars.time_ns, pa.timestamp("ns")), **columns, "close": [1.0, None] + [1.0] * 38}
    )
    pq.write_table(holes, tmp_path / "n.parquet")
    with pytest.raises(DataError, match=r"n.parquet: row 2: column 'close': missing value"):
        load_ohlcv(tmp_path / "n.parquet")
    pq.write_table(
        pa.table({"date": pa.array(bars.time_ns, pa.timestamp("ns")), "close": bars.close}),
        tmp_path / "m.parquet",
    )
    with pytest.raises(DataError, match=r"missing 'open', 'high', 'low', 'volume' \(columns: date, close\)"):
        load_ohlcv(tmp_path / "m.parquet")
