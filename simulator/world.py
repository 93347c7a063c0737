"""The simulated brand: its catalogue, rooms, hosts, calendar and the viewers of each room.

Everything here is latent truth: the pipeline never sees it, only the exports it produces.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from contract.enums import CATEGORIES, PLATFORMS
from simulator.config import Preset

BRAND = "澜舍"
SUBCATEGORIES = {
    "kitchen": ("rice_cooker", "range_hood", "dishwasher", "microwave", "induction_cooker"),
    "large_appliance": ("refrigerator", "washing_machine", "air_conditioner", "television"),
    "small_appliance": ("air_fryer", "vacuum", "air_purifier", "kettle", "humidifier"),
    "personal_care": ("hair_dryer", "shaver", "toothbrush", "massager"),
    "smart_home": ("smart_lock", "camera", "smart_speaker", "robot_vacuum"),
}
# Median list price (yuan) and spread of each category.
PRICE_LEVEL = {
    "kitchen": (899, 0.6),
    "large_appliance": (3999, 0.5),
    "small_appliance": (399, 0.6),
    "personal_care": (259, 0.5),
    "smart_home": (999, 0.5),
}
HAS_ENERGY_GRADE = {"kitchen", "large_appliance"}
OS_NAMES = ("android", "ios", "harmonyos")  # a viewer's phone: ViewerPool.os indexes this

WEEKDAY_EFFECT = np.array([0.9, 0.88, 0.93, 0.98, 1.08, 1.25, 1.2])  # Monday first
SLOTS = ((10, 0, 120), (14, 0, 150), (19, 30, 180), (20, 0, 210), (21, 0, 180))
HOUR_EFFECT = {10: 0.6, 14: 0.72, 19: 1.15, 20: 1.3, 21: 1.1}

PROVINCES = (
    ("广东省", ("广州市", "深圳市", "佛山市")),
    ("浙江省", ("杭州市", "宁波市", "温州市")),
    ("江苏省", ("南京市", "苏州市", "无锡市")),
    ("北京市", ("北京市",)),
    ("上海市", ("上海市",)),
    ("四川省", ("成都市", "绵阳市")),
    ("山东省", ("济南市", "青岛市")),
    ("湖北省", ("武汉市", "宜昌市")),
    ("河南省", ("郑州市", "洛阳市")),
    ("福建省", ("福州市", "厦门市")),
)
STREETS = ("人民路", "解放大道", "中山路", "建设路", "滨江路", "文化路", "新华街", "长江路")

SPRING_FESTIVAL = {
    2025: dt.date(2025, 1, 29),
    2026: dt.date(2026, 2, 17),
    2027: dt.date(2027, 2, 6),
}


def promotion_effect(day: dt.date) -> tuple[float, float, float]:
    """(viewer multiplier, conversion multiplier, extra discount) of the promotion calendar."""
    md = (day.month, day.day)
    sf = SPRING_FESTIVAL.get(day.year)
    if sf is not None and abs((day - sf).days) <= 7:
        return 0.55, 0.8, 0.0  # Spring Festival lull: logistics stop, audiences away
    if md == (11, 11):
        return 3.2, 1.6, 0.12
    if (11, 1) <= md <= (11, 10):
        return 1.9, 1.25, 0.10
    if (10, 20) <= md <= (10, 31):
        return 1.5, 0.85, 0.06  # Double 11 pre-sale: deposits, fewer paid orders
    if (11, 12) <= md <= (11, 13):
        return 1.3, 1.1, 0.05
    if md == (6, 18):
        return 2.6, 1.5, 0.10
    if (6, 1) <= md <= (6, 17):
        return 1.6, 1.2, 0.08
    if (5, 20) <= md <= (5, 31):
        return 1.2, 0.95, 0.04  # 618 pre-sale
    if (12, 10) <= md <= (12, 12):
        return 1.8, 1.3, 0.08
    if (3, 1) <= md <= (3, 8):
        return 1.4 if md == (3, 8) else 1.15, 1.15, 0.05
    return 1.0, 1.0, 0.0


@dataclass
class Catalogue:
    sku: np.ndarray
    category: np.ndarray
    subcategory: np.ndarray
    list_price_fen: np.ndarray  # current list price; changes are recorded in price_changes
    energy_grade: np.ndarray  # 0 where none applies
    launch_date: list[dt.date]
    price_changes: dict[dt.date, list[tuple[int, int]]]  # date -> [(product index, new fen)]

    def __len__(self) -> int:
        return len(self.sku)

    def category_index(self) -> np.ndarray:
        return np.array([CATEGORIES.index(c) for c in self.category])


@dataclass
class Room:
    platform: str
    index: int  # global index
    room_id: str
    room_name: str
    base_viewers: float
    growth_per_day: float
    focus: np.ndarray  # category weights
    hosts: list[str]
    host_weights: np.ndarray
    schedule: dict[int, list[tuple[int, int, int]]]  # weekday -> slots (hour, minute, minutes)
    slot_bias: float  # room-specific hour taste


@dataclass
class ViewerPool:
    """The viewers a room has seen so far, with their latent tastes."""

    platform: str
    ids: list[str] = field(default_factory=list)
    taste: np.ndarray = field(default_factory=lambda: np.zeros((0, len(CATEGORIES))))
    budget: np.ndarray = field(default_factory=lambda: np.zeros(0))  # typical spend, yuan
    price_sensitivity: np.ndarray = field(default_factory=lambda: np.zeros(0))
    activity: np.ndarray = field(default_factory=lambda: np.zeros(0))  # propensity to attend
    loyalty: np.ndarray = field(default_factory=lambda: np.zeros(0))
    home: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))  # province/city idx
    os: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class World:
    preset: Preset
    catalogue: Catalogue
    rooms: list[Room]
    host_pull: dict[str, float]
    pools: dict[int, ViewerPool]  # room index -> pool
    viewer_counter: dict[str, int]
    cities: list[tuple[str, str]]


def _viewer_id(platform: str, n: int, rng: np.random.Generator) -> str:
    if platform == "douyin":
        return f"dy{7_000_000_000 + n * 7919 % 2_999_999_999:010d}"
    if platform == "taobao":
        return f"tb_{n * 104729 % 16**8:08x}"
    return f"jd_{n * 15485863 % 36**6:06d}"


def add_viewers(world: World, room: Room, count: int, rng: np.random.Generator) -> np.ndarray:
    """Create `count` new viewers for a room's pool; return their pool indexes."""
    pool = world.pools[room.index]
    start = len(pool)
    if count <= 0:
        return np.arange(start, start)
    base = world.viewer_counter[room.platform]
    world.viewer_counter[room.platform] = base + count
    pool.ids.extend(_viewer_id(room.platform, base + i, rng) for i in range(count))
    taste = rng.dirichlet(room.focus * 4 + 0.3, size=count)
    pool.taste = np.vstack([pool.taste, taste])
    pool.budget = np.concatenate([pool.budget, rng.lognormal(np.log(700), 0.8, count)])
    pool.price_sensitivity = np.concatenate([pool.price_sensitivity, rng.gamma(4, 0.25, count)])
    pool.activity = np.concatenate([pool.activity, rng.gamma(0.6, 1.0, count)])
    pool.loyalty = np.concatenate([pool.loyalty, rng.beta(2, 5, count)])
    pool.home = np.concatenate([pool.home, rng.integers(0, len(world.cities), count)])
    pool.os = np.concatenate([pool.os, rng.integers(0, len(OS_NAMES), count)])
    return np.arange(start, start + count)


