"""A Python Lambda code asset bundled without Docker: pip wheels for the Lambda's platform, plus our sources.

``cdk synth`` bundles the poster filters locally (``PipWheelsBundling``): ``pip install --target`` with
``--only-binary=:all:`` and the Lambda's platform tags downloads the manylinux wheels PyPI publishes for it
(Pillow ships aarch64 wheels for CPython 3.12), so no build and no container is needed; then the source
folders are copied next to the packages under the names the handlers import them by (the filters:
``functions/posters`` as the package ``posters``, handler ``posters.validate.handler``; and ``contract``).

The asset hash is computed here from the requirement pins, the platform and every copied source file, so it
changes exactly when the bundle would, and is known without bundling (tests skip bundling with the context
``aws:cdk:bundling-stacks: []``; one test bundles for real).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling, Stack
from aws_cdk import aws_lambda as lambda_

REPO_ROOT = Path(__file__).resolve().parents[2]
#: manylinux tags accepted for Lambda arm64 (Amazon Linux 2023, glibc 2.34): Pillow 13 publishes 2_28 wheels.
ARM64_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "tests")


def _source_files(folder: Path) -> list[Path]:
    """The files of ``folder`` the bundle copies (no caches), sorted for a stable hash."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc" and "tests" not in path.parts
    )


@jsii.implements(ILocalBundling)
class PipWheelsBundling:
    """Bundles on this machine: pip wheels for ``platforms`` / ``python_version`` into the asset, then each
    source folder (``sources``: folder in the asset -> folder relative to the repository root)."""

    def __init__(
        self, requirements: Path, sources: Mapping[str, str], *, platforms: Sequence[str], python_version: str
    ) -> None:
        self.requirements = requirements
        self.sources = dict(sources)
        self.platforms = tuple(platforms)
        self.python_version = python_version

    def pip_command(self, target: str) -> list[str]:
        """``pip install`` of the pinned requirements as binary wheels for the Lambda platform into ``target``."""
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile"]
        command += ["--target", target, "--only-binary=:all:", "--implementation", "cp"]
        command += ["--python-version", self.python_version]
        for platform in self.platforms:
            command += ["--platform", platform]
        return [*command, "-r", str(self.requirements)]

    def try_bundle(self, output_dir: str, options: BundlingOptions) -> bool:
        """Install the wheels and copy the sources into ``output_dir``; a failure stops the synthesis."""
        subprocess.run(self.pip_command(output_dir), check=True)
        for name, source in self.sources.items():
            shutil.copytree(REPO_ROOT / source, Path(output_dir) / name, ignore=IGNORED, dirs_exist_ok=True)
        return True

    def fingerprint(self) -> str:
        """SHA-256 over the pins, the platform and every source file (path and bytes): the asset's hash."""
        digest = hashlib.sha256()
        digest.update(self.requirements.read_bytes())
        digest.update(repr((self.platforms, self.python_version)).encode())
        for name, source in sorted(self.sources.items()):
            digest.update(name.encode())
            for path in _source_files(REPO_ROOT / source):
                digest.update(str(path.relative_to(REPO_ROOT)).encode())
                digest.update(path.read_bytes())
        return digest.hexdigest()


def python_lambda_code(
    requirements: Path,
    sources: Mapping[str, str],
    *,
    platforms: Sequence[str] = ARM64_PLATFORMS,
    python_version: str,
) -> lambda_.Code:
    """A Lambda code asset bundled by ``PipWheelsBundling`` (no Docker: the image is never pulled)."""
    missing = [source for source in sources.values() if not (REPO_ROOT / source).is_dir()]
    if missing or not requirements.is_file():
        raise FileNotFoundError(f"Lambda sources missing: {missing or requirements}")
    bundling = PipWheelsBundling(requirements, sources, platforms=platforms, python_version=python_version)
    return lambda_.Code.from_asset(
        str(requirements.parent),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=bundling.fingerprint(),
        bundling=BundlingOptions(
            # Required by the API; used only if local bundling declined, which PipWheelsBundling never does.
            image=DockerImage.from_registry("public.ecr.aws/sam/build-python3.12"),
            local=bundling,
        ),
    )


def depend_only_on_role_policy(function: lambda_.Function) -> None:
    """Keep only the function's dependency on its role's default policy.

    CDK makes a function depend on its role explicitly, which the GetAtt of the role already does (cfn-lint
    W3005); the dependency on the role's policy (the permissions it needs when it starts) is the one to keep.
    """
    stack = Stack.of(function)
    policy = function.role.node.find_child("DefaultPolicy").node.default_child
    function.node.default_child.add_override("DependsOn", [stack.get_logical_id(policy)])
