"""The exports room: what the platforms export each day (sessions, lineups, orders, refunds,
queued by export date as sessions and lines happen), when each folder lands, and the brand's
catalogue. The files' formats and dirt are `landing.py`'s; their fields are the contract's."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from contract.dialects import BRAND_FILES, LOGICAL_FIELDS
from contract.enums import PLATFORMS
from contract.layout import folder, mark_success
from simulator.behaviour import MINUTE_MS
from simulator.context import DAY_MS, Context, local_date, local_midnight_ms, utc_naive
from simulator.landing import write_platform_export
from simulator.truth import Truth
from simulator.world import BRAND

if TYPE_CHECKING:
    from simulator.sessions import Session


def field_names(table: str) -> list[str]:
    """The contract's logical field names of `table`, in its order."""
    return [f.name for f in LOGICAL_FIELDS[table]]


def write_brand_file(landing: Path, table: str, day: dt.date, rows: list[dict] | dict) -> Path:
    """Write a brand file (catalogue, plan) of `day`, its columns those of the contract; return
    its folder."""
    path = landing / BRAND_FILES[table].format(date=day.isoformat())
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows, columns=field_names(table))
    frame.to_csv(path, index=False, lineterminator="\n")
    return path.parent


ORDER_FIELDS = field_names("orders")
TIME_COLUMNS = {t: [f.name for f in fs if f.kind == "time"] for t, fs in LOGICAL_FIELDS.items()}
FAULT_OF_KIND = {  # a session row's kind -> the fault it carries
    "live": [("still_live", "end time empty")],
    "revised": [("changed_reexport", "revised values")],
    "final": [],
}


