"""DatabaseBackup: an AWS Backup plan for the databases, with a copy to a second region's vault (prod)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_backup as backup
from aws_cdk import aws_events as events
from aws_cdk import aws_rds as rds
from constructs import Construct

from stacks.config import EnvironmentConfig


def copy_vault_arn(stack: Stack, config: EnvironmentConfig) -> str:
    """ARN of the vault in ``config.backup_copy_region`` (same account) that receives the copies."""
    return (
        f"arn:{stack.partition}:backup:{config.backup_copy_region}:{stack.account}:"
        f"backup-vault:{config.backup_copy_vault_name}"
    )


class DatabaseBackup(Construct):
    """Daily recovery points of ``instances`` kept ``backup_retention_days``, copied to another region if set.

    AWS Backup is independent of the instances' automated backups: its recovery points survive the deletion
    of an instance (and of its automated backups), and the copy survives the loss of the region.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        instances: Sequence[rds.DatabaseInstance],
    ) -> None:
        super().__init__(scope, construct_id)
        retention = Duration.days(config.backup_retention_days)
        self.vault = backup.BackupVault(
            self,
            "Vault",
            backup_vault_name=f"{config.prefix}-databases",
            # A vault holding recovery points cannot be deleted anyway; keep it (and them) with the stack gone.
            removal_policy=RemovalPolicy.RETAIN,
        )
        copy_actions = []
        if config.backup_copy_region:
            destination = backup.BackupVault.from_backup_vault_arn(
                self, "CopyVault", copy_vault_arn(Stack.of(self), config)
            )
            copy_actions.append(
                backup.BackupPlanCopyActionProps(destination_backup_vault=destination, delete_after=retention)
            )
        self.plan = backup.BackupPlan(self, "Plan", backup_plan_name=f"{config.prefix}-databases")
        self.plan.add_rule(
            backup.BackupPlanRule(
                rule_name="Daily",
                backup_vault=self.vault,
                # 02:00 UTC, before the broker's Sunday 03:00 maintenance window and outside RDS's own window.
                schedule_expression=events.Schedule.cron(minute="0", hour="2"),
                start_window=Duration.hours(1),
                completion_window=Duration.hours(4),
                delete_after=retention,
                copy_actions=copy_actions,
            )
        )
        self.plan.add_selection(
            "Databases",
            resources=[backup.BackupResource.from_rds_database_instance(instance) for instance in instances],
        )
