"""The `model_registry` table: register a model, judge it, promote it, find the one in service.

The model in service on a date D is the last one promoted on a date before D: a model trained
with the data of D serves from D+1, so what a run serves never depends on the order of steps
inside it, and a re-run of an old date serves what that date served.
"""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
from sqlalchemy import Engine, and_, select, update

from warehouse.schema import model_registry as registry
from warehouse.store import read_frame, write_partition


def register(
    engine: Engine,
    card_fields: dict,
    gate_metric: str,
    artifact_path: str,
    run_id: str,
) -> None:
    """Insert a trained model as a candidate. A re-run trains the same version (same data, same
    model): its row is replaced but keeps its verdict and promotion."""
    known = read_frame(
        engine,
        "SELECT status, decision, promoted_on FROM model_registry "
        "WHERE model_name = :name AND version = :version",
        {"name": card_fields["name"], "version": card_fields["version"]},
    )
    kept = known.iloc[0].to_dict() if len(known) else {}
    row = pd.DataFrame(
        [
            {
                "model_name": card_fields["name"],
                "version": card_fields["version"],
                "trained_for": card_fields["trained_for"],
                "train_first": card_fields["train_first"],
                "train_last": card_fields["train_last"],
                "features": json.dumps(card_fields["features"]),
                "params": json.dumps(card_fields["params"], sort_keys=True, default=str),
                "data_fingerprint": card_fields["data_fingerprint"],
                "metrics": json.dumps(card_fields["metrics"], sort_keys=True, default=str),
                "gate_metric": gate_metric,
                "gate_value": card_fields["metrics"].get(gate_metric),
                "status": kept.get("status", "candidate"),
                "decision": kept.get("decision"),
                "promoted_on": kept.get("promoted_on"),
                "artifact_path": artifact_path,
                "created_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
                "run_id": run_id,
            }
        ]
    )
    write_partition(
        engine, registry, row, "version", [card_fields["version"]],
        scope={"model_name": card_fields["name"]},
    )  # fmt: skip


def champion_before(engine: Engine, name: str, day: dt.date) -> pd.Series | None:
    """The model in service on `day`: the last promoted on a date before it (None if none)."""
    rows = read_frame(
        engine,
        "SELECT * FROM model_registry WHERE model_name = :name AND promoted_on < :day "
        "ORDER BY promoted_on DESC, version DESC",
        {"name": name, "day": day.isoformat()},
    )
    return None if rows.empty else rows.iloc[0]


def judge(engine: Engine, name: str, version: str, promote: bool, why: str) -> None:
    """Record the gate's verdict on a model: a rejected one that never served is `rejected`; one
    that passes stays a candidate until promoted (`promote`)."""
    this = and_(registry.c.model_name == name, registry.c.version == version)
    with engine.begin() as conn:
        conn.execute(update(registry).where(this).values(decision=why))
        if promote:
            rejected = and_(this, registry.c.status == "rejected")
            conn.execute(update(registry).where(rejected).values(status="candidate"))
        else:
            unused = and_(this, registry.c.promoted_on.is_(None))
            conn.execute(update(registry).where(unused).values(status="rejected"))


def promote(engine: Engine, name: str, version: str, day: dt.date) -> None:
    """Put `version` in service from the day after `day`. The champion is the model promoted
    last; the others promoted before are retired (a re-run of an old date keeps that order)."""
    this = and_(registry.c.model_name == name, registry.c.version == version)
    promoted = and_(registry.c.model_name == name, registry.c.promoted_on.is_not(None))
    with engine.begin() as conn:
        conn.execute(update(registry).where(this).values(promoted_on=day))
        last = conn.execute(
            select(registry.c.version)
            .where(promoted)
            .order_by(registry.c.promoted_on.desc(), registry.c.version.desc())
            .limit(1)
        ).scalar_one()
        conn.execute(update(registry).where(promoted).values(status="retired"))
        conn.execute(
            update(registry)
            .where(and_(registry.c.model_name == name, registry.c.version == last))
            .values(status="champion")
        )


def models(engine: Engine, name: str) -> pd.DataFrame:
    return read_frame(
        engine,
        select(registry).where(registry.c.model_name == name).order_by(registry.c.trained_for),
    )
