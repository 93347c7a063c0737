"""The product recommender: each fan's products of a session, ranked by how likely they buy.

An example is a (session, viewer) pair that paid for a product of the lineup (a query), with every
product of that session's lineup, labelled 0 none, 1 clicked, 2 carted, 3 paid. Features are
known the day before the session: the viewer's history in the room (ml/fans.py), the product as
priced in the lineup, and their match. Serving scores a plan's lineup for each of the room's fans
with the same function (`rank_features`), as of the date of the plan export.

A little over ~400 lines on purpose: examples, features, training, the baselines and the
evaluation share the labels, the feature list and the temporal split, and read best together.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from contract.localtime import local_day
from ml.fans import (
    ACTION_SUMS,
    FAN_DAYS,
    POPULARITY_DAYS,
    ROOM_SKU_SUMS,
    SEGMENTS,
    FanHistory,
    fan_profiles,
    history_start,
    sums_as_of,
)
from ml.metrics import ranking_metrics
from ml.registry import Gate

K = 5
LABELS = {"none": 0, "click": 1, "cart": 2, "paid": 3}
CANDIDATE_COLUMNS = ["room_id", "viewer_key", "sku", "as_of", "price_fen", "coupon_fen"]
FEATURES = [
    # the viewer in the room, over the fan window (`ml.fans.FAN_DAYS`) to the as-of day; since
    # the window bounds the history v_orders is v_orders_365d, both kept so that the rankers
    # in service (trained with both) still score
    "v_sessions", "v_watch_per_session", "v_clicks", "v_carts", "v_orders", "v_log_spend",
    "v_mean_log_price", "v_sessions_28d", "v_orders_365d", "v_last_seen_days", "v_segment",
    # the viewer and this product's category, and this very SKU
    "c_clicks", "c_carts", "c_orders", "c_click_share", "c_order_share",
    "s_clicks", "s_carts", "s_orders",
    # the product as priced in this lineup
    "p_log_price", "p_discount", "p_coupon_share", "p_energy_grade", "p_rel_price",
    "p_rel_discount", "p_lineup_size",
    # the product in the room, the last eight weeks
    "r_click_rate", "r_cart_rate", "r_order_rate", "r_exposed",
    # match
    "m_price_vs_usual",
]  # fmt: skip
PARAMS = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "eval_at": [K],
    "learning_rate": 0.075,
    "num_leaves": 31,
    "min_data_in_leaf": 100,
    "feature_fraction": 0.9,
    "lambdarank_truncation_level": 20,
    "seed": 17,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 2,
    "verbosity": -1,
}
NUM_ROUNDS = 200
TRAIN_DAYS = 365  # the model learns from the sessions of the last year before the evaluation
EVAL_DAYS = 21  # and is evaluated on the three weeks after those
# At most this many buyer queries on the training side of the evaluation, the most recent: a
# year of a big brand would otherwise make tens of millions of rows to fit (each query is a
# whole lineup). The evaluation weeks are not capped, and the examples are built whole first.
MAX_TRAIN_QUERIES = 100_000
# The picks horizon (serving-tables.md, "product_recommendations"): a run for date D ranks the
# plans of that night's export planned for D+1 … D+h; the CRM pushes picks the evening before.
PICKS_HORIZON_DAYS = 1
# Promotion: a challenger's NDCG@K may be worse than the champion's by the gate's tolerance at
# most (the deployment may set it: `ModelStore.tolerance`).
GATE = Gate(metric=f"ndcg@{K}", higher_is_better=True)


def labelled_examples(
    sessions: pd.DataFrame,
    viewer_sessions: pd.DataFrame,
    viewer_products: pd.DataFrame,
    paid: pd.DataFrame,
    lineups: pd.DataFrame,
) -> pd.DataFrame:
    """Candidate rows of past sessions: the buyer queries — (session, viewer) pairs that paid
    for a product of the session's lineup — times the lineup, with the graded label and
    `as_of` (the local day before the session). Bots and test sessions are left out.

    Only buyer queries: the model learns from these (on the demo they rank better than all
    interested queries, and train in a fifth of the time) and is evaluated on these, as the
    operators judge picks by what fans buy. Building them alone keeps the examples a few times
    the paid lines, not the interested viewers times the lineup (tens of millions of rows on a
    big day)."""

    real = sessions.loc[~sessions["is_test"].astype(bool)]
    real = real.assign(session_day=local_day(real["start_time"]))[
        ["session_key", "room_id", "session_day"]
    ]
    bots = viewer_sessions.loc[
        viewer_sessions["is_bot"].astype(bool), ["session_key", "viewer_key"]
    ]
    interest = paid[["session_key", "viewer_key"]].drop_duplicates()
    interest = interest.merge(bots, how="left", indicator=True)
    interest = interest.loc[interest["_merge"] == "left_only", ["session_key", "viewer_key"]]
    queries = interest.merge(real, on="session_key")
    lineup = lineups[["session_key", "sku", "live_price_fen", "coupon_fen"]].rename(
        columns={"live_price_fen": "price_fen"}
    )
    rows = queries.merge(lineup, on="session_key")
    acted = viewer_products.groupby(["session_key", "viewer_key", "sku"])[["clicks", "carts"]].sum()
    bought = paid.groupby(["session_key", "viewer_key", "sku"]).size().rename("paid_lines")
    rows = rows.join(acted, on=["session_key", "viewer_key", "sku"]).join(
        bought, on=["session_key", "viewer_key", "sku"]
    )
    rows["label"] = np.select(
        [
            rows["paid_lines"].fillna(0) > 0,
            rows["carts"].fillna(0) > 0,
            rows["clicks"].fillna(0) > 0,
        ],
        [LABELS["paid"], LABELS["cart"], LABELS["click"]],
        default=LABELS["none"],
    ).astype("int8")
    # A purchase of a product that is not in the lineup (a lineup restated later) is no query.
    shown = rows.groupby(["session_key", "viewer_key"], sort=False)["label"].transform("max")
    rows = rows[shown == LABELS["paid"]].copy()
    rows["as_of"] = rows["session_day"] - pd.Timedelta(days=1)
    rows = rows.drop(columns=["clicks", "carts", "paid_lines"])
    return rows.sort_values(["session_day", "session_key", "viewer_key", "sku"]).reset_index(
        drop=True
    )


def catalog_as_of(products: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """Category, list price and energy grade of each row's SKU as exported by its `as_of` day
    (`products`: every export, with export_date). Aligned to `rows`."""
    versions = products.assign(day=pd.to_datetime(products["export_date"]).astype("datetime64[ns]"))
    versions = versions.sort_values("day")[
        ["sku", "day", "category", "list_price_fen", "energy_grade"]
    ]
    asked = pd.DataFrame(
        {
            "sku": rows["sku"].to_numpy(),
            "as_of": pd.to_datetime(rows["as_of"]).astype("datetime64[ns]").to_numpy(),
        }
    )
    asked["_row"] = np.arange(len(asked))
    joined = pd.merge_asof(
        asked.sort_values("as_of"), versions, left_on="as_of", right_on="day", by="sku"
    ).sort_values("_row")
    return joined[["category", "list_price_fen", "energy_grade"]].set_index(rows.index)


def rank_features(
    history: FanHistory, candidates: pd.DataFrame, products: pd.DataFrame
) -> pd.DataFrame:
    """The feature rows of `candidates` (CANDIDATE_COLUMNS plus a query id `query`), using only
    increments dated up to each row's `as_of`. Training and serving both call this."""
    rows = candidates.reset_index(drop=True)
    catalog = catalog_as_of(products, rows)
    rows = pd.concat([rows, catalog], axis=1)
    rows["category"] = rows["category"].fillna("unknown")

    viewers = rows[["room_id", "viewer_key", "as_of"]].drop_duplicates().reset_index(drop=True)
    profile = pd.concat([viewers, fan_profiles(history, viewers)], axis=1)
    rows = rows.merge(profile, on=["room_id", "viewer_key", "as_of"], how="left")
    keys = ["room_id", "viewer_key"]
    cat = sums_as_of(history.category, [*keys, "category"], ACTION_SUMS, rows, FAN_DAYS)
    sku = sums_as_of(history.sku, [*keys, "sku"], ACTION_SUMS, rows, FAN_DAYS)
    room = sums_as_of(history.room_sku, ["room_id", "sku"], ROOM_SKU_SUMS, rows, POPULARITY_DAYS)

    price = rows["price_fen"].astype(float) / 100
    log_price = np.log(price.clip(lower=0.01))
    discount = 1 - rows["price_fen"] / rows["list_price_fen"].replace(0, np.nan)
    coupon = rows["coupon_fen"].fillna(0).astype(float) / 100
    clicks = rows["clicks_365d"]
    mean_log_price = rows["click_log_price_365d"] / clicks.replace(0, np.nan)
    exposed = room["exposed"].clip(lower=0)
    out = pd.DataFrame(
        {
            "v_sessions": rows["sessions_365d"],
            "v_watch_per_session": rows["watch_s_365d"] / rows["sessions_365d"].replace(0, np.nan),
            "v_clicks": clicks,
            "v_carts": rows["carts_365d"],
            "v_orders": rows["orders_365d"],
            "v_log_spend": np.log1p(rows["spend_365d_fen"] / 100),
            "v_mean_log_price": mean_log_price,
            "v_sessions_28d": rows["sessions_28d"],
            "v_orders_365d": rows["orders_365d"],
            "v_last_seen_days": rows["last_seen_days"],
            "v_segment": rows["segment"].map({s: i for i, s in enumerate(SEGMENTS)}),
            "c_clicks": cat["clicks"].to_numpy(),
            "c_carts": cat["carts"].to_numpy(),
            "c_orders": cat["orders"].to_numpy(),
            "c_click_share": (cat["clicks"].to_numpy() + 0.2) / (clicks + 1.0),
            "c_order_share": (cat["orders"].to_numpy() + 0.2) / (rows["orders_365d"] + 1.0),
            "s_clicks": sku["clicks"].to_numpy(),
            "s_carts": sku["carts"].to_numpy(),
            "s_orders": sku["orders"].to_numpy(),
            "p_log_price": log_price,
            "p_discount": discount,
            "p_coupon_share": coupon / price.replace(0, np.nan),
            "p_energy_grade": pd.to_numeric(rows["energy_grade"], errors="coerce"),
            "r_click_rate": (room["clicks"].to_numpy() + 1) / (exposed.to_numpy() + 50),
            "r_cart_rate": (room["carts"].to_numpy() + 0.5) / (exposed.to_numpy() + 50),
            "r_order_rate": (room["orders"].to_numpy() + 0.2) / (exposed.to_numpy() + 50),
            "r_exposed": exposed.to_numpy(),
            "m_price_vs_usual": log_price - mean_log_price,
        }
    )
    query = rows["query"]
    out["p_rel_price"] = log_price - log_price.groupby(query).transform("mean")
    out["p_rel_discount"] = discount - discount.groupby(query).transform("mean")
    out["p_lineup_size"] = query.map(query.value_counts()).astype(float)
    out = out[FEATURES].astype("float32")
    out.insert(0, "query", query.to_numpy())
    return out


