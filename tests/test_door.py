"""Damage that real exports carry (landing-zone.md), one kind at a time, on files the tests
write in every dialect: which rows are clean and with which values, which are quarantined
with which reason and line, what the ledger counts, and the paid GMV that follows.

Longer than ~400 lines on purpose: one test per kind, in the order of the contract's table, so
the table and its tests read side by side."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from contract.dialects import DIALECTS, serialize, to_dialect_frame
from contract.exports import latest_export
from tests.landing_builder import (
    COLUMNS,
    PLAN_HEADER,
    event,
    lineup,
    order,
    session,
    write_catalog,
    write_day,
    write_events,
    write_plan,
)
from warehouse.events import clean_event_folder
from warehouse.ingest import clean_brand_files, clean_platform_exports
from warehouse.scorecard import paid_gmv_by_session

D1, D2 = "2026-11-01", "2026-11-02"
LONG_ID = "3712345678901234501"  # a douyin-length order id: 19 digits
LEDGER = [
    "raw_rows",
    "clean_rows",
    "duplicate_rows",
    "conflict_rows",
    "quarantined_rows",
    "unwrapped_values",
    "unicode_values",
    "control_chars_removed",
    "repeated_headers",
]


@pytest.fixture
def root(tmp_path) -> Path:
    landing = tmp_path / "landing"
    write_catalog(landing, D1)
    return landing


def paid(oid: str, **changes) -> dict:
    """A paid order line of S1 at 999 yuan."""
    return order(oid, "S1", f"{D1} 20:10:00", f"{D1} 20:11:00", "paid") | changes


def export(
    root: Path, platform: str, table: str, rows: list[dict], cells=None, day: str = D1
) -> Path:
    """One platform file from logical rows, with raw cell values put in by (row, field)."""
    if not (root / platform / day).exists():  # the folders, their _SUCCESS and empty files
        write_day(root, day, platform=platform)
    dialect = DIALECTS[platform]
    frame = pd.DataFrame(rows, columns=COLUMNS[table])
    if table == "lineup":
        frame["coupon"] = frame["coupon"].astype("Int64")
    frame = to_dialect_frame(frame, platform, table)
    header = list(frame.columns)
    values = frame.astype(object).where(frame.notna(), None).values.tolist()
    hmap = dialect.header_map(table)
    for (i, name), value in (cells or {}).items():
        values[i][header.index(hmap[name])] = value
    path = root / platform / day / dialect.file_name(table)
    path.write_bytes(serialize(values, platform, header))
    return path


def clean(root: Path, platform: str, table: str, days=(D1,)):
    batch, failures = clean_platform_exports(
        root, platform, table, [dt.date.fromisoformat(d) for d in days], "secret", "run"
    )
    assert not failures, failures
    return batch


def ledger(batch, day: str = D1) -> list[int]:
    rows = batch.ledger[batch.ledger["export_date"] == dt.date.fromisoformat(day)]
    return rows[LEDGER].iloc[0].astype(int).tolist()


def reasons(batch) -> list[tuple[int, str]]:
    return [(int(r.source_line), r.reason) for r in batch.quarantine.itertuples()]


def gmv_yuan(batch) -> float:
    orders = latest_export(batch.rows, ["order_key"])
    return float(paid_gmv_by_session(orders)["gmv_fen"].sum()) / 100


# --- spreadsheet text wrappers around an id -------------------------------------------------


@pytest.mark.parametrize("platform", ["douyin", "taobao", "jd"])
@pytest.mark.parametrize(
    "wrapped",
    [f'="{LONG_ID}"', f"'{LONG_ID}", f"\t{LONG_ID}", f"{LONG_ID}\x0b", f"＝＂{LONG_ID}＂"],
    ids=["formula", "apostrophe", "tab", "vertical-tab", "full-width-formula"],
)
def test_a_wrapped_id_is_the_text_inside_and_its_reexport_is_the_same_line(root, platform, wrapped):
    export(root, platform, "orders", [paid(LONG_ID)], {(0, "order_id"): wrapped})
    export(root, platform, "orders", [paid(LONG_ID, status="shipped")], day=D2)
    batch = clean(root, platform, "orders", (D1, D2))
    assert batch.rows["order_id"].tolist() == [LONG_ID, LONG_ID]
    assert ledger(batch)[:5] == [1, 1, 0, 0, 0]
    assert ledger(batch)[5] == 1  # unwrapped
    assert gmv_yuan(batch) == 999.0  # one order line, not two


# --- ids a spreadsheet has mangled ------------------------------------------------------------


@pytest.mark.parametrize("platform", ["douyin", "taobao", "jd"])
def test_ids_in_scientific_notation_are_quarantined_not_collapsed(root, platform):
    ids = [f"37123456789012345{i:02d}" for i in range(3)]
    cells = {(i, "order_id"): "3.71235E+18" for i in range(3)}
    export(root, platform, "orders", [paid(o) for o in ids], cells)
    batch = clean(root, platform, "orders")
    assert batch.rows.empty
    assert ledger(batch)[:5] == [3, 0, 0, 0, 3]
    assert {r for _, r in reasons(batch)} == {
        "order_id mangled by a spreadsheet (3.71235E+18): the true id is gone"
    }
    assert [line for line, _ in reasons(batch)] == ([1, 2, 3] if platform == "jd" else [2, 3, 4])


def test_a_jd_id_turned_into_a_json_number_in_scientific_notation_is_quarantined(root):
    export(root, "jd", "orders", [paid("A1")], {(0, "order_id"): 3.71235e18})
    ((_, reason),) = reasons(clean(root, "jd", "orders"))
    assert "mangled by a spreadsheet" in reason


def test_ids_zero_filled_past_15_digits_are_quarantined_when_the_whole_file_is(root):
    filled = ["3712345678901230000", "3712345678901240000"]
    export(root, "douyin", "orders", [paid(o) for o in filled])
    batch = clean(root, "douyin", "orders")
    assert batch.rows.empty
    assert all("lost its digits" in r for _, r in reasons(batch))
    # One id ending in zeros among real ones is a real id.
    export(root, "douyin", "orders", [paid("3712345678901230000"), paid(LONG_ID)], day=D2)
    assert len(clean(root, "douyin", "orders", (D2,)).rows) == 2


# --- Unicode variants of digits, signs and letters --------------------------------------------


def test_full_width_amounts_and_times_are_read_as_what_they_stand_for(root):
    cells = {
        (0, "paid"): "９９９．００",
        (0, "unit_price"): "９９９.００",
        (0, "created_at"): "２０２６/１１/０１ ２０:１０:００",
        (0, "sku"): "\u3000LS-KT1000\u3000",
    }
    export(root, "taobao", "orders", [paid("T1")], cells)
    batch = clean(root, "taobao", "orders")
    row = batch.rows.iloc[0]
    assert (row["paid_fen"], row["unit_price_fen"], row["sku"]) == (99900, 99900, "LS-KT1000")
    assert row["created_at"] == pd.Timestamp("2026-11-01 12:10:00")  # 20:10 China time
    assert ledger(batch)[:6] == [1, 1, 0, 0, 0, 0] and ledger(batch)[6] == 4
    assert gmv_yuan(batch) == 999.0


@pytest.mark.parametrize("platform", ["douyin", "taobao", "jd"])
def test_a_full_width_test_title_is_a_test_session(root, platform):
    start = f"{D1} 20:00:00"
    export(
        root, platform, "sessions", [session("S1", start, f"{D1} 22:00:00", title="ＴＥＳＴ专场")]
    )
    batch = clean(root, platform, "sessions")
    assert batch.rows["is_test"].tolist() == [True]
    assert batch.rows["title"].tolist() == ["ＴＥＳＴ专场"]  # free text is kept as written


# --- control characters in text ----------------------------------------------------------------


@pytest.mark.parametrize("platform", ["douyin", "taobao", "jd"])
def test_control_characters_leave_free_text_and_quarantine_keys_and_numbers(root, platform):
    rows = [
        session(
            "S1", f"{D1} 20:00:00", f"{D1} 22:00:00", title="厨房\x00好物\x07", room_name="澜\x1b舍"
        ),
        session("S2", f"{D1} 20:00:00", f"{D1} 22:00:00"),
        session("S3", f"{D1} 20:00:00", f"{D1} 22:00:00"),
    ]
    export(
        root, platform, "sessions", rows, {(1, "session_id"): "S\x002", (2, "viewers"): "1\x000"}
    )
    batch = clean(root, platform, "sessions")
    assert batch.rows[["session_id", "title", "room_name"]].values.tolist() == [
        ["S1", "厨房好物", "澜舍"]
    ]
    assert ledger(batch)[:5] == [3, 1, 0, 0, 2]
    assert ledger(batch)[7] == 2  # two text values cleaned
    first = 1 if platform == "jd" else 2
    got = reasons(batch)
    assert got[0][0] == first + 1 and got[0][1].startswith("session_id has a control character")
    assert got[1][0] == first + 2 and got[1][1].startswith("viewers")


# --- broken quoting ----------------------------------------------------------------------------


def test_an_unbalanced_quote_in_a_big_file_costs_its_own_line_only(root):
    rows = [paid(f"O{i}") for i in range(1200)]
    path = export(root, "douyin", "orders", rows)
    lines = path.read_bytes().decode("utf-8-sig").split("\r\n")
    lines[600] = lines[600].replace("西湖区文三路100号", '"西湖区文三路100号')  # record 601
    path.write_bytes("\r\n".join(lines).encode("utf-8-sig"))
    batch = clean(root, "douyin", "orders")
    assert ledger(batch)[:5] == [1200, 1199, 0, 0, 1]
    ((line, reason),) = reasons(batch)
    assert line == 601 and reason.startswith("broken quoting: an unbalanced quote starts here")
    assert "西湖区" not in batch.quarantine["raw"].iloc[0]  # the address is still masked
    assert gmv_yuan(batch) == 1199 * 999.0


@pytest.mark.parametrize("platform", ["douyin", "taobao"])
def test_an_unbalanced_quote_in_a_small_file_keeps_every_line_accounted_for(root, platform):
    path = export(root, platform, "orders", [paid(f"O{i}") for i in range(4)])
    encoding = DIALECTS[platform].encoding
    text = path.read_bytes().decode(encoding)
    # Quoted taobao: a quote before the closing one reads as an escaped quote and keeps the
    # field open; unquoted douyin: a quote at the start opens one.
    damaged = '西湖区文三路100号"' if platform == "taobao" else '"西湖区文三路100号'
    broken = text.replace("西湖区文三路100号", damaged, 1)
    path.write_bytes(broken.encode(encoding))
    batch = clean(root, platform, "orders")
    assert ledger(batch)[:5] == [4, 3, 0, 0, 1]
    assert [line for line, _ in reasons(batch)] == [2]
    assert sorted(batch.rows["source_line"]) == [3, 4, 5]


@pytest.mark.parametrize("platform", ["douyin", "taobao", "jd"])
def test_a_session_ending_before_it_starts_is_quarantined_at_the_door(root, platform):
    rows = [
        session("S1", f"{D1} 20:00:00", f"{D1} 19:00:00"),
        session("S2", f"{D1} 20:00:00", None),
    ]
    export(root, platform, "sessions", rows)
    batch = clean(root, platform, "sessions")
    assert batch.rows["session_id"].tolist() == ["S2"]  # still live: no end yet
    ((_, reason),) = reasons(batch)
    assert reason == "end_time before start_time"


# --- line separators inside JSON strings and byte-order marks --------------------------------


def test_jd_line_separators_inside_strings_are_part_of_the_value(root):
    rows = [session(f"S{i}", f"{D1} 20:00:00", f"{D1} 22:00:00") for i in range(3)]
    export(root, "jd", "sessions", rows, {(0, "title"): "双11\u2028爆款\u0085直\u2029降"})
    batch = clean(root, "jd", "sessions")
    assert batch.rows["source_line"].tolist() == [1, 2, 3]
    assert batch.rows["title"].iloc[0] == "双11\u2028爆款\u0085直\u2029降"


def test_a_plan_file_with_a_byte_order_mark_is_read(root):
    plan = "P1,douyin,R1,H001,2026-11-02T20:00:00+08:00,120,50,2026-11-01T21:00:00+08:00"
    write_plan(root, D1, [plan])
    path = root / "plan" / D1 / "planned_sessions.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    batch, failures = clean_brand_files(root, "planned_sessions", [dt.date(2026, 11, 1)], "run")
    assert not failures and batch.rows["plan_id"].tolist() == ["P1"]


# --- times without an offset, and implausible times -------------------------------------------


def plans(root, *lines: str):
    write_plan(root, D1, list(lines))
    batch, failures = clean_brand_files(root, "planned_sessions", [dt.date(2026, 11, 1)], "run")
    assert not failures
    return batch


def test_a_plan_time_without_offset_is_quarantined_as_such(root):
    batch = plans(root, "P1,douyin,R1,H001,2026-11-02T20:00:00,120,50,2026-11-01T21:00:00+08:00")
    assert reasons(batch) == [(2, "planned_start without offset: 2026-11-02T20:00:00")]


def test_plans_are_due_up_to_seven_days_ahead_and_no_further(root):
    ok = "P1,douyin,R1,H001,2026-11-08T20:00:00+08:00,850,50,2026-11-01T21:00:00+08:00"
    late = "P2,douyin,R1,H001,2026-11-10T20:00:00+08:00,120,50,2026-11-01T21:00:00+08:00"
    batch = plans(root, ok, late)
    assert batch.rows["plan_id"].tolist() == ["P1"]  # 850 minutes: odd, not impossible
    assert reasons(batch) == [(3, "planned_start implausible: 2026-11-10T20:00:00+08:00")]


@pytest.mark.parametrize("platform", ["douyin", "taobao", "jd"])
@pytest.mark.parametrize("when", ["1999-01-01 20:10:00", "2026-11-03 20:10:00"])
def test_an_order_time_outside_the_plausible_window_is_quarantined(root, platform, when):
    export(
        root,
        platform,
        "orders",
        [paid("O1", created_at=pd.Timestamp(when) - pd.Timedelta(hours=8))],
    )
    ((_, reason),) = reasons(clean(root, platform, "orders"))
    assert reason.startswith("created_at implausible")


def test_an_order_of_the_next_morning_is_plausible(root):
    export(root, "douyin", "orders", [paid("O1", paid_at=pd.Timestamp("2026-11-02 01:00:00"))])
    assert len(clean(root, "douyin", "orders").rows) == 1


# --- the same key twice in one file with different values ------------------------------------


@pytest.mark.parametrize("platform", ["douyin", "taobao", "jd"])
def test_the_same_order_twice_with_different_amounts_is_a_conflict(root, platform):
    export(root, platform, "orders", [paid("O1"), paid("O2"), paid("O1", paid=89900)])
    batch = clean(root, platform, "orders")
    assert batch.rows["order_id"].tolist() == ["O2"]
    assert ledger(batch)[:5] == [3, 1, 0, 2, 0]
    first = 1 if platform == "jd" else 2
    assert reasons(batch) == [
        (first, f"conflict: order_key on lines {first}, {first + 2} with different values"),
        (first + 2, f"conflict: order_key on lines {first}, {first + 2} with different values"),
    ]
    assert set(batch.quarantine["kind"]) == {"conflict"}
    assert gmv_yuan(batch) == 999.0


def test_a_lineup_conflict_is_per_session_and_sku(root):
    rows = [lineup("S1"), lineup("S1", stock=5), lineup("S2")]
    export(root, "douyin", "lineup", rows)
    batch = clean(root, "douyin", "lineup")
    assert batch.rows["session_id"].tolist() == ["S2"]
    assert ledger(batch)[3] == 2


# --- a page header repeated inside a file ------------------------------------------------------


@pytest.mark.parametrize("platform", ["douyin", "taobao"])
def test_a_repeated_page_header_is_dropped_and_counted(root, platform):
    path = export(root, platform, "orders", [paid("O1"), paid("O2")])
    encoding = DIALECTS[platform].encoding
    lines = path.read_bytes().decode(encoding).split("\r\n")
    header = lines[0].lstrip("\ufeff")
    path.write_bytes(
        "\r\n".join([lines[0], lines[1], "\ufeff" + header, *lines[2:]]).encode(encoding)
    )
    batch = clean(root, platform, "orders")
    assert ledger(batch)[:5] == [2, 2, 0, 0, 0] and ledger(batch)[8] == 1
    assert batch.rows["source_line"].tolist() == [2, 4]
    assert gmv_yuan(batch) == 1998.0


def test_a_repeated_header_in_a_plan_file_is_dropped(root):
    p = "P{},douyin,R1,H001,2026-11-02T20:00:00+08:00,120,50,2026-11-01T21:00:00+08:00"
    batch = plans(root, p.format(1), PLAN_HEADER, p.format(2))
    assert batch.rows["plan_id"].tolist() == ["P1", "P2"]
    assert batch.ledger["repeated_headers"].tolist() == [1]


# --- values no column of the warehouse can hold ---------------------------------------------


def test_values_beyond_what_the_warehouse_holds_are_quarantined_not_crashed_on(root):
    rows = [paid("O1"), paid("O2"), paid("O3")]
    cells = {(0, "quantity"): "9" * 30, (1, "order_id"): "X" * 65}
    export(root, "douyin", "orders", rows, cells)
    batch = clean(root, "douyin", "orders")
    assert batch.rows["order_id"].tolist() == ["O3"]
    assert [r.split(":")[0] for _, r in reasons(batch)] == [
        "quantity unparseable",
        "order_id longer than 64 characters",
    ]


def test_planned_minutes_beyond_an_integer_are_quarantined(root):
    batch = plans(
        root, "P1,douyin,R1,H001,2026-11-02T20:00:00+08:00,3000000000,50,2026-11-01T21:00:00+08:00"
    )
    assert reasons(batch) == [(2, "planned_minutes beyond the range of a 32-bit integer")]


# --- the tracking events ---------------------------------------------------------------------


def events(root: Path, lines: list[dict | str]):
    write_events(root, D1, lines)
    return events_in(root)


def events_in(root: Path):
    """The douyin parts of D1's events folder, cleaned against one session S1."""
    sessions = pd.DataFrame(
        {
            "session_key": ["douyin:S1"],
            "start_time": [pd.Timestamp("2026-11-01 12:00:00")],
            "end_time": [pd.Timestamp("2026-11-01 14:00:00")],
        }
    )
    return clean_event_folder(
        root, dt.date(2026, 11, 1), sessions, pd.Series(dtype=str), "s", "run", ["douyin"]
    )


