"""The ingest ledger's identity, checked against what was really stored (landing-zone.md,
"every file accounted for"): per source file, raw = clean + duplicates + conflicts +
quarantined, the clean count is the rows in the clean table (or the events' Parquet), and the
quarantined and conflicting rows are the rows in `ops_quarantine`."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Engine

from warehouse.store import read_frame

REPORT_COLUMNS = [
    "raw", "clean", "duplicates", "quarantined", "conflicts", "clean_stored", "in_quarantine",
]  # fmt: skip


def stored_per_file(engine: Engine, clean_table: str, first: dt.date, last: dt.date) -> pd.Series:
    """Clean rows per `source_file` of the exports dated `first` … `last` in `clean_table`."""
    return read_frame(
        engine,
        f"SELECT source_file, COUNT(*) AS n FROM {clean_table} "
        "WHERE export_date BETWEEN :first AND :last GROUP BY source_file",
        {"first": first, "last": last},
    ).set_index("source_file")["n"]


def ledger_report(
    engine: Engine, table: str, first: dt.date, last: dt.date, stored: pd.Series
) -> pd.DataFrame:
    """One row per source file of `table` (the ledger's name: `orders`, `events`, …) exported
    `first` … `last`: the ledger's counts beside the rows stored (`stored`: clean rows per
    file) and quarantined, and `adds_up` (bool). Indexed by file; a file known to only one side
    has zeros or NaN on the other and does not add up."""
    params = {"table": table, "first": first, "last": last}
    ledger = read_frame(
        engine,
        "SELECT * FROM ops_ingest_ledger "
        "WHERE table_name = :table AND export_date BETWEEN :first AND :last",
        params,
    ).set_index("source_file")
    quarantined = read_frame(
        engine,
        "SELECT source_file, COUNT(*) AS n FROM ops_quarantine WHERE table_name = :table "
        "AND export_date BETWEEN :first AND :last GROUP BY source_file",
        params,
    ).set_index("source_file")["n"]
    files = ledger.index.union(stored.index).union(quarantined.index)
    ledger = ledger.reindex(files)
    report = pd.DataFrame(
        {
            "raw": ledger["raw_rows"],
            "clean": ledger["clean_rows"],
            "duplicates": ledger["duplicate_rows"],
            "quarantined": ledger["quarantined_rows"],
            "conflicts": ledger["conflict_rows"],
            "clean_stored": stored.reindex(files).fillna(0).astype(int),
            "in_quarantine": quarantined.reindex(files).fillna(0).astype(int),
        }
    )[REPORT_COLUMNS]
    identity = report["raw"] == (
        report["clean"] + report["duplicates"] + report["conflicts"] + report["quarantined"]
    )
    stored_ok = report["clean"] == report["clean_stored"]
    quarantine_ok = report["quarantined"] + report["conflicts"] == report["in_quarantine"]
    return report.assign(adds_up=identity & stored_ok & quarantine_ok)
