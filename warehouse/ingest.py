"""From one landed platform export to clean rows, quarantined rows and a ledger line.

Pure functions over files and DataFrames: the Dagster assets call them and write the result.
Every raw row ends in exactly one place: a clean row, a duplicate of a clean row, or quarantine.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from contract.dialects import BRAND_FILES, DIALECTS, LOGICAL_FIELDS
from contract.layout import not_ready
from warehouse import door
from warehouse.parsing import type_rows
from warehouse.records import SchemaDriftError, UnreadableFile, read_raw
from warehouse.schema import CLEAN_KEYS, metadata
from warehouse.settings import first_partition_date

# Landing table name -> clean table name, and the key that identifies a row within a platform.
CLEAN_TABLE = {
    "products": "clean_products",
    "planned_sessions": "clean_plans",
    "planned_lineup": "clean_plan_lineups",
    "sessions": "clean_sessions",
    "lineup": "clean_lineups",
    "orders": "clean_orders",
    "refunds": "clean_refunds",
}

# A file with more than this share of its records (and more than a handful) broken in the file
# itself is mostly garbage, a broken export rather than a few bad rows: its platform-date fails
# at the door. Below it every bad row is quarantined alone (landing-zone.md).
MAX_BROKEN_SHARE = 0.5
MAX_BROKEN_FLOOR = 5

TEST_TITLE_PATTERN = r"(?i)测试|test"
TEST_MIN_SECONDS = 300


@dataclass
class CleanBatch:
    """What some exports became: clean rows, quarantined rows, and per file the ledger line
    that adds them up (raw = clean + duplicates + conflicts + quarantined)."""

    table: str
    rows: pd.DataFrame
    quarantine: pd.DataFrame
    ledger: pd.DataFrame


def viewer_keys(platform: str, viewer_ids: pd.Series, secret: str) -> pd.Series:
    """viewer_key = hex HMAC-SHA256(secret, "<platform>:<viewer_id>"), computed once per id."""
    key = secret.encode("utf-8")
    unique = viewer_ids.dropna().unique()
    digest = {
        v: hmac.new(key, f"{platform}:{v}".encode(), hashlib.sha256).hexdigest() for v in unique
    }
    return viewer_ids.map(digest).astype("str")


def is_test_session(rows: pd.DataFrame) -> pd.Series:
    """The contract's test-session rule, judged on the row itself (the latest export wins)."""
    # Read as NFKC: a full-width ＴＥＳＴ is "TEST" (landing-zone.md, "Unicode variants").
    title = rows["title"].fillna("").str.normalize("NFKC")
    titled = title.str.contains(TEST_TITLE_PATTERN, regex=True)
    seconds = (rows["end_time"] - rows["start_time"]).dt.total_seconds()
    too_short = seconds.notna() & (seconds < TEST_MIN_SECONDS)
    no_viewers = rows["viewers"] == 0
    return (titled | too_short | no_viewers).astype(bool)


def clean_platform_exports(
    landing_root: Path | str,
    platform: str,
    table: str,
    export_dates: list[dt.date],
    secret: str,
    run_id: str,
) -> tuple[CleanBatch, dict[dt.date, str]]:
    """Read one platform's exports of `table` for some dates: typed, keyed, pseudonymised and
    deduplicated rows, the quarantined rows, and one ledger line per file; and, per date that
    cannot be read, why (no `_SUCCESS`, the file missing, a required column missing, a file that
    cannot be decoded): that platform-date fails and contributes no rows."""
    name = DIALECTS[platform].file_name(table)
    sources = {day: f"{platform}/{day.isoformat()}/{name}" for day in export_dates}
    files, failures = _landed(landing_root, sources)
    batch, unreadable = _clean_files(landing_root, files, platform, table, secret, run_id)
    return batch, {**failures, **unreadable}


def _landed(
    landing_root: Path | str, sources: dict[dt.date, str]
) -> tuple[list[tuple[dt.date, str]], dict[dt.date, str]]:
    """The (date, file) pairs that can be read, and per other date why not: its folder has no
    `_SUCCESS`, or the file is missing from the landed folder (every listed file is due)."""
    files, failures = [], {}
    for day, source in sources.items():
        kind = source.split("/")[0]
        problem = not_ready(landing_root, kind, day)
        if problem is None and not (Path(landing_root) / source).exists():
            problem = f"{source} is missing from its landed folder"
        if problem:
            failures[day] = problem
        else:
            files.append((day, source))
    return files, failures


