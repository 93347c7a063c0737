"""The three platform dialects of the landing-zone contract and the brand's own files: their
fields, headers, encodings, time and money formats (landing-zone.md, "The platform exports",
"The catalogue", "The plan"), and the writer of each format, used by the simulator.

The readers are `warehouse/records.py` (a file split into records of these fields) and
`warehouse/parsing.py` (records typed), so the files the simulator writes are read by the
code that takes its formats from here.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from contract.localtime import LOCAL_OFFSET


@dataclass(frozen=True)
class Field:
    """One logical field: its type and whether an empty value is allowed."""

    name: str
    # text | id | int | number | money | time | status | isotime | date | category | platform |
    # grade
    kind: str
    optional: bool = False


def _fields(*specs: str) -> tuple[Field, ...]:
    out = []
    for spec in specs:
        name, kind, *flags = spec.split(":")
        out.append(Field(name, kind, optional="opt" in flags))
    return tuple(out)


LOGICAL_FIELDS: dict[str, tuple[Field, ...]] = {
    "sessions": _fields(
        "session_id:id",
        "room_id:id",
        "room_name:text:opt",
        "host_id:id",
        "title:text:opt",
        "start_time:time",
        "end_time:time:opt",
        "viewers:int",
        "views:int",
        "peak_online:int",
        "avg_watch_s:number",
        "new_followers:int",
        "comments:int",
        "likes:int",
        "gmv:money",
        "orders:int",
    ),
    "lineup": _fields(
        "session_id:id",
        "sku:id",
        "listed_at:time",
        "live_price:money",
        "strike_price:money",
        "coupon:money:opt",
        "stock:int",
    ),
    "orders": _fields(
        "order_id:id",
        "session_id:id",
        "sku:id",
        "buyer_id:id",
        "phone:text:opt",
        "province:text:opt",
        "city:text:opt",
        "address:text:opt",
        "quantity:int",
        "unit_price:money",
        "paid:money",
        "created_at:time",
        "paid_at:time:opt",
        "status:status",
    ),
    "refunds": _fields(
        "refund_id:id",
        "order_id:id",
        "amount:money",
        "refunded_at:time",
        "reason:text:opt",
    ),
}

# The brand's own files (catalogue and plan), one format for all platforms: UTF-8 CSV with
# snake_case headers, yuan as `1299.00`, ISO 8601 dates and times with offset.
BRAND_FIELDS: dict[str, tuple[Field, ...]] = {
    "products": _fields(
        "sku:id",
        "brand:text:opt",
        "category:category",
        "subcategory:text:opt",
        "list_price:money",
        "energy_grade:grade:opt",
        "launch_date:date:opt",
    ),
    "planned_sessions": _fields(
        "plan_id:id",
        "platform:platform",
        "room_id:id",
        "host_id:id",
        "planned_start:isotime",
        "planned_minutes:int",
        "reservations:int",
        "exported_at:isotime",
    ),
    "planned_lineup": _fields("plan_id:id", "sku:id", "planned_price:money", "coupon:money:opt"),
}
LOGICAL_FIELDS.update(BRAND_FIELDS)
BRAND_FILES = {
    "products": "catalog/{date}/products.csv",
    "planned_sessions": "plan/{date}/planned_sessions.csv",
    "planned_lineup": "plan/{date}/planned_lineup.csv",
}

# Personal fields: never past the clean layer, masked in quarantine (the raw buyer id too: it
# becomes a viewer_key in clean rows, and the order id is enough to fix the source).
PERSONAL_FIELDS = frozenset({"phone", "address", "buyer_id"})

_HEADERS: dict[str, dict[str, tuple[str, ...]]] = {
    "douyin": {
        "sessions": (
            "直播场次ID", "直播间ID", "直播间名称", "主播编码", "直播标题", "开播时间", "关播时间",
            "观看人数", "观看人次", "最高在线人数", "人均观看时长(秒)", "新增粉丝数", "评论次数",
            "点赞次数", "成交金额(元)", "成交订单数",
        ),
        "lineup": (
            "直播场次ID", "商家编码", "上架时间", "直播价(元)", "划线价(元)", "优惠券(元)", "库存",
        ),
        "orders": (
            "订单编号", "直播场次ID", "商家编码", "买家ID", "收件人手机号", "省份", "城市",
            "详细地址", "商品数量", "商品单价(元)", "实付金额(元)", "下单时间", "支付时间",
            "订单状态",
        ),
        "refunds": ("售后单号", "订单编号", "退款金额(元)", "退款时间", "售后原因"),
    },
    "taobao": {
        "sessions": (
            "场次ID", "直播间ID", "直播间", "主播", "标题", "开始时间", "结束时间", "观看UV",
            "观看PV", "峰值在线", "人均停留(秒)", "涨粉数", "评论数", "点赞数", "成交金额",
            "成交笔数",
        ),
        "lineup": ("场次ID", "商家编码", "上架时间", "直播价", "原价", "券面额", "库存"),
        "orders": (
            "订单号", "场次ID", "商家编码", "买家昵称ID", "手机", "省", "市", "地址", "数量",
            "单价", "实付", "创建时间", "付款时间", "状态",
        ),
        "refunds": ("退款编号", "订单号", "退款金额", "退款完结时间", "退款原因"),
    },
    "jd": {
        "sessions": (
            "live_id", "room_id", "room_name", "anchor_code", "title", "start_ms", "end_ms", "uv",
            "pv", "max_online", "avg_stay_sec", "fans_gained", "comment_cnt", "like_cnt",
            "gmv_fen", "order_cnt",
        ),
        "lineup": (
            "live_id", "outer_sku_id", "shelf_ms", "live_price_fen", "market_price_fen",
            "coupon_fen", "stock",
        ),
        "orders": (
            "order_id", "live_id", "outer_sku_id", "pin", "mobile", "province", "city", "address",
            "num", "price_fen", "pay_fen", "create_ms", "pay_ms", "state",
        ),
        "refunds": ("refund_id", "order_id", "refund_fen", "finish_ms", "reason"),
    },
}  # fmt: skip

_STATUSES: dict[str, dict[str, str]] = {
    "douyin": {
        "待支付": "unpaid", "已支付": "paid", "已发货": "shipped", "已完成": "finished",
        "已取消": "closed",
    },
    "taobao": {
        "等待买家付款": "unpaid", "买家已付款": "paid", "卖家已发货": "shipped",
        "交易成功": "finished", "交易关闭": "closed",
    },
    "jd": {"0": "unpaid", "1": "paid", "2": "shipped", "3": "finished", "9": "closed"},
}  # fmt: skip


@dataclass(frozen=True)
class Dialect:
    platform: str
    file_format: str  # csv | jsonl
    encoding: str
    time_format: str | None  # strftime of local times; None: epoch ms UTC
    thousands: bool  # money written with thousands separators
    quote_all: bool
    headers: dict[str, tuple[str, ...]] = field(repr=False)
    statuses: dict[str, str] = field(repr=False)

    @property
    def extension(self) -> str:
        return "csv" if self.file_format == "csv" else "jsonl"

    def header_map(self, table: str) -> dict[str, str]:
        """Logical field name -> this platform's header."""
        names = [f.name for f in LOGICAL_FIELDS[table]]
        return dict(zip(names, self.headers[table], strict=True))

    def file_name(self, table: str) -> str:
        return f"{table}.{self.extension}"


