"""What happens in one live session: who comes, what they click, cart and buy, and the events.

The same propensity model gives the realised behaviour and the oracle (the distribution of a
session's paid GMV given its plan), so the ground truth is exactly what the world would do.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from contract.enums import EVENT_TYPES
from contract.localtime import LOCAL_TIMEZONE
from simulator.world import (
    HOUR_EFFECT,
    WEEKDAY_EFFECT,
    Room,
    World,
    add_viewers,
    promotion_effect,
)

MINUTE_MS = 60_000
PAY_RATE = 0.92  # share of orders that are paid; the rest close unpaid
DOUBLE_QTY = 0.08  # share of lines with quantity 2
MC_DRAWS = 400
SESSION_SIGMA = 0.3  # session-level demand noise (log scale)
EVENT_CODE = {name: code for code, name in enumerate(EVENT_TYPES)}  # an event's type as a code


@dataclass
class Lineup:
    product: np.ndarray  # catalogue indexes
    live_price_fen: np.ndarray
    strike_price_fen: np.ndarray
    coupon_fen: np.ndarray  # 0 = none
    stock: np.ndarray


@dataclass
class SessionPlan:
    """What the operators decided: the latent inputs of a session's demand."""

    room: Room
    host_id: str
    day: dt.date  # local start date
    start_ms: int  # epoch ms UTC
    minutes: int
    lineup: Lineup


def expected_viewers(world: World, plan: SessionPlan) -> float:
    """Mean unique viewers of a session given its plan, before session-level noise."""
    room = plan.room
    local = dt.datetime.fromtimestamp(plan.start_ms / 1000, LOCAL_TIMEZONE)
    promo_v, _, _ = promotion_effect(plan.day)
    days = (plan.day - world.preset.start).days
    discount = 1 - plan.lineup.live_price_fen / np.maximum(plan.lineup.strike_price_fen, 1)
    lineup_pull = 1 + 0.8 * float(np.mean(discount)) + 0.02 * min(len(plan.lineup.product), 25)
    hour = HOUR_EFFECT.get(local.hour, 0.8) * np.exp(room.slot_bias)
    return (
        room.base_viewers
        * world.host_pull[plan.host_id]
        * WEEKDAY_EFFECT[plan.day.weekday()]
        * hour
        * promo_v
        * (1 + room.growth_per_day) ** days
        * lineup_pull
        * (plan.minutes / 180) ** 0.5
        * world.preset.viewer_scale
    )


def propensities(world: World, plan: SessionPlan, viewers: np.ndarray) -> tuple[np.ndarray, ...]:
    """(p_click, p_cart given click, p_pay given cart) for viewers x lineup products."""
    pool = world.pools[plan.room.index]
    cat = world.catalogue.category_index()[plan.lineup.product]
    price = plan.lineup.live_price_fen / 100.0
    strike = np.maximum(plan.lineup.strike_price_fen / 100.0, price)
    discount = 1 - price / strike
    coupon_share = plan.lineup.coupon_fen / 100.0 / price
    _, promo_c, _ = promotion_effect(plan.day)
    affinity = pool.taste[viewers][:, cat]  # viewers x products
    over_budget = np.maximum(0.0, np.log(price[None, :] / pool.budget[viewers][:, None]))
    sens = pool.price_sensitivity[viewers][:, None]
    loyalty = pool.loyalty[viewers][:, None]
    click = (
        -3.4
        + np.log(5 * affinity + 1e-3) * 0.9
        + 2.0 * discount
        + 1.2 * loyalty
        - 0.6 * sens * over_budget
    )
    cart = -1.8 + 2.5 * discount + 3.0 * coupon_share - 0.9 * sens * over_budget + 0.8 * loyalty
    pay = (
        -0.9 + np.log(promo_c) * 1.5 + 4.0 * coupon_share + 0.6 * loyalty - 0.4 * sens * over_budget
    )
    return _sigmoid(click), _sigmoid(cart), _sigmoid(pay)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def line_value_fen(lineup: Lineup) -> np.ndarray:
    """What a paid line of quantity 1 pays, per product."""
    return np.maximum(lineup.live_price_fen - lineup.coupon_fen, 1)