def build_world(preset: Preset, rng: np.random.Generator) -> World:
    catalogue = _build_catalogue(preset, rng)
    hosts = [f"H{i:03d}" for i in range(1, 4 + 3 * preset.rooms_per_platform)]
    host_pull = {h: float(rng.lognormal(0, 0.3)) for h in hosts}
    rooms = []
    names = (
        "官方旗舰直播间",
        "厨房电器直播间",
        "生活家电直播间",
        "个护小家电直播间",
        "智能家居直播间",
    )
    for platform_no, platform in enumerate(PLATFORMS):
        for k in range(preset.rooms_per_platform):
            index = len(rooms)
            focus = rng.dirichlet(np.ones(len(CATEGORIES)) * 0.8)
            focus[k % len(CATEGORIES)] += 0.5
            focus /= focus.sum()
            room_hosts = list(
                rng.choice(hosts, size=min(len(hosts), int(rng.integers(2, 5))), replace=False)
            )
            schedule = {}
            daily = int(rng.integers(1, 4))
            slot_choice = sorted(rng.choice(len(SLOTS), size=daily, replace=False))
            for wd in range(7):
                slots = [SLOTS[s] for s in slot_choice]
                if wd >= 5 and len(slots) < 3:
                    extra = [s for s in SLOTS if s not in slots]
                    slots.append(extra[int(rng.integers(len(extra)))])
                schedule[wd] = sorted(slots)
            room_id = {
                "douyin": f"{int(rng.integers(10**11, 10**12))}",
                "taobao": f"{int(rng.integers(10**8, 10**9))}",
                "jd": f"{int(rng.integers(10**6, 10**7))}",
            }[platform]
            rooms.append(
                Room(
                    platform=platform,
                    index=index,
                    room_id=room_id,
                    room_name=f"{BRAND}{names[k % len(names)]}"
                    + (f"{k // len(names) + 1}" if k >= len(names) else ""),
                    base_viewers=float(rng.lognormal(np.log(160), 0.35))
                    * (1.2 - 0.15 * platform_no),
                    growth_per_day=float(rng.uniform(0.0005, 0.0025)),
                    focus=focus,
                    hosts=[str(h) for h in room_hosts],
                    host_weights=rng.dirichlet(np.ones(len(room_hosts)) * 2),
                    schedule=schedule,
                    slot_bias=float(rng.normal(0, 0.1)),
                )
            )
    cities = [(p, c) for p, cs in PROVINCES for c in cs]
    world = World(preset, catalogue, rooms, host_pull, {}, {p: 1 for p in PLATFORMS}, cities)
    for room in rooms:
        world.pools[room.index] = ViewerPool(room.platform)
        add_viewers(world, room, preset.fans_per_room, rng)
    return world


