"""The three platform dialects of the landing-zone contract, read and written in one place.

Every platform exports the same logical records (sessions, lineup, orders, refunds) with its
own headers, encodings, time and money formats. `read_platform_file` turns one export into a
typed frame of logical columns plus a quarantine frame of the rows that could not be typed;
`write_platform_file` is its inverse, used by the simulator.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from contract.enums import CATEGORIES, PLAN_DAYS, PLATFORMS
from contract.localtime import LOCAL_OFFSET
from warehouse import door


@dataclass(frozen=True)
class Field:
    """One logical field: its type and whether an empty value is allowed."""

    name: str
    kind: str  # text | id | int | number | money | time | status
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


class SchemaDriftError(ValueError):
    """A required column is missing or renamed: the whole platform-date cannot be read."""

    def __init__(self, path: Path | str, missing: list[str], present: list[str]):
        self.path = str(path)
        self.missing = missing
        self.present = present
        super().__init__(
            f"{self.path}: required column(s) {', '.join(repr(m) for m in missing)} missing "
            f"(columns present: {', '.join(present)})"
        )


@dataclass
class RawExport:
    """One export split into records: raw values of the logical fields, and unreadable records."""

    rows: pd.DataFrame  # `line` + logical columns (CSV: text; jd: JSON values)
    bad: pd.DataFrame  # QUARANTINE_COLUMNS: records that could not even be split into fields
    extra_columns: list[str]
    repeated_headers: int = 0  # page headers repeated inside the file: dropped, counted


@dataclass
class ParsedFile:
    """One export read: typed rows, the rows that could not be typed, and what else was seen."""

    rows: pd.DataFrame  # logical columns + `line`
    quarantine: pd.DataFrame  # line, field, reason, raw (personal fields masked)
    raw_rows: int
    extra_columns: list[str]
    normalised: dict[str, int]  # values normalised at the door, by ledger column
    repeated_headers: int


QUARANTINE_COLUMNS = ["line", "field", "kind", "reason", "raw"]

# ---------------------------------------------------------------------------------------------
# Reading


def read_raw(path: Path | str, platform: str, table: str) -> RawExport:
    """Split one export into records of the logical fields, without typing them.

    Raises SchemaDriftError when a required column (jd: key) is absent from the whole file.
    """
    dialect = DIALECTS[platform]
    path = Path(path)
    data = path.read_bytes()
    reader = _read_csv if dialect.file_format == "csv" else _read_jsonl
    rows, bad, extra, repeated = reader(data, path, dialect, table)
    bad_frame = pd.DataFrame(bad, columns=["line", "field", "reason", "raw"]).assign(kind="format")
    return RawExport(rows, bad_frame[QUARANTINE_COLUMNS], extra, repeated)


def read_platform_file(path: Path | str, platform: str, table: str) -> ParsedFile:
    """Read one platform export into typed logical columns; bad rows go to quarantine."""
    raw = read_raw(path, platform, table)
    rows, bad_values, normalised = type_rows(raw.rows, platform, table)
    quarantine = pd.concat([raw.bad, bad_values[QUARANTINE_COLUMNS]], ignore_index=True)
    return ParsedFile(
        rows,
        quarantine.sort_values("line", ignore_index=True),
        len(raw.rows) + len(raw.bad),
        raw.extra_columns,
        {k: int(v) for k, v in normalised.sum().items()},
        raw.repeated_headers,
    )


def _check_columns(path: Path, dialect: Dialect, table: str, present: Iterable[str]) -> list[str]:
    present = list(present)
    expected = dialect.headers[table]
    missing = [h for h in expected if h not in present]
    if missing:
        raise SchemaDriftError(path, missing, present)
    return [c for c in present if c not in expected]


_PERSONAL_KEYS = re.compile(r'("(?:mobile|address|pin|viewer_id|phone|buyer_id)"\s*:\s*)"[^"]*"?')
_PHONE = re.compile(r"(?<![0-9A-Za-z])1[3-9]\d{9}(?![0-9A-Za-z])")
_STREET = re.compile(r"[^\s\",:{}]*(?:路|街|大道|巷)\d+号[^\s\",}]*")


def scrub_personal(text: str) -> str:
    """Mask personal values in text that could not be parsed (a broken line, a shifted row):
    values under personal keys, phone numbers and street addresses."""
    text = _PERSONAL_KEYS.sub(r'\1"***"', text)
    return _STREET.sub("***", _PHONE.sub("***", text))


def _mask(record: dict[str, object]) -> str:
    masked = {
        k: ("***" if k in PERSONAL_FIELDS and v not in (None, "") else v) for k, v in record.items()
    }
    return scrub_personal(json.dumps(masked, ensure_ascii=False, default=str))


# A quoted free-text field may be long; past this an unbalanced quote is swallowing the file.
csv.field_size_limit(16 * 1024 * 1024)


class UnreadableFile(ValueError):
    """A file that cannot be read at all, said in words ("empty", "not GB18030 text")."""


# What a file in the wrong encoding usually is (a spreadsheet re-saved it).
_OTHER_ENCODINGS = ("utf-8-sig", "gb18030")


def _read_csv(data: bytes, path: Path, dialect: Dialect, table: str):
    if not data.strip():
        raise UnreadableFile(f"{path}: the file is empty, without even its header line")
    try:
        text = data.decode(dialect.encoding)
    except UnicodeDecodeError:
        # Keep going line by line: an undecodable byte spoils its row, not the file.
        text = data.decode(dialect.encoding, errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    # Physical lines end at "\n" (RFC 4180: CRLF or LF); a quoted field may span several.
    pieces = text.split("\n")
    lines = [p + "\n" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
    if "\ufeff" in text:  # a byte-order mark before a line (files concatenated): ignored
        lines = [line.removeprefix("\ufeff") for line in lines]
    header = [h.strip() for h in next(csv.reader(lines[:1]), [])]
    try:
        extra = _check_columns(path, dialect, table, header)
    except SchemaDriftError:
        raise _wrong_encoding(data, path, dialect, table) from None
    hmap = dialect.header_map(table)
    logical = list(hmap)
    positions = [header.index(hmap[name]) for name in logical]
    good_lines: list[int] = []
    good_values: list[list[str]] = []
    bad: list[tuple] = []
    width = len(header)
    repeated = 0
    for line, record, broken in _csv_records(lines):
        if broken:
            reason = f"broken quoting: {broken}"
            bad.append((line, None, reason, _mask({"text": scrub_personal(record[0][:300])})))
            continue
        if not record:  # a blank line is not a record
            continue
        if len(record) == width and [v.strip().lstrip("\ufeff") for v in record] == header:
            repeated += 1  # a page header repeated by a concatenating program: dropped, counted
            continue
        if len(record) != width:
            as_dict = {
                name: (record[p] if p < len(record) else None)
                for name, p in zip(logical, positions, strict=True)
            }
            reason = f"wrong field count: {len(record)} fields, header has {width}"
            bad.append((line, None, reason, _mask(as_dict)))
            continue
        if any("\ufffd" in v for v in record):
            as_dict = dict(zip(logical, (record[p] for p in positions), strict=True))
            bad.append((line, None, f"bytes that are not {dialect.encoding}", _mask(as_dict)))
            continue
        good_lines.append(line)
        good_values.append([record[p] for p in positions])
    raw = pd.DataFrame(good_values, columns=logical, dtype="str")
    raw.insert(0, "line", pd.array(good_lines, dtype="int64"))
    return raw, bad, extra, repeated


def _csv_records(lines: list[str]) -> Iterator[tuple[int, list[str], str]]:
    """(record number, fields, "" or what is broken) for every record after the header line.

    An unbalanced quote opens a field that swallows the lines after it. Such a record (one
    spanning several lines whose field count is wrong, or one the csv module gives up on) is
    damage that starts on its first line: that line is given back alone (its text as the only
    field, with why), and reading resumes on the next line, so every line after it is still
    read and numbered (landing-zone.md, "broken quoting"). Numbers are record numbers, the
    header being 1; they are line numbers wherever no quoted field spans lines.
    """
    width = len(next(csv.reader(lines[:1]), []))
    number, start = 1, 1
    while start < len(lines):
        reader = csv.reader(itertools.islice(lines, start, None))
        done = 0  # lines consumed from `start` by the records given back so far
        try:
            for record in reader:
                span = reader.line_num - done
                if span > 1 and (len(record) != width or _swallowed(record, width)):
                    number += 1
                    yield number, [lines[start + done]], "an unbalanced quote starts here"
                    start += done + 1
                    break
                done = reader.line_num
                number += 1
                yield number, record, ""
            else:
                return
        except csv.Error as exc:
            number += 1
            yield number, [lines[start + done]], f"an unbalanced quote starts here ({exc})"
            start += done + 1


def _swallowed(record: list[str], width: int) -> bool:
    """A field spanning lines that holds half a record's worth of delimiters after its first
    line break: two stray quotes merged records, not a multi-line address."""
    return any("\n" in v and v.split("\n", 1)[1].count(",") >= width // 2 for v in record)


def _wrong_encoding(data: bytes, path: Path, dialect: Dialect, table: str) -> ValueError:
    """Why a CSV's header lacks required columns: the file is in another encoding (said so in
    words), or the columns really are missing (a SchemaDriftError naming every one)."""
    first = data.split(b"\n", 1)[0].rstrip(b"\r")
    expected = dialect.headers[table]
    for encoding in _OTHER_ENCODINGS:
        try:
            names = next(csv.reader([first.decode(encoding).lstrip("\ufeff")]), [])
        except UnicodeDecodeError:
            continue
        if encoding != dialect.encoding and all(h in [n.strip() for n in names] for h in expected):
            wanted = "UTF-8" if dialect.encoding.startswith("utf-8") else dialect.encoding.upper()
            found = "UTF-8" if encoding.startswith("utf-8") else encoding.upper()
            return UnreadableFile(f"{path}: not {wanted} text: the file is {found}")
    text = first.decode(dialect.encoding, errors="replace")
    present = [h.strip() for h in next(csv.reader([text.lstrip("\ufeff")]), [])]
    if "\ufffd" in text:
        return UnreadableFile(f"{path}: not {dialect.encoding} text: its header cannot be read")
    return SchemaDriftError(path, [h for h in expected if h not in present], present)


def _read_jsonl(data: bytes, path: Path, dialect: Dialect, table: str):
    hmap = dialect.header_map(table)
    logical = list(hmap)
    keys = [hmap[n] for n in logical]
    # JSON Lines records end at "\n" only: U+2028, NEL or a form feed inside a value is part
    # of it (str.splitlines would split there).
    # A byte-order mark before a line (files concatenated by a program that writes one) is
    # ignored (landing-zone.md, "Damage that real exports carry").
    try:
        text, undecodable = data.decode("utf-8"), set()
    except UnicodeDecodeError:  # only the lines with bytes that are not UTF-8 are lost
        pieces = data.split(b"\n")
        undecodable = set()
        for i, piece in enumerate(pieces):
            try:
                piece.decode("utf-8")
            except UnicodeDecodeError:
                undecodable.add(i + 1)
        text = data.decode("utf-8", errors="replace")
    lines = [line.removesuffix("\r").lstrip("\ufeff") for line in text.split("\n")]
    seen_keys: dict[str, None] = {}
    parsed: list[tuple[int, dict | None, str]] = []
    for line, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        if line in undecodable:
            parsed.append((line, None, "bytes that are not UTF-8"))
            continue
        try:
            obj = json.loads(text)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
            if "\\u" in text and door.lone_surrogate(obj.values()):  # only an escape makes one
                raise ValueError("half an emoji (a lone surrogate) that UTF-8 cannot hold")
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            parsed.append((line, None, f"malformed JSON line: {exc}"[:200]))
            continue
        seen_keys.update(dict.fromkeys(obj))
        parsed.append((line, obj, ""))
    present = list(seen_keys) if parsed else list(keys)
    extra = _check_columns(path, dialect, table, present) if any(p[1] for p in parsed) else []
    good_lines: list[int] = []
    good_values: list[list[object]] = []
    bad: list[tuple] = []
    for line, obj, error in parsed:
        if obj is None:
            bad.append((line, None, error, _mask({"text": scrub_personal(lines[line - 1][:500])})))
            continue
        absent = [k for k in keys if k not in obj]
        if absent:
            record = {n: obj.get(k) for n, k in zip(logical, keys, strict=True)}
            bad.append(
                (line, hmap_inverse(hmap)[absent[0]], f"key {absent[0]!r} absent", _mask(record))
            )
            continue
        good_lines.append(line)
        good_values.append([obj[k] for k in keys])
    raw = pd.DataFrame(good_values, columns=logical, dtype=object)
    raw.insert(0, "line", pd.array(good_lines, dtype="int64"))
    return raw, bad, extra, 0


def hmap_inverse(hmap: dict[str, str]) -> dict[str, str]:
    return {v: k for k, v in hmap.items()}


# Digits bounded so that every value that matches fits a 64-bit integer (of fen): a longer one
# is unparseable at the door, never an overflow in the step.
# ASCII digits only: `\d` would take Arabic-Indic or Devanagari digits that no parser reads.
_MONEY_PLAIN = r"[0-9]{1,16}\.[0-9]{2}"
_MONEY_THOUSANDS = r"[0-9]{1,3}(?:,[0-9]{3}){0,5}\.[0-9]{2}|[0-9]{1,16}\.[0-9]{2}"
_INT = r"[0-9]{1,18}"
_EPOCH_MS = r"[0-9]{1,14}"  # up to the year 5138: later is implausible, never an overflow
_NUMBER = r"[0-9]{1,15}(?:\.[0-9]+)?"


def type_rows(
    raw: pd.DataFrame, platform: str, table: str, first_date: dt.date | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Type raw records (any number of files of one platform at once, for speed).

    Every field passes the door first (`warehouse/door.py`). Columns other than the logical
    fields (line, source file…) pass through. With `first_date` and an `export_date` column,
    times outside the plausible window are quarantined too. Returns the typed rows, the rows
    that failed (with `field`, `reason` and the masked `raw` record), and per raw row the values
    normalised at the door, by ledger column (door.NORMALISED_KINDS).
    """
    dialect = DIALECTS[platform]
    logical = [f.name for f in LOGICAL_FIELDS[table]]
    passthrough = [c for c in raw.columns if c not in logical]
    raw = raw.reset_index(drop=True)
    out = raw[passthrough].copy()
    n = len(raw)
    reason = np.full(n, None, dtype=object)
    field_of = np.full(n, None, dtype=object)
    is_json = dialect.file_format == "jsonl"
    counts = {k: np.zeros(n, dtype=np.int64) for k in door.NORMALISED_KINDS}
    files = raw["source_file"] if "source_file" in raw else pd.Series("", index=raw.index)

    def flag(mask: pd.Series | np.ndarray, name: str, describe) -> None:
        if isinstance(mask, pd.Series):
            mask = mask.to_numpy(dtype=bool, na_value=False)
        new = mask & pd.isna(reason)
        if new.any():
            reason[new] = [describe(t) for t in text.to_numpy()[new]]
            field_of[new] = name

    for f in LOGICAL_FIELDS[table]:
        values = raw[f.name]
        damage = door.normalise_field(
            _as_text(values), f.name, f.kind if f.kind in ("text", "id") else "value"
        )
        text = damage.text
        for k, c in damage.counts.items():
            counts[k] += c
        if damage.problem is not None:
            new = pd.notna(damage.problem) & pd.isna(reason)
            reason[new] = damage.problem[new]
            field_of[new] = f.name
        if f.kind == "id":
            lost = door.lost_digits(text.str.strip(), files)
            flag(lost, f.name, lambda t, name=f.name: f"{name} lost its digits in a spreadsheet "
                 f"({t.strip()}): the true id is gone")  # fmt: skip
        empty = text.str.strip() == ""
        if not f.optional and f.kind != "text":
            flag(empty, f.name, lambda _t, name=f.name: f"{name} is empty")
        if f.kind == "isotime":  # never read as UTC (landing-zone.md, "without an offset")
            naive = ~text.str.strip().str.contains(door.OFFSET, regex=True) & ~empty
            flag(naive, f.name, lambda t, name=f.name: f"{name} without offset: {t[:40]}")
        typed, invalid, negative = _convert(f, text, values, empty, dialect, is_json)
        flag(invalid, f.name, lambda t, name=f.name: f"{name} unparseable: {t[:40]}")
        flag(negative, f.name, lambda t, name=f.name: f"{name} negative: {t}")
        if f.kind in ("time", "isotime") and first_date is not None and "export_date" in raw:
            ahead = PLAN_DAYS + 1 if f.name == "planned_start" else 1
            odd = door.implausible_times(typed, raw["export_date"], first_date, ahead)
            flag(odd, f.name, lambda t, name=f.name: f"{name} implausible: {t[:40]}")
        out[f.name] = typed
    for rule_table, name, broken, why in door.ROW_RULES:
        if rule_table == table and n:
            new = broken(out).to_numpy(dtype=bool, na_value=False) & pd.isna(reason)
            reason[new] = why
            field_of[new] = name
    bad_mask = ~pd.isna(reason)
    bad = raw.loc[bad_mask, passthrough].copy()
    bad["field"] = field_of[bad_mask]
    bad["kind"] = "value"
    bad["reason"] = reason[bad_mask]
    records = raw.loc[bad_mask, logical].astype(object).to_dict("records")
    bad["raw"] = [_mask({k: _jsonable(v) for k, v in r.items()}) for r in records]
    normalised = pd.DataFrame({door.NORMALISED_KINDS[k]: c for k, c in counts.items()})
    return out[~bad_mask].reset_index(drop=True), bad.reset_index(drop=True), normalised


