"""Loading OHLCV bars from files: CSV (with or without a header), Parquet, Feather.

:func:`load_ohlcv` picks the reader from the file's magic bytes, then its extension:
Parquet (``PAR1``), Feather/Arrow IPC (``ARROW1``), otherwise CSV. ``.gz``, ``.bz2``,
``.xz`` and single-file ``.zip`` archives (as data.binance.vision ships them) are
decompressed first.

CSV:

* **With a header**: the time column is found by name, case-insensitively, among
  ``open_time, timestamp, datetime, date_time, date, time, ts, t, unix, epoch,
  start_time, start, ...`` (see ``TIME_COLUMNS``); prices among ``open/o, high/h,
  low/l, close/c`` and volume among ``volume/vol/v`` (or the first ``volume...``
  column). Other columns are ignored.
* **Without a header** (the first line is all numbers after its first field): the
  columns are ``time, open, high, low, close, volume[, ...]``. That is the layout of
  Binance kline files (``open_time, o, h, l, c, v, close_time, quote_volume, trades,
  taker_buy_base, taker_buy_quote, ignore``) and of ccxt's ``fetch_ohlcv`` rows.
* The delimiter is the most frequent of ``,`` ``;`` tab ``|`` in the first line.
* Times are ISO 8601 text or epoch numbers in s/ms/µs/ns (see
  :mod:`sniperbot.data.times`).

Every loader checks that times increase strictly and that prices and volume are
finite numbers; a violation raises :class:`~sniperbot.data.ohlcv.DataError` naming the
file, the line (CSV) or row (columnar files) and the column. Gaps are allowed and
reported by :meth:`OHLCV.gaps`, never filled.

Speed: a CSV is parsed by numpy's C reader (``np.loadtxt`` on the in-memory file,
one pass, structured dtype) and the time column by a vectorised ISO/epoch parser.
Only when that fast route rejects something is the file re-read line by line, to
name the exact line and column in the error.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sniperbot.data.ohlcv import OHLCV, DataError, format_ns, infer_timeframe, parse_timeframe
from sniperbot.data.times import (
    TimeParseError,
    epoch_unit_ns,
    is_epoch_text,
    parse_iso_one,
    parse_time_column,
)

PathLike = str | os.PathLike[str]

TIME_COLUMNS = (
    "open_time",
    "timestamp",
    "datetime",
    "date_time",
    "date",
    "time",
    "ts",
    "t",
    "unix",
    "unix_time",
    "epoch",
    "start_time",
    "start",
    "begin",
    "candle_begin_time",
    "time_open",
    "opentime",
    "time_ns",
)
PRICE_COLUMNS = {
    "open": ("open", "o", "open_price", "opening_price", "price_open", "first"),
    "high": ("high", "h", "high_price", "price_high", "max"),
    "low": ("low", "l", "low_price", "price_low", "min"),
    "close": ("close", "c", "close_price", "closing_price", "price_close", "last"),
    "volume": ("volume", "vol", "v", "base_volume", "volume_base", "base_asset_volume", "volumefrom"),
}
VALUE_NAMES = ("open", "high", "low", "close", "volume")
# Known quote currencies, longest first, to split "BTCUSDT" into BTC/USDT.
_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USD", "EUR", "GBP", "TRY", "BTC", "ETH", "BNB", "DAI")
_DELIMITERS = (",", ";", "\t", "|")
# Wide enough for any ISO time with nanoseconds and a zone; a value filling it all is
# treated as possibly cut short and sent to the line-by-line reader.
_TIME_WIDTH = 64


def _normalise(name: str) -> str:
    name = name.strip().strip('"').lstrip("\ufeff").strip().lower()
    name = re.sub(r"\s*\(utc\)$", "", name)
    name = re.sub(r"[\s\-]+", "_", name)
    return name.removesuffix("_utc")


@dataclass(frozen=True)
class _Layout:
    """Where the columns of a CSV file are."""

    delimiter: str
    header_lines: int  # lines before the first data row (blank lines and the header)
    indices: tuple[int, ...]  # time, open, high, low, close, volume
    names: tuple[str, ...]  # the same columns' names as shown in messages


def _guess_symbol(path: Path) -> str:
    stem = path.name.split(".")[0]
    freqtrade = re.match(r"^([A-Z0-9]+)_([A-Z0-9]+)(?:_([A-Z0-9]+))?-", stem)
    if freqtrade:
        base, quote, settle = freqtrade.groups()
        return f"{base}/{quote}" + (f":{settle}" if settle else "")
    for token in re.split(r"[_\-.\s]+", stem):
        if token.isupper() and token.isalnum():
            for quote in _QUOTES:
                if token.endswith(quote) and len(token) > len(quote):
                    return f"{token[: -len(quote)]}/{quote}"
    return ""


def _decompress(path: Path, raw: bytes) -> tuple[bytes, str]:
    """File content and the name that tells its format (inner name for archives)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".gz":
            return gzip.decompress(raw), path.stem
        if suffix == ".bz2":
            return bz2.decompress(raw), path.stem
        if suffix == ".xz":
            return lzma.decompress(raw), path.stem
        if suffix == ".zip":
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                members = [m for m in archive.namelist() if not m.endswith("/")]
                if len(members) != 1:
                    raise DataError(f"a .zip must hold exactly one file, found {len(members)}", str(path))
                return archive.read(members[0]), members[0]
    except (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot decompress: {e}", str(path)) from None
    return raw, path.name


def detect_format(name: str, head: bytes) -> str:
    """``"parquet"``, ``"feather"`` or ``"csv"`` from magic bytes, then the file name."""
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"ARROW1"):
        return "feather"
    lower = name.lower()
    if lower.endswith((".parquet", ".pq", ".parq")):
        return "parquet"
    if lower.endswith((".feather", ".ftr", ".arrow", ".ipc")):
        return "feather"
    return "csv"


