"""`make bench`: speed and memory of the simulator and the clean layer on the `bench` day.

Each stage runs in its own process (so its peak RSS is its own) and is printed beside a
reference measured in the same run on the same machine: the ratio is what to compare across
machines, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = {
    # name: python snippet run in a child; it prints one JSON object with "rows"
    "simulate bench day": """
from simulator import PRESETS, simulate
s = simulate(PRESETS["bench"], OUT)
report(s["events"], "events")
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
    "clean layer, bench day": """
import datetime as dt
import pandas as pd
from contract.enums import PLATFORMS
from warehouse.events import clean_event_folder
from warehouse.ingest import CLEAN_TABLE, clean_platform_exports
from warehouse.lake import write_partition_file
from warehouse.schema import metadata
from warehouse.store import create_schema, make_engine, write_partition
engine = make_engine(f"sqlite:///{OUT / 'bench.db'}")
create_schema(engine)
day = dt.date(2026, 11, 11)
rows = 0
sessions = []
for table in ("sessions", "lineup", "orders", "refunds"):
    for platform in PLATFORMS:
        b, failures = clean_platform_exports(LANDING, platform, table, [day], "bench", "bench")
        assert not failures, failures
        target = metadata.tables[CLEAN_TABLE[table]]
        write_partition(engine, target, b.rows, "export_date", [day], scope={"platform": platform})
        rows += int(b.ledger["raw_rows"].sum())
        if table == "sessions":
            sessions.append(b.rows[["session_key", "start_time", "end_time"]])
known = pd.concat(sessions)
events = clean_event_folder(
    LANDING, day, known, pd.Series(dtype=str), "bench", "bench", PLATFORMS
)
write_partition_file(OUT / "lake", "events", day, events.rows)
rows += int(events.ledger["raw_rows"].sum())
report(rows, "raw rows and events")
""",
    "reference: pandas/pyarrow plain reads": """
import pandas as pd, pyarrow as pa, pyarrow.json as pj
rows = 0
for path in sorted(LANDING.glob("*/2026-11-11/*.*")):
    kind = path.parent.parent.name
    if kind in ("douyin", "taobao") and path.suffix == ".csv":  # plain parse, no typing
        enc = "gb18030" if kind == "taobao" else "utf-8-sig"
        rows += len(pd.read_csv(path, dtype=str, encoding=enc, on_bad_lines="skip"))
    elif kind == "jd":
        records = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                pass
        rows += len(pd.DataFrame.from_records(records))
    elif kind == "events":
        rows += pj.read_json(pa.input_stream(str(path), compression="gzip")).num_rows
report(rows, "raw rows and events")
""",
    "rank 100,000 fans x 40 products": """
from scripts.bench_ranking import score_fans
r = score_fans()
report(r["rows"], "fan x product rows", r["seconds"],
       reference_rows=r["rows"], reference_seconds=r["reference_seconds"])
""",
}
ROW = "{:40s} {:>12s} {:>8s} {:>12s} {:>13s} {:>13s}"
PAIRS = {
    "simulate bench day": "reference: json.dumps + gzip",
    "clean layer, bench day": "reference: pandas/pyarrow plain reads",
}


def run_stage(code: str, out: Path, landing: Path) -> dict:
    prelude = (
        "import json, resource\nfrom pathlib import Path\n"
        f"OUT = Path({str(out)!r})\nLANDING = Path({str(landing)!r})\n"
        "def report(rows, unit, seconds=None, **reference):\n"
        "    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "    print(json.dumps({'rows': rows, 'unit': unit, 'peak_rss_mib': rss,\n"
        "                      'timed': seconds, **reference}))\n"
    )
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"bench stage failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # A stage that times its own work (after building its inputs) reports those seconds.
    return {**result, "seconds": result.pop("timed") or seconds}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, help="working folder (default: a temporary one)")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="livecommerce-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    landing = out / "landing"
    results = {}
    for name, code in STAGES.items():
        print(f"running: {name} ...", flush=True)
        results[name] = run_stage(code, out, landing)
    print()
    header = ROW.format("stage", "rows", "seconds", "rows/s", "peak RSS MiB", "vs reference")
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        rate = r["rows"] / r["seconds"]
        ratio = ""
        if name in PAIRS:
            ref = results[PAIRS[name]]
            ratio = f"{rate / (ref['rows'] / ref['seconds']):.2f}x"
        elif "reference_rows" in r:
            ratio = f"{rate / (r['reference_rows'] / r['reference_seconds']):.2f}x"
        print(
            ROW.format(
                name,
                f"{r['rows']:,}",
                f"{r['seconds']:.1f}",
                f"{rate:,.0f}",
                f"{r['peak_rss_mib']:,.0f}",
                ratio,
            )
        )
    print(
        "\nEach stage runs in its own process; peak RSS is that process's (getrusage)."
        "\n'vs reference' is rows/s divided by the reference's rows/s in this same run; for"
        "\nranking, the reference is the same booster predicting a ready float matrix of the"
        "\nsame rows (so the ratio is the share of the time that is the model itself)."
    )
    print(f"working folder: {out}")


if __name__ == "__main__":
    main()
