"""Time values in market data files -> int64 nanoseconds since the Unix epoch (UTC).

Two kinds of values are understood:

* **ISO 8601 text**: ``YYYY-MM-DD``, optionally followed by ``T`` or a space and
  ``HH:MM``, ``HH:MM:SS`` or ``HH:MM:SS.fffffffff`` (1 to 9 fraction digits), optionally
  followed by a zone: ``Z``, ``UTC``, ``+HH``, ``+HHMM`` or ``+HH:MM`` (a space before
  the zone is allowed). Text without a zone is taken as UTC.
* **Epoch numbers**: integers or decimals counting seconds, milliseconds, microseconds or
  nanoseconds. The unit is decided once per column from the magnitude of its first
  value: below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds, else
  nanoseconds (so seconds work until the year 5138, and milliseconds from March 1973).

Whole columns are parsed with numpy when every value has the layout of the first (the
usual case: a column written by one program); otherwise each value is parsed on its
own with the same rules, so both routes accept exactly the same text.
"""

from __future__ import annotations

import re

import numpy as np

from sniperbot.data.ohlcv import NS_PER_S

_ISO = re.compile(
    rb"(?P<Y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})"
    rb"(?:[T ](?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:[.,](?P<f>\d{1,9}))?)?)?"
    rb"(?P<tz> ?(?:Z|UTC|(?P<sign>[+-])(?P<tzh>\d{2})(?::?(?P<tzm>\d{2}))?))?"
)
_NUMBER = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_DIGIT_GROUPS = ("Y", "mo", "d", "H", "M", "S", "f", "tzh", "tzm")
_DAYS_IN_MONTH = np.array([0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


class TimeParseError(ValueError):
    """A time value that cannot be read; ``index`` is its position in the column."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


def is_epoch_text(text: bytes | str) -> bool:
    """Whether a time value is written as a number (an epoch) rather than ISO text."""
    raw = text.encode() if isinstance(text, str) else text
    return _NUMBER.fullmatch(raw.strip()) is not None


def epoch_unit_ns(first_value: float) -> int:
    """Nanoseconds per unit of an epoch column, judged from the magnitude of its first value."""
    magnitude = abs(first_value)
    if magnitude < 1e11:
        return NS_PER_S
    if magnitude < 1e14:
        return 1_000_000
    if magnitude < 1e17:
        return 1_000
    return 1


def epoch_to_ns(values: np.ndarray, unit_ns: int | None = None) -> np.ndarray:
    """Epoch numbers (int or float array) to int64 ns; the unit is detected if not given."""
    if len(values) == 0:
        return np.empty(0, dtype=np.int64)
    if unit_ns is None:
        unit_ns = epoch_unit_ns(float(values[0]))
    if np.issubdtype(values.dtype, np.integer):
        return values.astype(np.int64) * unit_ns
    floats = values.astype(np.float64)
    if not np.all(np.isfinite(floats)):
        bad = int(np.flatnonzero(~np.isfinite(floats))[0])
        raise TimeParseError(f"{floats[bad]!r} is not a time", bad)
    if unit_ns == 1:
        return np.round(floats).astype(np.int64)
    # Decimal epochs are rounded to the microsecond, the precision a float64 keeps for
    # present-day seconds; the last step to ns is exact integer arithmetic.
    return np.round(floats * (unit_ns / 1_000)).astype(np.int64) * 1_000


def _days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    # Howard Hinnant's days_from_civil: exact proleptic Gregorian day numbers.
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _compose(
    y: np.ndarray,
    mo: np.ndarray,
    d: np.ndarray,
    h: np.ndarray,
    mi: np.ndarray,
    s: np.ndarray,
    frac_ns: np.ndarray,
    offset_min: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """ns since the epoch, and a mask of values whose fields are out of range."""
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    month_ok = (mo >= 1) & (mo <= 12)
    dim = _DAYS_IN_MONTH[np.where(month_ok, mo, 0)] - ((mo == 2) & ~leap)
    bad = ~month_ok | (d < 1) | (d > dim) | (h > 23) | (mi > 59) | (s > 59) | (np.abs(offset_min) > 24 * 60)
    days = _days_from_civil(y, mo, d)
    seconds = ((days * 24 + h) * 60 + mi - offset_min) * 60 + s
    return seconds * NS_PER_S + frac_ns, bad


def _digits(matrix: np.ndarray, start: int, end: int) -> np.ndarray:
    if start < 0:
        return np.zeros(len(matrix), dtype=np.int64)
    powers = 10 ** np.arange(end - start - 1, -1, -1, dtype=np.int64)
    return (matrix[:, start:end].astype(np.int64) - 48) @ powers


def _parse_uniform(matrix: np.ndarray) -> np.ndarray | None:
    """Vectorised parse when every row has row 0's layout; None if they do not."""
    first = matrix[0].tobytes().rstrip(b"\0")
    match = _ISO.fullmatch(first)
    if match is None:
        return None
    width = len(first)
    if matrix.shape[1] > width and matrix[:, width:].any():
        return None  # some rows are longer than row 0
    rows = matrix[:, :width]
    is_digit = np.zeros(width, dtype=bool)
    for group in _DIGIT_GROUPS:
        if match.start(group) >= 0:
            is_digit[match.start(group) : match.end(group)] = True
    fixed = ~is_digit
    sign_at = match.start("sign")
    if sign_at >= 0:
        fixed[sign_at] = False
    if not np.all((rows[:, is_digit] - 48).astype(np.uint8) < 10):
        return None
    if not np.array_equal(rows[:, fixed], np.broadcast_to(rows[0, fixed], (len(rows), int(fixed.sum())))):
        return None
    signs = rows[:, sign_at] if sign_at >= 0 else None
    if signs is not None and not np.all((signs == ord("+")) | (signs == ord("-"))):
        return None

    def field(group: str) -> np.ndarray:
        return _digits(rows, match.start(group), match.end(group))

    frac_digits = match.end("f") - match.start("f") if match.start("f") >= 0 else 0
    frac_ns = field("f") * 10 ** (9 - frac_digits)
    offset = field("tzh") * 60 + field("tzm")
    if signs is not None:
        offset = np.where(signs == ord("-"), -offset, offset)
    ns, bad = _compose(
        field("Y"), field("mo"), field("d"), field("H"), field("M"), field("S"), frac_ns, offset
    )
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise TimeParseError(f"{_show(rows[index].tobytes())} is not a valid date and time", index)
    return ns


def _show(raw: bytes) -> str:
    return repr(raw.rstrip(b"\0").decode("utf-8", "replace"))


def _days_from_civil_one(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def parse_iso_one(text: bytes | str, index: int = 0) -> int:
    """One ISO 8601 value (see the module docstring) -> ns since the epoch."""
    raw = (text.encode() if isinstance(text, str) else text).strip()
    match = _ISO.fullmatch(raw)
    if match is None:
        raise TimeParseError(
            f"{_show(raw)} is not a time (expected ISO 8601 such as 2025-05-20 00:00:00+00:00, "
            "or an epoch number)",
            index,
        )
    y, mo, d, h, mi, s, tzh, tzm = (
        int(match.group(g) or 0) for g in ("Y", "mo", "d", "H", "M", "S", "tzh", "tzm")
    )
    fraction = match.group("f") or b""
    offset = (tzh * 60 + tzm) * (-1 if match.group("sign") == b"-" else 1)
    leap = (y % 4 == 0 and y % 100 != 0) or y % 400 == 0
    dim = int(_DAYS_IN_MONTH[mo]) - (mo == 2 and not leap) if 1 <= mo <= 12 else 0
    if not 1 <= d <= dim or h > 23 or mi > 59 or s > 59 or abs(offset) > 24 * 60:
        raise TimeParseError(f"{_show(raw)} is not a valid date and time", index)
    seconds = ((_days_from_civil_one(y, mo, d) * 24 + h) * 60 + mi - offset) * 60 + s
    return seconds * NS_PER_S + (int(fraction.ljust(9, b"0")) if fraction else 0)


def parse_iso_array(values: np.ndarray) -> np.ndarray:
    """A column of ISO 8601 text (numpy ``S`` or ``U`` array) -> int64 ns since the epoch."""
    if len(values) == 0:
        return np.empty(0, dtype=np.int64)
    if values.dtype.kind == "U":
        values = np.char.encode(values, "utf-8")
    if values.dtype.kind != "S":
        values = np.asarray([str(v).encode() for v in values.tolist()])
    values = np.ascontiguousarray(values)
    matrix = values.view(np.uint8).reshape(len(values), values.dtype.itemsize)
    parsed = _parse_uniform(matrix)
    if parsed is not None:
        return parsed
    # Mixed layouts (fraction lengths, zones): one vectorised pass per value length,
    # and value by value (same rules) where even that is not uniform.
    out = np.empty(len(values), dtype=np.int64)
    lengths = np.char.str_len(values)
    for length in np.unique(lengths).tolist():
        rows = np.flatnonzero(lengths == length)
        try:
            group = _parse_uniform(matrix[rows]) if length else None
        except TimeParseError as e:
            raise TimeParseError(str(e), int(rows[e.index])) from None
        if group is None:
            for i in rows.tolist():
                out[i] = parse_iso_one(values[i], i)
        else:
            out[rows] = group
    return out


def parse_time_column(values: np.ndarray) -> np.ndarray:
    """A column of times of any supported kind (text, epoch numbers) -> int64 ns."""
    if values.dtype.kind in "iuf":
        return epoch_to_ns(values)
    if values.dtype.kind == "M":
        return values.astype("datetime64[ns]").astype(np.int64)
    if values.dtype.kind == "U":
        values = np.char.encode(values, "utf-8")
    elif values.dtype.kind != "S":
        values = np.asarray([str(v).encode() for v in values.tolist()])
    if len(values) and is_epoch_text(values[0]):
        return _parse_epoch_text(values)
    return parse_iso_array(values)


def _parse_epoch_text(values: np.ndarray) -> np.ndarray:
    for dtype in (np.int64, np.float64):
        try:
            return epoch_to_ns(values.astype(dtype))
        except ValueError:
            continue
    for i, value in enumerate(values.tolist()):
        if not is_epoch_text(value):
            raise TimeParseError(f"{_show(value)} is not a number (the column holds epoch numbers)", i)
    raise TimeParseError("the column's epoch numbers cannot be read", 0)


def parse_datetime(text: str) -> int:
    """A user-given time (ISO 8601 date or date-time, UTC unless zoned, or epoch) -> ns."""
    stripped = text.strip()
    if is_epoch_text(stripped):
        return int(_parse_epoch_text(np.array([stripped.encode()]))[0])
    return parse_iso_one(stripped)
