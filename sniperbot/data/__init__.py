"""Market data for research: the OHLCV container, file loaders, gaps, and downloads.

``load_ohlcv(path)`` reads CSV (with a header, or Binance's headerless kline layout),
Parquet and Feather (with pyarrow) into an :class:`OHLCV`; ``ohlcv.gaps()`` lists
missing bars. :mod:`sniperbot.data.download` fetches candles from an exchange through
ccxt (imported only when used).
"""

from sniperbot.data.loaders import (
    CSV_HEADER,
    detect_format,
    format_csv_rows,
    load_csv,
    load_feather,
    load_ohlcv,
    load_parquet,
    write_csv,
)
from sniperbot.data.ohlcv import (
    OHLCV,
    DataError,
    Gap,
    find_gaps,
    format_ns,
    format_timeframe,
    infer_timeframe,
    parse_timeframe,
)
from sniperbot.data.times import parse_datetime

__all__ = [
    "CSV_HEADER",
    "OHLCV",
    "DataError",
    "Gap",
    "detect_format",
    "find_gaps",
    "format_csv_rows",
    "format_ns",
    "format_timeframe",
    "infer_timeframe",
    "load_csv",
    "load_feather",
    "load_ohlcv",
    "load_parquet",
    "parse_datetime",
    "parse_timeframe",
    "write_csv",
]