def query_ids(rows: pd.DataFrame, columns: list[str]) -> pd.Series:
    """Consecutive query ids (rows must be sorted so each query's rows are together)."""
    return pd.Series(
        rows.groupby(columns, sort=False, observed=True).ngroup().to_numpy(), index=rows.index
    )


def fit(
    features: pd.DataFrame,
    labels: np.ndarray,
    num_rounds: int = NUM_ROUNDS,
    threads: int = PARAMS["num_threads"],
) -> lgb.Booster:
    """LambdaRank, one query per (session, viewer); group sizes in query order. `threads`: the
    booster's OpenMP threads (results are deterministic for a given count)."""
    groups = features["query"].value_counts(sort=False).reindex(features["query"].unique())
    data = lgb.Dataset(
        features[FEATURES], label=labels, group=groups.to_numpy(), free_raw_data=True
    )
    return lgb.train({**PARAMS, "num_threads": threads}, data, num_boost_round=num_rounds)


def temporal_split(
    examples: pd.DataFrame, last: dt.date, eval_days: int = EVAL_DAYS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sessions of the last `eval_days` up to `last` to evaluate on, the TRAIN_DAYS before
    them to train on."""
    first_eval = pd.Timestamp(evaluation_start(last, eval_days))
    first_train = first_eval - pd.Timedelta(days=TRAIN_DAYS)
    day = examples["session_day"]
    train = examples[(day >= first_train) & (day < first_eval)]
    test = examples[(day >= first_eval) & (day <= pd.Timestamp(last))]
    return train, test


def training_start(last: dt.date, eval_days: int = EVAL_DAYS) -> dt.date:
    """The first local date the fan history of a training as of `last` must hold: the fan
    window (`ml.fans.history_start`) before the as-of day of the first session `temporal_split`
    trains on. Training reads from there, a bounded window however long the history."""
    first_session = evaluation_start(last, eval_days) - dt.timedelta(days=TRAIN_DAYS)
    return history_start(first_session - dt.timedelta(days=1))


def evaluation_start(last: dt.date, eval_days: int = EVAL_DAYS) -> dt.date:
    """The first local date of the sessions `temporal_split` evaluates on; a history that
    starts on it or later leaves nothing to train on."""
    return last - dt.timedelta(days=eval_days - 1)


def latest_queries(examples: pd.DataFrame, queries: int) -> pd.DataFrame:
    """The rows of the `queries` most recent queries (session, viewer) of `examples`, by
    session day, then session and viewer: a bounded training set, in the same row order."""
    keys = ["session_day", "session_key", "viewer_key"]
    heads = examples[keys].drop_duplicates()
    if len(heads) <= queries:
        return examples
    kept = heads.sort_values(keys).tail(queries)[["session_key", "viewer_key"]]
    chosen = pd.MultiIndex.from_frame(examples[["session_key", "viewer_key"]]).isin(
        pd.MultiIndex.from_frame(kept)
    )
    return examples[chosen]


def popularity_score(features: pd.DataFrame) -> np.ndarray:
    """Baseline: the product's paid conversion in the room over the last weeks (then clicks)."""
    return (features["r_order_rate"] + 1e-3 * features["r_click_rate"]).to_numpy()


def affinity_score(features: pd.DataFrame) -> np.ndarray:
    """Baseline: what the viewer bought, carted or clicked before, this SKU first, then its
    category, then the room's popularity as a tie-break."""
    sku = 7 * features["s_orders"] + 3 * features["s_carts"] + features["s_clicks"]
    category = 7 * features["c_orders"] + 3 * features["c_carts"] + features["c_clicks"]
    return (100 * sku + category + features["r_order_rate"]).to_numpy()


def evaluate(
    test: pd.DataFrame,
    scores: dict[str, np.ndarray],
    log: Callable[[str], None] = lambda _: None,
) -> pd.DataFrame:
    """Metrics of each scorer on the same rows: all paid products, then only those the viewer
    had interacted with before (SKU clicked, carted or bought), then only new ones."""
    seen = (test["s_clicks"] + test["s_carts"] + test["s_orders"]) > 0
    rows = []
    for name, values in scores.items():
        frame = test[["query", "label"]].assign(score=values)
        for subset, mask in (("all", None), ("seen_before", seen), ("new", ~seen)):
            rows.append(
                {
                    "scorer": name,
                    "products": subset,
                    **ranking_metrics(frame, "score", K, LABELS["paid"], relevant=mask),
                }
            )
        log(f"{name}: NDCG@{K} {rows[-3].get(f'ndcg@{K}', float('nan')):.4f}")
    return pd.DataFrame(rows)


@dataclass
class Evaluation:
    booster: lgb.Booster  # trained on the training queries and the evaluation weeks' ones
    metrics: dict[str, float]  # headline figures (plain numbers)
    table: pd.DataFrame  # every scorer, every subset
    train_rows: int
    train_first: dt.date
    train_last: dt.date


def train_and_evaluate(
    history: FanHistory,
    examples: pd.DataFrame,
    products: pd.DataFrame,
    last: dt.date,
    oracle: pd.DataFrame | None = None,
    num_rounds: int = NUM_ROUNDS,
    eval_days: int = EVAL_DAYS,
    log: Callable[[str], None] = lambda _: None,
) -> Evaluation | None:
    """Temporal evaluation of the ranker against the baselines (and the oracle's propensities
    where `oracle` has them: session_key, viewer_key, sku, p_click, p_cart, p_buy), then the
    model for service, trained on the same training queries (the `MAX_TRAIN_QUERIES` most recent
    of the TRAIN_DAYS) and every buyer query of the evaluation weeks. None without enough
    data."""
    train, test = temporal_split(examples, last, eval_days)
    train = latest_queries(train, MAX_TRAIN_QUERIES)
    if train.empty or test.empty:
        return None
    log(f"ranker: {len(train):,} training rows, {len(test):,} evaluation rows")
    train_x = _featured(history, train, products)
    test_x = _featured(history, test, products)
    everything = pd.concat(
        [train_x, test_x.assign(query=test_x["query"] + train_x["query"].max() + 1)]
    )
    # The evaluation's booster and the one for service are independent: trained side by side, one
    # OpenMP thread each, the service one on a worker thread (LightGBM releases the GIL), which
    # beats two threads for one after the other.
    with ThreadPoolExecutor(max_workers=1) as pool:
        served = pool.submit(fit, everything, everything["label"].to_numpy(), num_rounds, 1)
        model = fit(train_x, train_x["label"].to_numpy(), num_rounds, 1)
        booster = served.result()
    scores = {
        "model": model.predict(test_x[FEATURES], num_threads=PARAMS["num_threads"]),
        "popularity": popularity_score(test_x),
        "affinity": affinity_score(test_x),
    }
    table = evaluate(test_x, scores, log).assign(rows="all")
    metrics = _headline(table)
    if oracle is not None:
        truth = test[["session_key", "viewer_key", "sku"]].merge(
            oracle, on=["session_key", "viewer_key", "sku"], how="left"
        )
        known = truth["p_buy"].notna().groupby(test_x["query"].to_numpy()).transform("all")
        if known.any():
            mask = known.to_numpy()
            subset = {name: values[mask] for name, values in scores.items()}
            subset["oracle"] = oracle_score(truth)[mask]
            with_truth = evaluate(test_x[mask], subset, log).assign(rows="with_truth")
            table = pd.concat([table, with_truth], ignore_index=True)
            metrics.update(_oracle_headline(with_truth))
    days = pd.concat([train["session_day"], test["session_day"]])
    return Evaluation(
        booster=booster,
        metrics=metrics,
        table=table,
        train_rows=len(everything),
        train_first=days.min().date(),
        train_last=days.max().date(),
    )


def _featured(history: FanHistory, rows: pd.DataFrame, products: pd.DataFrame) -> pd.DataFrame:
    rows = rows.assign(query=query_ids(rows, ["session_key", "viewer_key"]))
    features = rank_features(history, rows[[*CANDIDATE_COLUMNS, "query"]], products)
    return features.assign(label=rows["label"].to_numpy())


def oracle_score(truth: pd.DataFrame) -> np.ndarray:
    """The oracle's expected gain from the true propensities: P(click) + 2 P(cart) + 4 P(paid)
    (the gains 1, 3, 7 of the labels as increments)."""
    return (truth["p_click"] + 2 * truth["p_cart"] + 4 * truth["p_buy"]).to_numpy()


def _headline(table: pd.DataFrame) -> dict[str, float]:
    everyone = table[table["products"] == "all"].set_index("scorer")
    model = everyone.loc["model"]
    best = max(everyone.loc["popularity", f"ndcg@{K}"], everyone.loc["affinity", f"ndcg@{K}"])
    return {
        f"ndcg@{K}": float(model[f"ndcg@{K}"]),
        f"hitrate@{K}": float(model[f"hitrate@{K}"]),
        f"recall@{K}": float(model[f"recall@{K}"]),
        f"map@{K}": float(model[f"map@{K}"]),
        "queries": int(model["queries"]),
        "popularity_ndcg": float(everyone.loc["popularity", f"ndcg@{K}"]),
        "affinity_ndcg": float(everyone.loc["affinity", f"ndcg@{K}"]),
        "ratio_to_best_heuristic": float(model[f"ndcg@{K}"] / best) if best else float("nan"),
    }


def _oracle_headline(table: pd.DataFrame) -> dict[str, float]:
    everyone = table[table["products"] == "all"].set_index("scorer")
    model, oracle = everyone.loc["model", f"ndcg@{K}"], everyone.loc["oracle", f"ndcg@{K}"]
    return {
        "truth_queries": int(everyone.loc["model", "queries"]),
        "model_ndcg_with_truth": float(model),
        "oracle_ndcg": float(oracle),
        "ratio_to_oracle": float(model / oracle) if oracle else float("nan"),
        "oracle_ratio_to_best_heuristic": float(
            oracle
            / max(everyone.loc["popularity", f"ndcg@{K}"], everyone.loc["affinity", f"ndcg@{K}"])
        ),
    }


def rank_for_fans(
    history: FanHistory,
    lineups: pd.DataFrame,
    fans: pd.DataFrame,
    as_of: dt.date,
    products: pd.DataFrame,
    booster: lgb.Booster,
) -> pd.DataFrame:
    """Each fan's ranking of each plan's lineup. `lineups`: plan_id, room_id, sku, price_fen,
    coupon_fen; `fans`: room_id, viewer_key. Returns plan_id, viewer_key, sku, rank (1 … n, no
    ties: equal scores are broken by SKU) and score. Raises ValueError when `booster` was
    trained on other features than `FEATURES` (a ranker of an older release: retrain it)."""
    if booster.feature_name() != FEATURES:
        differ = sorted(set(booster.feature_name()) ^ set(FEATURES))
        raise ValueError(
            f"the ranker was trained on other features than this release computes ({differ}):"
            " train and promote a new one"
        )
    rows = fans[["room_id", "viewer_key"]].merge(lineups, on="room_id")
    if rows.empty:
        return pd.DataFrame(columns=["plan_id", "viewer_key", "sku", "rank", "score"])
    rows = rows.sort_values(["plan_id", "viewer_key", "sku"]).reset_index(drop=True)
    rows["as_of"] = pd.Timestamp(as_of)
    rows["query"] = query_ids(rows, ["plan_id", "viewer_key"])
    features = rank_features(history, rows[[*CANDIDATE_COLUMNS, "query"]], products)
    out = rows[["plan_id", "viewer_key", "sku"]].assign(
        score=booster.predict(features[FEATURES], num_threads=PARAMS["num_threads"])
    )
    out = out.sort_values(
        ["plan_id", "viewer_key", "score", "sku"], ascending=[True, True, False, True]
    )
    out["rank"] = out.groupby(["plan_id", "viewer_key"], sort=False).cumcount() + 1
    return out[["plan_id", "viewer_key", "sku", "rank", "score"]].reset_index(drop=True)
