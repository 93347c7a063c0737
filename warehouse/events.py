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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

from contract import layout
from contract.enums import EVENT_TYPES
from contract.layout import LandingNotReady, not_ready
from contract.localtime import local_day
from warehouse import door
from warehouse.ingest import as_quarantine, viewer_keys
from warehouse.records import scrub_personal
from warehouse.settings import first_partition_date

SKU_EVENTS = ("product_click", "add_to_cart")
WINDOW_SLACK = pd.Timedelta(minutes=10)
LATE_FOLDERS = 2  # an event arrives in its date's folder or up to two days later
# The sessions that can own events of a folder started at most this many days before it (the
# events' lateness, and two days for a session's own length across midnights).
SESSIONS_REACH_DAYS = LATE_FOLDERS + 2
BATCH_ROWS = 1_000_000  # raw lines checked at once: bounds memory on a big day
FIELDS = ("event_id", "ts", "platform", "session_id", "viewer_id", "type", "sku", "text")
CATEGORICAL = ("platform", "session_key", "viewer_key", "type", "sku", "client_os", "app_version")
# Each field's kind at the door (contract.dialects.Field.kind; door.normalise_field).
# The client fields are stored as sent (no rule reads them).
FIELD_KINDS = {
    "event_id": "id", "ts": "value", "platform": "value", "session_id": "id",
    "viewer_id": "id", "type": "value", "sku": "id", "text": "text",
}  # fmt: skip
EVENT_COLUMNS = ["event_id", "ts", "event_date", *CATEGORICAL, "text", "source_file", "source_line"]


@dataclass
class EventBatch:
    rows: pd.DataFrame  # EVENT_COLUMNS
    quarantine: pd.DataFrame
    ledger: pd.DataFrame  # per part file: raw, clean, duplicates, quarantined
    failed: dict[str, str]  # platform -> why its parts of the folder cannot be read


def event_parts(landing_root: Path | str, day: dt.date, platforms: Iterable[str]) -> list[Path]:
    """The part files of `platforms` in the events folder of `day` (`<platform>-<NNN>.jsonl.gz`).

    Raises LandingNotReady when the folder has no `_SUCCESS`: incomplete, not "no events"."""
    problem = not_ready(landing_root, "events", day)
    if problem:
        raise LandingNotReady(problem)
    wanted = set(platforms)
    return sorted(
        p
        for p in layout.folder(landing_root, "events", day).glob("*.jsonl.gz")
        if part_platform(p.name) in wanted
    )


def part_platform(name: str) -> str:
    """`jd-003.jsonl.gz` -> `jd`: the platform a part file holds."""
    return name.split("/")[-1].rsplit("-", 1)[0]


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
        table.validate(full=True)  # bytes that are not UTF-8: read line by line instead
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

    def broken(line: int, why: str, text: str) -> None:
        masked = json.dumps({"text": scrub_personal(text[:300])}, ensure_ascii=False)
        bad.append((line, None, "format", why[:200], masked))

    with gzip.open(path, "rb") as fh:  # binary: records end at b"\n" only
        for line, data in enumerate(fh, start=1):
            if not data.strip():
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                broken(line, "bytes that are not UTF-8", data.decode("utf-8", errors="replace"))
                continue
            try:
                obj = json.loads(text.lstrip("\ufeff"))  # a byte-order mark is ignored
                client = obj.get("client") or {}
                values = [None if obj.get(f) is None else str(obj.get(f)) for f in FIELDS]
                if door.lone_surrogate(values):
                    raise ValueError("half an emoji (a lone surrogate) that UTF-8 cannot hold")
                good.append([line, *values, client.get("os"), client.get("app_version")])
            except (ValueError, AttributeError, RecursionError) as exc:
                broken(line, f"malformed JSON line: {exc}", text)
    frame = pd.DataFrame(good, columns=["line", *FIELDS, "client_os", "app_version"])
    return frame, pd.DataFrame(bad, columns=["line", "field", "kind", "reason", "raw"])


