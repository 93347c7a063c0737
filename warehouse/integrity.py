"""Referential rules between clean tables: a row whose session, order or product is unknown
by its own export date goes to quarantine (an orphan), as do refunds that cannot be.

The rules are pure: the caller passes what the warehouse knew (`known_since`: key -> the first
export date that carried it) and gets the batch back with the offending rows moved.
"""

from __future__ import annotations

import pandas as pd

from contract.exports import latest_export
from warehouse.ingest import CleanBatch, as_quarantine


def _day(values: pd.Series) -> pd.Series:
    """Dates (objects, strings or timestamps) as one datetime dtype, comparable and mergeable."""
    return pd.to_datetime(values).astype("datetime64[us]")


def known_by_own_date(
    values: pd.Series, export_dates: pd.Series, known_since: pd.Series
) -> pd.Series:
    """True where the referenced key was in an export dated on or before the row's own."""
    first = _day(values.map(known_since))
    return (first <= _day(export_dates)).fillna(False).astype(bool)


def move_to_quarantine(
    batch: CleanBatch, bad: pd.Series, field: str, kind: str, reason: str
) -> CleanBatch:
    """Move the rows flagged by `bad` from the clean rows to the quarantine, keeping the ledger
    adding up (raw = clean + duplicates + conflicts + quarantined)."""
    bad = bad.fillna(False).astype(bool)
    if not bad.any():
        return batch
    moved = batch.rows[bad]
    quarantine = as_quarantine(moved, field, kind, reason).assign(
        table_name=batch.table, run_id=batch.rows["run_id"].iloc[0]
    )
    per_file = moved["source_file"].value_counts()
    ledger = batch.ledger.copy()
    counts = ledger["source_file"].map(per_file).fillna(0).astype(int)
    ledger["clean_rows"] -= counts
    ledger["quarantined_rows"] += counts
    return CleanBatch(
        batch.table,
        batch.rows[~bad].reset_index(drop=True),
        pd.concat([batch.quarantine, quarantine], ignore_index=True),
        ledger,
    )


def enforce_known(
    batch: CleanBatch, column: str, known_since: pd.Series, reason: str
) -> CleanBatch:
    """Quarantine rows whose `column` was unknown by their export date."""
    known = known_by_own_date(batch.rows[column], batch.rows["export_date"], known_since)
    return move_to_quarantine(batch, ~known, column, "reference", reason)


def enforce_refund_rules(
    batch: CleanBatch, order_states: pd.DataFrame, earlier_refunds: pd.DataFrame
) -> CleanBatch:
    """A refund of an unpaid line, or one that takes an order's refunds above its `paid`, is
    malformed (the contract). `order_states`: every clean row of the orders concerned
    (order_key, export_date, paid_at, paid_fen); `earlier_refunds`: their refunds already in the
    warehouse from exports before this batch (refund_key, order_key, export_date, amount_fen)."""
    rows = batch.rows
    if rows.empty:
        return batch
    states = order_states.sort_values("export_date")
    states = states.assign(export_date=_day(states["export_date"]))
    probe = rows[["refund_key", "order_key", "export_date"]].assign(
        export_date=_day(rows["export_date"]), position=range(len(rows))
    )
    # The order as it was known on the refund's own export date.
    asof = pd.merge_asof(
        probe.sort_values("export_date"),
        states,
        on="export_date",
        by="order_key",
        direction="backward",
    ).sort_values("position")
    unpaid = asof["paid_at"].isna().to_numpy()
    batch = move_to_quarantine(
        batch,
        pd.Series(unpaid, index=rows.index),
        "order_key",
        "rule",
        "refund of an unpaid order line",
    )
    rows = batch.rows
    if rows.empty:
        return batch
    history = pd.concat(
        [
            earlier_refunds[["refund_key", "order_key", "export_date", "amount_fen"]].assign(
                source_line=0, mine=False
            ),
            rows[["refund_key", "order_key", "export_date", "amount_fen", "source_line"]].assign(
                mine=True
            ),
        ],
        ignore_index=True,
    )
    history["export_date"] = _day(history["export_date"])
    history["amount_fen"] = history["amount_fen"].astype("int64")
    history = latest_export(history, "refund_key")
    history["refunded_so_far"] = history.groupby("order_key")["amount_fen"].cumsum()
    paid = states.drop_duplicates("order_key", keep="last").set_index("order_key")["paid_fen"]
    history["over"] = history["refunded_so_far"] > history["order_key"].map(paid)
    over_keys = set(history.loc[history["mine"] & history["over"], "refund_key"])
    return move_to_quarantine(
        batch,
        rows["refund_key"].isin(over_keys),
        "amount",
        "rule",
        "refunds above the order line's paid amount",
    )