def load_ohlcv(
    path: PathLike, *, symbol: str | None = None, timeframe: str | None = None, format: str | None = None
) -> OHLCV:
    """Load bars from a CSV, Parquet or Feather file (format sniffed unless given).

    ``symbol`` defaults to a guess from the file name (``BTC_USDT-1m.feather`` and
    ``..._BTCUSDT_...`` give ``BTC/USDT``; otherwise ""). ``timeframe`` defaults to the
    median bar spacing; a declared timeframe longer than that spacing is an error.
    """
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read: {e.strerror or e}", str(file)) from None
    content, name = _decompress(file, raw)
    kind = format or detect_format(name, content[:8])
    if kind == "csv":
        return _load_csv_bytes(content, str(file), symbol, timeframe)
    if kind in ("parquet", "feather"):
        return _load_arrow(content, kind, str(file), symbol, timeframe)
    raise ValueError(f"unknown format {format!r}: expected csv, parquet or feather")


def load_csv(path: PathLike, *, symbol: str | None = None, timeframe: str | None = None) -> OHLCV:
    """Load bars from a CSV file, with a header or in Binance's kline layout."""
    return load_ohlcv(path, symbol=symbol, timeframe=timeframe, format="csv")


def load_parquet(path: PathLike, *, symbol: str | None = None, timeframe: str | None = None) -> OHLCV:
    """Load bars from a Parquet file (needs pyarrow)."""
    return load_ohlcv(path, symbol=symbol, timeframe=timeframe, format="parquet")


def load_feather(path: PathLike, *, symbol: str | None = None, timeframe: str | None = None) -> OHLCV:
    """Load bars from a Feather / Arrow IPC file (needs pyarrow)."""
    return load_ohlcv(path, symbol=symbol, timeframe=timeframe, format="feather")


# -- CSV ---------------------------------------------------------------------------------


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _find_column(names: list[str], candidates: tuple[str, ...], taken: set[int]) -> int | None:
    for candidate in candidates:
        for i, name in enumerate(names):
            if name == candidate and i not in taken:
                return i
    return None


