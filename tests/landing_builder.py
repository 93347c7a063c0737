"""Small landing zones written by the tests themselves, one fault at a time."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pandas as pd

from contract.dialects import DIALECTS, write_platform_file
from contract.enums import PLATFORMS

SKUS = ("LS-KT1000", "LS-SA1007")
CATALOG_HEADER = "sku,brand,category,subcategory,list_price,energy_grade,launch_date"


def local(text: str) -> pd.Timestamp:
    """A China-time wall clock as the UTC naive timestamp the frames carry."""
    return pd.Timestamp(text) - pd.Timedelta(hours=8)


def session(sid: str, start: str, end: str | None, **changes) -> dict:
    row = {
        "session_id": sid, "room_id": "R1", "room_name": "澜舍官方直播间", "host_id": "H001",
        "title": "厨房好物", "start_time": local(start), "end_time": local(end) if end else pd.NaT,
        "viewers": 100, "views": 130, "peak_online": 40, "avg_watch_s": 300.0,
        "new_followers": 3, "comments": 5, "likes": 20, "gmv": 0, "orders": 0,
    }  # fmt: skip
    row.update(changes)
    return row


def lineup(sid: str, sku: str = SKUS[0], **changes) -> dict:
    row = {
        "session_id": sid, "sku": sku, "listed_at": local("2026-11-01 19:55:00"),
        "live_price": 99900, "strike_price": 129900, "coupon": None, "stock": 100,
    }  # fmt: skip
    row.update(changes)
    return row


def order(oid: str, sid: str, created: str, paid_at: str | None, status: str, **changes) -> dict:
    row = {
        "order_id": oid, "session_id": sid, "sku": SKUS[0], "buyer_id": f"buyer-{oid}",
        "phone": "13800138000", "province": "浙江省", "city": "杭州市",
        "address": "西湖区文三路100号", "quantity": 1, "unit_price": 99900, "paid": 99900,
        "created_at": local(created), "paid_at": local(paid_at) if paid_at else pd.NaT,
        "status": status,
    }  # fmt: skip
    row.update(changes)
    return row


def refund(rid: str, oid: str, amount: int, at: str) -> dict:
    return {
        "refund_id": rid,
        "order_id": oid,
        "amount": amount,
        "refunded_at": local(at),
        "reason": "七天无理由退货",
    }


COLUMNS = {
    "sessions": list(session("x", "2026-11-01 00:00:00", None)),
    "lineup": list(lineup("x")),
    "orders": list(order("x", "x", "2026-11-01 00:00:00", None, "unpaid")),
    "refunds": list(refund("x", "x", 1, "2026-11-01 00:00:00")),
}


def write_day(
    root: Path, day: str, platform: str = "douyin", success: bool = True, **tables: list[dict]
) -> None:
    """One date's folders: `platform` gets the given rows, the other platforms empty files."""
    for name in PLATFORMS:
        folder = root / name / day
        folder.mkdir(parents=True, exist_ok=True)
        for table, columns in COLUMNS.items():
            rows = tables.get(table, []) if name == platform else []
            frame = pd.DataFrame(rows, columns=columns)
            if table == "lineup":
                frame["coupon"] = frame["coupon"].astype("Int64")
            write_platform_file(folder / DIALECTS[name].file_name(table), frame, name, table)
        if success:
            (folder / "_SUCCESS").write_bytes(b"")
    if not (root / "plan" / day).exists():
        write_plan(root, day)
    if not (root / "events" / day).exists():
        write_events(root, day, [])


def event(
    eid: str, sid: str, viewer: str | None, kind: str, at: str, sku: str | None = None
) -> dict:
    """One tracking event as the SDK sends it (`at`: China time)."""
    return {
        "event_id": eid, "ts": f"{at.replace(' ', 'T')}.000+08:00", "platform": "douyin",
        "session_id": sid, "viewer_id": viewer, "type": kind, "sku": sku,
        "text": "好" if kind == "comment" else None,
        "client": {"os": "ios", "app_version": "5.2.1"},
    }  # fmt: skip


def write_events(root: Path, day: str, events: list[dict | str], part: str = "douyin-000") -> None:
    """A gzip'd JSON Lines part (a str is written as a raw, possibly broken, line)."""
    folder = root / "events" / day
    folder.mkdir(parents=True, exist_ok=True)
    lines = [e if isinstance(e, str) else json.dumps(e, ensure_ascii=False) for e in events]
    with gzip.open(folder / f"{part}.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for line in lines))
    (folder / "_SUCCESS").write_bytes(b"")


PLAN_HEADER = (
    "plan_id,platform,room_id,host_id,planned_start,planned_minutes,reservations,exported_at"
)


def write_plan(root: Path, day: str, plans: list[str] = (), lineups: list[str] = ()) -> None:
    """A plan export: `plans` and `lineups` are CSV lines after the header."""
    folder = root / "plan" / day
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "planned_sessions.csv").write_text(
        "\n".join([PLAN_HEADER, *plans]) + "\n", encoding="utf-8"
    )
    lineup_lines = ["plan_id,sku,planned_price,coupon", *lineups]
    (folder / "planned_lineup.csv").write_text("\n".join(lineup_lines) + "\n", encoding="utf-8")
    (folder / "_SUCCESS").write_bytes(b"")


def write_catalog(root: Path, day: str, skus: tuple[str, ...] = SKUS) -> None:
    folder = root / "catalog" / day
    folder.mkdir(parents=True, exist_ok=True)
    lines = [CATALOG_HEADER] + [f"{s},澜舍,kitchen,rice_cooker,1299.00,2,2025-01-01" for s in skus]
    (folder / "products.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "_SUCCESS").write_bytes(b"")


def next_day(day: str, n: int = 1) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=n)).isoformat()