def clean_event_folder(
    landing_root: Path | str,
    day: dt.date,
    sessions: pd.DataFrame,
    earlier_event_ids: pd.Series,
    secret: str,
    run_id: str,
    platforms: Iterable[str],
) -> EventBatch:
    """Clean the parts of `platforms` in one events folder. `sessions`: session_key,
    start_time, end_time as known by `day`; `earlier_event_ids`: ids already landed in the
    folders before it (a redelivery is a duplicate, not a new event). Parts are checked and
    shaped one at a time, so memory holds the folder's compact clean rows, never all its raw
    lines. The ledger and quarantine rows carry the platform of their part file. A part that
    cannot be read (a truncated gzip, not JSON Lines at all) fails its platform's events of the
    folder: none of that platform's parts is kept, and `failed` says why.

    Raises LandingNotReady when the folder has not landed completely."""
    shaped, quarantined, files, failed = [], [], [], {}
    digests: dict[str, str] = {}  # viewer pseudonyms, computed once per folder
    normalised: list[pd.DataFrame] = []  # values normalised at the door, per part file
    pending: list[pd.DataFrame] = []  # small parts are checked together: less overhead

    def check(batch: list[pd.DataFrame]) -> None:
        raw = pd.concat(batch, ignore_index=True)
        batch.clear()
        problems, counts = _problems(raw, sessions, day)
        if counts.to_numpy().any():
            normalised.append(counts.groupby(raw["source_file"].to_numpy()).sum())
        quarantined.extend(_quarantine(raw, problems))
        shaped.append(_shape(raw[problems["reason"].isna()], secret, digests))

    for path in event_parts(landing_root, day, platforms):
        source = f"events/{day.isoformat()}/{path.name}"
        if part_platform(path.name) in failed:
            continue
        try:
            raw, unreadable = read_part(path)
        except Exception as exc:  # a part that cannot be read fails its platform, not the step
            failed[part_platform(path.name)] = f"{source} cannot be read: {exc}"
            continue
        files.append({"source_file": source, "raw_rows": len(raw) + len(unreadable)})
        quarantined.append(
            unreadable.rename(columns={"line": "source_line"}).assign(
                export_date=day, platform="unknown", source_file=source
            )
        )
        pending.append(
            raw.rename(columns={"line": "source_line"}).assign(export_date=day, source_file=source)
        )
        if sum(len(p) for p in pending) >= BATCH_ROWS:
            check(pending)
    if pending:
        check(pending)
    rows = (
        _stack(shaped)
        if shaped
        else _shape(
            pd.DataFrame(
                columns=[
                    *FIELDS,
                    "client_os",
                    "app_version",
                    "ts_utc",
                    "source_file",
                    "source_line",
                ]
            ),
            secret,
            digests,
        )
    )
    again = rows["event_id"].duplicated(keep="first").to_numpy()
    rows, conflicted, again = _conflicts(rows, again)
    quarantined.append(
        as_quarantine(
            conflicted.assign(export_date=day),
            "event_id",
            "conflict",
            "conflict: the same event_id on several lines of the part with different values",
        )
    )
    # The first delivery wins; later ones, here or already landed earlier, are duplicates.
    repeat = again | _is_in(rows["event_id"], earlier_event_ids).to_numpy()
    duplicate_files = rows.loc[repeat, "source_file"].value_counts()
    rows = rows[~repeat].reset_index(drop=True)
    for column in CATEGORICAL:
        rows[column] = rows[column].astype("category")
    rows.insert(2, "event_date", local_dates(rows["ts"]))
    # A folder with no part of these platforms is a day without events, not an error.
    columns = ["export_date", "platform", "source_file", "source_line", "field", "kind"]
    quarantine = pd.concat(
        [pd.DataFrame(columns=[*columns, "reason", "raw"]), *quarantined], ignore_index=True
    ).assign(table_name="events", run_id=run_id)
    quarantine["platform"] = quarantine["source_file"].map(part_platform)
    ledger = pd.DataFrame(files, columns=["source_file", "raw_rows"]).assign(
        export_date=day, table_name="events", extra_columns="", run_id=run_id
    )
    ledger["platform"] = ledger["source_file"].map(part_platform)
    conflict = quarantine["kind"] == "conflict"
    door_counts = (
        pd.concat(normalised).groupby(level=0).sum()
        if normalised
        else pd.DataFrame(columns=list(door.NORMALISED_KINDS.values()))
    )
    per_file = {
        "clean_rows": rows["source_file"].value_counts(),
        "duplicate_rows": duplicate_files,
        "quarantined_rows": quarantine.loc[~conflict, "source_file"].value_counts(),
        door.CONFLICT_ROWS: quarantine.loc[conflict, "source_file"].value_counts(),
        door.REPEATED_HEADERS: pd.Series(dtype="int64"),  # JSON Lines have no header
        **door_counts.to_dict("series"),
    }
    for column, counts in per_file.items():
        ledger[column] = ledger["source_file"].map(counts).fillna(0).astype(int)
    if failed:  # parts of a failed platform read before the bad one are not kept either
        rows, quarantine, ledger = (
            frame[~frame["source_file"].map(part_platform).isin(failed)].reset_index(drop=True)
            for frame in (rows, quarantine, ledger)
        )
    return EventBatch(rows, quarantine, ledger, failed)


