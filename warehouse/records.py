"""An export split into records of its logical fields, not yet typed (landing-zone.md, "The
platform exports"): CSV per RFC 4180 in the dialect's encoding, JSON Lines one object per line.

Broken quoting, repeated page headers, bytes in the wrong encoding and lines that are not JSON
cost their own records, which come back as unreadable with a reason; a required column absent
from the whole file raises `SchemaDriftError`, a file that cannot be read at all
`UnreadableFile`.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from contract.dialects import DIALECTS, PERSONAL_FIELDS, Dialect
from warehouse import door


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


QUARANTINE_COLUMNS = ["line", "field", "kind", "reason", "raw"]


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


def mask_record(record: dict[str, object]) -> str:
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
            bad.append((line, None, reason, mask_record({"text": scrub_personal(record[0][:300])})))
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
            bad.append((line, None, reason, mask_record(as_dict)))
            continue
        if any("\ufffd" in v for v in record):
            as_dict = dict(zip(logical, (record[p] for p in positions), strict=True))
            bad.append((line, None, f"bytes that are not {dialect.encoding}", mask_record(as_dict)))
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
            bad.append(
                (line, None, error, mask_record({"text": scrub_personal(lines[line - 1][:500])}))
            )
            continue
        absent = [k for k in keys if k not in obj]
        if absent:
            record = {n: obj.get(k) for n, k in zip(logical, keys, strict=True)}
            bad.append(
                (
                    line,
                    hmap_inverse(hmap)[absent[0]],
                    f"key {absent[0]!r} absent",
                    mask_record(record),
                )
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