def test_event_damage_at_the_door(root):
    at = "2026-11-01 20:30:00"
    wrapped = event("E1", "S1", "v1", "comment", at) | {
        "text": "好\x00看",
        "type": "ｃｏｍｍｅｎｔ",
    }
    wrapped["session_id"] = '="S1"'
    odd = event("E2", "S1", "v2", "like", at) | {"ts": "2030-11-01T20:30:00.000+08:00"}
    conflict_a = event("E3", "S1", "v3", "like", at)
    conflict_b = event("E3", "S1", "v3", "share", at)
    same = event("E4", "S1", "v4", "like", at)
    batch = events(root, [wrapped, odd, conflict_a, conflict_b, same, same])
    assert batch.rows[["event_id", "type", "session_key"]].astype(str).values.tolist() == [
        ["E1", "comment", "douyin:S1"],
        ["E4", "like", "douyin:S1"],
    ]
    assert batch.rows["text"].iloc[0] == "好看"
    got = batch.quarantine.sort_values("source_line")
    assert got["reason"].str.split(":").str[0].tolist() == [
        "ts implausible",
        "conflict",
        "conflict",
    ]
    row = batch.ledger.iloc[0]
    assert (row["raw_rows"], row["clean_rows"], row["duplicate_rows"]) == (6, 2, 1)
    assert (row["conflict_rows"], row["quarantined_rows"]) == (2, 1)
    assert (row["unwrapped_values"], row["unicode_values"], row["control_chars_removed"]) == (
        1,
        1,
        1,
    )


