"""Tracking events: one folder's gzip'd JSON Lines parts to clean, compact rows.

Events are delivered at least once, out of order and up to two days late. A folder's events
are typed, checked against their session (known, and inside its time), deduplicated by
`event_id` within the folder and against the two folders before it, and pseudonymised. The
rows go to Parquet files beside the warehouse (`lake.py`); what could not be cleaned goes to
the SQL quarantine like every other table's.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from warehouse.dialects import scrub_personal
from warehouse.ingest import SUCCESS_MARKER, LandingNotReady, viewer_keys
from warehouse.integrity import as_quarantine
from warehouse.quality import EVENT_TYPES

SKU_EVENTS = ("product_click", "add_to_cart")
WINDOW_SLACK = pd.Timedelta(minutes=10)
LATE_FOLDERS = 2  # an event arrives in its date's folder or up to two days later
FIELDS = ("event_id", "ts", "platform", "session_id", "viewer_id", "type", "sku", "text")
CATEGORICAL = ("platform", "session_key", "viewer_key", "type", "sku", "client_os", "app_version")
EVENT_COLUMNS = ["event_id", "ts", "event_date", *CATEGORICAL, "text", "source_file", "source_line"]


@dataclass
class EventBatch:
    rows: pd.DataFrame  # EVENT_COLUMNS
    quarantine: pd.DataFrame
    ledger: pd.DataFrame  # per part file: raw, clean, duplicates, quarantined


def event_parts(landing_root: Path | str, day: dt.date) -> list[Path]:
    folder = Path(landing_root) / "events" / day.isoformat()
    if not (folder / SUCCESS_MARKER).exists():
        state = "has no _SUCCESS marker" if folder.exists() else "has not landed"
        raise LandingNotReady(f"{folder} {state}: the events of {day} are incomplete, not empty")
    return sorted(folder.glob("*.jsonl.gz"))


def read_part(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows with `line`, unreadable lines). Arrow's reader is the fast path; a file it cannot
    parse is read line by line so that only the broken lines are lost to quarantine."""
    import pyarrow as pa
    import pyarrow.json as pj

    schema = pa.schema(
        [(f, pa.string()) for f in FIELDS]
        + [("client", pa.struct([("os", pa.string()), ("app_version", pa.string())]))]
    )
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    try:
        table = pj.read_json(pa.input_stream(str(path), compression="gzip"), parse_options=options)
        frame = table.flatten().to_pandas()
        frame = frame.rename(
            columns={"client.os": "client_os", "client.app_version": "app_version"}
        )
        frame.insert(0, "line", np.arange(1, len(frame) + 1))
        return frame, pd.DataFrame(columns=["line", "field", "kind", "reason", "raw"])
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return _read_part_slowly(path)


def _read_part_slowly(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    good, bad = [], []
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as fh:
        for line, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
                client = obj.get("client") or {}
                good.append(
                    [line, *(None if obj.get(f) is None else str(obj.get(f)) for f in FIELDS),
                     client.get("os"), client.get("app_version")]
                )  # fmt: skip
            except (ValueError, AttributeError) as exc:
                bad.append(
                    (
                        line,
                        None,
                        "format",
                        f"malformed JSON line: {exc}"[:200],
                        json.dumps({"text": scrub_personal(text[:300])}, ensure_ascii=False),
                    )
                )
    frame = pd.DataFrame(good, columns=["line", *FIELDS, "client_os", "app_version"])
    return frame, pd.DataFrame(bad, columns=["line", "field", "kind", "reason", "raw"])


def clean_event_folder(
    landing_root: Path | str,
    day: dt.date,
    sessions: pd.DataFrame,
    earlier_event_ids: pd.Series,
    secret: str,
    run_id: str,
) -> EventBatch:
    """Clean one events folder. `sessions`: session_key, start_time, end_time as known by `day`;
    `earlier_event_ids`: ids already landed in the folders before it (a redelivery is a
    duplicate, not a new event)."""
    frames, unreadable, files = [], [], []
    for path in event_parts(landing_root, day):
        source = f"events/{day.isoformat()}/{path.name}"
        rows, bad = read_part(path)
        frames.append(rows.assign(source_file=source))
        unreadable.append(bad.assign(source_file=source))
        files.append({"source_file": source, "raw_rows": len(rows) + len(bad)})
    raw = (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["line", *FIELDS])
    )
    raw = raw.rename(columns={"line": "source_line"}).assign(export_date=day)
    problems = _problems(raw, sessions)
    # Quarantine keeps what fixes the source, never the raw platform viewer id.
    bad_rows = raw[problems["reason"].notna()].drop(columns="ts_utc")
    bad_rows = bad_rows.assign(
        viewer_id=bad_rows["viewer_id"].where(bad_rows["viewer_id"].isna(), "***")
    )
    quarantine = [
        as_quarantine(
            group.assign(platform=group["platform"].fillna("unknown")), field, kind, reason
        )
        for (field, kind, reason), group in bad_rows.groupby(
            [problems.loc[bad_rows.index, c] for c in ("field", "kind", "reason")], dropna=False
        )
    ]
    good = raw[problems["reason"].isna()]
    # The first delivery wins; later ones, here or already landed earlier, are duplicates.
    repeat = good["event_id"].duplicated(keep="first") | _is_in(good["event_id"], earlier_event_ids)
    duplicates = good[repeat]
    clean = good[~repeat]
    rows = _shape(clean, secret)
    unread = pd.concat(unreadable, ignore_index=True).rename(columns={"line": "source_line"})
    unread = unread.assign(export_date=day, platform="unknown")
    quarantine_frame = pd.concat([unread, *quarantine], ignore_index=True).assign(
        table_name="events", run_id=run_id
    )
    ledger = pd.DataFrame(files, columns=["source_file", "raw_rows"]).assign(
        export_date=day, platform="events", table_name="events", extra_columns="", run_id=run_id
    )
    for column, frame in (
        ("clean_rows", rows),
        ("duplicate_rows", duplicates),
        ("quarantined_rows", quarantine_frame),
    ):
        ledger[column] = (
            ledger["source_file"].map(frame["source_file"].value_counts()).fillna(0).astype(int)
        )
    return EventBatch(rows, quarantine_frame, ledger)


