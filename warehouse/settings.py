"""Where things live, from the environment with embedded defaults (simulated data, SQLite)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from contract.enums import PLAN_DAYS, PLATFORMS

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# The first local date of the data: the daily partitions start here.
FIRST_DATE = os.environ.get("LIVECOMMERCE_FIRST_DATE", "2026-05-25")


def first_partition_date() -> dt.date:
    """FIRST_DATE as a date: the daily partitions start here, and a time more than a year
    before it is implausible (landing-zone.md, "implausible times")."""
    return dt.date.fromisoformat(FIRST_DATE)


def partition_days_through(last: dt.date) -> list[dt.date]:
    """Every local date from the first partition date to `last`, both included (none when
    `last` is before it)."""
    first = first_partition_date()
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def platforms_setting() -> str:
    """The platforms this deployment sells on, as configured: `LIVECOMMERCE_PLATFORMS`,
    comma-separated, default all three. Only their folders are waited for and read."""
    return os.environ.get("LIVECOMMERCE_PLATFORMS", ",".join(PLATFORMS))


def parse_platforms(raw: str) -> tuple[str, ...]:
    """`"jd, douyin"` -> `("jd", "douyin")`. Raises ValueError for an empty list or a name the
    contract does not know."""
    chosen = tuple(dict.fromkeys(p.strip() for p in raw.split(",") if p.strip()))
    unknown = [p for p in chosen if p not in PLATFORMS]
    if unknown or not chosen:
        raise ValueError(
            f"LIVECOMMERCE_PLATFORMS={raw!r}: expected a comma-separated subset of "
            f"{', '.join(PLATFORMS)}"
        )
    return chosen


def data_dir() -> Path:
    """The project's data folder (gitignored): landing zone, SQLite warehouse, Dagster home."""
    return Path(os.environ.get("LIVECOMMERCE_DATA_DIR", PROJECT_ROOT / "data")).resolve()


def landing_dir() -> Path:
    return Path(os.environ.get("LANDING_DIR", data_dir() / "sim" / "landing")).resolve()


def lake_dir() -> Path:
    """Parquet files of event-level data, beside the SQL warehouse."""
    return Path(os.environ.get("LAKE_DIR", data_dir() / "lake")).resolve()


def warehouse_url() -> str:
    return os.environ.get("WAREHOUSE_URL", f"sqlite:///{data_dir() / 'warehouse.db'}")


def models_dir() -> Path:
    """Trained models: <models>/<name>/<version>/ (boosters, card, importance plot)."""
    return Path(os.environ.get("MODELS_DIR", data_dir() / "models")).resolve()


def truth_dir() -> str:
    """The simulator's ground truth, which backtests compare with (its oracle) when it is there:
    `TRUTH_DIR`; by default the embedded simulation's `data/sim/truth`, and none ("") once
    `LANDING_DIR` points at real exports, which have no truth. It is looked for when a model
    trains, so a landing zone simulated after start-up counts."""
    embedded = "" if os.environ.get("LANDING_DIR") else str(data_dir() / "sim" / "truth")
    return os.environ.get("TRUTH_DIR", embedded)


def picks_horizon_setting() -> dict[str, int]:
    """`LIVECOMMERCE_PICKS_HORIZON_DAYS` (h: the plans planned for D+1 … D+h get picks on date
    D) as a `ModelStore` field when set; empty otherwise, so the model's default holds. Raises
    ValueError for a value that is not a whole number of days from 1 to 7."""
    raw = os.environ.get("LIVECOMMERCE_PICKS_HORIZON_DAYS")
    if raw is None:
        return {}
    if not raw.strip().isdigit() or not 1 <= int(raw) <= PLAN_DAYS:
        raise ValueError(
            f"LIVECOMMERCE_PICKS_HORIZON_DAYS={raw!r}: expected whole days from 1 to {PLAN_DAYS}"
        )
    return {"picks_horizon_days": int(raw)}


# viewer_key = HMAC-SHA256(secret, "<platform>:<viewer_id>") (landing-zone.md): the secret is
# `VIEWER_KEY_SECRET` in production; without it, this development secret (said in the README).
DEV_VIEWER_KEY_SECRET = "dev-only-secret-not-for-production"


def viewer_key_secret_is_set() -> bool:
    """Whether `VIEWER_KEY_SECRET` is set (then it reaches the resources by name only)."""
    return bool(os.environ.get("VIEWER_KEY_SECRET"))
