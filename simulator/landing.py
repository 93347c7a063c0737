"""Writing the landing zone: platform exports with their dirt, event parts, plans, the catalogue.

Row-level faults are applied to the dialect rows just before they are serialised, so the
truth's fault list can name the exact file and line (1-based, the header being line 1).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from contract.dialects import ABSENT, DIALECTS, LOGICAL_FIELDS, serialize, to_dialect_frame
from contract.layout import folder
from simulator.config import FaultRates


@dataclass
class FaultLog:
    """Every fault injected, with where it landed: the simulator's confession."""

    rows: list[dict] = field(default_factory=list)

    def add(self, kind: str, file: str, line: int | None, key: str, detail: str = "") -> None:
        self.rows.append({"kind": kind, "file": file, "line": line, "key": key, "detail": detail})

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=["kind", "file", "line", "key", "detail"])


KEY_FIELD = {
    "sessions": "session_id",
    "lineup": "session_id",
    "orders": "order_id",
    "refunds": "refund_id",
}
MONEY_FIELDS = {
    t: [f.name for f in fs if f.kind == "money" and not f.optional]
    for t, fs in LOGICAL_FIELDS.items()
}
TIME_FIELDS = {
    t: [f.name for f in fs if f.kind == "time" and not f.optional]
    for t, fs in LOGICAL_FIELDS.items()
}
NEGATIVE_FIELDS = {"lineup": ["live_price", "stock"], "orders": ["quantity", "unit_price"]}
EXTRA_COLUMN = {"douyin": "备注", "taobao": "商家备注", "jd": "remark"}


def write_platform_export(
    root: Path,
    platform: str,
    table: str,
    day: dt.date,
    logical: pd.DataFrame,
    rates: FaultRates,
    rng: np.random.Generator,
    faults: FaultLog,
    tags: list[list[tuple[str, str]]] | None = None,
) -> None:
    """Write one platform file, injecting row- and file-level faults; `tags` carries faults
    decided upstream (e.g. a still-live session) so they are logged with their final line."""
    dialect = DIALECTS[platform]
    rel = f"{platform}/{day.isoformat()}/{dialect.file_name(table)}"
    frame = to_dialect_frame(logical, platform, table)
    header = list(frame.columns)
    rows: list[list[object] | str] = frame.astype(object).where(frame.notna(), None).values.tolist()
    row_tags = [list(t) for t in tags] if tags is not None else [[] for _ in rows]
    keys = logical[KEY_FIELD[table]].astype(str).tolist()
    hmap = dialect.header_map(table)
    is_json = dialect.file_format == "jsonl"

    def col(name: str) -> int:
        return header.index(hmap[name])

    out_rows: list[list[object] | str] = []
    out_tags: list[list[tuple[str, str]]] = []
    out_keys: list[str] = []
    n = len(rows)
    draws = rng.random((n, 6)) if n else np.zeros((0, 6))
    for i, row in enumerate(rows):
        row = list(row)
        row_tag = list(row_tags[i])
        d = draws[i]
        if d[0] < rates.bad_time and TIME_FIELDS[table]:
            name = TIME_FIELDS[table][int(d[5] * len(TIME_FIELDS[table]))]
            row[col(name)] = "2026-13-45 25:61" if not is_json else "not-a-time"
            row_tag.append(("bad_time", name))
        elif d[1] < rates.bad_amount and MONEY_FIELDS[table]:
            name = MONEY_FIELDS[table][int(d[5] * len(MONEY_FIELDS[table]))]
            row[col(name)] = "12,9x.00" if not is_json else "1299.00"
            row_tag.append(("bad_amount", name))
        elif d[2] < rates.negative_value and table in NEGATIVE_FIELDS:
            name = NEGATIVE_FIELDS[table][int(d[5] * len(NEGATIVE_FIELDS[table]))]
            value = row[col(name)]
            row[col(name)] = -abs(int(value)) if is_json else f"-{value}"
            row_tag.append(("negative_value", name))
        elif d[3] < rates.unknown_sku and table in ("lineup", "orders"):
            row[col("sku")] = f"LS-XX{int(d[5] * 9000) + 1000}"
            row_tag.append(("unknown_sku", "sku"))
        elif d[3] > 1 - rates.orphan_order and table == "orders":
            row[col("session_id")] = f"9{int(d[5] * 10**9):09d}"
            row_tag.append(("orphan_order", "session_id"))
        if d[4] < rates.malformed_row:
            if is_json:
                # A key absent from every line of a file is a missing column, which fails the
                # whole file by contract: a file of one line gets a truncated line instead.
                if d[5] < 0.5 or n == 1:
                    row = json.dumps(dict(zip(header, row, strict=True)), ensure_ascii=False)[
                        :-12
                    ]  # truncated
                    row_tag.append(("malformed_row", "truncated JSON"))
                else:
                    row[int(d[5] * len(header))] = ABSENT
                    row_tag.append(("malformed_row", "absent key"))
            else:
                row = row[:-1] if d[5] < 0.5 else [*row, "多余字段"]
                row_tag.append(("malformed_row", "wrong field count"))
        out_rows.append(row)
        out_tags.append(row_tag)
        out_keys.append(keys[i])
        if rng.random() < rates.duplicate_row:
            out_rows.append(row)
            out_tags.append([("duplicate_row", "same row exported twice")])
            out_keys.append(keys[i])
    if n and rng.random() < rates.extra_column:
        header = [*header, EXTRA_COLUMN[platform]]
        out_rows = [r if isinstance(r, str) else [*r, "见附件"] for r in out_rows]
        faults.add("extra_column", rel, None, EXTRA_COLUMN[platform])
    if rng.random() < rates.missing_column:
        victim = header.index(
            hmap[MONEY_FIELDS[table][0] if MONEY_FIELDS[table] else KEY_FIELD[table]]
        )
        faults.add("missing_column", rel, None, header[victim], "required column renamed")
        header = list(header)
        header[victim] = header[victim] + "_v2"
    # Damage has its own generator, seeded by the file's name: the world stays the same.
    damage = np.random.default_rng(zlib.crc32(rel.encode()))
    out_rows, out_tags, out_keys = _damage_rows(
        out_rows, out_tags, out_keys, header, table, dialect, rates, damage
    )
    data, header_at = _damage_text(out_rows, out_tags, header, table, platform, rates, damage)
    first_line = 1 if is_json else 2
    for pos, (row_tag, key) in enumerate(zip(out_tags, out_keys, strict=True)):
        for kind, detail in row_tag:
            shift = 1 if header_at is not None and pos >= header_at else 0
            faults.add(kind, rel, pos + first_line + shift, key, detail)
    if header_at is not None:
        faults.add("repeated_header", rel, header_at + first_line, "", "page header repeated")
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