def _conflicts(
    rows: pd.DataFrame, again: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Split off the lines of one part that share an event_id with different values: "the same
    event_id always carries the same event", so such lines are a conflict, every one of them
    quarantined (landing-zone.md). `again` marks the repeats of an event_id in the folder: only
    those ids are compared. Returns the rows kept, the conflicting lines, and `again` for the
    rows kept."""
    if not again.any():
        return rows, rows.iloc[0:0], again
    shared = _is_in(rows["event_id"], rows["event_id"][again]).to_numpy()
    candidates = rows[shared]
    values = [c for c in candidates.columns if c not in ("source_file", "source_line")]
    clash = door.conflicts(candidates, ["source_file", "event_id"], values)
    if not clash.any():
        return rows, rows.iloc[0:0], again
    out = np.zeros(len(rows), dtype=bool)
    out[np.flatnonzero(shared)[clash.to_numpy()]] = True
    kept = rows[~out].reset_index(drop=True)
    return kept, rows[out], kept["event_id"].duplicated(keep="first").to_numpy()


def local_dates(ts: pd.Series) -> pd.Categorical:
    """The China-time calendar date of each UTC time, as a categorical of `datetime.date`
    (a folder spans a few dates: no need for millions of date objects)."""
    days = local_day(ts)
    codes, uniques = pd.factorize(days)
    return pd.Categorical.from_codes(codes, categories=[d.date() for d in uniques])


def _quarantine(raw: pd.DataFrame, problems: pd.DataFrame) -> list[pd.DataFrame]:
    """The rejected lines in the quarantine's shape; never the raw platform viewer id."""
    bad = raw[problems["reason"].notna()].drop(columns="ts_utc")
    bad = bad.assign(
        viewer_id=bad["viewer_id"].where(bad["viewer_id"].isna(), "***"),
        platform=bad["platform"].fillna("unknown"),
    )
    if bad.empty:
        return []
    reasons = problems.loc[bad.index]
    return [
        as_quarantine(
            group, reasons.loc[group.index, "field"], kind, reasons.loc[group.index, "reason"]
        )
        for kind, group in bad.groupby(reasons["kind"])
    ]


def _is_in(values: pd.Series, candidates: pd.Series) -> pd.Series:
    """Membership test of strings in C (pandas' own isin on arrow strings loops in Python)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if candidates.empty or values.empty:
        return pd.Series(False, index=values.index)
    found = pc.is_in(pa.array(values.astype(str)), value_set=pa.array(candidates.astype(str)))
    return pd.Series(found.to_numpy(zero_copy_only=False), index=values.index)


def _problems(
    raw: pd.DataFrame, sessions: pd.DataFrame, day: dt.date
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One (field, kind, reason) per row that cannot be a clean event (NaN for good rows), and
    per row the values normalised at the door by ledger column. `raw`'s fields are replaced by
    their normalised text."""
    out = pd.DataFrame(index=raw.index, columns=["field", "kind", "reason"], dtype=object)

    def flag(mask: pd.Series, field: str, kind: str, reason: str | pd.Series) -> None:
        new = mask.fillna(False).astype(bool) & out["reason"].isna()
        if isinstance(reason, pd.Series):
            out.loc[new, ["field", "kind"]] = [field, kind]
            out.loc[new, "reason"] = reason[new]
        else:
            out.loc[new, ["field", "kind", "reason"]] = [field, kind, reason]

    counts = {k: np.zeros(len(raw), dtype=np.int64) for k in door.NORMALISED_KINDS}
    for name, kind in FIELD_KINDS.items():
        text = raw[name] if raw[name].dtype == "str" else raw[name].astype("str")
        damage = door.normalise_field(text, name, kind)
        if damage.text is not raw[name]:
            raw[name] = damage.text
        for k, c in damage.counts.items():
            counts[k] += c
        if damage.problem is not None:
            problem = pd.Series(damage.problem, index=raw.index)
            flag(problem.notna(), name, "value", problem)

    ts = pd.to_datetime(raw["ts"], format="ISO8601", utc=True, errors="coerce")
    # `utc=True` would read a time without offset as UTC: eight hours off (landing-zone.md,
    # "Damage that real exports carry": quarantined as without offset, never read as UTC).
    offset = raw["ts"].astype("str").str.contains(door.OFFSET, regex=True)
    blank = {
        n: raw[n].isna() | (raw[n].str.strip() == "") for n in ("event_id", "viewer_id", "sku")
    }
    flag(blank["event_id"], "event_id", "value", "no event_id")
    flag(ts.notna() & ~offset, "ts", "value", "ts without offset")
    flag(ts.isna(), "ts", "value", "ts unparseable")
    odd = door.implausible_times(ts.dt.tz_localize(None), day, first_partition_date())
    if odd.any():  # the reason names the value: built for the few rows that need it
        named = "ts implausible: " + raw.loc[odd, "ts"].astype("str").str[:40]
        flag(odd, "ts", "value", named.reindex(raw.index))
    flag(~raw["type"].isin(EVENT_TYPES), "type", "value", "unknown event type")
    flag(blank["viewer_id"], "viewer_id", "value", "no viewer_id")
    flag(
        raw["type"].isin(SKU_EVENTS) & blank["sku"],
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
    normalised = pd.DataFrame({door.NORMALISED_KINDS[k]: c for k, c in counts.items()})
    return out, normalised


def _shape(rows: pd.DataFrame, secret: str, digests: dict[str, str]) -> pd.DataFrame:
    """Compact clean events: UTC times, local event dates, pseudonyms; the `CATEGORICAL`
    columns as categories already (a big day's millions of rows hold each session key and
    pseudonym once, not once per event), joined across batches by `_stack`."""
    ts = pd.to_datetime(rows["ts_utc"]).astype("datetime64[ms]")
    ids = rows["platform"].astype(str) + ":" + rows["viewer_id"].astype(str)
    id_codes, distinct = pd.factorize(ids)
    missing = [i for i in distinct if i not in digests]
    if missing:
        missing_ids = pd.Series(missing)
        platform, viewer = (
            missing_ids.str.split(":", n=1, expand=True)[0],
            missing_ids.str.split(":", n=1, expand=True)[1],
        )
        for p in platform.unique():
            sel = platform == p
            digests.update(zip(missing_ids[sel], viewer_keys(p, viewer[sel], secret), strict=True))
    keys = pd.Index([digests[i] for i in distinct], dtype="str")
    return pd.DataFrame(
        {
            "event_id": rows["event_id"].astype("str"),
            "ts": ts,
            "platform": _categories(rows["platform"]),
            "session_key": _categories(rows["platform"] + ":" + rows["session_id"]),
            "viewer_key": pd.Categorical.from_codes(id_codes, categories=keys),
            "type": _categories(rows["type"]),
            "sku": _categories(rows["sku"]),
            "client_os": _categories(rows["client_os"]),
            "app_version": _categories(rows["app_version"]),
            "text": rows["text"].astype("str"),
            "source_file": rows["source_file"].astype("str"),
            "source_line": rows["source_line"].astype("int64"),
        }
    ).reset_index(drop=True)


def _categories(values: pd.Series) -> pd.Categorical:
    codes, uniques = pd.factorize(values.astype("str"))
    return pd.Categorical.from_codes(codes, categories=uniques)


def _stack(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """`pd.concat` of `_shape`'s batches, a column at a time, categories unioned and sorted
    as `astype("category")` sorts them (a plain concat of categoricals with different
    categories would turn them back into millions of strings). Empties `frames`."""
    columns = {}
    for name in frames[0].columns:
        parts = [frame[name] for frame in frames]
        if isinstance(parts[0].dtype, pd.CategoricalDtype):
            columns[name] = pd.Series(union_categoricals(parts, sort_categories=True))
        else:
            columns[name] = pd.concat(parts, ignore_index=True)
    frames.clear()
    return pd.DataFrame(columns)
