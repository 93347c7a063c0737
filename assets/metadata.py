"""Metadata every materialization reports: row count, column schema, a small preview."""

from __future__ import annotations

import base64

import dagster as dg
import pandas as pd
from sqlalchemy import Table

from warehouse import door


def column_schema(table: Table) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                c.name, str(c.type), constraints=dg.TableColumnConstraints(nullable=c.nullable)
            )
            for c in table.columns
        ]
    )


def preview(df: pd.DataFrame, rows: int = 5) -> dg.MetadataValue:
    if df.empty:
        return dg.MetadataValue.md("_no rows_")
    return dg.MetadataValue.md(df.head(rows).astype(str).to_markdown(index=False))


def counts_table(counts: pd.Series, label: str, value: str = "rows") -> dg.MetadataValue:
    """A small markdown table of counts (e.g. quarantined rows by reason)."""
    if counts.empty:
        return dg.MetadataValue.md("_none_")
    frame = counts.rename(value).rename_axis(label).reset_index()
    return dg.MetadataValue.md(frame.to_markdown(index=False))


DOOR_COLUMNS = [door.CONFLICT_ROWS, *door.NORMALISED_KINDS.values(), door.REPEATED_HEADERS]


def door_metadata(ledgers: list[pd.DataFrame]) -> dict[str, object]:
    """What the door did to the files read (ops_ingest_ledger columns): lines in conflict, and
    values normalised by kind (warehouse/door.py)."""
    totals = pd.concat(ledgers)[DOOR_COLUMNS].sum() if ledgers else pd.Series(0, DOOR_COLUMNS)
    return {
        "conflict_rows": int(totals["conflict_rows"]),
        "normalised_at_the_door": counts_table(
            totals.drop("conflict_rows")[lambda t: t > 0].astype(int), "kind", "values"
        ),
    }


def table_metadata(table: Table, df: pd.DataFrame, partition: str) -> dict[str, object]:
    return {
        "dagster/row_count": len(df),
        "dagster/column_schema": column_schema(table),
        "partition": partition,
        "table": table.name,
        "preview": preview(df),
    }


def image(png: bytes, alt: str) -> dg.MetadataValue:
    """A PNG shown inline in the UI (markdown with a data URI)."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def frame_md(df: pd.DataFrame) -> dg.MetadataValue:
    return dg.MetadataValue.md(df.to_markdown(index=False) if len(df) else "_none_")
