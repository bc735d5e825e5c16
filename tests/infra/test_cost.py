"""cost (``make cost``): the synthesized templates priced at minimum and at maximum scale."""

from __future__ import annotations

import re
from typing import Any

import pytest

import cost.__main__ as cost_main
from cost import budgets, prices
from cost.lines import render, totals
from cost.model import HANDLERS, price, price_environment, resource_types, unclassified
from stacks.config import DERIVED_BUDGETS

pytestmark = pytest.mark.infra

TOTAL_LINE = re.compile(r"^(\w+) total: \$[\d,]+\.\d\d per month at minimum scale, \$[\d,]+\.\d\d at maximum scale$")


def _fargate_template(min_tasks: int, max_tasks: int, *, multi_az: bool = False) -> dict[str, Any]:
    """A hand-made template: one Fargate service (0.5 vCPU / 1 GB, ARM64) with its scalable target."""
    return {
        "Compute": {
            "Resources": {
                "TaskDef1234ABCD": {
                    "Type": "AWS::ECS::TaskDefinition",
                    "Properties": {"Cpu": "512", "Memory": "1024", "RuntimePlatform": {"CpuArchitecture": "ARM64"}},
                },
                "ApiServiceDEADBEEF": {
                    "Type": "AWS::ECS::Service",
                    "Properties": {"TaskDefinition": {"Ref": "TaskDef1234ABCD"}, "DesiredCount": min_tasks},
                },
                "ApiTarget": {
                    "Type": "AWS::ApplicationAutoScaling::ScalableTarget",
                    "Properties": {
                        "MinCapacity": min_tasks,
                        "MaxCapacity": max_tasks,
                        "ResourceId": {
                            "Fn::Join": ["", ["service/c/", {"Fn::GetAtt": ["ApiServiceDEADBEEF", "Name"]}]]
                        },
                    },
                },
                "Db": {
                    "Type": "AWS::RDS::DBInstance",
                    "Properties": {"DBInstanceClass": "db.t4g.micro", "AllocatedStorage": "20", "MultiAZ": multi_az},
                },
            }
        }
    }


def test_every_synthesized_resource_type_is_priced_or_listed(any_env):
    """Each resource type in the templates (every stamp, the geode) is priced, usage-based or free: a new type must
    be added to the table."""
    missing = unclassified(set().union(*(resource_types(templates) for _, templates in any_env.parts.values())))
    assert not missing, f"{any_env.name}: add to cost/prices.py (priced, USAGE_BASED or FREE_TYPES): {missing}"


def test_an_unknown_resource_type_is_reported():
    """A type the price table does not know is named, so the completeness check above can fail."""
    assert unclassified(["AWS::IAM::Role", "AWS::Made::Up"]) == ["AWS::Made::Up"]


def test_a_type_is_in_only_one_list():
    """No type is both priced and free (or usage-based): its charge would be counted or hidden inconsistently."""
    assert not set(HANDLERS) & (prices.FREE_TYPES | set(prices.USAGE_BASED))
    assert not prices.FREE_TYPES & set(prices.USAGE_BASED)


def test_minimum_does_not_exceed_maximum(any_env):
    """The cost at minimum scale is at most the cost at maximum scale, per item and in total."""
    items = price(any_env.templates)
    assert all(item.monthly_min <= item.monthly_max for item in items)
    low, high = totals(items)
    assert 0 < low <= high


def test_prod_costs_more_than_dev(dev, prod):
    """prod (bigger, Multi-AZ, more tasks) costs more than dev at both ends of the scale."""
    dev_low, dev_high = totals(price(dev.templates))
    prod_low, prod_high = totals(price(prod.templates))
    assert prod_low > dev_low and prod_high > dev_high


def _environment_total(env) -> tuple[float, float]:
    """(minimum, maximum) of every stamp and the geode of a synthesized environment."""
    return totals(item for section in price_environment(env.parts) for item in section.items)


def test_output_ends_each_environment_with_its_total_line(monkeypatch, capsys, synthesized):
    """``python -m cost`` prints a table per environment, each ending with the one exact total line."""
    monkeypatch.setattr(cost_main, "environment_templates", lambda: {n: e.parts for n, e in synthesized.items()})
    assert cost_main.main() == 0
    blocks = capsys.readouterr().out.strip().split("\n\n### ")
    assert len(blocks) == len(synthesized)
    for block, env in zip(blocks, synthesized, strict=True):
        last = block.splitlines()[-1]
        assert TOTAL_LINE.match(last) and last.startswith(f"{env} total: "), last
        assert sum(bool(TOTAL_LINE.match(line)) for line in block.splitlines()) == 1


def test_more_tasks_cost_more():
    """Four tasks at maximum scale cost twice as much Fargate as two; the minimum is unchanged."""
    two = price(_fargate_template(1, 2))
    four = price(_fargate_template(1, 4))
    fargate_two = next(item for item in two if item.what.startswith("Fargate Api"))
    fargate_four = next(item for item in four if item.what.startswith("Fargate Api"))
    assert fargate_four.monthly_max == pytest.approx(2 * fargate_two.monthly_max)
    assert fargate_four.monthly_min == pytest.approx(fargate_two.monthly_min)
    assert totals(four)[1] > totals(two)[1]