DIALECTS: dict[str, Dialect] = {
    "douyin": Dialect(
        "douyin", "csv", "utf-8-sig", "%Y-%m-%d %H:%M:%S", False, False,
        _HEADERS["douyin"], _STATUSES["douyin"],
    ),
    "taobao": Dialect(
        "taobao", "csv", "gb18030", "%Y/%m/%d %H:%M:%S", True, True,
        _HEADERS["taobao"], _STATUSES["taobao"],
    ),
    "jd": Dialect("jd", "jsonl", "utf-8", None, False, False, _HEADERS["jd"], _STATUSES["jd"]),
    "brand": Dialect(
        "brand", "csv", "utf-8", None, False, False,
        {t: tuple(f.name for f in fs) for t, fs in BRAND_FIELDS.items()}, {},
    ),
}  # fmt: skip


# Writing (the simulator's side of the contract)


def format_money(fen: pd.Series, dialect: Dialect) -> pd.Series:
    """Integer fen -> the dialect's money text (jd keeps integer fen)."""
    if dialect.file_format == "jsonl":
        return fen
    sep = "," if dialect.thousands else ""

    def text(v: object) -> str:
        if pd.isna(v):
            return ""
        v = int(v)
        sign, v = ("-", -v) if v < 0 else ("", v)
        return f"{sign}{v // 100:{sep}d}.{v % 100:02d}"

    return fen.map(text).astype("str")


