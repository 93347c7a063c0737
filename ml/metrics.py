"""Forecast and ranking metrics, on plain arrays (yuan)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def wmape(actual: np.ndarray, predicted: np.ndarray) -> float:
    total = float(np.sum(np.abs(actual)))
    return float(np.sum(np.abs(actual - predicted)) / total) if total else float("nan")


def pinball(actual: np.ndarray, predicted: np.ndarray, alpha: float) -> float:
    diff = actual - predicted
    return float(np.mean(np.maximum(alpha * diff, (alpha - 1) * diff)))


def forecast_metrics(
    frame: pd.DataFrame, p50: str, p10: str | None = None, p90: str | None = None
) -> dict[str, float]:
    """WMAPE, MAE and bias of a point forecast; coverage of [p10, p90] and the mean pinball loss
    of the three quantiles when an interval is given. `frame` holds `actual`."""
    nan = float("nan")
    if frame.empty:
        keys = ["wmape", "mae", "bias", *(["coverage", "pinball"] if p10 and p90 else [])]
        return {"n": 0, **dict.fromkeys(keys, nan)}
    y = frame["actual"].to_numpy(float)
    point = frame[p50].to_numpy(float)
    out = {
        "n": len(frame),
        "wmape": wmape(y, point),
        "mae": float(np.mean(np.abs(y - point))),
        "bias": float(np.sum(point - y) / np.sum(y)) if np.sum(y) else nan,
    }
    if p10 and p90:
        low, high = frame[p10].to_numpy(float), frame[p90].to_numpy(float)
        out["coverage"] = float(np.mean((low <= y) & (y <= high)))
        out["pinball"] = float(
            np.mean([pinball(y, low, 0.1), pinball(y, point, 0.5), pinball(y, high, 0.9)])
        )
    return out


def ranking_metrics(
    frame: pd.DataFrame, score: str, k: int, hit_label: int, relevant: pd.Series | None = None
) -> dict[str, float]:
    """NDCG@k (gains 2^label − 1, Järvelin & Kekäläinen 2002), HitRate@k, Recall@k and MAP@k of
    `score` per `query`, averaged over the queries with a hit: a row whose graded `label` is
    `hit_label` (a paid product). `relevant` (optional mask) narrows which of those count as
    hits (e.g. only those the viewer had interacted with before); queries without such
    products are left out. `{"queries": 0}` when no query has a hit."""
    rows = frame[["query", "label", score]].copy()
    rows["hit"] = rows["label"] == hit_label
    if relevant is not None:
        rows["hit"] &= relevant.to_numpy()
    wanted = rows.groupby("query")["hit"].transform("any")
    rows = rows[wanted]
    if rows.empty:
        return {"queries": 0}
    # Ties broken by the row order (deterministic); rank 1 is the best.
    rows = rows.sort_values(["query", score], ascending=[True, False], kind="stable")
    rows["rank"] = rows.groupby("query").cumcount() + 1
    top = rows["rank"] <= k
    gain = (2.0 ** rows["label"] - 1).to_numpy()
    discount = 1 / np.log2(rows["rank"].to_numpy() + 1)
    dcg = pd.Series(np.where(top, gain * discount, 0.0)).groupby(rows["query"].to_numpy()).sum()
    ideal_gain = rows.sort_values(["query", "label"], ascending=[True, False], kind="stable")
    ideal_rank = ideal_gain.groupby("query").cumcount() + 1
    idcg = (
        pd.Series(
            np.where(
                ideal_rank <= k, (2.0 ** ideal_gain["label"] - 1) / np.log2(ideal_rank + 1), 0.0
            )
        )
        .groupby(ideal_gain["query"].to_numpy())
        .sum()
    )
    hits = rows["hit"] & top
    grouped_hits = hits.groupby(rows["query"]).sum()
    relevant_n = rows["hit"].groupby(rows["query"]).sum()
    precision_at = (hits.groupby(rows["query"]).cumsum() / rows["rank"]).where(hits, 0.0)
    ap = precision_at.groupby(rows["query"]).sum() / np.minimum(relevant_n, k)
    return {
        "queries": len(relevant_n),
        f"ndcg@{k}": float((dcg / idcg.replace(0, np.nan)).mean()),
        f"hitrate@{k}": float((grouped_hits > 0).mean()),
        f"recall@{k}": float((grouped_hits / relevant_n).mean()),
        f"map@{k}": float(ap.mean()),
    }
