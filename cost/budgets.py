"""Each environment's monthly AWS Budget, derived from the cost model instead of typed by hand.

The amount is the maximum-scale cost of ``make cost`` plus ``MARGIN`` (traffic-priced items the model prices at
$0, price changes), rounded up to whole tens of dollars. ``make cost-budgets`` writes them to
``stacks/budgets.json``, which stacks/config.py reads; tests/infra/test_cost.py fails when the committed
amounts are not what the current templates give (a stack change that moves the cost must move the budget).
The stacks cannot compute it at synthesis time: the model prices synthesized templates.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

#: Headroom over the maximum-scale cost.
MARGIN = 0.20
#: Where the stacks read the budgets from.
BUDGETS_FILE = Path(__file__).resolve().parents[1] / "stacks" / "budgets.json"


def budget_of(maximum_cost: float) -> int:
    """The monthly budget (whole USD, a multiple of 10) for an environment whose maximum-scale cost is given."""
    return int(math.ceil(maximum_cost * (1 + MARGIN) / 10.0) * 10)


def write(budgets: dict[str, int], path: Path = BUDGETS_FILE) -> None:
    """Write ``{env: amount}`` as the stacks read it (sorted, one line per environment)."""
    path.write_text(json.dumps(dict(sorted(budgets.items())), indent=2) + "\n")