def format_time(utc: pd.Series, dialect: Dialect) -> pd.Series:
    """UTC naive datetimes -> the dialect's time text (jd: epoch ms integers)."""
    ts = pd.to_datetime(utc)
    if dialect.file_format == "jsonl":
        ms = ts.astype("datetime64[ms]").astype("int64")
        return pd.Series(ms, index=utc.index, dtype="Int64").where(ts.notna())
    local = ts + LOCAL_OFFSET
    return local.dt.strftime(dialect.time_format).where(ts.notna(), "").astype("str")


def to_dialect_frame(df: pd.DataFrame, platform: str, table: str) -> pd.DataFrame:
    """Logical, typed frame -> the platform's columns and value formats (still unserialised)."""
    dialect = DIALECTS[platform]
    hmap = dialect.header_map(table)
    status_text = {v: k for k, v in dialect.statuses.items()}
    out = {}
    for f in LOGICAL_FIELDS[table]:
        col = df[f.name]
        if f.kind == "money":
            col = format_money(col, dialect)
        elif f.kind == "time":
            col = format_time(col, dialect)
        elif f.kind == "status":
            col = col.map(status_text)
            if dialect.file_format == "jsonl":
                col = col.astype(int)
        elif f.kind == "number" and dialect.file_format == "csv":
            col = col.map(lambda v: "" if pd.isna(v) else f"{v:.1f}")
        elif f.kind == "int" and dialect.file_format == "csv":
            col = col.astype("Int64").astype("str").fillna("")
        out[hmap[f.name]] = col
    return pd.DataFrame(out, index=df.index)


def serialize(
    frame: pd.DataFrame | list[list[object]], platform: str, header: list[str] | None = None
) -> bytes:
    """Serialise dialect rows: CSV with the dialect's encoding/quoting, or JSON Lines.

    `frame` may be a list of rows (each a list of cell values, or a raw text line for jd) so that
    callers can write deliberately malformed records.
    """
    dialect = DIALECTS[platform]
    if isinstance(frame, pd.DataFrame):
        header = list(frame.columns)
        rows = frame.astype(object).where(frame.notna(), None).values.tolist()
    else:
        rows = frame
    if dialect.file_format == "jsonl":
        lines = []
        for row in rows:
            if isinstance(row, str):  # a pre-formed (possibly broken) line
                lines.append(row)
            else:
                obj = {
                    k: _json_value(v)
                    for k, v in zip(header, row, strict=True)
                    if not isinstance(v, _Absent)
                }
                lines.append(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))
        return ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8")
    buf = io.StringIO(newline="")
    writer = csv.writer(
        buf,
        quoting=csv.QUOTE_ALL if dialect.quote_all else csv.QUOTE_MINIMAL,
        lineterminator="\r\n",
    )
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return buf.getvalue().encode(dialect.encoding)


class _Absent:
    """Marks a jd key left out of one line (a malformed record)."""


ABSENT = _Absent()


def _json_value(v: object) -> object:
    if v is None:
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


def write_platform_file(path: Path, df: pd.DataFrame, platform: str, table: str) -> None:
    """Write a logical frame as the platform's export file."""
    path.write_bytes(serialize(to_dialect_frame(df, platform, table), platform))
