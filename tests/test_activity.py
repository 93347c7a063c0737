"""Bot detection's 60-second peaks and the viewer-session rules, as DuckDB SQL over a frame of
clean events (pure code)."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd

from warehouse.activity import (
    BOT_MIN_EVENTS,
    bot_viewer_days,
    peak_events_per_minute,
    restate_pairs,
    viewer_products,
    viewer_sessions,
)


def _over(events: pd.DataFrame) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.register("events", events)
    return con


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
    peaks = peak_events_per_minute(_over(events)).set_index("event_date")
    assert peaks.index.tolist() == [dt.date(2026, 8, 25), dt.date(2026, 8, 26)]
    assert peaks["events"].tolist() == [40, 40]
    assert peaks["peak_events_60s"].tolist() == [40, 40]


def test_more_than_60_events_in_a_minute_is_a_bot_day() -> None:
    events = pd.concat(
        [
            _burst("bot", "2026-08-25 20:00:00", BOT_MIN_EVENTS, 900),  # 61 in 54 s
            _burst("fan", "2026-08-25 20:00:00", BOT_MIN_EVENTS, 1100),  # 61 over 66 s
            _burst("edge", "2026-08-25 20:00:00", BOT_MIN_EVENTS, 1000),  # the 61st at 60.000 s
        ]
    )
    bots = bot_viewer_days(_over(events))
    assert bots["viewer_key"].tolist() == ["bot"]
    assert bots["peak_events_60s"].tolist() == [BOT_MIN_EVENTS]


def _events(rows: list[tuple[str, str, str, str | None]]) -> pd.DataFrame:
    """(viewer, type, local time, sku) in one session of 2026-08-25, in file order."""
    ts = pd.to_datetime(
        [f"2026-08-25 {t}" for _, _, t, _ in rows], format="ISO8601"
    ) - pd.Timedelta(hours=8)
    return pd.DataFrame(
        {
            "session_key": "douyin:S1",
            "viewer_key": [v for v, _, _, _ in rows],
            "platform": "douyin",
            "type": [k for _, k, _, _ in rows],
            "sku": [s for _, _, _, s in rows],
            "ts": ts,
            "event_date": dt.date(2026, 8, 25),
            "export_date": dt.date(2026, 8, 25),
            "source_file": "events/2026-08-25/douyin-000.jsonl.gz",
            "source_line": range(1, len(rows) + 1),
        }
    )


NO_BOTS = pd.DataFrame(columns=["platform", "viewer_key", "event_date"])


def test_watch_seconds_pair_each_leave_with_the_enter_before_it() -> None:
    events = _events(
        [
            ("v1", "enter", "20:00:00", None),
            ("v1", "leave", "20:10:00", None),  # 600 s
            ("v1", "leave", "20:20:00", None),  # a second leave closes nothing
            ("v1", "enter", "21:00:00", None),
            ("v1", "leave", "21:00:30.5", None),  # 30.5 s
            ("v1", "enter", "22:00:00", None),  # still inside at the end: nothing more
            ("v2", "leave", "20:05:00", None),  # a leave without an enter
            ("v2", "like", "20:06:00", None),
        ]
    )
    out = viewer_sessions(_over(events), NO_BOTS).set_index("viewer_key")
    assert out.loc["v1", "watch_s"] == 630.5 and out.loc["v1", "enters"] == 3
    assert out.loc["v2", "watch_s"] == 0.0 and out.loc["v2", "likes"] == 1
    assert out.loc["v1", "first_seen"] == pd.Timestamp("2026-08-25 12:00:00")
    assert out.loc["v1", "last_seen"] == pd.Timestamp("2026-08-25 14:00:00")
    assert not out["is_bot"].any()


def test_a_session_on_a_bot_day_is_flagged_and_products_are_counted_per_sku() -> None:
    events = _events(
        [
            ("v1", "product_click", "20:00:00", "A"),
            ("v1", "product_click", "20:00:01", "A"),
            ("v1", "add_to_cart", "20:00:02", "A"),
            ("v1", "product_click", "20:00:03", "B"),
            ("v2", "like", "20:00:04", None),
        ]
    )
    bots = pd.DataFrame(
        {"platform": ["douyin"], "viewer_key": ["v2"], "event_date": [dt.date(2026, 8, 25)]}
    )
    con = _over(events)
    flags = viewer_sessions(con, bots).set_index("viewer_key")["is_bot"]
    assert flags.to_dict() == {"v1": False, "v2": True}
    products = viewer_products(con)
    assert products[["viewer_key", "sku", "clicks", "carts"]].values.tolist() == [
        ["v1", "A", 2, 1],
        ["v1", "B", 1, 0],
    ]


def test_a_late_event_restates_its_viewer_that_day_and_no_one_else() -> None:
    # The window's folder (11-12) holds one late event: viewer a in session s1 on 11-11. Its
    # pair is restated, and so is a's pair in s2 the same day (the bot flag of a's 11-11 may
    # change); a's pair in s3 on 11-10 and viewer b's pair in s1 are not.
    def event(session: str, viewer: str, day: str, folder: str) -> dict:
        return {
            "platform": "douyin", "session_key": session, "viewer_key": viewer,
            "event_date": dt.date.fromisoformat(day), "export_date": dt.date.fromisoformat(folder),
        }  # fmt: skip

    reach = pd.DataFrame(
        [
            event("s1", "a", "2026-11-11", "2026-11-11"),
            event("s1", "b", "2026-11-11", "2026-11-11"),
            event("s2", "a", "2026-11-11", "2026-11-11"),
            event("s3", "a", "2026-11-10", "2026-11-10"),
            event("s1", "a", "2026-11-11", "2026-11-12"),
        ]
    )
    con = duckdb.connect()
    con.register("reach_events", reach)
    con.register("window_events", reach[reach["export_date"] == dt.date(2026, 11, 12)])
    assert restate_pairs(con, ["douyin"]) == 2
    pairs = con.execute("SELECT * FROM pairs ORDER BY session_key").df()
    assert pairs[["session_key", "viewer_key"]].values.tolist() == [["s1", "a"], ["s2", "a"]]
    assert set(pd.to_datetime(pairs["as_of_date"]).dt.date) == {dt.date(2026, 11, 12)}
    restated = con.execute("SELECT session_key, viewer_key, export_date FROM events").df()
    assert sorted(map(tuple, restated[["session_key", "viewer_key"]].values)) == [
        ("s1", "a"), ("s1", "a"), ("s2", "a")
    ]  # fmt: skip
    assert restate_pairs(con, ["jd"]) == 0  # another platform's window restates nothing
