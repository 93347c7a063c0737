"""`make demo`: simulate the demo landing zone, run the asset graph over its whole window, and
print what a consumer would look at. Runs are recorded in the project's Dagster instance, so
`make ui` shows them."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import dagster as dg
import pandas as pd
from sqlalchemy import inspect

from orchestration.definitions import NIGHTLY_JOB
from simulator import PRESETS, simulate
from warehouse.schema import LAYERS
from warehouse.settings import data_dir, landing_dir, warehouse_url
from warehouse.store import make_engine, read_frame

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"

CONSUMER_QUERY = """SELECT platform, room_id, COUNT(*) AS sessions, ROUND(SUM(gmv), 2) AS gmv,
       ROUND(AVG(conversion), 4) AS conversion
FROM session_scorecard GROUP BY platform, room_id ORDER BY gmv DESC"""


def ensure_landing(preset_name: str, seed: int) -> Path:
    """Simulate the preset once; reuse it while the same preset and seed are on disk."""
    landing = landing_dir()
    out = landing.parent
    manifest = out / "truth" / "manifest.json"
    wanted = {"preset": preset_name, "seed": seed}
    if manifest.exists():
        found = json.loads(manifest.read_text())
        if found.get("preset") == preset_name and found.get("seed") == seed:
            print(f"landing zone: reusing {landing} ({found['events']:,} events)")
            return landing
    print(f"landing zone: simulating the '{preset_name}' preset into {landing} ...")
    summary = simulate(PRESETS[preset_name], out, seed=seed)
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, **wanted}, indent=2, ensure_ascii=False) + "\n")
    print(
        f"  {summary['sessions']:,} sessions, {summary['events']:,} events "
        f"in {summary['seconds']} s"
    )
    return landing


def run_window(first: str, last: str) -> dg.ExecuteInProcessResult:
    """One run over the whole window, as a backfill would launch it (single-run policy)."""
    from orchestration.definitions import defs

    job = defs.resolve_job_def(NIGHTLY_JOB)
    with dg.DagsterInstance.get() as instance:
        return job.execute_in_process(
            instance=instance,
            tags={RANGE_START: first, RANGE_END: last},
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
            raise_on_error=False,
        )


def check_summary(result: dg.ExecuteInProcessResult) -> str:
    """The quality gates' verdicts, as the data team sees them in the UI."""
    evaluations = result.get_asset_check_evaluations()
    lines = [f"\nQuality checks: {sum(e.passed for e in evaluations)}/{len(evaluations)} passed"]
    for e in sorted(
        evaluations, key=lambda e: (e.passed, e.asset_key.to_user_string(), e.check_name)
    ):
        if not e.passed:
            severity = e.severity.value if e.severity else ""
            text = (e.description or "").splitlines()[0][:140] if e.description else ""
            lines.append(f"  {severity:5s} {e.asset_key.to_user_string()}:{e.check_name}  {text}")
    return "\n".join(lines)


# Injected faults found by file and line in the quarantine, and where each should be.
ROW_FAULTS = {
    "malformed_row": "quarantine (format)",
    "bad_time": "quarantine (value)",
    "bad_amount": "quarantine (value)",
    "negative_value": "quarantine (value)",
    "unknown_sku": "quarantine (reference)",
    "orphan_order": "quarantine (reference)",
    "event_out_of_window": "quarantine (rule)",
    "event_unknown_type": "quarantine (value)",
    "event_no_viewer": "quarantine (value)",
}


