"""Line items of the cost model, the template look-ups its handlers share, and the Markdown report."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cost import prices as p

Resource = Mapping[str, Any]
Templates = Mapping[str, Mapping[str, Any]]
"""Templates by stack name (the ``Resources`` section is what is read)."""


@dataclass(frozen=True)
class LineItem:
    """One priced row: what, how many (as shown), the unit price (as shown), the monthly cost at min/max."""

    what: str
    count: str
    unit_price: str
    monthly_min: float
    monthly_max: float


def resources(templates: Templates) -> list[tuple[str, Resource]]:
    """(logical id, resource) of every stack, in stack order."""
    return [(lid, res) for template in templates.values() for lid, res in template.get("Resources", {}).items()]


def of_type(templates: Templates, resource_type: str) -> list[tuple[str, Resource]]:
    """(logical id, resource) of the resources of ``resource_type``."""
    return [(lid, res) for lid, res in resources(templates) if res["Type"] == resource_type]


def readable_name(logical_id: str, suffix: str) -> str:
    """A readable name from a CDK logical id: without its 8-hex-digit hash and the construct's kind."""
    return re.sub(r"[0-9A-F]{8}$", "", logical_id).removesuffix(suffix)


def monthly(price: float) -> float:
    """A monthly cost from an hourly price."""
    return price * p.HOURS_PER_MONTH


def totals(items: Iterable[LineItem]) -> tuple[float, float]:
    """Monthly (minimum, maximum) of the items."""
    items = list(items)
    return sum(item.monthly_min for item in items), sum(item.monthly_max for item in items)


def render(env: str, items: list[LineItem]) -> str:
    """A Markdown table of the items, ending with the one total line of the environment."""
    lines = [
        f"### {env} ({p.REGION}, on-demand list prices of {p.PRICE_DATE}, {p.HOURS_PER_MONTH} h/month)",
        "",
        "| what | how many | unit price | monthly min | monthly max |",
        "|---|---|---|---:|---:|",
    ]
    lines += [
        f"| {i.what} | {i.count} | {i.unit_price} | ${i.monthly_min:,.2f} | ${i.monthly_max:,.2f} |" for i in items
    ]
    low, high = totals(items)
    lines += ["", f"{env} total: ${low:,.2f} per month at minimum scale, ${high:,.2f} at maximum scale"]
    return "\n".join(lines)