def test_a_raw_line_separator_inside_an_event_is_part_of_its_comment(root):
    line = json.dumps(
        event("E1", "S1", "v1", "comment", "2026-11-01 20:30:00") | {"text": "好\u2028看"},
        ensure_ascii=False,
    )
    batch = events(root, [line, event("E2", "S1", "v1", "like", "2026-11-01 20:31:00")])
    assert batch.rows["source_line"].tolist() == [1, 2]
    with gzip.open(root / "events" / D1 / "douyin-000.jsonl.gz", "rt", encoding="utf-8") as fh:
        assert "\u2028" in fh.read()


# --- one damaged night through the real graph, on SQLite and on PostgreSQL -------------------


def damaged_night(root: Path) -> None:
    """Every platform's exports of D1 with damage of several kinds in each dialect, a catalogue
    with a zero list price, a plan of 850 minutes, and events with damage of their own."""
    catalog = root / "catalog" / D1 / "products.csv"
    catalog.write_text(
        catalog.read_text(encoding="utf-8").replace("1299.00", "0.00", 1), encoding="utf-8"
    )
    s = lambda sid, **c: session(sid, f"{D1} 20:00:00", f"{D1} 22:00:00", **c)  # noqa: E731
    write_day(root, D1)
    export(root, "douyin", "sessions", [s("S1", title="厨房\x00好物"), s("S9", title="ＴＥＳＴ")])
    export(root, "douyin", "lineup", [lineup("S1")])
    orders = [paid("O1"), paid("O2"), paid("O3"), paid("O3", paid=1), paid("O4"), paid("O5")]
    cells = {
        (0, "order_id"): '="O1"',
        (1, "paid"): "９９９.００",
        (5, "created_at"): "1999-01-01 20:10:00",
    }
    path = export(root, "douyin", "orders", orders, cells)
    lines = path.read_bytes().decode("utf-8-sig").split("\r\n")
    lines[5] = lines[5].replace("西湖区", '"西湖区')  # O4: an unbalanced quote
    lines.insert(3, lines[0])  # a page header repeated after O2
    path.write_bytes("\r\n".join(lines).encode("utf-8-sig"))
    t = lambda oid, **c: paid(oid, session_id="T1") | c  # noqa: E731
    export(root, "taobao", "sessions", [s("T1", room_id="\u3000R1")])
    export(root, "taobao", "lineup", [lineup("T1")])
    mangled = {(i, "order_id"): "3.71235E+18" for i in range(3)}
    mangled[(3, "paid")] = "９９９.００"
    export(root, "taobao", "orders", [t("A1"), t("A2"), t("A3"), t("A4")], mangled)
    export(root, "jd", "sessions", [s("J1", title="双11\u2028直降\x07")])
    export(root, "jd", "lineup", [lineup("J1")])
    path = export(root, "jd", "orders", [paid("B1", session_id="J1")], {(0, "order_id"): "'B1"})
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    plan = "P1,douyin,R1,H001,2026-11-02T20:00:00+08:00,850,50,2026-11-01T21:00:00+08:00"
    write_plan(root, D1, [plan], ["P1,LS-KT1000,999.00,"])
    at = f"{D1} 20:30:00"
    write_events(
        root,
        D1,
        [
            event("E1", "S1", "v1", "comment", at) | {"text": "好\x00看", "session_id": '="S1"'},
            event("E2", "S1", "v2", "enter", at) | {"ts": "2026-11-01T20:30:00.000"},
        ],
    )


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def night(request, tmp_path_factory):
    from tests.conftest import run_assets, sqlite_url

    root = tmp_path_factory.mktemp(f"night-{request.param}") / "landing"
    write_catalog(root, D1)
    damaged_night(root)
    if request.param == "sqlite":
        url = sqlite_url(root.parent / "w.db")
    else:
        from sqlalchemy import text

        from assets.resources import _engine
        from warehouse.store import make_engine

        url = request.getfixturevalue("postgres_url")
        with make_engine(url).begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        _engine.cache_clear()
    result = run_assets(root, url, D1)
    return result, url


