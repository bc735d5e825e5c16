"""WebDeployment: the web front end's files into the web content bucket, at deploy time, then an invalidation.

``web/assets/`` goes to ``assets/<version>/`` (12 hex digits of its content's SHA-256) with a year of immutable
caching, and the uploaded ``index.html`` names that folder: the files keep their names and need no build step,
while a changed file is a new URL. ``index.html`` and ``config.json`` (runtime settings known only at deploy
time: the Cognito endpoints and the SPA client id) revalidate on every use. Two ``BucketDeployment``s, assets
first; ``prune`` off, because the bucket also holds the published posters (and a browser still running the
previous ``index.html`` finds the previous assets).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3_deployment
from constructs import Construct

from contract import web
from stacks.components.lambda_bundle import depend_only_on_role_policy

#: Files of web/ that are not deployed.
NOT_DEPLOYED = ("README.md",)


def assets_version(assets_dir: Path) -> str:
    """12 hex digits of SHA-256 over the assets' paths and bytes: the folder they are deployed to, so a changed
    file gets a new URL and every URL can be cached for a year (no build step renames the files)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in assets_dir.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(assets_dir)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def versioned_index(html: str, version: str) -> str:
    """``index.html`` with its ``/assets/...`` references pointing at ``/assets/<version>/...`` (the modules'
    relative imports then resolve inside the same version)."""
    return re.sub(r"""(["'])/""" + re.escape(web.ASSETS_PREFIX), rf"\1/{web.ASSETS_PREFIX}{version}/", html)


class WebDeployment:
    """Creates the deployments as children of ``scope`` (ids ``DeployAssets``, ``DeployPages``)."""

    def __init__(
        self,
        scope: Construct,
        web_dir: Path,
        bucket: s3.IBucket,
        distribution: cloudfront.IDistribution,
        settings: Mapping[str, Any],
    ) -> None:
        assets_dir = web_dir / web.ASSETS_PREFIX.rstrip("/")
        index = (web_dir / web.INDEX_DOCUMENT).read_text()
        self.assets: s3_deployment.BucketDeployment | None = None
        if assets_dir.is_dir():
            version = assets_version(assets_dir)
            index = versioned_index(index, version)
            self.assets = s3_deployment.BucketDeployment(
                scope,
                "DeployAssets",
                destination_bucket=bucket,
                destination_key_prefix=f"{web.ASSETS_PREFIX}{version}/",
                sources=[s3_deployment.Source.asset(str(assets_dir))],
                cache_control=[s3_deployment.CacheControl.from_string(web.IMMUTABLE)],
                prune=False,
            )
        sources = [
            s3_deployment.Source.data(web.INDEX_DOCUMENT, index),
            s3_deployment.Source.json_data(web.CONFIG_DOCUMENT, dict(settings)),
        ]
        handled = (assets_dir.name, web.INDEX_DOCUMENT, *NOT_DEPLOYED)
        if any(path.name not in handled for path in web_dir.iterdir()):
            # Any other top-level file (favicon, robots.txt): as it is, revalidated.
            excluded = [f"{web.ASSETS_PREFIX}*", web.INDEX_DOCUMENT, *NOT_DEPLOYED]
            sources.append(s3_deployment.Source.asset(str(web_dir), exclude=excluded))
        self.pages = s3_deployment.BucketDeployment(
            scope,
            "DeployPages",
            destination_bucket=bucket,
            sources=sources,
            cache_control=[s3_deployment.CacheControl.from_string(web.REVALIDATE)],
            prune=False,
            distribution=distribution,
            distribution_paths=["/*"],
        )
        if self.assets is not None:
            # A new index.html names new asset URLs: they are in the bucket before it is.
            self.pages.node.add_dependency(self.assets)
        # The deployments' provider: one function per stack, a child of the stack.
        stack = Stack.of(scope)
        (provider,) = [c for c in stack.node.children if c.node.id.startswith("Custom::CDKBucketDeployment")]
        depend_only_on_role_policy(provider)
