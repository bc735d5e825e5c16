"""cdk-nag AwsSolutions over the whole app: zero unacknowledged findings, every acknowledgement explained."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.infra

#: Every accepted finding, per environment. Adding one is a reviewed change to this list and to
#: stacks/nag.py (which holds the reasons); docs/aws-deployment.md summarises them.
EXPECTED_ACKNOWLEDGEMENTS = {
    "common": {
        "AwsSolutions-EC23",
        "AwsSolutions-RDS11",
        "AwsSolutions-ECS2",
        "AwsSolutions-IAM5[Resource::*]",
        "AwsSolutions-S1",
        # issue 11: the broker rotation Lambda and the AWS Backup role (SMG4 is gone: the broker secret rotates)
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]",
        "AwsSolutions-L1",
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup]",
        # issue 13: the rate-limit store's user secret (ElastiCache RBAC users have no managed rotation) and the
        # gateway's order-id signing key (a new key breaks every status link); stacks/nag.py says why
        "AwsSolutions-SMG4",
        # issue 14: the distribution (no geo restriction, no us-east-1 WAF, the cloudfront.net certificate's TLS)
        "AwsSolutions-CFR1",
        "AwsSolutions-CFR2",
        "AwsSolutions-CFR4",
        # issue 14: CDK's BucketDeployment provider (assets bucket -> web content bucket, invalidation)
        "AwsSolutions-IAM5[Action::s3:Abort*]",
        "AwsSolutions-IAM5[Action::s3:DeleteObject*]",
        "AwsSolutions-IAM5[Action::s3:GetBucket*]",
        "AwsSolutions-IAM5[Action::s3:GetObject*]",
        "AwsSolutions-IAM5[Action::s3:List*]",
        "AwsSolutions-IAM5[Resource::<WebContent62D64E3D.Arn>/*]",
        "AwsSolutions-IAM5[Resource::arn:aws:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-eu-west-1/*]",
        # issue 14: each poster filter reads one prefix and writes the next (exact prefixes: test_posters.py)
        "AwsSolutions-IAM5[Resource::<Uploads4F6EB0FD.Arn>/incoming/*]",
        "AwsSolutions-IAM5[Resource::<Uploads4F6EB0FD.Arn>/validated/*]",
        "AwsSolutions-IAM5[Resource::<Uploads4F6EB0FD.Arn>/resized/*]",
        # issue 16: the outside check canary's role (CDK's): its artifacts prefix and the cwsyn-* log groups
        "AwsSolutions-IAM5[Resource::<OutsideCheckArtifacts0A15DBF5.Arn>/canary/*]",
        "AwsSolutions-IAM5[Resource::arn:aws:logs:eu-west-1:<AWS::AccountId>:log-group:/aws/lambda/cwsyn-*]",
    },
    "dev": {
        "AwsSolutions-RDS3",
        "AwsSolutions-RDS10",
        "AwsSolutions-COG2",
        "AwsSolutions-COG8",
        # issue 14: the HTTP-only trial's ALB has no certificate, so CloudFront reaches it over HTTP
        "AwsSolutions-CFR5",
    },
    "prod": {
        # Enhanced Monitoring (prod only): RDS's documented managed policy for its monitoring role
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole]",
    },
}
# issue 14: grants on the buckets the other stack creates, by their physical names (which embed the environment):
# publish writes posters/ of the web bucket, inventory's presigned POSTs write incoming/ of the uploads bucket.
for _env in ("dev", "prod"):
    EXPECTED_ACKNOWLEDGEMENTS[_env] |= {
        f"AwsSolutions-IAM5[Resource::arn:aws:s3:::movies-{_env}-web-<AWS::AccountId>-eu-west-1/posters/*]",
        f"AwsSolutions-IAM5[Resource::arn:aws:s3:::movies-{_env}-poster-uploads-<AWS::AccountId>-eu-west-1/incoming/*]",
        # issue 15: the saga bucket's prefixes (data stack, by name): the invoicer and billing on invoices/,
        # billing and inventory on claim-checks/ (exact grants: test_invoicer.py)
        f"AwsSolutions-IAM5[Resource::arn:aws:s3:::movies-{_env}-invoices-<AWS::AccountId>-eu-west-1/invoices/*]",
        f"AwsSolutions-IAM5[Resource::arn:aws:s3:::movies-{_env}-invoices-<AWS::AccountId>-eu-west-1/claim-checks/*]",
    }


def _acknowledgements(env) -> list[tuple[str, str, str]]:
    """(construct path, rule id, reason) for every cdk-nag acknowledgement recorded in the assembly."""
    found = []
    for stack_meta in env.metadata.values():
        for path, entries in stack_meta.items():
            for entry in entries:
                if entry["type"] == "aws:cdk:acknowledged-rules":
                    for rule, reason in entry["data"].items():
                        rule_id = rule.split("::", 1)[-1]
                        # aws-cdk-lib acknowledges some of its own validator rules (F3002, W3010, ...).
                        if rule_id.startswith("AwsSolutions-"):
                            found.append((path, rule_id, reason))
    return found


def test_no_unacknowledged_findings(any_env):
    """Synthesis with the AwsSolutions pack reports nothing (errors and warnings alike)."""
    findings = [f"{f['rule']} at {f['path']}: {f['description']}" for f in any_env.nag_findings]
    assert findings == [], "\n".join(findings)


def test_every_acknowledgement_has_a_written_reason(any_env):
    """Each acknowledgement carries a real sentence, not a placeholder."""
    acknowledgements = _acknowledgements(any_env)
    assert acknowledgements
    for path, rule, reason in acknowledgements:
        assert len(reason.split()) >= 8, f"{rule} at {path}: reason too short"


def test_acknowledged_rules_are_exactly_the_reviewed_list(any_env):
    """No acknowledgement appears (or disappears) without updating the reviewed list."""
    rules = {rule for _, rule, _ in _acknowledgements(any_env)}
    assert rules == EXPECTED_ACKNOWLEDGEMENTS["common"] | EXPECTED_ACKNOWLEDGEMENTS[any_env.name]


def test_prod_has_no_environment_specific_exceptions(prod):
    """Multi-AZ, deletion protection, MFA and threat protection hold in prod: none of dev's exceptions."""
    rules = {rule for _, rule, _ in _acknowledgements(prod)}
    assert not rules & EXPECTED_ACKNOWLEDGEMENTS["dev"]