FREE_TEXT = {"sessions": "title", "orders": "address", "refunds": "reason"}
CONFLICT_FIELD = {"lineup": "stock", "orders": "quantity", "refunds": "amount"}
WRAPPERS = ('="{}"', "'{}", "\t{}")
IMPLAUSIBLE = dt.datetime(1999, 1, 1, 20, 0)  # local time; jd: its epoch ms below
IMPLAUSIBLE_MS = 915_192_000_000


def full_width(value: object) -> str:
    """ASCII letters, digits and signs as their full-width forms (U+FF01 … U+FF5E)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in str(value))


def _damage_rows(rows, tags, keys, header, table, dialect, rates, rng):
    """Per row, at most one kind of the damage real exports carry, on rows without another
    fault (so each kind's outcome is its own): values a spreadsheet or another program changed,
    and a conflicting second line for the same key."""
    is_json = dialect.file_format == "jsonl"
    hmap = dialect.header_map(table)
    if any(h not in header for h in hmap.values()):  # a renamed column fails the file anyway
        return rows, tags, keys

    def col(name: str) -> int:
        return header.index(hmap[name])

    n = len(rows)
    u, pick = rng.random(n), rng.random(n)
    edges = np.cumsum(
        [
            rates.spreadsheet_wrapper,
            rates.unicode_variant,
            rates.control_char if table in FREE_TEXT else 0.0,
            rates.line_separator if is_json and table in FREE_TEXT else 0.0,
            rates.mangled_id if table == "orders" else 0.0,
            rates.implausible_time if table in CONFLICT_FIELD else 0.0,
            rates.key_conflict if table in CONFLICT_FIELD else 0.0,
        ]
    )
    kinds = np.searchsorted(edges, u, side="right")  # len(edges): no damage
    out_rows, out_tags, out_keys = [], [], []
    for i, (row, tag, key) in enumerate(zip(rows, tags, keys, strict=True)):
        if (
            kinds[i] == len(edges)
            or isinstance(row, str)
            or tag
            or (i + 1 < n and any(k == "duplicate_row" for k, _ in tags[i + 1]))
        ):
            out_rows.append(row), out_tags.append(tag), out_keys.append(key)
            continue
        row, tag, extra = list(row), list(tag), None
        kind = int(kinds[i])
        if kind == 0:
            name = KEY_FIELD[table]
            row[col(name)] = WRAPPERS[int(pick[i] * len(WRAPPERS))].format(row[col(name)])
            tag.append(("spreadsheet_wrapper", name))
        elif kind == 1:
            name = KEY_FIELD[table] if is_json else MONEY_FIELDS[table][0]
            row[col(name)] = full_width(row[col(name)])
            tag.append(("unicode_variant", name))
        elif kind in (2, 3) and row[col(FREE_TEXT[table])]:
            name, text = FREE_TEXT[table], str(row[col(FREE_TEXT[table])])
            row[col(name)] = text[:1] + ("\x00" if kind == 2 else "\u2028") + text[1:]
            tag.append(("control_char" if kind == 2 else "line_separator", name))
        elif kind == 4:
            value = str(row[col("order_id")])
            row[col("order_id")] = f"{float(value):.5E}" if value.isdigit() else "3.71235E+18"
            tag.append(("mangled_id", "order_id"))
        elif kind == 5:
            name = TIME_FIELDS[table][0]
            row[col(name)] = (
                IMPLAUSIBLE_MS if is_json else IMPLAUSIBLE.strftime(dialect.time_format)
            )
            tag.append(("implausible_time", name))
        elif kind == 6:
            name = CONFLICT_FIELD[table]
            extra = list(row)
            value = extra[col(name)]
            if name == "amount":
                extra[col(name)] = 1 if is_json else ("0.01" if value != "0.01" else "0.02")
            else:
                extra[col(name)] = int(value) + 1 if is_json else str(int(value) + 1)
            tag.append(("key_conflict", name))
        out_rows.append(row), out_tags.append(tag), out_keys.append(key)
        if extra is not None:
            out_rows.append(extra), out_tags.append(list(tag)), out_keys.append(key)
    return out_rows, out_tags, out_keys


def _damage_text(rows, tags, header, table, platform, rates, rng) -> tuple[bytes, int | None]:
    """The file's bytes with the damage that lives in its text: an unbalanced quote in one
    orders line, a page header repeated (CSV), a byte-order mark before a line (jd). Returns
    the bytes and the row index before which a header was repeated (None: none was)."""
    data = serialize(rows, platform, header)
    dialect = DIALECTS[platform]
    clean_rows = [
        i
        for i, (r, t) in enumerate(zip(rows, tags, strict=True))
        if not t and not isinstance(r, str)
    ]
    draws = rng.random(3)
    if dialect.file_format == "jsonl":
        if clean_rows and draws[0] < rates.bom_line:
            i = clean_rows[int(draws[2] * len(clean_rows))]
            lines = data.split(b"\n")
            lines[i] = b"\xef\xbb\xbf" + lines[i]
            data = b"\n".join(lines)
            tags[i].append(("bom_line", "byte-order mark before the line"))
        return data, None
    quote = table == "orders" and draws[0] < rates.broken_quote
    if not (clean_rows and quote) and not (rows and draws[1] < rates.repeated_header):
        return data, None
    text = data.decode(dialect.encoding)
    lines = text.split("\r\n")
    complete = all(h in header for h in dialect.headers[table])
    if quote and complete and clean_rows:
        i = clean_rows[int(draws[2] * len(clean_rows))]
        address = str(rows[i][header.index(dialect.header_map(table)["address"])])
        quoted = f'"{address}"'
        damaged = f'"{address}""' if quoted in lines[i + 1] else f'"{address}'
        lines[i + 1] = lines[i + 1].replace(
            quoted if quoted in lines[i + 1] else address, damaged, 1
        )
        tags[i].append(("broken_quote", "address"))
    header_at = None
    if rows and draws[1] < rates.repeated_header:
        header_at = int(draws[2] * len(rows))
        lines.insert(header_at + 1, lines[0].lstrip("\ufeff"))
    return "\r\n".join(lines).encode(dialect.encoding), header_at


class EventParts:
    """Gzip'd JSON Lines parts of one events folder, rolled every `per_part` lines.

    gzip headers carry no name or time, so the same seed gives the same bytes.
    """

    def __init__(self, root: Path, day: dt.date, per_part: int, faults: FaultLog):
        self.folder = folder(root, "events", day)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.day = day
        self.per_part = per_part
        self.faults = faults
        self.files: dict[str, tuple[gzip.GzipFile, object, int, int]] = {}

    def write(self, platform: str, lines: list[str], tags: list[tuple[int, str, str]]) -> None:
        """Append lines; `tags` are (index in lines, fault kind, event_id)."""
        tag_at = {}
        for idx, kind, key in tags:
            tag_at.setdefault(idx, []).append((kind, key))
        pos = 0
        while pos < len(lines):
            gz, raw, part, count = self._open(platform)
            take = min(len(lines) - pos, self.per_part - count)
            gz.write(("\n".join(lines[pos : pos + take]) + "\n").encode("utf-8"))
            rel = f"events/{self.day.isoformat()}/{platform}-{part:03d}.jsonl.gz"
            for k in range(pos, pos + take):
                for kind, key in tag_at.get(k, ()):
                    self.faults.add(kind, rel, count + (k - pos) + 1, key)
            self.files[platform] = (gz, raw, part, count + take)
            pos += take

    def _open(self, platform: str):
        current = self.files.get(platform)
        if current is not None and current[3] < self.per_part:
            return current
        part = 0
        if current is not None:
            current[0].close()
            current[1].close()
            part = current[2] + 1
        raw = open(self.folder / f"{platform}-{part:03d}.jsonl.gz", "wb")  # noqa: SIM115
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=1)
        self.files[platform] = (gz, raw, part, 0)
        return self.files[platform]

    def close(self) -> None:
        for gz, raw, _, _ in self.files.values():
            gz.close()
            raw.close()
        self.files.clear()
