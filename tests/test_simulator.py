"""The simulator writes the contract's layout to the letter, deterministically, with its truth."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from simulator import PRESETS, simulate
from simulator.config import FaultRates
from simulator.landing import FaultLog, write_platform_export
from warehouse.ingest import clean_platform_exports
from warehouse.parsing import read_platform_file

# shared/contract/landing-zone.md, written out here independently of contract/dialects.py.
CONTRACT_HEADERS = {
    ("douyin", "sessions"): "直播场次ID 直播间ID 直播间名称 主播编码 直播标题 开播时间 关播时间 观看人数 观看人次 最高在线人数 人均观看时长(秒) 新增粉丝数 评论次数 点赞次数 成交金额(元) 成交订单数",
    ("taobao", "sessions"): "场次ID 直播间ID 直播间 主播 标题 开始时间 结束时间 观看UV 观看PV 峰值在线 人均停留(秒) 涨粉数 评论数 点赞数 成交金额 成交笔数",
    ("jd", "sessions"): "live_id room_id room_name anchor_code title start_ms end_ms uv pv max_online avg_stay_sec fans_gained comment_cnt like_cnt gmv_fen order_cnt",
    ("douyin", "lineup"): "直播场次ID 商家编码 上架时间 直播价(元) 划线价(元) 优惠券(元) 库存",
    ("taobao", "lineup"): "场次ID 商家编码 上架时间 直播价 原价 券面额 库存",
    ("jd", "lineup"): "live_id outer_sku_id shelf_ms live_price_fen market_price_fen coupon_fen stock",
    ("douyin", "orders"): "订单编号 直播场次ID 商家编码 买家ID 收件人手机号 省份 城市 详细地址 商品数量 商品单价(元) 实付金额(元) 下单时间 支付时间 订单状态",
    ("taobao", "orders"): "订单号 场次ID 商家编码 买家昵称ID 手机 省 市 地址 数量 单价 实付 创建时间 付款时间 状态",
    ("jd", "orders"): "order_id live_id outer_sku_id pin mobile province city address num price_fen pay_fen create_ms pay_ms state",
    ("douyin", "refunds"): "售后单号 订单编号 退款金额(元) 退款时间 售后原因",
    ("taobao", "refunds"): "退款编号 订单号 退款金额 退款完结时间 退款原因",
    ("jd", "refunds"): "refund_id order_id refund_fen finish_ms reason",
}  # fmt: skip
EVENT_KEYS = {
    "event_id",
    "ts",
    "platform",
    "session_id",
    "viewer_id",
    "type",
    "sku",
    "text",
    "client",
}
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+08:00$")
# Row faults the reader alone quarantines (conflicts and implausible times need the export
# date and the whole file: the clean layer's, see test_door.py and the demo's reconciliation).
ROW_FAULTS = {
    "malformed_row", "bad_time", "bad_amount", "negative_value", "mangled_id", "broken_quote",
}  # fmt: skip


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes(tmp_path):
    preset = dataclasses.replace(PRESETS["tiny"], days=4)
    simulate(preset, tmp_path / "a", seed=3)
    simulate(preset, tmp_path / "b", seed=3)
    a, b = digest(tmp_path / "a"), digest(tmp_path / "b")
    assert len(a) > 60 and a == b
    simulate(preset, tmp_path / "c", seed=4)
    assert digest(tmp_path / "c") != a


def test_layout_headers_and_encodings(tiny_dirty):
    landing = tiny_dirty / "landing"
    days = sorted(p.name for p in (landing / "douyin").iterdir())
    assert days[0] == "2026-10-25" and len(days) == 21
    for (platform, table), header in CONTRACT_HEADERS.items():
        for day in days:
            folder = landing / platform / day
            assert (folder / "_SUCCESS").exists()
            path = folder / f"{table}.{'jsonl' if platform == 'jd' else 'csv'}"
            data = path.read_bytes()
            if platform == "douyin":
                assert data.startswith(b"\xef\xbb\xbf")
                columns = data.decode("utf-8-sig").splitlines()[0].split(",")
            elif platform == "taobao":
                first = data.decode("gb18030").splitlines()[0]
                assert first.startswith('"') and first.endswith('"')  # all fields quoted
                columns = [c.strip('"') for c in first.split('","')]
            else:
                # Records end at "\n" only; a byte-order mark before a line is damage to ignore.
                text = data.decode()
                lines = [
                    json.loads(x.lstrip("\ufeff")) for x in text.split("\n") if x.endswith("}")
                ]
                columns = list(
                    next(
                        (x for x in lines if len(x) >= len(header.split())),
                        {h: 0 for h in header.split()},
                    )
                )
            expected = header.split()
            assert columns[: len(expected)] == expected or set(expected) <= set(columns), (
                path,
                columns,
            )
    catalog = sorted((landing / "catalog").iterdir())[0] / "products.csv"
    assert (
        catalog.read_text().splitlines()[0]
        == "sku,brand,category,subcategory,list_price,energy_grade,launch_date"
    )
    plan = landing / "plan" / days[0]
    assert (plan / "planned_sessions.csv").read_text().splitlines()[0] == (
        "plan_id,platform,room_id,host_id,planned_start,planned_minutes,reservations,exported_at"
    )
    assert (plan / "planned_lineup.csv").read_text().splitlines()[
        0
    ] == "plan_id,sku,planned_price,coupon"


def test_events_and_plans_follow_the_contract(tiny_dirty):
    landing = tiny_dirty / "landing"
    parts = sorted((landing / "events" / "2026-11-11").glob("*.jsonl.gz"))
    assert {p.name for p in parts} == {
        "douyin-000.jsonl.gz",
        "taobao-000.jsonl.gz",
        "jd-000.jsonl.gz",
    }
    with gzip.open(parts[0], "rt", encoding="utf-8") as fh:
        events = [json.loads(line) for line in fh]
    assert all(set(e) == EVENT_KEYS for e in events)
    # Every time carries its offset but the ones the truth lists as damage.
    naive = {n for n, e in enumerate(events, start=1) if not TS.match(e["ts"])}
    faults = pd.read_csv(tiny_dirty / "truth" / "faults.csv")
    part = f"events/2026-11-11/{parts[0].name}"
    listed = faults[(faults["file"] == part) & (faults["kind"] == "event_naive_ts")]
    assert naive == set(listed["line"].astype(int))
    types = {e["type"] for e in events}
    assert {"enter", "leave", "product_click", "add_to_cart", "comment", "like"} <= types
    assert all(e["sku"] for e in events if e["type"] in ("product_click", "add_to_cart"))
    plans = pd.read_csv(landing / "plan" / "2026-11-11" / "planned_sessions.csv")
    starts = pd.to_datetime(plans["planned_start"]).dt.tz_convert("Asia/Shanghai").dt.date
    assert starts.min() == dt.date(2026, 11, 12) and starts.max() == dt.date(2026, 11, 18)
    assert plans["plan_id"].is_unique


def test_every_injected_row_fault_is_found_at_its_file_and_line(tiny_dirty):
    """The truth's fault list names file and line; the reader quarantines exactly those rows."""
    landing = tiny_dirty / "landing"
    faults = pd.read_csv(tiny_dirty / "truth" / "faults.csv")
    assert set(faults["kind"]) >= ROW_FAULTS - {"broken_quote"}  # one in 50 files: maybe none
    injected = faults[faults["kind"].isin(ROW_FAULTS)]
    quarantined = set()
    for path in sorted(landing.glob("*/*/*.*")):
        platform, day, name = path.relative_to(landing).parts
        if platform in ("douyin", "taobao", "jd"):
            parsed = read_platform_file(path, platform, name.split(".")[0])
            quarantined |= {
                (f"{platform}/{day}/{name}", int(line)) for line in parsed.quarantine["line"]
            }
    expected = set(zip(injected["file"], injected["line"].astype(int), strict=True))
    assert expected <= quarantined
    listed = faults.dropna(subset=["line"])
    assert quarantined <= set(zip(listed["file"], listed["line"].astype(int), strict=True))


