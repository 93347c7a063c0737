"""Command line: `python -m simulator --preset demo --out data/sim`."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import os
from pathlib import Path

from simulator.config import PRESETS, FaultRates
from simulator.simulate import simulate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(os.environ.get("LIVECOMMERCE_DATA_DIR", "data")) / "sim",
        help="writes <out>/landing and <out>/truth",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-faults", action="store_true", help="write clean exports only")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND=RATE",
        help="override one fault rate; kinds: "
        + ", ".join(f.name for f in dataclasses.fields(FaultRates)),
    )
    parser.add_argument(
        "--as-of",
        type=dt.datetime.fromisoformat,
        help="simulated 'now' (ISO 8601 with offset): folders landing later get no _SUCCESS",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    preset = PRESETS[args.preset]
    rates = FaultRates.none() if args.no_faults else preset.faults
    overrides = dict(item.split("=", 1) for item in args.fault)
    rates = rates.with_overrides({k: float(v) for k, v in overrides.items()})
    preset = dataclasses.replace(preset, faults=rates)
    summary = simulate(preset, args.out, seed=args.seed, as_of=args.as_of)
    print(json.dumps({"out": str(args.out), **summary}))


if __name__ == "__main__":
    main()
