"""`make bench`: the `bench` day (a Double 11 of 120 rooms, about 10 million events) through the
nightly run of the real asset graph, stage by stage, beside the clean layer's floor and a
DuckDB peer over the same files; and the ranking stage beside its bare booster.

Each stage runs in its own process (so its peak RSS is its own). The ratios are what to compare
across machines, not the seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DAY = dt.date(2026, 11, 11)  # PRESETS["bench"].start
# Days simulated before the bench day, at the bench's scale, and run through the graph before
# the timed run so that features, models and picks have history to read. Two is what a
# `make bench` of about a quarter of an hour affords; the models' backtests want more (they skip).
HISTORY_DAYS = 2
# The clean layer's steps that do the events' work (what the DuckDB peer does).
EVENT_STEPS = ("clean__events", "clean__bot_viewers", "clean__viewer_activity")

STAGES = {
    # name: python snippet run in a child; its last line of output is one JSON object
    "simulate": """
import dataclasses
from simulator import PRESETS, simulate
preset = dataclasses.replace(PRESETS["bench"], start=FIRST, days=(DAY - FIRST).days + 1)
s = simulate(preset, OUT)
report(s["events"], f"events, {s['days']} days")
""",
    "reference: json.dumps + gzip": """
import gzip, random
rng = random.Random(1)
n = 500_000
client = {"os": "ios", "app_version": "5.2.1"}
with gzip.open(OUT / "ref.jsonl.gz", "wt", encoding="utf-8") as fh:
    for i in range(n):
        event = {
            "event_id": "%032x" % rng.getrandbits(128), "ts": "2026-11-11T20:03:04.123+08:00",
            "platform": "douyin", "session_id": "7301000000000007919", "viewer_id": "dy%010d" % i,
            "type": "like", "sku": None, "text": None, "client": client,
        }
        fh.write(json.dumps(event, ensure_ascii=False) + "\\n")
report(n, "events")
""",
    "nightly run, history days": """
from scripts.bench import nightly
r = nightly.run(LANDING, OUT / "run", FIRST, DAY - dt.timedelta(days=1))
(OUT / "history.json").write_text(json.dumps(r, indent=1))
report(sum(s["rows"] for s in r["stages"].values()), "rows written", r["wall_s"])
""",
    "nightly run, bench day": """
from scripts.bench import nightly
r = nightly.run(LANDING, OUT / "run", DAY, DAY, tuple(PARAMS["without"]))
(OUT / "nightly.json").write_text(json.dumps(r, indent=1))
report(sum(s["rows"] for s in r["stages"].values()), "rows written", r["wall_s"], nightly=r)
""",
    "floor: pyarrow reads + SQLite executemany": """
from scripts.bench.floor import floor
r = floor(LANDING, DAY, OUT / "floor.db", PARAMS["clean_rows"])
report(r["rows"], "raw rows read", r["read_s"] + r["write_s"], floor=r)
""",
    "peer: DuckDB SQL over the events": """
from scripts.bench.duckdb_peer import clean_events
r = clean_events(LANDING, DAY)
report(r["rows"], "events kept", r["seconds"], peer=r)
""",
    "rank 100,000 fans x 40 products": """
from scripts.bench_ranking import score_fans
r = score_fans()
report(r["rows"], "fan x product rows", r["seconds"],
       reference_rows=r["rows"], reference_seconds=r["reference_seconds"])