def _csv_layout(text_head: str, path: str) -> _Layout:
    lines = text_head.split("\n")
    blank = 0
    while blank < len(lines) and not lines[blank].strip():
        blank += 1
    if blank == len(lines):
        raise DataError("the file is empty", path)
    first = lines[blank].rstrip("\r")
    delimiter = max(_DELIMITERS, key=first.count)
    fields = next(csv.reader([first], delimiter=delimiter))
    line = blank + 1
    if len(fields) > 1 and all(_is_number(f) for f in fields[1:]):
        if len(fields) < 6:
            raise DataError(
                f"no header and only {len(fields)} columns: a file without a header must have "
                "time, open, high, low, close, volume (the Binance kline layout)",
                path,
                line,
            )
        return _Layout(delimiter, blank, (0, 1, 2, 3, 4, 5), ("1", "2", "3", "4", "5", "6"))
    names = [_normalise(f) for f in fields]
    taken: set[int] = set()
    found: dict[str, int] = {}
    time_index = _find_column(names, TIME_COLUMNS, taken)
    if time_index is not None:
        taken.add(time_index)
    for value in VALUE_NAMES:
        index = _find_column(names, PRICE_COLUMNS[value], taken)
        if index is None and value == "volume":
            index = next((i for i, n in enumerate(names) if n.startswith("volume") and i not in taken), None)
        if index is not None:
            found[value] = index
            taken.add(index)
    missing = ([] if time_index is not None else ["a time column"]) + [
        repr(v) for v in VALUE_NAMES if v not in found
    ]
    if missing:
        header = ", ".join(f.strip() for f in fields)
        raise DataError(
            f"missing {', '.join(missing)} in the header ({header}); expected a time column named one "
            f"of {', '.join(TIME_COLUMNS[:8])}, ... and open, high, low, close, volume",
            path,
            line,
        )
    assert time_index is not None
    indices = (time_index, *(found[v] for v in VALUE_NAMES))
    return _Layout(delimiter, blank + 1, indices, tuple(fields[i].strip() for i in indices))


def _load_csv_bytes(content: bytes, path: str, symbol: str | None, timeframe: str | None) -> OHLCV:
    layout = _csv_layout(content[:65536].decode("utf-8", "replace"), path)
    symbol = _guess_symbol(Path(path)) if symbol is None else symbol
    try:
        time_ns, values = _parse_csv_fast(content, layout)
    except (ValueError, TimeParseError):
        time_ns, values = None, None
    if time_ns is None or values is None:
        # The line-by-line reader names the first offending line and column, or reads
        # what the fast reader refused (for example quoted fields with odd spacing).
        time_ns, values = _parse_csv_slow(content, layout, path)
    return _finish(time_ns, values, symbol, timeframe, path)


def _parse_csv_fast(content: bytes, layout: _Layout) -> tuple[np.ndarray | None, list[np.ndarray] | None]:
    """Whole-file numpy parse; (None, None) when anything needs a closer look."""
    first_row = _first_data_fields(content, layout)
    if first_row is None or len(first_row) <= max(layout.indices):
        return None, None
    first_time = first_row[layout.indices[0]].strip()
    if is_epoch_text(first_time):
        time_dtype: Any = np.int64 if re.fullmatch(r"[+-]?\d+", first_time) else np.float64
    else:
        time_dtype = f"S{_TIME_WIDTH}"
    dtype = [("t", time_dtype)] + [(v, np.float64) for v in VALUE_NAMES]
    table = np.loadtxt(
        io.BytesIO(content),
        delimiter=layout.delimiter,
        skiprows=layout.header_lines,
        usecols=layout.indices,
        dtype=dtype,
        comments=None,
        quotechar='"',
        ndmin=1,
    )
    if len(table) == 0:
        return None, None
    raw_times = np.ascontiguousarray(table["t"])
    if raw_times.dtype.kind == "S" and raw_times.view(np.uint8).reshape(len(table), -1)[:, -1].any():
        return None, None  # a value may have been cut at _TIME_WIDTH
    time_ns = parse_time_column(raw_times)
    values = [np.ascontiguousarray(table[v]) for v in VALUE_NAMES]
    if not all(np.isfinite(v).all() for v in values):
        return None, None
    if len(time_ns) > 1 and not np.all(np.diff(time_ns) > 0):
        return None, None
    return time_ns, values


def _first_data_fields(content: bytes, layout: _Layout) -> list[str] | None:
    lines = content[:65536].decode("utf-8", "replace").split("\n")
    for line in lines[layout.header_lines :]:
        if line.strip():
            return next(csv.reader([line.rstrip("\r")], delimiter=layout.delimiter))
    return None


