"""cdk-nag AwsSolutions acknowledgements, each with the reason it is acceptable.

Kept in one module so a reviewer sees every accepted finding at once. Acknowledgements are attached to the
narrowest construct that produces the finding (cdk-nag 3: ``Validations.of(construct).acknowledge``).
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def acknowledge(construct: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding on ``construct`` (and its children) with a written reason."""
    Validations.of(construct).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def acknowledge_findings(stage) -> None:
    """Acknowledge the accepted findings of a ``MicroservicesStage``."""
