"""Bot detection's 60-second peaks (pure code)."""

from __future__ import annotations

import pandas as pd

from warehouse.activity import BOT_MIN_EVENTS, bot_viewer_days, peak_events_per_minute


def _burst(viewer: str, start: str, n: int, step_ms: int) -> pd.DataFrame:
    ts = pd.Timestamp(start, tz="Asia/Shanghai") + pd.to_timedelta(
        [i * step_ms for i in range(n)], unit="ms"
    )
    return pd.DataFrame(
        {
            "platform": "douyin",
            "viewer_key": viewer,
            "ts": ts.tz_convert("UTC").tz_localize(None),  # clean events: naive UTC
            "event_date": ts.date,
        }
    )


def test_a_burst_across_local_midnight_counts_within_each_day() -> None:
    # 40 likes in the last 20 s of a day, 40 in the first 20 s of the next: 80 within a
    # minute, but 40 on each of the viewer-days the peaks are reported for.
    events = pd.concat(
        [
            _burst("v1", "2026-08-25 23:59:40", 40, 500),
            _burst("v1", "2026-08-26 00:00:00", 40, 500),
        ]
    )
    peaks = peak_events_per_minute(events).set_index("event_date")
    assert peaks["events"].tolist() == [40, 40]
    assert peaks["peak_events_60s"].tolist() == [40, 40]
    assert (peaks["events"] >= peaks["peak_events_60s"]).all()


def test_more_than_60_events_in_a_minute_is_a_bot_day() -> None:
    events = pd.concat(
        [
            _burst("bot", "2026-08-25 20:00:00", BOT_MIN_EVENTS, 900),  # 61 in 54 s
            _burst("fan", "2026-08-25 20:00:00", BOT_MIN_EVENTS, 1100),  # 61 over 66 s
        ]
    )
    bots = bot_viewer_days(events)
    assert bots["viewer_key"].tolist() == ["bot"]
    assert bots["peak_events_60s"].tolist() == [BOT_MIN_EVENTS]