def test_multi_az_doubles_the_database():
    """A Multi-AZ instance (and its storage) costs twice the single-AZ one."""
    single = totals(item for item in price(_fargate_template(1, 1)) if item.what.startswith("RDS"))
    multi = totals(item for item in price(_fargate_template(1, 1, multi_az=True)) if item.what.startswith("RDS"))
    assert multi[0] == pytest.approx(2 * single[0])


def test_render_ends_with_the_total_of_the_items():
    """The total line adds up the rows printed above it."""
    text = render("test", price(_fargate_template(2, 4)))
    low, high = totals(price(_fargate_template(2, 4)))
    assert text.splitlines()[-1] == f"test total: ${low:,.2f} per month at minimum scale, ${high:,.2f} at maximum scale"


def test_each_budget_is_the_maximum_cost_plus_the_margin(synthesized):
    """stacks/budgets.json (what the stacks' AWS Budgets use) holds each environment's maximum-scale cost plus
    the margin: a stack change that moves the cost fails here until `make cost-budgets` is run."""
    derived = {env: budgets.budget_of(_environment_total(found)[1]) for env, found in synthesized.items()}
    assert DERIVED_BUDGETS == derived


def test_the_budget_covers_the_maximum_with_headroom():
    """A budget is at least the maximum cost plus the margin, rounded up to tens: never below what may be spent."""
    assert budgets.budget_of(340.49) == 410
    assert budgets.budget_of(400.0) == 480
    assert budgets.budget_of(0.01) == 10


def test_the_readme_cost_table_is_the_models(synthesized):
    """README's cost table shows what the model computes now (minimum, maximum, budget per environment)."""
    readme = (cost_main.REPO_ROOT / "README.md").read_text()
    for env, found in synthesized.items():
        minimum, maximum = _environment_total(found)
        row = f"| {env} | ${minimum:,.2f} / month | ${maximum:,.2f} / month | ${DERIVED_BUDGETS[env]:,} |"
        assert row in readme, f"README's cost row of {env} should read: {row}"


# --- per stamp and per region (issue 16) -----------------------------------------------------------------------
def test_every_region_a_stamp_uses_has_prices(any_env):
    """Each stamp's (and the geode's) region is in the price table; the regions differ in what they charge."""
    for region, _ in any_env.parts.values():
        assert prices.for_region(region).REGION == region
    assert prices.for_region("us-east-1").NAT_GATEWAY_PER_HOUR != prices.for_region("eu-west-1").NAT_GATEWAY_PER_HOUR


def test_a_region_without_prices_is_refused():
    """A stamp in a region the table does not cover fails loudly instead of being priced with another's prices."""
    with pytest.raises(KeyError, match="ap-southeast-2"):
        prices.for_region("ap-southeast-2")


def test_prod_is_printed_per_stamp_with_subtotals_that_add_up(monkeypatch, capsys, prod):
    """prod's block has a table and a subtotal per stamp and for the geode; the total line adds them up."""
    monkeypatch.setattr(cost_main, "environment_templates", lambda: {"prod": prod.parts})
    assert cost_main.main() == 0
    lines = capsys.readouterr().out.strip().splitlines()
    subtotals = [line for line in lines if " subtotal: $" in line]
    assert [line.split(" subtotal")[0] for line in subtotals] == [
        "stamp eu", "stamp us", "geode (global DNS, health checks)",
    ]  # fmt: skip
    low = sum(float(re.search(r"subtotal: \$([\d,.]+) per", line).group(1).replace(",", "")) for line in subtotals)
    assert lines[-1].startswith(f"prod total: ${low:,.2f} per month")


def test_route53_health_checks_are_priced_with_their_https_feature(prod):
    """A Route 53 HTTPS health check costs the base price plus one optional feature (HTTPS)."""
    region, templates = prod.parts["geode (global DNS, health checks)"]
    checks = [item for item in price(templates, region) if item.what.startswith("Route 53 health check")]
    assert len(checks) == 2
    each = prices.ROUTE53_HEALTH_CHECK_PER_MONTH + prices.ROUTE53_HEALTH_CHECK_FEATURE_PER_MONTH
    assert all(item.monthly_min == item.monthly_max == pytest.approx(each) and "HTTPS" in item.what for item in checks)


def test_a_canary_is_priced_per_run_of_its_schedule(dev):
    """A canary every 15 minutes runs 730 h x 4 times a month, each run at the table's price."""
    (item,) = [item for item in price(dev.templates) if item.what.startswith("Synthetics canary")]
    assert item.count == "2,920 runs"
    assert item.monthly_max == pytest.approx(2920 * prices.SYNTHETICS_CANARY_RUN)