def sample_audience(world: World, room: Room, n: int, rng: np.random.Generator) -> np.ndarray:
    """Draw a session's viewers: mostly returning (by activity), some new to the room."""
    pool = world.pools[room.index]
    returning = min(round(n * 0.8), len(pool))
    weights = pool.activity / pool.activity.sum()
    chosen = (
        rng.choice(len(pool), size=returning, replace=False, p=weights)
        if returning
        else np.zeros(0, int)
    )
    fresh = add_viewers(world, room, n - returning, rng)
    return np.concatenate([chosen, fresh]).astype(np.int64)


def oracle_gmv(world: World, plan: SessionPlan, rng: np.random.Generator) -> dict[str, float]:
    """The distribution of paid GMV (yuan) given the plan, by Monte Carlo over the world's noise.

    Session noise and the Poisson number of viewers are drawn exactly; purchases per product
    are Poisson with the audience's mean propensity (a reference audience from the pool).
    """
    mu = expected_viewers(world, plan)
    pool = world.pools[plan.room.index]
    reference = rng.choice(
        len(pool), size=min(400, len(pool)), replace=False, p=pool.activity / pool.activity.sum()
    )
    pc, pa, pp = propensities(world, plan, reference)
    buy = (pc * pa * pp).mean(axis=0) * PAY_RATE  # per viewer, per product
    value = line_value_fen(plan.lineup) / 100.0
    unit = plan.lineup.live_price_fen / 100.0
    eps = rng.lognormal(-(SESSION_SIGMA**2) / 2, SESSION_SIGMA, MC_DRAWS)
    n = rng.poisson(mu * eps)
    lines = rng.poisson(n[:, None] * buy[None, :])
    extra_units = rng.binomial(lines, DOUBLE_QTY)
    gmv = (lines * value[None, :] + extra_units * unit[None, :]).sum(axis=1)
    mean = float(mu * (buy * (value + DOUBLE_QTY * unit)).sum())
    return {
        "expected_gmv": round(mean, 2),
        "gmv_p10": round(float(np.quantile(gmv, 0.1)), 2),
        "gmv_p50": round(float(np.quantile(gmv, 0.5)), 2),
        "gmv_p90": round(float(np.quantile(gmv, 0.9)), 2),
        "expected_viewers": round(mu, 1),
    }


@dataclass
class SessionOutcome:
    """Everything one session produced, in latent (pool-index) terms."""

    viewers: np.ndarray  # pool indexes
    enter_ms: np.ndarray
    leave_ms: np.ndarray
    rejoin: np.ndarray  # bool: entered a second time
    events: dict[str, np.ndarray]  # columns: ts, type, viewer (position), product (-1), text (-1)
    orders: dict[str, np.ndarray]  # viewer position, product position, created, paid (-1), qty
    new_followers: int
    propensity: tuple[np.ndarray, np.ndarray, np.ndarray]
    interested: np.ndarray  # viewer positions that clicked anything


COMMENTS = (
    "主播讲得好清楚",
    "这个能便宜点吗？",
    "已下单，期待",
    "有没有赠品",
    '"双11"价格保不保？',
    "能耗几级的",
    "666",
    "上链接！",
    "发什么快递",
    "和上次直播比便宜了，好评",
)


