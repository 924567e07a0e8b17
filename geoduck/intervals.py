"""Time semantics: closed UTC intervals at microsecond resolution.

- A value covers the period of its least significant field: ``20230615`` →
  ``[2023-06-15T00:00:00, 2023-06-15T23:59:59.999999]``; ``202306`` → all of June; ``2023`` → the
  year; ``202306151056`` → that minute; ``20230615T105619`` → that second; ``10:56:19.5`` → that
  tenth of a second; six fractional digits → that microsecond (an instant). Back-to-back files
  therefore never double count.
- With ``exact_times=True`` a value carrying a time of day is an instant ``[t, t]`` instead
  (date-only values still cover their period).
- A ``(start, stop)`` pair covers ``[start, end of stop's period - 1 µs]`` (``[start, stop]`` for
  times with ``exact_times``).
- Naive values are UTC; aware values are converted to UTC.
- Both ends ``None`` means static (matches every time query); never ``Timestamp.min/max``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Generic, Literal, TypeAlias, TypeVar

import numpy as np

from .errors import ArgumentError, TimeParseError

if TYPE_CHECKING:
    import pandas as pd

# pandas (parsing, calendar offsets) is imported by the functions that use it, so that importing
# this module (hence a query without a time filter) does not load it.

Precision: TypeAlias = 'Literal["year", "month", "day", "hour", "minute", "second", "instant"] | pd.Timedelta'
"""The period a parsed value covers: a calendar unit, ``"instant"`` (one µs), or a sub-second
:class:`pandas.Timedelta` (a value with 1–5 fractional second digits)."""

SUB_DAY: frozenset[str] = frozenset({"hour", "minute", "second", "instant"})
"""Precisions of values that carry a time of day (as do all Timedelta precisions)."""


@dataclass(frozen=True)
class Interval:
    """A closed interval ``[start, end]`` of UTC timestamps; both None means static."""

    start: pd.Timestamp | None
    end: pd.Timestamp | None

    def __post_init__(self) -> None:
        if (self.start is None) != (self.end is None):
            raise ArgumentError("an interval needs both ends or neither (static)")
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ArgumentError(f"interval start {self.start} is after its end {self.end}")

    @property
    def is_static(self) -> bool:
        return self.start is None

    @classmethod
    def static(cls) -> Interval:
        return cls(None, None)


def _utc(ts: pd.Timestamp) -> pd.Timestamp:
    """``ts`` in UTC at µs; years 1–9999 only (the range every reader of the catalog supports)."""
    try:
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        ts = ts.as_unit("us")
    except (ValueError, OverflowError) as exc:
        raise TimeParseError(f"time {ts!r} is out of range: {exc}") from None
    if not 1 <= ts.year <= 9999:
        raise TimeParseError(f"time {ts.isoformat()} is outside the supported years 1–9999")
    return ts


@cache
def _offsets() -> dict[str, pd.DateOffset | pd.Timedelta]:
    """The length of each calendar precision."""
    import pandas as pd

    return {
        "year": pd.DateOffset(years=1),
        "month": pd.DateOffset(months=1),
        "day": pd.DateOffset(days=1),
        "hour": pd.Timedelta(hours=1),
        "minute": pd.Timedelta(minutes=1),
        "second": pd.Timedelta(seconds=1),
    }


def has_time_of_day(precision: Precision) -> bool:
    """Whether a value of this precision carries a time of day (hour or finer)."""
    return not isinstance(precision, str) or precision in SUB_DAY


def _period_end(ts: pd.Timestamp, precision: Precision) -> pd.Timestamp:
    """The last µs of the period of ``precision`` that starts at ``ts``."""
    import pandas as pd

    if isinstance(precision, str) and precision == "instant":
        return ts
    offset = precision if isinstance(precision, pd.Timedelta) else _offsets()[precision]
    try:
        return _utc(ts + offset - pd.Timedelta(microseconds=1))
    except (ValueError, OverflowError) as exc:
        raise TimeParseError(f"the period starting {ts.isoformat()} ends out of range: {exc}") from None


_COMPACT: list[tuple[re.Pattern[str], str | None, str]] = [  # (pattern, strptime format, precision)
    (re.compile(r"\d{4}"), "%Y", "year"),
    (re.compile(r"\d{6}"), "%Y%m", "month"),
    (re.compile(r"\d{4}[-_/.]\d{2}"), None, "month"),
    (re.compile(r"\d{7}"), "%Y%j", "day"),
    (re.compile(r"\d{4}[-_]\d{3}"), None, "doy"),
    (re.compile(r"\d{8}"), "%Y%m%d", "day"),
    (re.compile(r"\d{4}[-_/.]\d{2}[-_/.]\d{2}"), None, "day"),
    (re.compile(r"\d{10}"), "%Y%m%d%H", "hour"),
    (re.compile(r"\d{12}"), "%Y%m%d%H%M", "minute"),
    (re.compile(r"\d{14}"), "%Y%m%d%H%M%S", "second"),
    (re.compile(r"\d{8}[T_]\d{2}"), "%Y%m%d%H", "hour"),
    (re.compile(r"\d{8}[T_]\d{4}"), "%Y%m%d%H%M", "minute"),
    (re.compile(r"\d{8}[T_]\d{6}"), "%Y%m%d%H%M%S", "second"),
]

_COMPACT_FORMAT = {"month": "%Y%m", "day": "%Y%m%d"}
"""strptime formats of the compact patterns written with separators (read with them removed)."""

_ISO_TIME = re.compile(
    r"(?:T|\s|^)\d{1,2}(?::(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*(?:[ap]\.?m\.?)?"
    r"\s*(?:Z|[+-]\d{2}(?::?\d{2})?)?$",
    re.IGNORECASE,
)
"""The time-of-day part at the end of an ISO-like text: hour, then optional minutes, seconds and
fraction (groups 1–3), then an optional am/pm and UTC offset."""


def format_precision(date_format: str) -> Precision:
    """Precision implied by a strptime format: the period of its finest directive (``%f`` →
    instant; ``%S``/``%T``/``%X``/``%c``/``%s`` → second; ``%M``/``%R`` → minute; ``%H``/``%I`` →
    hour; ``%d``/``%j``/weekday directives → day; ``%m``/``%b`` → month; else year)."""
    if "%f" in date_format:
        return "instant"
    if re.search(r"%[STXcs]", date_format):
        return "second"
    if re.search(r"%[MR]", date_format):
        return "minute"
    if re.search(r"%[HI]", date_format):
        return "hour"
    if re.search(r"%[djaAuwUWV]", date_format):
        return "day"
    if re.search(r"%[mbB]", date_format):
        return "month"
    return "year"


def parse_datetime(text: str, date_format: str | None = None, *, what: str = "value") -> tuple[pd.Timestamp, Precision]:
    """Parse ``text`` into (UTC timestamp at the start of its period, precision).

    With ``date_format`` (strptime) the precision is that of the format's finest directive;
    without it, compact forms (``2023``, ``202306``, ``2023-06``, ``2023166``, ``20230615``,
    ``2023-06-15``, ``2023061510``, ``202306151030``, ``20230615T103000``) are recognised, then
    ISO 8601 via pandas, whose precision is that of the last time field written (hour, minute,
    second or a fraction of a second; a date without a time of day: day).
    """
    import pandas as pd

    text = str(text).strip()
    if date_format is not None:
        try:
            parsed = dt.datetime.strptime(text, date_format)
        except ValueError as exc:
            raise TimeParseError(f"{what} {text!r} does not match date_format={date_format!r}: {exc}") from None
        return _utc(pd.Timestamp(parsed)), format_precision(date_format)
    for pattern, fmt, precision in _COMPACT:
        if not pattern.fullmatch(text):
            continue
        digits = re.sub(r"[-_/.T]", "", text)
        try:
            if precision == "doy":
                return _utc(pd.Timestamp(dt.datetime.strptime(digits, "%Y%j"))), "day"
            fmt = fmt or _COMPACT_FORMAT[precision]
            return _utc(pd.Timestamp(dt.datetime.strptime(digits, fmt))), precision
        except ValueError:
            break
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError, OverflowError):
        raise TimeParseError(
            f"cannot parse {what} {text!r} as a date/time; pass date_format= (strptime, e.g. '%Y%m%d')"
        ) from None
    if ts is pd.NaT:
        raise TimeParseError(f"{what} {text!r} is not a date/time")
    return _utc(ts), _text_precision(text)


def _text_precision(text: str) -> Precision:
    """The period of the last field of an ISO-like date/time text ("June 15, 2023" → day)."""
    import pandas as pd

    if not re.search(r"T\d|\d:\d", text):
        return "day"
    m = _ISO_TIME.search(text.strip())
    if m is None:
        return "instant"
    minutes, seconds, fraction = m.groups()
    if fraction is not None:
        digits = len(fraction)
        return "instant" if digits >= 6 else pd.Timedelta(microseconds=10 ** (6 - digits))
    return "second" if seconds is not None else "minute" if minutes is not None else "hour"


def _value_end(t: pd.Timestamp, precision: Precision, exact_times: bool) -> pd.Timestamp:
    """The end of a value's period; ``t`` itself for times of day when ``exact_times``."""
    return t if exact_times and has_time_of_day(precision) else _period_end(t, precision)