def _is_in(values: pd.Series, candidates: pd.Series) -> pd.Series:
    """Membership test of strings in C (pandas' own isin on arrow strings loops in Python)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if candidates.empty or values.empty:
        return pd.Series(False, index=values.index)
    found = pc.is_in(pa.array(values.astype(str)), value_set=pa.array(candidates.astype(str)))
    return pd.Series(found.to_numpy(zero_copy_only=False), index=values.index)


def _problems(raw: pd.DataFrame, sessions: pd.DataFrame) -> pd.DataFrame:
    """One (field, kind, reason) per row that cannot be a clean event; NaN for good rows."""
    out = pd.DataFrame(index=raw.index, columns=["field", "kind", "reason"], dtype=object)

    def flag(mask: pd.Series, field: str, kind: str, reason: str) -> None:
        new = mask.fillna(False).astype(bool) & out["reason"].isna()
        out.loc[new, ["field", "kind", "reason"]] = [field, kind, reason]

    ts = pd.to_datetime(raw["ts"], format="ISO8601", utc=True, errors="coerce")
    flag(raw["event_id"].isna(), "event_id", "value", "no event_id")
    flag(ts.isna(), "ts", "value", "ts unparseable or without offset")
    flag(~raw["type"].isin(EVENT_TYPES), "type", "value", "unknown event type")
    flag(raw["viewer_id"].isna() | (raw["viewer_id"] == ""), "viewer_id", "value", "no viewer_id")
    flag(
        raw["type"].isin(SKU_EVENTS) & raw["sku"].isna(),
        "sku",
        "value",
        "product event without sku",
    )
    key = raw["platform"].astype(str) + ":" + raw["session_id"].astype(str)
    known = sessions.set_index("session_key")
    start = pd.to_datetime(key.map(known["start_time"]))
    end = pd.to_datetime(key.map(known["end_time"]))
    flag(start.isna(), "session_id", "reference", "event of a session unknown by its folder's date")
    when = ts.dt.tz_localize(None)
    outside = (when < start - WINDOW_SLACK) | (end.notna() & (when > end + WINDOW_SLACK))
    flag(
        outside, "ts", "rule", "out of its session's window (more than 10 minutes before or after)"
    )
    raw["ts_utc"] = when
    return out


def _shape(rows: pd.DataFrame, secret: str) -> pd.DataFrame:
    """Compact clean events: UTC times, local event dates, pseudonyms, categorical codes."""
    ts = rows["ts_utc"].astype("datetime64[ms]")
    keys = pd.Series(index=rows.index, dtype="str")
    for platform, group in rows.groupby("platform"):
        keys[group.index] = viewer_keys(platform, group["viewer_id"], secret)
    out = pd.DataFrame(
        {
            "event_id": rows["event_id"].astype("str"),
            "ts": ts,
            "event_date": (ts + pd.Timedelta(hours=8)).dt.date,
            "platform": rows["platform"],
            "session_key": rows["platform"] + ":" + rows["session_id"],
            "viewer_key": keys,
            "type": rows["type"],
            "sku": rows["sku"],
            "client_os": rows["client_os"],
            "app_version": rows["app_version"],
            "text": rows["text"],
            "source_file": rows["source_file"],
            "source_line": rows["source_line"].astype("int64"),
        }
    )
    for column in CATEGORICAL:
        out[column] = out[column].astype("category")
    return out.reset_index(drop=True)
