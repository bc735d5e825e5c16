"""MicroservicesStage: the whole system for one environment, deployable by the CLI or by CDK Pipelines."""

from __future__ import annotations

from aws_cdk import Environment, Stage, Tags
from constructs import Construct

from stacks.auth import AuthStack
from stacks.compute import ComputeStack
from stacks.config import EnvironmentConfig
from stacks.data import DataStack
from stacks.invoicer import InvoicerStack
from stacks.monitoring import MonitoringStack
from stacks.nag import acknowledge_findings
from stacks.network import NetworkStack
from stacks.posters import PosterPipelineStack
from stacks.shared_auth import SharedAuthStack
from stacks.stamps import is_first_stamp

#: Construct ids of the stacks, in deployment order; each stack is deployed as ``<stage>-<id>``.
STACK_IDS = ("Network", "Data", "Auth", "Compute", "Posters", "Invoicer", "Monitoring")


def stage_id(env_name: str) -> str:
    """Construct id of the stage, which also prefixes every stack name (``Movies-dev-Network``)."""
    return f"Movies-{env_name}"


class MicroservicesStage(Stage):
    """Network, data, auth, compute, poster pipeline, invoicer and monitoring stacks of one environment, wired by
    references.

    Self-contained and parameterised only by ``config`` (and the usual ``env``), so a CDK Pipelines
    ``CodePipeline`` can add the very same stage. The stacks are named ``<stage>-<Stack>``, e.g.
    ``Movies-dev-Compute``, whether deployed by ``cdk deploy`` or by a pipeline.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        env: Environment | None = None,
    ) -> None:
        super().__init__(scope, construct_id, env=env)
        self.config = config

        # prod stacks cannot be deleted by accident (an explicit termination-protection change is needed).
        protect = config.retain_data_on_delete
        network_id, data_id, auth_id, compute_id, posters_id, invoicer_id, monitoring_id = STACK_IDS
        self.network = NetworkStack(
            self,
            network_id,
            config=config,
            description=f"movies {config.name}: VPC, endpoints, flow logs",
            termination_protection=protect,
        )
        self.data = DataStack(
            self,
            data_id,
            config=config,
            vpc=self.network.vpc,
            inventory_security_group=self.network.inventory_security_group,
            billing_security_group=self.network.billing_security_group,
            gateway_security_group=self.network.gateway_security_group,
            description=f"movies {config.name}: PostgreSQL databases and the RabbitMQ broker",
            termination_protection=protect,
        )
        # One user pool per environment, in the first stamp; the other stamps accept its tokens.
        self.auth: AuthStack | SharedAuthStack
        if is_first_stamp(config):
            self.auth = AuthStack(
                self,
                auth_id,
                config=config,
                description=f"movies {config.name}: Cognito user pool and clients",
                termination_protection=protect,
            )
        else:
            self.auth = SharedAuthStack(
                self,
                auth_id,
                config=config,
                description=f"movies {config.name}: the first stamp's user pool, read from the stamp registry",
                termination_protection=protect,
            )
        self.compute = ComputeStack(
            self,
            compute_id,
            config=config,
            network=self.network,
            data=self.data,
            auth=self.auth,
            description=f"movies {config.name}: ECS services, ALB, WAF and autoscaling",
            termination_protection=protect,
        )
        # After compute: the uploads bucket's CORS origin is the distribution, and publish writes the web bucket.
        self.posters = PosterPipelineStack(
            self,
            posters_id,
            config=config,
            web=self.compute.web,
            description=f"movies {config.name}: poster uploads bucket, pipes (SQS) and filters (Lambda)",
            termination_protection=protect,
        )
        self.invoicer = InvoicerStack(
            self,
            invoicer_id,
            config=config,
            vpc=self.network.vpc,
            data=self.data,
            description=f"movies {config.name}: the saga's invoicer (Lambda on the broker's invoicer.saga)",
            termination_protection=protect,
        )
        self.monitoring = MonitoringStack(
            self,
            monitoring_id,
            config=config,
            data=self.data,
            compute=self.compute,
            auth=self.auth,
            description=f"movies {config.name}: dashboard, alarms and budget",
            termination_protection=protect,
        )

        for key, value in config.tags.items():
            Tags.of(self).add(key, value)
        acknowledge_findings(self)

    @property
    def stacks(self):
        """The stacks in deployment order."""
        return [self.network, self.data, self.auth, self.compute, self.posters, self.invoicer, self.monitoring]
