"""Writing the landing zone: platform exports with their dirt, event parts, plans, the catalogue.

Row-level faults are applied to the dialect rows just before they are serialised, so the
truth's fault list can name the exact file and line (1-based, the header being line 1).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.config import FaultRates
from warehouse.dialects import ABSENT, DIALECTS, LOGICAL_FIELDS, serialize, to_dialect_frame

SUCCESS = "_SUCCESS"


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
                if d[5] < 0.5:
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
    first_line = 1 if is_json else 2
    for pos, (row_tag, key) in enumerate(zip(out_tags, out_keys, strict=True)):
        for kind, detail in row_tag:
            faults.add(kind, rel, pos + first_line, key, detail)
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(serialize(out_rows, platform, header))


class EventParts:
    """Gzip'd JSON Lines parts of one events folder, rolled every `per_part` lines.

    gzip headers carry no name or time, so the same seed gives the same bytes.
    """

    def __init__(self, root: Path, day: dt.date, per_part: int, faults: FaultLog):
        self.folder = root / "events" / day.isoformat()
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


def mark_success(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SUCCESS).write_bytes(b"")