class Exports:
    def __init__(self, ctx: Context, truth: Truth, as_of_ms: int):
        self.ctx = ctx
        self.truth = truth
        self.as_of_ms = as_of_ms  # folders landing later get no _SUCCESS
        # export date -> rows waiting to be exported that day
        self.sessions: dict[dt.date, list[tuple[Session, str]]] = defaultdict(list)
        self.orders: dict[dt.date, list[dict]] = defaultdict(list)
        self.refunds: dict[dt.date, list[dict]] = defaultdict(list)

    def schedule_session(self, session: Session, day: dt.date) -> None:
        """A session lands in its day's folder; still live at midnight, again final the next
        day; now and then re-exported the next day with revised values."""
        cut = local_midnight_ms(day + dt.timedelta(days=1))
        if session.end_ms > cut:
            self.sessions[day].append((session, "live"))
            self.sessions[day + dt.timedelta(days=1)].append((session, "final"))
        else:
            self.sessions[day].append((session, "final"))
            if self.ctx.rng.random() < self.ctx.fault_rates.changed_reexport:
                self.sessions[day + dt.timedelta(days=1)].append((session, "revised"))

    def schedule_line(self, line: dict) -> None:
        """A line lands whole in its creation date's folder and again each date it changes."""
        dates = sorted({local_date(ts) for ts, _ in line["timeline"]})
        held_back = self.ctx.rng.random() < self.ctx.fault_rates.partial_orders
        for i, day in enumerate(dates):
            if i == 0 and held_back:
                # The platform's export left this line out: it first lands a day later.
                later = day + dt.timedelta(days=1)
                self.orders[later].append({"line": line, "as_of": day, "fault": "partial_orders"})
                continue
            self.orders[day].append({"line": line, "as_of": day, "fault": None})

    def schedule_refund(self, refund: dict, day: dt.date) -> None:
        self.refunds[day].append(refund)

    def land_day(self, day: dt.date) -> None:
        """Each platform's folder of `day`, landing after midnight (now and then days late)."""
        ctx, rng, rates = self.ctx, self.ctx.rng, self.ctx.rates
        landed_at = (
            local_midnight_ms(day + dt.timedelta(days=1))
            + int(rng.integers(*rates.landed_after_min)) * MINUTE_MS
        )
        for platform in PLATFORMS:
            late = rng.random() < ctx.fault_rates.late_folder
            days_late = int(rng.integers(*rates.late_folder_days)) if late else 0
            landed = landed_at + days_late * DAY_MS
            self._write_sessions(platform, day)
            self._write_orders(platform, day)
            self._write_refunds(platform, day)
            name = f"{platform}/{day.isoformat()}"
            if late:
                detail = f"landed {utc_naive(landed)} UTC"
                ctx.fault_log.add("late_folder", name, None, platform, detail)
            self.truth.folders.append(
                {"folder": name, "landed_at": utc_naive(landed), "late": late}
            )
            if landed <= self.as_of_ms:
                mark_success(folder(ctx.landing, platform, day))

    def _session_row(self, session: Session, kind: str, day: dt.date) -> dict:
        cut = local_midnight_ms(day + dt.timedelta(days=1))
        stats = dict(session.stats)
        end: int | None = session.end_ms
        if kind == "live":
            share = (cut - session.start_ms) / max(1, session.end_ms - session.start_ms)
            stats = {k: (int(v * share) if isinstance(v, int) else v) for k, v in stats.items()}
            end = None
        if kind == "revised":
            stats["views"] = int(stats["views"] * self.ctx.rates.revised_views) + 1
            stats["likes"] = int(stats["likes"] * self.ctx.rates.revised_likes) + 1
        paid = [ln for ln in session.lines if 0 <= ln["paid_ms"] <= cut]
        return {
            "session_id": session.session_id,
            "room_id": session.room.room_id,
            "room_name": session.room.room_name,
            "host_id": session.host_id,
            "title": session.title,
            "start_time": session.start_ms,
            "end_time": end,
            "gmv": sum(ln["paid"] for ln in paid),
            "orders": len(paid),
            **stats,
        }

    def _write_sessions(self, platform: str, day: dt.date) -> None:
        todo = [(s, k) for s, k in self.sessions.get(day, []) if s.room.platform == platform]
        rows = [self._session_row(s, k, day) for s, k in todo]
        tags = [FAULT_OF_KIND[k] for _, k in todo]
        frame = pd.DataFrame(rows, columns=field_names("sessions"))
        self._write(platform, "sessions", day, frame, tags)
        lineup_rows = []
        cat = self.ctx.world.catalogue
        for s, _ in todo:
            lu = s.lineup
            for i in range(len(lu.product)):
                lineup_rows.append(
                    {
                        "session_id": s.session_id,
                        "sku": str(cat.sku[lu.product[i]]),
                        "listed_at": int(s.listed_ms[i]),
                        "live_price": int(lu.live_price_fen[i]),
                        "strike_price": int(lu.strike_price_fen[i]),
                        "coupon": int(lu.coupon_fen[i]) if lu.coupon_fen[i] else None,
                        "stock": int(lu.stock[i]),
                    }
                )
        frame = pd.DataFrame(lineup_rows, columns=field_names("lineup"))
        frame["coupon"] = frame["coupon"].astype("Int64")
        self._write(platform, "lineup", day, frame, None)

    def _write_orders(self, platform: str, day: dt.date) -> None:
        cut = local_midnight_ms(day + dt.timedelta(days=1))
        entries = [
            e
            for e in self.orders.get(day, [])
            if e["line"]["session_key"].startswith(platform + ":")
        ]
        rows, tags = [], []
        for e in entries:
            line = e["line"]
            status = [s for ts, s in line["timeline"] if ts < cut][-1]
            rows.append(
                {
                    **{k: line[k] for k in ORDER_FIELDS if k in line},  # as the line keeps it
                    "created_at": line["created_ms"],
                    "paid_at": line["paid_ms"] if 0 <= line["paid_ms"] < cut else None,
                    "status": status,
                }
            )
            tags.append([(e["fault"], "held back from its creation folder")] if e["fault"] else [])
        frame = pd.DataFrame(rows, columns=field_names("orders"))
        self._write(platform, "orders", day, frame, tags)

    def _write_refunds(self, platform: str, day: dt.date) -> None:
        rows = [
            {
                "refund_id": r["refund_id"],
                "order_id": r["order_id"],
                "amount": r["amount"],
                "refunded_at": r["refunded_ms"],
                "reason": r["reason"],
            }
            for r in self.refunds.get(day, [])
            if r["platform"] == platform
        ]
        frame = pd.DataFrame(rows, columns=field_names("refunds"))
        self._write(platform, "refunds", day, frame, None)

    def _write(self, platform, table, day, frame, tags) -> None:
        for c in TIME_COLUMNS[table]:  # epoch ms -> UTC datetimes
            frame[c] = pd.to_datetime(frame[c].astype("float64"), unit="ms")
        ctx = self.ctx
        write_platform_export(
            ctx.landing, platform, table, day, frame, ctx.fault_rates, ctx.rng, ctx.fault_log, tags
        )

    def catalogue(self, day: dt.date, first: bool) -> None:
        """The brand's catalogue of `day`: on the first day, and on any day a list price
        changes or a product comes within the lead time of its launch."""
        cat = self.ctx.world.catalogue
        changes = cat.price_changes.get(day, [])
        for idx, fen in changes:
            cat.list_price_fen[idx] = fen
        horizon = day + dt.timedelta(days=self.ctx.rates.catalogue_lead_days)
        launching = any(d == horizon for d in cat.launch_date)
        if not (first or changes or launching):
            return
        listed = np.array([d <= horizon for d in cat.launch_date])
        products = {
            "sku": cat.sku[listed],
            "brand": BRAND,
            "category": cat.category[listed],
            "subcategory": cat.subcategory[listed],
            "list_price": [f"{v / 100:.2f}" for v in cat.list_price_fen[listed]],
            "energy_grade": [str(g) if g else "" for g in cat.energy_grade[listed]],
            "launch_date": [
                d.isoformat() for d, keep in zip(cat.launch_date, listed, strict=True) if keep
            ],
        }
        mark_success(write_brand_file(self.ctx.landing, "products", day, products))
