"""`make bench-history`: is a nightly partition's cost flat in the length of history?

Simulates the `demo` preset's world (its rooms, fans and dirt) over a year and a day ending on
`END`, runs the nightly graph over the history in ranged runs (set-up, not judged), and times
the nightly run of the dates after 30, 180 and 365 days of history, each through the real asset
graph like `make bench`'s bench day (`scripts.bench.nightly.run`), each on the landing zone as
that night found it (`landing_as_of`). Prints each stage's and each slow step's seconds side by
side with the ratio of the longest history to the shortest: what grows with history shows
there. Training may grow (it reads its window); nothing else should, but for a table the
contract defines over a window of history, whose rows grow until the history fills the window
(its cost per row must not).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import tempfile
import time
from pathlib import Path

from simulator import PRESETS, simulate

END = dt.date(2026, 11, 10)  # the day before the bench day: an ordinary date, not a promotion
HISTORY = (30, 180, 365)  # days of history before the timed nightly run
GROWS = 1.5  # a step whose time grows by more than this from the shortest history is named


def timed_dates(end: dt.date, history: tuple[int, ...]) -> dict[int, dt.date]:
    """The nightly date timed after each length of history (local dates), the longest on `end`."""
    first = end - dt.timedelta(days=max(history))
    return {days: first + dt.timedelta(days=days) for days in history}


def measure(landing: Path, work: Path, first: dt.date, timed: dict[int, dt.date]) -> dict:
    """Ranged runs up to each timed date, then that date's nightly run alone, timed. The daily
    partitions start on `first` (`LIVECOMMERCE_FIRST_DATE`, read when the graph is imported)."""
    os.environ["LIVECOMMERCE_FIRST_DATE"] = first.isoformat()
    from scripts.bench import nightly

    runs: dict[int, dict] = {}
    work.mkdir(parents=True, exist_ok=True)
    start = first
    for days, day in timed.items():
        if start < day:
            print(f"history: {start} … {day - dt.timedelta(days=1)} (set-up) ...", flush=True)
            setup = nightly.run(landing, work, start, day - dt.timedelta(days=1))
            print(f"  {setup['wall_s']:.0f} s, {'ok' if setup['success'] else 'NOT ok'}")
        print(f"timed: the nightly run of {day}, after {days} days of history ...", flush=True)
        that_night = landing_as_of(landing, work / f"landing-{day}", day)
        runs[days] = nightly.run(that_night, work, day, day)
        start = day + dt.timedelta(days=1)
    return runs


def landing_as_of(landing: Path, view: Path, day: dt.date) -> Path:
    """`view`: the landing zone as the night of `day` found it, the folders of dates up to `day`
    linked in (not copied). Its newest plan export is then `day`'s, so the timed run writes
    that night's picks as a nightly run does, whatever the length of history."""
    for folder in sorted(p for p in landing.iterdir() if p.is_dir()):
        (view / folder.name).mkdir(parents=True, exist_ok=True)
        for dated in folder.iterdir():
            try:
                landed = dt.date.fromisoformat(dated.name)
            except ValueError:  # not a date folder
                continue
            link = view / folder.name / dated.name
            if landed <= day and not link.exists():
                link.symlink_to(dated.resolve(), target_is_directory=True)
    return view


def step_figures(runs: dict[int, dict], figure: str = "seconds") -> dict[str, list[float]]:
    """Each step of the longest history's run: its `figure` ("seconds", "rows") per history,
    shortest first."""
    lengths = sorted(runs)
    return {
        step["step"]: [
            next((s.get(figure, 0) for s in runs[n]["steps"] if s["step"] == step["step"]), 0.0)
            for n in lengths
        ]
        for step in runs[lengths[-1]]["steps"]
    }


def grown(runs: dict[int, dict]) -> tuple[list[str], list[str]]:
    """The steps outside training (which reads its window, so may grow) whose seconds grew by
    more than GROWS from the shortest history to the longest: those whose seconds per row
    written grew too (or that write no rows), and those that grew with their output only (a
    table the contract defines over a window of history, as `fan_segments`' 365 days, fills as
    the history reaches the window; its cost per row stays flat)."""
    from scripts.bench.nightly import TRAINING

    stage = {s["step"]: s["stage"] for s in runs[max(runs)]["steps"]}
    rows = step_figures(runs, "rows")
    per_row, with_output = [], []
    for name, t in step_figures(runs).items():
        if stage[name] == TRAINING or t[0] <= 0.05 or t[-1] / t[0] <= GROWS:
            continue
        r = rows[name]
        flat_per_row = r[0] > 0 and r[-1] > 0 and (t[-1] / r[-1]) / (t[0] / r[0]) <= GROWS
        (with_output if flat_per_row else per_row).append(name)
    return per_row, with_output


