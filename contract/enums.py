"""The contract's closed sets and fixed numbers, written once (landing-zone.md)."""

from __future__ import annotations

# "The platform exports": the platforms the contract has a dialect for.
PLATFORMS = ("douyin", "taobao", "jd")
# "The catalogue": a product's category.
CATEGORIES = ("kitchen", "large_appliance", "small_appliance", "personal_care", "smart_home")
# "The tracking events": an event's type.
EVENT_TYPES = (
    "enter", "leave", "comment", "like", "follow", "share", "product_click", "add_to_cart",
)  # fmt: skip
# "The plan": the plan export of date D covers the sessions planned for D+1 … D+7.
PLAN_DAYS = 7
