"""StampRegistry: each stamp writes where it is, so tooling finds every stamp of an environment.

SSM parameters in the stamp's region under ``/movies/<env>/stamps/<stamp>/``: ``url`` (its public entry, the
CloudFront distribution's URL), ``region``, ``share`` (percent of the users it is meant to serve) and ``domain``
(its ALB's name, when it has one). A CfnOutput repeats the URL. Standard-tier parameters: free.
``aws ssm get-parameters-by-path --path /movies/prod/stamps --recursive --region <each stamp region>`` lists
them (docs/stamps-and-geode.md, "Stamp registry").
"""

from __future__ import annotations

from aws_cdk import CfnOutput
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from stacks.config import EnvironmentConfig


def stamp_parameter(config: EnvironmentConfig, stamp: str, name: str) -> str:
    """SSM name of a registry entry of ``stamp``."""
    return f"{config.registry_path}/stamps/{stamp}/{name}"


class StampRegistry(Construct):
    """The registry entries of the stamp ``config`` deploys."""

    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, url: str) -> None:
        super().__init__(scope, construct_id)
        stamp = config.current_stamp
        entries = {"url": url, "region": stamp.region, "share": str(stamp.share_percent)}
        if config.domain_name:
            entries["domain"] = config.domain_name
        self.parameters = {
            name: ssm.StringParameter(
                self,
                name.capitalize(),
                parameter_name=stamp_parameter(config, stamp.name, name),
                string_value=value,
                description=f"movies {config.environment_name}: stamp {stamp.name}'s {name} (stamp registry)",
            )
            for name, value in entries.items()
        }
        self.url_output = CfnOutput(
            self,
            "StampUrl",
            value=url,
            description=f"Public URL of stamp {stamp.name}; every stamp: {config.registry_path}/stamps/* in SSM",
        )
