"""Deployment stamps: the config of each stamp of an environment, and the stage of each.

A stamp is a complete, independent copy of an environment's regional stacks (docs/stamps-and-geode.md). The
first stamp IS the environment as it always was (same config object, stacks ``Movies-<env>-<Stack>``, logical
ids unchanged); every other stamp deploys the same ``MicroservicesStage`` with a derived config: its own name
(``<env>-<stamp>``, hence its own stack and physical names), region, domain and backup copy region, and the
first stamp's user pool instead of a pool of its own (stacks/shared_auth.py).
"""

from __future__ import annotations

import dataclasses

from stacks.config import EnvironmentConfig, Stamp


def stamp_config(config: EnvironmentConfig, stamp: Stamp) -> EnvironmentConfig:
    """The config that deploys ``stamp`` of the environment ``config`` (``config`` itself for the first stamp)."""
    if stamp == config.all_stamps[0]:
        return config
    return dataclasses.replace(
        config,
        name=f"{config.name}-{stamp.name}",
        region=stamp.region,
        domain_name=stamp.domain_name,
        certificate_arn=None,  # a certificate is regional: the first stamp's cannot serve another region
        backup_copy_region=stamp.backup_copy_region,
        stamp=stamp.name,
        environment=config.name,
        tags={**config.tags, "Stamp": stamp.name},
    )


def stamp_configs(config: EnvironmentConfig) -> list[EnvironmentConfig]:
    """The config of every stamp of the environment, the first stamp's first."""
    return [stamp_config(config, stamp) for stamp in config.all_stamps]


def is_first_stamp(config: EnvironmentConfig) -> bool:
    """Whether ``config`` deploys the environment's first stamp (the one with the user pool)."""
    return config.stamp is None
