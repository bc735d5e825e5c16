"""PublicEdge: everything between the internet and the gateway tasks.

The internet-facing ALB with its access-log bucket, the gateway target group, the listeners (HTTP-only trial,
or HTTPS with JWT validation for /api/*, plus the HTTP -> HTTPS redirect), the certificate and DNS alias, and
the WAF web ACL with its request logs.

The ALB accepts only CloudFront (``WebFrontEnd``): every forwarding rule requires the header
``contract.web.ORIGIN_VERIFY_HEADER`` with the value of a generated secret (``origin_verify_secret``), which
CloudFront adds to each request it forwards; anything else gets a fixed 403. The ALB's former Cognito login
for browsers is gone: browsers load the single-page app from CloudFront and call /api/* with bearer tokens
of its own public client (docs/aws-deployment.md, "The web edge").

A ``TransparentConstruct``: its resources keep the logical ids they had as direct children of the compute
stack, so moving them here replaced nothing on deploy.
"""

from __future__ import annotations

from aws_cdk import Annotations, Duration, RemovalPolicy, Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as route53_targets
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from contract import web
from stacks.auth import AuthStack
from stacks.components.fargate_microservice import FargateMicroservice
from stacks.components.logical_ids import TransparentConstruct
from stacks.config import EnvironmentConfig

API_PATH_PATTERN = web.API_PATH_PATTERN
HEALTH_PATH = web.HEALTH_PATH  # the one path forwarded without authentication (smoke tests, uptime checks)
HEALTH_RULE_PRIORITY, API_RULE_PRIORITY = 5, 10  # lower is evaluated first; the default (403) comes last
#: With the geode edge: /health from anywhere (Route 53's checkers send no CloudFront header), and /api/* for the
#: geode's name, straight from clients (the ALB still verifies the token; WAF still filters).
PUBLIC_HEALTH_RULE_PRIORITY, GEODE_API_RULE_PRIORITY = 4, 20
CLOUDFRONT_RULE_PRIORITY = 10  # the trial's only rule: anything from CloudFront
#: What the ALB answers a request that did not come through CloudFront (or matches no rule).
REFUSED = elbv2.ListenerAction.fixed_response(
    403, content_type="application/json", message_body='{"error": "forbidden: use the web origin (CloudFront)"}'
)
HTTP_ONLY_WARNING = (
    "No domain configured (domain_name / hosted_zone_id / hosted_zone_name): synthesizing the HTTP-only "
    "TRIAL variant. Traffic and tokens travel unencrypted and the ALB does not authenticate; only the "
    "gateway validates tokens; CloudFront reaches the ALB over HTTP. Never use it for real data."
)
#: AWS managed rule groups of the web ACL, in priority order after the per-IP rate limit (priority 0).
MANAGED_RULE_GROUPS = (
    "AWSManagedRulesAmazonIpReputationList",
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesSQLiRuleSet",
)