def interval_from_strings(
    *,
    date: str | None = None,
    start: str | None = None,
    stop: str | None = None,
    date_format: str | None = None,
    exact_times: bool = False,
) -> Interval:
    """The interval of a file from its ``date`` or its ``start``/``stop`` strings (see module doc;
    ``exact_times`` keeps values with a time of day as instants)."""
    if date is not None:
        t, precision = parse_datetime(date, date_format, what="date")
        return Interval(t, _value_end(t, precision, exact_times))
    if start is None and stop is None:
        return Interval.static()
    if start is None or stop is None:
        raise ArgumentError("both 'start' and 'stop' are needed for an interval")
    t0, _ = parse_datetime(start, date_format, what="start")
    t1, p1 = parse_datetime(stop, date_format, what="stop")
    end = _value_end(t1, p1, exact_times)
    if t0 > end:
        raise ArgumentError(f"start {start!r} is after stop {stop!r}")
    return Interval(t0, end)


TimeLike: TypeAlias = "str | dt.date | dt.datetime | pd.Timestamp | np.datetime64 | None"


def _coerce(value: TimeLike, *, argument: str) -> tuple[pd.Timestamp, Precision] | None:
    import pandas as pd

    if value is None:
        return None
    if isinstance(value, str):
        return parse_datetime(value, what=argument)
    if isinstance(value, dt.datetime | pd.Timestamp | np.datetime64):
        try:
            ts = pd.Timestamp(value)
        except (ValueError, OverflowError) as exc:
            raise TimeParseError(f"{argument}={value!r} is out of range: {exc}") from None
        if ts is pd.NaT:
            raise TimeParseError(f"{argument} is NaT")
        return _utc(ts), "instant"
    if isinstance(value, dt.date):
        return _utc(pd.Timestamp(value)), "day"
    raise ArgumentError(f"{argument}={value!r} is not a date/time (str, date, datetime, Timestamp)")