def side_by_side(runs: dict[int, dict]) -> list[str]:
    """Per stage, then per step that grew (or is among the slowest), seconds per history."""
    from scripts.bench.nightly import STAGES

    lengths = sorted(runs)
    short, long = lengths[0], lengths[-1]
    head = "{:46s}" + " {:>9s}" * len(lengths) + " {:>9s}"
    row = "{:46s}" + " {:>9.1f}" * len(lengths) + " {:>9s}"
    header = head.format("seconds after … days of history", *map(str, lengths), f"{long}/{short}")
    out = [header, "-" * len(header)]

    def ratio(a: float, b: float) -> str:
        return f"{b / a:.2f}x" if a > 0.05 else ""

    whole = [runs[n]["wall_s"] for n in lengths]
    out.append(row.format("whole nightly run", *whole, ratio(whole[0], whole[-1])))
    for stage in STAGES:
        got = [runs[n]["stages"].get(stage, {}).get("seconds", 0.0) for n in lengths]
        out.append(row.format(f"  {stage}", *got, ratio(got[0], got[-1])))
    out.append("")
    by_step = step_figures(runs)
    slowest = sorted(by_step, key=lambda name: -by_step[name][-1])[:12]
    grew, with_output = grown(runs)
    out.append(
        head.format("steps (slowest; * grew, + grew with its rows)", *[""] * len(lengths), "")
    )
    for name in dict.fromkeys(slowest + grew + with_output):
        t = by_step[name]
        mark = " *" if name in grew else " +" if name in with_output else ""
        out.append(row.format(f"  {name}", *t, ratio(t[0], t[-1])) + mark)
    peak = [runs[n]["peak_rss_mib"] for n in lengths]
    out.append(row.format("peak RSS (MiB)", *peak, ratio(peak[0], peak[-1])))
    return out


def verdict(runs: dict[int, dict]) -> str:
    lengths = sorted(runs)
    failed = [n for n in lengths if not runs[n]["success"]]
    if failed:
        return f"NOT measured: the timed run after {failed} days of history failed"
    grew, with_output = grown(runs)
    window = (
        f"; grew with the rows they write, flat per row (marked +): {', '.join(with_output)}"
        if with_output
        else ""
    )
    if not grew:
        return f"flat: no step outside training grew by more than {GROWS}x per row{window}"
    return (
        f"NOT flat: {len(grew)} step(s) outside training grew by more than {GROWS}x from "
        f"{lengths[0]} to {lengths[-1]} days of history (marked *): {', '.join(grew)}{window}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, help="working folder (default: a temporary one)")
    parser.add_argument("--rooms", type=int, help="rooms per platform (default: the demo's)")
    parser.add_argument("--report", type=Path, help="print an earlier run's history.json only")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.report:
        runs = {int(k): v for k, v in json.loads(args.report.read_text()).items()}
    else:
        out = args.out or Path(tempfile.mkdtemp(prefix="livecommerce-history-"))
        out.mkdir(parents=True, exist_ok=True)
        timed = timed_dates(END, HISTORY)
        first = END - dt.timedelta(days=max(HISTORY))
        demo = PRESETS["demo"]
        preset = dataclasses.replace(
            demo,
            name="history",
            start=first,
            days=(END - first).days + 1,
            rooms_per_platform=args.rooms or demo.rooms_per_platform,
        )
        if not (out / "simulated.json").exists():
            print(f"simulating {preset.days} days of the demo's world into {out} ...", flush=True)
            t = time.perf_counter()
            summary = simulate(preset, out, seed=7)
            (out / "simulated.json").write_text(json.dumps(summary, default=str))
            print(f"  {time.perf_counter() - t:.0f} s, {summary['events']:,} events")
        runs = measure(out / "landing", out / "run", first, timed)
        (out / "history.json").write_text(json.dumps(runs, indent=1))
        print(f"working folder: {out}")
    print()
    print("\n".join(side_by_side(runs)))
    print()
    print(verdict(runs))
    print(f"({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
