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
