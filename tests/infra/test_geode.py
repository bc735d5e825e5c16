"""The geode edge: one API name, latency records per stamp guarded by Route 53 health checks on each stamp's
public /health, their alarms in us-east-1, and what the stamps' ALBs need for it."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match

from stacks.config import PROD
from tests.infra.helpers import dumps

pytestmark = pytest.mark.infra

GEODE = "geode (global DNS, health checks)"
STAMPS = {"eu": ("eu-west-1", "movies.example.com"), "us": ("us-east-1", "movies-us.example.com")}


@pytest.fixture(scope="module")
def geode(prod):
    """The prod geode stack's template."""
    return prod.part_template(GEODE, "Geode")


def test_the_geode_stack_is_in_us_east_1(prod):
    """Route 53 health-check metrics exist only in us-east-1: the geode (and its alarms) are there."""
    assert prod.parts[GEODE][0] == "us-east-1"
    assert [s.stack_name for s in prod.deployment.geode.stacks] == ["Movies-prod-Geode"]


def test_dev_has_no_geode(dev):
    """dev (no hosted zone) has no geode stack."""
    assert dev.deployment.geode is None


def test_one_latency_record_per_stamp_with_its_health_check(geode):
    """api.example.com has one CNAME per stamp: SetIdentifier = stamp, Region = its region, target = its ALB name,
    guarded by that stamp's health check."""
    records = geode.find_resources("AWS::Route53::RecordSet")
    assert len(records) == len(STAMPS)
    checks = geode.find_resources("AWS::Route53::HealthCheck")
    for stamp, (region, domain) in STAMPS.items():
        (record,) = [r["Properties"] for r in records.values() if r["Properties"]["SetIdentifier"] == stamp]
        assert record["Name"] == f"{PROD.geode.api_domain_name}."
        assert (record["Type"], record["Region"], record["ResourceRecords"]) == ("CNAME", region, [domain])
        assert record["HostedZoneId"] == PROD.hosted_zone_id
        (check_id,) = record["HealthCheckId"].values()
        assert checks[check_id]["Properties"]["HealthCheckConfig"]["FullyQualifiedDomainName"] == domain


def test_health_checks_call_each_stamps_public_health_over_https(geode):
    """Each check is an HTTPS GET of /health on the stamp's name (port 443, SNI): no token, no header needed."""
    checks = geode.find_resources("AWS::Route53::HealthCheck")
    assert len(checks) == len(STAMPS)
    for check in checks.values():
        config = check["Properties"]["HealthCheckConfig"]
        assert (config["Type"], config["Port"], config["ResourcePath"], config["EnableSNI"]) == (
            "HTTPS", 443, "/health", True,
        )  # fmt: skip


def test_the_hosted_zone_is_imported_never_created(prod):
    """No template creates a hosted zone: the geode (and the ALB records) use the zone id of the config."""
    for _, templates in prod.parts.values():
        assert "AWS::Route53::HostedZone" not in dumps(templates)


def test_each_health_check_has_an_alarm_on_the_geodes_topic(geode):
    """HealthCheckStatus < 1 for two minutes (or no data) alarms on the geode's own encrypted topic."""
    alarms = geode.find_resources(
        "AWS::CloudWatch::Alarm",
        {
            "Properties": {
                "Namespace": "AWS/Route53",
                "MetricName": "HealthCheckStatus",
                "Threshold": 1,
                "ComparisonOperator": "LessThanThreshold",
                "TreatMissingData": "breaching",
                "AlarmActions": [{"Ref": Match.string_like_regexp("^AlarmTopic")}],
            }
        },
    )
    checks = geode.find_resources("AWS::Route53::HealthCheck")
    watched = {alarm["Properties"]["Dimensions"][0]["Value"]["Ref"] for alarm in alarms.values()}
    assert watched == set(checks)
    geode.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})


def test_the_geode_dashboard_shows_every_stamps_health(geode):
    """The geode's dashboard graphs each health check's status."""
    (dashboard,) = geode.find_resources("AWS::CloudWatch::Dashboard").values()
    body = dumps(dashboard)
    assert "HealthCheckStatus" in body and all(f'"Ref": "{lid}"' in body for lid in geode.find_resources(
        "AWS::Route53::HealthCheck"))  # fmt: skip


# --- what the stamps' ALBs need -------------------------------------------------------------------------------
def _rules(template) -> dict[str, dict]:
    return template.find_resources("AWS::ElasticLoadBalancingV2::ListenerRule")


@pytest.mark.parametrize("part", ["stamp eu", "stamp us"])
def test_health_is_reachable_without_cloudfront_or_a_token(prod, part):
    """A rule forwards exactly /health from anywhere (Route 53's checkers send no CloudFront header), with no
    authentication action, before every other rule."""
    rules = _rules(prod.part_template(part, "Compute"))
    public = [
        r["Properties"]
        for r in rules.values()
        if r["Properties"]["Conditions"] == [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/health"]}}]
    ]
    assert len(public) == 1
    assert [action["Type"] for action in public[0]["Actions"]] == ["forward"]
    assert public[0]["Priority"] == min(r["Properties"]["Priority"] for r in rules.values())


@pytest.mark.parametrize("part", ["stamp eu", "stamp us"])
def test_the_geode_name_reaches_the_api_with_a_verified_token(prod, part):
    """/api/* for the geode's name (no CloudFront header) passes the ALB's JWT validation before the gateway, and
    the listener carries a certificate for that name."""
    template = prod.part_template(part, "Compute")
    rules = [r["Properties"] for r in _rules(template).values() if "host-header" in dumps(r["Properties"])]
    assert len(rules) == 1
    assert PROD.geode.api_domain_name in dumps(rules[0]["Conditions"]) and "/api/*" in dumps(rules[0]["Conditions"])
    assert [action["Type"] for action in rules[0]["Actions"]] == ["jwt-validation", "forward"]
    template.has_resource_properties(
        "AWS::CertificateManager::Certificate", {"DomainName": PROD.geode.api_domain_name}
    )
    template.resource_count_is("AWS::ElasticLoadBalancingV2::ListenerCertificate", 1)


def test_without_a_geode_the_alb_answers_cloudfront_only(dev):
    """dev (no geode): no rule without the CloudFront origin header."""
    for rule in _rules(dev.template("Compute")).values():
        assert "X-Origin-Verify" in dumps(rule["Properties"]["Conditions"])
