"""The day-by-day simulation: plans are exported, sessions happen, exports and events land.

`simulate(preset, out, seed)` writes `<out>/landing` (the contract's layout) and `<out>/truth`
(the ground truth the pipeline never reads). The same seed and preset give the same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from contract.dialects import BRAND_FILES, LOGICAL_FIELDS
from contract.enums import CATEGORIES, EVENT_TYPES, PLAN_DAYS, PLATFORMS
from contract.layout import folder, mark_success
from contract.localtime import LOCAL_OFFSET_MS, LOCAL_OFFSET_TEXT, LOCAL_TIMEZONE
from simulator.behaviour import (
    COMMENTS,
    EVENT_CODE,
    MINUTE_MS,
    PAY_RATE,
    Lineup,
    SessionPlan,
    expected_viewers,
    oracle_gmv,
    peak_online,
    run_session,
)
from simulator.config import Preset
from simulator.landing import EventParts, FaultLog, write_platform_export
from simulator.world import (
    BRAND,
    OS_NAMES,
    STREETS,
    Room,
    World,
    build_world,
    promotion_effect,
)

log = logging.getLogger("simulator")

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
BOT_COMMENT = COMMENTS.index("666")  # what a bot comments
REFUND_REASONS = ("七天无理由退货", "商品破损", "价格保护", "不想要了", "发错货", "质量问题")
PROMO_TITLES = {(11, 11): "双11狂欢夜", (6, 18): "618年中大促"}  # (month, day) -> in the title
CATEGORY_TITLES = {
    "kitchen": "厨房好物",
    "large_appliance": "大家电焕新",
    "small_appliance": "小家电专场",
    "personal_care": "个护精选",
    "smart_home": "智能家居",
}
TEST_TITLES = ("测试直播-勿下单", "Test stream 推流测试", "test")
ID_STYLES = {
    "session": {
        "douyin": lambda k: f"73{k * 7919 + 10**15:017d}",
        "taobao": lambda k: f"{400_000_000 + k * 37}",
        "jd": lambda k: f"{80_000_000 + k * 13}",
    },
    "order": {
        "douyin": lambda k: f"69{k * 104723 + 10**16:018d}",
        "taobao": lambda k: f"{3 * 10**17 + k * 7:018d}",
        "jd": lambda k: f"{2 * 10**11 + k * 3}",
    },
    "refund": {
        "douyin": lambda k: f"6{k * 9973 + 10**17:018d}",
        "taobao": lambda k: f"R{10**14 + k * 11}",
        "jd": lambda k: f"{5 * 10**9 + k}",
    },
}


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


def local_midnight_ms(day: dt.date) -> int:
    """Epoch ms (UTC) of 00:00 local on `day`."""
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=LOCAL_TIMEZONE).timestamp() * 1000)


def local_date(ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, LOCAL_TIMEZONE).date()


def utc_naive(ms) -> pd.Series | pd.Timestamp:
    return pd.to_datetime(ms, unit="ms")


@dataclass
class Plan:
    plan_id: str
    room: Room
    day: dt.date
    start_ms: int
    minutes: int
    versions: list[tuple[dt.date, str, Lineup]]  # (effective from export date, host, lineup)
    reservations: float
    cancelled_on: dt.date | None = None
    session_key: str | None = None

    def version_at(self, export_day: dt.date) -> tuple[str, Lineup]:
        current = self.versions[0]
        for v in self.versions:
            if v[0] <= export_day:
                current = v
        return current[1], current[2]


@dataclass
class Session:
    key: str
    session_id: str
    room: Room
    host_id: str
    title: str
    start_ms: int
    end_ms: int
    lineup: Lineup
    listed_ms: np.ndarray
    plan_id: str | None
    is_test: bool
    stats: dict[str, float]
    lines: list[dict] = field(default_factory=list)  # order lines (latent)


class Simulation:
    def __init__(self, preset: Preset, out: Path, seed: int, as_of: dt.datetime | None = None):
        self.preset = preset
        self.rates = preset.faults
        self.world_rates = preset.world_rates
        self.landing = out / "landing"
        self.truth = out / "truth"
        self.rng = np.random.default_rng(seed)
        self.world: World = build_world(preset, self.rng)
        self.faults = FaultLog()
        end_of_data = (
            local_midnight_ms(preset.end + dt.timedelta(days=1))
            + preset.world_rates.settled_h * HOUR_MS
        )
        self.as_of_ms = int(as_of.timestamp() * 1000) if as_of else end_of_data
        self.plans: dict[str, Plan] = {}
        self.plans_by_day: dict[dt.date, list[Plan]] = defaultdict(list)
        self.sessions: dict[str, Session] = {}
        # export date -> rows waiting to be exported that day
        self.session_exports: dict[dt.date, list[tuple[Session, str]]] = defaultdict(list)
        self.order_exports: dict[dt.date, list[dict]] = defaultdict(list)
        self.refund_exports: dict[dt.date, list[dict]] = defaultdict(list)
        self.event_buffer: dict[dt.date, dict[str, list[tuple[list[str], list]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self.today = preset.start
        self.event_parts: EventParts | None = None  # the open events folder of `today`
        self.truth_sessions: list[dict] = []
        self.truth_propensity: list[pd.DataFrame] = []
        self.folders: list[dict] = []
        self.counters = defaultdict(int)
        self.event_count = 0

    # ----------------------------------------------------------------------------- plans

    def make_plans(self) -> None:
        """Every room's planned sessions over the window and a week beyond."""
        wr = self.world_rates
        days = [
            self.preset.start + dt.timedelta(days=i) for i in range(self.preset.days + PLAN_DAYS)
        ]
        for day in days:
            for room in self.world.rooms:
                for slot_no, (hour, minute, minutes) in enumerate(room.schedule[day.weekday()]):
                    if self.rng.random() < wr.slot_unplanned:
                        continue
                    start = local_midnight_ms(day) + (hour * 60 + minute) * MINUTE_MS
                    plan_id = f"PL-{day:%Y%m%d}-{room.index:03d}-{slot_no}"
                    host = str(self.rng.choice(room.hosts, p=room.host_weights))
                    lineup = self.make_lineup(room, day)
                    plan = Plan(
                        plan_id,
                        room,
                        day,
                        start,
                        minutes,
                        [(day - dt.timedelta(days=wr.plan_lead_days), host, lineup)],
                        0.0,
                    )
                    if self.rng.random() < wr.plan_revised:
                        changed = dt.date.fromordinal(
                            day.toordinal() - int(self.rng.integers(*wr.plan_revised_days))
                        )
                        new_host = (
                            str(self.rng.choice(room.hosts))
                            if self.rng.random() < wr.revised_new_host
                            else host
                        )
                        new_lineup = self.reprice(lineup, day)
                        plan.versions.append((changed, new_host, new_lineup))
                    if self.rng.random() < wr.plan_cancelled:
                        plan.cancelled_on = dt.date.fromordinal(
                            day.toordinal() - int(self.rng.integers(*wr.plan_cancelled_days))
                        )
                    host_final, lineup_final = plan.version_at(day)
                    mu = expected_viewers(
                        self.world, SessionPlan(room, host_final, day, start, minutes, lineup_final)
                    )
                    plan.reservations = (
                        mu
                        * wr.reservations_per_viewer
                        * float(self.rng.lognormal(0, wr.reservation_sigma))
                    )
                    self.plans[plan_id] = plan
                    self.plans_by_day[day].append(plan)

    def make_lineup(self, room: Room, day: dt.date) -> Lineup:
        cat = self.world.catalogue
        available = np.array([d <= day for d in cat.launch_date])
        weights = room.focus[cat.category_index()] * available
        size = int(min(available.sum(), self.rng.integers(*self.world_rates.lineup_size)))
        products = self.rng.choice(len(cat), size=size, replace=False, p=weights / weights.sum())
        return self._price(products, day)

    def _price(self, products: np.ndarray, day: dt.date) -> Lineup:
        cat, wr, n = self.world.catalogue, self.world_rates, len(products)
        _, _, promo_disc = promotion_effect(day)
        strike = cat.list_price_fen[products]
        disc = np.clip(self.rng.uniform(*wr.discount, n) + promo_disc, 0, wr.max_discount)
        # Whole yuan ending in 9 (below 100 yuan: in 0).
        live = np.maximum(
            (strike * (1 - disc) / 100).astype(np.int64) * 100 - 100 + 100 * (strike < 10000),
            wr.min_live_price_fen,
        )
        live = np.minimum(live, strike)
        coupon = np.where(
            self.rng.random(n) < wr.coupon, self.rng.choice(np.array(wr.coupon_faces_fen), n), 0
        )
        coupon = np.where(coupon > live * wr.coupon_max_share, 0, coupon)
        stock = self.rng.integers(*wr.stock, n)
        return Lineup(
            products, live.astype(np.int64), strike.astype(np.int64), coupon.astype(np.int64), stock
        )

    def reprice(self, lineup: Lineup, day: dt.date) -> Lineup:
        live = lineup.live_price_fen.copy()
        k = int(self.rng.integers(len(live)))
        wr = self.world_rates
        live[k] = max(wr.min_live_price_fen, int(live[k] * wr.revised_price) // 100 * 100)
        return Lineup(
            lineup.product, live, lineup.strike_price_fen, lineup.coupon_fen, lineup.stock
        )

    # ----------------------------------------------------------------------------- sessions

    def new_id(self, kind: str, platform: str) -> str:
        """The next session, order or refund id, in each platform's own style."""
        k = self.counters[f"{kind}:{platform}"] = self.counters[f"{kind}:{platform}"] + 1
        return ID_STYLES[kind][platform](k)

    def realise_day(self, day: dt.date) -> list[Session]:
        wr = self.world_rates
        sessions = []
        for plan in self.plans_by_day[day]:
            if plan.cancelled_on is not None:
                continue
            host, lineup = plan.version_at(day)
            start = plan.start_ms + int(self.rng.normal(0, wr.start_jitter_min) * MINUTE_MS)
            minutes = int(plan.minutes * self.rng.uniform(*wr.length_factor))
            sessions.append(
                self.play(plan.room, host, day, start, minutes, lineup, plan.plan_id, False)
            )
            plan.session_key = sessions[-1].key
        for room in self.world.rooms:
            if self.rng.random() < wr.unplanned_session:
                start = local_midnight_ms(day) + self.minute_in(wr.unplanned_start_hours)
                host = str(self.rng.choice(room.hosts))
                lineup = self.make_lineup(room, day)
                sessions.append(
                    self.play(room, host, day, start, wr.unplanned_minutes, lineup, None, False)
                )
            if self.rng.random() < self.rates.test_session:
                start = local_midnight_ms(day) + self.minute_in(wr.test_start_hours)
                kind = int(self.rng.integers(3))
                session = self.play(
                    room,
                    room.hosts[0],
                    day,
                    start,
                    wr.test_minutes,  # a short test's own length is drawn by play
                    self.make_lineup(room, day),
                    None,
                    True,
                    kind,
                )
                sessions.append(session)
        return sessions

    def duration(self, span: tuple[int, int], unit_ms: int) -> int:
        """A duration in ms drawn between span[0] and span[1] units (to the ms)."""
        return int(self.rng.integers(span[0] * unit_ms, span[1] * unit_ms))

    def minute_in(self, hours: tuple[int, int]) -> int:
        """A whole minute drawn between two local hours, in ms after midnight."""
        return int(self.rng.integers(hours[0] * 60, hours[1] * 60)) * MINUTE_MS

    def play(
        self, room: Room, host: str, day: dt.date, start: int, minutes: int, lineup: Lineup,
        plan_id: str | None, is_test: bool, test_kind: int = 0,
    ) -> Session:  # fmt: skip
        platform, wr = room.platform, self.world_rates
        sid = self.new_id("session", platform)
        key = f"{platform}:{sid}"
        end = start + minutes * MINUTE_MS
        if is_test and test_kind == 1:
            end = start + int(self.rng.integers(*wr.short_test_s)) * 1000
        plan = SessionPlan(room, host, day, start, max(1, (end - start) // MINUTE_MS), lineup)
        outcome = None if is_test else run_session(self.world, plan, end, self.rng)
        title = (
            self.title(day, lineup)
            if not is_test or test_kind != 0
            else str(self.rng.choice(TEST_TITLES))
        )
        listed = start + self.rng.integers(
            -wr.listed_before_min * MINUTE_MS, max(1, (end - start) // 2), len(lineup.product)
        )
        session = Session(
            key, sid, room, host, title, start, end, lineup, listed, plan_id, is_test, {}
        )
        self.sessions[key] = session
        if outcome is not None:
            self.record_outcome(session, outcome)
            oracle = oracle_gmv(self.world, plan, self.rng)
        else:
            viewers = 0 if test_kind == 2 else int(self.rng.integers(*wr.test_viewers))
            session.stats = {
                "viewers": viewers,
                "avg_watch_s": wr.test_watch_s,
                "peak_online": min(wr.test_peak_online, viewers),
                "views": viewers + wr.test_repeat_views,
                "new_followers": 0,
                "comments": wr.test_comments,
                "likes": wr.test_likes,
            }
            self.test_orders(session)
            oracle = {}
        self.truth_sessions.append(
            {
                "session_key": key,
                "platform": platform,
                "session_id": sid,
                "room_id": room.room_id,
                "host_id": host,
                "plan_id": plan_id,
                "start_time": utc_naive(start),
                "end_time": utc_naive(end),
                "is_test": is_test,
                **oracle,
            }
        )
        if is_test:
            self.faults.add(
                "test_session", f"{platform}/{day.isoformat()}/sessions", None, sid, title
            )
        self.schedule_session_exports(session, day)
        return session

    def title(self, day: dt.date, lineup: Lineup) -> str:
        promo = PROMO_TITLES.get((day.month, day.day), "")
        cat = CATEGORIES[
            int(np.bincount(self.world.catalogue.category_index()[lineup.product]).argmax())
        ]
        extra = ',"限时"秒杀' if self.rng.random() < self.world_rates.title_flash_sale else ""
        return f"{BRAND}{promo}{CATEGORY_TITLES[cat]}{extra}"

    def record_outcome(self, session: Session, outcome) -> None:
        pool = self.world.pools[session.room.index]
        n = len(outcome.viewers)
        watch = (outcome.leave_ms - outcome.enter_ms) / 1000
        session.stats = {
            "viewers": n,
            "views": int(n + outcome.rejoin.sum()),
            "peak_online": peak_online(outcome.enter_ms, outcome.leave_ms),
            "avg_watch_s": round(float(watch.mean()) if n else 0.0, 1),
            "new_followers": outcome.new_followers,
            "comments": int((outcome.events["type"] == EVENT_CODE["comment"]).sum()),
            "likes": int((outcome.events["type"] == EVENT_CODE["like"]).sum()),
        }
        self.make_orders(session, outcome)
        self.emit_events(session, outcome)
        # Truth: the propensities of the viewers who showed interest (the recommender's examples).
        pick = outcome.interested[: self.preset.propensity_sample]
        if len(pick):
            pc, pa, pp = (p[pick] for p in outcome.propensity)
            j = len(session.lineup.product)
            skus = self.world.catalogue.sku[session.lineup.product]
            self.truth_propensity.append(
                pd.DataFrame(
                    {
                        "session_key": session.key,
                        "viewer_id": np.repeat(
                            np.array(pool.ids, dtype=object)[outcome.viewers[pick]], j
                        ),
                        "sku": np.tile(skus, len(pick)),
                        "p_click": pc.ravel().round(6),
                        "p_cart": (pc * pa).ravel().round(6),
                        "p_buy": (pc * pa * pp * PAY_RATE).ravel().round(6),  # a paid order
                    }
                )
            )

    def make_orders(self, session: Session, outcome) -> None:
        pool = self.world.pools[session.room.index]
        o = outcome.orders
        for k in range(len(o["created"])):
            v = int(outcome.viewers[o["viewer"][k]])
            p = int(o["product"][k])
            qty = int(o["qty"][k])
            unit = int(session.lineup.live_price_fen[p])
            paid_amount = max(unit * qty - int(session.lineup.coupon_fen[p]), 1)
            self.add_line(
                session,
                pool.ids[v],
                v,
                p,
                qty,
                unit,
                paid_amount,
                int(o["created"][k]),
                int(o["paid"][k]),
            )

    def test_orders(self, session: Session) -> None:
        pool, wr = self.world.pools[session.room.index], self.world_rates
        for _ in range(int(self.rng.integers(*wr.test_order_lines))):
            v = int(self.rng.integers(len(pool)))
            p = int(self.rng.integers(len(session.lineup.product)))
            unit = int(session.lineup.live_price_fen[p])
            created = session.start_ms + wr.test_order_after_s * 1000
            paid = created + wr.test_paid_after_s * 1000
            self.add_line(session, pool.ids[v], v, p, 1, unit, unit, created, paid)

    def add_line(self, session, buyer, v, p, qty, unit, paid_amount, created, paid) -> None:
        platform, wr = session.room.platform, self.world_rates
        province, city = self.world.cities[int(self.world.pools[session.room.index].home[v])]
        timeline = [(created, "unpaid")]
        if paid >= 0:
            shipped = paid + self.duration(wr.shipped_after_h, HOUR_MS)
            finished = shipped + self.duration(wr.finished_after_days, DAY_MS)
            timeline += [(paid, "paid"), (shipped, "shipped"), (finished, "finished")]
        else:
            timeline.append((created + wr.unpaid_closed_after_min * MINUTE_MS, "closed"))
        line = {
            "order_id": self.new_id("order", platform),
            "session_id": session.session_id,
            "sku": str(self.world.catalogue.sku[session.lineup.product[p]]),
            "buyer_id": buyer,
            "phone": f"1{3 + v % 7}{(v * 7919 + 12345678) % 10**9:09d}",
            "province": province,
            "city": city,
            "address": f"{city}{STREETS[v % len(STREETS)]}{v % 300 + 1}号"
            f"{v % 20 + 1}栋{v % 30 + 101}室",
            "quantity": qty,
            "unit_price": unit,
            "paid": paid_amount,
            "created_ms": created,
            "paid_ms": paid,
            "timeline": timeline,
            "session_key": session.key,
        }
        if paid >= 0 and self.rng.random() < wr.refunded:
            self.make_refunds(line)
        session.lines.append(line)
        self.schedule_order_exports(line)

    def make_refunds(self, line: dict) -> None:
        platform, wr = line["session_key"].split(":")[0], self.world_rates
        when = line["paid_ms"] + self.duration(wr.refund_after_h, HOUR_MS)
        full = self.rng.random() < wr.refund_full
        amounts = (
            [line["paid"]]
            if full
            else [max(1, int(line["paid"] * self.rng.uniform(*wr.refund_part)))]
        )
        if not full and self.rng.random() < wr.second_refund:
            left = line["paid"] - amounts[0]
            amounts.append(max(1, int(left * self.rng.uniform(*wr.refund_part))))
        for i, amount in enumerate(amounts):
            at = when + i * self.duration(wr.second_refund_after_h, HOUR_MS)
            refund = {
                "refund_id": self.new_id("refund", platform),
                "order_id": line["order_id"],
                "amount": amount,
                "refunded_ms": at,
                "reason": str(self.rng.choice(REFUND_REASONS)),
                "platform": platform,
            }
            self.refund_exports[local_date(at)].append(refund)
        if full:
            line["timeline"] = [t for t in line["timeline"] if t[0] < when] + [(when, "closed")]

    def schedule_order_exports(self, line: dict) -> None:
        """A line lands whole in its creation date's folder and again each date it changes."""
        dates = sorted({local_date(ts) for ts, _ in line["timeline"]})
        held_back = self.rng.random() < self.rates.partial_orders
        for i, day in enumerate(dates):
            if i == 0 and held_back:
                # The platform's export left this line out: it first lands a day later.
                later = day + dt.timedelta(days=1)
                self.order_exports[later].append(
                    {"line": line, "as_of": day, "fault": "partial_orders"}
                )
                continue
            self.order_exports[day].append({"line": line, "as_of": day, "fault": None})

    def schedule_session_exports(self, session: Session, day: dt.date) -> None:
        cut = local_midnight_ms(day + dt.timedelta(days=1))
        if session.end_ms > cut:
            self.session_exports[day].append((session, "live"))
            self.session_exports[day + dt.timedelta(days=1)].append((session, "final"))
        else:
            self.session_exports[day].append((session, "final"))
            if self.rng.random() < self.rates.changed_reexport:
                self.session_exports[day + dt.timedelta(days=1)].append((session, "revised"))

    # ----------------------------------------------------------------------------- events

    def emit_events(self, session: Session, outcome) -> None:
        ev = outcome.events
        platform = session.room.platform
        pool = self.world.pools[session.room.index]
        rates, wr, rng = self.rates, self.world_rates, self.rng
        n = len(ev["ts"])
        ids = np.array(pool.ids, dtype=object)[outcome.viewers]
        viewer_json = np.array([f'"{v}"' for v in ids] + ["null"], dtype=object)
        os_idx = pool.os[outcome.viewers]
        client = np.array(
            [
                f'{{"os":"{OS_NAMES[o]}","app_version":"5.{2 + o}.{v % 9}"}}'
                for o, v in zip(os_idx, outcome.viewers, strict=True)
            ]
            + ['{"os":"android","app_version":"5.0.0"}'],
            dtype=object,
        )
        ts, typ, viewer, product, text = (
            ev["ts"],
            ev["type"].astype(np.int64),
            ev["viewer"],
            ev["product"],
            ev["text"],
        )
        # Bots: a viewer that fires hundreds of events a minute.
        if rng.random() < rates.bot_session:
            k = int(rng.integers(*wr.bot_events))
            latest = session.end_ms - session.start_ms - wr.bot_start_margin_min * MINUTE_MS
            b_start = session.start_ms + int(rng.integers(0, max(1, latest)))
            bot_pos = len(viewer_json) - 1  # the bot has its own id and client
            bot_id = f'"bot{int(rng.integers(10**8, 10**9))}"'
            viewer_json = np.concatenate([viewer_json[:-1], [bot_id, "null"]]).astype(object)
            client = np.concatenate(
                [client[:-1], ['{"os":"android","app_version":"4.9.0"}', client[-1]]]
            ).astype(object)
            burst = np.sort(rng.integers(0, wr.bot_burst_min * MINUTE_MS, k))
            ts = np.concatenate([ts, b_start + burst])
            like, click, comment = (EVENT_CODE[t] for t in ("like", "product_click", "comment"))
            typ = np.concatenate([typ, rng.choice([like, click, comment], k, p=wr.bot_event_mix)])
            viewer = np.concatenate([viewer, np.full(k, bot_pos)])
            product = np.concatenate([product, rng.integers(0, len(session.lineup.product), k)])
            product[-k:][typ[-k:] != click] = -1
            text = np.concatenate([text, np.where(typ[-k:] == comment, BOT_COMMENT, -1)])
            self.faults.add(
                "bot_viewer", f"events/{local_date(b_start)}", None, bot_id.strip('"'), session.key
            )
            n = len(ts)
        fault = np.full(n, "", dtype=object)
        u = rng.random((n, 4))
        oow = u[:, 0] < rates.event_out_of_window
        ts = ts.copy()
        shift = rng.integers(*wr.out_of_window_min, oow.sum()) * MINUTE_MS
        early = u[oow, 1] < wr.out_of_window_early
        ts[oow] = np.where(early, session.start_ms - shift, session.end_ms + shift)
        fault[oow] = "event_out_of_window"
        type_names = np.array([*EVENT_TYPES, "gift_sent"], dtype=object)
        unknown = (u[:, 2] < rates.event_unknown_type) & (fault == "")
        typ = np.where(unknown, len(EVENT_TYPES), typ)
        fault[unknown] = "event_unknown_type"
        no_viewer = (u[:, 3] < rates.event_no_viewer) & (fault == "")
        viewer = np.where(no_viewer, len(viewer_json) - 1, viewer)
        fault[no_viewer] = "event_no_viewer"
        order = np.argsort(ts, kind="stable")
        ts, typ, viewer, product, text, fault = (
            a[order] for a in (ts, typ, viewer, product, text, fault)
        )
        eid = rng.integers(0, 2**63, (n, 2))
        event_ids = [f"{a:016x}{b:016x}" for a, b in eid.tolist()]
        local = (ts + LOCAL_OFFSET_MS).astype("datetime64[ms]")
        # A time without its offset: damage with its own generator (the world stays the same).
        naive = np.random.default_rng(zlib.crc32(session.key.encode())).random(n)
        naive = (naive < rates.event_naive_ts) & (fault == "")
        fault[naive] = "event_naive_ts"
        ts_text = np.char.add(np.datetime_as_string(local, unit="ms"), LOCAL_OFFSET_TEXT).tolist()
        for i in np.flatnonzero(naive):
            ts_text[i] = ts_text[i].removesuffix(LOCAL_OFFSET_TEXT)
        skus = np.array(
            [f'"{s}"' for s in self.world.catalogue.sku[session.lineup.product]] + ["null"],
            dtype=object,
        )
        texts = np.array(
            [json.dumps(c, ensure_ascii=False) for c in COMMENTS] + ["null"], dtype=object
        )
        head = f'","platform":"{platform}","session_id":"{session.session_id}","viewer_id":'
        lines = [
            f'{{"event_id":"{e}","ts":"{t}{head}{v},"type":"{ty}","sku":{s},"text":{tx},"client":{c}}}'
            for e, t, v, ty, s, tx, c in zip(
                event_ids,
                ts_text,
                viewer_json[viewer].tolist(),
                type_names[typ].tolist(),
                skus[product].tolist(),
                texts[text].tolist(),
                client[viewer].tolist(),
                strict=True,
            )
        ]
        day_of = (ts + LOCAL_OFFSET_MS) // DAY_MS
        lateness = np.where(
            rng.random(n) < rates.event_late, rng.integers(*wr.event_late_days, n), 0
        )
        dup = rng.random(n) < rates.event_duplicate
        folder_day = day_of + lateness
        epoch = dt.date(1970, 1, 1)
        for fd in np.unique(folder_day):
            sel = np.flatnonzero(folder_day == fd)
            chunk = [lines[i] for i in sel]
            tags = [(k, fault[i], event_ids[i]) for k, i in enumerate(sel) if fault[i]]
            tags += [(k, "event_late", event_ids[i]) for k, i in enumerate(sel) if lateness[i]]
            for i in sel[dup[sel]]:  # a second delivery of the same event, later in the stream
                tags.append((len(chunk), "event_duplicate", event_ids[i]))
                chunk.append(lines[i])
            target = max(epoch + dt.timedelta(days=int(fd)), self.today)
            if target == self.today:  # streamed out now: a day's events are never all in memory
                self.event_parts.write(platform, chunk, tags)
            else:
                self.event_buffer[target][platform].append((chunk, tags))
        self.event_count += n + int(dup.sum())

    # ----------------------------------------------------------------------------- exports

    def export_day(self, day: dt.date) -> None:
        wr = self.world_rates
        landed_at = (
            local_midnight_ms(day + dt.timedelta(days=1))
            + int(self.rng.integers(*wr.landed_after_min)) * MINUTE_MS
        )
        for platform in PLATFORMS:
            late = self.rng.random() < self.rates.late_folder
            days_late = int(self.rng.integers(*wr.late_folder_days)) if late else 0
            landed = landed_at + days_late * DAY_MS
            path = folder(self.landing, platform, day)
            self.write_sessions(platform, day)
            self.write_orders(platform, day)
            self.write_refunds(platform, day)
            if late:
                self.faults.add(
                    "late_folder",
                    f"{platform}/{day.isoformat()}",
                    None,
                    platform,
                    f"landed {utc_naive(landed)} UTC",
                )
            self.folders.append(
                {
                    "folder": f"{platform}/{day.isoformat()}",
                    "landed_at": utc_naive(landed),
                    "late": late,
                }
            )
            if landed <= self.as_of_ms:
                mark_success(path)

    def session_row(self, session: Session, kind: str, day: dt.date) -> dict:
        cut = local_midnight_ms(day + dt.timedelta(days=1))
        stats = dict(session.stats)
        end: int | None = session.end_ms
        if kind == "live":
            share = (cut - session.start_ms) / max(1, session.end_ms - session.start_ms)
            stats = {k: (int(v * share) if isinstance(v, int) else v) for k, v in stats.items()}
            end = None
        if kind == "revised":
            stats["views"] = int(stats["views"] * self.world_rates.revised_views) + 1
            stats["likes"] = int(stats["likes"] * self.world_rates.revised_likes) + 1
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

    def write_sessions(self, platform: str, day: dt.date) -> None:
        todo = [(s, k) for s, k in self.session_exports.get(day, []) if s.room.platform == platform]
        rows = [self.session_row(s, k, day) for s, k in todo]
        tags = [
            [("still_live", "end time empty")]
            if k == "live"
            else [("changed_reexport", "revised values")]
            if k == "revised"
            else []
            for _, k in todo
        ]
        frame = pd.DataFrame(rows, columns=field_names("sessions"))
        self._write(platform, "sessions", day, frame, tags)
        lineup_rows = []
        cat = self.world.catalogue
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

    def write_orders(self, platform: str, day: dt.date) -> None:
        cut = local_midnight_ms(day + dt.timedelta(days=1))
        entries = [
            e
            for e in self.order_exports.get(day, [])
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

    def write_refunds(self, platform: str, day: dt.date) -> None:
        rows = [
            {
                "refund_id": r["refund_id"],
                "order_id": r["order_id"],
                "amount": r["amount"],
                "refunded_at": r["refunded_ms"],
                "reason": r["reason"],
            }
            for r in self.refund_exports.get(day, [])
            if r["platform"] == platform
        ]
        frame = pd.DataFrame(rows, columns=field_names("refunds"))
        self._write(platform, "refunds", day, frame, None)

    def _write(self, platform, table, day, frame, tags) -> None:
        for c in frame.columns:
            if c.endswith(("_time", "_at")):  # epoch ms -> UTC datetimes
                frame[c] = pd.to_datetime(frame[c].astype("float64"), unit="ms")
        write_platform_export(
            self.landing, platform, table, day, frame, self.rates, self.rng, self.faults, tags
        )

    def open_events(self, day: dt.date) -> None:
        """Open the day's event parts; what arrived late from earlier days goes in first."""
        self.today = day
        self.event_parts = EventParts(self.landing, day, self.preset.events_per_part, self.faults)
        buffered = self.event_buffer.pop(day, {})
        for platform in PLATFORMS:
            for chunk, tags in buffered.get(platform, []):
                self.event_parts.write(platform, chunk, tags)

    def close_events(self) -> None:
        self.event_parts.close()
        mark_success(self.event_parts.folder)

    def export_plans(self, day: dt.date) -> None:
        wr = self.world_rates
        hour, minute = wr.plan_exported_at
        exported_at = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=LOCAL_TIMEZONE)
        sessions, lineups = [], []
        for ahead in range(1, PLAN_DAYS + 1):
            target = day + dt.timedelta(days=ahead)
            for plan in self.plans_by_day.get(target, []):
                if plan.cancelled_on is not None and plan.cancelled_on <= day:
                    continue
                host, lineup = plan.version_at(day)
                growth = 1 - wr.reservation_shortfall * (ahead - 1)
                noise = self.rng.uniform(*wr.reservation_noise)
                reservations = int(plan.reservations * growth * noise)
                sessions.append(
                    {
                        "plan_id": plan.plan_id,
                        "platform": plan.room.platform,
                        "room_id": plan.room.room_id,
                        "host_id": host,
                        "planned_start": dt.datetime.fromtimestamp(
                            plan.start_ms / 1000, LOCAL_TIMEZONE
                        ).isoformat(),
                        "planned_minutes": plan.minutes,
                        "reservations": max(0, reservations),
                        "exported_at": exported_at.isoformat(),
                    }
                )
                for i, p in enumerate(lineup.product):
                    lineups.append(
                        {
                            "plan_id": plan.plan_id,
                            "sku": str(self.world.catalogue.sku[p]),
                            "planned_price": f"{lineup.live_price_fen[i] / 100:.2f}",
                            "coupon": f"{lineup.coupon_fen[i] / 100:.2f}"
                            if lineup.coupon_fen[i]
                            else "",
                        }
                    )
        write_brand_file(self.landing, "planned_sessions", day, sessions)
        mark_success(write_brand_file(self.landing, "planned_lineup", day, lineups))

    def export_catalogue(self, day: dt.date, first: bool) -> None:
        cat = self.world.catalogue
        changes = cat.price_changes.get(day, [])
        for idx, fen in changes:
            cat.list_price_fen[idx] = fen
        horizon = day + dt.timedelta(days=self.world_rates.catalogue_lead_days)
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
        mark_success(write_brand_file(self.landing, "products", day, products))

    # ----------------------------------------------------------------------------- run

    def run(self) -> dict:
        t0 = time.perf_counter()
        self.make_plans()
        for i, day in enumerate(self.preset.dates):
            self.export_catalogue(day, first=i == 0)
            self.open_events(day)
            self.realise_day(day)
            self.close_events()
            self.export_day(day)
            self.export_plans(day)
            if (i + 1) % 30 == 0 or i + 1 == self.preset.days:
                log.info(
                    "simulated %s (%d/%d days, %d events so far)",
                    day,
                    i + 1,
                    self.preset.days,
                    self.event_count,
                )
        self.write_truth()
        return {
            "days": self.preset.days,
            "sessions": len(self.sessions),
            "events": self.event_count,
            "seconds": round(time.perf_counter() - t0, 1),
        }

    def write_truth(self) -> None:
        self.truth.mkdir(parents=True, exist_ok=True)
        end_cut = local_midnight_ms(self.preset.end + dt.timedelta(days=1))
        sessions = pd.DataFrame(self.truth_sessions)
        landed = {}
        for s in self.sessions.values():
            # What the landed exports can show: lines whose paid_at landed by the last folder.
            landed[s.key] = sum(ln["paid"] for ln in s.lines if 0 <= ln["paid_ms"] < end_cut) / 100
        sessions["paid_gmv"] = sessions["session_key"].map(
            {
                k: sum(ln["paid"] for ln in s.lines if ln["paid_ms"] >= 0) / 100
                for k, s in self.sessions.items()
            }
        )
        sessions["paid_gmv_landed"] = sessions["session_key"].map(landed)
        sessions.to_csv(self.truth / "sessions.csv", index=False, lineterminator="\n")
        plans = []
        for plan in self.plans.values():
            host, lineup = plan.version_at(plan.day)
            oracle = oracle_gmv(
                self.world,
                SessionPlan(plan.room, host, plan.day, plan.start_ms, plan.minutes, lineup),
                self.rng,
            )
            plans.append(
                {
                    "plan_id": plan.plan_id,
                    "platform": plan.room.platform,
                    "room_id": plan.room.room_id,
                    "host_id": host,
                    "planned_start": utc_naive(plan.start_ms),
                    "cancelled": plan.cancelled_on is not None,
                    "session_key": plan.session_key,
                    **oracle,
                }
            )
        pd.DataFrame(plans).to_csv(self.truth / "plans.csv", index=False, lineterminator="\n")
        if self.truth_propensity:
            pd.concat(self.truth_propensity, ignore_index=True).to_parquet(
                self.truth / "propensities.parquet", index=False
            )
        self.faults.frame().to_csv(self.truth / "faults.csv", index=False, lineterminator="\n")
        pd.DataFrame(self.folders).to_csv(
            self.truth / "folders.csv", index=False, lineterminator="\n"
        )
        manifest = {
            "preset": self.preset.name,
            "start": self.preset.start.isoformat(),
            "end": self.preset.end.isoformat(),
            "sessions": len(self.sessions),
            "events": self.event_count,
            "faults": self.faults.frame()["kind"].value_counts().sort_index().to_dict(),
        }
        (self.truth / "manifest.json").write_text(
            json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
        )


def simulate(preset: Preset, out: Path, seed: int = 7, as_of: dt.datetime | None = None) -> dict:
    """Write the landing zone and the truth for `preset` under `out`; return a summary."""
    return Simulation(preset, Path(out), seed, as_of).run()
