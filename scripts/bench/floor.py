"""The floor of the clean layer: read a day's raw files into memory with pyarrow, and write as
many rows as the clean layer wrote into SQLite with its bulk path (one transaction of
`executemany`). No typing, no checks, no deduplication: what no pipeline can beat."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import itertools
import json
import sqlite3
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pj

from contract.dialects import DIALECTS
from warehouse.events import FIELDS

EVENT_SCHEMA = pa.schema(
    [(f, pa.string()) for f in FIELDS]
    + [("client", pa.struct([("os", pa.string()), ("app_version", pa.string())]))]
)


def read_csv(path: Path, encoding: str) -> pa.Table:
    """Every column as text; rows with the wrong number of fields are skipped. Arrow skips a
    UTF-8 byte-order mark itself, and transcodes other encodings (GB18030) as it reads."""
    with open(path, encoding=encoding, errors="replace", newline="") as fh:
        header = next(csv.reader(fh), [])
    return pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(
            encoding="utf8" if encoding.startswith("utf-8") else encoding, block_size=1 << 24
        ),
        parse_options=pacsv.ParseOptions(
            newlines_in_values=True, invalid_row_handler=lambda row: "skip"
        ),
        convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string())),
    )


def read_jsonl(path: Path, schema: pa.Schema) -> tuple[pa.Table, bool]:
    """(table, whether Arrow gave up on the file and its lines were parsed one by one: a
    broken line, or a number where the schema says text)."""
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    compressed = path.suffix == ".gz"
    try:
        source = pa.input_stream(str(path), compression="gzip" if compressed else None)
        return pj.read_json(source, parse_options=options), False
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        opener = gzip.open if compressed else open
        texts = [f.type == pa.string() for f in schema]
        records = []
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    records.append(
                        {
                            f.name: _text(record.get(f.name)) if text else record.get(f.name)
                            for f, text in zip(schema, texts, strict=True)
                        }
                    )
        return pa.Table.from_pylist(records, schema=schema), True


def _text(value: object) -> str | None:
    return None if value is None else value if isinstance(value, str) else json.dumps(value)


def read_day(landing: Path, day: dt.date) -> tuple[dict[str, pa.Table], int]:
    """Every raw file of `day` (platform exports, events, plan, catalogue) by its relative
    path; and how many files needed the line-by-line fallback."""
    tables: dict[str, pa.Table] = {}
    slow = 0
    for path in sorted(landing.glob(f"*/{day.isoformat()}/*")):
        folder = path.parent.parent.name
        name = str(path.relative_to(landing))
        if path.name.endswith(".csv"):
            encoding = DIALECTS[folder].encoding if folder in DIALECTS else "utf-8"
            tables[name] = read_csv(path, encoding)
        elif path.name.endswith(".jsonl.gz"):
            tables[name], fell_back = read_jsonl(path, EVENT_SCHEMA)
            slow += fell_back
        elif path.name.endswith(".jsonl"):
            fields = DIALECTS[folder].headers[path.name.removesuffix(".jsonl")]
            tables[name], fell_back = read_jsonl(
                path, pa.schema(dict.fromkeys(fields, pa.string()))
            )
            slow += fell_back
    return tables, slow


def bulk_write(db: Path, tables: dict[str, pa.Table], rows: int) -> int:
    """Insert `rows` rows taken from the raw tables in turn (as read, struct columns
    flattened) into one SQLite table per raw file, in one transaction."""
    con = sqlite3.connect(db)
    written = 0
    try:
        with con:
            for index, table in enumerate(itertools.cycle(tables.values())):
                if written >= rows or index > 10 * len(tables):
                    break
                take = table.slice(0, rows - written)
                flat = take.flatten()
                target = f"raw_{index}"
                columns = ", ".join(f'"c{i}" TEXT' for i in range(flat.num_columns))
                con.execute(f"CREATE TABLE {target} ({columns})")
                marks = ", ".join("?" * flat.num_columns)
                batch = 100_000
                for start in range(0, flat.num_rows, batch):
                    chunk = flat.slice(start, batch).to_pydict().values()
                    con.executemany(
                        f"INSERT INTO {target} VALUES ({marks})", zip(*chunk, strict=True)
                    )
                written += flat.num_rows
    finally:
        con.close()
    return written


def floor(landing: Path, day: dt.date, db: Path, rows: int) -> dict:
    started = time.perf_counter()
    tables, slow = read_day(landing, day)
    read_s = time.perf_counter() - started
    written = bulk_write(db, tables, rows)
    return {
        "rows": sum(t.num_rows for t in tables.values()),
        "read_s": read_s,
        "write_s": time.perf_counter() - started - read_s,
        "written": written,
        "files": len(tables),
        "slow_files": slow,
    }