def _jsonable(value: object) -> object:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value if isinstance(value, (int, float, str, bool)) else str(value)


def _as_text(values: pd.Series) -> pd.Series:
    if values.dtype == object:
        return values.map(lambda v: "" if v is None else str(v)).astype("str")
    return values.fillna("").astype("str")


def _convert(
    f: Field, text: pd.Series, values: pd.Series, empty: pd.Series, dialect: Dialect, is_json: bool
):
    none = pd.Series(False, index=text.index)
    stripped = text.str.strip()
    if f.kind in ("text", "id"):
        typed = stripped.where(~empty, None).astype("str")
        if is_json and f.kind == "id":
            # jd ids are JSON strings; a number where a string belongs is a malformed row.
            not_str = ~values.map(lambda v: v is None or isinstance(v, str)).astype(bool)
            return typed, not_str & ~empty, none
        return typed, none, none
    if f.kind == "status":
        mapped = stripped.map(dialect.statuses)
        invalid = mapped.isna() & ~empty
        return mapped.astype("str"), invalid, none
    negative = stripped.str.startswith("-") & ~empty
    body = stripped.str.lstrip("-")
    if f.kind in ("int",) or (f.kind == "money" and is_json) or (f.kind == "time" and is_json):
        ok = body.str.fullmatch(_EPOCH_MS if f.kind == "time" else _INT) | empty
        if is_json:
            # JSON numbers must be integers, not strings or floats.
            ok &= values.map(
                lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool))
            ).astype(bool)
        numbers = pd.to_numeric(body.where(ok & ~empty), errors="coerce").astype("Int64")
        numbers = numbers.where(~negative, -numbers)
        if f.kind == "time":
            typed = pd.to_datetime(numbers.astype("float64"), unit="ms")
            return typed.astype("datetime64[us]"), ~ok, negative & ok
        return numbers, ~ok, negative & ok
    if f.kind == "number":
        ok = body.str.fullmatch(_NUMBER) | empty
        numbers = pd.to_numeric(body.where(ok & ~empty), errors="coerce").astype("Float64")
        return numbers, ~ok, negative & ok
    if f.kind == "money":
        pattern = _MONEY_THOUSANDS if dialect.thousands else _MONEY_PLAIN
        ok = body.str.fullmatch(pattern) | empty
        digits = (
            body.where(ok & ~empty)
            .str.replace(",", "", regex=False)
            .str.replace(".", "", regex=False)
        )
        fen = pd.to_numeric(digits, errors="coerce").astype("Int64")
        return fen, ~ok, negative & ok
    if f.kind == "date":
        parsed = pd.to_datetime(stripped.where(~empty), format="%Y-%m-%d", errors="coerce")
        return parsed.dt.date, parsed.isna() & ~empty, none
    if f.kind == "isotime":
        parsed = pd.to_datetime(stripped.where(~empty), format="ISO8601", errors="coerce", utc=True)
        # An offset is required: a time without one is ambiguous (type_rows says so by name).
        invalid = (parsed.isna() | ~stripped.str.contains(door.OFFSET, regex=True)) & ~empty
        return parsed.dt.tz_localize(None).astype("datetime64[us]"), invalid, none
    if f.kind in ("category", "platform", "grade"):
        allowed = {
            "category": CATEGORIES,
            "platform": PLATFORMS,
            "grade": ("1", "2", "3", "4", "5"),
        }[f.kind]
        invalid = ~stripped.isin(allowed) & ~empty
        typed = stripped.where(~empty & ~invalid, None)
        return (typed.astype("Int64") if f.kind == "grade" else typed.astype("str")), invalid, none
    if f.kind == "time":
        parsed = pd.to_datetime(stripped.where(~empty), format=dialect.time_format, errors="coerce")
        invalid = parsed.isna() & ~empty
        return (parsed - LOCAL_OFFSET).astype("datetime64[us]"), invalid, none
    raise ValueError(f"unknown field kind {f.kind}")


# ---------------------------------------------------------------------------------------------
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
