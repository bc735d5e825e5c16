#!/usr/bin/env python3
"""CDK entry point: ``npx cdk synth -c env=dev|prod`` (default dev).

Stacks live in stages, one per deployment stamp (``Movies-<env>``, ``Movies-<env>-<stamp>``) plus the geode's
(``Movies-<env>-Geode``), so select them with ``'**'`` (``npx cdk deploy '**' -c env=dev``) or one stamp with
``'Movies-prod/*'``; ``--all`` only selects top-level stacks. Set context ``nag=false`` to skip the cdk-nag checks
while iterating.
"""

from stacks.application import build_app

if __name__ == "__main__":
    app, _ = build_app()
    app.synth()
