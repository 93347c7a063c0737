"""The contract's session-to-plan matching rule, case by case."""

from __future__ import annotations

import pandas as pd

from warehouse.matching import match_sessions_to_plans


def sessions(*rows) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "session_key": k,
                "platform": "jd",
                "room_id": r,
                "start_time": pd.Timestamp(t),
                "is_test": x,
            }
            for k, r, t, x in rows
        ]
    )


def snapshots(*rows) -> pd.DataFrame:
    columns = ["plan_id", "room_id", "planned_start", "exported_at"]
    frame = pd.DataFrame(list(rows), columns=columns).assign(platform="jd")
    return frame.assign(
        planned_start=pd.to_datetime(frame["planned_start"]),
        exported_at=pd.to_datetime(frame["exported_at"]),
    )


def matched(result: pd.DataFrame) -> dict[str, object]:
    plans = [None if pd.isna(p) else p for p in result["plan_id"]]
    return dict(zip(result["session_key"], plans, strict=True))


def test_closest_first_one_to_one_and_within_three_hours():
    s = sessions(
        ("jd:a", "R1", "2026-11-11 12:10", False),
        ("jd:b", "R1", "2026-11-11 12:40", False),
        ("jd:c", "R1", "2026-11-11 20:00", False),  # 4 h from any plan
        ("jd:d", "R2", "2026-11-11 12:00", False),  # other room
    )
    p = snapshots(
        ("P1", "R1", "2026-11-11 12:00", "2026-11-10 13:00"),
        ("P2", "R1", "2026-11-11 13:00", "2026-11-10 13:00"),
        ("P3", "R1", "2026-11-11 16:00", "2026-11-10 13:00"),
    )
    assert matched(match_sessions_to_plans(s, p)) == {
        "jd:a": "P1",
        "jd:b": "P2",
        "jd:c": None,
        "jd:d": None,
    }


def test_last_snapshot_before_the_start_decides():
    s = sessions(("jd:a", "R1", "2026-11-11 12:00", False))
    p = snapshots(
        ("P1", "R1", "2026-11-11 20:00", "2026-11-09 13:00"),  # moved to 12:00 the evening before
        ("P1", "R1", "2026-11-11 12:00", "2026-11-10 13:00"),
        ("P1", "R1", "2026-11-11 20:00", "2026-11-11 13:00"),  # exported after the start: ignored
    )
    result = match_sessions_to_plans(s, p)
    assert matched(result) == {"jd:a": "P1"} and result["start_diff_min"].tolist() == [0.0]


def test_ties_go_to_the_earlier_planned_start_then_smaller_plan_id():
    s = sessions(("jd:a", "R1", "2026-11-11 12:00", False))
    earlier = snapshots(
        ("P9", "R1", "2026-11-11 11:00", "2026-11-10 13:00"),
        ("P1", "R1", "2026-11-11 13:00", "2026-11-10 13:00"),
    )
    assert matched(match_sessions_to_plans(s, earlier)) == {"jd:a": "P9"}
    same = snapshots(
        ("P9", "R1", "2026-11-11 11:00", "2026-11-10 13:00"),
        ("P1", "R1", "2026-11-11 11:00", "2026-11-10 13:00"),
    )
    assert matched(match_sessions_to_plans(s, same)) == {"jd:a": "P1"}


def test_test_sessions_are_not_matched():
    s = sessions(
        ("jd:t", "R1", "2026-11-11 12:00", True), ("jd:a", "R1", "2026-11-11 12:30", False)
    )
    p = snapshots(("P1", "R1", "2026-11-11 12:00", "2026-11-10 13:00"))
    assert matched(match_sessions_to_plans(s, p)) == {"jd:a": "P1"}


def test_a_plan_missing_from_the_last_export_was_cancelled():
    s = sessions(("jd:a", "R1", "2026-11-11 12:00", False))
    p = snapshots(
        ("P1", "R1", "2026-11-11 12:00", "2026-11-09 13:00"),  # dropped from the next export
        ("P2", "R2", "2026-11-12 12:00", "2026-11-10 13:00"),  # that export (another room)
    )
    assert matched(match_sessions_to_plans(s, p)) == {"jd:a": None}
