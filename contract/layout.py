"""The landing zone's layout: `<landing>/<name>/<YYYY-MM-DD>/`, and `_SUCCESS`, written last,
saying the folder is complete (landing-zone.md, "Layout"). A folder without it is incomplete:
it is never read as "no data"."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

SUCCESS_MARKER = "_SUCCESS"


class LandingNotReady(RuntimeError):
    """A folder has no _SUCCESS marker: it is incomplete and must not be read as empty."""


def folder(root: Path | str, name: str, day: dt.date) -> Path:
    """`<root>/<name>/<day>`: a platform's, the events', the plan's or the catalogue's folder."""
    return Path(root) / name / day.isoformat()


def mark_success(path: Path) -> None:
    """Write the marker that says the folder `path` is complete (the writer's last step)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / SUCCESS_MARKER).write_bytes(b"")


def not_ready(root: Path | str, name: str, day: dt.date) -> str | None:
    """Why the folder `<name>/<day>` cannot be read yet (no `_SUCCESS`: incomplete, never
    "no data"), or None when it has landed."""
    path = folder(root, name, day)
    if (path / SUCCESS_MARKER).exists():
        return None
    state = (
        "exists but has no _SUCCESS marker (still being written)"
        if path.exists()
        else "has not landed"
    )
    return f"{name}/{day.isoformat()} {state}: the {name} export of {day} is incomplete, not empty"


def marked_dates(root: Path | str, name: str) -> dict[dt.date, float]:
    """The dates of `name`'s folders that have landed, each with the time its marker appeared."""
    out = {}
    for marker in Path(root).glob(f"{name}/*/{SUCCESS_MARKER}"):
        try:
            out[dt.date.fromisoformat(marker.parent.name)] = marker.stat().st_mtime
        except ValueError:  # not a date folder
            continue
    return out


def required_folders(platforms: Sequence[str]) -> tuple[str, ...]:
    """The folders a date needs before it can be processed (the catalogue lands only on change,
    the costs are optional)."""
    return (*platforms, "events", "plan")


def landed_dates(landing_root: Path | str, platforms: Sequence[str]) -> dict[dt.date, float]:
    """Dates whose required folders all have `_SUCCESS`, each with the time its last marker
    appeared: a folder that lands late changes that time, and so asks for a re-run."""
    required = required_folders(platforms)
    markers: dict[dt.date, list[float]] = {}
    for name in required:
        for day, seen in marked_dates(landing_root, name).items():
            markers.setdefault(day, []).append(seen)
    return {day: max(times) for day, times in markers.items() if len(times) == len(required)}
