"""The Chinese e-commerce calendar as the planners know it: promotion phases and big days.

Public knowledge, not learnt: 618 and Double 11 with their pre-sales, Double 12, Women's Day,
and the Spring Festival lull. A feature of a planned session is its phase and the days to the
next big promotion day.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

SPRING_FESTIVAL = {
    2025: dt.date(2025, 1, 29),
    2026: dt.date(2026, 2, 17),
    2027: dt.date(2027, 2, 6),
}
BIG_DAYS = ((6, 18), (11, 11), (12, 12))
# (first (month, day), last (month, day), phase), the first match wins.
PHASES = (
    ((11, 11), (11, 11), "d11_day"),
    ((11, 1), (11, 10), "d11"),
    ((10, 20), (10, 31), "d11_presale"),
    ((11, 12), (11, 13), "d11_after"),
    ((6, 18), (6, 18), "618_day"),
    ((6, 1), (6, 17), "618"),
    ((5, 20), (5, 31), "618_presale"),
    ((12, 10), (12, 12), "d12"),
    ((3, 1), (3, 8), "womens_day"),
)
PHASE_NAMES = ("none", "spring_festival", *(name for _, _, name in PHASES))
# How strong a phase is, on one scale for every promotion, so that what 618 taught a model
# carries over to a Double 11 it has not seen yet: lull, none, pre-sale or after, period, day.
STAGE = {
    "spring_festival": -1, "none": 0, "618_presale": 1, "d11_presale": 1, "d11_after": 1,
    "618": 2, "d11": 2, "d12": 2, "womens_day": 2, "618_day": 3, "d11_day": 3,
}  # fmt: skip
PRESALE = {"618_presale", "d11_presale"}


def promotion_phase(day: dt.date) -> str:
    festival = SPRING_FESTIVAL.get(day.year)
    if festival is not None and abs((day - festival).days) <= 7:
        return "spring_festival"
    md = (day.month, day.day)
    for first, last, name in PHASES:
        if first <= md <= last:
            return name
    return "none"


def days_to_next_big_day(day: dt.date) -> int:
    candidates = [
        dt.date(year, month, d) for year in (day.year, day.year + 1) for month, d in BIG_DAYS
    ]
    return min((c - day).days for c in candidates if c >= day)


def calendar_features(local_dates: pd.Series) -> pd.DataFrame:
    """Per local date: promotion phase (categorical) and stage, pre-sale or not, days to the next
    big day, weekday."""
    unique = pd.Series(pd.unique(local_dates))
    table = pd.DataFrame(
        {
            "date": unique,
            "promo_phase": [promotion_phase(d) for d in unique],
            "days_to_big_day": [days_to_next_big_day(d) for d in unique],
        }
    ).set_index("date")
    out = table.reindex(local_dates.to_numpy()).reset_index(drop=True)
    out.index = local_dates.index
    out["promo_stage"] = out["promo_phase"].map(STAGE).astype(int)
    out["is_presale"] = out["promo_phase"].isin(PRESALE).astype(int)
    out["promo_phase"] = pd.Categorical(out["promo_phase"], categories=PHASE_NAMES)
    out["weekday"] = [d.weekday() for d in local_dates]
    return out