def test_truth_has_oracle_and_propensities(tiny_dirty):
    truth = tiny_dirty / "truth"
    sessions = pd.read_csv(truth / "sessions.csv")
    real = sessions[~sessions["is_test"]]
    assert (real["gmv_p10"] <= real["gmv_p50"]).all() and (real["gmv_p50"] <= real["gmv_p90"]).all()
    assert real["expected_gmv"].gt(0).all()
    plans = pd.read_csv(truth / "plans.csv")
    assert plans["plan_id"].is_unique and plans["gmv_p50"].notna().all()
    props = pd.read_parquet(truth / "propensities.parquet")
    assert props["p_buy"].between(0, 1).all() and (props["p_buy"] <= props["p_cart"]).all()
    assert set(props["session_key"]) <= set(sessions["session_key"])


def test_personal_data_never_reaches_clean_rows(tiny_dirty):
    day = dt.date(2026, 11, 11)
    batch, failures = clean_platform_exports(
        tiny_dirty / "landing", "taobao", "orders", [day], "k", "r"
    )
    assert failures == {}
    assert {"phone", "address", "buyer_id"}.isdisjoint(batch.rows.columns)
    assert batch.rows["viewer_key"].str.fullmatch(r"[0-9a-f]{64}").all()


def test_a_malformed_line_never_removes_a_key_from_a_whole_file(tmp_path):
    """An absent jd key on some lines is a malformed line; absent from the whole file it is a
    missing column, which fails the file (landing-zone.md). A one-line file whose line is
    malformed therefore gets another kind of malformation, and only that line is quarantined."""
    refund = pd.DataFrame(
        {
            "refund_id": ["5000000042"],
            "order_id": ["200000001989"],
            "amount": [532.0],
            "refunded_at": [pd.Timestamp("2026-07-06 12:00")],
            "reason": ["发错货"],
        }
    )
    rates = dataclasses.replace(FaultRates(), malformed_row=1.0, duplicate_row=0.0)
    day = dt.date(2026, 7, 6)
    for seed in range(12):  # both halves of the malformation draw
        faults = FaultLog()
        root = tmp_path / str(seed)
        write_platform_export(
            root, "jd", "refunds", day, refund, rates, np.random.default_rng(seed), faults
        )
        assert faults.frame()["kind"].tolist() == ["malformed_row"]
        parsed = read_platform_file(
            root / "jd" / day.isoformat() / "refunds.jsonl", "jd", "refunds"
        )
        assert parsed.rows.empty
        assert parsed.quarantine["line"].tolist() == [1]
