"""Plots the Dagster UI shows (PNG bytes, rendered headless)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def importance_png(importance: pd.DataFrame, title: str, top: int = 20) -> bytes:
    """Horizontal bars of the gain share of the `top` features."""
    rows = importance.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(rows) + 1))
    ax.barh(rows["feature"], rows["gain_share"], color="#4c72b0")
    ax.set_xlabel("share of total gain")
    ax.set_title(title)
    return _png(fig)


def forecasts_png(frame: pd.DataFrame, title: str, rooms: int = 9) -> bytes:
    """Per room: the p10–p90 band and p50 of each forecast against the actual GMV, by planned
    start. `frame`: room_id, planned_start, gmv_p10, gmv_p50, gmv_p90, actual_gmv."""
    names = sorted(frame["room_id"].unique())[:rooms]
    cols = 3
    rows = max(1, -(-len(names) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 2.6 * rows), squeeze=False)
    for ax, room in zip(axes.flat, names, strict=False):
        part = frame[frame["room_id"] == room].sort_values("planned_start")
        x = pd.to_datetime(part["planned_start"])
        ax.fill_between(x, part["gmv_p10"], part["gmv_p90"], color="#4c72b0", alpha=0.25,
                        step="mid", label="p10–p90")  # fmt: skip
        ax.plot(x, part["gmv_p50"], color="#4c72b0", lw=1, label="p50")
        ax.scatter(x, part["actual_gmv"], s=6, color="#dd8452", zorder=3, label="actual")
        ax.set_title(str(room), fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return _png(fig)