class PublicEdge(TransparentConstruct):
    """The public entry of one environment: ALB, listeners and authentication, TLS, DNS, WAF and their logs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        security_group: ec2.SecurityGroup,
        gateway: FargateMicroservice,
        auth: AuthStack,
    ) -> None:
        super().__init__(scope, construct_id)
        self.security_group = security_group
        self.access_logs_bucket = s3.Bucket(
            self,
            "AlbAccessLogs",
            # ALB access logs support SSE-S3 only (not SSE-KMS).
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=False,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(config.access_log_expiry_days))],
            # Retained on stack deletion in every env: logs are evidence; empty and delete it by hand.
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.alb = elbv2.ApplicationLoadBalancer(
            self,
            "Alb",
            vpc=vpc,
            internet_facing=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            security_group=security_group,
            drop_invalid_header_fields=True,
            deletion_protection=config.retain_data_on_delete,
        )
        self.alb.log_access_logs(self.access_logs_bucket, prefix="alb")

        self.target_group = elbv2.ApplicationTargetGroup(
            self,
            "GatewayTargets",
            vpc=vpc,
            port=gateway.port,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.IP,
            targets=[gateway.service],
            deregistration_delay=Duration.seconds(30),
            # /health, not /ready: ECS replaces tasks that fail the target-group check, so a readiness
            # check would restart every gateway task whenever RabbitMQ or inventory blips, turning a
            # dependency outage into a gateway outage. The gateway answers 503 on routes whose dependency
            # is down; /ready stays available for operators and local orchestration.
            health_check=elbv2.HealthCheck(
                path="/health",
                healthy_http_codes="200",
                interval=Duration.seconds(15),
                timeout=Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
        )
        forward = elbv2.ListenerAction.forward([self.target_group])
        # The shared secret CloudFront sends and the rules require; generated by Secrets Manager, so no value
        # is in the template (both sides use a dynamic reference resolved at deploy time).
        self.origin_verify_secret = secretsmanager.Secret(
            self,
            "OriginVerifySecret",
            description=f"Value of the {web.ORIGIN_VERIFY_HEADER} header CloudFront sends to the ALB",
            generate_secret_string=secretsmanager.SecretStringGenerator(password_length=48, exclude_punctuation=True),
        )
        self.from_cloudfront = elbv2.ListenerCondition.http_header(
            web.ORIGIN_VERIFY_HEADER, [self.origin_verify_secret.secret_value.unsafe_unwrap()]
        )

        self.https_listener: elbv2.ApplicationListener | None = None
        if config.https_enabled:
            self._https_listeners(config, auth, forward)
        else:
            Annotations.of(self).add_warning_v2("movies:http-only-trial", HTTP_ONLY_WARNING)
            security_group.add_ingress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(80), "HTTP (trial)")
            self.http_listener = self.alb.add_listener(
                "Http", port=80, protocol=elbv2.ApplicationProtocol.HTTP, open=False, default_action=REFUSED
            )
            self.http_listener.add_action(
                "FromCloudFront", priority=CLOUDFRONT_RULE_PRIORITY, conditions=[self.from_cloudfront], action=forward
            )

        self._create_waf(config)

    def _https_listeners(self, config: EnvironmentConfig, auth: AuthStack, forward: elbv2.ListenerAction) -> None:
        assert config.domain_name and config.hosted_zone_id and config.hosted_zone_name
        zone = route53.HostedZone.from_hosted_zone_attributes(
            self, "Zone", hosted_zone_id=config.hosted_zone_id, zone_name=config.hosted_zone_name
        )
        if config.certificate_arn:
            certificate = acm.Certificate.from_certificate_arn(self, "Certificate", config.certificate_arn)
        else:
            certificate = acm.Certificate(
                self,
                "Certificate",
                domain_name=config.domain_name,
                # Its Name tag defaults to its construct path; keep the one it had as a child of the stack.
                certificate_name=f"{Stack.of(self).node.path}/Certificate"[:255],
                validation=acm.CertificateValidation.from_dns(zone),
            )

        for port in (80, 443):
            self.security_group.add_ingress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(port), f"public {port}")
        # The ALB fetches the Cognito JWKS over HTTPS.
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "Cognito / JWKS")

        self.https_listener = self.alb.add_listener(
            "Https",
            port=443,
            protocol=elbv2.ApplicationProtocol.HTTPS,
            certificates=[elbv2.ListenerCertificate.from_certificate_manager(certificate)],
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
            open=False,
            # Not from CloudFront, or not a path CloudFront forwards: refused.
            default_action=REFUSED,
        )
        # Exactly /health (smoke tests, uptime checks) and the API reference reach the gateway unauthenticated,
        # from CloudFront only.
        self.https_listener.add_action(
            "Health",
            priority=HEALTH_RULE_PRIORITY,
            conditions=[
                elbv2.ListenerCondition.path_patterns([HEALTH_PATH, *web.API_DOCS_PATHS]),
                self.from_cloudfront,
            ],
            action=forward,
        )
        # API paths: bearer access tokens verified by the ALB (signature, iss, exp) before the gateway.
        self.https_listener.add_action(
            "Api",
            priority=API_RULE_PRIORITY,
            conditions=[elbv2.ListenerCondition.path_patterns([API_PATH_PATTERN]), self.from_cloudfront],
            action=elbv2.ListenerAction.authenticate_jwt(issuer=auth.issuer, jwks_endpoint=auth.jwks_url, next=forward),
        )
        if config.geode:
            self._geode_rules(config, zone, auth, forward)
        self.http_listener = self.alb.add_listener(
            "HttpRedirect",
            port=80,
            protocol=elbv2.ApplicationProtocol.HTTP,
            open=False,
            default_action=elbv2.ListenerAction.redirect(protocol="HTTPS", port="443", permanent=True),
        )
        route53.ARecord(
            self,
            "AliasRecord",
            zone=zone,
            record_name=config.domain_name,
            target=route53.RecordTarget.from_alias(route53_targets.LoadBalancerTarget(self.alb)),
        )

    def _geode_rules(
        self, config: EnvironmentConfig, zone: route53.IHostedZone, auth: AuthStack, forward: elbv2.ListenerAction
    ) -> None:
        """What the geode edge (stacks/geode.py) needs of this stamp's ALB: its certificate for the geode's name,
        ``/health`` reachable without CloudFront's header (Route 53's checkers cannot send one; /health carries no
        data and needs no token), and ``/api/*`` for the geode's name, token-checked by the ALB as from CloudFront.
        """
        assert config.geode and self.https_listener
        name = config.geode.api_domain_name
        # A certificate of its own (added to the listener by SNI): the stamp's certificate stays as it is.
        certificate = acm.Certificate(
            self,
            "GeodeCertificate",
            domain_name=name,
            certificate_name=f"{Stack.of(self).node.path}/GeodeCertificate"[:255],
            validation=acm.CertificateValidation.from_dns(zone),
        )
        self.https_listener.add_certificates(
            "GeodeCertificate", [elbv2.ListenerCertificate.from_certificate_manager(certificate)]
        )
        self.https_listener.add_action(
            "PublicHealth",
            priority=PUBLIC_HEALTH_RULE_PRIORITY,
            conditions=[elbv2.ListenerCondition.path_patterns([HEALTH_PATH])],
            action=forward,
        )
        self.https_listener.add_action(
            "GeodeApi",
            priority=GEODE_API_RULE_PRIORITY,
            conditions=[
                elbv2.ListenerCondition.host_headers([name]),
                elbv2.ListenerCondition.path_patterns([API_PATH_PATTERN]),
            ],
            action=elbv2.ListenerAction.authenticate_jwt(issuer=auth.issuer, jwks_endpoint=auth.jwks_url, next=forward),
        )

    def _create_waf(self, config: EnvironmentConfig) -> None:
        rate_rule = wafv2.CfnWebACL.RuleProperty(
            name="RateLimitPerIp",
            priority=0,
            action=wafv2.CfnWebACL.RuleActionProperty(block={}),
            statement=wafv2.CfnWebACL.StatementProperty(
                # Every request now arrives from a CloudFront address: counting by source IP would throttle all
                # the viewers behind one edge together. CloudFront appends the viewer's address to
                # X-Forwarded-For; WAF counts by the header's first address (which a client can prepend: the
                # gateway's per-caller limits stay the real throttle; docs/aws-deployment.md, "The web edge").
                rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                    limit=config.waf_rate_limit_per_5min,
                    aggregate_key_type="FORWARDED_IP",
                    forwarded_ip_config=wafv2.CfnWebACL.ForwardedIPConfigurationProperty(
                        header_name="X-Forwarded-For", fallback_behavior="MATCH"
                    ),
                )
            ),
            visibility_config=_waf_visibility("RateLimitPerIp"),
        )
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=_waf_visibility(f"{config.prefix}-web-acl"),
            rules=[rate_rule, *(_managed_rule(name, priority) for priority, name in enumerate(MANAGED_RULE_GROUPS, 1))],
        )
        wafv2.CfnWebACLAssociation(
            self, "WebAclAssociation", resource_arn=self.alb.load_balancer_arn, web_acl_arn=self.web_acl.attr_arn
        )
        # WAF requires the "aws-waf-logs-" prefix. Bearer tokens and session cookies are redacted so that
        # no credential ever lands in the logs.
        waf_logs = logs.LogGroup(
            self,
            "WafLogs",
            log_group_name=f"aws-waf-logs-{config.prefix}",
            retention=config.log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        wafv2.CfnLoggingConfiguration(
            self,
            "WafLogging",
            resource_arn=self.web_acl.attr_arn,
            log_destination_configs=[waf_logs.log_group_arn],
            redacted_fields=[
                wafv2.CfnLoggingConfiguration.FieldToMatchProperty(single_header={"Name": "authorization"}),
                wafv2.CfnLoggingConfiguration.FieldToMatchProperty(single_header={"Name": "cookie"}),
            ],
        )


def _managed_rule(name: str, priority: int) -> wafv2.CfnWebACL.RuleProperty:
    """An AWS managed rule group that only counts/blocks as its own rules say (no override)."""
    return wafv2.CfnWebACL.RuleProperty(
        name=name,
        priority=priority,
        override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
        statement=wafv2.CfnWebACL.StatementProperty(
            managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(vendor_name="AWS", name=name)
        ),
        visibility_config=_waf_visibility(name),
    )


def _waf_visibility(metric_name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(
        cloud_watch_metrics_enabled=True, metric_name=metric_name, sampled_requests_enabled=True
    )