""",
}
ROW = "{:44s} {:>12s} {:>8s} {:>11s} {:>9s} {:>14s}"


def run_stage(code: str, out: Path, landing: Path, params: dict) -> dict:
    prelude = (
        "import datetime as dt, json, resource\nfrom pathlib import Path\n"
        f"OUT = Path({str(out)!r})\nLANDING = Path({str(landing)!r})\n"
        f"DAY = dt.date.fromisoformat({BENCH_DAY.isoformat()!r})\n"
        f"FIRST = DAY - dt.timedelta(days={HISTORY_DAYS})\n"
        f"PARAMS = json.loads({json.dumps(params)!r})\n"
        "def report(rows, unit, seconds=None, **extra):\n"
        "    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "    print(json.dumps({'rows': rows, 'unit': unit, 'peak_rss_mib': rss,\n"
        "                      'timed': seconds, **extra}))\n"
    )
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"bench stage failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # A stage that times its own work (after its imports and inputs) reports those seconds.
    return {**result, "seconds": result.pop("timed") or seconds, "process_s": seconds}


def line(name: str, rows: int | None, seconds: float, rss_mib: float, note: str = "") -> str:
    rate = f"{rows / seconds:,.0f}" if rows and seconds else ""
    count = f"{rows:,}" if rows is not None else ""
    return ROW.format(name, count, f"{seconds:.1f}", rate, f"{rss_mib:,.0f}", note)


def table(results: dict) -> list[str]:
    header = ROW.format("stage", "rows", "seconds", "rows/s", "peak MiB", "vs reference")
    out = [header, "-" * len(header)]
    sim, ref = results["simulate"], results["reference: json.dumps + gzip"]
    ratio = (sim["rows"] / sim["seconds"]) / (ref["rows"] / ref["seconds"])
    out.append(
        line(
            f"simulate ({sim['unit']})",
            sim["rows"],
            sim["seconds"],
            sim["peak_rss_mib"],
            f"{ratio:.2f}x json+gzip",
        )
    )
    out.append(
        line("reference: json.dumps + gzip", ref["rows"], ref["seconds"], ref["peak_rss_mib"])
    )
    history = results["nightly run, history days"]
    out.append(
        line(
            f"nightly run, {HISTORY_DAYS} history days (setup)",
            history["rows"],
            history["seconds"],
            history["peak_rss_mib"],
        )
    )
    nightly = results["nightly run, bench day"]
    out.append(
        line(
            f"nightly run, {BENCH_DAY} (whole run)",
            nightly["rows"],
            nightly["seconds"],
            nightly["peak_rss_mib"],
        )
    )
    for stage, s in nightly["nightly"]["stages"].items():
        failed = f"{len(s['failed'])} not ok" if s["failed"] else ""
        rows = s["rows"] if stage != "quality checks" else None
        out.append(
            line(
                f"  {stage} ({s['steps']} step{'s' if s['steps'] > 1 else ''})",
                rows,
                s["seconds"],
                s["peak_rss_mib"],
                failed,
            )
        )
    floor, peer = (
        results["floor: pyarrow reads + SQLite executemany"],
        results["peer: DuckDB SQL over the events"],
    )
    out.append(
        line(
            "floor: pyarrow reads + SQLite executemany",
            floor["rows"],
            floor["seconds"],
            floor["peak_rss_mib"],
        )
    )
    out.append(
        line(
            "peer: DuckDB SQL over the events", peer["rows"], peer["seconds"], peer["peak_rss_mib"]
        )
    )
    rank = results["rank 100,000 fans x 40 products"]
    ratio = (rank["rows"] / rank["seconds"]) / (rank["reference_rows"] / rank["reference_seconds"])
    out.append(
        line(
            "rank 100,000 fans x 40 products",
            rank["rows"],
            rank["seconds"],
            rank["peak_rss_mib"],
            f"{ratio:.2f}x booster",
        )
    )
    return out


def verdicts(results: dict) -> list[str]:
    nightly = results["nightly run, bench day"]
    steps = nightly["nightly"]["steps"]
    clean_s = nightly["nightly"]["stages"]["ingest and clean"]["seconds"]
    events_s = sum(s["seconds"] for s in steps if s["step"] in EVENT_STEPS)
    floor = results["floor: pyarrow reads + SQLite executemany"]
    peer = results["peer: DuckDB SQL over the events"]
    f, p = floor["floor"], peer["peer"]
    gib = nightly["peak_rss_mib"] / 1024

    left_out = nightly["nightly"].get("without")
    without = f", WITHOUT {', '.join(left_out)} and its downstream" if left_out else ""

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    return [
        f"clean layer (the 'clean' group's steps): {clean_s:.1f} s; its event steps "
        f"({', '.join(EVENT_STEPS)}): {events_s:.1f} s",
        f"floor: read {f['files']} files in {f['read_s']:.1f} s ({f['slow_files']} line by line),"
        f" wrote {f['written']:,} rows (the clean layer's row count) in {f['write_s']:.1f} s",
        f"peer: duckdb {p['duckdb']}, parse/type/dedupe/window {p['clean_s']:.1f} s, aggregates"
        f" {p['aggregate_s']:.1f} s ({p['viewer_sessions']:,} session-viewers,"
        f" {p['viewer_products']:,} session-viewer-SKUs)",
        f"clean layer / floor: {clean_s / floor['seconds']:.2f}x  (target <= 3x: "
        f"{verdict(clean_s <= 3 * floor['seconds'])})",
        f"clean layer / DuckDB peer: {clean_s / peer['seconds']:.2f}x; its event steps / peer: "
        f"{events_s / peer['seconds']:.2f}x  (target <= 1x: "
        f"{verdict(clean_s <= peer['seconds'])})",
        f"nightly run of the bench day: {nightly['seconds']:.0f} s (target < 600 s: "
        f"{verdict(nightly['seconds'] < 600)}), peak RSS {gib:.1f} GiB (target < 6 GiB: "
        f"{verdict(gib < 6)}), run {'succeeded' if nightly['nightly']['success'] else 'FAILED'}"
        + without,
    ]


def measure(out: Path, landing: Path | None, without: list[str]) -> dict[str, dict]:
    """Run every stage; results.json keeps what is measured so far."""
    results: dict[str, dict] = {}
    for name, code in STAGES.items():
        if name == "simulate" and landing:
            results[name] = {"rows": 0, "unit": "skipped", "seconds": 1.0, "peak_rss_mib": 0}
            continue
        print(f"running: {name} ...", flush=True)
        params: dict = {"without": without}
        if name.startswith("floor"):
            clean = results["nightly run, bench day"]["nightly"]["stages"]["ingest and clean"]
            params["clean_rows"] = clean["rows"]
        results[name] = run_stage(code, out, landing or out / "landing", params)
        (out / "results.json").write_text(json.dumps(results, indent=1))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument(
        "--landing", type=Path, help="an already simulated landing zone (skips the simulation)"
    )
    parser.add_argument(
        "--without",
        action="append",
        default=[],
        help="leave this asset key (and what is downstream) out of the bench day's run",
    )
    parser.add_argument(
        "--report", type=Path, help="print the tables of an earlier run's results.json only"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.report:
        out, results = args.report.parent, json.loads(args.report.read_text())
    else:
        out = args.out or Path(tempfile.mkdtemp(prefix="livecommerce-bench-"))
        out.mkdir(parents=True, exist_ok=True)
        results = measure(out, args.landing, args.without)
    print()
    print("\n".join(table(results)))
    print()
    print("\n".join(verdicts(results)))
    print(
        "\nEach stage runs in its own process; 'peak MiB' is that process's getrusage peak, and"
        "\nfor a nightly stage the highest RSS sampled while its steps ran. Nightly seconds are"
        "\nthe steps' durations from the run's step stats (rows: dagster/row_count). The floor"
        "\nreads the bench day's raw files with pyarrow and inserts as many rows as the clean"
        "\nlayer wrote; the peer is DuckDB SQL doing the events' clean work (docs/performance.md)."
    )
    print(f"working folder: {out}   ({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
