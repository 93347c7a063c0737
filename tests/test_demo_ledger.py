"""The `demo` preset's dirt through the clean layer: every landed file is in the ledger, its raw
rows are the rows really in the file, and they add up to clean + duplicates + conflicts +
quarantined.

The first 90 days of the preset (through 618 and its return wave) carry every kind of dirt the
demo has at the demo's rates; the whole 180 days only doubled the time."""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from simulator import PRESETS, simulate
from tests.conftest import run_assets, sqlite_url
from warehouse.store import make_engine, read_frame

DEMO = dataclasses.replace(PRESETS["demo"], days=90)
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