def query_interval(start: TimeLike = None, end: TimeLike = None) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """Normalise a query's ``start``/``end`` to UTC bounds of a closed interval.

    A date-only ``end`` covers its whole period (``end="2023-06-30"`` includes that day,
    ``"2023-06"`` the month); an end with a time of day is exact, as are ``datetime`` and
    ``Timestamp`` values. A ``start`` begins its period. Either may be None (open-ended).
    """
    s = _coerce(start, argument="start")
    e = _coerce(end, argument="end")
    t0 = s[0] if s else None
    t1 = _value_end(*e, exact_times=True) if e else None
    if t0 is not None and t1 is not None and t0 > t1:
        raise ArgumentError(f"start={start!r} is after end={end!r}")
    return t0, t1


_ISO_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}(?::\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?(?:Z|[+-]\d{2}:\d{2})?)?")
"""ISO 8601 texts read without pandas by :func:`query_bounds` (``datetime.fromisoformat`` reads
them exactly as ``pandas.Timestamp`` does; the equivalence is tested)."""


def _utc_datetime(value: dt.datetime) -> dt.datetime:
    """``value`` as an aware UTC datetime (naive: UTC)."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _next_period(t: dt.datetime, precision: str) -> dt.datetime:
    """The start of the period after the ``precision`` period starting at ``t`` (calendar units)."""
    if precision == "year":
        return t.replace(year=t.year + 1)
    if precision == "month":
        return t.replace(year=t.year + t.month // 12, month=t.month % 12 + 1)
    return t + dt.timedelta(days=1)


def _fast_bound(value: TimeLike, *, is_end: bool) -> tuple[dt.datetime | None] | None:
    """One query bound as an aware UTC datetime, computed without pandas, or None when ``value``
    is not one of the forms handled here (the caller then asks :func:`query_interval`). A one-
    element tuple so that ``(None,)`` (an open end) differs from "not handled"."""
    if value is None:
        return (None,)
    precision: str
    if isinstance(value, str):
        text = value.strip()
        for pattern, fmt, unit in _COMPACT:
            if pattern.fullmatch(text):  # as parse_datetime reads the compact forms
                digits = re.sub(r"[-_/.T]", "", text)
                fmt, precision = ("%Y%j", "day") if unit == "doy" else (fmt or _COMPACT_FORMAT[unit], unit)
                try:
                    t = dt.datetime.strptime(digits, fmt)
                except ValueError:
                    return None
                break
        else:
            if _ISO_TEXT.fullmatch(text) is None:
                return None
            try:
                t = dt.datetime.fromisoformat(text)
            except ValueError:
                return None
            precision = "day" if len(text) == 10 else "instant"  # a time of day: ends are exact
    elif type(value) is dt.datetime:
        t, precision = value, "instant"
    elif type(value) is dt.date:
        t, precision = dt.datetime(value.year, value.month, value.day), "day"
    else:
        return None
    t = _utc_datetime(t)
    if not 1 <= t.year <= 9999:
        return None
    if is_end and precision in ("year", "month", "day"):
        try:
            return (_next_period(t, precision) - dt.timedelta(microseconds=1),)
        except (ValueError, OverflowError):
            return None
    return (t,)


def query_bounds(start: TimeLike = None, end: TimeLike = None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """:func:`query_interval`'s bounds as aware UTC datetimes (µs), read without importing pandas
    for ``None``, ``datetime.date``/``datetime`` values and the common texts (``2023``, ``202306``,
    ``20230615``, ``2023-06-15``, ISO 8601 date-times); every other value, and every error, goes
    through :func:`query_interval`, so both give the same bounds (tested on many forms). The query
    path uses it so that ``geoduck query --start … --end …`` does not load pandas (cold start)."""
    s = _fast_bound(start, is_end=False)
    e = _fast_bound(end, is_end=True)
    if s is None or e is None or (s[0] is not None and e[0] is not None and s[0] > e[0]):
        t0, t1 = query_interval(start, end)  # the general rule, and its error messages
        return (None if t0 is None else t0.to_pydatetime(), None if t1 is None else t1.to_pydatetime())
    return s[0], e[0]


_BARE_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def padding_micros(value: object, *, argument: str) -> int:
    """A non-negative duration as whole microseconds (``None`` → 0).

    Accepted: ``datetime.timedelta``, ``pandas.Timedelta``, ``numpy.timedelta64`` with a unit, or a
    string with a unit (``"3D"``, ``"12h"``, ``"1 day 2 hours"``). Bare numbers (``3``, ``"3"``,
    ``np.timedelta64(3)``) are refused rather than read as nanoseconds, and so are durations that
    are not whole microseconds (intervals have microsecond resolution).
    """
    if value is None:
        return 0
    if isinstance(value, np.timedelta64):
        unitless = np.datetime_data(value.dtype)[0] == "generic"
    else:
        unitless = isinstance(value, bool | int | float | np.number) or (
            isinstance(value, str) and _BARE_NUMBER.fullmatch(value) is not None
        )
    if unitless:
        raise ArgumentError(
            f"{argument}={value!r} has no unit: pass a timedelta, e.g. "
            f"{argument}=timedelta(days=3), or a string with a unit, e.g. '3D' or '12h'"
        )
    import pandas as pd

    one_us = pd.Timedelta(microseconds=1)
    try:
        delta = pd.Timedelta(value)
    except (ValueError, TypeError):
        raise ArgumentError(f"{argument}={value!r} is not a timedelta (e.g. timedelta(days=3), '3D')") from None
    if delta is pd.NaT or delta < pd.Timedelta(0):
        raise ArgumentError(f"{argument}={value!r} must be a non-negative timedelta")
    if delta % one_us:
        raise ArgumentError(
            f"{argument}={value!r} is not a whole number of microseconds (intervals have microsecond resolution)"
        )
    return int(delta // one_us)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def from_epoch_us(us: int) -> dt.datetime:
    """The aware UTC datetime ``us`` microseconds after 1970-01-01T00:00:00Z (:func:`epoch_us`'s
    inverse, without pandas); ``str()`` of it reads as a UTC ``pandas.Timestamp`` prints."""
    return _EPOCH + dt.timedelta(microseconds=us)


def epoch_us(value: object) -> int | None:
    """Microseconds since 1970-01-01T00:00:00Z of a timestamp (``pd.Timestamp``, ``datetime``,
    ``np.datetime64``; naive values are UTC); ints are taken as µs already. None for None/NaT,
    and for a value that is not a whole microsecond (callers then skip pruning on it)."""
    if value is None:
        return None
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value)
    if type(value) is dt.datetime:  # without pandas (the query path)
        delta = _utc_datetime(value) - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
        if ts is pd.NaT:
            return None
        if ts.tzinfo is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        us = ts.as_unit("us")
    except (OverflowError, ValueError, TypeError):
        return None
    return int(us.asm8.view("i8")) if us == ts else None


Bound = TypeVar("Bound")


@dataclass(frozen=True)
class Overlap(Generic[Bound]):
    """The interval-overlap rule of geoduck, for a closed query interval ``[t0, t1]`` (None: open
    at that end): a row ``[start, end]`` overlaps when ``start <= t1`` and ``end >= t0``; a NULL
    start or end (a static row) satisfies its comparison. SQL generation (:meth:`terms`), the
    numpy row index (:meth:`mask`) and part pruning (:meth:`may_overlap`) all read it from here.
    """

    t0: Bound | None
    t1: Bound | None

    def terms(self) -> tuple[tuple[Literal["start", "end"], Literal["<=", ">="], Bound], ...]:
        """The comparisons ``(row column, operator, bound)`` ANDed together; each also holds when
        the row's column is NULL."""
        out: list[tuple[Literal["start", "end"], Literal["<=", ">="], Bound]] = []
        if self.t1 is not None:
            out.append(("start", "<=", self.t1))
        if self.t0 is not None:
            out.append(("end", ">=", self.t0))
        return tuple(out)

    def mask(self, start: np.ndarray, start_null: np.ndarray, end: np.ndarray, end_null: np.ndarray) -> np.ndarray:
        """Which rows overlap, for µs int64 ``start``/``end`` arrays with their NULL masks
        (the bounds must be µs ints too)."""
        ok = np.ones(start.shape, dtype=bool)
        for column, _, bound in self.terms():
            if column == "start":
                ok &= start_null | (start <= bound)
            else:
                ok &= end_null | (end >= bound)
        return ok

    def may_overlap(self, tmin: Bound | None, tmax: Bound | None) -> bool:
        """Whether rows whose least start is ``tmin`` and greatest end ``tmax`` (None: unknown,
        or some row is static) may overlap."""
        for column, _, bound in self.terms():
            if column == "start" and tmin is not None and tmin > bound:  # type: ignore[operator]
                return False
            if column == "end" and tmax is not None and tmax < bound:  # type: ignore[operator]
                return False
        return True