class _TimeReader:
    """Reads one time value at a time with the rules of the column's first value."""

    def __init__(self) -> None:
        self.epoch_unit: int | None = None
        self.iso: bool | None = None

    def __call__(self, text: str) -> int:
        text = text.strip()
        if self.iso is None:
            self.iso = not is_epoch_text(text)
            if not self.iso:
                self.epoch_unit = epoch_unit_ns(float(text))
        if self.iso:
            return parse_iso_one(text)
        if not is_epoch_text(text):
            raise TimeParseError(f"{text!r} is not a number (the column holds epoch numbers)", 0)
        assert self.epoch_unit is not None
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text) * self.epoch_unit
        value = float(text)
        if self.epoch_unit == 1:
            return round(value)
        return round(value * (self.epoch_unit / 1_000)) * 1_000


def _parse_csv_slow(content: bytes, layout: _Layout, path: str) -> tuple[np.ndarray, list[np.ndarray]]:
    text = content.decode("utf-8-sig", "replace")
    reader = csv.reader(io.StringIO(text), delimiter=layout.delimiter)
    need = max(layout.indices) + 1
    read_time = _TimeReader()
    times: list[int] = []
    columns: list[list[float]] = [[] for _ in VALUE_NAMES]
    previous = None
    for row in reader:
        if reader.line_num <= layout.header_lines or not any(f.strip() for f in row):
            continue
        line = reader.line_num
        if len(row) < need:
            raise DataError(f"expected at least {need} fields, found {len(row)}", path, line)
        time_field = row[layout.indices[0]]
        try:
            t = read_time(time_field)
        except TimeParseError as e:
            raise DataError(str(e), path, line, layout.names[0]) from None
        if previous is not None and t <= previous:
            what = "the same as" if t == previous else "before"
            raise DataError(
                f"time {format_ns(t)} is {what} the previous row's {format_ns(previous)} "
                "(times must increase strictly: is the file unsorted or does it repeat rows?)",
                path,
                line,
                layout.names[0],
            )
        previous = t
        times.append(t)
        for k, index in enumerate(layout.indices[1:]):
            field = row[index].strip()
            try:
                value = float(field)
            except ValueError:
                raise DataError(f"{field!r} is not a number", path, line, layout.names[k + 1]) from None
            if not np.isfinite(value):
                raise DataError(f"{field!r} is not a finite number", path, line, layout.names[k + 1])
            columns[k].append(value)
    if not times:
        raise DataError("no data rows", path)
    return np.array(times, dtype=np.int64), [np.array(c, dtype=np.float64) for c in columns]


def _finish(
    time_ns: np.ndarray, values: list[np.ndarray], symbol: str, timeframe: str | None, path: str
) -> OHLCV:
    if len(time_ns) == 0:
        raise DataError("no data rows", path)
    inferred = infer_timeframe(time_ns)
    if timeframe:
        try:
            declared = parse_timeframe(timeframe)
        except ValueError as e:
            raise DataError(str(e), path) from None
        if inferred and parse_timeframe(inferred) < declared:
            raise DataError(f"declared timeframe {timeframe} but the bars are {inferred} apart", path)
    return OHLCV(time_ns, *values, symbol=symbol, timeframe=timeframe or inferred, source=path)


# -- Parquet / Feather ---------------------------------------------------------------------