def truth_reconciliation(url: str, truth: Path) -> str:
    """The simulator's confession against what the pipeline did with each injected fault."""
    faults = pd.read_csv(truth / "faults.csv")
    engine = make_engine(url)
    quarantined = read_frame(engine, "SELECT source_file, source_line FROM ops_quarantine")
    found = set(zip(quarantined["source_file"], quarantined["source_line"], strict=True))
    ledger = read_frame(
        engine, "SELECT table_name, SUM(duplicate_rows) AS n FROM ops_ingest_ledger GROUP BY 1"
    )
    duplicates = dict(zip(ledger["table_name"], ledger["n"], strict=True))
    lines = ["", "Injected faults (truth/faults.csv) and where the pipeline put them:"]
    for kind, where in ROW_FAULTS.items():
        rows = faults[faults["kind"] == kind]
        hits = sum((f, int(n)) in found for f, n in zip(rows["file"], rows["line"], strict=True))
        lines.append(f"  {kind:22s} {hits:>7,} of {len(rows):>7,} found in {where}")
    injected = faults["kind"].value_counts()
    counted = {
        "duplicate_row": (
            int(sum(v for k, v in duplicates.items() if k != "events")),
            "duplicates counted in the ledger",
        ),
        "event_duplicate": (int(duplicates.get("events", 0)), "duplicates counted in the ledger"),
        "bot_viewer": (
            int(read_frame(engine, "SELECT COUNT(*) AS n FROM clean_bot_viewers")["n"].iloc[0]),
            "bot viewer-days flagged",
        ),
        "test_session": (
            int(
                read_frame(
                    engine, "SELECT COUNT(*) AS n FROM clean_sessions_current WHERE is_test"
                )["n"].iloc[0]
            ),
            "sessions flagged is_test",
        ),
    }
    for kind, (n, what) in counted.items():
        lines.append(f"  {kind:22s} {int(injected.get(kind, 0)):>7,} injected, {n:,} {what}")
    return "\n".join(lines)


def summary(url: str) -> str:
    engine = make_engine(url)
    names = set(inspect(engine).get_table_names())
    lines = ["", "Tables written:"]
    for layer, tables in LAYERS.items():
        for table in tables:
            if table.name in names:
                n = read_frame(engine, f"SELECT COUNT(*) AS n FROM {table.name}")["n"].iloc[0]
                lines.append(f"  {layer:8s} {table.name:28s} {n:>10,} rows")
    ledger = read_frame(
        engine,
        "SELECT table_name, SUM(raw_rows) AS raw, SUM(clean_rows) AS clean, "
        "SUM(duplicate_rows) AS duplicates, SUM(quarantined_rows) AS quarantined "
        "FROM ops_ingest_ledger GROUP BY table_name ORDER BY table_name",
    )
    lines += ["", "Rows in, by clean table (raw = clean + duplicates + quarantined):"]
    lines += ["  " + line for line in ledger.to_string(index=False).splitlines()]
    reasons = read_frame(engine, "SELECT table_name, reason FROM ops_quarantine").assign(
        reason=lambda d: d["reason"].str.replace(r":.*", "", regex=True)
    )
    top = reasons.value_counts().head(12).rename("rows").reset_index()
    lines += ["", "Quarantined rows by reason:"]
    lines += ["  " + line for line in top.to_string(index=False).splitlines()]
    lines += ["", f"Warehouse: {url}", "", "A consumer's query:", CONSUMER_QUERY, ""]
    result = read_frame(engine, CONSUMER_QUERY)
    lines += ["  " + line for line in result.to_string(index=False).splitlines()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="demo", choices=sorted(PRESETS))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    ensure_landing(args.preset, args.seed)
    preset = PRESETS[args.preset]
    first, last = preset.start.isoformat(), preset.end.isoformat()
    print(f"running the '{NIGHTLY_JOB}' job over {first} … {last} in one run ...")
    result = run_window(first, last)
    if not result.success:
        failures = [e for e in result.all_events if e.is_failure]
        for event in failures:
            print(f"FAILED {event.step_key}: {event.event_specific_data.error.message.strip()}")
        raise SystemExit(1)
    print(f"run {result.run_id} succeeded")
    print(check_summary(result))
    print(summary(warehouse_url()))
    print(truth_reconciliation(warehouse_url(), landing_dir().parent / "truth"))
    print(f"\nData folder: {data_dir()}   ({time.perf_counter() - started:.0f} s in all)")
    print("Open the Dagster UI on the same instance and warehouse: make ui")


if __name__ == "__main__":
    main()