def clean_brand_files(
    landing_root: Path | str, table: str, dates: list[dt.date], run_id: str
) -> tuple[CleanBatch, dict[dt.date, str]]:
    """The brand's own files of some dates: the catalogue (`products`, written only on dates it
    changed, so most dates have none) or the plan (`planned_sessions`, `planned_lineup`, every
    date); and, per date that cannot be read, why (a folder without `_SUCCESS`, a missing plan
    folder or file, a missing column)."""
    pattern = BRAND_FILES[table]
    sources = {day: pattern.format(date=day.isoformat()) for day in dates}
    if table == "products":
        sources = {d: s for d, s in sources.items() if (Path(landing_root) / s).parent.exists()}
    files, failures = _landed(landing_root, sources)
    batch, unreadable = _clean_files(landing_root, files, "brand", table, "", run_id)
    return batch, {**failures, **unreadable}


def _clean_files(
    landing_root: Path | str,
    files: list[tuple[dt.date, str]],
    dialect: str,
    table: str,
    secret: str,
    run_id: str,
) -> tuple[CleanBatch, dict[dt.date, str]]:
    raws, unreadable, ledger_rows, failures = [], [], [], {}
    for day, source in files:
        path = Path(landing_root) / source
        try:
            raw = read_raw(path, dialect, table)
        except SchemaDriftError as exc:
            failures[day] = str(SchemaDriftError(source, exc.missing, exc.present))
            continue
        except UnreadableFile as exc:
            failures[day] = str(exc).replace(str(path), source)
            continue
        except Exception as exc:  # a file that cannot be read fails its date, never the step
            failures[day] = f"{source} cannot be read: {type(exc).__name__}: {exc}".replace(
                str(path), source
            )
            continue
        tag = {"export_date": day, "source_file": source}
        raws.append(raw.rows.assign(**tag))
        unreadable.append(raw.bad.assign(**tag))
        ledger_rows.append(
            {
                **tag,
                "raw_rows": len(raw.rows) + len(raw.bad),
                "extra_columns": ",".join(raw.extra_columns),
                door.REPEATED_HEADERS: raw.repeated_headers,
            }
        )
    fields = [f.name for f in LOGICAL_FIELDS[table]]
    empty = pd.DataFrame(columns=["line", *fields, "export_date", "source_file"])
    everything = pd.concat(raws, ignore_index=True) if raws else empty
    typed, bad, normalised = type_rows(everything, dialect, table, first_partition_date())
    rows = _shape(typed, dialect, table, secret).rename(columns={"line": "source_line"})
    rows["run_id"] = run_id
    unfit = door.beyond_columns(rows, metadata.tables[CLEAN_TABLE[table]])
    too_big = rows[unfit.notna()]
    rows = rows[unfit.isna()]
    # The same key twice in one file: the same values are a duplicate (one row is kept), other
    # values a conflict (every line of that key is quarantined: which one is true is unknown).
    key = [*CLEAN_KEYS[CLEAN_TABLE[table]], "source_file"]
    values = [c for c in rows.columns if c not in ("source_line", "run_id")]
    clash = door.conflicts(rows, key, values)
    conflicted = rows[clash]
    rows = rows[~clash]
    deduplicated = rows.drop_duplicates(subset=key, keep="last").reset_index(drop=True)
    quarantine = pd.concat(
        [
            *(frame.rename(columns={"line": "source_line"}) for frame in (*unreadable, bad)),
            as_quarantine(too_big, unfit.dropna().str.split(" ").str[0], "value", unfit.dropna()),
            as_quarantine(conflicted, key[-2], "conflict", _conflict_reasons(conflicted, key)),
        ],
        ignore_index=True,
    )
    quarantine = quarantine.assign(platform=dialect, table_name=table, run_id=run_id)
    ledger = pd.DataFrame(
        ledger_rows,
        columns=["export_date", "source_file", "raw_rows", "extra_columns", door.REPEATED_HEADERS],
    )
    ledger = ledger.assign(platform=dialect, table_name=table, run_id=run_id)
    in_quarantine = quarantine["kind"] != "conflict"
    per_file = {
        "clean_rows": deduplicated["source_file"].value_counts(),
        "duplicate_rows": rows["source_file"]
        .value_counts()
        .sub(deduplicated["source_file"].value_counts(), fill_value=0),
        "quarantined_rows": quarantine.loc[in_quarantine, "source_file"].value_counts(),
        door.CONFLICT_ROWS: conflicted["source_file"].value_counts(),
        **normalised.groupby(everything["source_file"].to_numpy()).sum().to_dict("series"),
    }
    for column, counts in per_file.items():
        ledger[column] = ledger["source_file"].map(counts).fillna(0).astype(int)
    broken = broken_files(ledger, quarantine)
    for source, reason in broken.items():
        failures[ledger.set_index("source_file").loc[source, "export_date"]] = reason
    keep = {
        name: frame[~frame["source_file"].isin(broken)]
        for name, frame in (("rows", deduplicated), ("quarantine", quarantine), ("ledger", ledger))
    }
    batch = CleanBatch(
        table,
        keep["rows"].reset_index(drop=True),
        keep["quarantine"].sort_values(["source_file", "source_line"], ignore_index=True),
        keep["ledger"].reset_index(drop=True),
    )
    return batch, failures


