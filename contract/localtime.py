"""Local time of the contract: China Standard Time, UTC+8, no daylight saving time.

landing-zone.md: "All local times are China Standard Time (Asia/Shanghai, +08:00). A 'date'
is a local calendar date." The frames carry naive UTC timestamps; these helpers are the one
place that turns them into local wall clocks, local dates and back.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

LOCAL_TZ = "Asia/Shanghai"
LOCAL_TIMEZONE = dt.timezone(dt.timedelta(hours=8))  # China Standard Time, for datetime objects
LOCAL_OFFSET = pd.Timedelta(LOCAL_TIMEZONE.utcoffset(None))  # for pandas
LOCAL_OFFSET_MS = LOCAL_OFFSET // pd.Timedelta(milliseconds=1)  # for epoch milliseconds
LOCAL_OFFSET_TEXT = dt.datetime(2000, 1, 1, tzinfo=LOCAL_TIMEZONE).isoformat()[-6:]  # "+08:00"


def to_local(ts: pd.Series) -> pd.Series:
    """UTC naive timestamps -> local naive wall clocks."""
    return pd.to_datetime(ts) + LOCAL_OFFSET


def local_day(ts: pd.Series) -> pd.Series:
    """UTC naive timestamps -> their local date, as a datetime64 at local midnight."""
    return to_local(ts).dt.floor("D")


def local_midnight_utc(day: dt.date) -> pd.Timestamp:
    """24:00 local of `day` (the end of the local date), as a naive UTC timestamp: the stamp
    of what is known by the end of `day` (forecasts, picks)."""
    return pd.Timestamp(day) + pd.Timedelta(days=1) - LOCAL_OFFSET


def local_midnight_start_utc(day: dt.date | pd.Series) -> pd.Timestamp | pd.Series:
    """00:00 local of `day` (its start), as naive UTC: one date or a Series of dates."""
    return pd.to_datetime(day) - LOCAL_OFFSET