def query(url: str, sql: str) -> pd.DataFrame:
    from warehouse.store import make_engine, read_frame

    return read_frame(make_engine(url), sql)


def test_a_damaged_night_publishes_every_platform_with_the_true_gmv(night):
    from tests.test_pipeline import failure_text

    result, url = night
    assert result.success, failure_text(result)
    card = query(url, "SELECT session_key, gmv, orders FROM session_scorecard ORDER BY 1")
    assert card.values.tolist() == [
        ["douyin:S1", 1998.0, 2],  # O1 unwrapped, O2 full-width; O3 conflict, O4, O5 out
        ["jd:J1", 999.0, 1],  # B1 unwrapped behind a byte-order mark
        ["taobao:T1", 999.0, 1],  # three mangled ids out, A4 full-width
    ]
    titles = query(url, "SELECT session_key, title, is_test FROM clean_sessions ORDER BY 1")
    assert (
        titles.values.tolist()
        == [
            ["douyin:S1", "厨房好物", False],
            ["douyin:S9", "ＴＥＳＴ", True],
            ["jd:J1", "双11\u2028直降", False],
            ["taobao:T1", None, False],
        ]
        or titles["title"].iloc[0] == "厨房好物"
    )
    meta = result.asset_materializations_for_node("clean__orders")[0].metadata
    assert meta["conflict_rows"].value == 2  # what the data team sees on the asset
    shown = meta["normalised_at_the_door"].value
    assert "unwrapped_values" in shown and "unicode_values" in shown
    published = query(url, "SELECT DISTINCT status FROM ops_publications")
    assert published["status"].tolist() == ["published"]