_NOT_IN_RAW = {"run_id", "source_file", "source_line", "export_date", "platform"}


def as_quarantine(
    rows: pd.DataFrame, field: str | pd.Series, kind: str, reason: str | pd.Series
) -> pd.DataFrame:
    """Clean rows (no personal data left) in the quarantine's shape; `field` and `reason` may
    differ per row (Series aligned to `rows`)."""
    raw = [
        json.dumps(
            {k: (None if pd.isna(v) else str(v)) for k, v in r.items() if k not in _NOT_IN_RAW},
            ensure_ascii=False,
        )
        for r in rows.to_dict("records")
    ]
    per_row = {
        name: value.to_numpy() if isinstance(value, pd.Series) else value
        for name, value in (("field", field), ("reason", reason))
    }
    return pd.DataFrame(
        {
            "export_date": rows["export_date"].to_numpy(),
            "platform": rows["platform"].to_numpy() if "platform" in rows else None,
            "source_file": rows["source_file"].to_numpy(),
            "source_line": rows["source_line"].to_numpy(),
            "field": per_row["field"],
            "kind": kind,
            "reason": per_row["reason"],
            "raw": raw,
        },
        index=range(len(rows)),
    )


def _conflict_reasons(conflicted: pd.DataFrame, key: list[str]) -> pd.Series:
    """Per conflicting row: "conflict: order_key on lines 2, 5 with different values"."""
    if conflicted.empty:
        return pd.Series(dtype=object)
    lines = conflicted.groupby(key, dropna=False)["source_line"].transform(
        lambda s: ", ".join(str(int(v)) for v in sorted(s))
    )
    return "conflict: " + key[-2] + " on lines " + lines + " with different values"


def broken_files(ledger: pd.DataFrame, quarantine: pd.DataFrame) -> dict[str, str]:
    """Files whose records are mostly broken in the file itself (`format`, `value` or
    `conflict` kinds: not the orphans of a quarantined parent), each with why in words."""
    own = quarantine[quarantine["kind"].isin(["format", "value", "conflict"])]
    counts = own["source_file"].value_counts()
    out = {}
    for source, raw in zip(ledger["source_file"], ledger["raw_rows"], strict=True):
        bad = int(counts.get(source, 0))
        if bad > max(MAX_BROKEN_FLOOR, MAX_BROKEN_SHARE * raw):
            top = own.loc[own["source_file"] == source, "reason"].str.replace(
                r":.*", "", regex=True
            )
            reasons = ", ".join(f"{r} ({n})" for r, n in top.value_counts().head(3).items())
            out[source] = (
                f"{source}: {bad} of {raw} records are broken ({reasons}): a broken export, "
                "not a few bad rows"
            )
    return out


def _shape(rows: pd.DataFrame, platform: str, table: str, secret: str) -> pd.DataFrame:
    """Logical typed columns -> the clean table's columns (keys, fen, no personal data)."""
    out = rows.copy()
    if table in BRAND_FILES:
        fen = {
            "list_price": "list_price_fen",
            "planned_price": "planned_price_fen",
            "coupon": "coupon_fen",
        }
        return out.rename(columns=fen)
    out.insert(0, "platform", platform)
    if "session_id" in out:
        out.insert(0, "session_key", platform + ":" + out["session_id"])
    if table == "sessions":
        out = out.rename(columns={"gmv": "gmv_fen"})
        out["is_test"] = is_test_session(out)
    elif table == "lineup":
        out = out.rename(
            columns={
                "live_price": "live_price_fen",
                "strike_price": "strike_price_fen",
                "coupon": "coupon_fen",
            }
        )
    elif table == "orders":
        out.insert(0, "order_key", platform + ":" + out["order_id"])
        out["viewer_key"] = viewer_keys(platform, out["buyer_id"], secret)
        out = out.drop(columns=["buyer_id", "phone", "address"])
        out = out.rename(columns={"unit_price": "unit_price_fen", "paid": "paid_fen"})
    elif table == "refunds":
        out.insert(0, "refund_key", platform + ":" + out["refund_id"])
        out["order_key"] = platform + ":" + out["order_id"]
        out = out.drop(columns=["order_id"]).rename(columns={"amount": "amount_fen"})
    return out


__all__ = [
    "CLEAN_TABLE",
    "CleanBatch",
    "SchemaDriftError",
    "clean_platform_exports",
    "viewer_keys",
]
