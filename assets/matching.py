"""Which plan each session came from (`clean/session_plans`), restated as exports arrive."""

import dagster as dg
import pandas as pd

from assets.metadata import table_metadata
from assets.partitions import partition_label
from assets.publishing import Units, dated_asset
from assets.resources import Warehouse
from warehouse.matching import match_window, matched_plans
from warehouse.schema import clean_session_plans
from warehouse.store import replace_newer


@dated_asset(
    per_platform=True,
    cascade=True,
    key=["clean", "session_plans"],
    group_name="clean",
    deps=[dg.AssetKey(["clean", "sessions"]), dg.AssetKey(["clean", "plans"])],
    kinds={"python", "sql"},
    description=(
        "`clean_session_plans`: the plan each real session was matched to by the contract's rule "
        "(same platform and room, the plan's last snapshot before the start, at most three hours "
        "away, one to one, closest first), null when none; the unmatched on both sides are counted."
    ),
)
def session_plans(
    context: dg.AssetExecutionContext, units: Units, warehouse: Warehouse
) -> dg.MaterializeResult:
    engine = warehouse.get_engine()
    found, written, planned = [], 0, set()
    for days, platforms in units.windows():
        matches, plans = match_window(engine, days[0], days[-1], platforms)
        matches = matches.assign(run_id=context.run.run_id)
        written += replace_newer(
            engine, clean_session_plans, matches, ["session_key"], "as_of_date"
        )
        found.append(matches)
        planned |= plans
    matched = matched_plans(engine)["plan_id"]
    unmatched_plans = sorted(planned - set(matched))
    matches = pd.concat(found, ignore_index=True) if found else pd.DataFrame()
    return dg.MaterializeResult(
        metadata={
            **table_metadata(clean_session_plans, matches, partition_label(units.days)),
            "rows_written": written,
            "sessions_matched": int(matches["plan_id"].notna().sum()) if len(matches) else 0,
            "sessions_unmatched": int(matches["plan_id"].isna().sum()) if len(matches) else 0,
            "plans_unmatched": len(unmatched_plans),
            "unmatched_plan_examples": ", ".join(unmatched_plans[:10]) or "none",
        }
    )
