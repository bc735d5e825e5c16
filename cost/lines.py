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


def _table(items: list[LineItem]) -> list[str]:
    return [
        "| what | how many | unit price | monthly min | monthly max |",
        "|---|---|---|---:|---:|",
        *(f"| {i.what} | {i.count} | {i.unit_price} | ${i.monthly_min:,.2f} | ${i.monthly_max:,.2f} |" for i in items),
    ]


def total_line(label: str, low: float, high: float) -> str:
    """``<label> total: $<min> per month at minimum scale, $<max> at maximum scale``."""
    return f"{label} total: ${low:,.2f} per month at minimum scale, ${high:,.2f} at maximum scale"


def render(env: str, items: list[LineItem], region: str = p.REGION) -> str:
    """A Markdown table of the items (one region), ending with the one total line of the environment."""
    lines = [f"### {env} ({region}, on-demand list prices of {p.PRICE_DATE}, {p.HOURS_PER_MONTH} h/month)", ""]
    lines += _table(items)
    lines += ["", total_line(env, *totals(items))]
    return "\n".join(lines)


def render_environment(env: str, sections: list) -> str:
    """One environment: a table per stamp (and the geode) with its subtotal, ending with the environment's one
    total line. ``sections`` are ``cost.model.Section`` (title, region, items)."""
    lines = [f"### {env} (on-demand list prices of {p.PRICE_DATE}, {p.HOURS_PER_MONTH} h/month)"]
    for section in sections:
        low, high = totals(section.items)
        lines += ["", f"#### {env}: {section.title} ({section.region})", "", *_table(section.items), ""]
        lines.append(f"{section.title} subtotal: ${low:,.2f} per month at minimum scale, ${high:,.2f} at maximum scale")
    everything = [item for section in sections for item in section.items]
    lines += ["", total_line(env, *totals(everything))]
    return "\n".join(lines)