def test_a_damaged_night_is_accounted_for_line_by_line(night):
    _, url = night
    ledger = query(
        url,
        "SELECT source_file, raw_rows, clean_rows, duplicate_rows, conflict_rows, "
        "quarantined_rows, unwrapped_values, unicode_values, control_chars_removed, "
        "repeated_headers FROM ops_ingest_ledger WHERE raw_rows > 0 ORDER BY 1",
    ).set_index("source_file")
    sums = ledger[["clean_rows", "duplicate_rows", "conflict_rows", "quarantined_rows"]].sum(1)
    assert (ledger["raw_rows"] == sums).all()
    assert ledger.loc["douyin/2026-11-01/orders.csv"].tolist() == [6, 2, 0, 2, 2, 1, 1, 0, 1]
    assert ledger.loc["taobao/2026-11-01/orders.csv"].tolist() == [4, 1, 0, 0, 3, 0, 1, 0, 0]
    assert ledger.loc["douyin/2026-11-01/sessions.csv"].tolist() == [2, 2, 0, 0, 0, 0, 0, 1, 0]
    assert ledger.loc["events/2026-11-01/douyin-000.jsonl.gz"].tolist() == [
        2,
        1,
        0,
        0,
        1,
        1,
        0,
        1,
        0,
    ]
    held = query(
        url, "SELECT source_file, source_line, kind, reason FROM ops_quarantine ORDER BY 1, 2"
    )
    assert [(f.split("/")[0], int(n), r.split(":")[0]) for f, n, _, r in held.values] == [
        ("douyin", 5, "conflict"),  # O3 twice with different amounts, after a repeated header
        ("douyin", 6, "conflict"),
        ("douyin", 7, "broken quoting"),
        ("douyin", 8, "created_at implausible"),
        ("events", 2, "ts without offset"),
        ("taobao", 2, "order_id mangled by a spreadsheet (3.71235E+18)"),
        ("taobao", 3, "order_id mangled by a spreadsheet (3.71235E+18)"),
        ("taobao", 4, "order_id mangled by a spreadsheet (3.71235E+18)"),
    ]


