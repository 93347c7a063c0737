"""The ranking stage of `make bench`: 100,000 fans of a room, a planned lineup of 40 products.

The fans' history is synthetic (a few visits, clicks, carts and paid lines each over 180 days)
and goes through the same code as the warehouse's: `fan_history`, then `rank_for_fans` a
sixteenth of the fans at a time, as `product_recommendations` scores them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

import numpy as np
import pandas as pd

from ml import ranker
from ml.fans import FanHistory, fan_history, fans_as_of

DAY = dt.date(2026, 11, 20)
BUCKETS = "0123456789abcdef"


def synthetic_history(
    fans: int, skus: list[str], sessions: int, rng: np.random.Generator
) -> tuple[FanHistory, pd.DataFrame]:
    """A room's history as the clean tables would give it; returns it and the catalogue."""
    day = pd.Timestamp(DAY)
    ago = pd.to_timedelta(np.sort(rng.integers(1, 180, sessions)), unit="D")
    keys = np.array([f"douyin:{i}" for i in range(sessions)])
    session_rows = pd.DataFrame(
        {
            "session_key": keys,
            "platform": "douyin",
            "room_id": "R1",
            "start_time": day - ago + pd.Timedelta(hours=12),
            "is_test": False,
        }
    )
    viewers = np.array([f"{k:016x}" for k in rng.choice(2**62, fans, replace=False)])
    # Every fan watched at least once; three more visits each on average.
    who = np.concatenate([np.arange(fans), rng.integers(0, fans, fans * 3)])
    visits = pd.DataFrame(
        {
            "session_key": keys[rng.integers(0, sessions, len(who))],
            "viewer_key": viewers[who],
            "watch_s": rng.integers(20, 3600, len(who)),
            "is_bot": False,
        }
    ).drop_duplicates(["session_key", "viewer_key"])
    lineups = pd.DataFrame(
        {
            "session_key": np.repeat(keys, 20),
            "sku": np.array(skus)[rng.integers(0, len(skus), sessions * 20)],
        }
    ).drop_duplicates()
    lineups["live_price_fen"] = rng.integers(5_000, 600_000, len(lineups))
    lineups["coupon_fen"] = 0
    acted = (
        visits.sample(frac=0.5, random_state=1)[["session_key", "viewer_key"]]
        .merge(lineups[["session_key", "sku"]], on="session_key")
        .sample(frac=0.1, random_state=2)
    )
    acted["clicks"] = 1
    acted["carts"] = (rng.random(len(acted)) < 0.3).astype(int)
    paid = acted[acted["carts"] > 0].sample(frac=0.3, random_state=3)
    paid = paid[["session_key", "viewer_key", "sku"]].assign(
        gmv_fen=99_900, known_date=day - pd.Timedelta(days=1)
    )
    products = pd.DataFrame(
        {
            "sku": skus,
            "export_date": DAY,
            "category": [f"cat{i % 8}" for i in range(len(skus))],
            "list_price_fen": rng.integers(10_000, 800_000, len(skus)),
            "energy_grade": rng.integers(1, 6, len(skus)),
        }
    )
    session_products = lineups[["session_key", "sku"]].assign(
        known_date=day,
        exposed=5000,
        clicks=rng.integers(0, 500, len(lineups)),
        carts=rng.integers(0, 100, len(lineups)),
        orders=0,
    )
    history = fan_history(session_rows, visits, paid, acted, lineups, products, session_products)
    return history, products


def score_fans(fans: int = 100_000, products: int = 40, seed: int = 7) -> dict[str, float]:
    """Fans and rows scored, seconds to score them, and seconds for the bare booster on a ready
    float matrix of as many rows (the reference)."""
    rng = np.random.default_rng(seed)
    skus = [f"SKU{i:04d}" for i in range(products * 2)]
    history, catalogue = synthetic_history(fans, skus, 120, rng)
    plan = pd.DataFrame(
        {
            "plan_id": "P1",
            "room_id": "R1",
            "sku": skus[:products],
            "price_fen": rng.integers(5_000, 600_000, products),
            "coupon_fen": 0,
        }
    )
    # A booster of the served size (NUM_ROUNDS trees) on random labels: its speed, not its sense.
    train = fans_as_of(history, DAY).head(2_000)[["room_id", "viewer_key"]]
    train = train.merge(plan, on="room_id").assign(as_of=pd.Timestamp(DAY))
    train["query"] = ranker.query_ids(train, ["viewer_key"])
    features = ranker.rank_features(history, train[[*ranker.CANDIDATE_COLUMNS, "query"]], catalogue)
    booster = ranker.fit(features, rng.integers(0, 4, len(features)))

    started = time.perf_counter()
    rows = 0
    everyone = fans_as_of(history, DAY)
    for bucket in BUCKETS:
        part = dataclasses.replace(
            history,
            **{
                name: frame[frame["viewer_key"].str.startswith(bucket)]
                for name, frame in (
                    ("viewer", history.viewer),
                    ("category", history.category),
                    ("sku", history.sku),
                )
            },
        )
        mine = everyone[everyone["viewer_key"].str.startswith(bucket)]
        rows += len(ranker.rank_for_fans(part, plan, mine, DAY, catalogue, booster))
    seconds = time.perf_counter() - started

    matrix = np.random.default_rng(1).random((rows, len(ranker.FEATURES)), dtype=np.float32)
    started = time.perf_counter()
    booster.predict(matrix, num_threads=ranker.PARAMS["num_threads"])
    return {
        "fans": len(everyone),
        "rows": rows,
        "seconds": seconds,
        "reference_seconds": time.perf_counter() - started,
    }
