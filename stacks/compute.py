"""ComputeStack: ECS cluster, the three Fargate services, the public ALB with WAF, and autoscaling."""

from __future__ import annotations

from aws_cdk import Annotations, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_elasticloadbalancingv2_actions as elbv2_actions
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as route53_targets
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_servicediscovery as servicediscovery
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from stacks.auth import SCOPE_PREFIX, AuthStack
from stacks.components.fargate_microservice import FargateMicroservice
from stacks.config import EnvironmentConfig
from stacks.data import BILLING_QUEUE, DataStack, queue_metric
from stacks.network import NetworkStack

INVENTORY_PORT = 8080
BILLING_PORT = 8080
GATEWAY_PORT = 3000
API_PATH_PATTERN = "/api/*"
HTTP_ONLY_WARNING = (
    "No domain configured (domain_name / hosted_zone_id / hosted_zone_name): synthesizing the HTTP-only "
    "TRIAL variant. Traffic and tokens travel unencrypted and the ALB does not authenticate; only the "
    "gateway validates tokens. Never use it for real data."
)


class ComputeStack(Stack):
    """Runs inventory, billing and gateway on Fargate; only the gateway is reachable, through the ALB."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        network: NetworkStack,
        data: DataStack,
        auth: AuthStack,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        vpc = network.vpc

        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
            enable_fargate_capacity_providers=True,
            # Service Connect namespace: gateway reaches inventory as http://inventory:8080 inside the VPC.
            default_cloud_map_namespace=ecs.CloudMapNamespaceOptions(
                name=f"{config.prefix}.internal",
                type=servicediscovery.NamespaceType.HTTP,
                use_for_service_connect=True,
            ),
        )

        broker_secrets = {
            "RABBITMQ_USER": ecs.Secret.from_secrets_manager(data.broker_secret, "username"),
            "RABBITMQ_PASSWORD": ecs.Secret.from_secrets_manager(data.broker_secret, "password"),
        }
        broker_env = {"RABBITMQ_URL": data.rabbitmq_url, "BILLING_QUEUE": BILLING_QUEUE}

        def database_settings(db) -> tuple[dict[str, str], dict[str, ecs.Secret]]:
            env = {
                "DATABASE_HOST": db.instance.db_instance_endpoint_address,
                "DATABASE_PORT": db.instance.db_instance_endpoint_port,
                "DATABASE_NAME": db.database_name,
                "DATABASE_SSLMODE": "require",
            }
            secrets = {
                "DATABASE_USER": ecs.Secret.from_secrets_manager(db.secret, "username"),
                "DATABASE_PASSWORD": ecs.Secret.from_secrets_manager(db.secret, "password"),
            }
            return env, secrets

        common = {
            "cluster": self.cluster,
            "cpu_architecture": config.cpu_architecture,
            "log_retention": config.log_retention,
        }

        inventory_env, inventory_secrets = database_settings(data.inventory_db)
        self.inventory = FargateMicroservice(
            self,
            "Inventory",
            service_name="inventory",
            port=INVENTORY_PORT,
            sizing=config.inventory,
            security_group=network.inventory_security_group,
            environment=inventory_env,
            secrets=inventory_secrets,
            service_connect="server",
            **common,
        )

        billing_env, billing_secrets = database_settings(data.billing_db)
        self.billing = FargateMicroservice(
            self,
            "Billing",
            service_name="billing",
            port=BILLING_PORT,
            sizing=config.billing,
            security_group=network.billing_security_group,
            environment={**billing_env, **broker_env},
            secrets={**billing_secrets, **broker_secrets},
            use_spot=config.billing_use_spot,
            **common,
        )

        self.gateway = FargateMicroservice(
            self,
            "Gateway",
            service_name="gateway",
            port=GATEWAY_PORT,
            sizing=config.gateway,
            security_group=network.gateway_security_group,
            environment={
                **broker_env,
                # Service Connect alias, never the public ALB: traffic stays inside the VPC.
                "INVENTORY_URL": f"http://inventory:{INVENTORY_PORT}",
                "COGNITO_REGION": self.region,
                "COGNITO_USER_POOL_ID": auth.user_pool.user_pool_id,
                "AUTH_ISSUER": auth.issuer,
                "AUTH_JWKS_URL": auth.jwks_url,
                "AUTH_ALLOWED_CLIENT_IDS": ",".join(auth.allowed_client_ids),
                "AUTH_SCOPE_PREFIX": SCOPE_PREFIX,
                "AUTH_GROUP_PERMISSIONS": auth.group_permissions,
                # Defence in depth: the gateway validates tokens even behind the ALB's JWT check.
                "AUTH_REQUIRED": "true",
            },
            secrets=broker_secrets,
            service_connect="client",
            health_check_grace_period=Duration.seconds(60),
            **common,
        )
        # Service Connect needs the server registered before a client deployment resolves its alias.
        self.gateway.service.node.add_dependency(self.inventory.service)
        self.inventory.connections.allow_from(
            self.gateway.connections, ec2.Port.tcp(INVENTORY_PORT), "gateway to inventory (Service Connect)"
        )

        self._create_load_balancer(config, network, auth)
        if config.https_enabled:
            # Browser sessions arrive with the ALB-signed x-amzn-oidc-data header; the gateway accepts it
            # only when signed by this load balancer.
            self.gateway.container.add_environment("AUTH_ALB_ARN", self.alb.load_balancer_arn)
        self._configure_scaling(config, data)

        # Identifiers for operators (the README (Infrastructure on AWS), "Verify").
        scheme, host = (
            ("https", config.domain_name) if config.https_enabled else ("http", self.alb.load_balancer_dns_name)
        )
        self.api_url_output = CfnOutput(self, "ApiUrl", value=f"{scheme}://{host}")
        CfnOutput(self, "ClusterName", value=self.cluster.cluster_name)
        CfnOutput(self, "GatewayTargetGroupArn", value=self.target_group.target_group_arn)

    # --- edge ------------------------------------------------------------------------------------------
    def _create_load_balancer(self, config: EnvironmentConfig, network: NetworkStack, auth: AuthStack) -> None:
        vpc = network.vpc
        self.alb_security_group = network.alb_security_group
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
            security_group=self.alb_security_group,
            drop_invalid_header_fields=True,
            deletion_protection=config.retain_data_on_delete,
        )
        self.alb.log_access_logs(self.access_logs_bucket, prefix="alb")

        self.target_group = elbv2.ApplicationTargetGroup(
            self,
            "GatewayTargets",
            vpc=vpc,
            port=GATEWAY_PORT,
            protocol=elbv2.ApplicationProtocol.HTTP,
            target_type=elbv2.TargetType.IP,
            targets=[self.gateway.service],
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

        if config.https_enabled:
            self._https_listeners(config, auth, forward)
        else:
            Annotations.of(self).add_warning_v2("movies:http-only-trial", HTTP_ONLY_WARNING)
            self.alb_security_group.add_ingress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(80), "HTTP (trial)")
            self.http_listener = self.alb.add_listener(
                "Http", port=80, protocol=elbv2.ApplicationProtocol.HTTP, open=False, default_action=forward
            )
            self.https_listener = None

        self._create_waf(config)

    def _https_listeners(self, config: EnvironmentConfig, auth: AuthStack, forward: elbv2.ListenerAction):
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
                validation=acm.CertificateValidation.from_dns(zone),
            )

        for port in (80, 443):
            self.alb_security_group.add_ingress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(port), f"public {port}")
        # The ALB fetches the Cognito JWKS and calls the Cognito token endpoint over HTTPS.
        self.alb_security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "Cognito / JWKS")

        self.https_listener = self.alb.add_listener(
            "Https",
            port=443,
            protocol=elbv2.ApplicationProtocol.HTTPS,
            certificates=[elbv2.ListenerCertificate.from_certificate_manager(certificate)],
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
            open=False,
            # Browser paths: Cognito hosted login (redirect + session cookie), then the gateway.
            default_action=elbv2_actions.AuthenticateCognitoAction(
                user_pool=auth.user_pool,
                user_pool_client=auth.browser_client,
                user_pool_domain=auth.domain,
                scope="openid email",
                session_timeout=Duration.hours(8),
                next=forward,
            ),
        )
        # API paths: bearer access tokens verified by the ALB (signature, iss, exp) before the gateway.
        self.https_listener.add_action(
            "Api",
            priority=10,
            conditions=[elbv2.ListenerCondition.path_patterns([API_PATH_PATTERN])],
            action=elbv2.ListenerAction.authenticate_jwt(issuer=auth.issuer, jwks_endpoint=auth.jwks_url, next=forward),
        )
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

    def _create_waf(self, config: EnvironmentConfig) -> None:
        def managed(name: str, priority: int) -> wafv2.CfnWebACL.RuleProperty:
            return wafv2.CfnWebACL.RuleProperty(
                name=name,
                priority=priority,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS", name=name
                    )
                ),
                visibility_config=self._waf_visibility(name),
            )

        rate_rule = wafv2.CfnWebACL.RuleProperty(
            name="RateLimitPerIp",
            priority=0,
            action=wafv2.CfnWebACL.RuleActionProperty(block={}),
            statement=wafv2.CfnWebACL.StatementProperty(
                rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                    limit=config.waf_rate_limit_per_5min, aggregate_key_type="IP"
                )
            ),
            visibility_config=self._waf_visibility("RateLimitPerIp"),
        )
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=self._waf_visibility(f"{config.prefix}-web-acl"),
            rules=[
                rate_rule,
                managed("AWSManagedRulesAmazonIpReputationList", 1),
                managed("AWSManagedRulesCommonRuleSet", 2),
                managed("AWSManagedRulesKnownBadInputsRuleSet", 3),
                managed("AWSManagedRulesSQLiRuleSet", 4),
            ],
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

    @staticmethod
    def _waf_visibility(metric_name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
        return wafv2.CfnWebACL.VisibilityConfigProperty(
            cloud_watch_metrics_enabled=True, metric_name=metric_name, sampled_requests_enabled=True
        )

    # --- autoscaling -----------------------------------------------------------------------------------
    def _configure_scaling(self, config: EnvironmentConfig, data: DataStack) -> None:
        cooldown_in = Duration.minutes(5)  # scale in slowly: avoids flapping on bursty traffic
        cooldown_out = Duration.minutes(1)
        for service in (self.gateway, self.inventory):
            service.scaling.scale_on_cpu_utilization(
                "Cpu",
                target_utilization_percent=config.cpu_target_percent,
                scale_in_cooldown=cooldown_in,
                scale_out_cooldown=cooldown_out,
            )
        self.gateway.scaling.scale_on_request_count(
            "Requests",
            requests_per_target=config.requests_per_target,
            target_group=self.target_group,
            scale_in_cooldown=cooldown_in,
            scale_out_cooldown=cooldown_out,
        )
        self._inventory_request_scaling(config)

        # Billing consumes billing_queue: step scaling on its depth (Amazon MQ metric). Scale out after
        # 2 minutes of backlog; scale in one task at a time and only after the queue has been empty for
        # 10 minutes, with a long cooldown, so bursty traffic does not make it flap.
        step = config.billing_queue_scale_out_depth
        queue_depth = queue_metric(data.broker_name, BILLING_QUEUE, "MessageCount", "Maximum")
        self.billing.scaling.scale_on_metric(
            "QueueBacklog",
            metric=queue_depth,
            scaling_steps=[
                {"upper": step, "change": 0},
                {"lower": step, "change": +1},
                {"lower": step * 10, "change": +3},
            ],
            cooldown=Duration.minutes(2),
            evaluation_periods=2,
            datapoints_to_alarm=2,
        )
        self.billing.scaling.scale_on_metric(
            "QueueDrained",
            metric=queue_depth,
            scaling_steps=[{"upper": 0, "change": -1}, {"lower": 1, "change": 0}],
            cooldown=Duration.minutes(10),
            evaluation_periods=10,
            datapoints_to_alarm=10,
        )

    def _inventory_request_scaling(self, config: EnvironmentConfig) -> None:
        """Target-track ALB requests per *inventory* task.

        Inventory is not behind the ALB (only the gateway is), and every API call reaches inventory through
        the gateway, so the load signal is the gateway target group's RequestCount divided by inventory's
        running tasks. Target tracking accepts metric math only through the L1 property, hence the override.
        """
        placeholder = self.target_group.metrics.request_count(period=Duration.minutes(1), statistic="Sum")
        self.inventory.scaling.scale_to_track_custom_metric(
            "Requests",
            metric=placeholder,
            target_value=config.requests_per_target,
            scale_in_cooldown=Duration.minutes(5),
            scale_out_cooldown=Duration.minutes(1),
        )
        policy = self.inventory.scaling.node.find_child("Target").node.find_child("Requests").node.default_child
        path = "TargetTrackingScalingPolicyConfiguration.CustomizedMetricSpecification"
        for key in ("MetricName", "Namespace", "Dimensions", "Statistic", "Unit"):
            policy.add_property_deletion_override(f"{path}.{key}")
        policy.add_property_override(
            f"{path}.Metrics",
            [
                {
                    "Id": "requests",
                    "ReturnData": False,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/ApplicationELB",
                            "MetricName": "RequestCount",
                            "Dimensions": [
                                {"Name": "LoadBalancer", "Value": self.alb.load_balancer_full_name},
                                {"Name": "TargetGroup", "Value": self.target_group.target_group_full_name},
                            ],
                        },
                        "Stat": "Sum",
                    },
                },
                {
                    "Id": "tasks",
                    "ReturnData": False,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "ECS/ContainerInsights",
                            "MetricName": "RunningTaskCount",
                            "Dimensions": [
                                {"Name": "ClusterName", "Value": self.cluster.cluster_name},
                                {"Name": "ServiceName", "Value": self.inventory.service.service_name},
                            ],
                        },
                        "Stat": "Average",
                    },
                },
                {
                    "Id": "requests_per_task",
                    "Label": "ALB requests per inventory task",
                    "Expression": "requests / tasks",
                    "ReturnData": True,
                },
            ],
        )