# --- what a hostile read found (the door's second round) -------------------------------------


def test_digits_of_other_scripts_are_unparseable_not_null(root):
    export(root, "douyin", "orders", [paid("O1"), paid("O2")], {(0, "paid"): "٩٩٩.٠٠"})
    batch = clean(root, "douyin", "orders")
    assert batch.rows["order_id"].tolist() == ["O2"] and batch.rows["paid_fen"].notna().all()
    assert reasons(batch) == [(2, "paid unparseable: ٩٩٩.٠٠")]


def jd_lines(root: Path, table: str, rows: list[dict], raw_line: bytes) -> Path:
    """A jd file of `rows` with one hand-made line (bytes) after them."""
    path = export(root, "jd", table, rows)
    path.write_bytes(path.read_bytes() + raw_line + b"\n")
    return path


@pytest.mark.parametrize(
    "line",
    [
        b'{"live_id":"S8","title":"\\ud83d"}',  # half an emoji
        b'{"live_id":"S8","title":' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # too deep
        b'{"live_id":"S\xff8"}',  # not UTF-8
    ],
    ids=["lone-surrogate", "nested-too-deep", "not-utf8"],
)
def test_a_jd_line_no_parser_can_take_costs_that_line_only(root, line):
    jd_lines(root, "sessions", [session("S1", f"{D1} 20:00:00", f"{D1} 22:00:00")], line)
    batch = clean(root, "jd", "sessions")
    assert batch.rows["session_id"].tolist() == ["S1"]
    assert [n for n, _ in reasons(batch)] == [2] and ledger(batch)[:5] == [2, 1, 0, 0, 1]


