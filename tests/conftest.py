"""Shared fixtures: simulated landing zones (fixed seeds), throwaway warehouses, PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from assets.partitions import RANGE_END, RANGE_START
from assets.resources import Lake, LandingZone, ModelStore, Pseudonymizer, Warehouse
from orchestration.definitions import all_assets, all_checks
from simulator import PRESETS, FaultRates, simulate

SEED = 11
TINY = PRESETS["tiny"]


@pytest.fixture(scope="session")
def tiny_dirty(tmp_path_factory) -> Path:
    """The tiny preset with the default (realistic) dirt."""
    out = tmp_path_factory.mktemp("tiny_dirty")
    simulate(TINY, out, seed=SEED)
    return out


@pytest.fixture(scope="session")
def tiny_clean(tmp_path_factory) -> Path:
    """The tiny preset without any injected fault: the scorecard must equal the truth."""
    out = tmp_path_factory.mktemp("tiny_clean")
    simulate(dataclasses.replace(TINY, faults=FaultRates.none()), out, seed=SEED)
    return out


# The tiny dirty world's story: the dates its three runs end on (local dates).
STORY_FIRST, STORY_MIDDLE, STORY_TRAINED, STORY_LAST = (
    "2026-10-25", "2026-11-06", "2026-11-13", "2026-11-14"
)  # fmt: skip


# The files that read the story: one xdist group, so it is computed once (`make test`).
STORY_FILES = {"test_dirty_world", "test_forecasting", "test_recommending"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One xdist group per test file (its module fixtures stay in one process), the story's
    files in one group (`make test` runs `--dist loadgroup`). First among the hooks: xdist
    reads the groups in its own `pytest_collection_modifyitems`."""
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else item.nodeid
        group = "tiny_story" if module in STORY_FILES else module
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session")
def tiny_story(tiny_dirty, tmp_path_factory, request) -> SimpleNamespace:
    """The tiny dirty world through the real graph in the three runs a deployment makes: a
    backfill of its first 13 days (the first forecaster and ranker trained and promoted on
    STORY_MIDDLE), a backfill of the next seven with the promotion gate opened wide (the second
    models promoted on STORY_TRAINED), and the nightly run of the newest date (STORY_LAST)
    with a gate asking for 99 % better (its challengers rejected, the champions serve). Read
    by the dirty-world, forecasting and recommending tests (`STORY_FILES`, on one xdist worker);
    a test that writes takes a copy.

    Namespace: url (the warehouse, its lake and models beside it in one folder), landing,
    backfills (the two backfills' results) and nightly (the last run's result)."""
    if getattr(request.config.option, "loadgroup", False):
        # The workers' temporary folders share a parent: a second story there means the xdist
        # groups were not applied (pyproject.toml's pytest pin) and the story ran twice.
        once = tmp_path_factory.getbasetemp().parent / "tiny_story.computed"
        if once.exists():
            pytest.fail("the tiny story was computed by a second xdist worker: groups not applied")
        once.touch()
    landing = tiny_dirty / "landing"
    url = sqlite_url(tmp_path_factory.mktemp("story") / "w.db")
    first = run_assets(landing, url, STORY_FIRST, STORY_MIDDLE)
    assert first.success
    after_middle = (dt.date.fromisoformat(STORY_MIDDLE) + dt.timedelta(days=1)).isoformat()
    lenient = model_store(landing, url, tolerance=10.0)
    second = run_assets(landing, url, after_middle, STORY_TRAINED, models=lenient)
    assert second.success
    strict = model_store(landing, url, tolerance=-0.99)
    nightly = run_assets(landing, url, STORY_LAST, models=strict)
    return SimpleNamespace(url=url, landing=landing, backfills=[first, second], nightly=nightly)


def resources(landing: Path, url: str) -> dict:
    return {
        "landing_zone": LandingZone(root=str(landing)),
        "warehouse": Warehouse(url=url),
        "lake": Lake(root=str(lake_for(url))),
        "pseudonymizer": Pseudonymizer(secret="test-secret"),
        "models": model_store(landing, url),
    }


def model_store(landing: Path, url: str, **changes) -> ModelStore:
    """Backtests small enough for the 21-day tiny preset, the oracle where the truth is; the
    tiny data has too few sessions to calibrate intervals, so coverage is not bounded here
    (the tests judge the gate's mechanics, not coverage)."""
    settings = {
        "root": str(lake_for(url).with_suffix(".models")),
        "truth_dir": str(landing.parent / "truth"),
        "window_days": 1,
        "min_train_days": 5,
        "coverage_low": 0.0,
        "coverage_high": 1.0,
        "num_rounds": 60,
        "ranker_rounds": 40,
        "ranker_eval_days": 7,
    }
    return ModelStore(**{**settings, **changes})


def lake_for(url: str) -> Path:
    """Each throwaway warehouse gets its own lake folder beside it."""
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).with_suffix(".lake")
    return Path(tempfile.gettempdir()) / f"lake-{abs(hash(url))}"


def run_assets(
    landing: Path, url: str, first: str, last: str | None = None, selection=None, **overrides
):
    """Materialize the real asset graph over [first, last] in one run (as a backfill does);
    `overrides` replace resources."""
    tags = {RANGE_START: first, RANGE_END: last or first}
    return dg.materialize(
        [*all_assets, *all_checks],
        resources={**resources(landing, url), **overrides},
        tags=tags,
        selection=selection,
        raise_on_error=False,
    )


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


# --- PostgreSQL: a private cluster on a free port, started for the session ----------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture(scope="session")
def postgres_url():
    if os.environ.get("TEST_POSTGRES_URL"):  # a server of the caller's
        yield os.environ["TEST_POSTGRES_URL"]
        return
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server is not installed (scripts/ensure-postgres.sh could not install it)"
        )
    # Not under pytest's tmp dir: the server runs as `postgres`, which cannot enter root's.
    home = Path(tempfile.mkdtemp(prefix="livecommerce-pg-"))
    data = home / "data"
    port = _free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(home, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    try:
        subprocess.run([*as_user, bindir / "initdb", "-D", data, "-A", "trust", "-U", "postgres"],
                       check=True, capture_output=True)  # fmt: skip
        subprocess.run(
            [*as_user, bindir / "pg_ctl", "-D", data, "-l", home / "log", "-w", "-o",
             f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
            check=True, capture_output=True,
        )  # fmt: skip
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        pytest.skip(f"PostgreSQL could not start: {exc} {detail.decode(errors='replace')[:300]}")
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    for _ in range(50):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.1)
    yield url
    subprocess.run(
        [*as_user, bindir / "pg_ctl", "-D", data, "-m", "fast", "stop"], capture_output=True
    )
    shutil.rmtree(home, ignore_errors=True)