def _load_arrow(content: bytes, kind: str, path: str, symbol: str | None, timeframe: str | None) -> OHLCV:
    try:
        import pyarrow as pa
    except ImportError:
        raise DataError(
            f"reading {kind.capitalize()} files needs pyarrow, which is not installed: "
            "pip install pyarrow (or convert the file to CSV)",
            path,
        ) from None
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(pa.BufferReader(content))
        else:
            import pyarrow.feather as feather

            table = feather.read_table(pa.BufferReader(content))
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"not a readable {kind} file: {e}", path) from None
    names = [_normalise(n) for n in table.column_names]
    taken: set[int] = set()
    time_index = _find_column(names, (*TIME_COLUMNS, "__index_level_0__"), taken)
    indices: dict[str, int] = {}
    if time_index is not None:
        taken.add(time_index)
    for value in VALUE_NAMES:
        index = _find_column(names, PRICE_COLUMNS[value], taken)
        if index is not None:
            indices[value] = index
            taken.add(index)
    missing = ([] if time_index is not None else ["a time column"]) + [
        repr(v) for v in VALUE_NAMES if v not in indices
    ]
    if missing:
        raise DataError(f"missing {', '.join(missing)} (columns: {', '.join(table.column_names)})", path)
    assert time_index is not None
    columns = [time_index, *(indices[v] for v in VALUE_NAMES)]
    labels = [table.column_names[i] for i in columns]
    for i, label in zip(columns, labels, strict=True):
        chunked = table.column(i)
        if chunked.null_count:
            row = _first_null(chunked)
            raise DataError(f"row {row}: column {label!r}: missing value", path)
    time_ns = _arrow_times(table.column(time_index), labels[0], path, pa)
    values: list[np.ndarray] = []
    for label, i in zip(labels[1:], columns[1:], strict=True):
        try:
            array = table.column(i).cast(pa.float64()).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise DataError(f"column {label!r}: not numbers ({e})", path) from None
        finite = np.isfinite(array)
        if not finite.all():
            row = int(np.flatnonzero(~finite)[0]) + 1
            raise DataError(f"row {row}: column {label!r}: {array[row - 1]!r} is not a finite number", path)
        values.append(np.ascontiguousarray(array))
    if len(time_ns) > 1:
        bad = np.flatnonzero(np.diff(time_ns) <= 0)
        if len(bad):
            row = int(bad[0]) + 2
            raise DataError(
                f"row {row}: column {labels[0]!r}: time {format_ns(int(time_ns[row - 1]))} is not after "
                f"the previous row's {format_ns(int(time_ns[row - 2]))} (times must increase strictly)",
                path,
            )
    symbol = _guess_symbol(Path(path)) if symbol is None else symbol
    return _finish(time_ns, values, symbol, timeframe, path)


def _first_null(chunked: Any) -> int:
    offset = 0
    for chunk in chunked.chunks:
        if chunk.null_count:
            mask = chunk.is_null().to_numpy(zero_copy_only=False)
            return offset + int(np.flatnonzero(mask)[0]) + 1
        offset += len(chunk)
    return 0


def _arrow_times(chunked: Any, label: str, path: str, pa: Any) -> np.ndarray:
    kind = chunked.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        if pa.types.is_date(kind):
            chunked = chunked.cast(pa.timestamp("ms"))
            kind = chunked.type
        scale = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}[kind.unit]
        return chunked.cast(pa.int64()).to_numpy() * scale
    array = chunked.to_numpy(zero_copy_only=False)
    try:
        return parse_time_column(array)
    except TimeParseError as e:
        raise DataError(f"row {e.index + 1}: column {label!r}: {e}", path) from None


# -- Writing -----------------------------------------------------------------------------

CSV_HEADER = "date,open,high,low,close,volume\n"


def format_csv_rows(
    time_ns: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
) -> str:
    """Rows in :data:`CSV_HEADER`'s layout: ISO UTC open time, then shortest-repr floats."""
    stamps = np.asarray(time_ns, dtype=np.int64)
    whole_seconds = bool(np.all(stamps % 1_000_000_000 == 0))
    unit = "s" if whole_seconds else "ns"
    texts = np.datetime_as_string(stamps.astype("datetime64[ns]").astype(f"datetime64[{unit}]"), unit=unit)
    out = []
    for stamp, o, h, lo, c, v in zip(
        texts.tolist(),
        np.asarray(open_, dtype=np.float64).tolist(),
        np.asarray(high, dtype=np.float64).tolist(),
        np.asarray(low, dtype=np.float64).tolist(),
        np.asarray(close, dtype=np.float64).tolist(),
        np.asarray(volume, dtype=np.float64).tolist(),
        strict=True,
    ):
        out.append(f"{stamp.replace('T', ' ')}+00:00,{o!r},{h!r},{lo!r},{c!r},{v!r}\n")
    return "".join(out)


def write_csv(ohlcv: OHLCV, path: PathLike) -> None:
    """Write bars as CSV (``date,open,high,low,close,volume``, ISO UTC), atomically."""
    target = Path(path)
    text = CSV_HEADER + format_csv_rows(
        ohlcv.time_ns, ohlcv.open, ohlcv.high, ohlcv.low, ohlcv.close, ohlcv.volume
    )
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