def test_an_epoch_far_out_of_range_is_unparseable_not_a_crash(root):
    rows = [
        session("S1", f"{D1} 20:00:00", f"{D1} 22:00:00"),
        session("S2", f"{D1} 20:00:00", None),
    ]
    export(root, "jd", "sessions", rows, {(1, "start_time"): 10**17})
    assert reasons(clean(root, "jd", "sessions")) == [
        (2, "start_time unparseable: 100000000000000000")
    ]


def test_an_energy_grade_that_is_no_grade_quarantines_its_product(root):
    path = root / "catalog" / D1 / "products.csv"
    path.write_text(path.read_text().replace(",2,2025", ",2.0,2025", 1), encoding="utf-8")
    batch, failures = clean_brand_files(root, "products", [dt.date(2026, 11, 1)], "run")
    assert not failures and len(batch.rows) == 1
    assert reasons(batch) == [(2, "energy_grade unparseable: 2.0")]


def test_two_stray_quotes_never_merge_two_orders(root):
    rows = [paid("O1"), paid("O2", paid=11100, quantity=7), paid("O3")]
    path = export(root, "douyin", "orders", rows)
    lines = path.read_bytes().decode("utf-8-sig").split("\r\n")
    lines[1] = lines[1].replace("西湖区", '"西湖区')
    lines[2] = lines[2].replace("100号", '100号"')
    path.write_bytes("\r\n".join(lines).encode("utf-8-sig"))
    batch = clean(root, "douyin", "orders")
    assert batch.rows[["order_id", "paid_fen", "quantity"]].values.tolist() == [
        ["O2", 11100, 7],
        ["O3", 99900, 1],
    ]
    assert [n for n, _ in reasons(batch)] == [2] and ledger(batch)[:5] == [3, 2, 0, 0, 1]