def run_session(
    world: World, plan: SessionPlan, end_ms: int, rng: np.random.Generator
) -> SessionOutcome:
    """Realise one session: audience, watch times, clicks, carts, orders and events."""
    mu = expected_viewers(world, plan)
    eps = rng.lognormal(-(SESSION_SIGMA**2) / 2, SESSION_SIGMA)
    n = int(rng.poisson(mu * eps))
    viewers = sample_audience(world, plan.room, n, rng)
    start, length = plan.start_ms, max(end_ms - plan.start_ms, MINUTE_MS)
    enter = start + (rng.random(n) ** 1.6 * length).astype(np.int64)
    watch = rng.exponential(0.25 * length, n).astype(np.int64) + 20_000
    leave = np.minimum(enter + watch, end_ms + 5 * MINUTE_MS)
    rejoin = rng.random(n) < 0.15
    j = len(plan.lineup.product)
    pc, pa, pp = propensities(world, plan, viewers)
    clicked = rng.random((n, j)) < pc
    carted = clicked & (rng.random((n, j)) < pa)
    bought = carted & (rng.random((n, j)) < pp)

    def within(rows: np.ndarray, frac: np.ndarray) -> np.ndarray:
        return enter[rows] + ((leave[rows] - enter[rows]) * frac).astype(np.int64)

    vi, pj = np.nonzero(clicked)
    click_ts = within(vi, rng.random(len(vi)))
    cart_sel = carted[vi, pj]
    cart_ts = click_ts[cart_sel] + rng.integers(5_000, 90_000, cart_sel.sum())
    buy_sel = bought[vi, pj][cart_sel]
    created = cart_ts[buy_sel] + rng.integers(10_000, 180_000, buy_sel.sum())
    n_orders = len(created)
    paid = np.where(
        rng.random(n_orders) < PAY_RATE, created + rng.integers(5_000, 15 * MINUTE_MS, n_orders), -1
    )
    qty = np.where(rng.random(n_orders) < DOUBLE_QTY, 2, 1)

    n_comments = rng.poisson(0.4, n)
    n_likes = rng.poisson(1.3, n)
    follows = rng.random(n) < 0.03
    shares = rng.random(n) < 0.02
    cv = np.repeat(np.arange(n), n_comments)
    lv = np.repeat(np.arange(n), n_likes)
    fv, sv = np.flatnonzero(follows), np.flatnonzero(shares)
    # A viewer who left comes back once more while the session is still on.
    gap = rng.integers(MINUTE_MS, 20 * MINUTE_MS, n)
    rejoin &= leave + gap < end_ms
    rv = np.flatnonzero(rejoin)
    rejoin_enter = leave[rv] + gap[rv]
    rejoin_leave = np.minimum(
        rejoin_enter + rng.integers(MINUTE_MS, 15 * MINUTE_MS, len(rv)), end_ms + 5 * MINUTE_MS
    )
    code = EVENT_CODE
    parts = [
        (enter, code["enter"], np.arange(n), -1, -1),
        (leave, code["leave"], np.arange(n), -1, -1),
        (rejoin_enter, code["enter"], rv, -1, -1),
        (rejoin_leave, code["leave"], rv, -1, -1),
        (
            within(cv, rng.random(len(cv))),
            code["comment"],
            cv,
            -1,
            rng.integers(0, len(COMMENTS), len(cv)),
        ),
        (within(lv, rng.random(len(lv))), code["like"], lv, -1, -1),
        (within(fv, rng.random(len(fv))), code["follow"], fv, -1, -1),
        (within(sv, rng.random(len(sv))), code["share"], sv, -1, -1),
        (click_ts, code["product_click"], vi, pj, -1),
        (cart_ts, code["add_to_cart"], vi[cart_sel], pj[cart_sel], -1),
    ]
    events = _stack_events(parts)
    order_rows = np.nonzero(cart_sel)[0][buy_sel]
    return SessionOutcome(
        viewers=viewers,
        enter_ms=enter,
        leave_ms=leave,
        rejoin=rejoin,
        events=events,
        orders={
            "viewer": vi[order_rows],
            "product": pj[order_rows],
            "created": created,
            "paid": paid,
            "qty": qty,
        },
        new_followers=int(follows.sum()),
        propensity=(pc, pa, pp),
        interested=np.flatnonzero(clicked.any(axis=1)),
    )


def _stack_events(parts: list[tuple]) -> dict[str, np.ndarray]:
    ts, typ, viewer, product, text = [], [], [], [], []
    for t, code, v, p, c in parts:
        size = len(t)
        ts.append(np.asarray(t, dtype=np.int64))
        typ.append(np.full(size, code, dtype=np.int8))
        viewer.append(np.asarray(v, dtype=np.int64))
        product.append(
            np.full(size, p, dtype=np.int64) if np.isscalar(p) else np.asarray(p, dtype=np.int64)
        )
        text.append(
            np.full(size, c, dtype=np.int64) if np.isscalar(c) else np.asarray(c, dtype=np.int64)
        )
    return {
        "ts": np.concatenate(ts),
        "type": np.concatenate(typ),
        "viewer": np.concatenate(viewer),
        "product": np.concatenate(product),
        "text": np.concatenate(text),
    }


def peak_online(enter: np.ndarray, leave: np.ndarray) -> int:
    """Most viewers present at once."""
    if len(enter) == 0:
        return 0
    times = np.concatenate([enter, leave])
    deltas = np.concatenate([np.ones(len(enter), int), -np.ones(len(leave), int)])
    order = np.lexsort((deltas, times))
    return int(np.cumsum(deltas[order]).max())
