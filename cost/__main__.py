"""``python -m cost`` (``make cost``): synthesize every environment and print its monthly cost, per stamp.

Synthesis runs without AWS credentials (no account: no look-ups), without asset bundling and without
cdk-nag, so it needs no network; only the templates matter here.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from cost import budgets
from cost.lines import render_environment, totals
from cost.model import price_environment, resource_types, unclassified

REPO_ROOT = Path(__file__).resolve().parents[1]


Parts = dict[str, tuple[str, dict[str, dict[str, Any]]]]
"""An environment's parts to price: ``{title: (region, templates by stack id)}``, each stamp then the geode."""


def synthesize(env: str, outdir: str) -> Parts:
    """The templates of every stamp (and of the geode) of environment ``env``, synthesized into ``outdir``."""
    from stacks.application import build_environment_app

    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    # No stack's assets are bundled: bundling would run pip/docker, and the cost does not depend on them.
    context.update({"env": env, "aws:cdk:bundling-stacks": []})
    app, deployment = build_environment_app(context=context, outdir=outdir, nag=False, validation=False)
    assembly = app.synth()
    return parts_of(deployment, lambda stack: assembly.get_stack_artifact(stack.artifact_id).template)


def parts_of(deployment, template_of) -> Parts:
    """``Parts`` of a built ``EnvironmentDeployment``, with ``template_of(stack)`` giving each template."""
    from stacks.geode import GEODE_STACK_ID

    parts: Parts = {}
    for name, stacks in deployment.stacks_by_stamp.items():
        title = "geode (global DNS, health checks)" if name == GEODE_STACK_ID else f"stamp {name}"
        parts[title] = (stacks[0].region, {stack.node.id: template_of(stack) for stack in stacks})
    return parts


def environment_templates() -> dict[str, Parts]:
    """The parts of every environment of stacks/config.py, synthesized without an account."""
    from stacks.config import ENVIRONMENTS

    os.environ.pop("CDK_DEFAULT_ACCOUNT", None)  # account-agnostic synthesis: no AZ or context look-ups
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    with tempfile.TemporaryDirectory(prefix="cost-") as outdir:
        return {env: synthesize(env, str(Path(outdir) / env)) for env in ENVIRONMENTS}


def main(argv: list[str] | None = None) -> int:
    """Print one table per stamp of each environment, with subtotals and the environment's total
    (``--write-budgets``: also write each environment's budget to
    stacks/budgets.json); exit 1 if a resource type is missing from the price table."""
    write_budgets = "--write-budgets" in (sys.argv[1:] if argv is None else argv)
    missing, derived = [], {}
    for env, parts in environment_templates().items():
        sections = price_environment(parts)
        print(render_environment(env, sections), end="\n\n")
        derived[env] = budgets.budget_of(totals(item for section in sections for item in section.items)[1])
        for templates in (templates for _, templates in parts.values()):
            missing += [f"{env}: {resource_type}" for resource_type in unclassified(resource_types(templates))]
    # On stderr: stdout is the tables, each ending with its total line.
    listed = ", ".join(f"{env} ${amount:,}" for env, amount in derived.items())
    print(f"budgets (maximum-scale cost + {budgets.MARGIN:.0%}, cost/budgets.py): {listed}", file=sys.stderr)
    if write_budgets and not missing:
        budgets.write(derived)
        print(f"wrote {budgets.BUDGETS_FILE.relative_to(REPO_ROOT)}", file=sys.stderr)
    if missing:
        print(
            "resource types neither priced nor listed as free (extend cost/prices.py):",
            *missing,
            sep="\n  ",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