def _build_catalogue(preset: Preset, rng: np.random.Generator) -> Catalogue:
    n = preset.n_products
    categories = [CATEGORIES[i % len(CATEGORIES)] for i in range(n)]
    rng.shuffle(categories)
    codes = {
        "kitchen": "KT",
        "large_appliance": "LA",
        "small_appliance": "SA",
        "personal_care": "PC",
        "smart_home": "SH",
    }
    sku, sub, price, grade, launch = [], [], [], [], []
    late_launch = max(1, n // 12)
    for i, cat in enumerate(categories):
        sku.append(f"LS-{codes[cat]}{1000 + i * 7}")
        sub.append(SUBCATEGORIES[cat][int(rng.integers(len(SUBCATEGORIES[cat])))])
        median, spread = PRICE_LEVEL[cat]
        yuan = float(np.clip(rng.lognormal(np.log(median), spread), 59, 19999))
        price.append(round(yuan / 10) * 1000 - 100)  # prices end in 9: 1299.00
        grade.append(int(rng.integers(1, 6)) if cat in HAS_ENERGY_GRADE else 0)
        if i >= n - late_launch:  # a few products launch during the window
            launch.append(
                preset.start + dt.timedelta(days=int(rng.integers(3, max(4, preset.days - 2))))
            )
        else:
            launch.append(preset.start - dt.timedelta(days=int(rng.integers(30, 900))))
    price_changes: dict[dt.date, list[tuple[int, int]]] = {}
    for _ in range(max(1, preset.days // 30)):
        day = preset.start + dt.timedelta(days=int(rng.integers(1, max(2, preset.days))))
        idx = int(rng.integers(n))
        new = max(5900, int(price[idx] * rng.choice([0.9, 0.95, 1.05])) // 1000 * 1000 + 900)
        price_changes.setdefault(day, []).append((idx, new))
    return Catalogue(
        sku=np.array(sku),
        category=np.array(categories),
        subcategory=np.array(sub),
        list_price_fen=np.array(price, dtype=np.int64),
        energy_grade=np.array(grade),
        launch_date=launch,
        price_changes=price_changes,
    )
