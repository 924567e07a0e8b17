"""DESIGN §2 time semantics: closed UTC intervals at microsecond resolution (geoduck.intervals)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from geoduck.errors import ArgumentError, TimeParseError
from geoduck.intervals import Interval, interval_from_strings, parse_datetime, query_interval


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def ends(iv: Interval) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    return iv.start, iv.end


# -- a single date value ------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["20230615", "2023-06-15", "2023_06_15", "2023.06.15", "2023166"])
def test_date_only_covers_the_whole_day(text):
    iv = interval_from_strings(date=text)
    assert ends(iv) == (utc("2023-06-15T00:00:00"), utc("2023-06-15T23:59:59.999999"))
    assert iv.end - iv.start == pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    assert str(iv.start.tz) == "UTC" and iv.start.unit == "us" and iv.end.unit == "us"


def test_back_to_back_days_do_not_overlap():
    days = [interval_from_strings(date=f"202302{d:02d}") for d in range(26, 29)] + [
        interval_from_strings(date="20230301")
    ]
    for a, b in zip(days, days[1:], strict=False):
        # Overlap per DESIGN: a.start <= b.end AND a.end >= b.start — false for consecutive days ...
        assert not (a.start <= b.end and a.end >= b.start)
        # ... and there is no gap either: the next day starts 1 µs after the previous ends.
        assert b.start - a.end == pd.Timedelta(microseconds=1)
    # A query for one instant at midnight matches exactly one day.
    t = utc("2023-02-28T00:00:00")
    assert [iv.start <= t <= iv.end for iv in days] == [False, False, True, False]


@pytest.mark.parametrize(
    "text, start, end",
    [
        ("202306", "2023-06-01", "2023-06-30T23:59:59.999999"),
        ("2023-06", "2023-06-01", "2023-06-30T23:59:59.999999"),
        ("202302", "2023-02-01", "2023-02-28T23:59:59.999999"),
        ("202402", "2024-02-01", "2024-02-29T23:59:59.999999"),  # leap year
        ("202312", "2023-12-01", "2023-12-31T23:59:59.999999"),
        ("2023", "2023-01-01", "2023-12-31T23:59:59.999999"),
        ("2024", "2024-01-01", "2024-12-31T23:59:59.999999"),
    ],
)
def test_month_and_year_precision(text, start, end):
    assert ends(interval_from_strings(date=text)) == (utc(start), utc(end))


@pytest.mark.parametrize(
    "text, start, end",
    [
        ("20230615T103000", "2023-06-15T10:30:00", "2023-06-15T10:30:00.999999"),  # that second
        ("20230615_103000", "2023-06-15T10:30:00", "2023-06-15T10:30:00.999999"),
        ("20230615T105619", "2023-06-15T10:56:19", "2023-06-15T10:56:19.999999"),
        ("202306151056", "2023-06-15T10:56:00", "2023-06-15T10:56:59.999999"),  # that minute
        ("20230615T1056", "2023-06-15T10:56:00", "2023-06-15T10:56:59.999999"),
        ("2023061510", "2023-06-15T10:00:00", "2023-06-15T10:59:59.999999"),  # that hour
        ("20230615103045", "2023-06-15T10:30:45", "2023-06-15T10:30:45.999999"),
        ("2023-06-15T10:30", "2023-06-15T10:30:00", "2023-06-15T10:30:59.999999"),
        ("2023-06-15T10", "2023-06-15T10:00:00", "2023-06-15T10:59:59.999999"),
        ("2023-06-15T10:30:45.5", "2023-06-15T10:30:45.5", "2023-06-15T10:30:45.599999"),  # a tenth
        ("2023-06-15T10:30:45.123", "2023-06-15T10:30:45.123", "2023-06-15T10:30:45.123999"),
        ("2023-06-15T10:30:45.123456", "2023-06-15T10:30:45.123456", "2023-06-15T10:30:45.123456"),
        ("2023-06-15T00:00:00", "2023-06-15T00:00:00", "2023-06-15T00:00:00.999999"),  # midnight: a second
        ("2023-06-15T10:30:00+02:00", "2023-06-15T08:30:00", "2023-06-15T08:30:00.999999"),
    ],
)
def test_value_with_time_covers_its_least_significant_field(text, start, end):
    assert ends(interval_from_strings(date=text)) == (utc(start), utc(end))


@pytest.mark.parametrize("text", ["20230615T103000", "202306151030", "2023-06-15T10:30", "2023061510"])
def test_exact_times_keeps_instants(text):
    iv = interval_from_strings(date=text, exact_times=True)
    assert iv.start == iv.end == interval_from_strings(date=text).start
    # date-only values still cover their day with exact_times
    assert ends(interval_from_strings(date="20230615", exact_times=True)) == (
        utc("2023-06-15"),
        utc("2023-06-15T23:59:59.999999"),
    )


def test_back_to_back_seconds_do_not_overlap():
    a, b = (interval_from_strings(date=f"20230615T1056{s:02d}") for s in (19, 20))
    assert b.start - a.end == pd.Timedelta(microseconds=1)


# -- start/stop pairs -----------------------------------------------------------------------------


def test_start_stop_dates_cover_floor_start_to_ceil_stop_minus_1us():
    iv = interval_from_strings(start="20230601", stop="20230630")
    assert ends(iv) == (utc("2023-06-01"), utc("2023-06-30T23:59:59.999999"))
    same_day = interval_from_strings(start="2023-06-15", stop="2023-06-15")
    assert ends(same_day) == (utc("2023-06-15"), utc("2023-06-15T23:59:59.999999"))
    months = interval_from_strings(start="202301", stop="202303")
    assert ends(months) == (utc("2023-01-01"), utc("2023-03-31T23:59:59.999999"))
    # Consecutive (start, stop) files tile time without overlap.
    nxt = interval_from_strings(start="20230701", stop="20230731")
    assert nxt.start - iv.end == pd.Timedelta(microseconds=1)


def test_start_stop_with_times_cover_to_the_end_of_the_stop_period():
    iv = interval_from_strings(start="20230601T103000", stop="20230601T113015")
    assert ends(iv) == (utc("2023-06-01T10:30:00"), utc("2023-06-01T11:30:15.999999"))
    iso = interval_from_strings(start="2023-06-01T10:30:00.000001", stop="2023-06-02T00:00")
    assert ends(iso) == (utc("2023-06-01T10:30:00.000001"), utc("2023-06-02T00:00:59.999999"))
    exact = interval_from_strings(start="20230601T103000", stop="20230601T113015", exact_times=True)
    assert ends(exact) == (utc("2023-06-01T10:30:00"), utc("2023-06-01T11:30:15"))


def test_start_after_stop_is_an_error():
    with pytest.raises(ArgumentError, match="20230701.*20230601"):
        interval_from_strings(start="20230701", stop="20230601")


def test_start_without_stop_is_an_error():
    with pytest.raises(ArgumentError, match="both 'start' and 'stop'"):
        interval_from_strings(start="20230601")


def test_no_value_is_static():
    iv = interval_from_strings()
    assert iv.is_static and ends(iv) == (None, None)
    assert Interval.static() == iv


# -- date_format ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, fmt, start, end",
    [
        ("15-06-2023", "%d-%m-%Y", "2023-06-15", "2023-06-15T23:59:59.999999"),
        ("06/2023", "%m/%Y", "2023-06-01", "2023-06-30T23:59:59.999999"),
        ("Jun2023", "%b%Y", "2023-06-01", "2023-06-30T23:59:59.999999"),
        ("23", "%y", "2023-01-01", "2023-12-31T23:59:59.999999"),
        ("2023-166", "%Y-%j", "2023-06-15", "2023-06-15T23:59:59.999999"),
        ("2023-06-15 10:30", "%Y-%m-%d %H:%M", "2023-06-15T10:30", "2023-06-15T10:30:59.999999"),
        # TorchGeo-style date_format strings
        ("20230615T105619", "%Y%m%dT%H%M%S", "2023-06-15T10:56:19", "2023-06-15T10:56:19.999999"),
        ("2023166", "%Y%j", "2023-06-15", "2023-06-15T23:59:59.999999"),
        ("2024060", "%Y%j", "2024-02-29", "2024-02-29T23:59:59.999999"),  # leap year day 60
        ("2023_06_15", "%Y_%m_%d", "2023-06-15", "2023-06-15T23:59:59.999999"),
        ("202306151056", "%Y%m%d%H%M", "2023-06-15T10:56", "2023-06-15T10:56:59.999999"),
        ("2023061510", "%Y%m%d%H", "2023-06-15T10:00", "2023-06-15T10:59:59.999999"),
        ("20230615105619123456", "%Y%m%d%H%M%S%f", "2023-06-15T10:56:19.123456", "2023-06-15T10:56:19.123456"),
    ],
)
def test_date_format_is_honoured(text, fmt, start, end):
    assert ends(interval_from_strings(date=text, date_format=fmt)) == (utc(start), utc(end))


def test_date_format_applies_to_start_and_stop():
    iv = interval_from_strings(start="01.06.2023", stop="30.06.2023", date_format="%d.%m.%Y")
    assert ends(iv) == (utc("2023-06-01"), utc("2023-06-30T23:59:59.999999"))


def test_date_format_mismatch_names_value_and_format():
    with pytest.raises(TimeParseError) as info:
        interval_from_strings(date="2023/06/15", date_format="%Y%m%d")
    assert "'2023/06/15'" in str(info.value) and "'%Y%m%d'" in str(info.value)


# -- time zones -----------------------------------------------------------------------------------


def test_aware_strings_are_converted_to_utc():
    iv = interval_from_strings(start="2023-06-01T10:30:00+02:00", stop="2023-06-01T11:30:00-05:00")
    assert ends(iv) == (utc("2023-06-01T08:30:00"), utc("2023-06-01T16:30:00.999999"))
    z = interval_from_strings(date="2023-06-15T23:30:00Z")
    assert ends(z) == (utc("2023-06-15T23:30:00"), utc("2023-06-15T23:30:00.999999"))
    fmt = interval_from_strings(date="2023-06-15T01:00:00+0300", date_format="%Y-%m-%dT%H:%M:%S%z")
    assert fmt.start == utc("2023-06-14T22:00:00")


def test_aware_query_values_are_converted_to_utc():
    eastern = dt.timezone(dt.timedelta(hours=-5))
    t0, t1 = query_interval(
        dt.datetime(2023, 6, 1, 12, tzinfo=eastern), pd.Timestamp("2023-06-02T01:00", tz="Europe/Madrid")
    )
    assert (t0, t1) == (utc("2023-06-01T17:00"), utc("2023-06-01T23:00"))
    assert str(t0.tz) == "UTC" and str(t1.tz) == "UTC"
    # Naive values are UTC.
    t0, t1 = query_interval(dt.datetime(2023, 6, 1, 12), np.datetime64("2023-06-01T18:00"))
    assert (t0, t1) == (utc("2023-06-01T12:00"), utc("2023-06-01T18:00"))


# -- bad strings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["notadate", "20231345", "2023-13", "2023-02-30", "", "S2A"])
def test_bad_strings_raise_time_parse_error_naming_the_value(text):
    with pytest.raises(TimeParseError) as info:
        interval_from_strings(date=text)
    assert isinstance(info.value, ArgumentError) and isinstance(info.value, ValueError)
    assert repr(text) in str(info.value)


def test_bad_query_string_names_argument_and_value():
    with pytest.raises(TimeParseError, match=r"end 'yesterday-ish'"):
        query_interval("2023-01-01", "yesterday-ish")


@pytest.mark.parametrize("text", ["June 15, 2023", "15 June 2023", "Jun 15 2023"])
def test_spelled_out_dates_are_days_not_instants(text):
    assert ends(interval_from_strings(date=text)) == (utc("2023-06-15"), utc("2023-06-15T23:59:59.999999"))
    assert query_interval(None, text)[1] == utc("2023-06-15T23:59:59.999999")


def test_spelled_out_date_with_time_covers_its_minute():
    assert ends(interval_from_strings(date="15 June 2023 10:30")) == (
        utc("2023-06-15T10:30"),
        utc("2023-06-15T10:30:59.999999"),
    )


def test_parse_datetime_reports_precision():
    assert parse_datetime("2023") == (utc("2023-01-01"), "year")
    assert parse_datetime("202306") == (utc("2023-06-01"), "month")
    assert parse_datetime("20230615") == (utc("2023-06-15"), "day")
    assert parse_datetime("20230615T101500") == (utc("2023-06-15T10:15"), "second")
    assert parse_datetime("202306151015") == (utc("2023-06-15T10:15"), "minute")
    assert parse_datetime("2023-06-15T10:15:00.123456") == (utc("2023-06-15T10:15:00.123456"), "instant")


# -- query intervals ------------------------------------------------------------------------------


def test_query_date_only_end_covers_the_whole_day():
    assert query_interval("2023-06-01", "2023-06-30") == (utc("2023-06-01"), utc("2023-06-30T23:59:59.999999"))
    assert query_interval(dt.date(2023, 6, 1), dt.date(2023, 6, 30)) == (
        utc("2023-06-01"),
        utc("2023-06-30T23:59:59.999999"),
    )
    # A file dated on the last day overlaps; one dated the day after does not.
    t0, t1 = query_interval("2023-06-01", "2023-06-30")
    last = interval_from_strings(date="20230630")
    after = interval_from_strings(date="20230701")
    assert last.start <= t1 and last.end >= t0
    assert not (after.start <= t1 and after.end >= t0)


def test_query_single_day_and_open_ends():
    assert query_interval("2023-06-15", "2023-06-15") == (utc("2023-06-15"), utc("2023-06-15T23:59:59.999999"))
    assert query_interval("2023-06-15", None) == (utc("2023-06-15"), None)
    assert query_interval(None, "2023-06") == (None, utc("2023-06-30T23:59:59.999999"))
    assert query_interval() == (None, None)
    # An end carrying a time is exact.
    assert query_interval(None, "2023-06-15T12:00:00")[1] == utc("2023-06-15T12:00")


def test_query_start_after_end_is_an_error():
    with pytest.raises(ArgumentError, match="start='2023-07-01' is after end='2023-06-01'"):
        query_interval("2023-07-01", "2023-06-01")
    with pytest.raises(ArgumentError):
        query_interval(dt.datetime(2023, 6, 2), dt.datetime(2023, 6, 1, 23))


def test_query_rejects_non_time_values():
    with pytest.raises(ArgumentError, match="start=3.5"):
        query_interval(3.5, None)


def test_interval_invariants():
    with pytest.raises(ArgumentError):
        Interval(utc("2023-06-01"), None)
    with pytest.raises(ArgumentError):
        Interval(utc("2023-06-02"), utc("2023-06-01"))


def test_epoch_us_is_one_rule_for_timestamps_datetimes_and_ints():
    from geoduck.intervals import epoch_us

    assert epoch_us(pd.Timestamp("1970-01-01T00:00:01", tz="UTC")) == 1_000_000
    assert epoch_us(pd.Timestamp("1970-01-01T01:00:01+01:00")) == 1_000_000  # aware: converted to UTC
    assert epoch_us(dt.datetime(1970, 1, 1, 0, 0, 0, 7)) == 7  # naive: UTC
    assert epoch_us(dt.datetime(1, 1, 1, tzinfo=dt.UTC)) == -62_135_596_800_000_000  # year 1 (Parquet stats)
    assert epoch_us(np.datetime64("2023-06-15T00:00:00", "us")) == 1_686_787_200_000_000
    assert epoch_us(1234) == 1234
    assert epoch_us(pd.Timestamp("2023-01-01T00:00:00.0000005", tz="UTC")) is None  # not a whole µs
    assert epoch_us(None) is None and epoch_us(pd.NaT) is None


def test_overlap_rule_numpy_and_pruning_agree_with_brute_force():
    from geoduck.intervals import Overlap

    rng = np.random.default_rng(0)
    start = rng.integers(0, 50, 400)
    end = start + rng.integers(0, 10, 400)
    start_null = end_null = rng.random(400) < 0.2
    for t0, t1 in [(10, 20), (None, 5), (30, None), (None, None), (17, 17)]:
        rule = Overlap(t0, t1)
        got = rule.mask(start, start_null, end, end_null)
        want = [
            sn or ((t1 is None or s <= t1) and (t0 is None or e >= t0))
            for s, e, sn in zip(start, end, start_null, strict=True)
        ]
        np.testing.assert_array_equal(got, want)
        rows = ~start_null
        if got[rows].any():  # pruning never drops a part holding an overlapping row
            assert rule.may_overlap(int(start[rows].min()), int(end[rows].max()))
    assert not Overlap(100, 200).may_overlap(0, 59) and not Overlap(0, 10).may_overlap(11, 20)
    assert Overlap(0, 10).may_overlap(10, 20) and Overlap(0, 10).may_overlap(None, None)


_BOUND_VALUES = [
    None,
    "2023",
    "202306",
    "2023-06",
    "2023/06",
    "2023166",
    "2023-166",
    "20230615",
    "2023-06-15",
    "2023_06_15",
    " 2023-06-15 ",
    "2023.06.15",
    "2023061510",
    "202306151015",
    "20230615101530",
    "20230615T10",
    "20230615T1015",
    "20230615T101530",
    "2023-06-15T10",
    "2023-06-15T10:15",
    "2023-06-15 10:15:30",
    "2023-06-15T10:15:30.5",
    "2023-06-15T10:15:30.123456",
    "2023-06-15T10:15:30Z",
    "2023-06-15T23:30:00-02:00",
    "2023-12-31",
    "2023-12",
    "2024-02",
    "0001-01-01",
    "9999-12-31",
    "9999",
    "June 15, 2023",
    "2023-06-15T10:15:30.1234567",
    "2023-02-30",
    "20231301",
    "nonsense",
    dt.date(2023, 6, 15),
    dt.datetime(2023, 6, 15, 10, 15, 30, 7),
    dt.datetime(2023, 6, 15, 10, 15, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
    pd.Timestamp("2023-06-15T10:15", tz="Europe/Madrid"),
    np.datetime64("2023-06-15T10:15"),
    3.5,
]


def _outcome(fn, start, end):
    try:
        return [None if t is None else pd.Timestamp(t) for t in fn(start, end)]
    except Exception as exc:  # noqa: BLE001 - the outcome compared is the error itself
        return type(exc), str(exc)


@pytest.mark.parametrize("value", _BOUND_VALUES, ids=repr)
def test_query_bounds_equals_query_interval_without_pandas(value):
    """The query path's pandas-free reading of start/end gives query_interval's bounds (or its
    error) for every form, as a start, as an end, and against each other form."""
    from geoduck.intervals import query_bounds

    for start, end in [(value, None), (None, value), (value, value), ("2023-06-15", value), (value, "2023-06-15")]:
        got = _outcome(query_bounds, start, end)
        assert got == _outcome(query_interval, start, end), (start, end)
        if isinstance(got, list):
            bounds = query_bounds(start, end)
            assert all(t is None or (type(t) is dt.datetime and t.utcoffset() == dt.timedelta(0)) for t in bounds)


def test_query_bounds_reads_common_forms_without_pandas():
    import subprocess
    import sys

    code = (
        "import sys, datetime as dt\n"
        "from geoduck.intervals import query_bounds, epoch_us\n"
        "b = query_bounds('2023-06', '2023-06-15T10:15:30Z')\n"
        "b += query_bounds(dt.date(2023, 1, 1), '20231231')\n"
        "print([epoch_us(t) for t in b], 'pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    want = [epoch_us_of(t) for t in ("2023-06-01", "2023-06-15T10:15:30", "2023-01-01", "2023-12-31T23:59:59.999999")]
    assert out.strip() == f"{want} False"


def epoch_us_of(text: str) -> int:
    return int(utc(text).as_unit("us").asm8.view("i8"))