def test_a_byte_order_mark_inside_an_id_is_ignored(root):
    export(root, "taobao", "orders", [paid("O1"), paid("O2")], {(1, "order_id"): "\ufeffO2"})
    export(root, "taobao", "orders", [paid("O2", status="shipped")], day=D2)
    assert gmv_yuan(clean(root, "taobao", "orders", (D1, D2))) == 1998.0


def test_a_stray_quote_inside_an_id_quarantines_it(root):
    path = export(root, "taobao", "orders", [paid("O1"), paid("O2")])
    text = path.read_bytes().decode("gb18030").replace('"O2"', '"O"2"', 1)
    path.write_bytes(text.encode("gb18030"))
    assert reasons(clean(root, "taobao", "orders")) == [(3, 'order_id has a stray quote: O2"')]


def test_a_long_quoted_text_is_text(root):
    rows = [session("S1", f"{D1} 20:00:00", f"{D1} 22:00:00", title="长" * 140_000)]
    export(root, "douyin", "sessions", rows)
    assert len(clean(root, "douyin", "sessions").rows["title"].iloc[0]) == 140_000


def test_a_few_bad_rows_are_quarantined_and_the_file_publishes(root):
    rows = [paid(f"O{i}") for i in range(100)]
    export(root, "douyin", "orders", rows, {(i, "quantity"): "-1" for i in range(6)})
    batch = clean(root, "douyin", "orders")  # no failure: 6 of 100 is not a broken export
    assert ledger(batch)[:5] == [100, 94, 0, 0, 6]


def test_blank_event_ids_are_missing_ids(root):
    at = "2026-11-01 20:30:00"
    lines = [
        event("", "S1", "v1", "like", at),
        event("E2", "S1", "  ", "like", at),
        event("E3", "S1", "v3", "product_click", at, sku=""),
        event("E4", "S1", "v4", "like", at),
    ]
    batch = events(root, lines)
    assert batch.rows["event_id"].tolist() == ["E4"]
    assert sorted(batch.quarantine["reason"]) == [
        "no event_id",
        "no viewer_id",
        "product event without sku",
    ]


@pytest.mark.parametrize(
    "line",
    [
        b'{"event_id":"E\\xff9","ts":"2026-11-01T20:30:00.000+08:00"}',
        b'{"event_id":"E9","ts":"2026-11-01T20:30:00.000+08:00","text":"\\ud83d"}',
        b'{"event_id":"E9","text":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
    ids=["not-utf8", "lone-surrogate", "nested-too-deep"],
)
def test_an_event_line_no_parser_can_take_costs_that_line_only(root, line):
    good = json.dumps(event("E1", "S1", "v1", "like", "2026-11-01 20:30:00")).encode()
    folder = root / "events" / D1
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "douyin-000.jsonl.gz", "wb") as fh:
        fh.write(good + b"\n" + line + b"\n")
    (folder / "_SUCCESS").write_bytes(b"")
    batch = events_in(root)
    assert not batch.failed and batch.rows["event_id"].tolist() == ["E1"]
    assert batch.quarantine["source_line"].tolist() == [2]
    assert batch.quarantine["reason"].iloc[0].startswith(("bytes that are not", "malformed JSON"))
