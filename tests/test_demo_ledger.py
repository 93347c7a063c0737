"""The `demo` preset's dirt through the clean layer: every landed file is in the ledger, its raw
rows are the rows really in the file, and they add up to clean + duplicates + conflicts +
quarantined.

The first 45 days of the preset (through 618) at the demo's rates, the four rarest kinds made
likelier (at the demo's rates each is expected one to three times in 45 days, or not at all),
carry every kind of dirt the demo injects: the test asserts it from the simulator's truth. The
first 90 days took 234 s here, these 45 days 91 s (docs/performance.md, the test suite)."""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from simulator import PRESETS, FaultRates, simulate
from tests.conftest import run_assets, sqlite_url
from warehouse.store import make_engine, read_frame

# Expected five times or more in these 45 days (per platform-date, CSV orders file, session, file).
RARE = {"late_folder": 0.04, "broken_quote": 0.06, "changed_reexport": 0.01, "extra_column": 0.01}
DEMO = dataclasses.replace(
    PRESETS["demo"], days=45, faults=PRESETS["demo"].faults.with_overrides(RARE)
)
# The truth's name of each kind of dirt the simulator injects (`FaultRates`), where they differ.
TRUTH_KIND = {"bot_session": "bot_viewer"}
CLEAN_EXPORTS = [
    dg.AssetKey(["clean", name])
    for name in (
        "products", "plans", "plan_lineups", "sessions", "lineups", "orders", "refunds",
        "events",
    )
]  # fmt: skip


def data_rows(path: Path) -> int:
    """Records in a landed file, counted without the pipeline's readers: non-empty lines, less
    a CSV's header line and its repeats (pages concatenated)."""
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    lines = [line.strip().removeprefix(b"\xef\xbb\xbf") for line in data.split(b"\n")]
    header = lines[0] if ".jsonl" not in path.name else None
    return sum(1 for line in lines if line and line != header)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    simulate(DEMO, out, seed=7)
    url = sqlite_url(out / "w.db")
    result = run_assets(
        out / "landing", url, DEMO.start.isoformat(), DEMO.end.isoformat(), CLEAN_EXPORTS
    )
    return out / "landing", url, result


def test_every_kind_of_dirt_the_demo_injects_is_in_these_days(demo_run):
    landing, _, _ = demo_run
    injected = {
        TRUTH_KIND.get(f.name, f.name)
        for f in dataclasses.fields(FaultRates)
        if getattr(DEMO.faults, f.name) > 0
    }
    found = set(pd.read_csv(landing.parent / "truth" / "faults.csv")["kind"])
    assert injected <= found, injected - found


def test_every_file_of_the_demo_adds_up(demo_run):
    landing, url, result = demo_run
    assert result.success
    ledger_checks = [
        e for e in result.get_asset_check_evaluations() if e.check_name == "ledger_adds_up"
    ]
    assert len(ledger_checks) == len(CLEAN_EXPORTS)
    assert all(e.passed for e in ledger_checks)

    engine = make_engine(url)
    ledger = read_frame(engine, "SELECT * FROM ops_ingest_ledger").set_index("source_file")
    files = {
        str(p.relative_to(landing)): data_rows(p)
        for p in landing.rglob("*")
        if p.is_file() and p.name != "_SUCCESS"
    }
    assert set(ledger.index) == set(files)
    assert (ledger["raw_rows"] == pd.Series(files).reindex(ledger.index)).all()
    parts = ["clean_rows", "duplicate_rows", "conflict_rows", "quarantined_rows"]
    assert (ledger["raw_rows"] == ledger[parts].sum(axis=1)).all()
    quarantined = read_frame(
        engine, "SELECT source_file, COUNT(*) AS n FROM ops_quarantine GROUP BY source_file"
    ).set_index("source_file")["n"]
    in_quarantine = ledger["quarantined_rows"] + ledger["conflict_rows"]
    assert (quarantined.reindex(ledger.index).fillna(0) == in_quarantine).all()
    # The demo is dirty: each way of not being clean really happened.
    assert ledger[["duplicate_rows", "quarantined_rows"]].sum().min() > 100
